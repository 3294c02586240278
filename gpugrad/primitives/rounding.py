"""The rounding rule of the activations and the fused backward ops (written below), and the
helpers that apply it: `_flushed`, `_evaluate` and `_evaluate_into` (blockwise float64
evaluation, rounded once, into a new array or a given one), and the result dtypes
`_float_dtype` and `_result_dtype`."""
import threading

from ..backend import backend_of, is_cuda_array, xp_of


# ---------------------------------------------------------------------------------------
# The rounding rule of the activations (sigmoid, tanh, softplus, relu) and the fused backward
# ops (sigmoid_, tanh_, relu_, square_ and squared_difference_backward), on every backend:
#
# - Flush to zero: a float32 or float64 result whose magnitude is below its dtype's smallest
#   normal number (finfo.tiny) becomes a zero of its sign, as in TensorFlow's CPU kernels and
#   CUDA's flush-to-zero mode. Saturated sigmoids would otherwise produce subnormals in bulk,
#   and CPU operations that read or write them can run several times slower. float16 keeps
#   its subnormals, as there: NumPy computes float16 in float32, where they are normal.
# - Rounding: float16 and float32 results are computed in float64 and rounded once, so they
#   are correctly rounded (float64's error is far below half their ulp). float64 results are
#   computed in float64 in the order the code shows: exact (relu, relu_backward) or correctly
#   rounded (square_backward) where that takes one rounding, else within 1 ulp of it for tanh
#   (float64 tanh errs by less than an ulp) and the two roundings of squared_difference_
#   backward, 2 ulp for softplus (exp, then log1p), sigmoid and the three roundings of
#   sigmoid_ and tanh_backward (tests/test_numerics.py checks these bounds).
# - exp's arguments are clipped where that leaves the result exact: exp stays finite (no
#   overflow warnings) and, but within 0.7 of float64's flush threshold, on NumPy's vector
#   path, which ends at |x| = 1021 ln 2 ~ 707.7 and before subnormal results (past them it
#   is 10 to 100 times slower).
#
# The CUDA kernels of the fused ops, and the C expressions of all these primitives (helpers in
# cuda_kernels/expressions.cuh), compute the same float64 operations in the same order.

_TINY = {}  # per float dtype that flushes (float32, float64): its smallest normal number


class _Work(threading.local):
    """Each thread's float64 work arrays (two) and flush mask for small host results, by
    shape: `compute` only writes them before it reads them, so they are reused across calls."""

    def __init__(self):
        self.arrays = {}


_WORK = _Work()
_numpy = backend_of("cpu").xp

# On the CPU a large result is computed a block of leading-axis rows of about this many
# elements at a time, in float64 work arrays allocated once per call: the work stays in
# cache, and only the inputs and the result cross memory, once.
_BLOCK = 1 << 16


def _flushed(out, nonnegative=False, keep=None):
    """`out`, a new array of results, with the rule's flush applied in place (float32 and
    float64 only); `keep`, a bool array of out's shape to compute the mask in, or None.
    Multiplying by the 0/1 mask keeps NaN and the sign of a flushed value, and is much
    cheaper on the CPU than a masked assignment."""
    dtype = out.dtype
    if dtype.kind != "f" or dtype.itemsize < 4:
        return out
    xp = xp_of(out)
    tiny = _TINY.get(dtype)
    if tiny is None:
        tiny = _TINY[dtype] = float(xp.finfo(dtype).tiny)
    keep = xp.greater_equal(out if nonnegative else xp.abs(out), tiny, out=keep)  # False for NaN; NaN * 0 is NaN
    return xp.multiply(out, keep, out=out)


def _evaluate(compute, dtype, args, buffers=0, nonnegative=False):
    """The rule's result, of dtype `dtype`, of `compute(out, *work, *args)`: a new array of
    the broadcast shape of the array args, filled by `_evaluate_into`."""
    arrays = [a for a in args if hasattr(a, "shape")]
    xp = xp_of(arrays[0])
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays):
        shape = xp.broadcast(*arrays).shape
    return _evaluate_into(xp.empty(shape, dtype), compute, args, buffers, nonnegative)


def _evaluate_into(out, compute, args, buffers=0, nonnegative=False):
    """`out`, filled with the rule's result of `compute(out, *work, *args)`, and returned: the
    forwards of the rule's primitives and their NumPy expressions (op.expression.numpy) share it.

    `out` has the broadcast shape of the array args and does not overlap them; the `buffers`
    float64 work arrays have its shape. `compute` may use `out` as scratch and returns the one
    of them that holds the result, float64 values (rounded into `out` here) or values of out's
    dtype that need no rounding. On the CPU a large result is computed by blocks of leading-axis
    rows, in work arrays of a block allocated once per call: the args that span that axis are
    sliced, the others (and Python scalars) broadcast against each block."""
    xp = xp_of(out)
    shape = out.shape
    if out.size <= _BLOCK or is_cuda_array(out):
        if xp is _numpy:  # small host arrays: this thread's work arrays, kept for the next call
            work = _WORK.arrays.get(shape)
            if work is None:
                if len(_WORK.arrays) >= 64:  # a bound, for programs of ever new shapes
                    _WORK.arrays.clear()
                work = _WORK.arrays[shape] = ([_numpy.empty(shape, _numpy.float64) for _ in range(2)],
                                              _numpy.empty(shape, bool))
            result = compute(out, *work[0][:buffers], *args)
            if result is not out:
                out[...] = result
            return _flushed(out, nonnegative, work[1])
        result = compute(out, *[xp.empty(shape, xp.float64) for _ in range(buffers)], *args)
        if result is not out:
            out[...] = result
        return _flushed(out, nonnegative)
    rows = max(1, _BLOCK * shape[0] // out.size)
    work = [xp.empty((rows,) + shape[1:], xp.float64) for _ in range(buffers)]
    keep = xp.empty((rows,) + shape[1:], bool)
    spanning = [hasattr(a, "shape") and a.ndim == len(shape) and a.shape[0] == shape[0] for a in args]
    for start in range(0, shape[0], rows):
        block = out[start:start + rows]
        n = len(block)
        result = compute(block, *[w[:n] for w in work],
                         *[a[start:start + rows] if spans else a for a, spans in zip(args, spanning)])
        if result is not block:
            block[...] = result
        _flushed(block, nonnegative, keep[:n])
    return out


def _float_dtype(x):
    """The dtype of an activation's result: x's if it is a float dtype, float64 otherwise."""
    return x.dtype if x.dtype.kind == "f" else xp_of(x).dtype("float64")


def _result_dtype(*inputs):
    """The dtype of a fused backward op's result: its inputs' promoted dtype."""
    dtype = getattr(inputs[0], "dtype", None)
    for a in inputs:
        if getattr(a, "dtype", None) != dtype:
            first = next(a for a in inputs if hasattr(a, "dtype"))
            return xp_of(first).result_type(*inputs)
    return dtype  # the common case: one dtype, found cheaply
