"""Every primitive's gradient against central differences (gg.gradcheck), first and second
order, on hypothesis-drawn shapes; integer and bool inputs, dtype rules and shape errors."""
import functools
import math
import operator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import gpugrad as gg
from helpers import first_grad
from gpugrad import primitives as P
from gpugrad.dispatch import REGISTRY

pytestmark = pytest.mark.usefixtures("device")  # every test runs on each device (cuda skipped without one)
QUICK = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                  HealthCheck.function_scoped_fixture])  # the device stays fixed


# ---------------------------------------------------------------------------------------
# Value ranges: strategies for one element, chosen to keep inputs off kinks and poles

def U(lo, hi):
    return st.floats(lo, hi)


def PM(lo, hi):
    """lo <= |x| <= hi: at least lo away from a kink at 0."""
    return st.floats(lo, hi) | st.floats(-hi, -lo)


def GRID(kmin, kmax, offset=0.0):
    """k / 2 + offset: values on grids with different offsets stay |offset| apart (no ties)."""
    return st.integers(kmin, kmax).map(lambda k: k / 2 + offset)


ANY, POS, OFF0 = U(-2, 2), U(0.5, 2), PM(0.1, 2)
DISTINCT = st.integers(-200, 200).map(lambda k: k / 20)  # drawn with unique=True: no ties in max/min
FLOATS = st.sampled_from([gg.float16, gg.float32, gg.float64])
TOL = {gg.float16: dict(eps=0.25, atol=1e-2, rtol=1e-2), gg.float32: dict(eps=1e-3, atol=1e-4, rtol=1e-3),
       gg.float64: {}}  # cast rounds the inputs, so low precisions need wide differences


# ---------------------------------------------------------------------------------------
# Layouts: input shapes and static parameters drawn from one base shape

@st.composite
def partner(draw, shape):
    """A shape that broadcasts against `shape`: leading axes dropped, some axes set to 1."""
    shape = shape[draw(st.integers(0, len(shape))):]
    return tuple(1 if draw(st.booleans()) else s for s in shape)


def reduction(nonempty):
    def layout(draw, s):
        n = len(s)
        axis = draw(st.one_of([st.none(), hnp.valid_tuple_axes(n)] + ([st.integers(-n, n - 1)] if n else [])))
        if nonempty:  # the max, min or mean of no elements has no value: reduced axes get a side >= 1
            reduced = {a % n for a in (range(n) if axis is None else axis if type(axis) is tuple else (axis,))}
            s = tuple(max(side, 1) if i in reduced else side for i, side in enumerate(s))
        return [s], dict(axis=axis, keepdims=draw(st.booleans()))
    return layout


def reshape_layout(draw, s):
    targets = [(-1,), s[::-1], s + (1,), (1,) + s] + [(math.prod(s[:k]), math.prod(s[k:]))
                                                       for k in range(len(s) + 1)]
    return [s], dict(shape=draw(st.sampled_from(targets)))


def squeeze_layout(draw, s):
    s = tuple(1 if draw(st.booleans()) else side for side in s)
    ones = [i - len(s) * draw(st.booleans()) for i, side in enumerate(s) if side == 1]  # some axes negative
    axis = draw(st.none() | st.sampled_from(ones) | st.lists(st.sampled_from(ones), unique=True)) if ones else None
    return [s], dict(axis=axis)


def concat_layout(draw, s):
    axis = draw(st.integers(-len(s), len(s) - 1))
    a = axis % len(s)
    sizes = draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    return [s[:a] + (k,) + s[a + 1:] for k in sizes], dict(axis=axis)


@st.composite
def index_keys(draw, s):
    """ints, slices (negative steps too), None, ..., or integer arrays (repeats likely)."""
    options = [hnp.basic_indices(s, allow_newaxis=True, allow_ellipsis=True)]
    if s and min(s) > 0:
        options.append(hnp.integer_array_indices(s, result_shape=hnp.array_shapes(max_dims=2, max_side=4)))
    key = draw(st.one_of(options))
    return key if type(key) is tuple else (key,)


def getitem_backward_layout(draw, s):
    key = draw(index_keys(s))
    return [np.empty(s)[key].shape], dict(key=key, shape=s)


