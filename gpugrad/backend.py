"""The array layer: devices, dtypes and the backends behind them.

Math above this layer reaches numpy or cupy only through it: code asks an array for its
module with `xp_of` or goes through the Backend of a device (gpugrad/checks.py takes the
cpu backend's module for its host-side float64 differences; gpugrad/kernels.py and
gpugrad/checkpoints.py import numpy for dtypes and host buffers, not math). CuPy is probed
lazily, so importing gpugrad initializes no CUDA context.
"""
import contextlib
import os
import sys
import threading

import numpy

float16 = numpy.dtype("float16")
float32 = numpy.dtype("float32")
float64 = numpy.dtype("float64")
int8 = numpy.dtype("int8")
int16 = numpy.dtype("int16")
int32 = numpy.dtype("int32")
int64 = numpy.dtype("int64")
uint8 = numpy.dtype("uint8")
bool_ = numpy.dtype("bool")
complex64 = numpy.dtype("complex64")
complex128 = numpy.dtype("complex128")

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def as_dtype(dtype):
    """Resolve "float64", numpy.float64 or gg.float64 to a numpy dtype; None stays None."""
    if dtype is None or type(dtype) is numpy.dtype:
        return dtype
    try:
        resolved = numpy.dtype(dtype)
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}; use a name such as 'float32' or gg.float32") from None
    if resolved.kind not in "biufc":
        raise TypeError(f"unknown dtype {dtype!r}: gpugrad tensors hold bool, integer, float or complex values")
    return resolved


class Backend:
    """One device family: its device names, its arrays and their operations. Subclasses
    register with `register_backend`; NumpyBackend holds "cpu", CupyBackend "cuda:N".

    Class attributes: `prefix`, the device name ("cpu") or the prefix of indexed names
    ("cuda" for "cuda:0"); `indexed`, whether names carry an index; `dlpack_kind`, the
    DLPack device type of its arrays (kDLCPU=1, kDLCUDA=2). Classmethods: `probe()` ->
    (number of usable devices, why there are none), `array_type()` -> its array class once
    probed (None before), `from_dlpack(obj)` -> an array sharing a DLPack producer's
    memory. An instance serves one device (`index`) with its array module `xp`.
    """

    prefix = None
    indexed = False
    dlpack_kind = None
    xp = None

    @classmethod
    def probe(cls):
        raise NotImplementedError

    @classmethod
    def array_type(cls):
        raise NotImplementedError

    @classmethod
    def from_dlpack(cls, obj):
        raise NotImplementedError

    def asarray(self, value, dtype=None):
        """An array of this backend holding `value` (copied), dtype inferred as TensorFlow does.
        Python numbers and lists given a `dtype` must fit it (see exact_cast); arrays are cast."""
        raise NotImplementedError

    def to_host(self, array):
        """A numpy.ndarray copy of `array`."""
        raise NotImplementedError

    def write_host(self, array, values):
        """Copy host `values` (numbers or a NumPy array of array's shape) into `array` in
        place, with one host-to-device copy at most; no conversion checks."""
        raise NotImplementedError


def _python_array(value):
    """A numpy array of a Python scalar or nested list, as NumPy builds it; integers beyond
    int64 and uint64, which NumPy keeps as Python objects, are an OverflowError."""
    try:
        array = numpy.asarray(value)
    except OverflowError:
        raise OverflowError(f"cannot make a tensor from {value!r}: an integer is too large for any integer dtype "
                            f"(int64 holds -2**63 to 2**63-1, uint64 0 to 2**64-1)") from None
    except (ValueError, TypeError) as error:
        raise ValueError(f"cannot make a tensor from {value!r}: {error}") from None
    if array.dtype.kind == "O" and any(type(item) is int for item in array.flat):
        raise OverflowError(f"cannot make a tensor from {value!r}: an integer is too large for any integer dtype "
                            f"(int64 holds -2**63 to 2**63-1, uint64 0 to 2**64-1)")
    if array.dtype.kind not in "biufc":
        raise ValueError(f"cannot make a tensor from {value!r}: it is not numeric (numpy sees dtype {array.dtype})")
    return array


