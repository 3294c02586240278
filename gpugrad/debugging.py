"""gg.debugging: checks that stop training at the first NaN or infinity."""
from .backend import xp_of
from .ops import _tensor
from .recording import host_read as _host_read


def all_finite(x):
    """True when no element of `x` is NaN or infinite (reads the value on the host)."""
    _host_read("gg.debugging")
    data = _tensor(x)._data
    return data.dtype.kind not in "fc" or bool(xp_of(data).isfinite(data).all())


def check_numerics(tensor, message):
    """Return `tensor` unchanged, or raise FloatingPointError (`message`, then how many NaN
    and infinite elements it holds) when any element is NaN or infinite. TensorFlow raises
    InvalidArgumentError; FloatingPointError is Python's name for this failure."""
    t = _tensor(tensor)
    if all_finite(t):
        return tensor
    xp = xp_of(t._data)
    nans, infs = int(xp.isnan(t._data).sum()), int(xp.isinf(t._data).sum())
    raise FloatingPointError(f"{message}: {nans} NaN and {infs} infinite of {t._data.size} elements "
                             f"(shape {t.shape})")
