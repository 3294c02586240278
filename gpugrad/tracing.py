"""The trace of a gg.function step: what a capture records, the IR that gg.function lowers.

A trace is a list of steps over numbered slots. Slots hold the step's inputs (its tensor
and Python-number arguments), constants (arrays it read that a replay does not recompute,
Variables' buffers among them) and the output of every recorded op. Each step names its
primitive (the registry entry), its kind (elementwise, reduction, shape, contraction,
update or opaque), its static parameters and its input and output slots; `text()` prints
them in order, with each slot's dtype and shape, as JAX prints a jaxpr.

The capture hooks call into the trace in progress (recording.THREAD.state.capture): every
primitive call (`record`), in-place update primitives such as the optimizers' steps
(`update`), Variable writes and an optimizer's per-step host work (`call`), host reads and
random draws (`taint`), copies of tensors into constants (`copied`).
"""
from .recording import THREAD, TracedNumber
from .tensor import Tensor, Variable

SCALARS = (bool, int, float, complex, str, type(None))  # Python values a trace keeps as they are
_SHORT = {"float16": "f16", "float32": "f32", "float64": "f64", "int8": "i8", "int16": "i16", "int32": "i32",
          "int64": "i64", "uint8": "u8", "uint64": "u64", "bool": "bool", "complex64": "c64", "complex128": "c128"}


class Step:
    """One recorded call: `name` and `kind` for the IR, `fn(*inputs, **params)` for a replay
    (the primitive's forward, or the callable a `call` recorded), the result in `output`
    (None for a call run for its effect); `op` is the primitive (None for a `call`)."""

    __slots__ = ("name", "kind", "fn", "params", "inputs", "output", "reads_variable", "op")

    def __init__(self, name, kind, fn, params, inputs, output, reads_variable, op=None):
        self.name, self.kind, self.fn, self.params = name, kind, fn, params
        self.inputs, self.output, self.reads_variable, self.op = inputs, output, reads_variable, op

    def replace(self, **changes):
        """A copy with some fields changed (compiler passes make new steps, never edit)."""
        fields = {name: getattr(self, name) for name in Step.__slots__}
        fields.update(changes)
        return Step(**fields)


