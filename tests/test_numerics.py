"""The rounding rule of the activations and the fused backward ops (written in
gpugrad/primitives/rounding.py): no subnormal float32 or float64 results (float16 keeps its own), and
results rounded as the exact value is, checked against exact references (Python's decimal
and fractions) from deeply saturated to moderate inputs, on each device."""
import decimal
import functools
from fractions import Fraction

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import kernels, primitives as P

FLOATS = [np.float16, np.float32, np.float64]

# Allowed distance, in ulps, from the correctly rounded value. float16 and float32 are
# computed in float64 and rounded once: 0. float64 has nothing wider to compute in: 0 where
# the result takes one rounding; 1 for tanh (one function call; NumPy's and CUDA's float64
# tanh are within an ulp) and the two roundings of squared_difference_backward; 2 for softplus
# (exp, then log1p), sigmoid (exp, then a sum and a quotient) and the three roundings of
# sigmoid_backward and tanh_backward.
FLOAT64_ULPS = {"sigmoid": 2, "tanh": 1, "softplus": 2, "relu": 0, "sigmoid_backward": 2, "tanh_backward": 2,
                "relu_backward": 0, "square_backward": 0, "squared_difference_backward": 1}


# ---------------------------------------------------------------------------------------
# Exact references

def _in_decimal(function):
    """function(x) of a Python float, computed in 60-digit decimal arithmetic (cached)."""
    context = decimal.Context(prec=60, Emin=-10**6, Emax=10**6)

    @functools.lru_cache(maxsize=None)
    def exact(x):
        with decimal.localcontext(context):
            return function(decimal.Decimal(x))
    return exact


@_in_decimal
def _sigmoid(v):
    if v >= 0:
        return 1 / (1 + (-v).exp())
    e = v.exp()
    return e / (1 + e)


@_in_decimal
def _tanh(v):
    a = abs(v)
    if a < decimal.Decimal("1e-6"):  # the series, as e^2a - 1 would cancel
        r = a - a ** 3 / 3 + 2 * a ** 5 / 15 - 17 * a ** 7 / 315
    else:
        r = 1 - 2 / ((2 * min(a, decimal.Decimal(10 ** 4))).exp() + 1)
    return r.copy_sign(v)


@_in_decimal
def _softplus(v):
    if v > 0:
        return v + (1 + (-v).exp()).ln()
    e = v.exp()
    if v < -30:  # log(1 + e) by its series, as 1 + e would need too many digits
        return e - e * e / 2 + e ** 3 / 3
    return (1 + e).ln()


@_in_decimal
def _relu(v):
    return max(v, decimal.Decimal(0))


def _nearest(exact, dtype):
    """The value of `dtype` nearest to the exact number (ties to even), before flushing."""
    exact = Fraction(exact)
    guess = dtype(float(exact))  # float(Fraction) rounds correctly; the second rounding may miss
    best = None
    for candidate in (np.nextafter(guess, dtype(-np.inf)), guess, np.nextafter(guess, dtype(np.inf))):
        assert np.isfinite(candidate), "the reference is out of the dtype's range"
        key = (abs(Fraction(float(candidate)) - exact), int(candidate.view(f"u{candidate.itemsize}")) & 1)
        if best is None or key < best[0]:
            best = key, candidate
    return best[1]


def _rounded(exact, dtype):
    """The rule's result: the nearest value of dtype, flushed to a zero of the exact value's sign
    when it is a subnormal float32 or float64."""
    r = _nearest(exact, dtype)
    if dtype != np.float16 and 0 < abs(r) < np.finfo(dtype).tiny:
        r = dtype(-0.0 if exact < 0 else 0.0)
    return r


def _ulps(got, want):
    """Signed distances in ulps (steps between neighbouring values of the dtype)."""
    bits = np.dtype(f"i{got.itemsize}")

    def ordered(a):
        i = a.view(bits).astype(np.int64)
        return np.where(i < 0, -(i & np.iinfo(bits).max), i)
    return ordered(got) - ordered(want)


