"""The public ops under their TensorFlow names.

Primitives are re-exported as they are; the functions here normalize arguments (axes,
shapes, dtypes, index keys) and name the offending values in errors before calling one,
create new tensors on a device, or compose primitives (the clipping functions, reduce_any
and reduce_all); no array module is called directly. The end of the module binds the
Tensor operators to the primitives.
"""
import builtins
import math
import numbers
import operator

from . import backend as _backend
from . import primitives as _p
from .recording import THREAD as _THREAD
from .primitives import (  # noqa: F401  (re-exported)
    abs, add, clip_by_value, cos, divide, equal, erf, exp, greater, greater_equal, identity, less,
    less_equal, log, log1p, matmul, maximum, minimum, multiply, negative, not_equal, power,
    relu, sigmoid, sign, sin, softplus, sqrt, square, squared_difference, stop_gradient,
    subtract, tanh, zeros_like,
)
from .tensor import Tensor, Variable, _ArrayValue, constant

__all__ = [
    "abs", "add", "argmax", "argmin", "argsort", "broadcast_to", "cast", "clip_by_global_norm", "clip_by_norm", "clip_by_value", "concat", "cos", "cumsum", "divide", "einsum", "equal", "erf", "exp",
    "expand_dims", "eye", "fill", "gather", "gather_nd", "getitem", "greater", "greater_equal", "identity", "less", "less_equal",
    "linspace", "log", "log1p", "matmul", "maximum", "minimum", "multiply", "negative", "norm", "not_equal",
    "one_hot", "ones", "ones_like", "pad", "power", "range", "reduce_all", "reduce_any", "reduce_logsumexp", "reduce_max", "reduce_mean", "reduce_min", "reduce_prod",
    "reduce_sum", "relu", "reshape", "sigmoid", "sign", "sin", "softplus", "sort", "split", "sqrt", "square",
    "squared_difference", "squeeze", "stack", "stop_gradient", "subtract", "tanh", "tile", "top_k", "transpose",
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
# Everyday ops: indices, gathers, sorting, scans, padding, splitting, norms, einsum.
# argmax, argmin, argsort, cumsum, pad (constant) and einsum are primitives; the rest are
# compositions, whose gradients the tape takes from the primitives they call (gathers and
# sorts scatter-add through getitem's VJP).

def _integers(t, what, name):
    t = _tensor(t)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{what}: {name} must be integers, got dtype {t.dtype}")
    return t


def _index_dtype(dtype, what):
    dtype = _backend.as_dtype(dtype)
    if dtype not in (_backend.int32, _backend.int64):
        raise TypeError(f"{what}: output_type must be int32 or int64, got {dtype}")
    return dtype


def _arg_extremum(op, what, input, axis, output_type):
    x = _tensor(input)
    if x.ndim == 0:
        raise ValueError(f"{what}: the input needs rank 1 or more, got a scalar")
    axis = _axis(0 if axis is None else axis, x.ndim, x.shape, what)
    if x.shape[axis] == 0:
        raise ValueError(f"{what}: axis {axis} of shape {x.shape} is empty: there is no extremum to point at")
    return op(x, axis=axis, output_type=_index_dtype(output_type, what))


def argmax(input, axis=None, output_type=_backend.int64):
    """The index of the largest value along `axis` (0 when None, as in TensorFlow): the first
    one on ties; int64 by default (or `output_type` int32). No gradient."""
    return _arg_extremum(_p.argmax, "argmax", input, axis, output_type)


def argmin(input, axis=None, output_type=_backend.int64):
    """The index of the smallest value along `axis` (0 when None); the first one on ties. No
    gradient."""
    return _arg_extremum(_p.argmin, "argmin", input, axis, output_type)


def _direction(direction, what):
    if not isinstance(direction, str) or direction.upper() not in ("ASCENDING", "DESCENDING"):
        raise ValueError(f'{what}: direction must be "ASCENDING" or "DESCENDING", got {direction!r}')
    return direction.upper() == "DESCENDING"


def _sortable(values, axis, what):
    x = _tensor(values)
    if x.ndim == 0:
        raise ValueError(f"{what}: the input needs rank 1 or more, got a scalar")
    return x, _axis(axis, x.ndim, x.shape, what)


def argsort(values, axis=-1, direction="ASCENDING", stable=False):
    """The int32 indices that sort `values` along `axis`. The sort is always stable (equal
    values keep their order, in either direction), so `stable` is accepted and ignored."""
    x, axis = _sortable(values, axis, "argsort")
    return _p.argsort(x, axis=axis, descending=_direction(direction, "argsort"), output_type=_backend.int32)


def _along(x, indices, axis):
    """x's values picked by integer `indices` along `axis` (numpy's take_along_axis); the
    gradient scatters back, adding where an index repeats."""
    return _p.take_along_axis(x, indices, axis=axis)


def sort(values, axis=-1, direction="ASCENDING"):
    """`values` sorted along `axis`; the gradient goes back to each value's place."""
    x, axis = _sortable(values, axis, "sort")
    order = _p.argsort(x, axis=axis, descending=_direction(direction, "sort"), output_type=_backend.int64)
    return _along(x, order, axis)


class TopK(tuple):
    """(values, indices), as TensorFlow's TopKV2: also readable as .values and .indices."""

    __slots__ = ()

    def __new__(cls, values, indices):
        return tuple.__new__(cls, (values, indices))

    values = property(lambda self: self[0], doc="The k largest values along the last axis, largest first.")
    indices = property(lambda self: self[1], doc="Their int32 indices in the last axis.")


def top_k(input, k=1, sorted=True):
    """(values, indices) of the k largest entries along the last axis, largest first and the
    lower index first among equal values, as in TensorFlow. The values get gradients (to the
    entries they came from); the int32 indices do not. `sorted=False` gives the same order."""
    x, axis = _sortable(input, -1, "top_k")
    try:
        k = operator.index(k)
    except TypeError:
        raise TypeError(f"top_k: k must be an int, got {k!r}") from None
    if not 0 <= k <= x.shape[-1]:
        raise ValueError(f"top_k: k = {k} is out of range for a last axis of size {x.shape[-1]} (shape {x.shape})")
    order = _p.argsort(x, axis=axis, descending=True, output_type=_backend.int32)
    indices = order[..., :k]
    return TopK(_along(x, indices, axis), indices)


def _check_range(indices, side, what, where_, error=IndexError, noun="index"):
    """`error` unless every entry of `indices` lies in [0, side). Left out while a gg.function
    captures a step: it reads the indices on the host, which would make the function run
    eagerly on every call (and a replay would not check its new indices anyway)."""
    if indices.size == 0 or _THREAD.state.capture is not None:
        return
    low, high = int(reduce_min(indices)), int(reduce_max(indices))
    for bad in (low, high):
        if not 0 <= bad < side:
            raise error(f"{what}: {noun} {bad} is out of range for {where_} of size {side}")


def gather(params, indices, axis=None, batch_dims=0):
    """Slices of `params` along `axis` at integer `indices`, as tf.gather: the result has shape
    params.shape[:axis] + indices.shape[batch_dims:] + params.shape[axis + 1:]. The first
    `batch_dims` axes (negative counts from the end of indices' rank) are batch axes, equal in
    params and indices: each batch entry gathers from its own slice of params. `axis`
    defaults to batch_dims and must be at least batch_dims. The gradient goes to params only,
    summed where an index repeats. Indices outside [0, params.shape[axis]) raise IndexError
    (negative ones too, as in TensorFlow), but in a gg.function's compiled steps, which do not
    read them on the host: there a negative index counts from the end."""
    x = _tensor(params)
    indices = _integers(indices, "gather", "indices")
    if x.ndim == 0:
        raise ValueError("gather: params needs rank 1 or more, got a scalar")
    if isinstance(batch_dims, bool) or not isinstance(batch_dims, int) or not (
            -indices.ndim <= batch_dims <= indices.ndim):
        raise ValueError(f"gather: batch_dims must be an int in [-{indices.ndim}, {indices.ndim}] (the rank of "
                         f"indices), got {batch_dims!r}")
    if batch_dims < 0:
        batch_dims += indices.ndim
    axis = _axis(batch_dims if axis is None else axis, x.ndim, x.shape, "gather")
    if axis < batch_dims or x.shape[:batch_dims] != indices.shape[:batch_dims]:
        raise ValueError(f"gather: with batch_dims={batch_dims}, axis ({axis}) must be at least batch_dims and the "
                         f"first {batch_dims} axes of params {x.shape} and indices {indices.shape} must be equal")
    _check_range(indices, x.shape[axis], "gather", f"axis {axis} of params of shape {x.shape}")
    if batch_dims == 0:
        return _p.gather(x, indices, axis=axis)
    # Fold the batch axes into the gathered one: each batch entry b reads rows b * n + index
    # of params with the batch axes moved next to axis and merged with it.
    batch = x.shape[:batch_dims]
    count, n = math.prod(batch), x.shape[axis]
    inner = x.shape[batch_dims:axis]
    folded = reshape(x, (count,) + x.shape[batch_dims:])
    perm = tuple(builtins.range(1, axis - batch_dims + 1)) + (0,) + tuple(
        builtins.range(axis - batch_dims + 1, folded.ndim))
    folded = reshape(transpose(folded, perm), inner + (count * n,) + x.shape[axis + 1:])
    offsets = reshape(range(0, count * n, n, dtype=indices.dtype, device=indices.device),
                      (count,) + (1,) * (indices.ndim - batch_dims))
    rows = reshape(indices, (count,) + indices.shape[batch_dims:]) + offsets
    out = _p.gather(folded, rows, axis=len(inner))  # inner + (count,) + index shape + trailing
    k = len(inner)
    out = transpose(out, (k,) + tuple(builtins.range(k)) + tuple(builtins.range(k + 1, out.ndim)))
    return reshape(out, batch + out.shape[1:])


def gather_nd(params, indices, batch_dims=0):
    """params at the index tuples in the last axis of integer `indices`, as tf.gather_nd: the
    result has shape indices.shape[:-1] + params.shape[batch_dims + indices.shape[-1]:]. The
    first `batch_dims` axes are batch axes, equal in params and indices: each batch entry's
    tuples index its own slice of params. Gradients as gather's."""
    x = _tensor(params)
    indices = _integers(indices, "gather_nd", "indices")
    if isinstance(batch_dims, bool) or not isinstance(batch_dims, int) or not (
            0 <= batch_dims < builtins.max(indices.ndim, 1)):
        raise ValueError(f"gather_nd: batch_dims must be an int in [0, {builtins.max(indices.ndim - 1, 0)}] (less "
                         f"than the rank of indices, {indices.ndim}), got {batch_dims!r}")
    if batch_dims:
        if x.shape[:batch_dims] != indices.shape[:batch_dims]:
            raise ValueError(f"gather_nd: with batch_dims={batch_dims}, the first {batch_dims} axes of params "
                             f"{x.shape} and indices {indices.shape} must be equal")
        # Fold the batch axes into one, and prefix each tuple with its batch entry's position.
        batch, count = x.shape[:batch_dims], math.prod(x.shape[:batch_dims])
        folded = reshape(indices, (count,) + indices.shape[batch_dims:])
        entry = reshape(range(count, dtype=folded.dtype, device=folded.device), (count,) + (1,) * (folded.ndim - 1))
        tuples = concat([broadcast_to(entry, folded.shape[:-1] + (1,)), folded], axis=-1)
        out = gather_nd(reshape(x, (count,) + x.shape[batch_dims:]), tuples)
        return reshape(out, batch + out.shape[1:])
    if indices.ndim == 0 or indices.shape[-1] > x.ndim:
        raise ValueError(f"gather_nd: indices of shape {indices.shape} need rank 1 or more and a last axis no "
                         f"longer than the rank of params, of shape {x.shape}")
    depth, batch = indices.shape[-1], indices.shape[:-1]
    if depth == 0:  # every index tuple is empty: each picks all of params
        return broadcast_to(reshape(x, (1,) * len(batch) + x.shape), batch + x.shape)
    for i in builtins.range(depth):
        _check_range(indices[..., i], x.shape[i], "gather_nd", f"axis {i} of params of shape {x.shape}")
    # One gather from params viewed with its first `depth` axes as one, at the row-major
    # position of each index tuple.
    strides, stride = [], 1
    for side in reversed(x.shape[:depth]):
        strides.insert(0, stride)
        stride *= side
    position = reduce_sum(_p.multiply(_p.cast(indices, dtype=_backend.int64),
                                      constant(strides, dtype=_backend.int64, device=x.device)), axis=-1)
    return _p.gather(_p.reshape(x, shape=(stride,) + x.shape[depth:]), position, axis=0)


def one_hot(indices, depth, on_value=None, off_value=None, axis=None, dtype=None):
    """on_value where the new axis `axis` (-1, the last, by default) counts up to each index,
    off_value elsewhere: shape indices.shape with `depth` inserted at `axis`. Indices outside
    [0, depth) give a row of off_value, as in TensorFlow. on_value and off_value default to 1
    and 0, dtype to on_value's (or off_value's) dtype when one is a tensor, else float32."""
    indices = _integers(indices, "one_hot", "indices")
    try:
        depth = operator.index(depth)
    except TypeError:
        raise TypeError(f"one_hot: depth must be an int, got {depth!r}") from None
    if depth < 0:
        raise ValueError(f"one_hot: depth must not be negative, got {depth}")
    if dtype is None:
        given = [v for v in (on_value, off_value) if type(v) is Tensor or type(v) is Variable]
        dtype = given[0].dtype if given else _backend.float32
    dtype = _backend.as_dtype(dtype)
    rank = indices.ndim + 1
    axis = _axis(-1 if axis is None else axis, rank, indices.shape + (depth,), "one_hot")
    positions = _p.reshape(range(depth, dtype=indices.dtype, device=indices.device),
                           shape=tuple(depth if a == axis else 1 for a in builtins.range(rank)))
    hit = _p.equal(_p.expand_dims(indices, axis=axis), positions)
    on, off = (cast(v if type(v) is Tensor or type(v) is Variable else constant(default if v is None else v,
                                                                                device=indices.device), dtype)
               for v, default in ((on_value, 1), (off_value, 0)))
    return _p.where(hit, on, off)


def reduce_logsumexp(input_tensor, axis=None, keepdims=False):
    """log(sum(exp(x))) over `axis`, computed as m + log(sum(exp(x - m))) with m the maximum
    along axis (0 where that is not finite), so that it neither overflows nor underflows; the
    gradient is softmax(x) along axis."""
    x = _tensor(input_tensor)
    axes = _axes(axis, x, "reduce_logsumexp")
    if x.size == 0:  # nothing to shift by; a sum of nothing is 0
        return _log_or_minus_inf(reduce_sum(_p.exp(x), axes, keepdims))
    top = reduce_max(x, axes, keepdims=True)
    shift = _p.stop_gradient(where(_p.less(abs(top), float("inf")), top, _p.zeros_like(top)))
    out = _p.add(_log_or_minus_inf(reduce_sum(_p.exp(_p.subtract(x, shift)), axes, keepdims=True)), shift)
    if keepdims:
        return out
    return _p.reshape(out, shape=() if axes is None else tuple(s for i, s in enumerate(x.shape) if i not in axes))


def _log_or_minus_inf(total):
    """log(total), -inf where total is 0 (all of a slice's entries -inf), without NumPy's
    divide-by-zero warning; the gradient there is 0."""
    empty = _p.equal(total, 0)
    return where(empty, float("-inf"), _p.log(where(empty, 1, total)))


_SUBSCRIPTS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _einsum_equation(equation, operands):
    """`equation` in the explicit form the primitive takes: "->" and an output, no spaces,
    ellipses spelled out in unused letters; ValueError naming what does not fit."""
    if not isinstance(equation, str):
        raise TypeError(f"einsum: the equation must be a str, got {type(equation).__name__}")
    text = equation.replace(" ", "")
    if text.count("->") > 1:
        raise ValueError(f"einsum: equation {equation!r} has more than one '->'")
    inputs, arrow, output = text.partition("->")
    inputs = inputs.split(",")
    if len(inputs) != len(operands):
        raise ValueError(f"einsum: equation {equation!r} names {len(inputs)} operand(s), got {len(operands)}")
    for part in inputs + ([output] if arrow else []):
        letters = part.replace("...", "")
        bad = [c for c in letters if c not in _SUBSCRIPTS]
        if bad or part.count("...") > 1:
            raise ValueError(f"einsum: equation {equation!r}: {part!r} is not a subscript list (letters and at "
                             f"most one '...')")
    # Spell each ellipsis out in letters the equation does not use, aligned from the right.
    free = [c for c in _SUBSCRIPTS if c not in text]
    widths = []
    for part, x in zip(inputs, operands):
        named = len(part.replace("...", ""))
        if ("..." in part and named > x.ndim) or ("..." not in part and named != x.ndim):
            raise ValueError(f"einsum: equation {equation!r}: subscripts {part!r} do not fit an operand of shape "
                             f"{x.shape}")
        widths.append(x.ndim - named if "..." in part else 0)
    width = builtins.max(widths, default=0)
    ellipsis = "".join(free[:width])
    spelled = [part.replace("...", ellipsis[width - w:]) for part, w in zip(inputs, widths)]
    if arrow:
        if "..." not in output and width and builtins.any(widths):
            raise ValueError(f"einsum: equation {equation!r}: the output needs '...' for the axes the inputs' "
                             f"'...' stand for")
        output = output.replace("...", ellipsis)
    else:  # implicit form: the ellipsis axes, then the letters used once, in alphabetical order
        counts = {}
        for part in spelled:
            for c in part:
                counts[c] = counts.get(c, 0) + 1
        output = ellipsis + "".join(builtins.sorted(c for c, n in counts.items() if n == 1 and c not in ellipsis))
    sizes = {}
    for part, x in zip(spelled, operands):
        if len(set(part)) != len(part):
            raise ValueError(f"einsum: equation {equation!r}: a subscript repeats within operand {part!r} "
                             f"(diagonals and traces are not supported)")
        for c, side in zip(part, x.shape):
            if side != 1 and sizes.setdefault(c, side) != side:
                raise ValueError(f"einsum: equation {equation!r}: subscript {c!r} has sizes {sizes[c]} and {side} "
                                 f"(operand shapes {', '.join(str(o.shape) for o in operands)})")
    used = set("".join(spelled))
    missing = [c for c in output if c not in used]
    if missing or len(set(output)) != len(output):
        raise ValueError(f"einsum: equation {equation!r}: the output {output!r} names a subscript "
                         f"{'no input has' if missing else 'twice'}")
    return ",".join(spelled) + "->" + output


def einsum(equation, *inputs):
    """Einstein summation, as tf.einsum: "ij,jk->ik" (matmul), "bi,bj->ij" (a batch of outer
    products summed), "i,i->" (a dot product), "...ij->...ji" (ellipses broadcast), and the
    implicit form without "->" (output subscripts: those used once, alphabetically).
    Subscripts repeated within one operand (diagonals, traces) are not supported. Gradients
    for every float operand, each an einsum of the output's gradient with the others."""
    if not inputs:
        raise ValueError("einsum needs at least one operand")
    operands = [_tensor(x) for x in inputs]
    return _p.einsum(*operands, equation=_einsum_equation(equation, operands))


def _paddings(paddings, x, what):
    if type(paddings) is Tensor or type(paddings) is Variable:
        paddings = paddings.numpy().tolist()
    try:
        pairs = tuple((operator.index(before), operator.index(after)) for before, after in paddings)
    except (TypeError, ValueError):
        raise TypeError(f"{what}: paddings must be one [before, after] pair of ints per axis, got "
                        f"{paddings!r}") from None
    if len(pairs) != x.ndim:
        raise ValueError(f"{what}: {len(pairs)} padding pair(s) for a tensor of rank {x.ndim} (shape {x.shape})")
    if builtins.any(n < 0 for pair in pairs for n in pair):
        raise ValueError(f"{what}: paddings must not be negative, got {pairs}")
    return pairs


def pad(tensor, paddings, mode="CONSTANT", constant_values=0):
    """`tensor` with paddings[i] = [before, after] entries added ahead of and behind axis i.

    mode "CONSTANT" fills them with `constant_values` (a number; it gets no gradient);
    "REFLECT" mirrors the values without repeating the edge (before, after < the axis' size);
    "SYMMETRIC" mirrors them edge included (before, after <= the axis' size)."""
    x = _tensor(tensor)
    pairs = _paddings(paddings, x, "pad")
    mode = mode.upper() if isinstance(mode, str) else mode
    if mode == "CONSTANT":
        if type(constant_values) is Tensor or type(constant_values) is Variable:
            constant_values = constant_values.numpy().item()
        return _p.pad(x, paddings=pairs, constant_values=constant_values)
    if mode not in ("REFLECT", "SYMMETRIC"):
        raise ValueError(f'pad: mode must be "CONSTANT", "REFLECT" or "SYMMETRIC", got {mode!r}')
    edge = 1 if mode == "REFLECT" else 0
    for axis, (before, after) in enumerate(pairs):
        side = x.shape[axis]
        if builtins.max(before, after) > side - edge:
            raise ValueError(f"pad: paddings {(before, after)} of axis {axis} are too wide for mode {mode} and "
                             f"size {side} (at most {side - edge})")
        if not before and not after:
            continue
        lead = (slice(None),) * axis
        parts = [x]
        if before:  # entries edge + before - 1 down to edge
            parts.insert(0, getitem(x, lead + (slice(edge + before - 1, edge - 1 if edge else None, -1),)))
        if after:  # entries side - 1 - edge down to side - edge - after
            stop = side - 1 - edge - after
            parts.append(getitem(x, lead + (slice(side - 1 - edge, stop if stop >= 0 else None, -1),)))
        x = concat(parts, axis)
    return x


def split(value, num_or_size_splits, axis=0, num=None):
    """`value` cut along `axis` into a list of tensors: an int n gives n equal parts (the
    axis' size must divide by it); a list gives parts of those sizes (one may be -1: the
    rest). Each part's gradient goes back to its slice."""
    x = _tensor(value)
    if x.ndim == 0:
        raise ValueError("split: the input needs rank 1 or more, got a scalar")
    axis = _axis(axis, x.ndim, x.shape, "split")
    side = x.shape[axis]
    if type(num_or_size_splits) is Tensor or type(num_or_size_splits) is Variable:
        num_or_size_splits = num_or_size_splits.numpy().tolist()
    if isinstance(num_or_size_splits, numbers.Integral):
        n = int(num_or_size_splits)
        if n <= 0 or side % n:
            raise ValueError(f"split: cannot split axis {axis} of size {side} (shape {x.shape}) into {n} equal parts")
        sizes = [side // n] * n
    else:
        sizes = list(_shape(num_or_size_splits, "split"))
        if sizes.count(-1) > 1 or builtins.any(s < -1 for s in sizes):
            raise ValueError(f"split: sizes {sizes} may hold one -1 and no other negative size")
        if -1 in sizes:
            rest = side - (sum(sizes) + 1)
            if rest < 0:
                raise ValueError(f"split: sizes {sizes} add up to more than {side}, axis {axis}'s size")
            sizes[sizes.index(-1)] = rest
        if sum(sizes) != side:
            raise ValueError(f"split: sizes {sizes} add up to {sum(sizes)}, not {side}, the size of axis {axis} "
                             f"(shape {x.shape})")
    if num is not None and num != len(sizes):
        raise ValueError(f"split: num = {num} but the split gives {len(sizes)} parts")
    parts, start = [], 0
    for size in sizes:
        parts.append(getitem(x, (slice(None),) * axis + (slice(start, start + size),)))
        start += size
    return parts


def _norm_axes(axis, x):
    """None, one normalized axis (a 1-tuple), or an ordered pair of distinct axes."""
    if axis is None:
        return None
    if type(axis) is Tensor or type(axis) is Variable:
        axis = axis.numpy().tolist()
    items = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    if len(items) not in (1, 2):
        raise ValueError(f"norm: axis must be None, an int or a pair of ints, got {axis!r}")
    axes = tuple(_axis(a, x.ndim, x.shape, "norm") for a in items)
    if len(set(axes)) != len(axes):
        raise ValueError(f"norm: the two axes of a matrix norm must differ, got {axis!r}")
    return axes


def norm(tensor, ord="euclidean", axis=None, keepdims=None):
    """The vector or matrix norm of `tensor`.

    axis None (every entry, as one vector) or an int: vector norms, ord "euclidean" (or 2),
    1, inf, or any positive p for (sum |x|^p)^(1/p). axis a pair (rows, columns): matrix norms,
    ord "euclidean" or "fro" (Frobenius), 1 (the largest column sum of |x|) or inf (the
    largest row sum). The spectral norm (ord 2 on a pair) is not supported. The euclidean
    norm's gradient is 0 where the norm is 0 (TensorFlow's is NaN there)."""
    x = _tensor(tensor)
    axes = _norm_axes(axis, x)
    keepdims = bool(keepdims)
    matrix = axes is not None and len(axes) == 2
    numeric = isinstance(ord, numbers.Real) and not isinstance(ord, bool)
    if ord in ("euclidean", "fro") or (numeric and ord == 2 and not matrix):
        if ord == "fro" and not matrix:
            raise ValueError("norm: ord 'fro' is a matrix norm: give axis as a pair of axes")
        return _norm(reduce_sum(_p.multiply(x, x), axes, keepdims))
    if not numeric or not ord > 0:
        raise ValueError(f"norm: ord must be 'euclidean', 'fro', 1, 2, inf or a positive number, got {ord!r}")
    magnitude = abs(x)
    if matrix:
        if ord not in (1, float("inf")):
            raise ValueError(f"norm: ord {ord!r} is not supported for a matrix norm (axis {axis!r}); use "
                             f"'euclidean', 'fro', 1 or inf")
        inner, outer = axes if ord == 1 else axes[::-1]  # 1: sum down each column; inf: along each row
        return reduce_max(reduce_sum(magnitude, inner, keepdims=True), (inner, outer), keepdims)
    if ord == float("inf"):
        return reduce_max(magnitude, axes, keepdims)
    if ord == 1:
        return reduce_sum(magnitude, axes, keepdims)
    return _p.power(reduce_sum(_p.power(magnitude, float(ord)), axes, keepdims), 1.0 / ord)


def cumsum(x, axis=0, exclusive=False, reverse=False):
    """Running sums along `axis`: exclusive leaves each entry out of its own sum (starting
    from 0), reverse sums from the end. Integer tensors keep their dtype. The gradient is
    the running sum of the output's gradient in the other direction."""
    x = _tensor(x)
    if x.ndim == 0:
        raise ValueError("cumsum: the input needs rank 1 or more, got a scalar")
    return _p.cumsum(x, axis=_axis(axis, x.ndim, x.shape, "cumsum"), exclusive=bool(exclusive),
                     reverse=bool(reverse))


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
