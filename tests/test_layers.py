"""Keras-style layers in gg.nn: Dense built lazily from its first input (and the older
(in_features, units) form), inputs cast to the layer's dtype, activations and initializers
by name, Dropout, Flatten, Sequential (training, summary, repr), float64 gradient checks,
and layers inside gg.function."""
import re
import warnings

import numpy as np
import pytest

import gpugrad as gg

pytestmark = pytest.mark.usefixtures("device")  # every test runs on each device (cuda skipped without one)


def host(t):
    return t.numpy()


# ---------------------------------------------------------------------------------------
# Dense: construction, lazy build, backward compatibility

def test_dense_with_units_alone_builds_at_its_first_call_from_the_last_axis(rng, device):
    layer = gg.nn.Dense(64)
    assert not layer.built and layer.kernel is None and layer.bias is None and layer.in_features is None
    assert layer.variables == [] and layer.trainable_variables == []
    out = layer(gg.constant(rng.normal(size=(5, 3)), dtype=gg.float32))
    assert layer.built and layer.in_features == 3
    assert layer.kernel.shape == (3, 64) and layer.bias.shape == (64,)
    assert layer.kernel.device == device and layer.bias.device == device
    assert out.shape == (5, 64) and out.dtype == np.float32 and out.device == device
    assert [p for p, _ in layer.named_variables()] == ["kernel", "bias"]
    kernel = layer.kernel
    layer(gg.ones((2, 3)))
    assert layer.kernel is kernel  # built once


def test_dense_builds_where_its_first_input_lives(device):
    x = gg.ones((2, 4), device=device)
    layer = gg.nn.Dense(3)
    with gg.device("cpu"):
        layer(x)
    assert layer.kernel.device == x.device and layer.bias.device == x.device


def test_dense_with_in_features_builds_at_construction(device):
    layer = gg.nn.Dense(4, "relu", in_features=3)
    assert layer.built and layer.kernel.shape == (3, 4) and layer.kernel.device == device
    with pytest.raises(ValueError, match="last axis has 3 entries"):
        layer(gg.ones((2, 5)))


def test_dense_rejects_inputs_of_another_width_or_rank_after_building():
    layer = gg.nn.Dense(2)
    layer(gg.ones((1, 3)))
    with pytest.raises(ValueError, match=r"got shape \(1, 4\)"):
        layer(gg.ones((1, 4)))
    with pytest.raises(ValueError, match="rank 2 or more"):
        gg.nn.Dense(2)(gg.ones((3,)))


def test_dense_applies_to_every_leading_axis(rng):
    x = rng.normal(size=(2, 5, 3))
    layer = gg.nn.Dense(4, dtype="float64", bias_initializer=0.5, seed=0)
    out = layer(x)
    assert out.shape == (2, 5, 4)
    np.testing.assert_allclose(host(out), x @ host(layer.kernel) + 0.5, rtol=1e-12)


@pytest.mark.parametrize("make, in_features, units", [
    (lambda: gg.nn.Dense(2, 3), 2, 3),
    (lambda: gg.nn.Dense(2, units=3), 2, 3),
    (lambda: gg.nn.Dense(in_features=2, units=3), 2, 3),
    (lambda: gg.nn.Dense(np.int64(2), 3), 2, 3),
    (lambda: gg.nn.Dense(1, 3, gg.nn.sigmoid, "normal", 0.1, 7, "float64"), 1, 3),
], ids=["two_ints", "int_and_units_keyword", "keywords", "numpy_int", "old_positional_order"])
def test_two_leading_ints_keep_meaning_in_features_then_units(make, in_features, units):
    layer = make()
    assert layer.built and (layer.in_features, layer.units) == (in_features, units)
    assert layer.kernel.shape == (in_features, units)


