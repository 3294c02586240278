"""Optimizers (the Keras 3 update rules, re-derived here in NumPy float64), the training
calls, bad input, gg.debugging, and the clipping functions; plus the numbers of the TensorFlow 2
tutorials this project grew from."""
import numpy as np
import pytest

import gpugrad as gg

opt = gg.optimizers
STEPS = 6
# Gradient magnitudes vary from step to step so that clipping is sometimes active and sometimes
# not, and so that Adam's second moment falls (amsgrad's running max then differs from v).
SCALES = [2.0, 0.1, 1.5, 0.05, 1.0, 0.2]


# ---------------------------------------------------------------------------------------
# Reference rules: one step on float64 NumPy arrays, written from the Keras 3 formulas.
# `state` is a dict per variable (empty before the first step), `t` counts updates from 1.

def sgd_rule(momentum=0.0, nesterov=False):
    def step(p, g, state, lr, t):
        if momentum == 0:
            return p - lr * g
        v = momentum * state.get("v", 0.0) - lr * g
        state["v"] = v
        return p + (momentum * v - lr * g if nesterov else v)
    return step


def adam_rule(beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, weight_decay=0.0):
    def step(p, g, state, lr, t):
        p = p - lr * weight_decay * p
        lr_t = lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        m = state.get("m", 0.0)
        v = state.get("v", 0.0)
        m = m + (1 - beta_1) * (g - m)
        v = v + (1 - beta_2) * (g * g - v)
        state["m"], state["v"] = m, v
        if amsgrad:
            v = np.maximum(state.get("vhat", 0.0), v)
            state["vhat"] = v
        return p - lr_t * m / (np.sqrt(v) + epsilon)
    return step


def rmsprop_rule(rho=0.9, momentum=0.0, epsilon=1e-7, centered=False):
    def step(p, g, state, lr, t):
        velocity = rho * state.get("velocity", 0.0) + (1 - rho) * g * g
        state["velocity"] = velocity
        if centered:
            average = rho * state.get("average", 0.0) + (1 - rho) * g
            state["average"] = average
            denominator = velocity - average * average + epsilon
        else:
            denominator = velocity + epsilon
        increment = lr * g / np.sqrt(denominator)
        if momentum > 0:
            increment = momentum * state.get("momentum", 0.0) + increment
            state["momentum"] = increment
        return p - increment
    return step


def adagrad_rule(initial_accumulator_value=0.1, epsilon=1e-7):
    def step(p, g, state, lr, t):
        accumulator = state.get("accumulator", initial_accumulator_value) + g * g
        state["accumulator"] = accumulator
        return p - lr * g / np.sqrt(accumulator + epsilon)
    return step


# id: (optimizer class, its hyperparameters besides learning_rate, reference step, learning rate).
# Non-default hyperparameters (a large epsilon among them) so that a swapped beta or an epsilon
# moved inside or outside the square root shows.
RULES = {
    "sgd": (opt.SGD, {}, sgd_rule(), 0.1),
    "sgd_momentum": (opt.SGD, dict(momentum=0.8), sgd_rule(0.8), 0.1),
    "sgd_nesterov": (opt.SGD, dict(momentum=0.8, nesterov=True), sgd_rule(0.8, nesterov=True), 0.1),
    "adam": (opt.Adam, dict(beta_1=0.8, beta_2=0.95, epsilon=1e-3), adam_rule(0.8, 0.95, 1e-3), 0.05),
    "adam_amsgrad": (opt.Adam, dict(beta_1=0.8, beta_2=0.5, epsilon=1e-3, amsgrad=True),
                     adam_rule(0.8, 0.5, 1e-3, amsgrad=True), 0.05),
    "adamw": (opt.AdamW, dict(weight_decay=0.3, beta_1=0.8, beta_2=0.95, epsilon=1e-3),
              adam_rule(0.8, 0.95, 1e-3, weight_decay=0.3), 0.05),
    "rmsprop": (opt.RMSprop, dict(rho=0.7, epsilon=1e-3), rmsprop_rule(0.7, epsilon=1e-3), 0.05),
    "rmsprop_centered": (opt.RMSprop, dict(rho=0.7, epsilon=1e-3, centered=True),
                         rmsprop_rule(0.7, epsilon=1e-3, centered=True), 0.05),
    "rmsprop_momentum": (opt.RMSprop, dict(rho=0.7, momentum=0.6, epsilon=1e-3),
                         rmsprop_rule(0.7, momentum=0.6, epsilon=1e-3), 0.05),
    "adagrad": (opt.Adagrad, dict(initial_accumulator_value=0.2, epsilon=1e-3), adagrad_rule(0.2, 1e-3), 0.3),
}

