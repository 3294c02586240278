"""Linear regression y = 3x + 2 with per-sample gradient steps, as in the TensorFlow 2
tutorial on tf.gradients that this project grew from, spelled the gpugrad way.

32 noisy samples (x an integer in [-10, 100) plus N(0, 0.1^2) noise), w = 2 and b = 1 to
start, the loss (y - (w x + b))^2 / (2 * 32) of one sample at a time, SGD with learning
rate 0.01, one step per sample; prints the epoch, the loss and d loss / d w before each step,
as the tutorial does. Its figures (loss 94.6083 and gradient -187.66 at epoch 0) came from
unseeded random data, so only their pattern repeats here: a large first loss, oscillating
gradients, then both shrinking as w and b approach 3 and 2.

    python examples/linear_regression.py [--epochs 20] [--seed 0] [--device cpu|cuda]
"""
import argparse

import numpy as np

import gpugrad as gg


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="samples to step through (at most 32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", help="cpu or cuda (default: the best device available)")
    args = parser.parse_args()
    if not 1 <= args.epochs <= 32:
        parser.error(f"--epochs must be between 1 and 32, got {args.epochs}")
    if args.device:
        gg.set_default_device(args.device)

    # The data as the tutorial makes it, from a seeded generator.
    rng = np.random.default_rng(args.seed)
    x_pure = rng.integers(-10, 100, 32)
    x_train = gg.constant(x_pure + rng.standard_normal(32) / 10, dtype=gg.float32)
    y_train = gg.constant(3 * x_pure + 2 + rng.standard_normal(32) / 10, dtype=gg.float32)

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
    print(f"w = {float(w):.4f}, b = {float(b):.4f} (the data follow y = 3x + 2; b's gradient is about x times "
          f"smaller than w's, so b moves slowly)")


if __name__ == "__main__":
    main()
