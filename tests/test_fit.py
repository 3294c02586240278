"""gg.data.batches and gg.training.fit: minibatches, the Keras-style fit loop and its History."""
import io
import re

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import data, losses, training


# ---------------------------------------------------------------------------------------
# batches

def _epoch(batches):
    return [(xb.numpy(), yb.numpy()) for xb, yb in batches]


def test_batches_sizes_and_remainder():
    x, y = np.arange(10, dtype=np.float32).reshape(10, 1), np.arange(10)
    kept = data.batches(x, y, batch_size=4, shuffle=False)
    assert len(kept) == 3
    pairs = list(kept)
    assert [tuple(xb.shape) for xb, _ in pairs] == [(4, 1), (4, 1), (2, 1)]
    assert all(isinstance(xb, gg.Tensor) and isinstance(yb, gg.Tensor) for xb, yb in pairs)
    assert all(xb.device == gg.get_default_device() for xb, _ in pairs)
    np.testing.assert_array_equal(np.concatenate([yb.numpy() for _, yb in pairs]), np.arange(10))  # in order
    dropped = data.batches(x, y, batch_size=4, drop_remainder=True, seed=0)
    assert len(dropped) == 2 and [int(xb.shape[0]) for xb, _ in dropped] == [4, 4]
    assert len(data.batches(x, y, batch_size=5, drop_remainder=True)) == 2  # nothing left over to drop
    assert len(data.batches(x, y, batch_size=32)) == 1 and int(next(iter(data.batches(x, batch_size=32))).shape[0]) == 10


def test_batches_shuffle_each_epoch_keeps_pairs_and_covers_every_sample():
    x = np.arange(50, dtype=np.float32).reshape(50, 1)
    y = 2 * np.arange(50)
    batches = data.batches(x, y, batch_size=8, seed=3)
    orders = []
    for _ in range(3):
        epoch = _epoch(batches)
        xs = np.concatenate([xb[:, 0] for xb, _ in epoch])
        ys = np.concatenate([yb for _, yb in epoch])
        np.testing.assert_array_equal(ys, 2 * xs)  # each x with its own y
        assert sorted(xs.tolist()) == list(range(50))  # every sample once per epoch
        orders.append(xs.tolist())
    assert orders[0] != list(range(50))
    assert orders[0] != orders[1] != orders[2] != orders[0]  # a new order each epoch
    assert batches.epochs == 3


def test_batches_seed_reproduces_every_epoch_and_other_seeds_differ():
    x = np.arange(40, dtype=np.float32).reshape(40, 1)
    first, second = data.batches(x, batch_size=16, seed=11), data.batches(x, batch_size=16, seed=11)
    for _ in range(3):  # the same sequence of epochs
        a = np.concatenate([xb.numpy()[:, 0] for xb in first])
        b = np.concatenate([xb.numpy()[:, 0] for xb in second])
        np.testing.assert_array_equal(a, b)
    other = np.concatenate([xb.numpy()[:, 0] for xb in data.batches(x, batch_size=16, seed=12)])
    again = np.concatenate([xb.numpy()[:, 0] for xb in data.batches(x, batch_size=16, seed=11)])
    assert other.tolist() != again.tolist()


def test_batches_without_a_seed_follow_gg_random_set_seed():
    x = np.arange(30, dtype=np.float32).reshape(30, 1)
    gg.random.set_seed(7)
    a = [xb.numpy()[:, 0].tolist() for xb in data.batches(x, batch_size=30)]
    gg.random.set_seed(7)
    b = [xb.numpy()[:, 0].tolist() for xb in data.batches(x, batch_size=30)]
    assert a == b


def test_batches_of_tensors_stay_on_their_device_and_errors_name_the_argument():
    x = gg.constant(np.ones((6, 2), np.float32))
    (xb, yb), = list(data.batches(x, [0, 1, 0, 1, 0, 1], batch_size=6, shuffle=False))
    assert xb.device == x.device and yb.dtype == np.int32 and yb.numpy().tolist() == [0, 1, 0, 1, 0, 1]
    with pytest.raises(ValueError, match="x has 6 samples but y has 5"):
        data.batches(x, np.zeros(5))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        data.batches(x, batch_size=0)
    with pytest.raises(ValueError, match="batch axis"):
        data.batches(3.0)
    with pytest.raises(TypeError, match="seed"):
        data.batches(x, seed=1.5)


