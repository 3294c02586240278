"""gg.Module (variable collection by attribute paths) and the Keras-style layers built on it,
exported as gg.nn.Layer, Dense, Dropout, Flatten and Sequential, with activations and
initializers by name (gg.nn.get_activation, gg.nn.get_initializer)."""
import inspect
import itertools
import numbers
import re
import threading

from . import backend as _backend
from . import ops as _ops
from . import random as _random
from .ops import _tensor
from .primitives import relu, sigmoid, softplus, tanh
from .recording import THREAD as _THREAD
from .tensor import Tensor, Variable


def _walk(value, path, seen, leaf=Variable):
    """(path, object) pairs of the instances of `leaf` (Variables, or optimizers for the
    checkpoints) under `value`, through Modules, lists, tuples and dicts, recursively; each
    leaf once, at the first path that reaches it.

    Two passes: the first follows public attributes only, the second every attribute,
    `_private` ones included. A leaf reachable without a private attribute therefore keeps
    the path it had when private attributes were not walked at all (checkpoint names of
    public attributes do not move), and the leaves only private attributes reach come after
    all the others, named by their attribute names as they are ("_layer/kernel")."""
    yield from _visit(value, path, seen, set(), leaf, False)
    yield from _visit(value, path, seen, set(), leaf, True)


def _visit(value, path, seen, visited, leaf, private):
    if isinstance(value, leaf):
        if id(value) not in seen:
            seen.add(id(value))
            yield path, value
    elif isinstance(value, (Module, list, tuple, dict)) and id(value) not in visited:
        visited.add(id(value))  # containers too: a list holding itself ends the walk
        if isinstance(value, Module):
            items = ((key, item) for key, item in list(vars(value).items())
                     if private or not key.startswith("_"))
        else:
            items = list(value.items()) if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            yield from _visit(item, f"{path}/{key}" if path else str(key), seen, visited, leaf, private)


class Module:
    """A container whose Variables are found through its attributes, recursively through
    lists, tuples, dicts and sub-modules (like tf.Module).

    Every attribute is visited, `_private` ones included (as tf.Module does): a layer kept as
    `self._layer` is trained and saved with the rest. Attributes are visited in the order
    they were set (TensorFlow sorts them by name), public ones first: a Variable is listed
    once, at the first path that reaches it through public attributes only, and the
    Variables that only `_private` attributes reach come last, under paths such as
    "_layer/kernel" (these are also their checkpoint names).
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


# ---------------------------------------------------------------------------------------
# Activations and initializers by name (as keras.activations.get / keras.initializers.get)

# gg.nn adds "softmax" and "log_softmax", defined there.
_ACTIVATIONS = {"linear": None, "relu": relu, "sigmoid": sigmoid, "tanh": tanh, "softplus": softplus}


def get_activation(identifier):
    """The activation function `identifier` names: None and "linear" give None (no
    activation); "relu", "sigmoid", "tanh", "softplus", "softmax" and "log_softmax" the gg.nn
    functions; a callable is returned as it is. An unknown name raises ValueError listing the
    known ones."""
    if identifier is None or callable(identifier):
        return identifier
    if isinstance(identifier, str):
        if identifier in _ACTIVATIONS:
            return _ACTIVATIONS[identifier]
        raise ValueError(f"unknown activation {identifier!r}; use None, a callable or one of "
                         f"{', '.join(repr(name) for name in sorted(_ACTIVATIONS))}")
    raise TypeError(f"an activation must be None, a name or a callable, got {identifier!r}")


def _fans(shape):
    """(fan_in, fan_out) of a weight shape as Keras computes them: a kernel (in, out), or a
    convolution's (..., in, out) times its receptive field."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = 1
    for size in shape[:-2]:
        receptive *= size
    return shape[-2] * receptive, shape[-1] * receptive


def _derived_seed(seed, index):
    """The seed of the index-th draw made from `seed` (None stays None: the global generator)."""
    return None if seed is None else (seed * 1_000_003 + index) % 2 ** 63


def _truncated_normal(shape, stddev, dtype, seed):
    """N(0, stddev^2) samples redrawn until all lie within two standard deviations."""
    x = _random.normal(shape, stddev=stddev, dtype=dtype, seed=seed)
    for index in itertools.count(1):
        outside = _ops.abs(x) > 2 * stddev
        if x.size == 0 or not bool(_ops.reduce_any(outside)):
            return x
        x = _ops.where(outside, _random.normal(shape, stddev=stddev, dtype=dtype, seed=_derived_seed(seed, index)), x)


