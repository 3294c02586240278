"""What a GradientTape records: which tapes see which ops, automatic and explicit watching
(trainable and non-trainable Variables, constants, nested structures) and the order of
watched_variables(); persistent and non-persistent tapes and whether they keep recording
after a gradient; stop_recording and reset; and the version check that makes a gradient
raise when a Variable whose value it needs was assigned after it was recorded."""
import numpy as np
import pytest

import gpugrad as gg
from helpers import NON_PERSISTENT, values


# ---------------------------------------------------------------------------------------
# Recording and watching

def test_each_tape_records_what_it_watches():
    x, y = gg.constant(2.0), gg.constant(3.0)
    with gg.GradientTape(persistent=True) as t1, gg.GradientTape(persistent=True) as t2:
        t1.watch(x)
        t2.watch(y)
        a = x * x      # t1 only
        b = y * y      # t2 only
        c = a * y      # t1 (a is on its history) and t2 (y is watched)
    assert values(t1.gradient(c, [x, y])) == [12.0, None]
    assert values(t2.gradient(c, [x, y])) == [None, 4.0]
    assert values(t1.gradient(b, [x, y])) == [None, None]
    assert values(t2.gradient(b, [x, y])) == [None, 6.0]


def test_ops_recorded_by_one_tape_are_not_recorded_by_another():
    x = gg.Variable(2.0)
    with gg.GradientTape(persistent=True) as outer:
        a = x * x
        with gg.GradientTape(persistent=True) as inner:
            b = a * 3.0  # a is on outer's history only, and inner watches nothing here
            c = b * b
    assert inner.gradient(c, b) is None
    assert inner.gradient(c, a) is None
    assert float(outer.gradient(c, b)) == 24.0
    assert float(outer.gradient(c, x)) == 288.0


def test_tape_started_later_does_not_see_earlier_ops():
    x = gg.Variable(2.0)
    with gg.GradientTape(persistent=True) as outer:
        a = x * x
        with gg.GradientTape() as inner:
            b = a * 3.0
    assert inner.gradient(b, x) is None  # a was not recorded by inner
    assert float(outer.gradient(b, x)) == 12.0


def test_auto_watch_is_per_tape():
    x = gg.Variable(2.0)
    with gg.GradientTape() as outer:
        with gg.GradientTape(watch_accessed_variables=False) as inner:
            y = x * x * x
    assert inner.watched_variables() == () and outer.watched_variables() == (x,)
    assert inner.gradient(y, x) is None
    assert float(outer.gradient(y, x)) == 12.0


def test_trainable_variables_are_watched_automatically():
    x = gg.Variable(3.0)
    with gg.GradientTape() as tape:
        y = gg.square(x)
    assert float(y) == 9.0
    assert float(tape.gradient(y, x)) == 6.0


def test_watch_accessed_variables_false():
    x = gg.Variable(3.0)
    with gg.GradientTape(watch_accessed_variables=False) as tape:
        y = gg.square(x)
    assert tape.gradient(y, x) is None
    assert tape.watched_variables() == ()


def test_non_trainable_variables_are_not_watched():
    frozen = gg.Variable(3.0, trainable=False)
    free = gg.Variable(2.0)
    with gg.GradientTape(persistent=True) as tape:
        y = frozen * free
    assert values(tape.gradient(y, [frozen, free])) == [None, 3.0]
    assert tape.watched_variables() == (free,)
    with gg.GradientTape() as tape:
        tape.watch(frozen)
        y = frozen * free
    assert values(tape.gradient(y, [frozen, free])) == [2.0, 3.0]


def test_constants_are_not_watched():
    x = gg.constant(3.0)
    with gg.GradientTape() as tape:
        y = x * x
    assert tape.gradient(y, x) is None
    assert y._node is None  # nothing was recorded


def test_watch_nested_structures():
    a, b, c = gg.constant(1.0), gg.constant(2.0), gg.constant(3.0)
    with gg.GradientTape() as tape:
        tape.watch([a, (b, [c])])
        y = a * b * c
    assert values(tape.gradient(y, [a, b, c])) == [6.0, 3.0, 2.0]


def test_watch_rejects_non_tensors():
    with gg.GradientTape() as tape:
        with pytest.raises(TypeError):
            tape.watch(3.0)


def test_watched_variables_in_creation_order_as_tensorflow():
    a, b, c, d = (gg.Variable(float(i), name=f"ordered_{i}") for i in range(4))
    with gg.GradientTape() as tape:
        y = b * 2.0
        y = y + a
        tape.watch(d)
        y = y * b + c + d
    assert [v.name for v in tape.watched_variables()] == ["ordered_0", "ordered_1", "ordered_2", "ordered_3"]
    with gg.GradientTape() as tape:
        y = c * b + a  # TensorFlow lists [a, b, c] here
    assert [v.name for v in tape.watched_variables()] == ["ordered_0", "ordered_1", "ordered_2"]


# ---------------------------------------------------------------------------------------
# Persistence

