"""One CUDA graph per compiled step: a gg.function plan on CUDA, captured once and then
launched as one graph per call.

A replay of a step on CUDA makes one kernel launch per array operation, and on a small
model each launch's host cost (10 to 15 microseconds) is the whole step. A CUDA graph
records the launches once and replays them with one call. The plan's first replay does
the step for real on a side stream (a warm-up that also fills a memory pool private to
the graph, compiles every kernel and initialises cuBLAS), then captures the same calls;
later calls launch the graph on the current stream.

What makes that correct:
- Arguments are copied into buffers the graph reads (skipped when a call passes the very
  same array again: gpugrad never writes a tensor in place). Variables and constants are
  read where they live, so assignments between calls are seen.
- Host steps (an optimizer's schedule and step count) run before each launch and write
  the step's values into device memory that the update kernels read.
- Matrix products go through gpugrad's own cuBLAS handle (cublas.py), which captures: the
  lowering swaps it in for the matmul steps it compiles.
- Every intermediate lives in the private pool, which no other allocation can take.
- Results are copied out, so a returned tensor keeps its value after the next call.
- Variables written by the step are marked written after each launch, as eager updates do.

A step that cannot be a graph (a Python-number argument, a host step reading device
values, a Variable assigned in the step, a call that synchronises during capture) runs
the plain replay instead; `reason` says why, and gg.function's `explain()` prints it.
"""
import os

from . import backend as _backend
from . import cublas as _cublas
from . import fusion as _fusion
from . import kernels as _kernels
from . import lowering as _lowering
from . import passes as _passes
from . import update_batches as _update_batches


def unsupported(trace):
    """Why the traced step cannot be one CUDA graph, or None when it can (the trace still
    holds the values seen at capture)."""
    if os.environ.get("GPUGRAD_COMPILE", "1") == "0":
        return "the compiler is off (GPUGRAD_COMPILE=0)"
    values = trace.values
    arrays = [v for v in values if hasattr(v, "dtype") and hasattr(v, "shape")]
    if not any(_backend.is_cuda_array(v) for v in arrays):
        return "the step runs on the CPU"
    for slot in trace.arg_slots:
        if not _backend.is_cuda_array(values[slot]):
            return (f"{trace.labels[slot]} is a Python number or a host array, which would reach the kernels as a "
                    f"value fixed at capture")
    for slot in trace.output_slots:
        if not _backend.is_cuda_array(values[slot]):
            return "the step returns a Python number argument"
    for step in trace.steps:
        if step.kind == "host" and step.inputs:
            return f"its host step {step.name} reads values computed on the device"
        if step.kind == "update" and not hasattr(step.fn, "written"):
            return f"{step.name} writes a Variable outside an update primitive"
    return None


class GraphReplay:
    """A plan's replay as one CUDA graph launch per call (see the module docstring).

    `host()` runs the host steps, `device(*args)` every other step and returns the
    outputs, `fallback(*args)` the whole plain replay; `written` are the Variables the
    step's updates write."""

    def __init__(self, host, device, fallback, written):
        self._host, self._device, self._fallback, self._written = host, device, fallback, written
        self.reason = None   # why the step is not a graph, once a capture failed
        self._graph = None

    @property
    def status(self):
        if self._graph is not None:
            return (f"one CUDA graph launch per call\nbuffers: {self._pool.total_bytes() / 1e6:.4g} MB in the "
                    f"graph's own memory pool, allocated at capture (an intermediate's block is reused once its "
                    f"last reader ran)")
        if self.reason is not None:
            return f"plain replay: {self.reason}"
        return "one CUDA graph launch per call, captured at the next call"

    def __call__(self, *inputs):
        graph = self._graph
        if graph is None:
            if self.reason is not None:
                return self._fallback(*inputs)
            return self._warm_up_and_capture(inputs)
        cupy = self._cupy
        sources, static = self._sources, self._static
        for index, array in enumerate(inputs):
            if array is not sources[index]:
                cupy.copyto(static[index], array)
                sources[index] = array
        self._host()
        graph.launch(stream=cupy.cuda.get_current_stream())
        for variable in self._written:
            variable.written()
        return tuple(out.copy() for out in self._outputs)

    def _warm_up_and_capture(self, inputs):
        cupy = self._cupy = _backend._cupy
        try:
            stream = cupy.cuda.Stream(non_blocking=True)
            route = _cublas.Route(stream)
        except Exception as error:  # no cuBLAS to load here: nothing of the step ran yet
            self.reason = f"no capture-safe cuBLAS ({type(error).__name__}: {error})"
            return self._fallback(*inputs)
        pool = cupy.cuda.MemoryPool()
        current = cupy.cuda.get_current_stream()
        static = [cupy.empty_like(array) for array in inputs]
        for buffer, array in zip(static, inputs):
            cupy.copyto(buffer, array)
        self._host()
        stream.wait_event(current.record())
        with cupy.cuda.using_allocator(pool.malloc), stream, route:
            outputs = self._device(*static)  # this call's step, for real
        current.wait_event(stream.record())
        for variable in self._written:  # (a batched update's kernel does not mark them)
            variable.written()
        result = tuple(out.copy() for out in outputs)
        del outputs
        try:
            with cupy.cuda.using_allocator(pool.malloc), stream, route:
                stream.begin_capture()
                try:
                    captured = self._device(*static)
                finally:
                    graph = stream.end_capture()
        except Exception as error:  # a call that synchronises or cannot be captured
            self.reason = f"capture failed ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
            return result
        self._graph, self._outputs, self._static, self._sources = graph, captured, static, list(inputs)
        self._pool, self._stream, self._route = pool, stream, route  # alive as long as the graph
        return result


