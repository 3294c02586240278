"""The gradient debugging tools: explain_gradient (why a gradient is None), the process-wide
check of every op's output for NaN and infinity, and to_dot (the recorded history drawn
with Graphviz)."""
import re
import sys
import threading
import types

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.recording import THREAD


def explain_then_gradient(tape, target, source):
    """The explanation, then the gradient it explains (so that each case is checked to be
    what it claims)."""
    return tape.explain(target, source), tape.gradient(target, source)


# ---------------------------------------------------------------------------------------
# explain_gradient

def test_explain_a_tensor_the_tape_does_not_watch():
    x = gg.constant([1.0, 2.0])
    w = gg.Variable([3.0, 4.0])
    with gg.GradientTape() as tape:
        y = gg.reduce_sum(x * w)
    text, grad = explain_then_gradient(tape, y, x)
    assert grad is None
    assert text.startswith("The gradient is None: the tape does not watch the source")
    assert "tape.watch(x)" in text
    assert "The target does use it (as input 0 of multiply): gg.gradients(target, x)" in text
    assert gg.gradients(y, [x])[0] is not None  # as the explanation says


def test_explain_a_variable_with_trainable_false():
    v = gg.Variable(1.0, trainable=False, name="frozen")
    with gg.GradientTape() as tape:
        y = v * 2.0
    text, grad = explain_then_gradient(tape, y, v)
    assert grad is None
    assert text.startswith("The gradient is None: Variable 'frozen' has trainable=False, so the tape does not "
                           "watch it")
    assert "tape.watch(x)" in text


def test_explain_a_tape_that_does_not_watch_accessed_variables():
    v = gg.Variable(1.0, name="v")
    with gg.GradientTape(watch_accessed_variables=False) as tape:
        y = v * 2.0
    text, grad = explain_then_gradient(tape, y, v)
    assert grad is None
    assert "watch_accessed_variables=False" in text and "tape.watch(x)" in text


def test_explain_a_variable_read_outside_the_tape():
    v = gg.Variable(1.0, name="v")
    y = v * 2.0
    with gg.GradientTape() as tape:
        z = y * 3.0
    text, grad = explain_then_gradient(tape, z, v)
    assert grad is None
    assert text.startswith("The gradient is None: the tape does not watch Variable 'v': no op read it while the "
                           "tape recorded")


@pytest.mark.parametrize("value, dtype", [([1, 2], "int32"), ([True, False], "bool")])
def test_explain_an_integer_or_bool_source(value, dtype):
    x = gg.constant(value)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.cast(x, gg.float32) * 2.0
    text, grad = explain_then_gradient(tape, y, x)
    assert grad is None
    assert text == (f"The gradient is None: the source Tensor of shape (2,) has dtype {dtype}, and only float "
                    f"tensors get gradients. Make it float before the tape reads it: gg.cast(x, gg.float32), or "
                    f"create it with dtype=gg.float32.")


def test_explain_a_bool_target():
    x = gg.constant([1.0, 2.0])
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = x > 1.0
    text, grad = explain_then_gradient(tape, y, x)
    assert grad is None
    assert text.startswith("The gradient is None: the target has dtype bool, and only float results carry a gradient")


def test_explain_a_complex_source():
    z = gg.constant([1 + 2j])
    with gg.GradientTape() as tape:
        tape.watch(z)
        y = z * z
    assert tape.explain(y, z).startswith("tape.gradient raises TypeError: the source Tensor of shape (1,) is "
                                         "complex (complex128)")
    with pytest.raises(TypeError, match="complex"):
        tape.gradient(y, z)


def test_explain_a_path_cut_by_stop_gradient():
    x = gg.constant([1.0, 2.0])
    w = gg.Variable([3.0, 4.0])
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.reduce_sum(gg.stop_gradient(x) * w)
    text, grad = explain_then_gradient(tape, y, x)
    assert grad is None
    assert text == ("The gradient is None: input 0 of multiply holds the buffer of the source Tensor of shape (2,) "
                    "but no recorded link to it: gg.stop_gradient (or an op run under tape.stop_recording()) cut "
                    "the path there.")


