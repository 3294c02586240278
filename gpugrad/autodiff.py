"""Forward mode and functional helpers on top of GradientTape.

    acc = ForwardAccumulator(x, v)            # as tf.autodiff.ForwardAccumulator
    with acc:
        y = f(x)
    acc.jvp(y)                                # J v

    jvp(f, (x,), (v,))                        # (f(x), J v), as jax.jvp
    hessian(f, x), hvp(f, x, v)               # nested tapes; forward-over-reverse
    value_and_grad(f, argnums=0), grad(f)     # as jax, for functions of tensors
    vectorized_map(fn, elems)                 # tf.vectorized_map's name; a loop here

How forward mode works
----------------------
No primitive call is seen by anything but the tapes of this thread, so an accumulator is a
persistent GradientTape (watching its primals and nothing else) plus the tangents of the
primals. Inside its context every primitive call that reads a primal, or a result computed
from one, is recorded on that tape, as reverse mode records it. `acc.jvp(target)` then
walks the recorded history of the target from the primals forwards (in recording order)
and gives each recorded result the tangent of its primitive's JVP, applied to the tangents
of its inputs: a forward sweep, deferred to the time of the question.

The JVP of a primitive is the one declared with `defjvp(op)` when there is one (the
built-in linear primitives, add to tile, declare theirs: the op applied to the tangents);
otherwise it is derived from the primitive's VJP by transposition. For a fixed point, the
map u -> J^T u (the VJP at cotangent u) is linear in u; its own VJP at cotangent v is
(J^T)^T v = J v. So the JVP records `vjp(u, out, *inputs)` on a scratch tape watching u
(a zero tensor: any value does, the map is linear) and asks that tape for the gradient of
sum_i <vjp_i(u), v_i> with respect to u. Every VJP is written with gg ops, so this works
for every differentiable primitive, user primitives and @custom_gradient ops included,
and the result is recorded on any other tape or accumulator in progress: tangents
differentiate again (nested accumulators, forward-over-reverse, reverse-over-forward).

Two consequences of computing tangents at jvp() time (TensorFlow computes them as the ops
run): a GradientTape (or outer accumulator) that should see a tangent's computation must
be recording when jvp() is called; and a Variable assigned after an op read it makes
jvp() raise, as tape.gradient does, since the JVP would need its old value.
"""
import functools
import numbers

from . import ops as _ops
from . import structure as _structure
from .dispatch import REGISTRY
from .recording import THREAD as _THREAD
from .tape import (
    GradientTape, _bad_vjp_result, _fill_unconnected, _history, _tensors, _unbroadcast, _unconnected_mode,
)
from .tensor import Tensor, Variable, constant

__all__ = ["ForwardAccumulator", "defjvp", "jvp", "hessian", "hvp", "grad", "value_and_grad", "vectorized_map"]

_TENSOR_TYPES = (Tensor, Variable)


# ---------------------------------------------------------------------------------------
# The JVP of one primitive

# Hand-written JVPs, keyed by the primitive (the op object, or a custom_gradient's op).
_JVPS = {}


def defjvp(op, rule=None):
    """Declare the JVP of primitive `op`: `rule(tangents, out, *inputs, **params)` returns
    the tangent of `out` (of out's shape, or one that broadcasts to it; None for none),
    given `tangents`, a tuple with one tangent per input (None for an input without one: a
    constant, a number, an integer tensor). It is computed with gg ops, as a VJP is, so that
    tapes and outer accumulators record it. As a decorator: `@defjvp(op)`.

    Without one, forward mode derives the JVP from the VJP by transposition."""
    if rule is None:
        return lambda rule: defjvp(op, rule)
    if not getattr(op, "differentiable", True) or getattr(op, "kind", None) == "update":
        raise TypeError(f"primitive {op.name!r} is not differentiable, so it takes no JVP")
    _JVPS[op] = rule
    return rule


def _zero_like_input(x):
    if type(x) is Tensor or type(x) is Variable:
        return _ops.zeros_like(x)
    if isinstance(x, (bool, numbers.Number)):
        return type(x)(0)
    return x


