"""A tour of derivatives in gpugrad: every numeric result that the TensorFlow 2 tutorials
this project grew from quote for tensors, variables, GradientTape, gradients, stop_gradient
and numerical derivatives, printed beside the value gpugrad computes. Each line is labelled
with its topic: compute_gradients, tf.gradients, gradient step, numerical derivatives,
GradientTape, Variables, or tapes on Variables.

    python examples/derivatives_tour.py [--device cpu|cuda]

Exits with status 1 if any value differs from the tutorial's (beyond float32 rounding).
The gradients the compute_gradients tutorial prints for its trained network depend on
random weights and data; they come with the training example
(examples/two_layer_regression.py).
"""
import argparse
import sys

import numpy as np

import gpugrad as gg

results = []


def show(value):
    if value is None:
        return "None"
    if isinstance(value, (gg.Tensor, gg.Variable)):
        value = value.numpy()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, np.ndarray):
        return np.array2string(value, separator=", ") if value.ndim else repr(value.item())
    return repr(value)


def same(expected, got):
    if expected is None or got is None:
        return expected is None and got is None
    if isinstance(expected, str):
        return expected == got
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        return len(got) == len(expected) and all(same(e, g) for e, g in zip(expected, got))
    got = got.numpy() if isinstance(got, (gg.Tensor, gg.Variable)) else got
    return np.shape(got) == np.shape(expected) and np.allclose(got, expected, rtol=1e-6, atol=1e-6)


def check(topic, what, expected, got):
    ok = same(expected, got)
    results.append(ok)
    print(f"[{'ok' if ok else 'MISMATCH'}] {topic}  {what}\n"
          f"        tutorial: {show(expected) if not isinstance(expected, str) else expected}\n"
          f"        gpugrad:  {show(got) if not isinstance(got, str) else got}")


def compute_gradients():
    # y = w * x^2 at x = 5, w = 1: dy/dw = x^2 = 25, dy/dx = 2wx = 10.
    x = gg.Variable(5.0)
    w = gg.Variable(1.0)
    with gg.GradientTape() as tape:
        y = w * x ** 2
    dw, dx = tape.gradient(y, [w, x])
    check("compute_gradients", "compute_gradients(w*x**2, [w, x]) as (grad, value)",
          [(25.0, 1.0), (10.0, 5.0)], [(dw, w), (dx, x)])


def tf_gradients():
    w1, w2, w3, w4 = (gg.Variable(gg.random.normal([3], seed=i)) for i in range(4))
    with gg.GradientTape() as tape:
        z1 = 3 * w1 + 2 * w2 + w3
        z2 = -1 * w3 + w4
    check("tf.gradients", "gradients([z1, z2], [w1, w2, w3, w4])",
          [[3, 3, 3], [2, 2, 2], [0, 0, 0], [1, 1, 1]], gg.gradients([z1, z2], [w1, w2, w3, w4]))
    check("tf.gradients", "... with grad_ys=[[-2, -3, -4], [-2, -3, -4]]",
          [[-6, -9, -12], [-4, -6, -8], [0, 0, 0], [-2, -3, -4]],
          gg.gradients([z1, z2], [w1, w2, w3, w4], grad_ys=[[-2.0, -3.0, -4.0], [-2.0, -3.0, -4.0]]))

    a = gg.constant(0.0)
    with gg.GradientTape() as tape:
        tape.watch(a)
        b = 2 * a
        c = a + b
    check("tf.gradients", "gradients(a + b, [a, b]) with b = 2a", [3.0, 1.0], gg.gradients(c, [a, b]))
    check("tf.gradients", "... with stop_gradients=[a, b]", [1.0, 1.0],
          gg.gradients(c, [a, b], stop_gradients=[a, b]))

    a = gg.stop_gradient(gg.constant(0.0))
    with gg.GradientTape() as tape:
        tape.watch(a)
        b = gg.stop_gradient(2 * a)
        tape.watch(b)
        c = a + b
    check("tf.gradients", "the same with gg.stop_gradient on a and b", [1.0, 1.0], gg.gradients(c, [a, b]))


def gradient_step():
    x = gg.constant([-1, -2], dtype=gg.float32)
    w = gg.Variable([2.0, 3.0])
    with gg.GradientTape() as tape:
        y = w * x
        cost = y[1] * y
    grad = tape.gradient(cost, w)
    check("gradient step", "d(Y[1] * Y)/dw at w = [2, 3]", [6.0, 28.0], grad)
    w.assign_sub(1.0 * grad)
    check("gradient step", "w after one gradient step with learning rate 1", [-4.0, -25.0], w)

    x, y = gg.Variable(3.0), gg.Variable(4.0)
    with gg.GradientTape() as tape:
        f = x * x * y + y + 2
    check("gradient step", "f = x^2 y + y + 2 at (3, 4): df/dx, df/dy", [24.0, 10.0], tape.gradient(f, [x, y]))