CLIPS = {"none": {}, "clipvalue": dict(clipvalue=0.7), "clipnorm": dict(clipnorm=0.9),
         "global_clipnorm": dict(global_clipnorm=1.1)}


def clip_reference(grads, clipvalue=None, clipnorm=None, global_clipnorm=None):
    """The Keras clipping of one step's gradients, in NumPy."""
    if clipvalue is not None:
        return [np.clip(g, -clipvalue, clipvalue) for g in grads]
    if clipnorm is not None:
        return [g * clipnorm / max(np.sqrt(np.sum(g * g)), clipnorm) for g in grads]
    if global_clipnorm is not None:
        norm = np.sqrt(sum(np.sum(g * g) for g in grads))
        return [g * global_clipnorm / max(norm, global_clipnorm) for g in grads]
    return grads


def schedule(step):
    """A learning-rate multiplier that differs at every step (0 for the first update)."""
    return 1.0 / (1.0 + 0.5 * step)


def reference_run(rule, lr, lr_schedule, clip, params, gradient_of):
    """Run the reference rule for STEPS updates; `gradient_of(params, step)` gives the gradients."""
    params = [np.array(p, dtype=np.float64) for p in params]
    states = [{} for _ in params]
    for step in range(STEPS):
        grads = clip_reference(gradient_of(params, step), **clip)
        rate = lr * schedule(step) if lr_schedule else lr
        params = [rule(p, g, s, rate, step + 1) for p, g, s in zip(params, grads, states)]
    return params


def make_optimizer(rule_id, clip_id, lr_schedule):
    cls, kwargs, _, lr = RULES[rule_id]
    learning_rate = (lambda step: lr * schedule(step)) if lr_schedule else lr
    return cls(learning_rate, **kwargs, **CLIPS[clip_id])


# ---------------------------------------------------------------------------------------
# 1. The update rules

@pytest.mark.parametrize("lr_schedule", [False, True], ids=["constant_lr", "schedule"])
@pytest.mark.parametrize("clip_id", list(CLIPS))
@pytest.mark.parametrize("rule_id", list(RULES))
def test_apply_gradients_follows_the_keras_rule(rule_id, clip_id, lr_schedule, device, rng):
    init = [rng.normal(size=(2, 3)), np.array(0.7)]  # a matrix and a 0-d variable
    gradients = [[SCALES[s] * rng.normal(size=np.shape(p)) for p in init] for s in range(STEPS)]
    expected = reference_run(RULES[rule_id][2], RULES[rule_id][3], lr_schedule, CLIPS[clip_id], init,
                             lambda params, step: gradients[step])

    variables = [gg.Variable(p, dtype="float64") for p in init]
    optimizer = make_optimizer(rule_id, clip_id, lr_schedule)
    for step in range(STEPS):
        optimizer.apply_gradients(zip([gg.constant(g) for g in gradients[step]], variables))
        assert optimizer.iterations == step + 1
    for var, want in zip(variables, expected):
        assert var.device == device and var.dtype == np.float64
        np.testing.assert_allclose(var.numpy(), want, rtol=1e-12, atol=1e-14)


A = np.array([[1.0, -2.0, 0.5], [0.3, 0.8, -1.2], [2.0, 0.1, 0.4], [-0.7, 1.1, 0.9]])
B = np.array([[0.5, -1.0], [1.5, 0.2], [-0.3, 0.8], [1.0, 1.0]])


def quadratic_gradients(params, step):
    """Gradients of 0.5 * sum((A @ w - B)^2) + c^4 / 4 at (w, c): A^T (A w - B) and c^3."""
    w, c = params
    return [A.T @ (A @ w - B), c ** 3]


