"""gg.function's arguments: trees of containers whose tensors are runtime inputs, Python
numbers fed anew each call, objects keyed by a weak identity that dies with them, keyword and
static arguments, a bounded plan cache and a warning when a function keeps retracing."""
import collections
import gc
import sys
import warnings

import numpy as np
import pytest

import gpugrad as gg

function_module = sys.modules["gpugrad.function"]  # gg.function is the decorator


def _quiet(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return f(*args, **kwargs)


def test_a_fresh_list_of_tensors_each_call_is_an_input_not_a_frozen_constant():
    f = gg.function(lambda items: items[0] * 1.0)
    results = [float(_quiet(f, [gg.constant(float(i))])) for i in range(1, 6)]
    assert results == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert len(f._plans) == 1


def test_a_dict_mutated_between_calls_gives_its_new_values():
    f = gg.function(lambda d: d["a"] * d["b"])
    d = {"a": gg.constant(1.0), "b": gg.constant(2.0)}
    assert float(f(d)) == 2.0
    d["a"] = gg.constant(10.0)
    assert float(f(d)) == 20.0
    d["c"] = gg.constant(0.0)  # another structure: another plan
    assert float(f(d)) == 20.0
    assert len(f._plans) == 2


def test_nested_structures_namedtuples_and_tuples():
    Pair = collections.namedtuple("Pair", "x y")
    f = gg.function(lambda p, rest: (p.x + p.y) * rest[1]["w"])
    for i in range(3):
        got = f(Pair(gg.constant([1.0, float(i)]), gg.constant(2.0)), (None, {"w": gg.constant(float(i + 1))}))
        np.testing.assert_array_equal(got.numpy(), np.array([3.0, 2.0 + i]) * (i + 1))
    assert len(f._plans) == 1


class _Scale(gg.Module):
    def __init__(self, value):
        self.v = gg.Variable(value)

    def __call__(self, x):
        return self.v * x


def test_a_fresh_model_each_call_never_replays_a_freed_ones_weights():
    f = gg.function(lambda m, x: m(x))
    x = gg.constant(2.0)

    def call(i):  # the model dies after the call; Python may put the next one at its address
        model = _Scale(float(i))
        return float(f(model, x))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # it retraces on purpose
        results = [call(i) for i in range(12)]
    assert results == [2.0 * i for i in range(12)]


def test_a_plan_dies_with_the_object_it_was_captured_for():
    f = gg.function(lambda m, x: m(x))
    model = _Scale(3.0)
    assert float(f(model, gg.constant(2.0))) == 6.0
    assert len(f._plans) == 1
    del model
    gc.collect()
    assert len(f._plans) == 0


def test_the_same_model_object_replays_its_current_values():
    f = gg.function(lambda m, x: m(x))
    model = _Scale(3.0)
    assert float(f(model, gg.constant(2.0))) == 6.0
    model.v.assign(5.0)
    assert float(f(model, gg.constant(2.0))) == 10.0
    assert len(f._plans) == 1


def test_python_floats_are_runtime_values_one_plan_for_many_values():
    w = gg.Variable([1.0, 2.0])

    @gg.function
    def step(lr):
        w.assign_sub(lr * w)
        return w.value()

    expected = np.array([1.0, 2.0], np.float32)
    for i in range(300):
        lr = 0.001 * (i % 7)
        expected = expected - np.float32(lr) * expected
        got = _quiet(step, lr)
        np.testing.assert_array_equal(got.numpy(), expected)
    assert len(step._plans) == 1


def test_python_numbers_keep_their_weak_typing_in_a_replay():
    f = gg.function(lambda x, s: x * s)
    x16 = gg.constant([1.0, 2.0], dtype="float16")
    for s in (2.0, 3.5):
        got = f(x16, s)
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got.numpy(), np.array([1.0, 2.0], np.float16) * s)
    for n in (2, 3):
        got = f(gg.constant([1, 2]), n)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got.numpy(), [n, 2 * n])


