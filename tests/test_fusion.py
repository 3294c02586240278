"""The fusion stage of the step compiler (gpugrad/fusion.py): groups of elementwise steps, the
kernel generated for each, and its NumPy lowering, against the steps' own forwards.

- grouping on real traced programs (the two-layer regression training step, a step with a
  user primitive and a number argument) and on hand-built programs that pin the rule down
  (steps crossed, early readers, effects, shapes, dtypes without a C type);
- random programs (seeded): chains of elementwise primitives over float32, float64, mixed and
  int32 data with broadcasting partners, Python-number constants and arguments, comparisons
  and where, reductions reading intermediates, and effect steps;
- for every group: the generated source, built on the host with g++ (its `_host` loop over
  the same GG_HD element function the CUDA kernel calls) and called through ctypes, gives
  the forwards' outputs, bit for bit but where a member is one of the math library's
  functions (exp, log, ...; the bounds of tests/test_expressions.py's LIBM_ULPS, for
  outputs that feed no other member); run_numpy into preallocated buffers gives them bit
  for bit; the schedule (groups at their positions, the other steps in order) computes
  what the program computes;
- fused reductions (reduce_sum, reduce_mean, reduce_max and reduce_min joining the group
  that feeds them: axis None, one axis, two axes, keepdims or not, short and long, rows and
  columns, float32 and float64, broadcast inputs and a number argument): the host build of a
  sum within the bound of `_sum_bound` ((n + 2) eps sum|x| for n terms; equal where the
  forward is not finite), of a maximum or minimum equal, and for sums of positive terms within 1 float32 ulp
  of the exact sum and 4 of the forward (16 ulps in float64); run_numpy bit for bit; the
  rule's clauses (which reductions stay separate steps, the layouts of long sums) and the seed
  step's schedule;
- every generated CUDA source compiles with nvcc (skipped without nvcc), and, marked gpu,
  runs as kernels.compile_source compiles it.
"""
import ctypes
import math
import pathlib
import random
import shutil
import subprocess
import zlib

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import dispatch, fusion
from gpugrad.program import Program, evaluate
from gpugrad.tracing import Step, aval
from helpers import program_of, regression_step, softsign_primitive
from test_expressions import LIBM_ULPS

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADER_DIR = ROOT / "cuda_kernels"
RANDOM_SEEDS = range(16)
FAST_POWERS = (-1, 0, 0.5, 1, 2)  # exponents whose NumPy and C forms agree bit for bit


# ---------------------------------------------------------------------------------------
# Programs: captured with gg.function, or built by hand

def _two_layer_regression():
    """The main example's step: x (300, 1) -> Dense(3) sigmoid -> Dense(1), MSE loss, SGD."""
    train_step, x, y = regression_step()
    return program_of(train_step, x, y), (x.numpy(), y.numpy())


class _Builder:
    """A Program built step by step, with each op's forward run once for the output's aval."""

    def __init__(self):
        self.values, self.constants, self.args, self.steps, self.variables = [], {}, [], [], set()

    def _slot(self, value):
        self.values.append(value)
        return len(self.values) - 1

    def argument(self, value):
        slot = self._slot(value)
        self.args.append(slot)
        return slot

    def constant(self, value, variable=False):
        slot = self._slot(value)
        self.constants[slot] = value
        if variable:
            self.variables.add(slot)
        return slot

    def op(self, name, *slots, **params):
        op = dispatch.REGISTRY[name]
        with np.errstate(all="ignore"):
            out = op.forward(*(self.values[s] for s in slots), **params)
        slot = self._slot(out)
        self.steps.append(Step(name, op.kind, op.forward, params, tuple(slots), slot, False, op))
        return slot

    def effect(self, fn, *slots, name="effect"):
        """A step run for its effect (no output), as an update or a host call records."""
        self.steps.append(Step(name, "update", fn, None, tuple(slots), None, False))

    def program(self, outputs):
        return Program(self.steps, [aval(v) for v in self.values], self.constants, self.variables, self.args,
                       outputs, {})