@pytest.mark.parametrize("clip_id", ["none", "global_clipnorm"])
@pytest.mark.parametrize("rule_id", list(RULES))
def test_minimize_follows_the_keras_rule_on_a_real_loss(rule_id, clip_id, device):
    init = [np.full((3, 2), 0.5), np.array(1.5)]
    expected = reference_run(RULES[rule_id][2], RULES[rule_id][3], True, CLIPS[clip_id], init,
                             quadratic_gradients)
    w, c = (gg.Variable(p, dtype="float64") for p in init)
    a, b = gg.constant(A), gg.constant(B)
    optimizer = make_optimizer(rule_id, clip_id, lr_schedule=True)

    def loss():
        return 0.5 * gg.reduce_sum(gg.square(a @ w - b)) + c ** 4 / 4

    for _ in range(STEPS):
        optimizer.minimize(loss)
    np.testing.assert_allclose(w.numpy(), expected[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c.numpy(), expected[1], rtol=1e-12, atol=1e-14)


def test_float32_variables_stay_float32_and_track_the_float64_rule(rng):
    init = rng.normal(size=(4,))
    grads = [rng.normal(size=(4,)) for _ in range(STEPS)]
    expected = reference_run(RULES["adam"][2], 0.05, False, {}, [init], lambda params, step: [grads[step]])
    var = gg.Variable(init, dtype="float32")
    optimizer = make_optimizer("adam", "none", False)
    for g in grads:
        optimizer.apply_gradients([(gg.constant(g, dtype="float32"), var)])
    assert var.dtype == np.float32
    assert all(s.dtype == np.float32 for s in optimizer.slots(var).values())
    np.testing.assert_allclose(var.numpy(), expected[0], rtol=1e-5)


def test_schedule_gets_the_step_number_from_zero():
    seen = []

    def rate(step):
        seen.append(step)
        return 0.5 * (step + 1)

    var = gg.Variable(0.0, dtype="float64")
    optimizer = opt.SGD(rate)
    assert optimizer.learning_rate == 0.5
    for _ in range(3):
        optimizer.apply_gradients([(gg.constant(1.0, dtype="float64"), var)])
    assert sorted(set(seen)) == [0, 1, 2]
    assert float(var) == -(0.5 + 1.0 + 1.5)
    assert optimizer.learning_rate == 2.0


def test_keras_defaults():
    sgd, adam, adamw, rms, ada = opt.SGD(), opt.Adam(), opt.AdamW(), opt.RMSprop(), opt.Adagrad()
    assert (sgd.learning_rate, sgd.momentum, sgd.nesterov) == (0.01, 0.0, False)
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon, adam.amsgrad) == (0.001, 0.9, 0.999, 1e-7,
                                                                                          False)
    assert (adamw.learning_rate, adamw.weight_decay) == (0.001, 0.004)
    assert (rms.learning_rate, rms.rho, rms.momentum, rms.epsilon, rms.centered) == (0.001, 0.9, 0.0, 1e-7, False)
    assert (ada.learning_rate, ada.initial_accumulator_value, ada.epsilon) == (0.001, 0.1, 1e-7)


def test_slots_are_named_and_start_at_their_initial_values():
    var = gg.Variable([1.0, 2.0], name="w")
    adam, ams, rms, ada, sgd, momentum = (opt.Adam(), opt.Adam(amsgrad=True), opt.RMSprop(centered=True, momentum=0.5),
                                          opt.Adagrad(initial_accumulator_value=0.25), opt.SGD(), opt.SGD(momentum=0.5))
    for o in (adam, ams, rms, ada, sgd, momentum):
        o.build([var])
    assert list(adam.slots(var)) == ["m", "v"]
    assert list(ams.slots(var)) == ["m", "v", "vhat"]
    assert list(rms.slots(var)) == ["velocity", "average_gradient", "momentum"]
    assert sgd.slots(var) == {} and list(momentum.slots(var)) == ["momentum"]
    assert ada.slots(var)["accumulator"].numpy().tolist() == [0.25, 0.25]
    m = adam.slots(var)["m"]
    assert m.name == "w/m" and not m.trainable and m.shape == (2,) and m.numpy().tolist() == [0.0, 0.0]


# ---------------------------------------------------------------------------------------
# 2. The tutorials' numbers

