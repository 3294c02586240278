"""The compiler passes of gpugrad/passes.py: dead code elimination, constant folding and the
rewrites of degenerate matmuls and reductions, views moved late, on small programs built by hand and on the traced two-layer
regression step; each compares `evaluate` before and after (bit for bit, or to rounding for
the reductions that replace a matmul)."""
import numpy as np
import pytest

import gpugrad as gg
from gpugrad import passes
from gpugrad.dispatch import REGISTRY
from gpugrad.program import Program, evaluate
from gpugrad.tracing import Step
from helpers import program_of, regression_step

TOLERANCE = {np.float32: 1e-6, np.float64: 1e-13}


# ---------------------------------------------------------------------------------------
# Helpers

def op_step(name, inputs, output, **params):
    """A step of the registered primitive `name`, as a capture records it."""
    op = REGISTRY[name]
    return Step(op.name, op.kind, op.forward, params, tuple(inputs), output, False, op)


def make_program(values, steps, args=(), outputs=(), variables=()):
    """A program over the slots of `values`: an array, number or None is a constant (or an
    argument's example value, for the slots in `args`); `computed(shape)` marks a slot a
    step computes, with its aval."""
    avals, constants = [], {}
    for slot, value in enumerate(values):
        if type(value) is tuple and value and value[0] == "computed":
            avals.append(value[1])
            continue
        avals.append(_aval(value))
        if slot not in args:
            constants[slot] = value
    labels = {slot: f"argument {i}" for i, slot in enumerate(args)}
    labels.update({slot: f"Variable 'v{slot}'" for slot in variables})
    return Program(steps, avals, constants, variables, args, outputs, labels)


def computed(shape, dtype=np.float32):
    return ("computed", (tuple(shape), np.dtype(dtype)))


def _aval(value):
    return (value.shape, value.dtype) if isinstance(value, np.ndarray) else type(value)


def written_slots(program):
    """The Variable slots that the program's update steps write."""
    return sorted({step.inputs[i] for step in program.steps if step.kind == "update"
                   for i in step.op.writes if program.avals[step.inputs[i]] is not type(None)})


def run(program, *inputs, outputs=None):
    """evaluate(program, *inputs) on copies of the Variables its updates write (so that
    every run starts from the same values); returns (results, {slot: Variable buffer after})."""
    buffers = {slot: program.constants[slot].copy() for slot in written_slots(program)}
    copy = Program(program.steps, program.avals, {**program.constants, **buffers}, program.variables,
                   program.arg_slots, program.output_slots if outputs is None else outputs, program.labels)
    return evaluate(copy, *inputs), buffers


def assert_same_bits(actual, expected):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    assert actual.tobytes() == expected.tobytes()


def assert_sums_agree(got, want, magnitude, dtype):
    """got and want, two sums of the same products in different orders, differ by at most
    TOLERANCE (a few ulps) of `magnitude`, the sum of the products' magnitudes: their
    rounding errors are bounded by it, not by the sum itself, which may cancel."""
    assert got.shape == want.shape == magnitude.shape and got.dtype == want.dtype
    assert np.all(np.abs(got.astype(np.float64) - want) <= TOLERANCE[dtype] * magnitude.astype(np.float64))


def names(program):
    return [step.name for step in program.steps]


def unchanged(program, snapshot):
    """Whether `program` still has the steps, avals and constants of `snapshot`."""
    steps, avals, constants = snapshot
    return (program.steps == steps and program.avals == avals
            and all(program.constants[slot] is value for slot, value in constants.items())
            and len(program.constants) == len(constants))


def snapshot(program):
    return list(program.steps), list(program.avals), dict(program.constants)


@pytest.fixture(scope="module", params=[np.float32, np.float64], ids=["float32", "float64"])
def traced(request):
    """(program, inputs, dtype) of the regression step, captured once per dtype."""
    dtype = request.param
    with gg.device("cpu"):  # NumPy values, which evaluate() mixes with NumPy inputs, on any default device
        train_step, x, y = regression_step(dtype, batch=64)
        return program_of(train_step, x, y), (x.numpy(), y.numpy()), dtype


