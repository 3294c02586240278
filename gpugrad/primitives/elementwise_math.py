"""Elementwise math: power, sqrt, exp, log, log1p, sin, cos, and the activations tanh,
sigmoid, relu and softplus with their fused backward ops (tanh_, sigmoid_, relu_backward),
which follow the rounding rule of rounding.py.

Each declares its scalar expression (op.defexpr, see dispatch.Expression) after its forward:
the C form calls the helpers of cuda_kernels/expressions.cuh, the NumPy form fills `out`,
sharing the forward's computation where the rounding rule makes that more than one ufunc."""
import math

from ..backend import xp_of
from ..dispatch import primitive
from ..tensor import Tensor, Variable
from ._common import _needs_grad, zeros_like
from .arithmetic import negative, where
from .rounding import _evaluate, _evaluate_into, _float_dtype, _result_dtype


# ---------------------------------------------------------------------------------------
# Elementwise functions

@primitive(kind="elementwise")
def power(x, y):
    return x ** y


# NumPy's power loop takes fast paths for a uniform exponent of -1, 0, 0.5, 1 or 2 (1/x, 1,
# sqrt, x, x*x), and gg_power takes them by value; an array of exponents goes to pow in NumPy
# whatever its values (there sqrt(-0) = -0 and pow(-0, 0.5) = +0 differ, as do sqrt(-inf) and
# pow(-inf, 0.5)). The math library's pow and NumPy's SIMD one may differ by an ulp or two.
power.defexpr("gg_power(gg_cast<{T}>({0}), gg_cast<{T}>({1}))", lambda xp, out, x, y: xp.power(x, y, out=out))


@power.defvjp
def power_vjp(g, out, x, y):  # d(x^y) = y x^(y-1) dx + x^y log(x) dy  (log taken as 0 where x <= 0)
    gx = gy = None
    if _needs_grad(x):
        gx = zeros_like(x) if type(y) in (int, float) and y == 0 else g * y * x ** (y - 1)
    if _needs_grad(y):
        if type(x) is Tensor or type(x) is Variable:
            log_x = log(where(x > 0, x, 1))
        else:
            log_x = math.log(x) if x > 0 else 0.0
        gy = g * out * log_x
    return gx, gy


@primitive(kind="elementwise")
def sqrt(x):
    return xp_of(x).sqrt(x)


sqrt.defexpr("gg_sqrt(gg_cast<{T}>({0}))", lambda xp, out, x: xp.sqrt(x, out=out))


@sqrt.defvjp
def sqrt_vjp(g, out, x):  # d sqrt(x) = dx / (2 sqrt(x))
    return (g / (2 * out),)


@primitive(kind="elementwise")
def exp(x):
    return xp_of(x).exp(x)


exp.defexpr("gg_exp(gg_cast<{T}>({0}))", lambda xp, out, x: xp.exp(x, out=out))


@exp.defvjp
def exp_vjp(g, out, x):  # d e^x = e^x dx
    return (g * out,)


@primitive(kind="elementwise")
def log(x):
    return xp_of(x).log(x)


log.defexpr("gg_log(gg_cast<{T}>({0}))", lambda xp, out, x: xp.log(x, out=out))


@log.defvjp
def log_vjp(g, out, x):  # d log x = dx / x
    return (g / x,)


@primitive(kind="elementwise")
def log1p(x):
    return xp_of(x).log1p(x)


log1p.defexpr("gg_log1p(gg_cast<{T}>({0}))", lambda xp, out, x: xp.log1p(x, out=out))


@log1p.defvjp
def log1p_vjp(g, out, x):  # d log(1+x) = dx / (1+x)
    return (g / (1 + x),)


@primitive(kind="elementwise")
def sin(x):
    return xp_of(x).sin(x)


sin.defexpr("gg_sin(gg_cast<{T}>({0}))", lambda xp, out, x: xp.sin(x, out=out))


@sin.defvjp
def sin_vjp(g, out, x):  # d sin x = cos x dx
    return (g * cos(x),)


@primitive(kind="elementwise")
def cos(x):
    return xp_of(x).cos(x)


