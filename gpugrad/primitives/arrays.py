"""Array primitives beyond the basic shapes: argmax, argmin and argsort (indices, never
differentiated); gather and take_along_axis, which take their integer indices as an input
(so that a gg.function captures indices computed in the step, as a sort's), each with its
scatter-add backward; cumsum (a scan, whose VJP is the scan run the other way) and pad
(constant padding, whose VJP slices the padding off again).

ops.py normalizes every parameter before it gets here: axes are non-negative ints, paddings
a tuple of (before, after) pairs of non-negative ints, dtypes numpy dtypes, and it checks the
indices' range. sort, top_k, gather_nd and the reflecting pads are compositions in ops.py.
"""
from ..backend import xp_of
from ..dispatch import primitive
from ._common import _needs_grad
from .shapes import getitem


# ---------------------------------------------------------------------------------------
# Indices: no gradient

@primitive(differentiable=False, kind="reduction")
def argmax(x, *, axis, output_type):
    return xp_of(x).argmax(x, axis=axis).astype(output_type, copy=False)


@primitive(differentiable=False, kind="reduction")
def argmin(x, *, axis, output_type):
    return xp_of(x).argmin(x, axis=axis).astype(output_type, copy=False)


def _flip(x, axis):
    return x[(slice(None),) * axis + (slice(None, None, -1),)]


@primitive(differentiable=False)
def argsort(x, *, axis, descending, output_type):
    """The indices that sort x along `axis`, stable: equal values keep their order, in both
    directions (a descending sort is not an ascending one reversed, which would swap ties)."""
    xp = xp_of(x)
    if not descending:
        return xp.argsort(x, axis=axis, kind="stable").astype(output_type, copy=False)
    # Sort the reversed array ascending, stably, and read the result backwards: values come
    # out largest first, and ties first-come first-served; the indices count from the end.
    n = x.shape[axis]
    order = _flip(xp.argsort(_flip(x, axis), axis=axis, kind="stable"), axis)
    return ((n - 1) - order).astype(output_type, copy=False)


# ---------------------------------------------------------------------------------------
# Gathers: indices are the second input (integers: no gradient); repeated indices add up in
# the backward's scatter. The gathers are of kind "shape", as getitem with index arrays; their
# scatter-adds, as getitem_backward, are of none of the named kinds.

@primitive(kind="shape")
def gather(params, indices, *, axis):
    return xp_of(params).take(params, indices, axis=axis)


@gather.defvjp
def gather_vjp(g, out, params, indices, *, axis):  # scatter g back to the gathered slices
    return (gather_backward(g, indices, axis=axis, shape=params.shape) if _needs_grad(params) else None), None


@primitive(kind="opaque")
def gather_backward(dy, indices, *, axis, shape):
    dx = xp_of(dy).zeros(shape, dtype=dy.dtype)
    xp_of(dy).add.at(dx, (slice(None),) * axis + (indices,), dy)
    return dx


@gather_backward.defvjp
def gather_backward_vjp(g, out, dy, indices, *, axis, shape):  # the adjoint of a scatter-add is a gather
    return gather(g, indices, axis=axis), None


def _along_key(xp, indices, axis):
    """The index tuple of numpy's take_along_axis: `indices` on `axis`, and on every other
    axis an arange that broadcasts along the rest."""
    ndim = indices.ndim
    return tuple(indices if a == axis else
                 xp.arange(side).reshape(tuple(side if b == a else 1 for b in range(ndim)))
                 for a, side in enumerate(indices.shape))


@primitive(kind="shape")
def take_along_axis(x, indices, *, axis):
    return xp_of(x).take_along_axis(x, indices, axis=axis)


@take_along_axis.defvjp
def take_along_axis_vjp(g, out, x, indices, *, axis):  # scatter g back where each value came from
    return (take_along_axis_backward(g, indices, axis=axis, shape=x.shape) if _needs_grad(x) else None), None


@primitive(kind="opaque")
def take_along_axis_backward(dy, indices, *, axis, shape):
    xp = xp_of(dy)
    dx = xp.zeros(shape, dtype=dy.dtype)
    xp.add.at(dx, _along_key(xp, indices, axis), dy)
    return dx


@take_along_axis_backward.defvjp
def take_along_axis_backward_vjp(g, out, dy, indices, *, axis, shape):
    return take_along_axis(g, indices, axis=axis), None


# ---------------------------------------------------------------------------------------
# Scans

@primitive(linear=True)
def cumsum(x, *, axis, exclusive, reverse):
    xp = xp_of(x)
    if reverse:
        x = _flip(x, axis)
    out = xp.cumsum(x, axis=axis, dtype=x.dtype if x.dtype.kind in "iu" else None)
    if exclusive:  # shift by one along axis: the first sum is 0, the last is dropped
        shifted = xp.zeros_like(out)
        shifted[(slice(None),) * axis + (slice(1, None),)] = out[(slice(None),) * axis + (slice(None, -1),)]
        out = shifted
    return _flip(out, axis) if reverse else out


@cumsum.defvjp
def cumsum_vjp(g, out, x, *, axis, exclusive, reverse):  # the transpose of a triangular sum runs the other way
    return (cumsum(g, axis=axis, exclusive=exclusive, reverse=not reverse),)


# ---------------------------------------------------------------------------------------
# Padding

def _inner(paddings, shape):
    """The key of the original values inside the padded array."""
    return tuple(slice(before, before + side) for (before, _), side in zip(paddings, shape))


@primitive(linear=True, kind="shape")
def pad(x, *, paddings, constant_values):
    shape = tuple(side + before + after for side, (before, after) in zip(x.shape, paddings))
    out = xp_of(x).full(shape, constant_values, dtype=x.dtype)
    out[_inner(paddings, x.shape)] = x
    return out


@pad.defvjp
def pad_vjp(g, out, x, *, paddings, constant_values):  # the padding is constant: slice it off
    return (getitem(g, key=_inner(paddings, x.shape)),)
