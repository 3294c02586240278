"""The everyday ops (argmax, one_hot, gather, reduce_logsumexp, einsum, pad, split, norm,
cumsum, sort, top_k, erf), the activations and cross-entropies of gg.nn, and gg.losses:
values against NumPy references, float64 gradient checks on each device, and errors that
name the bad input."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import gpugrad as gg
from gpugrad import losses as L
from helpers import first_grad

pytestmark = pytest.mark.usefixtures("device")  # every test runs on each device (cuda skipped without one)
QUICK = dict(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])


def grad_of(f, x, weights=None):
    """d sum(weights * f(x)) / dx for a float64 constant x (weights all 1 by default)."""
    x = gg.constant(np.asarray(x, dtype=np.float64))
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = f(x)
    return tape.gradient(y, x, output_gradients=None if weights is None else gg.constant(weights)).numpy()


def shapes(min_dims=1, max_dims=3, min_side=1, max_side=4):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


# ---------------------------------------------------------------------------------------
# argmax, argmin

@pytest.mark.parametrize("op, reference", [(gg.argmax, np.argmax), (gg.argmin, np.argmin)])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_arg_extrema_match_numpy_and_pick_the_first_tie(op, reference, axis, rng):
    x = rng.integers(0, 3, size=(4, 5)).astype(np.float32)  # many ties
    got = op(gg.constant(x), axis=axis)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got.numpy(), reference(x, axis=0 if axis is None else axis))
    assert op(gg.constant(x), 1, output_type=gg.int32).dtype == np.int32


def test_argmax_carries_no_gradient():
    x = gg.constant([1., 3., 2.])
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.cast(gg.argmax(x), gg.float32) * x
    assert gg.argmax(x).numpy() == 1
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [1., 1., 1.])


@pytest.mark.parametrize("call, error, text", [
    (lambda: gg.argmax(gg.ones((2, 3)), axis=2), ValueError, "axis 2 is out of range"),
    (lambda: gg.argmin(gg.ones((2, 0)), axis=1), ValueError, "empty"),
    (lambda: gg.argmax(gg.constant(1.0)), ValueError, "scalar"),
    (lambda: gg.argmax(gg.ones(3), output_type=gg.float32), TypeError, "output_type"),
])
def test_arg_extremum_errors(call, error, text):
    with pytest.raises(error, match=text):
        call()


# ---------------------------------------------------------------------------------------
# one_hot

@pytest.mark.parametrize("axis", [-1, 0, 1, 2])
def test_one_hot_matches_numpy(axis):
    indices = np.array([[0, 2], [3, 1]])
    expected = np.moveaxis(np.eye(4, dtype=np.float32)[indices], -1, axis)
    got = gg.one_hot(indices, 4, axis=axis)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.numpy(), expected)


def test_one_hot_values_dtype_and_out_of_range_indices():
    got = gg.one_hot([1, -1, 5], 3, on_value=7, off_value=-2, dtype="int32")
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got.numpy(), [[-2, 7, -2], [-2, -2, -2], [-2, -2, -2]])  # as TensorFlow
    assert gg.one_hot([0], 2, on_value=gg.constant(2.0, dtype=gg.float64)).dtype == np.float64
    assert gg.one_hot(np.zeros((2, 0), int), 3).shape == (2, 0, 3)


@pytest.mark.parametrize("call, error, text", [
    (lambda: gg.one_hot([0.5], 3), TypeError, "indices must be integers"),
    (lambda: gg.one_hot([0], -1), ValueError, "depth"),
    (lambda: gg.one_hot([0], 3, axis=2), ValueError, "axis 2 is out of range"),
])
def test_one_hot_errors(call, error, text):
    with pytest.raises(error, match=text):
        call()


# ---------------------------------------------------------------------------------------
# gather, gather_nd

@settings(**QUICK)
@given(data=st.data())
def test_gather_matches_take_and_scatters_its_gradient(data):
    shape = data.draw(shapes())
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    indices = data.draw(hnp.arrays(np.int64, data.draw(shapes(0, 2, 0, 3)), elements=st.integers(0, shape[axis] - 1)))
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-2, 2)))
    np.testing.assert_array_equal(gg.gather(x, indices, axis=axis).numpy(), np.take(x, indices, axis=axis))
    assert gg.gradcheck(lambda p: gg.gather(p, indices, axis=axis), [x])
    expected = np.zeros(shape)
    np.add.at(expected, (slice(None),) * (axis % len(shape)) + (indices,), 1.0)  # repeats add up
    np.testing.assert_array_equal(grad_of(lambda p: gg.gather(p, indices, axis=axis), x), expected)


def _batched_take(params, indices, axis, batch_dims):
    """tf.gather with batch_dims, as a loop of np.take over the batch entries."""
    batch = params.shape[:batch_dims]
    out = np.empty(batch + params.shape[batch_dims:axis] + indices.shape[batch_dims:] + params.shape[axis + 1:])
    for entry in np.ndindex(*batch):
        out[entry] = np.take(params[entry], indices[entry], axis=axis - batch_dims)
    return out


@pytest.mark.parametrize("params_shape, indices_shape, axis, batch_dims", [
    ((2, 5, 3), (2, 4), 1, 1), ((2, 3, 5, 4), (2, 3, 6), 2, 2), ((2, 3, 5), (2, 7), 2, 1), ((2, 5), (2,), 1, 1),
    ((3, 4, 5), (3, 2, 2), 1, 1), ((2, 5), (2, 3), None, -1),
])
def test_gather_with_batch_dims_gathers_each_entry_from_its_own_slice(params_shape, indices_shape, axis, batch_dims,
                                                                     rng, device):
    params = rng.normal(size=params_shape)
    batch = batch_dims if batch_dims >= 0 else batch_dims + len(indices_shape)  # negative: from indices' rank
    effective_axis = batch if axis is None else axis
    indices = rng.integers(0, params_shape[effective_axis], size=indices_shape)
    with gg.device(device):
        got = gg.gather(params, indices, axis=axis, batch_dims=batch_dims)
        np.testing.assert_array_equal(got.numpy(), _batched_take(params, indices, effective_axis, batch))
        assert gg.gradcheck(lambda p: gg.gather(p, indices, axis=axis, batch_dims=batch_dims), [params])


@pytest.mark.parametrize("call, text", [
    (lambda: gg.gather(gg.ones((2, 3)), [[0], [1]], axis=0, batch_dims=1), "axis \\(0\\) must be at least batch_dims"),
    (lambda: gg.gather(gg.ones((2, 3)), [[0], [1], [2]], batch_dims=1), "first 1 axes of params"),
    (lambda: gg.gather(gg.ones((2, 3)), [[0], [1]], batch_dims=3), "batch_dims must be an int in \\[-2, 2\\]"),
])
def test_gather_batch_dims_errors_name_the_shapes(call, text):
    with pytest.raises(ValueError, match=text):
        call()


@pytest.mark.parametrize("params_shape, indices_shape, batch_dims", [
    ((2, 3, 4), (2, 5, 1), 1), ((2, 3, 4, 5), (2, 3, 2, 2), 2), ((3, 4, 5), (3, 2), 1), ((2, 3, 4), (2, 6, 2), 1),
])
def test_gather_nd_with_batch_dims_indexes_each_entry_s_own_slice(params_shape, indices_shape, batch_dims, rng,
                                                                    device):
    params = rng.normal(size=params_shape)
    indices = np.stack([rng.integers(0, params_shape[batch_dims + k], size=indices_shape[:-1])
                        for k in range(indices_shape[-1])], -1)
    expected = np.stack([params[entry][tuple(np.moveaxis(indices[entry], -1, 0))]
                         for entry in np.ndindex(*params_shape[:batch_dims])])
    with gg.device(device):
        got = gg.gather_nd(params, indices, batch_dims=batch_dims)
        np.testing.assert_array_equal(got.numpy(), expected.reshape(got.shape))
        assert got.shape == indices_shape[:-1] + params_shape[batch_dims + indices_shape[-1]:]
        assert gg.gradcheck(lambda p: gg.gather_nd(p, indices, batch_dims=batch_dims), [params])


def test_gather_nd_matches_numpy_indexing(rng):
    x = rng.normal(size=(3, 4, 2))
    for indices in ([[0, 1], [2, 3], [0, 1]], [[[1], [0]]], [[0, 1, 1], [2, 3, 0]], np.zeros((2, 0), int)):
        indices = np.array(indices, dtype=np.int32)
        expected = x[tuple(np.moveaxis(indices, -1, 0))] if indices.shape[-1] else np.broadcast_to(x, (2,) + x.shape)
        np.testing.assert_array_equal(gg.gather_nd(x, indices).numpy(), expected)
        assert gg.gradcheck(lambda p: gg.gather_nd(p, indices), [x])
        assert gg.gradcheck(lambda p: first_grad(lambda q: gg.gather_nd(q, indices) ** 2, [p]), [x])


@pytest.mark.parametrize("call, error, text", [
    (lambda: gg.gather(gg.ones((2, 3)), [0, 3], axis=1), IndexError, "index 3 is out of range for axis 1"),
    (lambda: gg.gather(gg.ones((2, 3)), [-1]), IndexError, "index -1 is out of range for axis 0"),
    (lambda: gg.gather(gg.ones((2, 3)), [0], axis=-3), ValueError, "axis -3 is out of range"),
    (lambda: gg.gather(gg.ones((2, 3)), [0.0]), TypeError, "indices must be integers"),
    (lambda: gg.gather_nd(gg.ones((2, 3)), [[1, 3]]), IndexError, "index 3 is out of range for axis 1"),
    (lambda: gg.gather_nd(gg.ones((2, 3)), [[0, 0, 0]]), ValueError, "last axis no longer"),
    (lambda: gg.gather_nd(gg.ones((2, 3)), [[0], [1]], batch_dims=2), ValueError, "batch_dims must be an int"),
    (lambda: gg.gather_nd(gg.ones((2, 3)), [[0], [1], [0]], batch_dims=1), ValueError, "first 1 axes of params"),
])
def test_gather_errors(call, error, text):
    with pytest.raises(error, match=text):
        call()


# ---------------------------------------------------------------------------------------
# reduce_logsumexp

def _logsumexp(x, axis, keepdims):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis if axis is not None else tuple(range(x.ndim)))


@settings(**QUICK)
@given(data=st.data())
def test_reduce_logsumexp_matches_and_its_gradient_is_softmax(data):
    shape = data.draw(shapes(0))
    axis = data.draw(st.none() | hnp.valid_tuple_axes(len(shape), min_size=1) if shape else st.none())
    keepdims = data.draw(st.booleans())
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-3, 3)))
    np.testing.assert_allclose(gg.reduce_logsumexp(x, axis, keepdims).numpy(), _logsumexp(x, axis, keepdims),
                               rtol=1e-12, atol=1e-12)
    assert gg.gradcheck(lambda v: gg.reduce_logsumexp(v, axis, keepdims), [x])


def test_reduce_logsumexp_is_stable():
    x = np.array([[1000., 1000., -1000.], [-np.inf, -np.inf, -np.inf], [-1e4, -1e4 + 1, -np.inf]])
    got = gg.reduce_logsumexp(x, axis=1).numpy()
    np.testing.assert_allclose(got, [1000 + np.log(2), -np.inf, -1e4 + np.log1p(np.e)], rtol=1e-12)
    g = grad_of(lambda v: gg.reduce_logsumexp(v[:1], axis=1), x)
    np.testing.assert_allclose(g[0], [0.5, 0.5, 0.0], atol=1e-12)
    assert gg.reduce_logsumexp(np.zeros((2, 0)), axis=1).numpy().tolist() == [-np.inf, -np.inf]


# ---------------------------------------------------------------------------------------
# einsum

EINSUM_CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("bi,bj->ij", [(5, 2), (5, 3)]), ("i,i->", [(4,), (4,)]),
    ("ij->ji", [(2, 3)]), ("ij->", [(2, 3)]), ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]), ("ij,jk->i", [(2, 3), (3, 4)]),
    ("i,j->ij", [(2,), (3,)]), ("ij,jk", [(2, 3), (3, 2)]), ("...ij,...jk->...ik", [(2, 1, 2, 3), (4, 3, 2)]),
    ("b i, i j -> b j", [(2, 3), (3, 2)]), ("ij,jk,kl->il", [(2, 3), (3, 2), (2, 2)]), ("ba", [(2, 3)]),
]


@pytest.mark.parametrize("equation, shapes_", EINSUM_CASES)
def test_einsum_matches_numpy_with_gradients(equation, shapes_, rng):
    xs = [rng.normal(size=s) for s in shapes_]
    np.testing.assert_allclose(gg.einsum(equation, *xs).numpy(), np.einsum(equation.replace(" ", ""), *xs),
                               rtol=1e-12, atol=1e-12)
    assert gg.gradcheck(lambda *vs: gg.einsum(equation, *vs), xs)
    assert gg.gradcheck(lambda *vs: first_grad(lambda *us: gg.einsum(equation, *us), vs), xs)


def test_einsum_keeps_float32():
    a, b = gg.ones((2, 3)), gg.ones((3, 4))
    assert gg.einsum("ij,jk->ik", a, b).dtype == np.float32


@pytest.mark.parametrize("equation, shapes_, text", [
    ("ij,jk->ik", [(2, 3)], "names 2 operand"),
    ("ij,jk->ik", [(2, 3), (4, 2)], "subscript 'j' has sizes 3 and 4"),
    ("ij->i", [(2, 3, 4)], "do not fit an operand of shape"),
    ("ii->i", [(3, 3)], "repeats within operand"),
    ("ij->ik", [(2, 3)], "names a subscript no input has"),
    ("ij->ii", [(2, 3)], "names a subscript twice"),
    ("i1->i", [(2, 3)], "not a subscript list"),
    ("ij->i->j", [(2, 3)], "more than one '->'"),
    ("...i->i", [(2, 3)], "needs '...'"),
])
def test_einsum_errors_name_the_equation(equation, shapes_, text):
    with pytest.raises(ValueError, match=text):
        gg.einsum(equation, *[gg.ones(s) for s in shapes_])


# ---------------------------------------------------------------------------------------
# pad

@pytest.mark.parametrize("mode", ["CONSTANT", "REFLECT", "symmetric"])
@settings(**QUICK)
@given(data=st.data())
def test_pad_matches_numpy_with_gradients(mode, data):
    shape = data.draw(shapes(0, 3, 1 if mode == "CONSTANT" else 2, 4))
    edge = {"CONSTANT": 3, "REFLECT": 1, "symmetric": 0}[mode]
    paddings = [[data.draw(st.integers(0, min(3, s - edge) if edge < 3 else 3)) for _ in "ab"] for s in shape]
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-2, 2)))
    kwargs = dict(constant_values=1.5) if mode == "CONSTANT" else {}
    expected = np.pad(x, paddings, mode=mode.lower(), **kwargs) if shape else x  # NumPy refuses a scalar
    np.testing.assert_array_equal(gg.pad(x, paddings, mode, **kwargs).numpy(), expected)
    assert gg.gradcheck(lambda v: gg.pad(v, paddings, mode, **kwargs), [x])


@pytest.mark.parametrize("paddings, mode, error, text", [
    ([[1, 1]], "CONSTANT", ValueError, "1 padding pair"),
    ([[1, -1], [0, 0]], "CONSTANT", ValueError, "must not be negative"),
    ([[3, 0], [0, 0]], "REFLECT", ValueError, "too wide"),
    ([[0, 0], [0, 0]], "EDGE", ValueError, "mode must be"),
    ([1, 2], "CONSTANT", TypeError, "pair of ints"),
])
def test_pad_errors(paddings, mode, error, text):
    with pytest.raises(error, match=text):
        gg.pad(gg.ones((3, 2)), paddings, mode)


# ---------------------------------------------------------------------------------------
# split

@pytest.mark.parametrize("splits, axis, sizes", [(3, 1, [2, 2, 2]), ([1, -1, 2], -1, [1, 3, 2]), ([0, 6], 1, [0, 6]),
                                                 (1, 0, [4])])
def test_split_matches_and_each_part_gets_its_gradient(splits, axis, sizes, rng):
    x = rng.normal(size=(4, 6))
    parts = gg.split(x, splits, axis)
    expected = np.split(x, np.cumsum(sizes)[:-1], axis=axis)
    assert [p.shape for p in parts] == [e.shape for e in expected]
    for p, e in zip(parts, expected):
        np.testing.assert_array_equal(p.numpy(), e)
    assert gg.gradcheck(lambda v: gg.concat([(i + 1.0) * p for i, p in enumerate(gg.split(v, splits, axis))], axis),
                        [x])


@pytest.mark.parametrize("splits, text", [(4, "into 4 equal parts"), ([2, 2], "add up to 4, not 6"),
                                          ([-1, -1], "one -1"), ([7, -1], "more than 6")])
def test_split_errors(splits, text):
    with pytest.raises(ValueError, match=text):
        gg.split(gg.ones((2, 6)), splits, axis=1)


# ---------------------------------------------------------------------------------------
# norm

@pytest.mark.parametrize("ord, axis", [("euclidean", None), (2, 1), (1, 0), (np.inf, -1), (3, None), (0.5, 1),
                                       ("fro", (0, 1)), ("euclidean", (1, 0)), (1, (0, 1)), (np.inf, (0, 1)),
                                       (1, (1, 0))])
@pytest.mark.parametrize("keepdims", [False, True])
def test_norm_matches_numpy_with_gradients(ord, axis, keepdims, rng):
    x = rng.normal(size=(3, 4))
    np_ord = None if ord == "euclidean" and (axis is None or isinstance(axis, int)) else \
        "fro" if ord == "euclidean" else ord
    expected = np.linalg.norm(x.ravel() if axis is None else x, np_ord, axis, keepdims and axis is not None)
    if axis is None and keepdims:
        expected = np.reshape(expected, (1, 1))
    np.testing.assert_allclose(gg.norm(x, ord, axis, keepdims).numpy(), expected, rtol=1e-12)
    assert gg.gradcheck(lambda v: gg.norm(v, ord, axis, keepdims), [x])


def test_euclidean_norm_gradient_is_zero_at_zero():
    np.testing.assert_array_equal(grad_of(lambda v: gg.norm(v, axis=1), np.zeros((2, 3))), np.zeros((2, 3)))


@pytest.mark.parametrize("ord, axis, text", [("fro", 0, "'fro' is a matrix norm"), (2, (0, 1), "not supported"),
                                             (-1, None, "ord must be"), ("nuc", None, "ord must be"),
                                             (2, (0, 0), "must differ"), (2, 2, "axis 2 is out of range")])
def test_norm_errors(ord, axis, text):
    with pytest.raises(ValueError, match=text):
        gg.norm(gg.ones((2, 3)), ord, axis)


# ---------------------------------------------------------------------------------------
# cumsum

def _cumsum(x, axis, exclusive, reverse):
    if reverse:
        x = np.flip(x, axis)
    out = np.cumsum(x, axis=axis, dtype=x.dtype)
    if exclusive:
        shifted = np.zeros_like(out)
        lead = (slice(None),) * (axis % x.ndim)
        shifted[lead + (slice(1, None),)] = out[lead + (slice(None, -1),)]
        out = shifted
    return np.flip(out, axis) if reverse else out


@settings(**QUICK)
@given(data=st.data())
def test_cumsum_matches_numpy_with_gradients(data):
    shape = data.draw(shapes(1, 3, 0, 4))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    exclusive, reverse = data.draw(st.booleans()), data.draw(st.booleans())
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-2, 2)))
    np.testing.assert_allclose(gg.cumsum(x, axis, exclusive, reverse).numpy(), _cumsum(x, axis, exclusive, reverse),
                               rtol=1e-12, atol=1e-12)
    assert gg.gradcheck(lambda v: gg.cumsum(v, axis, exclusive, reverse), [x])


def test_cumsum_keeps_integer_dtypes():
    got = gg.cumsum(gg.constant([[1, 2], [3, 4]], dtype="int32"), axis=1, exclusive=True)
    assert got.dtype == np.int32 and got.numpy().tolist() == [[0, 1], [0, 3]]
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        gg.cumsum(gg.ones((2, 2)), axis=2)


# ---------------------------------------------------------------------------------------
# sort, argsort, top_k

@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("direction", ["ASCENDING", "DESCENDING"])
def test_sort_and_argsort_match_numpy_stably(axis, direction, rng):
    x = rng.integers(0, 4, size=(5, 6)).astype(np.float32)  # ties
    order = np.argsort(x if direction == "ASCENDING" else -x, axis=axis, kind="stable")
    np.testing.assert_array_equal(gg.argsort(x, axis, direction).numpy(), order)
    np.testing.assert_array_equal(gg.sort(x, axis, direction).numpy(), np.take_along_axis(x, order, axis))
    assert gg.argsort(x, axis, direction).dtype == np.int32
    assert gg.argsort(gg.constant([3, 1, 2], dtype="uint8"), direction="DESCENDING").numpy().tolist() == [0, 2, 1]


@pytest.mark.parametrize("direction", ["ASCENDING", "DESCENDING"])
def test_sort_gradient_goes_back_to_each_value(direction, rng):
    x = rng.permutation(24).reshape(2, 3, 4) / 4.0  # distinct values
    for axis in (0, 1, 2):
        assert gg.gradcheck(lambda v: gg.sort(v, axis, direction), [x])
    assert gg.gradcheck(lambda v: first_grad(lambda u: gg.sort(u, 1, direction) ** 2, [v]), [x])


def test_top_k_values_indices_and_gradients(rng):
    x = np.array([[1., 3., 3., 2.], [4., -1., 0., 4.]])
    values, indices = gg.top_k(x, 3)
    np.testing.assert_array_equal(values.numpy(), [[3., 3., 2.], [4., 4., 0.]])
    np.testing.assert_array_equal(indices.numpy(), [[1, 2, 3], [0, 3, 2]])  # the lower index first on ties
    assert indices.dtype == np.int32 and gg.top_k(x, 2).values.shape == (2, 2)
    y = rng.permutation(30).reshape(3, 10) / 3.0
    assert gg.gradcheck(lambda v: gg.top_k(v, 4).values, [y])
    np.testing.assert_array_equal(grad_of(lambda v: gg.top_k(v, 1).values, x[:1]), [[0., 1., 0., 0.]])
    with gg.GradientTape() as tape:
        v = gg.constant(y)
        tape.watch(v)
        k = gg.top_k(v, 2)
    assert tape.gradient(k.indices, v) is None


@pytest.mark.parametrize("call, error, text", [
    (lambda: gg.top_k(gg.ones((2, 3)), 4), ValueError, "k = 4 is out of range"),
    (lambda: gg.top_k(gg.ones(3), 1.5), TypeError, "k must be an int"),
    (lambda: gg.sort(gg.ones(3), direction="UP"), ValueError, "direction"),
    (lambda: gg.sort(gg.ones(3), axis=1), ValueError, "axis 1 is out of range"),
    (lambda: gg.sort(gg.constant(1.0)), ValueError, "scalar"),
])
def test_sort_errors(call, error, text):
    with pytest.raises(error, match=text):
        call()


# ---------------------------------------------------------------------------------------
# erf and the activations

def test_erf_matches_the_c_library():
    x = np.array([-np.inf, -3.0, -0.5, -0.0, 0.0, 1e-300, 0.3, 2.0, 6.0, np.inf, np.nan])
    got = gg.erf(x).numpy()
    want = np.array([math.erf(v) for v in x[:-1]])
    if str(gg.get_default_device()).startswith("cpu"):
        np.testing.assert_array_equal(got[:-1], want)
    else:  # CUDA's erf is within 2 ulps of the correctly rounded value
        assert np.all(np.abs(got[:-1] - want) <= 2 * np.spacing(np.abs(want))), (got, want)
    assert np.isnan(got[-1]) and np.signbit(got[3])
    assert gg.erf(gg.constant([0.5])).dtype == np.float32 and gg.erf(gg.constant([1])).dtype == np.float64
    np.testing.assert_allclose(grad_of(gg.erf, [0.0, 1.0]), 2 / np.sqrt(np.pi) * np.exp(-np.array([0.0, 1.0])),
                               rtol=1e-14)


def _phi(x):
    return np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in np.ravel(x)]).reshape(np.shape(x))


@pytest.mark.parametrize("name, fn, reference", [
    ("gelu", gg.nn.gelu, lambda x: x * _phi(x)),
    ("gelu tanh", lambda x: gg.nn.gelu(x, approximate=True),
     lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
    ("leaky_relu", gg.nn.leaky_relu, lambda x: np.where(x > 0, x, 0.2 * x)),
    ("leaky_relu 0.01", lambda x: gg.nn.leaky_relu(x, alpha=0.01), lambda x: np.where(x > 0, x, 0.01 * x)),
    ("elu", gg.nn.elu, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
])
def test_activations_match_numpy_with_gradients(name, fn, reference, rng):
    x = np.concatenate([rng.normal(size=20) * 3, [-0.25, 0.25, 5.0, -5.0]])
    np.testing.assert_allclose(fn(x).numpy(), reference(x), rtol=1e-12, atol=1e-15)
    assert gg.gradcheck(fn, [x])
    assert gg.gradcheck(lambda v: first_grad(fn, [v]), [x[:6]])
    assert fn(gg.constant([1.0, -1.0])).dtype == np.float32


def test_activation_gradients_at_their_kinks_and_far_out():
    np.testing.assert_allclose(grad_of(gg.nn.leaky_relu, [0.0]), [0.2])  # as TensorFlow's
    np.testing.assert_allclose(grad_of(gg.nn.elu, [0.0, 1000.0, -1000.0]), [1.0, 1.0, 0.0])  # no inf * 0
    np.testing.assert_allclose(grad_of(gg.nn.gelu, [0.0, 40.0, -40.0]), [0.5, 1.0, 0.0], atol=1e-300)
    assert gg.nn.get_activation("gelu") is gg.nn.gelu and gg.nn.get_activation("elu") is gg.nn.elu


# ---------------------------------------------------------------------------------------
# sigmoid_cross_entropy_with_logits, dropout

def _bce_with_logits(z, x):
    return np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))


def test_sigmoid_cross_entropy_matches_and_is_stable(rng):
    x = np.concatenate([rng.normal(size=10) * 4, [0.0, 800.0, -800.0, 40.0]])
    z = np.concatenate([rng.uniform(size=10), [0.3, 0.0, 1.0, 1.0]])
    got = gg.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=x).numpy()
    np.testing.assert_allclose(got, _bce_with_logits(z, x), rtol=1e-12)
    assert np.all(np.isfinite(got)) and got[-1] > 0  # log(1 + e^-40): tiny, not 0
    # the gradient wrt the logits is sigmoid(x) - z, 0.5 - z at 0
    g = grad_of(lambda v: gg.nn.sigmoid_cross_entropy_with_logits(gg.constant(z), v), x)
    np.testing.assert_allclose(g, 0.5 * (1 + np.tanh(x / 2)) - z, rtol=1e-9, atol=1e-300)
    assert gg.gradcheck(gg.nn.sigmoid_cross_entropy_with_logits, [z[:10], x[:10]])
    with pytest.raises(ValueError, match=r"labels of shape \(3,\) and logits of shape \(2,\)"):
        gg.nn.sigmoid_cross_entropy_with_logits(labels=gg.ones(3), logits=gg.ones(2))


def test_dropout_scales_keeps_and_repeats_with_a_seed():
    x = gg.ones((200, 50))
    y = gg.nn.dropout(x, 0.25, seed=3).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    np.testing.assert_array_equal(gg.nn.dropout(x, 0.25, seed=3).numpy(), y)
    assert gg.nn.dropout(x, 0.25, training=False) is x and gg.nn.dropout(x, 0.0) is x
    rows = gg.nn.dropout(x, 0.5, noise_shape=(200, 1), seed=4).numpy()
    assert np.all((rows == 0).all(axis=1) | (rows == 2).all(axis=1))
    keep = gg.nn.dropout(x, 0.5, seed=5).numpy() != 0
    np.testing.assert_array_equal(grad_of(lambda v: gg.nn.dropout(v, 0.5, seed=5), np.ones((200, 50))), keep * 2.0)


@pytest.mark.parametrize("kwargs, error, text", [
    (dict(rate=1.0), ValueError, r"rate must be a number in \[0, 1\)"),
    (dict(rate=0.5, noise_shape=(3, 1)), ValueError, "noise_shape"),
    (dict(rate=0.5, seed=1.5), TypeError, "seed"),
])
def test_dropout_errors(kwargs, error, text):
    with pytest.raises(error, match=text):
        gg.nn.dropout(gg.ones((2, 3)), **kwargs)


# ---------------------------------------------------------------------------------------
# gg.losses: Keras's formulas in NumPy

EPS = 1e-7


def _np_bce(t, p, logits=False):
    if logits:
        return np.mean(_bce_with_logits(t, p), axis=-1)
    p = np.clip(p, EPS, 1 - EPS)
    return -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p), axis=-1)


def _np_cce(t, p, logits=False):
    if logits:
        p = np.exp(p - p.max(-1, keepdims=True))
    p = np.clip(p / p.sum(-1, keepdims=True), EPS if not logits else 0, 1 - EPS if not logits else 1)
    return -np.sum(t * np.log(p), axis=-1)


def _np_huber(t, p, delta=1.0):
    e = np.abs(p - t)
    return np.mean(np.where(e <= delta, 0.5 * e ** 2, delta * e - 0.5 * delta ** 2), axis=-1)


@pytest.fixture
def batch(rng):
    logits = rng.normal(size=(6, 4)) * 2
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = rng.integers(0, 4, size=6)
    return dict(logits=logits, probabilities=probabilities, labels=labels, one_hot=np.eye(4)[labels],
                targets=rng.uniform(size=(6, 4)), sigmoids=1 / (1 + np.exp(-logits)))


LOSSES = {
    "mse": (L.mean_squared_error, lambda t, p: np.mean((p - t) ** 2, -1), "targets", "logits"),
    "mae": (L.mean_absolute_error, lambda t, p: np.mean(np.abs(p - t), -1), "targets", "logits"),
    "huber": (L.huber, _np_huber, "targets", "logits"),
    "huber 0.5": (lambda t, p: L.huber(t, p, delta=0.5), lambda t, p: _np_huber(t, p, 0.5), "targets", "logits"),
    "bce": (L.binary_crossentropy, _np_bce, "targets", "sigmoids"),
    "bce logits": (lambda t, p: L.binary_crossentropy(t, p, from_logits=True), lambda t, p: _np_bce(t, p, True),
                   "targets", "logits"),
    "cce": (L.categorical_crossentropy, _np_cce, "one_hot", "probabilities"),
    "cce logits": (lambda t, p: L.categorical_crossentropy(t, p, from_logits=True),
                   lambda t, p: _np_cce(t, p, True), "one_hot", "logits"),
    "sparse cce": (L.sparse_categorical_crossentropy, lambda t, p: _np_cce(np.eye(4)[t], p), "labels",
                   "probabilities"),
    "sparse cce logits": (lambda t, p: L.sparse_categorical_crossentropy(t, p, from_logits=True),
                          lambda t, p: _np_cce(np.eye(4)[t], p, True), "labels", "logits"),
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_match_keras_formulas_with_gradients(name, batch):
    fn, reference, true_key, pred_key = LOSSES[name]
    y_true, y_pred = batch[true_key], batch[pred_key]
    got = fn(y_true, y_pred)
    assert got.shape == (6,)
    np.testing.assert_allclose(got.numpy(), reference(y_true, y_pred), rtol=1e-10)
    assert gg.gradcheck(lambda p: fn(y_true, p), [y_pred])
    if true_key != "labels":
        assert gg.gradcheck(lambda t: fn(t, y_pred), [y_true])


def test_probability_losses_clip_like_keras():
    t, p = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    np.testing.assert_allclose(L.binary_crossentropy(t, p).numpy(), [-np.log(EPS)], rtol=1e-6)
    np.testing.assert_allclose(L.categorical_crossentropy(t, p).numpy(), [-np.log(EPS)], rtol=1e-6)
    np.testing.assert_array_equal(grad_of(lambda v: L.binary_crossentropy(t, v), p), [[0.0, 0.0]])


def test_label_smoothing(batch):
    t, x = batch["one_hot"], batch["logits"]
    np.testing.assert_allclose(L.categorical_crossentropy(t, x, from_logits=True, label_smoothing=0.2).numpy(),
                               _np_cce(t * 0.8 + 0.05, x, True), rtol=1e-10)
    np.testing.assert_allclose(L.binary_crossentropy(t, x, from_logits=True, label_smoothing=0.2).numpy(),
                               _np_bce(t * 0.8 + 0.1, x, True), rtol=1e-10)


@pytest.mark.parametrize("cls, fn, true_key, pred_key, kwargs", [
    (L.MeanSquaredError, L.mean_squared_error, "targets", "logits", {}),
    (L.MeanAbsoluteError, L.mean_absolute_error, "targets", "logits", {}),
    (L.Huber, L.huber, "targets", "logits", dict(delta=0.5)),
    (L.BinaryCrossentropy, L.binary_crossentropy, "targets", "logits", dict(from_logits=True)),
    (L.CategoricalCrossentropy, L.categorical_crossentropy, "one_hot", "probabilities", {}),
    (L.SparseCategoricalCrossentropy, L.sparse_categorical_crossentropy, "labels", "logits", dict(from_logits=True)),
])
def test_loss_classes_reduce_as_keras(cls, fn, true_key, pred_key, kwargs, batch):
    y_true, y_pred = batch[true_key], batch[pred_key]
    per_sample = fn(y_true, y_pred, **kwargs).numpy()
    np.testing.assert_allclose(cls(**kwargs)(y_true, y_pred).numpy(), per_sample.mean(), rtol=1e-12)
    np.testing.assert_allclose(cls(**kwargs, reduction="sum")(y_true, y_pred).numpy(), per_sample.sum(), rtol=1e-12)
    np.testing.assert_allclose(cls(**kwargs, reduction=None)(y_true, y_pred).numpy(), per_sample, rtol=1e-12)
    w = np.arange(6.0)
    np.testing.assert_allclose(cls(**kwargs)(y_true, y_pred, sample_weight=w).numpy(), (per_sample * w).mean(),
                               rtol=1e-12)
    np.testing.assert_allclose(cls(**kwargs)(y_true, y_pred, sample_weight=w[:, None]).numpy(),
                               (per_sample * w).mean(), rtol=1e-12)
    assert gg.gradcheck(lambda p: cls(**kwargs)(y_true, p, sample_weight=w), [y_pred])


def test_losses_in_float32_and_in_a_training_step(batch):
    model = gg.nn.Dense(4)
    x = gg.constant(batch["targets"], dtype=gg.float32)
    loss_fn = L.SparseCategoricalCrossentropy(from_logits=True)
    with gg.GradientTape() as tape:
        loss = loss_fn(batch["labels"], model(x))
    assert loss.dtype == np.float32 and loss.shape == ()
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None and g.dtype == np.float32 for g in grads)
    assert L.get("mse") is L.mean_squared_error and L.get(loss_fn) is loss_fn
    assert L.MeanSquaredError()(np.zeros((0, 3)), np.zeros((0, 3))).numpy() == 0.0


@pytest.mark.parametrize("call, error, text", [
    (lambda: L.mean_squared_error(np.ones((2, 3)), np.ones((2, 4))), ValueError, r"y_true of shape \(2, 3\)"),
    (lambda: L.mean_squared_error(np.ones(2), gg.constant([1, 2])), TypeError, "float tensor"),
    (lambda: L.sparse_categorical_crossentropy([0, 4], np.ones((2, 4))), ValueError, "label 4 is out of range"),
    (lambda: L.sparse_categorical_crossentropy([[0, 1]], np.ones((2, 4))), ValueError, "does not match"),
    (lambda: L.huber(np.ones(2), np.ones(2), delta=0), ValueError, "delta"),
    (lambda: L.binary_crossentropy(np.ones(2), np.ones(2), label_smoothing=2), ValueError, "label_smoothing"),
    (lambda: L.MeanSquaredError(reduction="mean_of_means"), ValueError, "reduction must be"),
    (lambda: L.MeanSquaredError()(np.ones((2, 3)), np.ones((2, 3)), sample_weight=np.ones(3)), ValueError,
     "sample_weight of shape"),
    (lambda: L.get("hinge_of_doom"), ValueError, "unknown loss"),
])
def test_loss_errors(call, error, text):
    with pytest.raises(error, match=text):
        call()


def test_gathers_and_sorts_are_captured_by_gg_function(rng):
    """Their indices are inputs of primitives, not static parameters, so a step that computes
    them is captured (a fallback to eager calls would warn, and warnings fail these tests)."""
    x, idx = gg.constant(rng.normal(size=(3, 4))), gg.constant([2, 0])

    def f(x, idx):
        return (gg.reduce_sum(gg.gather(x, idx + 1, axis=1)) + gg.reduce_sum(gg.top_k(x, 2).values)
                + gg.reduce_sum(gg.sort(x, 0)) + gg.reduce_sum(gg.gather_nd(x, gg.stack([idx, idx], 1))))

    step = gg.function(f)
    for _ in range(2):
        np.testing.assert_allclose(step(x, idx).numpy(), f(x, idx).numpy(), rtol=1e-12)
    assert "take_along_axis" in step.trace_text() and "gather" in step.trace_text()
