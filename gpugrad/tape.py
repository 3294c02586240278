"""Primitives, the recorded history, GradientTape, gradients and custom gradients.

Values are touched only through Tensor attributes and gg ops: no numpy or cupy here.
The history lives in the tensors (each recorded result holds its Node), so a tape keeps
nothing alive but the tensors it was asked to watch.
"""
import enum
import functools
import inspect
import itertools
import math

from . import backend as _backend
from .recording import THREAD as _THREAD, TracedNumber
from .tensor import Tensor, Variable, constant

REGISTRY = {}
_tape_ids = itertools.count(1)
# Set by gg.debugging.enable_check_numerics: a function (op, inputs, output array) called
# after every primitive's forward, which raises on NaN or infinity; None skips the check.
check_outputs = None


KINDS = ("elementwise", "reduction", "shape", "contraction", "update", "opaque")


def primitive(forward=None, *, name=None, differentiable=True, linear=False, kind="opaque"):
    """Register a primitive op: the one entry point for built-in ops and user ops alike.

    Usage::

        @gg.primitive
        def cube(x):                      # forward on raw arrays (numpy or cupy)
            return x * x * x

        @cube.defvjp
        def cube_vjp(g, out, x):          # VJP on Tensors, with gg ops
            return (3 * g * x * x,)

    `op.cuda(fast)` adds a CUDA fast path: `fast(*arrays, **params)` runs instead of the
    forward when the first input is a CuPy array, and returns NotImplemented to leave a
    case (a dtype, a layout) to the forward, which stays the reference it must match.

    The op takes its inputs positionally (Tensors, Variables, Python scalars, or values
    `gg.constant` accepts) and static parameters (axis, shape...) as keyword arguments,
    passed unchanged to the forward and the VJP. `op.defvjp(vjp)` sets the VJP:
    `vjp(g, out, *inputs, **params)` returns one gradient per input (a Tensor of the
    input's shape or one that broadcasts to it, or None), computed with gg ops so that tapes
    recording the backward pass get higher derivatives.

    Args:
        name: registry name, defaults to the function's name; a duplicate name is an error.
        differentiable: False for ops whose result never carries a gradient (comparisons).
        linear: True when the VJP does not read the inputs' values (only their shapes), so
            assigning an input Variable between the forward and the gradient is harmless.
        kind: what a gg.function trace says the op is (see `f.trace_text()`): "elementwise"
            (with broadcasting), "reduction", "shape" (views, reshapes, joins), "contraction"
            (matmul), "update" (in place), or "opaque" (the default: anything else).
    """
    if kind not in KINDS:
        raise ValueError(f"primitive kind must be one of {', '.join(KINDS)}, got {kind!r}")
    def register(function):
        key = name or function.__name__
        if key in REGISTRY:
            raise ValueError(f"a primitive named {key!r} is already registered")
        op = _make_op(function, key, differentiable, linear)
        op.kind = kind
        REGISTRY[key] = op
        return op

    return register if forward is None else register(forward)