def test_tutorial_minimize_moves_w():
    x = gg.constant([-1.0, -2.0])
    w = gg.Variable([2.0, 3.0])

    def loss():
        y = w * x
        return y[1] * y

    gg.optimizers.SGD(1).minimize(loss)
    assert w.numpy().tolist() == [-4.0, -25.0]


def test_tutorial_apply_gradients_finds_the_minimum():
    x = gg.Variable(0.0)
    optimizer = gg.optimizers.SGD(0.1)
    for _ in range(100):
        with gg.GradientTape() as tape:
            z = 3 * x ** 2 + 2 * x - 1
        optimizer.apply_gradients([(tape.gradient(z, x), x)])
    assert repr(x.numpy()) == "array(-0.3333333, dtype=float32)"
    assert optimizer.iterations == 100


def test_tutorial_compute_gradients_pairs_gradients_with_variables():
    x, w = gg.Variable(5.0), gg.Variable(1.0)
    pairs = gg.optimizers.SGD().compute_gradients(lambda: w * x ** 2, [w, x])
    assert [float(g) for g, _ in pairs] == [25.0, 10.0]
    assert [v for _, v in pairs][0] is w and pairs[1][1] is x


# ---------------------------------------------------------------------------------------
# 3. The training calls

def test_compute_gradients_uses_the_trainable_variables_read_in_creation_order():
    a, b = gg.Variable(2.0, name="a"), gg.Variable(3.0, name="b")
    frozen = gg.Variable(4.0, trainable=False, name="frozen")
    k = gg.constant(5.0)
    pairs = opt.SGD().compute_gradients(lambda: b * frozen * a + a * a * k)
    assert [v for _, v in pairs][0] is a and [v for _, v in pairs][1] is b
    assert [float(g) for g, _ in pairs] == [12.0 + 20.0, 8.0]


def test_compute_gradients_with_a_frozen_variable_in_var_list():
    frozen = gg.Variable(4.0, trainable=False)
    pairs = opt.SGD().compute_gradients(lambda: frozen * frozen, [frozen])
    assert float(pairs[0][0]) == 8.0 and pairs[0][1] is frozen


@pytest.mark.parametrize("call", ["compute_gradients", "minimize"])
def test_loss_must_be_callable(call):
    w = gg.Variable(1.0)
    with pytest.raises(TypeError, match="callable"):
        getattr(opt.SGD(), call)(w * w, [w])


def test_minimize_returns_the_loss_value_before_the_update():
    w = gg.Variable([1.0, 2.0])
    value = opt.SGD(0.1).minimize(lambda: gg.reduce_sum(w * w))
    assert isinstance(value, gg.Tensor) and float(value) == 5.0
    np.testing.assert_allclose(w.numpy(), [0.8, 1.6])


def test_none_gradients_are_skipped_with_a_warning():
    a, b = gg.Variable([1.0, 2.0], name="a"), gg.Variable(3.0)
    optimizer = opt.Adam(0.1)
    with pytest.warns(UserWarning, match="no gradient \\(None\\) for Variable 'a'"):
        optimizer.apply_gradients([(None, a), (gg.constant(1.0), b)])
    assert a.numpy().tolist() == [1.0, 2.0] and a._version == 0
    assert optimizer.variables == [b] and float(b) != 3.0
    # minimize with an unused variable: its gradient is None, it stays as it was
    unused = gg.Variable(7.0, name="unused")
    with pytest.warns(UserWarning, match="'unused'"):
        optimizer.minimize(lambda: b * b, [b, unused])
    assert float(unused) == 7.0 and unused not in optimizer.variables


def test_all_none_gradients_raise_and_do_not_count_as_a_step():
    a = gg.Variable(1.0, name="a")
    optimizer = opt.SGD(0.1)
    with pytest.raises(ValueError, match="no gradients provided for any variable \\(all None: 'a'\\)"):
        optimizer.apply_gradients([(None, a)])
    assert optimizer.iterations == 0 and float(a) == 1.0


