"""Arithmetic primitives: add, subtract, multiply, divide, negative, squared_difference (and
its fused backward), abs, sign, square (and its fused backward), maximum, minimum, where,
clip_by_value, cast, identity, stop_gradient and the comparisons. power lives in
elementwise_math.py, as its VJP takes a log.

Each declares its scalar expression (op.defexpr, see dispatch.Expression) after its forward:
the C form calls the helpers of cuda_kernels/expressions.cuh, the NumPy form fills `out`."""
from ..backend import xp_of
from ..dispatch import primitive
from ._common import _needs_grad, _xp2, zeros_like
from .rounding import _evaluate, _evaluate_into, _result_dtype


# ---------------------------------------------------------------------------------------
# Arithmetic

@primitive(linear=True, kind="elementwise")
def add(x, y):
    return x + y


add.defexpr("gg_add(gg_cast<{T}>({0}), gg_cast<{T}>({1}))", lambda xp, out, x, y: xp.add(x, y, out=out))


@add.defvjp
def add_vjp(g, out, x, y):  # d(x+y) = dx + dy
    return g, g


@primitive(linear=True, kind="elementwise")
def subtract(x, y):
    return x - y


subtract.defexpr("gg_subtract(gg_cast<{T}>({0}), gg_cast<{T}>({1}))",
                 lambda xp, out, x, y: xp.subtract(x, y, out=out))


@subtract.defvjp
def subtract_vjp(g, out, x, y):  # d(x-y) = dx - dy
    return g, (negative(g) if _needs_grad(y) else None)


@primitive(kind="elementwise")
def multiply(x, y):
    return x * y


multiply.defexpr("gg_multiply(gg_cast<{T}>({0}), gg_cast<{T}>({1}))",
                 lambda xp, out, x, y: xp.multiply(x, y, out=out))


@multiply.defvjp
def multiply_vjp(g, out, x, y):  # d(xy) = y dx + x dy
    return (g * y if _needs_grad(x) else None), (g * x if _needs_grad(y) else None)


@primitive(kind="elementwise")
def divide(x, y):
    return x / y


# True division: integer inputs divide in float64, the result's dtype.
divide.defexpr("gg_divide(gg_cast<{T}>({0}), gg_cast<{T}>({1}))",
               lambda xp, out, x, y: xp.divide(x, y, out=out))


@divide.defvjp
def divide_vjp(g, out, x, y):  # d(x/y) = dx / y - (x/y) dy / y
    return (g / y if _needs_grad(x) else None), (negative(g) * out / y if _needs_grad(y) else None)


@primitive(linear=True, kind="elementwise")
def negative(x):
    return -x


negative.defexpr("gg_negative(gg_cast<{T}>({0}))", lambda xp, out, x: xp.negative(x, out=out))


@negative.defvjp
def negative_vjp(g, out, x):  # d(-x) = -dx
    return (negative(g),)


@primitive(kind="elementwise")
def squared_difference(x, y):
    d = x - y
    return d * d


@squared_difference.defexpr("gg_squared_difference(gg_cast<{T}>({0}), gg_cast<{T}>({1}))")
def _squared_difference_numpy(xp, out, x, y):
    xp.subtract(x, y, out=out)
    return xp.multiply(out, out, out=out)


@squared_difference.defvjp
def squared_difference_vjp(g, out, x, y):  # d(x-y)^2 = 2(x-y)(dx - dy)
    d = squared_difference_backward(g, x, y)
    return (d if _needs_grad(x) else None), (negative(d) if _needs_grad(y) else None)


@primitive(kind="elementwise")
def squared_difference_backward(dy, x, y):
    return _evaluate(_squared_difference_backward_in_float64, _result_dtype(dy, x, y), (dy, x, y), buffers=2)


squared_difference_backward.defexpr(
    "gg_squared_difference_backward<{T}>({0}, {1}, {2})",
    lambda xp, out, dy, x, y: _evaluate_into(out, _squared_difference_backward_in_float64, (dy, x, y), buffers=2))


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


@primitive(kind="elementwise")
def abs(x):
    return xp_of(x).abs(x)


abs.defexpr("gg_abs(gg_cast<{T}>({0}))", lambda xp, out, x: xp.abs(x, out=out))


@abs.defvjp
def abs_vjp(g, out, x):  # d|x| = sign(x) dx
    return (g * sign(x),)


@primitive(kind="elementwise")
def sign(x):
    return xp_of(x).sign(x)


sign.defexpr("gg_sign(gg_cast<{T}>({0}))", lambda xp, out, x: xp.sign(x, out=out))


@sign.defvjp
def sign_vjp(g, out, x):  # d sign(x) = 0, a connected zero
    return (zeros_like(x),)


@primitive(kind="elementwise")
def square(x):
    return x * x


square.defexpr("gg_multiply(gg_cast<{T}>({0}), gg_cast<{T}>({0}))",
               lambda xp, out, x: xp.multiply(x, x, out=out))


@square.defvjp
def square_vjp(g, out, x):  # d x^2 = 2x dx
    return (square_backward(g, x),)


@primitive(kind="elementwise")
def square_backward(dy, x):
    return _evaluate(_square_backward_in_float64, _result_dtype(dy, x), (dy, x), buffers=1)


square_backward.defexpr(
    "gg_square_backward<{T}>({0}, {1})",
    lambda xp, out, dy, x: _evaluate_into(out, _square_backward_in_float64, (dy, x), buffers=1))


def _square_backward_in_float64(out, t, dy, x):  # 2 dy, then times x: 2 dy is exact
    t[...] = dy
    t *= 2
    return xp_of(t).multiply(t, x, out=t)