def matmul_cases(program):
    """[(output slot, (M, K, N))] of the program's matmuls, effective shapes."""
    cases = []
    for step in program.steps:
        if step.name == "matmul":
            (a_shape, _), (b_shape, _) = program.avals[step.inputs[0]], program.avals[step.inputs[1]]
            m, k = a_shape[::-1] if step.params.get("transpose_a") else a_shape
            n = b_shape[0] if step.params.get("transpose_b") else b_shape[1]
            cases.append((step.output, (m, k, n)))
    return cases


# ---------------------------------------------------------------------------------------
# eliminate_dead_code

def test_dead_code_goes_transitively_and_its_constants_with_it():
    a, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.full((2, 3), 0.5, np.float32)
    values = [a, b, computed((2, 3)), 2.0, computed((2, 3)), computed((2, 3)), computed((2, 3)),
              np.ones((2, 3), np.float32)]
    steps = [op_step("add", (0, 1), 2),
             op_step("multiply", (2, 3), 4),      # dead: only the dead negative reads it
             op_step("negative", (4,), 5),        # dead
             op_step("exp", (2,), 6)]
    program = make_program(values, steps, args=(0, 1), outputs=(6,))
    before = snapshot(program)
    after = passes.eliminate_dead_code(program)
    assert names(after) == ["add", "exp"]
    assert 3 not in after.constants and 7 not in after.constants  # the dead step's number, an unread array
    assert unchanged(program, before)
    assert_same_bits(evaluate(after, a, b)[0], evaluate(program, a, b)[0])


def test_steps_with_effects_stay_though_nothing_reads_them():
    calls = []
    v = np.zeros((1, 3), np.float32)
    grad_in = np.ones((1, 3), np.float32)
    values = [grad_in, computed((1, 3)), v, None, np.array([0.5]), computed((4, 3)), computed((1, 3))]
    sgd = REGISTRY["sgd_update"]
    steps = [op_step("negative", (0,), 1),
             Step("host_call", "host", lambda: calls.append(1), None, (), None, False),  # a recorded call
             op_step("getitem_backward", (1,), 5, key=(slice(0, 1),), shape=(4, 3)),  # opaque
             op_step("exp", (1,), 6),  # dead
             Step(sgd.name, "update", sgd.forward, {"momentum": 0.0, "nesterov": False}, (2, 1, 3, 4), None, True,
                  sgd)]
    program = make_program(values, steps, args=(0,), variables=(2, 4))
    after = passes.eliminate_dead_code(program)
    assert names(after) == ["negative", "host_call", "getitem_backward", "sgd_update"]
    assert {2, 3, 4} <= set(after.constants)
    (_, before_buffers), (_, after_buffers) = run(program, grad_in), run(after, grad_in)
    assert calls == [1, 1]
    assert_same_bits(after_buffers[2], before_buffers[2])
    np.testing.assert_array_equal(after_buffers[2], [[0.5, 0.5, 0.5]])


def test_has_effect_states_the_rule():
    add, sgd = REGISTRY["add"], REGISTRY["sgd_update"]
    assert not passes.has_effect(op_step("add", (0, 1), 2))
    assert passes.has_effect(Step(add.name, add.kind, add.forward, {}, (0, 1), None, False, add))  # no output
    assert passes.has_effect(Step("f", "elementwise", abs, None, (0,), 1, False))  # a recorded call, op None
    assert passes.has_effect(op_step("getitem_backward", (0,), 1, key=(0,), shape=(2,)))  # opaque
    assert passes.has_effect(Step(sgd.name, "update", sgd.forward, {}, (0, 1, 2, 3), None, True, sgd))


