"""What recorded history keeps alive: tapes free their records once answered, and
tensors computed outside a tape keep nothing."""
import gc
import types
import weakref

import numpy as np
import pytest

import gpugrad as gg


def _held_by(tape):
    """ids of the Tensors and Variables reachable from the tape object through its own containers
    (not through classes, modules or functions, which reach everything)."""
    found, seen = [], set()
    stack = [tape]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if obj is not tape and isinstance(obj, (gg.Tensor, gg.Variable)):
            found.append(id(obj))
            continue
        for referent in gc.get_referents(obj):
            if isinstance(referent, (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)):
                continue
            stack.append(referent)
    return found


def _record(tape_kwargs=None, watch_constant=True):
    """Run a small recorded computation; returns (tape, x, intermediates, y)."""
    x = gg.constant([1.0, 2.0, 3.0]) if watch_constant else gg.Variable([1.0, 2.0, 3.0])
    with gg.GradientTape(**(tape_kwargs or {})) as tape:
        if watch_constant:
            tape.watch(x)
        a = x * x
        b = gg.exp(a)
        c = gg.sin(b) + a
        y = gg.reduce_sum(c)
    return tape, x, [a, b, c], y


@pytest.mark.parametrize("watch_constant", [True, False], ids=["watched-constant", "variable"])
@pytest.mark.parametrize("call", [
    lambda tape, y, x: tape.gradient(y, x),
    lambda tape, y, x: tape.jacobian(y, x),
], ids=["gradient", "jacobian"])
def test_non_persistent_tape_drops_everything_after_answering(watch_constant, call):
    tape, x, intermediates, y = _record(watch_constant=watch_constant)
    assert _held_by(tape) == [id(x)]  # only the watched source, no recorded result
    refs = [weakref.ref(t) for t in intermediates + [y]]
    grad = call(tape, y, x)
    assert grad.shape == (3,)
    assert _held_by(tape) == []
    del intermediates, y
    assert [r() for r in refs] == [None] * len(refs)  # freed by reference counting, no gc needed
    assert _held_by(tape) == []


def test_gradient_results_hold_no_history():
    tape, x, intermediates, y = _record()
    grad = tape.gradient(y, x)
    assert grad._node is None
    refs = [weakref.ref(t) for t in intermediates + [y]]
    del intermediates, y
    assert all(r() is None for r in refs)
    expected = 2 * x.numpy() * (np.cos(np.exp(x.numpy() ** 2)) * np.exp(x.numpy() ** 2) + 1)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-5)


def test_kept_result_keeps_its_history_after_the_tape_answered():
    tape, x, intermediates, y = _record()
    a_ref = weakref.ref(intermediates[0])
    tape.gradient(y, x)
    del intermediates
    assert a_ref() is not None  # y still holds its own history
    assert _held_by(tape) == []
    del y
    assert a_ref() is None


def test_persistent_tape_results_keep_history_only_while_held():
    tape, x, intermediates, y = _record({"persistent": True})
    refs = [weakref.ref(t) for t in intermediates]
    del intermediates
    assert all(r() is not None for r in refs)  # y's history
    first = tape.gradient(y, x)
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), first.numpy())  # still answerable
    assert _held_by(tape) == [id(x)]  # the watched source only, no recorded result
    del y
    assert all(r() is None for r in refs)  # although the tape is still alive


def test_tensors_computed_outside_a_tape_have_no_history():
    x = gg.constant([1.0, 2.0])
    v = gg.Variable([3.0, 4.0])
    results = [x * 2.0, gg.exp(x), x + v, gg.reduce_sum(v * v), v[0], gg.reshape(gg.sin(x), [1, 2]) @ gg.reshape(x, [2, 1])]
    assert all(r._node is None for r in results)


def test_tensors_computed_outside_a_tape_do_not_keep_inputs_alive():
    x = gg.constant([1.0, 2.0])
    x_ref = weakref.ref(x)
    mid = gg.exp(x)
    mid_ref = weakref.ref(mid)
    y = gg.reduce_sum(mid * x)
    del x, mid
    assert x_ref() is None and mid_ref() is None
    assert float(y) == pytest.approx(np.e + 2 * np.e ** 2, rel=1e-6)


def test_unwatched_ops_inside_a_tape_keep_nothing():
    k = gg.constant([1.0, 2.0])
    k_ref = weakref.ref(k)
    with gg.GradientTape():
        y = gg.square(k) * 3.0
    assert y._node is None
    del k
    assert k_ref() is None


def test_recorded_result_holds_inputs_only_through_its_node():
    x = gg.Variable(2.0)
    with gg.GradientTape() as tape:
        a = x * 3.0
        y = a * a
    assert y._node is not None and a._node is not None
    a_ref = weakref.ref(a)
    del a
    assert a_ref() is not None  # y's history
    assert float(tape.gradient(y, x)) == 36.0
    del y
    assert a_ref() is None
