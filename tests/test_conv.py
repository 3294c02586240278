"""2-D convolution: the conv2d primitive (gg.nn.conv2d) against a direct loop over output
positions (strides, VALID/SAME/explicit padding, dilations, channel counts, batches), its
gradients in float64 (first and second order, input and filters), its argument checks, and
gg.nn.Conv2D: lazy build, shapes, parameter count, summary line, repr, training in a
Sequential and inside gg.function."""
import re
import warnings

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import primitives as P
from helpers import first_grad

pytestmark = pytest.mark.usefixtures("device")  # every test runs on each device (cuda skipped without one)


def loop_conv2d(x, w, strides=(1, 1), padding="VALID", dilations=(1, 1)):
    """out[n, i, j, o] = sum x_padded[n, i*sh + a*dh, j*sw + b*dw, c] w[a, b, c, o], one output
    position at a time, in float64 (padding: "VALID", "SAME" or ((top, bottom), (left, right)))."""
    (n, h, wd, _), (kh, kw, _, o) = x.shape, w.shape
    (sh, sw), (dh, dw) = strides, dilations
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if padding == "VALID":
        pads = ((0, 0), (0, 0))
    elif padding == "SAME":
        pads = []
        for size, k, s in ((h, eh, sh), (wd, ew, sw)):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
    else:
        pads = padding
    xp = np.pad(x.astype(np.float64), [(0, 0), pads[0], pads[1], (0, 0)])
    ho, wo = (xp.shape[1] - eh) // sh + 1, (xp.shape[2] - ew) // sw + 1
    out = np.zeros((n, ho, wo, o))
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                patch = xp[b, i * sh:i * sh + eh:dh, j * sw:j * sw + ew:dw]  # (kh, kw, c)
                out[b, i, j] = np.tensordot(patch, w, 3)
    return out


# ---------------------------------------------------------------------------------------
# Forward values

FORWARD = [  # x shape, w shape, strides, padding, dilations
    ((1, 5, 5, 1), (3, 3, 1, 1), (1, 1), "VALID", (1, 1)),
    ((2, 7, 6, 3), (3, 2, 3, 4), (2, 1), "SAME", (1, 1)),
    ((3, 8, 9, 2), (2, 3, 2, 5), (2, 3), "VALID", (1, 1)),
    ((2, 9, 8, 4), (3, 3, 4, 2), (1, 1), "SAME", (2, 2)),
    ((2, 10, 9, 2), (2, 3, 2, 3), (2, 2), "VALID", (3, 2)),
    ((2, 6, 7, 3), (3, 2, 3, 1), (3, 2), "SAME", (2, 1)),
    ((2, 6, 5, 1), (1, 1, 1, 6), (1, 1), "SAME", (1, 1)),
    ((2, 5, 6, 2), (3, 3, 2, 2), (2, 2), ((2, 1), (0, 3)), (1, 2)),
    ((1, 3, 4, 2), (5, 5, 2, 3), (1, 2), "SAME", (1, 1)),  # a filter larger than the input
]


@pytest.mark.parametrize("x_shape, w_shape, strides, padding, dilations", FORWARD)
def test_conv2d_matches_a_loop(x_shape, w_shape, strides, padding, dilations, rng):
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)
    got = gg.nn.conv2d(gg.constant(x), gg.constant(w), strides, padding, dilations=dilations)
    expected = loop_conv2d(x, w, strides, padding, dilations)
    assert got.shape == expected.shape and got.dtype == gg.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_conv2d_in_float32_on_the_inputs_device(rng, device):
    x, w = rng.normal(size=(2, 6, 6, 3)).astype(np.float32), rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    got = gg.nn.conv2d(gg.constant(x), gg.constant(w), 2, "SAME")
    assert got.dtype == gg.float32 and got.device == device and got.shape == (2, 3, 3, 4)
    np.testing.assert_allclose(got.numpy(), loop_conv2d(x, w, (2, 2), "SAME"), rtol=1e-5, atol=1e-5)


def test_tensorflow_forms_of_strides_dilations_and_explicit_padding(rng):
    x, w = rng.normal(size=(1, 7, 7, 2)), rng.normal(size=(2, 2, 2, 3))
    got = gg.nn.conv2d(x, w, [1, 2, 2, 1], [[0, 0], [1, 2], [0, 1], [0, 0]], dilations=[1, 2, 2, 1])
    np.testing.assert_allclose(got.numpy(), loop_conv2d(x, w, (2, 2), ((1, 2), (0, 1)), (2, 2)), rtol=1e-12)


