"""The fusion stage of the step compiler: elementwise steps grouped into one generated kernel.

`find_groups(program)` partitions the elementwise steps of a Program (program.py) that have
a scalar expression (`op.expression`, dispatch.Expression) into fusion groups; `schedule`
puts the groups and the other steps in an order a lowering can run. The sums, means,
maxima and minima fed by a group may join it (see "Reductions" below), and groups over one
iteration space may merge into one kernel ("Siblings"). Each `Group` gives:

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

Reductions. Once the grouping above is done, the reduce_sum, reduce_mean, reduce_max and
reduce_min steps reading a group's results join it, tried in program order (MAX_REDUCTIONS at most), each when
  1. its input is an elementwise result of the group: the group's kernel computes the
     reduction's output, and writes the elementwise results that other steps read (or the
     program returns) as it meets them; a member result that only reductions read needs
     no buffer any more;
  2. that input is float32 or float64 (the reduction's output has its dtype);
  3. it visits the iteration space as the group's other reductions do (the same layout:
     which elements each output element sums, in which order);
  4. the group with it may run at its last member (rule 2 above, and the schedule's
     validity): no step run for its effect lies between the first member and the last, and
     no step outside the group reads one of its results (the reduction's included) before
     the last member; and its own result is read.

Siblings. Then each group, by position, merges into the first earlier group that it may
share a kernel with: one of the same iteration shape, whose reductions (if both have some)
have its layout, neither reading a reduction result of the other (an elementwise member
needs its own element only), where the merged group may run at its last member (rule 4).
Groups reading the same inputs then read them once, and a step's backward groups share one
kernel with their reductions (the bias and weight gradients of a layer).

The kernel of a group with reductions runs blocks of `tile` x `lanes` threads: `tile`
adjacent output elements (32 when the output elements are adjacent in memory and there are
at least 32 of them, a column layout: a warp then reads 32 adjacent elements; else 1) and
`lanes` threads each (8 in a column layout; else the power of two at least the reduced
count, between 32 and MAX_LANES). The reduced elements of an output element are cut into
`chunks` chunks of `chunk` = lanes x PER_THREAD elements, and each block takes one chunk of
its output elements (a grid-stride loop over tiles x chunks). Thread y of an output element
visits the chunk's elements y, y + lanes, ... in C order, computing the elementwise members
for each and accumulating each reduction's input in double (a sum adds it; a maximum or
minimum keeps the extreme, NaN winning, exactly whatever the order); the lanes' values are
combined in a fixed tree (lane y takes lane y + s's, for s = lanes / 2, ..., 1). With one chunk, the total is
rounded once to its output type (a mean divides it by the count in double first). With
several, each chunk's double sum goes to a `partials` buffer, and a second kernel
(`finish_name`), a block of `finish_lanes` threads an output element, adds the partials the
same way (thread t the partials t, t + finish_lanes, ..., then a tree) and rounds. The order
is fixed, so the result is deterministic, and the host loop adds the same sums in the same
trees: the host build gives the device's bits. A float32 result is the double sum rounded
once, at least as accurate as NumPy's float32 sum (on terms that do not cancel, the exact sum
within an ulp); a float64 one errs by at most (PER_THREAD + log2(lanes) + chunks / finish_lanes
+ log2(finish_lanes)) u sum|x| for n terms (u the unit roundoff), no more than an in-order
sum's (n - 1) u sum|x|. Either stays within (n + 2) eps sum|x| of the forward
(tests/test_fusion.py checks that bound). `run_numpy` runs the reductions' planned forms
(lowering.INTO), bit for bit their forwards.

Kernels. Inputs and outputs are C-contiguous arrays of their own shapes (a launcher makes
inputs contiguous); the shapes, hence every broadcast index, are baked in as constants (a
plan is compiled per signature). An output may share its buffer with an input of the
iteration shape (each element's inputs are read before its outputs are written), never with
a broadcast one, and a fused reduction's output with no input. The kernel is named by a hash of its text, with its parameters and locals
named by position rather than by slot, so equal groups (the same primitives, parameters,
dtypes, shapes and constants, in the same order) share one compiled kernel. Launch it with
`group.launch` (blocks, threads a block): kernels.compile_source(group.cuda_source())
.get_function(group.kernel_name) over group.kernel_arguments(outs, inputs, partials), with
fewer blocks too (the loops stride over the rest), and then, for reductions in several
chunks, `finish_name` on `group.finish` over group.finish_arguments(outs, partials), where
`partials` is a float64 array of `group.partials` elements (the source exports `extern "C"`
kernels and
no template instantiation, so compile_source passes CuPy no name expressions and the names
resolve as they stand).

No numpy or cupy calls run here at import, and nothing touches a GPU: this module only
writes text and calls the array module a caller passes in.
"""
import math

