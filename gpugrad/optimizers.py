"""gg.optimizers: SGD, Adam, AdamW, RMSprop, Adagrad with the Keras 3 update rules, the
Keras learning-rate schedules (ExponentialDecay, InverseTimeDecay, PolynomialDecay,
CosineDecay, PiecewiseConstantDecay) and LinearWarmup, and get(name, **kwargs).

Backend-neutral: each variable's update is one call of an in-place update primitive
(gpugrad/primitives/updates.py: an xp reference, and a fused kernel on CUDA), so a
Variable keeps its buffer. The values that change from step to step (the learning rate,
Adam's bias-corrected step size) are written once a step into a small float64 Variable on
each device, which the updates read, so that a gg.function replay, or a CUDA graph, sees
each step's values. No numpy or cupy here, and no branching on the device.
"""
import functools
import math
import numbers
import os
import sys
import warnings

from . import backend as _backend
from . import debugging as _debugging
from . import ops as _ops
from .primitives import updates as _updates
from .tape import GradientTape
from .recording import THREAD as _THREAD
from .tensor import Tensor, Variable, constant


def _check_positive(value, what, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            value >= 0 if allow_zero else value > 0) or not math.isfinite(value):
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{what} must be a finite {bound} number, got {value!r}")
    return float(value)


def _check_fraction(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{what} must be a number in [0, 1), got {value!r}")
    return float(value)


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _caller_stacklevel():
    """The stacklevel of warnings.warn (called by this module's caller) that names the first
    frame outside gpugrad, so that a warning points at the user's line."""
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


class Optimizer:
    """Base class: validation, clipping, learning-rate schedules, state and the training calls.

    Subclasses name their slots, say which per-step values their update reads
    (`_step_scalars(lr, step)`), and implement `_update(var, grad, slots, scalars)` as one
    call of their update primitive.

    Args:
        learning_rate: a finite non-negative float, or a callable of the step number (0 for
            the first update, the number of `apply_gradients` calls so far) returning one.
            Anything else raises ValueError: a number at construction, a schedule's value
            (NaN, infinite, negative) at the step it returns it, before any variable is updated.
        clipvalue: clip every gradient elementwise to [-clipvalue, clipvalue].
        clipnorm: rescale every gradient to an L2 norm of at most clipnorm.
        global_clipnorm: rescale all gradients together to a global L2 norm of at most this.
            At most one of the three may be set (Keras lets clipvalue ride along silently).
        check_numerics: before updating, check that every gradient is finite and raise
            FloatingPointError naming the first variable whose gradient is not; no variable
            is touched then. It reads each gradient on the host, so it costs a sync on a GPU.
    """

    slot_names = ()  # the names of a variable's state, as slots() and checkpoints name them

    def __init__(self, learning_rate, *, clipvalue=None, clipnorm=None, global_clipnorm=None,
                 check_numerics=False):
        name = type(self).__name__
        self._learning_rate = self._checked_learning_rate(learning_rate)
        clips = {k: v for k, v in (("clipvalue", clipvalue), ("clipnorm", clipnorm),
                                   ("global_clipnorm", global_clipnorm)) if v is not None}
        if len(clips) > 1:
            raise ValueError(f"{name}: set at most one of clipvalue, clipnorm and global_clipnorm, got "
                             + ", ".join(f"{k}={v!r}" for k, v in clips.items()))
        self.clipvalue, self.clipnorm, self.global_clipnorm = (
            None if v is None else _check_positive(v, f"{name}: {k}")
            for k, v in (("clipvalue", clipvalue), ("clipnorm", clipnorm), ("global_clipnorm", global_clipnorm)))
        self.check_numerics = bool(check_numerics)
        self.iterations = 0
        self._slots = {}  # Variable -> tuple of slot Variables (None where a slot is unused)
        self._scalars = {}  # device -> float64 Variable of the step's values (_step_scalars)
        self._written_scalars = None  # the values those Variables hold
        # the creation serials of the Variables already warned about a None gradient (serials are never
        # reused; a WeakSet would compare Variables with ==, which is elementwise)
        self._warned_no_gradient = set()

    def _checked_learning_rate(self, learning_rate):
        if callable(learning_rate):
            return learning_rate
        return _check_positive(learning_rate, f"{type(self).__name__}: learning_rate", allow_zero=True)

    @property
    def learning_rate(self):
        """The learning rate the next update uses (a schedule's value at the current step).

        Settable, as in Keras: `opt.learning_rate = 0.01`, or a schedule (a callable of the
        step, such as gg.optimizers.CosineDecay(...)); checked as the constructor's argument.
        The next update uses it, in a gg.function replay too (each replay reads it afresh)."""
        lr = self._learning_rate
        if not callable(lr):
            return lr
        value = float(lr(self.iterations))
        if not 0.0 <= value < math.inf:  # NaN fails both
            raise ValueError(f"{type(self).__name__}: the learning-rate schedule returned {value!r} at step "
                             f"{self.iterations}; it must return a finite non-negative number")
        return value

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate = self._checked_learning_rate(value)

    @property
    def variables(self):
        """The Variables this optimizer has state for, in the order it first saw them."""
        return list(self._slots)

    def slots(self, variable):
        """{slot name: slot Variable} for `variable` (empty for plain SGD)."""
        return {n: s for n, s in zip(self.slot_names, self._slots[variable]) if s is not None}

    def build(self, var_list):
        """Create the state of every variable in `var_list` (apply_gradients does it on first
        sight; call it before `gg.restore` into a fresh optimizer)."""
        for var in var_list:
            if type(var) is not Variable:
                raise TypeError(f"{type(self).__name__}.build: expected gg.Variable, got {type(var).__name__}")
            if var not in self._slots:
                self._slots[var] = tuple(
                    None if not used else Variable(_ops.fill(var.shape, initial, dtype=var.dtype, device=var.device),
                                                   trainable=False, name=f"{var.name}/{slot}")
                    for slot, (used, initial) in zip(self.slot_names, self._slot_specs()))

    def unbuild(self, var_list):
        """Forget the state of every variable in `var_list` (what build made), so that the
        next update or build starts it afresh."""
        for var in var_list:
            self._slots.pop(var, None)

    def _slot_specs(self):
        """(used, initial value) per slot name."""
        return [(True, 0.0)] * len(self.slot_names)

    def compute_gradients(self, loss, var_list=None):
        """[(gradient, variable), ...] of `loss()`, a zero-argument callable, with respect to
        `var_list`, or without it to every trainable Variable the loss read (in reading order).

        Unlike TF1, `loss` must be callable: an eager tensor keeps no record of how it was made.
        """
        return self._gradients(loss, var_list)[1]

    def _gradients(self, loss, var_list):
        if not callable(loss):
            raise TypeError(f"{type(self).__name__}: loss must be a zero-argument callable returning the loss, "
                            f"got {type(loss).__name__} (an eager tensor does not remember how it was computed)")
        var_list = None if var_list is None else list(var_list)
        with GradientTape(watch_accessed_variables=var_list is None) as tape:
            if var_list is not None:
                for var in var_list:
                    tape.watch(var)
            value = loss()
        if var_list is None:
            var_list = list(tape.watched_variables())
        return value, list(zip(tape.gradient(value, var_list), var_list))

    def minimize(self, loss, var_list=None):
        """compute_gradients then apply_gradients; returns the loss value."""
        value, grads_and_vars = self._gradients(loss, var_list)
        self.apply_gradients(grads_and_vars)
        return value

    def apply_gradients(self, grads_and_vars):
        """Update each Variable in place from its gradient; None gradients are skipped.

        As in Keras, no gradient at all (no pairs, or None for every variable) raises
        ValueError naming the variables, and a Variable whose gradient is None while others
        get one is skipped with a UserWarning naming it, once per optimizer and Variable:
        a None gradient usually means the loss does not use the variable.

        `grads_and_vars` is an iterable of (gradient, variable) pairs, tuples or lists, such as
        `zip(grads, model.trainable_variables)`; a bare list of gradients raises TypeError.

        Everything is checked before any variable is touched: the variables are gg.Variables
        of a floating dtype, and each gradient matches its variable's shape, dtype and device
        (arrays and numbers are converted to the variable's dtype and device). Returns None.
        """
        name = type(self).__name__
        pairs = []
        skipped = []
        for index, item in enumerate(grads_and_vars):
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError(f"{name}.apply_gradients takes (gradient, variable) pairs, such as "
                                f"zip(grads, model.trainable_variables); item {index} is not a pair: {item!r}")
            grad, var = item
            if type(var) is not Variable:
                raise TypeError(f"{name}.apply_gradients takes (gradient, variable) pairs, such as "
                                f"zip(grads, model.trainable_variables); item {index} holds a "
                                f"{type(var).__name__} where the gg.Variable goes")
            if var.dtype.kind != "f":
                raise TypeError(f"{name}.apply_gradients: Variable '{var.name}' has dtype {var.dtype}; "
                                f"only floating variables can be trained")
            if grad is None:
                skipped.append(var)
                continue
            pairs.append((self._checked_gradient(grad, var), var))
        if not pairs:
            names = ", ".join(repr(var.name) for var in skipped)
            raise ValueError(f"{name}.apply_gradients: no gradients provided for any variable"
                             + (f" (all None: {names}); the loss does not depend on them: check that it "
                                f"is computed from them inside the GradientTape" if skipped else
                                " (no (gradient, variable) pairs were given)"))
        self._warn_no_gradient(skipped)
        variables = [var for _, var in pairs]
        grads = [g for g, _ in pairs]
        capture = _THREAD.state.capture  # inside gg.function, replays run the host steps again
        if self.check_numerics:  # before clipping, which spreads one NaN to every gradient
            if capture is None:
                self._check_finite(variables, *grads)
            else:
                capture.call(functools.partial(self._check_finite, variables), *(g._data for g in grads),
                             name=f"{name}.check_numerics", kind="host")
        grads = self._clipped(grads)
        if capture is None:
            self._advance(variables)
        else:
            capture.call(functools.partial(self._advance, variables), name=f"{name}.advance", kind="host")
        scalars = self._scalars
        for g, var in zip(grads, variables):
            self._update(var, g, self._slots[var], scalars[var._device])

    def _warn_no_gradient(self, variables):
        """One warning per call, naming the Variables not warned about before by this optimizer."""
        new = [var for var in variables if var._serial not in self._warned_no_gradient]
        if not new:
            return
        self._warned_no_gradient.update(var._serial for var in new)
        names = ", ".join(repr(var.name) for var in new)
        warnings.warn(f"{type(self).__name__}.apply_gradients: no gradient (None) for Variable"
                      f"{'s' if len(new) > 1 else ''} {names}, left unchanged; the loss does not depend on "
                      f"{'them' if len(new) > 1 else 'it'} (this optimizer warns once per variable)",
                      UserWarning, stacklevel=_caller_stacklevel())

    def _check_finite(self, variables, *grads):
        for g, var in zip(grads, variables):
            if not _debugging.all_finite(g if type(g) is Tensor else Tensor(g, var._device)):
                raise FloatingPointError(f"{type(self).__name__}: the gradient of Variable '{var.name}' holds NaN "
                                         f"or infinity (step {self.iterations}); no variable was updated")

    def _advance(self, variables):
        """The host part of a step: the learning rate (a schedule's bad value raises here,
        before any variable or state changes), the state of variables seen for the first
        time, the step count, and the step's values written to the scalars Variable of
        every device."""
        lr = self.learning_rate
        self.build(variables)
        scalars = self._scalars
        for var in variables:
            if var._device not in scalars:
                size = len(self._step_scalars(0.0, 1))
                scalars[var._device] = Variable(_ops.fill((size,), 0.0, dtype="float64", device=var._device),
                                                trainable=False, name=f"{type(self).__name__}/step_scalars")
                self._written_scalars = None
        self.iterations += 1
        values = self._step_scalars(lr, self.iterations)
        if values != self._written_scalars:  # a constant learning rate is written once
            for device, device_scalars in scalars.items():  # Python floats into float64: exact, nothing to check
                _backend.backend_of(device).write_host(device_scalars._data, values)
                device_scalars.written()
            self._written_scalars = values

    def _step_scalars(self, lr, step):
        """The values that the update reads from device memory at step `step` (from 1): [lr]."""
        return [lr]

    def _checked_gradient(self, grad, var):
        name = type(self).__name__
        if type(grad) is Tensor or type(grad) is Variable:
            if grad._device != var._device:
                raise ValueError(f"{name}.apply_gradients: the gradient of Variable '{var.name}' is on "
                                 f"{grad._device} but the variable is on {var._device}")
            if grad.dtype != var.dtype:
                raise ValueError(f"{name}.apply_gradients: the gradient of Variable '{var.name}' has dtype "
                                 f"{grad.dtype} but the variable has dtype {var.dtype}")
        else:
            grad = constant(grad, dtype=var.dtype, device=var._device)
        if grad.shape != var.shape:
            raise ValueError(f"{name}.apply_gradients: the gradient of Variable '{var.name}' has shape "
                             f"{grad.shape} but the variable has shape {var.shape}")
        return grad

    def _clipped(self, grads):
        if self.clipvalue is not None:
            return [_ops.clip_by_value(g, -self.clipvalue, self.clipvalue) for g in grads]
        if self.clipnorm is not None:
            return [_ops.clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm is not None:
            return _ops.clip_by_global_norm(grads, self.global_clipnorm)[0]
        return grads

    def _update(self, var, grad, slots, scalars):
        raise NotImplementedError


class SGD(Optimizer):
    """Gradient descent: p -= lr * g; with momentum, v = momentum * v - lr * g and p += v
    (nesterov: p += momentum * v - lr * g). Slot: "momentum" (only when momentum > 0)."""

    slot_names = ("momentum",)

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = _check_fraction(momentum, "SGD: momentum")
        self.nesterov = bool(nesterov)

    def _slot_specs(self):
        return [(self.momentum > 0, 0.0)]

    def _update(self, var, grad, slots, scalars):
        _updates.sgd_update(var, grad, slots[0], scalars, momentum=self.momentum, nesterov=self.nesterov)


class Adam(Optimizer):
    """Adam as in Keras 3: m += (1 - b1)(g - m), v += (1 - b2)(g^2 - v),
    p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon), t the step from 1;
    with amsgrad, v is replaced by its running maximum. Slots: "m", "v" (and "vhat")."""

    slot_names = ("m", "v", "vhat")
    _weight_decay = 0.0

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = _check_fraction(beta_1, f"{type(self).__name__}: beta_1")
        self.beta_2 = _check_fraction(beta_2, f"{type(self).__name__}: beta_2")
        self.epsilon = _check_positive(epsilon, f"{type(self).__name__}: epsilon")
        self.amsgrad = bool(amsgrad)

    def _slot_specs(self):
        return [(True, 0.0), (True, 0.0), (self.amsgrad, 0.0)]

    def _step_scalars(self, lr, step):
        """[alpha, decay]: the bias-corrected step size lr * sqrt(1 - b2^t) / (1 - b1^t) and
        AdamW's lr * weight_decay, in Python floats."""
        alpha = lr * math.sqrt(1.0 - self.beta_2 ** step) / (1.0 - self.beta_1 ** step)
        return [alpha, lr * self._weight_decay]

    def _update(self, var, grad, slots, scalars):
        m, v, vhat = slots
        _updates.adam_update(var, grad, m, v, vhat, scalars, beta_1=self.beta_1, beta_2=self.beta_2,
                             epsilon=self.epsilon, weight_decay=self._weight_decay)


class AdamW(Adam):
    """Adam with decoupled weight decay (Keras 3): p -= lr * weight_decay * p before the
    Adam step. Defaults as Keras: learning_rate 0.001, weight_decay 0.004."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, **kwargs)
        self._weight_decay = _check_positive(weight_decay, "AdamW: weight_decay", allow_zero=True)

    @property
    def weight_decay(self):
        return self._weight_decay


class RMSprop(Optimizer):
    """RMSprop as in Keras 3: v = rho v + (1 - rho) g^2, p -= lr g / sqrt(v + epsilon);
    centered subtracts the squared running mean of g inside the root; momentum accumulates
    the increments. Slots: "velocity" (and "average_gradient", "momentum")."""

    slot_names = ("velocity", "average_gradient", "momentum")

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = _check_fraction(rho, "RMSprop: rho")
        self.momentum = _check_fraction(momentum, "RMSprop: momentum")
        self.epsilon = _check_positive(epsilon, "RMSprop: epsilon")
        self.centered = bool(centered)

    def _slot_specs(self):
        return [(True, 0.0), (self.centered, 0.0), (self.momentum > 0, 0.0)]

    def _update(self, var, grad, slots, scalars):
        velocity, average_grad, moment = slots
        _updates.rmsprop_update(var, grad, velocity, average_grad, moment, scalars, rho=self.rho,
                                momentum=self.momentum, epsilon=self.epsilon)


class Adagrad(Optimizer):
    """Adagrad as in Keras 3: acc += g^2, p -= lr g / sqrt(acc + epsilon), the accumulator
    starting at `initial_accumulator_value`. Slot: "accumulator"."""

    slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = _check_positive(
            initial_accumulator_value, "Adagrad: initial_accumulator_value", allow_zero=True)
        self.epsilon = _check_positive(epsilon, "Adagrad: epsilon")

    def _slot_specs(self):
        return [(True, self.initial_accumulator_value)]

    def _update(self, var, grad, slots, scalars):
        _updates.adagrad_update(var, grad, slots[0], scalars, epsilon=self.epsilon)


# ---------------------------------------------------------------------------------------
# Learning-rate schedules: callables of the step (0 for the first update), with the formulas
# and argument names of keras.optimizers.schedules. An optimizer calls one on the host at
# each update (a gg.function replay too) and checks the value it returns.

def _check_steps(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite positive number, got {value!r}")
    return value


def _check_step(step, what):
    if isinstance(step, bool) or not isinstance(step, numbers.Real) or not step >= 0:
        raise ValueError(f"{what}: the step must be a non-negative number, got {step!r}")
    return float(step)


class LearningRateSchedule:
    """Base class of the schedules: `schedule(step)` is the learning rate (a Python float) at
    `step`; `get_config()` the arguments it was made with."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        return dict(self._config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"gg.optimizers.{type(self).__name__}({args})"


class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate * decay_rate ** (step / decay_steps); with staircase, the
    exponent is floor(step / decay_steps), so the rate drops every decay_steps steps."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = _check_positive(initial_learning_rate, "ExponentialDecay: initial_learning_rate",
                                                     allow_zero=True)
        self.decay_steps = _check_steps(decay_steps, "ExponentialDecay: decay_steps")
        self.decay_rate = _check_positive(decay_rate, "ExponentialDecay: decay_rate")
        self.staircase = bool(staircase)
        self._config = dict(initial_learning_rate=initial_learning_rate, decay_steps=decay_steps,
                            decay_rate=decay_rate, staircase=self.staircase)

    def __call__(self, step):
        p = _check_step(step, "ExponentialDecay") / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p


class InverseTimeDecay(LearningRateSchedule):
    """initial_learning_rate / (1 + decay_rate * step / decay_steps) (floor(step / decay_steps)
    with staircase)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = _check_positive(initial_learning_rate, "InverseTimeDecay: initial_learning_rate",
                                                     allow_zero=True)
        self.decay_steps = _check_steps(decay_steps, "InverseTimeDecay: decay_steps")
        self.decay_rate = _check_positive(decay_rate, "InverseTimeDecay: decay_rate", allow_zero=True)
        self.staircase = bool(staircase)
        self._config = dict(initial_learning_rate=initial_learning_rate, decay_steps=decay_steps,
                            decay_rate=decay_rate, staircase=self.staircase)

    def __call__(self, step):
        p = _check_step(step, "InverseTimeDecay") / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate / (1.0 + self.decay_rate * p)


class PolynomialDecay(LearningRateSchedule):
    """(initial_learning_rate - end_learning_rate) * (1 - step / decay_steps) ** power
    + end_learning_rate, the step held at decay_steps afterwards; with cycle, decay_steps
    grows to the next multiple of itself past the step instead, as in Keras."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0, cycle=False):
        self.initial_learning_rate = _check_positive(initial_learning_rate, "PolynomialDecay: initial_learning_rate",
                                                     allow_zero=True)
        self.decay_steps = _check_steps(decay_steps, "PolynomialDecay: decay_steps")
        self.end_learning_rate = _check_positive(end_learning_rate, "PolynomialDecay: end_learning_rate",
                                                 allow_zero=True)
        self.power = _check_positive(power, "PolynomialDecay: power")
        self.cycle = bool(cycle)
        self._config = dict(initial_learning_rate=initial_learning_rate, decay_steps=decay_steps,
                            end_learning_rate=end_learning_rate, power=power, cycle=self.cycle)

    def __call__(self, step):
        step = _check_step(step, "PolynomialDecay")
        decay_steps = self.decay_steps
        if self.cycle:
            decay_steps = decay_steps * (1.0 if step == 0 else math.ceil(step / decay_steps))
        else:
            step = min(step, decay_steps)
        fraction = 1.0 - step / decay_steps
        return (self.initial_learning_rate - self.end_learning_rate) * fraction ** self.power + self.end_learning_rate


class CosineDecay(LearningRateSchedule):
    """Cosine decay from initial_learning_rate over decay_steps to alpha times it, then
    constant, as in Keras 3:

        lr(step) = initial_learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha),
        s = min(step, decay_steps).

    With warmup_target, a linear warmup comes first: from initial_learning_rate to
    warmup_target over warmup_steps steps, then the cosine decay from warmup_target (its
    step counted from the end of the warmup).
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = _check_positive(initial_learning_rate, "CosineDecay: initial_learning_rate",
                                                     allow_zero=True)
        self.decay_steps = _check_steps(decay_steps, "CosineDecay: decay_steps")
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha <= 1:
            raise ValueError(f"CosineDecay: alpha must be a number in [0, 1], got {alpha!r}")
        self.alpha = float(alpha)
        self.warmup_target = None if warmup_target is None else _check_positive(
            warmup_target, "CosineDecay: warmup_target", allow_zero=True)
        self.warmup_steps = _check_positive(warmup_steps, "CosineDecay: warmup_steps", allow_zero=True)
        self._config = dict(initial_learning_rate=initial_learning_rate, decay_steps=decay_steps, alpha=alpha,
                            warmup_target=warmup_target, warmup_steps=warmup_steps)

    def _decay(self, step, decay_from):
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return decay_from * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        step = _check_step(step, "CosineDecay")
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            return _linear(self.initial_learning_rate, self.warmup_target, step / self.warmup_steps)
        return self._decay(step - self.warmup_steps, self.warmup_target)


def _linear(start, end, fraction):
    return start + (end - start) * fraction


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] while step <= boundaries[0], values[1] while step <= boundaries[1], ...,
    values[-1] after the last boundary (len(values) == len(boundaries) + 1, boundaries
    increasing), as in Keras."""

    def __init__(self, boundaries, values):
        boundaries, values = list(boundaries), list(values)
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"PiecewiseConstantDecay: values must have one more entry than boundaries, got "
                             f"{len(boundaries)} boundaries and {len(values)} values")
        for b in boundaries:
            if isinstance(b, bool) or not isinstance(b, numbers.Real) or not math.isfinite(b):
                raise ValueError(f"PiecewiseConstantDecay: boundaries must be finite numbers, got {boundaries!r}")
        if any(a >= b for a, b in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay: boundaries must increase, got {boundaries!r}")
        self.boundaries = boundaries
        self.values = [_check_positive(v, "PiecewiseConstantDecay: each value", allow_zero=True) for v in values]
        self._config = dict(boundaries=boundaries, values=values)

    def __call__(self, step):
        step = _check_step(step, "PiecewiseConstantDecay")
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]