def _linear_jvp(op):
    """The JVP of a primitive linear in all its inputs: the primitive applied to the
    tangents, zeros standing for inputs without one."""
    def rule(tangents, out, *inputs, **params):
        return op(*[_zero_like_input(x) if t is None else t for x, t in zip(inputs, tangents)], **params)
    rule.__name__ = f"{op.name}_jvp"
    return rule


# Built-in primitives that are linear in all their inputs together (not merely "linear" in
# the dispatch sense of a VJP that reads no values, which an affine op also satisfies).
_LINEAR_BUILTINS = ("add", "subtract", "negative", "identity", "cast", "broadcast_to", "reshape", "transpose",
                    "expand_dims", "squeeze", "concat", "stack", "getitem", "getitem_backward", "reduce_sum",
                    "reduce_sum_backward", "reduce_mean", "reduce_mean_backward", "tile")
for _name in _LINEAR_BUILTINS:
    if _name in REGISTRY:
        defjvp(REGISTRY[_name], _linear_jvp(REGISTRY[_name]))


def transposed_jvp(prim, tangents, out, *inputs, **params):
    """The tangent of `out`, the result of `prim(*inputs, **params)`, for input tangents
    `tangents` (one per input, None for none), derived from prim's VJP by transposition."""
    vjp = prim.vjp
    if vjp is None:
        raise LookupError(f"primitive {prim.name!r} has no VJP registered (use {prim.name}.defvjp), so forward "
                          f"mode cannot derive its JVP either (or declare one with gg.autodiff.defjvp)")
    state = _THREAD.state
    # The VJP runs outside any backward pass: every input's gradient is needed.
    outer_sources, state.pass_sources = state.pass_sources, None
    u = _ops.zeros(out.shape, dtype=out.dtype, device=out.device)
    scratch = GradientTape(watch_accessed_variables=False)
    targets, weights = [], []
    try:
        with scratch:
            scratch.watch(u)
            grads = vjp(u, out, *inputs, **params) if params else vjp(u, out, *inputs)
            if (type(grads) is not tuple and type(grads) is not list) or len(grads) != len(inputs):
                _bad_vjp_result(prim, grads, len(inputs))
            for index, (x, gx, v) in enumerate(zip(inputs, grads, tangents)):
                if v is None or gx is None:
                    continue
                targets.append(_unbroadcast(gx, x, prim, index))
                weights.append(v)
    finally:
        state.pass_sources = outer_sources
    if not targets:
        return _ops.zeros_like(out)  # the result does not depend on the inputs that move
    return scratch.gradient(targets, u, output_gradients=weights, unconnected_gradients="zero")


def _primitive_jvp(prim, tangents, out, inputs, params):
    rule = _JVPS.get(prim)
    if rule is None:
        result = transposed_jvp(prim, tangents, out, *inputs, **params)
    else:
        result = rule(tangents, out, *inputs, **params)
    if result is None:
        return None
    if type(result) is not Tensor and type(result) is not Variable:
        result = constant(result, dtype=out.dtype, device=out.device)
    if result.shape != out.shape:
        try:
            result = _ops.broadcast_to(result, out.shape)
        except ValueError:
            raise ValueError(f"the JVP of primitive {prim.name!r} gave a tangent of shape "
                             f"{result.shape} for a result of shape {out.shape}") from None
    if result.dtype != out.dtype:
        result = _ops.cast(result, out.dtype)
    return result


# ---------------------------------------------------------------------------------------
# ForwardAccumulator

def _as_tangent(primal, tangent):
    if type(tangent) is not Tensor and type(tangent) is not Variable:
        try:
            tangent = constant(tangent, dtype=primal.dtype, device=primal.device)
        except (TypeError, ValueError) as error:
            raise TypeError(f"ForwardAccumulator: a tangent must be a tensor or a value gg.constant takes, got "
                            f"{type(tangent).__name__}: {error}") from None
    if tangent.shape != primal.shape:
        raise ValueError(f"ForwardAccumulator: a tangent of shape {tangent.shape} for a primal of shape "
                         f"{primal.shape}; each tangent must have its primal's shape")
    if tangent.device != primal.device:
        raise ValueError(f"ForwardAccumulator: a tangent on {tangent.device} for a primal on {primal.device}")
    if type(tangent) is Variable:
        tangent = _ops.identity(tangent)
    if tangent.dtype != primal.dtype:
        tangent = _ops.cast(tangent, primal.dtype)
    return tangent


