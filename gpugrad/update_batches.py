"""The optimizer stage of the step compiler: the updates of a step's Variables in one kernel.

A training step ends with one update step per Variable (an in-place primitive of kind
"update": sgd_update, adam_update, rmsprop_update or adagrad_update), and on CUDA each
launches its own kernel over a few elements, so that a model with many small Variables
pays a launch per Variable. `batch_updates(program, units)` takes a schedule (fusion.schedule's
list of step indices and fusion groups) and replaces each maximal run of consecutive update
steps that one kernel can run by an `UpdateBatch`, which generates that kernel: one launch
for all of them, each element computed by the element function of the primitive's own kernel
file, so a batch updates every Variable bit for bit as its single kernel would.

Batching rule. An update step is batchable when its primitive is one of the four above, every
array argument (the variable, its gradient, the states it uses) is float32 or float64 with
the variable's shape and dtype, the states the primitive requires are given (its optional
ones may be None: the settings of its optimizer leave them unused), `scalars` is a 1-D
float64 array holding the step's values, and every array argument whose value the program
holds (a Variable's buffer, an optimizer state) is C-contiguous. Consecutive batchable steps
join one batch when they have the same primitive, the same static parameters, the same dtype,
the same arguments None and the same scalars slot (an optimizer's updates within one step),
and no array slot that one of them writes (an argument named by the primitive's `writes`) is
read or written by another: a Variable updated twice, or read by another update, keeps the
order of the program. A run also ends where the kernel's parameters would pass
MAX_PARAMETER_BYTES. A run of one step stays that step; every other unit stays as it is.
Running the steps of a batch at once is running them in order: none reads what another
writes.

Kernels. A batch's kernel (`UpdateBatch.cuda_source()`) includes the primitive's kernel file
(`#include "sgd_update.cu"`, which kernels.compile_source inlines; the file's guard keeps one
copy when a source includes it twice) and is one `extern "C" __global__` function with a
grid-stride loop over the elements of all the batch's Variables, laid end to end in program
order. Its parameters are each Variable's array arguments, as separate pointers (param0,
grad0, velocity0, param1, ...; none for a None argument, whose stand-in its single launcher
passes in its place), then `scalars`, then the fixed hyperparameters as the single launcher
passes them (kernels.py: momentum, 1 - beta_1, the flags...). Each Variable's element count
and offset are constants of the text. Per element, a binary search written out as nested
comparisons with those offsets picks the Variable: its pointers and the element's index in
it; then the primitive's element function (sgd_update_element<T> ...) updates it. The step's
values are read once per thread from `scalars` as the single kernels read them, so a captured
CUDA graph sees each step's values. The kernel is named by a hash of its text, so equal
batches share one compiled kernel. Launch it with `batch.launch` (blocks, threads a block),
or fewer blocks (the loop strides over the rest): kernels.compile_source(batch.cuda_source())
.get_function(batch.kernel_name) over batch.kernel_arguments(inputs). The arrays must be
C-contiguous (a runner makes the gradients contiguous, as the single launchers do).

No numpy or cupy calls run here at import, and nothing touches a GPU: this module only writes
text and calls the steps' forwards on the arrays a caller passes in.
"""
import inspect
import itertools
import math
from typing import Callable, NamedTuple

import numpy

from . import dispatch as _dispatch
from . import kernels as _kernels
from .primitives import updates as _updates

BLOCK = 256  # threads a block of a batch's kernel
MAX_PARAMETER_BYTES = 4096  # CUDA's bound on the parameters of a kernel (before CUDA 12.1), 8 bytes counted each
_FLOATS = (numpy.dtype("float32"), numpy.dtype("float64"))


# ---------------------------------------------------------------------------------------
# The update kernels' arguments, as kernels.py's launchers pass them

def _sgd_fixed(scalar, params, given):
    mode = (_kernels._SGD_PLAIN if not given["velocity"] else
            _kernels._SGD_NESTEROV if params["nesterov"] else _kernels._SGD_MOMENTUM)
    return (("momentum", scalar(params["momentum"] if given["velocity"] else 0.0)), ("mode", numpy.int32(mode)))