cos.defexpr("gg_cos(gg_cast<{T}>({0}))", lambda xp, out, x: xp.cos(x, out=out))


@cos.defvjp
def cos_vjp(g, out, x):  # d cos x = -sin x dx
    return (negative(g) * sin(x),)


@primitive(kind="elementwise")
def tanh(x):
    return _evaluate(_tanh_in_float64, _float_dtype(x), (x,), buffers=1)


tanh.defexpr("gg_tanh_rounded<{T}>({0})",
             lambda xp, out, x: _evaluate_into(out, _tanh_in_float64, (x,), buffers=1))


def _tanh_in_float64(out, t, x):
    t[...] = x
    return xp_of(t).tanh(t, out=t)


@tanh.defvjp
def tanh_vjp(g, out, x):  # d tanh x = (1 - tanh^2 x) dx
    return (tanh_backward(g, out),)


@primitive(kind="elementwise")
def tanh_backward(dy, y):
    return _evaluate(_tanh_backward_in_float64, _result_dtype(dy, y), (dy, y), buffers=2)


tanh_backward.defexpr("gg_tanh_backward<{T}>({0}, {1})",
                      lambda xp, out, dy, y: _evaluate_into(out, _tanh_backward_in_float64, (dy, y), buffers=2))


def _tanh_backward_in_float64(out, t, u, dy, y):
    # (1 - y) (1 + y), then times dy: 1 - y y would cancel catastrophically as |y| nears 1, where
    # 1 - |y| is exact. From float32 or float16 inputs only the last product rounds.
    xp = xp_of(t)
    u[...] = y
    xp.subtract(1, u, out=t)
    u += 1
    t *= u
    u[...] = dy
    return xp.multiply(u, t, out=t)


@tanh_backward.defvjp
def tanh_backward_vjp(g, out, dy, y):  # d[dy (1-y^2)] = (1-y^2) d(dy) - 2 dy y dy'
    return g * (1 - y * y), -2 * g * dy * y


_LOG_TINY64 = math.log(2.0 ** -1022)  # -708.3964: float64's sigmoid and softplus flush below it


def _saturation(dtype):
    """(bound, flushed_below) of sigmoid and softplus: they clip x to [-bound, 40] and give 0
    where x < flushed_below. For float64 results the bound is just past ln(tiny), and x below
    it never reaches exp, whose result would be subnormal: NumPy's slowest path. Narrower
    results round 1e-304 to 0, so a bound inside exp's fast range does it all."""
    return (708.4, _LOG_TINY64) if dtype.itemsize >= 8 else (700.0, None)


@primitive(kind="elementwise")
def sigmoid(x):
    dtype = _float_dtype(x)
    return _evaluate(_sigmoid_in_float64, dtype, (x, *_saturation(dtype)), buffers=2, nonnegative=True)


sigmoid.defexpr("gg_sigmoid<{T}>({0})", lambda xp, out, x: _evaluate_into(
    out, _sigmoid_in_float64, (x, *_saturation(out.dtype)), buffers=2, nonnegative=True))


def _clipped(out, t, x, bound, flushed_below):
    """v = x clipped (in out, exactly) to [-bound, 40], into the float64 work array t, and
    the mask of x >= flushed_below (None when there is no such bound), with t zeroed outside
    it: sigmoid's and softplus's common start."""
    xp = xp_of(t)
    xp.minimum(xp.maximum(x, -bound, out=out), 40, out=out)  # x.clip's result, without its Python wrapper
    t[...] = out
    if flushed_below is None:
        return None
    keep = t >= flushed_below
    t *= keep
    return keep


def _sigmoid_in_float64(out, t, u, x, bound, flushed_below):
    # e^v / (1 + e^v), v = x clipped to [-bound, 40]: past 40 it rounds to 1 in float64.
    # Where x < flushed_below, v is 0 and the result 0 * e^0 / (1 + e^0).
    xp = xp_of(t)
    keep = _clipped(out, t, x, bound, flushed_below)
    xp.exp(t, out=t)
    xp.add(t, 1, out=u)
    if keep is not None:
        t *= keep
    return xp.divide(t, u, out=t)


