"""gg.nn: activations (the primitives under their tf.nn names, and gelu, leaky_relu, elu),
softmax, cross-entropies, dropout, conv2d (gpugrad/convolution.py), and Keras-style layers (Dense, Conv2D, Dropout,
Flatten, Sequential) with activations and initializers by name.

The composites are sequences of gg ops with no VJP of their own: the tape differentiates them
(any number of times) on every backend. No numpy/cupy here.
"""
import math
import numbers

from . import module as _module
from . import ops as _ops
from . import random as _random
from .module import (  # noqa: F401  (the layers live in gpugrad/module.py, beside gg.Module)
    Dense, Dropout, Flatten, Layer, Sequential, get_activation, get_initializer,
)
from .convolution import Conv2D, conv2d  # noqa: F401  (the convolution primitive's checks and its layer)
from .ops import _axis, _tensor
from .primitives import erf, relu, sigmoid, softplus, tanh  # noqa: F401


def _shifted(logits, axis, what):
    """(logits minus their maximum along axis, the normalized axis): exp of it cannot overflow.
    The maximum is a constant to the tape: softmax does not depend on the shift."""
    x = _tensor(logits)
    axis = _axis(axis, x.ndim, x.shape, what)
    if x.size == 0:  # no maximum to shift by
        return _ops.identity(x), axis
    return x - _ops.stop_gradient(_ops.reduce_max(x, axis=axis, keepdims=True)), axis


def softmax(logits, axis=-1):
    """exp(logits) / sum(exp(logits)) along `axis`, computed without overflow for large logits.
    Probabilities below the dtype's smallest normal number are 0, by the activations' rounding
    rule (gpugrad/primitives/rounding.py): relu, the identity on them otherwise, flushes them."""
    z, axis = _shifted(logits, axis, "softmax")
    if z.size == 0:  # an empty axis or batch: nothing to normalize, an empty result as in TensorFlow
        return z
    e = _ops.exp(z)
    return relu(e / _ops.reduce_sum(e, axis=axis, keepdims=True))


def log_softmax(logits, axis=-1):
    """logits - log(sum(exp(logits))) along `axis`: exact where softmax would round to 0."""
    z, axis = _shifted(logits, axis, "log_softmax")
    if z.size == 0:  # as softmax
        return z
    return z - _ops.log(_ops.reduce_sum(_ops.exp(z), axis=axis, keepdims=True))


def _same_dtype(what, a_name, a, b_name, b):
    if a.dtype != b.dtype:
        raise TypeError(f"{what}: {a_name} of dtype {a.dtype} and {b_name} of dtype {b.dtype} differ")


def softmax_cross_entropy_with_logits(labels, logits, axis=-1):
    """-sum(labels * log_softmax(logits)) along `axis`: one loss per example.

    Args:
      labels: a probability distribution along `axis`, of logits' shape and dtype. Gradients
        flow to labels as well as to logits, as in TensorFlow 2.
      logits: unnormalized log-probabilities.
    """
    labels, logits = _tensor(labels), _tensor(logits)
    if labels.shape != logits.shape:
        raise ValueError(f"softmax_cross_entropy_with_logits: labels of shape {labels.shape} and logits "
                         f"of shape {logits.shape} differ")
    _same_dtype("softmax_cross_entropy_with_logits", "labels", labels, "logits", logits)
    return -_ops.reduce_sum(labels * log_softmax(logits, axis), axis=axis)


def sparse_softmax_cross_entropy_with_logits(labels, logits):
    """The softmax cross-entropy of integer class indices: -log_softmax(logits)[..., labels].

    Args:
      labels: integers in [0, classes) of shape logits.shape[:-1]; no gradient.
      logits: unnormalized log-probabilities with the classes on the last axis.
    Out-of-range labels raise ValueError (TensorFlow gives NaN on the GPU).
    """
    labels, logits = _tensor(labels), _tensor(logits)
    what = "sparse_softmax_cross_entropy_with_logits"
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{what}: labels must be integers, got dtype {labels.dtype}")
    if logits.ndim == 0 or labels.shape != logits.shape[:-1]:
        raise ValueError(f"{what}: labels of shape {labels.shape} do not match logits of shape {logits.shape} "
                         f"(labels need the shape of logits without its last axis)")
    classes = logits.shape[-1]
    if labels.size:
        for bad in (int(_ops.reduce_min(labels)), int(_ops.reduce_max(labels))):
            if not 0 <= bad < classes:
                raise ValueError(f"{what}: label {bad} is out of range for {classes} classes")
    indices = _ops.range(classes, dtype=labels.dtype, device=labels.device)
    one_hot = _ops.cast(_ops.expand_dims(labels, -1) == indices, logits.dtype)
    return softmax_cross_entropy_with_logits(one_hot, logits)


