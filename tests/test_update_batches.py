"""The optimizer stage of the step compiler (gpugrad/update_batches.py): the update steps of a
step batched into one generated kernel.

- batching on real traced steps: every optimizer's updates (SGD plain, momentum, nesterov;
  Adam, AdamW, AMSGrad; RMSprop plain, centered, with momentum; Adagrad) in the seed step's
  schedule, and in a step updating Variables of five shapes, become one UpdateBatch;
- the rule on hand-built programs: what ends a run (another primitive, other parameters,
  dtype, None pattern or scalars slot; a Variable written by one update and read or written
  by another; another unit between; the parameter bound) and what keeps a step out (float16,
  a missing required state, a gradient of another shape, a Variable that is not C-contiguous);
- the kernel: its text, its arguments (the fixed hyperparameters as kernels.py's launchers
  pass them), every generated source compiling with nvcc (skipped without nvcc), as it stands
  with the kernel folder on the include path and with kernels.py's inlining;
- on the host: run_reference against the primitives' forwards called one by one, and every
  generated kernel built with g++ (the CUDA names it uses stood in for, one thread a call)
  giving the forwards' results bit for bit, over one thread and over a grid;
- marked gpu: launches of each batch against the single kernels, bit for bit, and batches as
  long as the parameter bound allows.
"""
import ctypes
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import dispatch, fusion, graphs, kernels, passes, primitives, update_batches
from gpugrad.program import Program
from gpugrad.tracing import Step, aval
from gpugrad.update_batches import UpdateBatch, batch_updates
from helpers import program_of

ROOT = pathlib.Path(__file__).resolve().parent.parent
KERNEL_DIR = ROOT / "cuda_kernels"
SHAPES = [(1, 3), (3,), (3, 1), (1, 1), (257, 33)]
FLOATS = ["float32", "float64"]

OPTIMIZERS = {
    "sgd": lambda: gg.optimizers.SGD(0.1),
    "sgd-momentum": lambda: gg.optimizers.SGD(0.1, momentum=0.9),
    "sgd-nesterov": lambda: gg.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "adam": lambda: gg.optimizers.Adam(0.01),
    "adamw": lambda: gg.optimizers.AdamW(0.01, weight_decay=0.004),
    "amsgrad": lambda: gg.optimizers.Adam(0.01, amsgrad=True),
    "adamw-amsgrad": lambda: gg.optimizers.AdamW(0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-6, amsgrad=True),
    "rmsprop": lambda: gg.optimizers.RMSprop(0.01),
    "rmsprop-centered": lambda: gg.optimizers.RMSprop(0.01, centered=True),
    "rmsprop-momentum": lambda: gg.optimizers.RMSprop(0.01, rho=0.8, momentum=0.5),
    "rmsprop-centered-momentum": lambda: gg.optimizers.RMSprop(0.01, momentum=0.9, centered=True),
    "adagrad": lambda: gg.optimizers.Adagrad(0.1),
}
PRIMITIVES = {"sgd": "sgd_update", "adam": "adam_update", "adamw": "adam_update", "amsgrad": "adam_update",
              "rmsprop": "rmsprop_update", "adagrad": "adagrad_update"}


def _primitive(config):
    return PRIMITIVES[config.split("-")[0]]


# ---------------------------------------------------------------------------------------
# Programs: traced with gg.function, or built by hand

def _apply_program(config, dtype, shapes=SHAPES):
    """The Program of a step applying optimizer `config` to Variables of `shapes` with the
    gradients its arguments, traced on the CPU."""
    rng = np.random.default_rng(11)
    with gg.device("cpu"):
        variables = [gg.Variable(rng.normal(size=shape).astype(dtype), name=f"w{k}") for k, shape in enumerate(shapes)]
        grads = [gg.constant(rng.normal(size=shape).astype(dtype)) for shape in shapes]
        optimizer = OPTIMIZERS[config]()

        def step(*gs):
            optimizer.apply_gradients(zip(gs, variables))
            return gs[0] * 2.0

        return program_of(step, *grads)


def _updates_of(program):
    return [index for index, step in enumerate(program.steps) if step.kind == "update"]


def _only_batch(units):
    batches = [unit for unit in units if isinstance(unit, UpdateBatch)]
    assert len(batches) == 1, units
    return batches[0]


