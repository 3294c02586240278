"""GradientTape, gradients, stop_gradient, custom gradients, numerical checks, the public
primitive entry point, and every number the TensorFlow 2 tutorials this project grew from
quote for them."""
import re

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import dispatch as _dispatch

NON_PERSISTENT = "A non-persistent GradientTape can only be used to compute one set of gradients (or jacobians)"


def values(grads):
    """Gradients (a Tensor, None, or a list of them) as Python numbers/lists, None kept."""
    if isinstance(grads, (list, tuple)):
        return [values(g) for g in grads]
    return None if grads is None else grads.numpy().tolist()


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
# tape.gradient: targets, sources, unconnected gradients

def test_unwatched_unconnected_and_integer_sources_get_none():
    x = gg.Variable(2.0)
    unconnected = gg.Variable(5.0)
    unwatched = gg.constant(1.0)
    integer = gg.Variable(3)
    with gg.GradientTape() as tape:
        tape.watch(unwatched)
        y = x * x + gg.cast(integer, "float32")
        z = unconnected * 2.0  # recorded, but not on y's history
    del z
    grads = tape.gradient(y, [x, unconnected, gg.constant(7.0), integer])
    assert values(grads) == [4.0, None, None, None]


@pytest.mark.parametrize("mode", ["zero", gg.UnconnectedGradients.ZERO])
def test_unconnected_gradients_zero(mode):
    x = gg.Variable(2.0)
    y_source = gg.Variable([[1.0, 2.0, 3.0]])
    integer = gg.Variable([1, 2])
    with gg.GradientTape() as tape:
        y = x * x
    grads = tape.gradient(y, [x, y_source, gg.constant([1.0, 2.0]), integer], unconnected_gradients=mode)
    assert float(grads[0]) == 4.0
    assert grads[1].shape == (1, 3) and grads[1].dtype == np.float32
    assert grads[1].numpy().tolist() == [[0.0, 0.0, 0.0]]
    assert grads[2].numpy().tolist() == [0.0, 0.0]
    assert grads[3].shape == (2,) and grads[3].numpy().tolist() == [0, 0]


@pytest.mark.parametrize("mode", ["none", gg.UnconnectedGradients.NONE])
def test_unconnected_gradients_none_spelled_both_ways(mode):
    x, w = gg.Variable(2.0), gg.Variable(1.0)
    with gg.GradientTape() as tape:
        y = x * x
    assert values(tape.gradient(y, [x, w], unconnected_gradients=mode)) == [4.0, None]


def test_unknown_unconnected_gradients_is_value_error():
    x = gg.Variable(2.0)
    with gg.GradientTape() as tape:
        y = x * x
    with pytest.raises(ValueError, match="bogus"):
        tape.gradient(y, x, unconnected_gradients="bogus")


def test_tutorial_list_of_targets_is_summed():
    x = gg.Variable(5.0)
    with gg.GradientTape() as tape:
        z1 = 3 * x
        z2 = x ** 2
    assert float(tape.gradient([z1, z2], x)) == 13.0


def test_nested_list_targets_are_summed():
    x = gg.Variable(2.0)
    with gg.GradientTape() as tape:
        targets = [x * 1.0, [x * x, (x * x * x,)]]
    assert float(tape.gradient(targets, x)) == 1.0 + 4.0 + 12.0


def test_non_scalar_target_is_summed():
    x = gg.Variable([1.0, 2.0, 3.0])
    with gg.GradientTape() as tape:
        y = x * x  # shape (3,)
    assert values(tape.gradient(y, x)) == [2.0, 4.0, 6.0]


def test_output_gradients_weight_the_targets():
    x = gg.Variable([1.0, 2.0, 3.0])
    with gg.GradientTape(persistent=True) as tape:
        y = x * x
        z = 3.0 * x
    assert values(tape.gradient(y, x, output_gradients=[1.0, 0.0, -1.0])) == [2.0, 0.0, -6.0]
    assert values(tape.gradient(y, x, output_gradients=gg.constant([2.0, 2.0, 2.0]))) == [4.0, 8.0, 12.0]
    weighted = tape.gradient([y, z], x, output_gradients=[[1.0, 1.0, 1.0], [0.0, 10.0, 0.0]])
    assert values(weighted) == [2.0, 34.0, 6.0]
    with pytest.raises(ValueError):
        tape.gradient(y, x, output_gradients=[1.0, 2.0])


