"""gg.save, gg.restore and gg.list_checkpoint: round trips (modules, dicts, optimizers, training
resumed exactly), the saved names (attribute paths, optimizer state under the optimizer's
path) read back by plain safetensors, strict matching with every mismatch in one error,
unreadable files, and atomic writes."""
import os
import re

import numpy as np
import pytest
import safetensors
import safetensors.numpy
from safetensors import TensorSpec, safe_open, serialize_file

import gpugrad as gg
from gpugrad.module import Dense

pytestmark = pytest.mark.usefixtures("device")  # every test runs on each device (cuda skipped without one)


class Block(gg.Module):
    def __init__(self, seed):
        self.layers = [Dense(3, 4, seed=seed, activation=gg.nn.sigmoid), Dense(4, 2, seed=seed + 1)]
        self.extras = {"scale": gg.Variable(np.full((2,), 1.5 + seed)),
                       "pair": (gg.Variable(np.int32(seed), trainable=False),
                                gg.Variable([seed % 2 == 0, True], trainable=False))}

    def __call__(self, x):
        return self.layers[1](self.layers[0](x)) * gg.cast(self.extras["scale"], gg.float32)


class Net(gg.Module):
    def __init__(self, seed):
        self.encoder = Block(seed)
        self.head = Dense(2, 1, seed=seed + 5)
        self._private = gg.Variable(7.0, trainable=False)  # private attributes are saved too, after the public ones

    def __call__(self, x):
        return self.head(self.encoder(x))


BLOCK_NAMES = ["layers/0/kernel", "layers/0/bias", "layers/1/kernel", "layers/1/bias", "extras/scale",
               "extras/pair/0", "extras/pair/1"]
NET_NAMES = [f"encoder/{n}" for n in BLOCK_NAMES] + ["head/kernel", "head/bias", "_private"]


def values(obj):
    """{name: host value} of every Variable under a Module or dict, named as checkpoints name them."""
    return {name: v.numpy() for name, v in gg.module._walk(obj, "", set())}


def assert_same_values(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        assert a[name].dtype == b[name].dtype, name


def loss_of(model, x, y):
    return lambda: gg.reduce_mean((model(x) - y) ** 2)


def data(rng):
    return gg.constant(rng.normal(size=(5, 3)), dtype=gg.float32), gg.constant(rng.normal(size=(5, 1)),
                                                                             dtype=gg.float32)


# ---------------------------------------------------------------------------------------
# round trips

def test_module_round_trip_through_submodules_lists_tuples_and_dicts(tmp_path, device):
    path = tmp_path / "net.safetensors"
    saved, target = Net(seed=1), Net(seed=10)
    gg.save(path, saved)
    assert list(gg.list_checkpoint(path)) == sorted(NET_NAMES)
    assert "_private" in gg.list_checkpoint(path)
    buffers = {name: v._data for name, v in target.named_variables()}
    gg.restore(path, target)
    assert_same_values(values(target), values(saved))
    for name, v in target.named_variables():
        assert v._data is buffers[name], f"{name} was replaced, not assigned in place"
        assert v.device == device
    assert float(target._private) == 7.0


def test_dict_of_variables_and_a_lone_variable_round_trip(tmp_path, rng):
    dtypes = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "bool", "complex64"]
    saved = {d: gg.Variable(rng.normal(size=(2, 3)).astype(d) if d != "bool" else rng.normal(size=(2, 3)) > 0)
             for d in dtypes}
    saved["scalar"] = gg.Variable(np.float64(3.25))
    saved["nested"] = {"deeper": {"x": gg.Variable(np.arange(4.0))}}
    path = tmp_path / "vars.safetensors"
    gg.save(path, saved)
    listing = gg.list_checkpoint(path)
    assert listing["scalar"] == ((), "float64") and listing["nested/deeper/x"] == ((4,), "float64")
    assert {listing[d] for d in dtypes} == {((2, 3), d) for d in dtypes}
    target = {d: gg.Variable(np.zeros((2, 3), dtype=d)) for d in dtypes}
    target["scalar"] = gg.Variable(np.float64(0))
    target["nested"] = {"deeper": {"x": gg.Variable(np.zeros(4))}}
    gg.restore(path, target)
    assert_same_values(values(target), values(saved))

    lone, other = gg.Variable([[1.0, 2.0]]), gg.Variable([[0.0, 0.0]])
    gg.save(path, lone)  # a lone Variable has the empty path
    assert gg.list_checkpoint(path) == {"": ((1, 2), "float32")}
    gg.restore(path, other)
    np.testing.assert_array_equal(other.numpy(), [[1.0, 2.0]])


