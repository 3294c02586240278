"""gg.Module collects Variables by attribute path; gg.nn.Dense, its initialization, its
gradients, and the TensorFlow 2 tutorials' network trained with SGD."""
import numpy as np
import pytest

import gpugrad as gg
from gpugrad import module as _module


class Bag(gg.Module):
    """A module whose attributes are set from keyword arguments, in order."""

    def __init__(self, **attributes):
        for key, value in attributes.items():
            setattr(self, key, value)


def paths(module):
    return [path for path, _ in module.named_variables()]


# ---------------------------------------------------------------------------------------
# Module: what is collected, and under which path

def test_variables_from_attributes_lists_tuples_dicts_and_submodules():
    v = {name: gg.Variable(0.0, name=name) for name in "abcdefg"}
    inner = Bag(w=v["e"], deeper=Bag(u=v["f"]))
    outer = Bag(a=v["a"], items=[v["b"], (v["c"],)], table={"key": v["d"], 3: inner}, child=inner, last=v["g"])
    assert paths(outer) == ["a", "items/0", "items/1/0", "table/key", "table/3/w", "table/3/deeper/u", "last"]
    assert [var for _, var in outer.named_variables()] == [v[n] for n in "abcdefg"]
    assert outer.variables == [v[n] for n in "abcdefg"]
    assert paths(inner) == ["w", "deeper/u"]


def test_layers_paths_are_joined_with_slashes():
    class Net(gg.Module):
        def __init__(self):
            self.layers = [gg.nn.Dense(1, 3), gg.nn.Dense(3, 1)]

    net = Net()
    assert paths(net) == ["layers/0/kernel", "layers/0/bias", "layers/1/kernel", "layers/1/bias"]
    assert net.variables == [net.layers[0].kernel, net.layers[0].bias, net.layers[1].kernel, net.layers[1].bias]


def test_tuples_alone_are_walked():
    a, b = gg.Variable(1.0), gg.Variable(2.0)
    assert Bag(pair=(a, b)).variables == [a, b]
    assert paths(Bag(pair=(a, (b,)))) == ["pair/0", "pair/1/0"]


def test_a_shared_variable_is_listed_once_at_its_first_path():
    shared = gg.Variable(1.0)
    other = gg.Variable(2.0)
    module = Bag(first=shared, many=[shared, other, shared], again={"x": shared}, sub=Bag(s=shared))
    assert module.named_variables() == [("first", shared), ("many/1", other)]


def test_non_variables_are_skipped_and_private_attributes_come_after_the_public_ones():
    public, private = gg.Variable(1.0), gg.Variable(2.0)
    module = Bag(_private=private, public=public, _hidden_list=[private], constant=gg.constant(3.0),
                 number=4.0, text="kernel", nothing=None)
    assert module.named_variables() == [("public", public), ("_private", private)]


def test_a_layer_kept_in_a_private_attribute_is_collected():
    class Wrapper(gg.Module):
        def __init__(self):
            self._layer = gg.nn.Dense(2, 3)
            self.scale = gg.Variable(1.0)

    wrapper = Wrapper()
    assert paths(wrapper) == ["scale", "_layer/kernel", "_layer/bias"]
    assert wrapper.trainable_variables == [wrapper.scale, wrapper._layer.kernel, wrapper._layer.bias]


def test_a_variable_reachable_through_a_public_path_keeps_that_path():
    """Private attributes never move the names public attributes give (checkpoint names)."""
    shared, hidden = gg.Variable(1.0), gg.Variable(2.0)
    inner = Bag(_cache=[shared], _only=hidden)
    module = Bag(_first=inner, a=Bag(_alias=shared), b=Bag(w=shared))
    assert module.named_variables() == [("b/w", shared), ("_first/_only", hidden)]


def test_trainable_variables_exclude_frozen_ones():
    trainable, frozen = gg.Variable(1.0), gg.Variable(2.0, trainable=False)
    module = Bag(frozen=frozen, layer=Bag(t=trainable))
    assert module.variables == [frozen, trainable]
    assert module.trainable_variables == [trainable]


def test_cycles_between_modules_end():
    leaf = gg.Variable(1.0)
    parent = Bag(w=leaf)
    child = Bag(parent=parent, v=gg.Variable(2.0))
    parent.child = child
    parent.me = [parent]
    assert paths(parent) == ["w", "child/v"]
    assert paths(child) == ["parent/w", "v"]


def test_empty_module_and_module_in_a_dict_of_lists():
    assert gg.Module().variables == [] and gg.Module().named_variables() == []
    var = gg.Variable(1.0)
    assert paths(Bag(blocks={"enc": [Bag(k=var)]})) == ["blocks/enc/0/k"]


# ---------------------------------------------------------------------------------------
# Dense

def test_dense_is_exported_from_nn():
    assert gg.nn.Dense is _module.Dense
    assert isinstance(gg.nn.Dense(2, 2), gg.Module)


def test_dense_shapes_and_default_init(device):
    layer = gg.nn.Dense(50, 30, seed=0)
    assert layer.kernel.shape == (50, 30) and layer.bias.shape == (30,)
    assert layer.kernel.dtype == np.float32 and layer.bias.dtype == np.float32
    assert layer.kernel.device == device and layer.bias.device == device
    assert layer.variables == [layer.kernel, layer.bias] and layer.trainable_variables == layer.variables
    limit = np.sqrt(6.0 / (50 + 30))
    kernel = layer.kernel.numpy()
    assert np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.95 * limit  # the whole range is used, not a narrower one
    assert abs(kernel.mean()) < 0.02 and kernel.std() == pytest.approx(limit / np.sqrt(3), rel=0.05)
    assert layer.bias.numpy().tolist() == [0.0] * 30