class LinearWarmup(LearningRateSchedule):
    """A linear warmup in front of a learning rate: from initial_learning_rate (0 by default)
    up to warmup_target over warmup_steps steps, then warmup_target: a number, or a schedule
    called with the step counted from the end of the warmup (its value at 0 is the target),
    as Keras 3's CosineDecay warms up:

        lr(step) = initial_learning_rate + (target - initial_learning_rate) * step / warmup_steps  (step < warmup_steps)
        lr(step) = warmup_target(step - warmup_steps), or warmup_target if a number            (afterwards)
    """

    def __init__(self, warmup_target, warmup_steps, initial_learning_rate=0.0):
        if not callable(warmup_target):
            warmup_target = _check_positive(warmup_target, "LinearWarmup: warmup_target", allow_zero=True)
        self.warmup_target = warmup_target
        self.warmup_steps = _check_steps(warmup_steps, "LinearWarmup: warmup_steps")
        self.initial_learning_rate = _check_positive(initial_learning_rate, "LinearWarmup: initial_learning_rate",
                                                     allow_zero=True)
        self._config = dict(warmup_target=warmup_target, warmup_steps=warmup_steps,
                            initial_learning_rate=initial_learning_rate)

    def _target(self, step):
        target = self.warmup_target
        return float(target(step)) if callable(target) else target

    def __call__(self, step):
        step = _check_step(step, "LinearWarmup")
        if step < self.warmup_steps:
            return _linear(self.initial_learning_rate, self._target(0), step / self.warmup_steps)
        return self._target(step - self.warmup_steps)


# ---------------------------------------------------------------------------------------
# Optimizers by name

_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}


def get(identifier, **kwargs):
    """An optimizer from its name, as keras.optimizers.get: get("adam"), get("sgd",
    learning_rate=0.1, momentum=0.9) (the keyword arguments go to the constructor). Names
    are case-insensitive: "sgd", "adam", "adamw", "rmsprop", "adagrad". An Optimizer is
    returned as it is (no keyword arguments then)."""
    if isinstance(identifier, Optimizer):
        if kwargs:
            raise TypeError(f"get: keyword arguments {sorted(kwargs)} for an optimizer that already exists")
        return identifier
    if not isinstance(identifier, str):
        raise TypeError(f"get: expected an optimizer name (a str) or an Optimizer, got {type(identifier).__name__}")
    cls = _BY_NAME.get(identifier.lower())
    if cls is None:
        raise ValueError(f"get: unknown optimizer {identifier!r}; the names are "
                         + ", ".join(repr(n) for n in _BY_NAME))
    return cls(**kwargs)