def test_a_variable_reached_twice_is_saved_once_at_its_first_path(tmp_path):
    shared = gg.Variable([1.0, 2.0])
    path = tmp_path / "shared.safetensors"
    gg.save(path, {"a": shared, "b": [shared], "c": gg.Variable(0.5)})
    assert set(gg.list_checkpoint(path)) == {"a", "c"}


def train(opt, model, x, y, steps):
    return [float(opt.minimize(loss_of(model, x, y), model.trainable_variables)) for _ in range(steps)]


def test_optimizer_alone_round_trip(tmp_path, rng):
    x, y = data(rng)
    model = Block(seed=2)
    opt = gg.optimizers.Adam(0.01, amsgrad=True)
    train(opt, model, x, y, 3)
    path = tmp_path / "opt.safetensors"
    gg.save(path, opt)
    n = len(opt.variables)
    expected = {"iterations"} | {f"{s}variables/{i}" for i in range(n) for s in ("", "m/", "v/", "vhat/")}
    assert set(gg.list_checkpoint(path)) == expected
    fresh_model, fresh = Block(seed=9), gg.optimizers.Adam(0.01, amsgrad=True)
    with pytest.raises(ValueError, match=re.escape("optimizer.build(var_list)")):
        gg.restore(path, fresh)  # a fresh optimizer alone has no variables to put the values in
    fresh.build(fresh_model.trainable_variables)
    gg.restore(path, fresh)
    assert fresh.iterations == 3
    assert_same_values(values(fresh_model.trainable_variables), values(model.trainable_variables))
    for a, b in zip(opt.variables, fresh.variables):
        assert_same_values({k: s.numpy() for k, s in opt.slots(a).items()},
                           {k: s.numpy() for k, s in fresh.slots(b).items()})


@pytest.mark.parametrize("make_optimizer", [
    lambda: gg.optimizers.Adam(0.05),
    lambda: gg.optimizers.Adam(lambda step: 0.05 / (1 + step)),  # the schedule reads the restored iterations
    lambda: gg.optimizers.SGD(0.01, momentum=0.9),
], ids=["adam", "adam-schedule", "sgd-momentum"])
def test_resumed_training_follows_the_uninterrupted_trajectory_exactly(tmp_path, rng, make_optimizer):
    x, y = data(rng)
    model, opt = Net(seed=3), make_optimizer()
    train(opt, model, x, y, 4)
    path = tmp_path / "train.safetensors"
    gg.save(path, {"model": model, "optimizer": opt})
    uninterrupted = train(opt, model, x, y, 5)

    fresh_model, fresh_opt = Net(seed=30), make_optimizer()
    gg.restore(path, {"model": fresh_model, "optimizer": fresh_opt})  # builds fresh_opt's slots from the file
    assert fresh_opt.iterations == 4
    resumed = train(fresh_opt, fresh_model, x, y, 5)
    assert resumed == uninterrupted
    assert_same_values(values(fresh_model), values(model))


# ---------------------------------------------------------------------------------------
# names and the file itself

