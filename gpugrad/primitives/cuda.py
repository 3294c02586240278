"""The CUDA fast paths of the primitives: the fused elementwise backward ops launch their
kernels (cuda_kernels/<name>.cu) through `_fused_kernel`, reduce_sum over axis 0 of a
matrix (a dense layer's bias gradient) launches bias_gradient.cu, and the optimizers'
updates launch their fused kernels. Importing this module registers them; other inputs
(dtypes other than float32 and float64, for one) fall back to the xp forwards."""
from .. import kernels as _kernels
from .arithmetic import square_backward, squared_difference_backward
from .elementwise_math import relu_backward, sigmoid_backward, tanh_backward
from .reductions import reduce_sum
from .updates import adagrad_update, adam_update, rmsprop_update, sgd_update


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


squared_difference_backward.impl("cuda", _fused_kernel("squared_difference_backward"))
square_backward.impl("cuda", _fused_kernel("square_backward"))
tanh_backward.impl("cuda", _fused_kernel("tanh_backward"))
sigmoid_backward.impl("cuda", _fused_kernel("sigmoid_backward"))
relu_backward.impl("cuda", _fused_kernel("relu_backward"))


@reduce_sum.impl("cuda")
def reduce_sum_cuda(x, *, axis, keepdims):  # a dense layer's bias gradient: column sums, one kernel
    if axis != (0,) or x.ndim != 2 or x.dtype.kind != "f" or x.dtype.itemsize not in (4, 8):
        return NotImplemented
    out = _kernels.bias_gradient(x)
    return out.reshape(1, -1) if keepdims else out


def _fused_update(launch):
    """The CUDA path of an update primitive: its fused kernel for float32 and float64
    variables, the xp reference (NotImplemented) otherwise."""
    def fast(param, *arrays, **params):
        if param.dtype.kind != "f" or param.dtype.itemsize not in (4, 8):
            return NotImplemented
        return launch(param, *arrays, **params)
    fast.__name__ = f"{launch.__name__}_cuda"
    return fast


for _op, _launch in ((sgd_update, _kernels.sgd_update), (adam_update, _kernels.adam_update),
                     (rmsprop_update, _kernels.rmsprop_update), (adagrad_update, _kernels.adagrad_update)):
    _op.impl("cuda", _fused_update(_launch))

