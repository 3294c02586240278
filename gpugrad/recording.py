"""Per-thread recording state: which tapes record, which gg.function capture listens, and
the sources of the backward pass in progress.

TensorFlow keeps its tape stack per thread; so does gpugrad. Two threads that each train a
model never see each other's tapes or captures: `THREAD.state` is per thread, and every
thread starts with no tape recording and no capture.
"""
import math
import operator
import threading


class _State:
    """One thread's recording state. `tapes`: the GradientTapes recording in this thread, in
    the order they started. `capture`: the gg.function capture in progress in this thread, or
    None. `pass_sources`: the sources of this thread's backward pass in progress, or None.
    `differentiating`: the Node whose VJP that pass is running, or None."""

    __slots__ = ("tapes", "capture", "pass_sources", "differentiating")

    def __init__(self):
        self.tapes = []
        self.capture = None
        self.pass_sources = None
        self.differentiating = None


class _Thread(threading.local):
    """`THREAD.state` is the calling thread's _State: one thread-local lookup per op, then
    plain attributes (a threading.local attribute costs several times a plain one)."""

    def __init__(self):
        self.state = _State()


THREAD = _Thread()


def host_read(what):
    """Tell a capture in progress that `what` read a tensor's value on the host, which would
    freeze that value into the replayed calls."""
    capture = THREAD.state.capture
    if capture is not None:
        capture.taint(f"{what} read a tensor's value on the host")


class TracedNumber:
    """A Python number argument of a gg.function step while the step is being captured.

    A replay takes the number of each call as a runtime value, so the capture must see
    where the number goes. Given to a gg op (or as a Tensor operator's operand) it is an
    input the replay feeds, as weak as the Python number itself; any other use (Python
    arithmetic, comparisons, float(), range(), a static op parameter) would freeze the
    captured value, so it makes the capture run eagerly on every call instead, with a
    warning naming the argument.
    """

    __slots__ = ("value", "where", "_capture")

    def __init__(self, value, where, capture):
        self.value = value
        self.where = where
        self._capture = capture

    def used(self, how):
        """The number was used outside a gg op; returns its value."""
        self._capture.taint(f"the Python number {self.where} was used in Python code ({how}), which a replay "
                            f"would not redo; declare it static (static_argnums/static_argnames) or pass a tensor")
        return self.value

    def __repr__(self):
        return repr(self.value)


def _traced_binary(name, apply, reflected):
    def method(self, other):
        if type(other) is TracedNumber:
            other = other.used(name)
        elif type(other) not in (int, float, complex, bool):
            return NotImplemented  # a Tensor's reflected operator takes it as an op input
        value = self.used(name)
        return apply(other, value) if reflected else apply(value, other)
    method.__name__ = name
    return method


def _traced_unary(name, apply):
    def method(self, *args):
        return apply(self.used(name), *args)
    method.__name__ = name
    return method


for _name, _apply in (("add", operator.add), ("sub", operator.sub), ("mul", operator.mul),
                      ("truediv", operator.truediv), ("floordiv", operator.floordiv), ("mod", operator.mod),
                      ("pow", operator.pow), ("divmod", divmod)):
    setattr(TracedNumber, f"__{_name}__", _traced_binary(f"__{_name}__", _apply, False))
    setattr(TracedNumber, f"__r{_name}__", _traced_binary(f"__r{_name}__", _apply, True))
for _name, _apply in (("lt", operator.lt), ("le", operator.le), ("gt", operator.gt), ("ge", operator.ge),
                      ("eq", operator.eq), ("ne", operator.ne)):
    setattr(TracedNumber, f"__{_name}__", _traced_binary(f"__{_name}__", _apply, False))
for _name, _apply in (("neg", operator.neg), ("pos", operator.pos), ("abs", abs), ("float", float), ("int", int),
                      ("complex", complex), ("bool", bool), ("index", operator.index), ("round", round),
                      ("trunc", math.trunc), ("floor", math.floor), ("ceil", math.ceil), ("hash", hash),
                      ("str", str), ("format", format)):
    setattr(TracedNumber, f"__{_name}__", _traced_unary(f"__{_name}__", _apply))