def _adam_fixed(scalar, params, given):
    return (("one_minus_beta_1", scalar(1.0 - params["beta_1"])), ("one_minus_beta_2", scalar(1.0 - params["beta_2"])),
            ("epsilon", scalar(params["epsilon"])), ("decoupled", numpy.int32(bool(params["weight_decay"]))),
            ("amsgrad", numpy.int32(given["vhat"])))


def _rmsprop_fixed(scalar, params, given):
    return (("rho", scalar(params["rho"])), ("one_minus_rho", scalar(1.0 - params["rho"])),
            ("momentum", scalar(params["momentum"] if given["moment"] else 0.0)),
            ("epsilon", scalar(params["epsilon"])), ("centered", numpy.int32(given["average_grad"])),
            ("use_momentum", numpy.int32(given["moment"])))


def _adagrad_fixed(scalar, params, given):
    return (("epsilon", scalar(params["epsilon"])),)


class _Layout(NamedTuple):
    """How an update primitive's kernel file takes its arguments: `arrays`, the names of its
    array arguments in order (the variable, its gradient, its states: the forward's positional
    parameters before `scalars`); `stand_ins`, for each optional state, the argument passed in
    its place when it is None; `values`, the C names of the step's values it reads from
    scalars[0], scalars[1], ...; `fixed(scalar, params, given)`, the fixed hyperparameters
    ((C name, NumPy scalar), ...) that its launcher passes by value, given the variable's
    scalar type, the step's parameters and which arguments are given (name -> bool). The
    element function, <name>_element<T>, takes the array arguments, the element's index, the
    values and the fixed hyperparameters, in this order."""

    arrays: tuple
    stand_ins: dict
    values: tuple
    fixed: Callable