@pytest.mark.parametrize("copy", [lambda x: gg.constant(x.numpy()), lambda x: gg.constant(x), gg.stop_gradient],
                         ids=["numpy", "constant", "stop_gradient"])
def test_explain_a_copy_made_outside_the_tape(copy):
    x = gg.Variable([1.0, 2.0], name="x")
    w = gg.Variable([3.0, 4.0], name="w")
    with gg.GradientTape() as tape:
        tape.watch(x)
        z = gg.reduce_sum(w * copy(x))
    text, grad = explain_then_gradient(tape, z, x)
    assert grad is None
    assert text == ("The gradient is None: the target's recorded history does not reach Variable 'x', but input 1 "
                    "of multiply holds the same values with no recorded link: a copy made outside the tape "
                    "(.numpy(), float(), gg.constant(...), gg.stop_gradient(...)) looks like this, and the tape "
                    "cannot follow a copy.")


def test_explain_a_path_cut_by_a_comparison_names_the_ops_without_a_gradient():
    x = gg.constant([1.0, 2.0])
    w = gg.Variable([3.0, 4.0], name="w")
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.reduce_sum(gg.cast(x > 1.0, gg.float32) * w)
    text, grad = explain_then_gradient(tape, y, x)
    assert grad is None
    assert text.startswith("The gradient is None: the target's recorded history (2 recorded ops) never reaches the "
                           "source Tensor of shape (2,); it starts from a constant (2,) float32 (input 0 of "
                           "multiply); Variable 'w' (input 1 of multiply). No recorded path leads from the source "
                           "to the target.")
    assert ("by an op without a gradient (argmax, argmin, argsort, equal, greater, greater_equal, less, less_equal, "
            "not_equal)" in text)
    assert "if the value went through .numpy(), float() or gg.constant(...), the tape cannot follow it" in text


def test_explain_lists_at_most_three_starting_points():
    x = gg.constant(1.0)
    with gg.GradientTape() as tape:
        tape.watch(x)
        variables = [gg.Variable(float(i), name=f"v{i}") for i in range(5)]
        y = variables[0] * 1.0
        for v in variables[1:]:
            y = y + v
    text = tape.explain(y, x)
    assert "Variable 'v0' (input 0 of multiply); Variable 'v1' (input 1 of add); Variable 'v2' (input 1 of add); " \
           "and 2 more." in text


@pytest.mark.parametrize("where", ["outside", "stop_recording", "unrelated"])
def test_explain_a_target_the_tape_did_not_record(where):
    x = gg.constant([1.0, 2.0])
    other = gg.constant([3.0, 4.0])
    before = x * 2.0
    with gg.GradientTape() as tape:
        tape.watch(x)
        with tape.stop_recording():
            paused = x * 2.0
        unrelated = other * 2.0
    target = {"outside": before, "stop_recording": paused, "unrelated": unrelated}[where]
    text, grad = explain_then_gradient(tape, target, x)
    assert grad is None
    assert text.startswith("The gradient is None: this tape recorded none of the target's history: the target was "
                           "computed outside the tape's context or under tape.stop_recording(), or only from values "
                           "that had lost their link to the source. No recorded path leads from the source to the "
                           "target.")


def test_explain_a_target_another_tape_recorded():
    x, y = gg.constant(1.0), gg.constant(2.0)
    with gg.GradientTape() as outer, gg.GradientTape() as inner:
        outer.watch(x)
        inner.watch(y)
        z = y * 3.0
    text, grad = explain_then_gradient(outer, z, x)
    assert grad is None
    assert "this tape recorded none of the target's history (another tape did)" in text


def test_explain_a_variable_assigned_after_use():
    w = gg.Variable([1.0, 2.0], name="w")
    with gg.GradientTape() as tape:
        y = gg.reduce_sum(w * w)
    w.assign([3.0, 4.0])
    assert tape.explain(y, w) == (
        "tape.gradient raises RuntimeError: Variable 'w' was assigned (assign, assign_add, assign_sub or an "
        "optimizer step) after multiply read it, and its gradient needs the old value. Compute the gradients "
        "before assigning.")
    with pytest.raises(RuntimeError, match="Variable 'w' was assigned after multiply read it"):
        tape.gradient(y, w)


