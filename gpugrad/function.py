"""gg.function: run a step once eagerly while recording its raw array calls, then replay them.

Small models spend most of an eager step in Python (op dispatch, the tape's bookkeeping);
a replay makes only the array calls, in order, on the current values of the Variables.
No numpy or cupy here: the recorded calls are the primitives' own forwards.
"""
import functools
import warnings

from .tape import _ACTIVE
from .tensor import _CAPTURING, Tensor, Variable, constant

_SCALARS = (bool, int, float, complex, str, type(None))


class _Capture:
    """The calls made while a function ran: each an (fn, input slots, params, output slot,
    reads_variable) step over one list of values, in which inputs and constants have fixed
    slots and every output gets a new one."""

    def __init__(self, arg_arrays):
        self.values = []          # slot -> value seen at capture (kept alive: ids stay unique)
        self.slot_of = {}         # id(value) -> slot
        self.computed = set()     # slots whose value a replay recomputes (args included)
        self.steps = []
        self.reason = None        # why this function cannot be replayed, once known
        self.arg_slots = [self._new_slot(a) for a in arg_arrays]
        self.computed.update(self.arg_slots)

    def _new_slot(self, value):
        slot = len(self.values)
        self.values.append(value)
        self.slot_of[id(value)] = slot
        return slot

    def _slot(self, value):
        slot = self.slot_of.get(id(value))
        return self._new_slot(value) if slot is None else slot

    def taint(self, reason):
        if self.reason is None:
            self.reason = reason

    def copied(self, value):
        """A tensor's value was copied outside any primitive (gg.constant, gg.fill, ...)."""
        if type(value) is Variable or self.slot_of.get(id(value._data)) in self.computed:
            self.taint("a tensor computed in the function (or a Variable) was copied into a new constant")

    def record(self, forward, args, params, out):
        data = [a._data if type(a) is Tensor or type(a) is Variable else a for a in args]
        for value in params.values():
            for item in (value if type(value) is tuple else (value,)):
                if type(item) not in _SCALARS and self.slot_of.get(id(item)) in self.computed:
                    self.taint("an op took a computed tensor as a static parameter (an index array)")
        reads_variable = any(type(a) is Variable for a in args)
        slots = tuple(self._slot(d) for d in data)
        out_slot = self._new_slot(out)
        self.computed.add(out_slot)
        self.steps.append((forward, slots, params, out_slot, reads_variable))

    def call(self, fn, *arrays):
        """Run `fn(*arrays)` now, unrecorded inside, and have replays call it again."""
        slots = tuple(self._slot(a) for a in arrays)
        _CAPTURING.clear()
        try:
            fn(*arrays)
        finally:
            _CAPTURING.append(self)
        self.steps.append((fn, slots, None, None, False))

    def plan(self, result):
        """The replay function: the recorded calls, then `result`'s structure rebuilt with a
        fresh Tensor wherever it held a computed one."""
        output_slots = []
        rebuild = self._rebuilder(result, output_slots)
        replay = _compile(self.steps, self.arg_slots, output_slots,
                          {f"v{slot}": value for slot, value in enumerate(self.values) if slot not in self.computed})
        return lambda arg_arrays: rebuild(replay(*arg_arrays))

    def _rebuilder(self, result, output_slots):
        """A function of the replayed output values that builds a result shaped like `result`
        (tuples, lists, namedtuples, dicts); it holds none of the capture's computed values."""
        if type(result) is Tensor and self.slot_of.get(id(result._data)) in self.computed:
            index, device = len(output_slots), result._device
            output_slots.append(self.slot_of[id(result._data)])
            return lambda outputs: Tensor(outputs[index], device)
        if isinstance(result, (list, tuple)):
            parts = [self._rebuilder(item, output_slots) for item in result]
            make = type(result)._make if hasattr(result, "_fields") else type(result)
            return lambda outputs: make([part(outputs) for part in parts])
        if isinstance(result, dict):
            parts = {key: self._rebuilder(item, output_slots) for key, item in result.items()}
            return lambda outputs: {key: part(outputs) for key, part in parts.items()}
        return lambda outputs: result  # Variables, constants and Python values come back as they are


