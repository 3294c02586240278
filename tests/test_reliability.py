"""Cases where gpugrad once gave a silently wrong result or a vague error: lossy assignments
and constants, extension-API misuse, complex sources, errors that name the op and the
argument, and two choices made to match TensorFlow."""
import os
import subprocess
import sys

import numpy as np
import pytest

import gpugrad as gg


# ---------------------------------------------------------------------------------------
# Assignments and constants never change a value silently

def test_assigning_a_tensor_of_another_dtype_raises_naming_both():
    v = gg.Variable([1.0, 2.0], name="w")
    with pytest.raises(TypeError, match=r"value has dtype float64 but Variable 'w' has dtype float32"):
        v.assign(gg.constant([1.1234567, 2.0], dtype="float64"))
    with pytest.raises(TypeError, match=r"dtype int64 but Variable 'n' has dtype int32"):
        gg.Variable([1, 2], name="n").assign(gg.constant(np.array([2**40, 1])))
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])


@pytest.mark.parametrize("dtype, value, error, match", [
    ("float32", [1 + 2j, 2.0], TypeError, r"cannot convert complex values to float32"),
    ("int32", [3.7, -3], ValueError, r"the value 3.7 does not fit int32"),
    ("int32", [1e10, 1], ValueError, r"the value 10000000000.0 does not fit int32"),
    ("int32", np.array([2**40, 1]), ValueError, r"the value 1099511627776 does not fit int32"),
    ("uint8", [-1, 0], ValueError, r"the value -1 does not fit uint8"),
    ("float16", [1e5, 0.0], ValueError, r"the value 100000.0 does not fit float16"),
])
def test_assigning_a_value_that_does_not_fit_raises_and_keeps_the_variable(dtype, value, error, match):
    v = gg.Variable([0, 0], dtype=dtype, name="target")
    for write in (v.assign, v.assign_add, v.assign_sub):
        with pytest.raises(error, match=match):
            write(value)
    np.testing.assert_array_equal(v.numpy(), [0, 0])


def test_values_that_fit_are_assigned():
    v = gg.Variable([0, 0], dtype="int32")
    v.assign([3.0, -4])  # integral floats fit
    np.testing.assert_array_equal(v.numpy(), [3, -4])
    f = gg.Variable([0.0, 0.0])
    f.assign(np.array([0.1, 0.2]))  # float64 values round to float32, as any float assignment does
    np.testing.assert_array_equal(f.numpy(), np.array([0.1, 0.2], np.float32))
    f.assign_add(np.array([1, 2], np.int64))
    np.testing.assert_allclose(f.numpy(), [1.1, 2.2], rtol=1e-6)
    d = gg.Variable(0.0, dtype="float64")
    d.assign(0.1)  # a Python float goes in at the Variable's precision, not through float32
    assert d.numpy() == 0.1


@pytest.mark.parametrize("value, match", [
    (2**63, r"9223372036854775808 does not fit int64.*dtype='uint64'"),
    (2**64, r"too large for any integer dtype"),
    (-2**63 - 1, r"too large for any integer dtype"),
    ([1, 2**70], r"too large for any integer dtype"),
])
def test_integers_beyond_int64_raise_instead_of_wrapping(value, match):
    with pytest.raises(OverflowError, match=match):
        gg.constant(value)


def test_constant_with_a_dtype_checks_python_values_and_casts_arrays():
    assert gg.constant(2**63, dtype="uint64").numpy() == 2**63
    assert gg.constant(2**62).dtype == np.int64
    with pytest.raises(ValueError, match=r"the value 3.7 does not fit int32"):
        gg.constant(3.7, dtype="int32")
    assert gg.constant(np.array(3.7), dtype="int32").numpy() == 3  # an explicit cast of an array


def test_a_weak_integer_too_large_for_the_tensor_names_the_op_and_says_what_to_do():
    with pytest.raises(OverflowError, match=r"add: .*1099511627776.*int32.*cast the tensor to a wider dtype"):
        gg.constant([1, 2], dtype="int32") + 2**40


# ---------------------------------------------------------------------------------------
# Extension APIs check what user code returns

