"""The scalar expressions of the elementwise primitives (op.expression, set by op.defexpr; see
gpugrad.dispatch.Expression) against their forwards, which stay the reference:

- every built-in elementwise primitive has one, but for the documented exceptions below;
- the NumPy form equals the forward bit for bit, on float32, float64, integer and bool inputs
  with broadcasting partners, weak Python scalars and special values (zeros of both signs,
  infinities, NaN, subnormals, magnitudes that saturate exp, tanh and sigmoid);
- the C form, compiled on the host with g++ against cuda_kernels/expressions.cuh into a
  harness called through ctypes, equals it too, bit for bit wherever the operations are
  correctly rounded, within the ulp bounds stated in LIBM_ULPS where the math library's
  transcendental functions stand in for NumPy's own;
- every C form compiles in a CUDA kernel with nvcc (skipped without nvcc; CI has it), and on
  a GPU (marked gpu) runs as CuPy compiles the kernels, flush-to-zero included, and agrees
  within the same bounds;
- defexpr refuses placeholders that name no input or keyword parameter, and a user primitive's
  expression goes through the same checks as the built-ins'.
"""
import ctypes
import math
import pathlib
import shutil
import subprocess
import zlib
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import gpugrad as gg
from gpugrad import dispatch, kernels
from gpugrad.primitives import elementwise_math
from helpers import softsign_primitive

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADER_DIR = ROOT / "cuda_kernels"

# Elementwise primitives with no scalar expression, and why.
NO_EXPRESSION = {
    "reduce_mean_backward": "not elementwise in its input as given: dy is reshaped to the kept shape of the "
                            "reduction before it broadcasts, and the divisor is the count of the reduced axes "
                            "(from the shape and axis tuples), which no C literal carries",
    "erf": "NumPy has no erf ufunc (its forward calls the C library's erf element by element) and "
           "cuda_kernels/expressions.cuh has no erf helper yet",
}

# Ulp bounds of the C forms whose results come from the math library's exp, log, log1p, sin,
# cos, tanh or pow (libm here, CUDA's on a GPU) where NumPy has its own SIMD implementations
# (neither is correctly rounded in every case): {(primitive, result dtype): ulps}. Everything
# else agrees bit for bit: IEEE arithmetic, sqrt, comparisons, conversions, and the rounding
# rule's float32 results (computed in float64 and rounded once: an ulp of float64 changes them
# only on a near tie, which these inputs do not hit).
LIBM_ULPS = {
    **{(name, "float32"): 2 for name in ("exp", "log", "log1p", "sin", "cos", "power")},
    **{(name, "float64"): 2 for name in ("exp", "log", "log1p", "sin", "cos", "power", "tanh", "sigmoid",
                                         "softplus")},
}

SHAPE = (12, 40)  # the result's shape; partners broadcast: "row" (40,), "col" (12, 1), "0d" ()
PARTNERS = {"": SHAPE, "row": SHAPE[1:], "col": (SHAPE[0], 1), "0d": ()}
BIG = (300, 260)  # past rounding._BLOCK elements: the blockwise path of the rounding rule


# ---------------------------------------------------------------------------------------
# Cases: an op, its inputs (array specs "dtype[:partner][~domain]" or weak Python scalars)
# and its keyword parameters

class Case(NamedTuple):
    op: str
    inputs: tuple
    params: dict = {}
    shape: tuple = SHAPE

    @property
    def id(self):
        parts = [str(a) if not isinstance(a, str) else a for a in self.inputs]
        parts += [f"{k}={np.dtype(v).name if isinstance(v, (type, np.dtype)) else v}" for k, v in self.params.items()]
        return f"{self.op}({','.join(parts)})" + ("-big" if self.shape != SHAPE else "")


