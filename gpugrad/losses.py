"""gg.losses: Keras's losses, as functions and as callable classes.

The functions (`mean_squared_error(y_true, y_pred)`...) follow keras.losses: y_true is cast to
y_pred's dtype and the result is one loss per sample, reduced over the last axis: a mean of
the elementwise losses (mean_squared_error, mean_absolute_error, binary_crossentropy, huber)
or a sum over the classes (the categorical cross-entropies).

The classes (`MeanSquaredError()(y_true, y_pred, sample_weight=None)`...) apply the function,
weight each sample's loss by sample_weight when one is given, then reduce as Keras does by
default, reduction="sum_over_batch_size": the sum of the (weighted) per-sample losses divided
by their number, 0 when there are none. reduction="sum" stops at the sum, "none" (or None)
returns the per-sample losses.

Probabilities (from_logits=False) are clipped to [epsilon, 1 - epsilon], epsilon = 1e-7 as
keras.backend.epsilon(), before their logarithm, so a confident wrong prediction costs a
large finite loss, not inf (its gradient is 0 there, as in Keras). With from_logits=True
the logits go through TensorFlow's stable formulas (gg.nn.sigmoid_cross_entropy_with_logits,
gg.nn.softmax_cross_entropy_with_logits), which need no clipping.
"""
import numbers

from . import nn as _nn
from . import ops as _ops
from .ops import _axis, _check_range, _tensor

EPSILON = 1e-7

__all__ = [
    "BinaryCrossentropy", "CategoricalCrossentropy", "Huber", "Loss", "MeanAbsoluteError", "MeanSquaredError",
    "SparseCategoricalCrossentropy", "binary_crossentropy", "categorical_crossentropy", "get", "huber",
    "mean_absolute_error", "mean_squared_error", "sparse_categorical_crossentropy",
]


def _pair(y_true, y_pred, what):
    """(y_true cast to y_pred's dtype, y_pred), y_pred a float tensor of one shape with y_true."""
    y_pred = _tensor(y_pred)
    if y_pred.dtype.kind != "f":
        raise TypeError(f"{what}: y_pred must be a float tensor, got dtype {y_pred.dtype}")
    y_true = _ops.cast(y_true, y_pred.dtype)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{what}: y_true of shape {y_true.shape} and y_pred of shape {y_pred.shape} differ")
    return y_true, y_pred


def _last_axis_mean(values, what):
    if values.ndim == 0:
        raise ValueError(f"{what}: y_true and y_pred need rank 1 or more (the last axis is averaged), got scalars")
    return _ops.reduce_mean(values, axis=-1)


