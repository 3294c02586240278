"""Array primitives beyond the basic shapes: argmax, argmin and argsort (indices, never
differentiated), cumsum (a scan, whose VJP is the scan run the other way) and pad (constant
padding, whose VJP slices the padding off again).

ops.py normalizes every parameter before it gets here: axes are non-negative ints, paddings
a tuple of (before, after) pairs of non-negative ints, dtypes numpy dtypes. sort, top_k,
gather and the reflecting pads are compositions in ops.py (argsort and getitem), so their
gradients come from getitem's scatter-add.
"""
from ..backend import xp_of
from ..dispatch import primitive
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