def _data(rng, shape, dtype):
    """Random values of `dtype`, floats with zeros of both signs, infinities, NaN and subnormals mixed in."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        return rng.integers(-50, 51, n).astype(dtype).reshape(shape)
    values = rng.standard_normal(n) * 10.0 ** rng.uniform(-2, 2, n)
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, float(np.finfo(dtype).smallest_subnormal), 1e-39]
    for index in rng.choice(n, size=min(n, 3), replace=False):
        values[index] = specials[rng.integers(len(specials))]
    with np.errstate(all="ignore"):
        return values.astype(dtype).reshape(shape)


SHAPES = [(6, 5), (3, 4, 5), (17,), (2, 1, 6)]
FLOAT_UNARY = ["negative", "abs", "square", "sqrt", "sign", "relu", "identity", "stop_gradient"]
ROUNDED = ["sigmoid", "tanh", "softplus"]  # the rounding rule: bit for bit in float32, LIBM_ULPS in float64
FLOAT_BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum", "squared_difference"]
BACKWARD = ["sigmoid_backward", "tanh_backward", "square_backward", "relu_backward"]
INT_UNARY = ["negative", "abs", "square", "sign", "identity"]
INT_BINARY = ["add", "subtract", "multiply", "maximum", "minimum"]
COMPARISONS = ["less", "greater_equal", "equal", "not_equal"]
LIBM = ["exp", "log", "log1p", "sin", "cos"]


def _random_program(seed):
    """A random program of elementwise chains (see the module docstring) and its arguments."""
    rng = random.Random(seed)
    data = np.random.default_rng(seed)
    kind = ["float32", "float64", "mixed", "int32"][seed % 4]
    shape = SHAPES[(seed // 4) % len(SHAPES)]
    main = np.dtype({"mixed": "float32"}.get(kind, kind))
    other = np.dtype("float64") if kind == "mixed" else main
    b = _Builder()
    inputs = []

    def argument(value):
        inputs.append(value)
        return b.argument(value)

    pool = [argument(_data(data, shape, main)) for _ in range(2)]  # slots of the iteration shape
    partner_shapes = [shape[-1:], shape[:-1] + (1,), (), shape]
    partners = [b.constant(_data(data, s, other)) if i % 2 else argument(_data(data, s, other))
                for i, s in enumerate(partner_shapes)]
    numbers = [b.constant(v) for v in ((0.5, -2.0, 3.0, 1e-3, -0.0) if main.kind == "f" else (2, -3, 7))]
    numbers.append(argument(0.25 if main.kind == "f" else 5))
    bools, outputs = [], []

    def recent(slots):
        return slots[-1 - min(int(rng.expovariate(0.6)), len(slots) - 1)]

    def operand():
        r = rng.random()
        return recent(pool) if r < 0.5 else rng.choice(partners) if r < 0.8 else rng.choice(numbers)

    for _ in range(rng.randint(8, 16)):
        x = recent(pool)
        dtype = b.values[x].dtype
        r = rng.random()
        if r < 0.08:
            partners.append(b.op("reduce_sum", x, axis=(len(shape) - 1,), keepdims=True))
        elif r < 0.13:
            b.effect(lambda *arrays: None, x)
        elif r < 0.18:
            p = rng.choice([p for p in partners if b.values[p].shape != shape] or partners)
            partners.append(b.op(rng.choice(["add", "multiply"]), p, rng.choice(numbers)))
        elif r < 0.26:
            bools.append(b.op(rng.choice(COMPARISONS), x, operand()))
        elif r < 0.32 and bools:
            pool.append(b.op("where", rng.choice(bools), x, operand()))
        elif r < 0.38 and dtype.kind == "f":
            name = rng.choice(LIBM + ["power"] + (ROUNDED if dtype == np.float64 else []))
            # read by no other step: its ulps do not grow through later members
            outputs.append(b.op(name, x, b.constant(1.5)) if name == "power" else b.op(name, x))
        elif r < 0.44:
            target = rng.choice(["float32", "float64"]) if dtype.kind == "f" else "float64"
            pool.append(b.op("cast", x, dtype=np.dtype(target)))
        elif r < 0.48 and dtype.kind == "f":
            pool.append(b.op("clip_by_value", x, b.constant(-1.5), rng.choice([b.constant(2.0)] + partners)))
        elif dtype.kind == "f":
            choice = rng.random()
            if choice < 0.3:
                name = rng.choice(FLOAT_UNARY + (ROUNDED if dtype == np.float32 else []))
                pool.append(b.op(name, x))
            elif choice < 0.45:
                pool.append(b.op(rng.choice(BACKWARD), x, recent(pool)))
            elif choice < 0.5:
                pool.append(b.op("power", x, b.constant(float(rng.choice([2, 0.5, -1])))))
            else:
                args = (x, operand()) if rng.random() < 0.7 else (operand(), x)
                pool.append(b.op(rng.choice(FLOAT_BINARY), *args))
        else:
            choice = rng.random()
            if choice < 0.2:
                pool.append(b.op("divide", x, operand()) if choice < 0.1 else b.op("sqrt", x))
            elif choice < 0.45:
                pool.append(b.op(rng.choice(INT_UNARY), x))
            else:
                pool.append(b.op(rng.choice(INT_BINARY), x, operand()))
    outputs += [pool[-1]] + rng.sample(pool[2:], min(2, len(pool) - 2))
    return b.program(list(dict.fromkeys(outputs))), tuple(inputs)


def _ordering_programs():
    """Hand-built programs for each clause of the grouping rule: {name: (program, args, groups)}
    with the expected groups as lists of member step indices."""
    rng = np.random.default_rng(5)
    x, y = _data(rng, (7, 5), "float32"), _data(rng, (7, 5), "float32")
    cases = {}

    b = _Builder()  # a step that neither feeds nor reads the group is crossed
    sx, sy = b.argument(x), b.argument(y)
    a = b.op("multiply", sx, b.constant(2.0))
    m = b.op("reduce_sum", sy, axis=(1,), keepdims=True)
    c = b.op("add", a, b.constant(1.0))
    cases["crossing"] = b.program([c, m]), (x, y), [[0, 2]]

    b = _Builder()  # a reader outside the group before the step keeps it out
    sx = b.argument(x)
    a = b.op("multiply", sx, b.constant(2.0))
    r = b.op("reduce_sum", a, axis=(1,), keepdims=True)
    c = b.op("add", a, r)
    cases["early reader"] = b.program([c]), (x,), [[0, 1], [2]]  # the reduction of a joins it

    b = _Builder()  # an effect in between: the Variable it writes is read before and after it
    sx = b.argument(x)
    v = b.constant(y.copy(), variable=True)
    a = b.op("multiply", v, b.constant(2.0))
    b.effect(lambda variable, value: np.copyto(variable, value), v, sx, name="assign")
    c = b.op("add", a, v)
    cases["effect"] = b.program([c]), (x,), [[0], [2]]

    b = _Builder()  # another output shape (broadcast-compatible) starts another group
    sx = b.argument(x)
    row = b.argument(x[0])
    p = b.op("add", row, b.constant(1.0))
    c = b.op("multiply", sx, p)
    d = b.op("negative", c)
    cases["shapes"] = b.program([d]), (x, x[0]), [[0], [1, 2]]

    b = _Builder()  # two chains merge through a step reading both; one output
    sx, sy = b.argument(x), b.argument(y)
    a = b.op("multiply", sx, b.constant(2.0))
    e = b.op("multiply", sy, b.constant(3.0))
    c = b.op("add", a, e)
    cases["merge"] = b.program([c]), (x, y), [[0, 1, 2]]

    b = _Builder()  # of two chains, the one with an early reader is left out of the merge
    sx, sy = b.argument(x), b.argument(y)
    a = b.op("multiply", sx, b.constant(2.0))
    r = b.op("reduce_sum", a, axis=(1,), keepdims=True)
    e = b.op("multiply", sy, r)
    c = b.op("add", a, e)
    cases["partial merge"] = b.program([c]), (x, y), [[0, 1], [2, 3]]

    b = _Builder()  # float16 and complex slots have no C type: those steps stay out
    sx = b.argument(x)
    h = b.op("cast", sx, dtype=np.dtype("float16"))
    h2 = b.op("add", h, b.constant(1.0))
    z = b.op("multiply", sx, b.constant(1j))
    f = b.op("cast", h2, dtype=np.dtype("float32"))
    g = b.op("multiply", f, sx)
    cases["no C type"] = b.program([g, z]), (x,), [[4]]

    b = _Builder()  # a multi-output group: an intermediate read later, and a program result
    sx = b.argument(x)
    a = b.op("multiply", sx, b.constant(0.5))
    c = b.op("add", a, b.constant(1.0))
    d = b.op("subtract", c, sx)
    r = b.op("reduce_sum", c, axis=None, keepdims=False)
    cases["outputs"] = b.program([d, r, a]), (x,), [[0, 1, 2, 3]]
    return cases


REDUCTION_CASES = [((37, 29), None), ((37, 29), (0,)), ((37, 29), (1,)), ((6, 7, 8), (0, 2)), ((6, 7, 8), (1,)),
                   ((6, 7, 8), (0, 1)),
                   ((300, 40), (0,)),   # columns: blocks of 32 output elements, in 3 chunks of partial sums
                   ((4500, 3), (0,)),   # rows in 2 chunks
                   ((70, 65), None)]    # one total in 2 chunks


def _reduction_program(name, shape, axis, keepdims, dtype, positive=False, chain=True):
    """x (shape) times a row constant (shape[-1:]) plus a column argument (shape[:-1] + (1,))
    minus a number argument, then reduce_sum or reduce_mean (`name`): a group with broadcast
    inputs and a number parameter that the reduction joins. With `positive`, every term is
    positive (no cancellation); without `chain`, the reduction reads x itself."""
    rng = np.random.default_rng(zlib.crc32(repr((name, shape, axis, keepdims, dtype, positive)).encode()))

    def data(*s):
        values = rng.uniform(0.5, 2.0, s) if positive else rng.standard_normal(s) * 10.0 ** rng.uniform(-1, 1, s)
        return values.astype(dtype)

    b = _Builder()
    x = b.argument(data(*shape))
    if chain:
        column = b.argument(data(*shape[:-1], 1))
        number = b.argument(-0.25 if positive else 0.75)
        y = b.op("subtract", b.op("add", b.op("multiply", x, b.constant(data(shape[-1]))), column), number)
        args = (b.values[x], b.values[column], -0.25 if positive else 0.75)
    else:
        y = b.op("multiply", x, b.constant(3.0))
        args = (b.values[x],)
    r = b.op(name, y, axis=axis, keepdims=keepdims)
    return b.program([r]), args


def _reduction_programs():
    return {f"reduction: {name} {dtype} {shape} axis={axis} keepdims={keepdims}":
            _reduction_program(name, shape, axis, keepdims, dtype)
            for name in ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min") for dtype in ("float32", "float64")
            for shape, axis in REDUCTION_CASES for keepdims in (True, False)}


@pytest.fixture(scope="module")
def user_primitives():
    """A user primitive with an expression (a scaled softsign) and an elementwise one without,
    removed from the registry afterwards."""
    softsign = softsign_primitive("test_fusion_softsign")

    @gg.primitive(name="test_fusion_halve", kind="elementwise")
    def halve(x):
        return x * 0.5

    yield softsign, halve
    dispatch.REGISTRY.pop("test_fusion_softsign", None)
    dispatch.REGISTRY.pop("test_fusion_halve", None)


def _wide_two_layer_step():
    """(program, args) of a wider, longer two-layer training step (5,000 points, 40 hidden
    units, SGD) after the compiler's passes, as the CUDA lowering groups it."""
    from gpugrad import graphs, passes
    rng = np.random.default_rng(8)
    x = gg.constant(np.linspace(-1, 1, 5000, dtype=np.float32)[:, None])
    y = gg.constant(np.linspace(-1, 1, 5000, dtype=np.float32)[:, None] ** 2 - 0.5)
    variables = [gg.Variable(rng.normal(size=shape).astype(np.float32) / 4)
                 for shape in ((1, 40), (1, 40), (40, 1), (1, 1))]
    optimizer = gg.optimizers.SGD(0.1)

    @gg.function(compile=False)
    def step(xs, ys):
        w1, b1, w2, b2 = variables
        with gg.GradientTape() as tape:
            loss = gg.reduce_mean(gg.square(ys - (gg.sigmoid(xs @ w1 + b1) @ w2 + b2)))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return graphs.capture_safe(passes.default_pipeline(program_of(step, x, y))), (x.numpy(), y.numpy())


