"""Special functions: erf, the error function (what the exact GELU needs).

erf is elementwise but declares no scalar expression yet (neither NumPy nor the helpers of
cuda_kernels/expressions.cuh have an erf; tests/test_expressions.py lists it among the
exceptions), so a step compiler leaves it unfused, a call of its forward.
"""
import math

from ..backend import backend_of, xp_of
from ..dispatch import primitive
from .elementwise_math import exp

_TWO_OVER_ROOT_PI = 2.0 / math.sqrt(math.pi)
_numpy = backend_of("cpu").xp
# NumPy has no erf ufunc: the host forward calls the C library's erf (through math.erf,
# within an ulp of float64) element by element, a Python call each.
_host_erf = _numpy.frompyfunc(math.erf, 1, 1)


@primitive(kind="elementwise")
def erf(x):
    """2/sqrt(pi) * integral of exp(-t^2) from 0 to x. Floats keep their dtype (float16 and
    float32 computed in float64 and rounded once); integers and bools give float64."""
    xp = xp_of(x)
    dtype = x.dtype if x.dtype.kind == "f" else xp.dtype("float64")
    wide = x.astype("float64")
    if xp is _numpy:
        out = xp.asarray(_host_erf(wide), dtype="float64") if wide.size else wide.copy()
    else:
        from cupyx.scipy.special import erf as device_erf  # CuPy's elementwise kernel
        out = device_erf(wide)
    return xp.asarray(out, dtype=dtype)


@erf.defvjp
def erf_vjp(g, out, x):  # d erf(x) = 2/sqrt(pi) exp(-x^2) dx
    return (g * (_TWO_OVER_ROOT_PI * exp(-(x * x))),)