def test_conv2d_is_one_primitive_of_kind_contraction():
    assert gg.nn.conv2d(gg.ones((1, 3, 3, 1)), gg.ones((2, 2, 1, 1))).shape == (1, 2, 2, 1)
    assert P.conv2d.kind == "contraction" and P.conv2d.name == "conv2d" and not P.conv2d.linear
    f = gg.function(lambda a, b: gg.nn.conv2d(a, b, 2, "SAME"))
    f(gg.ones((1, 4, 4, 2)), gg.ones((3, 3, 2, 1)))
    steps = [line.strip() for line in f.trace_text().splitlines() if " = " in line]
    assert steps == ["%2: f32[1,2,2,1] = conv2d(%0, %1, strides=(2, 2), padding='SAME', dilations=(1, 1))  "
                     "# contraction"]


@pytest.mark.parametrize("x_shape, expected", [((0, 5, 5, 2), (0, 3, 3, 4)), ((1, 0, 5, 2), (1, 0, 3, 4))])
def test_empty_inputs_give_empty_outputs_and_zero_gradients(x_shape, expected):
    x, w = gg.ones(x_shape, dtype=gg.float64), gg.ones((5, 5, 2, 4), dtype=gg.float64)
    with gg.GradientTape() as tape:
        tape.watch([x, w])
        y = gg.nn.conv2d(x, w, 2, "SAME")
    assert y.shape == expected
    gx, gw = tape.gradient(gg.reduce_sum(y), [x, w], unconnected_gradients="zero")
    assert gx.shape == x.shape and gw.shape == w.shape and not gw.numpy().any()


# ---------------------------------------------------------------------------------------
# Gradients (float64)

GRADIENTS = [  # x shape, w shape, strides, padding, dilations
    ((2, 5, 6, 2), (3, 2, 2, 3), (1, 1), "VALID", (1, 1)),
    ((2, 5, 6, 2), (3, 2, 2, 3), (2, 1), "SAME", (1, 1)),
    ((1, 7, 6, 3), (2, 2, 3, 2), (2, 3), "VALID", (2, 1)),  # strides that skip the last rows
    ((2, 6, 5, 1), (2, 3, 1, 2), (1, 2), "SAME", (2, 2)),
    ((1, 4, 5, 2), (2, 2, 2, 1), (3, 2), ((3, 0), (1, 4)), (1, 1)),  # padding beyond the filter's extent
]


@pytest.mark.parametrize("x_shape, w_shape, strides, padding, dilations", GRADIENTS)
def test_gradcheck_input_and_filters(x_shape, w_shape, strides, padding, dilations, rng):
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)
    assert gg.gradcheck(lambda a, b: gg.nn.conv2d(a, b, strides, padding, dilations=dilations), [x, w])


@pytest.mark.parametrize("x_shape, w_shape, strides, padding, dilations", GRADIENTS)
def test_second_order_gradcheck(x_shape, w_shape, strides, padding, dilations, rng):
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)

    def squared(a, b):  # not bilinear, so that the Hessian blocks on the diagonal are not zero
        return gg.square(gg.nn.conv2d(a, b, strides, padding, dilations=dilations))

    assert gg.gradcheck(lambda a, b: first_grad(squared, [a, b]), [x, w])


