"""The primitives' registry and call path: `gg.primitive`, the one entry point for built-in
and user ops alike, and what every primitive call does (convert its inputs, run the
forward, check the result, record it on this thread's tapes and capture).

No numpy or cupy here: forwards get their array module from their inputs.
"""
import functools
import itertools

from . import backend as _backend
from .recording import THREAD as _THREAD, TracedNumber
from .tensor import Tensor, Variable, constant

REGISTRY = {}
# Set by gg.debugging.enable_check_numerics: a function (op, inputs, output array) called
# after every primitive's forward, which raises on NaN or infinity; None skips the check.
check_outputs = None


KINDS = ("elementwise", "reduction", "shape", "contraction", "update", "opaque")


def primitive(forward=None, *, name=None, differentiable=True, linear=False, kind="opaque", writes=()):
    """Register a primitive op: the one entry point for built-in ops and user ops alike.

    Usage::

        @gg.primitive
        def cube(x):                      # forward on raw arrays (numpy or cupy)
            return x * x * x

        @cube.defvjp
        def cube_vjp(g, out, x):          # VJP on Tensors, with gg ops
            return (3 * g * x * x,)

    `op.impl("cuda", fast)` (or `@op.impl("cuda")`) adds a CUDA implementation:
    `fast(*arrays, **params)` runs instead of the forward when the first input is a CuPy
    array, and returns NotImplemented to leave a case (a dtype, a layout) to the forward,
    which stays the reference it must match.

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
        writes: for kind "update" only, the indices of the inputs the forward writes in place.

    An "update" primitive (an optimizer's step, for example) changes Variables in place and
    returns None: its forward writes the buffers of the inputs named by `writes`, which
    must be gg.Variables (or None for an unused optional state); the other inputs are
    Tensors or Variables it reads. It is never differentiated, so it has no VJP; each
    written Variable is marked written (Variable.written) after the forward ran, and a
    gg.function capture records the call as an update step that its replays run again.
    """
    if kind not in KINDS:
        raise ValueError(f"primitive kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if (kind == "update") != bool(writes):
        raise ValueError("an update primitive names the inputs it writes (writes=(0,) ...), and only an update "
                         f"primitive writes its inputs; got kind={kind!r}, writes={writes!r}")
    def register(function):
        key = name or function.__name__
        if key in REGISTRY:
            raise ValueError(f"a primitive named {key!r} is already registered")
        if kind == "update":
            op = _make_update_op(function, key, tuple(writes))
        else:
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

    def impl(device, fast=None):
        """Register `fast(*arrays, **params)` as this op's implementation for arrays of the
        backend `device` names ("cuda"): it runs instead of the forward when the first input
        is such an array, and returns NotImplemented to leave a case to the forward. As a
        decorator: `@op.impl("cuda")`."""
        if fast is None:
            return lambda fast: impl(device, fast)
        nonlocal forward  # the op calls whatever `forward` holds now
        forward = op.forward = _backend.with_device_path(device, forward, fast)
        return fast

    functools.update_wrapper(op, forward)
    op.name, op.forward, op.vjp = name, forward, None
    op.differentiable, op.linear, op.defvjp, op.impl = differentiable, linear, defvjp, impl
    return op


def _make_update_op(forward, name, writes):
    """The callable of an in-place update primitive (see `primitive`): it checks that the
    inputs are tensors on one device, runs the forward on their buffers, marks the written
    Variables and records the call on this thread's capture; it returns None."""

    def op(*args, **params):
        device = None
        data = []
        for index, a in enumerate(args):
            kind = type(a)
            if kind is Tensor or kind is Variable:
                if device is None:
                    device = a._device
                elif a._device != device:
                    raise ValueError(f"{name}: inputs are on different devices, {device} and {a._device} "
                                     f"(input {index})")
                data.append(a._data)
            elif a is None:
                data.append(None)
            else:
                raise TypeError(f"{name}: input {index} is a {kind.__name__}; an update primitive takes Tensors "
                                f"and Variables (None for an unused state)")
        for index in writes:
            target = args[index] if index < len(args) else None
            if target is not None and type(target) is not Variable:
                raise TypeError(f"{name}: input {index} is written in place, so it must be a gg.Variable, got "
                                f"{type(target).__name__}")
        op.forward(*data, **params)
        for index in writes:
            if args[index] is not None:
                args[index].written()
        capture = _THREAD.state.capture
        if capture is not None:
            capture.update(op, args, params)

    def impl(device, fast=None):
        if fast is None:
            return lambda fast: impl(device, fast)
        op.forward = _backend.with_device_path(device, op.forward, fast)
        return fast

    def defvjp(vjp):
        raise TypeError(f"primitive {name!r} is an in-place update: it is never differentiated, so it takes no VJP")

    impl.__doc__ = "As for any primitive: `fast(*arrays, **params)` runs for arrays of backend `device`."
    functools.update_wrapper(op, forward)
    op.name, op.forward, op.vjp, op.writes = name, forward, None, writes
    op.differentiable, op.linear, op.defvjp, op.impl = False, False, defvjp, impl
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


def constant_needed(t):
    """Whether the backward pass in progress needs the gradient of `t`, a Tensor with no
    recorded history (a constant): only if it is one of the pass's sources. VJPs use this to
    skip work nobody asked for, such as the gradient of a network's input batch."""
    sources = _THREAD.state.pass_sources
    return sources is None or t in sources
