"""Numerical derivative checks: central differences on the host, in float64."""
from . import backend as _backend
from .tape import GradientTape
from .tensor import Tensor, Variable, constant

_np = _backend.backend_of("cpu").xp  # checks always run on the host, in float64


class GradcheckError(AssertionError):
    """A tape gradient disagreed with central differences; the message names the input,
    the worst element and both values."""


def _host(value):
    """A Python number stays as it is; Tensors, Variables and arrays become float64 arrays."""
    if type(value) is Tensor or type(value) is Variable:
        return value.numpy().astype(_np.float64)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return _np.asarray(value, dtype=_np.float64)


def approximate_derivative(f, x, eps=1e-3):
    """(f(x + eps) - f(x - eps)) / (2 eps): the derivative of a scalar function at x.

    Python floats stay Python floats; arrays (and Tensors) are evaluated in float64,
    elementwise."""
    x = _host(x)
    return (_host(f(x + eps)) - _host(f(x - eps))) / (2. * eps)


def approximate_gradient(f, *xs, eps=1e-3):
    """Central-difference partial derivatives of a scalar function, one entry per argument
    (elementwise, an array of the argument's shape, for array arguments)."""
    xs = [_host(x) for x in xs]
    grads = []
    for i, x in enumerate(xs):
        def partial(v, i=i):
            return f(*xs[:i], v, *xs[i + 1:])
        if isinstance(x, (int, float)):
            grads.append(approximate_derivative(partial, x, eps))
            continue
        grad = _np.zeros(x.shape, dtype=_np.float64)
        for j in _np.ndindex(*x.shape):
            def along(t, j=j):
                moved = x.copy()
                moved[j] = t
                return partial(moved)
            grad[j] = approximate_derivative(along, float(x[j]), eps)
        grads.append(grad)
    return tuple(grads)


def gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-3):
    """Compare tape gradients of `f(*inputs)` with central differences, in float64.

    A non-scalar output is reduced to sum(w * f(...)) with fixed random weights w, which
    checks every output element at once. Returns True, or raises GradcheckError naming the
    input, the worst element and both values.
    """
    if type(inputs) is Tensor or type(inputs) is Variable or not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    xs = [constant(_host(x), dtype=_np.float64) for x in inputs]
    with GradientTape() as tape:
        tape.watch(xs)
        y = f(*xs)
    weights = _np.random.default_rng(0).normal(size=_np.shape(_host(y))) + 1.0
    analytic = tape.gradient(y, xs, output_gradients=constant(weights, dtype=y.dtype, device=y.device))

    def objective(*values):
        return float(_np.sum(weights * _host(f(*[constant(v, dtype=_np.float64) for v in values]))))

    hosts = [x.numpy() for x in xs]
    for index, (x, grad) in enumerate(zip(hosts, analytic)):
        grad = _np.zeros_like(x) if grad is None else grad.numpy()
        if grad.shape != x.shape:
            raise GradcheckError(f"input {index}: gradient shape {grad.shape} != input shape {x.shape}")
        numeric = _np.zeros_like(x)
        for j in _np.ndindex(*x.shape):
            plus, minus = x.copy(), x.copy()
            plus[j] += eps
            minus[j] -= eps
            numeric[j] = (objective(*hosts[:index], plus, *hosts[index + 1:])
                          - objective(*hosts[:index], minus, *hosts[index + 1:])) / (2 * eps)
        excess = _np.abs(grad - numeric) - (atol + rtol * _np.abs(numeric))
        if excess.size and (excess.max() > 0 or not _np.all(_np.isfinite(grad))):
            worst = _np.unravel_index(_np.argmax(_np.where(_np.isfinite(excess), excess, _np.inf)), x.shape)
            raise GradcheckError(f"input {index} of shape {x.shape}: at element {tuple(int(w) for w in worst)} "
                                 f"the tape gives {grad[worst]!r} but central differences give "
                                 f"{numeric[worst]!r} (atol={atol}, rtol={rtol})")
    return True
