"""Helpers shared by test modules (tests/ is on sys.path under pytest's default import mode)."""
import importlib

import numpy as np

import gpugrad as gg
from gpugrad.program import Program

_function_module = importlib.import_module("gpugrad.function")  # gg.function is the decorator


def has_cuda():
    return any(d.startswith("cuda") for d in gg.devices())


def first_grad(f, xs):
    """The gradients of sum(w * f(*xs)) for fixed weights w, flattened into one vector."""
    with gg.GradientTape() as tape:
        tape.watch(list(xs))
        y = f(*xs)
    w = gg.constant(np.random.default_rng(7).normal(size=y.shape) + 1.0, dtype=y.dtype)
    grads = tape.gradient(y, list(xs), output_gradients=w, unconnected_gradients="zero")
    return gg.concat([gg.reshape(g, [-1]) for g in grads], 0)


NON_PERSISTENT = "A non-persistent GradientTape can only be used to compute one set of gradients (or jacobians)"


def values(grads):
    """Gradients (a Tensor, None, or a list of them) as Python numbers/lists, None kept."""
    if isinstance(grads, (list, tuple)):
        return [values(g) for g in grads]
    return None if grads is None else grads.numpy().tolist()


def tutorial_f(x):
    """The tutorials' f(x) = 3x^2 + 2x - 1 (f'(1) = 8, minimum at x = -1/3)."""
    return 3. * x ** 2 + 2. * x - 1


def tutorial_g(x1, x2):
    """The tutorials' g(x1, x2) = (x1 + 5) * x2^2 (gradient (9, 42) at (2, 3))."""
    return (x1 + 5) * (x2 ** 2)


def program_of(fn, *args):
    """The compiler's Program of `fn`'s step as gg.function captures it on a first call with
    `args` (`fn` a plain function, or a gg.function), taken once the trace knows its output
    slots and before the plan lets go of its values."""
    programs = []
    rebuilder = _function_module._rebuilder

    def capture(trace, result):
        rebuild = rebuilder(trace, result)
        programs.append(Program.from_trace(trace))
        return rebuild

    _function_module._rebuilder = capture
    try:
        (fn if isinstance(fn, _function_module.Function) else gg.function(fn, compile=False))(*args)
    finally:
        _function_module._rebuilder = rebuilder
    (program,) = programs
    return program


def softsign_primitive(name):
    """alpha x / (1 + |x|) registered as the user primitive `name`, with a keyword parameter
    and a scalar expression: what a user's own elementwise op looks like. The caller removes
    it from gg.dispatch.REGISTRY afterwards."""
    @gg.primitive(name=name, kind="elementwise")
    def softsign(x, *, alpha):
        return x / (1 + np.abs(x)) * alpha

    @softsign.defexpr("gg_multiply(gg_divide(gg_cast<{T}>({0}), gg_add(({T})1, gg_abs(gg_cast<{T}>({0})))), "
                      "gg_cast<{T}>({alpha}))")
    def softsign_numpy(xp, out, x, *, alpha):
        xp.abs(x, out=out)
        xp.add(out, 1, out=out)
        xp.divide(x, out, out=out)
        return xp.multiply(out, alpha, out=out)

    return softsign


def regression_step(dtype="float32", batch=300):
    """The two-layer regression net's training step, x (batch, 1) -> Dense(3) sigmoid ->
    Dense(1), mean squared error, SGD 0.1, as a plain function `train_step(x, y)`; returns
    (train_step, x, y) with the data on the default device."""
    x = gg.constant(np.linspace(-1, 1, batch, dtype=dtype)[:, None])
    y = gg.constant((np.linspace(-1, 1, batch, dtype=dtype)[:, None] ** 2 - 0.5).astype(dtype))
    hidden = gg.nn.Dense(1, 3, activation=gg.nn.sigmoid, seed=1, dtype=dtype, bias_initializer=0.1)
    output = gg.nn.Dense(3, 1, seed=2, dtype=dtype, bias_initializer=0.1)
    variables = hidden.trainable_variables + output.trainable_variables
    optimizer = gg.optimizers.SGD(0.1)

    def train_step(xs, ys):
        with gg.GradientTape() as tape:
            loss = gg.reduce_mean(gg.square(ys - output(hidden(xs))))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return train_step, x, y
