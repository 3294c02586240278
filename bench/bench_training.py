"""The seed training loop (1 -> H sigmoid -> 1, full batch, float32, SGD 0.1), timed side by
side in one process: gpugrad eager (tape + optimizer), the same step under gg.function
(captured once, then compiled: on the CPU, a replay writing into buffers planned once),
and under gg.function(compile=False) (the plain replay), the step hand-written in NumPy (as from the formulas, and
tuned by measuring where a small NumPy step spends its time), and PyTorch CPU eager when
it is installed.

    python bench/bench_training.py [--config seed|wide|saturating|all] [--steps N] [--repeats R]

Configurations: seed (hidden 3, 300 points, 2000 steps a round), wide (hidden 256, 10,000
points, 200 steps a round) and saturating (wide, with the output layer's weights left at
N(0, 1): the first steps blow the hidden layer's weights up, and after 50 steps of training
many hidden sigmoids sit below float32's smallest normal number, where subnormal values
can slow every CPU operation that touches them). Prints microseconds per step (best of
interleaved rounds) and the ratios to hand-written NumPy. All implementations start from the
same weights and are checked to agree after 50 steps first.
"""
import argparse
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny matrices: threads only add overhead

import numpy as np  # noqa: E402

import gpugrad as gg  # noqa: E402

LR = 0.1  # a Python float: NumPy 2 and gpugrad keep float32 arrays float32


def make_problem(points, hidden, seed, scaled=True):
    rng = np.random.default_rng(seed)
    x = np.linspace(-1, 1, points, dtype=np.float32)[:, None]
    y = (x ** 2 - 0.5 + rng.normal(0, 0.05, x.shape)).astype(np.float32)
    # The seed's initialization (normal weights, biases 0.1), the output layer scaled by
    # 1/sqrt(hidden) (unless `scaled` is false) so that the wide net trains as stably as the seed's.
    params = [rng.normal(size=(1, hidden)).astype(np.float32), np.full((1, hidden), 0.1, np.float32),
              (rng.normal(size=(hidden, 1)) / (np.sqrt(hidden) if scaled else 1)).astype(np.float32),
              np.full((1, 1), 0.1, np.float32)]
    return x, y, params


def gpugrad_eager_factory(x, y, params):
    xs, ys = gg.constant(x), gg.constant(y)
    w1, b1, w2, b2 = variables = [gg.Variable(p) for p in params]
    optimizer = gg.optimizers.SGD(LR)

    def step():
        with gg.GradientTape() as tape:
            hidden = gg.sigmoid(xs @ w1 + b1)
            prediction = hidden @ w2 + b2
            loss = gg.reduce_mean(gg.reduce_sum(gg.square(ys - prediction), axis=1))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return step, lambda: [v.numpy() for v in variables]


def gpugrad_function_factory(x, y, params):
    step, weights = gpugrad_eager_factory(x, y, params)
    return gg.function(step), weights


def gpugrad_plain_function_factory(x, y, params):
    step, weights = gpugrad_eager_factory(x, y, params)
    return gg.function(step, compile=False), weights


def numpy_step_factory(x, y, params, xp=np):
    """The step as a NumPy user writes it from the formulas (`xp=cupy` for the CuPy one)."""
    w1, b1, w2, b2 = weights = [p.copy() for p in params]
    n = x.shape[0]

    def step():
        hidden = 1 / (1 + xp.exp(-(x @ w1 + b1)))
        diff = hidden @ w2 + b2 - y
        loss = xp.mean(xp.sum(diff ** 2, axis=1))
        d_pred = 2 * diff / n
        d_w2 = hidden.T @ d_pred
        d_b2 = xp.sum(d_pred, axis=0, keepdims=True)
        d_z = (d_pred @ w2.T) * hidden * (1 - hidden)
        d_w1 = x.T @ d_z
        d_b1 = xp.sum(d_z, axis=0, keepdims=True)
        for w, d in zip(weights, (d_w1, d_b1, d_w2, d_b2)):
            w -= LR * d
        return loss

    return step, lambda: weights