def _user_primitive_program(softsign, halve):
    x = gg.constant(np.linspace(-3.0, 3.0, 24, dtype=np.float32).reshape(4, 6))

    @gg.function(compile=False)
    def step(x, scale):
        s = softsign(x * scale + 1.0, alpha=0.5) - x
        total = gg.reduce_sum(s, axis=0)
        return total, halve(s) + 2.0

    return program_of(step, x, 0.75), (x.numpy(), 0.75)


@pytest.fixture(scope="module")
def programs(user_primitives):
    """{name: (program, args)} of every program the tests group."""
    with gg.device("cpu"):  # NumPy values, whatever the default device (the GPU checks run on cuda:0)
        table = {"two-layer regression": _two_layer_regression(),
                 "two-layer regression, wide": _wide_two_layer_step(),
                 "user primitive": _user_primitive_program(*user_primitives)}
    table.update({f"random {seed}": _random_program(seed) for seed in RANDOM_SEEDS})
    table.update({f"rule: {name}": (program, args) for name, (program, args, _) in _ordering_programs().items()})
    table.update(_reduction_programs())
    return table


# ---------------------------------------------------------------------------------------
# Running the steps with their forwards, the groups on the host

def _reference(program, args):
    """Every slot's value when the program's steps run with their forwards (on copies of the
    array constants), and the value each step read from a constant slot, as it read it."""
    values = {s: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for s, v in program.constants.items()}
    values.update(zip(program.arg_slots, args))
    reads = {}
    with np.errstate(all="ignore"):
        for index, step in enumerate(program.steps):
            for s in step.inputs:
                if s in program.constants and isinstance(values[s], np.ndarray):
                    reads[index, s] = values[s].copy()
            result = step.fn(*(values[s] for s in step.inputs), **(step.params or {}))
            if step.output is not None:
                values[step.output] = result
    return values, reads


def _group_inputs(group, values, reads):
    """The values of the group's input slots as its members read them."""
    inputs = []
    for slot in group.inputs:
        first = next(i for i, step in zip(group.indices, group.steps) if slot in step.inputs)
        inputs.append(reads.get((first, slot), values[slot]))
    return inputs


def _ulps(group, slot):
    """The bound of output `slot` of `group` (0: bit for bit): LIBM_ULPS for its step."""
    step = next(step for step in group.steps if step.output == slot)
    dtype = group.avals[slot][1]
    if step.name == "power" and group.constants.get(step.inputs[1], None) in FAST_POWERS:
        return 0
    return LIBM_ULPS.get((step.name, dtype.name), 0)


def _sum_bound(group, reduction, values):
    """The agreement bound of a fused reduction's output with its forward, elementwise:
    (n + 2) eps sum|x| (over a mean's count), n the elements reduced into each output. The
    forward's float32 (or float64) sum, in any order (NumPy's pairwise sum, BLAS for axis 0),
    errs by at most (n - 1) u sum|x| (u = eps / 2, the unit roundoff); the fused double sum
    rounded once errs by u |sum| plus n u_double sum|x|; a mean's division adds u |mean| to each."""
    x = np.asarray(values[reduction.inputs[0]], np.float64)
    magnitude = np.abs(x).sum(axis=reduction.params["axis"], keepdims=reduction.params["keepdims"])
    bound = (group.extent + 2) * np.finfo(group.avals[reduction.output][1]).eps * magnitude
    return bound / group.extent if reduction.name == "reduce_mean" else bound


