"""Compiler passes over a Program (program.py): each a function Program -> Program that
builds a new program and leaves its input as it was.

- `fold_constants`: steps of pure primitives whose inputs are all constants (never a
  Variable's buffer, never an argument) run once, now, and their results become constants.
- `simplify_matmuls`: 2-D matmuls with a dimension of 1 become multiply (and reduce_sum)
  steps, elementwise and reduction primitives that a fusing compiler merges with their
  neighbours, where a matmul would be a separate library call.
- `simplify_reductions`: sums and means over axes of extent 1 become reshapes, and a total
  of a reshape reads the array before it.
- `eliminate_dead_code`: steps whose results nothing uses, unless they have side effects,
  and constants no step reads.
- `defer_shape_steps`: views move down to just before their first reader.

`default_pipeline` runs them in the order `PASSES` gives. Every pass keeps the program's
arguments, results, Variables and the order of the steps it keeps (but defer_shape_steps,
whose work is the order of the views); new steps go where the step they replace stood, so
reads of a Variable stay before the updates that write it.
"""
from .dispatch import REGISTRY
from .program import Program
from .tracing import Step, aval as _aval

# Kinds of primitives whose forward is a pure function of its inputs and parameters.
PURE_KINDS = frozenset(("elementwise", "shape", "reduction", "contraction"))
# Kinds of steps run for their effect: in-place updates, recorded host calls, and opaque
# primitives (user ops the compiler knows nothing about).
EFFECT_KINDS = frozenset(("update", "host", "opaque"))


def _copy(program, steps=None, constants=None):
    """A new Program with `program`'s slots, and `steps` and `constants` when given."""
    return Program(program.steps if steps is None else steps, program.avals,
                   program.constants if constants is None else constants, program.variables,
                   program.arg_slots, program.output_slots, program.labels)


# ---------------------------------------------------------------------------------------
# Dead code

def has_effect(step):
    """Whether `step` must run even if nothing reads its output: it has no output (an
    update, a host call), it is a recorded call rather than a primitive (op None), or its
    kind is "update", "host" or "opaque"."""
    return step.output is None or step.op is None or step.kind in EFFECT_KINDS


def eliminate_dead_code(program):
    """`program` without its dead steps and constants.

    A step is live if it has an effect (`has_effect`: no output, no primitive, or kind
    update, host or opaque), or if its output is a result of the program or an input of
    a live step; every other step is dead and goes, transitively (a step read only by
    dead steps is dead too). One backward sweep finds them all, since a step reads only
    slots computed before it. Constants that no kept step reads and the program does not
    return go as well, except Variables' buffers, which always stay.
    """
    live = set(program.output_slots)
    kept = []
    for step in reversed(program.steps):
        if has_effect(step) or step.output in live:
            kept.append(step)
            live.update(step.inputs)
    kept.reverse()
    constants = {slot: value for slot, value in program.constants.items()
                 if slot in live or slot in program.variables}
    return _copy(program, kept, constants)


# ---------------------------------------------------------------------------------------
# Constant folding

def _foldable(step, program, constants):
    if step.op is None or step.output is None or step.reads_variable:
        return False
    if step.kind not in PURE_KINDS or step.op.kind != step.kind:
        return False
    return all(slot in constants and slot not in program.variables for slot in step.inputs)


def fold_constants(program):
    """`program` with every step it can compute now replaced by a constant.

    A step folds when its primitive is pure (kind elementwise, shape, reduction or
    contraction) and each of its inputs is a constant that is not a Variable's buffer:
    a Python number, None, an array constant, or the result of a step folded before.
    It never folds a step that reads a Variable (whose value changes between calls) or
    an argument. The step runs with its own `fn` and params, so the constant is exactly
    what a replay would compute; its slot keeps its aval (a result of another shape or
    dtype than the trace recorded leaves the step in place). Steps come in the order
    they run, so one sweep folds chains of foldable steps: repeating it would change
    nothing. The inputs of folded steps stay among the constants until
    `eliminate_dead_code` drops those nothing reads any more.
    """
    constants = dict(program.constants)
    kept = []
    for step in program.steps:
        if _foldable(step, program, constants):
            value = step.fn(*(constants[slot] for slot in step.inputs), **(step.params or {}))
            if _aval(value) == program.avals[step.output]:
                constants[step.output] = value
                continue
        kept.append(step)
    return _copy(program, kept, constants)


# ---------------------------------------------------------------------------------------
# Degenerate matmuls

class _Builder:
    """The steps of a rewrite, appended to `steps`, over fresh slots of `program`."""

    def __init__(self, program, steps):
        self.program, self.steps = program, steps

    def emit(self, name, inputs, params, aval, output=None):
        """Append a step of the registered primitive `name`; returns its output slot (a
        fresh one of `aval` unless `output` is given)."""
        op = REGISTRY[name]
        if output is None:
            output = self.program.new_slot(aval)
        reads_variable = any(slot in self.program.variables for slot in inputs)
        self.steps.append(Step(op.name, op.kind, op.forward, params, tuple(inputs), output, reads_variable, op))
        return output

    def reshape(self, slot, shape, output=None):
        """`slot` as an array of `shape` (the same slot when it has that shape already)."""
        old_shape, dtype = self.program.avals[slot]
        if old_shape == shape and output is None:
            return slot
        return self.emit("reshape", (slot,), {"shape": shape}, (shape, dtype), output)


