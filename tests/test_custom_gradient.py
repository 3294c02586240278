"""gg.custom_gradient: a straight-through sign, behaviour outside a tape, second derivatives
through a custom gradient function, several inputs with a None gradient, Variables read
inside the function (declared through the `variables` argument, a TypeError otherwise),
Variables passed as arguments, and a wrong number of returned gradients."""
import pytest

import gpugrad as gg
from helpers import values


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
