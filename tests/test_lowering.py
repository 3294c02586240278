"""The planned replay of a compiled step on the CPU (gpugrad/lowering.py): the into-forms
against their forwards, the memory plan's reuse, and planned replays against the plain
replay, bit for bit, step after step."""
import tracemalloc

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import dispatch, lowering


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", [
    ("matmul", [(5, 1), (1, 4)], {}),
    ("matmul", [(5, 3), (3, 1)], {}),
    ("matmul", [(5, 3), (4, 3)], {"transpose_b": True}),
    ("matmul", [(5, 3), (5, 4)], {"transpose_a": True}),
    ("matmul", [(1, 5), (4, 1)], {"transpose_a": True, "transpose_b": True}),
    ("reduce_sum", [(6, 3)], {"axis": (0,), "keepdims": True}),
    ("reduce_sum", [(6, 3)], {"axis": (0,), "keepdims": False}),
    ("reduce_sum", [(6, 3)], {"axis": (1,), "keepdims": False}),
    ("reduce_sum", [(2, 6, 3)], {"axis": (0, 2), "keepdims": True}),
    ("reduce_sum", [(6, 3)], {"axis": None, "keepdims": False}),
    ("reduce_mean", [(6, 3)], {"axis": None, "keepdims": False}),
    ("reduce_mean", [(6, 3)], {"axis": (0,), "keepdims": True}),
    ("reduce_mean", [(6, 3)], {"axis": (1,), "keepdims": False}),
    ("reduce_sum_backward", [(3,)], {"axis": (0,), "keepdims": False, "shape": (6, 3)}),
    ("reduce_sum_backward", [()], {"axis": None, "keepdims": False, "shape": (6, 3)}),
    ("reduce_sum_backward", [(1, 3)], {"axis": (0,), "keepdims": True, "shape": (6, 3)}),
    ("broadcast_to", [(1, 3)], {"shape": (6, 3)}),
], ids=str)
def test_each_into_form_equals_its_primitive_forward_bit_for_bit(case, dtype, rng):
    name, shapes, params = case
    inputs = [np.asarray(rng.normal(size=shape)).astype(dtype) for shape in shapes]
    expected = np.asarray(dispatch.REGISTRY[name].forward(*inputs, **params))
    out = np.empty(expected.shape, expected.dtype)
    result = lowering.INTO[name](np, out, *inputs, **params)
    assert result is out
    np.testing.assert_array_equal(out, expected)
    assert out.tobytes() == expected.tobytes()  # signed zeros too


def _regression(optimizer, dtype="float32", points=64, hidden=3):
    rng = np.random.default_rng(7)
    x = gg.constant(np.linspace(-1, 1, points, dtype=dtype)[:, None], device="cpu")
    y = gg.constant((np.linspace(-1, 1, points)[:, None] ** 2 - 0.5).astype(dtype), device="cpu")
    variables = [gg.Variable(rng.normal(size=(1, hidden)).astype(dtype), device="cpu"),
                 gg.Variable(np.full((1, hidden), 0.1, dtype), device="cpu"),
                 gg.Variable(rng.normal(size=(hidden, 1)).astype(dtype), device="cpu"),
                 gg.Variable(np.full((1, 1), 0.1, dtype), device="cpu")]
    w1, b1, w2, b2 = variables

    def step(xs, ys):
        with gg.GradientTape() as tape:
            hidden_layer = gg.sigmoid(xs @ w1 + b1)
            loss = gg.reduce_mean(gg.reduce_sum(gg.square(ys - (hidden_layer @ w2 + b2)), axis=1))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss, hidden_layer

    return step, variables, x, y


