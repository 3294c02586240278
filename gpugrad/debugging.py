"""gg.debugging: find where training goes wrong.

`check_numerics` and `all_finite` check one tensor; `enable_check_numerics` checks the
output of every op, forward and backward, and names the first to give NaN or infinity;
`explain_gradient` says why a gradient is None; `to_dot` draws the recorded history of a
tensor with Graphviz.
"""
import os

from . import backend as _backend
from . import dispatch as _dispatch
from . import tape as _tape
from .backend import xp_of
from .function import Function
from .ops import _tensor
from .recording import THREAD as _THREAD, host_read as _host_read
from .tensor import Tensor, Variable

_np = _backend.backend_of("cpu").xp  # value comparisons run on the host


def all_finite(x):
    """True when no element of `x` is NaN or infinite (reads the value on the host)."""
    _host_read("gg.debugging")
    data = _tensor(x)._data
    return data.dtype.kind not in "fc" or bool(xp_of(data).isfinite(data).all())


def check_numerics(tensor, message):
    """Return `tensor` unchanged, or raise FloatingPointError (`message`, then how many NaN
    and infinite elements it holds) when any element is NaN or infinite. TensorFlow raises
    InvalidArgumentError; FloatingPointError is Python's name for this failure."""
    t = _tensor(tensor)
    if all_finite(t):
        return tensor
    xp = xp_of(t._data)
    nans, infs = int(xp.isnan(t._data).sum()), int(xp.isinf(t._data).sum())
    raise FloatingPointError(f"{message}: {nans} NaN and {infs} infinite of {t._data.size} elements "
                             f"(shape {t.shape})")


# ---------------------------------------------------------------------------------------
# Checking every op

def enable_check_numerics():
    """Check the output of every primitive from now on, in every thread (as
    tf.debugging.enable_check_numerics): the first op whose float output holds NaN or
    infinity raises FloatingPointError naming the primitive, its output and its inputs'
    shapes and dtypes, and, for an op run by a backward pass, the op being differentiated.

    Outputs are checked, not inputs: an op reading a NaN that was already there raises
    only if its output is NaN or infinite too (where() can clean it), as in TensorFlow.
    Each check reads its answer on the host, so a CUDA device synchronizes after every op:
    this is for debugging, not for training runs. NumPy may warn about the same op first
    (RuntimeWarning: invalid value...); where warnings are errors, silence NumPy's with
    numpy.errstate(all="ignore") to get the check's message.

    While it is in force, gg.function steps run eagerly (no replays), so every op is checked.
    """
    _dispatch.check_outputs = _check_output


def disable_check_numerics():
    """Stop checking every op's output (the default); `check_numerics` calls still check."""
    _dispatch.check_outputs = None


def _check_output(prim, inputs, out):
    if out.dtype.kind in "fc" and not xp_of(out).isfinite(out).all():
        raise FloatingPointError(_nonfinite_message(prim, inputs, out))


def _nonfinite_message(prim, inputs, out):
    xp = xp_of(out)
    nans, infs = int(xp.isnan(out).sum()), int(xp.isinf(out).sum())
    message = (f"check_numerics: primitive {prim.name!r} gave {nans} NaN and {infs} infinite of {out.size} "
               f"elements (output {out.shape} {out.dtype}; inputs {_describe_inputs(inputs)})")
    node = _THREAD.state.differentiating
    if node is not None:
        message += (f" in the backward pass, in {_tape._vjp_name(node.prim)} (whose forward took "
                    f"{_describe_inputs(node.inputs)})")
    return message


def _describe_inputs(inputs):
    return ", ".join(_describe_value(a) for a in inputs) or "none"


def _describe_value(a):
    if type(a) is Variable:
        return f"Variable {a.name!r} {a.shape} {a.dtype}"
    if type(a) is Tensor:
        return f"{a.shape} {a.dtype}"
    return repr(a)


# ---------------------------------------------------------------------------------------
# Why is a gradient None?