def _output_disagreement(group, slot, got, values):
    """'' when output `slot` of `group` (got from a build of its source) agrees with the
    forwards' value: within _sum_bound for a fused reduction's output (equal where the forward
    is not finite), else as _ulps says."""
    want = np.asarray(values[slot])
    reduction = next((r for r in group.reductions if r.output == slot), None)
    if reduction is None:
        return _disagreement(got, want, _ulps(group, slot))
    if reduction.name in ("reduce_max", "reduce_min"):  # exact in any order (but a zero's sign on ties)
        return _disagreement(got + np.zeros((), got.dtype), want + np.zeros((), want.dtype))
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    bound = _sum_bound(group, reduction, values)
    finite = np.isfinite(want)
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(np.where(finite, ~(np.abs(got.astype(np.float64) - want) <= bound),
                                      ~((got == want) | (np.isnan(got) & np.isnan(want)))))
    if not len(bad):
        return ""
    got, want, bound = got.ravel(), want.ravel(), np.broadcast_to(bound, want.shape).ravel()
    return (f"{len(bad)} of {want.size} elements disagree beyond the sum bound: "
            + ", ".join(f"at {i} got {got[i]!r} want {want[i]!r} bound {bound[i]!r}" for i in bad[:5]))


def _disagreement(got, want, ulps=0):
    """'' when `got` equals `want` bit for bit (any NaN for a NaN), or within `ulps` ulps."""
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    got, want = np.ascontiguousarray(got).ravel(), np.ascontiguousarray(want).ravel()
    if want.dtype.kind == "c":  # (only steps that stay out of groups compute these) real and imaginary parts
        parts = np.dtype(f"f{want.dtype.itemsize // 2}")
        return _disagreement(got.view(parts), want.view(parts), ulps)
    if want.dtype.kind != "f":
        bad = np.flatnonzero(got != want)
    else:
        unsigned = np.dtype(f"u{want.dtype.itemsize}")
        g, w = got.view(unsigned).astype(object), want.view(unsigned).astype(object)
        bad = np.flatnonzero((g != w) & ~(np.isnan(got) & np.isnan(want)))
        if ulps and len(bad):
            sign = 1 << (8 * want.dtype.itemsize - 1)

            def ordered(bits):
                return -(bits & (sign - 1)) if bits & sign else bits

            bad = [i for i in bad if np.isnan(got[i]) or np.isnan(want[i]) or (g[i] & sign) != (w[i] & sign)
                   or abs(ordered(g[i]) - ordered(w[i])) > ulps]
    if not len(bad):
        return ""
    return (f"{len(bad)} of {want.size} elements disagree" + (f" beyond {ulps} ulps" if ulps else "") + ": "
            + ", ".join(f"at {i} got {got[i]!r} want {want[i]!r}" for i in bad[:5]))


_SCALARS = {np.float64: ctypes.c_double, np.int64: ctypes.c_longlong, np.int32: ctypes.c_int}


def _call_host(function, group, inputs):
    """The group's outputs from its generated host loop, on C-contiguous copies of `inputs`."""
    inputs = [np.array(v, dtype=group.avals[s][1], order="C") if type(group.avals[s]) is tuple else v
              for s, v in zip(group.inputs, inputs)]
    outs = [np.full(shape, 7, dtype) for shape, dtype in group.output_avals]  # nothing may read them first
    arguments = [ctypes.c_void_p(a.ctypes.data) if isinstance(a, np.ndarray) else _SCALARS[type(a)](a)
                 for a in group.kernel_arguments(outs, inputs)[:len(group.parameters)]]  # (the host keeps its partials)
    function(*arguments)
    return outs


class _HostBuild:
    """The generated sources compiled on the host with g++, as tests/test_expressions.py does,
    each source once: every missing one in one translation unit (the sources include the header
    behind its guard and name everything after their kernel)."""

    def __init__(self, folder):
        self.folder, self.libraries = folder, {}

    def functions(self, groups):
        missing = {g.kernel_name: g.cuda_source() for g in groups if g.kernel_name not in self.libraries}
        if missing:
            stem = self.folder / f"fused{len(list(self.folder.glob('*.so')))}"
            stem.with_suffix(".cpp").write_text("\n".join(missing.values()))
            build = subprocess.run(["g++", "-std=c++17", "-O2", "-ffp-contract=off", "-shared", "-fPIC",
                                    f"-I{HEADER_DIR}", "-o", str(stem.with_suffix(".so")),
                                    str(stem.with_suffix(".cpp"))], capture_output=True, text=True, timeout=300)
            assert build.returncode == 0, build.stderr[-4000:]
            library = ctypes.CDLL(str(stem.with_suffix(".so")))
            self.libraries.update(dict.fromkeys(missing, library))
        return [getattr(self.libraries[g.kernel_name], g.kernel_name + "_host") for g in groups]


