"""Optimizer hyperparameters that make no sense raise at construction, a learning-rate
schedule's NaN, infinite or negative value raises at its step before anything changes, and
apply_gradients given bare gradients says it takes (gradient, variable) pairs."""
import math
import re

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import optimizers as opt

INF, NAN = math.inf, math.nan


@pytest.mark.parametrize("make, message", [
    (lambda: opt.SGD(INF), "SGD: learning_rate must be a finite non-negative number, got inf"),
    (lambda: opt.SGD(NAN), "SGD: learning_rate must be a finite non-negative number, got nan"),
    (lambda: opt.Adam(learning_rate=-INF), "Adam: learning_rate must be a finite non-negative number, got -inf"),
    (lambda: opt.RMSprop(np.float32(np.inf)), "RMSprop: learning_rate must be a finite non-negative number, got "
                                              + repr(np.float32(np.inf))),
    (lambda: opt.Adam(epsilon=INF), "Adam: epsilon must be a finite positive number, got inf"),
    (lambda: opt.RMSprop(epsilon=NAN), "RMSprop: epsilon must be a finite positive number, got nan"),
    (lambda: opt.Adagrad(epsilon=INF), "Adagrad: epsilon must be a finite positive number, got inf"),
    (lambda: opt.Adagrad(initial_accumulator_value=INF),
     "Adagrad: initial_accumulator_value must be a finite non-negative number, got inf"),
    (lambda: opt.AdamW(weight_decay=INF), "AdamW: weight_decay must be a finite non-negative number, got inf"),
    (lambda: opt.SGD(clipvalue=INF), "SGD: clipvalue must be a finite positive number, got inf"),
    (lambda: opt.SGD(clipnorm=INF), "SGD: clipnorm must be a finite positive number, got inf"),
    (lambda: opt.Adam(global_clipnorm=NAN), "Adam: global_clipnorm must be a finite positive number, got nan"),
    (lambda: opt.SGD(momentum=NAN), "SGD: momentum must be a number in [0, 1), got nan"),
    (lambda: opt.Adam(beta_2=INF), "Adam: beta_2 must be a number in [0, 1), got inf"),
    (lambda: opt.RMSprop(rho=NAN), "RMSprop: rho must be a number in [0, 1), got nan"),
], ids=["sgd_lr_inf", "sgd_lr_nan", "adam_lr_-inf", "rmsprop_lr_float32_inf", "adam_epsilon", "rmsprop_epsilon",
        "adagrad_epsilon", "accumulator", "weight_decay", "clipvalue", "clipnorm", "global_clipnorm", "momentum",
        "beta_2", "rho"])
def test_non_finite_hyperparameters_raise_naming_them(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert str(error.value) == message


@pytest.mark.parametrize("bad", [NAN, INF, -INF, -0.5], ids=repr)
def test_a_schedule_value_that_is_not_finite_and_non_negative_raises_before_anything_changes(bad):
    optimizer = opt.Adam(lambda step: 0.1 if step < 2 else bad)
    var, fresh = gg.Variable([1.0, 2.0], name="w"), gg.Variable(3.0, name="fresh")
    for _ in range(2):
        optimizer.apply_gradients([(gg.constant([0.5, -0.5]), var)])
    before, slots = var.numpy().copy(), {n: s.numpy().copy() for n, s in optimizer.slots(var).items()}
    message = (f"Adam: the learning-rate schedule returned {bad!r} at step 2; it must return a finite non-negative "
               f"number")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        optimizer.apply_gradients([(gg.constant([0.5, -0.5]), var), (gg.constant(1.0), fresh)])
    with pytest.raises(ValueError, match=re.escape(message)):
        optimizer.learning_rate
    assert optimizer.iterations == 2 and optimizer.variables == [var]
    assert var.numpy().tolist() == before.tolist() and float(fresh) == 3.0
    assert {n: s.numpy().tolist() for n, s in optimizer.slots(var).items()} == {n: s.tolist()
                                                                               for n, s in slots.items()}


def test_a_schedule_value_is_checked_at_each_replay_of_a_gg_function():
    var = gg.Variable([1.0, 2.0])
    optimizer = opt.SGD(lambda step: 0.25 if step < 2 else NAN)

    @gg.function
    def train_step():
        with gg.GradientTape() as tape:
            loss = gg.reduce_sum(var * var)
        optimizer.apply_gradients(zip(tape.gradient(loss, [var]), [var]))

    train_step()
    train_step()  # a replay
    with pytest.raises(ValueError, match=r"^SGD: the learning-rate schedule returned nan at step 2;"):
        train_step()
    assert var.numpy().tolist() == [0.25, 0.5] and optimizer.iterations == 2


def test_a_schedule_may_return_zero():
    var = gg.Variable(1.0)
    optimizer = opt.SGD(lambda step: 0.0)
    optimizer.apply_gradients([(gg.constant(1.0), var)])
    assert float(var) == 1.0 and optimizer.iterations == 1


PAIRS = "apply_gradients takes (gradient, variable) pairs, such as zip(grads, model.trainable_variables); "


@pytest.mark.parametrize("shape", [(2,), (3, 2), ()], ids=str)
def test_bare_gradients_are_not_pairs(shape):
    w, b = gg.Variable(np.ones(shape), name="w"), gg.Variable(np.zeros(shape), name="b")
    with gg.GradientTape() as tape:
        loss = gg.reduce_sum(w * b + w)
    grads = tape.gradient(loss, [w, b])
    with pytest.raises(TypeError) as error:
        opt.Adam().apply_gradients(grads)
    assert str(error.value) == f"Adam.{PAIRS}item 0 is not a pair: {grads[0]!r}"
    assert w.numpy().tolist() == np.ones(shape).tolist()


def test_a_pair_without_a_variable_second_says_where_the_variable_goes():
    var = gg.Variable([1.0, 2.0])
    with pytest.raises(TypeError) as error:
        opt.SGD().apply_gradients([(gg.constant([1.0, 1.0]), var), (var, gg.constant([1.0, 1.0]))])
    assert str(error.value) == f"SGD.{PAIRS}item 1 holds a Tensor where the gg.Variable goes"
    with pytest.raises(TypeError, match=re.escape(f"SGD.{PAIRS}item 0 is not a pair: (")):
        opt.SGD().apply_gradients([(gg.constant([1.0, 1.0]), var, 0.1)])
    assert var.numpy().tolist() == [1.0, 2.0]


def test_slot_names_and_unbuild_are_the_state_api_checkpoints_use():
    w = gg.Variable([1.0, 2.0], name="w")
    adam = gg.optimizers.Adam()
    assert adam.slot_names == ("m", "v", "vhat")
    adam.build([w])
    assert sorted(adam.slots(w)) == ["m", "v"] and adam.variables == [w]
    adam.unbuild([w])
    assert adam.variables == []
    adam.unbuild([w])  # nothing to forget: fine
