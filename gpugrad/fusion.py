"""The fusion stage of the step compiler: elementwise steps grouped into one generated kernel.

`find_groups(program)` partitions the elementwise steps of a Program (program.py) that have
a scalar expression (`op.expression`, dispatch.Expression) into fusion groups; `schedule`
puts the groups and the other steps in an order a lowering can run. Each `Group` gives:

- `cuda_source()`: one CUDA kernel computing all of the group's outputs in a single
  grid-stride pass over its iteration space, each member's expression rendered into a local
  variable; the per-element work is a GG_HD function that a g++ build (no __CUDACC__) calls
  from an `extern "C"` host loop instead, so the exact generated code runs on a CPU too
  (kernels.compile_source inlines its header for NVRTC);
- `run_numpy(xp, outs, inputs, scratch)`: the members' NumPy forms (Expression.numpy) in
  order, writing the outputs into `outs` and the intermediates into `scratch` buffers
  (`Group.scratch` lists their shapes and dtypes), for a memory planner's buffers.

Fusable steps. A step is fusable when it is of kind "elementwise", its primitive declares an
expression, its output is an array whose dtype has a C type (bool, the integer types,
float32, float64: dispatch.c_type), and each input is either an array with such a dtype
whose shape broadcasts to the output's, or a Python bool, int or float: a constant (baked
into the kernel as its C literal, dispatch.c_literal) or a number argument of the step (a
kernel parameter of its literal's C type: double for a float, long long for an int, int for
a bool). A float16 or complex slot (no C type), a None input, or an expression that does
not render with the step's parameters keeps the step out of every group: it runs alone, as
do steps of other kinds and elementwise steps without an expression (reduce_mean_backward).

Grouping rule. The steps are visited in program order, and a group runs where its last
member stands (`Group.position`). A fusable step s joins the groups of those of its
producers that
  1. are in a group whose outputs have s's output shape: every member of a group computes
     the whole iteration shape (inputs may broadcast into it; a step whose result has
     another shape, even a broadcast-compatible one, starts or joins another group);
  2. have no member before the last step run for its effect (an update, a Variable write,
     an optimizer's host work: any step without an output), since running that member
     later, at s, would read what the effect wrote;
  3. and whose member outputs no step outside the merged group reads before s: moving the
     group's work to s must not leave an earlier reader without its input. When s reads
     several groups, they merge through s; one whose early reader is outside the merge is
     left out, and the others are checked again, until what is left merges validly.
Otherwise s starts a group of its own (a lone fusable step is a group of one: one kernel,
as its primitive would launch). The rule keeps the schedule valid: a group's inputs are
computed before its position (they precede its members), and every reader of its outputs
outside it comes after its position, now and as groups grow later (growing a group re-checks
its readers up to the new position, and no processed step lies after the step being
added). The rule may cross steps of other kinds (a matmul that neither feeds nor reads the
group), but never an effect.

Kernels. Inputs and outputs are C-contiguous arrays of their own shapes (a launcher makes
inputs contiguous); the shapes, hence every broadcast index, are baked in as constants (a
plan is compiled per signature). An output may share its buffer with an input of the
iteration shape (each element's inputs are read before its outputs are written), never with
a broadcast one. The kernel is named by a hash of its text, with its parameters and locals
named by position rather than by slot, so equal groups (the same primitives, parameters,
dtypes, shapes and constants, in the same order) share one compiled kernel. Launch it with
any 1-D grid: kernels.compile_source(group.cuda_source()).get_function(group.kernel_name)
over group.kernel_arguments(outs, inputs) (the source exports an `extern "C"` kernel and
no template instantiation, so compile_source passes CuPy no name expressions and the name
resolves as it stands).

No numpy or cupy calls run here at import, and nothing touches a GPU: this module only
writes text and calls the array module a caller passes in.
"""
import hashlib
import math

import numpy

from . import dispatch as _dispatch

_NUMBER_TYPES = {bool: "int", int: "long long", float: "double"}  # the C type of each literal kind
HEADER = "expressions.cuh"


# ---------------------------------------------------------------------------------------
# Which steps fuse

def _c_type_or_none(dtype):
    try:
        return _dispatch.c_type(dtype)
    except (ValueError, TypeError):
        return None


def _broadcasts(shape, into):
    """Whether an array of `shape` broadcasts to `into` (NumPy's rules) without changing it."""
    if len(shape) > len(into):
        return False
    return all(n == m or n == 1 for n, m in zip(shape[::-1], into[::-1]))