def _cases():
    cases = []

    def add(op, *signatures, **params):
        cases.extend(Case(op, tuple(s), params) for s in signatures)

    floats2 = [("float32", "float32"), ("float64", "float64:row"), ("float32", 0.1), (-3, "float64:col"),
               ("int32", "float32"), ("float32:0d", "float64")]
    for op in ("add", "subtract", "multiply", "maximum", "minimum", "squared_difference"):
        add(op, *floats2, ("int8", "int8"), ("uint8", "uint8:row"), ("int64", "int64"), ("int32", 7))
    for op in ("add", "multiply", "maximum", "minimum"):
        add(op, ("bool", "bool"))
    add("divide", ("float32", "float32"), ("float64", "float64:row"), ("float32", 3.0), (1.0, "float64"),
        ("int32", "int32:col"), ("int8", 2.5))
    for op in ("negative", "abs", "sign", "square"):
        add(op, ("float32",), ("float64",), ("int32",), ("int8",), ("int64",))
    add("abs", ("bool",))
    for op in ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal"):
        add(op, ("float32", "float32"), ("float64", "float64:row"), ("float32", 0.1), ("int32", "float32"),
            ("int64", 3), ("bool", "bool:col"), ("uint8", "int8"))
    add("where", ("bool", "float32", "float32"), ("bool:row", "float64", 0.0), ("bool", "int32", "float32:col"),
        ("bool:0d", 1, "float64"), ("bool", "int8", "int8"))
    add("clip_by_value", ("float32", "float32", "float32"), ("float64", -1.0, 1.0), ("float32", 0.0, "float64:row"),
        ("int32", -5, 5), ("float64", "float64:col", 2.0))
    add("cast", ("float32",), ("int32",), ("bool",), dtype=np.dtype("float64"))
    add("cast", ("float64",), ("int64",), dtype=np.dtype("float32"))
    add("cast", ("float32",), ("float64",), ("int32",), dtype=np.dtype("bool"))
    add("cast", ("float64~int",), ("int64",), ("bool",), dtype=np.dtype("int32"))
    add("cast", ("int64",), ("float32~int",), dtype=np.dtype("int8"))
    for op in ("identity", "stop_gradient"):
        add(op, ("float32",), ("float64",), ("int32",), ("bool",))
    # power: a uniform exponent (a scalar, or an array broadcast with stride 0) takes NumPy's fast
    # paths by value; an array of exponents goes to pow (values away from the fast-path ones).
    add("power", *[(base, exponent) for base in ("float32", "float64") for exponent in (2, 0.5, -1, 1, 0)],
        ("float64", "float64:0d~half"), ("float32", 3.0), ("float64", -2.5), ("float64", "float64~exponent"),
        ("float32:row", "float32~exponent"), (2.0, "float64~exponent"), ("int32~base", 3),
        ("int64~base", "int64~small"), ("int32~base", 0.5))
    for op in ("sqrt", "exp", "log", "log1p", "sin", "cos", "tanh", "sigmoid", "softplus", "relu"):
        add(op, ("float32",), ("float64",), ("int32",))
    add("relu", ("int8",), ("bool",))
    for op in ("tanh_backward", "sigmoid_backward", "square_backward", "relu_backward"):
        add(op, ("float32", "float32"), ("float64", "float64"), ("float32", "float64:row"), ("float64:col", 0.5))
    add("relu_backward", ("int32", "int32"))
    add("squared_difference_backward", ("float32", "float32", "float32"), ("float64", "float64:row", "float64:col"),
        ("float32", "float32", 1.0))
    for op in ("add", "subtract", "multiply", "divide", "maximum", "minimum", "squared_difference", "equal",
               "less_equal", "greater", "relu_backward", "tanh_backward", "sigmoid_backward", "square_backward"):
        add(op, ("float32~few", "float32~few"), ("float64~few", "float64:row~few"))
    add("clip_by_value", ("float64~few", "float64~few", "float64~few"), ("float32~few", "float32:col~few", 0.0))
    add("where", ("bool", "float32~few", "float32~few"))
    add("squared_difference_backward", ("float64~few", "float64~few", "float64~few"))
    add("test_expr_softsign", ("float32",), ("float64:row",), alpha=0.75)
    add("test_expr_softsign", ("float32",), alpha=-3.0)
    return cases