def tuned_numpy_step_factory(x, y, params):
    """The same step tuned by measurement: dot instead of matmul for an
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


def torch_step_factory(x, y, params, device="cpu"):
    import torch
    if device == "cpu":
        torch.set_num_threads(1)
    xs, ys = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    w1, b1, w2, b2 = variables = [torch.tensor(p, requires_grad=True, device=device) for p in params]
    optimizer = torch.optim.SGD(variables, lr=LR)

    def step():
        optimizer.zero_grad()
        hidden = torch.sigmoid(xs @ w1 + b1)
        prediction = hidden @ w2 + b2
        loss = torch.mean(torch.sum(torch.square(ys - prediction), dim=1))
        loss.backward()
        optimizer.step()
        return loss

    return step, lambda: [v.detach().cpu().numpy() for v in variables]


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


CONFIGS = {"seed": dict(hidden=3, points=300, steps=2000), "wide": dict(hidden=256, points=10_000, steps=200),
           "saturating": dict(hidden=256, points=10_000, steps=200, scaled=False, pretrain=50)}


def run_config(name, hidden, points, steps, repeats, factories, scaled=True, pretrain=0):
    x, y, params = make_problem(points, hidden, seed=0, scaled=scaled)
    setting = f"1 -> {hidden} sigmoid -> 1, {points} points, float32, full-batch SGD"
    if pretrain:
        # Every implementation starts from the weights that `pretrain` hand-written steps reach.
        step, weights = numpy_step_factory(x, y, params)
        for _ in range(pretrain):
            step()
        params = [w.copy() for w in weights()]
        saturated = np.mean(x @ params[0] + params[1] < np.log(np.finfo(np.float32).tiny))
        setting += (f", N(0, 1) output weights; after {pretrain} steps, {saturated:.0%} of the hidden "
                    f"sigmoids are below float32's smallest normal number")
    # Agreement first: 50 steps from the same weights must land on the same weights (up to
    # float32 rounding: the orders of summation differ over 10,000 points).
    finals = {}
    for impl, factory in factories.items():
        step, weights = factory(x, y, params)
        for _ in range(50):
            step()
        finals[impl] = weights()
    reference = finals["numpy (hand-written)"]
    for impl, weights in finals.items():
        for a, b in zip(weights, reference):
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-4, err_msg=f"{impl} disagrees with numpy")

    print(f"\n{name}: {setting}, {steps} steps a round")
    times = time_per_step({impl: factory(x, y, params)[0] for impl, factory in factories.items()}, steps, repeats)
    base = times["numpy (hand-written)"]
    print(f"{'implementation':<24}{'us/step':>10}{'vs numpy':>10}")
    for impl, micros in times.items():
        print(f"{impl:<24}{micros:>10.1f}{micros / base:>9.2f}x")
    if "pytorch eager" in times:
        print(f"gpugrad gg.function / pytorch eager: {times['gpugrad gg.function'] / times['pytorch eager']:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=[*CONFIGS, "all"], default="all")
    parser.add_argument("--steps", type=int, help="steps a round (default: per configuration)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    factories = {"numpy (hand-written)": numpy_step_factory, "numpy (tuned)": tuned_numpy_step_factory,
                 "gpugrad eager": gpugrad_eager_factory, "gpugrad gg.function": gpugrad_function_factory,
                 "gpugrad plain replay": gpugrad_plain_function_factory}
    try:
        import torch
        factories["pytorch eager"] = torch_step_factory
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"python {platform.python_version()}, numpy {np.__version__}, gpugrad {gg.__version__}, "
          f"torch {torch_version or 'not installed'}; best of {args.repeats} interleaved rounds")
    with np.errstate(over="ignore"):  # the formulas' exp(-z) is inf where a sigmoid saturates; 1 / inf is the right 0
        for name, config in CONFIGS.items():
            if args.config in (name, "all"):
                run_config(name, config["hidden"], config["points"], args.steps or config["steps"], args.repeats,
                           factories, config.get("scaled", True), config.get("pretrain", 0))


if __name__ == "__main__":
    main()