@pytest.mark.parametrize("rule_id", list(RULES))
def test_updates_are_in_place_and_bump_the_version(rule_id, device):
    var = gg.Variable([1.0, -2.0, 3.0], dtype="float64")
    scalar = gg.Variable(2.0, dtype="float64")
    buffers = (var._data, scalar._data)
    optimizer = make_optimizer(rule_id, "none", False)
    for step in range(3):
        optimizer.apply_gradients([(gg.constant([0.5, -0.25, 1.0], dtype="float64"), var),
                                   (gg.constant(1.5, dtype="float64"), scalar)])
        assert (var._version, scalar._version) == (step + 1, step + 1)
    assert var._data is buffers[0] and scalar._data is buffers[1]
    assert float(scalar) != 2.0 and var.numpy().tolist() != [1.0, -2.0, 3.0]
    assert optimizer.iterations == 3


def test_update_invalidates_a_recorded_gradient():
    w = gg.Variable(3.0, name="stale_w")
    with gg.GradientTape() as tape:
        y = w * w
    opt.SGD(0.1).apply_gradients([(gg.constant(1.0), w)])
    with pytest.raises(RuntimeError, match="stale_w"):
        tape.gradient(y, w)


def test_iterations_count_apply_gradients_calls_not_variables():
    a, b = gg.Variable(1.0), gg.Variable(2.0)
    optimizer = opt.Adam()
    for _ in range(4):
        optimizer.apply_gradients([(gg.constant(1.0), a), (gg.constant(1.0), b)])
    assert optimizer.iterations == 4


def test_adam_bias_correction_uses_the_optimizer_step():
    """A variable first updated at step 3 is corrected with t = 3, as in Keras (one global step)."""
    a, b = gg.Variable(0.0, dtype="float64"), gg.Variable(0.0, dtype="float64")
    optimizer = opt.Adam(0.1, beta_1=0.5, beta_2=0.75, epsilon=1e-3)
    one = gg.constant(1.0, dtype="float64")
    optimizer.apply_gradients([(one, a)])
    optimizer.apply_gradients([(one, a)])
    optimizer.apply_gradients([(one, a), (one, b)])
    expected = adam_rule(0.5, 0.75, 1e-3)(0.0, 1.0, {}, 0.1, 3)
    assert float(b) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------------------------------
# 4. Bad input: clear errors and no partial update

def test_wrong_gradient_shape_names_variable_and_shapes():
    var = gg.Variable(np.zeros((2, 3)), name="weights")
    with pytest.raises(ValueError, match=r"weights.*\(3,\).*\(2, 3\)"):
        opt.SGD().apply_gradients([(gg.constant(np.ones(3)), var)])


def test_variable_must_be_a_variable():
    with pytest.raises(TypeError, match="Variable"):
        opt.SGD().apply_gradients([(gg.constant(1.0), gg.constant(2.0))])
    with pytest.raises(TypeError, match="Variable"):
        opt.SGD().apply_gradients([(1.0, 2.0)])


def test_items_must_be_pairs():
    with pytest.raises(TypeError, match="pair"):
        opt.SGD().apply_gradients([gg.Variable(1.0)])


def test_gradient_dtype_must_match():
    var = gg.Variable([1.0, 2.0], dtype="float64", name="wide")
    with pytest.raises(ValueError, match=r"wide.*float32.*float64"):
        opt.SGD().apply_gradients([(gg.constant([1.0, 1.0], dtype="float32"), var)])


def test_integer_variable_cannot_be_trained():
    var = gg.Variable([1, 2], name="counter")
    with pytest.raises(TypeError, match=r"counter.*int32"):
        opt.SGD().apply_gradients([(gg.constant([1, 1]), var)])


@pytest.mark.parametrize("gradient", [[1.0, -2.0], np.array([1.0, -2.0], dtype=np.float32), (1, -2)],
                         ids=["list", "float32_ndarray", "int_tuple"])
def test_gradient_given_as_array_or_list_is_converted(gradient):
    var = gg.Variable([1.0, 1.0], dtype="float64")
    opt.SGD(0.5).apply_gradients([(gradient, var)])
    assert var.numpy().tolist() == [0.5, 2.0] and var.dtype == np.float64


BAD_THIRD = {
    "shape": lambda: (gg.constant([1.0, 2.0, 3.0]), gg.Variable([0.0, 0.0])),
    "not_variable": lambda: (gg.constant(1.0), gg.constant(1.0)),
    "integer_variable": lambda: (gg.constant(1), gg.Variable(1)),
    "dtype": lambda: (gg.constant(1.0, dtype="float64"), gg.Variable(1.0)),
    "not_pair": lambda: gg.Variable(1.0),
    "nan_with_check_numerics": lambda: (gg.constant(np.nan), gg.Variable(1.0)),
}


