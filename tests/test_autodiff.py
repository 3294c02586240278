"""gpugrad.autodiff: forward mode (ForwardAccumulator, jvp) checked for every differentiable
primitive against central differences, first order and forward-over-reverse; Hessians and
Hessian-vector products three ways; value_and_grad and grad against the tape;
vectorized_map's results and gradients."""
import contextlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import gpugrad as gg
import test_op_gradients as op_cases  # the case table of every primitive's gradient checks
from gpugrad import autodiff as ad
from gpugrad.autodiff import ForwardAccumulator, grad, hessian, hvp, jvp, value_and_grad, vectorized_map
from gpugrad.dispatch import REGISTRY
from helpers import first_grad

pytestmark = pytest.mark.usefixtures("device")  # every test runs on each device (cuda skipped without one)
QUICK = op_cases.QUICK
CASES = {**op_cases.CASES, **op_cases.VARIANTS}
TANGENT = st.floats(-1, 1)

# Every differentiable built-in primitive, collected from the registry: one without a case
# here (in tests/test_op_gradients.py) fails test_jvp_matches_central_differences.
BUILTIN = sorted(name for name, prim in REGISTRY.items()
                 if prim.differentiable and prim.kind != "update" and prim.forward.__module__.startswith("gpugrad."))
DECLARED = sorted(name for name in BUILTIN if REGISTRY[name] in ad._JVPS)


@contextlib.contextmanager
def transposition_only():
    """Forward mode with every declared JVP set aside: each one derived from its VJP."""
    saved = dict(ad._JVPS)
    ad._JVPS.clear()
    try:
        yield
    finally:
        ad._JVPS.update(saved)


def host(t):
    return t.numpy().astype(np.float64)


def tensors(arrays):
    return [gg.constant(np.asarray(a, dtype=np.float64)) for a in arrays]


def central_difference(f, inputs, tangents, eps):
    """(f(x + eps v) - f(x - eps v)) / 2 eps, in float64 on the host."""
    plus = f(*tensors([x + eps * v for x, v in zip(inputs, tangents)]))
    minus = f(*tensors([x - eps * v for x, v in zip(inputs, tangents)]))
    return (host(plus) - host(minus)) / (2 * eps)


def assert_close(got, expected, atol=1e-5, rtol=1e-3):
    np.testing.assert_allclose(got, expected, atol=atol, rtol=rtol)


def draw_tangents(data, inputs):
    return [data.draw(hnp.arrays(np.float64, np.shape(x), elements=TANGENT)) for x in inputs]


# ---------------------------------------------------------------------------------------
# Every primitive's JVP

def test_every_differentiable_primitive_has_a_forward_case():
    assert BUILTIN and not set(BUILTIN) - set(CASES), "primitives without a forward-mode case"
    assert {"add", "reshape", "concat"} <= set(DECLARED)


@pytest.mark.parametrize("name, transposed", [(n, False) for n in BUILTIN + list(op_cases.VARIANTS)]
                         + [(n, True) for n in DECLARED])
@settings(max_examples=30, **QUICK)
@given(data=st.data())
def test_jvp_matches_central_differences(name, transposed, data):
    assert name in CASES, f"primitive {name!r} has no case: add one to tests/test_op_gradients.py CASES"
    f, inputs, tol = CASES[name].draw(data.draw)
    tangents = draw_tangents(data, inputs)
    xs, vs = tensors(inputs), tensors(tangents)
    with transposition_only() if transposed else contextlib.nullcontext():
        with ForwardAccumulator(xs, vs) as acc:
            y = f(*xs)
        got = acc.jvp(y, unconnected_gradients="zero")
    assert got.shape == y.shape and got.dtype == y.dtype
    expected = central_difference(f, inputs, tangents, tol.get("eps", 1e-6))
    assert_close(host(got), expected, tol.get("atol", 1e-5), tol.get("rtol", 1e-3))