@square_backward.defvjp
def square_backward_vjp(g, out, dy, x):  # d[2 dy x] = 2x d(dy) + 2 dy dx
    return square_backward(g, x), square_backward(g, dy)


@primitive(kind="elementwise")
def maximum(x, y):
    return _xp2(x, y).maximum(x, y)


# NaN propagates; of two equal zeros the second operand, as NumPy's x86 loops give.
maximum.defexpr("gg_maximum(gg_cast<{T}>({0}), gg_cast<{T}>({1}))",
                lambda xp, out, x, y: xp.maximum(x, y, out=out))


@maximum.defvjp
def maximum_vjp(g, out, x, y):  # the gradient goes to the larger input, to x on ties
    return (g * (x >= y) if _needs_grad(x) else None), (g * (x < y) if _needs_grad(y) else None)


@primitive(kind="elementwise")
def minimum(x, y):
    return _xp2(x, y).minimum(x, y)


minimum.defexpr("gg_minimum(gg_cast<{T}>({0}), gg_cast<{T}>({1}))",
                lambda xp, out, x, y: xp.minimum(x, y, out=out))


@minimum.defvjp
def minimum_vjp(g, out, x, y):  # the gradient goes to the smaller input, to x on ties
    return (g * (x <= y) if _needs_grad(x) else None), (g * (x > y) if _needs_grad(y) else None)


@primitive(kind="elementwise")
def where(condition, x, y):
    return xp_of(condition).where(condition, x, y)


@where.defexpr("({0}) ? gg_cast<{T}>({1}) : gg_cast<{T}>({2})")
def _where_numpy(xp, out, condition, x, y):  # where has no out=: two masked copies
    xp.copyto(out, y)
    xp.copyto(out, x, where=condition)
    return out


@where.defvjp
def where_vjp(g, out, condition, x, y):  # each branch gets g where it was chosen
    return (None, where(condition, g, 0) if _needs_grad(x) else None,
            where(condition, 0, g) if _needs_grad(y) else None)


@primitive(kind="elementwise")
def clip_by_value(x, clip_value_min, clip_value_max):
    return xp_of(x).clip(x, clip_value_min, clip_value_max)


# numpy.clip: minimum(maximum(x, lo), hi), NaN from any of the three.
clip_by_value.defexpr("gg_clip(gg_cast<{T}>({0}), gg_cast<{T}>({1}), gg_cast<{T}>({2}))",
                      lambda xp, out, x, lo, hi: xp.clip(x, lo, hi, out=out))


@clip_by_value.defvjp
def clip_by_value_vjp(g, out, x, lo, hi):  # g passes where lo <= x <= hi, else goes to the bound
    gx = g * ((x >= lo) * (x <= hi))
    glo = where(x < lo, g, 0) if _needs_grad(lo) else None
    ghi = where(x > hi, g, 0) if _needs_grad(hi) else None
    return gx, glo, ghi


def _copied(xp, out, x, casting="same_kind"):
    """The NumPy form of the copies (cast, identity, stop_gradient): x written into out."""
    xp.copyto(out, x, casting=casting)
    return out


@primitive(linear=True, kind="elementwise")
def cast(x, *, dtype):
    return x.astype(dtype)


# A C conversion, as astype's: float to integer out of the integer's range is undefined in C
# (NumPy gives a platform's value with a warning) and so is left to the forward.
cast.defexpr("gg_cast<{dtype}>({0})", lambda xp, out, x, *, dtype: _copied(xp, out, x, casting="unsafe"))


@cast.defvjp
def cast_vjp(g, out, x, *, dtype):  # identity; the tape casts g back to x's dtype
    return (g,)


@primitive(linear=True, kind="elementwise")
def identity(x):
    return x.copy()


identity.defexpr("{0}", _copied)


@identity.defvjp
def identity_vjp(g, out, x):
    return (g,)


@primitive(differentiable=False, kind="elementwise")
def stop_gradient(x):
    """The value of x, with no gradient flowing back to x."""
    return x


stop_gradient.defexpr("{0}", _copied)


@primitive(differentiable=False, kind="elementwise")
def equal(x, y):
    return x == y


equal.defexpr("gg_equal(gg_cast<{U}>({0}), gg_cast<{U}>({1}))", lambda xp, out, x, y: xp.equal(x, y, out=out))


@primitive(differentiable=False, kind="elementwise")
def not_equal(x, y):
    return x != y


not_equal.defexpr("gg_not_equal(gg_cast<{U}>({0}), gg_cast<{U}>({1}))",
                  lambda xp, out, x, y: xp.not_equal(x, y, out=out))


@primitive(differentiable=False, kind="elementwise")
def less(x, y):
    return x < y


less.defexpr("gg_less(gg_cast<{U}>({0}), gg_cast<{U}>({1}))", lambda xp, out, x, y: xp.less(x, y, out=out))


@primitive(differentiable=False, kind="elementwise")
def less_equal(x, y):
    return x <= y


less_equal.defexpr("gg_less_equal(gg_cast<{U}>({0}), gg_cast<{U}>({1}))",
                   lambda xp, out, x, y: xp.less_equal(x, y, out=out))


@primitive(differentiable=False, kind="elementwise")
def greater(x, y):
    return x > y


greater.defexpr("gg_greater(gg_cast<{U}>({0}), gg_cast<{U}>({1}))",
                lambda xp, out, x, y: xp.greater(x, y, out=out))


@primitive(differentiable=False, kind="elementwise")
def greater_equal(x, y):
    return x >= y


greater_equal.defexpr("gg_greater_equal(gg_cast<{U}>({0}), gg_cast<{U}>({1}))",
                      lambda xp, out, x, y: xp.greater_equal(x, y, out=out))