def test_names_are_paths_and_plain_safetensors_reads_the_file(tmp_path, rng):
    x, y = data(rng)
    model, opt = Net(seed=4), gg.optimizers.Adam(0.01)
    stray = gg.Variable(np.ones((2, 2), dtype=np.float32))  # optimizer state for a variable outside the model
    train(opt, model, x, y, 2)
    opt.apply_gradients([(gg.ones((2, 2)), stray)])
    path = tmp_path / "ckpt.safetensors"
    gg.save(path, {"model": model, "optimizer": opt})

    trained = [f"model/{n}" for n, v in model.named_variables() if v.trainable]
    stray_index = [v is stray for v in opt.variables].index(True)
    expected = ({f"model/{n}" for n in NET_NAMES} | {"optimizer/iterations"}
                | {f"optimizer/{s}/{n}" for n in trained for s in ("m", "v")}
                | {f"optimizer/{s}variables/{stray_index}" for s in ("", "m/optimizer/", "v/optimizer/")})
    loaded = safetensors.numpy.load_file(path)
    assert set(loaded) == expected
    assert loaded["optimizer/iterations"].shape == () and loaded["optimizer/iterations"].dtype == np.int64
    assert int(loaded["optimizer/iterations"]) == 3
    np.testing.assert_array_equal(loaded["model/head/kernel"], model.head.kernel.numpy())
    np.testing.assert_array_equal(loaded["optimizer/m/model/head/kernel"], opt.slots(model.head.kernel)["m"].numpy())
    np.testing.assert_array_equal(loaded[f"optimizer/variables/{stray_index}"], stray.numpy())
    with safe_open(path, framework="np") as handle:
        assert handle.metadata() == {"format": "gpugrad", "gpugrad_version": gg.__version__,
                                     "optimizers": '{"optimizer": {"slots": ["m", "v", "vhat"], "type": "Adam"}}'}
    assert {n: (a.shape, a.dtype.name) for n, a in loaded.items()} == gg.list_checkpoint(path)


def test_list_checkpoint_reads_only_the_header(tmp_path):
    raw = np.zeros(3, dtype=np.uint16)  # bfloat16 bits: NumPy cannot hold the values, the header is enough
    path = tmp_path / "bf16.safetensors"
    serialize_file({"w": TensorSpec(dtype="bfloat16", shape=(3,), data_ptr=raw.ctypes.data, data_len=6),
                    "b": TensorSpec(dtype="float32", shape=(), data_ptr=raw.ctypes.data, data_len=4)},
                   str(path), metadata=None)
    assert gg.list_checkpoint(path) == {"w": ((3,), "BF16"), "b": ((), "float32")}
    target = gg.Variable(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match=r"'w': expected shape \(3,\) float32, found shape \(3,\) BF16"):
        gg.restore(path, {"w": target, "b": gg.Variable(np.float32(1))})


# ---------------------------------------------------------------------------------------
# mismatches

def test_every_mismatch_is_listed_in_one_error_and_nothing_changes(tmp_path):
    path = tmp_path / "m.safetensors"
    gg.save(path, {"shape": gg.Variable(np.ones((2, 3), np.float32)), "dtype": gg.Variable(np.ones(3, np.float32)),
                   "ok": gg.Variable(np.ones(2, np.float32)), "unexpected": gg.Variable(np.ones(4, np.int64))})
    target = {"shape": gg.Variable(np.zeros((3, 2), np.float32)), "dtype": gg.Variable(np.zeros(3, np.float64)),
              "ok": gg.Variable(np.zeros(2, np.float32)), "missing": gg.Variable(np.zeros(5, np.float32))}
    before = values(target)
    with pytest.raises(ValueError) as error:
        gg.restore(path, target)
    message = str(error.value)
    assert "4 mismatches" in message and str(path) in message and "nothing was restored" in message
    assert "'shape': expected shape (3, 2) float32, found shape (2, 3) float32" in message
    assert "'dtype': expected shape (3,) float64, found shape (3,) float32" in message
    assert "'missing': expected shape (5,) float32, found nothing" in message
    assert "'unexpected': expected nothing (the object has no such name), found shape (4,) int64" in message
    assert "'ok'" not in message and "optimizer.build" not in message
    assert_same_values(values(target), before)  # "ok" matched but was not assigned


def test_a_failed_restore_undoes_the_optimizer_build_and_leaves_the_model(tmp_path, rng):
    x, y = data(rng)
    model, opt = Block(seed=5), gg.optimizers.Adam(0.01)
    train(opt, model, x, y, 2)
    path = tmp_path / "b.safetensors"
    gg.save(path, {"model": model, "optimizer": opt})
    fresh_model, fresh_opt = Block(seed=6), gg.optimizers.Adam(0.01)
    fresh_model.extras["scale"] = gg.Variable(np.zeros(3))  # one shape differs: nothing may be restored
    before = values(fresh_model)
    with pytest.raises(ValueError, match=r"(?s)3 mismatches; .*'model/extras/scale': expected shape \(3,\) float64, "
                                         r"found shape \(2,\) float64"):
        gg.restore(path, {"model": fresh_model, "optimizer": fresh_opt})
    assert fresh_opt.variables == [] and fresh_opt.iterations == 0
    assert_same_values(values(fresh_model), before)