def f(x):
    return 3.0 * x ** 2 + 2.0 * x - 1


def g(x1, x2):
    return (x1 + 5) * (x2 ** 2)


def numerical_derivatives():
    check("numerical derivatives", "approximate_derivative(f, 1.)", 7.999999999999119,
          gg.approximate_derivative(f, 1.0))
    got = gg.approximate_gradient(g, 2.0, 3.0)
    check("numerical derivatives", "approximate_gradient(g, 2., 3.)", (8.999999999993236, 41.999999999994486),
          got)
    exact = got == (8.999999999993236, 41.999999999994486)
    results.append(exact)
    print(f"[{'ok' if exact else 'MISMATCH'}] numerical derivatives  ... and to the last digit: {exact}")


def gradient_tape():
    x1, x2 = gg.Variable(2.0), gg.Variable(3.0)
    with gg.GradientTape() as tape:
        z = g(x1, x2)
    check("GradientTape", "tape.gradient(z, x1)", 9.0, tape.gradient(z, x1))
    try:
        tape.gradient(z, x2)
        message = "no error"
    except RuntimeError as error:
        message = str(error)
    check("GradientTape", "a second gradient call on a non-persistent tape",
          "A non-persistent GradientTape can only be used to compute one set of gradients (or jacobians)", message)

    with gg.GradientTape(persistent=True) as tape:
        z = g(x1, x2)
    check("GradientTape", "persistent tape: dz/dx1, dz/dx2", [9.0, 42.0],
          [tape.gradient(z, x1), tape.gradient(z, x2)])
    del tape

    with gg.GradientTape() as tape:
        z = g(x1, x2)
    check("GradientTape", "tape.gradient(z, [x1, x2])", [9.0, 42.0], tape.gradient(z, [x1, x2]))

    c1, c2 = gg.constant(2.0), gg.constant(3.0)
    with gg.GradientTape() as tape:
        z = g(c1, c2)
    check("GradientTape", "gradient with respect to constants", [None, None], tape.gradient(z, [c1, c2]))
    with gg.GradientTape() as tape:
        tape.watch(c1)
        tape.watch(c2)
        z = g(c1, c2)
    check("GradientTape", "... after tape.watch", [9.0, 42.0], tape.gradient(z, [c1, c2]))

    x = gg.Variable(5.0)
    with gg.GradientTape() as tape:
        z1 = 3 * x
        z2 = x ** 2
    check("GradientTape", "tape.gradient([z1, z2], x) with z1 = 3x, z2 = x^2", 13.0, tape.gradient([z1, z2], x))

    with gg.GradientTape(persistent=True) as outer:
        with gg.GradientTape(persistent=True) as inner:
            z = g(x1, x2)
        inner_grads = inner.gradient(z, [x1, x2])
    outer_grads = [outer.gradient(inner_grad, [x1, x2]) for inner_grad in inner_grads]
    check("GradientTape", "second derivatives through nested tapes", [[None, 6.0], [6.0, 14.0]], outer_grads)

    x = gg.Variable(0.0)
    for _ in range(100):
        with gg.GradientTape() as tape:
            z = f(x)
        x.assign_sub(0.1 * tape.gradient(z, x))
    check("GradientTape", "100 steps of gradient descent on f from 0, learning rate 0.1", -0.3333333, x)