def _smoothing(label_smoothing, what):
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) or \
            not 0 <= label_smoothing <= 1:
        raise ValueError(f"{what}: label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
    return float(label_smoothing)


def _clipped(probabilities):
    return _ops.clip_by_value(probabilities, EPSILON, 1.0 - EPSILON)


def mean_squared_error(y_true, y_pred):
    """mean((y_pred - y_true)^2) over the last axis: one loss per sample."""
    y_true, y_pred = _pair(y_true, y_pred, "mean_squared_error")
    return _last_axis_mean(_ops.squared_difference(y_pred, y_true), "mean_squared_error")


def mean_absolute_error(y_true, y_pred):
    """mean(|y_pred - y_true|) over the last axis: one loss per sample."""
    y_true, y_pred = _pair(y_true, y_pred, "mean_absolute_error")
    return _last_axis_mean(_ops.abs(y_pred - y_true), "mean_absolute_error")


def huber(y_true, y_pred, delta=1.0):
    """The mean over the last axis of 0.5 e^2 where |e| <= delta and delta (|e| - 0.5 delta)
    beyond, e = y_pred - y_true: squared near 0, linear (robust to outliers) far out."""
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not delta > 0:
        raise ValueError(f"huber: delta must be a positive number, got {delta!r}")
    y_true, y_pred = _pair(y_true, y_pred, "huber")
    error = _ops.abs(y_pred - y_true)
    quadratic = _ops.minimum(error, float(delta))
    return _last_axis_mean(0.5 * quadratic * quadratic + float(delta) * (error - quadratic), "huber")


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """The mean over `axis` of -(t log p + (1 - t) log(1 - p)): y_pred holds probabilities p
    (clipped to [1e-7, 1 - 1e-7]) or, with from_logits=True, logits. label_smoothing s moves
    the targets toward 1/2: t (1 - s) + s / 2."""
    what = "binary_crossentropy"
    y_true, y_pred = _pair(y_true, y_pred, what)
    smoothing = _smoothing(label_smoothing, what)
    if y_pred.ndim == 0:
        raise ValueError(f"{what}: y_true and y_pred need rank 1 or more (axis {axis} is averaged), got scalars")
    axis = _axis(axis, y_pred.ndim, y_pred.shape, what)
    if smoothing:
        y_true = y_true * (1.0 - smoothing) + 0.5 * smoothing
    if from_logits:
        elementwise = _nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=y_pred)
    else:
        p = _clipped(y_pred)
        elementwise = -(y_true * _ops.log(p) + (1.0 - y_true) * _ops.log(1.0 - p))
    return _ops.reduce_mean(elementwise, axis=axis)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """-sum(t log p) over the class axis `axis`: y_pred holds probabilities (renormalized to
    sum to 1 along axis, then clipped to [1e-7, 1 - 1e-7]) or, with from_logits=True, logits.
    label_smoothing s mixes the targets with the uniform distribution: t (1 - s) + s / classes."""
    what = "categorical_crossentropy"
    y_true, y_pred = _pair(y_true, y_pred, what)
    smoothing = _smoothing(label_smoothing, what)
    if y_pred.ndim == 0:
        raise ValueError(f"{what}: y_true and y_pred need a class axis, got scalars")
    axis = _axis(axis, y_pred.ndim, y_pred.shape, what)
    if smoothing:
        y_true = y_true * (1.0 - smoothing) + smoothing / y_pred.shape[axis]
    if from_logits:
        return _nn.softmax_cross_entropy_with_logits(y_true, y_pred, axis=axis)
    p = _clipped(y_pred / _ops.reduce_sum(y_pred, axis=axis, keepdims=True))
    return -_ops.reduce_sum(y_true * _ops.log(p), axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """categorical_crossentropy with integer class indices as targets: y_true of y_pred's
    shape without its last (class) axis, or with a last axis of size 1 (Keras squeezes it);
    float labels holding whole numbers are accepted, as in Keras. Labels outside
    [0, classes) raise ValueError, except in a gg.function's compiled steps, which do not
    read them on the host: there such a label's loss is 0 (its one-hot row is all zeros)."""
    what = "sparse_categorical_crossentropy"
    y_pred = _tensor(y_pred)
    y_true = _tensor(y_true)
    if y_pred.dtype.kind != "f":
        raise TypeError(f"{what}: y_pred must be a float tensor, got dtype {y_pred.dtype}")
    if y_true.dtype.kind == "f":
        y_true = _ops.cast(y_true, "int64")
    elif y_true.dtype.kind not in "iu":
        raise TypeError(f"{what}: y_true must hold class indices, got dtype {y_true.dtype}")
    if y_pred.ndim and y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = _ops.squeeze(y_true, -1)
    if y_pred.ndim == 0 or y_true.shape != y_pred.shape[:-1]:
        raise ValueError(f"{what}: y_true of shape {y_true.shape} does not match y_pred of shape {y_pred.shape} "
                         f"(y_true needs y_pred's shape without its class axis)")
    classes = y_pred.shape[-1]
    _check_range(y_true, classes, what, "y_pred's class axis", ValueError, "label")
    targets = _ops.one_hot(y_true, classes, dtype=y_pred.dtype)
    return categorical_crossentropy(targets, y_pred, from_logits=from_logits)


# ---------------------------------------------------------------------------------------
# The callable classes

_REDUCTIONS = ("sum_over_batch_size", "sum", "none")


class Loss:
    """A loss as a callable: `loss(y_true, y_pred, sample_weight=None)` computes the
    per-sample losses with `call`, weights them, and reduces them by `reduction` (see the
    module docstring). Subclasses implement call(y_true, y_pred)."""

    def __init__(self, reduction="sum_over_batch_size", name=None):
        if reduction is None:
            reduction = "none"
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of "
                             f"{', '.join(repr(r) for r in _REDUCTIONS)} or None, got {reduction!r}")
        self.reduction = reduction
        self.name = name or _snake(type(self).__name__)

    def call(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred)")

    def __call__(self, y_true, y_pred, sample_weight=None):
        losses = self.call(y_true, y_pred)
        if sample_weight is not None:
            weight = _ops.cast(sample_weight, losses.dtype)
            if weight.ndim == losses.ndim + 1 and weight.shape[-1] == 1:  # (batch, 1) weights for (batch,) losses
                weight = _ops.squeeze(weight, -1)
            try:
                losses = losses * weight
            except ValueError:
                raise ValueError(f"{self.name}: sample_weight of shape {weight.shape} does not broadcast against "
                                 f"the per-sample losses of shape {losses.shape}") from None
        if self.reduction == "none":
            return losses
        total = _ops.reduce_sum(losses)
        if self.reduction == "sum" or losses.size == 0:
            return total
        return total / losses.size

    def __repr__(self):
        return f"{type(self).__name__}(reduction={self.reduction!r}, name={self.name!r})"