import numpy

from . import dispatch as _dispatch
from . import kernels as _kernels
from . import lowering as _lowering

_NUMBER_TYPES = {bool: "int", int: "long long", float: "double"}  # the C type of each literal kind
HEADER = "expressions.cuh"
# The reductions that may join a group: the start of each accumulator and how it takes a value
# (C templates over {a}, the accumulator, and {v}, a double). Sums add in double; a maximum or
# minimum keeps the extreme value, NaN winning, as NumPy's do, exactly in any order.
REDUCTIONS = {"reduce_sum": ("0.0", "{a} += {v};"), "reduce_mean": ("0.0", "{a} += {v};"),
              "reduce_max": ("-gg_inf()", "{a} = gg_maximum({a}, {v});"),
              "reduce_min": ("gg_inf()", "{a} = gg_minimum({a}, {v});")}
MAX_LANES = 256  # the most threads of the block that reduces one output element (a row layout)
TILE = (32, 8)  # a column layout's block: 32 adjacent output elements, 8 threads each
PER_THREAD = 16  # the most elements a thread sums into one partial
MAX_REDUCTIONS = 8  # the most reductions one kernel computes (each a double a lane in shared memory)
ELEMENTWISE_BLOCK = 256  # threads a block of an elementwise group's kernel
_FLOATS = (numpy.dtype("float32"), numpy.dtype("float64"))


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
    groups = [_with_reductions(program, Group(program, members, readers), readers) for members in unique]
    return _merged(program, sorted(groups, key=lambda g: g.position), readers)


def _is_reduction(step):
    return step.kind == "reduction" and step.op is not None and step.op.name in REDUCTIONS


def _reduced_axes(shape, axis):
    return tuple(range(len(shape))) if axis is None else tuple(axis)


def _layout(shape, axes):
    """How a reduction over `axes` of an array of `shape` visits it: the C expressions of the
    offset of output element o's first element, and of the r-th element it reduces from there,
    with the output and reduced counts. Two reductions with one layout share a kernel."""
    strides = [math.prod(shape[k + 1:]) for k in range(len(shape))]
    kept = [(n, s) for k, (n, s) in enumerate(zip(shape, strides)) if k not in axes]
    reduced = [(n, s) for k, (n, s) in enumerate(zip(shape, strides)) if k in axes]
    return _strided(kept, "o"), _strided(reduced, "r"), math.prod(n for n, _ in kept), math.prod(n for n, _ in reduced)


def _valid(program, members, readers):
    """Whether the steps `members` may run together where the last of them stands: no step
    outside them reads one of their results before that, and no step run for its effect
    lies between the first of them and the last (it would see, or miss, their work)."""
    position = max(members)
    for m in members:
        if any(r <= position and r not in members for r in readers.get(program.steps[m].output, ())):
            return False
    return all(program.steps[k].output is not None for k in range(min(members), position))


def reduction_joins(program, group, index, readers):
    """Whether the reduction step at `index` joins `group` (see "Reductions" in the module
    docstring): a reduce_sum, reduce_mean, reduce_max or reduce_min of float32 or float64
    reading an elementwise result of the group, its own result read (a dead reduction stays
    out), with the layout of the group's other reductions, where the group with it may run
    at the last member (`_valid`). `readers` is program.consumers()."""
    step = program.steps[index]
    if not _is_reduction(step) or len(step.inputs) != 1 or len(group.reductions) == MAX_REDUCTIONS:
        return False
    (slot,) = step.inputs
    if slot not in {s.output for s in group.elementwise} or step.output is None or not program.is_array(step.output):
        return False
    if not readers.get(step.output):
        return False
    shape, dtype = program.avals[slot]
    if dtype not in _FLOATS or program.avals[step.output][1] != dtype:
        return False
    params = step.params or {}
    axis = params.get("axis")
    if set(params) - {"axis", "keepdims"} or not (axis is None or type(axis) is tuple):
        return False
    axes = _reduced_axes(shape, axis)
    if any(type(a) is not int or not 0 <= a < len(shape) for a in axes) or len(set(axes)) != len(axes):
        return False
    layout = _layout(shape, axes)
    if group.reductions and layout != group.layout:
        return False
    return _valid(program, set(group.indices) | {index}, readers)


