"""Partial checkpoints: gg.restore(strict=False) and its RestoreResult(missing, unexpected),
weights-only saves and restores (weights_only=True), a model+optimizer file loaded into a bare
model, a fresh optimizer of the same class (training resumes exactly) or one of another class,
and files written before optimizer state had a prefix of its own."""
import json
import re

import numpy as np
import pytest
import safetensors.numpy
from safetensors import safe_open

import gpugrad as gg
from gpugrad.checkpoints import RestoreResult
from gpugrad.module import Dense

pytestmark = pytest.mark.usefixtures("device")  # every test runs on each device (cuda skipped without one)


class Net(gg.Module):
    def __init__(self, seed):
        self.hidden = Dense(3, 4, seed=seed, activation=gg.nn.sigmoid)
        self.out = Dense(4, 1, seed=seed + 1)

    def __call__(self, x):
        return self.out(self.hidden(x))


WEIGHTS = ["hidden/kernel", "hidden/bias", "out/kernel", "out/bias"]
MODEL_NAMES = [f"model/{n}" for n in WEIGHTS]


def adam_names(prefix="optimizer", slots=("m", "v")):
    return [f"{prefix}/iterations"] + [f"{prefix}/{s}/{n}" for n in MODEL_NAMES for s in slots]


def values(obj):
    return {name: v.numpy() for name, v in gg.module._walk(obj, "", set())}


