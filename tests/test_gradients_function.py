"""gg.gradients, the tape-free form over recorded history (grad_ys, stop_gradients,
intermediates and constants as xs, unconnected gradients, leaving the tape itself unused), and
gg.stop_gradient, with the tutorials' numbers for both."""
import numpy as np
import pytest

import gpugrad as gg
from helpers import values


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
    outside = x * x  # no tape recorded it: an error that says to use a tape, not a silent None
    with pytest.raises(RuntimeError, match="no GradientTape recorded"):
        gg.gradients(outside, [x])


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