def _with_reductions(program, group, readers):
    """`group` with the reductions of its results that join it (reduction_joins), tried in
    program order until none does."""
    while True:
        candidates = sorted({r for slot in group.outputs for r in readers.get(slot, ())
                             if r < len(program.steps) and r not in group.indices})
        index = next((r for r in candidates if reduction_joins(program, group, r, readers)), None)
        if index is None:
            return group
        group = Group(program, group.indices + (index,), readers)


def _merged(program, groups, readers):
    """`groups` (by position) with each merged into the first earlier one it may share a
    kernel with (see "Siblings" in the module docstring), by position."""
    result = []
    for group in groups:
        for k, earlier in enumerate(result):
            if _merge_allowed(program, earlier, group, readers):
                result[k] = Group(program, earlier.indices + group.indices, readers)
                break
        else:
            result.append(group)
    return sorted(result, key=lambda g: g.position)


def _merge_allowed(program, a, b, readers):
    if a.shape != b.shape or len(a.reductions) + len(b.reductions) > MAX_REDUCTIONS:
        return False
    if a.reductions and b.reductions and a.layout != b.layout:
        return False
    reduced = {step.output for step in a.reductions + b.reductions}
    if any(slot in reduced for step in a.steps + b.steps for slot in step.inputs):
        return False  # a member reading a reduction's result needs all of it, not its own element
    return _valid(program, set(a.indices) | set(b.indices), readers)


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