def _make_op(forward, name, differentiable, linear):
    """The callable of a primitive: a plain function, so that it calls cheaply and binds as
    a Tensor operator like a method, with its definition as attributes (name, forward, vjp,
    differentiable, linear, defvjp), as functools.singledispatch does."""

    def op(*args, **params):
        # Inline fast paths for one or two inputs (Tensors, Variables, weak Python scalars on
        # one side); every other call, and every error, goes through _apply.
        nargs = len(args)
        if nargs == 2:
            x, y = args
            kx, ky = type(x), type(y)
            if kx is Tensor or kx is Variable:
                device = x._device
                if ky is Tensor or ky is Variable:
                    if y._device != device:
                        return _apply(op, args, params)
                    dy = y._data
                elif ky is float or ky is int:
                    dy = y
                else:
                    return _apply(op, args, params)
                dx = x._data
            elif (kx is float or kx is int) and (ky is Tensor or ky is Variable):
                dx, dy, device = x, y._data, y._device
            else:
                return _apply(op, args, params)
            try:
                out = forward(dx, dy, **params) if params else forward(dx, dy)
            except (ValueError, TypeError, IndexError, OverflowError) as error:
                _reraise(op, args, error)
            reads_variable = kx is Variable or ky is Variable
        elif nargs == 1 and (type(args[0]) is Tensor or type(args[0]) is Variable):
            x = args[0]
            device = x._device
            dx = x._data
            try:
                out = forward(dx, **params) if params else forward(dx)
            except (ValueError, TypeError, IndexError, OverflowError) as error:
                _reraise(op, args, error)
            reads_variable, dy = type(x) is Variable, None
        else:
            return _apply(op, args, params)
        try:
            kind = out.dtype.kind
        except AttributeError:
            _not_an_array(op, out)
        if reads_variable and (out.base is not None or out is dx or out is dy):
            out = out.copy()  # a Variable's buffer changes in place; a Tensor must not alias it
        if check_outputs is not None:
            check_outputs(op, args, out)
        result = Tensor(out, device)
        state = _THREAD.state
        if state.tapes and differentiable and kind in "fc":
            _record(op, args, params, result)
        if state.capture is not None:
            state.capture.record(op, args, params, out)
        return result

    def defvjp(vjp):
        if not differentiable:
            raise TypeError(f"primitive {name!r} was declared differentiable=False")
        op.vjp = vjp
        return vjp  # so that it works as a decorator

    def cuda(fast):
        nonlocal forward  # the op calls whatever `forward` holds now
        forward = op.forward = _backend.with_cuda_path(forward, fast)
        return fast  # so that it works as a decorator

    functools.update_wrapper(op, forward)
    op.name, op.forward, op.vjp = name, forward, None
    op.differentiable, op.linear, op.defvjp, op.cuda = differentiable, linear, defvjp, cuda
    return op


class Node:
    """One recorded op application: what the backward pass needs, nothing device-specific.
    `seq` grows with every record, so sorting by it puts inputs before their consumers."""

    __slots__ = ("prim", "inputs", "params", "tapes", "versions", "seq")

    def __init__(self, prim, inputs, params, tapes, versions):
        self.prim = prim
        self.inputs = inputs
        self.params = params
        self.tapes = tapes
        self.versions = versions
        self.seq = next(_node_seq)


_node_seq = itertools.count()


def _shapes(args):
    return ", ".join(str(a.shape) if type(a) is Tensor or type(a) is Variable else repr(a) for a in args)


def _reraise(prim, args, error):
    kind = ValueError if isinstance(error, ValueError) else type(error)
    hint = ""
    if isinstance(error, OverflowError):
        hint = "; cast the tensor to a wider dtype first (gg.cast(x, 'int64') or 'float64')"
    raise kind(f"{prim.name}: {error} (input shapes: {_shapes(args)}){hint}") from None


def _not_an_array(prim, out):
    raise TypeError(f"the forward of primitive {prim.name!r} returned {type(out).__name__}, not an array; a "
                    f"forward must return an array of its inputs' module (xp_of(x).asarray(value) for a "
                    f"number)")


def _apply(prim, args, params):
    """The general path of a primitive call: any number of inputs, conversion of lists,
    arrays and lone Python scalars to tensors, device checks."""
    device = None
    convert = False
    for a in args:
        kind = type(a)
        if kind is Tensor or kind is Variable:
            if device is None:
                device = a._device
            elif a._device != device:
                raise ValueError(f"{prim.name}: inputs are on different devices, {device} and {a._device}; "
                                 f"move one with .to(...) first")
        elif kind is not float and kind is not int and kind is not bool and kind is not TracedNumber:
            convert = True
    if convert or device is None:
        args = tuple(a if type(a) is Tensor or type(a) is Variable
                     or (device is not None and type(a) in (float, int, bool, TracedNumber))
                     else _convert(prim, i, a, device) for i, a in enumerate(args))
        if device is None:
            device = args[0]._device if args else None
    # A gg.function capture's number argument goes in as the weak Python number it stands for.
    data = [a._data if type(a) is Tensor or type(a) is Variable else a.value if type(a) is TracedNumber else a
            for a in args]
    try:
        out = prim.forward(*data, **params)
    except (ValueError, TypeError, IndexError, OverflowError) as error:
        _reraise(prim, args, error)
    try:
        kind = out.dtype.kind
    except AttributeError:
        _not_an_array(prim, out)
    if any(type(a) is Variable for a in args) and (out.base is not None or any(out is d for d in data)):
        out = out.copy()  # a Variable's buffer changes in place; a Tensor must not alias it
    if check_outputs is not None:
        check_outputs(prim, args, out)
    result = Tensor(out, device)
    state = _THREAD.state
    if state.tapes and prim.differentiable and kind in "fc":
        _record(prim, args, params, result)
    if state.capture is not None:
        state.capture.record(prim, args, params, out)
    return result