def test_sources_keep_their_structure():
    a, b, c = gg.Variable(1.0), gg.Variable(2.0), gg.Variable(3.0)
    unused = gg.Variable(0.0)
    with gg.GradientTape(persistent=True) as tape:
        y = a * b * c
    as_dict = tape.gradient(y, {"first": a, "rest": [b, (c, unused)]})
    assert type(as_dict) is dict and list(as_dict) == ["first", "rest"]
    assert type(as_dict["rest"]) is list and type(as_dict["rest"][1]) is tuple
    assert values(as_dict["first"]) == 6.0
    assert values(as_dict["rest"]) == [3.0, [2.0, None]]
    as_tuple = tape.gradient(y, (a, b))
    assert type(as_tuple) is tuple and values(as_tuple) == [6.0, 3.0]
    single = tape.gradient(y, c)
    assert type(single) is gg.Tensor and float(single) == 2.0


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


@pytest.mark.parametrize("source_dtype, other_dtype", [
    ("float32", "float64"), ("float64", "float32"), ("float16", "float32"), ("float32", "float32"),
])
def test_gradient_has_source_dtype_and_shape(source_dtype, other_dtype):
    x = gg.Variable([[1.0, 2.0]], dtype=source_dtype)
    w = gg.constant([[3.0], [4.0]], dtype=other_dtype)
    with gg.GradientTape() as tape:
        y = gg.cast(x, other_dtype) * w  # broadcasts to (2, 2)
    g = tape.gradient(y, x)
    assert g.dtype == np.dtype(source_dtype)
    assert g.shape == (1, 2)
    assert g.numpy().tolist() == [[7.0, 7.0]]


def test_float32_source_with_float64_values():
    x = gg.Variable(2.0)
    with gg.GradientTape() as tape:
        y = x * gg.constant(3.0, dtype="float64")
    assert y.dtype == np.float64
    g = tape.gradient(y, x)
    assert g.dtype == np.float32 and float(g) == 3.0


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


# ---------------------------------------------------------------------------------------
# Nested tapes (second derivatives, as in the tutorials)

def _g(x1, x2):
    return (x1 + 5) * (x2 ** 2)


def test_tutorial_second_derivatives_of_g():
    x1, x2 = gg.Variable(2.0), gg.Variable(3.0)
    with gg.GradientTape(persistent=True) as outer_tape:
        with gg.GradientTape(persistent=True) as inner_tape:
            z = _g(x1, x2)
        inner_grads = inner_tape.gradient(z, [x1, x2])
    outer_grads = [outer_tape.gradient(inner_grad, [x1, x2]) for inner_grad in inner_grads]
    assert values(inner_grads) == [9.0, 42.0]
    assert values(outer_grads) == [[None, 6.0], [6.0, 14.0]]
    assert all(g.dtype == np.float32 for g in (outer_grads[0][1], outer_grads[1][0], outer_grads[1][1]))


def test_tutorial_second_derivatives_of_f():
    x, y = gg.Variable(3.0), gg.Variable(4.0)
    with gg.GradientTape(persistent=True) as tape2:
        with gg.GradientTape(persistent=True) as tape1:
            f = gg.square(x) + 2 * gg.square(y) + 1
            first_grads = tape1.gradient(f, [x, y])
        second_grads = [tape2.gradient(first_grads, [x, y])]
    assert float(f) == 42.0
    assert values(first_grads) == [6.0, 16.0]
    assert values(second_grads) == [[2.0, 4.0]]


def test_third_derivative_through_three_tapes():
    x = gg.Variable(2.0)
    with gg.GradientTape() as t3:
        with gg.GradientTape() as t2:
            with gg.GradientTape() as t1:
                y = x ** 4
            d1 = t1.gradient(y, x)
        d2 = t2.gradient(d1, x)
    d3 = t3.gradient(d2, x)
    assert (float(d1), float(d2), float(d3)) == (32.0, 48.0, 48.0)