def _check(name, got, want, nonzero, dtype, float64_ulps):
    """got (computed) against want (the references, `nonzero` where the exact value is not 0):
    dtype, no subnormals (float32 and float64), NaN where NaN is expected, the allowed ulps
    elsewhere, and zeros that keep the sign of a nonzero exact value (the flushed ones)."""
    got = np.asarray(got)
    assert got.dtype == dtype and got.shape == want.shape
    if dtype != np.float16:
        subnormal = (got != 0) & (np.abs(got) < np.finfo(dtype).tiny)
        assert not subnormal.any(), f"{name}: subnormal results {got[subnormal][:5]}"
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan, err_msg=f"{name}: NaN where the reference has none")
    allowed = float64_ulps if dtype == np.float64 else 0
    distance = np.abs(_ulps(got[~nan], want[~nan]))
    worst = np.argmax(distance) if distance.size else None
    assert not distance.size or distance[worst] <= allowed, (
        f"{name}: {got[~nan][worst]!r} where {want[~nan][worst]!r} is the rounded exact value "
        f"({distance[worst]} ulps, {np.count_nonzero(distance > allowed)} results past {allowed})")
    flushed = (want == 0) & nonzero
    np.testing.assert_array_equal(np.signbit(got[flushed]), np.signbit(want[flushed]), err_msg=f"{name}: signs")


# ---------------------------------------------------------------------------------------
# Inputs: deeply saturated to moderate, and the edges of every dtype's ranges

EDGES = [0.0, -0.0, 5e-324, -5e-324, 1e-310, -1e-310, 1e-300, -1e-300, 1e-40, -1e-40, 1e-7, -1e-7,
         1.1754944e-38, -1.1754944e-38, 6e-5, -6e-5, -11.0, -12.0, -16.6, -17.33, -17.34, 16.7, 37.4, -37.4,
         40.0, -40.0, 40.5, -87.3, -87.3365, -87.34, -88.0, -88.8, 88.8, -103.97, -103.98, -104.0, -700.0, -707.7,
         -708.0, -708.39, -708.3964, -708.4, -709.0, -709.8, 709.8, -745.2, -746.0, 1e4, -1e4, 6e4, -6e4, 1e30, -1e30,
         3e38, -3e38, 1e300, -1e300, np.inf, -np.inf, np.nan]
GRID = np.concatenate([np.linspace(-800, 800, 1601), np.linspace(-120, 120, 2401), EDGES])


def _inputs(values, dtype):
    """The values that dtype holds (past its range they are left out, not rounded to inf)."""
    values = np.asarray(values, np.float64)
    return values[np.isnan(values) | (np.abs(values) <= np.finfo(dtype).max)].astype(dtype)


def _scaled(rng, n, dtype, low, high):
    """n values of random sign and magnitudes 10^u, u uniform in [low, high] (as fractions of
    the dtype's decimal exponent range), so that products land on both sides of tiny."""
    info = np.finfo(dtype)
    exponents = rng.uniform(low * np.log10(info.smallest_subnormal), high * np.log10(info.max), n)
    return rng.choice([-1.0, 1.0], n) * 10.0 ** exponents


ACTIVATIONS = {"sigmoid": (gg.nn.sigmoid, _sigmoid), "tanh": (gg.nn.tanh, _tanh),
               "softplus": (gg.nn.softplus, _softplus), "relu": (gg.nn.relu, _relu)}


def _reference(exact_of, x, dtype):
    """The rule's results of an activation at x, and where its exact value is not 0."""
    exacts = [decimal.Decimal(np.nan) if np.isnan(v) else exact_of(float(v)) for v in x.tolist()]
    want = [dtype(float(e)) if not e.is_finite() else _rounded(e, dtype) for e in exacts]
    return np.array(want, dtype), np.array([not e.is_zero() for e in exacts])


# ---------------------------------------------------------------------------------------
# Activations (each test runs on each device: the CUDA path, kernels included, where there is a GPU)