def test_a_step_whose_result_is_dead_keeps_its_updates_and_their_inputs():
    with gg.device("cpu"):  # NumPy values, which evaluate() mixes with NumPy inputs
        train_step, x, y = regression_step(np.float32, batch=64)

        def step_without_result(xs, ys):
            train_step(xs, ys)

        program = program_of(step_without_result, x, y)
    assert program.output_slots == ()
    after = passes.eliminate_dead_code(program)
    gone = [step for step in program.steps if step not in after.steps]
    # The loss (square, reduce_mean) feeds no gradient: only it goes.
    assert [step.name for step in gone] == ["square", "reduce_mean"]
    assert [s.name for s in after.steps if s.kind in ("update", "host")] == ["SGD.advance"] + ["sgd_update"] * 4
    assert names(after).count("matmul") == 5
    inputs = (x.numpy(), y.numpy())
    (_, before_buffers), (_, after_buffers) = run(program, *inputs), run(after, *inputs)
    assert before_buffers.keys() == after_buffers.keys() and len(before_buffers) == 4
    for slot in before_buffers:
        assert_same_bits(after_buffers[slot], before_buffers[slot])
        assert not np.array_equal(before_buffers[slot], program.constants[slot])  # the update did run


def test_the_regression_step_has_no_dead_steps(traced):
    program, inputs, _ = traced
    after = passes.eliminate_dead_code(program)
    assert after.steps == program.steps
    (loss_before,), before_buffers = run(program, *inputs)
    (loss_after,), after_buffers = run(after, *inputs)
    assert_same_bits(loss_after, loss_before)
    for slot in before_buffers:
        assert_same_bits(after_buffers[slot], before_buffers[slot])


# ---------------------------------------------------------------------------------------
# fold_constants

def test_chains_of_constant_steps_fold_into_constants():
    c = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    arg = np.full((2, 3), 3.0, np.float32)
    values = [arg, c, 2.0, computed((2, 3)), computed((2, 3)), computed((3, 2)), computed((2, 3)),
              computed((1, 3))]
    steps = [op_step("multiply", (1, 2), 3),                     # c * 2.0: folds
             op_step("exp", (3,), 4),                            # folds, reading a folded result
             op_step("transpose", (4,), 5, perm=(1, 0)),          # folds (shape)
             op_step("add", (4, 0), 6),                          # reads the argument: stays
             op_step("reduce_sum", (4,), 7, axis=(0,), keepdims=True)]  # folds (reduction), a result
    program = make_program(values, steps, args=(0,), outputs=(6, 7, 5))
    before = snapshot(program)
    after = passes.fold_constants(program)
    assert names(after) == ["add"]
    assert after.steps[0] is program.steps[3]
    assert unchanged(program, before)
    for slot in (3, 4, 5, 7):
        assert (after.constants[slot].shape, after.constants[slot].dtype) == after.avals[slot] == program.avals[slot]
    assert_same_bits(after.constants[4], np.exp(c * 2.0))
    for got, want in zip(evaluate(after, arg), evaluate(program, arg)):
        assert_same_bits(got, want)
    assert names(passes.fold_constants(after)) == ["add"]  # one sweep reaches the fixed point


def test_steps_reading_variables_arguments_or_effects_never_fold():
    v = np.array([1.0, 2.0], np.float32)
    c = np.array([3.0, 4.0], np.float32)
    arg = np.array([5.0, 6.0], np.float32)
    values = [arg, v, c, computed((2,)), computed((2,)), computed((2,)), computed((2,)), 0.25]
    sgd = REGISTRY["sgd_update"]
    reads_v = op_step("multiply", (1, 2), 3).replace(reads_variable=True)
    steps = [reads_v,                                                          # a Variable
             op_step("add", (2, 0), 4),                                        # an argument
             op_step("getitem_backward", (2,), 5, key=(slice(None),), shape=(2,)),  # opaque
             op_step("negative", (3,), 6),                                     # a result of a Variable's step
             Step("f", "elementwise", np.negative, None, (2,), None, False)]   # a recorded call
    program = make_program(values, steps, args=(0,), outputs=(3, 4, 5, 6), variables=(1,))
    after = passes.fold_constants(program)
    assert after.steps == program.steps and after.constants == program.constants
    # A Variable's slot is never folded even when its step does not say it reads one.
    unmarked = program.with_steps([op_step("multiply", (1, 2), 3)])
    assert names(passes.fold_constants(unmarked)) == ["multiply"]