def test_gradient_of_unrecorded_inner_gradient_is_none():
    x = gg.Variable(2.0)
    with gg.GradientTape() as outer:
        with gg.GradientTape() as inner:
            y = 3.0 * x  # derivative 3 does not depend on x
        d1 = inner.gradient(y, x)
    assert float(d1) == 3.0
    assert outer.gradient(d1, x) is None


# ---------------------------------------------------------------------------------------
# jacobian and batch_jacobian

def test_jacobian_elementwise(rng):
    x_value = rng.normal(size=3)
    x = gg.Variable(x_value, dtype="float64")
    with gg.GradientTape() as tape:
        y = x ** 2
    jac = tape.jacobian(y, x)
    assert jac.shape == (3, 3) and jac.dtype == np.float64
    np.testing.assert_allclose(jac.numpy(), np.diag(2 * x_value))


def test_jacobian_matmul_shapes_and_values(rng):
    w_value, x_value = rng.normal(size=(2, 3)), rng.normal(size=(3, 1))
    w = gg.Variable(w_value, dtype="float64")
    x = gg.constant(x_value)
    with gg.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = w @ x  # (2, 1)
    jac_w, jac_x = tape.jacobian(y, [w, x])
    assert jac_w.shape == (2, 1, 2, 3) and jac_x.shape == (2, 1, 3, 1)
    expected_w = np.einsum("ik,lj->ijkl", np.eye(2), x_value)  # d y[i,j] / d w[k,l] = [i==k] x[l,j]
    np.testing.assert_allclose(jac_w.numpy(), expected_w)
    np.testing.assert_allclose(jac_x.numpy()[:, 0, :, 0], w_value)
    as_dict = tape.jacobian(y, {"w": w})
    assert list(as_dict) == ["w"] and as_dict["w"].shape == (2, 1, 2, 3)


def test_jacobian_scalar_target_and_scalar_source():
    x = gg.Variable([1.0, 2.0])
    s = gg.Variable(3.0)
    with gg.GradientTape(persistent=True) as tape:
        total = gg.reduce_sum(x * x) * s
        vector = x * s
    assert values(tape.jacobian(total, x)) == [6.0, 12.0]
    assert tape.jacobian(vector, s).shape == (2,)
    assert values(tape.jacobian(vector, s)) == [1.0, 2.0]


def test_jacobian_unconnected():
    x, other = gg.Variable([1.0, 2.0]), gg.Variable([[1.0, 2.0, 3.0]])
    with gg.GradientTape(persistent=True) as tape:
        y = x * 2.0
    assert tape.jacobian(y, other) is None
    zeros = tape.jacobian(y, other, unconnected_gradients="zero")
    assert zeros.shape == (2, 1, 3) and not zeros.numpy().any()


def test_batch_jacobian_elementwise(rng):
    x_value = rng.normal(size=(4, 3))
    scale = np.array([1.0, 2.0, 3.0])
    x = gg.constant(x_value)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = x ** 2 * scale
    bj = tape.batch_jacobian(y, x)
    assert bj.shape == (4, 3, 3) and bj.dtype == np.float64
    expected = np.stack([np.diag(2 * row * scale) for row in x_value])
    np.testing.assert_allclose(bj.numpy(), expected)


def test_batch_jacobian_matmul(rng):
    w_value = rng.normal(size=(3, 2))
    w = gg.constant(w_value)
    x = gg.constant(rng.normal(size=(5, 3)))
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.tanh(x @ w)  # (5, 2)
    bj = tape.batch_jacobian(y, x)
    assert bj.shape == (5, 2, 3)
    derivative = 1 - np.tanh(x.numpy() @ w_value) ** 2
    np.testing.assert_allclose(bj.numpy(), derivative[:, :, None] * w_value.T[None], rtol=1e-12)


def test_batch_jacobian_unconnected():
    x, other = gg.Variable([[1.0, 2.0]]), gg.Variable([[1.0, 2.0, 3.0]])
    with gg.GradientTape(persistent=True) as tape:
        y = x * 2.0
    assert tape.batch_jacobian(y, other) is None
    zeros = tape.batch_jacobian(y, other, unconnected_gradients="zero")
    assert zeros.shape == (1, 2, 3) and not zeros.numpy().any()