_TRUNCATION = 0.87962566103423978  # the stddev of a standard normal truncated to [-2, 2]


def _variance_scaling(scale, mode, distribution):
    def init(shape, dtype, seed):
        fan_in, fan_out = _fans(shape)
        n = max(1.0, fan_in if mode == "fan_in" else (fan_in + fan_out) / 2)
        if distribution == "uniform":
            limit = (3.0 * scale / n) ** 0.5
            return _random.uniform(shape, -limit, limit, dtype=dtype, seed=seed)
        return _truncated_normal(shape, (scale / n) ** 0.5 / _TRUNCATION, dtype, seed)
    return init


_INITIALIZERS = {
    "zeros": lambda shape, dtype, seed: _ops.zeros(shape, dtype=dtype),
    "ones": lambda shape, dtype, seed: _ops.ones(shape, dtype=dtype),
    "glorot_uniform": _variance_scaling(1.0, "fan_avg", "uniform"),
    "glorot_normal": _variance_scaling(1.0, "fan_avg", "truncated_normal"),
    "he_uniform": _variance_scaling(2.0, "fan_in", "uniform"),
    "he_normal": _variance_scaling(2.0, "fan_in", "truncated_normal"),
    "random_normal": lambda shape, dtype, seed: _random.normal(shape, stddev=0.05, dtype=dtype, seed=seed),
    "random_uniform": lambda shape, dtype, seed: _random.uniform(shape, -0.05, 0.05, dtype=dtype, seed=seed),
    "normal": lambda shape, dtype, seed: _random.normal(shape, dtype=dtype, seed=seed),
}


