"""The compiler's IR: a traced step as a program over typed slots, which passes rewrite.

A Program is the steps of a trace (trace.Step: primitive, kind, params, input and output
slots) plus what the compiler may assume about each slot: its aval, (shape, dtype) for an
array or the Python type of a number argument; the values of the constants (arrays the
step read but does not compute); which constants are Variables' buffers (read anew on
every call, and written in place by update steps); and which slots are the step's
arguments and results.

Passes are functions from Program to Program (see passes.py). They never edit a program
or its steps; `with_steps` and `new_slot` build the next one.
"""
from .tracing import aval as _aval, describe as _describe


class Program:
    """A traced step as the compiler sees it (see the module docstring)."""

    def __init__(self, steps, avals, constants, variables, arg_slots, output_slots, labels):
        self.steps = list(steps)
        self.avals = list(avals)              # slot -> (shape, dtype) or a Python type
        self.constants = dict(constants)      # slot -> value, for slots no step computes
        self.variables = frozenset(variables)  # constant slots that are Variables' buffers
        self.arg_slots = tuple(arg_slots)
        self.output_slots = tuple(output_slots)
        self.labels = dict(labels)            # slot -> "argument 0", "Variable 'w'"

    @classmethod
    def from_trace(cls, trace):
        """The program of a trace that still holds its values (before `seal`)."""
        values = trace.values
        constants = {slot: value for slot, value in enumerate(values) if slot not in trace.computed}
        variables = {slot for slot, label in trace.labels.items() if label.startswith("Variable ")}
        return cls(trace.steps, [_aval(value) for value in values], constants, variables, trace.arg_slots,
                   trace.output_slots, trace.labels)

    def with_steps(self, steps, constants=None):
        """This program with other steps (and constants, when given); slots made by
        `new_slot` since are kept."""
        return Program(steps, self.avals, self.constants if constants is None else constants, self.variables,
                       self.arg_slots, self.output_slots, self.labels)

    def new_slot(self, aval):
        """A fresh slot of this aval (shape, dtype) for a pass's new step."""
        self.avals.append(aval)
        return len(self.avals) - 1

    def consumers(self):
        """slot -> indices of the steps that read it (a result of the step counts as a read
        at len(steps))."""
        readers = {}
        for index, step in enumerate(self.steps):
            for slot in step.inputs:
                readers.setdefault(slot, []).append(index)
        for slot in self.output_slots:
            readers.setdefault(slot, []).append(len(self.steps))
        return readers

    def producer(self):
        """slot -> index of the step that computes it."""
        return {step.output: index for index, step in enumerate(self.steps) if step.output is not None}

    def is_array(self, slot):
        return type(self.avals[slot]) is tuple

    def text(self):
        """One line a step, as the trace prints them (`%3: f32[300,3] = matmul(%0, %2)  #
        contraction`), then the results: what `explain()` shows after the passes."""
        lines = []
        for step in self.steps:
            arguments = ", ".join("None" if self.avals[s] is type(None) else f"%{s}" for s in step.inputs)
            params = "".join(f", {k}={v!r}" for k, v in step.params.items()) if step.params else ""
            target = "" if step.output is None else f"%{step.output}: {_describe(self.avals[step.output])} = "
            lines.append(f"{target}{step.name}({arguments}{params})  # {step.kind}")
        lines.append(f"return {', '.join(f'%{s}' for s in self.output_slots) or 'nothing computed'}")
        return "\n".join(lines)


def evaluate(program, *inputs):
    """Run `program` step by step on `inputs` (arrays or numbers for its argument slots),
    with each step's own callable: the reference any lowering must match. Returns the
    values of the output slots, as a tuple."""
    values = dict(program.constants)
    values.update(zip(program.arg_slots, inputs))
    for step in program.steps:
        result = step.fn(*(values[s] for s in step.inputs), **(step.params or {}))
        if step.output is not None:
            values[step.output] = result
    return tuple(values[s] for s in program.output_slots)
