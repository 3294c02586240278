"""The public ops under their TensorFlow names.

Primitives are re-exported as they are; the functions here normalize arguments (axes,
shapes, dtypes, index keys) and name the offending values in errors before calling one,
create new tensors on a device, or compose primitives (the clipping functions, reduce_any
and reduce_all); no array module is called directly. The end of the module binds the
Tensor operators to the primitives.
"""
import builtins
import numbers
import operator

from . import backend as _backend
from . import primitives as _p
from .primitives import (  # noqa: F401  (re-exported)
    abs, add, clip_by_value, cos, divide, equal, exp, greater, greater_equal, identity, less,
    less_equal, log, log1p, matmul, maximum, minimum, multiply, negative, not_equal, power,
    relu, sigmoid, sign, sin, softplus, sqrt, square, squared_difference, stop_gradient,
    subtract, tanh, zeros_like,
)
from .tensor import Tensor, Variable, _ArrayValue, constant

__all__ = [
    "abs", "add", "broadcast_to", "cast", "clip_by_global_norm", "clip_by_norm", "clip_by_value", "concat", "cos", "divide", "equal", "exp",
    "expand_dims", "eye", "fill", "getitem", "greater", "greater_equal", "identity", "less", "less_equal",
    "linspace", "log", "log1p", "matmul", "maximum", "minimum", "multiply", "negative", "not_equal",
    "ones", "ones_like", "power", "range", "reduce_all", "reduce_any", "reduce_max", "reduce_mean", "reduce_min", "reduce_prod",
    "reduce_sum", "relu", "reshape", "sigmoid", "sign", "sin", "softplus", "sqrt", "square",
    "squared_difference", "squeeze", "stack", "stop_gradient", "subtract", "tanh", "tile", "transpose",
    "where", "zeros", "zeros_like",
]
# The clipping composites are built from primitives at the end of this module.


def _tensor(x):
    return x if type(x) is Tensor or type(x) is Variable else constant(x)


def _axis(axis, ndim, shape, what):
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"{what}: an axis must be an int, got {axis!r}") from None
    if not -ndim <= axis < ndim:
        raise ValueError(f"{what}: axis {axis} is out of range for a tensor of shape {shape}")
    return axis % ndim


_NORMALIZED_AXES = {}


def _axes(axis, x, what):
    """None, or a sorted tuple of distinct non-negative axes (cached for int and tuple axes)."""
    if axis is None:
        return None
    key = (axis, x.ndim)
    if type(axis) is int or type(axis) is tuple:
        try:
            axes = _NORMALIZED_AXES.get(key)
        except TypeError:  # a tuple holding a list
            axes = None
        if axes is not None:
            return axes
    if type(axis) is Tensor or type(axis) is Variable:
        axis = axis.numpy().tolist()
    items = axis if isinstance(axis, (list, tuple)) else (axis,)
    axes = tuple(sorted(_axis(a, x.ndim, x.shape, what) for a in items))
    if len(set(axes)) != len(axes):
        raise ValueError(f"{what}: repeated axis in {axis!r}")
    if type(axis) is int or (type(axis) is tuple and all(type(a) is int for a in axis)):
        _NORMALIZED_AXES[key] = axes
    return axes


def _shape(shape, what):
    if type(shape) is Tensor or type(shape) is Variable:
        shape = shape.numpy().tolist()
    if isinstance(shape, int):
        shape = (shape,)
    try:
        return tuple(operator.index(s) for s in shape)
    except TypeError:
        raise TypeError(f"{what}: a shape must be a sequence of ints, got {shape!r}") from None


def cast(x, dtype):
    """x converted to `dtype`; the gradient flows back (cast to x's dtype) between float types."""
    return _p.cast(_tensor(x), dtype=_backend.as_dtype(dtype))


def where(condition, x, y):
    """Elementwise `x` where `condition` is True, else `y` (all three broadcast)."""
    condition = _tensor(condition)
    if condition.dtype != _backend.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got dtype {condition.dtype}")
    return _p.where(condition, x, y)


def reduce_sum(input_tensor, axis=None, keepdims=False):
    """Sum over `axis` (int, tuple or None for all). Integer tensors keep their dtype, as in
    TensorFlow (NumPy would widen int32 to int64)."""
    x = _tensor(input_tensor)
    return _p.reduce_sum(x, axis=_axes(axis, x, "reduce_sum"), keepdims=bool(keepdims))