@pytest.mark.parametrize("name", [n for n in op_cases.NONLINEAR if n in CASES])
@settings(max_examples=12, **QUICK)
@given(data=st.data())
def test_forward_over_reverse_matches_differences_of_gradients(name, data):
    """The JVP of each primitive's VJP (the backward primitives included): a Hessian-vector
    product of sum(w * f(x)) against central differences of its gradient."""
    f, inputs, tol = CASES[name].draw(data.draw, max_side=2)
    tangents = draw_tangents(data, inputs)
    xs, vs = tensors(inputs), tensors(tangents)
    with ForwardAccumulator(xs, vs) as acc:
        g = first_grad(f, xs)
    got = acc.jvp(g, unconnected_gradients="zero")
    expected = central_difference(lambda *a: first_grad(f, a), inputs, tangents, tol.get("eps", 1e-6))
    assert_close(host(got), expected, tol.get("atol", 1e-5), tol.get("rtol", 1e-3))


def test_a_user_primitive_gets_forward_mode_from_its_vjp():
    @gg.primitive(name="autodiff_test_cube")
    def cube(x):
        return x * x * x

    @cube.defvjp
    def cube_vjp(g, out, x):
        return (3 * g * x * x,)

    try:
        x, v = gg.constant([1.0, -2.0], dtype="float64"), gg.constant([0.5, 1.0], dtype="float64")
        with ForwardAccumulator(x, v) as acc:
            y = cube(x)
        assert acc.jvp(y).numpy().tolist() == [1.5, 12.0]
        calls = []

        @ad.defjvp(cube)
        def cube_jvp(tangents, out, x):
            calls.append(1)
            return 3 * x * x * tangents[0]

        with ForwardAccumulator(x, v) as acc:
            y = cube(x)
        assert acc.jvp(y).numpy().tolist() == [1.5, 12.0] and calls == [1]
    finally:
        del REGISTRY["autodiff_test_cube"]
        ad._JVPS.pop(cube, None)


def test_custom_gradient_ops_get_forward_mode_from_their_grad_fn():
    @gg.custom_gradient
    def log1pexp(x):
        e = gg.exp(x)
        return gg.log(1 + e), lambda g: g * (1 - 1 / (1 + e))

    x, v = gg.constant([0.0, 2.0], dtype="float64"), gg.constant([1.0, 3.0], dtype="float64")
    with ForwardAccumulator(x, v) as acc:
        y = log1pexp(x)
    sig = 1 / (1 + np.exp(-x.numpy()))
    assert_close(acc.jvp(y).numpy(), sig * v.numpy(), rtol=1e-12)


def test_a_declared_jvp_must_give_the_result_shape():
    @gg.primitive(name="autodiff_test_bad")
    def bad(x):
        return x * 2

    ad.defjvp(bad, lambda tangents, out, x: gg.ones((5,)))
    try:
        x = gg.constant([1.0, 2.0])
        with ForwardAccumulator(x, x) as acc:
            y = bad(x)
        with pytest.raises(ValueError, match="autodiff_test_bad"):
            acc.jvp(y)
    finally:
        del REGISTRY["autodiff_test_bad"]
        ad._JVPS.pop(bad, None)


def test_non_differentiable_primitives_take_no_jvp():
    with pytest.raises(TypeError):
        ad.defjvp(REGISTRY["equal"], lambda *a: None)
    with pytest.raises(TypeError):
        ad.defjvp(REGISTRY["sgd_update"], lambda *a: None)


# ---------------------------------------------------------------------------------------
# ForwardAccumulator: TensorFlow's semantics

