"""The array lowering of a compiled step: every intermediate in a buffer allocated once per
signature and reused by liveness, every op writing into its buffer with `out=`.

`lower(program)` turns a Program (program.py) into a replay function and its memory plan.
Ops with an into-form write into planned buffers:

- elementwise primitives through their scalar expression's NumPy form
  (`op.expression.numpy(xp, out, *inputs, **params)`);
- the forms in INTO below: 2-D matmul, reduce_sum, reduce_mean, and the broadcasts of
  reduce_sum_backward and broadcast_to, each equal to its primitive's forward bit for bit
  (tests/test_lowering.py checks them against the forwards).

Every other step calls its forward, which allocates; its result may be a view of its
inputs, so their buffers stay reserved while it is alive. A step whose result the
program returns also calls its forward, so the caller gets a fresh array each call. A
step reading a Variable copies a result that is a view of it, as eager calls do, since an
update later in the step may write the Variable. Buffers are reused only after their last
reader ran, never between a step's inputs and its output.
"""
import functools
import math

from .backend import backend_of, host_array_type, unaliased

_numpy = backend_of("cpu").xp
_ndarray = host_array_type()
_generic = _numpy.generic

# The planned forms: name -> into(xp, out, *inputs, **params), each equal to the forward.


def _matmul_into(xp, out, x, y, *, transpose_a=False, transpose_b=False):
    if transpose_a:
        x = x.T
    if transpose_b:
        y = y.T
    return xp.dot(x, y, out=out)


@functools.lru_cache(maxsize=64)
def _ones(xp, shape, dtype):
    return xp.ones(shape, dtype)


def _reduce_sum_into(xp, out, x, *, axis, keepdims):
    if axis == (0,) and x.ndim == 2 and x.dtype.kind == "f":  # as the forward: a row of ones times x
        return xp.dot(_ones(xp, (1, x.shape[0]) if keepdims else (x.shape[0],), x.dtype), x, out=out)
    return x.sum(axis=axis, keepdims=keepdims, dtype=x.dtype if x.dtype.kind in "iu" else None, out=out)


def _reduce_mean_into(xp, out, x, *, axis, keepdims):
    _reduce_sum_into(xp, out, x, axis=axis, keepdims=keepdims)
    count = math.prod(x.shape if axis is None else (x.shape[a] for a in axis))
    return xp.divide(out, count, out=out)


def _kept_shape(shape, axis):
    return tuple(1 if i in axis else n for i, n in enumerate(shape))


def _reduce_sum_backward_into(xp, out, dy, *, axis, keepdims, shape):
    if not keepdims and axis is not None:
        dy = dy.reshape(_kept_shape(shape, axis))
    xp.copyto(out, dy)
    return out


def _broadcast_to_into(xp, out, x, *, shape):
    xp.copyto(out, x)
    return out


def _reduce_max_into(xp, out, x, *, axis, keepdims):
    return xp.max(x, axis=axis, keepdims=keepdims, out=out)


def _reduce_min_into(xp, out, x, *, axis, keepdims):
    return xp.min(x, axis=axis, keepdims=keepdims, out=out)


INTO = {"matmul": _matmul_into, "reduce_sum": _reduce_sum_into, "reduce_mean": _reduce_mean_into,
        "reduce_max": _reduce_max_into, "reduce_min": _reduce_min_into,
        "reduce_sum_backward": _reduce_sum_backward_into, "broadcast_to": _broadcast_to_into}


def into_form(program, step):
    """The into-form `into(xp, out, *inputs, **params)` of a step, or None when its forward
    must allocate (see the module docstring)."""
    op = step.op
    if op is None or step.output is None or not program.is_array(step.output):
        return None
    if op.kind == "elementwise":
        return None if op.expression is None else op.expression.numpy
    into = INTO.get(op.name)
    if into is _matmul_into and any(not program.is_array(s) or len(program.avals[s][0]) != 2 for s in step.inputs):
        return None
    if into is _reduce_sum_into or into is _reduce_mean_into:
        shape, dtype = program.avals[step.inputs[0]]
        if dtype.kind not in "f":
            return None
    return into


