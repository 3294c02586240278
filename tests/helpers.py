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