def explain_gradient(tape, target, source):
    """Why `tape.gradient(target, source)` is (or would be) None, in a few sentences; or
    that it is not None, with the recorded ops that link the source to the target.

    It reads the recorded history and differentiates nothing, so a non-persistent tape is
    not used up: ask before calling tape.gradient, which makes such a tape forget what it
    watched (after it, the explanation says so and uses the history alone). Also
    available as `tape.explain(target, source)`. The causes it tells apart:

    - the source is an integer or bool tensor (only float tensors get gradients), or the
      target is;
    - the tape does not watch the source: a Tensor that was not given to tape.watch, a
      Variable with trainable=False, one never read while the tape recorded, or a tape
      made with watch_accessed_variables=False;
    - the tape did not record the target, or the target's recorded history does not reach
      the source: computed outside the tape's context or under tape.stop_recording(), or
      cut by gg.stop_gradient, an op without a gradient (a comparison, a cast to an
      integer dtype) or a copy of the value (.numpy(), gg.constant(...)), which the tape
      cannot follow. A constant input holding the source's own buffer or values is named;
    - tape.gradient would raise instead: a Variable on the path was assigned after an op
      read it, or a primitive on the path has no VJP.

    Comparing constants with the source reads values on the host.
    """
    if type(tape) is not _tape.GradientTape:
        raise TypeError(f"explain_gradient: expected a GradientTape, got {type(tape).__name__}")
    for what, value in (("target", target), ("source", source)):
        if type(value) is not Tensor and type(value) is not Variable:
            raise TypeError(f"explain_gradient: the {what} must be a Tensor or Variable, got {type(value).__name__}")
    used = tape._used  # a non-persistent tape after its gradient call: its watched set is gone
    prefix = ("This non-persistent tape has computed its gradients and forgotten what it watched (a second "
              "tape.gradient call raises RuntimeError; GradientTape(persistent=True) answers several), so what "
              "follows reads the recorded history alone, as if the tape watched the source. ") if used else ""
    return prefix + _explain(tape, target, source, None if used else tape._id)


# tape.explain(target, source) is explain_gradient(tape, target, source), bound here where it is
# defined (this module builds on the tape module, so the tape module cannot import it).
_tape.GradientTape.explain = explain_gradient


def _explain(tape, target, source, tape_id):
    name = _source_name(source)
    if source.dtype.kind == "c":
        return (f"tape.gradient raises TypeError: {name} is complex ({source.dtype}); gpugrad differentiates only "
                f"with respect to real (float) values.")
    if source.dtype.kind != "f":
        return (f"The gradient is None: {name} has dtype {source.dtype}, and only float tensors get gradients. "
                f"Make it float before the tape reads it: gg.cast(x, gg.float32), or create it with "
                f"dtype=gg.float32.")
    if target.dtype.kind not in "fc":
        return (f"The gradient is None: the target has dtype {target.dtype}, and only float results carry a "
                f"gradient; an integer or bool result (a comparison, a cast to an integer dtype) has none.")
    order, consumers = _recorded(target, source, tape_id)
    if tape_id is not None and not _watches(tape, source):
        return _unwatched(tape, source, name, consumers)
    if target is source:
        return f"The gradient is not None: the target is {name} itself, so its gradient is ones."
    if consumers:
        return _connected(target, source, name, tape_id)
    return _unconnected(tape, target, source, name, tape_id, order)


def _source_name(source):
    if type(source) is Variable:
        return f"Variable {source.name!r}"
    return f"the source Tensor of shape {source.shape}"


def _recorded(target, source, tape_id):
    """The tensors of `target`'s history recorded by `tape_id` (any tape when None), inputs
    first, and where `source` is an input among them: a list of (index, tensor)."""
    if not _followed(target, tape_id):
        return [], []
    order, _ = _tape._history([target], tape_id, set(), frozenset(), False)
    consumers = [(i, t) for t in order for i, a in enumerate(t._node.inputs) if a is source]
    return order, consumers


def _watches(tape, source):
    node = source._node
    return source in tape._watched or (node is not None and tape._id in node.tapes)


def _unwatched(tape, source, name, consumers):
    if type(source) is Variable and not source.trainable:
        why = f"{name} has trainable=False, so the tape does not watch it when an op reads it"
    elif type(source) is Variable and not tape._watch_accessed:
        why = "the tape was made with watch_accessed_variables=False, so it watches only what tape.watch names"
    elif type(source) is Variable:
        why = (f"the tape does not watch {name}: no op read it while the tape recorded (it was read before the "
               f"`with tape:` block, under tape.stop_recording(), or not at all)")
    else:
        why = ("the tape does not watch the source: a tape watches the trainable Variables its ops read, and "
               "Tensors only when given to tape.watch")
    text = (f"The gradient is None: {why}. Call tape.watch(x) on the source inside the tape's context, before "
            f"the ops that use it.")
    if consumers:
        index, t = consumers[0]
        text += (f" The target does use it (as input {index} of {t._node.prim.name}): gg.gradients(target, x) "
                 f"differentiates with respect to it as the history stands.")
    return text


