"""Accuracy: the book's helper for a softmax output, and its Categorical and Regression accuracy classes.

Every result is a 0-d array on the backend; copy it to the host only when you print it.
"""

from __future__ import annotations

from typing import Any

from nnx import _checks, backends
from nnx._component import Array, BackendSpec, RunningMean
from nnx.backends.specs import AccuracySpec
from nnx.errors import CallOrderError

__all__ = ["Accuracy", "Categorical", "Regression", "accuracy"]


def accuracy(output: Array, y: Array) -> Array:
    """The fraction of rows of `output` whose largest value is at the true class (the book's accuracy lines).

    Args:
        output: Scores or probabilities shaped (samples, classes), on any backend.
        y: Integer labels shaped (samples,) or one-hot rows shaped (samples, classes), on the same backend.

    Returns:
        The accuracy, a 0-d array on `output`'s backend: in its dtype when that is a float one, else a float.

    Raises:
        TypeError: if `y` is on another backend than `output`.
        ValueError: if the shapes disagree or a label is not a class of `output`.
    """
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
    """The base of every accuracy (the book's `Accuracy`): the mean of `compare(predictions, y)`, per batch and
    accumulated over an epoch.

    A subclass defines `compare`, and `init` if it depends on the targets.

    Args:
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.
    """

    def init(self, y: Array, reinit: bool = False) -> None:
        """Fit anything that depends on the targets (the regression precision); nothing by default.

        Args:
            y: The targets of the data about to be measured.
            reinit: Whether to fit again when already fitted.
        """

    def compare(self, predictions: Array, y: Array) -> Array:
        """Which predictions are right: override it.

        Args:
            predictions: The output activation's `predictions(outputs)`.
            y: The targets of the batch.

        Returns:
            A boolean (or 0/1) array, one value per prediction.
        """
        raise NotImplementedError

    def calculate(self, predictions: Array, y: Array) -> Array:
        """The mean accuracy of a batch; adds the batch to the epoch's running sums.

        Args:
            predictions: The output activation's `predictions(outputs)`, on this backend.
            y: The batch's targets, on this backend.

        Returns:
            The fraction of right predictions, a 0-d float32 array.
        """
        self._accept(predictions, "predictions")
        self._accept(y, "targets")
        comparisons = self.xp.astype(self.compare(predictions, y), self.xp.float32)
        self._accumulate(comparisons)
        return self.xp.mean(comparisons)

    def calculate_accumulated(self) -> Array:
        """The mean accuracy over every prediction of every batch since `new_pass()`.

        Returns:
            A 0-d array on the backend.

        Raises:
            RuntimeError: if no batch was calculated since `new_pass()`.
        """
        return self._accumulated_mean()


class Categorical(Accuracy):
    """Predicted class == true class (the book's `Accuracy_Categorical`).

    One-hot targets are compared by their argmax. With `binary=True` the 0/1 predictions of sigmoid outputs are
    compared element-wise with 0/1 targets instead.

    Args:
        binary: Whether the model is a binary classifier (sigmoid outputs); False by default.
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.
    """

    CONFIG = ("binary",)

    def __init__(self, *, binary: bool = False, xp: BackendSpec = None) -> None:
        super().__init__(xp=xp)
        self.binary = _checks.boolean(binary, "binary", "Categorical")

    def kernel_spec(self) -> AccuracySpec:
        """What a compiled training step needs to know about this accuracy.

        Returns:
            Its name.
        """
        return AccuracySpec("categorical")

    def compare(self, predictions: Array, y: Array) -> Array:
        """Which predicted classes equal the targets.

        Args:
            predictions: Class indices shaped (samples,), or 0/1 values shaped (samples, outputs) when binary.
            y: Integer labels, one-hot rows, or 0/1 targets shaped like the predictions.

        Returns:
            A boolean array shaped like `predictions`.

        Raises:
            ValueError: if `y` cannot be shaped like `predictions`.
        """
        if not self.binary and y.ndim == 2 and predictions.ndim == 1:
            y = self.xp.argmax(y, axis=1)
        y = _same_shape(self.xp, y, predictions, self)
        if y.dtype != predictions.dtype:  # 0/1 predictions against float targets: compare as floats
            floating = y if _checks.is_kind(self.xp, y.dtype, "real floating") else predictions
            y, predictions = self.xp.astype(y, floating.dtype), self.xp.astype(predictions, floating.dtype)
        return predictions == y


class Regression(Accuracy):
    """|prediction - y| < precision, where precision is std(y) / `precision_divisor` (the book's
    `Accuracy_Regression`).

    The precision is fitted by `init(y)` (which `Model.train` and `Model.evaluate` call) and kept after that.

    Args:
        precision_divisor: What the standard deviation of the targets is divided by: 250, as in the book.
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.

    Attributes:
        precision: The allowed difference, a 0-d array, or None before `init`.
    """

    ARRAYS = ("precision",)
    CONFIG = ("precision_divisor",)

    def __init__(self, *, precision_divisor: float = 250, xp: BackendSpec = None) -> None:
        super().__init__(xp=xp)
        self.precision: Array = None
        self.precision_divisor = _checks.positive(precision_divisor, "precision_divisor", "Regression")

    def init(self, y: Array, reinit: bool = False) -> None:
        """Set the precision to std(y) / precision_divisor, unless it is already set.

        Args:
            y: The targets, on this backend.
            reinit: Whether to compute the precision again when it is already set.

        Raises:
            ValueError: if `y` holds NaN or infinity.
        """
        if self.precision is None or reinit:
            self._accept(y, "targets")
            _checks.real_dtype(self.xp, y, self, "targets")
            _checks.finite(self.backend, y, self, "targets")
            if not self.xp.isdtype(y.dtype, "real floating"):
                y = self.xp.astype(y, self.xp.float32)
            self.precision = self.xp.std(y) / self.precision_divisor

    def kernel_spec(self) -> AccuracySpec:
        """What a compiled training step needs to know about this accuracy.

        Returns:
            Its name and its precision.
        """
        return AccuracySpec("regression", self.precision)

    def compare(self, predictions: Array, y: Array) -> Array:
        """Which predictions are within the precision of the targets.

        Args:
            predictions: Predicted values shaped (samples, outputs).
            y: Target values shaped like them ((samples,) for one output).

        Returns:
            A boolean array shaped like `predictions`.

        Raises:
            CallOrderError: if the precision is not set yet (call `init(y)` first).
        """
        if self.precision is None:
            raise CallOrderError(f"{self!r} has no precision yet: call init(y) first, or set .precision")
        _checks.finite(self.backend, y, self, "targets")
        return self.xp.abs(predictions - _same_shape(self.xp, y, predictions, self)) < self.precision


def _same_shape(xp: Any, y: Array, predictions: Array, owner: object) -> Array:
    """`y` shaped like `predictions`: (n,) becomes (n, 1) for one output; anything else must already match."""
    if tuple(y.shape) == tuple(predictions.shape):
        return y
    if len(predictions.shape) == 2 and predictions.shape[1] == 1 and tuple(y.shape) == (predictions.shape[0],):
        return xp.reshape(y, predictions.shape)
    raise ValueError(
        f"{owner!r} expected targets shaped like the predictions {tuple(predictions.shape)}, got {tuple(y.shape)}; "
        f"pass one target per output"
    )
