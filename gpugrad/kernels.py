"""Fused CUDA kernels: compiles cuda_kernels/*.cu (or a source string) with CuPy, once per process and
lazily, and launches them.

Only this module knows the kernel folder, the compile options, the C type of each dtype the
kernels take (float32 and float64) and the grid and block sizes of the hand-written kernels (a
generated kernel's come with its fusion group or update batch). The CuPy handle comes from the
backend's probe at the first launch, never at import time, so importing gpugrad without CuPy
(or without a GPU) works and compiles nothing.
"""
import contextlib
import functools
import hashlib
import pathlib
import re

import numpy

from . import backend as _backend

_OPTIONS = ("--std=c++17",)
_C_TYPES = {numpy.dtype("float32"): "float", numpy.dtype("float64"): "double"}
_BLOCK = 256                  # threads per block, every kernel but the one below
_BIAS_FINISH_BLOCK = 1024     # bias_gradient's second pass: one block per column tile sums the partials
_BIAS_ROWS_PER_THREAD = 32    # bias_gradient's first pass: fewer rows a thread do not pay for another block

# `template __global__ void name<ctype>(parameter types);`, the explicit instantiations that
# every .cu file ends with: they name its kernels, so no list of names is kept by hand here.
_INSTANTIATION = re.compile(r"template\s+__global__\s+void\s+(\w+)\s*<\s*(\w+)\s*>\s*\(([^)]*)\)\s*;")

# sgd_update's `mode`, as cuda_kernels/sgd_update.cu reads it.
_SGD_PLAIN, _SGD_MOMENTUM, _SGD_NESTEROV = 0, 1, 2


@functools.cache
def source_dir():
    """The folder of the kernels' .cu files: gpugrad/cuda_kernels/ in an installed wheel,
    <repository>/cuda_kernels/ in a source checkout (editable installs included)."""
    package = pathlib.Path(__file__).resolve().parent
    candidates = (package / "cuda_kernels", package.parent / "cuda_kernels")
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"gpugrad's CUDA kernels are missing: neither {candidates[0]} nor {candidates[1]} exists")


# `#include "name.cuh"`: a header of the kernel folder, inlined into the source that CuPy
# compiles, so that the compile cache's key (the source text) covers it and NVRTC needs no
# include path; `#include "name.cu"` too, a kernel file whose element functions a generated
# kernel calls (update_batches.py).
_LOCAL_INCLUDE = re.compile(r'^#include "(\w+\.cuh?)".*$', re.MULTILINE)


@functools.cache
def _source(name):
    """The text of cuda_kernels/<name>.cu with its local headers inlined; ValueError naming the
    known kernels if there is none."""
    path = source_dir() / f"{name}.cu"
    if not path.is_file():
        known = sorted(p.stem for p in source_dir().glob("*.cu"))
        raise ValueError(f"no CUDA kernel {name!r} (no {path}); known kernels: {', '.join(known)}")
    return _inline_headers(path.read_text())


def _inline_headers(source):
    """`source` with each `#include "x.cuh"` or `"x.cu"` of the kernel folder replaced by that
    file's text, its own includes inlined in turn (the files' guards keep one copy of each)."""
    return _LOCAL_INCLUDE.sub(lambda match: _inline_headers((source_dir() / match.group(1)).read_text()), source)


@functools.cache
def _parameters(name, ctype):
    """The C parameter types of the instantiation name<ctype> in cuda_kernels/<name>.cu."""
    for kernel, kernel_ctype, parameters in _INSTANTIATION.findall(_source(name)):
        if kernel == name and kernel_ctype == ctype:
            return [" ".join(parameter.split()) for parameter in parameters.split(",")]
    raise ValueError(f"cuda_kernels/{name}.cu instantiates no {name}<{ctype}>")


def _cupy():
    """The cupy module as the backend found it usable; RuntimeError saying why when it is not."""
    count, reason = _backend._probe_cuda()
    if not count:
        raise RuntimeError(f"gpugrad's CUDA kernels cannot run here: {reason}")
    return _backend._cupy