def _connected(target, source, name, tape_id):
    order, relevant = _tape._history([target], tape_id, {source}, frozenset(), True)
    for t in reversed(order):  # in the order the backward pass meets them
        node = t._node
        if node.prim.vjp is None:
            return (f"tape.gradient raises LookupError: primitive {node.prim.name!r} on the path from {name} to the "
                    f"target has no VJP registered (use {node.prim.name}.defvjp).")
        for variable, version in node.versions or ():
            if variable._version != version:
                return (f"tape.gradient raises RuntimeError: Variable {variable.name!r} was assigned (assign, "
                        f"assign_add, assign_sub or an optimizer step) after {node.prim.name} read it, and its "
                        f"gradient needs the old value. Compute the gradients before assigning.")
    path = _path(target, source, relevant)
    return (f"The gradient is not None: the target depends on {name} through {_count_ops(len(path) - 1)}: "
            f"{_join_path(path)} (the target).")


def _path(target, source, relevant):
    """Names along one recorded path from `source` to `target`: the source's, then the ops'."""
    names = []
    t = target
    while True:
        names.append(t._node.prim.name)
        inputs = t._node.inputs
        if any(a is source for a in inputs):
            break
        t = next(a for a in inputs if type(a) is Tensor and a in relevant)
    names.append(source.name if type(source) is Variable else "source")
    return names[::-1]


_PATH_SHOWN = 12  # op names shown of a longer path: the first and the last half of them


def _join_path(names):
    if len(names) > _PATH_SHOWN + 1:
        half = _PATH_SHOWN // 2
        names = names[:half + 1] + [f"({_count_ops(len(names) - _PATH_SHOWN - 1, 'more')})"] + names[-half:]
    return " -> ".join(names)


def _count_ops(count, what="recorded"):
    return f"{count} {what} op" + ("" if count == 1 else "s")


def _unconnected(tape, target, source, name, tape_id, order):
    if not order:
        other = " (another tape did)" if target._node is not None else ""
        return (f"The gradient is None: this tape recorded none of the target's history{other}: the target was "
                f"computed outside the tape's context or under tape.stop_recording(), or only from values that "
                f"had lost their link to the source. {_cut_causes()}")
    leaves = _leaves(order, tape_id)
    for index, t, a in leaves:
        if type(a) is Tensor and a._data is source._data:
            return (f"The gradient is None: input {index} of {t._node.prim.name} holds the buffer of {name} but "
                    f"no recorded link to it: gg.stop_gradient (or an op run under tape.stop_recording()) cut "
                    f"the path there.")
    for index, t, a in leaves:
        if type(a) is Tensor and _same_values(a, source):
            return (f"The gradient is None: the target's recorded history does not reach {name}, but input "
                    f"{index} of {t._node.prim.name} holds the same values with no recorded link: a copy made "
                    f"outside the tape (.numpy(), float(), gg.constant(...), gg.stop_gradient(...)) looks like "
                    f"this, and the tape cannot follow a copy.")
    starts = [_describe_leaf(index, t, a, tape._watched) for index, t, a in leaves]
    shown = "; ".join(starts[:_LEAVES_SHOWN]) + (f"; and {len(starts) - _LEAVES_SHOWN} more"
                                                 if len(starts) > _LEAVES_SHOWN else "")
    return (f"The gradient is None: the target's recorded history ({_count_ops(len(order))}) never reaches "
            f"{name}; it starts from {shown}. {_cut_causes()}")


_LEAVES_SHOWN = 3


def _leaves(order, tape_id):
    """(index, consumer, input) for each tensor input of `order`'s ops that the history does
    not follow (constants, Variables, tensors of other tapes), each tensor once."""
    seen = set()
    leaves = []
    for t in order:
        for index, a in enumerate(t._node.inputs):
            kind = type(a)
            if (kind is Variable or kind is Tensor and not _followed(a, tape_id)) and a not in seen:
                seen.add(a)
                leaves.append((index, t, a))
    return leaves


def _followed(t, tape_id):
    """Whether a history walk for `tape_id` (any tape when None) goes on past Tensor `t`."""
    node = t._node
    return node is not None and (tape_id is None or tape_id in node.tapes)


def _same_values(a, source):
    """Whether Tensor `a` holds the values of `source` (read on the host)."""
    return a.shape == source.shape and bool(_np.array_equal(a.numpy(), source.numpy(), equal_nan=True))


def _describe_leaf(index, t, a, watched):
    if type(a) is Variable:
        return f"Variable {a.name!r} (input {index} of {t._node.prim.name})"
    what = ("a watched Tensor" if a in watched else "a constant" if a._node is None
            else "a tensor another tape recorded")
    return f"{what} {a.shape} {a.dtype} (input {index} of {t._node.prim.name})"


