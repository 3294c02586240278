"""A new user's first hour: the Tensor methods PyTorch and NumPy users reach for (item, format
specs, .T, .sum, .mean, recorded on tapes like the ops), errors where a mistake used to pass
silently (apply_gradients with no gradient, gg.gradients with no recorded history), the
optimizers' settable learning rate, named schedules and get(name), and gg.tensor as a
function rather than the internal module of that name."""
import importlib
import math
import sys
import warnings

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import optimizers as opt
from helpers import first_grad

pytestmark = pytest.mark.usefixtures("device")  # every test runs on each device (cuda skipped without one)


# ---------------------------------------------------------------------------------------
# item() and format specs

@pytest.mark.parametrize("value, dtype, expected, kind", [
    (2.5, "float32", 2.5, float), ([[7]], "int32", 7, int), ([True], "bool", True, bool), (1.25, "float64", 1.25, float),
])
def test_item_is_a_python_scalar_of_a_one_element_tensor(value, dtype, expected, kind):
    t = gg.constant(value, dtype=dtype)
    assert t.item() == expected and type(t.item()) is kind
    assert gg.Variable(value, dtype=dtype).item() == expected


@pytest.mark.parametrize("shape", [(2,), (2, 3), (0,)], ids=str)
def test_item_of_several_elements_names_the_shape(shape):
    with pytest.raises(ValueError, match=rf"item\(\) needs a tensor of one element, got shape {re_shape(shape)}"):
        gg.zeros(shape).item()


def re_shape(shape):
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


def test_format_spec_of_a_one_element_tensor_formats_like_a_python_number():
    loss = gg.constant(0.123456)
    assert f"{loss:.4f}" == "0.1235" and f"{loss:>8.2e}" == "1.23e-01"
    assert f"{gg.constant([[2.5]]):.1f}" == "2.5"
    assert f"{gg.constant(3, dtype='int64'):03d}" == "003"
    assert f"{gg.Variable(1.5):.2f}" == "1.50"
    assert "step {}: {:.3f}".format(1, loss) == "step 1: 0.123"


def test_format_without_a_spec_is_str_and_a_spec_on_many_elements_says_why_not():
    t = gg.constant([1.0, 2.0])
    assert f"{t}" == str(t) == repr(t) and format(t, "") == str(t)
    with pytest.raises(TypeError, match=r"format spec '\.4f' applies to a tensor of one element, but this one has "
                                        r"shape \(2,\)"):
        f"{t:.4f}"


# ---------------------------------------------------------------------------------------
# .T, .sum and .mean: the ops, recorded on tapes

def test_transpose_sum_and_mean_give_the_numpy_values(rng):
    x = rng.normal(size=(2, 3, 4))
    t = gg.constant(x)
    np.testing.assert_array_equal(t.T.numpy(), x.T)
    assert gg.constant(1.5).T.shape == () and gg.constant([1.0, 2.0]).T.numpy().tolist() == [1.0, 2.0]
    for axis in (None, 0, -1, (0, 2)):
        for keepdims in (False, True):
            np.testing.assert_allclose(t.sum(axis, keepdims=keepdims).numpy(), x.sum(axis, keepdims=keepdims))
            np.testing.assert_allclose(t.mean(axis=axis, keepdims=keepdims).numpy(),
                                       x.mean(axis, keepdims=keepdims))
    assert type(t.sum()) is gg.Tensor and t.sum().device == t.device
    with pytest.raises(ValueError, match="reduce_sum: axis 3 is out of range"):
        t.sum(3)


