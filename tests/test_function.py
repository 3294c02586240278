"""gg.function: a step captured once and replayed gives the eager results, bit for bit (training
steps with every optimizer feature that must stay live; the step compiler's fused CUDA kernels
within a few float32 ulps a step), takes new argument values, returns
fresh results, falls back to eager with one warning where a capture would freeze a value, and
keeps nothing of the capture call alive that it does not need."""
import gc
import warnings
import weakref

import numpy as np
import pytest

import gpugrad as gg

STEPS = 50
SEED = 7


# ---------------------------------------------------------------------------------------
# Training steps: eager and gg.function replicas from the same weights, compared every step

class Net(gg.Module):
    """The TensorFlow 2 tutorials' net: 1 -> 3 sigmoid -> 1."""

    def __init__(self):
        self.hidden = gg.nn.Dense(1, 3, activation=gg.nn.sigmoid, seed=SEED)
        self.out = gg.nn.Dense(3, 1, seed=SEED + 1)

    def __call__(self, x):
        return self.out(self.hidden(x))


def _batches(rng):
    """Two full batches of 300 points (same shapes, different values), as Tensors."""
    x = np.linspace(-1, 1, 300, dtype=np.float32)[:, None]
    return [(gg.constant(x * scale), gg.constant((x ** 2 - 0.5 + rng.normal(0, 0.05, x.shape)).astype(np.float32)))
            for scale in (1.0, 0.8)]


def _loss(model, x, y):
    return gg.reduce_mean(gg.square(model(x) - y))


def _optimizer_replica(make_optimizer):
    model, optimizer = Net(), make_optimizer()

    def step(x, y):
        with gg.GradientTape() as tape:
            loss = _loss(model, x, y)
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return step, model.trainable_variables, optimizer


def _assert_same(got, want, exact, message):
    if exact:
        np.testing.assert_array_equal(got, want, err_msg=message)
    else:  # a few float32 ulps a step, which 50 steps of training grow (Adam's m / sqrt(v) most)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=message)


def _assert_same_training(make_replica, batches, steps=STEPS, compile=True):
    """Runs `steps` steps eagerly and under gg.function; losses and weights are bit-identical,
    but for the step compiler on CUDA: its fused kernels sum in double and use CUDA's math
    library, so float32 results are within a few ulps a step."""
    eager_step, eager_vars, eager_state = make_replica()
    step, variables, state = make_replica()
    fn = gg.function(step, compile=compile)
    exact = not compile or str(gg.get_default_device()).startswith("cpu")
    for i in range(steps):
        x, y = batches[i % len(batches)]
        want, got = eager_step(x, y), fn(x, y)
        assert type(got) is gg.Tensor
        _assert_same(got.numpy(), want.numpy(), exact, f"loss of step {i}")
        for a, b in zip(variables, eager_vars):
            _assert_same(a.numpy(), b.numpy(), exact, f"{a.name} after step {i}")
    assert len(fn._plans) == 1  # one capture, then replays
    return fn, state, eager_state


OPTIMIZERS = {
    "sgd": lambda: gg.optimizers.SGD(0.5),
    "sgd-momentum": lambda: gg.optimizers.SGD(0.2, momentum=0.9),
    "sgd-nesterov": lambda: gg.optimizers.SGD(0.2, momentum=0.9, nesterov=True),
    "adam": lambda: gg.optimizers.Adam(0.05),  # the bias correction depends on the step
    "adamw-amsgrad": lambda: gg.optimizers.AdamW(0.05, weight_decay=0.1, amsgrad=True),
    "rmsprop": lambda: gg.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "adagrad": lambda: gg.optimizers.Adagrad(0.2),
    "sgd-schedule": lambda: gg.optimizers.SGD(lambda step: 2.0 / (1 + step)),
    "adam-schedule": lambda: gg.optimizers.Adam(lambda step: 0.1 * 0.9 ** step),
    "clipnorm": lambda: gg.optimizers.SGD(1.0, clipnorm=0.02),
    "global-clipnorm": lambda: gg.optimizers.Adam(0.05, global_clipnorm=0.03),
    "clipvalue": lambda: gg.optimizers.SGD(1.0, clipvalue=0.01),
    "check-numerics": lambda: gg.optimizers.Adam(0.05, check_numerics=True),
}


