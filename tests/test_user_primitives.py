"""User primitives registered through the public gg.primitive entry point with a defvjp
gradient: first and second derivatives, broadcasting and scalar arguments, gradcheck naming
the input and both values when a vjp is wrong, duplicate names refused, and a clear error for
a primitive without a vjp. Every primitive registered here is removed from the registry
afterwards."""
import re

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import dispatch as _dispatch
from helpers import values


# ---------------------------------------------------------------------------------------
# User primitives

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