def _convert(prim, index, value, device):
    """`value`, input `index` of `prim`, as a constant Tensor, or an error naming both."""
    if value is None:
        raise TypeError(f"{prim.name}: input {index} is None; expected a Tensor, Variable, Python number or "
                        f"array") from None
    try:
        return constant(value, device=device)
    except (ValueError, TypeError, OverflowError) as error:
        raise type(error)(f"{prim.name}: input {index}: {error}") from None


def _record(prim, inputs, params, result):
    tapes = ()
    has_variable = False
    for tape in _THREAD.state.tapes:
        tape_id = tape._id
        watched = tape._watched
        hit = False
        for a in inputs:
            kind = type(a)
            if kind is Tensor:
                if not hit:
                    node = a._node
                    hit = (node is not None and tape_id in node.tapes) or a in watched
            elif kind is Variable:
                has_variable = True
                if a in watched:
                    hit = True
                elif tape._watch_accessed and a.trainable:
                    watched[a] = None
                    hit = True
        if hit:
            tapes += (tape_id,)
    if tapes:
        result._node = Node(prim, inputs, params, tapes, None if prim.linear or not has_variable else tuple(
            (a, a._version) for a in inputs if type(a) is Variable))


# ---------------------------------------------------------------------------------------
# The backward pass

_UNBROADCAST_PLANS = {}


def _unbroadcast(g, x, prim, index):
    """Sum a gradient (for input `index` of `prim`) over the axes broadcasting added, and
    cast it to x's dtype."""
    if type(g) is not Tensor:
        g = constant(g, dtype=x.dtype, device=x._device)
    gshape, xshape = g._data.shape, x._data.shape
    if gshape != xshape:
        plan = _UNBROADCAST_PLANS.get((gshape, xshape))
        if plan is None:
            plan = _reduction_plan(gshape, xshape)
            if plan is None:
                raise ValueError(f"{_vjp_name(prim)} returned a gradient of shape {gshape} for input {index}, of "
                                 f"shape {xshape}; each gradient must have its input's shape or broadcast to it")
            _UNBROADCAST_PLANS[(gshape, xshape)] = plan
        if plan:
            g = _prims.reduce_sum(g, axis=plan, keepdims=True)
        if g._data.shape != xshape:
            g = _prims.reshape(g, shape=xshape)
    if g._data.dtype != x._data.dtype:
        g = _prims.cast(g, dtype=x._data.dtype)
    return g


def _reduction_plan(gshape, xshape):
    """The axes to sum a gradient of `gshape` over to get `xshape`; None when it does not
    broadcast to it."""
    lead = len(gshape) - len(xshape)
    if lead < 0 or any(s != 1 and s != gs for s, gs in zip(xshape, gshape[lead:])):
        return None
    return tuple(range(lead)) + tuple(lead + i for i, s in enumerate(xshape) if s == 1 and gshape[lead + i] != 1)


def _vjp_name(prim):
    if type(prim) is _CustomOp:
        return f"the grad_fn of custom_gradient {prim.function_name!r}"
    return f"the VJP of primitive {prim.name!r}"


