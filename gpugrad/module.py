"""gg.Module (variable collection by attribute paths) and the Dense layer built on it."""
from . import backend as _backend
from . import ops as _ops
from . import random as _random
from .tensor import Variable


def _walk(value, path, seen, leaf=Variable):
    """(path, object) pairs of the instances of `leaf` (Variables, or optimizers for the
    checkpoints) under `value`, through Modules, lists, tuples and dicts, recursively; each
    leaf and Module once, at the first path that reaches it."""
    if isinstance(value, leaf):
        if id(value) not in seen:
            seen.add(id(value))
            yield path, value
    elif isinstance(value, (Module, list, tuple, dict)) and id(value) not in seen:
        seen.add(id(value))  # containers too: a list holding itself ends the walk
        if isinstance(value, Module):
            items = ((key, item) for key, item in vars(value).items() if not key.startswith("_"))
        else:
            items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            yield from _walk(item, f"{path}/{key}" if path else str(key), seen, leaf)


class Module:
    """A container whose Variables are found through its public attributes, recursively
    through lists, tuples, dicts and sub-modules (like tf.Module).

    Attributes are visited in the order they were set (TensorFlow sorts them by name);
    attributes whose name starts with "_" are private and not visited. A Variable reached
    twice is listed once, at the first path.
    """

    def named_variables(self):
        """[(path, Variable), ...], paths joined by "/" such as "layers/0/kernel"."""
        return list(_walk(self, "", set()))

    @property
    def variables(self):
        """Every Variable of the module and its sub-modules."""
        return [v for _, v in _walk(self, "", set())]

    @property
    def trainable_variables(self):
        """The Variables with trainable=True."""
        return [v for _, v in _walk(self, "", set()) if v.trainable]


def _glorot_uniform(shape, dtype, seed):
    fan_in, fan_out = shape
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    return _random.uniform(shape, -limit, limit, dtype=dtype, seed=seed)


def _normal(shape, dtype, seed):
    return _random.normal(shape, dtype=dtype, seed=seed)


_INITIALIZERS = {"glorot_uniform": _glorot_uniform, "normal": _normal}


class Dense(Module):
    """y = activation(x @ kernel + bias), kernel of shape (in_features, units), bias (units,).

    Args:
        in_features: size of the last axis of the input (given up front, as in PyTorch,
            so that the variables exist before the first call).
        units: size of the output's last axis.
        activation: a callable applied to the result, e.g. gg.nn.sigmoid; None for linear.
        kernel_initializer: "glorot_uniform" (the default, as in Keras), "normal" (standard
            normal samples, the seed tutorials' tf.random_normal) or a callable
            `f(shape, dtype, seed)` returning the initial value.
        bias_initializer: the initial value of every bias entry (0.0 by default; the seed
            tutorials use 0.1).
        seed: makes the kernel initialization reproducible.
    """

    def __init__(self, in_features, units, activation=None, kernel_initializer="glorot_uniform",
                 bias_initializer=0.0, seed=None, dtype=_backend.float32, device=None):
        for what, value in (("in_features", in_features), ("units", units)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Dense: {what} must be a positive int, got {value!r}")
        if activation is not None and not callable(activation):
            raise TypeError(f"Dense: activation must be callable or None, got {activation!r}")
        init = _INITIALIZERS.get(kernel_initializer) if isinstance(kernel_initializer, str) else kernel_initializer
        if not callable(init):
            raise ValueError(f"Dense: unknown kernel_initializer {kernel_initializer!r}; use one of "
                             f"{sorted(_INITIALIZERS)} or a callable f(shape, dtype, seed)")
        dtype = _backend.as_dtype(dtype)
        with _backend.device(device or _backend.default_device()):
            kernel = init((in_features, units), dtype, seed)
            if tuple(kernel.shape) != (in_features, units):
                raise ValueError(f"Dense: kernel_initializer returned shape {tuple(kernel.shape)}, expected "
                                 f"{(in_features, units)}")
            self.kernel = Variable(kernel, dtype=dtype, name="kernel")
            self.bias = Variable(_ops.fill((units,), bias_initializer, dtype=dtype), name="bias")
        self.activation = activation

    def __call__(self, x):
        y = _ops.matmul(x, self.kernel) + self.bias
        return y if self.activation is None else self.activation(y)