@gg.primitive(name="debugging_tools_no_vjp")
def no_vjp(x):
    return x * 2


def test_explain_a_primitive_without_a_vjp():
    x = gg.Variable(1.0, name="x")
    with gg.GradientTape() as tape:
        y = no_vjp(x) + 1.0
    assert tape.explain(y, x) == ("tape.gradient raises LookupError: primitive 'debugging_tools_no_vjp' on the path "
                                  "from Variable 'x' to the target has no VJP registered (use "
                                  "debugging_tools_no_vjp.defvjp).")
    with pytest.raises(LookupError, match="debugging_tools_no_vjp"):
        tape.gradient(y, x)


def small_net():
    """Dense -> sigmoid -> Dense -> squared error, and its input and labels."""
    first = gg.nn.Dense(2, 3, activation=gg.nn.sigmoid, seed=1)
    second = gg.nn.Dense(3, 1, seed=2)
    x = gg.constant(np.ones((4, 2), np.float32))
    labels = gg.constant(np.zeros((4, 1), np.float32))
    return first, second, x, labels


def test_explain_a_gradient_that_is_not_none_shows_a_path():
    first, second, x, labels = small_net()
    with gg.GradientTape() as tape:
        loss = gg.reduce_mean(gg.square(second(first(x)) - labels))
    text, grad = explain_then_gradient(tape, loss, first.kernel)
    assert grad is not None
    assert text == ("The gradient is not None: the target depends on Variable 'kernel' through 8 recorded ops: "
                    "kernel -> matmul -> add -> sigmoid -> matmul -> add -> subtract -> square -> reduce_mean "
                    "(the target).")


def test_explain_shortens_a_long_path():
    x = gg.Variable(1.0, name="x")
    with gg.GradientTape() as tape:
        y = x
        for _ in range(20):
            y = gg.sin(y)
    assert tape.explain(y, x) == ("The gradient is not None: the target depends on Variable 'x' through 20 recorded "
                                  "ops: x -> " + "sin -> " * 6 + "(8 more ops) -> " + "sin -> " * 5 + "sin "
                                  "(the target).")


def test_explain_a_target_that_is_the_source():
    x = gg.constant(1.0)
    with gg.GradientTape() as tape:
        tape.watch(x)
    text, grad = explain_then_gradient(tape, x, x)
    assert grad is not None
    assert text == ("The gradient is not None: the target is the source Tensor of shape () itself, so its gradient "
                    "is ones.")


def test_explain_does_not_use_up_a_tape_and_says_what_it_can_after():
    x = gg.Variable(2.0, name="x")
    with gg.GradientTape() as tape:
        y = gg.exp(x)
    before = tape.explain(y, x)
    assert tape.explain(y, x) == before
    assert float(tape.gradient(y, x)) == pytest.approx(np.exp(2.0))
    assert tape.explain(y, x) == (
        "This non-persistent tape has computed its gradients and forgotten what it watched (a second tape.gradient "
        "call raises RuntimeError; GradientTape(persistent=True) answers several), so what follows reads the "
        "recorded history alone, as if the tape watched the source. " + before)


def test_explain_gradient_is_the_tape_method_and_checks_its_arguments():
    x = gg.constant(1.0)
    with gg.GradientTape() as tape:
        y = x * 2.0
    assert gg.explain_gradient(tape, y, x) == tape.explain(y, x) == gg.debugging.explain_gradient(tape, y, x)
    with pytest.raises(TypeError, match="explain_gradient: the source must be a Tensor or Variable, got list"):
        tape.explain(y, [x])
    with pytest.raises(TypeError, match="explain_gradient: expected a GradientTape, got Tensor"):
        gg.explain_gradient(y, y, x)


# ---------------------------------------------------------------------------------------
# enable_check_numerics

@pytest.fixture
def check_every_op():
    """Every op's output checked for the test's duration (NumPy's own warnings silenced, so
    that the check, not the warning, reports the NaN)."""
    gg.debugging.enable_check_numerics()
    try:
        with np.errstate(all="ignore"):
            yield
    finally:
        gg.debugging.disable_check_numerics()