def _bad_vjp_result(prim, grads, count):
    if type(grads) is not tuple and type(grads) is not list:
        raise TypeError(f"{_vjp_name(prim)} returned {type(grads).__name__}; it must return a tuple with one "
                        f"gradient (or None) per input, {count} here, e.g. `return (g * 2,)`")
    raise ValueError(f"{_vjp_name(prim)} returned {len(grads)} gradients for {count} inputs; it must return one "
                     f"gradient (or None) per input")


# Tensors and Variables hash by identity, so the walk keys its dicts and sets by the objects.

def _history(roots, tape_id, sources, stops, prune):
    """Recorded tensors reachable from `roots`, in topological order (inputs first), and the
    set of those whose gradient is needed. Follows nodes recorded by `tape_id` (any tape
    when None); tensors in `stops` count as leaves. With `prune`, only tensors that lead to
    a source are kept; without, the caller knows that every recorded tensor does."""
    seen = set(roots)
    stack = list(roots)
    found = []  # (seq, tensor): seq is unique, so sorting never compares tensors
    while stack:
        t = stack.pop()
        found.append((t._node.seq, t))
        for a in t._node.inputs:
            if type(a) is Tensor and a not in seen:
                node = a._node
                if node is not None and (tape_id is None or tape_id in node.tapes) and a not in stops:
                    seen.add(a)
                    stack.append(a)
    found.sort()
    if not prune:
        return [t for _, t in found], seen
    relevant = set()
    for _, t in found:
        if t in sources:
            relevant.add(t)
            continue
        for a in t._node.inputs:
            kind = type(a)
            if (kind is Tensor or kind is Variable) and (a in sources or a in relevant):
                relevant.add(t)
                break
    return [t for _, t in found if t in relevant], relevant


def constant_needed(t):
    """Whether the backward pass in progress needs the gradient of `t`, a Tensor with no
    recorded history (a constant): only if it is one of the pass's sources. VJPs use this to
    skip work nobody asked for, such as the gradient of a network's input batch."""
    sources = _THREAD.state.pass_sources
    return sources is None or t in sources


def _backward(targets, seeds, sources, tape_id, stops=frozenset(), prune=True):
    """{source: gradient of sum(seed * target)} for the sources (a set) connected to a target.
    `prune=False` skips the search for history that leads to no source, when the caller
    knows there is none."""
    state = _THREAD.state
    outer_sources, state.pass_sources = state.pass_sources, sources
    outer_node = state.differentiating
    try:
        return _accumulate(targets, seeds, sources, tape_id, stops, prune)
    finally:
        state.pass_sources = outer_sources
        state.differentiating = outer_node


def _accumulate(targets, seeds, sources, tape_id, stops, prune):
    state = _THREAD.state
    grads = {}
    for t, seed in zip(targets, seeds):
        if seed is not None:
            grads[t] = seed if t not in grads else _prims.add(grads[t], seed)
    roots = [t for t in targets if type(t) is Tensor and t._node is not None and t not in stops
             and (tape_id is None or tape_id in t._node.tapes)]
    order, needed = _history(roots, tape_id, sources, stops, prune)
    for t in reversed(order):
        g = grads.get(t) if t in sources else grads.pop(t, None)
        if g is None:
            continue
        node = t._node
        vjp = node.prim.vjp
        if vjp is None:
            raise LookupError(f"primitive {node.prim.name!r} has no VJP registered (use {node.prim.name}.defvjp)")
        if node.versions is not None:
            for variable, version in node.versions:
                if variable._version != version:
                    raise RuntimeError(
                        f"Variable '{variable.name}' was assigned after {node.prim.name} read it, and its "
                        f"gradient needs the old value; compute gradients before assigning")
        inputs = node.inputs
        state.differentiating = node
        input_grads = vjp(g, t, *inputs, **node.params) if node.params else vjp(g, t, *inputs)
        if (type(input_grads) is not tuple and type(input_grads) is not list) or len(input_grads) != len(inputs):
            _bad_vjp_result(node.prim, input_grads, len(inputs))
        for index, (x, gx) in enumerate(zip(inputs, input_grads)):
            if gx is None:
                continue
            kind = type(x)
            # Sources and recorded tensors are all of float dtype: nothing else is followed.
            if (kind is not Tensor and kind is not Variable) or (x not in sources and x not in needed):
                continue
            x_data = x._data
            if type(gx) is not Tensor or gx._data.shape != x_data.shape or gx._data.dtype is not x_data.dtype:
                gx = _unbroadcast(gx, x, node.prim, index)
            previous = grads.get(x)
            grads[x] = gx if previous is None else _prims.add(previous, gx)
    return grads