def _takes_seed(function):
    """Whether `function` takes a third positional argument (the seed)."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return True
    return len([p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) >= 3


def get_initializer(identifier):
    """An initializer `f(shape, dtype, seed)` returning the initial value, from:

    - a name: "zeros", "ones", "glorot_uniform" and "glorot_normal" (Glorot/Xavier),
      "he_uniform" and "he_normal" (He/Kaiming), "random_normal" (stddev 0.05) and
      "random_uniform" ([-0.05, 0.05)), as Keras defines them (the *_normal ones truncated at
      two standard deviations), and "normal" (standard normal: the seed tutorials'
      tf.random_normal);
    - a number: every entry set to it (bias_initializer=0.1 in the tutorials);
    - a callable `f(shape, dtype)` (Keras's form) or `f(shape, dtype, seed)`, returning an
      array or a Tensor.

    An unknown name raises ValueError listing the known ones."""
    if isinstance(identifier, str):
        if identifier in _INITIALIZERS:
            return _INITIALIZERS[identifier]
        raise ValueError(f"unknown initializer {identifier!r}; use a number, a callable f(shape, dtype) or "
                         f"one of {', '.join(repr(name) for name in sorted(_INITIALIZERS))}")
    if isinstance(identifier, numbers.Real) and not isinstance(identifier, bool):
        return lambda shape, dtype, seed: _ops.fill(shape, identifier, dtype=dtype)
    if callable(identifier):
        if _takes_seed(identifier):
            return identifier
        return lambda shape, dtype, seed: identifier(shape, dtype)
    raise TypeError(f"an initializer must be a name, a number or a callable, got {identifier!r}")


# ---------------------------------------------------------------------------------------
# Layers

_NAMES = {}
_NAMES_LOCK = threading.Lock()


def _unique_name(cls):
    """"dense", then "dense_1", "dense_2"... per class, as Keras names layers."""
    base = re.sub(r"([a-z])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", cls.__name__)).lower()
    with _NAMES_LOCK:
        count = _NAMES.get(base, 0)
        _NAMES[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


def _positive_int(what, value, optional=False):
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def _shape_text(shape):
    return "?" if shape is None else "(" + ", ".join("None" if s is None else str(s) for s in shape) + \
        ("," if len(shape) == 1 else "") + ")"


class Layer(Module):
    """The base of the gg.nn layers (like keras.layers.Layer): a Module that builds its
    Variables at its first call, from the input's shape, and casts its inputs to its dtype.

    A subclass defines `build(self, input_shape)` (creating its Variables) and
    `call(self, inputs, ...)`. Calling the layer:

    1. converts the input to a Tensor (NumPy arrays and lists on the default device) and
       casts it to the layer's dtype when it is a float (Keras's autocast: float64 data into a
       float32 layer computes in float32; the gradient flows back to the input in its own
       dtype) or, for layers that compute in floating point (`cast_integers`), an integer or
       bool;
    2. builds the layer if it is not built yet: `build(input.shape)` on the input's device,
       so the Variables live where the data is;
    3. returns `call(input, *args, **kwargs)`.

    Args:
      dtype: the layer's dtype (float32 by default); None for a layer that casts nothing.
      name: the layer's name; by default the class name in snake case, numbered from the
        second one on ("dense", "dense_1"...), as in Keras.
    """

    cast_integers = False
    built = False  # class defaults, for subclasses whose __init__ does not call Layer's
    dtype = None
    name = None

    def __init__(self, dtype=_backend.float32, name=None):
        if dtype is not None:
            dtype = _backend.as_dtype(dtype)
            if dtype.kind != "f":
                raise ValueError(f"{type(self).__name__}: dtype must be a float dtype, got {dtype}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, got {name!r}")
        self.name = _unique_name(type(self)) if name is None else name
        self.dtype = dtype
        self.built = False

    def build(self, input_shape):
        """Create the Variables for inputs of shape `input_shape` (nothing by default)."""

    def call(self, inputs):
        raise NotImplementedError(f"{type(self).__name__} defines no call(inputs)")

    def _common_config(self):
        """The repr entries of the settings a kernel-and-bias layer shares (activation,
        use_bias, dtype), each only when it is not the default."""
        config = []
        given = self._activation_given
        if given is not None:
            config.append(("activation", repr(given) if isinstance(given, str) else getattr(given, "__name__", given)))
        if not self.use_bias:
            config.append(("use_bias", False))
        if self.dtype != _backend.float32:
            config.append(("dtype", repr(self.dtype.name)))
        return config

    def _kernel_and_bias(self, kernel_shape, bias_shape):
        """(kernel, bias) Variables of these shapes from the layer's `_kernel_initializer`
        and `_bias_initializer` (bias None without `use_bias`), each checked to have the
        shape asked for; the bias takes a seed derived from the layer's."""
        kind = type(self).__name__
        kernel = Variable(self._kernel_initializer(kernel_shape, self.dtype, self._seed), dtype=self.dtype,
                          name="kernel")
        if tuple(kernel.shape) != kernel_shape:
            raise ValueError(f"{kind}: kernel_initializer returned shape {tuple(kernel.shape)}, expected {kernel_shape}")
        bias = None
        if self.use_bias:
            bias = Variable(self._bias_initializer(bias_shape, self.dtype, _derived_seed(self._seed, 1)),
                            dtype=self.dtype, name="bias")
            if tuple(bias.shape) != bias_shape:
                raise ValueError(f"{kind}: bias_initializer returned shape {tuple(bias.shape)}, expected {bias_shape}")
        return kernel, bias

    def _autocast(self, inputs):
        try:
            x = _tensor(inputs)
        except (TypeError, ValueError) as error:
            if self.built:  # None, a string...: the layer's first op names it ("matmul: input 0 is None")
                return inputs
            raise type(error)(f"{type(self).__name__} {self.name!r}: cannot build from the input {inputs!r}: "
                              f"{error}") from None
        if self.dtype is not None and x.dtype != self.dtype and (
                x.dtype.kind == "f" or (self.cast_integers and x.dtype.kind in "iub")):
            x = _ops.cast(x, self.dtype)
        return x

    def __call__(self, inputs, *args, **kwargs):
        x = self._autocast(inputs)
        if not self.built:
            self._build_now(tuple(x.shape), getattr(self, "_device", None) or x.device)
        return self.call(x, *args, **kwargs)

    def _build_now(self, input_shape, device):
        # The initial values are drawn once, not computed by the step: a gg.function capturing
        # the first call does not record them (it would run eagerly ever after for the draw).
        state = _THREAD.state
        capture, state.capture = state.capture, None
        try:
            with _backend.device(device):
                self.build(input_shape)
        finally:
            state.capture = capture
        self.built = True

    def _config(self):
        """The constructor arguments repr shows, as (name or None for positional, value)."""
        return []

    def __repr__(self):
        items = [repr(value) if key is None else f"{key}={value}" for key, value in self._config()]
        items.append(f"name={self.name!r}")
        return f"{type(self).__name__}({', '.join(items)})"


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _dense_keras(units, activation=None, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 dtype="float32", *, in_features=None, name=None, seed=None, device=None):
    """Dense's signature, as Keras's plus `in_features`, `seed` and `device`."""