@pytest.mark.parametrize("compile", [True, False], ids=["compiled", "plain"])
@pytest.mark.parametrize("make_optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_training_step_replays_bit_identical_to_eager(make_optimizer, compile, device, rng):
    _, optimizer, eager_optimizer = _assert_same_training(lambda: _optimizer_replica(make_optimizer), _batches(rng),
                                                          compile=compile)
    exact = not compile or str(device).startswith("cpu")
    assert optimizer.iterations == eager_optimizer.iterations == STEPS
    assert optimizer.learning_rate == eager_optimizer.learning_rate
    for var, eager_var in zip(optimizer.variables, eager_optimizer.variables):
        slots, eager_slots = optimizer.slots(var), eager_optimizer.slots(eager_var)
        assert list(slots) == list(eager_slots)
        for (name, slot), eager_slot in zip(slots.items(), eager_slots.values()):
            _assert_same(slot.numpy(), eager_slot.numpy(), exact, f"slot {name} of {var.name}")


def test_hand_written_assign_sub_step_replays_bit_identical_to_eager(device, rng):
    """The TensorFlow 2 tutorials' step: tape.gradient, then w.assign_sub(lr * grad) by hand."""
    init = [rng.normal(size=(1, 3)).astype(np.float32), np.full((1, 3), 0.1, np.float32),
            rng.normal(size=(3, 1)).astype(np.float32), np.full((1, 1), 0.1, np.float32)]

    def replica():
        w1, b1, w2, b2 = variables = [gg.Variable(p) for p in init]

        def step(x, y):
            with gg.GradientTape() as tape:
                prediction = gg.sigmoid(x @ w1 + b1) @ w2 + b2
                loss = gg.reduce_mean(gg.reduce_sum(gg.square(y - prediction), axis=1))
            for var, grad in zip(variables, tape.gradient(loss, variables)):
                var.assign_sub(0.1 * grad)
            return loss

        return step, variables, None

    _assert_same_training(replica, _batches(rng))


def test_check_numerics_raises_on_replay_naming_the_variable(device, rng):
    batches = _batches(rng)
    eager_step, eager_vars, eager_optimizer = _optimizer_replica(OPTIMIZERS["check-numerics"])
    step, variables, optimizer = _optimizer_replica(OPTIMIZERS["check-numerics"])
    fn = gg.function(step)
    for x, y in batches * 2:
        eager_step(x, y)
        fn(x, y)
    x, y = batches[0]
    poisoned = gg.constant(np.where(np.arange(300)[:, None] == 17, np.nan, x.numpy()).astype(np.float32))
    before = [v.numpy() for v in variables]
    with pytest.raises(FloatingPointError) as eager_error:
        eager_step(poisoned, y)
    with pytest.raises(FloatingPointError, match=r"Variable 'kernel'.*step 4.*no variable was updated") as error:
        fn(poisoned, y)
    assert str(error.value) == str(eager_error.value)
    for var, value in zip(variables, before):
        np.testing.assert_array_equal(var.numpy(), value)
    assert optimizer.iterations == 4
    # the failed replay changed nothing: training goes on as eagerly
    for x, y in batches:
        np.testing.assert_array_equal(fn(x, y).numpy(), eager_step(x, y).numpy())
    assert len(fn._plans) == 1


def test_custom_gradient_and_variable_assignments_replay(device, rng):
    @gg.custom_gradient
    def squash(x):  # tanh forward, a deliberately different backward (so it can only come from grad_fn)
        y = gg.tanh(x)

        def grad_fn(upstream):
            return (upstream * (1.0 - y * y) * 1.5,)
        return y, grad_fn

    def replica():
        kernel = gg.Variable(np.array([[0.5, -0.3, 0.8]], np.float32))
        head = gg.Variable(np.array([[0.2], [0.4], [-0.6]], np.float32))
        count = gg.Variable(0, dtype=gg.int32, trainable=False)
        average = gg.Variable(0.0, trainable=False)
        last_x = gg.Variable(np.zeros((300, 1), np.float32), trainable=False)
        optimizer = gg.optimizers.SGD(0.3)

        def step(x, y):
            with gg.GradientTape() as tape:
                loss = gg.reduce_mean(gg.square(squash(x @ kernel) @ head - y))
            optimizer.apply_gradients(zip(tape.gradient(loss, [kernel, head]), [kernel, head]))
            count.assign_add(1)
            average.assign(average * 0.9 + loss * 0.1)
            last_x.assign(x)
            return loss

        return step, [kernel, head, count, average, last_x], None

    _assert_same_training(replica, _batches(rng))


# ---------------------------------------------------------------------------------------
# Arguments

def test_replay_uses_the_new_argument_values(device):
    calls = []

    @gg.function
    def f(x, y):
        calls.append(1)
        return gg.reduce_sum(x * y) + gg.exp(x)

    for values in ([1.0, 2.0, 3.0], [-1.0, 0.5, 4.0], [0.0, 0.0, 7.0]):
        x, y = gg.constant(values), gg.constant(values[::-1])
        np.testing.assert_array_equal(f(x, y).numpy(), f.__wrapped__(x, y).numpy())
    assert len(calls) == 1 + 3  # Python ran for the capture only (and for the eager references)
    assert len(f._plans) == 1


def test_new_shape_or_dtype_captures_again(device):
    f = gg.function(lambda x: gg.reduce_sum(x * x, axis=0))
    cases = [gg.constant([1.0, 2.0]), gg.constant([3.0, 4.0]), gg.constant([[1.0, 2.0], [3.0, 4.0]]),
             gg.constant([5.0, 6.0], dtype=gg.float64), gg.constant([[5.0, 6.0], [7.0, 8.0]]),
             gg.constant([7.0, 8.0], dtype=gg.float64)]
    plans = []
    for x in cases:
        got = f(x)
        assert got.shape == x.shape[1:] and got.dtype == x.dtype
        np.testing.assert_array_equal(got.numpy(), np.sum(x.numpy() ** 2, axis=0))
        plans.append(len(f._plans))
    assert plans == [1, 1, 2, 3, 3, 3]


def test_python_numbers_are_runtime_values_and_bools_part_of_the_signature(device):
    f = gg.function(lambda x, scale, square: x * scale if not square else x * x * scale)
    x = gg.constant([1.0, 2.0])
    np.testing.assert_array_equal(f(x, 2.0, False).numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(f(x, 3.0, False).numpy(), [3.0, 6.0])
    np.testing.assert_array_equal(f(x, 3.0, True).numpy(), [3.0, 12.0])
    np.testing.assert_array_equal(f(gg.constant([4.0, 5.0]), 2.0, False).numpy(), [8.0, 10.0])
    assert len(f._plans) == 2  # one per value of the bool; the float is fed each call


def test_numpy_array_arguments(device):
    f = gg.function(lambda x: x * 2.0 + 1.0)
    for values in ([1.0, 2.0], [3.0, -4.0]):
        got = f(np.array(values, np.float32))
        assert type(got) is gg.Tensor and got.device == device and got.dtype == np.float32
        np.testing.assert_array_equal(got.numpy(), np.array(values, np.float32) * 2 + 1)
    assert len(f._plans) == 1
    np.testing.assert_array_equal(f(np.array([1.0, 2.0])).numpy(), [3.0, 5.0])  # float64: a new signature
    assert len(f._plans) == 2


def test_same_tensor_passed_for_two_arguments(device):
    """Two arguments with one array at capture are still two arguments on replay."""
    f = gg.function(lambda a, b: a - b)
    x, y = gg.constant([1.0, 2.0]), gg.constant([10.0, 20.0])
    np.testing.assert_array_equal(f(x, x).numpy(), [0.0, 0.0])
    np.testing.assert_array_equal(f(x, y).numpy(), [-9.0, -18.0])
    np.testing.assert_array_equal(f(y, x).numpy(), [9.0, 18.0])


def test_argument_that_is_also_a_closed_over_constant(device):
    """A constant the function closes over stays that constant when it was also an argument."""
    c = gg.constant([1.0, 2.0])
    f = gg.function(lambda a: a + c)
    np.testing.assert_array_equal(f(c).numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(f(gg.constant([10.0, 20.0])).numpy(), [11.0, 22.0])


# ---------------------------------------------------------------------------------------
# Results

def test_returned_structures_are_fresh_tensors(device):
    @gg.function
    def f(x):
        return (x * 2.0, [x + 1.0, {"sum": gg.reduce_sum(x), "neg": -x}])

    first = f(gg.constant([1.0, 2.0]))
    results = [first] + [f(gg.constant(v)) for v in ([3.0, 4.0], [5.0, -6.0])]
    for values, result in zip(([1.0, 2.0], [3.0, 4.0], [5.0, -6.0]), results):
        x = np.array(values, np.float32)
        assert type(result) is tuple and type(result[1]) is list and type(result[1][1]) is dict
        assert list(result[1][1]) == ["sum", "neg"]
        leaves = [result[0], result[1][0], result[1][1]["sum"], result[1][1]["neg"]]
        assert all(type(t) is gg.Tensor and t.device == device for t in leaves)
        for got, want in zip(leaves, (x * 2, x + 1, x.sum(), -x)):
            np.testing.assert_array_equal(got.numpy(), want)
    assert len({id(r[0]) for r in results}) == 3  # new Tensors on every call
    assert len(f._plans) == 1


def test_single_tensor_variable_and_outside_constant_results(device):
    v = gg.Variable([1.0, 2.0])
    c = gg.constant([5.0, 6.0])
    single = gg.function(lambda x: x * x)
    variable = gg.function(lambda x: v.assign_add(x * 2.0))  # assign_add returns the Variable
    constant = gg.function(lambda x: c if gg.reduce_sum(x).shape == () else None)
    for values in ([1.0, 1.0], [2.0, 3.0], [0.5, 0.5]):
        x = gg.constant(values)
        squared = single(x)
        assert type(squared) is gg.Tensor
        np.testing.assert_array_equal(squared.numpy(), np.square(values, dtype=np.float32))
        assert variable(x) is v
        assert constant(x) is c
    np.testing.assert_array_equal(v.numpy(), [8.0, 11.0])
    np.testing.assert_array_equal(c.numpy(), [5.0, 6.0])
    assert [len(f._plans) for f in (single, variable, constant)] == [1, 1, 1]


def test_structure_with_variable_and_outside_constant(device):
    v = gg.Variable([1.0, 2.0])
    c = gg.constant([5.0, 6.0])

    @gg.function
    def f(x):
        v.assign_add(x)
        return v, [c, gg.reduce_sum(v * x)]

    for values in ([1.0, 1.0], [2.0, 3.0], [0.5, 0.5]):
        var, (const, total) = f(gg.constant(values))
        assert var is v and const is c
        np.testing.assert_array_equal(total.numpy(), np.sum(v.numpy() * np.array(values, np.float32)))
    np.testing.assert_array_equal(v.numpy(), [4.5, 6.5])


VIEWS = {"reshape": lambda v: gg.reshape(v, (4,)), "transpose": gg.transpose, "value": lambda v: v.value(),
         "identity": gg.identity}


@pytest.mark.parametrize("view", VIEWS.values(), ids=VIEWS.keys())
def test_view_of_variable_returned_before_an_update_keeps_the_old_value(view, device):
    """reshape(v) (or another view of v) then an assignment to v: the result is the value from
    before the assignment, on replays as eagerly, and stays so after later calls."""
    def make():
        v = gg.Variable([[1.0, 2.0], [3.0, 4.0]])

        def f():
            result = view(v)
            v.assign(v * 2.0)
            return result
        return f

    eager, fn = make(), gg.function(make())
    kept = []
    for _ in range(4):
        want, got = eager(), fn()
        np.testing.assert_array_equal(got.numpy(), want.numpy())
        kept.append((got, want.numpy()))
    for got, value in kept:  # no later call wrote into an earlier result
        np.testing.assert_array_equal(got.numpy(), value)
    np.testing.assert_array_equal(np.sort(kept[-1][1], axis=None), [8.0, 16.0, 24.0, 32.0])


# ---------------------------------------------------------------------------------------
# Falling back to eager

def _print_then(x):
    y = x * 2.0
    print(y)
    return y + 1.0


FALLBACKS = {
    "float": (lambda x: x * float(gg.reduce_sum(x)), r"float\(\) read"),
    "numpy": (lambda x: x + (x * 2.0).numpy().max(), r"numpy\(\) read"),
    "bool": (lambda x: x * 2.0 if gg.reduce_sum(x) > 0 else x - 1.0, r"bool\(\) read"),
    "repr": (lambda x: x * len(repr(gg.reduce_max(x))), r"repr\(\) read"),
    "print": (_print_then, r"repr\(\) read"),
    "constant": (lambda x: gg.constant(x * 2.0) + 1.0, "copied into a new constant"),
    "fill": (lambda x: gg.fill((2,), gg.reduce_sum(x)) * x[:2], "copied into a new constant"),
    "int-index": (lambda x: x[gg.cast(x > 0, gg.int32)], "static parameter"),
    "mask": (lambda x: x[x > 0] * 3.0, "static parameter"),
}
INPUTS = ([1.0, -2.0, 3.0, -4.0], [-1.0, 2.0, -3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [-5.0, -6.0, -7.0, -8.5])


@pytest.mark.parametrize("body, reason", FALLBACKS.values(), ids=FALLBACKS.keys())
def test_value_read_falls_back_to_eager_with_one_warning(body, reason, device):
    fn = gg.function(body)
    with pytest.warns(RuntimeWarning, match=f"runs eagerly on every call: .*{reason}") as record:
        first = fn(gg.constant(INPUTS[0]))
    assert len(record) == 1
    np.testing.assert_array_equal(first.numpy(), body(gg.constant(INPUTS[0])).numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        for values in INPUTS * 2:
            x = gg.constant(values)
            np.testing.assert_array_equal(fn(x).numpy(), body(x).numpy())


def test_debugging_check_numerics_stays_live(device):
    """gg.debugging.check_numerics reads the value on the host: a replay must not skip it (either
    the function falls back to eager, with its warning, or the check runs on every replay)."""
    fn = gg.function(lambda x: gg.debugging.check_numerics(x * 2.0, "doubled") + 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fn(gg.constant([1.0, 2.0]))
    np.testing.assert_array_equal(fn(gg.constant([3.0, 4.0])).numpy(), [7.0, 9.0])
    with pytest.raises(FloatingPointError, match="doubled: 1 NaN and 0 infinite"):
        fn(gg.constant([np.nan, 4.0]))


def test_random_draw_falls_back_to_eager_with_one_warning(device):
    fn = gg.function(lambda x: x + gg.random.normal(x.shape))
    x = gg.constant([1.0, 2.0, 3.0])
    with pytest.warns(RuntimeWarning, match=r"gg\.random\.normal draws new values") as record:
        fn(x)
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        draws = [fn(x).numpy() for _ in range(3)]
        assert not np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[1], draws[2])
        gg.random.set_seed(3)
        seeded = fn(x).numpy()
        gg.random.set_seed(3)
        np.testing.assert_array_equal(seeded, (x + gg.random.normal((3,))).numpy())


def test_training_step_with_host_read_falls_back_and_still_trains(device, rng):
    """A step that logs float(loss): one warning, then every step eager, weights as eagerly."""
    def replica():
        step, variables, optimizer = _optimizer_replica(OPTIMIZERS["adam"])
        logged = []

        def logging_step(x, y):
            loss = step(x, y)
            logged.append(float(loss))
            return loss
        return logging_step, variables, logged

    with pytest.warns(RuntimeWarning, match=r"float\(\) read") as record:
        _, logged, eager_logged = _assert_same_training(replica, _batches(rng), steps=10)
    assert len(record) == 1
    assert logged == eager_logged and len(set(logged)) == 10


# ---------------------------------------------------------------------------------------
# Tapes and nesting

def test_call_inside_a_tape_runs_eagerly_so_the_tape_differentiates_it(device):
    v = gg.Variable([1.0, 1.0, 2.0])
    f = gg.function(lambda x: gg.reduce_sum(x * x * v))
    x = gg.constant([1.0, 2.0, 3.0])
    f(x)
    f(x)  # captured and replayed
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = f(x)
    gx, gv = tape.gradient(y, [x, v])
    assert gx is not None and gv is not None
    np.testing.assert_array_equal(y.numpy(), 23.0)
    np.testing.assert_array_equal(gx.numpy(), [2.0, 4.0, 12.0])
    np.testing.assert_array_equal(gv.numpy(), [1.0, 4.0, 9.0])
    assert len(f._plans) == 1


def test_function_called_inside_another_functions_capture(device):
    inner = gg.function(lambda x: x * x + 1.0)
    v = gg.Variable(2.0)

    @gg.function
    def outer(x):
        plain = inner(x) * 3.0  # no tape here: only the outer capture must see inner's ops
        with gg.GradientTape() as tape:
            tape.watch(x)
            y = gg.reduce_sum(inner(x) * v)
        return gg.concat([gg.reshape(y, (1,)), tape.gradient(y, x), plain], 0)

    inner(gg.constant([0.0, 0.0]))  # inner has a plan of this signature before outer's capture
    for values in ([1.0, 2.0], [3.0, -1.0], [0.5, 4.0]):
        x = np.array(values, np.float32)
        np.testing.assert_array_equal(outer(gg.constant(x)).numpy(),
                                      [np.sum((x * x + 1) * 2), *(2 * x * 2), *((x * x + 1) * 3)])
        np.testing.assert_array_equal(inner(gg.constant(x)).numpy(), x * x + 1)
    assert len(outer._plans) == 1


# ---------------------------------------------------------------------------------------
# Memory

def test_plan_keeps_no_intermediate_of_the_capture_call(device):
    seen = {}

    @gg.function
    def f(x):
        hidden = gg.exp(x * 2.0)
        seen["tensor"], seen["array"] = weakref.ref(hidden), weakref.ref(hidden._data)
        return gg.reduce_sum(hidden)

    x = gg.constant(np.arange(1000, dtype=np.float32) / 1000)
    argument = weakref.ref(x._data)
    result = f(x)
    assert seen["tensor"]() is None and seen["array"]() is None
    del x
    gc.collect()
    assert argument() is None  # nor the argument's array
    np.testing.assert_allclose(result.numpy(), np.sum(np.exp(np.arange(1000) / 500)), rtol=1e-5)
