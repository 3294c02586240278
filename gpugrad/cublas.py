"""A cuBLAS handle of gpugrad's own, through ctypes, for matrix products inside a CUDA graph.

CuPy refuses every cuBLAS call while a stream is capturing (its own stream-setting wrapper
raises NotImplementedError), though cuBLAS itself captures correctly when its handle's
stream and workspace are set before the capture begins. So a compiled step on CUDA makes
its 2-D float32/float64 products through this module: `Route(stream)` prepares a handle
for one stream (set stream, preallocated workspace); the graph lowering replaces each
matmul step's forward with `capture_safe_matmul(forward)`, which calls `gemm` on the route
active on this thread (`with route:`) instead of CuPy. Scalars alpha = 1 and beta = 0 are
host values, fixed when the call is captured.

It uses the libcublas that CuPy already loaded, so nothing new is installed or searched.
"""
import ctypes
import threading

from . import backend as _backend

_OP_N, _OP_T = 0, 1
_WORKSPACE_BYTES = 32 * 1024 * 1024  # cuBLAS's recommendation for Hopper; enough for every GEMM it picks
_LIBRARY_NAMES = ("libcublas.so.13", "libcublas.so.12", "libcublas.so")
_active = threading.local()
_library = None


def _load():
    """The cuBLAS library CuPy uses, with the signatures of the calls made here."""
    global _library
    if _library is None:
        cupy = _backend._cupy
        cupy.cuda.device.get_cublas_handle()  # makes CuPy load its libcublas, so dlopen finds that one
        errors = []
        for name in _LIBRARY_NAMES:
            try:
                library = ctypes.CDLL(name)
                break
            except OSError as error:
                errors.append(str(error))
        else:
            raise RuntimeError(f"cannot load cuBLAS for graph capture: {'; '.join(errors)}")
        pointer, size, integer = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
        library.cublasCreate_v2.argtypes = [ctypes.POINTER(pointer)]
        library.cublasSetStream_v2.argtypes = [pointer, pointer]
        library.cublasSetWorkspace_v2.argtypes = [pointer, pointer, size]
        for name, scalar in (("cublasSgemm_v2", ctypes.c_float), ("cublasDgemm_v2", ctypes.c_double)):
            getattr(library, name).argtypes = [pointer, integer, integer, integer, integer, integer,
                                               ctypes.POINTER(scalar), pointer, integer, pointer, integer,
                                               ctypes.POINTER(scalar), pointer, integer]
        _library = library
    return _library


def _check(status, call):
    if status != 0:
        raise RuntimeError(f"cuBLAS {call} failed with status {status}")


class Route:
    """A cuBLAS handle bound to one stream, with its own workspace; `with route:` makes
    matmul's CUDA implementation use it on this thread."""

    def __init__(self, stream):
        cupy = self.xp = _backend._cupy
        library = _load()
        self._library = library
        self._handle = ctypes.c_void_p()
        _check(library.cublasCreate_v2(ctypes.byref(self._handle)), "cublasCreate_v2")
        self.stream = stream
        self._workspace = cupy.empty(_WORKSPACE_BYTES, cupy.uint8)
        _check(library.cublasSetStream_v2(self._handle, ctypes.c_void_p(stream.ptr)), "cublasSetStream_v2")
        _check(library.cublasSetWorkspace_v2(self._handle, ctypes.c_void_p(self._workspace.data.ptr),
                                             _WORKSPACE_BYTES), "cublasSetWorkspace_v2")
        self._constants = {4: (ctypes.c_float(1.0), ctypes.c_float(0.0)),
                           8: (ctypes.c_double(1.0), ctypes.c_double(0.0))}

    def __enter__(self):
        self._previous = getattr(_active, "route", None)
        _active.route = self
        return self

    def __exit__(self, *exc):
        _active.route = self._previous

    def __del__(self):
        handle = getattr(self, "_handle", None)
        if handle is not None and handle.value and _library is not None:
            _library.cublasDestroy_v2(handle)

    def gemm(self, a, b, out):
        """out = a @ b for 2-D arrays of one float dtype, out C-contiguous (m, n); a and b
        C- or F-contiguous (a transposed view is F-contiguous). Row-major C = A B is the
        column-major C^T = B^T A^T."""
        m, k = a.shape
        n = b.shape[1]
        op_b, ld_b = (_OP_N, n) if b.flags.c_contiguous else (_OP_T, k)
        op_a, ld_a = (_OP_N, k) if a.flags.c_contiguous else (_OP_T, m)
        one, zero = self._constants[out.dtype.itemsize]
        call = "cublasSgemm_v2" if out.dtype.itemsize == 4 else "cublasDgemm_v2"
        _check(getattr(self._library, call)(
            self._handle, op_b, op_a, n, m, k, ctypes.byref(one), ctypes.c_void_p(b.data.ptr), max(1, ld_b),
            ctypes.c_void_p(a.data.ptr), max(1, ld_a), ctypes.byref(zero), ctypes.c_void_p(out.data.ptr),
            max(1, n)), call)


def active():
    """The Route active on this thread (inside a compiled step's warm-up or capture), else None."""
    return getattr(_active, "route", None)


def capture_safe_matmul(forward):
    """A matmul forward for a CUDA-graph capture: 2-D float32/float64 products on the
    active route, everything else (or with no route active) by `forward`."""
    def matmul(x, y, *, transpose_a=False, transpose_b=False):
        route = active()
        if route is None or x.ndim != 2 or y.ndim != 2 or x.dtype != y.dtype or x.dtype.kind != "f" or (
                x.dtype.itemsize not in (4, 8)):
            return forward(x, y, transpose_a=transpose_a, transpose_b=transpose_b)
        if transpose_a:
            x = x.T
        if transpose_b:
            y = y.T
        (m, k), (k2, n) = x.shape, y.shape
        if k != k2 or m * n * k == 0:  # the forward names the shapes, or makes the empty result
            return forward(x, y)
        cupy = route.xp
        if not (x.flags.c_contiguous or x.flags.f_contiguous):
            x = cupy.ascontiguousarray(x)
        if not (y.flags.c_contiguous or y.flags.f_contiguous):
            y = cupy.ascontiguousarray(y)
        out = cupy.empty((m, n), x.dtype)
        route.gemm(x, y, out)
        return out
    return matmul
