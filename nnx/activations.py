"""Activation functions: ReLU, Softmax, Sigmoid and Linear, each with its exact backward pass.

Each takes a batch shaped (samples, features) and keeps the book's attributes: `inputs` and `output` after
`forward`, `dinputs` after `backward`. `predictions(outputs)` turns the last layer's outputs into what an
accuracy compares with the targets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nnx import _checks
from nnx._component import Array, Component
from nnx.backends.specs import ActivationSpec

__all__ = ["Linear", "ReLU", "Sigmoid", "Softmax"]


def onnx_node(op_type: str, **attributes: Any) -> Callable[[Any, Any, str], str]:
    """An activation's `to_onnx` method: one node of the ONNX operator `op_type` on its input.

    Args:
        op_type: the operator, e.g. "Relu".
        **attributes: its attributes, e.g. ``axis=-1``.

    Returns:
        The method, ``to_onnx(self, graph, inputs) -> the output's name``.
    """

    def to_onnx(self: Any, graph: Any, inputs: str) -> str:
        """Add this activation to an ONNX graph being exported, as one node of its ONNX operator.

        Args:
            graph: the `nnx.io.onnx_export.OnnxGraph` being built.
            inputs: the name of this activation's input in it.

        Returns:
            The name of its output.
        """
        return graph.node(op_type, [inputs], **attributes)

    return to_onnx


class ReLU(Component):
    """The rectified linear unit, max(0, x), element-wise (the book's `Activation_ReLU`).

    Its gradient is zero where the input was <= 0.

    Args:
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.
    """

    def kernel_spec(self) -> ActivationSpec:
        """What a compiled training step needs: this activation's name.

        Returns:
            ``ActivationSpec("relu")``.
        """
        return ActivationSpec("relu")

    to_onnx = onnx_node("Relu")

    def forward(self, inputs: Array, training: bool = False) -> None:
        """Set `output` to max(0, inputs).

        Args:
            inputs: A batch shaped (samples, features) on this backend; integers are cast to float32.
            training: Whether this is a training pass (unused: ReLU behaves the same either way).
        """
        inputs = self._accept_batch(inputs)
        self.inputs = inputs
        self.output = _checks.produced(self.backend.relu_forward(inputs))

    def backward(self, dvalues: Array) -> None:
        """Set `dinputs`: the gradient passed through where the input was positive, zero elsewhere.

        Args:
            dvalues: The gradient of the loss with respect to `output`, shaped like it.

        Raises:
            CallOrderError: if `forward` has not run.
        """
        self._require_forward(dvalues)
        self.dinputs = self.backend.relu_backward(dvalues, self.inputs)

    def predictions(self, outputs: Array) -> Array:
        """The outputs themselves (a ReLU is rarely the last layer).

        Args:
            outputs: This activation's output.

        Returns:
            `outputs`, unchanged.
        """
        return outputs


class Softmax(Component):
    """Row-wise softmax: each row of outputs becomes probabilities that sum to 1 (the book's `Activation_Softmax`).

    Computed stably by subtracting each row's maximum first.

    Args:
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.
    """

    def kernel_spec(self) -> ActivationSpec:
        """What a compiled training step needs: this activation's name.

        Returns:
            ``ActivationSpec("softmax")``.
        """
        return ActivationSpec("softmax")

    to_onnx = onnx_node("Softmax", axis=-1)

    def forward(self, inputs: Array, training: bool = False) -> None:
        """Set `output` to exp(inputs) / sum(exp(inputs)) along each row.

        Args:
            inputs: A batch shaped (samples, classes) on this backend; integers are cast to float32.
            training: Whether this is a training pass (unused: softmax behaves the same either way).
        """
        inputs = self._accept_batch(inputs)
        self.inputs = inputs
        with self.backend.quiet_float_errors():  # extreme logits round to 0 or 1, which is right
            self.output = _checks.produced(self.backend.softmax(inputs))

    def backward(self, dvalues: Array) -> None:
        """Set `dinputs`: the exact Jacobian-vector product, all rows at once: s * (d - sum(d * s)).

        Args:
            dvalues: The gradient of the loss with respect to `output`, shaped like it.

        Raises:
            CallOrderError: if `forward` has not run.
        """
        self._require_forward(dvalues)
        s = self.output
        self.dinputs = s * (dvalues - self.xp.sum(dvalues * s, axis=1, keepdims=True))

    def predictions(self, outputs: Array) -> Array:
        """The predicted class of each row.

        Args:
            outputs: Probabilities shaped (samples, classes).

        Returns:
            The index of each row's largest probability, shaped (samples,).
        """
        return self.xp.argmax(outputs, axis=1)


class Sigmoid(Component):
    """The logistic function 1 / (1 + exp(-x)), element-wise (the book's `Activation_Sigmoid`).

    Each output is an independent probability: the last layer of a binary classifier (with `BinaryCrossentropy`).

    Args:
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.
    """

    def kernel_spec(self) -> ActivationSpec:
        """What a compiled training step needs: this activation's name.

        Returns:
            ``ActivationSpec("sigmoid")``.
        """
        return ActivationSpec("sigmoid")

    to_onnx = onnx_node("Sigmoid")

    def forward(self, inputs: Array, training: bool = False) -> None:
        """Set `output` to 1 / (1 + exp(-inputs)).

        Args:
            inputs: A batch shaped (samples, features) on this backend; integers are cast to float32.
            training: Whether this is a training pass (unused: sigmoid behaves the same either way).
        """
        inputs = self._accept_batch(inputs)
        self.inputs = inputs
        with self.backend.quiet_float_errors():  # exp overflows for very negative inputs: the result is 0, right
            self.output = _checks.produced(self.backend.sigmoid(inputs))

    def backward(self, dvalues: Array) -> None:
        """Set `dinputs` to dvalues * (1 - output) * output.

        Args:
            dvalues: The gradient of the loss with respect to `output`, shaped like it.

        Raises:
            CallOrderError: if `forward` has not run.
        """
        self._require_forward(dvalues)
        self.dinputs = dvalues * (1 - self.output) * self.output

    def predictions(self, outputs: Array) -> Array:
        """0/1 predictions: 1 where the probability is above 0.5.

        Args:
            outputs: Probabilities shaped (samples, outputs).

        Returns:
            Integer 0s and 1s shaped like `outputs`.
        """
        return self.xp.astype(outputs > 0.5, self.backend.int_dtype)


class Linear(Component):
    """The identity, y = x: the last layer of a regression model (the book's `Activation_Linear`).

    Args:
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.
    """

    def kernel_spec(self) -> ActivationSpec:
        """What a compiled training step needs: this activation's name.

        Returns:
            ``ActivationSpec("linear")``.
        """
        return ActivationSpec("linear")

    to_onnx = onnx_node("Identity")

    def forward(self, inputs: Array, training: bool = False) -> None:
        """Set `output` to `inputs`.

        Args:
            inputs: A batch shaped (samples, outputs) on this backend; integers are cast to float32.
            training: Whether this is a training pass (unused).
        """
        inputs = self._accept_batch(inputs)
        self.inputs = inputs
        self.output = _checks.produced(inputs)

    def backward(self, dvalues: Array) -> None:
        """Set `dinputs` to `dvalues`: the identity's gradient is 1.

        Args:
            dvalues: The gradient of the loss with respect to `output`, shaped like it.

        Raises:
            CallOrderError: if `forward` has not run.
        """
        self._require_forward(dvalues)
        self.dinputs = dvalues

    def predictions(self, outputs: Array) -> Array:
        """The outputs themselves: a regression predicts the values.

        Args:
            outputs: This activation's output.

        Returns:
            `outputs`, unchanged.
        """
        return outputs