# ---------------------------------------------------------------------------------------
# Structures of tensors

def _flatten(structure, what):
    if type(structure) is Tensor or type(structure) is Variable:
        return [structure]
    if isinstance(structure, (list, tuple)):
        leaves = []
        for item in structure:
            if type(item) is Tensor or type(item) is Variable:
                leaves.append(item)
            else:
                leaves.extend(_flatten(item, what))
        return leaves
    if isinstance(structure, dict):
        return [leaf for key in structure for leaf in _flatten(structure[key], what)]
    raise TypeError(f"{what} must be Tensors or Variables (or nested lists, tuples, dicts of them), "
                    f"got {type(structure).__name__}")


def _unflatten(structure, leaves):
    if type(structure) is Tensor or type(structure) is Variable:
        return next(leaves)
    if isinstance(structure, (list, tuple)):
        items = [next(leaves) if type(item) is Tensor or type(item) is Variable else _unflatten(item, leaves)
                 for item in structure]
        return type(structure)(*items) if hasattr(structure, "_fields") else type(structure)(items)
    return {key: _unflatten(structure[key], leaves) for key in structure}


def _check_real(sources, what):
    """`sources`, once none is complex: gpugrad does not differentiate with respect to
    complex values (TensorFlow returns the conjugate of the derivative; PyTorch and JAX use
    other conventions), so such a request is an error rather than a silent convention."""
    for s in sources:
        if s._data.dtype.kind == "c":
            name = f"Variable {s.name!r}" if type(s) is Variable else "a Tensor"
            raise TypeError(f"{what}: source {name} is complex ({s.dtype}); gpugrad differentiates only with "
                            f"respect to real (float) values. Keep the real and imaginary parts as two float "
                            f"tensors and differentiate with respect to each")
    return sources


class UnconnectedGradients(str, enum.Enum):
    """What a gradient call returns for a source the target does not depend on."""

    NONE = "none"
    ZERO = "zero"


def _unconnected_mode(value):
    if value is UnconnectedGradients.NONE or value == "none":
        return UnconnectedGradients.NONE
    try:
        return UnconnectedGradients(value)
    except ValueError:
        raise ValueError(f"unconnected_gradients must be 'none' or 'zero', got {value!r}") from None


def _fill_unconnected(gradients, sources, mode, prefix=()):
    """Zeros of shape prefix + source.shape in place of None, when mode asks for them."""
    if mode is UnconnectedGradients.NONE:
        return gradients
    return [_ops.zeros(tuple(prefix) + s.shape, dtype=s.dtype, device=s.device) if g is None else g
            for g, s in zip(gradients, sources)]


def _seeds(targets, target_structure, weights, what):
    """One seed cotangent per target: ones, or the weights given in the targets' structure."""
    if weights is None:
        return [_prims.ones_like(t) if t._data.dtype.kind in "fc" else None for t in targets]
    seeds = []
    for t, w in zip(targets, _flatten_like(target_structure, weights, what)):
        if type(w) is not Tensor and type(w) is not Variable:
            w = constant(w, dtype=t.dtype, device=t._device)
        if w.shape != t.shape:
            raise ValueError(f"{what}: a weight of shape {w.shape} for a target of shape {t.shape}")
        seeds.append(w)
    return seeds