class MemoryPlan:
    """Which buffer each planned slot writes: `slot_buffer` (slot -> buffer index) and
    `buffers` ((shape, dtype) of each)."""

    def __init__(self, slot_buffer, buffers):
        self.slot_buffer, self.buffers = slot_buffer, buffers

    @property
    def nbytes(self):
        return sum(math.prod(shape) * dtype.itemsize for shape, dtype in self.buffers)

    def describe(self):
        return (f"{len(self.buffers)} buffers ({self.nbytes / 1e6:.3g} MB) for {len(self.slot_buffer)} planned "
                f"intermediates, allocated once")


def plan_memory(program, planned):
    """The memory plan of `program` whose steps at the indices in `planned` write into
    buffers: a buffer goes back to the free list after the last step reading its slot (or
    a view made from it) ran."""
    steps = program.steps
    root = {}  # slot -> the planned slot whose buffer it may be a view of (unplanned results)
    last_use = {}
    returned = set(program.output_slots)
    for index, step in enumerate(steps):
        for slot in step.inputs:
            for r in root.get(slot, (slot,)):
                last_use[r] = index
        if step.output is not None and index not in planned:
            # an unplanned result may be a view of any of its inputs' buffers
            root[step.output] = tuple({r for slot in step.inputs for r in root.get(slot, (slot,))})
    for slot in returned:
        for r in root.get(slot, (slot,)):
            last_use[r] = len(steps)
    free = {}
    slot_buffer, buffers = {}, []
    releases = {}
    for index, step in enumerate(steps):
        if index in planned:
            key = program.avals[step.output]
            pool = free.get(key)
            if pool:
                buffer = pool.pop()
            else:
                buffer = len(buffers)
                buffers.append(key)
            slot_buffer[step.output] = buffer
            releases.setdefault(last_use.get(step.output, index), []).append(step.output)
        for slot in releases.pop(index, ()):
            free.setdefault(program.avals[slot], []).append(slot_buffer[slot])
    return MemoryPlan(slot_buffer, buffers)


def on_host(values):
    """Whether every array among a trace's values is a host (NumPy) array."""
    return all(type(v) is _ndarray or isinstance(v, _generic) for v in values
               if hasattr(v, "dtype") and hasattr(v, "shape"))


def lower(program):
    """(replay, plan): a straight-line replay of the host `program` with planned buffers,
    and its MemoryPlan."""
    xp = _numpy
    returned = set(program.output_slots)
    forms = {}
    for index, step in enumerate(program.steps):
        into = into_form(program, step)
        if into is not None and step.output not in returned:
            forms[index] = into
    plan = plan_memory(program, forms)
    bound = {"xp": xp, "_unalias": unaliased, "_fresh": _fresh}
    bound.update((f"v{slot}", value) for slot, value in program.constants.items())
    bound.update((f"b{index}", xp.empty(shape, dtype)) for index, (shape, dtype) in enumerate(plan.buffers))
    names = {slot: f"b{buffer}" for slot, buffer in plan.slot_buffer.items()}

    def name(slot):
        return names.get(slot, f"v{slot}")

    lines = []
    for index, step in enumerate(program.steps):
        if index in forms:
            arguments = ", ".join(name(s) for s in step.inputs)
            if step.params:
                bound[f"p{index}"] = step.params
                arguments += f", **p{index}"
            bound[f"f{index}"] = forms[index]
            lines.append(f"f{index}(xp, {name(step.output)}, {arguments})")
        else:
            lines.append(_step_line(index, step, bound, name))
    # A result that is a view (of a planned buffer, say) is copied: the caller keeps it.
    lines.append(f"return ({''.join(f'_fresh({name(slot)}), ' for slot in program.output_slots)})")
    return _function("planned replay", lines, program.arg_slots, bound), plan


