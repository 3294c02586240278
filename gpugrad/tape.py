"""The recorded history's backward pass, GradientTape, gradients and custom gradients.

Values are touched only through Tensor attributes and gg ops: no numpy or cupy here.
The history lives in the tensors (each recorded result holds its Node), so a tape keeps
nothing alive but the tensors it was asked to watch.
"""
import enum
import functools
import inspect
import itertools
import math

from . import ops as _ops
from . import primitives as _prims
from . import structure as _structure
from .dispatch import _record
from .recording import THREAD as _THREAD
from .tensor import Tensor, Variable, constant

_tape_ids = itertools.count(1)
_TENSOR_TYPES = frozenset((Tensor, Variable))


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

def _tensors(structure, what):
    """(leaves, treedef) of a Tensor, a Variable or a nested list/tuple/dict of them."""
    if type(structure) is Tensor or type(structure) is Variable:
        return [structure], _structure.LEAF
    leaves, treedef = _structure.flatten(structure)
    if not _TENSOR_TYPES.issuperset(map(type, leaves)):
        bad = next(leaf for leaf in leaves if type(leaf) not in _TENSOR_TYPES)
        raise TypeError(f"{what} must be Tensors or Variables (or nested lists, tuples, dicts of them), "
                        f"got {type(bad).__name__}")
    return leaves, treedef


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


def _seeds(targets, target_def, weights, what):
    """One seed cotangent per target: ones, or the weights given in the targets' structure."""
    if weights is None:
        return [_prims.ones_like(t) if t._data.dtype.kind in "fc" else None for t in targets]
    try:
        flat_weights = _structure.flatten_up_to(target_def, weights)
    except ValueError as e:
        raise ValueError(f"{what} must match the structure of the targets: {e}") from None
    seeds = []
    for t, w in zip(targets, flat_weights):
        if type(w) is not Tensor and type(w) is not Variable:
            w = constant(w, dtype=t.dtype, device=t._device)
        if w.shape != t.shape:
            raise ValueError(f"{what}: a weight of shape {w.shape} for a target of shape {t.shape}")
        seeds.append(w)
    return seeds


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
        for t in _tensors(tensor, "tape.watch arguments")[0]:
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
        targets, target_def = _tensors(target, "gradient targets")
        flat_sources, source_def = _tensors(sources, "gradient sources")
        _check_real(flat_sources, "tape.gradient")
        self._consume()
        try:
            seeds = _seeds(targets, target_def, output_gradients, "output_gradients")
            grads = self._gradient(targets, seeds, flat_sources)
            return _structure.unflatten(source_def, _fill_unconnected(grads, flat_sources, mode))
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

    def jacobian(self, target, sources, unconnected_gradients="none"):
        """The full Jacobian: for each source, a tensor of shape target.shape + source.shape."""
        mode = _unconnected_mode(unconnected_gradients)
        self._consume()
        try:
            target = _as_target(target)
            flat_sources, source_def = _tensors(sources, "jacobian sources")
            _check_real(flat_sources, "tape.jacobian")
            rows = [self._gradient([target], [seed], flat_sources) for seed in _one_hots(target, target.shape)]
            jacobians = [_stack_rows([r[k] for r in rows], target.shape, s) for k, s in enumerate(flat_sources)]
            return _structure.unflatten(source_def, _fill_unconnected(jacobians, flat_sources, mode, target.shape))
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

    Called with no tape recording in this thread on `ys` that no tape recorded (and that are
    not among `xs`), there is no history to differentiate: it raises RuntimeError (where it
    once returned None for every x), as tf.gradients does outside a graph.
    """
    mode = _unconnected_mode(unconnected_gradients)
    targets, target_def = _tensors(ys, "gradients ys")
    sources = _check_real(_tensors(xs, "gradients xs")[0], "gg.gradients")
    if not _THREAD.state.tapes and all(type(t) is not Tensor or t._node is None for t in targets) and (
            not {id(t) for t in targets}.intersection(map(id, sources))):
        raise RuntimeError(
            "gg.gradients: no GradientTape recorded how ys were computed, so there is nothing to "
            "differentiate (every gradient would be None). Compute ys inside `with gg.GradientTape() as "
            "tape:` and call tape.gradient(ys, xs) (or gg.gradients(ys, xs) on those recorded ys)")
    stops = frozenset(_tensors(stop_gradients, "stop_gradients")[0]) if stop_gradients else frozenset()
    seeds = _seeds(targets, target_def, grad_ys, "grad_ys")
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