def reduce_mean(input_tensor, axis=None, keepdims=False):
    """Mean over `axis` (int, tuple or None for all). The mean of integers is float64, as in
    NumPy: TensorFlow's truncating integer mean is a known wart not copied here."""
    x = _tensor(input_tensor)
    return _p.reduce_mean(x, axis=_axes(axis, x, "reduce_mean"), keepdims=bool(keepdims))


def reduce_max(input_tensor, axis=None, keepdims=False):
    """Maximum over `axis`; ties share the gradient equally, as in TensorFlow."""
    x = _tensor(input_tensor)
    return _p.reduce_max(x, axis=_axes(axis, x, "reduce_max"), keepdims=bool(keepdims))


def reduce_min(input_tensor, axis=None, keepdims=False):
    """Minimum over `axis`; ties share the gradient equally, as in TensorFlow."""
    x = _tensor(input_tensor)
    return _p.reduce_min(x, axis=_axes(axis, x, "reduce_min"), keepdims=bool(keepdims))


def reduce_prod(input_tensor, axis=None, keepdims=False):
    """Product over `axis`; the gradient is exact where factors are zero. Integer tensors keep
    their dtype, as in TensorFlow."""
    x = _tensor(input_tensor)
    return _p.reduce_prod(x, axis=_axes(axis, x, "reduce_prod"), keepdims=bool(keepdims))


def reduce_any(input_tensor, axis=None, keepdims=False):
    """Logical or over `axis`: True where any element is nonzero (False for none), a bool tensor."""
    x = _tensor(input_tensor)
    nonzero = _p.cast(_p.not_equal(x, 0), dtype=_backend.int64)
    return _p.not_equal(reduce_sum(nonzero, axis, keepdims), 0)


def reduce_all(input_tensor, axis=None, keepdims=False):
    """Logical and over `axis`: True where every element is nonzero (True for none), a bool tensor."""
    x = _tensor(input_tensor)
    zero = _p.cast(_p.equal(x, 0), dtype=_backend.int64)
    return _p.equal(reduce_sum(zero, axis, keepdims), 0)


def reshape(tensor, shape):
    """The same values in a new shape (one entry may be -1)."""
    return _p.reshape(_tensor(tensor), shape=_shape(shape, "reshape"))


def broadcast_to(input, shape):
    """`input` broadcast to `shape`; the gradient sums back."""
    return _p.broadcast_to(_tensor(input), shape=_shape(shape, "broadcast_to"))


def transpose(a, perm=None):
    """Permute the axes (reverse them when `perm` is None)."""
    x = _tensor(a)
    if perm is None:
        perm = tuple(builtins.range(x.ndim - 1, -1, -1))
    perm = _shape(perm, "transpose")
    if sorted(p % x.ndim if x.ndim else p for p in perm) != list(builtins.range(x.ndim)):
        raise ValueError(f"transpose: perm {perm} is not a permutation of the axes of shape {x.shape}")
    return _p.transpose(x, perm=tuple(p % x.ndim for p in perm))


def expand_dims(input, axis):
    """Insert a size-1 axis at `axis` (negative counts from the end of the result)."""
    x = _tensor(input)
    return _p.expand_dims(x, axis=_axis(axis, x.ndim + 1, x.shape, "expand_dims"))


def squeeze(input, axis=None):
    """Remove size-1 axes (all of them, or those in `axis`)."""
    x = _tensor(input)
    axes = _axes(axis, x, "squeeze")
    if axes is None:
        axes = tuple(i for i, s in enumerate(x.shape) if s == 1)
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} of shape {x.shape} has size {x.shape[a]}, not 1")
    return _p.squeeze(x, axis=axes)


def _joined(values, what):
    if type(values) is Tensor or type(values) is Variable or not isinstance(values, (list, tuple)):
        raise TypeError(f"{what} takes a list of tensors, got {type(values).__name__}")
    if not values:
        raise ValueError(f"{what} needs at least one tensor")
    return [_tensor(v) for v in values]


def concat(values, axis):
    """Join tensors along an existing axis."""
    values = _joined(values, "concat")
    return _p.concat(*values, axis=_axis(axis, values[0].ndim, values[0].shape, "concat"))


