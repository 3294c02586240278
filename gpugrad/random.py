"""Random tensors (gg.random): drawn on the host from one generator, so that a seed gives
the same values on every device."""
from . import backend as _backend
from .ops import _device, _shape
from .tensor import Tensor


def set_seed(seed):
    """Reseed the generator used when no `seed=` is given."""
    _backend.backend_of("cpu").seed(seed)


def normal(shape, mean=0.0, stddev=1.0, dtype=_backend.float32, seed=None, device=None):
    """Samples of N(mean, stddev^2); `seed` makes this call reproducible on its own."""
    device = _device(device)
    values = _backend.backend_of("cpu").random_normal(_shape(shape, "normal"), mean, stddev,
                                                      _backend.as_dtype(dtype), seed)
    return Tensor(_backend.backend_of(device).asarray(values), device)


def uniform(shape, minval=0.0, maxval=1.0, dtype=_backend.float32, seed=None, device=None):
    """Samples of U[minval, maxval); `seed` makes this call reproducible on its own."""
    device = _device(device)
    values = _backend.backend_of("cpu").random_uniform(_shape(shape, "uniform"), minval, maxval,
                                                       _backend.as_dtype(dtype), seed)
    return Tensor(_backend.backend_of(device).asarray(values), device)