def test_a_float_nan_argument_hits_the_cached_plan():
    f = gg.function(lambda x, s: x + s)
    x = gg.constant(1.0)
    f(x, 1.0)
    assert np.isnan(float(f(x, float("nan"))))
    assert float(f(x, 2.0)) == 3.0
    assert len(f._plans) == 1


def test_a_number_returned_as_it_came_is_this_calls_number():
    f = gg.function(lambda x, s: (x * 2.0, s))
    x = gg.constant(1.0)
    assert f(x, 3.0)[1] == 3.0 and type(f(x, 3.0)[1]) is float
    assert f(x, 4.5)[1] == 4.5


@pytest.mark.parametrize("body, how", [
    (lambda x, n: x * (n * 2), "__mul__"),
    (lambda x, n: x if n > 1 else -x, "__gt__"),
    (lambda x, n: x * float(n), "__float__"),
    (lambda x, n: gg.reduce_sum(gg.stack([x] * n)), "__index__"),
    (lambda x, n: gg.reduce_sum(gg.reshape(x, (n,))), "as a static parameter"),
    (lambda x, n: x * gg.constant(n), "copied into a tensor"),
])
def test_a_number_used_in_python_runs_eagerly_with_a_warning_never_stale(body, how):
    f = gg.function(body)
    x = gg.constant([1.0, 2.0])
    n_values = (2, 2, 2) if how == "as a static parameter" else (2, 3, 4)
    with pytest.warns(RuntimeWarning, match=r"the Python number argument 1 was used in Python code"):
        first = f(x, n_values[0])
    np.testing.assert_array_equal(first.numpy(), body(x, n_values[0]).numpy())
    for n in n_values[1:]:
        np.testing.assert_array_equal(_quiet(f, x, n).numpy(), body(x, n).numpy())


def test_static_argnums_key_by_value_and_python_control_flow_works():
    @gg.function(static_argnums=1)
    def power(x, n):
        out = x
        for _ in range(n - 1):
            out = out * x
        return out

    x = gg.constant(2.0)
    assert [float(_quiet(power, x, n)) for n in (1, 2, 3, 3, 2)] == [2.0, 4.0, 8.0, 8.0, 4.0]
    assert len(power._plans) == 3
    with pytest.raises(TypeError, match=r"static argument 1 must be hashable .*list"):
        power(x, [1])


def test_keyword_arguments_and_static_argnames():
    @gg.function(static_argnames="mode")
    def f(x, *, scale=1.0, mode="mul"):
        return x * scale if mode == "mul" else x + scale

    x = gg.constant(2.0)
    assert float(_quiet(f, x, scale=3.0)) == 6.0
    assert float(_quiet(f, x, scale=4.0)) == 8.0
    assert float(_quiet(f, x, scale=4.0, mode="add")) == 6.0
    assert float(_quiet(f, x=x, scale=1.5)) == 3.0
    assert float(_quiet(f, x)) == 2.0


def test_the_plan_cache_is_bounded_and_retracing_warns_once():
    f = gg.function(lambda x: x * 2.0)
    with pytest.warns(RuntimeWarning, match=r"has captured 8 signatures"):
        for n in range(1, function_module.RETRACE_WARNING + 1):
            f(gg.zeros((n,)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        for n in range(function_module.RETRACE_WARNING + 1, 3 * function_module.MAX_PLANS):
            np.testing.assert_array_equal(f(gg.ones((n,))).numpy(), np.full(n, 2.0))
    assert len(f._plans) == function_module.MAX_PLANS


def test_many_distinct_floats_keep_one_plan_and_no_memory():
    f = gg.function(lambda x, lr: x - lr * x)
    x = gg.constant(np.ones(4, np.float32))
    for i in range(3000):
        f(x, 1.0 / (i + 1))
    assert len(f._plans) == 1
