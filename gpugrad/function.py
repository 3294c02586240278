"""gg.function: run a step once eagerly while recording its raw array calls, then replay them.

Small models spend most of an eager step in Python (op dispatch, the tape's bookkeeping);
a replay makes only the array calls, in order, on the current values of the Variables.
No numpy or cupy here: the recorded calls are the primitives' own forwards.
"""
import functools
import threading
import warnings
import weakref

from . import dispatch as _dispatch
from . import graphs as _graphs
from . import lowering as _lowering
from . import passes as _passes
from . import program as _program
from . import structure as _structure
from .recording import THREAD as _THREAD, TracedNumber
from .tensor import Tensor, Variable, constant
from .tracing import SCALARS as _SCALARS, Trace

_LEAF = _structure.LEAF
_NUMBERS = (int, float, complex)  # runtime values of a replay; bool, str and None are static
_HOST_PASSES = (_passes.fold_constants, _passes.eliminate_dead_code)
MAX_PLANS = 32        # plans kept per function; the oldest goes first
RETRACE_WARNING = 8   # signatures captured by one function before it warns about retracing


def _plan(trace, result, compiled):
    """The replay function of a sealed trace: the recorded calls, then `result`'s structure
    rebuilt with a fresh Tensor wherever it held a computed one. On CUDA, with `compiled`,
    the calls are one CUDA graph (graphs.py) where the step allows it. The trace rides along
    as the function's `trace` attribute, for `Function.trace_text`, and the graph replay (or
    None) as `graph`, for `Function.explain`."""
    rebuild = _rebuilder(trace, result)
    constants = trace.constants()
    replay = _lowering.replay_steps(trace.steps, trace.arg_slots, trace.output_slots, constants)
    graph = None
    reason = _graphs.unsupported(trace) if compiled else "the compiler is off (gg.function(compile=False))"
    if reason is None:
        host = [step for step in trace.steps if step.kind == "host"]
        written = tuple({id(v): v for step in trace.steps if step.kind == "update" for v in step.fn.written}.values())
        program = _program.Program.from_trace(trace)  # the passes leave it as it is
        try:
            device, lowering = _graphs.fused_device_replay(program)
        except Exception as error:  # a generated kernel the compiler rejects: each step launches its own
            program = _graphs.capture_safe(program)
            device = _lowering.replay_steps([step for step in program.steps if step.kind != "host"],
                                            trace.arg_slots, trace.output_slots, constants)
            lowering = f"not fused: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
        replay = graph = _graphs.GraphReplay(_lowering.replay_steps(host, [], [], constants), device, replay, written)
    elif compiled and _lowering.on_host(trace.values):
        # On the CPU a BLAS product of a degenerate shape beats its elementwise rewrite, and
        # nothing fuses: only constant folding and dead-code elimination pay.
        program = _passes.default_pipeline(_program.Program.from_trace(trace), _HOST_PASSES)
        replay, memory = _lowering.lower(program)
        lowering = (f"planned replay on the CPU: {memory.describe()}; after constant folding and dead-code "
                    f"elimination {len(program.steps)} of the {len(trace.steps)} steps remain:\n"
                    + "\n".join(f"  {line}" for line in program.text().splitlines()))
    else:
        lowering = f"plain replay: {reason}"
    trace.seal()
    trace.lowering = lowering
    if lowering.startswith("plain replay"):
        def plan(inputs):  # every call has intermediates of its own: threads may replay at once
            return rebuild(replay(*inputs))
    else:
        lock = threading.Lock()

        def plan(inputs):  # the planned buffers, or the graph's, are the plan's own: one call at a time
            with lock:
                return rebuild(replay(*inputs))

    plan.trace, plan.graph = trace, graph
    return plan


def _rebuilder(trace, result):
    """A function of the replayed output values that builds a result shaped like `result`
    (tuples, lists, namedtuples, dicts); it holds none of the capture's computed values."""
    leaves, treedef = _structure.flatten(result)
    parts = [_leaf_rebuilder(trace, leaf) for leaf in leaves]
    return _structure.builder(treedef, parts)


def _leaf_rebuilder(trace, leaf):
    if type(leaf) is Tensor and trace.is_computed(leaf._data):
        index, device = len(trace.output_slots), leaf._device
        trace.output(leaf._data)
        return lambda outputs: Tensor(outputs[index], device)
    if type(leaf) is TracedNumber:  # an argument returned as it came: this call's number
        index = len(trace.output_slots)
        trace.output(leaf)
        return lambda outputs: outputs[index]
    return lambda outputs: leaf  # Variables, constants and Python values come back as they are