@pytest.mark.parametrize("bad", list(BAD_THIRD))
@pytest.mark.parametrize("rule_id", ["sgd_momentum", "adam_amsgrad", "rmsprop_centered"])
def test_a_bad_third_pair_updates_nothing(rule_id, bad):
    cls, kwargs, _, lr = RULES[rule_id]
    optimizer = cls(lr, check_numerics=True, **kwargs)
    a, b = gg.Variable([1.0, 2.0], name="a"), gg.Variable(3.0, name="b")
    fresh = gg.Variable([4.0], name="fresh")
    optimizer.apply_gradients([(gg.constant([0.5, 0.5]), a), (gg.constant(0.5), b)])  # the state exists
    before = {v: v.numpy().copy() for v in [a, b, fresh]}
    slots_before = {(v, n): s.numpy().copy() for v in [a, b] for n, s in optimizer.slots(v).items()}
    versions = (a._version, b._version, fresh._version)
    with pytest.raises((ValueError, TypeError, FloatingPointError)):
        optimizer.apply_gradients([(gg.constant([1.0, 1.0]), a), (gg.constant([1.0]), fresh), BAD_THIRD[bad]()])
    assert optimizer.iterations == 1
    assert (a._version, b._version, fresh._version) == versions
    for v, value in before.items():
        assert v.numpy().tolist() == value.tolist()
    for (v, n), value in slots_before.items():
        assert optimizer.slots(v)[n].numpy().tolist() == value.tolist()
    assert optimizer.variables == [a, b]  # no state was created for `fresh`


@pytest.mark.parametrize("make, value", [
    (lambda: opt.SGD(-0.1), "-0.1"),
    (lambda: opt.Adam(learning_rate=-1), "-1"),
    (lambda: opt.Adam(beta_1=1.0), "1.0"),
    (lambda: opt.Adam(beta_2=-0.5), "-0.5"),
    (lambda: opt.AdamW(beta_1=1.5), "1.5"),
    (lambda: opt.AdamW(weight_decay=-0.01), "-0.01"),
    (lambda: opt.SGD(momentum=1.2), "1.2"),
    (lambda: opt.RMSprop(rho=1.0), "1.0"),
    (lambda: opt.RMSprop(epsilon=0.0), "0.0"),
    (lambda: opt.Adagrad(initial_accumulator_value=-0.1), "-0.1"),
    (lambda: opt.SGD(clipnorm=0.0), "0.0"),
    (lambda: opt.Adam(clipvalue=-2.0), "-2.0"),
    (lambda: opt.RMSprop(global_clipnorm=-1.0), "-1.0"),
    (lambda: opt.SGD("fast"), "'fast'"),
], ids=["sgd_lr", "adam_lr", "beta_1", "beta_2", "adamw_beta_1", "weight_decay", "momentum", "rho", "epsilon",
        "accumulator", "clipnorm", "clipvalue", "global_clipnorm", "lr_string"])
def test_constructor_rejects_bad_values_naming_them(make, value):
    with pytest.raises(ValueError) as info:
        make()
    assert value in str(info.value)


def test_two_clip_options_at_once_are_rejected():
    with pytest.raises(ValueError, match=r"clipvalue=1\.0.*clipnorm=2\.0"):
        opt.SGD(clipvalue=1.0, clipnorm=2.0)
    with pytest.raises(ValueError, match="global_clipnorm"):
        opt.Adam(clipnorm=1.0, global_clipnorm=1.0)


def test_zero_learning_rate_is_allowed():
    var = gg.Variable(1.0)
    opt.SGD(0.0).apply_gradients([(gg.constant(1.0), var)])
    assert float(var) == 1.0