def test_tangents_of_primals_unconnected_and_structures():
    x, w = gg.constant([1.0, 2.0]), gg.Variable([3.0, 4.0])
    outside = x * 2
    with ForwardAccumulator({"x": x, "w": w}, {"x": [1.0, 0.0], "w": gg.constant([0.0, 1.0])}) as acc:
        y = x * w
        z = gg.constant(5.0) * 2
        c = gg.cast(x > 1, gg.float32)  # through a comparison: no tangent
        s = gg.stop_gradient(x) * 3
    assert acc.jvp(x).numpy().tolist() == [1.0, 0.0]
    assert acc.jvp(w).numpy().tolist() == [0.0, 1.0]
    got = acc.jvp({"y": y, "pair": [y, w]})
    assert got["y"].numpy().tolist() == [3.0, 2.0] and got["pair"][1].numpy().tolist() == [0.0, 1.0]
    assert acc.jvp([z, outside, c, s]) == [None, None, None, None]
    zeros = acc.jvp([z, outside], unconnected_gradients="zero")
    assert [t.numpy().tolist() for t in zeros] == [0.0, [0.0, 0.0]]
    assert acc.jvp(y).dtype == np.float32


def test_tangent_checks():
    x = gg.constant([1.0, 2.0])
    with pytest.raises(ValueError, match="shape"):
        ForwardAccumulator(x, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="structure"):
        ForwardAccumulator([x, x], [x])
    with pytest.raises(TypeError, match="int32"):
        ForwardAccumulator(gg.constant([1, 2]), [1, 1])
    with pytest.raises(ValueError, match="unconnected_gradients"):
        ForwardAccumulator(x, x).jvp(x, unconnected_gradients="zeros")
    acc = ForwardAccumulator(x, gg.constant([1.0, 1.0], dtype="float64"))
    assert acc.jvp(x).dtype == np.float32  # a tangent takes its primal's dtype


def test_a_primal_given_twice_gets_the_sum_of_its_tangents():
    x = gg.constant(2.0)
    with ForwardAccumulator([x, x], [1.0, 2.0]) as acc:
        y = x * x
    assert float(acc.jvp(y)) == 12.0


def test_variables_read_inside_and_assigned_after():
    w = gg.Variable([1.0, 2.0])
    with ForwardAccumulator(w, [1.0, 1.0]) as acc:
        y = gg.reduce_sum(w * w)
        linear = w * 1.0 + 0.0  # multiply by a constant reads w; add does not
    assert float(acc.jvp(y)) == 6.0
    w.assign([5.0, 5.0])
    with pytest.raises(RuntimeError, match="assigned"):
        acc.jvp(y)
    acc.jvp(gg.reshape(linear, (2,)))  # recorded after: outside the context, no tangent, no error


def test_jvp_inside_the_context_is_not_followed_by_the_same_accumulator():
    x = gg.constant(3.0)
    with ForwardAccumulator(x, 1.0) as acc:
        y = x * x
        t = acc.jvp(y)
    assert float(t) == 6.0
    assert acc.jvp(t) is None


def test_nested_accumulators_give_second_directional_derivatives():
    x = gg.constant([0.5, -1.0], dtype="float64")
    u, v = gg.constant([1.0, 2.0], dtype="float64"), gg.constant([-1.0, 0.5], dtype="float64")

    def f(a):
        return gg.reduce_sum(gg.sin(a) * gg.reduce_prod(a) + a ** 3)

    with ForwardAccumulator(x, u) as outer:
        with ForwardAccumulator(x, v) as inner:
            y = f(x)
        inner_t = inner.jvp(y)
    got = outer.jvp(inner_t)
    h = hessian(f, x).numpy()
    assert_close(float(got), u.numpy() @ h @ v.numpy(), rtol=1e-10)
    assert_close(float(inner_t), float(jvp(f, (x,), (v,))[1]), rtol=1e-12)


def test_reverse_over_forward_and_forward_over_reverse_agree():
    x = gg.Variable([0.3, 0.8, -0.5], dtype="float64")
    v = gg.constant([1.0, -1.0, 2.0], dtype="float64")

    def f(a):
        return gg.reduce_sum(gg.exp(a) * gg.tanh(a)) * gg.reduce_sum(a * a)

    with gg.GradientTape() as tape:
        with ForwardAccumulator(x, v) as acc:
            y = f(x)
        t = acc.jvp(y)  # inside the tape: recorded
    reverse_over_forward = tape.gradient(t, x)
    expected = hessian(f, x).numpy() @ v.numpy()
    assert_close(reverse_over_forward.numpy(), expected, rtol=1e-10)
    assert_close(hvp(f, x, v).numpy(), expected, rtol=1e-10)


