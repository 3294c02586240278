"""Arithmetic primitives: add, subtract, multiply, divide, negative, squared_difference (and
its fused backward), abs, sign, square (and its fused backward), maximum, minimum, where,
clip_by_value, cast, identity, stop_gradient and the comparisons. power lives in
elementwise_math.py, as its VJP takes a log."""
from ..backend import xp_of
from ..dispatch import primitive
from ._common import _needs_grad, _xp2, zeros_like
from .rounding import _evaluate, _result_dtype


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
