"""Every built-in primitive: the forward on raw arrays, then its VJP on Tensors, its kind, and
its CUDA fast path where it has one.

Forwards get their array module from their inputs (`xp_of`), so the same code runs on
every backend. VJPs use gg ops only, so tapes recording a backward pass differentiate it
again. Each VJP states its math in one line. The activations and the fused backward ops
follow the rounding rule written in rounding.py.

The modules, in import order (each imports only those above it):

- _common.py: helpers every family shares (`_xp2`, `_needs_grad`, `zeros_like`, `ones_like`).
- rounding.py: the rounding rule and the helpers that apply it (`_flushed`, `_evaluate`).
- arithmetic.py: add, subtract, multiply, divide, negative, squared_difference, abs, sign,
  square (and the fused backward ops of the two squares), maximum, minimum, where,
  clip_by_value, cast, identity, stop_gradient, the comparisons.
- elementwise_math.py: power, sqrt, exp, log, log1p, sin, cos, and the activations tanh,
  sigmoid, relu, softplus with their fused backward ops.
- shapes.py: broadcast_to, reshape, transpose, expand_dims, squeeze, concat, stack, getitem.
- reductions.py: reduce_sum, reduce_mean, reduce_max, reduce_min, reduce_prod (and the
  backward ops of the first two), and tile, whose VJP is a sum.
- linalg.py: matmul.
- arrays.py: argmax, argmin, argsort (no gradients), gather and take_along_axis (with their
  scatter-add backward ops), cumsum and pad.
- einsum.py: einsum, whose VJP is an einsum per operand.
- conv.py: conv2d (NHWC input, HWIO filters; im2col and one matmul), whose VJPs are conv2d calls.
- special.py: erf (unfused for now: it has no scalar expression).
- updates.py: the optimizers' in-place updates (sgd_update, adam_update, rmsprop_update,
  adagrad_update), reading their per-step values from device memory.
- cuda.py: the CUDA fast paths (the fused kernels, the bias gradient, the fused updates),
  registered on import.

This package re-exports every public name of those modules, so `primitives.X` names them all.
"""
from .arithmetic import (  # noqa: F401  (re-exported)
    abs, abs_vjp, add, add_vjp, cast, cast_vjp, clip_by_value, clip_by_value_vjp, divide,
    divide_vjp, equal, greater, greater_equal, identity, identity_vjp, less, less_equal,
    maximum, maximum_vjp, minimum, minimum_vjp, multiply, multiply_vjp, negative, negative_vjp,
    not_equal, sign, sign_vjp, square, square_backward, square_backward_vjp, square_vjp,
    squared_difference, squared_difference_backward, squared_difference_backward_vjp,
    squared_difference_vjp, stop_gradient, subtract, subtract_vjp, where, where_vjp,
)
from .elementwise_math import (  # noqa: F401  (re-exported)
    cos, cos_vjp, exp, exp_vjp, log, log1p, log1p_vjp, log_vjp, power, power_vjp, relu,
    relu_backward, relu_backward_vjp, relu_vjp, sigmoid, sigmoid_backward, sigmoid_backward_vjp,
    sigmoid_vjp, sin, sin_vjp, softplus, softplus_vjp, sqrt, sqrt_vjp, tanh, tanh_backward,
    tanh_backward_vjp, tanh_vjp,
)
from .shapes import (  # noqa: F401  (re-exported)
    broadcast_to, broadcast_to_vjp, concat, concat_vjp, expand_dims, expand_dims_vjp, getitem,
    getitem_backward, getitem_backward_vjp, getitem_vjp, reshape, reshape_vjp, squeeze,
    squeeze_vjp, stack, stack_vjp, transpose, transpose_vjp,
)
from .reductions import (  # noqa: F401  (re-exported)
    reduce_max, reduce_max_vjp, reduce_mean, reduce_mean_backward, reduce_mean_backward_vjp,
    reduce_mean_vjp, reduce_min, reduce_min_vjp, reduce_prod, reduce_prod_vjp, reduce_sum,
    reduce_sum_backward, reduce_sum_backward_vjp, reduce_sum_vjp, tile, tile_vjp,
)
from .linalg import (  # noqa: F401  (re-exported)
    matmul, matmul_vjp,
)
from .arrays import (  # noqa: F401  (re-exported)
    argmax, argmin, argsort, cumsum, cumsum_vjp, gather, gather_backward, gather_backward_vjp, gather_vjp,
    pad, pad_vjp, take_along_axis, take_along_axis_backward, take_along_axis_backward_vjp,
    take_along_axis_vjp,
)
from .einsum import (  # noqa: F401  (re-exported)
    einsum, einsum_vjp,
)
from .conv import (  # noqa: F401  (re-exported)
    conv2d, conv2d_vjp,
)
from .special import (  # noqa: F401  (re-exported)
    erf, erf_vjp,
)
from .updates import (  # noqa: F401  (re-exported)
    adagrad_update, adam_update, rmsprop_update, sgd_update,
)
from .cuda import (  # noqa: F401  (re-exported)
    reduce_sum_cuda,
)
from ._common import (  # noqa: F401  (re-exported)
    ones_like, zeros_like,
)