def test_the_old_positional_order_still_reaches_every_argument():
    layer = gg.nn.Dense(1, 3, gg.nn.sigmoid, "normal", 0.1, 7, "float64")
    assert layer.activation is gg.nn.sigmoid and layer.kernel.dtype == np.float64
    np.testing.assert_array_equal(host(layer.bias), np.full(3, 0.1))
    np.testing.assert_array_equal(host(layer.kernel), host(gg.random.normal((1, 3), dtype="float64", seed=7)))


def test_one_positional_int_is_units_as_in_keras():
    layer = gg.nn.Dense(3, "tanh")
    assert layer.units == 3 and layer.activation is gg.nn.tanh and not layer.built


@pytest.mark.parametrize("args, kwargs, error, text", [
    ((0,), {}, ValueError, "units must be a positive int, got 0"),
    ((3,), dict(in_features=0), ValueError, "in_features must be a positive int, got 0"),
    ((3,), dict(dtype="int32"), ValueError, "float dtype"),
    ((3,), dict(bogus=1), TypeError, "bogus"),
    ((2, 3), dict(use_bias=False, name="x", seed=1, device=None, extra=2), TypeError, "extra"),
], ids=["units_zero", "in_features_zero", "int_dtype", "unknown_keyword", "legacy_unknown_keyword"])
def test_dense_rejects_bad_arguments(args, kwargs, error, text):
    with pytest.raises(error, match=re.escape(text)):
        gg.nn.Dense(*args, **kwargs)


def test_inputs_that_are_no_tensors_are_named():
    with pytest.raises(TypeError, match="matmul: input 0 is None"):
        gg.nn.Dense(2, in_features=3)(None)
    with pytest.raises(ValueError, match=r"Dense '.*': cannot build from the input None"):
        gg.nn.Dense(2)(None)


def test_use_bias_false_has_no_bias(rng):
    layer = gg.nn.Dense(3, use_bias=False, dtype="float64")
    x = rng.normal(size=(4, 2))
    out = layer(x)
    assert layer.bias is None and layer.variables == [layer.kernel]
    assert [p for p, _ in layer.named_variables()] == ["kernel"]
    np.testing.assert_allclose(host(out), x @ host(layer.kernel), rtol=1e-12)


# ---------------------------------------------------------------------------------------
# Inputs cast to the layer's dtype

def test_float64_data_into_a_float32_dense_computes_in_float32(rng):
    layer = gg.nn.Dense(3)
    x = gg.constant(rng.normal(size=(5, 2)))
    assert x.dtype == np.float64
    with gg.GradientTape() as tape:
        tape.watch(x)
        loss = gg.reduce_sum(layer(x))
    assert loss.dtype == np.float32 and layer.kernel.dtype == np.float32
    grad_x, grad_kernel, grad_bias = tape.gradient(loss, [x, layer.kernel, layer.bias])
    assert grad_kernel.dtype == np.float32 and grad_bias.dtype == np.float32
    assert grad_x.dtype == np.float64  # the gradient reaches the input in the input's dtype


def test_numpy_float64_and_integer_inputs_are_cast(rng):
    layer = gg.nn.Dense(2)
    assert layer(rng.normal(size=(3, 4))).dtype == np.float32
    assert layer(np.arange(8).reshape(2, 4)).dtype == np.float32
    assert layer(gg.constant([[1, 2, 3, 4]], dtype="int32")).dtype == np.float32
    assert layer([[True, False, True, False]]).dtype == np.float32


def test_a_float64_layer_casts_float32_inputs_up():
    layer = gg.nn.Dense(2, dtype="float64")
    assert layer(gg.ones((1, 3), dtype="float32")).dtype == np.float64


# ---------------------------------------------------------------------------------------
# Activations and initializers by name

