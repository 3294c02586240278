"""Reductions: reduce_sum, reduce_mean (each with its backward op, a broadcast), reduce_max,
reduce_min and reduce_prod; and tile, whose VJP sums the copies."""
import math

from ..backend import xp_of
from ..dispatch import primitive
from ._common import _ones
from .arithmetic import cast, equal, where
from .shapes import broadcast_to, reshape


# ---------------------------------------------------------------------------------------
# Reductions: `axis` is None or a tuple of non-negative ints (ops.py normalizes it)

_KEPT_SHAPES = {}


def _kept_shape(shape, axis):
    """The keepdims shape of reducing `shape` over `axis` (a tuple), cached."""
    kept = _KEPT_SHAPES.get((shape, axis))
    if kept is None:
        kept = _KEPT_SHAPES[(shape, axis)] = tuple(1 if i in axis else s for i, s in enumerate(shape))
    return kept


def _keep(g, x, axis, keepdims):
    """g reshaped so that it broadcasts against x like the keepdims result of reducing x
    over `axis`."""
    if keepdims or axis is None:
        return g
    return reshape(g, shape=_kept_shape(x.shape, axis))


@primitive(linear=True, kind="reduction")
def reduce_sum(x, *, axis, keepdims):
    if axis == (0,) and x.ndim == 2 and x.dtype.kind == "f":
        # Summing a batch of rows through BLAS is several times faster than a strided reduce.
        return _ones(xp_of(x), (1, x.shape[0]) if keepdims else (x.shape[0],), x.dtype).dot(x)
    return x.sum(axis=axis, keepdims=keepdims, dtype=x.dtype if x.dtype.kind in "iu" else None)


@reduce_sum.defvjp
def reduce_sum_vjp(g, out, x, *, axis, keepdims):  # every summand gets g
    return (reduce_sum_backward(g, axis=axis, keepdims=keepdims, shape=x.shape),)


def _unreduce(dy, axis, keepdims, shape):
    """dy, the result of reducing an array of `shape` over `axis`, broadcast back to `shape`."""
    if not keepdims and axis is not None:
        dy = dy.reshape(_kept_shape(shape, axis))
    return dy if dy.shape == shape else broadcast_to.forward(dy, shape=shape)


@primitive(linear=True, kind="shape")
def reduce_sum_backward(dy, *, axis, keepdims, shape):
    return _unreduce(dy, axis, keepdims, shape)


@reduce_sum_backward.defvjp
def reduce_sum_backward_vjp(g, out, dy, *, axis, keepdims, shape):  # the adjoint of a broadcast is a sum
    return (reduce_sum(g, axis=axis, keepdims=keepdims),)


def _count(shape, axis):
    return math.prod(shape if axis is None else (shape[a] for a in axis))


@primitive(linear=True, kind="reduction")
def reduce_mean(x, *, axis, keepdims):
    return reduce_sum.forward(x, axis=axis, keepdims=keepdims) / _count(x.shape, axis)


@reduce_mean.defvjp
def reduce_mean_vjp(g, out, x, *, axis, keepdims):  # every element gets g / count
    return (reduce_mean_backward(g, axis=axis, keepdims=keepdims, shape=x.shape),)


# No scalar expression (its op.expression stays None): dy is reshaped to the reduction's kept
# shape before it broadcasts, which is not NumPy broadcasting of the input as given, and its
# divisor comes from the shape and axis tuples, which no C literal carries.
@primitive(linear=True, kind="elementwise")
def reduce_mean_backward(dy, *, axis, keepdims, shape):
    return _unreduce(dy / _count(shape, axis), axis, keepdims, shape)


@reduce_mean_backward.defvjp
def reduce_mean_backward_vjp(g, out, dy, *, axis, keepdims, shape):  # the adjoint of spreading g/n is a mean
    return (reduce_mean(g, axis=axis, keepdims=keepdims),)


def _extremum_vjp(g, out, x, axis, keepdims):  # g shared equally by the elements equal to the extremum
    mask = cast(equal(x, _keep(out, x, axis, keepdims)), dtype=x.dtype)
    share = mask / reduce_sum(mask, axis=axis, keepdims=True)
    return (_keep(g, x, axis, keepdims) * share,)


@primitive(kind="reduction")
def reduce_max(x, *, axis, keepdims):
    return x.max(axis=axis, keepdims=keepdims)


@reduce_max.defvjp
def reduce_max_vjp(g, out, x, *, axis, keepdims):
    return _extremum_vjp(g, out, x, axis, keepdims)


@primitive(kind="reduction")
def reduce_min(x, *, axis, keepdims):
    return x.min(axis=axis, keepdims=keepdims)


@reduce_min.defvjp
def reduce_min_vjp(g, out, x, *, axis, keepdims):
    return _extremum_vjp(g, out, x, axis, keepdims)


@primitive(kind="reduction")
def reduce_prod(x, *, axis, keepdims):
    return x.prod(axis=axis, keepdims=keepdims, dtype=x.dtype if x.dtype.kind in "iu" else None)


@reduce_prod.defvjp
def reduce_prod_vjp(g, out, x, *, axis, keepdims):  # d prod = prod of the other factors, zeros included
    # Zero factors are kept on the recorded path (as a sum that is 0 in value) so that the
    # second derivative is right where zeros are present.
    is_zero = equal(x, 0)
    nonzero = where(is_zero, 1, x)
    zeros = reduce_sum(cast(is_zero, dtype=x.dtype), axis=axis, keepdims=True)
    product = reduce_prod(nonzero, axis=axis, keepdims=True)
    zero_sum = reduce_sum(where(is_zero, x, 0), axis=axis, keepdims=True)
    others_if_no_zero = _keep(out, x, axis, keepdims) / nonzero
    others_if_one_zero = where(is_zero, product, zero_sum * product / nonzero)
    others_if_two_zeros = where(is_zero, (zero_sum - x) * product, 0)
    others = where(equal(zeros, 0), others_if_no_zero,
                   where(equal(zeros, 1), others_if_one_zero, where(equal(zeros, 2), others_if_two_zeros, 0)))
    return (_keep(g, x, axis, keepdims) * others,)


@primitive(linear=True, kind="shape")
def tile(x, *, multiples):
    return xp_of(x).tile(x, multiples)


@tile.defvjp
def tile_vjp(g, out, x, *, multiples):  # sum the copies: view g as (m0, s0, m1, s1, ...) and reduce the m axes
    split = tuple(n for m, s in zip(multiples, x.shape) for n in (m, s))
    return (reduce_sum(reshape(g, shape=split), axis=tuple(range(0, len(split), 2)), keepdims=False),)
