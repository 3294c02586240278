"""Random tensors (gg.random): drawn on the host from one generator, so that a seed gives
the same values on every device."""
from . import backend as _backend
from .ops import _device, _shape
from .recording import THREAD as _THREAD
from .tensor import Tensor


def set_seed(seed):
    """Reseed the generator used when no `seed=` is given."""
    _backend.seed_host_generator(seed)


def _random(distribution, shape, a, b, dtype, seed, device):
    if _THREAD.state.capture is not None:  # a replay would repeat the same draw
        _THREAD.state.capture.taint(f"gg.random.{distribution} draws new values on every call")
    device = _device(device)
    values = _backend.host_random(distribution, _shape(shape, distribution), a, b, _backend.as_dtype(dtype), seed)
    return Tensor(_backend.backend_of(device).asarray(values), device)


def normal(shape, mean=0.0, stddev=1.0, dtype=_backend.float32, seed=None, device=None):
    """Samples of N(mean, stddev^2); `seed` makes this call reproducible on its own."""
    return _random("normal", shape, mean, stddev, dtype, seed, device)


def uniform(shape, minval=0.0, maxval=1.0, dtype=_backend.float32, seed=None, device=None):
    """Samples of U[minval, maxval); `seed` makes this call reproducible on its own."""
    return _random("uniform", shape, minval, maxval, dtype, seed, device)