def variables():
    for label, value, dtype, expected in [
            ("Variable(3)", 3, None, ("int32", 3)),
            ("Variable([1, 2])", [1, 2], None, ("int32", [1, 2])),
            ("Variable(3.)", 3.0, None, ("float32", 3.0)),
            ("Variable([1, 2], dtype=float64)", [1, 2], gg.float64, ("float64", [1.0, 2.0])),
            ("Variable(constant([[1, 2], [3, 4]]))", gg.constant([[1, 2], [3, 4]]), None,
             ("int32", [[1, 2], [3, 4]])),
            ("Variable(zeros([2, 3]))", gg.zeros([2, 3]), None, ("float32", [[0, 0, 0], [0, 0, 0]]))]:
        v = gg.Variable(value, dtype=dtype)
        check("Variables", f"{label}: dtype", expected[0], str(v.dtype))
        check("Variables", f"{label}: value", expected[1], v)
    v = gg.Variable(np.array([1, 2]))
    print(f"[note] Variables  Variable(np.array([1, 2])): TensorFlow shows int32; gpugrad keeps the "
          f"array's dtype ({v.dtype}): arrays keep their dtype, only Python numbers and lists get int32")

    x = gg.Variable([1, 2])
    check("Variables", "x.shape, x.dtype", "(2,) int32", f"{x.shape} {x.dtype}")
    check("Variables", "x.trainable", "True", str(x.trainable))
    check("Variables", "x.assign([3, 4])", [3, 4], x.assign([3, 4]))
    check("Variables", "x.assign_add([1, 1])", [4, 5], x.assign_add([1, 1]))
    check("Variables", "x.assign_add([1, 1]) again", [5, 6], x.assign_add([1, 1]))
    a = gg.constant(2)
    for attribute in ("assign", "trainable"):
        try:
            getattr(a, attribute)
            outcome = "no error"
        except AttributeError:
            outcome = "AttributeError"
        check("Variables", f"constant.{attribute}", "AttributeError", outcome)
    a = gg.range(5)
    x = gg.Variable(a)
    check("Variables", "isinstance(a, (Tensor, Variable)), isinstance(x, ...)", "(True, False) (False, True)",
          f"{(isinstance(a, gg.Tensor), isinstance(a, gg.Variable))} "
          f"{(isinstance(x, gg.Tensor), isinstance(x, gg.Variable))}")


def tapes_on_variables():
    x = gg.Variable(3.0)
    with gg.GradientTape() as tape:
        y = gg.square(x)
    check("tapes on Variables", "y = x^2 at 3 and dy/dx", [9.0, 6.0], [y, tape.gradient(y, x)])

    with gg.GradientTape(persistent=True) as tape:
        y = gg.square(x)
        z = pow(x, 3)
    check("tapes on Variables", "persistent: y, dy/dx, z = x^3, dz/dx", [9.0, 6.0, 27.0, 27.0],
          [y, tape.gradient(y, x), z, tape.gradient(z, x)])
    del tape

    with gg.GradientTape(watch_accessed_variables=False) as tape:
        y = gg.square(x)
    check("tapes on Variables", "watch_accessed_variables=False", None, tape.gradient(y, x))
    with gg.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        y = gg.square(x)
    check("tapes on Variables", "... with tape.watch(x)", 6.0, tape.gradient(y, x))
    c = gg.constant(3.0)
    with gg.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(c)
        y = gg.square(c)
    check("tapes on Variables", "watching a constant", 6.0, tape.gradient(y, c))

    x, y = gg.Variable(3.0), gg.Variable(4.0)
    with gg.GradientTape() as tape:
        f_value = gg.square(x) + 2 * gg.square(y) + 1
    check("tapes on Variables", "f = x^2 + 2y^2 + 1 at (3, 4): f, df/dx, df/dy", [42.0, 6.0, 16.0],
          [f_value, *tape.gradient(f_value, [x, y])])

    with gg.GradientTape(persistent=True) as tape2:
        with gg.GradientTape(persistent=True) as tape1:
            f_value = gg.square(x) + 2 * gg.square(y) + 1
            first_grads = tape1.gradient(f_value, [x, y])
        second_grads = [tape2.gradient(first_grads, [x, y])]
    check("tapes on Variables", "first and second derivatives", [[6.0, 16.0], [[2.0, 4.0]]],
          [first_grads, second_grads])

    x, y = gg.Variable([1.0, 2.0, 3.0]), gg.Variable([4.0, 5.0, 6.0])
    with gg.GradientTape() as tape:
        f_value = gg.square(x) + 2 * gg.square(y) + 1
    check("tapes on Variables", "vectors: f, df/dx, df/dy", [[34, 55, 82], [2, 4, 6], [16, 20, 24]],
          [f_value, *tape.gradient(f_value, [x, y])])


def make_parser():
    parser = argparse.ArgumentParser(description="Print the TensorFlow tutorials' derivatives beside gpugrad's.")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: the best device available)")
    return parser


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.device:
        try:
            gg.set_default_device(args.device)
        except (RuntimeError, ValueError) as error:  # an unknown device, or no GPU: one line, no traceback
            parser.error(str(error))
    print(f"gpugrad {gg.__version__} on {gg.get_default_device()}\n")
    for section in (compute_gradients, tf_gradients, gradient_step, numerical_derivatives, gradient_tape,
                    variables, tapes_on_variables):
        section()
    print(f"\n{sum(results)} of {len(results)} values match the tutorials")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