def _representative(program, slot):
    """What numpy.result_type takes for `slot`: an array's dtype, a number constant's value
    (weak), or a number argument's type's zero (weak too: only its kind matters)."""
    aval = program.avals[slot]
    if type(aval) is tuple:
        return aval[1]
    if slot in program.constants:
        return program.constants[slot]
    return aval()


def fusable(program, step):
    """Whether `step` of `program` may join a fusion group (see the module docstring)."""
    op = step.op
    if step.kind != "elementwise" or op is None or getattr(op, "expression", None) is None:
        return False
    if step.output is None or not program.is_array(step.output):
        return False
    shape, dtype = program.avals[step.output]
    if _c_type_or_none(dtype) is None:
        return False
    texts = []
    for slot in step.inputs:
        aval = program.avals[slot]
        if type(aval) is tuple:
            if _c_type_or_none(aval[1]) is None or not _broadcasts(tuple(aval[0]), tuple(shape)):
                return False
            texts.append("x")
        elif aval in _NUMBER_TYPES:
            if slot in program.constants:
                try:
                    texts.append(_dispatch.c_literal(program.constants[slot]))
                except (ValueError, TypeError):
                    return False
            elif slot in program.arg_slots:
                texts.append("a")
            else:
                return False
        else:
            return False
    try:
        op.expression.render(texts, step.params or {}, result=dtype,
                             common=numpy.result_type(*(_representative(program, s) for s in step.inputs)))
    except (ValueError, TypeError):
        return False
    return True


# ---------------------------------------------------------------------------------------
# Grouping

def find_groups(program):
    """The fusion groups of `program`, in the order of their positions (see the module
    docstring for the rule): a list of Group, every fusable step in exactly one."""
    steps = program.steps
    producer = program.producer()
    readers = program.consumers()
    group_of = {}        # step index -> its group's members (a list shared by the members)
    last_effect = -1     # the index of the latest step run for its effect
    for index, step in enumerate(steps):
        if not fusable(program, step):
            if step.output is None:
                last_effect = index
            continue
        shape = tuple(program.avals[step.output][0])
        candidates = []
        for slot in step.inputs:
            members = group_of.get(producer.get(slot))
            if members is None or any(members is c for c in candidates):
                continue
            if tuple(program.avals[steps[members[0]].output][0]) != shape or members[0] < last_effect:
                continue
            candidates.append(members)
        while candidates:
            merged = {index}.union(*candidates)
            early = [c for c in candidates if any(r < index and r not in merged
                                                  for m in c for r in readers.get(steps[m].output, ()))]
            if not early:
                break
            candidates = [c for c in candidates if not any(c is e for e in early)]
        members = sorted({index}.union(*candidates))
        for m in members:
            group_of[m] = members
    unique = {id(members): members for members in group_of.values()}.values()
    return sorted((Group(program, members) for members in unique), key=lambda g: g.position)


def schedule(program, groups=None):
    """The program's work in an order that runs it: a list of Group (at its position) and
    step indices (the steps in no group), by position. `groups` defaults to find_groups's."""
    groups = find_groups(program) if groups is None else groups
    grouped = {i for g in groups for i in g.indices}
    units = [(g.position, g) for g in groups]
    units += [(i, i) for i in range(len(program.steps)) if i not in grouped]
    return [unit for _, unit in sorted(units, key=lambda pair: pair[0])]


# ---------------------------------------------------------------------------------------
# Groups