class ForwardAccumulator:
    """Computes Jacobian-vector products with forward-mode autodiff, as
    tf.autodiff.ForwardAccumulator::

        with gg.autodiff.ForwardAccumulator(primals=x, tangents=v) as acc:
            y = f(x)
        acc.jvp(y)  # the directional derivative of y along v

    `primals`: a Tensor, a Variable, or a nested list/tuple/dict of them (of float dtype);
    `tangents`: the same structure, one tangent of its primal's shape per primal. Every
    primitive call inside the context whose inputs carry tangents (the primals, or results
    computed from them) gives its result a tangent. A primal given twice gets the sum of
    its tangents.

    Forward-over-reverse (a Hessian-vector product)::

        with ForwardAccumulator(x, v) as acc:
            with gg.GradientTape() as tape:
                tape.watch(x)
                y = f(x)
            g = tape.gradient(y, x)
        acc.jvp(g)   # H v

    Nested accumulators give higher directional derivatives, as TensorFlow's do: call the
    inner one's jvp() inside the outer one's context. Tangents are computed when jvp() is
    called (see the module docstring), so a GradientTape that is to differentiate a tangent
    (reverse-over-forward) must be recording when jvp() is called.
    """

    def __init__(self, primals, tangents):
        flat_primals, treedef = _tensors(primals, "ForwardAccumulator primals")
        try:
            flat_tangents = _structure.flatten_up_to(treedef, tangents)
        except ValueError as error:
            raise ValueError(f"ForwardAccumulator: tangents must match the structure of the primals: {error}") \
                from None
        self._tangents = {}
        for primal, tangent in zip(flat_primals, flat_tangents):
            kind = primal.dtype.kind
            if kind != "f":
                what = "complex" if kind == "c" else "not floating-point"
                raise TypeError(f"ForwardAccumulator: a primal of dtype {primal.dtype} is {what}; forward mode "
                                f"follows real (float) values only")
            tangent = _as_tangent(primal, tangent)
            previous = self._tangents.get(primal)
            self._tangents[primal] = tangent if previous is None else _ops.add(previous, tangent)
        self._tape = GradientTape(persistent=True, watch_accessed_variables=False)
        self._tape.watch(flat_primals)

    def __enter__(self):
        self._tape.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self._tape.__exit__(*exc_info)

    def __repr__(self):
        return f"<ForwardAccumulator of {len(self._tangents)} primal{'s' * (len(self._tangents) != 1)}>"

    def jvp(self, primals, unconnected_gradients="none"):
        """The tangents of `primals` (a Tensor, a Variable, or a nested list/tuple/dict of
        them), in their structure: the primals' own tangents for the watched primals, the
        directional derivatives for results computed from them inside the context. A tensor
        computed outside the context, or from no primal, gets None, or zeros of its shape
        with `unconnected_gradients="zero"`."""
        mode = _unconnected_mode(unconnected_gradients)
        targets, treedef = _tensors(primals, "ForwardAccumulator.jvp targets")
        with self._tape.stop_recording():  # this accumulator does not follow its own tangents
            known = self._sweep(targets)
        found = [known.get(t) for t in targets]
        return _structure.unflatten(treedef, _fill_unconnected(found, targets, mode))

    def _sweep(self, targets):
        """{tensor: tangent} for the targets and the recorded history leading to them."""
        known = dict(self._tangents)
        tape_id = self._tape._id
        roots = [t for t in targets if type(t) is Tensor and t._node is not None and t not in known
                 and tape_id in t._node.tapes]
        if not roots:
            return known
        order, _ = _history(roots, tape_id, set(), frozenset(known), prune=False)
        for t in order:
            node = t._node
            inputs = node.inputs
            tangents = tuple(known.get(a) if type(a) is Tensor or type(a) is Variable else None for a in inputs)
            if all(v is None for v in tangents):
                continue
            if node.versions is not None:
                for variable, version in node.versions:
                    if variable._version != version:
                        raise RuntimeError(
                            f"Variable '{variable.name}' was assigned after {node.prim.name} read it, and its "
                            f"tangent needs the old value; call jvp() before assigning")
            tangent = _primitive_jvp(node.prim, tangents, t, inputs, node.params)
            if tangent is not None:
                known[t] = tangent
        return known