def fused_device_replay(program, run_group=None, run_batch=None):
    """(replay, description): the device part of `program` (every step but the host ones)
    after the compiler's passes, its elementwise groups fused into generated kernels and its
    consecutive updates batched into one (update_batches.py), which are compiled here,
    before anything runs; `description` lists the kernels and their sources for
    `explain()`. Raises what the kernel compiler raises. `run_group(group)` and
    `run_batch(batch)` make the runners (default: the CUDA kernels; tests pass ones running
    the NumPy forms, to check the whole lowering on a CPU)."""
    run_group, run_batch = run_group or _cuda_group, run_batch or _cuda_batch
    program = capture_safe(_passes.default_pipeline(program))
    units = [unit for unit in _fusion.schedule(program)
             if (type(unit) is not int and unit.outputs) or (type(unit) is int and program.steps[unit].kind != "host")]
    units = _update_batches.batch_updates(program, units)
    kernels = [unit for unit in units if type(unit) is not int]
    runners = {id(unit): (run_batch if type(unit) is _update_batches.UpdateBatch else run_group)(unit)
               for unit in kernels}
    replay = _lowering.lower_schedule(program, units, lambda unit: runners[id(unit)])
    groups = [unit for unit in kernels if type(unit) is _fusion.Group]
    batches = [unit for unit in kernels if type(unit) is _update_batches.UpdateBatch]
    others = [program.steps[unit] for unit in units if type(unit) is int]
    launching = [step.name for step in others if step.kind != "shape"]
    launches = len(kernels) + sum(group.finish is not None for group in groups)  # a long sum's second pass
    lines = [f"{len(kernels)} generated kernels ({len(groups)} fused, {len(batches)} batched updates; {launches} "
             f"launches) and {len(launching)} other array calls a step, besides {len(others) - len(launching)} "
             f"views, after the passes (constant folding, degenerate matmuls and reductions rewritten, dead-code "
             f"elimination, views moved late):"]
    lines += [f"  kernel {index}: {unit!r}" for index, unit in enumerate(kernels)]
    lines.append("  other array calls: " + (", ".join(launching) or "none"))
    lines.append("the program after the passes:")
    lines += [f"  {line}" for line in program.text().splitlines()]
    for index, unit in enumerate(kernels):
        lines.append(f"kernel {index} source:")
        lines += [f"  {line}" for line in unit.cuda_source().splitlines()]
    return replay, "\n".join(lines)


def capture_safe(program):
    """`program` with each matmul step's forward replaced by cublas.capture_safe_matmul: a
    compile-time choice for the graph, which leaves eager calls alone."""
    return program.with_steps([step.replace(fn=_cublas.capture_safe_matmul(step.fn))
                               if step.op is not None and step.op.name == "matmul" else step
                               for step in program.steps])


def _cuda_batch(batch):
    """The runner of a batch of updates on CUDA: its kernel compiled now, then per call the
    gradients made contiguous (the other arrays are the Variables' and the optimizer's own),
    one launch."""
    function = _kernels.compile_source(batch.cuda_source()).get_function(batch.kernel_name)
    cupy = _backend._cupy

    def run(*inputs):
        inputs = [cupy.ascontiguousarray(value) if hasattr(value, "shape") else value for value in inputs]
        _kernels.launch_generated(function, batch.launch, batch.kernel_arguments(inputs))
        return ()
    return run


def _cuda_group(group):
    """The runner of a fused group on CUDA: its kernels compiled now, then per call the
    outputs allocated (from the graph's private pool inside a capture), the array inputs
    made contiguous, one launch (two for reductions in several chunks: the chunks' partial
    sums, then their totals)."""
    module = _kernels.compile_source(group.cuda_source())
    function = module.get_function(group.kernel_name)
    finish = module.get_function(group.finish_name) if group.finish_name else None
    outputs = group.output_avals  # a fused reduction's output has its own shape
    arrays = [type(group.avals[slot]) is tuple for slot in group.inputs]
    cupy = _backend._cupy

    def run(*inputs):
        inputs = [cupy.ascontiguousarray(value) if array else value for value, array in zip(inputs, arrays)]
        outs = [cupy.empty(shape, dtype) for shape, dtype in outputs]
        if finish is None:
            _kernels.launch_generated(function, group.launch, group.kernel_arguments(outs, inputs))
            return outs
        partials = cupy.empty(group.partials, cupy.float64)
        _kernels.launch_generated(function, group.launch, group.kernel_arguments(outs, inputs, partials))
        _kernels.launch_generated(finish, group.finish, group.finish_arguments(outs, partials))
        return outs
    return run