CASES = _cases()
# Checked against the forwards in their NumPy form only: the rounding rule past one block,
# float16 (which has no C type), and float to integer casts of NaN, infinities and values out of
# range (undefined in C; NumPy gives a platform's value with a warning).
NUMPY_ONLY_CASES = [Case(op, inputs, {}, BIG) for op, inputs in [
    ("sigmoid", ("float32",)), ("softplus", ("float64",)), ("tanh", ("float16",)), ("relu", ("float32",)),
    ("tanh_backward", ("float32:col", "float64")), ("squared_difference_backward", ("float64", "float32:row", 1.5)),
    ("relu_backward", ("float16", "float16:row")), ("sigmoid", ("float16",)), ("add", ("float16", "float16"))]] + [
    Case("cast", ("float32",), {"dtype": np.dtype("int32")}), Case("cast", ("float64",), {"dtype": np.dtype("uint8")})]


# ---------------------------------------------------------------------------------------
# Input values

def _specials(dtype):
    """Values every float input mixes in: zeros, infinities, NaN, subnormals, extremes, and the
    thresholds where exp, tanh, sigmoid and softplus saturate or flush."""
    info = np.finfo(dtype)
    tiny = float(info.tiny)
    values = [0.0, -0.0, math.inf, -math.inf, math.nan, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, tiny, -tiny,
              tiny / 2, -tiny / 4, float(info.smallest_subnormal), float(info.max), -float(info.max), 1e30, -1e30,
              1e-30, 20.0, -20.0, 40.0, -40.0, 40.5, 88.72, -87.4, 89.0, -103.97, -104.0, 100.0, -100.0, 700.0,
              -700.0, -700.5, 707.7, 708.39, -708.39, -708.3964185322641, -708.39642, -708.4, -708.41, 709.8, 710.0,
              -745.2, -746.0, 1 - 2**-24, -1 + 2**-24, 1 - 2**-53, 1 + 2**-52, 1e-8, -1e-8, 1e-200, -1e-300,
              2.0**-1022 * 3, -(2.0**-1030), 2.0**-126 * 1.5, -(2.0**-140)]
    with np.errstate(all="ignore"):
        return np.array(values).astype(dtype)


def _values(spec, rng, shape):
    """An array for the spec "dtype[:partner][~domain]" of a case of result shape `shape`."""
    spec, _, domain = spec.partition("~")
    name, _, partner = spec.partition(":")
    dtype = np.dtype(name)
    shape = {"": shape, "row": shape[1:], "col": (shape[0], 1), "0d": ()}[partner]
    n = math.prod(shape)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if domain == "base":
            values = rng.integers(-3000, 3000, n)
        elif domain == "small":
            values = rng.integers(0, 21, n)
        else:
            values = rng.integers(info.min, info.max, n, endpoint=True, dtype=dtype)
            small = rng.random(n) < 0.5  # half of them small, where the operations do not wrap
            values[small] = rng.integers(max(int(info.min), -40), 41, int(small.sum()))
            values[:2] = info.min, info.max
        return values.astype(dtype).reshape(shape)
    if domain == "exponent":  # array exponents, away from the fast-path values
        values = rng.standard_normal(n) * 3 + 0.01
    elif domain == "few":  # few distinct values, so that pairs of zeros, NaNs and infinities meet often
        values = rng.choice([0.0, -0.0, math.nan, math.inf, -math.inf, 1.0, -1.0, 5e-324, -1e-45], n)
    elif domain == "half":
        values = np.full(n, 0.5)
    elif domain == "int":  # float to integer casts in range (C leaves others undefined)
        values = np.where(rng.random(n) < 0.5, rng.uniform(-100, 100, n), np.trunc(rng.uniform(-1e6, 1e6, n)))
        values[:2] = 0.0, -0.0
    else:
        values = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3, n)
        specials = _specials(dtype)
        take = rng.choice(n, size=min(n, len(specials)), replace=False)
        values[take] = specials[:len(take)]
        near_one = rng.random(n) < 0.1  # the saved outputs of tanh and sigmoid in the backward ops
        values[near_one] = np.tanh(values[near_one])
    with np.errstate(all="ignore"):
        return values.astype(dtype).reshape(shape)


def _inputs(case):
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    return [_values(a, rng, case.shape) if isinstance(a, str) else a for a in case.inputs]


# ---------------------------------------------------------------------------------------
# Comparison: bit for bit (NaN where NaN) or within an ulp bound

def _ordered(bits, width):
    """Float bit patterns (Python ints) as integers ordered like the floats."""
    sign = 1 << (width - 1)
    return [-(b & (sign - 1)) if b & sign else b for b in bits]