# ---------------------------------------------------------------------------------------
# Functional forms

def _as_tensor(value, what):
    if type(value) is Tensor or type(value) is Variable:
        return value
    try:
        return constant(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{what} must be tensors or values gg.constant takes, got {type(value).__name__}: "
                        f"{error}") from None


def _fresh(leaves):
    """The leaves as distinct tensors to differentiate with respect to: a Tensor becomes an
    identity of it (so that an argument given twice, or also read by the function through a
    closure, counts as its own argument, while tapes outside still see the link); a
    Variable stays itself unless it came before."""
    seen = set()
    out = []
    for leaf in leaves:
        if type(leaf) is Tensor or (type(leaf) is Variable and id(leaf) in seen):
            leaf = _ops.identity(leaf)
        seen.add(id(leaf))
        out.append(leaf)
    return out


def _float_leaves(leaves, what):
    for leaf in leaves:
        if leaf.dtype.kind != "f":
            raise TypeError(f"{what}: an input of dtype {leaf.dtype}; differentiate with respect to float "
                            f"tensors only (cast integer inputs to a float dtype first)")
    return leaves


def jvp(f, primals, tangents, has_aux=False):
    """(f(*primals), J v) in forward mode, as jax.jvp: `primals` is a tuple (or list) of the
    positional arguments of f, each a tensor, a value gg.constant takes, or a nested
    list/tuple/dict of them; `tangents` gives one tangent per primal, in the same structure.
    The output tangents have the structure of f's output (zeros where an output does not
    depend on the primals). With `has_aux`, f returns (output, aux) and the result is
    (output, tangents, aux)."""
    if not isinstance(primals, (list, tuple)) or not isinstance(tangents, (list, tuple)):
        raise TypeError(f"jvp: primals and tangents must be tuples (or lists) of the arguments, got "
                        f"{type(primals).__name__} and {type(tangents).__name__}")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    leaves, treedef = _structure.flatten(tuple(primals))
    leaves = _float_leaves(_fresh([_as_tensor(leaf, "jvp primals") for leaf in leaves]), "jvp")
    args = _structure.unflatten(treedef, leaves)
    try:
        flat_tangents = _structure.flatten_up_to(treedef, tuple(tangents))
    except ValueError as error:
        raise ValueError(f"jvp: tangents must match the structure of the primals: {error}") from None
    with ForwardAccumulator(leaves, flat_tangents) as acc:
        out = f(*args)
    aux = None
    if has_aux:
        if type(out) is not tuple or len(out) != 2:
            raise TypeError("jvp(has_aux=True): f must return a pair (output, aux)")
        out, aux = out
    out_tangents = acc.jvp(out, unconnected_gradients="zero")
    return (out, out_tangents, aux) if has_aux else (out, out_tangents)


def _tensor_list(x, what):
    """(leaves, rebuild): a Tensor alone or a flat list/tuple of them."""
    if type(x) is Tensor or type(x) is Variable:
        return [x], lambda items: items[0]
    if isinstance(x, (list, tuple)):
        leaves = [_as_tensor(leaf, what) for leaf in x]
        return leaves, lambda items: type(x)(items) if type(x) in (list, tuple) else list(items)
    return [_as_tensor(x, what)], lambda items: items[0]


def _scalar(y, what):
    if type(y) is not Tensor and type(y) is not Variable:
        raise TypeError(f"{what}: f must return a scalar Tensor, got {type(y).__name__}")
    if y.shape != ():
        raise TypeError(f"{what}: f must return a scalar (shape ()), got shape {y.shape}; reduce it first "
                        f"(gg.reduce_sum, gg.reduce_mean)")
    if y.dtype.kind != "f":
        raise TypeError(f"{what}: f returned a {y.dtype} scalar; it must be of a float dtype")
    return y


