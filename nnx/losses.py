"""Losses: categorical and binary cross-entropy, squared and absolute error, and the fused softmax classifier.

`calculate` returns the mean loss as a 0-d array on the backend: nothing is copied to the host.
"""

from __future__ import annotations

from nnx import _checks
from nnx._component import Component, RunningMean
from nnx.activations import Softmax

EPSILON = 1e-7


class Loss(RunningMean):
    """Shared parts: the mean over samples, the regularization penalty and the running sums of an epoch.

    `TARGETS` says what a Model checks its targets as: "values" (shaped like the outputs), "probabilities" (values
    in [0, 1]) or "classes" (integer labels or one-hot rows).
    """

    TARGETS = "values"

    def __init__(self, *, xp=None):
        super().__init__(xp=xp)
        self.trainable_layers = []

    def remember_trainable_layers(self, trainable_layers) -> None:
        """The layers whose regularization penalty `regularization_loss()` adds up."""
        self.trainable_layers = list(trainable_layers)

    def regularization_loss(self, layer=None):
        """The L1/L2 penalty of `layer`, or of every remembered trainable layer when `layer` is None."""
        layers = self.trainable_layers if layer is None else [layer]
        total = 0
        penalty = self.backend.regularization_penalty
        for each in layers:
            total = total + penalty(each.weights, each.weight_regularizer_l1, each.weight_regularizer_l2)
            total = total + penalty(each.biases, each.bias_regularizer_l1, each.bias_regularizer_l2)
        return total

    def calculate(self, output, y, *, include_regularization: bool = False):
        """Mean loss over the batch (and the regularization loss too, if asked); adds to the epoch's sums."""
        with self.backend.quiet_float_errors():  # an infinite loss is returned as such (Model: DivergenceError)
            sample_losses = self.forward(output, y)
            data_loss = self.xp.mean(sample_losses)
        self._accumulate(sample_losses)
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def calculate_accumulated(self, *, include_regularization: bool = False):
        """Mean loss over every batch since `new_pass()`."""
        data_loss = self._accumulated_mean()
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def _targets(self, y_pred, y_true):
        """Checked targets for `y_pred`: class labels or one-hot rows here, same-shaped values in subclasses."""
        y_pred = self._accept_batch(y_pred, "predictions")
        self._accept(y_true, "targets")
        _checks.same_samples(y_pred.shape[0], y_true, self)
        return y_pred, self._checked_targets(y_pred, y_true)

    def _checked_targets(self, y_pred, y_true):
        _checks.real_dtype(self.xp, y_true, self, "targets")
        y_true = _checks.as_finite(self.backend, y_true, y_pred.dtype, self, "targets")
        return _checks.value_targets(self.xp, y_true, y_pred.shape[0], y_pred.shape[1], self)


class CategoricalCrossentropy(Loss):
    """-log of the probability given to the true class; targets are integer labels or one-hot rows."""

    TARGETS = "classes"

    def kernel_spec(self) -> dict:
        return {"loss": "categorical_crossentropy", "clip_epsilon": EPSILON}

    def _checked_targets(self, y_pred, y_true):
        return _checks.class_targets(self.backend, y_true, y_pred.shape[1], self)

    def forward(self, y_pred, y_true):
        y_pred, y_true = self._targets(y_pred, y_true)
        if y_true.ndim == 1:
            return self.backend.categorical_crossentropy(y_pred, y_true, EPSILON)
        xp = self.xp
        clipped = xp.clip(y_pred, EPSILON, 1 - EPSILON)
        return -xp.log(xp.sum(clipped * xp.astype(y_true, y_pred.dtype), axis=1))

    def backward(self, dvalues, y_true) -> None:
        dvalues, y_true = self._targets(dvalues, y_true)
        samples, labels = dvalues.shape
        if y_true.ndim == 1:
            y_true = self.backend.one_hot(y_true, labels, dvalues.dtype)
        self.dinputs = -self.xp.astype(y_true, dvalues.dtype) / dvalues
        self.dinputs = self.dinputs / samples


class SoftmaxCategoricalCrossentropy(Component):
    """Softmax followed by categorical cross-entropy, with the fast combined gradient (softmax - one-hot) / n."""

    def __init__(self, *, xp=None):
        super().__init__(xp)
        self.activation = Softmax(xp=self.backend)
        self.loss = CategoricalCrossentropy(xp=self.backend)

    def to(self, spec):
        super().to(spec)
        self.activation.to(self.backend)
        self.loss.to(self.backend)
        return self

    def forward(self, inputs, y_true):
        """Set `output` to the softmax of `inputs` and return the mean loss against `y_true`."""
        self.activation.forward(inputs)
        self.output = self.activation.output
        return self.loss.calculate(self.output, y_true)

    def backward(self, dvalues, y_true) -> None:
        """`dvalues` are the softmax outputs; `y_true` integer labels or one-hot rows."""
        dvalues, y_true = self.loss._targets(dvalues, y_true)
        if y_true.ndim == 2:
            y_true = self.xp.argmax(y_true, axis=1)
        self.dinputs = self.backend.softmax_crossentropy_backward(dvalues, y_true)


class BinaryCrossentropy(Loss):
    """Mean over outputs of -(y log p + (1 - y) log(1 - p)), for independent sigmoid outputs."""

    TARGETS = "probabilities"

    def kernel_spec(self) -> dict:
        return {"loss": "binary_crossentropy", "clip_epsilon": EPSILON}

    def _checked_targets(self, y_pred, y_true):
        checked = super()._checked_targets(y_pred, y_true)
        _checks.within(self.backend, y_true, 0, 1, self)  # on the caller's array: checked once per object
        return checked

    def forward(self, y_pred, y_true):
        y_pred, y_true = self._targets(y_pred, y_true)
        return self.backend.binary_crossentropy(y_pred, y_true, EPSILON)

    def backward(self, dvalues, y_true) -> None:
        dvalues, y_true = self._targets(dvalues, y_true)
        self.dinputs = self.backend.binary_crossentropy_backward(dvalues, y_true, EPSILON)


class MeanSquaredError(Loss):
    """Mean over outputs of (y - p)^2, for regression."""

    def kernel_spec(self) -> dict:
        return {"loss": "mean_squared_error"}

    def forward(self, y_pred, y_true):
        y_pred, y_true = self._targets(y_pred, y_true)
        return self.backend.squared_error(y_pred, y_true)

    def backward(self, dvalues, y_true) -> None:
        dvalues, y_true = self._targets(dvalues, y_true)
        self.dinputs = self.backend.squared_error_backward(dvalues, y_true)


class MeanAbsoluteError(Loss):
    """Mean over outputs of |y - p|, for regression.

    Its gradient is sign(p - y): the printed book has the sign flipped, which would climb the loss.
    """

    def forward(self, y_pred, y_true):
        y_pred, y_true = self._targets(y_pred, y_true)
        return self.xp.mean(self.xp.abs(y_true - y_pred), axis=-1)

    def backward(self, dvalues, y_true) -> None:
        dvalues, y_true = self._targets(dvalues, y_true)
        samples, outputs = dvalues.shape
        self.dinputs = self.xp.sign(dvalues - y_true) / outputs
        self.dinputs = self.dinputs / samples