def matmul_layout(draw, s):  # s: the batch shape; the partner's batch broadcasts against it
    m, k, n = (draw(st.sampled_from([1, 2, 3, 0])) for _ in range(3))
    bx, by = s, draw(partner(s))
    if draw(st.booleans()):
        bx, by = by, bx
    ta, tb = draw(st.booleans()), draw(st.booleans())
    return [bx + ((k, m) if ta else (m, k)), by + ((n, k) if tb else (k, n))], dict(transpose_a=ta, transpose_b=tb)


def cumsum_layout(draw, s):
    return [s], dict(axis=draw(st.integers(-len(s), len(s) - 1)), exclusive=draw(st.booleans()),
                     reverse=draw(st.booleans()))


def pad_layout(draw, s):
    return [s], dict(paddings=[[draw(st.integers(0, 2)), draw(st.integers(0, 2))] for _ in s],
                     constant_values=draw(st.sampled_from([0, -1.5])))


def gather_layout(draw, s):  # indices with repeats, so that the scatter-add accumulates
    axis = draw(st.integers(0, len(s) - 1))
    indices = draw(hnp.arrays(np.int64, draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3)),
                              elements=st.integers(0, s[axis] - 1)))
    return [s], dict(indices=indices, axis=axis)


def gather_backward_layout(draw, s):
    [s], params = gather_layout(draw, s)
    return [np.take(np.empty(s), params["indices"], axis=params["axis"]).shape], dict(params, shape=s)


def along_layout(draw, s):
    axis = draw(st.integers(0, len(s) - 1))
    shape = s[:axis] + (draw(st.integers(0, 4)),) + s[axis + 1:]
    return [s], dict(indices=draw(hnp.arrays(np.int64, shape, elements=st.integers(0, s[axis] - 1))), axis=axis)


def along_backward_layout(draw, s):
    [s], params = along_layout(draw, s)
    return [params["indices"].shape], dict(params, shape=s)


EINSUMS = ["ij,jk->ik", "bi,bj->ij", "i,i->", "ij->ji", "ij->", "bij,bjk->bik", "ij,jk->i", "i,j->ij",
           "ij,jk", "...ij,...jk->...ik", "bij,j->bi"]


def einsum_layout(draw, s):  # the drawn shape is not used: the subscripts' sizes are drawn instead
    equation = draw(st.sampled_from(EINSUMS))
    sizes = {c: draw(st.sampled_from([1, 2, 3, 0])) for c in "bijk"}
    inputs = equation.partition("->")[0].split(",")
    batch = [tuple(draw(st.integers(1, 2)) for _ in range(draw(st.integers(0, 2))))] * len(inputs)
    if "..." in equation and draw(st.booleans()):  # broadcast the ellipsis: a 1 or a missing axis in one operand
        batch[1] = batch[1][1:] if draw(st.booleans()) else tuple(1 for _ in batch[1])
    return [b * ("..." in part) + tuple(sizes[c] for c in part.replace("...", "")) for part, b in zip(inputs, batch)], \
        dict(equation=equation)


def conv2d_layout(draw, s):  # the drawn shape is not used: batch, channels, filter and steps are drawn instead
    n, c, o = draw(st.sampled_from([1, 2, 0])), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel, strides, dilations = (tuple(draw(st.integers(1, 2)) for _ in "hw") for _ in range(3))
    padding = draw(st.sampled_from(["VALID", "SAME", "explicit"]))
    if padding == "explicit":
        padding = [[0, 0]] + [[draw(st.integers(0, 2)), draw(st.integers(0, 2))] for _ in "hw"] + [[0, 0]]
    sides = tuple((k - 1) * d + 1 + draw(st.integers(0, 2)) for k, d in zip(kernel, dilations))
    return [(n,) + sides + (c,), kernel + (c, o)], dict(strides=strides, padding=padding, dilations=dilations)


def _cast_twice(x, dtypes):
    return gg.cast(gg.cast(x, dtypes[0]), dtypes[1])


def _cast_tol(params):
    return TOL[min(params["dtypes"], key=lambda d: d.itemsize)]


