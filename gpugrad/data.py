"""gg.data: minibatches of in-memory arrays, for training loops.

    for epoch in range(10):
        for xb, yb in gg.data.batches(x, y, batch_size=64, seed=0):   # or one Batches reused
            ...

`batches` returns a `Batches`: an iterable whose every pass is one epoch, reshuffled with a
generator of its own, so that a seed fixes the order of every epoch and each epoch still
differs from the one before (as tf.data's shuffle with reshuffle_each_iteration).
"""
import numbers

import numpy

from . import backend as _backend
from .tensor import Tensor, constant


def _as_tensor(value, what):
    """A Tensor holding `value`: a Tensor as it is, a Variable's current value (a copy), an
    array or nested list converted on the default device (as gg.constant does)."""
    if type(value) is Tensor:
        return value
    try:
        return constant(value)
    except (TypeError, ValueError) as error:
        raise type(error)(f"batches: {what} cannot become a tensor: {error}") from None


def _count(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"batches: {what} must be a positive int, got {value!r}")
    return int(value)


class Batches:
    """The minibatches of (x, y), or of x alone when y is None; see `batches`.

    `len(b)` is the number of batches of one epoch; each `iter(b)` (each `for` loop over it)
    is a new epoch. `epochs` counts the passes begun so far."""

    def __init__(self, x, y=None, batch_size=32, shuffle=True, seed=None, drop_remainder=False):
        self.batch_size = _count(batch_size, "batch_size")
        self.x = _as_tensor(x, "x")
        self.y = None if y is None else _as_tensor(y, "y")
        if self.x.ndim == 0:
            raise ValueError("batches: x must have a batch axis (rank 1 or more), got a scalar")
        self.size = int(self.x.shape[0])
        if self.y is not None:
            if self.y.ndim == 0:
                raise ValueError("batches: y must have a batch axis (rank 1 or more), got a scalar")
            if int(self.y.shape[0]) != self.size:
                raise ValueError(f"batches: x has {self.size} samples but y has {int(self.y.shape[0])}")
            if self.y.device != self.x.device:
                raise ValueError(f"batches: x is on {self.x.device} but y is on {self.y.device}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"batches: seed must be an int or None, got {seed!r}")
        self.shuffle = bool(shuffle)
        self.drop_remainder = bool(drop_remainder)
        self.seed = seed
        # Without a seed, the generator's own seed comes from gg.random's: gg.random.set_seed
        # then makes the order reproducible too.
        self._generator = numpy.random.default_rng(
            seed if seed is not None else int(_backend._host_generator.integers(2 ** 63)))
        self.epochs = 0

    def __len__(self):
        full, rest = divmod(self.size, self.batch_size)
        return full + (1 if rest and not self.drop_remainder else 0)

    def __iter__(self):
        self.epochs += 1
        order = self._generator.permutation(self.size) if self.shuffle else None
        return self._epoch(order)

    def _epoch(self, order):
        xp = _backend.xp_of(self.x._data)
        if order is not None:
            order = xp.asarray(order)
        stop = self.size - self.size % self.batch_size if self.drop_remainder else self.size
        for start in range(0, stop, self.batch_size):
            end = min(start + self.batch_size, stop)
            if order is None:  # slices: views of the data, no copy
                xb = Tensor(self.x._data[start:end], self.x.device)
                yb = None if self.y is None else Tensor(self.y._data[start:end], self.y.device)
            else:
                index = order[start:end]
                xb = Tensor(xp.take(self.x._data, index, axis=0), self.x.device)
                yb = None if self.y is None else Tensor(xp.take(self.y._data, index, axis=0), self.y.device)
            yield xb if self.y is None else (xb, yb)

    def __repr__(self):
        return (f"<gg.data.Batches of {self.size} samples: {len(self)} batches of {self.batch_size}"
                f"{', shuffled' if self.shuffle else ''}{', last partial batch dropped' if self.drop_remainder else ''}>")


def batches(x, y=None, batch_size=32, shuffle=True, seed=None, drop_remainder=False):
    """The minibatches of `x` and `y` along their first (batch) axis: (xb, yb) Tensor pairs,
    or xb alone when y is None.

    Args:
      x, y: Tensors (used as they are, on their device), or NumPy arrays, CuPy arrays, nested
        lists or Variables (copied once into Tensors on the default device, with
        gg.constant's dtypes). Both need the same number of samples.
      batch_size: samples per batch; the last batch holds the rest (fewer) unless
        `drop_remainder`.
      shuffle: a new random order each epoch (else the data's order, every batch a view).
      seed: seeds the shuffling generator, which belongs to this object alone: the same seed
        gives the same sequence of epochs, each epoch a different order. Without one the
        generator is seeded from gg.random's (see gg.random.set_seed).
      drop_remainder: leave out the last, smaller batch (every batch then has one shape).

    Returns a `Batches`: iterate over it once per epoch (each pass reshuffles); len() is
    the number of batches per epoch.
    """
    return Batches(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder)
