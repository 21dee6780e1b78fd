"""Accuracy: the book's helper for a softmax output, and its Categorical and Regression accuracy classes.

Every result is a 0-d array on the backend; copy it to the host only when you print it.
"""

from __future__ import annotations

from array_api_compat import array_namespace

from nnx._component import RunningMean


def accuracy(output, y):
    """Fraction of rows of `output` whose argmax is the label in `y` (integer labels or one-hot rows)."""
    xp = array_namespace(output, y)
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
        comparisons = self.xp.astype(self.compare(predictions, y), self.xp.float32)
        self._accumulate(comparisons)
        return self.xp.mean(comparisons)

    def calculate_accumulated(self):
        """Mean accuracy over every batch since `new_pass()`."""
        return self._accumulated_mean()


class Categorical(Accuracy):
    """Predicted class == true class; `binary=True` compares sigmoid outputs element-wise instead."""

    def __init__(self, *, binary: bool = False, xp=None):
        super().__init__(xp=xp)
        self.binary = binary

    def compare(self, predictions, y):
        if not self.binary and y.ndim == 2:
            y = self.xp.argmax(y, axis=1)
        if y.shape != predictions.shape:
            y = self.xp.reshape(y, predictions.shape)
        return predictions == y


class Regression(Accuracy):
    """|prediction - y| < precision, where precision is std(y) / `precision_divisor` (250, as in the book)."""

    ARRAYS = ("precision",)

    def __init__(self, *, precision_divisor: float = 250, xp=None):
        super().__init__(xp=xp)
        self.precision = None
        self.precision_divisor = precision_divisor

    def init(self, y, reinit: bool = False) -> None:
        if self.precision is None or reinit:
            if not self.xp.isdtype(y.dtype, "real floating"):
                y = self.xp.astype(y, self.xp.float32)
            self.precision = self.xp.std(y) / self.precision_divisor

    def compare(self, predictions, y):
        if self.precision is None:
            raise RuntimeError(f"{self!r} has no precision yet: call init(y) first, or set .precision")
        return self.xp.abs(predictions - y) < self.precision
