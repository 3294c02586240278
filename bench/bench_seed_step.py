"""The seed training step (1 -> 3 sigmoid -> 1, 300 points, SGD 0.1, full batch, float32),
timed side by side in one process: gpugrad (tape + update by hand), the same step
hand-written in NumPy, and PyTorch CPU eager when it is installed.

    python bench/bench_seed_step.py [--steps 2000] [--repeats 7]

Prints microseconds per step (best of interleaved rounds) and the ratios to two hand-written NumPy
steps: as written from the formulas, and tuned with the facts of PERF-NOTES.md.
The three implementations start from the same weights and are checked to agree first.
"""
import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny matrices: threads only add overhead

import numpy as np  # noqa: E402

import gpugrad as gg  # noqa: E402

LR = 0.1  # a Python float: NumPy 2 and gpugrad keep float32 arrays float32


def make_problem(points, hidden, seed):
    rng = np.random.default_rng(seed)
    x = np.linspace(-1, 1, points, dtype=np.float32)[:, None]
    y = (x ** 2 - 0.5 + rng.normal(0, 0.05, x.shape)).astype(np.float32)
    params = [rng.normal(size=(1, hidden)).astype(np.float32), np.full((1, hidden), 0.1, np.float32),
              rng.normal(size=(hidden, 1)).astype(np.float32), np.full((1, 1), 0.1, np.float32)]
    return x, y, params


def gpugrad_step_factory(x, y, params):
    xs, ys = gg.constant(x), gg.constant(y)
    w1, b1, w2, b2 = variables = [gg.Variable(p) for p in params]

    def step():
        with gg.GradientTape() as tape:
            hidden = gg.sigmoid(xs @ w1 + b1)
            prediction = hidden @ w2 + b2
            loss = gg.reduce_mean(gg.reduce_sum(gg.square(ys - prediction), axis=1))
        for v, g in zip(variables, tape.gradient(loss, variables)):
            v.assign_sub(LR * g)
        return loss

    return step, lambda: [v.numpy() for v in variables]


def numpy_step_factory(x, y, params):
    """The step as a NumPy user writes it from the formulas."""
    w1, b1, w2, b2 = weights = [p.copy() for p in params]
    n = x.shape[0]

    def step():
        hidden = 1 / (1 + np.exp(-(x @ w1 + b1)))
        diff = hidden @ w2 + b2 - y
        loss = np.mean(np.sum(diff ** 2, axis=1))
        d_pred = 2 * diff / n
        d_w2 = hidden.T @ d_pred
        d_b2 = np.sum(d_pred, axis=0, keepdims=True)
        d_z = (d_pred @ w2.T) * hidden * (1 - hidden)
        d_w1 = x.T @ d_z
        d_b1 = np.sum(d_z, axis=0, keepdims=True)
        for w, d in zip(weights, (d_w1, d_b1, d_w2, d_b2)):
            w -= LR * d
        return loss

    return step, lambda: weights


def tuned_numpy_step_factory(x, y, params):
    """The same step tuned with the facts of PERF-NOTES.md: dot instead of matmul for an
    inner dimension of 1, batch sums through BLAS, no temporaries it can avoid."""
    w1, b1, w2, b2 = [p.copy() for p in params]
    ones = np.ones((1, x.shape[0]), np.float32)
    scale = np.float32(2.0 / x.shape[0])

    def step():
        hidden = 1 / (1 + np.exp(-(x.dot(w1) + b1)))
        diff = hidden.dot(w2) + b2 - y
        loss = np.mean(np.sum(diff * diff, axis=1))
        d_pred = scale * diff
        d_w2 = hidden.T.dot(d_pred)
        d_b2 = ones.dot(d_pred)
        d_z = d_pred.dot(w2.T) * hidden * (1 - hidden)
        d_w1 = x.T.dot(d_z)
        d_b1 = ones.dot(d_z)
        for w, d in ((w1, d_w1), (b1, d_b1), (w2, d_w2), (b2, d_b2)):
            np.subtract(w, LR * d, out=w)
        return loss

    return step, lambda: [w1, b1, w2, b2]


def torch_step_factory(x, y, params):
    import torch
    torch.set_num_threads(1)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    w1, b1, w2, b2 = variables = [torch.tensor(p, requires_grad=True) for p in params]

    def step():
        hidden = torch.sigmoid(xs @ w1 + b1)
        prediction = hidden @ w2 + b2
        loss = torch.mean(torch.sum(torch.square(ys - prediction), dim=1))
        grads = torch.autograd.grad(loss, variables)
        with torch.no_grad():
            for v, g in zip(variables, grads):
                v -= LR * g
        return loss

    return step, lambda: [v.detach().numpy() for v in variables]


def time_per_step(steps_by_name, steps, repeats):
    """Microseconds per step for each implementation: rounds interleave the implementations
    so that machine noise hits them alike; the best round of each is kept."""
    for step in steps_by_name.values():
        for _ in range(min(steps, 200)):
            step()
    samples = {name: [] for name in steps_by_name}
    for _ in range(repeats):
        for name, step in steps_by_name.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            samples[name].append((time.perf_counter() - start) / steps * 1e6)
    return {name: min(values) for name, values in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--points", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=3)
    args = parser.parse_args()

    x, y, params = make_problem(args.points, args.hidden, seed=0)
    factories = {"numpy (hand-written)": numpy_step_factory, "numpy (tuned)": tuned_numpy_step_factory,
                 "gpugrad": gpugrad_step_factory}
    try:
        import torch
        factories["pytorch eager"] = torch_step_factory
        torch_version = torch.__version__
    except ImportError:
        torch_version = None

    # Agreement first: 50 steps from the same weights must land on the same weights.
    finals = {}
    for name, factory in factories.items():
        step, weights = factory(x, y, params)
        for _ in range(50):
            step()
        finals[name] = weights()
    reference = finals["numpy (hand-written)"]
    for name, weights in finals.items():
        for a, b in zip(weights, reference):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=f"{name} disagrees with numpy")

    print(f"seed step: 1 -> {args.hidden} sigmoid -> 1, {args.points} points, float32, full batch SGD")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"python {platform.python_version()}, numpy {np.__version__}, gpugrad {gg.__version__}, "
          f"torch {torch_version or 'not installed'}")
    times = time_per_step({name: factory(x, y, params)[0] for name, factory in factories.items()},
                          args.steps, args.repeats)
    base = times["numpy (hand-written)"]
    tuned = times["numpy (tuned)"]
    print(f"{'implementation':<22}{'us/step':>10}{'vs numpy':>10}{'vs tuned':>10}")
    for name, micros in times.items():
        print(f"{name:<22}{micros:>10.1f}{micros / base:>9.2f}x{micros / tuned:>9.2f}x")
    if "pytorch eager" in times:
        print(f"gpugrad / pytorch eager: {times['gpugrad'] / times['pytorch eager']:.2f}x")


if __name__ == "__main__":
    main()
