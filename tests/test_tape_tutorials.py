"""The numbers the TensorFlow 2 tutorials this project grew from quote for GradientTape:
partial derivatives of small functions, one SGD step, backprop by hand, constants that must be
watched, gradient descent to -1/3, reprs, non-persistent versus persistent tapes and
watch_accessed_variables=False. Tutorial numbers for one topic (second derivatives,
gg.gradients, approximate derivatives) are in that topic's file."""
import re

import numpy as np
import pytest

import gpugrad as gg
from helpers import NON_PERSISTENT, values
from helpers import tutorial_f as _f
from helpers import tutorial_g as _g


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
