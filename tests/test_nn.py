"""gg.nn composites: softmax, log_softmax, the cross-entropies and conv2d against NumPy (and
PyTorch) references, their gradients through the tape (first and second order), and their errors."""
import re

import numpy as np
import pytest

import gpugrad as gg
from helpers import first_grad

pytestmark = pytest.mark.usefixtures("device")  # every test runs on each device (cuda skipped without one)


def tape_gradients(f, *xs):
    xs = [gg.constant(x, dtype=gg.float64) for x in xs]
    with gg.GradientTape() as tape:
        tape.watch(xs)
        y = f(*xs)
    return [g.numpy() for g in tape.gradient(y, xs)]


# ---------------------------------------------------------------------------------------
# softmax and log_softmax

def np_log_softmax(x, axis):
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


@pytest.mark.parametrize("axis", [-1, 0, 1, 2])
def test_softmax_and_log_softmax_values(axis, rng):
    x = rng.normal(size=(3, 4, 5)) * 3
    expected = np_log_softmax(x, axis)
    p = gg.nn.softmax(gg.constant(x), axis).numpy()
    np.testing.assert_allclose(p, np.exp(expected), rtol=1e-12)
    np.testing.assert_allclose(p.sum(axis=axis), 1.0, rtol=1e-12)
    np.testing.assert_allclose(gg.nn.log_softmax(gg.constant(x), axis).numpy(), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [gg.float32, gg.float64])
def test_softmax_is_stable_for_large_logits(dtype):
    x = gg.constant([[1000., 0.], [-1000., 0.], [1000., 1000.], [-1000., -1000.]], dtype=dtype)
    p, log_p = gg.nn.softmax(x), gg.nn.log_softmax(x)
    assert p.dtype == log_p.dtype == dtype
    np.testing.assert_array_equal(p.numpy(), [[1, 0], [0, 1], [.5, .5], [.5, .5]])
    half = np.log(np.array(.5, dtype=dtype))
    np.testing.assert_array_equal(log_p.numpy(), [[0, -1000], [-1000, 0], [half, half], [half, half]])
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.reduce_sum(gg.nn.log_softmax(x)[:, 0])
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [[0, 0], [1, -1], [.5, -.5], [.5, -.5]])


@pytest.mark.parametrize("fn", [gg.nn.softmax, gg.nn.log_softmax])
@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_gradcheck_first_and_second_order(fn, axis, rng):
    x = rng.normal(size=(3, 4))
    assert gg.gradcheck(lambda v: fn(v, axis), [x])
    assert gg.gradcheck(lambda v: first_grad(lambda u: fn(u, axis), [v]), [x])


# ---------------------------------------------------------------------------------------
# Cross-entropies

def distribution(rng, shape, axis=-1):
    return np.exp(np_log_softmax(rng.normal(size=shape), axis))