def test_a_fold_whose_result_changes_aval_leaves_the_step():
    c = np.ones((2, 2), np.float32)
    values = [c, computed((2, 2), np.float64)]  # the trace said float64: the forward says float32
    program = make_program(values, [op_step("negative", (0,), 1)], outputs=(1,))
    assert names(passes.fold_constants(program)) == ["negative"]


def test_the_regression_step_folds_the_seed_of_its_gradient(traced):
    program, inputs, dtype = traced
    after = passes.fold_constants(program)
    gone = [step for step in program.steps if step not in after.steps]
    assert [step.name for step in gone] == ["reduce_mean_backward"]
    (folded,) = gone
    assert folded.output in after.constants and after.avals[folded.output] == ((64, 1), np.dtype(dtype))
    assert all(step in after.steps for step in program.steps if step.kind in ("update", "host"))
    assert not set(after.constants) & {s.output for s in after.steps if s.output is not None}
    (loss_before,), before_buffers = run(program, *inputs)
    (loss_after,), after_buffers = run(after, *inputs)
    assert_same_bits(loss_after, loss_before)
    assert len(before_buffers) == 4
    for slot in before_buffers:
        assert_same_bits(after_buffers[slot], before_buffers[slot])


# ---------------------------------------------------------------------------------------
# simplify_matmuls

# (stored a, stored b, transpose_a, transpose_b, the steps that replace the matmul)
CASES = [
    ((5, 1), (1, 4), False, False, ["multiply"]),                          # K = 1
    ((1, 5), (1, 4), True, False, ["reshape", "multiply"]),                # K = 1, a used transposed
    ((5, 1), (4, 1), False, True, ["reshape", "multiply"]),                # K = 1, b used transposed
    ((1, 5), (4, 1), True, True, ["reshape", "reshape", "multiply"]),
    ((1, 1), (1, 1), False, False, ["multiply"]),                          # K = M = N = 1
    ((5, 7), (7, 1), False, False, ["reshape", "multiply", "reduce_sum"]),  # N = 1
    ((5, 7), (1, 7), False, True, ["multiply", "reduce_sum"]),
    ((7, 5), (7, 1), True, False, ["multiply", "reduce_sum", "reshape"]),
    ((7, 5), (1, 7), True, True, ["reshape", "multiply", "reduce_sum", "reshape"]),
    ((1, 7), (7, 1), False, False, ["reshape", "multiply", "reduce_sum"]),  # a dot product
    ((7, 1), (7, 1), True, False, ["multiply", "reduce_sum"]),
    ((1, 7), (7, 4), False, False, ["reshape", "multiply", "reduce_sum"]),  # M = 1
    ((7, 1), (7, 4), True, False, ["multiply", "reduce_sum"]),
    ((1, 7), (4, 7), False, True, ["multiply", "reduce_sum", "reshape"]),
    ((7, 1), (4, 7), True, True, ["reshape", "multiply", "reduce_sum", "reshape"]),
]