@pytest.mark.usefixtures("device")
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_is_rounded_and_flushed(name, dtype):
    op, exact_of = ACTIVATIONS[name]
    x = _inputs(GRID, dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        got = op(gg.constant(x)).numpy()
    _check(name, got, *_reference(exact_of, x, dtype), dtype, FLOAT64_ULPS[name])


@pytest.mark.usefixtures("device")
def test_float16_sigmoid_of_minus_12_is_its_rounded_value():
    x = [-11.0, -12.0, -13.0, -17.0]
    got = gg.sigmoid(gg.constant(x, dtype=gg.float16)).numpy()
    np.testing.assert_array_equal(got, [_nearest(_sigmoid(v), np.float16) for v in x])
    assert got[1] == np.float16(6.139e-6) and abs(float(got[1]) - 6.1e-6) < 0.05e-6  # a float16 subnormal


@pytest.mark.usefixtures("device")
@pytest.mark.parametrize("dtype, saturated, first_normal", [
    (np.float32, [-88.0, -90.0, -103.0, -104.0, -1e4, -3e38], -87.0),
    (np.float64, [-709.0, -710.0, -745.0, -1e4, -1e300], -708.0)])
def test_saturated_sigmoid_is_zero_below_the_smallest_normal_number(dtype, saturated, first_normal):
    got = gg.sigmoid(gg.constant(saturated + [first_normal], dtype=dtype)).numpy()
    np.testing.assert_array_equal(got[:-1], 0)
    want = _nearest(_sigmoid(first_normal), dtype)
    assert got[-1] >= np.finfo(dtype).tiny and abs(_ulps(got[-1:], np.array([want]))[0]) <= FLOAT64_ULPS["sigmoid"]


@pytest.mark.usefixtures("device")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_has_no_subnormals_and_log_softmax_none_to_flush(dtype, rng):
    logits = np.concatenate([rng.normal(size=(40, 16)) * 60, np.linspace(-900, 0, 16)[None]]).astype(dtype)
    probabilities = gg.nn.softmax(gg.constant(logits)).numpy()
    tiny = np.finfo(dtype).tiny
    assert not ((probabilities > 0) & (probabilities < tiny)).any() and (probabilities == 0).any()
    z = logits - logits.max(axis=-1, keepdims=True)
    np.testing.assert_allclose(probabilities, np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True),
                               rtol=8 * np.finfo(dtype).eps, atol=tiny)
    log_probabilities = gg.nn.log_softmax(gg.constant(logits)).numpy()
    assert not ((log_probabilities != 0) & (np.abs(log_probabilities) < tiny)).any()


# ---------------------------------------------------------------------------------------
# Fused backward ops, and the gradients of sigmoid and softplus

def _exact_sigmoid_backward(dy, y):
    return Fraction(dy) * Fraction(y) * (1 - Fraction(y))


def _exact_tanh_backward(dy, y):
    return Fraction(dy) * (1 - Fraction(y) ** 2)


def _exact_relu_backward(dy, y):
    return Fraction(dy) if y > 0 else Fraction(0)


def _exact_square_backward(dy, x):
    return 2 * Fraction(dy) * Fraction(x)


def _exact_squared_difference_backward(dy, x, y):
    return 2 * Fraction(dy) * (Fraction(x) - Fraction(y))


