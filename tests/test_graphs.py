"""gg.function's CUDA-graph lowering: explain() on every device, and on a GPU the compiled
step against the plain replay, step after step, for each optimizer, with schedules."""
import re

import numpy as np
import pytest

import gpugrad as gg


def _net(device, dtype, optimizer):
    """The two-layer regression step (1 -> 3 sigmoid -> 1) on `device`, and its Variables."""
    rng = np.random.default_rng(3)
    with gg.device(device):
        x = gg.constant(np.linspace(-1, 1, 64, dtype=dtype)[:, None])
        y = gg.constant((np.linspace(-1, 1, 64, dtype=dtype)[:, None] ** 2 - 0.5).astype(dtype))
        w1 = gg.Variable(rng.normal(size=(1, 3)).astype(dtype), name="w1")
        b1 = gg.Variable(np.full((1, 3), 0.1, dtype), name="b1")
        w2 = gg.Variable(rng.normal(size=(3, 1)).astype(dtype), name="w2")
        b2 = gg.Variable(np.full((1, 1), 0.1, dtype), name="b2")
    variables = [w1, b1, w2, b2]

    def step(xs, ys):
        with gg.GradientTape() as tape:
            hidden = gg.sigmoid(xs @ w1 + b1)
            loss = gg.reduce_mean(gg.square(ys - (hidden @ w2 + b2)))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return step, variables, x, y


def test_explain_on_the_cpu_says_the_plan_is_a_planned_replay():
    step, _, x, y = _net("cpu", "float32", gg.optimizers.SGD(0.1))
    compiled = gg.function(step)
    compiled(x, y)
    text = compiled.explain()
    assert text.startswith(compiled.trace_text())
    assert "sgd_update(" in text and "SGD.advance()  # host" in text
    assert re.search(r"lowering: planned replay on the CPU: \d+ buffers \([\d.e-]+ MB\) for \d+ planned "
                     r"intermediates, allocated once; after constant folding and dead-code elimination \d+ of "
                     r"the \d+ steps remain:\n  %\d+: f32\[64,3\] = matmul\(%0, %\d+\)  # contraction\n", text)
    assert re.search(r"\n  return %\d+$", text)  # the program after the passes, as the trace prints it
    assert "array calls and 1 host steps a call" in text


def test_compile_false_keeps_the_plain_replay():
    step, _, x, y = _net("cpu", "float32", gg.optimizers.SGD(0.1))
    compiled = gg.function(step, compile=False)
    compiled(x, y)
    assert compiled.explain().endswith("lowering: plain replay: the compiler is off (gg.function(compile=False))")


def test_explain_needs_a_call_first():
    with pytest.raises(LookupError, match="call it first"):
        gg.function(lambda: None).explain()


OPTIMIZERS = {
    "sgd": lambda: gg.optimizers.SGD(0.1),
    "sgd-momentum-schedule": lambda: gg.optimizers.SGD(lambda step: 0.1 / (1 + step), momentum=0.9),
    "adam": lambda: gg.optimizers.Adam(0.01),
    "adamw-clipped": lambda: gg.optimizers.AdamW(0.01, global_clipnorm=0.5),
    "rmsprop-centered": lambda: gg.optimizers.RMSprop(0.01, centered=True, momentum=0.5),
    "adagrad": lambda: gg.optimizers.Adagrad(0.1),
}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_cuda_graph_step_equals_the_plain_replay_step_after_step(name, dtype):
    graphed, graphed_vars, x, y = _net("cuda", dtype, OPTIMIZERS[name]())
    plain, plain_vars, _, _ = _net("cuda", dtype, OPTIMIZERS[name]())
    graphed, plain = gg.function(graphed), gg.function(plain, compile=False)
    rtol = 1e-5 if dtype == "float32" else 1e-12  # cuBLAS may pick another GEMM algorithm than CuPy's call
    for _ in range(6):
        a, b = graphed(x, y), plain(x, y)
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=rtol)
        for u, v in zip(graphed_vars, plain_vars):
            np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=rtol, atol=1e-7)
    assert "lowering: one CUDA graph launch per call\n" in graphed.explain(), graphed.explain()


@pytest.mark.gpu
def test_a_cuda_graph_step_reads_new_arguments_and_keeps_old_results():
    step, _, x, y = _net("cuda", "float32", gg.optimizers.SGD(0.0))  # lr 0: the loss depends on the data only
    compiled = gg.function(step)
    first = compiled(x, y)
    second = compiled(x, y)
    shifted = compiled(x, y + 1.0)
    assert "lowering: one CUDA graph launch per call\n" in compiled.explain()
    assert float(first) == float(second) and float(shifted) != float(first)
    assert float(compiled(x, y)) == float(first)  # back to the first data: the graph copied it in again


@pytest.mark.gpu
def test_a_python_number_argument_keeps_the_plain_replay_and_says_why():
    w = gg.Variable([1.0, 2.0], device="cuda")

    @gg.function
    def scaled(factor):
        return gg.reduce_sum(w * factor)

    assert float(scaled(2.0)) == 6.0 and float(scaled(3.0)) == 9.0
    assert "plain replay: argument 0 is a Python number" in scaled.explain()


@pytest.mark.gpu
def test_a_cuda_graph_replay_allocates_nothing_but_its_results():
    import cupy
    step, _, x, y = _net("cuda", "float32", gg.optimizers.Adam(0.01))
    compiled = gg.function(step)
    for _ in range(3):
        compiled(x, y)
    assert "lowering: one CUDA graph launch per call\n" in compiled.explain()
    pool = cupy.get_default_memory_pool()
    cupy.cuda.Device().synchronize()
    before = pool.total_bytes()
    results = [compiled(x, y) for _ in range(20)]
    cupy.cuda.Device().synchronize()
    # each result is a float32 scalar copied out of the graph: one block of CuPy's smallest size
    assert pool.total_bytes() - before <= 20 * 512
    assert len({float(r) for r in results}) > 1  # Adam's step size changes every step: the graph reads it