def assert_same_values(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def data(rng):
    return (gg.constant(rng.normal(size=(6, 3)), dtype=gg.float32),
            gg.constant(rng.normal(size=(6, 1)), dtype=gg.float32))


def train(opt, model, x, y, steps):
    loss = lambda: gg.reduce_mean((model(x) - y) ** 2)  # noqa: E731
    return [float(opt.minimize(loss, model.trainable_variables)) for _ in range(steps)]


@pytest.fixture
def trained(tmp_path, rng):
    """(path of a model+Adam checkpoint after 3 steps, model, optimizer, x, y)."""
    x, y = data(rng)
    model, opt = Net(seed=1), gg.optimizers.Adam(0.05)
    train(opt, model, x, y, 3)
    path = tmp_path / "train.safetensors"
    gg.save(path, {"model": model, "optimizer": opt})
    return path, model, opt, x, y


# ---------------------------------------------------------------------------------------
# the layout

def test_optimizer_state_lives_under_the_optimizer_path_with_its_class_in_the_metadata(trained):
    path, model, opt, _, _ = trained
    assert list(gg.list_checkpoint(path)) == sorted(MODEL_NAMES + adam_names())
    loaded = safetensors.numpy.load_file(path)
    np.testing.assert_array_equal(loaded["optimizer/v/model/out/kernel"], opt.slots(model.out.kernel)["v"].numpy())
    assert int(loaded["optimizer/iterations"]) == 3
    with safe_open(path, framework="np") as handle:
        recorded = json.loads(handle.metadata()["optimizers"])
    assert recorded == {"optimizer": {"type": "Adam", "slots": ["m", "v", "vhat"]}}


def test_a_strict_restore_that_matches_returns_empty_lists(trained):
    path, _, _, _, _ = trained
    result = gg.restore(path, {"model": Net(seed=7), "optimizer": gg.optimizers.Adam(0.05)})
    assert result == RestoreResult(missing=[], unexpected=[])
    missing, unexpected = result  # unpacks like PyTorch's load_state_dict result
    assert missing == [] and unexpected == []


# ---------------------------------------------------------------------------------------
# a model+optimizer file into a bare model

def test_into_a_bare_model_strict_raises_and_says_how_to_skip_the_optimizer(trained):
    path, _, _, _, _ = trained
    target = Net(seed=9)
    before = values(target)
    with pytest.raises(ValueError) as error:
        gg.restore(path, {"model": target})
    message = str(error.value)
    assert "9 mismatches; nothing was restored" in message
    assert ("'optimizer/m/model/hidden/kernel': expected nothing (the object has no such name), found shape (3, 4) "
            "float32") in message
    assert "weights_only=True" in message and "strict=False" in message
    assert_same_values(values(target), before)


def test_into_a_bare_model_strict_false_loads_the_weights_and_lists_the_optimizer_as_unexpected(trained):
    path, model, _, x, _ = trained
    target = Net(seed=9)
    result = gg.restore(path, {"model": target}, strict=False)
    assert result.missing == []
    assert result.unexpected == sorted(adam_names())
    assert_same_values(values(target), values(model))
    np.testing.assert_array_equal(target(x).numpy(), model(x).numpy())


def test_into_a_bare_model_weights_only_is_strict_about_the_weights_alone(trained):
    path, model, _, _, _ = trained
    target = Net(seed=9)
    assert gg.restore(path, {"model": target}, weights_only=True) == ([], [])
    assert_same_values(values(target), values(model))
    target.extra = gg.Variable(np.zeros(2, np.float32))  # a weight the file lacks is still an error
    with pytest.raises(ValueError, match=r"1 mismatch; .*\n  'model/extra': expected shape \(2,\) float32, found "
                                         r"nothing \(not in the file\)$"):
        gg.restore(path, {"model": target}, weights_only=True)


def test_weights_only_restore_leaves_the_object_optimizer_alone(trained):
    path, model, _, _, _ = trained
    target, opt = Net(seed=9), gg.optimizers.Adam(0.05)
    assert gg.restore(path, {"model": target, "optimizer": opt}, weights_only=True) == ([], [])
    assert opt.iterations == 0 and opt.variables == []
    assert_same_values(values(target), values(model))


# ---------------------------------------------------------------------------------------
# a fresh model and optimizer

@pytest.mark.parametrize("strict", [True, False])
def test_into_a_fresh_model_and_the_same_optimizer_training_resumes_exactly(trained, strict):
    path, model, opt, x, y = trained
    fresh_model, fresh_opt = Net(seed=20), gg.optimizers.Adam(0.05)
    result = gg.restore(path, {"model": fresh_model, "optimizer": fresh_opt}, strict=strict)
    assert result == ([], [])
    assert fresh_opt.iterations == 3
    for var, fresh_var in zip(model.trainable_variables, fresh_model.trainable_variables):
        assert_same_values({k: s.numpy() for k, s in opt.slots(var).items()},
                           {k: s.numpy() for k, s in fresh_opt.slots(fresh_var).items()})
    assert train(fresh_opt, fresh_model, x, y, 4) == train(opt, model, x, y, 4)
    assert_same_values(values(fresh_model), values(model))


def test_strict_false_with_an_optimizer_that_has_more_state_lists_it_missing_and_keeps_it(trained, rng):
    path, model, opt, _, _ = trained
    fresh_model, fresh_opt = Net(seed=20), gg.optimizers.Adam(0.05)
    fresh_model.extra = gg.Variable(np.ones(2, np.float32))
    fresh_opt.build(fresh_model.trainable_variables)  # state for "extra", which the file lacks
    fresh_opt.slots(fresh_model.extra)["m"].assign(np.full(2, 5.0, np.float32))
    result = gg.restore(path, {"model": fresh_model, "optimizer": fresh_opt}, strict=False)
    assert result.missing == ["model/extra", "optimizer/m/model/extra", "optimizer/v/model/extra"]
    assert result.unexpected == []
    assert fresh_opt.iterations == 3
    np.testing.assert_array_equal(fresh_opt.slots(fresh_model.extra)["m"].numpy(), [5.0, 5.0])
    np.testing.assert_array_equal(fresh_model.extra.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(fresh_opt.slots(fresh_model.out.bias)["v"].numpy(),
                                  opt.slots(model.out.bias)["v"].numpy())


# ---------------------------------------------------------------------------------------
# a model and an optimizer of another class

@pytest.mark.parametrize("make_optimizer", [
    lambda: gg.optimizers.SGD(0.1),
    lambda: gg.optimizers.SGD(0.1, momentum=0.9),
    lambda: gg.optimizers.AdamW(0.05),  # same slots, another class: not loaded either
], ids=["sgd", "sgd-momentum", "adamw"])
def test_into_a_model_and_another_optimizer_class(trained, make_optimizer):
    path, model, _, x, y = trained
    fresh_model, other = Net(seed=20), make_optimizer()
    other.build(fresh_model.trainable_variables)
    name = type(other).__name__
    with pytest.raises(ValueError) as error:
        gg.restore(path, {"model": fresh_model, "optimizer": other})
    message = str(error.value)
    assert "(1 mismatch; nothing was restored)" in message
    assert (f"'optimizer': the object's optimizer there is a{'n' if name[0] == 'A' else ''} {name}, the file holds "
            f"the state of an Adam (9 names, not loaded: 'optimizer/iterations', ") in message
    assert "same class" in message

    result = gg.restore(path, {"model": fresh_model, "optimizer": other}, strict=False)
    assert result.unexpected == sorted(adam_names())
    own = [f"optimizer/{s}/{n}" for n in MODEL_NAMES for s in other.slot_names
           if s in other.slots(fresh_model.hidden.kernel)]
    assert result.missing == ["optimizer/iterations"] + own
    assert other.iterations == 0  # nothing of the Adam reaches the other optimizer
    for var in fresh_model.trainable_variables:
        for slot in other.slots(var).values():
            assert not slot.numpy().any()
    assert_same_values(values(fresh_model), values(model))  # the weights are loaded
    train(other, fresh_model, x, y, 2)  # and it trains from there
    assert other.iterations == 2


def test_optimizer_state_at_another_path_is_named_in_the_hint(trained):
    path, _, _, _, _ = trained
    with pytest.raises(ValueError, match=re.escape("The file holds no optimizer state at 'opt' (it holds some at "
                                                   "'optimizer')")):
        gg.restore(path, {"model": Net(seed=2), "opt": gg.optimizers.Adam()})
    result = gg.restore(path, {"model": Net(seed=2), "opt": gg.optimizers.Adam()}, strict=False)
    assert result == (["opt/iterations"], sorted(adam_names()))


# ---------------------------------------------------------------------------------------
# strict=False in general

def test_strict_false_lists_missing_and_unexpected_and_loads_the_rest(tmp_path):
    path = tmp_path / "d.safetensors"
    gg.save(path, {"a": gg.Variable([1.0, 2.0]), "b": {"c": gg.Variable(np.int32(4))}, "gone": gg.Variable(3.0)})
    target = {"a": gg.Variable([0.0, 0.0]), "b": {"c": gg.Variable(np.int32(0)), "new": gg.Variable(9.0)}}
    result = gg.restore(path, target, strict=False)
    assert isinstance(result, RestoreResult)
    assert result.missing == ["b/new"] and result.unexpected == ["gone"]
    np.testing.assert_array_equal(target["a"].numpy(), [1.0, 2.0])
    assert int(target["b"]["c"]) == 4 and float(target["b"]["new"]) == 9.0


def test_strict_false_still_raises_on_a_shape_or_dtype_difference_and_changes_nothing(tmp_path):
    path = tmp_path / "s.safetensors"
    gg.save(path, {"w": gg.Variable(np.ones((2, 3), np.float32)), "d": gg.Variable(np.ones(2, np.float32)),
                   "ok": gg.Variable([5.0]), "gone": gg.Variable(1.0)})
    target = {"w": gg.Variable(np.zeros((3, 2), np.float32)), "d": gg.Variable(np.zeros(2, np.float64)),
              "ok": gg.Variable([0.0]), "new": gg.Variable(0.0)}
    for strict in (True, False):
        with pytest.raises(ValueError) as error:
            gg.restore(path, target, strict=strict)
        message = str(error.value)
        assert "'w': expected shape (3, 2) float32, found shape (2, 3) float32" in message
        assert "'d': expected shape (2,) float64, found shape (2,) float32" in message
        assert ("'new'" in message and "'gone'" in message) == strict  # strict=False skips those
        assert f"{4 if strict else 2} mismatches; nothing was restored" in message
        np.testing.assert_array_equal(target["ok"].numpy(), [0.0])


def test_a_failed_strict_false_restore_undoes_what_it_built(trained):
    path, _, _, _, _ = trained
    fresh_model, fresh_opt = Net(seed=3), gg.optimizers.Adam(0.05)
    fresh_model.out.bias = gg.Variable(np.zeros(2, np.float32))  # shape (2,), the file's is (1,)
    with pytest.raises(ValueError, match=r"'model/out/bias': expected shape \(2,\) float32, found shape \(1,\)"):
        gg.restore(path, {"model": fresh_model, "optimizer": fresh_opt}, strict=False)
    assert fresh_opt.variables == [] and fresh_opt.iterations == 0


# ---------------------------------------------------------------------------------------
# weights-only files

def test_a_weights_only_file_holds_the_weights_alone(trained, tmp_path):
    _, model, opt, _, _ = trained
    path = tmp_path / "weights.safetensors"
    gg.save(path, {"model": model, "optimizer": opt}, weights_only=True)
    assert list(gg.list_checkpoint(path)) == sorted(MODEL_NAMES)
    with safe_open(path, framework="np") as handle:
        assert handle.metadata()["optimizers"] == "{}"

    target, fresh_opt = Net(seed=4), gg.optimizers.Adam()
    with pytest.raises(ValueError, match=re.escape("The file holds no optimizer state at 'optimizer': pass "
                                                   "weights_only=True")):
        gg.restore(path, {"model": target, "optimizer": fresh_opt})
    assert gg.restore(path, {"model": target, "optimizer": fresh_opt}, strict=False) == (["optimizer/iterations"], [])
    assert gg.restore(path, {"model": target, "optimizer": fresh_opt}, weights_only=True) == ([], [])
    assert gg.restore(path, {"model": target}) == ([], [])
    assert fresh_opt.iterations == 0
    assert_same_values(values(target), values(model))


def test_a_weights_only_save_of_a_module_names_its_variables_as_named_variables(tmp_path):
    model = Net(seed=5)
    path = tmp_path / "net.safetensors"
    gg.save(path, model, weights_only=True)
    assert list(gg.list_checkpoint(path)) == sorted(WEIGHTS)
    target = Net(seed=6)
    gg.restore(path, target)
    assert_same_values(values(target), values(model))


# ---------------------------------------------------------------------------------------
# files of the earlier layout (slots at <variable path>/<slot>)

def write_old_layout(path, model, opt, stray=None):
    """The file gg.save wrote before optimizer state had its own prefix."""
    tensors = {f"model/{n}": v.numpy() for n, v in model.named_variables()}
    tensors["optimizer/iterations"] = np.array(opt.iterations, dtype=np.int64)
    for n, v in model.named_variables():
        for slot, value in opt.slots(v).items():
            tensors[f"model/{n}/{slot}"] = value.numpy()
    if stray is not None:
        index = [v is stray for v in opt.variables].index(True)
        tensors[f"optimizer/variables/{index}"] = stray.numpy()
        for slot, value in opt.slots(stray).items():
            tensors[f"optimizer/variables/{index}/{slot}"] = value.numpy()
    safetensors.numpy.save_file(tensors, str(path), metadata={"format": "gpugrad", "gpugrad_version": "0.1.0"})


def test_an_old_layout_file_restores_model_and_optimizer(tmp_path, rng):
    x, y = data(rng)
    model, opt = Net(seed=1), gg.optimizers.Adam(0.05)
    stray = gg.Variable(np.ones(2, np.float32))
    train(opt, model, x, y, 2)
    opt.apply_gradients([(gg.ones((2,)), stray)])
    path = tmp_path / "old.safetensors"
    write_old_layout(path, model, opt, stray)
    assert "model/out/kernel/m" in gg.list_checkpoint(path)

    fresh_model, fresh_opt = Net(seed=8), gg.optimizers.Adam(0.05)
    fresh_stray = gg.Variable(np.zeros(2, np.float32))
    fresh_opt.build(fresh_model.trainable_variables + [fresh_stray])
    assert gg.restore(path, {"model": fresh_model, "optimizer": fresh_opt}) == ([], [])
    assert fresh_opt.iterations == 3
    np.testing.assert_array_equal(fresh_stray.numpy(), stray.numpy())
    np.testing.assert_array_equal(fresh_opt.slots(fresh_stray)["v"].numpy(), opt.slots(stray)["v"].numpy())

    bare = Net(seed=8)
    assert gg.restore(path, {"model": bare}, weights_only=True) == ([], [])
    assert_same_values(values(bare), values(model))
    result = gg.restore(path, {"model": Net(seed=8)}, strict=False)
    assert "optimizer/m/model/out/kernel" in result.unexpected and result.missing == []
    assert train(fresh_opt, fresh_model, x, y, 3) == train(opt, model, x, y, 3)


def test_a_model_restored_unwrapped_from_a_model_optimizer_file_is_told_its_key(trained):
    path, model, _, _, _ = trained
    target = Net(seed=9)
    before = values(target)
    with pytest.raises(ValueError) as error:
        gg.restore(path, target)
    message = str(error.value)
    assert message.endswith("The object's names are all in the file under 'model/': pass the object under that "
                            "key, as in gg.restore(path, {'model': obj}) (with weights_only=True to skip optimizer "
                            "state).")
    assert "weights_only=True to restore" not in message  # the other hints would mislead
    with pytest.warns(UserWarning, match="no name of the object is in .*nothing was restored"):
        result = gg.restore(path, target, strict=False)
    assert result.missing == WEIGHTS and len(result.unexpected) == 13
    assert_same_values(values(target), before)
    gg.restore(path, {"model": target}, weights_only=True)
    assert_same_values(values(target), values(model))