def _dense_legacy(in_features, units, activation=None, kernel_initializer="glorot_uniform", bias_initializer=0.0,
                  seed=None, dtype="float32", device=None, *, use_bias=True, name=None):
    """Dense's signature before it followed Keras, kept for two leading ints."""


_DENSE_KERAS = inspect.signature(_dense_keras)
_DENSE_LEGACY = inspect.signature(_dense_legacy)


class Dense(Layer):
    """y = activation(x @ kernel + bias), kernel of shape (in_features, units), bias (units,)
    (like keras.layers.Dense). The input needs rank 2 or more; its last axis has
    `in_features` entries.

        gg.nn.Dense(64, activation="relu")            # built at its first call
        gg.nn.Dense(64, "relu", in_features=32)       # built now
        gg.nn.Dense(32, 64, activation=gg.nn.relu)    # the older form: (in_features, units)

    Args:
      units: size of the output's last axis.
      activation: None (linear), a name ("relu", "sigmoid", "tanh", "softplus", "softmax",
        "log_softmax", "linear"; see `get_activation`) or a callable.
      use_bias: False for no bias (`bias` is then None).
      kernel_initializer, bias_initializer: a name ("glorot_uniform", "zeros", "he_normal"...;
        see `get_initializer`), a number (every entry), or a callable `f(shape, dtype)` or
        `f(shape, dtype, seed)` returning the initial value.
      dtype: the Variables' dtype and the one the layer computes in: float inputs, and
        integer ones, are cast to it (float32 by default).
      in_features: the size of the input's last axis, to build the layer at construction
        (on `device`, else the default device). Without it, the layer builds at its first
        call from the input's last axis, on the input's device (or `device`).
      name: the layer's name ("dense", "dense_1"... by default).
      seed: makes the initialization reproducible: the kernel initializer gets `seed`, the
        bias initializer a seed derived from it.
      device: where the Variables are created (by default where the layer is built).

    Backward compatibility: two leading positional ints, or one with `units=` given by
    keyword, are read as the older signature
    `Dense(in_features, units, activation=None, kernel_initializer="glorot_uniform",
    bias_initializer=0.0, seed=None, dtype=float32, device=None)`, so `Dense(1, 3, gg.nn.sigmoid)`
    means 1 input feature and 3 units, as it always has. `Dense(3, "relu")` and `Dense(3)`
    are the Keras form (3 units). `kernel` and `bias` are None until the layer is built.
    """

    cast_integers = True

    def __init__(self, *args, **kwargs):
        legacy = (len(args) >= 2 and _is_int(args[0]) and _is_int(args[1])) or (
            len(args) >= 1 and _is_int(args[0]) and "units" in kwargs)
        try:
            bound = (_DENSE_LEGACY if legacy else _DENSE_KERAS).bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"Dense: {error}") from None
        bound.apply_defaults()
        a = bound.arguments
        self.kernel = None  # set by build; first, so that the paths come in the order kernel, bias
        self.bias = None
        super().__init__(a["dtype"], a["name"])
        self.units = _positive_int("Dense: units", a["units"])
        self.in_features = _positive_int("Dense: in_features", a["in_features"], optional=True)
        try:
            self.activation = get_activation(a["activation"])
        except (TypeError, ValueError) as error:
            raise type(error)(f"Dense: {error}") from None
        self.use_bias = bool(a["use_bias"])
        try:
            self._kernel_initializer = get_initializer(a["kernel_initializer"])
            self._bias_initializer = get_initializer(a["bias_initializer"]) if self.use_bias else None
        except (TypeError, ValueError) as error:
            raise type(error)(f"Dense: {error}") from None
        self._activation_given = a["activation"]
        self._seed = a["seed"]
        self._device = a["device"]
        if self.in_features is not None:
            self._build_now((None, self.in_features), self._device or _backend.default_device())

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"Dense {self.name!r}: the input needs rank 2 or more (a batch of vectors), got shape "
                             f"{tuple(input_shape)}")
        in_features = _positive_int(f"Dense {self.name!r}: the input's last axis", input_shape[-1])
        if self.in_features is not None and in_features != self.in_features:
            raise ValueError(f"Dense {self.name!r}: in_features={self.in_features} but the input's last axis has "
                             f"{in_features}")
        kernel, bias = self._kernel_and_bias((in_features, self.units), (self.units,))
        self.in_features, self.kernel, self.bias = in_features, kernel, bias

    def call(self, inputs):
        if isinstance(inputs, (Tensor, Variable)) and (inputs.ndim < 2 or inputs.shape[-1] != self.in_features):
            raise ValueError(f"Dense {self.name!r}: expected inputs whose last axis has {self.in_features} entries "
                             f"(rank 2 or more), got shape {tuple(inputs.shape)}")
        y = _ops.matmul(inputs, self.kernel)
        if self.bias is not None:
            y = y + self.bias
        return y if self.activation is None else self.activation(y)

    def _config(self):
        config = [(None, self.units)] + self._common_config()
        if self.in_features is not None:
            config.append(("in_features", self.in_features))
        return config