def _compile(steps, arg_slots, output_slots, constants):
    """A straight-line Python function making the recorded calls: one line per call, every
    value in a local variable (the fastest Python has), constants and callables bound as
    default arguments."""
    bound = dict(constants, _unalias=_unalias)
    lines = []
    for index, (fn, slots, params, out_slot, reads_variable) in enumerate(steps):
        bound[f"f{index}"] = fn
        arguments = ", ".join(f"v{s}" for s in slots)
        if params:
            bound[f"p{index}"] = params
            arguments += f", **p{index}"
        call = f"f{index}({arguments})"
        if out_slot is None:
            lines.append(call)
        elif reads_variable:  # as in eager calls: a result must not alias a Variable's buffer
            lines.append(f"v{out_slot} = _unalias({call}, {', '.join(f'v{s}' for s in slots)})")
        else:
            lines.append(f"v{out_slot} = {call}")
    lines.append(f"return ({''.join(f'v{s}, ' for s in output_slots)})")
    signature = ", ".join([f"v{s}" for s in arg_slots] + ["*"] + [f"{name}={name}" for name in bound])
    source = f"def replay({signature}):\n" + "".join(f"    {line}\n" for line in lines)
    namespace = {}
    exec(compile(source, "<gg.function replay>", "exec"), bound, namespace)
    return namespace["replay"]


def _unalias(out, *inputs):
    return out.copy() if out.base is not None or any(out is i for i in inputs) else out


class Function:
    """The callable gg.function returns; see gg.function."""

    def __init__(self, fn):
        self._fn = fn
        self._plans = {}
        functools.update_wrapper(self, fn)

    def __call__(self, *args):
        if _ACTIVE or _CAPTURING:  # a tape must see the ops; an outer capture records them
            return self._fn(*args)
        key, args, arrays = _signature(args)
        plan = self._plans.get(key)
        if plan is None:
            # Each argument gets an array object of its own (a view), so that one array passed
            # twice, or also used as a constant inside, still has a slot per argument.
            args = [Tensor(a._data.view(), a._device) if type(a) is Tensor else a for a in args]
            capture = _Capture([a._data for a in args if type(a) is Tensor])
            _CAPTURING.append(capture)
            try:
                result = self._fn(*args)
            finally:
                _CAPTURING.clear()
            if capture.reason is None:
                self._plans[key] = capture.plan(result)
            else:
                self._plans[key] = capture.reason
                warnings.warn(f"gg.function({getattr(self._fn, '__name__', self._fn)!r}) runs eagerly on every "
                              f"call: {capture.reason} during capture", RuntimeWarning, stacklevel=2)
            return result
        if type(plan) is str:
            return self._fn(*args)
        return plan(arrays)


def _signature(args):
    """(cache key, args with arrays made Tensors, the Tensors' arrays)."""
    key, converted, arrays = [], [], []
    for a in args:
        kind = type(a)
        if kind is not Tensor and kind not in _SCALARS and kind is not Variable and hasattr(a, "__array__"):
            a, kind = constant(a), Tensor
        if kind is Tensor:
            key.append((a._data.shape, a._data.dtype, a._device))
            arrays.append(a._data)
        elif kind in _SCALARS:
            key.append((kind, a))
        else:  # Variables, Modules, optimizers...: the same object
            key.append(("object", id(a)))
        converted.append(a)
    return tuple(key), converted, arrays


def function(fn):
    """Decorate a step function so that later calls replay the array calls of the first.

    The first call with a given signature (the shapes, dtypes and devices of tensor
    arguments, the values of Python scalars, the identity of other objects) runs `fn`
    eagerly and records every primitive call it makes, the backward passes of tapes
    inside it, Variable assignments and optimizer updates included. Later calls with the
    same signature redo only those array calls, on the new argument values and the current
    values of Variables, and return fresh Tensors; optimizer updates run in full each time
    (schedules, clipping and check_numerics stay live).

    As with tf.function, the Python code of `fn` runs once per signature: Python side
    effects and Python values computed inside are frozen. Where that would freeze a tensor
    value (float(t), t.numpy(), bool(t), printing a tensor, gg.random draws, copying a
    computed tensor into a constant) the function warns once and runs eagerly on every
    call instead. Calls made while a GradientTape is recording run eagerly, so that the
    tape sees the ops.
    """
    return Function(fn)