def test_the_state_of_another_optimizer_class_is_named_with_both_classes(tmp_path, rng):
    x, y = data(rng)
    model, opt = Block(seed=5), gg.optimizers.Adam(0.01)
    train(opt, model, x, y, 1)
    path = tmp_path / "o.safetensors"
    gg.save(path, {"model": model, "optimizer": opt})
    with pytest.raises(ValueError, match=re.escape("'optimizer': the object's optimizer there is a RMSprop, the file "
                                                   "holds the state of an Adam (11 names, not loaded: "
                                                   "'optimizer/iterations', ")) as error:
        gg.restore(path, {"model": Block(seed=6), "optimizer": gg.optimizers.RMSprop()})
    assert "1 mismatch;" in str(error.value) and "strict=False" in str(error.value)


def test_duplicate_names_and_unsavable_objects_raise_before_writing(tmp_path):
    path = tmp_path / "d.safetensors"
    with pytest.raises(ValueError, match="two values would be saved under the name 'a/b'"):
        gg.save(path, {"a/b": gg.Variable(1.0), "a": {"b": gg.Variable(2.0)}})
    with pytest.raises(TypeError, match="save: expected a gg.Module"):
        gg.save(path, 3.0)
    with pytest.raises(TypeError, match="complex128"):
        gg.save(path, {"z": gg.Variable(np.ones(2, np.complex128))})
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------
# unreadable files

def test_a_missing_file_raises_file_not_found_naming_it(tmp_path):
    path = tmp_path / "nothing.safetensors"
    for call in (lambda: gg.restore(path, gg.Variable(1.0)), lambda: gg.list_checkpoint(path)):
        with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
            call()


@pytest.mark.parametrize("damage", ["cut-data", "cut-header", "empty", "header-json", "header-size"])
def test_truncated_or_corrupted_files_raise_value_error_and_change_nothing(tmp_path, damage):
    path = tmp_path / "bad.safetensors"
    gg.save(path, {"w": gg.Variable(np.arange(6.0).reshape(2, 3))})
    raw = bytearray(path.read_bytes())
    header_size = int.from_bytes(raw[:8], "little")
    if damage == "cut-data":
        raw = raw[:-5]
    elif damage == "cut-header":
        raw = raw[:8 + header_size // 2]
    elif damage == "empty":
        raw = b""
    elif damage == "header-json":
        raw[8] = ord("[")
    else:
        raw[:8] = (header_size + 1000).to_bytes(8, "little")
    path.write_bytes(bytes(raw))
    target = {"w": gg.Variable(np.zeros((2, 3)))}
    for call in (lambda: gg.restore(path, target), lambda: gg.list_checkpoint(path)):
        with pytest.raises(ValueError, match=re.escape(repr(str(path))) + " is not a readable safetensors checkpoint"):
            call()
    np.testing.assert_array_equal(target["w"].numpy(), np.zeros((2, 3)))


# ---------------------------------------------------------------------------------------
# atomic writes

def test_save_overwrites_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "a.safetensors"
    gg.save(path, {"w": gg.Variable([1.0])})
    gg.save(str(path), {"w": gg.Variable([2.0])})
    assert os.listdir(tmp_path) == ["a.safetensors"]
    np.testing.assert_array_equal(safetensors.numpy.load_file(path)["w"], [2.0])


def _fail_mid_write(real):
    def save_file(tensors, filename, metadata=None):
        real(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as half:
            half.truncate(os.path.getsize(filename) // 2)
        raise OSError("disk full")
    return save_file


@pytest.mark.parametrize("failure", ["serializer", "fsync", "replace"])
def test_a_failed_save_keeps_the_old_checkpoint_and_no_temporary_file(tmp_path, monkeypatch, failure):
    path = tmp_path / "a.safetensors"
    gg.save(path, {"w": gg.Variable([1.0, 2.0])})
    old = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    if failure == "serializer":
        monkeypatch.setattr(safetensors.numpy, "save_file", _fail_mid_write(safetensors.numpy.save_file))
    else:
        monkeypatch.setattr(os, failure, fail)
    with pytest.raises(OSError, match="disk full"):
        gg.save(path, {"w": gg.Variable([3.0, 4.0])})
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["a.safetensors"]