# help(gg.nn.Dense) and inspect.signature show the Keras form.
Dense.__init__.__signature__ = _DENSE_KERAS.replace(parameters=[
    inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *_DENSE_KERAS.parameters.values()])


class Dropout(Layer):
    """Sets a fraction `rate` of the inputs to 0 while training, scaling the others by
    1 / (1 - rate) so that the expected sum is unchanged (like keras.layers.Dropout).

    `layer(x)` and `layer(x, training=False)` return x (cast to the layer's dtype, like every
    layer); `layer(x, training=True)` drops. With `seed`, the masks are reproducible: the
    n-th training call of any Dropout(rate, seed=s) draws the same mask (each call a new
    one); without it they come from gg.random's generator (see gg.random.set_seed).
    """

    cast_integers = True

    def __init__(self, rate, seed=None, dtype=_backend.float32, name=None):
        super().__init__(dtype, name)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be a number in [0, 1), got {rate!r}")
        if seed is not None and not _is_int(seed):
            raise TypeError(f"Dropout: seed must be an int or None, got {seed!r}")
        self.rate = float(rate)
        self.seed = seed
        self._calls = 0

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        seed = _derived_seed(self.seed, self._calls)
        self._calls += 1
        keep = _random.uniform(inputs.shape, dtype=inputs.dtype, seed=seed, device=inputs.device) >= self.rate
        return _ops.where(keep, inputs * (1.0 / (1.0 - self.rate)), _ops.zeros_like(inputs))

    def _config(self):
        return [(None, self.rate)] + ([("seed", self.seed)] if self.seed is not None else [])


class Flatten(Layer):
    """Reshapes (batch, d1, d2, ...) to (batch, d1 * d2 * ...) (like keras.layers.Flatten); a
    (batch,) input becomes (batch, 1). Float inputs are cast to the layer's dtype; integer
    ones keep theirs."""

    def __init__(self, dtype=_backend.float32, name=None):
        super().__init__(dtype, name)

    def call(self, inputs):
        if inputs.ndim == 0:
            raise ValueError(f"Flatten {self.name!r}: the input needs a batch axis, got a scalar")
        size = 1
        for d in inputs.shape[1:]:
            size *= d
        return _ops.reshape(inputs, (inputs.shape[0], size))


_TAKES_TRAINING = {}


def _takes_training(layer):
    """Whether calling `layer` accepts a `training=` keyword."""
    if isinstance(layer, Layer) and type(layer).__call__ is Layer.__call__:
        target, key = type(layer).call, type(layer)
    else:
        target, key = layer, None
    if key in _TAKES_TRAINING:
        return _TAKES_TRAINING[key]
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        takes = False
    else:
        takes = any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in parameters)
    if key is not None:
        _TAKES_TRAINING[key] = takes
    return takes


