"""Losses: categorical and binary cross-entropy, squared and absolute error, and the fused softmax classifier.

`calculate` returns the mean loss as a 0-d array on the backend: nothing is copied to the host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from nnx import _checks
from nnx._component import Array, BackendSpec, Component, RunningMean
from nnx.activations import Softmax
from nnx.backends.specs import LossSpec
from nnx.layers import shown

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Loss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "SoftmaxCategoricalCrossentropy",
]

EPSILON = 1e-7  # predictions are clipped to [EPSILON, 1 - EPSILON] before a log, as in the book
TARGET_KINDS = ("values", "probabilities", "classes")  # what `Loss.TARGETS` may declare
REDUCTIONS = ("none", "mean")  # what `Loss.REDUCTION` may declare: per-sample losses, or the batch's mean
REGULARIZERS = ("weight_regularizer_l1", "weight_regularizer_l2", "bias_regularizer_l1", "bias_regularizer_l2")


class Loss(RunningMean):
    """The base of every loss (the book's `Loss`): the mean over samples, the regularization penalty and the
    running sums of an epoch.

    A subclass defines ``forward(y_pred, y_true)``, which returns the losses, and ``backward(dvalues, y_true)``,
    which sets `dinputs`. Two class attributes declare what it takes and returns:

    - `TARGETS`, what a Model checks the targets as before training: "values" (the default; shaped like the
      outputs, or (samples,) for one output), "probabilities" (such values, in [0, 1]) or "classes" (integer class
      labels shaped (samples,), or one-hot rows; forward and backward get them as given).
    - `REDUCTION`, what `forward` returns: "none" (the default), the per-sample losses shaped (samples,); or
      "mean", the batch's mean loss as a 0-d array, which `calculate` weights by the batch's size, so that an
      epoch's loss is the mean over its samples either way.

    `calculate` refuses a `forward` result that is not that, naming the loss; a declaration of another value is a
    ValueError when the class is defined.

    Args:
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.
    """

    TARGETS = "values"
    REDUCTION = "none"
    forward: Callable[..., Array]
    backward: Callable[..., None]
    dinputs: Array  # set by backward

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, allowed in (("TARGETS", TARGET_KINDS), ("REDUCTION", REDUCTIONS)):
            if getattr(cls, name) not in allowed:
                raise ValueError(
                    f"{cls.__name__}.{name} = {getattr(cls, name)!r} is not one nnx knows; declare one of "
                    f"{', '.join(map(repr, allowed))} (see the nnx.losses.Loss docstring)"
                )

    def __init__(self, *, xp: BackendSpec = None) -> None:
        super().__init__(xp=xp)
        self.trainable_layers: list[Any] = []

    def remember_trainable_layers(self, trainable_layers: Iterable[Any]) -> None:
        """Remember the layers whose regularization penalty `regularization_loss()` adds up (`Model.finalize`
        does this).

        Args:
            trainable_layers: Layers with weights and biases (Dense layers); a regularizer strength a layer does
                not have (`weight_regularizer_l1`, ...) counts as 0.
        """
        self.trainable_layers = list(trainable_layers)

    def regularization_loss(self, layer: Any = None) -> Array:
        """The L1 and L2 penalties of the layers' weights and biases.

        Args:
            layer: One layer to compute the penalty of; None (the default) adds up every remembered trainable
                layer.

        Returns:
            The penalty: a 0-d array on the backend (the number 0 when there is no layer).
        """
        layers = self.trainable_layers if layer is None else [layer]
        total = 0
        penalty = self.backend.regularization_penalty
        for each in layers:
            weight_l1, weight_l2, bias_l1, bias_l2 = (getattr(each, name, 0) for name in REGULARIZERS)
            total = total + penalty(each.weights, weight_l1, weight_l2) + penalty(each.biases, bias_l1, bias_l2)
        return total

    def calculate(
        self, output: Array, y: Array, *, include_regularization: bool = False
    ) -> Array | tuple[Array, Array]:
        """The mean loss over a batch; adds the batch to the epoch's running sums.

        Args:
            output: The model's output, shaped (samples, outputs).
            y: The targets: integer labels (samples,) or one-hot rows for class losses, values shaped like
                `output` otherwise.
            include_regularization: Whether to return the regularization loss too.

        Returns:
            The mean data loss (a 0-d array), or (data loss, regularization loss) if `include_regularization`.
            An infinite loss is returned as such.

        Raises:
            TypeError: if `forward` returned no array of this backend.
            ValueError: if it returned another shape than `REDUCTION` says: (samples,), or () for "mean".
        """
        with self.backend.quiet_float_errors():  # an infinite loss is returned as such (Model: DivergenceError)
            losses = self.forward(output, y)
            self._check_losses(losses, output.shape[0])
            data_loss = losses if self.REDUCTION == "mean" else self.xp.mean(losses)
        if self.REDUCTION == "mean":
            self.add_to_pass(losses * output.shape[0], output.shape[0])  # weighted by the batch's size
        else:
            self._accumulate(losses)
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def _check_losses(self, losses: Any, samples: int) -> None:
        """Nothing if `forward` returned what `REDUCTION` declares, else an error that says what to return."""
        expected = () if self.REDUCTION == "mean" else (samples,)
        owned = self.backend.owns(losses) or isinstance(losses, getattr(self.xp, "generic", ()))  # NumPy's scalars
        if owned and tuple(losses.shape) == expected:
            return
        if self.REDUCTION == "mean":
            wanted = "the batch's mean loss, a 0-d array, e.g. self.xp.mean(...) (or per-sample losses, without it)"
        elif owned and tuple(losses.shape) in ((), (1,)):
            wanted = (
                f"the per-sample losses shaped ({samples},), not one value (a batch mean?): return the losses before "
                f"the mean over samples, or declare REDUCTION = 'mean' on the class to have each batch's mean "
                f"weighted by its size"
            )
        else:
            wanted = f"the per-sample losses shaped ({samples},), e.g. self.xp.mean(..., axis=-1) over the outputs"
        raise (ValueError if owned else TypeError)(
            f"{self.label}.forward returned {shown(losses)} for a batch of {samples} samples; with REDUCTION = "
            f"{self.REDUCTION!r} it must return {wanted}, as an array of backend {self.backend.name!r}"
        )

    def calculate_accumulated(self, *, include_regularization: bool = False) -> Array | tuple[Array, Array]:
        """The mean loss over every sample of every batch since `new_pass()`.

        Args:
            include_regularization: Whether to return the (current) regularization loss too.

        Returns:
            The mean data loss (a 0-d array), or (data loss, regularization loss) if `include_regularization`.

        Raises:
            RuntimeError: if no batch was calculated since `new_pass()`.
        """
        data_loss = self._accumulated_mean()
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def _targets(self, y_pred: Array, y_true: Array) -> tuple[Array, Array]:
        """Checked targets for `y_pred`: class labels or one-hot rows here, same-shaped values in subclasses."""
        y_pred = self._accept_batch(y_pred, "predictions")
        self._accept(y_true, "targets")
        _checks.same_samples(y_pred.shape[0], y_true, self)
        return y_pred, self._checked_targets(y_pred, y_true)

    def _checked_targets(self, y_pred: Array, y_true: Array) -> Array:
        _checks.real_dtype(self.xp, y_true, self, "targets")
        y_true = _checks.as_finite(self.backend, y_true, y_pred.dtype, self, "targets")
        return _checks.value_targets(self.xp, y_true, y_pred.shape[0], y_pred.shape[1], self)


class CategoricalCrossentropy(Loss):
    """-log of the probability given to the true class (the book's `Loss_CategoricalCrossentropy`).

    Predictions are probabilities (a softmax output), clipped to [1e-7, 1 - 1e-7]; targets are integer labels or
    one-hot rows. After a `Softmax`, `Model.finalize` fuses the two for the faster combined gradient.

    Args:
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.
    """

    TARGETS = "classes"

    def kernel_spec(self) -> LossSpec:
        """What a compiled training step needs to know about this loss.

        Returns:
            Its name and the clipping epsilon.
        """
        return LossSpec("categorical_crossentropy", EPSILON)

    def _checked_targets(self, y_pred: Array, y_true: Array) -> Array:
        return _checks.class_targets(self.backend, y_true, y_pred.shape[1], self)

    def forward(self, y_pred: Array, y_true: Array) -> Array:
        """The per-sample losses.

        Args:
            y_pred: Probabilities shaped (samples, classes).
            y_true: Integer labels shaped (samples,) or one-hot rows shaped (samples, classes).

        Returns:
            -log(clipped probability of the true class), shaped (samples,).
        """
        y_pred, y_true = self._targets(y_pred, y_true)
        if y_true.ndim == 1:
            return self.backend.categorical_crossentropy(y_pred, y_true, EPSILON)
        xp = self.xp
        clipped = xp.clip(y_pred, EPSILON, 1 - EPSILON)
        return -xp.log(xp.sum(clipped * xp.astype(y_true, y_pred.dtype), axis=1))

    def backward(self, dvalues: Array, y_true: Array) -> None:
        """Set `dinputs` to -y_true / dvalues, divided by the number of samples.

        Args:
            dvalues: The predicted probabilities, shaped (samples, classes).
            y_true: Integer labels shaped (samples,) or one-hot rows.
        """
        dvalues, y_true = self._targets(dvalues, y_true)
        samples, labels = dvalues.shape
        if y_true.ndim == 1:
            y_true = self.backend.one_hot(y_true, labels, dvalues.dtype)
        self.dinputs = -self.xp.astype(y_true, dvalues.dtype) / dvalues
        self.dinputs = self.dinputs / samples


class SoftmaxCategoricalCrossentropy(Component):
    """Softmax followed by categorical cross-entropy, with the fast combined gradient (softmax - one-hot) / samples
    (the book's `Activation_Softmax_Loss_CategoricalCrossentropy`).

    For the book's layer-by-layer code; a `Model` fuses a final `Softmax` with `CategoricalCrossentropy` itself.

    Args:
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.

    Attributes:
        activation: The `Softmax` it applies.
        loss: The `CategoricalCrossentropy` it computes.
    """

    def __init__(self, *, xp: BackendSpec = None) -> None:
        super().__init__(xp)
        self.activation = Softmax(xp=self.backend)
        self.loss = CategoricalCrossentropy(xp=self.backend)

    def to(self, spec: BackendSpec) -> Self:
        """Move this component, its softmax and its loss to another backend.

        Args:
            spec: The target backend: a name, an array module, a Backend, or None for the current one.

        Returns:
            This component, moved.
        """
        super().to(spec)
        self.activation.to(self.backend)
        self.loss.to(self.backend)
        return self

    def forward(self, inputs: Array, y_true: Array) -> Array:
        """Set `output` to the softmax of `inputs` and return the mean loss against `y_true`.

        Args:
            inputs: The last Dense layer's outputs, shaped (samples, classes).
            y_true: Integer labels shaped (samples,) or one-hot rows.

        Returns:
            The mean loss: a 0-d array on the backend.
        """
        self.activation.forward(inputs)
        self.output = self.activation.output
        return self.loss.calculate(self.output, y_true)

    def backward(self, dvalues: Array, y_true: Array) -> None:
        """Set `dinputs` to (softmax outputs - one-hot targets) / samples.

        Args:
            dvalues: The softmax outputs (this component's `output`), shaped (samples, classes).
            y_true: Integer labels shaped (samples,) or one-hot rows.
        """
        dvalues, y_true = self.loss._targets(dvalues, y_true)
        if y_true.ndim == 2:
            y_true = self.xp.argmax(y_true, axis=1)
        self.dinputs = self.backend.softmax_crossentropy_backward(dvalues, y_true)


class BinaryCrossentropy(Loss):
    """The mean over outputs of -(y log p + (1 - y) log(1 - p)), for independent sigmoid outputs (the book's
    `Loss_BinaryCrossentropy`).

    Predictions are clipped to [1e-7, 1 - 1e-7]; targets are 0/1 labels or probabilities shaped like them.

    Args:
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.
    """

    TARGETS = "probabilities"

    def kernel_spec(self) -> LossSpec:
        """What a compiled training step needs to know about this loss.

        Returns:
            Its name and the clipping epsilon.
        """
        return LossSpec("binary_crossentropy", EPSILON)

    def _checked_targets(self, y_pred: Array, y_true: Array) -> Array:
        checked = super()._checked_targets(y_pred, y_true)
        _checks.within(self.backend, y_true, 0, 1, self)  # on the caller's array: checked once per object
        return checked

    def forward(self, y_pred: Array, y_true: Array) -> Array:
        """The per-sample losses.

        Args:
            y_pred: Probabilities shaped (samples, outputs).
            y_true: Targets in [0, 1] shaped like `y_pred` ((samples,) for one output).

        Returns:
            The mean binary cross-entropy over each sample's outputs, shaped (samples,).
        """
        y_pred, y_true = self._targets(y_pred, y_true)
        return self.backend.binary_crossentropy(y_pred, y_true, EPSILON)

    def backward(self, dvalues: Array, y_true: Array) -> None:
        """Set `dinputs` to -(y / p - (1 - y) / (1 - p)) / outputs / samples, on clipped predictions.

        Args:
            dvalues: The predicted probabilities, shaped (samples, outputs).
            y_true: Targets in [0, 1] shaped like `dvalues`.
        """
        dvalues, y_true = self._targets(dvalues, y_true)
        self.dinputs = self.backend.binary_crossentropy_backward(dvalues, y_true, EPSILON)


class MeanSquaredError(Loss):
    """The mean over outputs of (y - p)^2, for regression (the book's `Loss_MeanSquaredError`).

    Args:
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.
    """

    def kernel_spec(self) -> LossSpec:
        """What a compiled training step needs to know about this loss.

        Returns:
            Its name.
        """
        return LossSpec("mean_squared_error")

    def forward(self, y_pred: Array, y_true: Array) -> Array:
        """The per-sample losses.

        Args:
            y_pred: Predicted values shaped (samples, outputs).
            y_true: Target values shaped like `y_pred` ((samples,) for one output).

        Returns:
            The mean squared error over each sample's outputs, shaped (samples,).
        """
        y_pred, y_true = self._targets(y_pred, y_true)
        return self.backend.squared_error(y_pred, y_true)

    def backward(self, dvalues: Array, y_true: Array) -> None:
        """Set `dinputs` to -2 (y - p) / outputs / samples.

        Args:
            dvalues: The predicted values, shaped (samples, outputs).
            y_true: Target values shaped like `dvalues`.
        """
        dvalues, y_true = self._targets(dvalues, y_true)
        self.dinputs = self.backend.squared_error_backward(dvalues, y_true)


class MeanAbsoluteError(Loss):
    """The mean over outputs of |y - p|, for regression (the book's `Loss_MeanAbsoluteError`).

    Its gradient is sign(p - y): the printed book has the sign flipped, which would climb the loss.

    Args:
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.
    """

    def forward(self, y_pred: Array, y_true: Array) -> Array:
        """The per-sample losses.

        Args:
            y_pred: Predicted values shaped (samples, outputs).
            y_true: Target values shaped like `y_pred` ((samples,) for one output).

        Returns:
            The mean absolute error over each sample's outputs, shaped (samples,).
        """
        y_pred, y_true = self._targets(y_pred, y_true)
        return self.xp.mean(self.xp.abs(y_true - y_pred), axis=-1)

    def backward(self, dvalues: Array, y_true: Array) -> None:
        """Set `dinputs` to sign(p - y) / outputs / samples.

        Args:
            dvalues: The predicted values, shaped (samples, outputs).
            y_true: Target values shaped like `dvalues`.
        """
        dvalues, y_true = self._targets(dvalues, y_true)
        samples, outputs = dvalues.shape
        self.dinputs = self.xp.sign(dvalues - y_true) / outputs
        self.dinputs = self.dinputs / samples
