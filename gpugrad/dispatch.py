"""The primitives' registry and call path: `gg.primitive`, the one entry point for built-in
and user ops alike, and what every primitive call does (convert its inputs, run the
forward, check the result, record it on this thread's tapes and capture).

No numpy or cupy here: forwards get their array module from their inputs.
"""
import functools
import inspect
import itertools
import math
import string
from typing import Callable, NamedTuple

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

    An elementwise primitive declares its scalar expression, which a step compiler fuses
    into one generated CUDA kernel or lowers to NumPy ufunc calls writing preallocated
    buffers, with `op.defexpr(c, numpy)` (or `@op.defexpr(c)` over the NumPy form)::

        @gg.primitive(kind="elementwise")
        def cube(x):
            return x * x * x

        @cube.defexpr("gg_multiply(gg_multiply(gg_cast<{T}>({0}), gg_cast<{T}>({0})), gg_cast<{T}>({0}))")
        def cube_numpy(xp, out, x):       # writes `out`, bit for bit the forward's result
            xp.multiply(x, x, out=out)
            return xp.multiply(out, x, out=out)

    `c` is a C++ expression of the result, with the placeholders {0}, {1}... for the inputs,
    {name} for the keyword parameters, {T} for the result's C type and {U} for the inputs'
    promoted C type; `numpy(xp, out, *inputs, **params)` fills `out`, an array of the
    result's shape and dtype, with `out=` ufunc calls and returns it. Both must agree with
    the forward: the full contract is `Expression`'s. `op.expression` holds the declared
    Expression (None until one is). Every built-in elementwise primitive has one
    (tests/test_expressions.py checks them all against their forwards).

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
        op.expression = None  # an elementwise op's scalar expression: op.defexpr sets it
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
            out = out.copy()  # backend.unaliased's rule, inline on this hot path
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

    def defexpr(c, numpy=None):
        """Declare this elementwise op's scalar expression, `Expression(c, numpy)`, as
        `op.expression`: see Expression for the contract. As a decorator over the NumPy form:
        `@op.defexpr(c)`. ValueError if `c` has a placeholder naming no input or keyword
        parameter of the forward."""
        if numpy is None:
            return lambda numpy: defexpr(c, numpy)
        op.expression = _expression(op, c, numpy)
        return numpy  # so that it works as a decorator

    functools.update_wrapper(op, forward)
    op.name, op.forward, op.vjp = name, forward, None
    op.differentiable, op.linear, op.defvjp, op.impl = differentiable, linear, defvjp, impl
    op.defexpr = defexpr
    return op


# ---------------------------------------------------------------------------------------
# Scalar expressions of elementwise primitives (op.defexpr)

# The type placeholders of a C expression: the result's C type and the inputs' promoted one.
TYPE_PLACEHOLDERS = ("T", "U")

# C types of the dtypes an expression computes in, by (kind, itemsize); float16 has none.
_C_TYPES = {("b", 1): "bool", ("i", 1): "signed char", ("u", 1): "unsigned char", ("i", 2): "short",
            ("u", 2): "unsigned short", ("i", 4): "int", ("u", 4): "unsigned int", ("i", 8): "long long",
            ("u", 8): "unsigned long long", ("f", 4): "float", ("f", 8): "double"}


