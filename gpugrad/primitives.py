"""Every built-in primitive: the forward on raw arrays, then its VJP on Tensors.

Forwards get their array module from their inputs (`xp_of`), so the same code runs on
every backend. VJPs use gg ops only, so tapes recording a backward pass differentiate it
again. Each VJP states its math in one line. The activations and the fused backward ops
follow the rounding rule written above `_flushed`.
"""
import functools
import math

from . import kernels as _kernels
from .backend import is_cuda_array, xp_of
from . import dispatch as _dispatch
from .dispatch import primitive
from .tensor import Tensor, Variable


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


def _fused_kernel(name):
    """The CUDA fast path of an elementwise fused primitive: the kernel cuda_kernels/<name>.cu
    for inputs of one shape in float32 or float64, the xp forward (NotImplemented) otherwise."""
    def fast(*arrays):
        first = arrays[0]
        if first.dtype.kind != "f" or first.dtype.itemsize not in (4, 8) or any(
                getattr(a, "shape", None) != first.shape or a.dtype != first.dtype for a in arrays[1:]):
            return NotImplemented
        return _kernels.launch(name, *arrays)
    fast.__name__ = f"{name}_cuda"
    return fast


# ---------------------------------------------------------------------------------------
# The rounding rule of the activations (sigmoid, tanh, softplus, relu) and the fused backward
# ops (sigmoid_, tanh_, relu_, square_ and squared_difference_backward), on every backend:
#
# - Flush to zero: a float32 or float64 result whose magnitude is below its dtype's smallest
#   normal number (finfo.tiny) becomes a zero of its sign, as in TensorFlow's CPU kernels and
#   CUDA's flush-to-zero mode. Saturated sigmoids would otherwise produce subnormals in bulk,
#   and CPU operations that read or write them can run several times slower. float16 keeps
#   its subnormals, as there: NumPy computes float16 in float32, where they are normal.
# - Rounding: float16 and float32 results are computed in float64 and rounded once, so they
#   are correctly rounded (float64's error is far below half their ulp). float64 results are
#   computed in float64 in the order the code shows: exact (relu, relu_backward) or correctly
#   rounded (square_backward) where that takes one rounding, else within 1 ulp of it for tanh
#   (float64 tanh errs by less than an ulp) and the two roundings of squared_difference_
#   backward, 2 ulp for softplus (exp, then log1p), sigmoid and the three roundings of
#   sigmoid_ and tanh_backward (tests/test_numerics.py checks these bounds).
# - exp's arguments are clipped where that leaves the result exact: exp stays finite (no
#   overflow warnings) and, but within 0.7 of float64's flush threshold, on NumPy's vector
#   path, which ends at |x| = 1021 ln 2 ~ 707.7 and before subnormal results (past them it
#   is 10 to 100 times slower).
#
# The CUDA kernels of the fused ops compute the same float64 operations in the same order.

_TINY = {}  # per float dtype that flushes (float32, float64): its smallest normal number

# On the CPU a large result is computed a block of leading-axis rows of about this many
# elements at a time, in float64 work arrays allocated once per call: the work stays in
# cache, and only the inputs and the result cross memory, once.
_BLOCK = 1 << 16


def _flushed(out, nonnegative=False, keep=None):
    """`out`, a new array of results, with the rule's flush applied in place (float32 and
    float64 only); `keep`, a bool array of out's shape to compute the mask in, or None.
    Multiplying by the 0/1 mask keeps NaN and the sign of a flushed value, and is much
    cheaper on the CPU than a masked assignment."""
    dtype = out.dtype
    if dtype.kind != "f" or dtype.itemsize < 4:
        return out
    xp = xp_of(out)
    tiny = _TINY.get(dtype)
    if tiny is None:
        tiny = _TINY[dtype] = float(xp.finfo(dtype).tiny)
    keep = xp.greater_equal(out if nonnegative else xp.abs(out), tiny, out=keep)  # False for NaN; NaN * 0 is NaN
    return xp.multiply(out, keep, out=out)


