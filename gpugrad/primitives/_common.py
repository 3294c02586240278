"""Small helpers that the VJPs and forwards of every family share: the array module of a
binary op (`_xp2`), whether a VJP should compute an input's gradient (`_needs_grad`), and
constant zeros and ones on a Tensor's device (`zeros_like`, `ones_like`, the `_ones` cache)."""
import functools

from .. import dispatch as _dispatch
from ..backend import xp_of
from ..tensor import Tensor, Variable


def _xp2(x, y):
    """The array module of a binary op whose first input may be a weak Python scalar."""
    return xp_of(y) if type(x) in (int, float, bool) else xp_of(x)


def _needs_grad(a):
    """Whether a VJP should compute a gradient for input `a`: float Tensors and Variables,
    except constants that the backward pass in progress does not ask for."""
    kind = type(a)
    if kind is Tensor:
        return a._data.dtype.kind in "fc" and (a._node is not None or _dispatch.constant_needed(a))
    return kind is Variable and a._data.dtype.kind in "fc"


@functools.lru_cache(maxsize=64)
def _ones(xp, shape, dtype):
    """A shared array of ones (read-only: nothing may write to it)."""
    ones = xp.ones(shape, dtype=dtype)
    if hasattr(ones.flags, "writeable"):
        ones.flags.writeable = False
    return ones


def zeros_like(x):
    """Zeros of x's shape and dtype on x's device (a constant: nothing to record)."""
    return Tensor(xp_of(x._data).zeros(x._data.shape, dtype=x._data.dtype), x._device)


def ones_like(x):
    """Ones of x's shape and dtype on x's device (a constant: nothing to record). Small ones
    are shared from a cache: Tensors never write to their arrays."""
    data = x._data
    if data.size <= 4096:
        return Tensor(_ones(xp_of(data), data.shape, data.dtype), x._device)
    return Tensor(xp_of(data).ones(data.shape, dtype=data.dtype), x._device)