@pytest.mark.parametrize("name, reference", [
    ("relu", lambda z: np.maximum(z, 0)),
    ("sigmoid", lambda z: 1 / (1 + np.exp(-z))),
    ("tanh", np.tanh),
    ("softplus", lambda z: np.log1p(np.exp(z))),
    ("linear", lambda z: z),
    (None, lambda z: z),
    ("softmax", lambda z: np.exp(z) / np.exp(z).sum(-1, keepdims=True)),
    ("log_softmax", lambda z: z - np.log(np.exp(z).sum(-1, keepdims=True))),
])
def test_activations_by_name(rng, name, reference):
    x = rng.normal(size=(6, 3))
    layer = gg.nn.Dense(4, activation=name, dtype="float64", bias_initializer=0.1, seed=2)
    out = layer(x)
    np.testing.assert_allclose(host(out), reference(x @ host(layer.kernel) + 0.1), rtol=1e-10, atol=1e-12)


def test_unknown_activation_names_the_known_ones():
    with pytest.raises(ValueError) as info:
        gg.nn.Dense(3, activation="rleu")
    message = str(info.value)
    assert "'rleu'" in message and all(repr(n) in message for n in ["relu", "sigmoid", "tanh", "linear"])
    with pytest.raises(TypeError, match="activation"):
        gg.nn.Dense(3, activation=3.5)
    assert gg.nn.get_activation("relu") is gg.nn.relu and gg.nn.get_activation("linear") is None