def _flatten_like(structure, values, what):
    if type(structure) is Tensor or type(structure) is Variable:
        return [values]
    if isinstance(structure, dict):
        return [leaf for key in structure for leaf in _flatten_like(structure[key], values[key], what)]
    if not isinstance(values, (list, tuple)) or len(values) != len(structure):
        raise ValueError(f"{what} must match the structure of the targets ({len(structure)} entries), "
                         f"got {values!r}")
    return [leaf for s, v in zip(structure, values) for leaf in _flatten_like(s, v, what)]


# ---------------------------------------------------------------------------------------
# GradientTape

class GradientTape:
    """Records ops for automatic differentiation, with TensorFlow 2 semantics.

    An op is recorded when one of its inputs is watched by this tape or was produced by an
    op this tape recorded. Trainable Variables read inside the context are watched
    automatically unless `watch_accessed_variables=False`.
    """

    def __init__(self, persistent=False, watch_accessed_variables=True):
        self._persistent = persistent
        self._watch_accessed = watch_accessed_variables
        self._id = next(_tape_ids)
        self._watched = {}
        self._recording = False
        self._in_context = False
        self._paused = False
        self._used = False

    def __enter__(self):
        if self._in_context:
            raise RuntimeError("this GradientTape is already in use as a context manager")
        self._in_context = True
        self._start()
        return self

    def __exit__(self, *exc_info):
        self._in_context = False
        self._stop()
        return False

    def _start(self):
        if not self._recording:
            self._stack = _THREAD.state.tapes  # this thread's: a tape stops where it started
            self._stack.append(self)
            self._recording = True

    def _stop(self):
        if self._recording:
            self._stack.remove(self)
            self._recording = False

    def watch(self, tensor):
        """Watch a Tensor, a Variable, or a nested list/tuple of them."""
        for t in _flatten(tensor, "tape.watch arguments"):
            self._watched[t] = None

    def watched_variables(self):
        """The Variables this tape watches, in the order they were created (as TensorFlow)."""
        return tuple(sorted((v for v in self._watched if type(v) is Variable), key=lambda v: v._serial))

    def stop_recording(self):
        """A context in which this tape records nothing."""
        return _Pause(self)

    def reset(self):
        """Forget everything recorded and watched so far, as if the context were exited and
        entered again: inside it (and outside stop_recording) the tape records again."""
        self._id = next(_tape_ids)
        self._watched = {}
        self._used = False
        if self._in_context and not self._paused:
            self._start()

    def _consume(self):
        if self._used:
            raise RuntimeError("A non-persistent GradientTape can only be used to compute one set of "
                               "gradients (or jacobians)")
        if not self._persistent:
            self._used = True
            self._stop()

    def _release(self):
        if not self._persistent:
            self._watched = {}
            self._id = next(_tape_ids)

    def gradient(self, target, sources, output_gradients=None, unconnected_gradients="none"):
        """d target / d sources, shaped like `sources` (a Tensor, Variable or nested list/tuple/dict).

        Several targets (a nested list) are summed; a non-scalar target counts as the sum of
        its elements unless `output_gradients` gives weights. Unwatched, unconnected and
        integer sources get None, or zeros with `unconnected_gradients="zero"`.
        """
        mode = _unconnected_mode(unconnected_gradients)
        targets = _flatten(target, "gradient targets")
        flat_sources = _check_real(_flatten(sources, "gradient sources"), "tape.gradient")
        self._consume()
        try:
            seeds = _seeds(targets, target, output_gradients, "output_gradients")
            grads = self._gradient(targets, seeds, flat_sources)
            return _unflatten(sources, iter(_fill_unconnected(grads, flat_sources, mode)))
        finally:
            self._release()

    def _gradient(self, targets, seeds, sources):
        tape_id, watched = self._id, self._watched
        tracked = {s for s in sources if s._data.dtype.kind in "fc" and (
            s in watched or (type(s) is Tensor and s._node is not None and tape_id in s._node.tapes))}
        # Everything this tape recorded descends from what it watches: when all of that is
        # asked for, every recorded tensor leads to a source and nothing needs pruning.
        prune = any(w not in tracked for w in watched)
        grads = _backward(targets, seeds, tracked, tape_id, prune=prune)
        return [grads.get(s) if s in tracked else None for s in sources]

    def explain(self, target, source):
        """Why self.gradient(target, source) is (or would be) None: gg.explain_gradient."""
        from .debugging import explain_gradient  # debugging imports the ops, which import this module
        return explain_gradient(self, target, source)

    def jacobian(self, target, sources, unconnected_gradients="none"):
        """The full Jacobian: for each source, a tensor of shape target.shape + source.shape."""
        mode = _unconnected_mode(unconnected_gradients)
        self._consume()
        try:
            target = _as_target(target)
            flat_sources = _check_real(_flatten(sources, "jacobian sources"), "tape.jacobian")
            rows = [self._gradient([target], [seed], flat_sources) for seed in _one_hots(target, target.shape)]
            jacobians = [_stack_rows([r[k] for r in rows], target.shape, s) for k, s in enumerate(flat_sources)]
            return _unflatten(sources, iter(_fill_unconnected(jacobians, flat_sources, mode, target.shape)))
        finally:
            self._release()

    def batch_jacobian(self, target, source, unconnected_gradients="none"):
        """Per-example Jacobians: target (B, *T) and source (B, *S) give (B, *T, *S).

        Assumes example b of the target depends only on example b of the source, as
        TensorFlow does."""
        mode = _unconnected_mode(unconnected_gradients)
        self._consume()
        try:
            target = _as_target(target)
            if target.ndim == 0 or source.ndim == 0 or target.shape[0] != source.shape[0]:
                raise ValueError(f"batch_jacobian needs target and source with the same first (batch) axis, "
                                 f"got shapes {target.shape} and {source.shape}")
            rows = [self._gradient([target], [_ops.broadcast_to(seed, shape=target.shape)], [source])[0]
                    for seed in _one_hots(target, target.shape[1:])]
            shape = target.shape + source.shape[1:]
            if not rows or all(r is None for r in rows):
                if rows and mode is UnconnectedGradients.NONE:
                    return None
                return _ops.zeros(shape, dtype=source.dtype, device=source.device)
            rows = [_ops.zeros_like(source) if r is None else r for r in rows]
            return _ops.reshape(_ops.stack(rows, axis=1), shape=shape)
        finally:
            self._release()