def _matmul_program(a, b, transpose_a, transpose_b, a_is_variable=False):
    m = a.shape[1] if transpose_a else a.shape[0]
    n = b.shape[0] if transpose_b else b.shape[1]
    values = [a, b, computed((m, n), a.dtype), computed((m, n), a.dtype)]
    params = {key: True for key, on in (("transpose_a", transpose_a), ("transpose_b", transpose_b)) if on}
    step = op_step("matmul", (0, 1), 2, **params).replace(reads_variable=a_is_variable)
    steps = [step, op_step("sigmoid", (2,), 3)]
    return make_program(values, steps, args=(1,) if a_is_variable else (0, 1), outputs=(3, 2),
                        variables=(0,) if a_is_variable else ())


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("a_shape, b_shape, transpose_a, transpose_b, replacement", CASES)
def test_degenerate_matmuls_become_multiplies_and_sums(a_shape, b_shape, transpose_a, transpose_b, replacement,
                                                       dtype):
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=a_shape).astype(dtype), rng.normal(size=b_shape).astype(dtype)
    program = _matmul_program(a, b, transpose_a, transpose_b)
    before = snapshot(program)
    after = passes.simplify_matmuls(program)
    assert names(after) == replacement + ["sigmoid"]
    assert unchanged(program, before)
    assert after.steps[-2].output == 2 and after.steps[-1] is program.steps[1]  # the matmul's slot, same reader
    assert all(step.op is REGISTRY[step.name] and step.fn is step.op.forward for step in after.steps)
    for step in after.steps:  # each new slot's aval is what its step computes
        assert step.output is not None
        inputs = [np.zeros(after.avals[s][0], after.avals[s][1]) for s in step.inputs]
        out = step.fn(*inputs, **step.params)
        assert (out.shape, out.dtype) == after.avals[step.output]
    for step in after.steps:
        if step.name == "reduce_sum":
            assert step.params == {"axis": step.params["axis"], "keepdims": True}
            assert step.params["axis"] in ((0,), (1,))
    (sigmoid_got, got), (sigmoid_want, want) = evaluate(after, a, b), evaluate(program, a, b)
    k = a_shape[0] if transpose_a else a_shape[1]
    if k == 1:
        assert_same_bits(got, want)
        assert_same_bits(sigmoid_got, sigmoid_want)
    else:
        assert_sums_agree(got, want, evaluate(program, np.abs(a), np.abs(b))[1], dtype)
        np.testing.assert_allclose(sigmoid_got, sigmoid_want, rtol=TOLERANCE[dtype], atol=0)


def test_a_rewrite_reading_a_variable_says_so():
    a = np.arange(1.0, 6.0).reshape(1, 5)
    b = np.ones((1, 4))
    program = _matmul_program(a, b, True, False, a_is_variable=True)
    after = passes.simplify_matmuls(program)
    assert [(s.name, s.reads_variable) for s in after.steps] == [("reshape", True), ("multiply", False),
                                                                ("sigmoid", False)]
    for g, w in zip(evaluate(after, b), evaluate(program, b)):
        assert_same_bits(g, w)


@pytest.mark.parametrize("a, b", [
    (np.ones((3, 4), np.float32), np.ones((4, 2), np.float32)),    # M, K, N all > 1
    (np.ones((3, 1), np.int64), np.ones((1, 2), np.int64)),        # integers
    (np.ones((3, 1), np.float32), np.ones((1, 2), np.float64)),    # two dtypes
    (np.ones((2, 3, 1), np.float32), np.ones((2, 1, 2), np.float32)),  # batched
], ids=["large", "int", "mixed", "batched"])
def test_other_matmuls_stay(a, b):
    out = np.matmul(a, b)
    values = [a, b, ("computed", (out.shape, out.dtype))]
    program = make_program(values, [op_step("matmul", (0, 1), 2)], args=(0, 1), outputs=(2,))
    after = passes.simplify_matmuls(program)
    assert after.steps == program.steps and len(after.avals) == len(program.avals)