def _infer_python_value(value):
    """A numpy array for a Python scalar or nested list, with TensorFlow's dtype rules:
    float -> float32, int -> int32 (int64 when it does not fit; larger is an OverflowError),
    bool -> bool, complex -> complex128."""
    array = _python_array(value)
    kind = array.dtype.kind
    if kind == "f":
        return array.astype(float32)
    if kind in "iu":
        if array.size == 0 or (array.min() >= _INT32_MIN and array.max() <= _INT32_MAX):
            return array.astype(int32)
        if kind == "u" and array.max() > numpy.iinfo(int64).max:
            raise OverflowError(f"cannot make a tensor from {value!r}: {array.max()} does not fit int64, the widest "
                                f"integer dtype inferred; pass dtype='uint64' for unsigned values")
        return array.astype(int64)
    return array


def exact_cast(array, dtype, what):
    """`array` as `dtype`, or an error naming the first value the cast would change beyond
    rounding: complex to real, a fraction or an out-of-range value to an integer or bool, a
    finite value that overflows a float dtype. Float-to-float rounding is allowed, as for
    any assignment of a Python float. Callers pass an array of their own (a fresh
    conversion), which comes back as it is when it already has `dtype`."""
    source = array.dtype
    if source == dtype:
        return array
    xp = xp_of(array)
    if source.kind == "c" and dtype.kind != "c":
        raise TypeError(f"{what}: cannot convert complex values to {dtype} (the imaginary part would be lost); take "
                        f"the real part explicitly first")
    with numpy.errstate(invalid="ignore", over="ignore"):
        converted = array.astype(dtype)
        if dtype.kind in "biu":
            changed = converted.astype(source) != array
        elif dtype.kind in "fc" and source.kind in "fc":
            changed = xp.isfinite(array) & ~xp.isfinite(converted)
        else:  # integers and bools to a float or complex dtype: overflow only
            changed = ~xp.isfinite(converted)
    if changed.any():
        bad = array[changed].ravel()[0].item()
        raise ValueError(f"{what}: the value {bad!r} does not fit {dtype}; cast explicitly (gg.cast) if a "
                         f"changed value is what you want")
    return converted


class NumpyBackend(Backend):
    prefix = "cpu"
    dlpack_kind = 1
    xp = numpy

    def __init__(self, index=0):
        self.index = index

    @classmethod
    def probe(cls):
        return 1, ""

    @classmethod
    def array_type(cls):
        return numpy.ndarray

    @classmethod
    def from_dlpack(cls, obj):
        return numpy.from_dlpack(obj)

    def asarray(self, value, dtype=None):
        if isinstance(value, numpy.ndarray) or isinstance(value, numpy.generic):
            if value.dtype.kind not in "biufc":
                raise ValueError(f"cannot make a tensor from an array of dtype {value.dtype}: it is not numeric")
            return numpy.array(value, dtype=dtype)
        if hasattr(value, "__dlpack__") and hasattr(value, "__dlpack_device__"):
            return numpy.array(numpy.from_dlpack(value), dtype=dtype)
        if value is None:
            raise ValueError("cannot make a tensor from None")
        if dtype is None:
            return _infer_python_value(value)
        return exact_cast(_python_array(value), dtype, f"cannot make a tensor of dtype {dtype} from {value!r}")

    def to_host(self, array):
        return numpy.array(array)

    def write_host(self, array, values):
        array[...] = values


_NUMPY = NumpyBackend()


class CupyBackend(Backend):
    """Arrays of one CUDA device, as CuPy arrays. Values from the host go through the NumPy
    backend first (TensorFlow's dtype rules, the same errors)."""

    prefix = "cuda"
    indexed = True
    dlpack_kind = 2

    def __init__(self, index):
        _probe_cuda()
        self.xp = _cupy
        self.index = index

    @classmethod
    def probe(cls):
        return _probe_cuda()

    @classmethod
    def array_type(cls):
        return None if _cupy is None else _cupy.ndarray

    @classmethod
    def from_dlpack(cls, obj):
        return _cupy.from_dlpack(obj)

    def asarray(self, value, dtype=None):
        cupy = self.xp
        with cupy.cuda.Device(self.index):
            if isinstance(value, cupy.ndarray):
                if value.dtype.kind not in "biufc":
                    raise ValueError(f"cannot make a tensor from an array of dtype {value.dtype}: it is not numeric")
                return cupy.array(value, dtype=dtype)
            return cupy.asarray(_NUMPY.asarray(value, dtype))

    def to_host(self, array):
        return self.xp.asnumpy(array)

    def write_host(self, array, values):
        array.set(numpy.asarray(values, dtype=array.dtype).reshape(array.shape))