def _batch_of(program):
    """The one UpdateBatch of batch_updates over every step of `program`."""
    return _only_batch(batch_updates(program, list(range(len(program.steps)))))


class _Builder:
    """A Program of update steps (and others) built by hand: Variables and states as constants,
    gradients as arguments, one None slot for the unused states."""

    def __init__(self):
        self.values, self.constants, self.args, self.steps, self.variables = [None], {0: None}, [], [], set()
        self.none = 0

    def _slot(self, value):
        self.values.append(value)
        return len(self.values) - 1

    def variable(self, value):
        slot = self._slot(value)
        self.constants[slot] = value
        self.variables.add(slot)
        return slot

    def argument(self, value):
        slot = self._slot(value)
        self.args.append(slot)
        return slot

    def update(self, name, *slots, **params):
        op = dispatch.REGISTRY[name]
        self.steps.append(Step(name, "update", op.forward, params, tuple(slots), None, True, op))

    def host(self):
        self.steps.append(Step("Optimizer.advance", "host", lambda: None, None, (), None, False))

    def program(self):
        return Program(self.steps, [aval(v) for v in self.values], self.constants, self.variables, self.args, (), {})


def _sgd_builder(shapes=((3,), (2, 2), (5,), (2,))):
    """A builder with a float32 Variable, gradient and velocity of each shape, and a scalars
    Variable: (builder, [(param, grad, velocity) slots], scalars slot)."""
    b = _Builder()
    scalars = b.variable(np.array([0.1]))
    slots = [(b.variable(np.ones(shape, np.float32)), b.argument(np.ones(shape, np.float32)),
              b.variable(np.zeros(shape, np.float32))) for shape in shapes]
    return b, slots, scalars


def _momentum(b, slots, scalars, momentum=0.9):
    """An SGD-momentum update of (param, grad, velocity) slots."""
    param, grad, velocity = slots
    b.update("sgd_update", param, grad, velocity, scalars, momentum=momentum, nesterov=False)


def _batched(program):
    """batch_updates over every step of `program`, as lists of step indices (an int for a step alone)."""
    return [list(unit.indices) if isinstance(unit, UpdateBatch) else unit
            for unit in batch_updates(program, list(range(len(program.steps))))]


# ---------------------------------------------------------------------------------------
# Batching real steps

@pytest.mark.parametrize("config", sorted(OPTIMIZERS))
def test_the_seed_steps_updates_batch_into_one_kernel(config):
    """The seed step (tests/test_graphs.py's _net) after the passes, scheduled as the CUDA plan
    schedules it: its four updates become one batch in their place, the other units stay as
    they are."""
    from test_graphs import _net
    step, variables, x, y = _net("cpu", "float32", OPTIMIZERS[config]())
    program = graphs.capture_safe(passes.default_pipeline(program_of(step, x, y)))
    units = [unit for unit in fusion.schedule(program)
             if type(unit) is not int or program.steps[unit].kind != "host"]
    batched = batch_updates(program, units)
    batch = _only_batch(batched)
    updates = _updates_of(program)
    assert batch.indices == tuple(updates) and batch.position == updates[-1] and len(updates) == 4
    assert [s.op.name for s in batch.steps] == [_primitive(config)] * 4 and batch.outputs == ()
    start = units.index(updates[0])
    assert units[start:start + 4] == updates and batched == units[:start] + [batch] + units[start + 4:]
    assert batch.sizes == (3, 3, 3, 1) and batch.size == 10
    # each Variable, then its optimizer states: what a runner marks written after a launch
    names = [v.name for v in batch.written]
    per_step = len(names) // 4
    assert names[::per_step] == [v.name for v in variables]
    assert all(name.startswith(names[k - k % per_step] + "/") for k, name in enumerate(names) if k % per_step)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("config", sorted(OPTIMIZERS))
