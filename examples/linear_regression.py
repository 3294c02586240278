"""Linear regression y = 3x + 2 with per-sample gradient steps, as in the TensorFlow 2
tutorial on tf.gradients that this project grew from, spelled the gpugrad way.

32 noisy samples (x an integer in [-10, 100) plus N(0, 0.1^2) noise), w = 2 and b = 1 to
start, the loss (y - (w x + b))^2 / (2 * 32) of one sample at a time, SGD with learning
rate 0.01, one step per sample; prints the epoch, the loss and d loss / d w before each step,
as the tutorial does. Its figures (loss 94.6083 and gradient -187.66 at epoch 0) came from
unseeded random data, so only their pattern repeats here: a large first loss, oscillating
gradients, then both shrinking as w approaches 3.

b does not get near 2 in these steps, and the example says so: its gradient is about x
times smaller than w's (x reaches 100 here), so it moves by less than 0.001 a step, and a
learning rate large enough to move b faster makes w diverge (0.02 already does). The last
lines compare w and b with the true 3 and 2 and with the least-squares fit of the same 32
noisy samples (the best any training on them can do), and say whether training converged.

    python examples/linear_regression.py [--epochs 20] [--seed 0] [--device cpu|cuda]
"""
import argparse

import numpy as np

import gpugrad as gg


def make_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20,
                        help="samples to step through, one SGD step each, as the tutorial's epochs (1 to 32, default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random samples (default 0)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: the best device available)")
    return parser


def main():
    parser = make_parser()
    args = parser.parse_args()
    if not 1 <= args.epochs <= 32:
        parser.error(f"--epochs must be between 1 and 32, got {args.epochs}")
    if args.device:
        try:
            gg.set_default_device(args.device)
        except (RuntimeError, ValueError) as error:  # an unknown device, or no GPU: one line, no traceback
            parser.error(str(error))

    # The data as the tutorial makes it, from a seeded generator.
    rng = np.random.default_rng(args.seed)
    x_pure = rng.integers(-10, 100, 32)
    x_data = x_pure + rng.standard_normal(32) / 10
    y_data = 3 * x_pure + 2 + rng.standard_normal(32) / 10
    x_train = gg.constant(x_data, dtype=gg.float32)
    y_train = gg.constant(y_data, dtype=gg.float32)

    w = gg.Variable(2.0, name="weight")
    b = gg.Variable(1.0, name="biases")
    optimizer = gg.optimizers.SGD(0.01)
    for i in range(args.epochs):
        x, y_true = x_train[i], y_train[i]
        with gg.GradientTape() as tape:
            y = x * w + b
            loss = gg.reduce_sum((y_true - y) ** 2) / (2 * 32)
        grad_w, grad_b = tape.gradient(loss, [w, b])
        optimizer.apply_gradients([(grad_w, w), (grad_b, b)])
        print(f"epoch: {i} \t loss: {float(loss):.10g} \t gradients: [{float(grad_w):.8g}]")

    # The best fit of these samples: x's noise makes it differ a little from the true 3 and 2.
    (w_best, b_best), *_ = np.linalg.lstsq(np.stack([x_data, np.ones(32)], axis=1), y_data, rcond=None)
    w_end, b_end = float(w), float(b)
    print(f"w = {w_end:.4f}, b = {b_end:.4f}; the data follow y = 3x + 2, and least squares on these "
          f"{len(x_data)} samples gives w = {w_best:.4f}, b = {b_best:.4f}")
    off = [f"{name} is {abs(end - best):.2f} from its best fit"
           for name, end, best, tolerance in (("w", w_end, w_best, 0.05), ("b", b_end, b_best, 0.25))
           if abs(end - best) > tolerance]
    if off:
        print(f"not converged: {' and '.join(off)}. In {args.epochs} steps b moved by {b_end - 1:+.4f}: its "
              f"gradient is about x times smaller than w's (x reaches {x_pure.max()} here), and a learning rate "
              f"large enough to move b faster makes w diverge.")
    else:
        print("converged: w and b are within 0.05 and 0.25 of the least-squares fit")


if __name__ == "__main__":
    main()