class Expression(NamedTuple):
    """The scalar expression of an elementwise primitive, in C and in NumPy (`op.expression`,
    set by `op.defexpr(c, numpy)`): what a step compiler needs to fuse a chain of elementwise
    ops into one CUDA kernel, or to run it on the CPU as ufunc calls into preallocated
    buffers.

    `c`: a C++ expression (C++17, device and host) whose value, of the result's C type, is
    the op's result for one element. Placeholders, substituted by `render`:

    - {0}, {1}, ...: the inputs, by position (fewer than the forward's positional
      parameters), each a parenthesized C expression of the input's own C type: an element
      of an input array as loaded, or a weak Python scalar input as its C literal (below).
      The expression converts them itself, as NumPy's promotion does, with gg_cast<{T}>({0})
      rather than a C cast (see below).
    - {name}: the keyword parameter `name` of the forward (keyword-only), as a C literal:
      a bool as 1 or 0; an int as a long long literal (NNNLL, or NNNULL past int64's range);
      a float as its exact hexadecimal literal (float.hex(): 0x1.8p+0), with gg_inf() and
      gg_nan() for infinities and NaN; a dtype as its C type name (below).
    - {T}: the C type of the result's dtype; {U}: the C type of the inputs' promoted dtype
      (numpy.result_type of the inputs, weak scalars included), for comparisons.
    C types: bool, signed char, short, int, long long, their unsigned types, float and
    double. float16 has none: an expression never computes in it (a compiler leaves float16
    to the forwards). The expression may call the helpers of cuda_kernels/expressions.cuh
    (gg_cast<T>, gg_add, gg_multiply, gg_maximum, gg_less, flushed<T>, gg_sigmoid<T>...),
    which give NumPy's semantics and the rounding rule of gpugrad/primitives/rounding.py
    on the host and on a GPU alike, and compiles with that header alone. Arithmetic on
    values that may be floats goes through those helpers, not C operators: CuPy compiles
    every kernel with flush-to-zero, under which float operators and casts lose subnormals.
    `{{` and `}}` are literal braces.

    `numpy`: `numpy(xp, out, *inputs, **params)`, the same result computed with the array
    module `xp` (numpy or cupy) into `out`, a preallocated array of the result's shape and
    dtype that does not overlap the inputs, with ufuncs' `out=` arguments (and as few
    temporaries as the computation allows); it returns `out`. The inputs are what the
    forward gets: arrays that broadcast to out's shape, or weak Python scalars.

    Agreement: the NumPy form equals the forward bit for bit (NaN where it gives NaN, zeros
    of the same sign). The C form does too wherever the operations are correctly rounded
    (IEEE arithmetic, sqrt, the rounding rule's float32 results); the math library's exp,
    log, sin, pow... may differ from NumPy's by an ulp or two (tests/test_expressions.py
    states the bounds).
    """

    c: str
    numpy: Callable

    def placeholders(self):
        """The names of the placeholders of `c`, in order of appearance, without repeats."""
        return tuple(dict.fromkeys(field for _, field, _, _ in string.Formatter().parse(self.c) if field is not None))

    def render(self, inputs, params, *, result, common):
        """`c` with its placeholders substituted: `inputs`, the C text of each input (an
        array element or a scalar's `c_literal`); `params`, the keyword parameters (only
        those the expression names are converted); `result` and `common`, the dtypes of the
        result and of the promoted inputs (numpy dtypes)."""
        fields = {}
        for field in self.placeholders():
            if field.isdigit():
                if int(field) >= len(inputs):
                    raise ValueError(f"expression {self.c!r} reads input {field}, but {len(inputs)} were given")
            elif field in TYPE_PLACEHOLDERS:
                fields[field] = c_type(result if field == "T" else common)
            elif field in params:
                fields[field] = c_literal(params[field])
            else:
                raise ValueError(f"expression {self.c!r} reads the keyword parameter {field!r}, which was not given")
        return string.Formatter().vformat(self.c, [f"({text})" for text in inputs], fields)


def c_type(dtype):
    """The C type name of a numpy dtype (or scalar type) in an expression: 'float' for
    float32, 'long long' for int64...; ValueError for one with no C type (float16, complex)."""
    dtype = _backend.as_dtype(dtype)
    ctype = _C_TYPES.get((dtype.kind, dtype.itemsize))
    if ctype is None:
        raise ValueError(f"dtype {dtype} has no C type in a scalar expression")
    return ctype


def c_literal(value):
    """The C literal of a keyword parameter or scalar input in an expression (see
    Expression): bools as 1/0, ints as long long, floats exactly in hexadecimal, dtypes as
    their C type; TypeError for anything else (None, tuples, strings)."""
    if isinstance(value, type) or (hasattr(value, "kind") and hasattr(value, "itemsize")):
        return c_type(value)  # a dtype or a NumPy scalar type
    kind = getattr(getattr(value, "dtype", None), "kind", None)  # NumPy scalars
    if type(value) is bool or kind == "b":
        return "1" if value else "0"
    if isinstance(value, int) or kind in ("i", "u"):
        value = int(value)
        if value == -2**63:
            return "(-9223372036854775807LL - 1)"
        if -2**63 < value < 0:
            return f"(-{-value}LL)"
        if 0 <= value < 2**63:
            return f"{value}LL"
        if 2**63 <= value < 2**64:
            return f"{value}ULL"
        raise ValueError(f"the int {value} has no C literal: it is out of the range of 64-bit integers")
    if isinstance(value, float) or kind == "f":
        value = float(value)
        if math.isnan(value):
            return "gg_nan()"
        if math.isinf(value):
            return "gg_inf()" if value > 0 else "(-gg_inf())"
        text = value.hex()
        return f"({text})" if text.startswith("-") else text
    raise TypeError(f"{value!r} ({type(value).__name__}) has no C literal; an expression's keyword parameters "
                    f"are bools, ints, floats and dtypes")