# ---------------------------------------------------------------------------------------
# Arguments: flattened as trees, keyed by structure, never by a container's identity

class _Same:
    """A signature entry for an object passed as itself (a Variable, Module, optimizer,
    callable): equal only to an entry for the same live object. It holds the object weakly
    where it can, so a cached plan never outlives it and a new object that Python puts at
    a freed one's address never matches; objects without weak references are held."""

    __slots__ = ("_ref", "_hash")

    def __init__(self, obj, on_death=None):
        try:
            self._ref = weakref.ref(obj, on_death)
        except TypeError:
            self._ref = lambda: obj
        self._hash = id(obj)

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        if type(other) is not _Same:
            return NotImplemented
        obj = self._ref()
        return obj is not None and obj is other._ref()


def _plain(value):
    """A captured call's result with every TracedNumber back to its number."""
    leaves, treedef = _structure.flatten(value)
    return _structure.unflatten(treedef, [leaf.value if type(leaf) is TracedNumber else leaf for leaf in leaves])


def _key_tree(value, key, inputs, on_death, wheres, where):
    """Append `value`'s signature to `key` (its treedef, then an entry per leaf) and its
    runtime inputs (Tensors, Python numbers) to `inputs`, and, unless `wheres` is None,
    their places (`where` and the path inside, as "argument 0[1]['w']") to `wheres`.
    Returns `value`, rebuilt with Tensors in place of arrays if it held any."""
    leaves, treedef = _structure.flatten(value)
    key.append(treedef)
    places = None if wheres is None else _structure.paths(treedef)
    converted = False
    for index, leaf in enumerate(leaves):
        kind = type(leaf)
        if kind is not Tensor and kind not in _NUMBERS:
            if kind in _SCALARS:
                key.append((kind, leaf))
                continue
            if kind is Variable or not hasattr(leaf, "__array__"):
                key.append(_Same(leaf, on_death))
                continue
            leaf = leaves[index] = constant(leaf)
            kind, converted = Tensor, True
        key.append((leaf._data.shape, leaf._data.dtype, leaf._device) if kind is Tensor else kind)
        inputs.append(leaf)
        if places is not None:
            wheres.append(where + "".join(f"[{k!r}]" for k in places[index]))
    return _structure.unflatten(treedef, leaves) if converted else value


def _substitute(value, substitutes):
    """`value` (as `_key_tree` returned it) with each runtime input replaced by the next
    of `substitutes`."""
    leaves, treedef = _structure.flatten(value)
    return _structure.unflatten(treedef, [next(substitutes) if type(leaf) is Tensor or type(leaf) in _NUMBERS
                                          else leaf for leaf in leaves])


