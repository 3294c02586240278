"""A straight-through sign: gg.custom_gradient gives sign(x), whose derivative is zero
almost everywhere, the gradient of the hard tanh (1 where |x| <= 1, else 0), so that a
model with binary weights can be trained.

The task: recover the signs of a teacher's binary weights from its outputs. The student
keeps real-valued "latent" weights and computes with their signs; with plain gg.sign no
gradient reaches the latent weights and nothing is learned, with the straight-through
sign SGD finds every sign.

    python examples/custom_gradient.py [--steps 300] [--features 32] [--device cpu|cuda]
"""
import argparse

import gpugrad as gg


@gg.custom_gradient
def sign_straight_through(x):
    """sign(x) forward; backward, the upstream gradient where |x| <= 1 (hard tanh)."""
    def grad(upstream):
        return upstream * gg.cast(gg.abs(x) <= 1, upstream.dtype)
    return gg.sign(x), grad


def train(binarize, steps, features, seed):
    teacher = gg.sign(gg.random.normal((features, 1), seed=seed))
    x = gg.random.normal((256, features), seed=seed + 1)
    y = x @ teacher
    latent = gg.Variable(gg.random.normal((features, 1), stddev=0.1, seed=seed + 2), name="latent")
    optimizer = gg.optimizers.SGD(0.01)
    first_grad = None
    for _ in range(steps):
        with gg.GradientTape() as tape:
            loss = gg.reduce_mean(gg.square(x @ binarize(latent) - y))
        grad = tape.gradient(loss, latent)
        first_grad = grad if first_grad is None else first_grad
        optimizer.apply_gradients([(grad, latent)])
    agree = float(gg.reduce_mean(gg.cast(gg.sign(latent) == teacher, gg.float32)))
    return float(loss), float(gg.reduce_max(gg.abs(first_grad))), agree


def make_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="SGD steps for each student (default 300)")
    parser.add_argument("--features", type=int, default=32,
                        help="number of binary teacher weights to recover (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the teacher, the data and the start (default 0)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: the best device available)")
    return parser


def main():
    parser = make_parser()
    args = parser.parse_args()
    if args.steps < 1 or args.features < 1:
        parser.error("--steps and --features must be at least 1")
    if args.device:
        try:
            gg.set_default_device(args.device)
        except (RuntimeError, ValueError) as error:  # an unknown device, or no GPU: one line, no traceback
            parser.error(str(error))
    for name, binarize in (("gg.sign", gg.sign), ("straight-through sign", sign_straight_through)):
        loss, largest_grad, agree = train(binarize, args.steps, args.features, args.seed)
        print(f"{name:<22} final loss {loss:8.4f}   largest first |gradient| {largest_grad:.3g}   "
              f"signs matching the teacher {agree:.0%}")


if __name__ == "__main__":
    main()