class Case:
    """fn(*inputs, **params) and one value range per input (the last one repeats).

    Without a layout the inputs broadcast elementwise: one has the drawn shape, each other a
    partner of it. A `layout(draw, shape)` gives (input shapes, params) itself. `dims`
    adjusts the drawn shape."""

    def __init__(self, fn, *ranges, layout=None, dims=(), unique=False, tol=None):
        self.fn, self.ranges, self.layout = fn, ranges, layout
        self.dims, self.unique, self.tol = dict(dims), unique, tol

    @property
    def broadcasts(self):
        return self.layout is None and len(self.ranges) > 1

    def inputs(self, draw, shapes):
        return [draw(hnp.arrays(np.float64, shape, elements=self.ranges[min(i, len(self.ranges) - 1)],
                                unique=self.unique)) for i, shape in enumerate(shapes)]

    def draw(self, draw, max_side=3):
        """(f, inputs, gradcheck tolerances) for one drawn example."""
        s = draw(hnp.array_shapes(**{**dict(min_dims=0, max_dims=3, min_side=0, max_side=max_side), **self.dims}))
        if self.layout is None:
            full = draw(st.integers(0, len(self.ranges) - 1))
            shapes, params = [s if i == full else draw(partner(s)) for i in range(len(self.ranges))], {}
        else:
            shapes, params = self.layout(draw, s)
        tol = self.tol(params) if callable(self.tol) else self.tol or {}
        return functools.partial(self.fn, **params), self.inputs(draw, shapes), tol


def unreduce_layout(nonempty):
    """dy shaped like the result of a reduction of the drawn shape, which becomes `shape`."""
    def layout(draw, s):
        [s], params = reduction(nonempty)(draw, s)
        axis = params["axis"]
        if axis is not None:  # primitives take the normalized form that gg.reduce_* passes them
            axis = tuple(sorted(a % len(s) for a in (axis if type(axis) is tuple else (axis,))))
        reduced = np.empty(s).sum(axis=axis, keepdims=params["keepdims"]).shape
        return [reduced], dict(axis=axis, keepdims=params["keepdims"], shape=s)
    return layout


def _reduce(op, nonempty, values):
    return Case(op, values, layout=reduction(nonempty), unique=values is DISTINCT)


def _unary(fn, values=ANY):
    return Case(fn, values)


