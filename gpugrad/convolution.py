"""2-D convolution: gg.nn.conv2d (tf.nn.conv2d's arguments, checked, handed to the conv2d
primitive in gpugrad/primitives/conv.py) and gg.nn.Conv2D, the Keras-style layer built on it.

No numpy/cupy here.
"""
import numbers
import operator

from .module import Layer, get_activation, get_initializer
from .ops import _tensor
from .primitives import conv2d as _conv2d
from .tensor import Tensor, Variable


def _pair(what, value, tf_form=False):
    """(a, b) of positive ints from an int, a pair or, with tf_form, TensorFlow's [1, a, b, 1]."""
    try:
        items = (operator.index(value),) * 2
    except TypeError:
        try:
            items = tuple(value)
        except TypeError:
            items = ()
    if tf_form and len(items) == 4 and items[0] == items[3] == 1:
        items = items[1:3]
    if len(items) != 2 or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0
                                  for s in items):
        form = "a positive int, a pair or [1, a, b, 1]" if tf_form else "a positive int or a pair of them"
        raise ValueError(f"{what} must be {form}, got {value!r}")
    return tuple(int(s) for s in items)


def _padding(padding):
    """"VALID", "SAME", or explicit ((top, bottom), (left, right)) from TensorFlow's
    [[0, 0], [top, bottom], [left, right], [0, 0]] or the two inner pairs alone."""
    if isinstance(padding, str):
        if padding in ("VALID", "SAME"):
            return padding
        raise ValueError(f'conv2d: padding must be "VALID", "SAME" or explicit [[0, 0], [top, bottom], '
                         f'[left, right], [0, 0]], got {padding!r}')
    try:
        pairs = [tuple(p) for p in padding]
    except TypeError:
        pairs = None
    if pairs is not None and len(pairs) == 4 and pairs[0] == pairs[3] == (0, 0):
        pairs = pairs[1:3]
    if (pairs is None or len(pairs) != 2 or any(len(p) != 2 for p in pairs) or
            not all(isinstance(a, numbers.Integral) and not isinstance(a, bool) and a >= 0 for p in pairs for a in p)):
        raise ValueError(f'conv2d: padding must be "VALID", "SAME" or explicit [[0, 0], [top, bottom], '
                         f'[left, right], [0, 0]] of non-negative ints, got {padding!r}')
    return tuple((int(a), int(b)) for a, b in pairs)


def conv2d(input, filters, strides=1, padding="VALID", data_format="NHWC", dilations=1):
    """2-D cross-correlation of NHWC `input` (N, H, W, C) with HWIO `filters` (KH, KW, C, O),
    as tf.nn.conv2d: out[n, i, j, o] = sum over a, b, c of
    input_padded[n, i*sh + a*dh, j*sw + b*dw, c] * filters[a, b, c, o].

    Args:
      strides: an int, a pair (sh, sw) or [1, sh, sw, 1].
      padding: "VALID" (none), "SAME" (output ceil(H / sh) by ceil(W / sw); the zeros split
        evenly, the odd one at the end, as in TensorFlow), or explicit amounts
        [[0, 0], [top, bottom], [left, right], [0, 0]] (or [[top, bottom], [left, right]]).
      data_format: "NHWC" only.
      dilations: an int, a pair (dh, dw) or [1, dh, dw, 1]: the filter taps are dh rows and
        dw columns apart. Strides and dilations may both exceed 1.
    Returns (N, Ho, Wo, O) in the inputs' dtype. One primitive (im2col and a matmul); its
    gradients for input and filters are convolutions again, differentiable to any order.
    Departures from TensorFlow: strides and padding have defaults; no NCHW.
    """
    x, w = _tensor(input), _tensor(filters)
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d: input (N, H, W, C) and filters (KH, KW, C, O) need rank 4, got shapes "
                         f"{x.shape} and {w.shape}")
    if x.shape[3] != w.shape[2]:
        raise ValueError(f"conv2d: input of shape {x.shape} has {x.shape[3]} channels but filters of shape "
                         f"{w.shape} expect {w.shape[2]}")
    if x.dtype != w.dtype:
        raise TypeError(f"conv2d: input of dtype {x.dtype} and filters of dtype {w.dtype} differ")
    if data_format != "NHWC":
        raise ValueError(f'conv2d: data_format must be "NHWC", got {data_format!r}')
    strides = _pair("conv2d: strides", strides, tf_form=True)
    dilations = _pair("conv2d: dilations", dilations, tf_form=True)
    padding = _padding(padding)
    if 0 in w.shape[:2]:
        raise ValueError(f"conv2d: filters of shape {w.shape} have no taps")
    if padding != "SAME":
        pads = ((0, 0), (0, 0)) if padding == "VALID" else padding
        extent = tuple((k - 1) * d + 1 for k, d in zip(w.shape[:2], dilations))
        if any(size + a + b < k for size, (a, b), k in zip(x.shape[1:3], pads, extent)):
            dilated = f" (dilated to {extent[0]} x {extent[1]})" if dilations != (1, 1) else ""
            raise ValueError(f"conv2d: filters of shape {w.shape}{dilated} are larger than input of shape {x.shape} "
                             f"with padding {padding!r}")
    return _conv2d(x, w, strides=strides, padding=padding, dilations=dilations)