def hessian(f, x):
    """The Hessian of a scalar f at x, with nested tapes and tape.jacobian as TensorFlow users
    build it. For a Tensor (or Variable) x, f(x) is called and the result has shape
    x.shape + x.shape. For a list (or tuple) x of tensors, f(x) is called with that list and
    the result is a list of lists: entry [i][j], of shape x[i].shape + x[j].shape, holds
    d^2 f / d x[i] d x[j]. Pairs f does not link give zeros."""
    leaves, rebuild = _tensor_list(x, "hessian inputs")
    _float_leaves(leaves, "hessian")
    with GradientTape(persistent=True, watch_accessed_variables=False) as outer:
        outer.watch(leaves)
        with GradientTape(watch_accessed_variables=False) as inner:
            inner.watch(leaves)
            y = _scalar(f(rebuild(leaves)), "hessian")
        grads = inner.gradient(y, leaves, unconnected_gradients="zero")
    rows = [outer.jacobian(g, leaves, unconnected_gradients="zero") for g in grads]
    if type(x) is Tensor or type(x) is Variable or not isinstance(x, (list, tuple)):
        return rows[0][0]
    return [list(row) for row in rows]


def hvp(f, x, v):
    """The Hessian of a scalar f at x times v, forward-over-reverse: a ForwardAccumulator
    (x, v) around a GradientTape's gradient. x and v: a Tensor each, or lists of tensors
    (then f is called with the list and the result is a list). Costs a gradient and one
    forward sweep over its recorded history, not a Hessian; gives zeros where f does not
    depend on x."""
    leaves, rebuild = _tensor_list(x, "hvp inputs")
    _float_leaves(leaves, "hvp")
    if type(x) is Tensor or type(x) is Variable or not isinstance(x, (list, tuple)):
        vs = [v]
    else:
        if not isinstance(v, (list, tuple)) or len(v) != len(leaves):
            raise ValueError(f"hvp: v must be a list of {len(leaves)} tensors, one per x")
        vs = list(v)
    with ForwardAccumulator(leaves, vs) as acc:
        with GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(leaves)
            y = _scalar(f(rebuild(leaves)), "hvp")
        grads = tape.gradient(y, leaves, unconnected_gradients="zero")
    return rebuild(acc.jvp(grads, unconnected_gradients="zero"))


def _argnums(argnums, count, what):
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    if not nums:
        raise ValueError(f"{what}: argnums names no argument")
    out = []
    for n in nums:
        if not isinstance(n, int) or not -count <= n < count:
            raise ValueError(f"{what}: argnums {argnums!r} names no argument of the {count} given")
        out.append(n % count)
    return single, out


def value_and_grad(f, argnums=0, has_aux=False):
    """A function of f's arguments that returns (f(*args), gradient), as jax.value_and_grad.

    f returns a scalar float Tensor (with `has_aux`, a pair (scalar, aux), and the function
    returns ((scalar, aux), gradient)). The gradient is taken with respect to the
    positional arguments `argnums` (an int: the gradient has the structure of that
    argument, a Tensor, Variable, or nested list/tuple/dict of them; a tuple of ints: a
    tuple of those). Arguments may be Tensors, Variables or values gg.constant takes;
    gradients are zeros where f does not depend on an argument. Tapes recording around the
    call record the gradient computation, so grad(grad(f)) and tapes over grad(f) work."""
    what = f"value_and_grad of {getattr(f, '__name__', 'f')}"

    @functools.wraps(f)
    def value_and_grad_f(*args, **kwargs):
        single, nums = _argnums(argnums, len(args), what)
        args = list(args)
        selected = []
        for n in nums:
            leaves, treedef = _structure.flatten(args[n])
            leaves = _float_leaves(_fresh([_as_tensor(leaf, f"{what}: argument {n}") for leaf in leaves]), what)
            args[n] = _structure.unflatten(treedef, leaves)
            selected.append((leaves, treedef))
        sources = [leaf for leaves, _ in selected for leaf in leaves]
        with GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(sources)
            out = f(*args, **kwargs)
        if has_aux:
            if type(out) is not tuple or len(out) != 2:
                raise TypeError(f"{what}(has_aux=True): f must return a pair (scalar, aux)")
            value, aux = out
        else:
            value = out
        _scalar(value, what)
        flat = tape.gradient(value, sources, unconnected_gradients="zero")
        grads, start = [], 0
        for leaves, treedef in selected:
            grads.append(_structure.unflatten(treedef, flat[start:start + len(leaves)]))
            start += len(leaves)
        grads = grads[0] if single else tuple(grads)
        return ((value, aux) if has_aux else value), grads

    return value_and_grad_f