# Random numbers are drawn on the host from NumPy's generator, whatever the device, so that
# a seed gives the same values everywhere; the device's backend then copies them over.
_host_generator = numpy.random.default_rng()


def seed_host_generator(seed):
    """Reseed the generator used by random calls that give no seed."""
    global _host_generator
    _host_generator = numpy.random.default_rng(seed)


def host_random(distribution, shape, a, b, dtype, seed):
    """A host array of samples: distribution "normal" (mean a, stddev b) or "uniform" [a, b)."""
    generator = _host_generator if seed is None else numpy.random.default_rng(seed)
    sample = generator.normal if distribution == "normal" else generator.uniform
    return sample(a, b, shape).astype(dtype)


def xp_of(array):
    """The array module (numpy, cupy, ...) of the backend that owns `array`."""
    if type(array) is numpy.ndarray or isinstance(array, numpy.generic):
        return numpy
    for backend in _REGISTRY.values():
        kind = backend.array_type()
        if kind is not None and isinstance(array, kind):
            return sys.modules[kind.__module__.partition(".")[0]]
    raise TypeError(f"no gpugrad backend holds arrays of type {type(array).__name__}")


def host_array_type():
    """The class of host arrays (numpy.ndarray), for a forward's fast path on them."""
    return numpy.ndarray


def is_cuda_array(array):
    """True for a CuPy array (cheap for NumPy arrays, the common case on the CPU)."""
    return type(array) is not numpy.ndarray and _cupy is not None and isinstance(array, _cupy.ndarray)


def with_device_path(device, reference, fast):
    """A forward that calls `fast(*arrays, **params)` when the first input is an array of the
    backend `device` names ("cuda"), and `reference` otherwise or when `fast` returns
    NotImplemented (a dtype or layout its kernel does not take). The reference serves the
    backend whose arrays the forward is written for (NumPy's), so it takes no implementation."""
    backend = _REGISTRY.get(device)
    if backend is None or backend is NumpyBackend:
        raise ValueError(f"no backend {device!r} takes op implementations; known: "
                         f"{', '.join(p for p, b in _REGISTRY.items() if b is not NumpyBackend)}")
    def owns(array):
        kind = backend.array_type()
        return kind is not None and isinstance(array, kind)

    ndarray = numpy.ndarray

    def forward(*arrays, **params):
        if type(arrays[0]) is not ndarray and owns(arrays[0]):  # NumPy arrays, the CPU's hot path, skip the test
            out = fast(*arrays, **params)
            if out is not NotImplemented:
                return out
        return reference(*arrays, **params)
    return forward


def unaliased(out, *inputs):
    """`out`, or a copy of it when it is a view or one of `inputs` itself: the rule for an
    op's result read from a Variable, whose buffer later writes change in place."""
    return out.copy() if out.base is not None or any(out is i for i in inputs) else out


def as_array(data):
    """The array itself; a NumPy scalar (what ufuncs return for 0-d inputs) as a 0-d array."""
    return numpy.asarray(data) if isinstance(data, numpy.generic) else data


def host_array(array, dtype, copy):
    """A numpy.ndarray for a cpu tensor's data (0-d results of ufuncs are numpy scalars)."""
    if copy:
        return numpy.array(array, dtype=dtype, copy=True)
    return numpy.asarray(array, dtype=dtype)


_cupy = None  # the cupy module, once a probe found it usable
_probe = None  # (number of usable GPUs, why there are none)


def _probe_cuda():
    """(GPU count, reason there are none), probed once, on first need: importing gpugrad
    imports no cupy and creates no CUDA context."""
    global _cupy, _probe
    if _probe is None:
        try:
            import cupy
        except ImportError:
            _probe = (0, "CuPy is not installed (from a gpugrad checkout: pip install -e '.[cuda13]' or "
                         "'.[cuda12]', for your CUDA version; or pip install cupy-cuda13x / cupy-cuda12x)")
            return _probe
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as error:  # CuPy raises its own runtime errors when the driver is missing
            _probe = (0, f"CuPy is installed but sees no GPU ({error})")
            return _probe
        if count:
            _cupy = cupy
        _probe = (count, "" if count else "CuPy is installed but sees no GPU")
    return _probe