def sigmoid_cross_entropy_with_logits(labels=None, logits=None):
    """The elementwise binary cross-entropy of `logits` against probabilities `labels`,
    -labels * log(sigmoid(logits)) - (1 - labels) * log(1 - sigmoid(logits)), in TensorFlow's
    stable form max(x, 0) - x * z + log(1 + exp(-|x|)), which neither overflows nor loses the
    tiny losses of confident logits. The branches are chosen by x >= 0, as in TensorFlow, so
    that the gradient at 0 is sigmoid(0) - z. labels and logits have one shape and dtype;
    gradients flow to both."""
    labels, logits = _tensor(labels), _tensor(logits)
    if labels.shape != logits.shape:
        raise ValueError(f"sigmoid_cross_entropy_with_logits: labels of shape {labels.shape} and logits of shape "
                         f"{logits.shape} differ")
    _same_dtype("sigmoid_cross_entropy_with_logits", "labels", labels, "logits", logits)
    nonnegative = logits >= 0
    zeros = _ops.zeros_like(logits)
    relu_logits = _ops.where(nonnegative, logits, zeros)
    negative_abs = _ops.where(nonnegative, -logits, logits)
    return relu_logits - logits * labels + _ops.log1p(_ops.exp(negative_abs))


def gelu(features, approximate=False):
    """The Gaussian error linear unit x * P(X <= x), X ~ N(0, 1): 0.5 x (1 + erf(x / sqrt 2)),
    or with approximate=True TensorFlow's tanh form
    0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))."""
    x = _tensor(features)
    if approximate:
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * (x * x * x))
        return 0.5 * x * (1.0 + tanh(inner))
    return 0.5 * x * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))


def leaky_relu(features, alpha=0.2):
    """x where x > 0, alpha * x elsewhere (gradient alpha at 0, as TensorFlow's)."""
    x = _tensor(features)
    return _ops.where(x > 0, x, x * alpha)


def elu(features, alpha=1.0):
    """x where x > 0, alpha * (exp(x) - 1) elsewhere (tf.nn.elu is alpha = 1). exp only sees
    min(x, 0), so large inputs neither overflow nor make the gradient NaN."""
    x = _tensor(features)
    return _ops.where(x > 0, x, alpha * (_ops.exp(_ops.minimum(x, 0.0)) - 1.0))


def _valid_rate(rate):
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
        raise ValueError(f"dropout: rate must be a number in [0, 1), got {rate!r}")
    return float(rate)


def dropout(x, rate, noise_shape=None, seed=None, training=True):
    """x with each entry set to 0 with probability `rate` and the others scaled by
    1 / (1 - rate), so that the expectation is unchanged (as tf.nn.dropout); with
    training=False (or rate 0), x itself.

    Args:
      noise_shape: the shape of the random keep mask, broadcast against x's (a 1 shares one
        draw along that axis); x's shape by default.
      seed: an int makes the mask reproducible: every call with the same seed and shape drops
        the same entries. Without one, masks come from gg.random's generator (see
        gg.random.set_seed). gg.nn.Dropout, the layer, draws a new mask on each call.
    """
    rate = _valid_rate(rate)
    x = _tensor(x)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"dropout: seed must be an int or None, got {seed!r}")
    if x.dtype.kind != "f":
        raise TypeError(f"dropout: x must be a float tensor, got dtype {x.dtype}")
    if not training or rate == 0:
        return x
    shape = x.shape if noise_shape is None else _ops._shape(noise_shape, "dropout")
    if len(shape) > x.ndim or any(s not in (1, t) for s, t in zip(shape[::-1], x.shape[::-1])):
        raise ValueError(f"dropout: noise_shape {shape} does not broadcast to x's shape {x.shape}")
    keep = _random.uniform(shape, dtype=x.dtype, seed=seed, device=x.device) >= rate
    return _ops.where(keep, x * (1.0 / (1.0 - rate)), _ops.zeros_like(x))


# The activations by name that live here rather than among the primitives.
_module._ACTIVATIONS.update(softmax=softmax, log_softmax=log_softmax, gelu=gelu, leaky_relu=leaky_relu, elu=elu)