class Sequential(Layer):
    """A stack of layers, each called on the previous one's output (like keras.Sequential).

        model = gg.nn.Sequential([gg.nn.Dense(64, "relu"), gg.nn.Dropout(0.2), gg.nn.Dense(1)])
        y = model(x, training=True)

    `model(x, training=None)` passes `training` to the layers that take it (Dropout, nested
    Sequentials) and calls the others on the input alone. Layers are gg.nn layers, other
    Modules, or any callable (gg.nn.relu...). `model.layers` is the list of layers;
    `add(layer)` appends one, `pop()` removes the last. The Variables are those of the
    layers, named "layers/<i>/kernel"... The model casts nothing itself: each layer casts
    its own input. `summary()` needs the output shapes, known once the model has been
    called (or `build(input_shape)` has run).
    """

    def __init__(self, layers=None, name=None):
        super().__init__(None, name)
        self.layers = []
        self._output_shapes = []
        for layer in layers or ():
            self.add(layer)

    def add(self, layer):
        """Append `layer` (a callable) to the stack."""
        if not callable(layer):
            raise TypeError(f"Sequential.add: a layer must be callable, got {layer!r}")
        self.layers.append(layer)
        self.built = False

    def pop(self):
        """Remove and return the last layer."""
        if not self.layers:
            raise IndexError("Sequential.pop: there are no layers")
        self.built = False
        return self.layers.pop()

    def build(self, input_shape):
        """Build every layer by calling the model on zeros of `input_shape` (None entries,
        such as the batch size, taken as 1) on the default device."""
        shape = tuple(1 if d is None else d for d in input_shape)
        self(_ops.zeros(shape, dtype=next((layer.dtype for layer in self.layers if isinstance(layer, Layer)
                                           and layer.dtype is not None), _backend.float32)))

    def __call__(self, inputs, training=None):
        x = inputs
        shapes = []
        for layer in self.layers:
            x = layer(x, training=training) if _takes_training(layer) else layer(x)
            shapes.append((None,) + tuple(x.shape[1:]) if getattr(x, "ndim", 0) >= 1 else tuple(getattr(x, "shape", ())))
        self._output_shapes = shapes
        self.built = True
        return x

    def call(self, inputs, training=None):
        return self(inputs, training=training)

    def summary(self, print_fn=print):
        """A table of the layers (name and type), their output shapes (None for the batch
        axis) and parameter counts, with the totals, as Keras prints it. Printed with
        `print_fn` (returning None); `print_fn=None` returns the text instead. Before the model
        has been called or built, the shapes are "?", the layers without Variables yet say
        "unbuilt", and the title says the model is unbuilt."""
        rows = []
        known = self.built and len(self._output_shapes) == len(self.layers)
        for index, layer in enumerate(self.layers):
            kind = type(layer).__name__
            name = getattr(layer, "name", None) or getattr(layer, "__name__", kind)
            shape = _shape_text(self._output_shapes[index]) if known else "?"
            if isinstance(layer, Layer) and not layer.built and type(layer).build is not Layer.build:
                params = "unbuilt"  # its Variables do not exist yet
            elif isinstance(layer, Module):
                params = f"{sum(v.size for v in layer.variables):,}"
            else:
                params = "0"
            rows.append((f"{name} ({kind})", shape, params))
        header = ("Layer (type)", "Output Shape", "Param #")
        widths = [max([len(header[i])] + [len(row[i]) for row in rows]) + 4 for i in range(3)]
        widths[0], widths[1] = max(widths[0], 29), max(widths[1], 26)
        line = lambda cells: " " + "".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        width = sum(widths) + 1
        trainable = sum(v.size for v in self.trainable_variables)
        total = sum(v.size for v in self.variables)
        title = f'Model: "{self.name}"'
        if not known:
            title += " (unbuilt: call the model on a batch or call build(input_shape) to see the shapes)"
        lines = [title, "_" * width, line(header), "=" * width]
        lines += [line(row) for row in rows]
        if not rows:
            lines.append(" (no layers)")
        lines += ["=" * width, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", "_" * width]
        text = "\n".join(lines)
        if print_fn is None:
            return text
        for text_line in lines:
            print_fn(text_line)
        return None

    def __repr__(self):
        if not self.layers:
            return f"Sequential([], name={self.name!r})"
        body = "".join(f"    {layer!r},\n" for layer in self.layers)
        return f"Sequential([\n{body}], name={self.name!r})"
