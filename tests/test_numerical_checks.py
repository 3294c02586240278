"""Numerical checks: gg.approximate_derivative and gg.approximate_gradient (the tutorials'
exact float results, float64 arrays for array arguments, eps) and gg.gradcheck passing on
correct gradients, with GradcheckError an AssertionError. gradcheck catching a wrong user
vjp is in test_user_primitives.py."""
import numpy as np
import pytest

import gpugrad as gg
from helpers import tutorial_f as _f
from helpers import tutorial_g as _g


# ---------------------------------------------------------------------------------------
# Numerical checks

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
