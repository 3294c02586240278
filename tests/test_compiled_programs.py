"""Compiled gg.function steps equal eager steps on random programs: the same losses and the
same Variables, step after step, for random chains of elementwise ops with broadcasting
partners, reductions over each axis, matmuls of every shape class, and each optimizer.
On the CPU always; on CUDA where a GPU is visible."""
import numpy as np
import pytest

import gpugrad as gg
from conftest import DEVICES

UNARY = {
    "tanh": gg.tanh, "sigmoid": gg.sigmoid, "sin": gg.sin, "cos": gg.cos, "square": gg.square, "abs": gg.abs,
    "relu": gg.nn.relu, "softplus": gg.nn.softplus, "negative": lambda t: -t, "exp": lambda t: gg.exp(gg.tanh(t)),
    "sqrt": lambda t: gg.sqrt(gg.abs(t) + 1.0), "log": lambda t: gg.log(gg.abs(t) + 1.0),
    "log1p": lambda t: gg.log1p(gg.abs(t)), "sign": lambda t: t * gg.sign(t),
    "clip": lambda t: gg.clip_by_value(t, -0.5, 0.75), "cast": lambda t: gg.cast(gg.cast(t, "float64"), t.dtype),
    "power": lambda t: gg.power(gg.abs(t) + 0.5, 1.5), "identity": gg.identity,
}
BINARY = {
    "add": lambda a, b: a + b, "subtract": lambda a, b: a - b, "multiply": lambda a, b: a * b,
    "divide": lambda a, b: a / (gg.abs(b) + 1.0), "maximum": gg.maximum, "minimum": gg.minimum,
    "squared_difference": gg.squared_difference, "where": lambda a, b: gg.where(a > b, a, b * 0.5),
    "scalar": lambda a, b: 0.5 * a - 2.0,
}
REDUCTIONS = {
    "sum0": lambda t: gg.reduce_sum(t, axis=0, keepdims=True), "sum1": lambda t: gg.reduce_sum(t, axis=1, keepdims=True),
    "mean0": lambda t: gg.reduce_mean(t, axis=0, keepdims=True), "mean1": lambda t: gg.reduce_mean(t, axis=1,
                                                                                                keepdims=True),
    "max1": lambda t: gg.reduce_max(t, axis=1, keepdims=True), "min0": lambda t: gg.reduce_min(t, axis=0, keepdims=True),
}
OPTIMIZERS = [
    lambda: gg.optimizers.SGD(0.05),
    lambda: gg.optimizers.SGD(lambda step: 0.05 / (1 + step), momentum=0.9, clipnorm=1.0),
    lambda: gg.optimizers.Adam(0.01, global_clipnorm=1.0),
    lambda: gg.optimizers.AdamW(0.01, amsgrad=True),
    lambda: gg.optimizers.RMSprop(0.01, centered=True, momentum=0.5, clipvalue=0.5),
    lambda: gg.optimizers.Adagrad(lambda step: 0.1 * 0.9 ** step),
]
ROWS, COLS = 7, 5


def _program(seed, device, dtype):
    """A random training step: a Dense-like start (a matmul of a random shape class), a chain
    of random elementwise ops with partners of every broadcasting shape, a reduction, more
    elementwise ops, a loss; and its Variables and optimizer."""
    rng = np.random.default_rng(seed)
    choice = lambda options: list(options.values())[rng.integers(len(options))]  # noqa: E731
    inner = int(rng.choice([1, 3]))
    x_shape, w_shape = [((ROWS, inner), (inner, COLS)), ((1, inner), (inner, COLS)), ((ROWS, inner), (inner, 1))][
        rng.integers(3)]
    out_shape = (x_shape[0], w_shape[1])
    partners = [out_shape, (1, out_shape[1]), (out_shape[0], 1), ()]
    with gg.device(device):
        x = gg.constant(rng.normal(size=x_shape).astype(dtype))
        w = gg.Variable(rng.normal(size=w_shape).astype(dtype), name="w")
        extras = [gg.Variable(rng.normal(size=partners[rng.integers(4)]).astype(dtype), name=f"p{i}")
                  for i in range(3)]
    transpose = bool(rng.integers(2)) and inner > 1
    ops = [(choice(UNARY), choice(BINARY), extras[rng.integers(3)]) for _ in range(4)]
    reduction = choice(REDUCTIONS)
    variables = [w, *extras]
    optimizer = OPTIMIZERS[rng.integers(len(OPTIMIZERS))]()

    def step(xs):
        with gg.GradientTape() as tape:
            h = gg.matmul(xs, gg.transpose(w) if transpose else w, transpose_b=transpose)
            for unary, binary, partner in ops[:2]:
                h = binary(unary(h), partner)
            h = reduction(h) * h
            for unary, binary, partner in ops[2:]:
                h = binary(unary(h), partner)
            loss = gg.reduce_mean(gg.square(h))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
        return loss

    return step, variables, x


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(24))
def test_a_compiled_random_program_equals_eager_step_after_step(seed, device, dtype):
    compiled_step, compiled_vars, x = _program(seed, device, dtype)
    eager_step, eager_vars, _ = _program(seed, device, dtype)
    compiled = gg.function(compiled_step)
    # float64: equal to rounding; float32: a few ulps a step (a GPU's math library and the
    # compiler's rewrites of degenerate products may round differently from NumPy's)
    rtol = 1e-12 if dtype == "float64" else 2e-6
    for _ in range(4):
        a, b = compiled(x), eager_step(x)
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=rtol, atol=1e-6 if dtype == "float32" else 1e-14)
        for u, v in zip(compiled_vars, eager_vars):
            np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=rtol, atol=1e-6 if dtype == "float32" else 1e-14,
                                       err_msg=u.name)
    if device == "cpu":  # the host lowering is exact: every into-form equals its forward
        assert compiled(x).numpy().tobytes() == eager_step(x).numpy().tobytes()