def test_forward_mode_through_tape_jacobian_and_matmul():
    a = gg.constant(np.random.default_rng(3).normal(size=(3, 2)))
    x, v = gg.constant([0.4, -0.2], dtype="float64"), gg.constant([1.0, 2.0], dtype="float64")
    with ForwardAccumulator(x, v) as acc:
        with gg.GradientTape() as tape:
            tape.watch(x)
            y = gg.tanh(gg.matmul(a, gg.reshape(x, (2, 1))))
        j = tape.jacobian(y, x)
    got = acc.jvp(j)
    eps = 1e-6

    def jac(xv):
        xt = gg.constant(xv)
        with gg.GradientTape() as t2:
            t2.watch(xt)
            yy = gg.tanh(gg.matmul(a, gg.reshape(xt, (2, 1))))
        return t2.jacobian(yy, xt).numpy()
    expected = (jac(x.numpy() + eps * v.numpy()) - jac(x.numpy() - eps * v.numpy())) / (2 * eps)
    assert_close(got.numpy(), expected)


# ---------------------------------------------------------------------------------------
# Functional jvp, hessian, hvp

SHAPES = hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=3)


def mixed(x):
    """A scalar mixing several primitives and broadcasting."""
    m = gg.reduce_mean(x * x, axis=0, keepdims=True)
    return gg.reduce_sum(gg.sin(x) * gg.exp(-m) + gg.softplus(x) * gg.reduce_max(x)) + gg.reduce_sum(x) ** 2


@settings(max_examples=20, **QUICK)
@given(data=st.data())
def test_hvp_hessian_and_gradient_differences_agree(data):
    shape = data.draw(SHAPES)
    # Distinct values on a grid: the maximum stays where it is under the differences' steps.
    x0 = data.draw(hnp.arrays(np.float64, shape, elements=st.integers(-30, 30).map(lambda k: k / 20), unique=True))
    v0 = data.draw(hnp.arrays(np.float64, shape, elements=TANGENT))
    x, v = gg.constant(x0), gg.constant(v0)
    h = hessian(mixed, x)
    assert h.shape == shape + shape
    flat_h = h.numpy().reshape(x0.size, x0.size)
    assert_close(flat_h, flat_h.T, atol=1e-10)
    by_hessian = (flat_h @ v0.ravel()).reshape(shape)
    product = hvp(mixed, x, v)
    assert product.shape == shape
    assert_close(product.numpy(), by_hessian, atol=1e-10, rtol=1e-8)
    gradient = grad(mixed)
    eps = 1e-6
    by_differences = (host(gradient(gg.constant(x0 + eps * v0))) - host(gradient(gg.constant(x0 - eps * v0)))) / (
        2 * eps)
    assert_close(product.numpy(), by_differences)


@settings(max_examples=20, **QUICK)
@given(data=st.data())
def test_jvp_equals_jacobian_times_v(data):
    shape = data.draw(SHAPES)
    x0 = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-1.5, 1.5)))
    v0 = data.draw(hnp.arrays(np.float64, shape, elements=TANGENT))
    w = gg.constant(np.random.default_rng(0).normal(size=(4,) + shape[-1:]))

    def f(a):
        return gg.tanh(gg.matmul(gg.reshape(a, (-1, shape[-1])), w, transpose_b=True)) * gg.reduce_sum(a)

    x, v = gg.constant(x0), gg.constant(v0)
    y, t = jvp(f, (x,), (v,))
    with gg.GradientTape() as tape:
        tape.watch(x)
        y2 = f(x)
    jac = tape.jacobian(y2, x).numpy().reshape(y2.shape + (x0.size,))
    assert_close(y.numpy(), y2.numpy(), rtol=0, atol=0)
    assert_close(t.numpy(), jac @ v0.ravel(), atol=1e-12, rtol=1e-10)