@pytest.fixture(scope="module")
def host(programs, tmp_path_factory):
    """A _HostBuild with every group of every program built (one g++ run)."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not on PATH: the generated sources are not compiled on the host")
    build = _HostBuild(tmp_path_factory.mktemp("fusion"))
    build.functions([g for program, _ in programs.values() for g in fusion.find_groups(program)])
    return build


# ---------------------------------------------------------------------------------------
# Grouping on traced programs

def _names(groups):
    return [[step.name for step in g.steps] for g in groups]


def test_two_layer_regression_groups(programs):
    program, _ = programs["two-layer regression"]
    groups = fusion.find_groups(program)
    assert _names(groups) == [["add", "sigmoid"],
                              ["add", "subtract", "square", "reduce_mean", "square_backward", "negative",
                               "reduce_sum"],
                              ["sigmoid_backward", "reduce_sum"]]
    forward, loss, hidden = groups
    assert forward.shape == hidden.shape == (300, 3) and loss.shape == (300, 1)
    # The loss group computes the mean of the squares and, in the same pass over the batch, the
    # backward signal and its sum (the output bias's gradient); the squares need no buffer.
    assert [program.avals[s][0] for s in loss.outputs] == [(), (300, 1), (1, 1)]
    assert [r.params["axis"] for r in loss.reductions] == [None, (0,)] and loss.layout[2:] == (1, 300)
    assert [s for s, _, _ in loss.scratch] == [loss.steps[0].output, loss.steps[1].output, loss.steps[2].output,
                                               loss.steps[4].output]
    assert [program.avals[s][0] for s in hidden.outputs] == [(300, 3), (1, 3)]
    assert len(forward.outputs) == 1 and [s for s, _, _ in forward.scratch] == [forward.steps[0].output]
    # reduce_mean_backward (no expression) runs alone; each group is one kernel a step.
    units = fusion.schedule(program, groups)
    alone = [program.steps[u].name for u in units if isinstance(u, int)]
    assert "reduce_mean_backward" in alone and not {"add", "sigmoid", "negative"} & set(alone)
    assert sum(isinstance(u, fusion.Group) for u in units) == 3
    assert len({g.kernel_name for g in groups}) == 3


def test_user_primitive_joins_a_group_like_a_built_in(programs):
    program, _ = programs["user primitive"]
    groups = fusion.find_groups(program)
    assert _names(groups) == [["multiply", "add", "test_fusion_softsign", "subtract", "reduce_sum"], ["add"]]
    chain, tail = groups
    # The number argument is a kernel parameter; the constant 1.0 and alpha are C literals.
    assert [role for role, _, _ in chain.parameters].count("number") == 1
    source = chain.cuda_source()
    assert "double a" in source and "0x1.0000000000000p+0" in source and "0x1.0000000000000p-1" in source
    # test_fusion_halve has no expression: it runs alone, between the two groups.
    units = fusion.schedule(program, groups)
    assert [program.steps[u].name if isinstance(u, int) else "group" for u in units] == [
        "group", "test_fusion_halve", "group"]
    assert tail.inputs[0] == program.steps[units[1]].output


@pytest.mark.parametrize("name", list(_ordering_programs()), ids=str)
def test_grouping_rule(name, programs):
    program, _ = programs[f"rule: {name}"]
    expected = _ordering_programs()[name][2]
    assert [list(g.indices) for g in fusion.find_groups(program)] == expected


def test_every_fusable_step_is_in_one_group_and_groups_are_valid(programs):
    """Each fusable step is in exactly one group; a group's elementwise members compute its
    iteration shape, its members read no reduction result of the group (each element needs
    its own values only), and every step outside it that reads one of its results comes
    after its position, with no effect between its first member and its position."""
    for name, (program, _) in programs.items():
        groups = fusion.find_groups(program)
        members = [i for g in groups for i in g.indices if not fusion._is_reduction(program.steps[i])]
        assert sorted(members) == [i for i, s in enumerate(program.steps) if fusion.fusable(program, s)], name
        readers = program.consumers()
        for g in groups:
            assert all(program.avals[s.output][0] == g.shape for s in g.elementwise), name
            reduced = {r.output for r in g.reductions}
            assert not any(slot in reduced for step in g.steps for slot in step.inputs), (name, g)
            for step in g.steps:
                assert all(r > g.position for r in readers.get(step.output, ()) if r not in g.indices), (name, g)
            assert all(program.steps[k].output is not None for k in range(g.indices[0], g.position)), (name, g)


def test_equal_groups_share_a_kernel_and_others_do_not():
    def chain(shape, constant, dtype="float32"):
        b = _Builder()
        x = b.argument(np.ones(shape, dtype))
        c = b.op("add", b.op("multiply", x, b.constant(constant)), x)
        return fusion.find_groups(b.program([c]))[0]

    same = chain((4, 5), 2.0), chain((4, 5), 2.0)
    assert same[0].kernel_name == same[1].kernel_name and same[0].cuda_source() == same[1].cuda_source()
    others = [chain((5, 4), 2.0), chain((4, 5), 3.0), chain((4, 5), 2.0, "float64")]
    assert len({g.kernel_name for g in others + [same[0]]}) == 4


# ---------------------------------------------------------------------------------------
# The groups against the forwards

@pytest.mark.parametrize("name", ["two-layer regression", "user primitive"]
                         + [f"random {seed}" for seed in RANDOM_SEEDS]
                         + [f"rule: {name}" for name in _ordering_programs()]
                         + list(_reduction_programs()), ids=str)
def test_groups_agree_with_the_forwards(name, programs, host):
    program, args = programs[name]
    values, reads = _reference(program, args)
    groups = fusion.find_groups(program)
    for group, function in zip(groups, host.functions(groups)):
        inputs = _group_inputs(group, values, reads)
        with np.errstate(all="ignore"):
            got = _call_host(function, group, inputs)
        for slot, out in zip(group.outputs, got):
            problem = _output_disagreement(group, slot, out, values)
            assert not problem, f"{group} output %{slot}, host build: {problem}\n{group.cuda_source()}"
        outs = [np.full(shape, 3, dtype) for shape, dtype in group.output_avals]
        scratch = [np.full(shape, 5, dtype) for _, shape, dtype in group.scratch]
        with np.errstate(all="ignore"):
            returned = group.run_numpy(np, outs, inputs, scratch)
        assert all(r is o for r, o in zip(returned, outs))
        for slot, out in zip(group.outputs, outs):
            problem = _disagreement(out, np.asarray(values[slot]))
            assert not problem, f"{group} output %{slot}, run_numpy: {problem}"


def test_reductions_join_the_group_that_feeds_them(programs):
    """Each reduction program is one group: the elementwise members and the reduction, whose
    output is the group's only one (the elementwise result is scratch, no buffer of the
    schedule); one block of threads an output element."""
    for name in _reduction_programs():
        program, _ = programs[name]
        (group,) = fusion.find_groups(program)
        reduction = program.steps[-1]
        assert group.reductions == (reduction,) and group.indices == (0, 1, 2, 3), name
        assert [s.name for s in group.elementwise] == ["multiply", "add", "subtract"]
        assert group.outputs == (reduction.output,) and group.output_avals == (program.avals[reduction.output],)
        assert group.shape == program.avals[reduction.inputs[0]][0] and group.size == math.prod(group.shape)
        assert group.threads == math.prod(program.avals[reduction.output][0])
        assert group.extent * group.threads == group.size
        if group.tile == 1:  # a block an output element, of the power of two at least the count (32 to 256)
            assert group.lanes == min(256, max(32, 2 ** math.ceil(math.log2(group.extent))))
        else:  # 32 adjacent output elements a block, 8 threads each
            assert (group.tile, group.lanes) == (32, 8) and group.threads >= 32
        assert group.chunk == 16 * group.lanes and group.chunks == -(-group.extent // group.chunk)
        assert group.launch == (-(-group.threads // group.tile) * group.chunks, group.tile * group.lanes)
        assert (group.finish is None) == (group.chunks == 1) == (group.partials == 0)
        assert reduction.inputs[0] in [slot for slot, _, _ in group.scratch]
        assert [role for role, _, _ in group.parameters] == ["output", "input", "input", "input", "number"]
        assert [u.indices for u in fusion.schedule(program)] == [group.indices]
        start = {"reduce_max": "-gg_inf()", "reduce_min": "gg_inf()"}.get(reduction.name, "0.0")
        assert reduction.name in repr(group) and f"acc[0] = {start};" in group.cuda_source()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_reductions_of_positive_terms_are_within_ulps(dtype, host):
    """Without cancellation the bound is in ulps: a float32 result is the exact sum (or mean)
    of the forward's terms rounded once (within 1 ulp: the reference rounds to float64 first)
    and, for up to 1,100 terms, within 4 ulps of the forward's float32 pairwise or BLAS sum; a
    float64 one within 16 ulps of both (these terms measure at most 10). The same kernels
    as the reduction programs' (only the data differ), and run_numpy bit for bit."""
    worst = 1 if dtype == "float32" else 16
    for name in ("reduce_sum", "reduce_mean"):
        for shape, axis in REDUCTION_CASES:
            for keepdims in (True, False):
                program, args = _reduction_program(name, shape, axis, keepdims, dtype, positive=True)
                (group,) = fusion.find_groups(program)
                signed, _ = _reduction_program(name, shape, axis, keepdims, dtype)
                assert group.kernel_name == fusion.find_groups(signed)[0].kernel_name
                values, reads = _reference(program, args)
                inputs = _group_inputs(group, values, reads)
                (got,) = _call_host(host.functions([group])[0], group, inputs)
                (reduction,) = group.reductions
                want = np.asarray(values[reduction.output])
                x = np.asarray(values[reduction.inputs[0]], np.float64)
                axes = fusion._reduced_axes(x.shape, reduction.params["axis"])
                rows = np.moveaxis(x, axes, range(x.ndim - len(axes), x.ndim)).reshape(group.threads, group.extent)
                exact = np.array([math.fsum(row) for row in rows]) / (group.extent if name == "reduce_mean" else 1)
                ulp = np.spacing(np.abs(want))
                label = f"{name} {shape} axis={axis} keepdims={keepdims}"
                assert np.all(np.abs(got - exact.astype(dtype).reshape(want.shape)) <= worst * ulp), label
                if group.extent <= 1100:  # longer: the forward's own in-order sum errs by more (see _sum_bound)
                    assert np.all(np.abs(got - want) <= (4 if dtype == "float32" else 16) * ulp), label
                (numpy_out,) = group.run_numpy(np, [np.empty_like(want)], inputs)
                assert not _disagreement(numpy_out, want), label