@sigmoid.defvjp
def sigmoid_vjp(g, out, x):  # d sigmoid(x) = s (1 - s) dx
    return (sigmoid_backward(g, out),)


@primitive(kind="elementwise")
def sigmoid_backward(dy, y):
    return _evaluate(_sigmoid_backward_in_float64, _result_dtype(dy, y), (dy, y), buffers=2)


sigmoid_backward.defexpr("gg_sigmoid_backward<{T}>({0}, {1})",
                         lambda xp, out, dy, y: _evaluate_into(out, _sigmoid_backward_in_float64, (dy, y), buffers=2))


def _sigmoid_backward_in_float64(out, t, u, dy, y):
    # (1 - y) y, then times dy: from float32 or float16 inputs only that last product rounds.
    xp = xp_of(t)
    u[...] = y
    xp.subtract(1, u, out=t)
    t *= u
    u[...] = dy
    return xp.multiply(u, t, out=t)


@sigmoid_backward.defvjp
def sigmoid_backward_vjp(g, out, dy, y):  # d[dy y (1-y)] = y (1-y) d(dy) + dy (1-2y) dy'
    return g * y * (1 - y), g * dy * (1 - 2 * y)


@primitive(kind="elementwise")
def relu(x):
    return _evaluate(_relu_into, _result_dtype(x, 0), (x,), nonnegative=True)


def _relu_into(out, x):
    return xp_of(out).maximum(x, 0, out=out)


relu.defexpr("gg_relu(gg_cast<{T}>({0}))",
             lambda xp, out, x: _evaluate_into(out, _relu_into, (x,), nonnegative=True))


@relu.defvjp
def relu_vjp(g, out, x):  # d relu(x) = [x > 0] dx
    return (relu_backward(g, out),)


@primitive(kind="elementwise")
def relu_backward(dy, y):
    return _evaluate(_relu_backward_into, _result_dtype(dy, y), (dy, y))


def _relu_backward_into(out, dy, y):
    return xp_of(out).multiply(dy, y > 0, out=out)


relu_backward.defexpr("gg_relu_backward(gg_cast<{T}>({0}), {1})",
                      lambda xp, out, dy, y: _evaluate_into(out, _relu_backward_into, (dy, y)))


@relu_backward.defvjp
def relu_backward_vjp(g, out, dy, y):  # d[dy [y>0]] = [y>0] d(dy); the mask has zero derivative
    return relu_backward(g, y), zeros_like(y)


@primitive(kind="elementwise")
def softplus(x):
    dtype = _float_dtype(x)
    return _evaluate(_softplus_in_float64, dtype, (x, *_saturation(dtype)), buffers=2, nonnegative=True)


softplus.defexpr("gg_softplus<{T}>({0})", lambda xp, out, x: _evaluate_into(
    out, _softplus_in_float64, (x, *_saturation(out.dtype)), buffers=2, nonnegative=True))


def _softplus_in_float64(out, t, u, x, bound, flushed_below):
    # max(max(v, 0) + log(1 + e^-|v|), x) with v = x clipped to [-bound, 40]:
    # past 40, log(1 + e^x) rounds to x in float64 and the outer max picks x; below -bound the
    # result rounds to 0. Where x < flushed_below, v is 0 and the sum is multiplied by 0.
    # (NumPy's logaddexp would warn on NaN.)
    xp = xp_of(t)
    keep = _clipped(out, t, x, bound, flushed_below)
    xp.maximum(t, 0, out=u)
    xp.abs(t, out=t)
    xp.negative(t, out=t)
    xp.exp(t, out=t)
    u += xp.log1p(t, out=t)
    if keep is not None:
        u *= keep
    return xp.maximum(u, x, out=u)


@softplus.defvjp
def softplus_vjp(g, out, x):  # d log(1 + e^x) = sigmoid(x) dx
    s = sigmoid(x)
    # relu_backward(p, s) is p where s > 0 (everywhere but where s, hence p, is 0): it applies
    # the rounding rule's flush to the product.
    return (relu_backward(g * s, s),)