class Group(_kernels.GeneratedKernel):
    """Fusable steps of a program that one kernel computes, and maybe reductions they feed
    (see the module docstring). `readers`, program.consumers() when the caller has it, saves
    computing it again.

    Attributes: `indices` and `steps` (the members, in program order), `elementwise` (the
    elementwise members), `reductions` (the reduction members (REDUCTIONS), maybe
    none), `position` (the index of the last member, where the group runs), `shape` (the
    iteration shape, that of every elementwise member's output, so of each reduction's
    input), `size` (its element count), `layout` (with reductions, their layout: the C
    expressions of the offset of output element o's first element and of its r-th reduced
    element from there, the output count and the reduced count; None without), `threads`
    (the count of the kernel's grid-stride loop: `size`, or with reductions the element
    count of their outputs), `tile` and `lanes` (with reductions, the output elements of a
    block and the threads of each; 1 and 1 without), `chunk` and `chunks` (the reduced
    elements a block sums into one partial, and how many chunks an output element has),
    `partials` (the float64 elements of the chunks' partial sums, 0 with one chunk),
    `launch` ((blocks, threads a block): the grid that gives every thread one element, or
    every block one tile of output elements in one chunk), `finish` and `finish_lanes`
    (with several chunks, the grid of the kernel that adds the partials, a block of
    `finish_lanes` threads an output element; `finish` None otherwise), `extent` (the
    elements reduced into each output element; 1 without reductions), `inputs` (the slots the members read that no member computes, in order of
    first read: arrays, number constants and number arguments), `outputs` (the member
    outputs read after the group or returned by the program, in program order),
    `output_avals` ((shape, dtype) of each output: the iteration shape, or a reduction's
    output shape), `scratch` ((slot, shape, dtype) of every other elementwise member output:
    the intermediates run_numpy needs buffers for), `avals` (slot -> aval for every slot
    the group touches), `constants` (number constant inputs: slot -> value, baked into the
    kernel), `parameters` (the kernel's parameters in order: (role, slot, C type) with role
    "output", "input" or "number"). A group none of whose results is read has no outputs
    (dead code, which a pass before this one may remove)."""

    PREFIX = "gg_fused_"  # kernel_name: this and a hash of the kernel's text

    def __init__(self, program, indices, readers=None):
        self.indices = tuple(sorted(indices))
        self.steps = tuple(program.steps[i] for i in self.indices)
        self.position = self.indices[-1]
        self.reductions = tuple(step for step in self.steps if _is_reduction(step))
        self.elementwise = tuple(step for step in self.steps if not _is_reduction(step))
        computed = {step.output for step in self.steps}
        self.shape = tuple(program.avals[self.elementwise[0].output][0])
        self.size = math.prod(self.shape)
        self.inputs = tuple(dict.fromkeys(s for step in self.steps for s in step.inputs if s not in computed))
        readers = program.consumers() if readers is None else readers
        inside = set(self.indices)
        self.outputs = tuple(step.output for step in self.steps
                             if any(r not in inside for r in readers.get(step.output, ())))
        self.avals = {s: program.avals[s] for s in self.inputs + tuple(computed)}
        self.output_avals = tuple((tuple(self.avals[s][0]), self.avals[s][1]) for s in self.outputs)
        self.scratch = tuple((step.output, self.shape, self.avals[step.output][1]) for step in self.elementwise
                             if step.output not in self.outputs)
        self.tile, self.lanes, self.chunks, self.partials, self.finish = 1, 1, 1, 0, None
        if not self.reductions:
            self.layout, self.extent, self.threads, self.chunk = None, 1, self.size, 1
            self.launch = (min(-(-self.size // ELEMENTWISE_BLOCK), 2**31 - 1), ELEMENTWISE_BLOCK)
        else:
            self.layout = _layout(self.shape, _reduced_axes(self.shape, self.reductions[0].params["axis"]))
            self.threads, self.extent = self.layout[2:]
            if self.layout[0] == "o" and self.threads >= TILE[0]:  # output elements adjacent in memory
                self.tile, self.lanes = TILE
            else:
                self.tile, self.lanes = 1, min(MAX_LANES, max(32, 1 << (self.extent - 1).bit_length()))
            self.chunk = self.lanes * PER_THREAD
            self.chunks = max(1, -(-self.extent // self.chunk))
            tiles = -(-self.threads // self.tile)
            self.launch = (min(tiles * self.chunks, 2**31 - 1), self.tile * self.lanes)
            if self.chunks > 1:
                self.partials = len(self.reductions) * self.threads * self.chunks
                self.finish_lanes = min(MAX_LANES, max(32, 1 << (self.chunks - 1).bit_length()))
                self.finish = (min(self.threads, 2**31 - 1), self.finish_lanes)
        self.constants = {s: program.constants[s] for s in self.inputs
                          if type(self.avals[s]) is not tuple and s in program.constants}
        self._common = {step.output: numpy.result_type(*(_representative(program, s) for s in step.inputs))
                        for step in self.elementwise}
        outs = [("output", s, f"{_dispatch.c_type(self.avals[s][1])}*") for s in self.outputs]
        arrays = [("input", s, f"const {_dispatch.c_type(self.avals[s][1])}*") for s in self.inputs
                  if type(self.avals[s]) is tuple]
        numbers = [("number", s, _NUMBER_TYPES[self.avals[s]]) for s in self.inputs
                   if type(self.avals[s]) is not tuple and s not in self.constants]
        self.parameters = tuple(outs + arrays + numbers)

    def _title(self):
        names = ", ".join(step.name for step in self.elementwise)
        dtypes = "/".join(sorted({str(self.avals[step.output][1]) for step in self.elementwise}))
        title = f"{names} over {dtypes}[{','.join(map(str, self.shape))}]"
        for r in self.reductions:
            title += (f", {r.name}(axis={r.params['axis']!r}, keepdims={r.params['keepdims']!r}) into "
                      f"[{','.join(map(str, self.avals[r.output][0]))}]")
        return title

    def __repr__(self):
        outs = ", ".join(f"%{s}" for s in self.outputs)
        return f"<Group [{self._title()}] -> ({outs})>"

    # -- the kernel ------------------------------------------------------------------

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
        for k, step in enumerate(self.elementwise):
            dtype = self.avals[step.output][1]
            text = step.op.expression.render([names[s] for s in step.inputs], step.params or {}, result=dtype,
                                             common=self._common[step.output])
            lines.append(f"    const {_dispatch.c_type(dtype)} v{k} = {text};")
            names[step.output] = f"v{k}"
        signature = ", ".join(declarations)
        arguments = ", ".join(d.rsplit(" ", 1)[1] for d in declarations)
        if self.reductions:
            return self._reduction_source(lines, names, declarations)
        for k, slot in enumerate(self.outputs):
            lines.append(f"    out{k}[i] = {names[slot]};")
        n = f"{self.threads}LL"
        return "\n".join([
            *self._header(),
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

    def _header(self):
        return [f"// gpugrad.fusion: {self._title()}, {len(self.outputs)} output{'s' * (len(self.outputs) != 1)}",
                f'#include "{HEADER}"', ""]

    def _reduction_source(self, lines, names, declarations):
        """With reductions: `@NAME@_lane(o, c, y, acc, ...)`, a thread's share of output
        element o in chunk c: the chunk's elements y, y + lanes, ... of the layout, in C
        order, the elementwise members computed (those read elsewhere written to their
        outputs: each element is met once) and each reduction's input added to its acc[k]
        in double. The kernel's block holds `tile` output elements of `lanes` threads each; it
        adds the lanes' shares in a fixed tree and writes the totals, rounded once (a mean
        divided in double first), or with several chunks each chunk's double sum into
        `partials`, which `@NAME@_finish` adds up the same way, a block an output element.
        The host loop adds the same shares in the same trees."""
        reduced = {step.output for step in self.reductions}
        results = {step.output: f"out{self.outputs.index(step.output)}" for step in self.reductions}
        writes = [f"    out{k}[i] = {names[out]};" for k, out in enumerate(self.outputs) if out not in reduced]
        count, tile, lanes, chunks = len(self.reductions), self.tile, self.lanes, self.chunks
        starts = [REDUCTIONS[step.op.name][0] for step in self.reductions]

        def combine(k, a, v):  # reduction k's accumulator a takes the double v
            return REDUCTIONS[self.reductions[k].op.name][1].format(a=a, v=v)

        sums = ["    " + combine(k, f"acc[{k}]", f"widened({names[step.inputs[0]]})")
                for k, step in enumerate(self.reductions)]
        lane_declarations = [d for d in declarations if d.split(" ")[-1] not in results.values()]
        lane_signature = ", ".join(["double* acc", *lane_declarations])
        lane_arguments = ", ".join(["acc", *(d.rsplit(" ", 1)[1] for d in lane_declarations)])
        split = chunks > 1
        signature = ", ".join(declarations + (["double* partials"] if split else []))
        result_declarations = ", ".join(d for d in declarations if d.split(" ")[-1] in results.values())
        base, offset = self.layout[:2]
        n, extent = f"{self.threads}LL", f"{self.extent}LL"
        blocks = f"{-(-self.threads // tile) * chunks}LL"

        def stores(total):  # the results of output element o from total(k), each rounded once
            lines = []
            for k, step in enumerate(self.reductions):
                value = total(k) if step.op.name != "reduce_mean" else f"{total(k)} / (double){extent}"
                # widened() and gg_cast keep subnormals, which CuPy's -ftz=true would flush in plain casts
                lines.append(f"{results[step.output]}[o] = gg_cast<{_dispatch.c_type(self.avals[step.output][1])}>"
                             f"({value});")
            return " ".join(lines)

        def partial(k):
            return f"partials[({k}LL * {n} + o) * {chunks}LL + c]"

        tree = f"for (int s = {lanes} / 2; s > 0; s >>= 1)"
        block_sums = " ".join(combine(k, f"lanes[{k}][y][x]", f"lanes[{k}][y + s][x]") for k in range(count))
        keeps = " ".join(f"lanes[{k}][y][x] = acc[{k}];" for k in range(count))
        if split:
            done = " ".join(f"{partial(k)} = lanes[{k}][0][x];" for k in range(count))
        else:
            done = stores(lambda k: f"lanes[{k}][0][x]")
        text = [
            *self._header(),
            f"GG_HD inline void @NAME@_lane(long long o, long long c, int y, {lane_signature}) {{",
            *(f"    acc[{k}] = {starts[k]};" for k in range(count)),
            f"    if (o >= {n}) return;",
            f"    const long long base = {base};",
            f"    const long long end = (c + 1) * {self.chunk}LL < {extent} ? (c + 1) * {self.chunk}LL : {extent};",
            f"    for (long long r = c * {self.chunk}LL + y; r < end; r += {lanes}) {{",
            f"        const long long i = base + {offset};",
            *("    " + line for line in lines + writes + sums),
            "    }",
            "}",
            "",
            "#ifdef __CUDACC__",
            f'extern "C" __global__ void __launch_bounds__({tile * lanes}) @NAME@({signature}) {{',
            f"    __shared__ double lanes[{count}][{lanes}][{tile}];",
            f"    const int x = threadIdx.x % {tile}, y = threadIdx.x / {tile};",
            f"    for (long long b = blockIdx.x; b < {blocks}; b += gridDim.x) {{",
            f"        const long long c = b % {chunks}LL, o = b / {chunks}LL * {tile} + x;",
            f"        double acc[{count}];",
            f"        @NAME@_lane(o, c, y, {lane_arguments});",
            f"        {keeps}",
            "        __syncthreads();",
            f"        {tree} {{",
            f"            if (y < s) {{ {block_sums} }}",
            "            __syncthreads();",
            "        }",
            f"        if (y == 0 && o < {n}) {{ {done} }}",
            "        __syncthreads();",
            "    }",
            "}",
        ]
        if split:
            finish_lanes = self.finish_lanes
            finish_sums = " ".join(combine(k, f"lanes[{k}][t]", f"lanes[{k}][t + s]") for k in range(count))
            gathers = [f"        {{ double a = {starts[k]}; for (long long c = t; c < {chunks}LL; c += {finish_lanes}) "
                       f"{combine(k, 'a', partial(k))} lanes[{k}][t] = a; }}" for k in range(count)]
            text += [
                "",
                f'extern "C" __global__ void __launch_bounds__({finish_lanes}) '
                f"@NAME@_finish(const double* partials, {result_declarations}) {{",
                f"    __shared__ double lanes[{count}][{finish_lanes}];",
                "    const int t = threadIdx.x;",
                f"    for (long long o = blockIdx.x; o < {n}; o += gridDim.x) {{",
                *gathers,
                "        __syncthreads();",
                f"        for (int s = {finish_lanes} / 2; s > 0; s >>= 1) {{",
                f"            if (t < s) {{ {finish_sums} }}",
                "            __syncthreads();",
                "        }",
                f"        if (t == 0) {{ {stores(lambda k: f'lanes[{k}][0]')} }}",
                "        __syncthreads();",
                "    }",
                "}",
            ]
        host_signature = ", ".join(declarations)
        text += [
            "#else",
            f'extern "C" void @NAME@_host({host_signature}) {{',
            f"    double lanes[{count}][{lanes}][{tile}];",
            f"    double acc[{count}];",
            *([f"    double* partials = new double[{self.partials}];"] if split else []),
            f"    for (long long b = 0; b < {blocks}; ++b) {{",
            f"        const long long c = b % {chunks}LL;",
            f"        for (int y = 0; y < {lanes}; ++y) for (int x = 0; x < {tile}; ++x) {{",
            f"            @NAME@_lane(b / {chunks}LL * {tile} + x, c, y, {lane_arguments});",
            f"            {keeps}",
            "        }",
            f"        {tree} for (int y = 0; y < s; ++y) for (int x = 0; x < {tile}; ++x) {{ {block_sums} }}",
            f"        for (int x = 0; x < {tile}; ++x) {{",
            f"            const long long o = b / {chunks}LL * {tile} + x;",
            f"            if (o < {n}) {{ {done} }}",
            "        }",
            "    }",
        ]
        if split:
            text += [
                f"    double finish[{count}][{finish_lanes}];",
                f"    for (long long o = 0; o < {n}; ++o) {{",
                f"        for (int t = 0; t < {finish_lanes}; ++t) {{",
                *(f"            {{ double a = {starts[k]}; for (long long c = t; c < {chunks}LL; c += {finish_lanes}) "
                  f"{combine(k, 'a', partial(k))} finish[{k}][t] = a; }}" for k in range(count)),
                "        }",
                f"        for (int s = {finish_lanes} / 2; s > 0; s >>= 1) for (int t = 0; t < s; ++t) {{ "
                + " ".join(combine(k, f"finish[{k}][t]", f"finish[{k}][t + s]") for k in range(count)) + " }",
                f"        {stores(lambda k: f'finish[{k}][0]')}",
                "    }",
                "    delete[] partials;",
            ]
        text += ["}", "#endif", ""]
        return "\n".join(text)

    def kernel_arguments(self, outs, inputs, partials=None):
        """The kernel's arguments, in `parameters` order: the arrays of `outs` (one per
        output), the array inputs, and each number argument as the NumPy scalar of its C type
        (float64, int64, int32 for a bool); then, for reductions in several chunks,
        `partials` (a float64 array of `partials` elements, which the kernel fills and
        `finish_name` reads). `inputs` holds a value for every slot of `inputs`, constants
        included (they are baked in and skipped here)."""
        values = dict(zip(self.outputs, outs))
        values.update(zip(self.inputs, inputs))
        scalars = {"double": numpy.float64, "long long": numpy.int64, "int": numpy.int32}
        arguments = tuple(values[slot] if role != "number" else scalars[ctype](values[slot])
                          for role, slot, ctype in self.parameters)
        return arguments + (partials,) if self.chunks > 1 else arguments

    @property
    def finish_name(self):
        """With reductions in several chunks, the `extern "C"` name of the kernel that adds
        the chunks' partials into the results (launched on `finish` after the group's kernel,
        over `finish_arguments`); None otherwise."""
        return self.kernel_name + "_finish" if self.chunks > 1 else None

    def finish_arguments(self, outs, partials):
        """The arguments of the `finish_name` kernel: `partials`, then the reductions' outputs
        among `outs` (the arrays of `outputs`, as kernel_arguments takes them)."""
        reduced = {step.output for step in self.reductions}
        return (partials, *(out for slot, out in zip(self.outputs, outs) if slot in reduced))

    # -- NumPy -----------------------------------------------------------------------

    def run_numpy(self, xp, outs, inputs, scratch=None):
        """The members' NumPy forms in order (Expression.numpy with the array module `xp`,
        then the reduction's planned form, lowering.INTO, equal to its forward): the outputs
        written into `outs` (arrays as listed by `output_avals`), the intermediates into
        `scratch` (arrays as listed by the `scratch` attribute; new ones from xp.empty when
        None). `inputs` holds a value for every slot of `inputs`, constants included. No
        buffer may overlap an input. Returns `outs` as a tuple: bit for bit the members'
        forwards."""
        values = dict(zip(self.inputs, inputs))
        buffers = dict(zip(self.outputs, outs))
        if scratch is None:
            scratch = [xp.empty(shape, dtype) for _, shape, dtype in self.scratch]
        buffers.update((slot, array) for (slot, _, _), array in zip(self.scratch, scratch))
        for step in self.elementwise:
            out = buffers[step.output]
            step.op.expression.numpy(xp, out, *(values[s] for s in step.inputs), **(step.params or {}))
            values[step.output] = out
        for reduction in self.reductions:
            _lowering.INTO[reduction.op.name](xp, buffers[reduction.output], values[reduction.inputs[0]],
                                              **reduction.params)
        return tuple(outs)


def _strided(dims, var):
    """The C expression (64-bit) of the flat offset, into a C-contiguous array, of element
    `var` (a C variable) of the sub-space `dims`: (extent, stride) pairs, outermost first, in
    C order. Dimensions of extent 1 drop out; adjacent ones that are contiguous merge."""
    if any(n == 0 for n, _ in dims):
        return "0"  # no element: the loop never reads it
    merged = []
    for n, s in dims:
        if n == 1:
            continue
        if merged and merged[-1][1] == s * n:
            merged[-1] = [merged[-1][0] * n, s]
        else:
            merged.append([n, s])
    return _offset(merged, var, "LL")


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
    if math.prod(into) == 0:
        return "0"  # no element: the loop never reads it
    return _offset([(extent, None if broadcast else s) for broadcast, extent, s in blocks], i, suffix)


def _offset(dims, var, suffix):
    """The C expression of the offset of element `var` (a C variable) of the space `dims`,
    (extent, stride) pairs outermost first in C order: each dimension's coordinate times its
    stride, summed (a stride None, a broadcast dimension, adds nothing); integer literals of
    `suffix`. The outermost coordinate needs no modulo, the innermost no division."""
    total = math.prod(n for n, _ in dims)
    terms = []
    inner = 1
    for n, s in reversed(dims):
        if s is not None:
            coordinate = var if inner == 1 else f"{var} / {inner}{suffix}"
            if inner * n != total:
                coordinate = f"({coordinate}) % {n}{suffix}" if inner != 1 else f"{var} % {n}{suffix}"
            terms.append(coordinate if s == 1 else f"({coordinate}) * {s}{suffix}")
        inner *= n
    return " + ".join(reversed(terms)) or "0"
