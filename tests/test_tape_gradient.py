"""tape.gradient itself: targets (lists, nested lists and non-scalar targets are summed,
output_gradients weight them), sources (their structure, namedtuples included, comes back
unchanged), unconnected, unwatched and integer sources (None or zeros), the dtype and shape of
each gradient (always the source's), and the backward pass skipping history that reaches no
requested source."""
import numpy as np
import pytest

import gpugrad as gg
from gpugrad import dispatch as _dispatch
from helpers import values


# ---------------------------------------------------------------------------------------
# Targets, sources, unconnected gradients

def test_unwatched_unconnected_and_integer_sources_get_none():
    x = gg.Variable(2.0)
    unconnected = gg.Variable(5.0)
    unwatched = gg.constant(1.0)
    integer = gg.Variable(3)
    with gg.GradientTape() as tape:
        tape.watch(unwatched)
        y = x * x + gg.cast(integer, "float32")
        z = unconnected * 2.0  # recorded, but not on y's history
    del z
    grads = tape.gradient(y, [x, unconnected, gg.constant(7.0), integer])
    assert values(grads) == [4.0, None, None, None]


@pytest.mark.parametrize("mode", ["zero", gg.UnconnectedGradients.ZERO])
def test_unconnected_gradients_zero(mode):
    x = gg.Variable(2.0)
    y_source = gg.Variable([[1.0, 2.0, 3.0]])
    integer = gg.Variable([1, 2])
    with gg.GradientTape() as tape:
        y = x * x
    grads = tape.gradient(y, [x, y_source, gg.constant([1.0, 2.0]), integer], unconnected_gradients=mode)
    assert float(grads[0]) == 4.0
    assert grads[1].shape == (1, 3) and grads[1].dtype == np.float32
    assert grads[1].numpy().tolist() == [[0.0, 0.0, 0.0]]
    assert grads[2].numpy().tolist() == [0.0, 0.0]
    assert grads[3].shape == (2,) and grads[3].numpy().tolist() == [0, 0]


@pytest.mark.parametrize("mode", ["none", gg.UnconnectedGradients.NONE])
def test_unconnected_gradients_none_spelled_both_ways(mode):
    x, w = gg.Variable(2.0), gg.Variable(1.0)
    with gg.GradientTape() as tape:
        y = x * x
    assert values(tape.gradient(y, [x, w], unconnected_gradients=mode)) == [4.0, None]


def test_unknown_unconnected_gradients_is_value_error():
    x = gg.Variable(2.0)
    with gg.GradientTape() as tape:
        y = x * x
    with pytest.raises(ValueError, match="bogus"):
        tape.gradient(y, x, unconnected_gradients="bogus")


def test_tutorial_list_of_targets_is_summed():
    x = gg.Variable(5.0)
    with gg.GradientTape() as tape:
        z1 = 3 * x
        z2 = x ** 2
    assert float(tape.gradient([z1, z2], x)) == 13.0


def test_nested_list_targets_are_summed():
    x = gg.Variable(2.0)
    with gg.GradientTape() as tape:
        targets = [x * 1.0, [x * x, (x * x * x,)]]
    assert float(tape.gradient(targets, x)) == 1.0 + 4.0 + 12.0


def test_non_scalar_target_is_summed():
    x = gg.Variable([1.0, 2.0, 3.0])
    with gg.GradientTape() as tape:
        y = x * x  # shape (3,)
    assert values(tape.gradient(y, x)) == [2.0, 4.0, 6.0]


def test_output_gradients_weight_the_targets():
    x = gg.Variable([1.0, 2.0, 3.0])
    with gg.GradientTape(persistent=True) as tape:
        y = x * x
        z = 3.0 * x
    assert values(tape.gradient(y, x, output_gradients=[1.0, 0.0, -1.0])) == [2.0, 0.0, -6.0]
    assert values(tape.gradient(y, x, output_gradients=gg.constant([2.0, 2.0, 2.0]))) == [4.0, 8.0, 12.0]
    weighted = tape.gradient([y, z], x, output_gradients=[[1.0, 1.0, 1.0], [0.0, 10.0, 0.0]])
    assert values(weighted) == [2.0, 34.0, 6.0]
    with pytest.raises(ValueError):
        tape.gradient(y, x, output_gradients=[1.0, 2.0])


def test_sources_keep_their_structure():
    a, b, c = gg.Variable(1.0), gg.Variable(2.0), gg.Variable(3.0)
    unused = gg.Variable(0.0)
    with gg.GradientTape(persistent=True) as tape:
        y = a * b * c
    as_dict = tape.gradient(y, {"first": a, "rest": [b, (c, unused)]})
    assert type(as_dict) is dict and list(as_dict) == ["first", "rest"]
    assert type(as_dict["rest"]) is list and type(as_dict["rest"][1]) is tuple
    assert values(as_dict["first"]) == 6.0
    assert values(as_dict["rest"]) == [3.0, [2.0, None]]
    as_tuple = tape.gradient(y, (a, b))
    assert type(as_tuple) is tuple and values(as_tuple) == [6.0, 3.0]
    single = tape.gradient(y, c)
    assert type(single) is gg.Tensor and float(single) == 2.0


def test_namedtuple_sources_keep_their_type():
    import collections
    Params = collections.namedtuple("Params", "w b")
    params = Params(gg.Variable(2.0), gg.Variable(1.0))
    with gg.GradientTape() as tape:
        y = params.w * 3.0 + params.b
    grads = tape.gradient(y, params)
    assert type(grads) is Params and values(list(grads)) == [3.0, 1.0]


# ---------------------------------------------------------------------------------------
# Dtype and shape of the gradient

@pytest.mark.parametrize("source_dtype, other_dtype", [
    ("float32", "float64"), ("float64", "float32"), ("float16", "float32"), ("float32", "float32"),
])
def test_gradient_has_source_dtype_and_shape(source_dtype, other_dtype):
    x = gg.Variable([[1.0, 2.0]], dtype=source_dtype)
    w = gg.constant([[3.0], [4.0]], dtype=other_dtype)
    with gg.GradientTape() as tape:
        y = gg.cast(x, other_dtype) * w  # broadcasts to (2, 2)
    g = tape.gradient(y, x)
    assert g.dtype == np.dtype(source_dtype)
    assert g.shape == (1, 2)
    assert g.numpy().tolist() == [[7.0, 7.0]]


def test_float32_source_with_float64_values():
    x = gg.Variable(2.0)
    with gg.GradientTape() as tape:
        y = x * gg.constant(3.0, dtype="float64")
    assert y.dtype == np.float64
    g = tape.gradient(y, x)
    assert g.dtype == np.float32 and float(g) == 3.0


# ---------------------------------------------------------------------------------------
# Pruning

def test_backward_skips_history_that_leads_to_no_requested_source():
    """A branch that only reaches sources nobody asked for is never differentiated."""
    calls = []

    @gg.primitive(name="test_counted_square")
    def counted_square(x):
        return x * x

    @counted_square.defvjp
    def counted_square_vjp(g, out, x):
        calls.append(1)
        return (2 * g * x,)

    try:
        w1, w2 = gg.Variable(2.0), gg.Variable(3.0)
        with gg.GradientTape(persistent=True) as tape:
            loss = w1 * 5.0 + counted_square(w2)
        assert float(tape.gradient(loss, w1)) == 5.0
        assert calls == []  # w2's branch was pruned
        assert values(tape.gradient(loss, [w1, w2])) == [5.0, 6.0]
        assert calls == [1]
    finally:
        _dispatch.REGISTRY.pop("test_counted_square", None)
