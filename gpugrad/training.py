"""gg.training: `fit`, the minibatch training loop of the common case (Keras's model.fit),
and the `History` it returns.

    model = gg.nn.Sequential([gg.nn.Dense(64, "relu"), gg.nn.Dense(3, "softmax")])
    history = gg.training.fit(model, "sparse_categorical_crossentropy", gg.optimizers.Adam(0.01),
                              x, y, batch_size=32, epochs=20, validation_data=(x_val, y_val),
                              metrics=["accuracy"], seed=0)
    history["val_accuracy"][-1]
    history.plot("history.png")

The training step (forward pass, loss, gradients, optimizer update) runs under gg.function:
it is recorded at its first call for each batch shape (the full batches, and the last,
smaller one unless it is dropped) and replayed afterwards. Metrics are computed outside
the step, on the host, from the predictions the step returns.
"""
import math
import numbers
import sys
import time

import numpy

from . import losses as _losses
from . import module as _module
from . import ops as _ops
from . import optimizers as _optimizers
from .data import Batches
from .function import function
from .ops import _tensor
from .tape import GradientTape

__all__ = ["History", "fit"]


# ---------------------------------------------------------------------------------------
# Metrics: per-sample values of host arrays (numpy), averaged over the epoch

def _matched(y_true, y_pred):
    """y_true reshaped to y_pred's shape when they hold as many entries ((n,) labels for
    (n, 1) predictions)."""
    if y_true.shape != y_pred.shape and y_true.size == y_pred.size:
        return y_true.reshape(y_pred.shape)
    return y_true


def _per_sample(values):
    """The mean over the last axis (one value per sample) of a rank-2-or-more array; a rank-1
    array is already one value per sample."""
    return values.mean(axis=-1) if values.ndim >= 2 else values


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Per sample: the fraction of entries where (y_pred > threshold) equals y_true (0 or 1)."""
    y_true = _matched(y_true, y_pred)
    return _per_sample((y_pred > threshold).astype(y_true.dtype) == y_true)


def sparse_categorical_accuracy(y_true, y_pred):
    """Per sample: 1 where argmax(y_pred) over the class axis equals the integer label."""
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return (numpy.argmax(y_pred, axis=-1) == y_true).astype(numpy.float64)


def categorical_accuracy(y_true, y_pred):
    """Per sample: 1 where argmax(y_pred) equals argmax(y_true) (one-hot or soft labels)."""
    return (numpy.argmax(y_pred, axis=-1) == numpy.argmax(y_true, axis=-1)).astype(numpy.float64)


def accuracy(y_true, y_pred):
    """Keras's "accuracy", chosen from the shapes as model.compile does: binary_accuracy when
    the prediction has one entry per sample (last axis of size 1, or rank 1), else
    sparse_categorical_accuracy when the labels have one axis fewer than the predictions
    (or a last axis of size 1), else categorical_accuracy."""
    if y_pred.ndim <= 1 or y_pred.shape[-1] == 1:
        return binary_accuracy(y_true, y_pred)
    if y_true.ndim < y_pred.ndim or y_true.shape[-1] == 1:
        return sparse_categorical_accuracy(y_true, y_pred)
    return categorical_accuracy(y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    """Per sample: mean |y_pred - y_true| over the last axis."""
    return _per_sample(numpy.abs(y_pred - _matched(y_true, y_pred)))


def mean_squared_error(y_true, y_pred):
    """Per sample: mean (y_pred - y_true)^2 over the last axis."""
    return _per_sample(numpy.square(y_pred - _matched(y_true, y_pred)))


METRICS = {
    "accuracy": accuracy, "acc": accuracy, "binary_accuracy": binary_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy, "categorical_accuracy": categorical_accuracy,
    "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
    "mse": mean_squared_error, "mean_squared_error": mean_squared_error,
}


def _metric(identifier):
    """(name, function of host arrays returning per-sample values)."""
    if isinstance(identifier, str):
        if identifier not in METRICS:
            raise ValueError(f"fit: unknown metric {identifier!r}; use a callable metric(y_true, y_pred) or one of "
                             f"{', '.join(repr(name) for name in METRICS)}")
        return identifier, METRICS[identifier]
    if callable(identifier):
        return getattr(identifier, "__name__", type(identifier).__name__), identifier
    raise TypeError(f"fit: a metric must be a name or a callable, got {identifier!r}")


def _host(value):
    """A numpy array of a metric's result (a Tensor, an array or a number)."""
    return numpy.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=numpy.float64)