def _primitive(name, forward, vjp):
    op = gg.primitive(forward, name=name)
    op.defvjp(vjp)
    return op


def _grads(op, *xs):
    xs = [gg.Variable(x) for x in xs]
    with gg.GradientTape() as tape:
        y = gg.reduce_sum(op(*xs))
    return tape.gradient(y, xs)


def test_a_vjp_returning_too_few_gradients_names_the_primitive_and_both_counts():
    op = _primitive("probe_too_few", lambda x, y: x * y, lambda g, out, x, y: (g * y,))
    with pytest.raises(ValueError, match=r"VJP of primitive 'probe_too_few' returned 1 gradients for 2 inputs"):
        _grads(op, 1.0, 2.0)


def test_a_vjp_returning_too_many_gradients_names_the_primitive_and_both_counts():
    op = _primitive("probe_too_many", lambda x, y: x * y, lambda g, out, x, y: (g * y, g * x, g))
    with pytest.raises(ValueError, match=r"VJP of primitive 'probe_too_many' returned 3 gradients for 2 inputs"):
        _grads(op, 1.0, 2.0)


def test_a_vjp_returning_a_bare_tensor_says_to_return_a_tuple():
    op = _primitive("probe_bare", lambda x: 2 * x, lambda g, out, x: 2 * g)
    with pytest.raises(TypeError, match=r"VJP of primitive 'probe_bare' returned Tensor; it must return a tuple"):
        _grads(op, [1.0, 2.0, 3.0])


def test_a_forward_returning_a_python_number_raises_at_the_call():
    op = gg.primitive(lambda *xs: 3.0, name="probe_float_forward")
    with pytest.raises(TypeError, match=r"forward of primitive 'probe_float_forward' returned float, not an array"):
        op(gg.constant(1.0))
    with pytest.raises(TypeError, match=r"returned float, not an array"):
        op(gg.constant([1.0]), gg.constant(2.0))  # the two-input fast path
    with pytest.raises(TypeError, match=r"returned float, not an array"):
        op(gg.constant([1.0]), gg.constant(2.0), gg.constant(3.0))  # the general path


def test_a_wrong_shape_from_grad_fn_names_the_function_and_the_input():
    @gg.custom_gradient
    def f(x):
        return x * 2.0, lambda g: gg.ones((5,))

    x = gg.Variable([1.0, 2.0])
    with gg.GradientTape() as tape:
        y = f(x)
    with pytest.raises(ValueError, match=r"grad_fn of custom_gradient 'f' returned a gradient of shape \(5,\) for "
                                         r"input 0, of shape \(2,\)"):
        tape.gradient(y, x)


@pytest.mark.parametrize("value", [[1.0, 2.0, 3.0], 2.0, [1.0, 2.0]])
def test_custom_gradient_returning_only_y_says_it_must_return_a_pair(value):
    @gg.custom_gradient
    def only_y(x):
        return x * 2.0

    with pytest.raises(TypeError, match=r"must return \(y, grad_fn\).*only_y returned a Tensor"):
        only_y(gg.constant(value))


def test_custom_gradient_passes_keyword_arguments_through():
    @gg.custom_gradient
    def scaled(x, scale=1.0):
        return x * scale, lambda g: g * scale

    x = gg.Variable(2.0)
    with gg.GradientTape() as tape:
        y = scaled(x, scale=3.0)
    assert float(y) == 6.0 and float(tape.gradient(y, x)) == 3.0


# ---------------------------------------------------------------------------------------
# Complex sources

def test_gradients_with_respect_to_complex_values_are_refused_not_silently_conjugated():
    z = gg.Variable(1 + 2j, dtype="complex64", name="z")
    with gg.GradientTape(persistent=True) as tape:
        y = z * z
    with pytest.raises(TypeError, match=r"source Variable 'z' is complex \(complex64\); gpugrad differentiates only"):
        tape.gradient(y, z)
    with pytest.raises(TypeError, match=r"tape.jacobian: source Variable 'z' is complex"):
        tape.jacobian(y, z)
    with pytest.raises(TypeError, match=r"gg.gradients: source Variable 'z' is complex"):
        gg.gradients(y, [z])