class Group:
    """Fusable steps of a program that one kernel computes (see the module docstring).

    Attributes: `indices` and `steps` (the members, in program order), `position` (the
    index of the last member, where the group runs), `shape` (the iteration shape, that of
    every member's output), `size` (its element count), `inputs` (the slots the members
    read that no member computes, in order of first read: arrays, number constants and
    number arguments), `outputs` (the member outputs read after the group or returned by
    the program, in program order), `scratch` ((slot, shape, dtype) of every other member
    output: the intermediates run_numpy needs buffers for), `avals` (slot -> aval for every
    slot the group touches), `constants` (number constant inputs: slot -> value, baked into
    the kernel), `parameters` (the kernel's parameters in order: (role, slot, C type) with
    role "output", "input" or "number"). A group none of whose results is read has no
    outputs (dead code, which a pass before this one may remove)."""

    def __init__(self, program, indices):
        self.indices = tuple(indices)
        self.steps = tuple(program.steps[i] for i in self.indices)
        self.position = self.indices[-1]
        computed = {step.output for step in self.steps}
        self.shape = tuple(program.avals[self.steps[0].output][0])
        self.size = math.prod(self.shape)
        self.inputs = tuple(dict.fromkeys(s for step in self.steps for s in step.inputs if s not in computed))
        readers = program.consumers()
        inside = set(self.indices)
        self.outputs = tuple(step.output for step in self.steps
                             if any(r not in inside for r in readers.get(step.output, ())))
        self.avals = {s: program.avals[s] for s in self.inputs + tuple(computed)}
        self.scratch = tuple((step.output, self.shape, self.avals[step.output][1]) for step in self.steps
                             if step.output not in self.outputs)
        self.constants = {s: program.constants[s] for s in self.inputs
                          if type(self.avals[s]) is not tuple and s in program.constants}
        self._common = {step.output: numpy.result_type(*(_representative(program, s) for s in step.inputs))
                        for step in self.steps}
        outs = [("output", s, f"{_dispatch.c_type(self.avals[s][1])}*") for s in self.outputs]
        arrays = [("input", s, f"const {_dispatch.c_type(self.avals[s][1])}*") for s in self.inputs
                  if type(self.avals[s]) is tuple]
        numbers = [("number", s, _NUMBER_TYPES[self.avals[s]]) for s in self.inputs
                   if type(self.avals[s]) is not tuple and s not in self.constants]
        self.parameters = tuple(outs + arrays + numbers)
        self._source = None

    def __repr__(self):
        names = ", ".join(step.name for step in self.steps)
        outs = ", ".join(f"%{s}" for s in self.outputs)
        dtypes = sorted({str(self.avals[step.output][1]) for step in self.steps})
        return f"<Group [{names}] -> ({outs}) over {'/'.join(dtypes)}[{','.join(map(str, self.shape))}]>"

    # -- the kernel ------------------------------------------------------------------

    @property
    def kernel_name(self):
        """The `extern "C"` name of the __global__ kernel; the host loop is this + "_host"."""
        self.cuda_source()
        return self._name

    def cuda_source(self):
        """The CUDA C++ text of the group's kernel (see the module docstring), starting with
        `#include "expressions.cuh"`; the same text builds the host loop with g++."""
        if self._source is None:
            body = self._body()
            self._name = "gg_fused_" + hashlib.sha256(body.encode()).hexdigest()[:16]
            self._source = body.replace("@NAME@", self._name)
        return self._source

    def _body(self):
        names = {}  # slot -> its C text in the element function
        declarations, lines = [], []
        # Broadcast indices in 32-bit arithmetic where the iteration space allows (division by a
        # constant is cheaper there), else in 64-bit.
        narrow, uses_j = self.size < 2**31, False
        counts = {"output": 0, "input": 0, "number": 0}  # parameters are named by role and position
        for role, slot, ctype in self.parameters:
            k = counts[role]
            counts[role] += 1
            if role == "output":
                declarations.append(f"{ctype} out{k}")
            elif role == "input":
                declarations.append(f"{ctype} in{k}")
                names[slot] = f"x{k}"
                index = _index(self.avals[slot][0], self.shape, *(("j", "u") if narrow else ("i", "LL")))
                lines.append(f"    const {ctype[6:-1]} x{k} = in{k}[{index}];")
                uses_j = uses_j or "j" in index
            else:
                declarations.append(f"{ctype} a{k}")
                names[slot] = f"a{k}"
        if uses_j:
            lines.insert(0, "    const unsigned int j = (unsigned int)i;")
        for slot, value in self.constants.items():
            names[slot] = _dispatch.c_literal(value)
        for k, step in enumerate(self.steps):
            dtype = self.avals[step.output][1]
            text = step.op.expression.render([names[s] for s in step.inputs], step.params or {}, result=dtype,
                                             common=self._common[step.output])
            lines.append(f"    const {_dispatch.c_type(dtype)} v{k} = {text};")
            names[step.output] = f"v{k}"
        for k, slot in enumerate(self.outputs):
            lines.append(f"    out{k}[i] = {names[slot]};")
        signature = ", ".join(declarations)
        arguments = ", ".join(d.rsplit(" ", 1)[1] for d in declarations)
        n = f"{self.size}LL"
        head = ", ".join(step.name for step in self.steps)
        dtypes = "/".join(sorted({str(self.avals[step.output][1]) for step in self.steps}))
        return "\n".join([
            f"// gpugrad.fusion: {head} over {dtypes}[{','.join(map(str, self.shape))}], "
            f"{len(self.outputs)} output{'s' * (len(self.outputs) != 1)}",
            f'#include "{HEADER}"',
            "",
            f"GG_HD inline void @NAME@_element(long long i{', ' if signature else ''}{signature}) {{",
            *lines,
            "}",
            "",
            "#ifdef __CUDACC__",
            f'extern "C" __global__ void @NAME@({signature}) {{',
            "    const long long step = (long long)blockDim.x * gridDim.x;",
            f"    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < {n}; i += step) {{",
            f"        @NAME@_element(i{', ' if arguments else ''}{arguments});",
            "    }",
            "}",
            "#else",
            f'extern "C" void @NAME@_host({signature}) {{',
            f"    for (long long i = 0; i < {n}; ++i) {{",
            f"        @NAME@_element(i{', ' if arguments else ''}{arguments});",
            "    }",
            "}",
            "#endif",
            "",
        ])

    def kernel_arguments(self, outs, inputs):
        """The kernel's arguments, in `parameters` order: the arrays of `outs` (one per
        output), the array inputs, and each number argument as the NumPy scalar of its C type
        (float64, int64, int32 for a bool). `inputs` holds a value for every slot of
        `inputs`, constants included (they are baked in and skipped here)."""
        values = dict(zip(self.outputs, outs))
        values.update(zip(self.inputs, inputs))
        scalars = {"double": numpy.float64, "long long": numpy.int64, "int": numpy.int32}
        return tuple(values[slot] if role != "number" else scalars[ctype](values[slot])
                     for role, slot, ctype in self.parameters)

    # -- NumPy -----------------------------------------------------------------------

    def run_numpy(self, xp, outs, inputs, scratch=None):
        """The members' NumPy forms in order (Expression.numpy with the array module `xp`):
        the outputs written into `outs` (arrays of the iteration shape and the outputs'
        dtypes, in `outputs` order), the intermediates into `scratch` (arrays as listed by
        the `scratch` attribute; new ones from xp.empty when None). `inputs` holds a value for
        every slot of `inputs`, constants included. No buffer may overlap an input. Returns
        `outs` as a tuple: bit for bit the members' forwards."""
        values = dict(zip(self.inputs, inputs))
        buffers = dict(zip(self.outputs, outs))
        if scratch is None:
            scratch = [xp.empty(shape, dtype) for _, shape, dtype in self.scratch]
        buffers.update((slot, array) for (slot, _, _), array in zip(self.scratch, scratch))
        for step in self.steps:
            out = buffers[step.output]
            step.op.expression.numpy(xp, out, *(values[s] for s in step.inputs), **(step.params or {}))
            values[step.output] = out
        return tuple(outs)


