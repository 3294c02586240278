"""Linear algebra: matmul, with optional transposes of either input."""
from ..backend import xp_of
from ..dispatch import primitive
from ._common import _needs_grad


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