# One case per differentiable primitive in the registry, keyed by its name.
CASES = {
    "add": Case(gg.add, ANY, ANY),
    "subtract": Case(gg.subtract, ANY, ANY),
    "multiply": Case(gg.multiply, ANY, ANY),
    "divide": Case(gg.divide, ANY, PM(0.5, 2)),
    "power": Case(gg.power, POS, ANY),
    "maximum": Case(gg.maximum, GRID(-4, 4), GRID(-4, 4, 0.25)),
    "minimum": Case(gg.minimum, GRID(-4, 4), GRID(-4, 4, 0.25)),
    "squared_difference": Case(gg.squared_difference, ANY, ANY),
    "where": Case(lambda c, x, y: gg.where(c > 0, x, y), OFF0, ANY, ANY),  # c: a connected non-input
    "clip_by_value": Case(gg.clip_by_value, GRID(-4, 4, 0.25), GRID(-3, -1), GRID(1, 3)),
    "matmul": Case(gg.matmul, ANY, layout=matmul_layout, dims=dict(max_dims=2)),
    "negative": _unary(gg.negative),
    "abs": _unary(gg.abs, OFF0),
    "sign": _unary(gg.sign, OFF0),
    "relu": _unary(gg.relu, OFF0),
    "square": _unary(gg.square),
    "sqrt": _unary(gg.sqrt, POS),
    "exp": _unary(gg.exp),
    "log": _unary(gg.log, POS),
    "log1p": _unary(gg.log1p, U(-0.5, 2)),
    "sin": _unary(gg.sin),
    "cos": _unary(gg.cos),
    "tanh": _unary(gg.tanh),
    "sigmoid": _unary(gg.sigmoid, U(-3, 3)),
    "softplus": _unary(gg.softplus, U(-3, 3)),
    "identity": _unary(gg.identity),
    "cast": Case(_cast_twice, ANY, layout=lambda draw, s: ([s], dict(dtypes=draw(st.tuples(FLOATS, FLOATS)))),
                 tol=_cast_tol),
    "sigmoid_backward": Case(P.sigmoid_backward, ANY, ANY),
    "tanh_backward": Case(P.tanh_backward, ANY, ANY),
    "square_backward": Case(P.square_backward, ANY, ANY),
    "relu_backward": Case(P.relu_backward, ANY, OFF0),
    "squared_difference_backward": Case(P.squared_difference_backward, ANY, ANY, ANY),
    "getitem_backward": Case(lambda dy, key, shape: P.getitem_backward(dy, key=key, shape=shape), ANY,
                             layout=getitem_backward_layout),
    "reduce_sum": _reduce(gg.reduce_sum, False, ANY),
    "reduce_sum_backward": Case(lambda dy, **p: P.reduce_sum_backward(dy, **p), ANY, layout=unreduce_layout(False)),
    "reduce_mean_backward": Case(lambda dy, **p: P.reduce_mean_backward(dy, **p), ANY, layout=unreduce_layout(True)),
    "reduce_mean": _reduce(gg.reduce_mean, True, ANY),
    "reduce_max": _reduce(gg.reduce_max, True, DISTINCT),
    "reduce_min": _reduce(gg.reduce_min, True, DISTINCT),
    "reduce_prod": _reduce(gg.reduce_prod, False, PM(0.5, 1.5)),  # zeros: test_reduce_prod_with_zeros
    "broadcast_to": Case(gg.broadcast_to, ANY, layout=lambda draw, s: ([draw(partner(s))], dict(shape=s))),
    "reshape": Case(gg.reshape, ANY, layout=reshape_layout),
    "transpose": Case(gg.transpose, ANY, layout=lambda draw, s: (
        [s], dict(perm=draw(st.none() | st.permutations(range(len(s))))))),
    "expand_dims": Case(gg.expand_dims, ANY, layout=lambda draw, s: (
        [s], dict(axis=draw(st.integers(-len(s) - 1, len(s)))))),
    "squeeze": Case(gg.squeeze, ANY, layout=squeeze_layout),
    "tile": Case(gg.tile, ANY, layout=lambda draw, s: (
        [s], dict(multiples=tuple(draw(st.integers(0, 2)) for _ in s)))),
    "concat": Case(lambda *xs, axis: gg.concat(list(xs), axis), ANY, layout=concat_layout, dims=dict(min_dims=1)),
    "stack": Case(lambda *xs, axis: gg.stack(list(xs), axis), ANY, layout=lambda draw, s: (
        [s] * draw(st.integers(1, 3)), dict(axis=draw(st.integers(-len(s) - 1, len(s)))))),
    "getitem": Case(gg.getitem, ANY, layout=lambda draw, s: ([s], dict(key=draw(index_keys(s))))),
    "cumsum": Case(gg.cumsum, ANY, layout=cumsum_layout, dims=dict(min_dims=1)),
    "pad": Case(gg.pad, ANY, layout=pad_layout),
    "erf": _unary(gg.erf),
    "gather": Case(lambda x, indices, axis: P.gather(x, indices, axis=axis), ANY, layout=gather_layout,
                   dims=dict(min_dims=1, min_side=1)),
    "gather_backward": Case(lambda dy, indices, axis, shape: P.gather_backward(dy, indices, axis=axis, shape=shape),
                            ANY, layout=gather_backward_layout, dims=dict(min_dims=1, min_side=1)),
    "take_along_axis": Case(lambda x, indices, axis: P.take_along_axis(x, indices, axis=axis), ANY,
                            layout=along_layout, dims=dict(min_dims=1, min_side=1)),
    "take_along_axis_backward": Case(lambda dy, indices, axis, shape: P.take_along_axis_backward(
        dy, indices, axis=axis, shape=shape), ANY, layout=along_backward_layout, dims=dict(min_dims=1, min_side=1)),
    "einsum": Case(lambda *xs, equation: gg.einsum(equation, *xs), ANY, layout=einsum_layout),
    "conv2d": Case(lambda x, w, **p: gg.nn.conv2d(x, w, **p), ANY, layout=conv2d_layout),
}