def stack(values, axis=0):
    """Join tensors of one shape along a new axis."""
    values = _joined(values, "stack")
    return _p.stack(*values, axis=_axis(axis, values[0].ndim + 1, values[0].shape, "stack"))


def tile(input, multiples):
    """Repeat `input` multiples[i] times along axis i (one multiple per axis, as in TensorFlow)."""
    x = _tensor(input)
    multiples = _shape(multiples, "tile")
    if len(multiples) != x.ndim:
        raise ValueError(f"tile: {len(multiples)} multiples {multiples} for a tensor of rank {x.ndim} "
                         f"(shape {x.shape})")
    return _p.tile(x, multiples=multiples)


def _index(k, device):
    if k is None or k is Ellipsis or type(k) is slice or type(k) is int:
        return k
    if type(k) is Tensor or type(k) is Variable:
        if k.device != device:
            raise ValueError(f"getitem: an index on {k.device} for a tensor on {device}")
        data = k._data
    else:
        data = constant(k, device=device)._data
    if data.dtype.kind not in "biu":
        raise TypeError(f"getitem: indices must be integers, slices, None, ..., or integer/bool arrays; "
                        f"got dtype {data.dtype}")
    return data


def getitem(tensor, key):
    """tensor[key]: ints, slices (negative steps too), None, ..., integer or bool arrays.
    In the gradient, repeated indices accumulate."""
    x = _tensor(tensor)
    key = tuple(_index(k, x.device) for k in (key if type(key) is tuple else (key,)))
    return _p.getitem(x, key=key)


# ---------------------------------------------------------------------------------------
# Creation: constants on a device, nothing recorded

def _device(device):
    return _backend.default_device() if device is None else _backend.canonical_device(device)


def _xp(device):
    return _backend.backend_of(device).xp


def zeros(shape, dtype=_backend.float32, device=None):
    """A tensor of zeros."""
    device = _device(device)
    return Tensor(_xp(device).zeros(_shape(shape, "zeros"), dtype=_backend.as_dtype(dtype)), device)


def ones(shape, dtype=_backend.float32, device=None):
    """A tensor of ones."""
    device = _device(device)
    return Tensor(_xp(device).ones(_shape(shape, "ones"), dtype=_backend.as_dtype(dtype)), device)


def ones_like(input, dtype=None):
    """Ones of `input`'s shape, dtype (unless given) and device."""
    x = _tensor(input)
    if dtype is None:
        return _p.ones_like(x)
    return Tensor(_backend.xp_of(x._data).ones(x.shape, dtype=_backend.as_dtype(dtype)), x._device)


def fill(dims, value, dtype=None, device=None):
    """A tensor of shape `dims` filled with `value` (dtype inferred from it as `constant` does)."""
    value = constant(value, dtype=dtype, device=device)
    return Tensor(_backend.xp_of(value._data).full(_shape(dims, "fill"), value._data, dtype=value.dtype),
                  value.device)


def range(start, limit=None, delta=1, dtype=None, device=None):
    """start, start + delta, ... below `limit` (`range(n)` counts from 0). Dtype inferred from
    the arguments as `constant` does: ints give int32, any float gives float32."""
    if limit is None:
        start, limit = 0, start
    if delta == 0:
        raise ValueError("range: delta must not be 0")
    inferred = constant([start, limit, delta]).dtype if dtype is None else _backend.as_dtype(dtype)
    device = _device(device)
    return Tensor(_xp(device).arange(start, limit, delta, dtype=inferred), device)


def linspace(start, stop, num, dtype=_backend.float32, device=None):
    """`num` evenly spaced values from start to stop, both included."""
    device = _device(device)
    return Tensor(_xp(device).linspace(start, stop, operator.index(num), dtype=_backend.as_dtype(dtype)), device)


def eye(num_rows, dtype=_backend.float32, device=None):
    """The identity matrix of size num_rows."""
    device = _device(device)
    return Tensor(_xp(device).eye(operator.index(num_rows), dtype=_backend.as_dtype(dtype)), device)


def _squared_norm(t, axes=None):
    return reduce_sum(_p.multiply(t, t), axis=axes, keepdims=axes is not None)


