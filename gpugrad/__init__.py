"""gpugrad: automatic differentiation with TensorFlow 2 semantics on NumPy (and CuPy).

    import gpugrad as gg
    x = gg.Variable(3.0)
    with gg.GradientTape() as tape:
        y = x * x
    tape.gradient(y, x)   # 6.0
"""
from ._version import __version__  # noqa: F401
from .tensor import Tensor, Variable, constant, from_dlpack
from .backend import (  # noqa: F401
    bool_, complex64, complex128, device, devices, float16, float32, float64, int8, int16, int32,
    int64, set_default_device, uint8,
)
from .backend import default_device as get_default_device  # noqa: F401
from .dispatch import primitive  # noqa: F401
from .ops import *  # noqa: F401,F403  (binds the Tensor operators)
from .tape import GradientTape, UnconnectedGradients, custom_gradient, gradients  # noqa: F401
from .checks import GradcheckError, approximate_derivative, approximate_gradient, gradcheck  # noqa: F401
from .module import Module  # noqa: F401
from .checkpoints import RestoreResult, list_checkpoint, restore, save  # noqa: F401
from .function import function  # noqa: F401
from . import data, debugging, losses, nn, optimizers, random, training  # noqa: F401
from .training import History, fit  # noqa: F401
from .debugging import explain_gradient  # noqa: F401
from . import autodiff  # noqa: F401
from .autodiff import ForwardAccumulator, grad, hessian, hvp, jvp, value_and_grad, vectorized_map  # noqa: F401

# gg.tensor is the function (as torch.tensor), not the submodule gpugrad/tensor.py that the
# import above bound under that name. Bound last, so no import in this file rebinds it; a
# later `import gpugrad.tensor` finds the module in sys.modules and leaves the name alone.
from .tensor import tensor  # noqa: E402,F401