def test_batch_jacobian_needs_a_shared_batch_axis():
    x = gg.Variable([[1.0, 2.0]])
    with gg.GradientTape() as tape:
        y = gg.reshape(x, [2, 1])
    with pytest.raises(ValueError):
        tape.batch_jacobian(y, x)


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
# gg.gradients and gg.stop_gradient

def _tutorial_gradients_targets():
    w1, w2, w3, w4 = (gg.Variable(gg.random.normal([3], seed=i)) for i in range(4))
    with gg.GradientTape() as tape:
        z1 = 3 * w1 + 2 * w2 + w3
        z2 = -1 * w3 + w4
    return tape, [z1, z2], [w1, w2, w3, w4]


def test_tutorial_gradients_with_grad_ys():
    _, ys, ws = _tutorial_gradients_targets()
    grads = gg.gradients(ys, ws, grad_ys=[[-2.0, -3.0, -4.0], [-2.0, -3.0, -4.0]])
    assert type(grads) is list and len(grads) == 4
    assert values(grads) == [[-6.0, -9.0, -12.0], [-4.0, -6.0, -8.0], [0.0, 0.0, 0.0], [-2.0, -3.0, -4.0]]
    assert all(g.dtype == np.float32 for g in grads)


def test_tutorial_gradients_unweighted():
    _, ys, ws = _tutorial_gradients_targets()
    grads = gg.gradients(ys, ws)
    assert values(grads) == [[3.0, 3.0, 3.0], [2.0, 2.0, 2.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]


def test_gradients_does_not_consume_the_tape():
    tape, ys, ws = _tutorial_gradients_targets()
    gg.gradients(ys, ws)
    gg.gradients(ys, ws)
    assert values(tape.gradient(ys[0], ws[0])) == [3.0, 3.0, 3.0]
    with pytest.raises(RuntimeError):
        tape.gradient(ys[0], ws[0])


@pytest.mark.parametrize("stop, expected", [(None, [3.0, 1.0]), ("both", [1.0, 1.0])])
def test_tutorial_stop_gradients(stop, expected):
    a = gg.constant(0.0)
    with gg.GradientTape() as tape:
        tape.watch(a)
        b = 2 * a
        c = a + b
    stop_gradients = [a, b] if stop else None
    assert values(gg.gradients(c, [a, b], stop_gradients=stop_gradients)) == expected


def test_tutorial_stop_gradient_equivalent():
    a = gg.stop_gradient(gg.constant(0.0))
    with gg.GradientTape() as tape:
        tape.watch(a)
        b = gg.stop_gradient(2 * a)
        c = a + b
    assert values(gg.gradients(c, [a, b])) == [1.0, 1.0]


def test_gradients_stop_at_one_intermediate():
    x = gg.Variable(2.0)
    with gg.GradientTape():
        y = x * x
        z = y * x  # x^3, but with y held constant: dz/dx = y = 4
    assert values(gg.gradients(z, [x])) == [12.0]
    assert values(gg.gradients(z, [x], stop_gradients=[y])) == [4.0]


def test_gradients_with_intermediates_and_constants_as_xs():
    x = gg.Variable(3.0)
    k = gg.constant(5.0)
    with gg.GradientTape():
        y = x * x
        z = k * y
    assert values(gg.gradients(z, [x, y, k])) == [30.0, 5.0, 9.0]
    assert values(gg.gradients([z, y], [x, y])) == [36.0, 6.0]


def test_gradients_unconnected_and_needs_recorded_history():
    x, other = gg.Variable(3.0), gg.Variable(1.0)
    with gg.GradientTape():
        y = x * x
    assert values(gg.gradients(y, [x, other])) == [6.0, None]
    assert values(gg.gradients(y, [x, other], unconnected_gradients="zero")) == [6.0, 0.0]
    outside = x * x  # no tape recorded it
    assert values(gg.gradients(outside, [x])) == [None]


def test_stop_gradient():
    x = gg.Variable(3.0)
    with gg.GradientTape(persistent=True) as tape:
        stopped = gg.stop_gradient(x)
        y = x * stopped
        z = gg.stop_gradient(x * x)
    assert float(stopped) == 3.0 and float(z) == 9.0
    assert float(tape.gradient(y, x)) == 3.0
    assert tape.gradient(stopped, x) is None
    assert tape.gradient(z, x) is None


# ---------------------------------------------------------------------------------------
# Custom gradients

@gg.custom_gradient
def sign_straight_through(x):
    def grad_fn(upstream):
        return upstream * gg.cast(gg.abs(x) <= 1, x.dtype)
    return gg.sign(x), grad_fn


def test_custom_gradient_straight_through_sign():
    x = gg.Variable([-2.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    with gg.GradientTape() as tape:
        y = sign_straight_through(x)
        loss = gg.reduce_sum(y * gg.constant([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    assert y.numpy().tolist() == [-1.0, -1.0, 0.0, 1.0, 1.0, 1.0]
    assert values(tape.gradient(loss, x)) == [0.0, 2.0, 3.0, 4.0, 5.0, 0.0]


def test_custom_gradient_outside_a_tape_is_just_the_function():
    y = sign_straight_through(gg.constant([-3.0, 2.0]))
    assert type(y) is gg.Tensor and y.numpy().tolist() == [-1.0, 1.0]
    assert y._node is None


@gg.custom_gradient
def cube_with_custom_gradient(x):
    def grad_fn(upstream):
        return upstream * 3.0 * x * x
    return x * x * x, grad_fn


def test_custom_gradient_second_derivative():
    x = gg.Variable(3.0)
    with gg.GradientTape() as outer:
        with gg.GradientTape() as inner:
            y = cube_with_custom_gradient(x)
        first = inner.gradient(y, x)
    second = outer.gradient(first, x)
    assert (float(y), float(first), float(second)) == (27.0, 27.0, 18.0)


def test_custom_gradient_several_inputs_with_none():
    @gg.custom_gradient
    def scaled(x, y):
        def grad_fn(upstream):
            return upstream * 10.0, None
        return x * y, grad_fn

    a, b = gg.Variable(2.0), gg.Variable(3.0)
    with gg.GradientTape() as tape:
        out = scaled(a, b)
    assert float(out) == 6.0
    assert values(tape.gradient(out, [a, b])) == [10.0, None]


def test_custom_gradient_reading_a_variable():
    w = gg.Variable(2.0, name="custom_reads_me")
    seen = []

    @gg.custom_gradient
    def scale(x):
        def grad_fn(upstream, variables=None):
            seen.append(variables)
            return upstream * w, [upstream * x * 10.0]
        return x * w, grad_fn

    x = gg.constant(3.0)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = scale(x)
    assert float(y) == 6.0
    assert values(tape.gradient(y, [x, w])) == [2.0, 30.0]
    assert len(seen) == 1 and len(seen[0]) == 1 and seen[0][0] is w


def test_custom_gradient_reading_a_variable_needs_variables_argument():
    w = gg.Variable(2.0, name="undeclared_read")

    @gg.custom_gradient
    def scale(x):
        return x * w, lambda upstream: upstream * w

    with pytest.raises(TypeError, match="undeclared_read"):
        scale(gg.constant(1.0))


def test_custom_gradient_variable_argument_is_an_input():
    @gg.custom_gradient
    def doubled(v):
        def grad_fn(upstream):  # no `variables`: v is an argument, not a captured Variable
            return upstream * 5.0
        return v * 2.0, grad_fn

    v = gg.Variable(4.0)
    with gg.GradientTape() as tape:
        y = doubled(v)
    assert float(y) == 8.0
    assert float(tape.gradient(y, v)) == 5.0


def test_custom_gradient_wrong_number_of_gradients_is_an_error():
    @gg.custom_gradient
    def two_inputs(x, y):
        return x + y, lambda upstream: upstream

    a, b = gg.Variable(1.0), gg.Variable(2.0)
    with gg.GradientTape() as tape:
        out = two_inputs(a, b)
    with pytest.raises(ValueError):
        tape.gradient(out, [a, b])


# ---------------------------------------------------------------------------------------
# Numerical checks

def _f(x):
    return 3. * x ** 2 + 2. * x - 1


def test_tutorial_approximate_derivative():
    result = gg.approximate_derivative(_f, 1.)
    assert type(result) is float
    assert result == 7.999999999999119


def test_tutorial_approximate_gradient():
    result = gg.approximate_gradient(_g, 2., 3.)
    assert type(result) is tuple
    assert result == (8.999999999993236, 41.999999999994486)


@pytest.mark.parametrize("make", [np.array, gg.constant], ids=["ndarray", "tensor"])
def test_approximate_derivative_of_arrays_is_float64(make):
    x = make(np.array([1.0, 2.0, -0.5], dtype=np.float32))
    result = gg.approximate_derivative(_f, x)
    assert isinstance(result, np.ndarray) and result.dtype == np.float64
    np.testing.assert_allclose(result, 6 * np.array([1.0, 2.0, -0.5]) + 2, rtol=1e-9)


def test_approximate_derivative_eps():
    assert gg.approximate_derivative(lambda x: x ** 3, 1., eps=0.5) == pytest.approx(3.25, abs=1e-12)


def test_approximate_gradient_of_array_arguments():
    def h(a, b):
        return np.sum(a * a) * b

    da, db = gg.approximate_gradient(h, np.array([[1.0, 2.0]], dtype=np.float32), 3.)
    assert da.shape == (1, 2) and da.dtype == np.float64
    np.testing.assert_allclose(da, [[6.0, 12.0]], rtol=1e-9)
    assert isinstance(db, float) and db == pytest.approx(5.0, rel=1e-9)


def test_gradcheck_passes(rng):
    assert gg.gradcheck(lambda x: gg.sin(x) * x, [rng.normal(size=(2, 3))]) is True
    assert gg.gradcheck(lambda a, b: gg.reduce_sum(a @ b), [rng.normal(size=(2, 3)), rng.normal(size=(3, 4))]) is True
    assert gg.gradcheck(gg.exp, rng.normal(size=3)) is True


def test_gradcheck_error_is_an_assertion_error():
    assert issubclass(gg.GradcheckError, AssertionError)


_NUMBER = r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"  # not digits inside a name such as float64


@pytest.fixture(scope="module")
def user_primitives():
    """A correct and a deliberately wrong user primitive, registered through gg.primitive and
    removed afterwards so that registry-wide tests elsewhere do not see them."""
    @gg.primitive(name="test_tape_cube")
    def cube(x):
        return x * x * x

    @cube.defvjp
    def cube_vjp(g, out, x):  # d x^3 = 3 x^2 dx
        return (3 * g * x * x,)

    @gg.primitive(name="test_wrong_cube")
    def wrong_cube(x):
        return x * x * x

    @wrong_cube.defvjp
    def wrong_cube_vjp(g, out, x):  # deliberately wrong: 2 x^2 instead of 3 x^2
        return (2 * g * x * x,)

    yield cube, wrong_cube
    for name in ("test_tape_cube", "test_wrong_cube"):
        _dispatch.REGISTRY.pop(name, None)


def test_gradcheck_names_input_and_both_values(user_primitives):
    _, wrong_cube = user_primitives
    a = np.array([0.5, -1.0])
    b = np.array([0.0, 0.0, 3.0])
    with pytest.raises(gg.GradcheckError) as info:
        gg.gradcheck(lambda p, q: gg.reduce_sum(p * p) + wrong_cube(q), [a, b])
    message = str(info.value)
    assert "input 1" in message and "input 0" not in message
    assert "(2,)" in message  # the worst element: the only one where 2x^2 and 3x^2 differ
    tape_part, numeric_part = message.split("central differences")
    tape_value = float(re.findall(_NUMBER, tape_part.split("tape gives")[1])[0])
    numeric_value = float(re.findall(_NUMBER, numeric_part)[0])
    assert tape_value / numeric_value == pytest.approx(2.0 / 3.0, rel=1e-6)


def test_user_primitive_first_and_second_derivatives(user_primitives):
    cube, _ = user_primitives
    assert _dispatch.REGISTRY["test_tape_cube"] is cube
    x = gg.Variable([2.0, -1.0])
    with gg.GradientTape() as outer:
        with gg.GradientTape() as inner:
            y = cube(x)
        first = inner.gradient(y, x)
    second = outer.gradient(first, x)
    assert type(y) is gg.Tensor and y.dtype == np.float32
    assert values(y) == [8.0, -1.0]
    assert values(first) == [12.0, 3.0]
    assert values(second) == [12.0, -6.0]
    assert gg.gradcheck(cube, [np.array([0.3, -1.2, 2.0])]) is True

    def first_derivative(v):
        with gg.GradientTape() as tape:
            tape.watch(v)
            out = cube(v)
        return tape.gradient(out, v)

    assert gg.gradcheck(first_derivative, [np.array([0.3, -1.2, 2.0])]) is True


def test_user_primitive_broadcasts_and_takes_scalars(user_primitives):
    cube, _ = user_primitives
    assert float(cube(2.0)) == 8.0
    x = gg.Variable([[1.0], [2.0]])
    with gg.GradientTape() as tape:
        y = cube(x) * gg.constant([1.0, 1.0, 1.0])
    g = tape.gradient(y, x)
    assert g.shape == (2, 1) and values(g) == [[9.0], [36.0]]


def test_duplicate_primitive_name_is_value_error(user_primitives):
    for name in ("test_wrong_cube", "add", "multiply"):
        with pytest.raises(ValueError, match=name):
            gg.primitive(lambda x: x, name=name)
    with pytest.raises(ValueError, match="square"):
        @gg.primitive
        def square(x):
            return x * x


def test_primitive_without_vjp_is_a_clear_error():
    @gg.primitive(name="test_tape_no_vjp")
    def no_vjp(x):
        return x * 2

    try:
        x = gg.Variable(1.0)
        with gg.GradientTape() as tape:
            y = no_vjp(x)
        with pytest.raises(LookupError, match="test_tape_no_vjp"):
            tape.gradient(y, x)
    finally:
        _dispatch.REGISTRY.pop("test_tape_no_vjp", None)


# ---------------------------------------------------------------------------------------
# The tutorials' other numbers

def test_tutorial_partial_derivatives_of_w_x_squared():
    x = gg.Variable(initial_value=5., dtype="float32")
    w = gg.Variable(initial_value=1., dtype="float32")
    with gg.GradientTape() as tape:
        y = w * (x ** 2)
    assert values(tape.gradient(y, [w, x])) == [25.0, 10.0]


def test_tutorial_one_sgd_step():
    X = gg.constant([-1, -2], dtype=gg.float32)
    w = gg.Variable([2., 3.])
    with gg.GradientTape() as tape:
        Y = w * X
        cost = Y[1] * Y
    assert values(Y) == [-2.0, -6.0]
    assert values(cost) == [12.0, 36.0]
    grad = tape.gradient(cost, w)
    assert values(grad) == [6.0, 28.0]
    assert w.assign_sub(1 * grad) is w
    assert w.numpy().tolist() == [-4.0, -25.0]


def test_tutorial_backprop_example():
    x, y = gg.Variable(3.), gg.Variable(4.)
    with gg.GradientTape() as tape:
        f = x * x * y + y + 2
    assert float(f) == 42.0
    assert values(tape.gradient(f, [x, y])) == [24.0, 10.0]


def test_tutorial_first_derivatives():
    x1, x2 = gg.Variable(2.0), gg.Variable(3.0)
    with gg.GradientTape(persistent=True) as tape:
        z = _g(x1, x2)
    dz_x1 = tape.gradient(z, x1)
    assert type(dz_x1) is gg.Tensor and dz_x1.dtype == np.float32 and dz_x1.shape == ()
    assert float(dz_x1) == 9.0
    assert float(tape.gradient(z, x2)) == 42.0
    assert values(tape.gradient(z, [x1, x2])) == [9.0, 42.0]


def test_tutorial_constants_and_watch():
    x1, x2 = gg.constant(2.0), gg.constant(3.0)
    with gg.GradientTape() as tape:
        z = _g(x1, x2)
    assert tape.gradient(z, [x1, x2]) == [None, None]
    with gg.GradientTape() as tape:
        tape.watch(x1)
        tape.watch(x2)
        z = _g(x1, x2)
    assert values(tape.gradient(z, [x1, x2])) == [9.0, 42.0]


def test_tutorial_gradient_descent_by_hand():
    learning_rate = 0.1
    x = gg.Variable(0.0)
    for _ in range(100):
        with gg.GradientTape() as tape:
            z = _f(x)
        dz_dx = tape.gradient(z, x)
        x.assign_sub(learning_rate * dz_dx)
    assert x.dtype == np.float32
    assert str(x.numpy()) == "-0.3333333"
    assert "numpy=-0.3333333>" in repr(x)


def test_tutorial_square():
    x = gg.Variable(3.)
    with gg.GradientTape() as tape:
        y = gg.square(x)
    dy_dx = tape.gradient(y, x)
    assert repr(y) == f"<gg.Tensor shape=() dtype=float32 device={gg.get_default_device()} numpy=9.0>"
    assert repr(dy_dx) == f"<gg.Tensor shape=() dtype=float32 device={gg.get_default_device()} numpy=6.0>"


def test_tutorial_non_persistent_then_persistent():
    x = gg.Variable(3.)
    with gg.GradientTape() as tape:
        y = gg.square(x)
        z = pow(x, 3)
    assert float(tape.gradient(y, x)) == 6.0
    with pytest.raises(RuntimeError, match=re.escape(NON_PERSISTENT)):
        tape.gradient(z, x)
    with gg.GradientTape(persistent=True) as tape:
        y = gg.square(x)
        z = pow(x, 3)
    assert [float(y), float(tape.gradient(y, x)), float(z), float(tape.gradient(z, x))] == [9.0, 6.0, 27.0, 27.0]
    del tape


def test_tutorial_watch():
    x = gg.Variable(3.)
    with gg.GradientTape(watch_accessed_variables=False) as tape:
        y = gg.square(x)
    assert float(y) == 9.0 and tape.gradient(y, x) is None
    with gg.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        y = gg.square(x)
    assert float(tape.gradient(y, x)) == 6.0
    c = gg.constant(3.)
    with gg.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(c)
        y = gg.square(c)
    assert float(y) == 9.0 and float(tape.gradient(y, c)) == 6.0


@pytest.mark.parametrize("persistent", [False, True])
def test_tutorial_partial_derivatives_of_f(persistent):
    x, y = gg.Variable(3.), gg.Variable(4.)
    with gg.GradientTape(persistent=persistent) as tape:
        f = gg.square(x) + 2 * gg.square(y) + 1
    assert float(f) == 42.0
    if persistent:
        assert (float(tape.gradient(f, x)), float(tape.gradient(f, y))) == (6.0, 16.0)
    else:
        df_dx, df_dy = tape.gradient(f, [x, y])
        assert (float(df_dx), float(df_dy)) == (6.0, 16.0)


def test_tutorial_vector_partial_derivatives():
    x = gg.Variable([1., 2., 3.])
    y = gg.Variable([4., 5., 6.])
    with gg.GradientTape() as tape:
        f = gg.square(x) + 2 * gg.square(y) + 1
    df_dx, df_dy = tape.gradient(f, [x, y])
    assert repr(f) == f"<gg.Tensor shape=(3,) dtype=float32 device={gg.get_default_device()} numpy=[34. 55. 82.]>"
    assert values(df_dx) == [2.0, 4.0, 6.0]
    assert values(df_dy) == [16.0, 20.0, 24.0]


def test_backward_skips_history_that_leads_to_no_requested_source():
    """A branch that only reaches sources nobody asked for is never differentiated."""
    calls = []

    @gg.primitive(name="test_counted_square")
    def counted_square(x):
        return x * x

    @counted_square.defvjp
    def counted_square_vjp(g, out, x):
        calls.append(1)
        return (2 * g * x,)

    try:
        w1, w2 = gg.Variable(2.0), gg.Variable(3.0)
        with gg.GradientTape(persistent=True) as tape:
            loss = w1 * 5.0 + counted_square(w2)
        assert float(tape.gradient(loss, w1)) == 5.0
        assert calls == []  # w2's branch was pruned
        assert values(tape.gradient(loss, [w1, w2])) == [5.0, 6.0]
        assert calls == [1]
    finally:
        _dispatch.REGISTRY.pop("test_counted_square", None)


def test_namedtuple_sources_keep_their_type():
    import collections
    Params = collections.namedtuple("Params", "w b")
    params = Params(gg.Variable(2.0), gg.Variable(1.0))
    with gg.GradientTape() as tape:
        y = params.w * 3.0 + params.b
    grads = tape.gradient(y, params)
    assert type(grads) is Params and values(list(grads)) == [3.0, 1.0]
