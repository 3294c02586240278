"""Tensor and Variable: an array plus a device string, kept light.

No math here: operators forward to the primitives; arrays come from the backend.
"""
import functools
import itertools
import operator

from . import backend as _backend
from .recording import THREAD as _THREAD, TracedNumber, host_read as _host_read


class _ArrayValue:
    """Reading API and operators shared by Tensor and Variable (which are not subclasses of
    each other, as in TensorFlow)."""

    __slots__ = ()

    @property
    def shape(self):
        return self._data.shape

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def size(self):
        return self._data.size

    @property
    def device(self):
        return self._device

    def to(self, device):
        """A Tensor copy of the value on `device` ("cpu", "cuda", "cuda:N")."""
        return constant(self, device=device)

    def numpy(self):
        """A host numpy.ndarray copy of the value."""
        _host_read("numpy()")
        return _backend.backend_of(self._device).to_host(self._data)

    def __array__(self, dtype=None, copy=None):
        _host_read("a conversion to a numpy array")
        if self._device != "cpu":
            raise TypeError(f"a tensor on {self._device} cannot become a numpy array implicitly; call .numpy()")
        return _backend.host_array(self._data, dtype, copy)

    def __dlpack__(self, *args, **kwargs):
        _host_read("__dlpack__()")
        return _backend.as_array(self._data).__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return _backend.as_array(self._data).__dlpack_device__()

    def _item(self, what):
        _host_read(f"{what}()")
        if self._data.size != 1:
            raise TypeError(f"{what}() needs a tensor of one element, got shape {self._data.shape}")
        return self._data.item()

    def item(self):
        """The value of a one-element tensor (any shape of size 1) as a Python scalar: float,
        int, bool or complex, by dtype. A host read (a sync on a GPU)."""
        _host_read("item()")
        if self._data.size != 1:
            raise ValueError(f"item() needs a tensor of one element, got shape {tuple(self._data.shape)} "
                             f"({self._data.size} elements); index one element first (t[0]), reduce the tensor "
                             f"(t.sum(), t.mean()), or read them all with t.numpy()")
        return self._data.item()

    def __format__(self, spec):
        """f"{t}" is str(t); f"{t:.4f}" formats a one-element tensor as its Python scalar does."""
        if not spec:
            return str(self)
        _host_read("format()")
        if self._data.size != 1:
            raise TypeError(f"the format spec {spec!r} applies to a tensor of one element, but this one has shape "
                            f"{tuple(self._data.shape)}; format its elements one by one, or use f\"{{t}}\" for "
                            f"the whole tensor")
        return format(self._data.item(), spec)

    def __float__(self):
        return float(self._item("float"))

    def __int__(self):
        return int(self._item("int"))

    def __bool__(self):
        _host_read("bool()")
        if self._data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self._data.shape} is ambiguous: use "
                             f"gg.reduce_any(t) or gg.reduce_all(t) to ask whether any or every element is true")
        return bool(self._data)

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        for i in range(self._data.shape[0]):
            yield self[i]

    __hash__ = object.__hash__  # by identity, so tensors can key a dict despite elementwise ==
    __array_ufunc__ = None  # numpy scalars and arrays defer to our operators: np.float32(2) * t is a Tensor

    def _value_repr(self):
        _host_read("repr()")
        return str(_backend.backend_of(self._device).to_host(self._data))

    # The arithmetic and comparison operators, indexing and Variable.value() are ops: gpugrad/ops.py
    # binds them to these classes where it defines them.
    def __pos__(self): return self


class Tensor(_ArrayValue):
    """An immutable array on a device. Create with `gg.constant`; ops return Tensors.

    `_node` is the record of the op that produced it, set only when a tape recorded it.
    """

    __slots__ = ("_data", "_device", "_node", "__weakref__")

    def __init__(self, data, device):
        self._data = data
        self._device = device
        self._node = None

    def __repr__(self):
        return (f"<gg.Tensor shape={self.shape} dtype={self.dtype} device={self._device} "
                f"numpy={self._value_repr()}>")


_variable_counter = itertools.count()