# Weak Python scalars as operands, and inputs used twice (gradients accumulate).
VARIANTS = {
    "x ** 3": _unary(lambda x: x ** 3),
    "x ** 0": _unary(lambda x: x ** 0),
    "x ** 0.5": _unary(lambda x: x ** 0.5, POS),
    "2.0 ** x": _unary(lambda x: 2.0 ** x),
    "3 - x": _unary(lambda x: 3 - x),
    "2 / x": _unary(lambda x: 2 / x, PM(0.5, 2)),
    "x * 2.5 + 1": _unary(lambda x: x * 2.5 + 1),
    "maximum(x, 0.5)": _unary(lambda x: gg.maximum(x, 0.5), GRID(-4, 4, 0.25)),
    "minimum(0.5, x)": _unary(lambda x: gg.minimum(0.5, x), GRID(-4, 4, 0.25)),
    "clip(x, -1, 1)": _unary(lambda x: gg.clip_by_value(x, -1.0, 1.0), GRID(-4, 4, 0.25)),
    "where(x > 0, x, 0.1)": _unary(lambda x: gg.where(x > 0, x, 0.1), OFF0),
    "squared_difference(1.5, x)": _unary(lambda x: gg.squared_difference(1.5, x)),
    "x * sin(x)": _unary(lambda x: x * gg.sin(x)),
    "x @ x^T": Case(lambda x: x @ gg.transpose(x), ANY, dims=dict(min_dims=2, max_dims=2)),
}


ALL = {**CASES, **VARIANTS}
NONLINEAR = [name for name in CASES if name in REGISTRY and not REGISTRY[name].linear] + list(VARIANTS)


# ---------------------------------------------------------------------------------------
# Gradchecks

def test_every_differentiable_primitive_has_a_case():
    builtin = {name for name, prim in REGISTRY.items()
               if prim.differentiable and prim.forward.__module__.startswith("gpugrad.")}
    assert not builtin - set(CASES), "primitives without a gradcheck case"
    assert not set(CASES) - builtin, "cases for names that are not differentiable built-in primitives"


@pytest.mark.parametrize("name", list(ALL))
@settings(max_examples=30, **QUICK)
@given(data=st.data())
def test_gradcheck(name, data):
    f, inputs, tol = ALL[name].draw(data.draw)
    assert gg.gradcheck(f, inputs, **tol)


@pytest.mark.parametrize("name", NONLINEAR)
@settings(max_examples=15, **QUICK)
@given(data=st.data())
def test_second_derivative(name, data):
    f, inputs, tol = ALL[name].draw(data.draw, max_side=2)
    assert gg.gradcheck(lambda *xs: first_grad(f, xs), inputs, **tol)


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case.broadcasts])
@pytest.mark.parametrize("pinned", [(), (3,), (1, 3)])
@settings(max_examples=2, **QUICK)
@given(data=st.data())
def test_broadcast_partners(name, pinned, data):
    case = CASES[name]
    for i in range(len(case.ranges)):  # the pinned shape in each position, (2, 3) in the others
        shapes = [pinned if j == i else (2, 3) for j in range(len(case.ranges))]
        assert gg.gradcheck(case.fn, case.inputs(data.draw, shapes)), shapes