OPTIMIZERS = {
    "sgd": lambda: gg.optimizers.SGD(0.1),
    "sgd-nesterov-schedule": lambda: gg.optimizers.SGD(lambda step: 0.1 / (1 + step), momentum=0.9, nesterov=True),
    "adam-amsgrad": lambda: gg.optimizers.Adam(0.01, amsgrad=True),
    "adamw-clipnorm": lambda: gg.optimizers.AdamW(0.01, clipnorm=0.1),
    "rmsprop-centered": lambda: gg.optimizers.RMSprop(0.01, centered=True),
    "adagrad-clipvalue": lambda: gg.optimizers.Adagrad(0.1, clipvalue=0.01),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_the_planned_replay_equals_the_plain_replay_bit_for_bit(name, dtype):
    planned, planned_vars, x, y = _regression(OPTIMIZERS[name](), dtype)
    plain, plain_vars, _, _ = _regression(OPTIMIZERS[name](), dtype)
    planned, plain = gg.function(planned), gg.function(plain, compile=False)
    results = []
    for _ in range(5):
        (a, ha), (b, hb) = planned(x, y), plain(x, y)
        assert a.numpy().tobytes() == b.numpy().tobytes() and ha.numpy().tobytes() == hb.numpy().tobytes()
        for u, v in zip(planned_vars, plain_vars):
            assert u.numpy().tobytes() == v.numpy().tobytes()
        results.append(ha)
    assert "planned replay on the CPU" in planned.explain()
    # a returned tensor keeps its value when the next call reuses the plan's buffers
    assert all(r.numpy().tobytes() != results[-1].numpy().tobytes() for r in results[:-1])


def test_a_chain_of_elementwise_ops_reuses_two_buffers():
    @gg.function
    def chain(x):
        for _ in range(10):
            x = gg.tanh(x) * 0.5 + 0.25
        return gg.reduce_sum(x)

    x = gg.constant(np.linspace(-1, 1, 1000), device="cpu")
    first = chain(x)
    assert float(chain(x)) == float(first)
    # 30 planned intermediates of one shape: two buffers take turns (and one for the sum's input)
    assert "lowering: planned replay on the CPU: 2 buffers (0.016 MB) for 30 planned" in chain.explain()
    assert "31 of the 31 steps remain" in chain.explain()


def test_a_planned_replay_allocates_no_intermediates():
    shape = (500, 400)  # 1.6 MB a float64 intermediate

    def body(x, y):
        z = gg.exp(x * y + 1.0)
        return gg.reduce_sum(z * z - x)

    planned, plain = gg.function(body), gg.function(body, compile=False)
    x = gg.constant(np.random.default_rng(0).normal(size=shape), device="cpu")
    y = gg.constant(np.random.default_rng(1).normal(size=shape), device="cpu")
    peaks = {}
    for label, f in (("planned", planned), ("plain", plain)):
        f(x, y)
        f(x, y)
        tracemalloc.start()
        try:
            f(x, y)
            peaks[label] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    intermediate = np.prod(shape) * 8
    assert peaks["plain"] > 2 * intermediate  # the plain replay allocates its intermediates
    assert peaks["planned"] < 64 * 1024, peaks  # the result, and a little bookkeeping


def test_a_step_reading_a_variable_after_its_update_sees_the_new_value():
    w = gg.Variable([1.0, 2.0], device="cpu")

    @gg.function
    def step():
        before = gg.reshape(w, (2, 1))  # a view of the Variable's buffer in NumPy
        w.assign_add([1.0, 1.0])
        return before, w * 1.0

    for expected in ([1.0, 2.0], [2.0, 3.0], [3.0, 4.0]):
        before, after = step()
        np.testing.assert_array_equal(before.numpy().ravel(), expected)
        np.testing.assert_array_equal(after.numpy(), np.add(expected, 1.0))


def test_threads_replaying_one_planned_step_at_once_get_their_own_results():
    import threading

    @gg.function
    def body(x):
        h = gg.tanh(x * 2.0) + x
        return gg.reduce_sum(h * h, axis=1)

    inputs = [gg.constant(np.full((64, 8), 0.01 * k), device="cpu") for k in range(8)]
    expected = [body(x).numpy() for x in inputs]  # the first call captures; these replay
    assert "planned replay on the CPU" in body.explain()
    errors = []

    def work(k):
        for _ in range(200):
            got = body(inputs[k]).numpy()
            if got.tobytes() != expected[k].tobytes():
                errors.append(k)
                return

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
