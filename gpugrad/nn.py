"""gg.nn: activations (the primitives under their tf.nn names)."""
from .primitives import relu, sigmoid, softplus, tanh  # noqa: F401