def _positive(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{what}: clip_norm must be a positive number, got {value!r}")
    return float(value)


def clip_by_norm(t, clip_norm, axes=None):
    """t * clip_norm / max(norm(t), clip_norm): rescales `t` so that its L2 norm (over `axes`,
    all axes by default) is at most `clip_norm`. The gradient is finite at t = 0. An
    infinite or NaN norm makes the whole tensor (or slice along `axes`) NaN; TensorFlow
    computes inf / inf = NaN there and 0 for the finite entries."""
    clip_norm = _positive(clip_norm, "clip_by_norm")
    t = _tensor(t)
    norm = _norm(_squared_norm(t, None if axes is None else _axes(axes, t, "clip_by_norm")))
    return _p.multiply(t, _scale(norm, clip_norm))


def _norm(squared):
    """sqrt with a zero gradient at 0 (sqrt's own is infinite there; a norm of 0 never clips)."""
    zero = _p.equal(squared, 0)
    return where(zero, 0, _p.sqrt(where(zero, 1, squared)))


def _scale(norm, clip_norm):
    """clip_norm / max(norm, clip_norm), NaN where the norm is infinite or NaN, so that the
    clipped values are NaN there (as in TensorFlow) without an inf * 0 along the way."""
    return where(_p.less(norm, float("inf")), _p.divide(clip_norm, _p.maximum(norm, clip_norm)), float("nan"))


def clip_by_global_norm(t_list, clip_norm):
    """(clipped, global_norm): every tensor times clip_norm / max(global_norm, clip_norm),
    where global_norm = sqrt(sum of all squared entries). None entries stay None. A NaN or
    inf global norm makes every entry NaN, as in TensorFlow."""
    clip_norm = _positive(clip_norm, "clip_by_global_norm")
    tensors = [None if t is None else _tensor(t) for t in t_list]
    present = [t for t in tensors if t is not None]
    if not present:
        raise ValueError("clip_by_global_norm: t_list holds no tensor")
    total = _squared_norm(present[0])
    for t in present[1:]:
        total = _p.add(total, _p.cast(_squared_norm(t), dtype=total.dtype))
    global_norm = _norm(total)
    scale = _scale(global_norm, clip_norm)
    return [None if t is None else _p.multiply(t, _p.cast(scale, dtype=t.dtype)) for t in tensors], global_norm


# ---------------------------------------------------------------------------------------
# Tensor and Variable operators: the primitives themselves, bound as methods (one Python call
# less per op; x + 2.0 and 2.0 + x both give add(x, 2.0), as add and multiply commute). The
# reflected forms of the other ops swap their operands.

def _reflected(op):
    def method(self, other):
        return op(other, self)
    method.__name__ = f"__r{op.__name__}__"
    return method


def _value(self):
    """A Tensor snapshot of the Variable's current value (recorded as a read, so gradients flow)."""
    return identity(self)


for _name, _method in (("__add__", add), ("__radd__", add), ("__mul__", multiply), ("__rmul__", multiply),
                       ("__sub__", subtract), ("__rsub__", _reflected(subtract)), ("__truediv__", divide),
                       ("__rtruediv__", _reflected(divide)), ("__pow__", power), ("__rpow__", _reflected(power)),
                       ("__matmul__", matmul), ("__rmatmul__", _reflected(matmul)), ("__neg__", negative),
                       ("__abs__", abs), ("__lt__", less), ("__le__", less_equal), ("__gt__", greater),
                       ("__ge__", greater_equal), ("__eq__", equal), ("__ne__", not_equal),
                       ("__getitem__", getitem)):
    setattr(_ArrayValue, _name, _method)
Variable.value = _value


# The everyday reading methods of NumPy arrays and PyTorch tensors, as the ops above (recorded
# on tapes like them): t.T, t.sum(axis, keepdims), t.mean(axis, keepdims).

def _sum(self, axis=None, keepdims=False):
    """reduce_sum(self, axis, keepdims): the sum over `axis` (int, tuple or None for all)."""
    return reduce_sum(self, axis, keepdims)


def _mean(self, axis=None, keepdims=False):
    """reduce_mean(self, axis, keepdims): the mean over `axis` (int, tuple or None for all)."""
    return reduce_mean(self, axis, keepdims)


def _transposed(self):
    """transpose(self): the axes in reverse order, as NumPy's .T (a 0-d or 1-d tensor keeps its shape)."""
    return transpose(self)


_sum.__name__, _mean.__name__ = "sum", "mean"
_ArrayValue.sum = _sum
_ArrayValue.mean = _mean
_ArrayValue.T = property(_transposed)