def _disagreement(got, want, ulps, inputs):
    """'' if `got` agrees with `want`, else a description of the first disagreements."""
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    got, want = got.ravel(), want.ravel()
    if want.dtype.kind != "f":
        bad = np.flatnonzero(got != want)
    else:
        unsigned = np.dtype(f"u{want.dtype.itemsize}")
        gbits, wbits = got.view(unsigned), want.view(unsigned)
        bad = np.flatnonzero((gbits != wbits) & ~(np.isnan(got) & np.isnan(want)))
        if ulps and len(bad):
            width = 8 * want.dtype.itemsize
            g, w = gbits[bad].tolist(), wbits[bad].tolist()
            near = [not np.isnan(got[i]) and not np.isnan(want[i]) and (a >> (width - 1)) == (b >> (width - 1))
                    and abs(x - y) <= ulps for i, a, b, x, y in zip(bad, g, w, _ordered(g, width), _ordered(w, width))]
            bad = bad[~np.array(near)]
    if not len(bad):
        return ""
    flat = [np.broadcast_to(a, want.shape if a.ndim <= 1 else a.shape).ravel() if hasattr(a, "shape") else a
            for a in inputs]
    lines = []
    for i in bad[:6]:
        args = ", ".join(repr(a[i]) if hasattr(a, "shape") else repr(a) for a in flat)
        lines.append(f"  at {i}: inputs ({args}): got {got[i]!r}, want {want[i]!r}")
    return f"{len(bad)} of {want.size} elements disagree{f' beyond {ulps} ulps' if ulps else ''}:\n" + "\n".join(lines)


def _broadcast_flat(inputs, shape):
    """The array inputs broadcast to `shape`, contiguous and flat; scalars unchanged."""
    return [np.ascontiguousarray(np.broadcast_to(a, shape)).ravel() if hasattr(a, "shape") else a for a in inputs]


# ---------------------------------------------------------------------------------------
# A user primitive with an expression, through the same machinery (registered for this module)

@pytest.fixture(scope="module", autouse=True)
def user_softsign():
    """alpha x / (1 + |x|), a user primitive with a keyword parameter and a scalar expression,
    removed from the registry afterwards."""
    softsign = softsign_primitive("test_expr_softsign")
    yield softsign
    dispatch.REGISTRY.pop("test_expr_softsign", None)


def _op(name):
    return dispatch.REGISTRY[name]


@pytest.fixture(scope="module")
def prepared():
    """{case id: (op, inputs, want)}: each case's inputs and its forward's result, computed once."""
    table = {}
    for case in CASES + NUMPY_ONLY_CASES:
        op = _op(case.op)
        inputs = _inputs(case)
        with np.errstate(all="ignore"):
            want = np.asarray(op.forward(*inputs, **case.params))
        table[case.id] = op, inputs, want
    return table


# ---------------------------------------------------------------------------------------
# Every elementwise primitive has an expression

def test_every_elementwise_primitive_has_an_expression():
    built_in = {name: op for name, op in dispatch.REGISTRY.items() if op.__module__.startswith("gpugrad.")}
    missing = sorted(name for name, op in built_in.items() if op.kind == "elementwise" and op.expression is None)
    assert missing == sorted(NO_EXPRESSION)
    for name, op in built_in.items():
        assert op.expression is None or isinstance(op.expression, dispatch.Expression)
        if op.kind != "elementwise":
            assert op.expression is None, name
    covered = {case.op for case in CASES}
    assert {name for name, op in built_in.items() if op.expression is not None} <= covered


# ---------------------------------------------------------------------------------------
# The NumPy forms

@pytest.mark.parametrize("case", CASES + NUMPY_ONLY_CASES, ids=lambda c: c.id)
def test_numpy_form_equals_the_forward(case, prepared):
    op, inputs, want = prepared[case.id]
    out = np.empty(want.shape, want.dtype)
    out.fill(7)  # nothing may read it before writing it
    with np.errstate(all="ignore"):
        got = op.expression.numpy(np, out, *inputs, **case.params)
    assert got is out
    assert not _disagreement(out, want, 0, inputs), _disagreement(out, want, 0, inputs)