@pytest.mark.parametrize("shape, axis", [((4, 5), -1), ((4, 5), 0), ((2, 3, 4), 1), ((6,), -1)])
def test_softmax_cross_entropy_values_and_gradients(shape, axis, rng):
    labels, logits = distribution(rng, shape, axis), rng.normal(size=shape) * 2
    loss = gg.nn.softmax_cross_entropy_with_logits(gg.constant(labels), gg.constant(logits), axis)
    np.testing.assert_allclose(loss.numpy(), -(labels * np_log_softmax(logits, axis)).sum(axis=axis), rtol=1e-12)
    g_labels, g_logits = tape_gradients(
        lambda a, b: gg.reduce_sum(gg.nn.softmax_cross_entropy_with_logits(a, b, axis)), labels, logits)
    np.testing.assert_allclose(g_logits, np.exp(np_log_softmax(logits, axis)) - labels, atol=1e-14)
    np.testing.assert_allclose(g_labels, -np_log_softmax(logits, axis), rtol=1e-12)
    assert gg.gradcheck(lambda a, b: gg.nn.softmax_cross_entropy_with_logits(a, b, axis), [labels, logits])


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4), (3,)])
@pytest.mark.parametrize("int_dtype", ["int32", "int64"])
def test_sparse_cross_entropy_equals_dense_with_one_hot_labels(shape, int_dtype, rng):
    logits = rng.normal(size=shape)
    labels = rng.integers(0, shape[-1], size=shape[:-1]).astype(int_dtype)
    one_hot = np.eye(shape[-1])[labels]
    sparse = gg.nn.sparse_softmax_cross_entropy_with_logits(gg.constant(labels), gg.constant(logits))
    dense = gg.nn.softmax_cross_entropy_with_logits(gg.constant(one_hot), gg.constant(logits))
    assert sparse.shape == labels.shape
    np.testing.assert_allclose(sparse.numpy(), dense.numpy(), rtol=1e-14)
    np.testing.assert_allclose(sparse.numpy(), -np.take_along_axis(
        np_log_softmax(logits, -1), labels[..., None].astype(np.int64), -1)[..., 0], rtol=1e-12)
    [g_logits] = tape_gradients(
        lambda b: gg.reduce_sum(gg.nn.sparse_softmax_cross_entropy_with_logits(labels, b)), logits)
    np.testing.assert_allclose(g_logits, np.exp(np_log_softmax(logits, -1)) - one_hot, atol=1e-14)
    assert gg.gradcheck(lambda b: gg.nn.sparse_softmax_cross_entropy_with_logits(labels, b), [logits])
    assert gg.gradcheck(lambda b: first_grad(
        lambda u: gg.nn.sparse_softmax_cross_entropy_with_logits(labels, u), [b]), [logits])


def test_sparse_labels_get_no_gradient():
    labels, logits = gg.constant([1, 0]), gg.constant([[1., 2.], [3., 4.]])
    with gg.GradientTape() as tape:
        tape.watch([labels, logits])
        loss = gg.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    g_labels, g_logits = tape.gradient(loss, [labels, logits])
    assert g_labels is None and g_logits.shape == (2, 2)


@pytest.mark.parametrize("labels, bad", [([0, 5, 2], 5), ([-1, 0, 4], -1), ([7, -3, 1], -3)])
def test_sparse_labels_out_of_range_raise(labels, bad):
    with pytest.raises(ValueError, match=rf"label {bad} is out of range for 5 classes"):
        gg.nn.sparse_softmax_cross_entropy_with_logits(gg.constant(labels), gg.ones((3, 5)))


# ---------------------------------------------------------------------------------------
# conv2d

