"""Activation functions: ReLU, Softmax, Sigmoid and Linear, each with its exact backward pass."""

from __future__ import annotations

from nnx import _checks
from nnx._component import Component


class ReLU(Component):
    """max(0, x), element-wise; its gradient is zero where the input was <= 0."""

    def kernel_spec(self) -> dict:
        return {"op": "relu"}

    def forward(self, inputs, training: bool = False) -> None:
        inputs = self._accept_batch(inputs)
        self.inputs = inputs
        self.output = _checks.produced(self.backend.relu_forward(inputs))

    def backward(self, dvalues) -> None:
        """Pass the gradient where the input was positive."""
        self._require_forward(dvalues)
        self.dinputs = self.backend.relu_backward(dvalues, self.inputs)

    def predictions(self, outputs):
        return outputs


class Softmax(Component):
    """Row-wise softmax, computed stably by subtracting each row's maximum first."""

    def kernel_spec(self) -> dict:
        return {"op": "softmax"}

    def forward(self, inputs, training: bool = False) -> None:
        inputs = self._accept_batch(inputs)
        self.inputs = inputs
        with self.backend.quiet_float_errors():  # extreme logits round to 0 or 1, which is right
            self.output = _checks.produced(self.backend.softmax(inputs))

    def backward(self, dvalues) -> None:
        """The exact Jacobian-vector product, all rows at once: s * (d - sum(d * s))."""
        self._require_forward(dvalues)
        s = self.output
        self.dinputs = s * (dvalues - self.xp.sum(dvalues * s, axis=1, keepdims=True))

    def predictions(self, outputs):
        return self.xp.argmax(outputs, axis=1)


class Sigmoid(Component):
    """1 / (1 + exp(-x)), element-wise: independent probabilities for binary outputs."""

    def kernel_spec(self) -> dict:
        return {"op": "sigmoid"}

    def forward(self, inputs, training: bool = False) -> None:
        inputs = self._accept_batch(inputs)
        self.inputs = inputs
        with self.backend.quiet_float_errors():  # exp overflows for very negative inputs: the result is 0, right
            self.output = _checks.produced(self.backend.sigmoid(inputs))

    def backward(self, dvalues) -> None:
        self._require_forward(dvalues)
        self.dinputs = dvalues * (1 - self.output) * self.output

    def predictions(self, outputs):
        return self.xp.astype(outputs > 0.5, self.backend.int_dtype)


class Linear(Component):
    """The identity, for regression outputs."""

    def kernel_spec(self) -> dict:
        return {"op": "linear"}

    def forward(self, inputs, training: bool = False) -> None:
        inputs = self._accept_batch(inputs)
        self.inputs = inputs
        self.output = _checks.produced(inputs)

    def backward(self, dvalues) -> None:
        self._require_forward(dvalues)
        self.dinputs = dvalues

    def predictions(self, outputs):
        return outputs