# ---------------------------------------------------------------------------------------
# Errors that name the op and the argument

@pytest.mark.parametrize("call, match", [
    (lambda: gg.add(None, 1.0), r"add: input 0 is None"),
    (lambda: gg.exp(None), r"exp: input 0 is None"),
    (lambda: gg.nn.Dense(2, 1, seed=0)(None), r"matmul: input 0 is None"),
    (lambda: gg.multiply(gg.constant(1.0), "abc"), r"multiply: input 1: cannot make a tensor from 'abc'"),
])
def test_none_and_non_numbers_name_the_op_and_the_input(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()


def test_bool_of_many_elements_suggests_reduce_any_and_reduce_all():
    with pytest.raises(ValueError, match=r"shape \(3,\) is ambiguous: use gg.reduce_any\(t\) or gg.reduce_all\(t\)"):
        bool(gg.constant([1.0, 2.0, 3.0]))
    assert bool(gg.reduce_any(gg.constant([0.0, 2.0]))) and not bool(gg.reduce_all(gg.constant([0.0, 2.0])))
    assert not bool(gg.reduce_any(gg.zeros((0,)))) and bool(gg.reduce_all(gg.zeros((0,))))
    np.testing.assert_array_equal(gg.reduce_any(gg.constant([[0, 1], [0, 0]]), axis=1).numpy(), [True, False])


def _import_with_device(value):
    env = dict(os.environ, GPUGRAD_DEVICE=value)
    return subprocess.run([sys.executable, "-c", "import gpugrad as gg; print(gg.constant(1.0).device)"],
                          env=env, capture_output=True, text=True, timeout=120)


def test_a_bad_gpugrad_device_names_the_environment_variable():
    run = _import_with_device("garbage")
    assert run.returncode != 0
    assert "the environment variable GPUGRAD_DEVICE='garbage' is not a device" in run.stderr


def test_gpugrad_device_ignores_surrounding_spaces():
    run = _import_with_device(" cpu ")
    assert run.returncode == 0 and run.stdout.strip() == "cpu", run.stderr


@pytest.mark.parametrize("shape, axis", [((2, 0), -1), ((0, 3), -1), ((0, 3), 0)])
def test_softmax_over_an_empty_axis_or_batch_is_empty(shape, axis):
    logits = gg.zeros(shape)
    assert gg.nn.softmax(logits, axis=axis).shape == shape
    assert gg.nn.log_softmax(logits, axis=axis).shape == shape


# ---------------------------------------------------------------------------------------
# Choices that follow TensorFlow

def test_watched_variables_come_in_creation_order():
    a, b, c = gg.Variable(1.0, name="a"), gg.Variable(2.0, name="b"), gg.Variable(3.0, name="c")
    with gg.GradientTape() as tape:
        c * b + a
    assert [v.name for v in tape.watched_variables()] == ["a", "b", "c"]


def test_where_does_not_hide_a_nan_gradient_of_the_branch_not_taken():
    # As in TensorFlow, PyTorch and JAX: the untaken branch's gradient is 0 * inf = NaN at
    # x = 0. The safe form feeds the branch an input where it is finite.
    x = gg.Variable(0.0)
    with gg.GradientTape(persistent=True) as tape:
        trap = gg.where(x > 0, gg.sqrt(x), 0.0)
        safe = gg.where(x > 0, gg.sqrt(gg.where(x > 0, x, 1.0)), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        assert np.isnan(float(tape.gradient(trap, x)))
    assert float(tape.gradient(safe, x)) == 0.0


def test_a_forward_returning_a_python_number_from_a_variable_input_raises_at_the_call():
    op = gg.primitive(lambda *xs: 3.0, name="probe_float_forward_of_variable")
    for args in [(gg.Variable(1.0),), (gg.Variable(1.0), gg.constant(2.0)),
                 (gg.Variable(1.0), gg.constant(2.0), gg.constant(3.0))]:
        with pytest.raises(TypeError, match=r"returned float, not an array"):
            op(*args)