def test_an_optimizers_updates_of_variables_of_every_shape_batch(config, dtype):
    program = _apply_program(config, dtype)
    batch = _batch_of(program)
    assert batch.indices == tuple(_updates_of(program)) and batch.dtype == np.dtype(dtype)
    assert batch.sizes == (3, 3, 3, 1, 257 * 33) and batch.offsets == (0, 3, 6, 9, 10)
    assert batch.launch == (-(-(10 + 257 * 33) // 256), 256)
    # inputs: every slot the steps read, once, in order of first read (the None of an unused state too)
    assert batch.inputs == tuple(dict.fromkeys(s for step in batch.steps for s in step.inputs))
    assert batch.scalars == batch.steps[0].inputs[-1] and all(s.inputs[-1] == batch.scalars for s in batch.steps)


# ---------------------------------------------------------------------------------------
# The rule, on hand-built programs

def test_consecutive_updates_of_one_kind_batch_and_a_run_of_one_stays_a_step():
    b, slots, scalars = _sgd_builder()
    for s in slots:
        _momentum(b, s, scalars)
    b.host()
    _momentum(b, slots[0], scalars)
    assert _batched(b.program()) == [[0, 1, 2, 3], 4, 5]


@pytest.mark.parametrize("change", ["params", "primitive", "nones", "scalars", "dtype"])
def test_a_step_unlike_the_run_starts_another(change):
    """Two SGD-momentum updates, then two that differ from them in one way: two batches."""
    b, slots, scalars = _sgd_builder()
    _momentum(b, slots[0], scalars)
    _momentum(b, slots[1], scalars)
    other_scalars = b.variable(np.array([0.2]))
    for param, grad, velocity in slots[2:]:
        if change == "params":
            _momentum(b, (param, grad, velocity), scalars, momentum=0.5)
        elif change == "primitive":
            b.update("adagrad_update", param, grad, velocity, scalars, epsilon=1e-7)
        elif change == "nones":
            b.update("sgd_update", param, grad, b.none, scalars, momentum=0.9, nesterov=False)
        elif change == "scalars":
            _momentum(b, (param, grad, velocity), other_scalars)
        else:
            shape = b.values[param].shape
            _momentum(b, (b.variable(np.ones(shape)), b.argument(np.ones(shape)), b.variable(np.zeros(shape))),
                      scalars)
    assert _batched(b.program()) == [[0, 1], [2, 3]]


def test_a_variable_written_by_one_update_and_read_or_written_by_another_ends_the_run():
    b, slots, scalars = _sgd_builder(shapes=[(3,)] * 3)
    (p0, g0, v0), (p1, g1, v1), (p2, g2, v2) = slots
    _momentum(b, (p0, g0, v0), scalars)
    _momentum(b, (p1, p0, v1), scalars)   # reads p0 (its gradient), which step 0 writes
    _momentum(b, (p2, g2, v2), scalars)
    _momentum(b, (p1, g1, v1), scalars)   # writes p1 again
    _momentum(b, (p0, g1, v0), scalars)   # writes p0, and v0
    assert _batched(b.program()) == [0, [1, 2], [3, 4]]
    b, slots, scalars = _sgd_builder(shapes=[(3,)] * 2)
    _momentum(b, (slots[1][0], slots[0][0], slots[1][2]), scalars)  # reads slot p0 ...
    _momentum(b, slots[0], scalars)                                   # ... which this one writes
    assert _batched(b.program()) == [0, 1]


def test_a_gradient_read_by_several_updates_is_one_input():
    b, slots, scalars = _sgd_builder(shapes=((4,), (4,)))
    (p0, g0, v0), (p1, _, v1) = slots
    _momentum(b, (p0, g0, v0), scalars)
    _momentum(b, (p1, g0, v1), scalars)
    [batch] = batch_updates(b.program(), [0, 1])
    assert batch.inputs == (p0, g0, v0, scalars, p1, v1)
    values = [np.full(4, float(slot)) for slot in batch.inputs]
    arguments = batch.kernel_arguments(values)
    assert arguments[1] is arguments[4] is values[1]


def test_other_units_end_a_run():
    b, slots, scalars = _sgd_builder()
    for s in slots:
        _momentum(b, s, scalars)
    program = b.program()
    group = object()  # a fused group, say
    units = batch_updates(program, [0, 1, group, 2])
    assert [list(u.indices) if isinstance(u, UpdateBatch) else u for u in units] == [[0, 1], group, 2]


@pytest.mark.parametrize("case", ["float16", "int32", "missing state", "gradient shape", "gradient dtype",
                                  "not contiguous", "scalars dtype", "short scalars"])
def test_steps_one_kernel_cannot_take_stay_alone(case):
    b, slots, scalars = _sgd_builder()
    _momentum(b, slots[0], scalars)
    param, grad, velocity = slots[1]
    if case in ("float16", "int32"):
        param, velocity = (b.variable(np.ones((2, 2), case)), b.variable(np.zeros((2, 2), case)))
        grad = b.argument(np.ones((2, 2), case))
    elif case == "missing state":  # Adagrad's accumulator is required
        b.update("adagrad_update", param, grad, b.none, scalars, epsilon=1e-7)
    elif case == "gradient shape":
        grad = b.argument(np.ones((4,), np.float32))
    elif case == "gradient dtype":
        grad = b.argument(np.ones((2, 2)))
    elif case == "not contiguous":  # a Variable made from a transposed array keeps its layout
        param = b.variable(np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
        grad, velocity = b.argument(np.ones((2, 3), np.float32)), b.variable(np.zeros((2, 3), np.float32))
    elif case == "scalars dtype":
        scalars = b.variable(np.array([0.1], np.float32))
    else:
        scalars = b.variable(np.zeros((0,)))
    if case != "missing state":
        _momentum(b, (param, grad, velocity), scalars)
    _momentum(b, slots[2], scalars)
    program = b.program()
    assert update_batches.batchable(program, program.steps[0])
    assert not update_batches.batchable(program, program.steps[1])
    assert _batched(program) == [0, 1, 2]


def test_a_run_ends_before_the_kernels_parameters_pass_the_bound():
    """SGD with momentum: 3 pointers a Variable, then scalars, momentum and mode, 8 bytes each."""
    count = 200
    b, slots, scalars = _sgd_builder(shapes=[(2,)] * count)
    for s in slots:
        _momentum(b, s, scalars)
    batches = batch_updates(b.program(), list(range(count)))
    most = (update_batches.MAX_PARAMETER_BYTES // 8 - 3) // 3
    assert [len(batch.steps) for batch in batches] == [most, count - most]
    for batch in batches:
        arguments = batch.kernel_arguments([b.values[slot] for slot in batch.inputs])
        assert 8 * len(arguments) <= update_batches.MAX_PARAMETER_BYTES
    assert _batched(b.program()) == [list(range(most)), list(range(most, count))]


# ---------------------------------------------------------------------------------------
# The kernel

def _all_batches():
    """{key: (program, batch)}: a batch of each optimizer config and dtype over the five shapes,
    and a long one."""
    batches = {}
    for config in sorted(OPTIMIZERS):
        for dtype in FLOATS:
            program = _apply_program(config, dtype)
            batches[config, dtype] = program, _batch_of(program)
    program = _apply_program("amsgrad", "float32", shapes=[(k % 7 + 1, 2) for k in range(40)])
    batches["amsgrad", "40 variables"] = program, _batch_of(program)
    return batches


@pytest.fixture(scope="module")
def batches():
    return _all_batches()


def test_the_source_includes_its_kernel_file_and_names_the_kernel_by_its_text(batches):
    for (config, dtype), (_, batch) in batches.items():
        source = batch.cuda_source()
        lines = source.splitlines()
        assert lines[0].startswith(f"// gpugrad.update_batches: {_primitive(config)}(")
        assert lines[1] == f'#include "{_primitive(config)}.cu"'
        assert f'extern "C" __global__ void {batch.kernel_name}(' in source
        assert batch.kernel_name.startswith("gg_updates_")
        ctype = "double" if dtype == "float64" else "float"
        assert source.count(f"{_primitive(config)}_element<{ctype}>(") == 1
    # equal batches share one kernel; another layout of the elements is another kernel
    again = _batch_of(_apply_program("adam", "float32"))
    assert again.cuda_source() == batches["adam", "float32"][1].cuda_source()
    assert _batch_of(_apply_program("adam", "float32", shapes=SHAPES[::-1])).kernel_name != again.kernel_name


def test_the_variable_of_an_element_is_found_by_halving(batches):
    """The nested comparisons of the long batch: one leaf a Variable, in order, each with its
    offset, at most ceil(log2(40)) = 6 comparisons deep."""
    _, batch = batches["amsgrad", "40 variables"]
    lines = batch.cuda_source().splitlines()
    leaves = [line for line in lines if line.strip().startswith("param = ")]
    assert len(leaves) == 40
    for k, leaf in enumerate(leaves):
        index = "i" if k == 0 else f"i - {batch.offsets[k]}LL"
        assert leaf.strip() == f"param = param{k}; grad = grad{k}; m = m{k}; v = v{k}; vhat = vhat{k}; j = {index};"
    assert max(len(leaf) - len(leaf.lstrip()) for leaf in leaves) == 8 + 4 * 6


def test_kernel_arguments_pass_the_fixed_hyperparameters_as_the_launchers_do(batches, monkeypatch):
    """Each single launcher (kernels.py), its launch recorded instead of made: the values it
    passes by value are the batch's fixed arguments, of the same NumPy types and bits."""
    recorded = []
    monkeypatch.setattr(kernels, "_update", lambda name, param, grad, states, scalars, fixed, stream:
                        recorded.append([kind(value) for kind, value in fixed]))
    for key, (program, batch) in batches.items():
        values = {slot: np.zeros(1, batch.dtype) if program.is_array(slot) else None for slot in batch.inputs}
        step = batch.steps[0]
        getattr(kernels, step.op.name)(*(values[s] for s in step.inputs), **step.params)
        arguments = batch.kernel_arguments([values[slot] for slot in batch.inputs])
        fixed = arguments[len(arguments) - len(batch.fixed):]
        want = recorded.pop()
        assert [type(v) for v in fixed] == [type(v) for v in want], key
        assert [v.tobytes() for v in fixed] == [v.tobytes() for v in want], key
        assert arguments[len(arguments) - len(batch.fixed) - 1] is values[batch.scalars]


def test_kernel_arguments_are_each_variables_arrays_in_order(batches):
    program, batch = batches["adam", "float32"]  # no vhat: param, grad, m, v a Variable
    values = [object() for _ in batch.inputs]
    by_slot = dict(zip(batch.inputs, values))
    arguments = batch.kernel_arguments(values)
    expected = [by_slot[slot] for step in batch.steps for slot in step.inputs[:4]]
    assert list(arguments[:len(expected)]) == expected and arguments[len(expected)] is by_slot[batch.scalars]
    assert len(arguments) == len(expected) + 1 + 5 and not program.is_array(batch.steps[0].inputs[4])


def _nvcc():
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH (CI compiles the generated kernels where it is)")
    return nvcc


def _compile(nvcc, folder, sources, include):
    """Compile `sources` as one translation unit (each a file #included in turn) with nvcc; the
    object's symbols."""
    for index, source in enumerate(sources):
        (folder / f"batch_{index}.cu").write_text(source)
    (folder / "all.cu").write_text("".join(f'#include "batch_{i}.cu"\n' for i in range(len(sources))))
    build = subprocess.run([nvcc, "--std=c++17", "-arch=sm_80", "-c", *include, f"-I{folder}", "-o",
                            str(folder / "all.o"), str(folder / "all.cu")], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-4000:]
    return subprocess.run(["nm", str(folder / "all.o")], capture_output=True, text=True).stdout


def test_generated_sources_compile_with_nvcc(batches, tmp_path):
    """All sources in one unit, with the kernel folder on the include path: each kernel file is
    included many times (its guard keeps one copy) and every kernel is there."""
    sources = [batch.cuda_source() for _, batch in batches.values()]
    symbols = _compile(_nvcc(), tmp_path, sources, [f"-I{KERNEL_DIR}"])
    assert all(batch.kernel_name in symbols for _, batch in batches.values())


def test_generated_sources_compile_with_nvcc_as_kernels_py_inlines_them(batches, tmp_path):
    """What kernels.compile_source hands NVRTC: each source with its kernel file and that
    file's header inlined, needing no include path."""
    sources = {key: kernels._inline_headers(batch.cuda_source()) for key, (_, batch) in batches.items()}
    for (config, _), source in sources.items():
        assert "#include" not in source and "#define GG_UPDATE_COMMON_CUH" in source
        assert f"__device__ inline void {_primitive(config)}_element(" in source
    symbols = _compile(_nvcc(), tmp_path, list(sources.values()), [])
    assert all(batch.kernel_name in symbols for _, batch in batches.values())


# ---------------------------------------------------------------------------------------
# On the host: the reference, and the kernels built with g++

def _values(program, slots, seed, step=1):
    """Fresh values of `slots`: copies of the program's constants (Variables, states, scalars),
    normal gradients for its arguments, scaled by 2**(step - 2) (equal for equal seeds and steps)."""
    rng = np.random.default_rng([seed, step])
    values = []
    for slot in slots:
        if slot in program.constants:
            value = program.constants[slot]
            values.append(None if value is None else np.array(value, copy=True))
        else:
            shape, dtype = program.avals[slot]
            values.append((rng.normal(size=shape) * 2.0 ** (step - 2)).astype(dtype))
    return values


def _assert_same_bits(slots, got, want, where):
    for slot, a, b in zip(slots, got, want):
        if a is not None:
            assert a.dtype == b.dtype and a.shape == b.shape
            bits = f"u{a.dtype.itemsize}"
            np.testing.assert_array_equal(np.asarray(a).view(bits), np.asarray(b).view(bits),
                                          err_msg=f"slot %{slot}, {where}")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("config", sorted(OPTIMIZERS))
def test_run_reference_is_the_primitives_called_one_by_one(config, dtype):
    program = _apply_program(config, dtype)
    batch = _batch_of(program)
    mine = _values(program, batch.inputs, seed=3)
    theirs = dict(zip(batch.inputs, _values(program, batch.inputs, seed=3)))
    versions = [variable._version for variable in batch.written]
    assert batch.run_reference(mine) == ()
    assert [variable._version for variable in batch.written] == [v + 1 for v in versions]
    for step in batch.steps:
        getattr(primitives, step.op.name).forward(*(theirs[s] for s in step.inputs), **step.params)
    _assert_same_bits(batch.inputs, mine, [theirs[s] for s in batch.inputs], "run_reference")
    first = batch.steps[0].inputs[0]
    assert not np.array_equal(mine[batch.inputs.index(first)], program.constants[first]), "nothing was updated"


# The CUDA names a batch's kernel uses, for a host build: one thread a call, its coordinates
# set by gg_set_thread, so a loop over the threads of a grid runs the kernel as a launch does.
HOST_PRELUDE = r"""
#include <math.h>
struct GgDim { unsigned int x; };
static GgDim blockIdx, blockDim, gridDim, threadIdx;
extern "C" void gg_set_thread(unsigned int block, unsigned int thread, unsigned int blocks, unsigned int threads) {
    blockIdx.x = block;
    threadIdx.x = thread;
    gridDim.x = blocks;
    blockDim.x = threads;
}
#define __device__
#define __global__
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dmul_rn(double a, double b) { return a * b; }
"""
_CTYPES = {np.dtype("float32"): ctypes.c_float, np.dtype("float64"): ctypes.c_double, np.dtype("int32"): ctypes.c_int}


@pytest.fixture(scope="module")
def host_library(batches, tmp_path_factory):
    """Every batch's kernel built on the host with g++ (-ffp-contract=off: each product rounded
    on its own, as __fmul_rn and __dmul_rn round it), in one shared library."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not on PATH: the generated kernels are not built on the host")
    folder = tmp_path_factory.mktemp("host")
    for index, (_, batch) in enumerate(batches.values()):
        (folder / f"batch_{index}.cu").write_text(batch.cuda_source())
    (folder / "all.cpp").write_text(HOST_PRELUDE + "".join(f'#include "batch_{i}.cu"\n' for i in range(len(batches))))
    build = subprocess.run(["g++", "-std=c++17", "-O2", "-ffp-contract=off", "-shared", "-fPIC", f"-I{KERNEL_DIR}",
                            f"-I{folder}", "-o", str(folder / "batches.so"), str(folder / "all.cpp")],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-4000:]
    return ctypes.CDLL(str(folder / "batches.so"))


def _run_on_host(library, batch, values, grid):
    """The batch's kernel on `values` (a value for every slot of `inputs`), thread by thread
    over `grid` = (blocks, threads a block)."""
    kernel = getattr(library, batch.kernel_name)
    arguments = [ctypes.c_void_p(value.ctypes.data) if isinstance(value, np.ndarray) else _CTYPES[value.dtype](value)
                 for value in batch.kernel_arguments(values)]
    kernel.argtypes = [type(argument) for argument in arguments]
    blocks, threads = grid
    for block in range(blocks):
        for thread in range(threads):
            library.gg_set_thread(block, thread, blocks, threads)
            kernel(*arguments)


def test_the_generated_kernels_built_on_the_host_update_as_the_forwards_do(batches, host_library):
    """Each kernel's own code (the element functions, the search for the Variable, the
    arguments in order) on the CPU: two steps, one thread striding over every element, then a
    grid of 3 blocks of 64, give the primitives' forwards bit for bit."""
    for key, (program, batch) in batches.items():
        kernel_values = _values(program, batch.inputs, seed=7)
        reference_values = _values(program, batch.inputs, seed=7)
        gradients = [s for s in batch.inputs if s in program.arg_slots]
        for step, grid in enumerate([(1, 1), (3, 64)], start=1):
            fresh = dict(zip(batch.inputs, _values(program, batch.inputs, seed=7, step=step)))
            for values in (kernel_values, reference_values):
                for index, slot in enumerate(batch.inputs):
                    if slot in gradients:
                        values[index] = fresh[slot].copy()
            _run_on_host(host_library, batch, kernel_values, grid)
            batch.run_reference(reference_values)
            _assert_same_bits(batch.inputs, kernel_values, reference_values, f"{key}, step {step}")


# ---------------------------------------------------------------------------------------
# On a GPU

def _run_batch_and_singles(cupy, program, batch, launches):
    """Per launch in `launches` (a grid, or None for batch.launch): fresh gradients and step
    values, then the batch's kernel on one copy of the arrays and each step's primitive (its
    single kernel) on another; both copies equal bit for bit after each."""
    function = kernels.compile_source(batch.cuda_source()).get_function(batch.kernel_name)
    host = _values(program, batch.inputs, seed=5)
    batched = [None if value is None else cupy.asarray(value) for value in host]
    singles = [None if value is None else cupy.asarray(value) for value in host]
    position = {slot: index for index, slot in enumerate(batch.inputs)}
    gradients = [slot for slot in batch.inputs if slot in program.arg_slots]
    base = np.array(program.constants[batch.scalars], np.float64)
    for step, launch in enumerate(launches, start=1):
        fresh = _values(program, batch.inputs, seed=5, step=step)
        for slot in gradients:
            batched[position[slot]] = cupy.asarray(fresh[position[slot]])
            singles[position[slot]] = cupy.asarray(fresh[position[slot]])
        batched[position[batch.scalars]] = cupy.asarray(base * (1.0 + 0.25 * step))
        singles[position[batch.scalars]] = cupy.asarray(base * (1.0 + 0.25 * step))
        kernels.launch_generated(function, launch or batch.launch, batch.kernel_arguments(batched))
        for single in batch.steps:
            single.op.forward(*(singles[position[s]] for s in single.inputs), **single.params)
        _assert_same_bits(batch.inputs, [None if v is None else v.get() for v in batched],
                          [None if v is None else v.get() for v in singles], f"{batch!r}, step {step}")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("config", sorted(OPTIMIZERS))
def test_a_batch_launch_updates_as_the_single_kernels_do(config, dtype):
    """Variables of shapes (1, 3), (3,), (3, 1), (1, 1) and (257, 33): three steps, on the
    batch's grid, a small grid (the loop strides over the rest) and the batch's grid again."""
    cupy = pytest.importorskip("cupy")
    program = _apply_program(config, dtype)
    _run_batch_and_singles(cupy, program, _batch_of(program), [None, (3, 64), None])


@pytest.mark.gpu
@pytest.mark.parametrize("config", ["amsgrad", "sgd"])
def test_batches_with_the_most_parameters_run(config):
    """150 Variables: plain SGD in one batch (2 pointers a Variable, 2,424 bytes of parameters),
    AMSGrad split where its parameters would pass the bound (5 pointers a Variable: 101 of
    them, 4,088 bytes, then 49). Each batch launches (CUDA takes its parameters) and updates
    as the single kernels do."""
    cupy = pytest.importorskip("cupy")
    program = _apply_program(config, "float32", shapes=[(k % 5 + 1, 3) for k in range(150)])
    batches = [u for u in batch_updates(program, list(range(len(program.steps)))) if isinstance(u, UpdateBatch)]
    assert [len(b.steps) for b in batches] == {"sgd": [150], "amsgrad": [101, 49]}[config]
    for batch in batches:
        _run_batch_and_singles(cupy, program, batch, [None, None])