def test_initializers_by_name_have_keras_scales():
    fan_in, fan_out = 400, 200
    shape = (fan_in, fan_out)

    def kernel(name):
        return host(gg.nn.Dense(fan_out, kernel_initializer=name, in_features=fan_in, seed=3).kernel)

    assert (kernel("zeros") == 0).all() and (kernel("ones") == 1).all()
    for name, limit in [("glorot_uniform", np.sqrt(6 / (fan_in + fan_out))), ("he_uniform", np.sqrt(6 / fan_in)),
                        ("random_uniform", 0.05)]:
        k = kernel(name)
        assert np.abs(k).max() <= limit and np.abs(k).max() > 0.95 * limit, name
        assert k.std() == pytest.approx(limit / np.sqrt(3), rel=0.05), name
    for name, stddev in [("glorot_normal", np.sqrt(2 / (fan_in + fan_out))), ("he_normal", np.sqrt(2 / fan_in))]:
        k = kernel(name)
        assert k.std() == pytest.approx(stddev, rel=0.05), name  # the truncation is compensated
        assert np.abs(k).max() <= 2 * stddev / 0.87962566103423978 * 1.0001, name  # truncated at 2 sigma
    assert kernel("random_normal").std() == pytest.approx(0.05, rel=0.05)
    assert kernel("normal").std() == pytest.approx(1.0, rel=0.05)
    for name in ["glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "random_normal", "random_uniform"]:
        np.testing.assert_array_equal(kernel(name), kernel(name), err_msg=name)  # seeded
        assert kernel(name).shape == shape


def test_bias_initializer_by_name_number_and_seeded_random():
    assert host(gg.nn.Dense(3, bias_initializer="ones", in_features=2).bias).tolist() == [1, 1, 1]
    assert host(gg.nn.Dense(3, bias_initializer=0.25, in_features=2).bias).tolist() == [0.25] * 3
    a, b = (gg.nn.Dense(3, bias_initializer="random_normal", in_features=2, seed=4) for _ in range(2))
    np.testing.assert_array_equal(host(a.bias), host(b.bias))
    assert not np.array_equal(host(a.bias), host(a.kernel)[0])


def test_callable_initializers_in_keras_form_and_with_a_seed():
    def keras_style(shape, dtype=None):
        return np.full(shape, 2.0)

    seen = []

    def seeded(shape, dtype, seed):
        seen.append(seed)
        return gg.ones(shape, dtype=dtype)

    layer = gg.nn.Dense(2, kernel_initializer=keras_style, bias_initializer=seeded, in_features=3, seed=9)
    assert host(layer.kernel).tolist() == [[2.0, 2.0]] * 3 and layer.kernel.dtype == np.float32
    assert host(layer.bias).tolist() == [1.0, 1.0] and len(seen) == 1 and seen[0] is not None
    with pytest.raises(ValueError, match=r"returned shape \(3,\)"):
        gg.nn.Dense(2, kernel_initializer=lambda shape, dtype: np.zeros(3), in_features=3)


def test_unknown_initializer_names_the_known_ones():
    with pytest.raises(ValueError) as info:
        gg.nn.Dense(3, kernel_initializer="xavier")
    message = str(info.value)
    assert "'xavier'" in message
    assert all(repr(n) in message for n in ["zeros", "ones", "glorot_uniform", "glorot_normal", "he_normal",
                                           "he_uniform", "random_normal", "random_uniform"])
    with pytest.raises(ValueError, match="'nope'"):
        gg.nn.Dense(3, bias_initializer="nope")


# ---------------------------------------------------------------------------------------
# Dropout and Flatten

def test_dropout_is_the_identity_at_inference(rng):
    x = gg.constant(rng.normal(size=(4, 5)), dtype=gg.float32)
    layer = gg.nn.Dropout(0.5, seed=0)
    for out in [layer(x), layer(x, training=False), layer(x, training=None)]:
        np.testing.assert_array_equal(host(out), host(x))


def test_dropout_drops_and_rescales_while_training(device):
    x = gg.ones((200, 100))
    out = host(gg.nn.Dropout(0.3, seed=1)(x, training=True))
    dropped = (out == 0).mean()
    assert dropped == pytest.approx(0.3, abs=0.02)
    np.testing.assert_allclose(out[out != 0], 1 / 0.7, rtol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(host(gg.nn.Dropout(0.0)(x, training=True)), host(x))


def test_dropout_seeds_give_reproducible_sequences_of_masks():
    x = gg.ones((10, 10))
    a, b, c = gg.nn.Dropout(0.5, seed=5), gg.nn.Dropout(0.5, seed=5), gg.nn.Dropout(0.5, seed=6)
    first, second = host(a(x, training=True)), host(a(x, training=True))
    assert not np.array_equal(first, second)  # each training call draws a new mask
    np.testing.assert_array_equal(host(b(x, training=True)), first)
    np.testing.assert_array_equal(host(b(x, training=True)), second)
    assert not np.array_equal(host(c(x, training=True)), first)


def test_dropout_gradient_is_the_mask_times_the_scale():
    x = gg.constant(np.ones((4, 6)))
    layer = gg.nn.Dropout(0.5, seed=2, dtype="float64")
    with gg.GradientTape() as tape:
        tape.watch(x)
        out = layer(x, training=True)
    np.testing.assert_array_equal(host(tape.gradient(out, x)), host(out))


@pytest.mark.parametrize("rate", [-0.1, 1.0, "0.5", True])
def test_dropout_rejects_bad_rates(rate):
    with pytest.raises(ValueError, match="rate"):
        gg.nn.Dropout(rate)


def test_flatten_keeps_the_batch_axis():
    assert gg.nn.Flatten()(gg.ones((2, 3, 4))).shape == (2, 12)
    assert gg.nn.Flatten()(gg.ones((5,))).shape == (5, 1)
    assert gg.nn.Flatten()(gg.zeros((0, 3, 2))).shape == (0, 6)
    assert gg.nn.Flatten()(np.zeros((2, 2))).dtype == np.float32  # floats are cast
    assert gg.nn.Flatten()(gg.constant([[1, 2]], dtype="int32")).dtype == np.int32  # integers keep theirs


# ---------------------------------------------------------------------------------------
# Sequential

def mlp(seed=0):
    return gg.nn.Sequential([gg.nn.Dense(16, "tanh", seed=seed), gg.nn.Dense(1, seed=seed + 1)])


def test_sequential_trains_a_small_mlp_with_a_tape_and_an_optimizer(device):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(64, 2))  # float64 data: the float32 layers cast it
    y = gg.constant((x[:, :1] * x[:, 1:]).astype(np.float32))
    model = mlp()
    optimizer = gg.optimizers.Adam(0.02)
    losses = []
    for _ in range(200):
        with gg.GradientTape() as tape:
            loss = gg.reduce_mean(gg.square(model(x) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses.append(float(loss))
    assert losses[-1] < 0.2 * losses[0]
    assert [p for p, _ in model.named_variables()] == ["layers/0/kernel", "layers/0/bias", "layers/1/kernel",
                                                       "layers/1/bias"]
    assert all(v.device == device and v.dtype == np.float32 for v in model.variables)


def test_sequential_passes_training_to_the_layers_that_take_it():
    calls = []

    def plain(x):
        calls.append("plain")
        return x

    model = gg.nn.Sequential([gg.nn.Dense(8, in_features=4), gg.nn.Dropout(0.5, seed=0), plain,
                              gg.nn.Sequential([gg.nn.Dropout(0.5, seed=1)])])
    x = gg.ones((3, 4))
    np.testing.assert_array_equal(host(model(x)), host(model(x, training=False)))
    trained = host(model(x, training=True))
    inferred = host(model.layers[0](x))
    assert (trained == 0).any() and not np.array_equal(trained, inferred)
    assert calls == ["plain"] * 3


def test_sequential_add_pop_layers_and_trainable_variables():
    model = gg.nn.Sequential()
    assert model.layers == [] and model.variables == []
    first = gg.nn.Dense(3, in_features=2)
    model.add(first)
    model.add(gg.nn.relu)
    model.add(gg.nn.Dense(1, in_features=3, use_bias=False))
    assert model.layers[0] is first and len(model.layers) == 3
    assert model.trainable_variables == [first.kernel, first.bias, model.layers[2].kernel]
    frozen = gg.Variable(1.0, trainable=False)
    model.layers[2].extra = frozen
    assert model.variables[-1] is frozen and all(v is not frozen for v in model.trainable_variables)
    assert model.pop() is not first and len(model.layers) == 2
    with pytest.raises(TypeError, match="callable"):
        model.add(3)
    assert model(gg.ones((4, 2))).shape == (4, 3)


def test_sequential_summary_lists_layers_shapes_and_parameter_counts():
    model = gg.nn.Sequential([gg.nn.Dense(64, "relu", name="hidden"), gg.nn.Dropout(0.5, name="drop"),
                              gg.nn.Dense(1, name="out")], name="regressor")
    unbuilt = model.summary(print_fn=None)
    assert 'Model: "regressor"' in unbuilt and "unbuilt" in unbuilt
    assert re.search(r"hidden \(Dense\) +\? +unbuilt", unbuilt)
    assert re.search(r"drop \(Dropout\) +\? +0", unbuilt)

    model(np.zeros((5, 4)))
    text = model.summary(print_fn=None)
    assert "unbuilt" not in text
    assert re.search(r"Layer \(type\) +Output Shape +Param #", text)
    assert re.search(r"hidden \(Dense\) +\(None, 64\) +320\n", text)
    assert re.search(r"drop \(Dropout\) +\(None, 64\) +0\n", text)
    assert re.search(r"out \(Dense\) +\(None, 1\) +65\n", text)
    assert "Total params: 385" in text and "Trainable params: 385" in text and "Non-trainable params: 0" in text
    lines = []
    assert model.summary(print_fn=lines.append) is None
    assert "\n".join(lines) == text


def test_sequential_build_from_a_shape_with_a_batch_of_none():
    model = gg.nn.Sequential([gg.nn.Flatten(), gg.nn.Dense(10)])
    model.build((None, 4, 4))
    assert model.built and model.layers[1].kernel.shape == (16, 10)
    text = model.summary(print_fn=None)
    assert re.search(r"\(None, 16\) +0\n", text) and re.search(r"\(None, 10\) +170\n", text)
    assert "Total params: 170" in text


def test_summary_of_a_large_model_groups_thousands():
    model = gg.nn.Sequential([gg.nn.Dense(1000, in_features=1000)])
    model(gg.zeros((1, 1000)))
    assert "Total params: 1,001,000" in model.summary(print_fn=None)


def test_reprs_read_like_the_constructor_calls():
    dense = gg.nn.Dense(64, activation="relu", name="hidden")
    assert repr(dense) == "Dense(64, activation='relu', name='hidden')"
    dense(gg.ones((1, 3)))
    assert repr(dense) == "Dense(64, activation='relu', in_features=3, name='hidden')"
    assert repr(gg.nn.Dense(2, 1, activation=gg.nn.sigmoid, use_bias=False, dtype="float64", name="d")) == \
        "Dense(1, activation=sigmoid, use_bias=False, dtype='float64', in_features=2, name='d')"
    assert repr(gg.nn.Dropout(0.25, seed=3, name="drop")) == "Dropout(0.25, seed=3, name='drop')"
    assert repr(gg.nn.Flatten(name="flat")) == "Flatten(name='flat')"
    model = gg.nn.Sequential([gg.nn.Flatten(name="flat"), gg.nn.Dense(2, name="d")], name="net")
    assert repr(model) == "Sequential([\n    Flatten(name='flat'),\n    Dense(2, name='d'),\n], name='net')"
    assert repr(gg.nn.Sequential(name="empty")) == "Sequential([], name='empty')"


def test_default_names_count_per_class_as_in_keras():
    names = [gg.nn.Dense(1).name for _ in range(3)]
    assert all(re.fullmatch(r"dense(_\d+)?", n) for n in names) and len(set(names)) == 3
    assert re.fullmatch(r"sequential(_\d+)?", gg.nn.Sequential().name)


# ---------------------------------------------------------------------------------------
# Gradients: float64 checks against central differences

def test_dense_gradcheck_for_input_kernel_and_bias(rng):
    layer = gg.nn.Dense(3, "tanh", dtype="float64", bias_initializer="random_normal", seed=1)
    x = rng.normal(size=(4, 2))
    layer(x)
    kernel, bias = layer.kernel, layer.bias

    def f(x, k, b):  # the layer with its Variables swapped for the checked inputs
        layer.kernel, layer.bias = k, b
        try:
            return layer(x)
        finally:
            layer.kernel, layer.bias = kernel, bias

    assert gg.gradcheck(f, [x, host(kernel), host(bias)])


def test_sequential_gradcheck_for_the_input_and_variable_gradients(rng):
    model = gg.nn.Sequential([gg.nn.Dense(4, "sigmoid", dtype="float64", seed=3), gg.nn.Flatten(dtype="float64"),
                              gg.nn.Dense(2, "softplus", dtype="float64", seed=4)])
    x = rng.normal(size=(3, 2))
    assert gg.gradcheck(lambda x: model(x), [x])

    weights = rng.normal(size=(3, 2))
    with gg.GradientTape() as tape:
        loss = gg.reduce_sum(model(x) * weights)
    grads = tape.gradient(loss, model.trainable_variables)
    for var, grad in zip(model.trainable_variables, grads):
        start = host(var)

        def loss_at(value, var=var):
            var.assign(value)
            return float(gg.reduce_sum(model(x) * weights))

        numeric, = gg.approximate_gradient(loss_at, start, eps=1e-6)
        var.assign(start)
        np.testing.assert_allclose(host(grad), numeric, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------
# Layers inside gg.function

def test_a_lazily_built_model_in_a_gg_function_replays_like_eager_steps(device):
    def run(compiled):
        model = mlp(seed=10)
        optimizer = gg.optimizers.SGD(0.1)
        x = gg.constant(np.linspace(-1, 1, 32).reshape(16, 2))

        def step(x):
            with gg.GradientTape() as tape:
                loss = gg.reduce_mean(gg.square(model(x) - 0.5))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
            return loss

        step = gg.function(step) if compiled else step
        return [float(step(x)) for _ in range(5)]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # building in the capture does not make the step run eagerly
        compiled = run(True)
    np.testing.assert_allclose(compiled, run(False), rtol=1e-6)
    assert compiled[-1] < compiled[0]
