"""Helpers shared by test modules (tests/ is on sys.path under pytest's default import mode)."""
import numpy as np

import gpugrad as gg


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