def test_the_methods_record_on_a_tape_like_the_ops():
    w = gg.Variable([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype="float64")
    with gg.GradientTape() as tape:
        loss = (w.T * gg.constant([[1.0], [2.0], [3.0]], dtype="float64")).sum() + w.mean(axis=1).sum()
    grad = tape.gradient(loss, w)
    np.testing.assert_allclose(grad.numpy(), [[1 + 1 / 3, 2 + 1 / 3, 3 + 1 / 3]] * 2)


@pytest.mark.parametrize("method", ["T", "sum", "sum0", "sum_keep", "mean", "mean_axes", "mean_keep"])
def test_method_gradients_match_central_differences(method, rng):
    f = {"T": lambda v: v.T * v.T,
         "sum": lambda v: (v * v).sum(),
         "sum0": lambda v: (v * v).sum(0),
         "sum_keep": lambda v: v.sum(axis=-1, keepdims=True) * v,
         "mean": lambda v: (v * v).mean(),
         "mean_axes": lambda v: (v * v).mean(axis=(0, 2)),
         "mean_keep": lambda v: v.mean(1, keepdims=True) * v}[method]
    assert gg.gradcheck(f, [rng.normal(size=(2, 3, 4))])
    assert gg.gradcheck(lambda v: first_grad(f, [v]), [rng.normal(size=(2, 3, 4))])  # second order


# ---------------------------------------------------------------------------------------
# gg.tensor: a function, not the module

def test_gg_tensor_is_a_function_creating_a_constant():
    t = gg.tensor([1.0, 2.0])
    assert type(t) is gg.Tensor and t.dtype == np.float32 and t.numpy().tolist() == [1.0, 2.0]
    assert t.device == gg.get_default_device()
    assert gg.tensor(3, dtype="float64").dtype == np.float64
    assert gg.tensor(np.arange(3), device="cpu").device == "cpu"
    copy = gg.tensor(t)
    assert copy is not t and copy.numpy().tolist() == [1.0, 2.0]


def test_importing_the_internal_module_later_keeps_gg_tensor_the_function():
    import gpugrad.tensor  # noqa: F401  (already imported: the name is left alone)
    importlib.import_module("gpugrad.tensor")
    assert callable(gg.tensor) and not isinstance(gg.tensor, type(sys))
    assert sys.modules["gpugrad.tensor"].Tensor is gg.Tensor


def test_the_cupy_missing_message_names_an_install_that_works():
    reason = gg.backend._probe_cuda()[1]
    if not reason.startswith("CuPy is not installed"):
        pytest.skip("CuPy is installed here")
    assert "pip install -e '.[cuda13]'" in reason and "gpugrad[cuda" not in reason


# ---------------------------------------------------------------------------------------
# gg.gradients outside a tape

def test_gradients_of_unrecorded_ys_outside_any_tape_raise_and_say_to_use_a_tape():
    x = gg.Variable(3.0)
    y = x * x  # no tape recorded it
    with pytest.raises(RuntimeError, match=r"gg.gradients: no GradientTape recorded how ys were computed.*"
                                           r"with gg.GradientTape\(\) as tape:"):
        gg.gradients(y, [x])
    with pytest.raises(RuntimeError, match="no GradientTape recorded"):
        gg.gradients([y, y * 2], [x])


def test_gradients_still_work_where_they_are_valid():
    x, other = gg.Variable(3.0), gg.Variable(1.0)
    with gg.GradientTape():
        y = x * x
    assert gg.gradients(y, [x, other])[0].item() == 6.0  # the tape has closed: its record stays
    assert gg.gradients(x, [x])[0].item() == 1.0  # a target that is a source needs no record
    with gg.GradientTape():  # inside a tape, an unconnected target gives None, as tf.gradients in a graph
        assert gg.gradients(x * 0 + gg.constant(1.0), [other]) == [None]


# ---------------------------------------------------------------------------------------
# apply_gradients without gradients

def test_apply_gradients_with_no_pairs_raises():
    with pytest.raises(ValueError, match=r"SGD.apply_gradients: no gradients provided for any variable \(no "):
        opt.SGD().apply_gradients([])


def test_apply_gradients_with_only_none_gradients_raises_naming_the_variables():
    w, b = gg.Variable([1.0, 2.0], name="w"), gg.Variable(0.0, name="b")
    optimizer = opt.Adam()
    with pytest.raises(ValueError, match=r"Adam.apply_gradients: no gradients provided for any variable "
                                         r"\(all None: 'w', 'b'\)"):
        optimizer.apply_gradients(zip([None, None], [w, b]))
    assert optimizer.iterations == 0 and optimizer.variables == [] and w.numpy().tolist() == [1.0, 2.0]


def test_a_none_gradient_among_others_warns_once_per_optimizer_and_variable():
    w, b, c = (gg.Variable([1.0, 1.0], name=n) for n in ("w", "b", "c"))  # not scalars: no == between them
    optimizer = opt.SGD(0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            optimizer.apply_gradients([(gg.ones((2,)), w), (None, b)])
        optimizer.apply_gradients([(gg.ones((2,)), w), (None, b), (None, c)])
        opt.SGD(0.5).apply_gradients([(gg.ones((2,)), w), (None, b)])  # another optimizer warns again
    messages = [str(m.message) for m in caught]
    assert [m.category for m in caught] == [UserWarning] * 3
    assert messages[0] == ("SGD.apply_gradients: no gradient (None) for Variable 'b', left unchanged; the loss does "
                           "not depend on it (this optimizer warns once per variable)")
    assert "Variable 'c'," in messages[1] and "'b'" not in messages[1] and "'b'" in messages[2]
    assert all(m.filename == __file__ for m in caught)  # the warning points at the caller's line
    assert w.numpy().tolist() == [1.0 - 5 * 0.5] * 2 and b.numpy().tolist() == c.numpy().tolist() == [1.0, 1.0]


# ---------------------------------------------------------------------------------------
# learning rates: settable, schedules, get(name)

def test_learning_rate_is_settable_and_checked_as_in_the_constructor():
    var = gg.Variable(1.0, dtype="float64")
    optimizer = opt.SGD(0.5)
    optimizer.apply_gradients([(gg.constant(1.0, dtype="float64"), var)])
    optimizer.learning_rate = 0.25
    assert optimizer.learning_rate == 0.25
    optimizer.apply_gradients([(gg.constant(1.0, dtype="float64"), var)])
    assert float(var) == 1.0 - 0.5 - 0.25
    optimizer.learning_rate = lambda step: 0.125 * step
    assert optimizer.learning_rate == 0.25  # step 2
    for bad in (-1.0, math.nan, math.inf, "0.1", None, True):
        with pytest.raises(ValueError, match=r"^SGD: learning_rate must be a finite non-negative number, got "):
            optimizer.learning_rate = bad
    assert optimizer.learning_rate == 0.25


def test_a_learning_rate_set_between_gg_function_replays_is_used():
    var = gg.Variable([1.0, 2.0])
    optimizer = opt.SGD(0.5)

    @gg.function
    def train_step():
        with gg.GradientTape() as tape:
            loss = (var * var).sum()
        optimizer.apply_gradients(zip(tape.gradient(loss, [var]), [var]))

    train_step()  # capture: lr 0.5, var = 0
    var.assign([1.0, 2.0])
    optimizer.learning_rate = 0.25
    train_step()  # a replay reads the new rate: var = var - 0.25 * 2 var
    assert var.numpy().tolist() == [0.5, 1.0]
    optimizer.learning_rate = opt.PiecewiseConstantDecay([2], [1.0, 0.125])
    train_step()  # step 2: 1.0
    train_step()  # step 3: 0.125
    assert var.numpy().tolist() == [-0.375, -0.75] and optimizer.iterations == 4


def test_schedules_follow_the_keras_formulas():
    exp = opt.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert exp(0) == 0.1 and math.isclose(exp(5), 0.1 * 0.5 ** 0.5) and math.isclose(exp(20), 0.025)
    assert math.isclose(opt.ExponentialDecay(0.1, 10, 0.5, staircase=True)(19), 0.05)
    cos = opt.CosineDecay(1.0, decay_steps=10, alpha=0.1)
    assert cos(0) == 1.0 and math.isclose(cos(5), 0.9 * 0.5 + 0.1) and math.isclose(cos(50), 0.1)
    warm = opt.CosineDecay(0.0, 10, warmup_target=1.0, warmup_steps=4)
    assert [round(warm(s), 12) for s in (0, 2, 4, 9, 14, 100)] == [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    piece = opt.PiecewiseConstantDecay(boundaries=[10, 20], values=[1.0, 0.5, 0.1])
    assert [piece(s) for s in (0, 10, 11, 20, 21, 1000)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    linear = opt.LinearWarmup(0.1, warmup_steps=4)
    assert [round(linear(s), 12) for s in (0, 1, 4, 40)] == [0.0, 0.025, 0.1, 0.1]
    chained = opt.LinearWarmup(opt.ExponentialDecay(1.0, 1, 0.5), warmup_steps=2, initial_learning_rate=0.5)
    assert [chained(s) for s in (0, 1, 2, 3, 4)] == [0.5, 0.75, 1.0, 0.5, 0.25]
    assert math.isclose(opt.InverseTimeDecay(1.0, 2, 0.5)(4), 0.5)
    poly = opt.PolynomialDecay(1.0, 10, end_learning_rate=0.0, power=2.0)
    assert math.isclose(poly(5), 0.25) and poly(30) == 0.0
    assert math.isclose(opt.PolynomialDecay(1.0, 10, 0.0, cycle=True)(15), 0.25)  # decay_steps grows to 20


def test_a_schedule_drives_an_optimizer_and_rejects_bad_arguments():
    var = gg.Variable(0.0, dtype="float64")
    optimizer = opt.SGD(opt.PiecewiseConstantDecay([0], [1.0, 0.5]))
    for _ in range(3):
        optimizer.apply_gradients([(gg.constant(-1.0, dtype="float64"), var)])
    assert float(var) == 1.0 + 0.5 + 0.5
    assert "decay_steps=10" in repr(opt.ExponentialDecay(0.1, 10, 0.5))
    assert opt.CosineDecay(0.1, 5).get_config()["decay_steps"] == 5
    with pytest.raises(ValueError, match="one more entry than boundaries"):
        opt.PiecewiseConstantDecay([1, 2], [1.0, 0.5])
    with pytest.raises(ValueError, match="boundaries must increase"):
        opt.PiecewiseConstantDecay([2, 1], [1.0, 0.5, 0.1])
    with pytest.raises(ValueError, match="decay_steps must be a finite positive number, got 0"):
        opt.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\]"):
        opt.CosineDecay(0.1, 10, alpha=2.0)


def test_get_returns_an_optimizer_by_name():
    adam = opt.get("adam")
    assert type(adam) is opt.Adam and adam.learning_rate == 0.001
    sgd = opt.get("SGD", learning_rate=0.1, momentum=0.9)
    assert type(sgd) is opt.SGD and (sgd.learning_rate, sgd.momentum) == (0.1, 0.9)
    assert type(opt.get("AdamW")) is opt.AdamW and type(opt.get("rmsprop")) is opt.RMSprop
    assert opt.get(sgd) is sgd
    with pytest.raises(ValueError, match=r"unknown optimizer 'adma'; the names are 'sgd', 'adam', 'adamw', "
                                         r"'rmsprop', 'adagrad'"):
        opt.get("adma")
    with pytest.raises(TypeError, match="expected an optimizer name"):
        opt.get(3)


def test_no_internal_module_takes_a_top_level_name_users_would_call():
    # matrix trace and gradient/training checkpoints are names other libraries give to functions
    assert not hasattr(gg, "trace") and not hasattr(gg, "checkpoint")
    assert callable(gg.tensor)