@pytest.mark.parametrize("second_call", [
    lambda tape, y, x: tape.gradient(y, x),
    lambda tape, y, x: tape.jacobian(y, x),
    lambda tape, y, x: tape.batch_jacobian(gg.reshape(y, [1, 1]), gg.reshape(x, [1, 1])),
], ids=["gradient", "jacobian", "batch_jacobian"])
@pytest.mark.parametrize("first_call", [
    lambda tape, y, x: tape.gradient(y, x),
    lambda tape, y, x: tape.jacobian(y, x),
], ids=["gradient", "jacobian"])
def test_non_persistent_tape_answers_once(first_call, second_call):
    x = gg.Variable(2.0)
    with gg.GradientTape() as tape:
        y = x * x
    assert float(first_call(tape, y, x)) == 4.0
    with pytest.raises(RuntimeError) as info:
        second_call(tape, y, x)
    assert str(info.value) == NON_PERSISTENT


def test_tutorial_non_persistent_message():
    x1, x2 = gg.Variable(2.0), gg.Variable(3.0)
    with gg.GradientTape() as tape:
        z = (x1 + 5) * (x2 ** 2)
    assert float(tape.gradient(z, x1)) == 9.0
    with pytest.raises(RuntimeError) as info:
        tape.gradient(z, x2)
    assert str(info.value) == NON_PERSISTENT


def test_persistent_tape_answers_many_times():
    x = gg.Variable(3.0)
    with gg.GradientTape(persistent=True) as tape:
        y = gg.square(x)
        z = pow(x, 3)
    for _ in range(3):
        assert float(tape.gradient(y, x)) == 6.0
        assert float(tape.gradient(z, x)) == 27.0
    assert tape.jacobian(y, x).numpy().tolist() == 6.0


def test_gradient_inside_non_persistent_context_stops_recording():
    x = gg.Variable(3.0)
    with gg.GradientTape() as tape:
        y = x * x
        g = tape.gradient(y, x)
        after = g * x  # would be recorded if the tape still recorded
        assert after._node is None
        assert (x * x)._node is None
    assert float(g) == 6.0


def test_gradient_inside_persistent_context_keeps_recording():
    x = gg.Variable(3.0)
    with gg.GradientTape(persistent=True) as tape:
        y = x * x * x
        g = tape.gradient(y, x)  # 3x^2, itself recorded
    assert float(g) == 27.0
    assert float(tape.gradient(g, x)) == 18.0


# ---------------------------------------------------------------------------------------
# stop_recording, reset

def test_stop_recording():
    x = gg.Variable(2.0)
    with gg.GradientTape() as tape:
        y = x * x
        with tape.stop_recording():
            z = x * x * x
        assert z._node is None
        w = y + z
    assert float(w) == 12.0
    assert float(tape.gradient(w, x)) == 4.0  # only y's path


def test_stop_recording_leaves_other_tapes_recording():
    x = gg.Variable(2.0)
    with gg.GradientTape() as outer:
        with gg.GradientTape() as inner:
            with inner.stop_recording():
                z = x * x * x
    assert inner.gradient(z, x) is None
    assert float(outer.gradient(z, x)) == 12.0


def test_reset():
    x = gg.Variable(2.0)
    c = gg.constant(5.0)
    with gg.GradientTape(persistent=True) as tape:
        tape.watch(c)
        y = x * x * c
        tape.reset()
        assert tape.watched_variables() == ()
        z = x * x * x * c
    assert tape.gradient(y, x) is None
    assert float(tape.gradient(z, x)) == 60.0
    assert tape.gradient(z, c) is None  # the watch on c was reset too
    assert tape.watched_variables() == (x,)


def test_reset_makes_a_used_tape_answer_again():
    x = gg.Variable(2.0)
    with gg.GradientTape() as tape:
        y = x * x
        tape.gradient(y, x)
        tape.reset()
        z = x * x * x
    assert float(tape.gradient(z, x)) == 12.0


# ---------------------------------------------------------------------------------------
# Version counters

@pytest.mark.parametrize("change", [
    lambda v: v.assign(5.0), lambda v: v.assign_add(1.0), lambda v: v.assign_sub(1.0),
], ids=["assign", "assign_add", "assign_sub"])
@pytest.mark.parametrize("use", [
    lambda v: v * v, lambda v: gg.square(v), lambda v: gg.sin(v) * 2.0, lambda v: gg.exp(v * v),
], ids=["multiply", "square", "sin", "exp"])
def test_assigned_variable_makes_gradient_raise(change, use):
    v = gg.Variable(2.0, name="changed_weight")
    with gg.GradientTape() as tape:
        y = use(v)
    change(v)
    with pytest.raises(RuntimeError, match="changed_weight"):
        tape.gradient(y, v)


@pytest.mark.parametrize("use, expected", [
    (lambda v: v + 1.0, 1.0), (lambda v: 3.0 - v, -1.0), (lambda v: gg.reduce_sum(v), 1.0),
    (lambda v: -v, -1.0), (lambda v: v.value() * v.value(), 4.0),
], ids=["add", "subtract", "reduce_sum", "negative", "snapshot"])
def test_assignment_is_harmless_when_the_value_is_not_needed(use, expected):
    v = gg.Variable(2.0)
    with gg.GradientTape() as tape:
        y = use(v)
    v.assign(100.0)
    assert float(tape.gradient(y, v)) == expected


def test_assignment_after_gradient_is_fine_and_never_recorded():
    v = gg.Variable(2.0)
    with gg.GradientTape(persistent=True) as tape:
        y = v * v
        g = tape.gradient(y, v)
        v.assign_sub(0.1 * g)  # an assignment inside the context is not recorded
    assert float(g) == 4.0
    assert v._node is None
    np.testing.assert_allclose(v.numpy(), 1.6, rtol=1e-6)