def _expression(op, c, numpy):
    """Expression(c, numpy) for `op`, its placeholders checked against op's forward."""
    if op.kind != "elementwise":
        raise TypeError(f"primitive {op.name!r} is of kind {op.kind!r}; only elementwise primitives have a scalar "
                        f"expression")
    if not isinstance(c, str):
        raise TypeError(f"defexpr of primitive {op.name!r}: the C expression must be a str, got {type(c).__name__}")
    if not callable(numpy):
        raise TypeError(f"defexpr of primitive {op.name!r}: the NumPy form must be a function "
                        f"numpy(xp, out, *inputs, **params), got {type(numpy).__name__}")
    try:
        parsed = list(string.Formatter().parse(c))
    except ValueError as error:
        raise ValueError(f"defexpr of primitive {op.name!r}: malformed C expression {c!r}: {error}") from None
    parameters = inspect.signature(op.__wrapped__).parameters.values()
    kinds = [p.kind for p in parameters]
    positional = sum(k in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for k in kinds)
    any_positional = inspect.Parameter.VAR_POSITIONAL in kinds
    keywords = {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
    any_keyword = inspect.Parameter.VAR_KEYWORD in kinds
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        bad = None
        if spec or conversion:
            bad = "takes no conversion or format spec"
        elif field.isdigit():
            if int(field) >= positional and not any_positional:
                bad = f"names no input: the forward takes {positional} positional input{'s' * (positional != 1)}"
        elif field in TYPE_PLACEHOLDERS:
            if field in keywords:
                bad = "is a type placeholder and also a keyword parameter of the forward"
        elif not field.isidentifier():
            bad = "is neither an input index, a keyword parameter nor T or U"
        elif field not in keywords and not any_keyword:
            bad = (f"names no keyword parameter of the forward (it has "
                   f"{', '.join(sorted(keywords)) if keywords else 'none'})")
        if bad:
            text = "{" + field + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
            raise ValueError(f"defexpr of primitive {op.name!r}: placeholder {text} {bad}")
    return Expression(c, numpy)


def _make_update_op(forward, name, writes):
    """The callable of an in-place update primitive (see `primitive`): it checks that the
    inputs are tensors on one device, runs the forward on their buffers, marks the written
    Variables and records the call on this thread's capture; it returns None."""

    last_written = max(writes)
    host_array = _backend.host_array_type()

    def op(*args, **params):
        device = None
        data = []
        for a in args:
            kind = type(a)
            if kind is Variable or kind is Tensor:
                if a._device is not device:
                    if device is None:
                        device = a._device
                    elif a._device != device:
                        _update_error(name, args)
                data.append(a._data)
            elif a is None:
                data.append(None)
            else:
                _update_error(name, args)
        if len(args) <= last_written:
            raise TypeError(f"{name}: takes an input {last_written}, which it writes; got {len(args)} inputs")
        written = [args[index] for index in writes]
        for target in written:
            if target is not None and type(target) is not Variable:
                _update_error(name, args)
        if type(data[0]) is host_array:  # the reference serves host arrays, whatever impls exist
            forward(*data, **params)
        else:
            op.forward(*data, **params)
        for target in written:
            if target is not None:
                target._version += 1  # Variable.written(), inline: this runs for every variable every step
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


def _update_error(name, args):
    """The error for the first bad input of an update primitive's call."""
    device = None
    for index, a in enumerate(args):
        kind = type(a)
        if kind is Tensor or kind is Variable:
            if device is not None and a._device != device:
                raise ValueError(f"{name}: inputs are on different devices, {device} and {a._device} (input {index})")
            device = a._device
        elif a is not None:
            raise TypeError(f"{name}: input {index} is a {kind.__name__}; an update primitive takes Tensors and "
                            f"Variables (None for an unused state)")
    for index, a in enumerate(args):
        if a is not None and type(a) is not Variable and index in REGISTRY[name].writes:
            raise TypeError(f"{name}: input {index} is written in place, so it must be a gg.Variable, got "
                            f"{type(a).__name__}")


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
    if any(type(a) is Variable for a in args):
        out = _backend.unaliased(out, *data)  # a Variable's buffer changes in place; a Tensor must not alias it
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