# ---------------------------------------------------------------------------------------
# fit

def _blobs(n=240, seed=0):
    """Three separable Gaussian blobs in the plane: (x float32 (n, 2), integer labels)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centers = np.array([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
    return (centers[labels] + rng.normal(0, 0.6, (n, 2))).astype(np.float32), labels


def _classifier(seed=0, units=3, activation="softmax"):
    return gg.nn.Sequential([gg.nn.Dense(16, "relu", seed=seed), gg.nn.Dense(units, activation, seed=seed + 1)])


def test_fit_reduces_the_loss_of_a_regression():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (128, 3)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.3
    model = gg.nn.Sequential([gg.nn.Dense(1, seed=0)])
    history = training.fit(model, "mse", gg.optimizers.SGD(0.1), x, y, batch_size=16, epochs=15, seed=0, verbose=0)
    assert isinstance(history, training.History) and isinstance(history, dict)
    assert list(history) == ["loss"] and history.history is history
    assert len(history["loss"]) == 15 and history.epoch == list(range(15))
    assert history["loss"][-1] < 0.05 * history["loss"][0]
    assert all(isinstance(value, float) for value in history["loss"])


def test_fit_history_keys_validation_and_metric_values_match_numpy():
    x, labels = _blobs()
    x_val, y_val = _blobs(90, seed=1)
    model = _classifier()
    history = training.fit(model, "sparse_categorical_crossentropy", gg.optimizers.Adam(0.02), x, labels,
                           batch_size=32, epochs=6, validation_data=(x_val, y_val), metrics=["accuracy"], seed=0,
                           verbose=0)
    assert list(history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert all(len(values) == 6 for values in history.values())
    # The validation values come from the model after the last epoch: recompute them with NumPy.
    probabilities = model(x_val, training=False).numpy().astype(np.float64)
    expected_accuracy = np.mean(np.argmax(probabilities, axis=1) == y_val)
    picked = np.clip(probabilities[np.arange(len(y_val)), y_val], 1e-7, 1 - 1e-7)
    assert history["val_accuracy"][-1] == pytest.approx(expected_accuracy, abs=1e-12)
    assert history["val_loss"][-1] == pytest.approx(np.mean(-np.log(picked)), rel=1e-4)
    assert history["val_accuracy"][-1] > 0.9 and history["accuracy"][-1] > 0.9


def test_training_metrics_average_the_epochs_predictions_as_numpy_does():
    """With a learning rate of 0 the model stays as it is: the epoch's metrics are then the
    metrics of its predictions on the whole training set, whatever the batches."""
    x, labels = _blobs(100)
    onehot = np.eye(3, dtype=np.float32)[labels]
    model = _classifier(seed=4)
    history = training.fit(model, "categorical_crossentropy", gg.optimizers.SGD(0.0), x, onehot, batch_size=32,
                           epochs=2, metrics=["accuracy", "mae", "mse"], seed=0, verbose=0)
    p = model(x).numpy().astype(np.float64)
    assert history["accuracy"] == pytest.approx([np.mean(np.argmax(p, 1) == labels)] * 2, abs=1e-12)
    assert history["mae"] == pytest.approx([np.mean(np.abs(p - onehot))] * 2, rel=1e-5)
    assert history["mse"] == pytest.approx([np.mean((p - onehot) ** 2)] * 2, rel=1e-5)
    cross_entropy = np.mean(-np.log(np.clip(p[np.arange(100), labels], 1e-7, 1 - 1e-7)))
    assert history["loss"] == pytest.approx([cross_entropy] * 2, rel=1e-4)


def test_binary_accuracy_thresholds_one_output_at_one_half():
    x, labels = _blobs(120)
    y = (labels == 0).astype(np.float32)  # (n,) targets for (n, 1) predictions
    model = _classifier(seed=2, units=1, activation="sigmoid")
    history = training.fit(model, "binary_crossentropy", gg.optimizers.SGD(0.0), x, y, batch_size=50,
                           metrics=["accuracy"], verbose=0, validation_data=(x, y))
    p = model(x).numpy()[:, 0]
    assert history["accuracy"][0] == pytest.approx(np.mean((p > 0.5) == (y == 1)), abs=1e-12)
    assert history["val_accuracy"][0] == history["accuracy"][0]
    # Keras's rule on the shapes, directly
    assert training.accuracy(np.array([1.0, 0.0]), np.array([[0.7], [0.6]])).tolist() == [1.0, 0.0]
    assert training.accuracy(np.array([2, 0]), np.array([[0.1, 0.2, 0.7], [0.1, 0.8, 0.1]])).tolist() == [1.0, 0.0]
    assert training.accuracy(np.array([[0, 1.0], [1.0, 0]]), np.array([[0.3, 0.7], [0.4, 0.6]])).tolist() == [1.0, 0.0]


def test_a_line_per_epoch_when_the_output_is_not_a_terminal(capsys):
    x, labels = _blobs(64)
    out = io.StringIO()
    training.fit(_classifier(), "sparse_categorical_crossentropy", "adam", x, labels, epochs=3, metrics=["accuracy"],
                 validation_data=(x[:16], labels[:16]), file=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in out.getvalue()
    for epoch, line in enumerate(lines, 1):
        assert re.fullmatch(rf"Epoch {epoch}/3 - \d+\.\d\ds - loss: \d\.\d{{4}} - accuracy: \d\.\d{{4}} - "
                            rf"val_loss: \d\.\d{{4}} - val_accuracy: \d\.\d{{4}}", line), line
    # sys.stdout by default (not a terminal under pytest); verbose=0 prints nothing; verbose=2 always lines
    training.fit(_classifier(), "sparse_categorical_crossentropy", "adam", x, labels, epochs=2)
    assert [line[:9] for line in capsys.readouterr().out.splitlines()] == ["Epoch 1/2", "Epoch 2/2"]
    training.fit(_classifier(), "sparse_categorical_crossentropy", "adam", x, labels, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_progress_bar_per_epoch_in_a_terminal():
    pytest.importorskip("tqdm")
    x, labels = _blobs(64)
    terminal = _Terminal()
    training.fit(_classifier(), "sparse_categorical_crossentropy", "adam", x, labels, batch_size=16, epochs=2,
                 metrics=["accuracy"], validation_data=(x[:16], labels[:16]), file=terminal)
    text = terminal.getvalue()
    assert "\r" in text and "Epoch 1/2" in text and "Epoch 2/2" in text
    assert len(re.findall(r"4/4 \|[#\u2588]{20}\| ", text)) == 2  # both bars finished: 4 batches each
    final = [part for part in re.split(r"[\r\n]+", text) if "Epoch 2/2" in part][-1]
    assert "val_accuracy: " in final and "loss: " in final
    # verbose=2 forces the lines, even in a terminal
    terminal = _Terminal()
    training.fit(_classifier(), "sparse_categorical_crossentropy", "adam", x, labels, epochs=2, verbose=2,
                 file=terminal)
    assert len(terminal.getvalue().splitlines()) == 2 and "\r" not in terminal.getvalue()


class _CountingModel(gg.Module):
    """A model that counts how often its Python code runs."""

    def __init__(self):
        self.layer = gg.nn.Dense(3, seed=0)
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return self.layer(x)


def test_the_step_runs_under_gg_function_one_plan_per_batch_shape():
    x, labels = _blobs(100)  # batches of 32: three full ones and one of 4
    model = _CountingModel()
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    history = training.fit(model, loss, gg.optimizers.Adam(0.01), x, labels, batch_size=32, epochs=5, seed=0,
                           verbose=0, validation_data=(x[:40], labels[:40]))
    # 20 training steps and 10 validation steps; the Python ran once per batch shape of each
    assert model.calls == 2 + 2
    assert repr(history.train_step).endswith(": 2 plans>") and repr(history.test_step).endswith(": 2 plans>")
    for rows in (32, 4):
        assert "array calls" in history.train_step.explain(x[:rows], labels[:rows])
    assert "adam_update" in history.train_step.trace_text(x[:32], labels[:32])
    assert history["loss"][-1] < history["loss"][0]
    # drop_remainder-like: a batch size that divides the data gives one plan
    model = _CountingModel()
    training.fit(model, loss, "sgd", x, labels, batch_size=25, epochs=3, verbose=0)
    assert model.calls == 1


def test_fit_is_reproducible_and_sequential_fit_delegates():
    x, labels = _blobs(80)
    first = training.fit(_classifier(seed=5), "sparse_categorical_crossentropy", gg.optimizers.Adam(0.01), x, labels,
                         batch_size=16, epochs=3, metrics=["accuracy"], seed=9, verbose=0)
    second = _classifier(seed=5).fit("sparse_categorical_crossentropy", gg.optimizers.Adam(0.01), x, labels,
                                     batch_size=16, epochs=3, metrics=["accuracy"], seed=9, verbose=0)
    assert isinstance(second, training.History) and dict(first) == dict(second)
    third = _classifier(seed=5).fit("sparse_categorical_crossentropy", gg.optimizers.Adam(0.01), x, labels,
                                    batch_size=16, epochs=3, metrics=["accuracy"], seed=10, verbose=0)
    assert third["loss"] != first["loss"]  # another batch order


def test_fit_takes_loss_callables_and_metric_callables():
    x, labels = _blobs(60)

    def scalar_loss(y_true, y_pred):
        return gg.reduce_mean(gg.nn.softmax_cross_entropy_with_logits(gg.one_hot(y_true, 3), y_pred))

    def share_of_class_zero(y_true, y_pred):
        return np.argmax(y_pred, axis=-1) == 0

    model = _classifier(units=3, activation=None)
    history = training.fit(model, scalar_loss, gg.optimizers.SGD(0.0), x, labels, batch_size=20, epochs=1,
                           metrics=[share_of_class_zero], verbose=0)
    assert list(history) == ["loss", "share_of_class_zero"]
    assert history["share_of_class_zero"][0] == pytest.approx(np.mean(np.argmax(model(x).numpy(), 1) == 0))


def test_fit_rejects_bad_arguments_clearly():
    x, labels = _blobs(20)
    model = _classifier()
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        training.fit(model, "mse", "sgd", x, labels, metrics=["f1"])
    with pytest.raises(ValueError, match="validation_data must be a pair"):
        training.fit(model, "mse", "sgd", x, labels, validation_data=x)
    with pytest.raises(ValueError, match="epochs"):
        training.fit(model, "mse", "sgd", x, labels, epochs=-1)
    with pytest.raises(ValueError, match="unknown loss"):
        training.fit(model, "hinge_of_fate", "sgd", x, labels)
    with pytest.raises(ValueError, match="verbose"):
        training.fit(model, "mse", "sgd", x, labels, verbose=3)
    with pytest.raises(TypeError, match="model must be"):
        training.fit(lambda x: x, "mse", "sgd", x, labels)
    with pytest.raises(ValueError, match="metric 'mse' on targets of shape"):
        training.fit(model, "sparse_categorical_crossentropy", "sgd", x, labels, metrics=["mse"], verbose=0)


def test_history_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    x, labels = _blobs(60)
    history = training.fit(_classifier(), "sparse_categorical_crossentropy", "adam", x, labels, epochs=3,
                           metrics=["accuracy"], validation_data=(x[:20], labels[:20]), verbose=0)
    path = history.plot(tmp_path / "history.png", title="blobs")
    assert path == tmp_path / "history.png"
    assert (tmp_path / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history.plot(str(tmp_path / "curves"))  # no suffix: a PNG all the same
    assert (tmp_path / "curves").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="nothing to plot"):
        training.History().plot(tmp_path / "empty.png")