def test_the_regression_step_loses_its_matmuls(traced):
    program, inputs, dtype = traced
    cases = matmul_cases(program)
    # Forward: x @ w1 (K = 1), hidden @ w2 (N = 1); backward: the gradient of hidden (K = 1,
    # w2 transposed), of w2 (N = 1, hidden transposed) and of w1 (M = 1, x transposed).
    assert [shape for _, shape in cases] == [(64, 1, 3), (64, 3, 1), (64, 1, 3), (3, 64, 1), (1, 64, 3)]
    after = passes.simplify_matmuls(program)
    assert "matmul" not in names(after)
    assert names(after).count("multiply") == 5 and names(after).count("reduce_sum") == names(program).count(
        "reduce_sum") + 3
    assert len(after.steps) == len(program.steps) - 5 + 5 + 3 + 3  # 3 sums, 3 reshapes (w2 twice, one result)
    assert [s for s in after.steps if s.kind in ("update", "host")] == [
        s for s in program.steps if s.kind in ("update", "host")]
    first = after.steps[0]
    assert (first.name, first.inputs, first.output, first.reads_variable) == ("multiply", (0, 2), 3, True)
    assert "reduce_mean_backward" in names(after)

    # Each matmul alone, on the values its inputs have in the step: bit for bit where K = 1.
    matmuls = [step for step in program.steps if step.name == "matmul"]
    read = sorted({slot for step in matmuls for slot in step.inputs} - program.variables)
    computed_values = dict(zip(read, run(program, *inputs, outputs=read)[0]))
    for step, (_, (m, k, n)) in zip(matmuls, cases):
        alone = Program([step], program.avals, {}, (), step.inputs, (step.output,), {})
        rewritten = passes.simplify_matmuls(alone)
        assert "matmul" not in names(rewritten)
        values = [program.constants[s] if s in program.variables else computed_values[s] for s in step.inputs]
        (got,), (want,) = evaluate(rewritten, *values), evaluate(alone, *values)
        if k == 1:
            assert_same_bits(got, want)
        else:
            assert_sums_agree(got, want, evaluate(alone, *map(np.abs, values))[0], dtype)

    # The whole step: the loss and the updated Variables agree to rounding.
    (loss_before,), buffers_before = run(program, *inputs)
    (loss_after,), buffers_after = run(after, *inputs)
    np.testing.assert_allclose(loss_after, loss_before, rtol=TOLERANCE[dtype], atol=0)
    assert len(buffers_before) == 4
    for slot in buffers_before:
        np.testing.assert_allclose(buffers_after[slot], buffers_before[slot], rtol=TOLERANCE[dtype], atol=0)


# ---------------------------------------------------------------------------------------
# simplify_reductions

@pytest.mark.parametrize("name", ["reduce_sum", "reduce_mean"])
@pytest.mark.parametrize("shape, axis, keepdims, out_shape", [
    ((5, 1), (1,), False, (5,)),
    ((5, 1), (1,), True, (5, 1)),
    ((1, 1), None, False, ()),
    ((1, 4, 1), (0, 2), True, (1, 4, 1)),
    ((3, 4), (), False, (3, 4)),
])
def test_reductions_over_axes_of_one_element_become_reshapes(name, shape, axis, keepdims, out_shape):
    x = np.array([-0.0, 1.5, -2.25, 3e-39, np.inf, np.nan, 7.0, -1.0, 2.0, 0.5, 0.25, 1.0], np.float32)
    x = x[:int(np.prod(shape))].reshape(shape)
    program = make_program([x, computed(out_shape)], [op_step(name, (0,), 1, axis=axis, keepdims=keepdims)],
                           args=(0,), outputs=(1,))
    after = passes.simplify_reductions(program)
    assert names(after) == ["reshape"] and after.steps[0].output == 1 and after.steps[0].params == {"shape": out_shape}
    (got,), (want,) = evaluate(after, x), evaluate(program, x)
    # the sum starts from +0.0: the reshape keeps -0.0, the one difference
    assert np.signbit(got.flat[0]) and not np.signbit(want.flat[0])
    got = got + np.float32(0.0)
    assert_same_bits(got, want)