class Function:
    """The callable gg.function returns; see gg.function."""

    def __init__(self, fn, static_argnums=(), static_argnames=(), compile=True):
        self._fn = fn
        self._compiled = bool(compile)
        self._static_argnums = frozenset(_as_tuple(static_argnums))
        self._static_argnames = frozenset(_as_tuple(static_argnames))
        self._plans = {}
        self._lock = threading.Lock()
        self._captures = 0
        self._warned = False
        self._latest = None   # the key of the newest plan
        this = weakref.ref(self)  # a dead argument's callback must not keep the function alive

        def on_death(reference):
            function = this()
            if function is not None:
                function._forget(reference)

        self._on_death = on_death
        functools.update_wrapper(self, fn)

    def __repr__(self):
        return f"<gg.function {getattr(self._fn, '__qualname__', self._fn)!r}: {len(self._plans)} plans>"

    def __call__(self, *args, **kwargs):
        state = _THREAD.state
        # A tape must see the ops, an outer capture records them, and numeric checks look
        # at every op's output: each runs the step eagerly.
        if state.tapes or state.capture is not None or _dispatch.check_outputs is not None:
            return self._fn(*args, **kwargs)
        key, args, kwargs, leaves = self._signature(args, kwargs)
        plan = self._plans.get(key)
        if plan is None:
            return self._capture(args, kwargs)
        if type(plan) is str:
            return self._fn(*args, **kwargs)
        return plan([leaf._data if type(leaf) is Tensor else leaf for leaf in leaves])

    def trace_text(self, *args, **kwargs):
        """The trace (the IR replays lower to) of the plan for these arguments' signature, or,
        with no arguments, of the newest plan, as text: one line per recorded step, with its
        primitive, kind, input and output slots and their dtypes and shapes. Nothing runs: the
        function must have been called with that signature first."""
        key = self._signature(args, kwargs)[0] if args or kwargs else self._latest
        plan = self._plans.get(key) if key is not None else None
        if plan is None:
            raise LookupError(f"gg.function({getattr(self._fn, '__name__', self._fn)!r}) has no plan for "
                              f"{'these arguments' if args or kwargs else 'any call yet'}: call it first")
        if type(plan) is str:
            raise LookupError(f"gg.function({getattr(self._fn, '__name__', self._fn)!r}) runs these calls "
                              f"eagerly, with no trace: {plan}")
        return plan.trace.text()

    def explain(self, *args, **kwargs):
        """What the plan for these arguments' signature (or, with none, the newest plan)
        became, as text: its trace, how many array calls and host steps one call makes, and
        how it runs: one CUDA graph launch per call, or the plain replay and why (on the
        CPU, with compile=False, or what kept the step from being a graph)."""
        text = self.trace_text(*args, **kwargs)
        key = self._signature(args, kwargs)[0] if args or kwargs else self._latest
        plan = self._plans[key]
        steps = plan.trace.steps
        host = sum(step.kind == "host" for step in steps)
        if plan.graph is not None:
            how = f"{plan.graph.status}\n{plan.trace.lowering}"
        else:
            how = plan.trace.lowering
        return (f"{text}\n{len(steps) - host} array calls and {host} host steps a call\n"
                f"lowering: {how}")

    def _signature(self, args, kwargs, on_death=None, wheres=None):
        """(key, args, kwargs, runtime inputs): the key holds the tree structure of each
        argument (lists, tuples, namedtuples, dicts), the shape, dtype and device of each
        Tensor, the type of each Python number, the value of static arguments and of bools,
        strings and None, and the identity of other objects. NumPy arrays in the arguments
        come back as Tensors. With `wheres` a list, the place of each runtime input (such
        as "argument 0[1]") is appended to it."""
        key, inputs = [], []
        new_args = list(args)
        for index, value in enumerate(args):
            if index in self._static_argnums:
                key.append(("static", _hashable(value, f"argument {index}")))
            elif type(value) is Tensor:  # the common case, as _key_tree would key it
                data = value._data
                key += (_LEAF, (data.shape, data.dtype, value._device))
                inputs.append(value)
                if wheres is not None:
                    wheres.append(f"argument {index}")
            else:
                new_args[index] = _key_tree(value, key, inputs, on_death, wheres, f"argument {index}")
        if kwargs:
            kwargs = dict(kwargs)
            for name in sorted(kwargs):
                value = kwargs[name]
                if name in self._static_argnames:
                    key.append((name, "static", _hashable(value, f"argument {name!r}")))
                else:
                    key.append(name)
                    kwargs[name] = _key_tree(value, key, inputs, on_death, wheres, f"argument {name!r}")
        return tuple(key), new_args, kwargs, inputs

    def _capture(self, args, kwargs):
        capture = Trace(getattr(self._fn, "__qualname__", repr(self._fn)))
        # Object entries of the stored key drop the plan when their object dies.
        wheres = []
        key, args, kwargs, leaves = self._signature(args, kwargs, self._on_death, wheres)

        # Each Tensor argument gets an array object of its own (a view), so that one array
        # passed twice, or also used as a constant inside, still has a slot per argument;
        # each Python number becomes a TracedNumber that the capture follows.
        substitutes = []
        for leaf, where in zip(leaves, wheres):
            if type(leaf) is Tensor:
                copy = Tensor(leaf._data.view(), leaf._device)
                capture.argument(copy._data, where)
                substitutes.append(copy)
            else:
                substitutes.append(capture.argument(TracedNumber(leaf, where, capture), where))
        new_args, new_kwargs = self._replace(args, kwargs, iter(substitutes))
        _THREAD.state.capture = capture
        try:
            result = self._fn(*new_args, **new_kwargs)
        finally:
            _THREAD.state.capture = None
        name = getattr(self._fn, "__name__", self._fn)
        with self._lock:
            while len(self._plans) >= MAX_PLANS:
                del self._plans[next(iter(self._plans))]
            self._plans[key] = _plan(capture, result, self._compiled) if capture.reason is None else capture.reason
            self._latest = key
            self._captures += 1
            retracing = self._captures >= RETRACE_WARNING and not self._warned
            self._warned = self._warned or retracing
        if capture.reason is not None:
            warnings.warn(f"gg.function({name!r}) runs eagerly on every call: {capture.reason} during capture",
                          RuntimeWarning, stacklevel=3)
        if retracing:
            warnings.warn(f"gg.function({name!r}) has captured {self._captures} signatures; each new one runs the "
                          f"step's Python again. Pass tensors of stable shapes, reuse the same objects (a new "
                          f"Module or list of Variables each call is a new signature), or declare arguments "
                          f"static; it keeps the newest {MAX_PLANS} plans", RuntimeWarning, stacklevel=3)
        return _plain(result)

    def _replace(self, args, kwargs, substitutes):
        """args and kwargs (as `_signature` returned them) with each runtime input replaced
        by the next of `substitutes`, in the order `_signature` listed them."""
        new_args = [value if index in self._static_argnums else _substitute(value, substitutes)
                    for index, value in enumerate(args)]
        new_kwargs = {}
        for name in sorted(kwargs):
            value = kwargs[name]
            new_kwargs[name] = value if name in self._static_argnames else _substitute(value, substitutes)
        return new_args, new_kwargs

    def _forget(self, reference):
        with self._lock:
            for key in [key for key in self._plans if any(type(k) is _Same and k._ref is reference for k in key)]:
                del self._plans[key]