def test_functional_jvp_structures_aux_and_repeated_arguments():
    x = gg.constant(2.0, dtype="float64")

    def f(a, pair):
        return {"p": a * pair[0], "q": pair[1] * 1.0, "c": gg.constant(1.0)}, "aux"

    out, tangents, aux = jvp(f, (x, [x, 3.0]), (1.0, [0.0, 1.0]), has_aux=True)
    assert aux == "aux" and float(out["p"]) == 4.0
    assert float(tangents["p"]) == 2.0  # d/da (a * b) at (2, 2) along (1, 0): the same x twice counts twice
    assert float(tangents["q"]) == 1.0 and float(tangents["c"]) == 0.0
    with pytest.raises(ValueError):
        jvp(gg.exp, (x,), ())
    with pytest.raises(TypeError):
        jvp(gg.exp, x, x)


def test_hessian_and_hvp_of_a_list_of_tensors():
    x, y = gg.constant([1.0, 2.0], dtype="float64"), gg.constant(3.0, dtype="float64")

    def f(args):
        a, b = args
        return gg.reduce_sum(a * a) * b + b ** 3

    h = hessian(f, [x, y])
    assert [[e.shape for e in row] for row in h] == [[(2, 2), (2,)], [(2,), ()]]
    assert h[0][0].numpy().tolist() == [[6.0, 0.0], [0.0, 6.0]]
    assert h[0][1].numpy().tolist() == [2.0, 4.0] and h[1][0].numpy().tolist() == [2.0, 4.0]
    assert float(h[1][1]) == pytest.approx(18.0, rel=1e-14)  # b ** 3's second derivative goes through pow
    hx, hy = hvp(f, [x, y], [gg.constant([1.0, 0.0], dtype="float64"), gg.constant(1.0, dtype="float64")])
    assert hx.numpy().tolist() == [8.0, 4.0] and float(hy) == pytest.approx(20.0, rel=1e-14)
    unlinked = hessian(lambda args: gg.reduce_sum(args[0]) * 2.0, [x, y])
    assert not unlinked[1][1].numpy().any() and unlinked[0][0].shape == (2, 2)
    with pytest.raises(TypeError, match="scalar"):
        hessian(lambda a: a * a, x)


# ---------------------------------------------------------------------------------------
# value_and_grad and grad

def test_value_and_grad_matches_the_tape():
    w, b = gg.Variable([[1.0, -2.0], [0.5, 3.0]]), gg.Variable([0.1, 0.2])
    x = gg.constant([[1.0, 2.0]])

    def loss(params, inputs, scale=1.0):
        return gg.reduce_sum(gg.tanh(inputs @ params["w"] + params["b"])) * scale

    value, grads = value_and_grad(loss)({"w": w, "b": b}, x, scale=2.0)
    with gg.GradientTape() as tape:
        expected_value = loss({"w": w, "b": b}, x, scale=2.0)
    expected = tape.gradient(expected_value, {"w": w, "b": b})
    assert float(value) == float(expected_value)
    assert list(grads) == ["w", "b"]
    for k in grads:
        assert_close(grads[k].numpy(), expected[k].numpy(), rtol=1e-6)
    gx, gparams = grad(loss, argnums=(1, 0))({"w": w, "b": b}, x)
    assert gx.shape == (1, 2) and gparams["w"].shape == (2, 2)