@pytest.mark.parametrize("compute, message", [
    (lambda: gg.log(gg.constant([0.0, 1.0])) * 0.0,
     "check_numerics: primitive 'log' gave 0 NaN and 1 infinite of 2 elements (output (2,) float32; inputs (2,) "
     "float32)"),
    (lambda: gg.sqrt(gg.constant(-1.0)),
     "check_numerics: primitive 'sqrt' gave 1 NaN and 0 infinite of 1 elements (output () float32; inputs () "
     "float32)"),
    (lambda: gg.matmul(gg.constant(np.full((2, 3), 1e30, np.float32)), gg.Variable(np.ones((3, 1)) * 1e30,
                                                                                dtype=gg.float32, name="w")),
     "check_numerics: primitive 'matmul' gave 0 NaN and 2 infinite of 2 elements (output (2, 1) float32; inputs "
     "(2, 3) float32, Variable 'w' (3, 1) float32)"),
    (lambda: gg.where(gg.constant([True, False]), gg.constant([np.inf, 1.0]), 0.0),
     "check_numerics: primitive 'where' gave 0 NaN and 1 infinite of 2 elements (output (2,) float32; inputs (2,) "
     "bool, (2,) float32, 0.0)"),
], ids=["log", "sqrt", "matmul", "where"])
def test_check_numerics_names_the_first_op_with_a_bad_output(check_every_op, compute, message):
    with pytest.raises(FloatingPointError) as error:
        compute()
    assert str(error.value) == message


def test_check_numerics_checks_outputs_not_inputs(check_every_op):
    nan = gg.constant([np.nan, 1.0])  # a constant is no op: nothing raises yet
    assert gg.where(gg.constant([False, True]), nan, 0.0).numpy().tolist() == [0.0, 1.0]
    with pytest.raises(FloatingPointError, match=re.escape(
            "primitive 'add' gave 1 NaN and 0 infinite of 2 elements (output (2,) float32; inputs (2,) float32, 1)")):
        nan + 1


def test_check_numerics_in_the_backward_pass_names_the_op_being_differentiated(check_every_op):
    x = gg.Variable(0.0, name="x")
    with gg.GradientTape() as tape:
        y = gg.sqrt(x)  # 0: finite; its derivative 1 / (2 sqrt(x)) is not
    with pytest.raises(FloatingPointError) as error:
        tape.gradient(y, x)
    assert str(error.value) == ("check_numerics: primitive 'divide' gave 0 NaN and 1 infinite of 1 elements (output "
                                "() float32; inputs () float32, () float32) in the backward pass, in the VJP of "
                                "primitive 'sqrt' (whose forward took Variable 'x' () float32)")
    assert THREAD.state.differentiating is None


def test_check_numerics_in_a_custom_gradient_names_it(check_every_op):
    @gg.custom_gradient
    def reciprocal_grad(x):
        return x * 1.0, lambda g: (g / x,)

    x = gg.Variable([0.0, 1.0], name="x")
    with gg.GradientTape() as tape:
        y = reciprocal_grad(x)
    with pytest.raises(FloatingPointError, match=re.escape(
            "primitive 'divide' gave 0 NaN and 1 infinite of 2 elements (output (2,) float32; inputs (2,) float32, "
            "Variable 'x' (2,) float32) in the backward pass, in the grad_fn of custom_gradient 'reciprocal_grad' "
            "(whose forward took Variable 'x' (2,) float32)")):
        tape.gradient(y, x)


def test_disable_check_numerics_restores_silent_nans():
    gg.debugging.enable_check_numerics()
    gg.debugging.disable_check_numerics()
    with np.errstate(all="ignore"):
        assert np.isnan(gg.sqrt(gg.constant(-1.0)).numpy())
        x = gg.Variable(0.0)
        with gg.GradientTape() as tape:
            y = gg.sqrt(x)
        assert np.isinf(tape.gradient(y, x).numpy())


def test_check_numerics_is_process_wide(check_every_op):
    errors = []

    def other_thread():
        try:
            with np.errstate(all="ignore"):  # NumPy's error state is per thread
                gg.log(gg.constant(0.0))
        except FloatingPointError as error:
            errors.append(str(error))

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert errors and errors[0].startswith("check_numerics: primitive 'log'")