def _layout(op, stand_ins, values, fixed):
    positional = [name for name, parameter in inspect.signature(op.__wrapped__).parameters.items()
                  if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    return _Layout(tuple(positional[:-1]), stand_ins, values, fixed)


_LAYOUTS = {
    _updates.sgd_update: _layout(_updates.sgd_update, {"velocity": "param"}, ("lr",), _sgd_fixed),
    _updates.adam_update: _layout(_updates.adam_update, {"vhat": "v"}, ("alpha", "decay"), _adam_fixed),
    _updates.rmsprop_update: _layout(_updates.rmsprop_update, {"average_grad": "velocity", "moment": "velocity"},
                                     ("lr",), _rmsprop_fixed),
    _updates.adagrad_update: _layout(_updates.adagrad_update, {}, ("lr",), _adagrad_fixed),
}


# ---------------------------------------------------------------------------------------
# Which updates batch

def _key(program, step):
    """What a batchable update step must share with the others of its batch (primitive,
    parameters, dtype, the arguments given, the scalars slot), or None when `step` is not
    batchable (see the module docstring)."""
    layout = _LAYOUTS.get(step.op) if step.kind == "update" else None
    if layout is None or len(step.inputs) != len(layout.arrays) + 1:
        return None
    avals = program.avals
    *arrays, scalars = step.inputs
    first = avals[arrays[0]]
    if type(first) is not tuple or first[1] not in _FLOATS:
        return None
    given = tuple(program.is_array(slot) for slot in arrays)
    for name, slot, present in zip(layout.arrays, arrays, given):
        if not present and (name not in layout.stand_ins or avals[slot] is not type(None)):
            return None
        if present and (tuple(avals[slot][0]), avals[slot][1]) != (tuple(first[0]), first[1]):
            return None
    if not program.is_array(scalars):
        return None
    shape, dtype = avals[scalars]
    if dtype != numpy.float64 or len(shape) != 1 or shape[0] < len(layout.values):
        return None
    for slot in (*arrays, scalars):
        value = program.constants.get(slot)
        if value is not None and not value.flags.c_contiguous:
            return None
    return step.op, step.params or {}, first[1], given, scalars


def batchable(program, step):
    """Whether `step` of `program` may join an UpdateBatch (see the module docstring)."""
    return _key(program, step) is not None


def _slots(program, step):
    """(the array slots `step` reads, those it writes)."""
    reads = {slot for slot in step.inputs if program.is_array(slot)}
    return reads, {step.inputs[index] for index in step.op.writes} & reads


def _parameter_bytes(key, variables):
    """The bytes of the parameters of a kernel updating `variables` Variables of steps with
    this key, 8 for each: the given arrays of each, scalars, the fixed hyperparameters."""
    op, params, dtype, given, _ = key
    layout = _LAYOUTS[op]
    fixed = layout.fixed(dtype.type, params, dict(zip(layout.arrays, given)))
    return 8 * (sum(given) * variables + 1 + len(fixed))


def batch_updates(program, units):
    """`units` (a schedule: step indices and other units, such as fusion groups) with each
    maximal run of consecutive update steps that batch together replaced by an UpdateBatch
    at the run's place (see the module docstring for the rule); a run of one stays a step
    index. Returns a new list."""
    result, run = [], []
    key = reads = writes = None

    def close():
        result.extend(run if len(run) == 1 else [UpdateBatch(program, run)] if run else [])
        run.clear()

    for unit in units:
        step_key = _key(program, program.steps[unit]) if type(unit) is int else None
        if step_key is None:
            close()
            result.append(unit)
            continue
        step_reads, step_writes = _slots(program, program.steps[unit])
        if run and (step_key != key or step_writes & reads or writes & step_reads
                    or _parameter_bytes(key, len(run) + 1) > MAX_PARAMETER_BYTES):
            close()
        if not run:
            key, reads, writes = step_key, set(), set()
        run.append(unit)
        reads |= step_reads
        writes |= step_writes
    close()
    return result


# ---------------------------------------------------------------------------------------
# Batches

class UpdateBatch(_kernels.GeneratedKernel):
    """Update steps of a program that one generated kernel runs, as batch_updates puts them
    together (see the module docstring).

    Attributes: `indices` and `steps` (the updates, in program order), `position` (the index
    of the last, where the batch runs), `op` and `params` (their primitive and static
    parameters), `dtype` (of every array argument), `inputs` (the distinct slots the steps
    read, in order of first read: their arrays, the None of an unused state, scalars),
    `outputs` (none: the updates write their arguments in place), `scalars` (the slot of the
    step's values), `sizes` and `offsets` (each Variable's element count and the position of
    its first element in the kernel's loop), `size` (their total), `fixed` (the fixed
    hyperparameters, (C name, NumPy scalar) pairs, as the single launcher passes them),
    `launch` ((blocks, threads a block): one element a thread), `written` (the Variables the
    steps mark written when their forwards run: a runner that launches the kernel marks
    them instead)."""

    PREFIX = "gg_updates_"  # kernel_name: this and a hash of the kernel's text

    def __init__(self, program, indices):
        self.indices = tuple(indices)
        self.steps = tuple(program.steps[i] for i in self.indices)
        self.position = self.indices[-1]
        first = self.steps[0]
        self.op, self.params = first.op, first.params or {}
        self._layout = layout = _LAYOUTS[self.op]
        self.dtype = program.avals[first.inputs[0]][1]
        self.scalars = first.inputs[-1]
        self.inputs = tuple(dict.fromkeys(slot for step in self.steps for slot in step.inputs))
        self.outputs = ()
        self._given = {name: program.is_array(slot) for name, slot in zip(layout.arrays, first.inputs)}
        self._arrays = tuple(name for name in layout.arrays if self._given[name])
        self.sizes = tuple(math.prod(program.avals[step.inputs[0]][0]) for step in self.steps)
        self.offsets = tuple(itertools.accumulate(self.sizes[:-1], initial=0))
        self.size = sum(self.sizes)
        self.fixed = layout.fixed(self.dtype.type, self.params, self._given)
        self.launch = (min(-(-self.size // BLOCK), 2**31 - 1), BLOCK)
        self.written = tuple(variable for step in self.steps for variable in getattr(step.fn, "written", ()))

    def _title(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        count = len(self.steps)
        return (f"{self.op.name}({params}) of {count} {self.dtype} variable{'s' * (count != 1)}, "
                f"{self.size} element{'s' * (self.size != 1)}")

    def __repr__(self):
        return f"<UpdateBatch [{self._title()}]>"

    # -- the kernel ------------------------------------------------------------------

    def _body(self):
        ctype = _dispatch.c_type(self.dtype)
        layout = self._layout
        writes = {layout.arrays[index] for index in self.op.writes}
        pointer = {name: f"{'' if name in writes else 'const '}{ctype}*" for name in self._arrays}
        # One line of parameters a Variable, then the scalars and the fixed hyperparameters.
        declarations = [", ".join(f"{pointer[name]} {name}{k}" for name in self._arrays)
                        for k in range(len(self.steps))]
        declarations.append(", ".join(["const double* scalars"] + [f"{_dispatch.c_type(value.dtype)} {name}"
                                                                   for name, value in self.fixed]))
        arguments = [name if self._given[name] else layout.stand_ins[name] for name in layout.arrays]
        arguments += ["j", *layout.values, *(name for name, _ in self.fixed)]
        return "\n".join([
            f"// gpugrad.update_batches: {self._title()}",
            f'#include "{self.op.name}.cu"',
            "",
            'extern "C" __global__ void @NAME@(',
            *(f"    {line}," for line in declarations[:-1]),
            f"    {declarations[-1]}) {{",
            *(f"    const {ctype} {name} = ({ctype})scalars[{k}];" for k, name in enumerate(layout.values)),
            "    const long long stride = (long long)gridDim.x * blockDim.x;",
            "    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; "
            f"i < {self.size}LL; i += stride) {{",
            *(f"        {pointer[name]} {name};" for name in self._arrays),
            "        long long j;",
            *self._select(0, len(self.steps), "        "),
            f"        {self.op.name}_element<{ctype}>({', '.join(arguments)});",
            "    }",
            "}",
            "",
        ])

    def _select(self, first, end, indent):
        """The lines that point the locals at the arrays of the Variable holding element i,
        among Variables first to end - 1, and set j to the element's index in it: nested
        comparisons with the offsets, halving the range at each (a binary search)."""
        if end - first == 1:
            offset = self.offsets[first]
            pointers = " ".join(f"{name} = {name}{first};" for name in self._arrays)
            return [f"{indent}{pointers} j = {f'i - {offset}LL' if offset else 'i'};"]
        middle = (first + end) // 2
        return [f"{indent}if (i < {self.offsets[middle]}LL) {{", *self._select(first, middle, indent + "    "),
                f"{indent}}} else {{", *self._select(middle, end, indent + "    "), f"{indent}}}"]

    def kernel_arguments(self, inputs):
        """The kernel's arguments, given a value for every slot of `inputs`: each Variable's
        given arrays (C-contiguous, as they are), the scalars array, then the fixed
        hyperparameters as NumPy scalars of their C types (`fixed`)."""
        values = dict(zip(self.inputs, inputs))
        names = self._layout.arrays
        arrays = [values[slot] for step in self.steps for name, slot in zip(names, step.inputs)
                  if self._given[name]]
        return (*arrays, values[self.scalars], *(value for _, value in self.fixed))

    # -- the reference ---------------------------------------------------------------

    def run_reference(self, inputs):
        """Each step's forward (`step.fn`), in order, on the values of `inputs` (a value for
        every slot of `inputs`): what the kernel must do, bit for bit. Returns () (no outputs)."""
        values = dict(zip(self.inputs, inputs))
        for step in self.steps:
            step.fn(*(values[slot] for slot in step.inputs), **(step.params or {}))
        return ()
