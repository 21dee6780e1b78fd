"""Accuracy: the book's helper for a softmax output, and its Categorical and Regression accuracy classes.

Every result is a 0-d array on the backend; copy it to the host only when you print it.
"""

from __future__ import annotations

from nnx import _checks, backends
from nnx._component import RunningMean
from nnx.errors import CallOrderError


def accuracy(output, y):
    """Fraction of rows of `output` whose argmax is the label in `y` (integer labels or one-hot rows)."""
    backend = backends.owner_of(output)
    xp = backend.xp
    backend.check(y, "nnx.accuracy labels")
    _checks.batch(output, "nnx.accuracy", what="outputs")
    _checks.same_samples(output.shape[0], y, "nnx.accuracy", "labels")
    _checks.class_targets(backend, y, output.shape[1], "nnx.accuracy")
    predictions = xp.argmax(output, axis=1)
    if y.ndim == 2:
        y = xp.argmax(y, axis=1)
    return xp.mean(xp.astype(predictions == y, output.dtype))


class Accuracy(RunningMean):
    """Mean of `compare(predictions, y)`, per batch and accumulated over an epoch."""

    def init(self, y, reinit: bool = False) -> None:
        """Fit anything that depends on the targets (the regression precision); nothing by default."""

    def compare(self, predictions, y):
        raise NotImplementedError

    def calculate(self, predictions, y):
        """Mean accuracy of this batch; adds to the epoch's sums."""
        self._accept(predictions, "predictions")
        self._accept(y, "targets")
        comparisons = self.xp.astype(self.compare(predictions, y), self.xp.float32)
        self._accumulate(comparisons)
        return self.xp.mean(comparisons)

    def calculate_accumulated(self):
        """Mean accuracy over every batch since `new_pass()`."""
        return self._accumulated_mean()


class Categorical(Accuracy):
    """Predicted class == true class; `binary=True` compares sigmoid outputs element-wise instead."""

    CONFIG = ("binary",)

    def __init__(self, *, binary: bool = False, xp=None):
        super().__init__(xp=xp)
        self.binary = _checks.boolean(binary, "binary", "Categorical")

    def kernel_spec(self) -> dict:
        return {"accuracy": "categorical"}

    def compare(self, predictions, y):
        if not self.binary and y.ndim == 2 and predictions.ndim == 1:
            y = self.xp.argmax(y, axis=1)
        y = _same_shape(self.xp, y, predictions, self)
        if y.dtype != predictions.dtype:  # 0/1 predictions against float targets: compare as floats
            floating = y if _checks.is_kind(self.xp, y.dtype, "real floating") else predictions
            y, predictions = self.xp.astype(y, floating.dtype), self.xp.astype(predictions, floating.dtype)
        return predictions == y


class Regression(Accuracy):
    """|prediction - y| < precision, where precision is std(y) / `precision_divisor` (250, as in the book)."""

    ARRAYS = ("precision",)
    CONFIG = ("precision_divisor",)

    def __init__(self, *, precision_divisor: float = 250, xp=None):
        super().__init__(xp=xp)
        self.precision = None
        self.precision_divisor = _checks.positive(precision_divisor, "precision_divisor", "Regression")

    def init(self, y, reinit: bool = False) -> None:
        if self.precision is None or reinit:
            self._accept(y, "targets")
            _checks.real_dtype(self.xp, y, self, "targets")
            _checks.finite(self.backend, y, self, "targets")
            if not self.xp.isdtype(y.dtype, "real floating"):
                y = self.xp.astype(y, self.xp.float32)
            self.precision = self.xp.std(y) / self.precision_divisor

    def kernel_spec(self) -> dict:
        return {"accuracy": "regression", "precision": self.precision}

    def compare(self, predictions, y):
        if self.precision is None:
            raise CallOrderError(f"{self!r} has no precision yet: call init(y) first, or set .precision")
        _checks.finite(self.backend, y, self, "targets")
        return self.xp.abs(predictions - _same_shape(self.xp, y, predictions, self)) < self.precision


def _same_shape(xp, y, predictions, owner):
    """`y` shaped like `predictions`: (n,) becomes (n, 1) for one output; anything else must already match."""
    if tuple(y.shape) == tuple(predictions.shape):
        return y
    if len(predictions.shape) == 2 and predictions.shape[1] == 1 and tuple(y.shape) == (predictions.shape[0],):
        return xp.reshape(y, predictions.shape)
    raise ValueError(
        f"{owner!r} expected targets shaped like the predictions {tuple(predictions.shape)}, got {tuple(y.shape)}; "
        f"pass one target per output"
    )