def _evaluate(compute, dtype, args, buffers=0, nonnegative=False):
    """The rule's result, of dtype `dtype`, of `compute(out, *work, *args)`.

    `out` and the `buffers` float64 work arrays have the broadcast shape of the array args;
    `compute` may use `out` as scratch and returns the one of them that holds the result,
    float64 values (rounded into `out` here) or values of `dtype` that need no rounding. On
    the CPU a large result is computed by blocks of leading-axis rows: the args that span
    that axis are sliced, the others (and Python scalars) broadcast against each block."""
    arrays = [a for a in args if hasattr(a, "shape")]
    xp = xp_of(arrays[0])
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays):
        shape = xp.broadcast(*arrays).shape
    out = xp.empty(shape, dtype)
    if out.size <= _BLOCK or is_cuda_array(out):
        result = compute(out, *[xp.empty(shape, xp.float64) for _ in range(buffers)], *args)
        if result is not out:
            out[...] = result
        return _flushed(out, nonnegative)
    rows = max(1, _BLOCK * shape[0] // out.size)
    work = [xp.empty((rows,) + shape[1:], xp.float64) for _ in range(buffers)]
    keep = xp.empty((rows,) + shape[1:], bool)
    spanning = [hasattr(a, "shape") and a.ndim == len(shape) and a.shape[0] == shape[0] for a in args]
    for start in range(0, shape[0], rows):
        block = out[start:start + rows]
        n = len(block)
        result = compute(block, *[w[:n] for w in work],
                         *[a[start:start + rows] if spans else a for a, spans in zip(args, spanning)])
        if result is not block:
            block[...] = result
        _flushed(block, nonnegative, keep[:n])
    return out


def _float_dtype(x):
    """The dtype of an activation's result: x's if it is a float dtype, float64 otherwise."""
    return x.dtype if x.dtype.kind == "f" else xp_of(x).dtype("float64")


def _result_dtype(*inputs):
    """The dtype of a fused backward op's result: its inputs' promoted dtype."""
    dtype = getattr(inputs[0], "dtype", None)
    for a in inputs:
        if getattr(a, "dtype", None) != dtype:
            first = next(a for a in inputs if hasattr(a, "dtype"))
            return xp_of(first).result_type(*inputs)
    return dtype  # the common case: one dtype, found cheaply


# ---------------------------------------------------------------------------------------
# Arithmetic

@primitive(linear=True, kind="elementwise")
def add(x, y):
    return x + y


@add.defvjp
def add_vjp(g, out, x, y):  # d(x+y) = dx + dy
    return g, g


@primitive(linear=True, kind="elementwise")
def subtract(x, y):
    return x - y


@subtract.defvjp
def subtract_vjp(g, out, x, y):  # d(x-y) = dx - dy
    return g, (negative(g) if _needs_grad(y) else None)


@primitive(kind="elementwise")
def multiply(x, y):
    return x * y


@multiply.defvjp
def multiply_vjp(g, out, x, y):  # d(xy) = y dx + x dy
    return (g * y if _needs_grad(x) else None), (g * x if _needs_grad(y) else None)


@primitive(kind="elementwise")
def divide(x, y):
    return x / y


@divide.defvjp
def divide_vjp(g, out, x, y):  # d(x/y) = dx / y - (x/y) dy / y
    return (g / y if _needs_grad(x) else None), (negative(g) * out / y if _needs_grad(y) else None)


@primitive(kind="elementwise")
def power(x, y):
    return x ** y


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


@primitive(linear=True, kind="elementwise")
def negative(x):
    return -x


@negative.defvjp
def negative_vjp(g, out, x):  # d(-x) = -dx
    return (negative(g),)


@primitive(kind="elementwise")
def squared_difference(x, y):
    d = x - y
    return d * d


@squared_difference.defvjp
def squared_difference_vjp(g, out, x, y):  # d(x-y)^2 = 2(x-y)(dx - dy)
    d = squared_difference_backward(g, x, y)
    return (d if _needs_grad(x) else None), (negative(d) if _needs_grad(y) else None)


@primitive(kind="elementwise")
def squared_difference_backward(dy, x, y):
    return _evaluate(_squared_difference_backward_in_float64, _result_dtype(dy, x, y), (dy, x, y), buffers=2)


def _squared_difference_backward_in_float64(out, t, u, dy, x, y):  # 2 dy (x - y): 2 dy is exact
    t[...] = x
    u[...] = y
    t -= u
    u[...] = dy
    u *= 2
    return xp_of(t).multiply(u, t, out=t)


@squared_difference_backward.defvjp
def squared_difference_backward_vjp(g, out, dy, x, y):  # d[2 dy (x-y)] = 2(x-y) d(dy) + 2 dy (dx - dy)
    gx = 2 * g * dy
    return 2 * g * (x - y), gx, negative(gx)


squared_difference_backward.cuda(_fused_kernel("squared_difference_backward"))


# ---------------------------------------------------------------------------------------
# Elementwise functions

@primitive(kind="elementwise")
def abs(x):
    return xp_of(x).abs(x)


@abs.defvjp
def abs_vjp(g, out, x):  # d|x| = sign(x) dx
    return (g * sign(x),)


@primitive(kind="elementwise")
def sign(x):
    return xp_of(x).sign(x)


@sign.defvjp
def sign_vjp(g, out, x):  # d sign(x) = 0, a connected zero
    return (zeros_like(x),)


@primitive(kind="elementwise")
def square(x):
    return x * x


@square.defvjp
def square_vjp(g, out, x):  # d x^2 = 2x dx
    return (square_backward(g, x),)


@primitive(kind="elementwise")
def square_backward(dy, x):
    return _evaluate(_square_backward_in_float64, _result_dtype(dy, x), (dy, x), buffers=1)


def _square_backward_in_float64(out, t, dy, x):  # 2 dy, then times x: 2 dy is exact
    t[...] = dy
    t *= 2
    return xp_of(t).multiply(t, x, out=t)


@square_backward.defvjp
def square_backward_vjp(g, out, dy, x):  # d[2 dy x] = 2x d(dy) + 2 dy dx
    return square_backward(g, x), square_backward(g, dy)


square_backward.cuda(_fused_kernel("square_backward"))


@primitive(kind="elementwise")
def sqrt(x):
    return xp_of(x).sqrt(x)


@sqrt.defvjp
def sqrt_vjp(g, out, x):  # d sqrt(x) = dx / (2 sqrt(x))
    return (g / (2 * out),)


@primitive(kind="elementwise")
def exp(x):
    return xp_of(x).exp(x)


@exp.defvjp
def exp_vjp(g, out, x):  # d e^x = e^x dx
    return (g * out,)


@primitive(kind="elementwise")
def log(x):
    return xp_of(x).log(x)


@log.defvjp
def log_vjp(g, out, x):  # d log x = dx / x
    return (g / x,)


@primitive(kind="elementwise")
def log1p(x):
    return xp_of(x).log1p(x)


@log1p.defvjp
def log1p_vjp(g, out, x):  # d log(1+x) = dx / (1+x)
    return (g / (1 + x),)


@primitive(kind="elementwise")
def sin(x):
    return xp_of(x).sin(x)


@sin.defvjp
def sin_vjp(g, out, x):  # d sin x = cos x dx
    return (g * cos(x),)


@primitive(kind="elementwise")
def cos(x):
    return xp_of(x).cos(x)


@cos.defvjp
def cos_vjp(g, out, x):  # d cos x = -sin x dx
    return (negative(g) * sin(x),)


@primitive(kind="elementwise")
def tanh(x):
    return _evaluate(_tanh_in_float64, _float_dtype(x), (x,), buffers=1)


def _tanh_in_float64(out, t, x):
    t[...] = x
    return xp_of(t).tanh(t, out=t)


@tanh.defvjp
def tanh_vjp(g, out, x):  # d tanh x = (1 - tanh^2 x) dx
    return (tanh_backward(g, out),)


@primitive(kind="elementwise")
def tanh_backward(dy, y):
    return _evaluate(_tanh_backward_in_float64, _result_dtype(dy, y), (dy, y), buffers=2)


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


tanh_backward.cuda(_fused_kernel("tanh_backward"))


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


def _sigmoid_in_float64(out, t, u, x, bound, flushed_below):
    # e^v / (1 + e^v), v = x clipped (in out, exactly) to [-bound, 40]: past 40 it rounds to 1
    # in float64. Where x < flushed_below, v is 0 and the result 0 * e^0 / (1 + e^0).
    xp = xp_of(t)
    x.clip(-bound, 40, out=out)
    t[...] = out
    keep = None if flushed_below is None else t >= flushed_below
    if keep is not None:
        t *= keep
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


sigmoid_backward.cuda(_fused_kernel("sigmoid_backward"))


@primitive(kind="elementwise")
def relu(x):
    return _evaluate(lambda out, x: xp_of(out).maximum(x, 0, out=out), _result_dtype(x, 0), (x,), nonnegative=True)


@relu.defvjp
def relu_vjp(g, out, x):  # d relu(x) = [x > 0] dx
    return (relu_backward(g, out),)


@primitive(kind="elementwise")
def relu_backward(dy, y):
    return _evaluate(lambda out, dy, y: xp_of(out).multiply(dy, y > 0, out=out), _result_dtype(dy, y), (dy, y))


@relu_backward.defvjp
def relu_backward_vjp(g, out, dy, y):  # d[dy [y>0]] = [y>0] d(dy); the mask has zero derivative
    return relu_backward(g, y), zeros_like(y)


relu_backward.cuda(_fused_kernel("relu_backward"))


@primitive(kind="elementwise")
def softplus(x):
    dtype = _float_dtype(x)
    return _evaluate(_softplus_in_float64, dtype, (x, *_saturation(dtype)), buffers=2, nonnegative=True)


def _softplus_in_float64(out, t, u, x, bound, flushed_below):
    # max(max(v, 0) + log(1 + e^-|v|), x) with v = x clipped (in out, exactly) to [-bound, 40]:
    # past 40, log(1 + e^x) rounds to x in float64 and the outer max picks x; below -bound the
    # result rounds to 0. Where x < flushed_below, v is 0 and the sum is multiplied by 0.
    # (NumPy's logaddexp would warn on NaN.)
    xp = xp_of(t)
    x.clip(-bound, 40, out=out)
    t[...] = out
    keep = None if flushed_below is None else t >= flushed_below
    if keep is not None:
        t *= keep
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


@primitive(kind="elementwise")
def maximum(x, y):
    return _xp2(x, y).maximum(x, y)


@maximum.defvjp
def maximum_vjp(g, out, x, y):  # the gradient goes to the larger input, to x on ties
    return (g * (x >= y) if _needs_grad(x) else None), (g * (x < y) if _needs_grad(y) else None)


@primitive(kind="elementwise")
def minimum(x, y):
    return _xp2(x, y).minimum(x, y)


@minimum.defvjp
def minimum_vjp(g, out, x, y):  # the gradient goes to the smaller input, to x on ties
    return (g * (x <= y) if _needs_grad(x) else None), (g * (x > y) if _needs_grad(y) else None)


@primitive(kind="elementwise")
def where(condition, x, y):
    return xp_of(condition).where(condition, x, y)


@where.defvjp
def where_vjp(g, out, condition, x, y):  # each branch gets g where it was chosen
    return (None, where(condition, g, 0) if _needs_grad(x) else None,
            where(condition, 0, g) if _needs_grad(y) else None)


@primitive(kind="elementwise")
def clip_by_value(x, clip_value_min, clip_value_max):
    return xp_of(x).clip(x, clip_value_min, clip_value_max)


@clip_by_value.defvjp
def clip_by_value_vjp(g, out, x, lo, hi):  # g passes where lo <= x <= hi, else goes to the bound
    gx = g * ((x >= lo) * (x <= hi))
    glo = where(x < lo, g, 0) if _needs_grad(lo) else None
    ghi = where(x > hi, g, 0) if _needs_grad(hi) else None
    return gx, glo, ghi


@primitive(linear=True, kind="elementwise")
def cast(x, *, dtype):
    return x.astype(dtype)


@cast.defvjp
def cast_vjp(g, out, x, *, dtype):  # identity; the tape casts g back to x's dtype
    return (g,)


@primitive(linear=True, kind="elementwise")
def identity(x):
    return x.copy()


@identity.defvjp
def identity_vjp(g, out, x):
    return (g,)


@primitive(differentiable=False, kind="elementwise")
def stop_gradient(x):
    """The value of x, with no gradient flowing back to x."""
    return x


@primitive(differentiable=False, kind="elementwise")
def equal(x, y):
    return x == y


@primitive(differentiable=False, kind="elementwise")
def not_equal(x, y):
    return x != y


@primitive(differentiable=False, kind="elementwise")
def less(x, y):
    return x < y


@primitive(differentiable=False, kind="elementwise")
def less_equal(x, y):
    return x <= y


@primitive(differentiable=False, kind="elementwise")
def greater(x, y):
    return x > y


@primitive(differentiable=False, kind="elementwise")
def greater_equal(x, y):
    return x >= y


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


@functools.lru_cache(maxsize=64)
def _ones(xp, shape, dtype):
    """A shared array of ones (read-only: nothing may write to it)."""
    ones = xp.ones(shape, dtype=dtype)
    if hasattr(ones.flags, "writeable"):
        ones.flags.writeable = False
    return ones


@primitive(linear=True, kind="reduction")
def reduce_sum(x, *, axis, keepdims):
    if axis == (0,) and x.ndim == 2 and x.dtype.kind == "f":
        # Summing a batch of rows through BLAS is several times faster than a strided reduce.
        return _ones(xp_of(x), (1, x.shape[0]) if keepdims else (x.shape[0],), x.dtype).dot(x)
    return x.sum(axis=axis, keepdims=keepdims, dtype=x.dtype if x.dtype.kind in "iu" else None)


@reduce_sum.defvjp
def reduce_sum_vjp(g, out, x, *, axis, keepdims):  # every summand gets g
    return (reduce_sum_backward(g, axis=axis, keepdims=keepdims, shape=x.shape),)


@reduce_sum.cuda
def reduce_sum_cuda(x, *, axis, keepdims):  # a dense layer's bias gradient: column sums, one kernel
    if axis != (0,) or x.ndim != 2 or x.dtype.kind != "f" or x.dtype.itemsize not in (4, 8):
        return NotImplemented
    out = _kernels.bias_gradient(x)
    return out.reshape(1, -1) if keepdims else out


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
def broadcast_to(x, *, shape):
    out = xp_of(x).empty(shape, dtype=x.dtype)  # a writable copy: cheaper than a broadcast view on the CPU
    out[...] = x
    return out


@broadcast_to.defvjp
def broadcast_to_vjp(g, out, x, *, shape):  # the tape sums g back to x's shape
    return (g,)


# ---------------------------------------------------------------------------------------
# Shapes, indexing, joining

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
def tile(x, *, multiples):
    return xp_of(x).tile(x, multiples)


@tile.defvjp
def tile_vjp(g, out, x, *, multiples):  # sum the copies: view g as (m0, s0, m1, s1, ...) and reduce the m axes
    split = tuple(n for m, s in zip(multiples, x.shape) for n in (m, s))
    return (reduce_sum(reshape(g, shape=split), axis=tuple(range(0, len(split), 2)), keepdims=False),)


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


# ---------------------------------------------------------------------------------------
# Linear algebra

@primitive(kind="contraction")
def matmul(x, y, *, transpose_a=False, transpose_b=False):
    if transpose_a:
        x = x.swapaxes(-1, -2)
    if transpose_b:
        y = y.swapaxes(-1, -2)
    if x.ndim == 2 and y.ndim == 2:
        return x.dot(y)  # much faster than matmul when the inner dimension is 1; names both shapes on error
    if x.ndim < 2 or y.ndim < 2:
        raise ValueError(f"inputs need rank 2 or more, got shapes {x.shape} and {y.shape}")
    if x.shape[-1] != y.shape[-2]:
        raise ValueError(f"cannot multiply shapes {x.shape} and {y.shape}: inner dimensions "
                         f"{x.shape[-1]} and {y.shape[-2]} differ")
    return xp_of(x).matmul(x, y)


@matmul.defvjp
def matmul_vjp(g, out, x, y, *, transpose_a=False, transpose_b=False):  # d(ab) = da b + a db, a = x or x^T, b = y or y^T
    gx = gy = None
    if _needs_grad(x):
        if transpose_a:
            gx = matmul(y, g, transpose_a=transpose_b, transpose_b=True)
        else:
            gx = matmul(g, y, transpose_b=not transpose_b)
    if _needs_grad(y):
        if transpose_b:
            gy = matmul(g, x, transpose_a=True, transpose_b=transpose_a)
        else:
            gy = matmul(x, g, transpose_a=not transpose_a)
    return gx, gy  # batch axes that broadcasting added are summed by the tape


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
