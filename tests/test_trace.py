"""The trace a gg.function capture records: each step names its primitive and kind, with its
slots' dtypes and shapes; Variable writes and optimizer updates are steps too."""
import re

import numpy as np
import pytest

import gpugrad as gg
from helpers import regression_step


def _seed_step():
    train_step, x, y = regression_step()
    return gg.function(train_step), x, y


def test_the_seed_training_step_prints_with_named_primitives_and_its_update():
    train_step, x, y = _seed_step()
    train_step(x, y)
    text = train_step.trace_text()
    lines = text.splitlines()
    assert lines[0] == "gg.function regression_step.<locals>.train_step"
    assert lines[1:3] == ["  input    %0: f32[300,1]  (argument 0)", "  input    %1: f32[300,1]  (argument 1)"]
    assert "  %3: f32[300,3] = matmul(%0, %2)  # contraction" in lines
    assert re.search(r"= sigmoid\(%\d+\)  # elementwise", text)
    assert re.search(r"= sigmoid_backward\(%\d+, %\d+\)  # elementwise", text)
    assert re.search(r"= reduce_mean\(%\d+, axis=None, keepdims=False\)  # reduction", text)
    # The optimizer's host work (schedule, step count) is one step; each variable's update one more,
    # reading the step's learning rate from a device Variable rather than a frozen number.
    assert re.search(r"^  SGD\.advance\(\)  # host$", text, re.MULTILINE)
    updates = re.findall(r"^  sgd_update\((%\d+), (%\d+), None, (%\d+), momentum=0\.0, nesterov=False\)  # update$",
                         text, re.MULTILINE)
    assert len(updates) == 4 and len({scalars for _, _, scalars in updates}) == 1
    assert f"  constant {updates[0][2]}: f64[1]  (Variable 'SGD/step_scalars')" in lines
    assert "(Variable 'kernel')" in text and lines[-1] == "  return %13"
    assert train_step.trace_text(x, y) == text  # the same signature's plan


def test_variable_writes_are_update_steps_and_numbers_are_inputs():
    w = gg.Variable([1.0, 2.0], name="w")

    @gg.function
    def step(lr):
        w.assign_sub(lr * w)
        return w.value()

    step(0.5)
    text = step.trace_text(0.25)
    assert "  input    %0: float  (argument 0)" in text
    assert re.search(r"constant %1: f32\[2\]  \(Variable 'w'\)", text)
    assert re.search(r"%2: f32\[2\] = multiply\(%1, %0\)  # elementwise", text)
    assert re.search(r"^  assign_sub Variable 'w'\(%2\)  # update$", text, re.MULTILINE)


def test_trace_text_needs_a_captured_plan():
    f = gg.function(lambda x: x * 2.0)
    with pytest.raises(LookupError, match=r"has no plan for any call yet: call it first"):
        f.trace_text()
    f(gg.constant([1.0]))
    with pytest.raises(LookupError, match=r"has no plan for these arguments"):
        f.trace_text(gg.constant([1.0, 2.0]))


def test_a_function_that_runs_eagerly_has_no_trace():
    f = gg.function(lambda x: x * float(x))
    with pytest.warns(RuntimeWarning, match="runs eagerly"):
        f(gg.constant(2.0))
    with pytest.raises(LookupError, match=r"runs these calls eagerly, with no trace: float\(\) read"):
        f.trace_text()


def test_a_sealed_trace_holds_no_values_of_the_capture():
    f = gg.function(lambda x: gg.exp(x) + 1.0)
    f(gg.constant(np.ones(4, np.float32)))
    [plan] = f._plans.values()
    assert plan.trace.values is None and plan.trace.types[0] == "f32[4]"


def test_user_primitives_declare_their_kind_and_default_to_opaque():
    @gg.primitive(name="trace_probe_triple", kind="elementwise")
    def triple(x):
        return x * 3

    @gg.primitive(name="trace_probe_any")
    def anything(x):
        return x[::-1].copy()

    assert triple.kind == "elementwise" and anything.kind == "opaque"
    f = gg.function(lambda x: anything(triple(x)))
    f(gg.constant([1.0, 2.0]))
    assert "trace_probe_triple(%0)  # elementwise" in f.trace_text()
    assert "trace_probe_any(%1)  # opaque" in f.trace_text()
    with pytest.raises(ValueError, match=r"kind must be one of elementwise, .* got 'pointwise'"):
        gg.primitive(lambda x: x, name="trace_probe_bad", kind="pointwise")


def test_every_built_in_primitive_declares_a_kind():
    from gpugrad import dispatch, primitives
    built_in = {name: op for name, op in dispatch.REGISTRY.items() if getattr(primitives, name, None) is op}
    assert {"add", "matmul", "reduce_sum", "reshape"} <= set(built_in)
    opaque = sorted(name for name, op in built_in.items() if op.kind == "opaque")
    # scatter-adds (the backward of indexing and gathers), sorting and a running sum: none of the other kinds
    assert opaque == ["argsort", "cumsum", "gather_backward", "getitem_backward", "take_along_axis_backward"]