def test_grad_details():
    x = gg.constant(3.0)
    assert float(grad(lambda a, b: a * b, argnums=-1)(x, 4.0)) == 3.0
    assert float(grad(lambda a, b: a * a)(x, x)) == 6.0
    assert grad(lambda a, b: a * b, argnums=(0, 1))(x, x)[1].numpy() == 3.0  # each argument its own
    assert float(grad(lambda a: a * x)(x)) == 3.0  # x read through the closure is a constant, as in jax
    assert float(grad(lambda a: gg.constant(1.0))(x)) == 0.0  # unconnected: zeros
    g, aux = grad(lambda a: (a ** 2, "aux"), has_aux=True)(x)
    assert float(g) == 6.0 and aux == "aux"
    assert float(grad(grad(grad(lambda a: a ** 4)))(gg.constant(2.0))) == 48.0
    with pytest.raises(TypeError, match="scalar"):
        grad(lambda a: a * 2)(gg.constant([1.0, 2.0]))
    with pytest.raises(TypeError, match="int32"):
        grad(lambda a: gg.cast(a, gg.float32))(gg.constant(2))
    with pytest.raises(ValueError, match="argnums"):
        grad(lambda a: a, argnums=2)(x)


def test_grad_with_a_tape_around_it():
    x = gg.Variable(2.0)
    with gg.GradientTape() as tape:
        g = grad(lambda a: a ** 3)(x)
    assert float(g) == 12.0 and float(tape.gradient(g, x)) == 12.0


# ---------------------------------------------------------------------------------------
# vectorized_map

def test_vectorized_map_values_structures_and_gradients():
    x = gg.Variable(np.arange(6.0).reshape(3, 2) / 4)
    w = gg.Variable([0.5, -1.0])
    with gg.GradientTape() as tape:
        out = vectorized_map(lambda e: {"s": gg.reduce_sum(e["a"] * w), "t": e["b"] * 2.0},
                             {"a": x, "b": gg.constant([1.0, 2.0, 3.0])})
        total = gg.reduce_sum(gg.sin(out["s"]))
    expected_s = x.numpy() @ w.numpy()
    assert_close(out["s"].numpy(), expected_s, rtol=1e-6)
    assert out["t"].numpy().tolist() == [2.0, 4.0, 6.0]
    gx, gw = tape.gradient(total, [x, w])
    assert_close(gx.numpy(), np.cos(expected_s)[:, None] * w.numpy()[None], rtol=1e-5)
    assert_close(gw.numpy(), np.cos(expected_s) @ x.numpy(), rtol=1e-5)


def test_vectorized_map_builds_jacobians_and_per_example_gradients():
    x = gg.constant([0.2, -0.4, 0.9], dtype="float64")

    def f(a):
        return gg.sin(a) * gg.reduce_sum(a * a)

    columns = vectorized_map(lambda e: jvp(f, (x,), (e,))[1], gg.eye(3, dtype=gg.float64))
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = f(x)
    assert_close(columns.numpy().T, tape.jacobian(y, x).numpy(), rtol=1e-10)
    batch = gg.constant(np.random.default_rng(1).normal(size=(4, 3)))
    per_example = vectorized_map(grad(lambda e: gg.reduce_sum(gg.tanh(e) * e)), batch)
    b = batch.numpy()
    assert_close(per_example.numpy(), np.tanh(b) + b * (1 - np.tanh(b) ** 2), rtol=1e-10)


def test_vectorized_map_edge_cases():
    empty = vectorized_map(lambda e: gg.reduce_sum(e) * gg.ones((2,)), gg.zeros((0, 3)))
    assert empty.shape == (0, 2)
    with pytest.raises(ValueError, match="leading"):
        vectorized_map(lambda a: a, [gg.zeros((2,)), gg.zeros((3,))])
    with pytest.raises(ValueError, match="scalar"):
        vectorized_map(lambda a: a, gg.constant(1.0))
    with pytest.raises(ValueError, match="structure"):
        vectorized_map(lambda a: [a] if float(a) > 0 else (a,), gg.constant([1.0, -1.0]))
    doubled = vectorized_map(lambda a: a * 2, np.array([[1.0, 2.0]]), fallback_to_while_loop=False)
    assert doubled.numpy().tolist() == [[2.0, 4.0]]
    with pytest.raises(ValueError, match="scalar"):  # a list is a structure: its numbers are scalars
        vectorized_map(lambda a: a, [1.0, 2.0])