def _cut_causes():
    cutting = sorted(name for name, op in _dispatch.REGISTRY.items()
                     if not op.differentiable and op.kind != "update" and name != "stop_gradient")
    return (f"No recorded path leads from the source to the target. If the target should depend on it, the link "
            f"was cut: by gg.stop_gradient, by an op without a gradient ({', '.join(cutting)}) or by a cast to "
            f"an integer or bool dtype; and if the value went through .numpy(), float() or gg.constant(...), the "
            f"tape cannot follow it.")


# ---------------------------------------------------------------------------------------
# Drawing the recorded history

def to_dot(recorder, target, path=None):
    """Graphviz DOT text of the recorded history of `target`: a box per op (primitive name,
    output shape and dtype) and an oval per leaf (Variables by name, constants, with their
    shape and dtype; a Python number as plain text), edges from inputs to the ops that read
    them (numbered for ops of several inputs). The target is drawn bold, watched sources
    filled.

    Args:
        recorder: the GradientTape that recorded `target` (its history as that tape
            recorded it, the tensors it watches filled), or a gg.function, which keeps no
            history of its own: then the history any tape recorded, titled with the
            function's name. After a non-persistent tape's gradient call the tape has
            forgotten its records: the history any tape recorded is drawn, nothing filled.
        target: the Tensor (or Variable) to draw the history of.
        path: also write the graph to this file: the DOT text for a .dot or .gv file, an
            image for another suffix (.png, .svg, .pdf...), rendered with the `graphviz`
            Python package and Graphviz's `dot` program.
    """
    if type(target) is not Tensor and type(target) is not Variable:
        raise TypeError(f"to_dot: the target must be a Tensor or Variable, got {type(target).__name__}")
    if type(recorder) is _tape.GradientTape:
        used = recorder._used
        tape_id, watched, title = None if used else recorder._id, {} if used else recorder._watched, None
    elif type(recorder) is Function:
        tape_id, watched, title = None, {}, f"gg.function {getattr(recorder, '__name__', recorder)}"
    else:
        raise TypeError(f"to_dot: expected a GradientTape or a gg.function, got {type(recorder).__name__}")
    dot = _dot(target, tape_id, watched, title)
    if path is not None:
        _write(dot, os.fspath(path))
    return dot


def _dot(target, tape_id, watched, title):
    order = _tape._history([target], tape_id, set(), frozenset(), False)[0] if _followed(target, tape_id) else []
    ops = {t: f"op{i}" for i, t in enumerate(order)}
    leaves = {}  # leaf tensor -> DOT node name
    lines = ["digraph history {", "  node [fontname=Helvetica, fontsize=10];"]
    if title is not None:
        lines.append(f"  label={_quote(title)};")

    def declare(name, shape, label, t):
        filled = ", style=filled, fillcolor=lightblue" if t in watched else ""
        bold = ", penwidth=2.5" if t is target else ""
        lines.append(f"  {name} [shape={shape}, label={_quote(label)}{filled}{bold}];")

    def leaf(a):
        name = leaves.get(a)
        if name is None:
            name = leaves[a] = f"leaf{len(leaves)}"
            what = f"Variable {a.name!r}" if type(a) is Variable else (
                "constant" if a._node is None else "tensor of another tape")
            declare(name, "ellipse", f"{what}\n{_spec(a)}", a)
        return name

    numbers = 0
    for t in order:
        node = t._node
        declare(ops[t], "box", f"{node.prim.name}\n{_spec(t)}", t)
        for index, a in enumerate(node.inputs):
            if type(a) is Tensor and a in ops:
                start = ops[a]
            elif type(a) is Tensor or type(a) is Variable:
                start = leaf(a)
            else:
                start = f"number{numbers}"
                numbers += 1
                lines.append(f"  {start} [shape=plaintext, label={_quote(repr(a))}];")
            numbered = f" [label={index}]" if len(node.inputs) > 1 else ""
            lines.append(f"  {start} -> {ops[t]}{numbered};")
    if not order:
        leaf(target)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _spec(t):
    return f"{t.shape} {t.dtype}"


def _quote(text):
    """A DOT string literal (a label, a title)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _write(dot, path):
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    if suffix in ("dot", "gv"):
        with open(path, "w") as file:
            file.write(dot)
        return
    if not suffix:
        raise ValueError(f"to_dot: path {path!r} has no suffix to name the image format; use .png, .svg, .pdf, "
                         f"or .dot for the DOT text")
    try:
        import graphviz
    except ImportError:
        raise ImportError(f"to_dot: rendering {path!r} needs the graphviz Python package and Graphviz's dot "
                          f"program: pip install graphviz (or gpugrad[graphviz]) and install Graphviz; a path "
                          f"ending in .dot writes the DOT text without them") from None
    image = graphviz.Source(dot).pipe(format=suffix)
    with open(path, "wb") as file:
        file.write(image)