def replay_steps(steps, arg_slots, output_slots, constants):
    """The plain replay: a straight-line function making the recorded calls of `steps` (a
    trace's or a program's), one line a call, every value in a local variable (the fastest
    Python has), constants and callables bound as default arguments. `constants` maps the
    names "v<slot>" to their values."""
    bound = dict(constants, _unalias=unaliased)
    lines = [_step_line(index, step, bound) for index, step in enumerate(steps)]
    lines.append(f"return ({''.join(f'v{s}, ' for s in output_slots)})")
    return _function("replay", lines, arg_slots, bound)


def _step_line(index, step, bound, name=lambda slot: f"v{slot}"):
    """The line of a replay that makes `step`'s call with its forward (its callable and
    params bound into `bound`); a result read from a Variable is unaliased, as in eager
    calls, since an update later in the step may write the Variable."""
    arguments = ", ".join(name(s) for s in step.inputs)
    if step.params:
        bound[f"p{index}"] = step.params
        arguments += f", **p{index}"
    bound[f"f{index}"] = step.fn
    call = f"f{index}({arguments})"
    if step.output is None:
        return call
    if step.reads_variable:
        return f"v{step.output} = _unalias({call}, {', '.join(name(s) for s in step.inputs)})"
    return f"v{step.output} = {call}"


def _function(title, lines, arg_slots, bound):
    """The function `replay(<argument slots>, *, <bound names>)` running `lines`; its text
    rides along as `.source`."""
    signature = ", ".join([f"v{s}" for s in arg_slots] + ["*"] + [f"{n}={n}" for n in bound])
    source = f"def replay({signature}):\n" + "".join(f"    {line}\n" for line in lines)
    namespace = {}
    exec(compile(source, f"<gg.function {title}>", "exec"), bound, namespace)
    replay = namespace["replay"]
    replay.source = source
    return replay


def _fresh(out):
    return out.copy() if getattr(out, "base", None) is not None else out


def lower_schedule(program, units, run_group):
    """A straight-line replay of `program` in the order of `units` (fusion.schedule: fused
    Groups, update batches and the indices of the other steps), each unit that is not an
    index run by the callable `run_group(unit)` returns: `run(*inputs)` -> its output arrays
    (one per slot of `unit.outputs`, maybe none), `inputs` holding a value for every slot of
    `unit.inputs`. The other steps call their forwards, as the plain replay does. Each
    intermediate is dropped (`del`) after its last reader, so that its memory goes back to
    the allocator for the units after it: inside a CUDA-graph capture, a block of the
    graph's pool serves several intermediates, one after another. This is the device
    lowering; on the CPU `lower` plans buffers instead."""
    bound = {"_unalias": unaliased}
    bound.update((f"v{slot}", value) for slot, value in program.constants.items())
    reads = [program.steps[unit].inputs if type(unit) is int else unit.inputs for unit in units]
    writes = [(program.steps[unit].output,) if type(unit) is int else unit.outputs for unit in units]
    last = {slot: index for index, (read, written) in enumerate(zip(reads, writes)) for slot in (*written, *read)}
    kept = set(program.constants) | set(program.arg_slots) | set(program.output_slots) | {None}
    lines = []
    for index, unit in enumerate(units):
        if type(unit) is int:
            lines.append(_step_line(index, program.steps[unit], bound))
        else:
            bound[f"g{index}"] = run_group(unit)
            targets = "".join(f"v{s}, " for s in unit.outputs)
            lines.append(f"{targets}{'= ' if targets else ''}g{index}({', '.join(f'v{s}' for s in unit.inputs)})")
        done = sorted({slot for slot in (*writes[index], *reads[index]) if last[slot] == index} - kept)
        if done:
            lines.append(f"del {', '.join(f'v{slot}' for slot in done)}")
    lines.append(f"return ({''.join(f'v{slot}, ' for slot in program.output_slots)})")
    return _function("fused replay", lines, program.arg_slots, bound)
