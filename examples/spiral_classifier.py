"""Interleaved spirals classified by a small MLP trained with gg.training.fit (Sequential.fit):
minibatches, Adam, accuracy and a validation split, the Keras way.

Three spiral arms (--classes) of 200 noisy points each (--points), drawn with a seeded NumPy
generator; a fifth of the points is held out for validation. The model is
Dense(64, relu) -> Dense(64, relu) -> Dense(classes, softmax), trained with the sparse
categorical cross-entropy and Adam(0.01) in batches of 32. fit prints one line per epoch
(a progress bar instead in a terminal); at the end the script prints the final training and
validation accuracy and saves the decision boundary and the training curves as PNGs.

    python examples/spiral_classifier.py [--device cpu|cuda] [--epochs 40] [--classes 3] [--out out]
"""
import argparse
import os
import pathlib
import time

import numpy as np

import gpugrad as gg
from gpugrad import training


def make_spirals(classes, points, noise, seed):
    """`points` samples per class along `classes` interleaved spiral arms in [-1, 1]^2:
    (x float32 of shape (classes * points, 2), labels int64), in a shuffled order."""
    rng = np.random.default_rng(seed)
    xs, labels = [], []
    for k in range(classes):
        radius = np.linspace(0.05, 1.0, points)
        angle = np.linspace(0.0, 2.5 * np.pi, points) + k * 2 * np.pi / classes + rng.normal(0.0, noise, points)
        xs.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        labels.append(np.full(points, k))
    x, labels = np.concatenate(xs).astype(np.float32), np.concatenate(labels).astype(np.int64)
    order = rng.permutation(len(x))
    return x[order], labels[order]


def make_model(classes, hidden, seed):
    return gg.nn.Sequential([
        gg.nn.Dense(hidden, "relu", seed=seed),
        gg.nn.Dense(hidden, "relu", seed=seed + 1),
        gg.nn.Dense(classes, "softmax", seed=seed + 2),
    ], name="spiral_mlp")


def accuracy(model, x, labels):
    """The fraction of points whose most probable class is their label."""
    predicted = gg.argmax(model(x, training=False), axis=-1).numpy()
    return float(np.mean(predicted == labels))


def save_decision_boundary(path, model, x, labels, classes, title):
    import matplotlib
    matplotlib.use("Agg")  # no screen needed
    import matplotlib.pyplot as plt

    grid = np.linspace(-1.15, 1.15, 240, dtype=np.float32)
    gx, gy = np.meshgrid(grid, grid)
    points = np.stack([gx.ravel(), gy.ravel()], axis=1)
    region = gg.argmax(model(points, training=False), axis=-1).numpy().reshape(gx.shape)
    figure, axes = plt.subplots(figsize=(6, 6))
    colors = plt.get_cmap("tab10").colors[:classes]
    axes.contourf(gx, gy, region, levels=np.arange(classes + 1) - 0.5, colors=colors, alpha=0.3)
    for k in range(classes):
        axes.scatter(x[labels == k, 0], x[labels == k, 1], s=10, color=colors[k], edgecolor="k", linewidth=0.3,
                     label=f"class {k}")
    axes.set(xlim=(-1.15, 1.15), ylim=(-1.15, 1.15), aspect="equal", title=title)
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def make_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: the best device available)")
    parser.add_argument("--epochs", type=int, default=40, help="passes over the training points (default 40)")
    parser.add_argument("--classes", type=int, default=3, help="spiral arms, one class each (default 3)")
    parser.add_argument("--points", type=int, default=200, help="points per spiral arm (default 200)")
    parser.add_argument("--noise", type=float, default=0.2,
                        help="standard deviation of the angle noise, in radians (default 0.2)")
    parser.add_argument("--hidden", type=int, default=64, help="units in each of the two hidden layers (default 64)")
    parser.add_argument("--batch-size", type=int, default=32, help="points per training step (default 32)")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate (default 0.01)")
    parser.add_argument("--validation-split", type=float, default=0.2,
                        help="fraction of the points held out for validation (default 0.2)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the data, the initial weights and the batch order (default 0)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out"),
                        help="folder for the two PNGs (default: out)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no line per epoch")
    return parser


def main():
    parser = make_parser()
    args = parser.parse_args()
    for name in ("epochs", "points", "hidden", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.classes < 2:
        parser.error(f"--classes must be at least 2, got {args.classes}")
    if not args.lr > 0:
        parser.error(f"--lr must be a positive number, got {args.lr}")
    if not args.noise >= 0:
        parser.error(f"--noise must be 0 or more, got {args.noise}")
    if not 0 < args.validation_split < 1:
        parser.error(f"--validation-split must lie strictly between 0 and 1, got {args.validation_split}")
    if args.device:
        try:
            gg.set_default_device(args.device)
        except (RuntimeError, ValueError) as error:  # an unknown device, or no GPU: one line, no traceback
            parser.error(str(error))

    x, labels = make_spirals(args.classes, args.points, args.noise, args.seed)
    held_out = max(1, int(round(len(x) * args.validation_split)))
    if held_out >= len(x):
        parser.error(f"--validation-split {args.validation_split} leaves no training points")
    x_train, y_train, x_val, y_val = x[held_out:], labels[held_out:], x[:held_out], labels[:held_out]
    model = make_model(args.classes, args.hidden, args.seed)
    print(f"training a 2 -> {args.hidden} -> {args.hidden} -> {args.classes} MLP on {len(x_train)} spiral points "
          f"({len(x_val)} held out) for {args.epochs} epochs on {gg.get_default_device()}", flush=True)

    started = time.perf_counter()
    history = training.fit(model, "sparse_categorical_crossentropy", gg.optimizers.Adam(args.lr), x_train, y_train,
                           batch_size=args.batch_size, epochs=args.epochs, validation_data=(x_val, y_val),
                           metrics=["accuracy"], seed=args.seed, verbose=not args.quiet)
    seconds = time.perf_counter() - started

    print(f"trained in {seconds:.1f} s")
    print(f"final train accuracy: {accuracy(model, x_train, y_train):.4f}")
    print(f"final validation accuracy: {history['val_accuracy'][-1]:.4f}")

    os.makedirs(args.out, exist_ok=True)
    boundary = args.out / "spiral_decision_boundary.png"
    save_decision_boundary(boundary, model, x, labels, args.classes,
                           f"{args.classes} spirals: validation accuracy {history['val_accuracy'][-1]:.1%}")
    curves = args.out / "spiral_history.png"
    history.plot(curves, title="spiral classifier")
    print(f"saved {boundary} and {curves}")


if __name__ == "__main__":
    main()