def devices():
    """The devices usable in this process, e.g. ["cpu"] or ["cpu", "cuda:0"]."""
    return ["cpu"] + [f"cuda:{i}" for i in range(_probe_cuda()[0])]


_REGISTRY = {}  # device prefix -> Backend subclass


def register_backend(cls):
    """Make the Backend subclass `cls` hold the devices its `prefix` names."""
    if cls.prefix in _REGISTRY:
        raise ValueError(f"a backend for device prefix {cls.prefix!r} is already registered")
    _REGISTRY[cls.prefix] = cls
    return cls


register_backend(NumpyBackend)
register_backend(CupyBackend)


def _device_forms():
    return ", ".join(f"'{p}', '{p}:N'" if b.indexed else f"'{p}'" for p, b in _REGISTRY.items())


def canonical_device(name):
    """Validate a device name ("cpu", "cuda", "cuda:N") and return its canonical form
    ("cpu", "cuda:N"); an unusable device is a RuntimeError saying why."""
    if not isinstance(name, str):
        raise TypeError(f"a device is a string such as 'cpu' or 'cuda:0', got {name!r}")
    prefix, colon, index = name.partition(":")
    backend = _REGISTRY.get(prefix)
    if backend is None or (colon and not (backend.indexed and index.isdigit())):
        raise ValueError(f"unknown device {name!r}; expected {_device_forms()}")
    if not backend.indexed:
        return prefix
    count, reason = backend.probe()
    index = int(index or 0)
    if index >= count:
        raise RuntimeError(f"device {name!r} is not available: "
                           f"{reason or f'this machine has {count} device(s), {prefix}:0 to {prefix}:{count - 1}'}")
    return f"{prefix}:{index}"


_BACKENDS = {"cpu": _NUMPY}  # canonical device -> its Backend instance


def backend_of(device):
    """The Backend that holds arrays for a canonical device string."""
    backend = _BACKENDS.get(device)
    if backend is None:
        prefix, _, index = device.partition(":")
        backend = _BACKENDS[device] = _REGISTRY[prefix](int(index or 0))
    return backend


_default_device = None


class _Scope(threading.local):
    """The `gg.device` block in force in this thread, if any (TensorFlow's device scopes
    are per thread too)."""

    device = None


_scope = _Scope()


def default_device():
    """Where new tensors are created: the innermost `gg.device` block of this thread, else
    set_default_device, else GPUGRAD_DEVICE, else cuda:0 when usable, else cpu."""
    global _default_device
    scoped = _scope.device
    if scoped is not None:
        return scoped
    if _default_device is None:
        requested = os.environ.get("GPUGRAD_DEVICE", "").strip()
        if requested:
            try:
                _default_device = canonical_device(requested)
            except ValueError as error:
                raise ValueError(f"the environment variable GPUGRAD_DEVICE={os.environ['GPUGRAD_DEVICE']!r} is not "
                                 f"a device: {error}; set it to cpu, cuda or cuda:N, or unset it") from None
        else:
            _default_device = "cuda:0" if _probe_cuda()[0] else "cpu"
    return _default_device


def set_default_device(name):
    """Make `name` the device on which new tensors are created (in every thread, outside
    `gg.device` blocks)."""
    global _default_device
    _default_device = canonical_device(name)


@contextlib.contextmanager
def device(name):
    """`with gg.device("cpu"):` creates new tensors on that device inside the block, in this
    thread."""
    previous = _scope.device
    _scope.device = canonical_device(name)
    try:
        yield _scope.device
    finally:
        _scope.device = previous


def device_of_dlpack(obj):
    """The gpugrad device string of a DLPack producer, from its DLPack device type."""
    kind, index = obj.__dlpack_device__()
    for prefix, backend in _REGISTRY.items():
        if backend.dlpack_kind == kind:
            return canonical_device(f"{prefix}:{index}" if backend.indexed else prefix)
    raise ValueError(f"DLPack device type {kind} is not supported by gpugrad (cpu and cuda are)")


def from_dlpack_array(obj, device):
    """The array of a DLPack producer on `device` (already checked), sharing memory (no copy)."""
    return _REGISTRY[device.partition(":")[0]].from_dlpack(obj)