def test_dense_normal_kernel_and_constant_bias_as_in_the_seed():
    layer = gg.nn.Dense(100, 50, kernel_initializer="normal", bias_initializer=0.1, seed=3)
    kernel = layer.kernel.numpy()
    assert abs(kernel.mean()) < 0.05 and kernel.std() == pytest.approx(1.0, rel=0.05)
    assert np.abs(kernel).max() > 3.0  # normal tails, not a uniform
    np.testing.assert_array_equal(layer.bias.numpy(), np.full(50, 0.1, dtype=np.float32))
    np.testing.assert_array_equal(kernel, gg.random.normal((100, 50), seed=3).numpy())


def test_dense_seed_reproducibility():
    for init in ["glorot_uniform", "normal"]:
        a = gg.nn.Dense(3, 4, kernel_initializer=init, seed=11)
        b = gg.nn.Dense(3, 4, kernel_initializer=init, seed=11)
        c = gg.nn.Dense(3, 4, kernel_initializer=init, seed=12)
        np.testing.assert_array_equal(a.kernel.numpy(), b.kernel.numpy())
        assert not np.array_equal(a.kernel.numpy(), c.kernel.numpy())
        assert a.kernel is not b.kernel


def test_dense_callable_initializer_and_dtype():
    calls = []

    def init(shape, dtype, seed):
        calls.append((shape, dtype, seed))
        return np.arange(np.prod(shape), dtype=np.float64).reshape(shape)

    layer = gg.nn.Dense(2, 3, kernel_initializer=init, seed=5, dtype="float64")
    assert calls == [((2, 3), np.float64, 5)]
    assert layer.kernel.dtype == np.float64 and layer.bias.dtype == np.float64
    assert layer.kernel.numpy().tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_dense_applies_matmul_bias_and_activation(rng, device):
    x = rng.normal(size=(5, 2))
    linear = gg.nn.Dense(2, 3, bias_initializer=0.25, seed=1, dtype="float64")
    activated = gg.nn.Dense(2, 3, activation=gg.nn.sigmoid, bias_initializer=0.25, seed=1, dtype="float64")
    k = linear.kernel.numpy()
    z = x @ k + 0.25
    out = linear(gg.constant(x))
    assert out.shape == (5, 3) and out.device == device
    np.testing.assert_allclose(out.numpy(), z, rtol=1e-12)
    np.testing.assert_allclose(activated(gg.constant(x)).numpy(), 1 / (1 + np.exp(-z)), rtol=1e-12)


@pytest.mark.parametrize("kwargs, error, value", [
    (dict(in_features=0, units=3), ValueError, "0"),
    (dict(in_features=2, units=-1), ValueError, "-1"),
    (dict(in_features=2, units=2.5), ValueError, "2.5"),
    (dict(in_features=True, units=2), ValueError, "True"),
    (dict(in_features=2, units=3, activation="relux"), ValueError, "'relux'"),
    (dict(in_features=2, units=3, kernel_initializer="he_magic"), ValueError, "'he_magic'"),
], ids=["in_features_zero", "units_negative", "units_float", "in_features_bool", "unknown_activation",
        "unknown_initializer"])
def test_dense_rejects_bad_arguments_naming_them(kwargs, error, value):
    with pytest.raises(error) as info:
        gg.nn.Dense(**kwargs)
    assert value in str(info.value)


def test_dense_gradients_match_hand_derived_numpy(rng):
    x = rng.normal(size=(6, 2))
    upstream = rng.normal(size=(6, 3))
    layer = gg.nn.Dense(2, 3, activation=gg.nn.sigmoid, bias_initializer=0.1, seed=4, dtype="float64")
    with gg.GradientTape() as tape:
        loss = gg.reduce_sum(layer(gg.constant(x)) * gg.constant(upstream))
    grad_kernel, grad_bias = tape.gradient(loss, layer.trainable_variables)

    s = 1 / (1 + np.exp(-(x @ layer.kernel.numpy() + 0.1)))
    dz = upstream * s * (1 - s)
    np.testing.assert_allclose(grad_kernel.numpy(), x.T @ dz, rtol=1e-12)
    np.testing.assert_allclose(grad_bias.numpy(), dz.sum(axis=0), rtol=1e-12)


def test_tutorial_network_trains_with_sgd():
    """1 -> 3 sigmoid -> 1 on y = x^2 - 0.5, SGD(0.1), seeded init as in the tutorials."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(100, 1)).astype(np.float32)
    inputs, targets = gg.constant(x), gg.constant(x ** 2 - 0.5)

    class Net(gg.Module):
        def __init__(self):
            self.layers = [gg.nn.Dense(1, 3, gg.nn.sigmoid, kernel_initializer="normal", bias_initializer=0.1, seed=1),
                           gg.nn.Dense(3, 1, kernel_initializer="normal", bias_initializer=0.1, seed=101)]

        def __call__(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    net = Net()
    optimizer = gg.optimizers.SGD(0.1)

    def loss():
        return gg.reduce_mean(gg.square(net(inputs) - targets))

    first = float(loss())
    for _ in range(500):
        optimizer.minimize(loss)
    assert optimizer.iterations == 500
    assert float(loss()) <= 0.5 * first
    assert set(optimizer.variables) == set(net.trainable_variables) and len(optimizer.variables) == 4