def test_a_total_of_a_reshape_reads_the_array_before_it():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 1)).astype(np.float32)
    values = [x, computed((300,)), computed(())]
    steps = [op_step("reshape", (0,), 1, shape=(300,)), op_step("reduce_mean", (1,), 2, axis=None, keepdims=False)]
    program = make_program(values, steps, args=(0,), outputs=(2,))
    after = passes.simplify_reductions(program)
    assert names(after) == ["reshape", "reduce_mean"] and after.steps[1].inputs == (0,)
    assert after.steps[1].params == {"axis": None, "keepdims": False}
    assert_same_bits(evaluate(after, x)[0], evaluate(program, x)[0])
    assert names(passes.eliminate_dead_code(after)) == ["reduce_mean"]


def test_reductions_that_are_not_degenerate_stay():
    x = np.ones((3, 4), np.float32)
    cases = [  # (values, steps): sums over a real axis, a partial sum of a reshape, keepdims, an integer sum
        ([x, computed((3,))], [op_step("reduce_sum", (0,), 1, axis=(1,), keepdims=False)]),
        ([x, computed((12,)), computed((1,))], [op_step("reshape", (0,), 1, shape=(12,)),
                                                op_step("reduce_sum", (1,), 2, axis=(0,), keepdims=True)]),
        ([x, computed((4, 3)), computed((1, 1))], [op_step("reshape", (0,), 1, shape=(4, 3)),
                                                   op_step("reduce_sum", (1,), 2, axis=None, keepdims=True)]),
        ([np.ones((3, 1), np.int32), computed((3,), np.int64)],
         [op_step("reduce_sum", (0,), 1, axis=(1,), keepdims=False)]),
    ]
    for values, steps in cases:
        program = make_program(values, steps, args=(0,), outputs=(steps[-1].output,))
        after = passes.simplify_reductions(program)
        assert after.steps == program.steps, names(program)


def test_a_total_after_an_effect_reads_the_reshape():
    x = np.ones((4, 1), np.float32)
    v = np.zeros((4, 1), np.float32)
    assign = Step("assign", "update", lambda variable, value: np.copyto(variable, value), None, (1, 0), None,
                  True, None)
    values = [x, v, computed((4,)), computed(())]
    steps = [op_step("reshape", (1,), 2, shape=(4,)), assign,
             op_step("reduce_sum", (2,), 3, axis=None, keepdims=False)]
    program = make_program(values, steps, args=(0,), outputs=(3,), variables={1})
    assert passes.simplify_reductions(program).steps == program.steps


def test_the_tutorials_loss_total_reads_the_squares():
    """The tutorials' loss, reduce_mean(reduce_sum(square(y - prediction), axis=1)) on a column
    of predictions, sums over one element: after the pass that is a reshape, and the mean
    reads the squares (so a fusing compiler puts it in their kernel); the same loss."""
    rng = np.random.default_rng(4)

    @gg.function(compile=False)
    def loss(y, prediction):
        return gg.reduce_mean(gg.reduce_sum(gg.square(y - prediction), axis=1))

    with gg.device("cpu"):  # NumPy values, which evaluate() mixes with NumPy inputs
        y, prediction = (gg.constant(rng.standard_normal((50, 1)).astype(np.float32)) for _ in range(2))
        program = program_of(loss, y, prediction)
    after = passes.eliminate_dead_code(passes.simplify_reductions(program))
    squares = next(step for step in program.steps if step.name == "square")
    assert names(after) == ["subtract", "square", "reduce_mean"]
    assert after.steps[-1].inputs == (squares.output,)
    assert_same_bits(evaluate(after, y.numpy(), prediction.numpy())[0],
                     evaluate(program, y.numpy(), prediction.numpy())[0])


# ---------------------------------------------------------------------------------------
# defer_shape_steps