def _fused_inputs(name, dtype, rng, n=3000):
    """Finite inputs of one fused op in dtype: gradients dy of every magnitude (subnormal ones
    too), and outputs y of the activation it belongs to (from the saturated to the moderate)."""
    dy = _scaled(rng, n, dtype, 1.0, 0.3)
    if name == "sigmoid_backward":
        y = np.concatenate([P.sigmoid.forward(_inputs(GRID[np.isfinite(GRID)], dtype)), rng.uniform(0, 1, n)])
        return [dy, rng.choice(y, n)]
    if name == "tanh_backward":
        near_one = 1 - 10.0 ** rng.uniform(np.log10(np.finfo(dtype).eps), 0, n)
        y = np.concatenate([P.tanh.forward(_inputs(GRID[np.isfinite(GRID)], dtype)), near_one, -near_one])
        return [dy, rng.choice(y, n)]
    if name == "relu_backward":
        return [dy, _scaled(rng, n, dtype, 0.6, 0.3)]
    x = _scaled(rng, n, dtype, 0.45, 0.45)
    if name == "square_backward":
        return [dy / 2, x]  # 2 dy does not overflow
    close = x * (1 + rng.choice([-1, 1], n) * 10.0 ** rng.uniform(np.log10(np.finfo(dtype).eps), 0, n))
    return [dy / 4, x / 2, np.where(rng.uniform(size=n) < 0.5, close / 2, _scaled(rng, n, dtype, 0.45, 0.45) / 2)]


FUSED = {"sigmoid_backward": _exact_sigmoid_backward, "tanh_backward": _exact_tanh_backward,
         "relu_backward": _exact_relu_backward, "square_backward": _exact_square_backward,
         "squared_difference_backward": _exact_squared_difference_backward}


def _fused_reference(exact_of, arrays, dtype):
    """The rule's results of a fused op, and where its exact value is not 0."""
    exacts = [exact_of(*values) for values in zip(*(a.tolist() for a in arrays))]
    return np.array([_rounded(e, dtype) for e in exacts], dtype), np.array([e != 0 for e in exacts])


@pytest.mark.usefixtures("device")
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(FUSED))
def test_fused_backward_is_rounded_and_flushed(name, dtype, rng):
    arrays = [a.astype(dtype) for a in _fused_inputs(name, dtype, rng)]
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        got = getattr(P, name)(*(gg.constant(a) for a in arrays)).numpy()
    _check(name, got, *_fused_reference(FUSED[name], arrays, dtype), dtype, FLOAT64_ULPS[name])


@pytest.mark.usefixtures("device")
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ["sigmoid", "softplus"])
def test_gradient_is_rounded_and_flushed(name, dtype, rng):
    """The gradients the tape computes: sigmoid's is sigmoid_backward(g, y) of the forward's
    rounded y, softplus's g times the rounded sigmoid(x); each rounded once from those."""
    x = _inputs(GRID[np.isfinite(GRID)], dtype)
    g = _scaled(rng, x.size, dtype, 0.5, 0.05).astype(dtype)
    variable = gg.constant(x)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        with gg.GradientTape() as tape:
            tape.watch(variable)
            out = ACTIVATIONS[name][0](variable)
        got = tape.gradient(out, variable, output_gradients=gg.constant(g)).numpy()
        s = gg.sigmoid(gg.constant(x)).numpy()
    if name == "sigmoid":
        want = _fused_reference(_exact_sigmoid_backward, [g, s], dtype)
        _check("sigmoid's gradient", got, *want, dtype, FLOAT64_ULPS["sigmoid_backward"])
    else:  # one rounding of the product g s, in every dtype
        want = _fused_reference(lambda a, b: Fraction(a) * Fraction(b), [g, s], dtype)
        _check("softplus's gradient", got, *want, dtype, 0)


# ---------------------------------------------------------------------------------------
# The CUDA kernels against their NumPy reference, bit for bit, on the inputs above and
# subnormal ones (which CuPy's -ftz=true compilation would otherwise read as zero)

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(FUSED))
def test_kernel_matches_its_numpy_reference_bit_for_bit(name, dtype, rng):
    import cupy
    arrays = [a.astype(dtype) for a in _fused_inputs(name, dtype, rng)]
    arrays[0][:200] = rng.choice([-1, 1], 200) * np.finfo(dtype).smallest_subnormal * rng.integers(1, 2**20, 200)
    arrays[-1][200:400] = np.finfo(dtype).smallest_subnormal * rng.integers(1, 2**20, 200)
    want = getattr(P, name).forward(*arrays)
    got = kernels.launch(name, *(cupy.asarray(a) for a in arrays)).get()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