# ---------------------------------------------------------------------------------------
# The C forms on the host

def _c_text(case, op, inputs, want, names):
    """(the C text of the expression for `case`, the C types of its array inputs), with the
    array inputs read as names[i][k]; None if a dtype has no C type (float16)."""
    try:
        types = [dispatch.c_type(a.dtype) if hasattr(a, "shape") else None for a in inputs]
        text = op.expression.render(
            [f"{names[i]}[k]" if hasattr(a, "shape") else dispatch.c_literal(a) for i, a in enumerate(inputs)],
            case.params, result=want.dtype, common=np.result_type(*inputs))
        result = dispatch.c_type(want.dtype)
    except ValueError:
        return None
    return text, types, result


def _c_ulps(case, want):
    """The ulp bound of the C form of `case` (0: bit for bit)."""
    if case.op == "power" and not isinstance(case.inputs[1], str) and case.inputs[1] in (-1, 0, 0.5, 1, 2):
        return 0  # NumPy's fast paths: 1/x, 1, sqrt, x, x*x, all correctly rounded
    return LIBM_ULPS.get((case.op, want.dtype.name), 0)


@pytest.fixture(scope="module")
def harness(prepared, tmp_path_factory):
    """The C forms of every case compiled into one shared library, once: case i is
    `void case_i(void* out, void* const* inputs, long long n)` over flat arrays."""
    gpp = shutil.which("g++")
    if gpp is None:
        pytest.skip("g++ is not on PATH: the C expressions are not compiled on the host")
    lines = ['#include "expressions.cuh"', ""]
    entries = {}
    for index, case in enumerate(CASES):
        op, inputs, want = prepared[case.id]
        rendered = _c_text(case, op, inputs, want, [f"in{i}" for i in range(len(inputs))])
        if rendered is None:
            continue
        text, types, result = rendered
        lines.append(f'extern "C" void case_{index}(void* out_, void* const* in_, long long n) {{')
        lines.append(f"    {result}* out = ({result}*)out_;")
        for i, ctype in enumerate(types):
            if ctype is not None:
                lines.append(f"    const {ctype}* in{i} = (const {ctype}*)in_[{i}];")
        lines.append(f"    for (long long k = 0; k < n; ++k) out[k] = {text};")
        lines.append("}")
        entries[case.id] = f"case_{index}"
    folder = tmp_path_factory.mktemp("expressions")
    source, library = folder / "harness.cpp", folder / "harness.so"
    source.write_text("\n".join(lines) + "\n")
    build = subprocess.run([gpp, "-std=c++17", "-O2", "-ffp-contract=off", "-shared", "-fPIC", f"-I{HEADER_DIR}",
                            "-o", str(library), str(source)], capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr[-4000:]
    return ctypes.CDLL(str(library)), entries


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_c_form_equals_the_forward(case, prepared, harness):
    library, entries = harness
    op, inputs, want = prepared[case.id]
    if case.id not in entries:
        pytest.skip("a dtype of this case has no C type")
    flat = _broadcast_flat(inputs, want.shape)
    arrays = [a for a in flat if hasattr(a, "shape")]
    pointers = (ctypes.c_void_p * max(1, len(flat)))(
        *[a.ctypes.data if hasattr(a, "shape") else None for a in flat])
    out = np.empty(want.size, want.dtype)
    getattr(library, entries[case.id])(ctypes.c_void_p(out.ctypes.data), pointers, ctypes.c_longlong(out.size))
    del arrays
    problem = _disagreement(out, want.ravel(), _c_ulps(case, want), flat)
    assert not problem, f"{op.expression.c!r} as {_c_text(case, op, inputs, want, ['x'] * 3)[0]!r}: {problem}"


def test_header_constants_are_the_forwards():
    text = (HEADER_DIR / "expressions.cuh").read_text()

    def constant(name):
        line = next(line for line in text.splitlines() if line.startswith(f"#define {name} "))
        literal = line.split(None, 2)[2].split("//")[0].strip().strip("()")
        return float.fromhex(literal) if "0x" in literal else float(literal)

    bound64, tiny64 = elementwise_math._saturation(np.dtype("float64"))
    bound32, tiny32 = elementwise_math._saturation(np.dtype("float32"))
    assert constant("GG_SATURATION_BOUND_64") == bound64
    assert constant("GG_SATURATION_BOUND_32") == bound32 and tiny32 is None
    assert constant("GG_LOG_TINY_64") == tiny64


# ---------------------------------------------------------------------------------------
# The C forms in a CUDA kernel

def _kernels(prepared, header):
    """A CUDA source of one kernel per case, `case_i(out, in0, ..., n)` (extern "C", one thread
    an element), after `header`; and {case id: kernel name}."""
    lines, names = [header, ""], {}
    for index, case in enumerate(CASES):
        op, inputs, want = prepared[case.id]
        rendered = _c_text(case, op, inputs, want, [f"in{i}" for i in range(len(inputs))])
        if rendered is None:
            continue
        text, types, result = rendered
        parameters = [f"{result}* out"] + [f"const {t}* in{i}" for i, t in enumerate(types) if t is not None]
        lines.append(f'extern "C" __global__ void case_{index}({", ".join(parameters)}, long long n) {{')
        lines.append("    const long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;")
        lines.append(f"    if (k < n) out[k] = {text};")
        lines.append("}")
        names[case.id] = f"case_{index}"
    return "\n".join(lines) + "\n", names


def test_c_forms_compile_with_nvcc(prepared, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH (CI compiles the expressions where it is)")
    source, _ = _kernels(prepared, '#include "expressions.cuh"')
    (tmp_path / "expressions.cu").write_text(source)
    build = subprocess.run([nvcc, "--std=c++17", "-arch=sm_80", "-c", f"-I{HEADER_DIR}", "-o",
                            str(tmp_path / "expressions.o"), str(tmp_path / "expressions.cu")],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-4000:]


@pytest.mark.gpu
def test_c_forms_agree_on_the_gpu(prepared):
    """Every case's C form compiled as the kernels are (NVRTC through CuPy, the header inlined,
    CuPy's -ftz=true included) and run on the device: the same agreement as on the host, under
    the same bounds (CUDA's double exp, log, sin, cos, tanh and pow stay within them too)."""
    cupy = pytest.importorskip("cupy")
    source, names = _kernels(prepared, (HEADER_DIR / "expressions.cuh").read_text())
    module = kernels.compile_source(source)
    problems = []
    for case in CASES:
        if case.id not in names:
            continue
        op, inputs, want = prepared[case.id]
        flat = _broadcast_flat(inputs, want.shape)
        out = cupy.empty(want.size, want.dtype)
        module.get_function(names[case.id])(
            (-(-want.size // 256),), (256,), (out, *[cupy.asarray(a) for a in flat if hasattr(a, "shape")],
                                               np.int64(want.size)))
        problem = _disagreement(out.get(), want.ravel(), _c_ulps(case, want), flat)
        if problem:
            problems.append(f"{case.id}: {problem}")
    assert not problems, "\n".join(problems[:10])


# ---------------------------------------------------------------------------------------
# defexpr: validation, both forms of the call, rendering

@pytest.fixture
def scratch_op():
    """A fresh elementwise user primitive f(x, y, *, scale), removed afterwards."""
    @gg.primitive(name="test_expr_scratch", kind="elementwise")
    def scratch(x, y, *, scale):
        return x * y * scale

    yield scratch
    dispatch.REGISTRY.pop("test_expr_scratch", None)


@pytest.mark.parametrize("c, bad", [
    ("{0} + {2}", "{2}"),
    ("{0} * {alpha}", "{alpha}"),
    ("{x} + {1}", "{x}"),
    ("{0!r} + {1}", "{0!r}"),
    ("{0:x} + {1}", "{0:x}"),
    ("{0.real} + {1}", "{0.real}"),
    ("{} + {1}", "{}"),
])
def test_defexpr_refuses_a_bad_placeholder(scratch_op, c, bad):
    with pytest.raises(ValueError) as info:
        scratch_op.defexpr(c, lambda xp, out, x, y, *, scale: out)
    message = str(info.value)
    assert "test_expr_scratch" in message and bad in message
    assert scratch_op.expression is None


def test_defexpr_refuses_malformed_text_and_other_kinds(scratch_op):
    with pytest.raises(ValueError, match="test_expr_scratch"):
        scratch_op.defexpr("{0 + {1}", lambda xp, out, x, y, *, scale: out)
    with pytest.raises(TypeError, match="numpy"):
        scratch_op.defexpr("{0}", "not a function")
    with pytest.raises(TypeError, match="reduce_sum.*elementwise"):
        dispatch.REGISTRY["reduce_sum"].defexpr("{0}", lambda xp, out, x: out)
    assert dispatch.REGISTRY["reduce_sum"].expression is None


def test_defexpr_call_and_decorator_forms(scratch_op):
    def numpy_form(xp, out, x, y, *, scale):
        xp.multiply(x, y, out=out)
        return xp.multiply(out, scale, out=out)

    c = "gg_multiply(gg_multiply(gg_cast<{T}>({0}), gg_cast<{T}>({1})), gg_cast<{T}>({scale}))"
    assert scratch_op.defexpr(c, numpy_form) is numpy_form
    assert scratch_op.expression == dispatch.Expression(c, numpy_form)
    assert scratch_op.expression.placeholders() == ("T", "0", "1", "scale")

    @scratch_op.defexpr("{0} * {1} * {scale}")
    def again(xp, out, x, y, *, scale):
        return numpy_form(xp, out, x, y, scale=scale)

    assert scratch_op.expression.c == "{0} * {1} * {scale}" and scratch_op.expression.numpy is again
    rendered = scratch_op.expression.render(["a[k]", dispatch.c_literal(-2.0)], {"scale": 0.1},
                                            result=np.dtype("float32"), common=np.dtype("float32"))
    assert rendered == "(a[k]) * ((-0x1.0000000000000p+1)) * 0x1.999999999999ap-4"
    with pytest.raises(ValueError, match="scale"):
        scratch_op.expression.render(["a", "b"], {}, result=np.dtype("float32"), common=np.dtype("float32"))
    with pytest.raises(ValueError, match="input 1"):
        scratch_op.expression.render(["a"], {"scale": 1.0}, result=np.dtype("float32"), common=np.dtype("float32"))


def test_user_primitive_expression_is_checked_like_the_built_ins(user_softsign):
    # The same record the built-ins have; its cases are in CASES ("test_expr_softsign").
    assert isinstance(user_softsign.expression, dispatch.Expression)
    assert {case.op for case in CASES} >= {"test_expr_softsign"}
    x = gg.constant([-2.0, 0.0, 3.0])
    assert np.array_equal(user_softsign(x, alpha=0.75).numpy(), np.array([-0.5, 0.0, 0.5625], np.float32))


def test_c_types_and_literals():
    assert [dispatch.c_type(t) for t in ("bool", "int8", "uint16", "int32", "int64", "uint64", "float32", "float64")] \
        == ["bool", "signed char", "unsigned short", "int", "long long", "unsigned long long", "float", "double"]
    with pytest.raises(ValueError, match="float16"):
        dispatch.c_type("float16")
    assert dispatch.c_literal(np.dtype("float32")) == "float" and dispatch.c_literal(np.int8) == "signed char"
    assert [dispatch.c_literal(v) for v in (True, False, np.bool_(True))] == ["1", "0", "1"]
    assert [dispatch.c_literal(v) for v in (3, -3, -2**63, 2**63, np.int16(-7))] == [
        "3LL", "(-3LL)", "(-9223372036854775807LL - 1)", "9223372036854775808ULL", "(-7LL)"]
    assert [dispatch.c_literal(v) for v in (math.inf, -math.inf, math.nan, -0.0)] == [
        "gg_inf()", "(-gg_inf())", "gg_nan()", "(-0x0.0p+0)"]
    for bad in (None, (1, 2), "float32", 2**64):
        with pytest.raises((TypeError, ValueError)):
            dispatch.c_literal(bad)


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers(-2**63, 2**64 - 1))
def test_c_literals_are_exact(value):
    text = dispatch.c_literal(value).replace("(", "").replace(")", "")
    if isinstance(value, float):
        assert float.fromhex(text) == value and math.copysign(1, float.fromhex(text)) == math.copysign(1, value)
    elif text.endswith(" - 1"):
        assert value == -2**63
    else:
        assert int(text.rstrip("LU")) == value