def _float_2d(program, slot):
    aval = program.avals[slot]
    return type(aval) is tuple and len(aval[0]) == 2 and aval[1].kind == "f"


def _rewrite_matmul(step, program, build):
    """Append the steps replacing the matmul `step` to `build` and return True, or return
    False (appending nothing) when it is not one simplify_matmuls rewrites."""
    if step.name != "matmul" or step.op is None or step.output is None or len(step.inputs) != 2:
        return False
    a, b = step.inputs
    if not (_float_2d(program, a) and _float_2d(program, b)) or program.avals[a][1] != program.avals[b][1]:
        return False
    params = step.params or {}
    if set(params) - {"transpose_a", "transpose_b"}:
        return False
    transpose_a, transpose_b = bool(params.get("transpose_a")), bool(params.get("transpose_b"))
    (a_shape, dtype), (b_shape, _) = program.avals[a], program.avals[b]
    m, k = a_shape[::-1] if transpose_a else a_shape
    k_b, n = b_shape[::-1] if transpose_b else b_shape
    out = step.output
    if k != k_b or program.avals[out] != ((m, n), dtype):
        return False
    if k == 1:  # out[i, j] = a[i] * b[j]: a column times a row
        column = build.reshape(a, (m, 1))
        row = build.reshape(b, (1, n))
        build.emit("multiply", (column, row), {}, ((m, n), dtype), out)
    elif n == 1:  # out[i, 0] = sum_k A[i, k] b[k]
        if transpose_a:  # a is (K, M): products (K, M), summed over axis 0 into a (1, M) row
            product = build.emit("multiply", (a, build.reshape(b, (k, 1))), {}, ((k, m), dtype))
            total = build.emit("reduce_sum", (product,), {"axis": (0,), "keepdims": True}, ((1, m), dtype),
                               out if m == 1 else None)
            if m != 1:
                build.reshape(total, (m, 1), out)
        else:  # a is (M, K): products (M, K), summed over axis 1 into the (M, 1) column
            product = build.emit("multiply", (a, build.reshape(b, (1, k))), {}, ((m, k), dtype))
            build.emit("reduce_sum", (product,), {"axis": (1,), "keepdims": True}, ((m, 1), dtype), out)
    elif m == 1:  # out[0, j] = sum_k a[k] B[k, j]
        if transpose_b:  # b is (N, K): products (N, K), summed over axis 1 into an (N, 1) column
            product = build.emit("multiply", (build.reshape(a, (1, k)), b), {}, ((n, k), dtype))
            total = build.emit("reduce_sum", (product,), {"axis": (1,), "keepdims": True}, ((n, 1), dtype))
            build.reshape(total, (1, n), out)
        else:  # b is (K, N): products (K, N), summed over axis 0 into the (1, N) row
            product = build.emit("multiply", (build.reshape(a, (k, 1)), b), {}, ((k, n), dtype))
            build.emit("reduce_sum", (product,), {"axis": (0,), "keepdims": True}, ((1, n), dtype), out)
    else:
        return False
    return True


def simplify_matmuls(program):
    """`program` with each 2-D matmul that has a dimension of 1 rewritten as elementwise
    and reduction primitives (multiply, reduce_sum, and reshape to lay out an operand or
    the result), which a fusing compiler can merge with the steps around them.

    For the effective product (M, K) @ (K, N), transposes (transpose_a, transpose_b)
    applied:

    - K == 1: the outer product column * row, one `multiply` broadcasting an (M, 1)
      column against a (1, N) row (an operand stored as a (1, M) row or an (N, 1) column,
      because it is used transposed, is reshaped first). Each result is one product of
      two floats, as in the matmul: the same bits.
    - N == 1 (and K > 1): reduce_sum(multiply(a, reshape(b, (1, K))), axis=(1,),
      keepdims=True); with transpose_a, a is stored (K, M), so the products are taken in
      that layout and summed over axis 0 into a (1, M) row, reshaped to (M, 1).
    - M == 1 (N, K > 1): reduce_sum(multiply(reshape(a, (K, 1)), b), axis=(0,),
      keepdims=True); with transpose_b, b is stored (N, K): summed over axis 1 into an
      (N, 1) column, reshaped to (1, N).

    The reductions sum the K products in another order than the matmul's dot product
    (NumPy's pairwise sum, or a different BLAS kernel), so their results agree with the
    matmul's to rounding (a few ulps of the sum of the products' magnitudes), not bit for
    bit. Matmuls of inputs that are not 2-D float arrays of one dtype, and those with M,
    N and K all above 1, stay as they are. The last new step writes the matmul's own
    output slot, so the steps reading it are unchanged.
    """
    result = _copy(program)  # new slots go to this copy's avals, never to `program`'s
    steps = []
    build = _Builder(result, steps)
    for step in program.steps:
        if not _rewrite_matmul(step, result, build):
            steps.append(step)
    return result.with_steps(steps)