def _as_tuple(value):
    return (value,) if isinstance(value, (int, str)) else tuple(value)


def _hashable(value, where):
    try:
        hash(value)
    except TypeError:
        raise TypeError(f"gg.function: the static {where} must be hashable (it keys the cached plans), got "
                        f"{type(value).__name__}") from None
    return value


def function(fn=None, *, static_argnums=(), static_argnames=(), compile=True):
    """Decorate a step function so that later calls replay the array calls of the first.

    Use as `@gg.function` or `@gg.function(static_argnums=..., static_argnames=...)`.

    On CUDA, a step whose arguments are all tensors is compiled into one CUDA graph: its
    first replay captures it, and each later call is one graph launch (see `explain()`
    for what a plan became, and why a step stayed a plain replay). `compile=False`, or
    the environment variable GPUGRAD_COMPILE=0, keeps the plain replay.

    The first call with a given signature runs `fn` eagerly and records every primitive
    call it makes, the backward passes of tapes inside it, Variable assignments and
    optimizer updates included. Later calls with the same signature redo only those array
    calls, on the new argument values and the current values of Variables, and return
    fresh Tensors; optimizer updates run in full each time (schedules, clipping and
    check_numerics stay live).

    The signature: arguments (positional and keyword) are flattened as trees of lists,
    tuples, namedtuples and dicts; their structure is part of the signature, never the
    identity of a container. Tensors (and NumPy arrays, made Tensors) anywhere inside are
    runtime inputs, keyed by shape, dtype and device. Python ints, floats and complex
    numbers are runtime inputs too, keyed by type only, as JAX traces scalars: passed to
    gg ops they are fed anew each call (with the weak typing of Python numbers); any other
    use inside the step (Python arithmetic, `if lr > 0`, `range(n)`) makes the function run
    eagerly on every call, with a warning, unless the argument is declared static. Static
    arguments, bools, strings and None are keyed by value. Any other object (Variables,
    Modules, optimizers) is keyed by identity and held weakly: a plan dies with it.

    At most MAX_PLANS (32) plans are kept per function, the oldest dropped first; after
    RETRACE_WARNING (8) captures the function warns that it is retracing, as tf.function
    does.

    As with tf.function, the Python code of `fn` runs once per signature: Python side
    effects and Python values computed inside are frozen, and so are objects it reaches
    through closures and globals. Where that would freeze a tensor value (float(t),
    t.numpy(), bool(t), printing a tensor, gg.random draws, copying a computed tensor into
    a constant) the function warns once and runs eagerly on every call instead. Calls made
    while a GradientTape is recording run eagerly, so that the tape sees the ops, and so
    do calls while gg.debugging.enable_check_numerics() is in force.
    Recording state is per thread: a capture sees only its own thread's ops.
    """
    if fn is None:
        return lambda fn: Function(fn, static_argnums, static_argnames, compile)
    return Function(fn, static_argnums, static_argnames, compile)
