"""Shape primitives: broadcast_to, reshape, transpose, expand_dims, squeeze, concat, stack,
getitem and getitem_backward. tile lives in reductions.py, as its VJP is a reduce_sum."""
from ..backend import xp_of
from ..dispatch import primitive


# ---------------------------------------------------------------------------------------
# Shapes, indexing, joining

@primitive(linear=True, kind="shape")
def broadcast_to(x, *, shape):
    out = xp_of(x).empty(shape, dtype=x.dtype)  # a writable copy: cheaper than a broadcast view on the CPU
    out[...] = x
    return out


@broadcast_to.defvjp
def broadcast_to_vjp(g, out, x, *, shape):  # the tape sums g back to x's shape
    return (g,)


@primitive(linear=True, kind="shape")
def reshape(x, *, shape):
    return x.reshape(shape)


@reshape.defvjp
def reshape_vjp(g, out, x, *, shape):
    return (reshape(g, shape=x.shape),)


@primitive(linear=True, kind="shape")
def transpose(x, *, perm):
    return x.transpose(perm)


@transpose.defvjp
def transpose_vjp(g, out, x, *, perm):  # transpose back with the inverse permutation
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return (transpose(g, perm=tuple(inverse)),)


@primitive(linear=True, kind="shape")
def expand_dims(x, *, axis):
    return xp_of(x).expand_dims(x, axis)


@expand_dims.defvjp
def expand_dims_vjp(g, out, x, *, axis):
    return (reshape(g, shape=x.shape),)


@primitive(linear=True, kind="shape")
def squeeze(x, *, axis):
    return xp_of(x).squeeze(x, axis)


@squeeze.defvjp
def squeeze_vjp(g, out, x, *, axis):
    return (reshape(g, shape=x.shape),)


@primitive(linear=True, kind="shape")
def concat(*values, axis):
    return xp_of(values[0]).concatenate(values, axis)


@concat.defvjp
def concat_vjp(g, out, *values, axis):  # each input gets its slice of g
    grads, start = [], 0
    for v in values:
        stop = start + v.shape[axis]
        grads.append(getitem(g, key=(slice(None),) * axis + (slice(start, stop),)))
        start = stop
    return tuple(grads)


@primitive(linear=True, kind="shape")
def stack(*values, axis):
    return xp_of(values[0]).stack(values, axis)


@stack.defvjp
def stack_vjp(g, out, *values, axis):  # each input gets its index along the new axis
    return tuple(getitem(g, key=(slice(None),) * axis + (i,)) for i in range(len(values)))


def _has_array_index(key):
    return any(not isinstance(k, (int, slice)) and k is not None and k is not Ellipsis for k in key)


@primitive(linear=True, kind="shape")
def getitem(x, *, key):
    return x[key]


@getitem.defvjp
def getitem_vjp(g, out, x, *, key):  # scatter g back; repeated indices accumulate
    return (getitem_backward(g, key=key, shape=x.shape),)


@primitive(linear=True)
def getitem_backward(dy, *, key, shape):
    xp = xp_of(dy)
    dx = xp.zeros(shape, dtype=dy.dtype)
    if _has_array_index(key):
        xp.add.at(dx, key, dy)
    else:
        dx[key] = dy
    return dx


@getitem_backward.defvjp
def getitem_backward_vjp(g, out, dy, *, key, shape):
    return (getitem(g, key=key),)
