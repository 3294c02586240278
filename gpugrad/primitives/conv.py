"""conv2d: 2-D cross-correlation in TensorFlow's layouts (NHWC input, HWIO filters), computed
as one matrix product of the gathered patches (im2col) and differentiated by two more conv2d
calls, so that every derivative is a convolution again.

The forward takes a strided view of the padded input with one window per output position
(`as_strided` from the array module's `lib.stride_tricks`, which NumPy and CuPy both have),
flattens the windows into a (N*Ho*Wo, KH*KW*C) matrix (the one copy) and multiplies it by the
filters reshaped to (KH*KW*C, O).

gpugrad/convolution.py checks the arguments and hands the primitive normalized parameters:
`strides` and `dilations` pairs of positive ints, and `padding` "VALID", "SAME" or explicit
((top, bottom), (left, right)) ints. Explicit amounts may be negative here (rows or columns
cropped off): the VJPs need that for the filter gradient when the strides skip the input's
last rows, and for large explicit paddings.
"""
import functools
import importlib

from ..backend import xp_of
from ..dispatch import primitive
from ._common import _needs_grad
from .arrays import pad
from .shapes import getitem, reshape, transpose


@functools.lru_cache(maxsize=None)
def _as_strided(xp):
    """The array module's as_strided (numpy.lib.stride_tricks, cupy.lib.stride_tricks)."""
    return importlib.import_module(xp.__name__ + ".lib.stride_tricks").as_strided


def _same(size, k, s):
    """TensorFlow's SAME padding along one axis for an effective kernel size k: the output has
    ceil(size / s) entries; the zeros are split evenly, the odd one at the end."""
    total = max((-(-size // s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _geometry(x_shape, w_shape, strides, padding, dilations):
    """((pad_top, pad_bottom), (pad_left, pad_right)), (Ho, Wo) of a conv2d."""
    kernel = [(k - 1) * d + 1 for k, d in zip(w_shape[:2], dilations)]  # the dilated filter's extent
    if padding == "VALID":
        pads = ((0, 0), (0, 0))
    elif padding == "SAME":
        pads = tuple(_same(size, k, s) for size, k, s in zip(x_shape[1:3], kernel, strides))
    else:
        pads = padding
    out = tuple(max((size + before + after - k) // s + 1, 0)
                for size, (before, after), k, s in zip(x_shape[1:3], pads, kernel, strides))
    return pads, out


def _padded(x, pads):
    """x (NHWC) with zeros added (or, for negative amounts, rows and columns removed) at the
    borders of its spatial axes."""
    (top, bottom), (left, right) = pads
    x = x[:, max(-top, 0):x.shape[1] - max(-bottom, 0), max(-left, 0):x.shape[2] - max(-right, 0)]
    top, bottom, left, right = (max(p, 0) for p in (top, bottom, left, right))
    if not (top or bottom or left or right):
        return x
    n, h, w, c = x.shape
    out = xp_of(x).zeros((n, top + h + bottom, left + w + right, c), dtype=x.dtype)
    out[:, top:top + h, left:left + w] = x
    return out


@primitive(kind="contraction")
def conv2d(x, w, *, strides=(1, 1), padding="VALID", dilations=(1, 1)):
    """out[n, i, j, o] = sum over (a, b, c) of
    x_padded[n, i*sh + a*dh, j*sw + b*dw, c] * w[a, b, c, o]."""
    xp = xp_of(x)
    (n, _, _, c), (kh, kw, _, o) = x.shape, w.shape
    pads, (ho, wo) = _geometry(x.shape, w.shape, strides, padding, dilations)
    out = xp.zeros((n, ho, wo, o), dtype=xp.result_type(x.dtype, w.dtype))
    if out.size == 0 or kh * kw * c == 0:
        return out  # no output, or sums of nothing
    xpad = _padded(x, pads)
    (sh, sw), (dh, dw) = strides, dilations
    s_n, s_h, s_w, s_c = xpad.strides
    windows = _as_strided(xp)(
        xpad, shape=(n, ho, wo, kh, kw, c), strides=(s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c))
    columns = windows.reshape(n * ho * wo, kh * kw * c)  # im2col: the one copy of the patches
    # Writing through a reshaped view of `out` keeps the result a base array (no copy later).
    xp.matmul(columns, w.reshape(kh * kw * c, o).astype(out.dtype, copy=False), out=out.reshape(n * ho * wo, o))
    return out


def _dilated(g, strides):
    """g (NHWC) with strides - 1 zeros after each entry along H and W: (N, Ho*sh, Wo*sw, O),
    the output gradient spread back onto the grid of window origins."""
    sh, sw = strides
    if sh == sw == 1:
        return g
    n, ho, wo, o = g.shape
    g = reshape(g, shape=(n, ho, 1, wo, 1, o))
    g = pad(g, paddings=((0, 0), (0, 0), (0, sh - 1), (0, 0), (0, sw - 1), (0, 0)), constant_values=0)
    return reshape(g, shape=(n, ho * sh, wo * sw, o))


@conv2d.defvjp
def conv2d_vjp(g, out, x, w, *, strides=(1, 1), padding="VALID", dilations=(1, 1)):
    # dx is the transposed convolution: the dilated g correlated with the filters flipped in
    # space and with their channel axes swapped, padded so that every input position is
    # reached ("full" correlation) less the forward's own padding.
    # dw correlates the input with g: the batch becomes the contracted channel axis, g's
    # spatial axes the filter's (dilated by the strides), stepping by the dilations, with the
    # forward's padding and the bottom/right cropped to exactly KH x KW outputs.
    (_, h, wd, _), (kh, kw, _, _), (ho, wo) = x.shape, w.shape, out.shape[1:3]
    pads, _ = _geometry(x.shape, w.shape, strides, padding, dilations)
    (sh, sw), (dh, dw) = strides, dilations
    (top, _), (left, _) = pads
    gx = gw = None
    if _needs_grad(x):
        eh, ew = (kh - 1) * dh, (kw - 1) * dw  # the dilated filter's extent, less one
        flipped = transpose(getitem(w, key=(slice(None, None, -1), slice(None, None, -1))), perm=(0, 1, 3, 2))
        gx = conv2d(_dilated(g, strides), flipped, strides=(1, 1), dilations=dilations,
                    padding=((eh - top, h + top - ho * sh), (ew - left, wd + left - wo * sw)))
    if _needs_grad(w):
        gw = conv2d(transpose(x, perm=(3, 1, 2, 0)), transpose(g, perm=(1, 2, 0, 3)),
                    strides=dilations, dilations=strides,
                    padding=((top, (kh - 1) * dh + (ho - 1) * sh + 1 - h - top),
                             (left, (kw - 1) * dw + (wo - 1) * sw + 1 - wd - left)))
        gw = transpose(gw, perm=(1, 2, 0, 3))
    return gx, gw