class _Mean:
    """A running mean over samples (as Keras's Mean metric weighted by batch sizes)."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def add(self, values, count=None):
        values = _host(values)
        if count is None:
            self.total += float(values.sum())
            self.count += values.size
        else:  # a batch mean standing for `count` samples
            self.total += float(values) * count
            self.count += count

    def result(self):
        return self.total / self.count if self.count else math.nan


# ---------------------------------------------------------------------------------------
# History

class History(dict):
    """What `fit` returns: a dict from names ("loss", "accuracy", "val_loss",
    "val_accuracy"...) to lists of per-epoch values (floats), in the order of Keras's
    History.history (which is this object itself: `history.history["loss"]` works too).

    Attributes: `epoch` (the epoch numbers, from 0), `model`, and `train_step` and
    `test_step` (the gg.function steps fit ran: `history.train_step.explain()` shows the
    newest plan)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch = []
        self.model = None
        self.train_step = None
        self.test_step = None

    @property
    def history(self):
        return self

    def plot(self, path, title=None, dpi=100):
        """Save a PNG of the curves to `path` (another format when its suffix names one
        matplotlib writes): one panel per quantity (loss, accuracy...), the training values
        and, where there are any, the validation values, against the epoch. Drawn on a
        matplotlib Figure of its own with the Agg renderer: no screen needed, and pyplot's
        backend and figures are left alone. Returns `path`."""
        try:
            from matplotlib.figure import Figure
            from matplotlib.ticker import MaxNLocator
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install matplotlib "
                              "(or gpugrad[examples])") from None
        names = [name for name in self if not name.startswith("val_")]
        names += [name[4:] for name in self if name.startswith("val_") and name[4:] not in self]
        if not names or not any(self.values()):
            raise ValueError("History.plot: there is nothing to plot (no epoch has run)")
        figure = Figure(figsize=(5 * len(names), 3.8))
        axes = figure.subplots(1, len(names), squeeze=False)[0]
        for panel, name in zip(axes, names):
            for key, label, style in ((name, "training", "-"), ("val_" + name, "validation", "--")):
                values = self.get(key)
                if values:
                    epochs = range(1, len(values) + 1)
                    panel.plot(epochs, values, style, marker="o" if len(values) < 20 else None, ms=3, label=label)
            panel.set(xlabel="epoch", ylabel=name, title=name)
            panel.xaxis.set_major_locator(MaxNLocator(integer=True))
            panel.grid(True, alpha=0.3)
            panel.legend()
        if title:
            figure.suptitle(title)
        figure.tight_layout()
        suffix = str(path).rpartition(".")[2].lower() if "." in str(path).rsplit("/", 1)[-1] else ""
        figure.savefig(path, dpi=dpi, format=suffix or "png")
        return path


# ---------------------------------------------------------------------------------------
# fit

def _loss_function(loss):
    """A function (y_true, y_pred) -> scalar Tensor: a name through gg.losses.get (the
    per-sample function, then the mean over the batch), a gg.losses.Loss or any callable
    (a non-scalar result is averaged, as Keras reduces a loss function's per-sample
    values)."""
    if isinstance(loss, str):
        function_ = _losses.get(loss)
    elif callable(loss):
        function_ = loss
    else:
        raise TypeError(f"fit: loss must be a name (such as 'mse' or 'sparse_categorical_crossentropy') or a "
                        f"callable loss(y_true, y_pred), got {loss!r}")

    def compute(y_true, y_pred):
        y_pred = _tensor(y_pred)
        y_true = _tensor(y_true)
        # (n,) targets for (n, 1) predictions, as Keras lines them up
        if y_pred.ndim >= 1 and y_pred.shape[-1] == 1 and y_true.ndim == y_pred.ndim - 1:
            y_true = _ops.expand_dims(y_true, -1)
        value = _tensor(function_(y_true, y_pred))
        return _ops.reduce_mean(value) if value.ndim else value
    return compute