class Variable(_ArrayValue):
    """A mutable, named holder of a value (TensorFlow's tf.Variable).

    Usable wherever a Tensor is; `isinstance(v, gg.Tensor)` is False, as in TensorFlow.
    Assignments update the same device buffer in place, are never recorded on a tape, and
    bump `_version`, so a gradient that would need the overwritten value raises instead.
    The check is per recorded op: a non-linear op that read the Variable counts as needing
    it (`v * 3` too, although its gradient would not read `v`); linear ops (add, reshape,
    reductions...) never do.
    """

    __slots__ = ("_data", "_device", "_version", "_serial", "trainable", "name", "__weakref__")
    _node = None  # a Variable is always a leaf of the recorded history

    def __init__(self, initial_value, dtype=None, trainable=True, name=None, device=None):
        data, dev = _to_array(initial_value, dtype, device)
        self._data = data
        self._device = dev
        self._version = 0
        self.trainable = bool(trainable)
        self._serial = number = next(_variable_counter)  # creation order
        self.name = name if name is not None else ("Variable" if number == 0 else f"Variable_{number}")

    def __repr__(self):
        return (f"<gg.Variable '{self.name}' shape={self.shape} dtype={self.dtype} "
                f"device={self._device} numpy={self._value_repr()}>")

    def _new_value(self, value, what):
        """The array to write: a tensor of the Variable's dtype and device, or a value that
        converts to its dtype without changing (see backend.exact_cast), as TensorFlow checks."""
        if type(value) is Tensor or type(value) is Variable:
            if value._device != self._device:
                raise ValueError(f"{what}: value is on {value._device} but Variable '{self.name}' is on "
                                 f"{self._device}")
            if value._data.dtype != self._data.dtype:
                raise TypeError(f"{what}: value has dtype {value.dtype} but Variable '{self.name}' has dtype "
                                f"{self.dtype}; cast it first: gg.cast(value, '{self.dtype}')")
            data = value._data
        else:
            if type(value) is TracedNumber:
                value = value.used("copied into a tensor")
            backend = _backend.backend_of(self._device)
            context = f"{what} to Variable '{self.name}' ({self.dtype})"
            if hasattr(value, "dtype"):  # an array: converted to the Variable's dtype only if no value changes
                data = _backend.exact_cast(backend.asarray(value), self._data.dtype, context)
            else:
                try:
                    data = backend.asarray(value, self._data.dtype)
                except (TypeError, ValueError, OverflowError) as error:
                    raise type(error)(f"{context}: {error}") from None
        if data.shape != self._data.shape:
            raise ValueError(f"{what}: value of shape {data.shape} does not match Variable '{self.name}' "
                             f"of shape {self._data.shape}")
        return data

    def assign(self, value):
        """Overwrite the value in place; returns the Variable."""
        return self._write(_copy_into, self._new_value(value, "assign"), "assign")

    def assign_add(self, delta):
        """Add `delta` in place; returns the Variable."""
        return self._write(operator.iadd, self._new_value(delta, "assign_add"), "assign_add")

    def assign_sub(self, delta):
        """Subtract `delta` in place; returns the Variable."""
        return self._write(operator.isub, self._new_value(delta, "assign_sub"), "assign_sub")

    def _write(self, update, data, what):
        capture = _THREAD.state.capture
        if capture is not None:  # a gg.function capture replays the write
            capture.call(functools.partial(self._write_now, update), data,
                         name=f"{what} Variable {self.name!r}", kind="update")
        else:
            self._write_now(update, data)
        return self

    def _write_now(self, update, data):
        update(self._data, data)
        self.written()

    def written(self):
        """Note that the buffer was just written in place (assign* do it; so does an
        optimizer's fused update, which writes the buffer directly): a gradient that needs
        the value from before then raises instead of using the new one."""
        self._version += 1


def _copy_into(target, source):
    target[...] = source


def _to_array(value, dtype, device):
    """(array, device) for constant/Variable construction: copies, infers dtypes as TF does."""
    dtype = _backend.as_dtype(dtype)
    if type(value) is TracedNumber:
        value = value.used("copied into a tensor")
    if type(value) is Tensor or type(value) is Variable:
        if _THREAD.state.capture is not None:
            _THREAD.state.capture.copied(value)
        target = value._device if device is None else _backend.canonical_device(device)
        if target != value._device:
            data = _backend.backend_of(target).asarray(value.numpy(), dtype)
        else:
            data = value._data.astype(dtype if dtype is not None else value._data.dtype, copy=True)
        return data, target
    target = _backend.default_device() if device is None else _backend.canonical_device(device)
    return _backend.backend_of(target).asarray(value, dtype), target


def constant(value, dtype=None, device=None):
    """A Tensor from a Python number, nested list, NumPy/CuPy array or Tensor (always a copy).

    Dtype inference follows TensorFlow: Python float -> float32, int -> int32 (int64 when
    the value does not fit in int32), bool -> bool; arrays keep their dtype.
    """
    data, dev = _to_array(value, dtype, device)
    return Tensor(data, dev)


def tensor(value, dtype=None, device=None):
    """A Tensor from a Python number, nested list, NumPy/CuPy array or Tensor: the same as
    `gg.constant` (a copy; dtypes inferred as TensorFlow does: Python float -> float32, int ->
    int32), under the name PyTorch users reach for (torch.tensor)."""
    return constant(value, dtype=dtype, device=device)


def from_dlpack(obj):
    """A Tensor sharing memory with a DLPack producer (NumPy, PyTorch, JAX, CuPy arrays)."""
    device = _backend.device_of_dlpack(obj)
    return Tensor(_backend.from_dlpack_array(obj, device), device)