@pytest.mark.parametrize("clip_id", list(CLIPS))
def test_check_numerics_names_the_first_bad_gradient_and_updates_nothing(clip_id):
    ok, bad, worse = gg.Variable([1.0, 2.0], name="ok"), gg.Variable(3.0, name="bad"), gg.Variable(4.0, name="worse")
    optimizer = opt.SGD(0.1, momentum=0.5, check_numerics=True, **CLIPS[clip_id])
    with pytest.raises(FloatingPointError, match="'bad'"):
        optimizer.apply_gradients([(gg.constant([1.0, 1.0]), ok), (gg.constant(np.nan), bad),
                                   (gg.constant(np.inf), worse)])
    assert ok.numpy().tolist() == [1.0, 2.0] and float(bad) == 3.0 and float(worse) == 4.0
    assert optimizer.iterations == 0 and optimizer.variables == []


def test_without_check_numerics_nan_propagates():
    var = gg.Variable([1.0, 2.0])
    opt.SGD(0.1).apply_gradients([(gg.constant([np.nan, 1.0]), var)])
    value = var.numpy()
    assert np.isnan(value[0]) and value[1] == pytest.approx(1.9)


def test_debugging_check_numerics():
    finite = gg.constant([1.0, 2.0])
    assert gg.debugging.check_numerics(finite, "fine") is finite
    integers = gg.constant([1, 2])
    assert gg.debugging.check_numerics(integers, "fine") is integers
    with pytest.raises(FloatingPointError, match=r"^loss exploded: 1 NaN and 2 infinite"):
        gg.debugging.check_numerics(gg.constant([np.nan, np.inf, -np.inf, 1.0]), "loss exploded")
    var = gg.Variable([0.0, np.inf])
    with pytest.raises(FloatingPointError, match=r"weights: 0 NaN and 1 infinite"):
        gg.debugging.check_numerics(var, "weights")


# ---------------------------------------------------------------------------------------
# 5. Clipping

def test_clip_by_value_matches_numpy(rng):
    x = rng.normal(size=(3, 4))
    np.testing.assert_array_equal(gg.clip_by_value(gg.constant(x), -0.5, 0.5).numpy(), np.clip(x, -0.5, 0.5))
    lo, hi = rng.uniform(-1, 0, size=(4,)), rng.uniform(0, 1, size=(4,))
    np.testing.assert_array_equal(gg.clip_by_value(gg.Variable(x), gg.constant(lo), gg.constant(hi)).numpy(),
                                  np.clip(x, lo, hi))


def numpy_clip_by_norm(t, clip_norm, axes=None):
    norm = np.sqrt(np.sum(t * t, axis=axes, keepdims=axes is not None))
    return t * clip_norm / np.maximum(norm, clip_norm)


@pytest.mark.parametrize("axes", [None, 0, 1, (0, 1)])
@pytest.mark.parametrize("clip_norm", [0.5, 2.0, 100.0])
def test_clip_by_norm_matches_numpy(axes, clip_norm, rng, device):
    t = rng.normal(size=(3, 4))
    got = gg.clip_by_norm(gg.constant(t), clip_norm, axes=axes)
    assert got.shape == (3, 4) and got.dtype == np.float64 and got.device == device
    np.testing.assert_allclose(got.numpy(), numpy_clip_by_norm(t, clip_norm, axes), rtol=1e-12)


def test_clip_by_norm_clips_only_above_the_norm():
    t = gg.constant([3.0, 4.0], dtype="float64")
    np.testing.assert_allclose(gg.clip_by_norm(t, 1.0).numpy(), [0.6, 0.8])
    assert gg.clip_by_norm(t, 5.0).numpy().tolist() == [3.0, 4.0]
    assert gg.clip_by_norm(gg.zeros((2,)), 1.0).numpy().tolist() == [0.0, 0.0]


def test_clip_by_global_norm_matches_numpy(rng, device):
    ts = [rng.normal(size=(2, 3)), None, rng.normal(size=(4,)), np.array(1.5)]
    clipped, norm = gg.clip_by_global_norm([None if t is None else gg.constant(t) for t in ts], 1.0)
    expected_norm = np.sqrt(sum(np.sum(t * t) for t in ts if t is not None))
    assert isinstance(clipped, list) and len(clipped) == 4 and clipped[1] is None
    assert float(norm) == pytest.approx(expected_norm, rel=1e-12)
    for got, t in zip(clipped, ts):
        if t is not None:
            assert got.shape == t.shape and got.device == device
            np.testing.assert_allclose(got.numpy(), t / expected_norm, rtol=1e-12)