def grad(f, argnums=0, has_aux=False):
    """A function of f's arguments that returns the gradient of f (a scalar) with respect to
    the arguments `argnums`, as jax.grad (see value_and_grad). With `has_aux`, it returns
    (gradient, aux)."""
    value_and_grad_f = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def grad_f(*args, **kwargs):
        value, grads = value_and_grad_f(*args, **kwargs)
        return (grads, value[1]) if has_aux else grads

    return grad_f


def vectorized_map(fn, elems, fallback_to_while_loop=True, warn=True):
    """fn applied to each slice of `elems` along axis 0, the results stacked along a new axis
    0, as tf.vectorized_map.

    `elems`: a tensor, or a nested list/tuple/dict of tensors with one leading size; fn gets
    one slice in that structure and returns a tensor or a nested structure of tensors.

    Unlike TensorFlow's, this is a Python loop, not a vectorization: fn runs once per slice
    (the slices are gg getitem calls, the stacking one gg.stack per output), which every
    tape and accumulator in progress records, so gradients flow through it. Its cost is
    that of the loop. `fallback_to_while_loop` and `warn` are accepted for TensorFlow's
    signature and change nothing.

    Jacobians from it: forward mode gives one column per basis vector,
    `vectorized_map(lambda e: jvp(f, (x,), (gg.reshape(e, x.shape),))[1], gg.eye(x.size,
    dtype=x.dtype))` has the entries J[i, k] at [k, i...] (J^T, f's output axes last); and
    per-example gradients are `vectorized_map(grad(loss), batch)`. For a leading axis of
    size 0, fn runs once on zeros of a slice's shape to learn the results' shapes."""
    leaves, treedef = _structure.flatten(elems)
    if not leaves:
        raise ValueError("vectorized_map: elems holds no tensor")
    leaves = [_as_tensor(leaf, "vectorized_map elems") for leaf in leaves]
    for leaf in leaves:
        if leaf.ndim == 0:
            raise ValueError("vectorized_map: each tensor of elems needs a leading axis to map over, got a scalar")
        if leaf.shape[0] != leaves[0].shape[0]:
            raise ValueError(f"vectorized_map: the tensors of elems have leading sizes {leaves[0].shape[0]} and "
                             f"{leaf.shape[0]}; they must agree")
    count = leaves[0].shape[0]
    if count == 0:
        sample = [_ops.zeros(leaf.shape[1:], dtype=leaf.dtype, device=leaf.device) for leaf in leaves]
        out_leaves, out_def = _structure.flatten(fn(_structure.unflatten(treedef, sample)))
        out_leaves = [_as_tensor(leaf, "vectorized_map results") for leaf in out_leaves]
        return _structure.unflatten(out_def, [_ops.zeros((0,) + leaf.shape, dtype=leaf.dtype, device=leaf.device)
                                              for leaf in out_leaves])
    results, out_def = [], None
    for i in range(count):
        out_leaves, this_def = _structure.flatten(fn(_structure.unflatten(treedef, [leaf[i] for leaf in leaves])))
        if out_def is None:
            out_def = this_def
        elif this_def != out_def:
            raise ValueError(f"vectorized_map: fn returned {this_def} for slice {i} but {out_def} for slice 0; "
                             f"it must return one structure")
        results.append([_as_tensor(leaf, "vectorized_map results") for leaf in out_leaves])
    stacked = [_ops.stack([r[k] for r in results], axis=0) for k in range(len(results[0]))]
    return _structure.unflatten(out_def, stacked)