_PADDINGS = {"valid": "VALID", "same": "SAME"}


class Conv2D(Layer):
    """y = activation(conv2d(x, kernel) + bias) on NHWC images (like keras.layers.Conv2D):
    kernel of shape (KH, KW, in_channels, filters), bias (filters,). Built at its first
    call from the input's channel count (its last axis), on the input's device.

        gg.nn.Conv2D(16, 3, padding="same", activation="relu")

    Args:
      filters: the number of output channels.
      kernel_size: an int or a pair (KH, KW).
      strides: an int or a pair.
      padding: "valid" (no padding) or "same" (as TensorFlow's; either case).
      activation, use_bias, kernel_initializer, bias_initializer, dtype, name, seed: as for
        gg.nn.Dense ("glorot_uniform" counts the receptive field in the fans, as Keras does).
      dilation_rate (keyword): an int or a pair, the spacing of the filter taps.
      device (keyword): where the Variables are created (by default where the layer is built).
    `kernel` and `bias` are None until the layer is built.
    """

    cast_integers = True

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", dtype="float32", name=None,
                 seed=None, *, dilation_rate=(1, 1), device=None):
        self.kernel = None  # set by build; first, so that the paths come in the order kernel, bias
        self.bias = None
        super().__init__(dtype, name)
        if isinstance(filters, bool) or not isinstance(filters, numbers.Integral) or filters < 1:
            raise ValueError(f"Conv2D: filters must be a positive int, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = _pair("Conv2D: kernel_size", kernel_size)
        self.strides = _pair("Conv2D: strides", strides)
        self.dilation_rate = _pair("Conv2D: dilation_rate", dilation_rate)
        if not isinstance(padding, str) or padding.lower() not in _PADDINGS:
            raise ValueError(f'Conv2D: padding must be "valid" or "same", got {padding!r}')
        self.padding = padding.lower()
        try:
            self.activation = get_activation(activation)
            self._kernel_initializer = get_initializer(kernel_initializer)
            self._bias_initializer = get_initializer(bias_initializer) if use_bias else None
        except (TypeError, ValueError) as error:
            raise type(error)(f"Conv2D: {error}") from None
        self.use_bias = bool(use_bias)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"Conv2D: seed must be an int or None, got {seed!r}")
        self._activation_given = activation
        self._seed = seed
        self._device = device
        self.in_channels = None

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Conv2D {self.name!r}: the input needs rank 4 (batch, height, width, channels), got "
                             f"shape {tuple(input_shape)}")
        channels = input_shape[-1]
        if not isinstance(channels, numbers.Integral) or channels < 1:
            raise ValueError(f"Conv2D {self.name!r}: the input's channel axis must be a positive int, got {channels!r}")
        kernel, bias = self._kernel_and_bias(self.kernel_size + (int(channels), self.filters), (self.filters,))
        self.in_channels, self.kernel, self.bias = int(channels), kernel, bias

    def call(self, inputs):
        if isinstance(inputs, (Tensor, Variable)) and (inputs.ndim != 4 or inputs.shape[-1] != self.in_channels):
            raise ValueError(f"Conv2D {self.name!r}: expected inputs (batch, height, width, {self.in_channels}), "
                             f"got shape {tuple(inputs.shape)}")
        y = conv2d(inputs, self.kernel, self.strides, _PADDINGS[self.padding], dilations=self.dilation_rate)
        if self.bias is not None:
            y = y + self.bias
        return y if self.activation is None else self.activation(y)

    def compute_output_shape(self, input_shape):
        """The output's shape for inputs of `input_shape` (None entries stay None), as Keras's."""
        n, h, w, _ = input_shape
        sides = []
        for size, k, s, d in zip((h, w), self.kernel_size, self.strides, self.dilation_rate):
            if size is None:
                sides.append(None)
            elif self.padding == "same":
                sides.append(-(-size // s))
            else:
                sides.append(max((size - (k - 1) * d - 1) // s + 1, 0))
        return (n, sides[0], sides[1], self.filters)

    def _config(self):
        config = [(None, self.filters), ("kernel_size", self.kernel_size)]
        if self.strides != (1, 1):
            config.append(("strides", self.strides))
        if self.padding != "valid":
            config.append(("padding", repr(self.padding)))
        if self.dilation_rate != (1, 1):
            config.append(("dilation_rate", self.dilation_rate))
        return config + self._common_config()