def _progress_mode(verbose, file):
    """"bar", "lines" or None."""
    if verbose is False or verbose == 0:
        return None
    if verbose == 2:
        return "lines"
    if verbose is True or verbose == 1:
        isatty = getattr(file, "isatty", None)
        try:
            terminal = bool(isatty()) if isatty is not None else False
        except (ValueError, OSError):  # a closed or odd stream
            terminal = False
        if terminal:
            try:
                import tqdm  # noqa: F401
            except ImportError:
                return "lines"
            return "bar"
        return "lines"
    raise ValueError(f"fit: verbose must be True/1 (a bar in a terminal, else a line per epoch), 2 (a line per "
                     f"epoch) or False/0 (silent), got {verbose!r}")


def _format(logs):
    return " - ".join(f"{name}: {value:.4f}" for name, value in logs.items())


def fit(model, loss, optimizer, x, y, batch_size=32, epochs=1, validation_data=None, metrics=(), shuffle=True,
        seed=None, verbose=True, file=None):
    """Train `model` on (x, y) in minibatches for `epochs` epochs (as Keras's model.fit) and
    return a `History` of the per-epoch loss and metrics.

    Args:
      model: a gg.Module (a gg.nn.Sequential, a layer...) called as `model(x, training=True)`
        while training and `model(x, training=False)` for validation when it takes
        `training`, else `model(x)`. Lazy layers build at the first batch.
      loss: a gg.losses name ("mse", "binary_crossentropy", "sparse_categorical_crossentropy"...,
        with Keras's defaults: probabilities, not logits), a gg.losses.Loss
        (`gg.losses.SparseCategoricalCrossentropy(from_logits=True)`), or any callable
        `loss(y_true, y_pred)` returning a scalar Tensor (per-sample losses are averaged).
        Targets of shape (n,) meet predictions of shape (n, 1) as (n, 1).
      optimizer: a gg.optimizers.Optimizer, or a name for gg.optimizers.get ("adam").
      x, y: the training inputs and targets: Tensors or arrays with one sample per entry of
        their first axis (see gg.data.batches).
      batch_size: samples per step; the last step of an epoch takes the rest.
      epochs: passes over the data.
      validation_data: (x_val, y_val), evaluated after each epoch (in batches of
        batch_size, with training=False) into "val_loss" and "val_<metric>".
      metrics: names ("accuracy" as Keras chooses it from the shapes: a threshold of 0.5 for
        one output per sample, else the argmax against integer labels or one-hot targets;
        "mae", "mse", "binary_accuracy", "categorical_accuracy",
        "sparse_categorical_accuracy") or callables `metric(y_true, y_pred)` of NumPy arrays
        returning per-sample values (or a number), named by their __name__. Each is averaged
        over the epoch's samples, from the predictions made during the epoch (before each
        step's update), as Keras reports them. They are computed on the host, outside the
        compiled step.
      shuffle: a new order of the training samples each epoch.
      seed: seeds the shuffling (see gg.data.batches): the same seed, the same batches.
      verbose: True or 1: a progress bar per epoch (tqdm) when `file` is a terminal, else
        one line per epoch ("Epoch 3/10 - 0.21s - loss: 0.4102 - accuracy: 0.8812 - ...");
        2: the line per epoch, always; False or 0: nothing.
      file: where progress goes (sys.stdout by default).

    The step runs under gg.function: its Python code runs once per batch shape and is
    replayed afterwards. Whatever would freeze a value there (random draws such as a
    training-mode Dropout's, host reads inside the model) makes gg.function run it eagerly
    on every call, with its warning; training still works, only slower.
    """
    if not hasattr(model, "trainable_variables") or not callable(model):
        raise TypeError(f"fit: model must be a callable gg.Module (such as a gg.nn.Sequential), got {model!r}")
    loss_fn = _loss_function(loss)
    optimizer = _optimizers.get(optimizer)
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
        raise ValueError(f"fit: epochs must be an int >= 0, got {epochs!r}")
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]
    named = [_metric(m) for m in metrics]
    names = [name for name, _ in named]
    if len(set(names)) != len(names) or "loss" in names:
        raise ValueError(f"fit: metric names must be distinct and not 'loss', got {names}")
    file = sys.stdout if file is None else file
    mode = _progress_mode(verbose, file)

    train = Batches(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed)
    if train.size == 0:
        raise ValueError("fit: x and y hold no samples")
    validation = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("fit: validation_data must be a pair (x_val, y_val)")
        validation = Batches(validation_data[0], validation_data[1], batch_size=batch_size, shuffle=False)
    takes_training = _module._takes_training(model)
    want_predictions = bool(named)

    def forward(xb, training):
        return model(xb, training=training) if takes_training else model(xb)

    @function
    def train_step(xb, yb):
        with GradientTape() as tape:
            prediction = forward(xb, True)
            value = loss_fn(yb, prediction)
        variables = model.trainable_variables  # after the forward pass: lazy layers are built
        optimizer.apply_gradients(zip(tape.gradient(value, variables), variables))
        return (value, prediction) if want_predictions else value

    @function
    def test_step(xb, yb):
        prediction = forward(xb, False)
        value = loss_fn(yb, prediction)
        return (value, prediction) if want_predictions else value

    history = History()
    history.model, history.train_step, history.test_step = model, train_step, test_step
    keys = ["loss"] + names
    if validation is not None:
        keys += ["val_" + key for key in keys]
    for key in keys:
        history[key] = []

    def run(batches, step, bar=None):
        means = {key: _Mean() for key in ["loss"] + names}
        for xb, yb in batches:
            result = step(xb, yb)
            value, prediction = result if want_predictions else (result, None)
            count = int(xb.shape[0])
            means["loss"].add(value, count)
            if want_predictions:
                true, predicted = yb.numpy(), prediction.numpy()
                for name, metric in named:
                    try:
                        values = metric(true, predicted)
                    except ValueError as error:
                        raise ValueError(f"fit: metric {name!r} on targets of shape {true.shape} and predictions "
                                         f"of shape {predicted.shape}: {error}") from None
                    means[name].add(values)
            if bar is not None:
                bar.set_postfix_str(_format({key: mean.result() for key, mean in means.items()}), refresh=False)
                bar.update()
        return {key: mean.result() for key, mean in means.items()}

    for epoch in range(epochs):
        started = time.perf_counter()
        bar = None
        if mode == "bar":
            from tqdm import tqdm
            # a short bar of its own width, so that the loss and metrics after it fit the line
            bar = tqdm(total=len(train), desc=f"Epoch {epoch + 1}/{epochs}", unit="batch", file=file, leave=True,
                       bar_format="{desc} {n_fmt}/{total_fmt} |{bar:20}| {elapsed}{postfix}")
        try:
            logs = run(train, train_step, bar)
            if validation is not None:
                logs.update({"val_" + key: value for key, value in run(validation, test_step).items()})
            if bar is not None:
                bar.set_postfix_str(_format(logs), refresh=False)
        finally:
            if bar is not None:
                bar.close()
        for key, value in logs.items():
            history[key].append(value)
        history.epoch.append(epoch)
        if mode == "lines":
            print(f"Epoch {epoch + 1}/{epochs} - {time.perf_counter() - started:.2f}s - {_format(logs)}", file=file,
                  flush=True)
    return history


def _sequential_fit(self, loss, optimizer, x, y, **kwargs):
    """Train the model: `gg.fit(self, loss, optimizer, x, y, **kwargs)` (batch_size, epochs,
    validation_data, metrics, shuffle, seed, verbose, file); returns its History."""
    return fit(self, loss, optimizer, x, y, **kwargs)


# Bound here, as ops binds the Tensor operators: this module imports module.py (through
# gg.losses and gg.nn), which therefore cannot import it.
_module.Sequential.fit = _sequential_fit
