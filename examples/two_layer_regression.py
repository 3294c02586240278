"""The two-layer regression net of the TensorFlow 2 tutorials this project grew from, trained
with gpugrad: the main example.

1 -> 3 sigmoid -> 1 on 300 points of y = x^2 - 0.5 + N(0, 0.05) noise, x in [-1, 1],
full-batch SGD with learning rate 0.1 for 2000 steps, on the default device (a GPU when
there is one) or the one given with --device. Prints the loss every 20 steps as the tutorials
do (in a terminal above a progress bar; into a file or a pipe as plain lines, without the
bar), saves a plot of the data, the fit and the loss curve, saves a checkpoint, and prints
the final partial derivatives of every trainable variable.

    python examples/two_layer_regression.py [--device cpu|cuda] [--steps 2000] [--quiet]
"""
import argparse
import os
import pathlib
import sys

import gpugrad as gg

OPTIMIZERS = {
    "sgd": lambda lr: gg.optimizers.SGD(lr),
    "momentum": lambda lr: gg.optimizers.SGD(lr, momentum=0.9),
    "adam": lambda lr: gg.optimizers.Adam(lr),
    "adamw": lambda lr: gg.optimizers.AdamW(lr),
    "rmsprop": lambda lr: gg.optimizers.RMSprop(lr),
    "adagrad": lambda lr: gg.optimizers.Adagrad(lr),
}


class TwoLayerNet(gg.Module):
    """The tutorials' add_layer twice: normal weights, biases 0.1, a sigmoid hidden layer."""

    def __init__(self, hidden, seed):
        self.hidden = gg.nn.Dense(1, hidden, activation=gg.nn.sigmoid, kernel_initializer="normal",
                                  bias_initializer=0.1, seed=seed)
        self.output = gg.nn.Dense(hidden, 1, kernel_initializer="normal", bias_initializer=0.1, seed=seed + 1)

    def __call__(self, x):
        return self.output(self.hidden(x))


def mean_squared_error(y, prediction):
    """The tutorials' loss: reduce_mean(reduce_sum(square(ys - prediction), reduction_indices=[1]))."""
    return gg.reduce_mean(gg.reduce_sum(gg.square(y - prediction), axis=1))


def make_data(points, seed):
    x = gg.reshape(gg.linspace(-1.0, 1.0, points), (points, 1))
    y = gg.square(x) - 0.5 + gg.random.normal((points, 1), stddev=0.05, seed=seed)
    return x, y


def train(args):
    x, y = make_data(args.points, args.seed)
    model = TwoLayerNet(args.hidden, args.seed)
    optimizer = OPTIMIZERS[args.optimizer](args.lr)
    variables = model.trainable_variables

    @gg.function  # recorded on the first call, replayed on the others
    def train_step(x, y):
        with gg.GradientTape() as tape:
            loss = mean_squared_error(y, model(x))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    losses = []
    progress = None
    # The bar only where someone watches it: redirected to a file or a pipe (a log, CI), its
    # redraws would fill the log, so there the loss lines come alone, each once.
    if not args.quiet and sys.stdout.isatty() and sys.stderr.isatty():
        from tqdm import tqdm
        progress = tqdm(total=args.steps, unit="step", dynamic_ncols=True)
    for step in range(args.steps):
        loss = train_step(x, y)
        losses.append(loss)
        if step % 20 == 0 and not args.quiet:
            line = f"step {step:4d}  Loss: {float(loss):.6f}"
            if progress is not None:
                progress.set_postfix(loss=f"{float(loss):.6f}", refresh=False)
                progress.write(line)  # above the bar, which is redrawn below it
            else:
                print(line, flush=True)
        if progress is not None:
            progress.update()
    if progress is not None:
        progress.close()
    return model, optimizer, x, y, [float(loss) for loss in losses]


def save_plot(path, x, y, prediction, losses, title):
    import matplotlib
    matplotlib.use("Agg")  # no screen needed
    import matplotlib.pyplot as plt

    figure, (fit, curve) = plt.subplots(1, 2, figsize=(11, 4.2))
    fit.scatter(x.numpy()[:, 0], y.numpy()[:, 0], s=8, alpha=0.6, label="data: x² - 0.5 + noise")
    fit.plot(x.numpy()[:, 0], prediction.numpy()[:, 0], "r-", lw=3, label="gpugrad fit")
    fit.set(xlabel="x", ylabel="y", title=title)
    fit.legend(loc="upper center")
    curve.plot(range(1, len(losses) + 1), losses)
    curve.set(xlabel="step", ylabel="mean squared error", yscale="log", title="training loss")
    curve.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def make_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: the best device available)")
    parser.add_argument("--steps", type=int, default=2000, help="full-batch training steps (default 2000)")
    parser.add_argument("--hidden", type=int, default=3, help="sigmoid units in the hidden layer (default 3)")
    parser.add_argument("--points", type=int, default=300, help="training points, evenly spaced in [-1, 1] (default 300)")
    parser.add_argument("--seed", type=int, default=5, help="data noise and initial weights (default 5; see the README)")
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1)")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd",
                        help="sgd (the tutorials'), momentum (SGD with momentum 0.9), or one of gg.optimizers "
                             "(default: sgd)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out"),
                        help="folder for the plot and the checkpoint (default: out)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no loss every 20 steps")
    return parser


def main():
    parser = make_parser()
    args = parser.parse_args()
    for name in ("steps", "hidden", "points"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not args.lr > 0:
        parser.error(f"--lr must be a positive number, got {args.lr}")
    if args.device:
        try:
            gg.set_default_device(args.device)
        except (RuntimeError, ValueError) as error:  # an unknown device, or no GPU: one line, no traceback
            parser.error(str(error))
    title = f"1 -> {args.hidden} sigmoid -> 1, {args.optimizer} {args.lr}"
    print(f"training {title} on {args.points} points for {args.steps} steps on {gg.get_default_device()}")

    model, optimizer, x, y, losses = train(args)

    with gg.GradientTape() as tape:
        prediction = model(x)
        loss = mean_squared_error(y, prediction)
    named = [(name, v) for name, v in model.named_variables() if v.trainable]
    grads = tape.gradient(loss, [v for _, v in named])
    print(f"final loss: {float(loss):.6f}")
    print("partial derivatives of the loss after training:")
    for (name, variable), grad in zip(named, grads):
        values = ", ".join(f"{value:.6g}" for value in grad.numpy().ravel().tolist())
        print(f"  d loss / d {name:<14} = [{values}]")

    os.makedirs(args.out, exist_ok=True)
    plot = args.out / "two_layer_regression.png"
    save_plot(plot, x, y, prediction, losses, title)
    checkpoint = args.out / "two_layer_regression.safetensors"
    gg.save(checkpoint, {"model": model, "optimizer": optimizer})
    print(f"saved {plot} and {checkpoint}")


if __name__ == "__main__":
    main()