def _snake(name):
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


class MeanSquaredError(Loss):
    """mean_squared_error, reduced."""

    def call(self, y_true, y_pred):
        return mean_squared_error(y_true, y_pred)


class MeanAbsoluteError(Loss):
    """mean_absolute_error, reduced."""

    def call(self, y_true, y_pred):
        return mean_absolute_error(y_true, y_pred)


class Huber(Loss):
    """huber with its delta, reduced."""

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss"):
        super().__init__(reduction, name)
        self.delta = delta

    def call(self, y_true, y_pred):
        return huber(y_true, y_pred, self.delta)


class BinaryCrossentropy(Loss):
    """binary_crossentropy with its options, reduced."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy"):
        super().__init__(reduction, name)
        self.from_logits, self.label_smoothing, self.axis = bool(from_logits), label_smoothing, axis

    def call(self, y_true, y_pred):
        return binary_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing, self.axis)


class CategoricalCrossentropy(Loss):
    """categorical_crossentropy with its options, reduced."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy"):
        super().__init__(reduction, name)
        self.from_logits, self.label_smoothing, self.axis = bool(from_logits), label_smoothing, axis

    def call(self, y_true, y_pred):
        return categorical_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing, self.axis)


class SparseCategoricalCrossentropy(Loss):
    """sparse_categorical_crossentropy, reduced."""

    def __init__(self, from_logits=False, reduction="sum_over_batch_size", name="sparse_categorical_crossentropy"):
        super().__init__(reduction, name)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return sparse_categorical_crossentropy(y_true, y_pred, self.from_logits)


_BY_NAME = {
    "mean_squared_error": mean_squared_error, "mse": mean_squared_error,
    "mean_absolute_error": mean_absolute_error, "mae": mean_absolute_error, "huber": huber,
    "binary_crossentropy": binary_crossentropy, "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}


def get(identifier):
    """A loss function by its Keras name ("mse", "categorical_crossentropy"...), or a callable
    (a Loss instance, a function) as it is."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]
    raise ValueError(f"unknown loss {identifier!r}; the names are {', '.join(sorted(_BY_NAME))}")