# ---------------------------------------------------------------------------------------
# Degenerate reductions

def _rewrite_reduction(step, program, build, reshaped):
    """Append the steps replacing the reduction `step` to `build` and return True, or return
    False (appending nothing) when simplify_reductions leaves it as it is. `reshaped` maps
    the output slot of each reshape seen so far to the slot it reshapes."""
    if step.name not in ("reduce_sum", "reduce_mean") or step.op is None or step.output is None:
        return False
    params = step.params or {}
    if set(params) - {"axis", "keepdims"} or len(step.inputs) != 1 or not program.is_array(step.inputs[0]):
        return False
    (slot,) = step.inputs
    (shape, dtype), out_aval = program.avals[slot], program.avals[step.output]
    if dtype.kind != "f" or out_aval[1] != dtype:
        return False
    axis, keepdims = params.get("axis"), params.get("keepdims")
    axes = tuple(range(len(shape))) if axis is None else axis
    if type(axes) is not tuple:
        return False
    if all(shape[a] == 1 for a in axes):  # one element each: the sum and the mean are the element
        build.reshape(slot, tuple(out_aval[0]), step.output)
        return True
    source = reshaped.get(slot)
    if source is not None and len(axes) == len(shape) and not keepdims:  # a total ignores the shape
        build.emit(step.name, (source,), {"axis": None, "keepdims": False}, out_aval, step.output)
        return True
    return False


def simplify_reductions(program):
    """`program` with degenerate float sums and means rewritten:

    - a reduction whose reduced axes all have extent 1 (or none at all) is a reshape: each
      output element is the one element it reduces (a mean divides it by 1);
    - a total (every axis, keepdims False) of a reshaped array reduces the array before
      the reshape, which has the same elements in the same order: so a fusing compiler
      finds the reduction beside the step that computes them.

    Both keep each result's value (NumPy and CuPy sum a C-ordered array the same way
    whatever its shape), bit for bit but for the sign of a zero: a reshaped -0.0 stays
    -0.0 where a sum starting from +0.0 gives +0.0 (the two compare equal). The reshapes
    a rewrite leaves unread go with dead-code elimination. The new step writes the
    reduction's own output slot. A total reads around a reshape only when no step run for
    its effect lies between them.
    """
    result = _copy(program)
    steps, reshaped = [], {}
    build = _Builder(result, steps)
    for step in program.steps:
        if has_effect(step):
            reshaped.clear()  # a reduction after an effect reads the reshape it sees, not what was before
            steps.append(step)
            continue
        if not _rewrite_reduction(step, result, build, reshaped):
            steps.append(step)
        last = steps[-1] if steps else None
        if last is not None and last.name == "reshape" and last.op is not None and not has_effect(last):
            reshaped[last.output] = last.inputs[0]  # the program's reshapes and the rewrites
    return result.with_steps(steps)


# ---------------------------------------------------------------------------------------
# Views late

def defer_shape_steps(program):
    """`program` with each step of kind "shape" (reshape, transpose, broadcast: views, or
    cheap copies) moved down to just before the first step that reads its result, or the
    first step run for its effect, whichever comes first; those left at the end go before
    the results. Each still reads what it read before (no effect lies between its old place
    and its new one), and nothing else moves. A fusing compiler then finds no view between
    two groups that could otherwise share a kernel (a gradient's reshape, read only by its
    update at the end of the step)."""
    steps, pending = [], []
    for step in program.steps:
        if step.kind == "shape" and not has_effect(step):
            pending.append(step)
            continue
        if has_effect(step):
            steps += pending
            pending = []
        elif pending:
            needed = set(step.inputs)
            for waiting in reversed(pending):  # the ones it reads, and the ones those read
                if waiting.output in needed:
                    needed.update(waiting.inputs)
            steps += [waiting for waiting in pending if waiting.output in needed]
            pending = [waiting for waiting in pending if waiting.output not in needed]
        steps.append(step)
    return program.with_steps(steps + pending)


# ---------------------------------------------------------------------------------------
# The pipeline

# The passes `default_pipeline` runs, in order: fold first, so that a matmul of constants
# becomes the constant its replay would compute; simplify the remaining matmuls, then the
# reductions (theirs included); fold again, for the reshapes of constant operands the
# rewrites add; drop what the folds and rewrites left unread; then move the views late.
PASSES = (fold_constants, simplify_matmuls, simplify_reductions, fold_constants, eliminate_dead_code,
          defer_shape_steps)


def default_pipeline(program, passes=PASSES):
    """`program` after each of `passes` (by default PASSES: fold_constants,
    simplify_matmuls, simplify_reductions, fold_constants again, eliminate_dead_code,
    defer_shape_steps), in order."""
    for compiler_pass in passes:
        program = compiler_pass(program)
    return program