def same_pads(size, k, s):
    """TensorFlow's SAME padding along one axis: (before, after), the odd one after."""
    total = max((-(-size // s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def pair(strides):
    if isinstance(strides, int):
        return strides, strides
    return tuple(strides[1:3]) if len(strides) == 4 else tuple(strides)


def conv2d_reference(x, w, strides, padding):
    """A loop over output positions, in float64."""
    (kh, kw, _, o), (sh, sw) = w.shape, pair(strides)
    if padding == "SAME":
        x = np.pad(x, [(0, 0), same_pads(x.shape[1], kh, sh), same_pads(x.shape[2], kw, sw), (0, 0)])
    ho, wo = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    out = np.zeros((x.shape[0], ho, wo, o))
    for n in range(x.shape[0]):
        for i in range(ho):
            for j in range(wo):
                out[n, i, j] = np.tensordot(x[n, i * sh:i * sh + kh, j * sw:j * sw + kw], w, 3)
    return out


SHAPES = [((1, 5, 5, 1), (3, 3, 1, 1)), ((2, 7, 6, 3), (3, 2, 3, 4)), ((3, 8, 5, 2), (4, 4, 2, 3)),
          ((2, 4, 4, 2), (4, 4, 2, 2)), ((2, 6, 9, 3), (1, 1, 3, 2)), ((0, 5, 5, 2), (2, 2, 2, 3))]
STRIDES = [1, 2, (2, 1), [1, 2, 2, 1], (1, 3)]
PADDINGS = ["VALID", "SAME"]


@pytest.mark.parametrize("x_shape, w_shape", SHAPES)
@pytest.mark.parametrize("strides", STRIDES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_conv2d_matches_a_loop(x_shape, w_shape, strides, padding, rng):
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)
    got = gg.nn.conv2d(gg.constant(x), gg.constant(w), strides, padding)
    expected = conv2d_reference(x, w, strides, padding)
    assert got.shape == expected.shape and got.dtype == gg.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape", SHAPES)
@pytest.mark.parametrize("strides", STRIDES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_conv2d_matches_torch(x_shape, w_shape, strides, padding, rng):
    torch = pytest.importorskip("torch")
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)
    (sh, sw), (kh, kw) = pair(strides), w_shape[:2]
    nchw = torch.from_numpy(x).permute(0, 3, 1, 2)
    if padding == "SAME":  # torch pads symmetrically: pad explicitly as (left, right, top, bottom)
        nchw = torch.nn.functional.pad(nchw, same_pads(x_shape[2], kw, sw) + same_pads(x_shape[1], kh, sh))
    expected = torch.nn.functional.conv2d(nchw, torch.from_numpy(w).permute(3, 2, 0, 1), stride=(sh, sw))
    got = gg.nn.conv2d(gg.constant(x), gg.constant(w), strides, padding)
    np.testing.assert_allclose(got.numpy(), expected.permute(0, 2, 3, 1).numpy(), rtol=1e-12, atol=1e-12)


def test_conv2d_same_puts_the_odd_padding_at_the_end_and_correlates():
    ones = gg.nn.conv2d(gg.ones((1, 3, 3, 1)), gg.ones((2, 2, 1, 1)), 1, "SAME")
    np.testing.assert_array_equal(ones.numpy()[0, :, :, 0], [[4, 4, 2], [4, 4, 2], [2, 2, 1]])
    x = gg.reshape(gg.range(9, dtype=gg.float32), (1, 3, 3, 1))
    corner = gg.reshape(gg.constant([[0., 0.], [0., 1.]]), (2, 2, 1, 1))  # not flipped: picks the later pixel
    np.testing.assert_array_equal(gg.nn.conv2d(x, corner).numpy()[0, :, :, 0], [[4, 5], [7, 8]])


@pytest.mark.parametrize("strides", [1, 2, (2, 1)])
@pytest.mark.parametrize("padding", PADDINGS)
def test_conv2d_gradcheck(strides, padding, rng):
    x, w = rng.normal(size=(2, 5, 6, 2)), rng.normal(size=(3, 2, 2, 3))
    assert gg.gradcheck(lambda a, b: gg.nn.conv2d(a, b, strides, padding), [x, w])


def test_conv2d_second_derivative_matches_differences(rng):
    x, w, v = rng.normal(size=(1, 4, 5, 2)), rng.normal(size=(2, 3, 2, 2)), rng.normal(size=(2, 3, 2, 2))

    def directional(a, b):  # v . d/dw sum(conv2d(x, w)^2), itself through a tape
        with gg.GradientTape() as tape:
            tape.watch(b)
            y = gg.reduce_sum(gg.square(gg.nn.conv2d(a, b, 2, "SAME")))
        return gg.reduce_sum(tape.gradient(y, b) * v)

    got = tape_gradients(directional, x, w)
    expected = gg.approximate_gradient(lambda a, b: float(directional(gg.constant(a), gg.constant(b))), x, w)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("x_shape, expected", [((1, 0, 5, 2), (1, 0, 3, 4)), ((2, 5, 0, 2), (2, 3, 0, 4))])
def test_conv2d_same_on_an_empty_input_gives_an_empty_output(x_shape, expected):
    assert gg.nn.conv2d(gg.ones(x_shape), gg.ones((5, 5, 2, 4)), 2, "SAME").shape == expected


def test_conv2d_keeps_float32():
    y = gg.nn.conv2d(gg.ones((1, 4, 4, 2)), gg.ones((3, 3, 2, 5)), 2, "SAME")
    assert y.dtype == gg.float32 and y.shape == (1, 2, 2, 5)


# ---------------------------------------------------------------------------------------
# Errors name the offending values

@pytest.mark.parametrize("x_shape, w_shape, kwargs, error, message", [
    ((5, 5, 1), (3, 3, 1, 1), {}, ValueError, "(5, 5, 1)"),
    ((1, 5, 5, 1), (3, 1, 1), {}, ValueError, "(3, 1, 1)"),
    ((1, 5, 5, 2), (3, 3, 3, 1), {}, ValueError, "input of shape (1, 5, 5, 2) has 2 channels but filters of shape "
                                                 "(3, 3, 3, 1) expect 3"),
    ((1, 5, 5, 1), (3, 3, 1, 1), dict(padding="same"), ValueError, "'same'"),
    ((1, 5, 5, 1), (3, 3, 1, 1), dict(padding="FULL"), ValueError, "'FULL'"),
    ((1, 5, 5, 1), (3, 3, 1, 1), dict(strides=0), ValueError, "got 0"),
    ((1, 5, 5, 1), (3, 3, 1, 1), dict(strides=(1, -2)), ValueError, "(1, -2)"),
    ((1, 5, 5, 1), (3, 3, 1, 1), dict(strides=[2, 1, 1, 1]), ValueError, "[2, 1, 1, 1]"),
    ((1, 5, 5, 1), (3, 3, 1, 1), dict(strides=(1, 1, 1)), ValueError, "(1, 1, 1)"),
    ((1, 2, 5, 1), (3, 3, 1, 1), {}, ValueError, "filters of shape (3, 3, 1, 1) are larger than input of shape "
                                                 "(1, 2, 5, 1)"),
    ((1, 5, 2, 1), (1, 3, 1, 1), dict(padding="VALID"), ValueError, "(1, 5, 2, 1)"),
])
def test_conv2d_bad_input_raises(x_shape, w_shape, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        gg.nn.conv2d(gg.ones(x_shape), gg.ones(w_shape), **kwargs)


def test_conv2d_filter_larger_than_input_is_fine_with_same():
    assert gg.nn.conv2d(gg.ones((1, 2, 5, 1)), gg.ones((3, 3, 1, 1)), padding="SAME").shape == (1, 2, 5, 1)


def test_conv2d_dtypes_must_match():
    with pytest.raises(TypeError, match="input of dtype float32 and filters of dtype float64"):
        gg.nn.conv2d(gg.ones((1, 3, 3, 1)), gg.ones((2, 2, 1, 1), dtype=gg.float64))


@pytest.mark.parametrize("call, error, message", [
    (lambda: gg.nn.softmax(gg.ones((2, 3)), axis=2), ValueError, "softmax: axis 2 is out of range for a tensor of "
                                                                  "shape (2, 3)"),
    (lambda: gg.nn.log_softmax(gg.ones((2, 3)), axis=-3), ValueError, "log_softmax: axis -3"),
    (lambda: gg.nn.softmax_cross_entropy_with_logits(gg.ones((2, 3)), gg.ones((3, 3))), ValueError,
     "labels of shape (2, 3) and logits of shape (3, 3)"),
    (lambda: gg.nn.softmax_cross_entropy_with_logits(gg.ones((2, 3), dtype=gg.float64), gg.ones((2, 3))),
     TypeError, "labels of dtype float64 and logits of dtype float32"),
    (lambda: gg.nn.sparse_softmax_cross_entropy_with_logits(gg.constant([0, 1, 1]), gg.ones((2, 3))), ValueError,
     "labels of shape (3,) do not match logits of shape (2, 3)"),
    (lambda: gg.nn.sparse_softmax_cross_entropy_with_logits(gg.constant(1), gg.ones(())), ValueError,
     "logits of shape ()"),
    (lambda: gg.nn.sparse_softmax_cross_entropy_with_logits(gg.constant([0., 1.]), gg.ones((2, 3))), TypeError,
     "labels must be integers, got dtype float32"),
])
def test_softmax_and_cross_entropy_bad_input_raises(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call()