class GeneratedKernel:
    """A kernel whose CUDA C++ text a subclass writes (`_body()`, naming its functions after
    the placeholder @NAME@) and whose name is `PREFIX` and a hash of that text: equal texts
    share a name, and compile_source compiles them once."""
    PREFIX = "gg_"
    _source = None

    @property
    def kernel_name(self):
        """The `extern "C"` name of the __global__ kernel."""
        self.cuda_source()
        return self._name

    def cuda_source(self):
        """The CUDA C++ text of the kernel (see the subclass's module docstring)."""
        if self._source is None:
            body = self._body()
            self._name = self.PREFIX + hashlib.sha256(body.encode()).hexdigest()[:16]
            self._source = body.replace("@NAME@", self._name)
        return self._source


@functools.cache  # keyed by the text itself (its hash): equal sources share one module
def compile_source(source):
    """The cupy.RawModule of CUDA C++ `source`: a kernel file's text or a generated kernel,
    its `#include "x.cuh"` lines of the kernel folder inlined.

    Compiled once per process and text; CuPy compiles on first use, per device, and keeps
    the binary in its on-disk cache keyed by the text and options, so a second process
    compiles nothing. The explicit instantiations `template __global__ void name<T>(...);`
    name the kernels it exports, as `name<T>`.
    """
    source = _inline_headers(source)
    expressions = [f"{kernel}<{ctype}>" for kernel, ctype, _ in _INSTANTIATION.findall(source)]
    return _cupy().RawModule(code=source, options=_OPTIONS, name_expressions=expressions)


def launch_generated(function, launch, arguments, stream=None):
    """Launch `function`, a generated kernel (fusion.py), on `launch` = (blocks, threads a
    block), as its group gives it, with `arguments`, on `stream` (None: the current one)."""
    blocks, block = launch
    if blocks:
        with _on(stream):
            function((blocks,), (block,), arguments)


@functools.cache
def _kernel(name, dtype):
    return compile_source(_source(name)).get_function(f"{name}<{_C_TYPES[dtype]}>")