def _as_target(target):
    if type(target) is not Tensor and type(target) is not Variable:
        raise TypeError(f"a jacobian target must be a Tensor or Variable, got {type(target).__name__}")
    return target


def _one_hots(target, shape):
    """The seeds e_i of shape `shape`, one per element, in row-major order."""
    count = math.prod(shape)
    eye = _ops.eye(count, dtype=target.dtype, device=target.device)
    return [_ops.reshape(eye[i], shape=tuple(shape)) for i in range(count)]


def _stack_rows(rows, target_shape, source):
    if not rows or all(r is None for r in rows):
        return None if rows else _ops.zeros(tuple(target_shape) + source.shape, dtype=source.dtype,
                                            device=source.device)
    rows = [_ops.zeros_like(source) if r is None else r for r in rows]
    return _ops.reshape(_ops.stack(rows, axis=0), shape=tuple(target_shape) + source.shape)


class _Pause:
    def __init__(self, tape):
        self._tape = tape
        self._was_recording = False

    def __enter__(self):
        self._was_recording = self._tape._recording
        self._tape._paused = True
        self._tape._stop()
        return self._tape

    def __exit__(self, *exc_info):
        self._tape._paused = False
        if self._was_recording:
            self._tape._start()
        return False


# ---------------------------------------------------------------------------------------
# Functional forms