@pytest.mark.parametrize("pinned", [(), (3,), (1, 3)])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("transpose_a, transpose_b", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_batch_partners(pinned, swap, transpose_a, transpose_b, rng):
    x, y = rng.normal(size=(2, 3, 2, 4)), rng.normal(size=pinned + (4, 2))
    if swap:
        x, y = np.swapaxes(y, -1, -2), np.swapaxes(x, -1, -2)
    x, y = (np.swapaxes(x, -1, -2) if transpose_a else x), (np.swapaxes(y, -1, -2) if transpose_b else y)
    f = functools.partial(gg.matmul, transpose_a=transpose_a, transpose_b=transpose_b)
    assert gg.gradcheck(f, [x, y])
    assert gg.gradcheck(lambda a, b: first_grad(f, [a, b]), [x, y])


# ---------------------------------------------------------------------------------------
# Values that gradcheck alone would not pin down

def _tape_gradient(f, x, weights=None):
    x = gg.constant(x, dtype=gg.float64)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = f(x)
    return tape.gradient(y, x, output_gradients=weights)


@pytest.mark.parametrize("reduce, sign", [(gg.reduce_max, 1), (gg.reduce_min, -1)])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("x, axis, weights, expected", [
    ([1., 3., 3., 2.], None, None, [0., .5, .5, 0.]),
    ([[3., 3., 3.], [1., 5., 5.]], 1, [1., 2.], [[1 / 3] * 3, [0., 1., 1.]]),
    ([[3., 1.], [3., 4.]], 0, [1., 4.], [[.5, 0.], [.5, 4.]]),
    ([[7., 7.], [7., 7.]], (0, 1), 3., [[.75, .75], [.75, .75]]),
])
def test_extremum_ties_share_the_gradient_equally(reduce, sign, keepdims, x, axis, weights, expected):
    def f(v):
        return reduce(v * sign, axis=axis, keepdims=keepdims)
    w = None if weights is None else gg.reshape(gg.constant(weights, dtype=gg.float64), f(gg.constant(x)).shape)
    np.testing.assert_allclose(_tape_gradient(f, x, w).numpy(), sign * np.array(expected), rtol=1e-12)


REDUCE_PROD_ZEROS = [
    ([2., 0., 3.], None),  # one zero
    ([0., 2., 0., 3.], None),  # two zeros
    ([0., 0., 2., 0.], None),  # three: every second derivative is 0 as well
    ([[0., 2., 3.], [0., 0., 4.], [1., 2., 3.]], 1),  # rows with one, two and no zeros
    ([[0., 2.], [0., 5.], [3., 0.]], 0),
    ([[[0., 2.], [0., -1.]], [[1., 2.], [0., 5.]]], (0, 2)),
]


def _products_of_the_others(x, axis):
    """d sum(prod(x, axis)) / dx by brute force: prod is affine in each element."""
    grad = np.zeros_like(x)
    for j in np.ndindex(*x.shape):
        one, zero = x.copy(), x.copy()
        one[j], zero[j] = 1, 0
        grad[j] = np.sum(np.prod(one, axis=axis) - np.prod(zero, axis=axis))
    return grad


@pytest.mark.parametrize("x, axis", REDUCE_PROD_ZEROS)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduce_prod_with_zeros(x, axis, keepdims):
    def f(v):
        return gg.reduce_prod(v, axis=axis, keepdims=keepdims)
    x = np.array(x)
    np.testing.assert_allclose(_tape_gradient(f, x).numpy(), _products_of_the_others(x, axis), rtol=1e-12)
    assert gg.gradcheck(f, [x])


@pytest.mark.parametrize("x, axis", REDUCE_PROD_ZEROS)
def test_reduce_prod_second_derivative_with_zeros(x, axis):
    assert gg.gradcheck(lambda v: first_grad(lambda u: gg.reduce_prod(u, axis=axis), [v]), [np.array(x)])


@pytest.mark.parametrize("key", [
    [0, 0, 2], ([2, 2, 2],), (slice(None, None, -1), [1, 1]), (Ellipsis, None, [3, 0, 3]),
    (-1, slice(None, None, -2)), (slice(2, None), [[0, 1], [1, 1]]), ([1, 2, 1], [3, 3, 3]),
    [True, False, True], (None, 1, Ellipsis, slice(3, 0, -1)),
])
def test_getitem_gradient_scatters_and_accumulates(key, rng):
    x = rng.normal(size=(3, 4))
    assert gg.gradcheck(lambda v: gg.getitem(v, key), [x])
    assert gg.gradcheck(lambda v: first_grad(lambda u: u[key] * u[key], [v]), [x])
    expected = np.zeros((3, 4))
    np.add.at(expected, key, 1.0)  # repeated indices count once per occurrence
    np.testing.assert_array_equal(_tape_gradient(lambda v: v[key], x).numpy(), expected)


# ---------------------------------------------------------------------------------------
# Integer and bool tensors, comparisons, sign

INT_OPS = {
    "add": lambda a, b: a + b, "subtract": lambda a, b: a - b, "multiply": lambda a, b: a * b,
    "negative": lambda a, b: -a, "abs": lambda a, b: abs(a), "square": lambda a, b: gg.square(a),
    "sign": lambda a, b: gg.sign(a), "power": lambda a, b: a ** 2, "maximum": gg.maximum, "minimum": gg.minimum,
    "clip_by_value": lambda a, b: gg.clip_by_value(a, -1, 1), "matmul": lambda a, b: a @ gg.transpose(b),
    "reduce_sum": lambda a, b: gg.reduce_sum(a, axis=0), "reduce_max": lambda a, b: gg.reduce_max(a, axis=1),
    "reduce_min": lambda a, b: gg.reduce_min(a), "reduce_prod": lambda a, b: gg.reduce_prod(a, axis=0),
    "squared_difference": gg.squared_difference, "relu": lambda a, b: gg.relu(a),
}
SHAPE_OPS = {
    "where": lambda a, b: gg.where(gg.constant([True, False, True]), a, b),
    "reshape": lambda a, b: gg.reshape(a, (3, 2)), "transpose": lambda a, b: gg.transpose(a),
    "tile": lambda a, b: gg.tile(a, (2, 1)), "concat": lambda a, b: gg.concat([a, b], 1),
    "stack": lambda a, b: gg.stack([a, b], -1), "getitem": lambda a, b: a[[0, 0], ::-1],
    "expand_dims": lambda a, b: gg.expand_dims(a, 0), "squeeze": lambda a, b: gg.squeeze(a[:1]),
    "broadcast_to": lambda a, b: gg.broadcast_to(a[0], (4, 3)), "identity": lambda a, b: gg.identity(a),
    "cast": lambda a, b: gg.cast(gg.cast(a, "int64"), a.dtype),
}


@pytest.mark.parametrize("name, dtype", [(n, d) for n in INT_OPS for d in ("int32", "int64")]
                         + [(n, d) for n in SHAPE_OPS for d in ("int32", "bool")])
def test_integer_and_bool_tensors_flow_without_gradients(name, dtype, rng):
    a = gg.constant(rng.integers(-3, 4, size=(2, 3)).astype(dtype))
    b = gg.constant(rng.integers(-3, 4, size=(2, 3)).astype(dtype))
    with gg.GradientTape() as tape:
        tape.watch([a, b])
        y = {**INT_OPS, **SHAPE_OPS}[name](a, b)
        w = gg.ones(y.shape, dtype=gg.float32)
        tape.watch(w)
        z = gg.reduce_sum(w * gg.cast(y, gg.float32))
    assert y.dtype.kind == np.dtype(dtype).kind, y.dtype
    ga, gb, gw = tape.gradient(z, [a, b, w])
    assert ga is None and gb is None
    np.testing.assert_array_equal(gw.numpy(), y.numpy().astype(np.float32))


@pytest.mark.parametrize("op", [gg.exp, gg.sqrt, lambda a: a / 2, lambda a: a * 1.5,
                                lambda a: gg.cast(a, "float64")])
def test_integer_source_of_float_result_gets_none(op):
    a = gg.constant([1, 2, 3])
    with gg.GradientTape() as tape:
        tape.watch(a)
        y = op(a)
    assert y.dtype.kind == "f"
    assert tape.gradient(y, a) is None


@pytest.mark.parametrize("op, reference", [
    (gg.equal, np.equal), (gg.not_equal, np.not_equal), (gg.less, np.less), (gg.less_equal, np.less_equal),
    (gg.greater, np.greater), (gg.greater_equal, np.greater_equal), (operator.eq, np.equal),
    (operator.ne, np.not_equal), (operator.lt, np.less), (operator.le, np.less_equal),
    (operator.gt, np.greater), (operator.ge, np.greater_equal),
])
def test_comparisons_give_bool_tensors_without_gradients(op, reference):
    x, y = gg.constant([[1., 2., 3.], [3., 2., 1.]]), gg.constant([2., 2., 1.])
    with gg.GradientTape(persistent=True) as tape:
        tape.watch([x, y])
        c = op(x, y)
        z = gg.cast(c, gg.float32) * x
    assert c.dtype == np.bool_
    np.testing.assert_array_equal(c.numpy(), reference(x.numpy(), y.numpy()))
    assert tape.gradient(c, [x, y]) == [None, None]
    gx, gy = tape.gradient(z, [x, y])
    assert gy is None
    np.testing.assert_array_equal(gx.numpy(), c.numpy().astype(np.float32))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sign_gradient_is_zeros_not_none(dtype):
    x = gg.constant([[-1.5, 2.0, 0.3]], dtype=dtype)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.sign(x) * 3.0
    np.testing.assert_array_equal(y.numpy(), [[-3., 3., 3.]])
    g = tape.gradient(y, x)
    assert g is not None and g.shape == x.shape and g.dtype == x.dtype
    assert not np.any(g.numpy())


# ---------------------------------------------------------------------------------------
# Shape errors

BROADCASTING_OPS = [gg.add, gg.subtract, gg.multiply, gg.divide, gg.power, gg.maximum, gg.minimum,
                    gg.squared_difference, operator.add, operator.truediv, operator.pow,
                    lambda a, b: gg.where(gg.constant(True), a, b), lambda a, b: gg.where(a > 0, a, b),
                    lambda a, b: gg.clip_by_value(a, b, 2.0), lambda a, b: gg.clip_by_value(a, -2.0, b)]


@pytest.mark.parametrize("op", BROADCASTING_OPS)
def test_shapes_that_do_not_broadcast_raise_naming_both(op):
    a, b = gg.ones((2, 3)), gg.ones((4, 1, 5))
    with pytest.raises(ValueError) as error:
        op(a, b)
    assert "(2, 3)" in str(error.value) and "(4, 1, 5)" in str(error.value), str(error.value)


@pytest.mark.parametrize("x, y, transposes", [
    ((3,), (3, 3), {}), ((3, 3), (3,), {}), ((), (2, 2), {}), ((2, 3), (4, 2), {}), ((2, 2, 3), (2, 4, 2), {}),
    ((2, 2, 3), (3, 3, 4), {}), ((3,), (3, 3), dict(transpose_a=True)), ((2, 3), (2, 4), dict(transpose_b=True)),
    ((2, 2, 3), (2, 4, 3), dict(transpose_a=True, transpose_b=True)),
])
def test_matmul_shape_errors_name_both_shapes(x, y, transposes):
    with pytest.raises(ValueError) as error:
        gg.matmul(gg.ones(x), gg.ones(y), **transposes)
    assert str(x) in str(error.value) and str(y) in str(error.value), str(error.value)


# ---------------------------------------------------------------------------------------
# Dtypes: weak Python scalars, promotion, gradient dtypes

@pytest.mark.parametrize("expression, dtype", [
    ("x32 * 2", "float32"), ("2 * x32", "float32"), ("x32 + 2.5", "float32"), ("3.0 - x32", "float32"),
    ("x32 ** 2", "float32"), ("2.0 ** x32", "float32"), ("1 / x32", "float32"), ("x16 / 3.0", "float16"),
    ("gg.maximum(x32, 1.5)", "float32"), ("gg.clip_by_value(x32, 0.0, 1.0)", "float32"),
    ("gg.where(x32 > 1, x32, 0.0)", "float32"), ("gg.squared_difference(x32, 0.5)", "float32"),
    ("i32 * 2.5", "float64"), ("i32 * 2", "int32"), ("x32 + x64", "float64"), ("x64 * x32", "float64"),
    ("x16 * x32", "float32"), ("gg.reshape(x32, (1, 2)) @ gg.reshape(x64, (2, 1))", "float64"),
])
def test_weak_scalars_and_promotion(expression, dtype):
    names = dict(gg=gg, i32=gg.constant([1, 2]), **{f"x{bits}": gg.constant([1., 2.], dtype=f"float{bits}")
                                                     for bits in (16, 32, 64)})
    assert eval(expression, names).dtype == np.dtype(dtype)


@pytest.mark.parametrize("source, other", [("float32", "float64"), ("float64", "float32"),
                                           ("float16", "float64"), ("float32", "float16")])
@pytest.mark.parametrize("variable", [False, True])
def test_gradient_has_the_source_dtype(source, other, variable):
    values, c = np.array([1., 2., 3.]), gg.constant([2., 3., 4.], dtype=other)
    x = gg.Variable(values, dtype=source) if variable else gg.constant(values, dtype=source)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.reduce_sum(gg.square(x * c) + gg.cast(x, other) * 2)
    assert y.dtype == np.promote_types(source, other)
    g = tape.gradient(y, x)
    assert g.dtype == np.dtype(source)
    np.testing.assert_allclose(g.numpy(), 2 * values * c.numpy().astype(float) ** 2 + 2, rtol=2e-3)


@pytest.mark.parametrize("dtype", [gg.float32, gg.float64])
def test_sigmoid_keeps_relative_accuracy_far_out(dtype):
    """sigmoid(-30) is 9.4e-14, not 0: log(sigmoid(x)) stays finite; no overflow for any input."""
    x = np.array([-80.0, -30.0, -17.0, -5.0, 0.0, 5.0, 30.0, 1e4, -1e4])
    got = gg.sigmoid(gg.constant(x, dtype=dtype)).numpy()
    expected = np.exp(-np.logaddexp(0.0, -x))
    normal = expected >= np.finfo(dtype).tiny
    np.testing.assert_allclose(got[normal], expected[normal], rtol=32 * np.finfo(dtype).eps)
    assert np.all(got[~normal] < np.finfo(dtype).tiny) and got.dtype == dtype