@functools.cache
def _resident_blocks(device_id):
    """How many blocks of _BLOCK threads the device runs at once (bias_gradient.cu's launch bounds
    keep its registers from lowering that): a grid of that many is one wave, with no tail."""
    attributes = _cupy().cuda.Device(device_id).attributes
    return attributes["MultiProcessorCount"] * max(1, attributes["MaxThreadsPerMultiProcessor"] // _BLOCK)


def _grid(n):
    """Blocks for an elementwise kernel over n > 0 elements: one element a thread; past CUDA's
    limit of 2**31 - 1 blocks, the kernels' grid-stride loops take the rest."""
    return min(-(-n // _BLOCK), 2**31 - 1)


def _on(stream):
    """A context making `stream` current (its allocations and launches go there); None keeps
    the current stream."""
    return contextlib.nullcontext() if stream is None else stream


def _describe(array):
    return f"{type(array).__name__} of shape {tuple(array.shape)} and dtype {array.dtype}"


def _check_float(where, label, array):
    """The dtype of `array`, which must be float32 or float64."""
    dtype = numpy.dtype(array.dtype)
    if dtype not in _C_TYPES:
        raise ValueError(f"{where}: {label} has dtype {dtype}; the CUDA kernels take float32 or float64")
    return dtype


def _check_like(where, reference_label, reference, arrays):
    """ValueError unless every (label, array) has the shape and dtype of the reference array."""
    for label, array in arrays:
        if tuple(array.shape) != tuple(reference.shape) or array.dtype != reference.dtype:
            raise ValueError(f"{where}: {label} ({_describe(array)}) does not match {reference_label} "
                             f"({_describe(reference)}): the same shape and dtype are needed")


def _on_device(where, cupy, arrays):
    """The device id that all (label, array) pairs share; TypeError for a non-CuPy array,
    ValueError for arrays on two devices."""
    device_id = None
    for label, array in arrays:
        if not isinstance(array, cupy.ndarray):
            raise TypeError(f"{where}: {label} is a {type(array).__name__}; the CUDA kernels take cupy.ndarray")
        if device_id is None:
            device_id, first = array.device.id, label
        elif array.device.id != device_id:
            raise ValueError(f"{where}: {label} is on cuda:{array.device.id} but {first} is on cuda:{device_id}")
    return device_id


def launch(name, *inputs, stream=None):
    """A new array, the elementwise fused kernel cuda_kernels/<name>.cu applied to `inputs`,
    launched on `stream` (a cupy.cuda.Stream; None: the current stream).

    The inputs (float32 or float64 CuPy arrays, all of one shape and dtype, any layout) are
    made contiguous; the result has their shape and dtype. E.g. launch("sigmoid_backward", dy, y).
    """
    if not inputs:
        raise ValueError(f"launch({name!r}): no inputs")
    labels = [f"input {index}" for index in range(len(inputs))]
    dtype = _check_float(f"launch({name!r})", labels[0], inputs[0])
    _check_like(f"launch({name!r})", labels[0], inputs[0], list(zip(labels[1:], inputs[1:])))
    ctype = _C_TYPES[dtype]
    parameters = _parameters(name, ctype)
    elementwise = [f"{ctype}*"] + [f"const {ctype}*"] * len(inputs) + ["long long"]
    if parameters != elementwise:
        raise ValueError(f"launch({name!r}) got {len(inputs)} inputs, but the kernel is {name}<{ctype}>"
                         f"({', '.join(parameters)}), not ({', '.join(elementwise)})")
    cupy = _cupy()
    device_id = _on_device(f"launch({name!r})", cupy, zip(labels, inputs))
    with cupy.cuda.Device(device_id), _on(stream):
        out = cupy.empty(inputs[0].shape, dtype)
        if out.size:
            inputs = [cupy.ascontiguousarray(x) for x in inputs]
            _kernel(name, dtype)((_grid(out.size),), (_BLOCK,), (out, *inputs, numpy.int64(out.size)))
    return out


def bias_gradient(g, stream=None):
    """The column sums of a 2-D float32 or float64 CuPy array, reduce_sum(g, axis=0): shape (cols,),
    launched on `stream` (None: the current stream).

    Two launches of one deterministic kernel (no atomics): per-block partial sums into a
    workspace, then their sum; one launch when the matrix is small.
    """
    if len(g.shape) != 2:
        raise ValueError(f"bias_gradient: g must be 2-D (rows, cols), got {_describe(g)}")
    dtype = _check_float("bias_gradient", "g", g)
    cupy = _cupy()
    device_id = _on_device("bias_gradient", cupy, [("g", g)])
    rows, cols = g.shape
    with cupy.cuda.Device(device_id), _on(stream):
        out = cupy.empty((cols,), dtype)
        if cols == 0:
            return out
        g = cupy.ascontiguousarray(g)
        # The block layout of cuda_kernels/bias_gradient.cu: `lanes` rows of a `width`-wide column tile.
        width = min(cols, _BLOCK)
        lanes = _BLOCK // width
        tiles = -(-cols // width)
        blocks = max(1, min(-(-rows // (lanes * _BIAS_ROWS_PER_THREAD)), _resident_blocks(device_id) // tiles))
        kernel = _kernel("bias_gradient", dtype)
        if blocks == 1:
            kernel((tiles, 1), (_BLOCK,), (out, g, numpy.int64(rows), numpy.int64(cols)),
                   shared_mem=_BLOCK * dtype.itemsize)
            return out
        partial = cupy.empty((blocks, cols), dtype)
        kernel((tiles, blocks), (_BLOCK,), (partial, g, numpy.int64(rows), numpy.int64(cols)),
               shared_mem=_BLOCK * dtype.itemsize)
        # A wider block for the partials: more lanes per column, so fewer of them for each thread to add.
        finish_tiles = -(-cols // min(cols, _BIAS_FINISH_BLOCK))
        kernel((finish_tiles, 1), (_BIAS_FINISH_BLOCK,), (out, partial, numpy.int64(blocks), numpy.int64(cols)),
               shared_mem=_BIAS_FINISH_BLOCK * dtype.itemsize)
    return out


def _update(name, param, grad, states, scalars, fixed, stream):
    """Launch the fused update `name` in place: args (param, grad, *states, scalars, n, *fixed).

    `states` are (label, array, stand-in): the stand-in (None for a required state) is passed
    when the array is None, as the kernel then neither reads nor writes it. The given states
    must be C-contiguous and match param, as must grad (made contiguous here). `scalars` is
    the float64 device array of the step's values that the kernel reads; `fixed` are the
    (C type, value) pairs passed by value.
    """
    dtype = _check_float(name, "param", param)
    for label, array, stand_in in states:
        if array is None and stand_in is None:
            raise ValueError(f"{name}: {label} is None; it is required")
    given = [(label, array) for label, array, _ in states if array is not None]
    _check_like(name, "param", param, [("grad", grad)] + given)
    for label, array in [("param", param)] + given:
        if not array.flags.c_contiguous:
            raise ValueError(f"{name}: {label} ({_describe(array)}) must be C-contiguous: it is updated in place")
    if scalars.dtype != numpy.float64 or scalars.ndim != 1 or not scalars.flags.c_contiguous:
        raise ValueError(f"{name}: scalars ({_describe(scalars)}) must be a contiguous 1-D float64 array")
    cupy = _cupy()
    device_id = _on_device(name, cupy, [("param", param), ("grad", grad), ("scalars", scalars)] + given)
    if param.size == 0:
        return
    with cupy.cuda.Device(device_id), _on(stream):
        grad = cupy.ascontiguousarray(grad)
        pointers = [array if array is not None else stand_in for _, array, stand_in in states]
        values = [kind(value) for kind, value in fixed]
        _kernel(name, dtype)((_grid(param.size),), (_BLOCK,),
                             (param, grad, *pointers, scalars, numpy.int64(param.size), *values))


def sgd_update(param, grad, velocity, scalars, *, momentum, nesterov, stream=None):
    """The primitive sgd_update in one launch (scalars = [lr] on the device): step = lr * g;
    without momentum (velocity None) p -= step; else v = momentum * v - step and p += v, or
    p += momentum * v - step with nesterov."""
    scalar = numpy.dtype(param.dtype).type  # T of the kernel
    mode = _SGD_PLAIN if velocity is None else _SGD_NESTEROV if nesterov else _SGD_MOMENTUM
    _update("sgd_update", param, grad, [("velocity", velocity, param)], scalars,
            [(scalar, 0.0 if velocity is None else momentum), (numpy.int32, mode)], stream)


def adam_update(param, grad, m, v, vhat, scalars, *, beta_1, beta_2, epsilon, weight_decay, stream=None):
    """The primitive adam_update in one launch (scalars = [alpha, decay] on the device):
    p -= decay * p (AdamW only); m += (1 - b1)(g - m); v += (1 - b2)(g^2 - v);
    vhat = max(vhat, v) with amsgrad (vhat not None); p -= alpha * m / (sqrt(vhat or v) + eps)."""
    scalar = numpy.dtype(param.dtype).type  # T of the kernel
    _update("adam_update", param, grad, [("m", m, None), ("v", v, None), ("vhat", vhat, v)], scalars,
            [(scalar, 1.0 - beta_1), (scalar, 1.0 - beta_2), (scalar, epsilon), (numpy.int32, bool(weight_decay)),
             (numpy.int32, vhat is not None)], stream)


def rmsprop_update(param, grad, velocity, average_grad, moment, scalars, *, rho, momentum, epsilon, stream=None):
    """The primitive rmsprop_update in one launch (scalars = [lr] on the device):
    v = rho v + (1 - rho) g^2; centered (average_grad not None): a = rho a + (1 - rho) g,
    d = v - a^2 + eps, else d = v + eps; inc = lr g / sqrt(d); with momentum (moment not
    None): m = momentum m + inc, p -= m; else p -= inc."""
    scalar = numpy.dtype(param.dtype).type  # T of the kernel
    _update("rmsprop_update", param, grad,
            [("velocity", velocity, None), ("average_grad", average_grad, velocity), ("moment", moment, velocity)],
            scalars, [(scalar, rho), (scalar, 1.0 - rho), (scalar, 0.0 if moment is None else momentum),
                      (scalar, epsilon), (numpy.int32, average_grad is not None), (numpy.int32, moment is not None)],
            stream)


def adagrad_update(param, grad, accumulator, scalars, *, epsilon, stream=None):
    """The primitive adagrad_update in one launch (scalars = [lr] on the device):
    acc += g^2; p -= lr g / sqrt(acc + eps)."""
    scalar = numpy.dtype(param.dtype).type  # T of the kernel
    _update("adagrad_update", param, grad, [("accumulator", accumulator, None)], scalars, [(scalar, epsilon)],
            stream)