def test_check_numerics_makes_gg_function_steps_run_eagerly_so_every_call_is_checked(check_every_op):
    step = gg.function(lambda x: gg.log(x) + 1.0)
    with pytest.raises(FloatingPointError, match="primitive 'log'"):
        step(gg.constant([0.0]))
    assert step(gg.constant([1.0])).numpy().tolist() == [1.0]
    with pytest.raises(FloatingPointError, match="primitive 'log'"):
        step(gg.constant([0.0]))  # the same signature again: checked, not replayed
    assert not step._plans


# ---------------------------------------------------------------------------------------
# to_dot

_TOKEN = re.compile(r'\s*(?:(->)|([{}\[\];,=])|("(?:[^"\\]|\\.)*")|([A-Za-z_][A-Za-z_0-9.]*|-?[0-9.]+))')


def parse_dot(text):
    """A strict parser for the DOT that to_dot writes (a digraph of node, edge and attribute
    statements): ({node: attributes}, [(tail, head, attributes)], graph attributes). Raises
    AssertionError on anything else, or on an edge naming an undeclared node."""
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        assert match and match.end() > position, f"cannot tokenize {text[position:position + 20]!r}"
        position = match.end()
        tokens.append(next(group for group in match.groups() if group is not None))
    tokens.reverse()

    def take(expected=None):
        token = tokens.pop()
        assert expected is None or token == expected, f"expected {expected!r}, got {token!r}"
        return token

    def value(token):
        return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), token[1:-1]) \
            if token.startswith('"') else token

    def attributes():
        found = {}
        if tokens[-1] != "[":
            return found
        take("[")
        while tokens[-1] != "]":
            key = take()
            take("=")
            found[key] = value(take())
            if tokens[-1] == ",":
                take(",")
        take("]")
        return found

    take("digraph")
    take()
    take("{")
    nodes, edges, graph = {}, [], {}
    while tokens[-1] != "}":
        name = take()
        if tokens[-1] == "=":
            take("=")
            graph[name] = value(take())
        elif tokens[-1] == "->":
            take("->")
            head = take()
            assert name in nodes and head in nodes, f"edge {name} -> {head} names an undeclared node"
            edges.append((name, head, attributes()))
        else:
            attrs = attributes()
            if name != "node":
                assert name not in nodes, f"node {name} declared twice"
                nodes[name] = attrs
        take(";")
    take("}")
    assert not tokens, "text after the graph"
    return nodes, edges, graph


def test_to_dot_draws_every_op_of_a_small_net():
    first, second, x, labels = small_net()
    with gg.GradientTape() as tape:
        loss = gg.reduce_mean(gg.square(second(first(x)) - labels))
    nodes, edges, _ = parse_dot(gg.debugging.to_dot(tape, loss))
    ops = sorted(a["label"] for a in nodes.values() if a["shape"] == "box")
    assert ops == ["add\n(4, 1) float32", "add\n(4, 3) float32", "matmul\n(4, 1) float32", "matmul\n(4, 3) float32",
                   "reduce_mean\n() float32", "sigmoid\n(4, 3) float32", "square\n(4, 1) float32",
                   "subtract\n(4, 1) float32"]
    leaves = {a["label"]: a for a in nodes.values() if a["shape"] == "ellipse"}
    assert sorted(leaves) == ["Variable 'bias'\n(1,) float32", "Variable 'bias'\n(3,) float32",
                              "Variable 'kernel'\n(2, 3) float32", "Variable 'kernel'\n(3, 1) float32",
                              "constant\n(4, 1) float32", "constant\n(4, 2) float32"]
    assert all((a.get("fillcolor") is not None) == a["label"].startswith("Variable") for a in leaves.values())
    assert [a["label"] for a in nodes.values() if "penwidth" in a] == ["reduce_mean\n() float32"]
    # Inputs 0 and 1 of both matmuls, both adds and subtract; sigmoid, square and reduce_mean read one.
    assert sorted(e[2].get("label", "-") for e in edges) == ["-"] * 3 + ["0"] * 5 + ["1"] * 5