def gradients(ys, xs, grad_ys=None, stop_gradients=None, unconnected_gradients="none"):
    """The sum over `ys` of d y / d x for each x in `xs`, as a list of len(xs).

    Graph semantics, as tf.gradients: `ys` must have been computed while a tape recorded
    them (the tape may have closed and is not consumed); each x may be a watched source or
    any tensor on that recorded history, constants used as op inputs included. Tensors in
    `stop_gradients` are held constant.
    """
    mode = _unconnected_mode(unconnected_gradients)
    targets = _flatten(ys, "gradients ys")
    sources = _check_real(_flatten(xs, "gradients xs"), "gg.gradients")
    stops = frozenset(_flatten(stop_gradients, "stop_gradients")) if stop_gradients else frozenset()
    seeds = _seeds(targets, ys, grad_ys, "grad_ys")
    grads = _backward(targets, seeds, set(sources), None, stops)
    found = [grads.get(s) if s._data.dtype.kind in "fc" else None for s in sources]
    return _fill_unconnected(found, sources, mode)


def _describe(value):
    if type(value) is tuple:
        return f"a tuple of {len(value)} ({', '.join(type(v).__name__ for v in value)})"
    return f"a {type(value).__name__}"


class _CustomOp:
    """The one-off op a @custom_gradient call records: its VJP is the user's grad_fn."""

    name = "custom_gradient"
    linear = False
    __slots__ = ("function_name", "grad_fn", "num_inputs", "variables")

    def __init__(self, function_name, grad_fn, num_inputs, variables):
        self.function_name = function_name
        self.grad_fn = grad_fn
        self.num_inputs = num_inputs
        self.variables = variables

    def vjp(self, g, out, *inputs):
        if self.variables:
            input_grads, variable_grads = self.grad_fn(g, variables=list(self.variables))
            return _as_tuple(input_grads, self.num_inputs, self.function_name) + _as_tuple(
                variable_grads, len(self.variables), self.function_name)
        return _as_tuple(self.grad_fn(g), self.num_inputs, self.function_name)


def _as_tuple(grads, count, function_name):
    if not isinstance(grads, (list, tuple)):
        grads = (grads,)
    if len(grads) != count:
        raise ValueError(f"the grad_fn of {function_name} returned {len(grads)} gradients for {count} inputs")
    return tuple(grads)


def custom_gradient(f):
    """Decorate `f(*tensors, **options) -> (y, grad_fn)` to give `y` the gradient `grad_fn` defines.

    Positional arguments are the differentiable inputs (values become constants); keyword
    arguments are passed to `f` unchanged and get no gradient.

    `grad_fn(upstream)` returns one gradient per tensor argument (None allowed). When `f`
    reads trainable Variables that are not among its arguments, `grad_fn(upstream,
    variables=[...])` must return `(input_grads, variable_grads)`. The ops inside `f` are
    not recorded; the gradients `grad_fn` builds from gg ops are, so they differentiate again.
    """
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        args = tuple(a if type(a) is Tensor or type(a) is Variable else constant(a) for a in args)
        collector = GradientTape(watch_accessed_variables=True)
        state = _THREAD.state
        outer, state.tapes = state.tapes, []
        collector._start()  # the only tape recording while f runs
        try:
            returned = f(*args, **kwargs)
        finally:
            state.tapes = outer
        if type(returned) is not tuple or len(returned) != 2 or not callable(returned[1]):
            raise TypeError(f"a @custom_gradient function must return (y, grad_fn), a pair of its result and the "
                            f"function of the upstream gradient; {f.__name__} returned "
                            f"{_describe(returned)}")
        y, grad_fn = returned
        if type(y) is not Tensor:
            y = constant(y)
        variables = tuple(v for v in collector.watched_variables() if not any(v is a for a in args))
        if variables and "variables" not in inspect.signature(grad_fn).parameters:
            raise TypeError(f"{f.__name__} reads the Variables {[v.name for v in variables]}, so its grad_fn "
                            f"must accept a `variables` keyword argument")
        result = Tensor(y._data, y._device)
        if _THREAD.state.tapes and y._data.dtype.kind in "fc":
            _record(_CustomOp(f.__name__, grad_fn, len(args), variables), args + variables, {}, result)
        return result

    return wrapper


from . import ops as _ops  # noqa: E402  (the backward pass is written with gg ops)
from . import primitives as _prims  # noqa: E402