def test_views_move_down_to_their_first_reader():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    values = [x, computed((3, 2)), computed((2, 3)), computed((6,)), computed((6,)), computed((2, 3))]
    steps = [op_step("reshape", (0,), 1, shape=(3, 2)),          # read by nothing until the end
             op_step("negative", (0,), 2),
             op_step("reshape", (2,), 3, shape=(6,)),            # a chain of two views, read by add
             op_step("reshape", (3,), 4, shape=(6,)),
             op_step("multiply", (2, 2), 5),
             op_step("add", (4, 4), 1 + 5)]
    values.append(computed((6,)))
    program = make_program(values, steps, args=(0,), outputs=(6, 1))
    after = passes.defer_shape_steps(program)
    assert [s.output for s in after.steps] == [2, 5, 3, 4, 6, 1]
    for got, want in zip(evaluate(after, x), evaluate(program, x)):
        assert_same_bits(got, want)


def test_views_do_not_cross_an_effect():
    x = np.ones((2, 2), np.float32)
    v = np.zeros((2, 2), np.float32)
    assign = Step("assign", "update", lambda variable, value: np.copyto(variable, value), None, (1, 0), None,
                  True, None)
    values = [x, v, computed((4,)), computed((2, 2)), computed((4,))]
    steps = [op_step("reshape", (1,), 2, shape=(4,)), op_step("negative", (0,), 3), assign,
             op_step("negative", (2,), 4)]
    program = make_program(values, steps, args=(0,), outputs=(4,), variables={1})
    after = passes.defer_shape_steps(program)
    assert [s.name for s in after.steps] == ["negative", "reshape", "assign", "negative"]


# ---------------------------------------------------------------------------------------
# The pipeline

def test_the_default_pipeline_runs_the_passes_in_order(traced):
    program, inputs, dtype = traced
    assert passes.PASSES[0] is passes.fold_constants and passes.PASSES[-2:] == (passes.eliminate_dead_code,
                                                                                passes.defer_shape_steps)
    assert passes.simplify_matmuls in passes.PASSES and passes.simplify_reductions in passes.PASSES
    before = snapshot(program)
    after = passes.default_pipeline(program)
    assert unchanged(program, before)
    assert "matmul" not in names(after) and "reduce_mean_backward" not in names(after)
    by_hand = program
    for compiler_pass in passes.PASSES:
        by_hand = compiler_pass(by_hand)
    assert names(after) == names(by_hand) and after.output_slots == program.output_slots
    assert after.variables == program.variables and after.variables <= set(after.constants)
    read = {slot for step in after.steps for slot in step.inputs} | set(after.output_slots)
    assert set(after.constants) - after.variables <= read  # no constant left unread
    (loss_before,), buffers_before = run(program, *inputs)
    (loss_after,), buffers_after = run(after, *inputs)
    np.testing.assert_allclose(loss_after, loss_before, rtol=TOLERANCE[dtype], atol=0)
    for slot in buffers_before:
        np.testing.assert_allclose(buffers_after[slot], buffers_before[slot], rtol=TOLERANCE[dtype], atol=0)


def test_the_pipeline_folds_a_matmul_of_constants_exactly():
    a = np.linspace(0, 1, 12, dtype=np.float32).reshape(4, 3)
    b = np.linspace(1, 2, 3, dtype=np.float32).reshape(3, 1)
    values = [a, b, computed((4, 1)), np.ones((4, 1), np.float32), computed((4, 1))]
    program = make_program(values, [op_step("matmul", (0, 1), 2), op_step("add", (2, 3), 4)], args=(3,),
                           outputs=(4,))
    after = passes.default_pipeline(program)
    assert names(after) == ["add"]
    assert_same_bits(after.constants[2], a.dot(b))
    assert 0 not in after.constants and 1 not in after.constants
    x = np.full((4, 1), 0.5, np.float32)
    assert_same_bits(evaluate(after, x)[0], evaluate(program, x)[0])