def test_clip_by_global_norm_below_the_norm_and_at_zero_leaves_values():
    a, b = gg.constant([0.1, 0.2]), gg.constant([[0.0, 0.3]])
    clipped, norm = gg.clip_by_global_norm([a, b], 10.0)
    assert clipped[0].numpy().tolist() == a.numpy().tolist() and clipped[1].numpy().tolist() == b.numpy().tolist()
    zeros, norm = gg.clip_by_global_norm([gg.zeros((2,)), None, gg.zeros((3,))], 1.0)  # no 0/0 warning
    assert float(norm) == 0.0 and zeros[1] is None
    assert zeros[0].numpy().tolist() == [0.0, 0.0] and zeros[2].numpy().tolist() == [0.0, 0.0, 0.0]


def test_clip_by_global_norm_keeps_each_dtype():
    clipped, _ = gg.clip_by_global_norm([gg.constant([3.0], dtype="float64"), gg.constant([4.0], dtype="float32")],
                                        1.0)
    assert [c.dtype for c in clipped] == [np.float64, np.float32]
    np.testing.assert_allclose([float(clipped[0][0]), float(clipped[1][0])], [0.6, 0.8], rtol=1e-6)


def test_clip_by_global_norm_of_nan_makes_everything_nan():
    clipped, norm = gg.clip_by_global_norm([gg.constant([np.nan, 1.0]), gg.constant([2.0])], 1.0)
    assert np.isnan(float(norm)) and all(np.isnan(c.numpy()).all() for c in clipped)


def test_clip_by_global_norm_of_inf_makes_everything_nan():
    """As the docstring and TensorFlow say: an infinite global norm gives NaN everywhere (not zeros)."""
    clipped, norm = gg.clip_by_global_norm([gg.constant([np.inf, 1.0]), gg.constant([2.0])], 1.0)
    assert float(norm) == np.inf
    assert all(np.isnan(c.numpy()).all() for c in clipped)


@pytest.mark.parametrize("clip_norm", [0.5, 1.0, 5.0])  # row norms 1.12, 1.44, 0.58, in all 2.0: off the kinks
def test_clip_by_norm_gradcheck(clip_norm):
    t = np.array([[1.0, -0.5], [0.8, 1.2], [-0.3, 0.5]])
    assert gg.gradcheck(lambda x: gg.clip_by_norm(x, clip_norm), [t])
    assert gg.gradcheck(lambda x: gg.clip_by_norm(x, clip_norm, axes=1), [t])


@pytest.mark.parametrize("clip_norm", [0.5, 5.0])
def test_clip_by_global_norm_gradcheck(clip_norm):
    a, b = np.array([[1.0, -0.5], [0.8, 1.2]]), np.array([-0.3, 0.4, 0.9])
    assert gg.gradcheck(lambda x, y: gg.concat([gg.reshape(c, (-1,)) for c in gg.clip_by_global_norm([x, y],
                                                                                                    clip_norm)[0]],
                                               axis=0), [a, b])


@pytest.mark.parametrize("clip", [
    lambda t: gg.clip_by_norm(t, 1.0),
    lambda t: gg.clip_by_norm(t, 1.0, axes=0),
    lambda t: gg.clip_by_global_norm([t], 1.0)[0][0],
], ids=["clip_by_norm", "clip_by_norm_axes", "clip_by_global_norm"])
def test_clip_gradient_is_finite_at_zero(clip):
    """Below clip_norm the clip is the identity, so at t = 0 the gradient is the upstream one."""
    t = gg.Variable(np.zeros(3))
    weights = gg.constant([1.0, 2.0, 3.0], dtype="float64")
    with gg.GradientTape() as tape:
        y = gg.reduce_sum(clip(t) * weights)
    assert tape.gradient(y, t).numpy().tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("clip_norm", [0, 0.0, -1.0])
def test_clip_norm_must_be_positive(clip_norm):
    with pytest.raises(ValueError, match=repr(clip_norm).replace(".", r"\.")):
        gg.clip_by_norm(gg.constant([1.0]), clip_norm)
    with pytest.raises(ValueError, match=repr(clip_norm).replace(".", r"\.")):
        gg.clip_by_global_norm([gg.constant([1.0])], clip_norm)