class Trace:
    """The calls made while a function ran, over one list of values in which inputs and
    constants have fixed slots and every output gets a new one."""

    def __init__(self, title):
        self.title = title
        self.values = []          # slot -> value seen at capture (kept alive: ids stay unique)
        self.slot_of = {}         # id(value) -> slot
        self.computed = set()     # slots whose value a replay recomputes (inputs included)
        self.labels = {}          # slot -> what it is, for the text: "argument 0", "Variable 'w'"
        self.types = None         # slot -> "f32[300,1]", once sealed
        self.avals = None         # slot -> (shape, dtype) of an array, else the value's type, once sealed
        self.steps = []
        self.arg_slots = []
        self.output_slots = []
        self.reason = None        # why the function cannot be replayed, once known

    def argument(self, value, where):
        """A new runtime input: an argument's array, or a TracedNumber; returns it."""
        slot = self._new_slot(value)
        self.arg_slots.append(slot)
        self.computed.add(slot)
        self.labels[slot] = where
        return value

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

    def record(self, op, args, params, out):
        """The primitive `op` took `args` (Tensors, Variables, numbers) and made array `out`."""
        for value in params.values():
            for item in (value if type(value) is tuple else (value,)):
                if type(item) is TracedNumber:
                    item.used("as a static parameter of an op")
                elif type(item) not in SCALARS and self.slot_of.get(id(item)) in self.computed:
                    self.taint("an op took a computed tensor as a static parameter (an index array)")
        slots = []
        reads_variable = False
        for a in args:
            kind = type(a)
            if kind is Variable:
                reads_variable = True
                slot = self._slot(a._data)
                self.labels.setdefault(slot, f"Variable {a.name!r}")
            else:
                slot = self._slot(a._data if kind is Tensor else a)
            slots.append(slot)
        output = self._new_slot(out)
        self.computed.add(output)
        self.steps.append(Step(op.name, op.kind, op.forward, params, tuple(slots), output, reads_variable, op))

    def update(self, op, args, params):
        """The update primitive `op` wrote its Variable inputs in place (None inputs are
        unused states); a replay runs its forward again and marks the Variables written."""
        slots = []
        for a in args:
            if type(a) is Variable:
                slot = self._slot(a._data)
                self.labels.setdefault(slot, f"Variable {a.name!r}")
            else:
                slot = self._slot(a if a is None else a._data)
            slots.append(slot)
        written = tuple(args[i] for i in op.writes if args[i] is not None)
        forward = op.forward

        def run(*arrays, **params):
            forward(*arrays, **params)
            for variable in written:
                variable.written()
        run.written = written  # for a lowering that runs the forward elsewhere (a CUDA graph)
        self.steps.append(Step(op.name, "update", run, params, tuple(slots), None, True, op))

    def call(self, fn, *arrays, name, kind):
        """Run `fn(*arrays)` now, capturing nothing inside, and have replays call it again;
        `name` and `kind` are for the IR."""
        state = THREAD.state
        slots = tuple(self._slot(a) for a in arrays)
        state.capture = None
        try:
            fn(*arrays)
        finally:
            state.capture = self
        self.steps.append(Step(name, kind, fn, None, slots, None, False))

    def output(self, value):
        """The slot of a computed value the function returns (an array or a TracedNumber)."""
        slot = self.slot_of[id(value)]
        self.output_slots.append(slot)
        return slot

    def is_computed(self, value):
        return self.slot_of.get(id(value)) in self.computed

    def constants(self):
        """{"v<slot>": value} for the slots a replay does not recompute."""
        return {f"v{slot}": value for slot, value in enumerate(self.values) if slot not in self.computed}

    def seal(self):
        """Keep each slot's type for `text()` and let go of the values seen at capture."""
        self.types = [_type_of(value) for value in self.values]
        self.avals = [aval(value) for value in self.values]
        self.values = self.slot_of = None

    def text(self):
        """The trace, one line a step: slots as %N with their types; inputs, the Variables and
        constants read, then the steps with their kinds, then the outputs."""
        types = self.types if self.types is not None else [_type_of(v) for v in self.values]
        read = sorted(s for s in {s for step in self.steps for s in step.inputs} - self.computed
                      if types[s] != "NoneType")
        lines = [f"gg.function {self.title}"]
        lines += [f"  input    %{s}: {types[s]}  ({self.labels[s]})" for s in self.arg_slots]
        lines += [f"  constant %{s}: {types[s]}" + (f"  ({self.labels[s]})" if s in self.labels else "")
                  for s in read]
        for step in self.steps:
            names = ("None" if types[s] == "NoneType" else f"%{s}" for s in step.inputs)
            call = f"{step.name}({', '.join(names)}{_params(step.params)})"
            target = "" if step.output is None else f"%{step.output}: {types[step.output]} = "
            lines.append(f"  {target}{call}  # {step.kind}")
        lines.append(f"  return {', '.join(f'%{s}' for s in self.output_slots) or 'nothing computed'}")
        return "\n".join(lines)


def aval(value):
    """(shape, dtype) of an array, else the type of the value (float for a TracedNumber of
    a float): what a compiler may assume about a slot."""
    if type(value) is TracedNumber:
        value = value.value
    shape = getattr(value, "shape", None)
    if shape is None or not hasattr(value, "dtype"):
        return type(value)
    return tuple(shape), value.dtype


def _params(params):
    return "".join(f", {key}={value!r}" for key, value in params.items()) if params else ""


def _type_of(value):
    """"f32[300,1]" for an array, the type's name for a Python value."""
    return describe(aval(value))


def describe(aval):
    """An aval as the trace prints it: "f32[300,1]" for (shape, dtype), the type's name
    otherwise."""
    if type(aval) is not tuple:
        return aval.__name__
    shape, dtype = aval
    name = str(dtype)
    return f"{_SHORT.get(name, name)}[{','.join(str(n) for n in shape)}]"