def _index(shape, into, i="i", suffix="LL"):
    """The C expression of the flat index, into a C-contiguous array of `shape`, of element `i`
    (a C variable) of the iteration space `into` it broadcasts to, with integer literals of
    `suffix`. Adjacent dimensions that both broadcast, or both do not, are merged; dimensions
    of extent 1 drop out."""
    shape = (1,) * (len(into) - len(shape)) + tuple(shape)
    strides = []
    stride = 1
    for n in reversed(shape):
        strides.append(stride)
        stride *= n
    strides.reverse()
    blocks = []  # [broadcast?, extent, input stride], outermost first
    for n, m, s in zip(shape, into, strides):
        if m == 1:
            continue
        broadcast = n == 1
        if blocks and blocks[-1][0] == broadcast:
            blocks[-1][1] *= m
            blocks[-1][2] = s
        else:
            blocks.append([broadcast, m, s])
    if len(blocks) == 1 and not blocks[0][0]:
        return "i"  # the whole iteration space, in order
    total = math.prod(into)
    if total == 0:
        return "0"  # no element: the loop never reads it
    terms = []
    inner = 1
    for broadcast, extent, s in reversed(blocks):
        if not broadcast:
            coordinate = i if inner == 1 else f"{i} / {inner}{suffix}"
            if inner * extent != total:
                coordinate = f"({coordinate}) % {extent}{suffix}" if inner != 1 else f"{i} % {extent}{suffix}"
            terms.append(coordinate if s == 1 else f"({coordinate}) * {s}{suffix}")
        inner *= extent
    return " + ".join(reversed(terms)) or "0"