def _joined(program):
    return [r.name for g in fusion.find_groups(program) for r in g.reductions]


def test_which_reductions_stay_separate_steps(host):
    """The rule's clauses: an input read elsewhere or returned, or another result of the group
    read elsewhere, after the reduction, joins (the group writes those results too), and so does
    a maximum; a result read before the reduction, an integer input, a product, an effect in
    between and a dead reduction do not; and the layouts of short and long sums, of rows and
    columns."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((8, 6)).astype(np.float32)

    def build(make):
        b = _Builder()
        outputs = make(b, b.argument(x))
        return b.program(outputs)

    def plain(b, sx):
        return [b.op("reduce_sum", b.op("multiply", sx, b.constant(2.0)), axis=(1,), keepdims=False)]
    assert _joined(build(plain)) == ["reduce_sum"]

    def read_elsewhere(b, sx):
        y = b.op("multiply", sx, b.constant(2.0))
        return [b.op("reduce_sum", y, axis=(1,), keepdims=False), b.op("reshape", y, shape=(48,))]

    def returned(b, sx):
        y = b.op("multiply", sx, b.constant(2.0))
        return [b.op("reduce_mean", y, axis=None, keepdims=False), y]

    def other_output(b, sx):
        y = b.op("multiply", sx, b.constant(2.0))
        z = b.op("add", y, b.constant(1.0))
        return [b.op("reduce_sum", z, axis=(0,), keepdims=True), b.op("reshape", y, shape=(48,))]

    def integers(b, _):
        sy = b.argument(rng.integers(-5, 5, (8, 6)).astype(np.int32))
        return [b.op("reduce_sum", b.op("multiply", sy, b.constant(2)), axis=(1,), keepdims=False)]

    def maximum(b, sx):
        return [b.op("reduce_max", b.op("multiply", sx, b.constant(2.0)), axis=(1,), keepdims=False)]

    def product(b, sx):
        return [b.op("reduce_prod", b.op("multiply", sx, b.constant(2.0)), axis=(1,), keepdims=False)]

    def effect(b, sx):
        y = b.op("multiply", sx, b.constant(2.0))
        b.effect(lambda array: None, sx)
        return [b.op("reduce_sum", y, axis=(1,), keepdims=False)]

    def dead(b, sx):
        y = b.op("multiply", sx, b.constant(2.0))
        b.op("reduce_sum", y, axis=(1,), keepdims=False)
        return [b.op("add", sx, b.constant(1.0))]

    def read_before(b, sx):
        y = b.op("multiply", sx, b.constant(2.0))
        t = b.op("reshape", y, shape=(48,))
        return [t, b.op("reduce_sum", y, axis=(1,), keepdims=False)]

    for make in (read_elsewhere, returned, other_output):  # the group writes its other results too
        program = build(make)
        assert _joined(program) == ["reduce_sum" if make is not returned else "reduce_mean"], make.__name__
        (group,) = fusion.find_groups(program)
        assert len(group.outputs) == 2 and group.outputs[-1] == group.reductions[0].output, make.__name__

    assert _joined(build(maximum)) == ["reduce_max"]

    for make in (read_before, integers, product, effect, dead):
        program = build(make)
        assert _joined(program) == [], make.__name__
        assert all(not g.reductions for g in fusion.find_groups(program))

    def extent(n, axis, columns=2):
        b = _Builder()
        sx = b.argument(np.ones((n, columns), np.float32))
        y = b.op("add", sx, b.constant(1.0))
        return b.program([b.op("reduce_sum", y, axis=axis, keepdims=False)])
    # Any length joins: up to 16 elements a thread in one pass, longer ones in chunks of partial sums.
    for n, axis, columns, launch, chunks in [(4096, (0,), 2, (2, 256), 1), (4097, (0,), 2, (4, 256), 2),
                                             (2048, None, 2, (1, 256), 1), (2049, None, 2, (2, 256), 2),
                                             (65536, (0,), 2, (32, 256), 16), (128, (0,), 40, (2, 256), 1),
                                             (129, (0,), 40, (4, 256), 2)]:
        program = extent(n, axis, columns)
        assert _joined(program) == ["reduce_sum"]
        (group,) = fusion.find_groups(program)
        assert (group.launch, group.chunks) == (launch, chunks), (n, axis, columns)
        assert (group.tile, group.lanes) == ((32, 8) if columns == 40 else (1, 256))
        x = np.ones((n, columns), np.float32)
        want = np.full((columns,) if axis else (), 2.0 * (n if axis else n * columns), np.float32)
        (got,) = group.run_numpy(np, [np.empty(want.shape, np.float32)], [x, 1.0])
        assert got.tolist() == want.tolist()
        (got,) = _call_host(host.functions([group])[0], group, [x, 1.0])
        assert got.tolist() == want.tolist(), (n, axis, columns)


def test_the_seed_step_is_three_kernels():
    """The seed step (tests/test_graphs.py's _net) after the passes: 3 kernels. The forward's
    hidden layer with the output layer's row sums; the loss's mean with the backward signal
    and the output bias's gradient; the other three gradients (hidden bias, both weights),
    sums over the batch of one pass. What is left are reshapes (views) and the updates.
    (Before reductions and siblings merged: 6 kernels and 13 other array calls.)"""
    from gpugrad import graphs, passes
    from test_graphs import _net
    with gg.device("cpu"):
        step, _, x, y = _net("cpu", "float32", gg.optimizers.SGD(0.1))
        program = graphs.capture_safe(passes.default_pipeline(program_of(step, x, y)))
    units = fusion.schedule(program)
    groups = [u for u in units if isinstance(u, fusion.Group)]
    others = [program.steps[u].name for u in units if not isinstance(u, fusion.Group)
              and program.steps[u].kind != "host"]
    assert len(groups) == 3 and sorted(others) == ["reshape"] * 3 + ["sgd_update"] * 4, (groups, others)
    reductions = [[(r.name, r.params["axis"]) for r in g.reductions] for g in groups]
    assert reductions == [[("reduce_sum", (1,))], [("reduce_mean", None), ("reduce_sum", (0,))],
                          [("reduce_sum", (0,))] * 3]
    assert [(g.threads, g.extent, g.lanes) for g in groups] == [(64, 3, 32), (1, 64, 64), (3, 64, 64)]
    assert [len(g.outputs) for g in groups] == [2, 3, 3]


def test_a_wide_step_fuses_its_long_sums(programs, host):
    """A wider, longer two-layer step (5,000 points, 40 hidden units) after the passes: the
    loss's mean over 5,000 points and the backward's column sums over them join their kernels,
    split in chunks of partial sums; the gradients' kernel reads 32 adjacent columns a block.
    Each host-built group agrees with the members' forwards on the inputs it gets."""
    program, args = programs["two-layer regression, wide"]
    groups = fusion.find_groups(program)
    layouts = [(g.shape, len(g.reductions), g.tile, g.lanes, g.chunks) for g in groups]
    assert layouts == [((5000, 40), 1, 1, 64, 1), ((5000, 1), 2, 1, 256, 2), ((5000, 40), 3, 32, 8, 40)], layouts
    assert all(u.kind in ("shape", "host", "update") for u in
               (program.steps[u] for u in fusion.schedule(program, groups) if isinstance(u, int)))
    _run_schedule(program, args, _checked_host_group(host, "wide step"))


def _run_schedule(program, args, run_group):
    """The program's output values with its schedule: groups through run_group(group, inputs)
    (which returns the outputs), the other steps with their forwards."""
    values = {s: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for s, v in program.constants.items()}
    values.update(zip(program.arg_slots, args))
    with np.errstate(all="ignore"):
        for unit in fusion.schedule(program):
            if isinstance(unit, fusion.Group):
                outs = run_group(unit, [values[s] for s in unit.inputs])
                values.update(zip(unit.outputs, outs))
            else:
                step = program.steps[unit]
                result = step.fn(*(values[s] for s in step.inputs), **(step.params or {}))
                if step.output is not None:
                    values[step.output] = result
    return [values[s] for s in program.output_slots]


def _checked_host_group(host, name):
    """A run_group for _run_schedule: the group's host build, its outputs checked against the
    members' forwards (run_numpy) on the same inputs, within the bounds of _ulps and, for a
    fused reduction's output, _sum_bound. (Checked group by group: a fused reduction's result
    is not the forward's bits, so the steps downstream of it differ from evaluate()'s too.)"""
    def run(group, inputs):
        got = _call_host(host.functions([group])[0], group, inputs)
        outs = [np.empty(shape, dtype) for shape, dtype in group.output_avals]
        scratch = [np.empty(shape, dtype) for _, shape, dtype in group.scratch]
        group.run_numpy(np, outs, inputs, scratch)
        values = dict(zip(group.inputs, inputs))
        values.update(zip(group.outputs, outs))
        values.update((slot, array) for (slot, _, _), array in zip(group.scratch, scratch))
        for slot, out in zip(group.outputs, got):
            problem = _output_disagreement(group, slot, np.asarray(out), values)
            assert not problem, f"{name}: {group} output %{slot}, host build: {problem}"
        return got
    return run


def test_schedules_compute_the_program(programs, host):
    """Each program's schedule computes what evaluate() does: with run_numpy bit for bit (the
    rule programs included: crossing a step, effects, partial merges), and with the host
    builds each group within its bounds of the forwards on the inputs it gets."""
    for name, (program, args) in programs.items():
        if name.startswith("two-layer regression"):
            continue  # its SGD host step advances the real optimizer; its groups are checked on their own
        constants = {s: np.array(v, copy=True) if isinstance(v, np.ndarray) else v
                     for s, v in program.constants.items()}
        with np.errstate(all="ignore"):
            want = evaluate(program.with_steps(program.steps, constants), *args)
        numpy_run = _run_schedule(program, args, lambda g, inputs: g.run_numpy(
            np, [np.empty(shape, dtype) for shape, dtype in g.output_avals], inputs))
        for slot, w, n in zip(program.output_slots, want, numpy_run):
            problem = _disagreement(np.asarray(n), np.asarray(w))
            assert not problem, f"{name}: output %{slot}, run_numpy schedule: {problem}"
        _run_schedule(program, args, _checked_host_group(host, name))


def test_random_programs_fuse(programs):
    """The random programs are not trivial: most have a multi-step group, some several outputs,
    number arguments and literals, broadcast inputs, mixed dtypes."""
    groups = [g for seed in RANDOM_SEEDS for g in fusion.find_groups(programs[f"random {seed}"][0])]
    assert sum(len(g.steps) > 1 for g in groups) >= 12
    assert sum(len(g.outputs) > 1 for g in groups) >= 3
    assert any(role == "number" for g in groups for role, _, _ in g.parameters)
    assert any(g.constants for g in groups)
    assert any(type(g.avals[s]) is tuple and g.avals[s][0] != g.shape for g in groups for s in g.inputs)
    assert len({str(g.avals[s.output][1]) for g in groups for s in g.steps}) >= 4


# ---------------------------------------------------------------------------------------
# The CUDA sources

def _all_sources(programs):
    return list(dict.fromkeys(g.cuda_source() for program, _ in programs.values()
                              for g in fusion.find_groups(program)))


def test_generated_sources_compile_with_nvcc(programs, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH (CI compiles the generated kernels where it is)")
    sources = _all_sources(programs)
    for index, source in enumerate(sources):
        assert source.splitlines()[1] == '#include "expressions.cuh"', source
        (tmp_path / f"fused_{index}.cu").write_text(source)
    # One translation unit (each source includes the header, which its guard keeps to one copy,
    # and names everything after its own kernel), so nvcc starts once.
    (tmp_path / "all.cu").write_text("".join(f'#include "fused_{i}.cu"\n' for i in range(len(sources))))
    build = subprocess.run([nvcc, "--std=c++17", "-arch=sm_80", "-c", f"-I{HEADER_DIR}", f"-I{tmp_path}", "-o",
                            str(tmp_path / "all.o"), str(tmp_path / "all.cu")],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-4000:]
    symbols = subprocess.run(["nm", str(tmp_path / "all.o")], capture_output=True, text=True).stdout
    names = {g.kernel_name for program, _ in programs.values() for g in fusion.find_groups(program)}
    assert all(name in symbols for name in names)


@pytest.mark.gpu
def test_generated_kernels_run_on_the_gpu(programs):
    """The two-layer step's and the random programs' kernels, compiled as kernels.compile_source
    compiles (NVRTC, the header inlined, CuPy's -ftz=true) and launched with a small grid so the
    grid-stride loop runs: the forwards' outputs, within the same bounds as the host build."""
    cupy = pytest.importorskip("cupy")
    from gpugrad import kernels
    names = (["two-layer regression", "two-layer regression, wide"] + [f"random {seed}" for seed in RANDOM_SEEDS]
             + list(_reduction_programs()))
    for name in names:
        program, args = programs[name]
        values, reads = _reference(program, args)
        groups = fusion.find_groups(program)
        for group in groups:
            inputs = _group_inputs(group, values, reads)
            module = kernels.compile_source(group.cuda_source())
            device_inputs = [cupy.asarray(np.array(v, order="C")) if type(group.avals[s]) is tuple else v
                             for s, v in zip(group.inputs, inputs)]
            outs = [cupy.empty(shape, dtype) for shape, dtype in group.output_avals]
            # two blocks, so the grid-stride loops run; a group with reductions needs its block size
            partials = cupy.full(group.partials, np.nan) if group.finish else None
            module.get_function(group.kernel_name)(
                (2,), (group.launch[1] if group.reductions else 32,),
                group.kernel_arguments(outs, device_inputs, partials))
            if group.finish:
                module.get_function(group.finish_name)((2,), (group.finish[1],),
                                                       group.finish_arguments(outs, partials))
            for slot, out in zip(group.outputs, outs):
                problem = _output_disagreement(group, slot, out.get(), values)
                assert not problem, f"{name}: {group} output %{slot}: {problem}"


# ---------------------------------------------------------------------------------------
# The CUDA kernels emulated on the host

_EMULATION = """\
// The CUDA names a generated kernel uses, on the host: each block's threads are std::threads
// meeting at a std::barrier for __syncthreads(), blocks one after another (so a function-static
// array is the block's shared memory).
#include <barrier>
#include <functional>
#include <thread>
#include <vector>
#define __CUDACC__ 1
#define __host__
#define __device__
#define __global__
#define __shared__ static
#define __launch_bounds__(...)
struct gg_dim3 { unsigned int x = 0, y = 1, z = 1; };
static thread_local gg_dim3 threadIdx, blockIdx;
static gg_dim3 blockDim, gridDim;
static std::barrier<>* gg_block_barrier;
inline void __syncthreads() { gg_block_barrier->arrive_and_wait(); }
static void gg_launch(unsigned int grid, unsigned int block, const std::function<void()>& kernel) {
    gridDim.x = grid;
    blockDim.x = block;
    for (unsigned int b = 0; b < grid; ++b) {
        std::barrier<> barrier(block);
        gg_block_barrier = &barrier;
        std::vector<std::thread> threads;
        for (unsigned int t = 0; t < block; ++t) {
            threads.emplace_back([&kernel, b, t] { blockIdx.x = b; threadIdx.x = t; kernel(); });
        }
        for (auto& thread : threads) thread.join();
    }
}
"""


def _emulated_launcher(group):
    """C++ of `<kernel>_emulated(<the kernel's parameters>, double* partials)`: the CUDA kernel
    (and the chunks' finishing kernel) on a grid of 2 blocks, as the GPU test launches them."""
    counts, declarations = {"output": 0, "input": 0, "number": 0}, []
    for role, _, ctype in group.parameters:
        prefix = {"output": "out", "input": "in", "number": "a"}[role]
        declarations.append(f"{ctype} {prefix}{counts[role]}")
        counts[role] += 1
    names = [d.rsplit(" ", 1)[1] for d in declarations]
    block = group.launch[1] if group.reductions else 32
    arguments = ", ".join(names + (["partials"] if group.finish else []))
    lines = [f'extern "C" void {group.kernel_name}_emulated({", ".join(declarations + ["double* partials"])}) {{',
             f"    gg_launch(2, {block}, [&] {{ {group.kernel_name}({arguments}); }});"]
    if group.finish:
        reduced = {step.output for step in group.reductions}
        results = [name for name, slot in zip(names, group.outputs) if slot in reduced]
        lines.append(f"    gg_launch(2, {group.finish[1]}, [&] {{ {group.finish_name}(partials, {', '.join(results)}); }});")
    return "\n".join(lines + ["}"])


def test_the_cuda_kernels_give_the_host_builds_bits(programs, host, tmp_path):
    """Each reduction group's CUDA kernel (every layout once), built on the host with its
    threads emulated (a std::thread each, __syncthreads a barrier) and launched on 2 blocks
    (so the grid-stride loops run), gives the host build's results bit for bit: the block trees, the column tiles and the
    chunks' partial sums are the host loop's order. (The GPU test checks the kernels against
    the forwards on a device.)"""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not on PATH")
    chosen = {name: entry for name, entry in programs.items()  # every layout once: float32, keepdims
              if not name.startswith("reduction:") or ("float32" in name and "keepdims=True" in name)}
    groups = list({g.kernel_name: g for program, _ in chosen.values() for g in fusion.find_groups(program)
                   if g.reductions}.values())
    sources = [g.cuda_source() + "\n" + _emulated_launcher(g) for g in groups]
    (tmp_path / "emulated.cpp").write_text(_EMULATION + "\n".join(sources))
    build = subprocess.run(["g++", "-std=c++20", "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-pthread",
                            f"-I{HEADER_DIR}", "-o", str(tmp_path / "emulated.so"), str(tmp_path / "emulated.cpp")],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-4000:]
    library = ctypes.CDLL(str(tmp_path / "emulated.so"))
    checked = 0
    for name, (program, args) in chosen.items():
        values, reads = _reference(program, args)
        for group in fusion.find_groups(program):
            if group.kernel_name not in {g.kernel_name for g in groups}:
                continue
            inputs = _group_inputs(group, values, reads)
            with np.errstate(all="ignore"):
                want = _call_host(host.functions([group])[0], group, inputs)
            inputs = [np.array(v, dtype=group.avals[s][1], order="C") if type(group.avals[s]) is tuple else v
                      for s, v in zip(group.inputs, inputs)]
            outs = [np.full(shape, 7, dtype) for shape, dtype in group.output_avals]
            partials = np.full(max(group.partials, 1), np.nan)
            arguments = [ctypes.c_void_p(a.ctypes.data) if isinstance(a, np.ndarray) else _SCALARS[type(a)](a)
                         for a in group.kernel_arguments(outs, inputs)[:len(group.parameters)]]
            getattr(library, group.kernel_name + "_emulated")(*arguments, ctypes.c_void_p(partials.ctypes.data))
            for slot, got, expected in zip(group.outputs, outs, want):
                problem = _disagreement(got, expected)
                assert not problem, f"{name}: {group} output %{slot}: {problem}"
            checked += 1
    assert checked >= 40 and any(g.finish for g in groups) and any(g.tile > 1 for g in groups)