def test_gradients_match_the_adjoint_of_the_loop(rng):
    # <g, conv(x, w)> is linear in x and in w: its gradients are the loop's adjoint, entry by entry.
    x, w = rng.normal(size=(2, 6, 7, 2)), rng.normal(size=(3, 2, 2, 3))
    strides, padding, dilations = (2, 2), "SAME", (1, 2)
    g = rng.normal(size=loop_conv2d(x, w, strides, padding, dilations).shape)
    xt, wt = gg.constant(x), gg.constant(w)
    with gg.GradientTape() as tape:
        tape.watch([xt, wt])
        y = gg.nn.conv2d(xt, wt, strides, padding, dilations=dilations)
    gx, gw = tape.gradient(y, [xt, wt], output_gradients=gg.constant(g))
    basis = lambda shape, k: np.eye(1, np.prod(shape), k).reshape(shape)  # noqa: E731
    ex = [np.sum(g * loop_conv2d(basis(x.shape, k), w, strides, padding, dilations)) for k in range(x.size)]
    ew = [np.sum(g * loop_conv2d(x, basis(w.shape, k), strides, padding, dilations)) for k in range(w.size)]
    np.testing.assert_allclose(gx.numpy().ravel(), ex, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw.numpy().ravel(), ew, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------
# Argument checks

@pytest.mark.parametrize("kwargs, message", [
    (dict(dilations=0), "conv2d: dilations must be a positive int, a pair or [1, a, b, 1], got 0"),
    (dict(dilations=(2, 1, 1)), "(2, 1, 1)"),
    (dict(padding=[[1, 1], [-1, 0]]), "[[1, 1], [-1, 0]]"),
    (dict(padding=[[1, 1], [1, 1], [0, 0], [0, 0]]), "[[1, 1], [1, 1], [0, 0], [0, 0]]"),
    (dict(data_format="NCHW"), "'NCHW'"),
    (dict(dilations=3), "filters of shape (3, 3, 1, 1) (dilated to 7 x 7) are larger than input of shape "
                        "(1, 5, 5, 1)"),
    (dict(padding=[[1, 0], [0, 1]], dilations=3), "larger than input of shape (1, 5, 5, 1) with padding "
                                                  "((1, 0), (0, 1))"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        gg.nn.conv2d(gg.ones((1, 5, 5, 1)), gg.ones((3, 3, 1, 1)), **kwargs)


def test_filters_without_taps_raise():
    with pytest.raises(ValueError, match=re.escape("filters of shape (0, 3, 1, 1) have no taps")):
        gg.nn.conv2d(gg.ones((1, 5, 5, 1)), gg.ones((0, 3, 1, 1)))


# ---------------------------------------------------------------------------------------
# Conv2D

def test_conv2d_layer_builds_at_its_first_call_from_the_channels(rng, device):
    layer = gg.nn.Conv2D(8, 3, padding="same", activation="relu")
    assert not layer.built and layer.kernel is None and layer.bias is None and layer.variables == []
    assert layer.name.startswith("conv2d")
    x = rng.normal(size=(2, 6, 5, 3))  # float64 data: the float32 layer casts it
    out = layer(x)
    assert layer.built and layer.in_channels == 3
    assert layer.kernel.shape == (3, 3, 3, 8) and layer.bias.shape == (8,)
    assert layer.kernel.device == device and layer.kernel.dtype == gg.float32
    assert [p for p, _ in layer.named_variables()] == ["kernel", "bias"]
    assert out.shape == (2, 6, 5, 8) and out.dtype == gg.float32 and out.device == device
    expected = np.maximum(loop_conv2d(x.astype(np.float32), layer.kernel.numpy(), padding="SAME"), 0)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    kernel = layer.kernel
    layer(gg.ones((1, 4, 4, 3)))
    assert layer.kernel is kernel  # built once
    with pytest.raises(ValueError, match=r"expected inputs \(batch, height, width, 3\), got shape \(1, 4, 4, 2\)"):
        layer(gg.ones((1, 4, 4, 2)))


@pytest.mark.parametrize("kwargs, input_shape, output_shape, params", [
    (dict(filters=4, kernel_size=3), (2, 7, 6, 2), (2, 5, 4, 4), 3 * 3 * 2 * 4 + 4),
    (dict(filters=5, kernel_size=(3, 2), strides=2, padding="SAME"), (1, 7, 6, 3), (1, 4, 3, 5), 3 * 2 * 3 * 5 + 5),
    (dict(filters=2, kernel_size=2, strides=(1, 3), use_bias=False), (3, 4, 9, 1), (3, 3, 3, 2), 2 * 2 * 1 * 2),
    (dict(filters=3, kernel_size=3, dilation_rate=2), (1, 8, 7, 2), (1, 4, 3, 3), 3 * 3 * 2 * 3 + 3),
])
def test_conv2d_layer_shapes_and_parameter_counts(kwargs, input_shape, output_shape, params):
    layer = gg.nn.Conv2D(**kwargs)
    assert layer.compute_output_shape((None,) + input_shape[1:]) == (None,) + output_shape[1:]
    assert layer(gg.ones(input_shape)).shape == output_shape
    assert sum(v.size for v in layer.trainable_variables) == params


def test_conv2d_layer_seed_initializers_and_repr():
    a, b = gg.nn.Conv2D(4, 3, seed=3, bias_initializer=0.5), gg.nn.Conv2D(4, 3, seed=3, bias_initializer=0.5)
    x = gg.ones((1, 5, 5, 2))
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    np.testing.assert_array_equal(a.bias.numpy(), np.full(4, 0.5, np.float32))
    limit = np.sqrt(6 / (3 * 3 * 2 + 3 * 3 * 4))  # glorot_uniform counts the receptive field in the fans
    assert np.abs(a.kernel.numpy()).max() <= limit
    layer = gg.nn.Conv2D(16, (3, 3), strides=2, padding="SAME", activation="relu", name="features")
    assert repr(layer) == ("Conv2D(16, kernel_size=(3, 3), strides=(2, 2), padding='same', activation='relu', "
                           "name='features')")
    assert repr(gg.nn.Conv2D(2, 1, use_bias=False, dtype="float64", name="c")) == \
        "Conv2D(2, kernel_size=(1, 1), use_bias=False, dtype='float64', name='c')"


@pytest.mark.parametrize("args, kwargs, error, message", [
    ((0, 3), {}, ValueError, "Conv2D: filters must be a positive int, got 0"),
    ((4, (3, 0)), {}, ValueError, "Conv2D: kernel_size must be a positive int or a pair of them, got (3, 0)"),
    ((4, 3), dict(strides=(1, 2, 1)), ValueError, "Conv2D: strides"),
    ((4, 3), dict(padding="full"), ValueError, "'full'"),
    ((4, 3), dict(activation="swish!"), ValueError, "Conv2D: unknown activation 'swish!'"),
    ((4, 3), dict(kernel_initializer="nope"), ValueError, "Conv2D: unknown initializer 'nope'"),
    ((4, 3), dict(dtype="int32"), ValueError, "dtype must be a float dtype"),
])
def test_conv2d_layer_bad_arguments_raise(args, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        gg.nn.Conv2D(*args, **kwargs)


def test_conv2d_layer_needs_rank_4():
    with pytest.raises(ValueError, match=r"Conv2D 'c': the input needs rank 4 .* got shape \(5, 5, 1\)"):
        gg.nn.Conv2D(2, 3, name="c")(gg.ones((5, 5, 1)))


def small_cnn(seed=0):
    return gg.nn.Sequential([gg.nn.Conv2D(4, 3, padding="same", activation="relu", seed=seed, name="conv"),
                             gg.nn.Conv2D(2, 3, strides=2, seed=seed + 1, name="down"),
                             gg.nn.Flatten(name="flat"), gg.nn.Dense(1, seed=seed + 2, name="out")], name="cnn")


def test_sequential_with_conv2d_summary_lines():
    model = small_cnn()
    unbuilt = model.summary(print_fn=None)
    assert re.search(r"conv \(Conv2D\) +\? +unbuilt", unbuilt)
    model(np.zeros((3, 8, 8, 1)))
    text = model.summary(print_fn=None)
    assert re.search(r"conv \(Conv2D\) +\(None, 8, 8, 4\) +40\n", text)  # 3*3*1*4 + 4
    assert re.search(r"down \(Conv2D\) +\(None, 3, 3, 2\) +74\n", text)  # 3*3*4*2 + 2
    assert re.search(r"flat \(Flatten\) +\(None, 18\) +0\n", text)
    assert re.search(r"out \(Dense\) +\(None, 1\) +19\n", text)
    assert "Total params: 133" in text and "Trainable params: 133" in text


def _images(n=16):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, 8, 8, 1)).astype(np.float32)
    y = (x[:, 2:6, 2:6, 0].mean(axis=(1, 2)) > 0).astype(np.float32)[:, None]  # bright centre or not
    return x, y


def test_a_small_cnn_training_step_lowers_the_loss(device):
    x, y = _images()
    model, optimizer = small_cnn(), gg.optimizers.Adam(0.01)
    y = gg.constant(y)
    losses = []
    for _ in range(10):
        with gg.GradientTape() as tape:
            loss = gg.reduce_mean(gg.nn.sigmoid_cross_entropy_with_logits(y, model(x)))
        grads = tape.gradient(loss, model.trainable_variables)
        assert all(g is not None and g.shape == v.shape for g, v in zip(grads, model.trainable_variables))
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    assert all(v.device == device for v in model.variables)


def test_a_cnn_in_gg_function_replays_like_eager_steps(device):
    x, y = _images(8)

    def run(compiled):
        model, optimizer = small_cnn(seed=20), gg.optimizers.SGD(0.1)

        def step(x):
            with gg.GradientTape() as tape:
                loss = gg.reduce_mean(gg.square(model(x) - y))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
            return loss

        step = gg.function(step) if compiled else step
        return [float(step(gg.constant(x))) for _ in range(4)]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled = run(True)
    np.testing.assert_allclose(compiled, run(False), rtol=1e-5)
    assert compiled[-1] < compiled[0]


def test_conv2d_layer_gradients_in_float64(rng):
    layer = gg.nn.Conv2D(2, (2, 3), strides=(2, 1), padding="same", activation="tanh", dtype="float64", seed=1)
    x = rng.normal(size=(2, 5, 4, 2))
    layer(x)
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()

    def f(a, k, b):
        return gg.tanh(gg.nn.conv2d(a, k, (2, 1), "SAME") + b)

    np.testing.assert_allclose(layer(x).numpy(), f(x, kernel, bias).numpy(), rtol=1e-12)
    assert gg.gradcheck(f, [x, kernel, bias])
