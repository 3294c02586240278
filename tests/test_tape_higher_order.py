"""Higher-order derivatives from nested tapes: the tutorials' second derivatives of
g(x1, x2) = (x1 + 5) * x2**2 and f(x, y) = x**2 + 2 y**2 + 1, a third derivative through three
tapes, and an inner gradient that does not depend on the source giving None."""
import numpy as np

import gpugrad as gg
from helpers import tutorial_g as _g
from helpers import values


# ---------------------------------------------------------------------------------------
# Nested tapes (second derivatives, as in the tutorials)

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