def test_to_dot_draws_numbers_and_quotes_names():
    v = gg.Variable(1.0, name='say "hi"\\')
    with gg.GradientTape() as tape:
        y = 2.0 - v
    nodes, edges, _ = parse_dot(gg.debugging.to_dot(tape, y))
    labels = {a["label"]: name for name, a in nodes.items()}
    variable = "Variable 'say \"hi\"\\\\'\n() float32"
    assert sorted(labels) == ["2.0", variable, "subtract\n() float32"]
    assert nodes[labels["2.0"]]["shape"] == "plaintext"
    assert {(tail, e["label"]) for tail, _, e in edges} == {(labels["2.0"], "0"), (labels[variable], "1")}


def test_to_dot_of_a_function_draws_the_history_any_tape_recorded():
    @gg.function
    def double(x):
        return x * 2.0

    x = gg.constant(1.0)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = double(x)  # a call under a recording tape runs eagerly
    nodes, edges, graph = parse_dot(gg.debugging.to_dot(double, y))
    assert graph == {"label": "gg.function double"}
    assert sorted(a["label"] for a in nodes.values()) == ["2.0", "constant\n() float32", "multiply\n() float32"]
    assert all("fillcolor" not in a for a in nodes.values())


def test_to_dot_after_a_non_persistent_gradient_and_of_a_leaf():
    x = gg.Variable(1.0, name="x")
    with gg.GradientTape() as tape:
        y = gg.exp(x)
    before = gg.debugging.to_dot(tape, y)
    tape.gradient(y, x)
    after = gg.debugging.to_dot(tape, y)
    assert after == before.replace(", style=filled, fillcolor=lightblue", "")
    nodes, edges, _ = parse_dot(gg.debugging.to_dot(tape, x))
    assert list(nodes.values()) == [{"shape": "ellipse", "label": "Variable 'x'\n() float32", "penwidth": "2.5"}]
    assert edges == []


def test_to_dot_checks_its_arguments():
    x = gg.constant(1.0)
    with pytest.raises(TypeError, match="to_dot: expected a GradientTape or a gg.function, got function"):
        gg.debugging.to_dot(lambda: None, x)
    with gg.GradientTape() as tape:
        pass
    with pytest.raises(TypeError, match="to_dot: the target must be a Tensor or Variable, got float"):
        gg.debugging.to_dot(tape, 1.0)


def test_to_dot_writes_dot_text_without_graphviz(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # importing it raises ImportError
    x = gg.Variable(1.0)
    with gg.GradientTape() as tape:
        y = x * x
    dot = gg.debugging.to_dot(tape, y, path=tmp_path / "graph.dot")
    assert (tmp_path / "graph.dot").read_text() == dot
    with pytest.raises(ImportError, match=re.escape("needs the graphviz Python package and Graphviz's dot program: "
                                                    "pip install graphviz")):
        gg.debugging.to_dot(tape, y, path=str(tmp_path / "graph.png"))
    with pytest.raises(ValueError, match="has no suffix to name the image format"):
        gg.debugging.to_dot(tape, y, path=tmp_path / "graph")


def test_to_dot_renders_an_image_with_graphviz(tmp_path, monkeypatch):
    calls = []

    class Source:
        def __init__(self, source):
            self.source = source

        def pipe(self, format):
            calls.append((self.source, format))
            return b"image bytes"

    monkeypatch.setitem(sys.modules, "graphviz", types.SimpleNamespace(Source=Source))
    x = gg.Variable(1.0)
    with gg.GradientTape() as tape:
        y = x * x
    dot = gg.debugging.to_dot(tape, y, path=tmp_path / "graph.SVG")
    assert calls == [(dot, "svg")]
    assert (tmp_path / "graph.SVG").read_bytes() == b"image bytes"


def test_to_dot_parses_with_pydot():
    pydot = pytest.importorskip("pydot")
    first, second, x, labels = small_net()
    with gg.GradientTape() as tape:
        loss = gg.reduce_mean(gg.square(second(first(x)) - labels))
    (graph,) = pydot.graph_from_dot_data(gg.debugging.to_dot(tape, loss))
    assert len(graph.get_edges()) == 13
