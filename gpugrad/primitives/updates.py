"""The optimizers' updates as in-place primitives (kind "update"), one per optimizer: the
xp reference of each, which the fused kernels of cuda_kernels/<name>.cu must match (they
are registered with `impl("cuda", ...)` in cuda.py).

Each takes the variable, its gradient, its state slots (None for a state the optimizer's
settings leave unused) and `scalars`: a 1-D float64 array, on the variable's device, of
the values that change from step to step (the learning rate, Adam's bias-corrected step
size). They are read from memory, not passed as numbers, so that a replayed or
graph-captured step sees each step's values. Hyperparameters fixed for the optimizer's
life (momentum, betas, epsilon) are static parameters. Every value is rounded to the
variable's dtype before use, and the operations run in the order the docstrings give,
each rounded to the variable's dtype, as NumPy does with a Python float operand.
"""
from ..backend import host_array_type, xp_of
from ..dispatch import primitive

_ndarray = host_array_type()


def _scalar(scalars, index, like):
    """scalars[index] as the variable's arithmetic sees it: rounded to the dtype of `like`.
    On the host, a Python float, which NumPy rounds to the array's dtype as a weak scalar
    (the same value as the cast, and cheaper); on a device, a 0-d array of that dtype, so
    that nothing is read back to the host."""
    if type(scalars) is _ndarray:
        return scalars.item(index)
    return scalars[index].astype(like.dtype)


@primitive(kind="update", writes=(0, 2))
def sgd_update(param, grad, velocity, scalars, *, momentum, nesterov):
    """scalars = [lr]. step = lr * g; without momentum (velocity None): p -= step; else
    v = v * momentum - step and p += v, or with nesterov p += momentum * v - step."""
    step = _scalar(scalars, 0, param) * grad
    if velocity is None:
        param -= step
        return
    velocity *= momentum
    velocity -= step
    if nesterov:
        param += momentum * velocity - step
    else:
        param += velocity


@primitive(kind="update", writes=(0, 2, 3, 4))
def adam_update(param, grad, m, v, vhat, scalars, *, beta_1, beta_2, epsilon, weight_decay):
    """scalars = [alpha, decay]: alpha = lr * sqrt(1 - b2^t) / (1 - b1^t) for step t >= 1,
    decay = lr * weight_decay. p -= decay * p (only when weight_decay, AdamW);
    m += (1 - b1)(g - m); v += (1 - b2)(g * g - v); with amsgrad (vhat not None)
    vhat = max(vhat, v), NaN winning, and vhat replaces v below; p -= alpha * m / (sqrt(v) + eps)."""
    xp = xp_of(param)
    if weight_decay:
        param -= _scalar(scalars, 1, param) * param
    m += (1.0 - beta_1) * (grad - m)
    v += (1.0 - beta_2) * (grad * grad - v)
    if vhat is not None:
        xp.maximum(vhat, v, out=vhat)
        v = vhat
    param -= _scalar(scalars, 0, param) * m / (xp.sqrt(v) + epsilon)


@primitive(kind="update", writes=(0, 2, 3, 4))
def rmsprop_update(param, grad, velocity, average_grad, moment, scalars, *, rho, momentum, epsilon):
    """scalars = [lr]. v = rho v + (1 - rho) g^2; centered (average_grad not None):
    a = rho a + (1 - rho) g and d = v - a^2 + eps, else d = v + eps; inc = lr g / sqrt(d);
    with momentum (moment not None): m = momentum m + inc and p -= m; else p -= inc."""
    velocity *= rho
    velocity += (1.0 - rho) * (grad * grad)
    if average_grad is not None:
        average_grad *= rho
        average_grad += (1.0 - rho) * grad
        denominator = velocity - average_grad * average_grad + epsilon
    else:
        denominator = velocity + epsilon
    increment = _scalar(scalars, 0, param) * grad / xp_of(param).sqrt(denominator)
    if moment is not None:
        moment *= momentum
        moment += increment
        increment = moment
    param -= increment


@primitive(kind="update", writes=(0, 2))
def adagrad_update(param, grad, accumulator, scalars, *, epsilon):
    """scalars = [lr]. acc += g^2; p -= lr g / sqrt(acc + eps)."""
    accumulator += grad * grad
    param -= _scalar(scalars, 0, param) * grad / xp_of(param).sqrt(accumulator + epsilon)
