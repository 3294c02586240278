"""tape.jacobian and tape.batch_jacobian: shapes and values for elementwise and matmul
functions, scalar targets and sources, structured sources, unconnected sources (None or zeros
of the full shape), and batch_jacobian's need for a shared batch axis."""
import numpy as np
import pytest

import gpugrad as gg
from helpers import values


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
    # rtol 1e-10, not 1e-12: on a GPU the float64 tanh differs from NumPy's by about 1e-12
    np.testing.assert_allclose(bj.numpy(), derivative[:, :, None] * w_value.T[None], rtol=1e-10)


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
