"""The generic kernels every backend has: Dense, ReLU, softmax, the losses, L1/L2 and the four optimizers' updates,
written once against the array namespace `xp`.

They are the reference: a backend overrides those it can do faster, and the tests compare each override with these.
Results are new arrays unless an argument is documented as updated in place by a faster backend; callers always
use the returned arrays. They also take a stack of M models: arrays with a leading model axis (M, n_samples, width),
parameters (M, n_inputs, n_outputs) and per-model hyperparameters as (M, 1, 1) arrays (`nnx.train_many`).
"""

from __future__ import annotations

from typing import Any

Array = Any  # an array of the backend's library (NumPy, CuPy, JAX, PyTorch, ...)


class Kernels:
    """The generic kernels of `Backend`, on the namespace `xp` and the device `array_device` it sets."""

    xp: Any
    array_device: Any

    # Layers and activations ---------------------------------------------------------------------------------------

    def dense_forward(self, inputs: Array, weights: Array, biases: Array) -> Array:
        """A Dense layer's output: inputs @ weights + biases.

        Args:
            inputs: (n_samples, n_inputs), or (M, n_samples, n_inputs) for a stack.
            weights: (n_inputs, n_outputs), or (M, n_inputs, n_outputs).
            biases: (1, n_outputs), or (M, 1, n_outputs).

        Returns:
            (n_samples, n_outputs), or (M, n_samples, n_outputs).
        """
        return self.xp.matmul(inputs, weights) + biases

    def dense_backward(self, inputs: Array, weights: Array, dvalues: Array) -> tuple[Array, Array, Array]:
        """A Dense layer's gradients for the gradient of its output.

        Args:
            inputs: what the forward pass took, (n_samples, n_inputs) (with a leading M for a stack).
            weights: (n_inputs, n_outputs).
            dvalues: the gradient of the layer's output, (n_samples, n_outputs).

        Returns:
            (dweights, dbiases, dinputs): inputs.T @ dvalues, the column sums of `dvalues` (1, n_outputs), and
            dvalues @ weights.T.
        """
        xp = self.xp
        dweights = xp.matmul(xp.matrix_transpose(inputs), dvalues)
        dbiases = xp.sum(dvalues, axis=-2, keepdims=True)
        return dweights, dbiases, xp.matmul(dvalues, xp.matrix_transpose(weights))

    def relu_forward(self, inputs: Array) -> Array:
        """ReLU: max(0, inputs), element-wise.

        Args:
            inputs: any shape.

        Returns:
            An array of the same shape and dtype.
        """
        return self.xp.maximum(inputs, 0)

    def relu_backward(self, dvalues: Array, inputs: Array) -> Array:
        """ReLU's gradient: `dvalues` where `inputs` > 0, else 0 (a multiply by the 0/1 mask, faster than `where`).

        Args:
            dvalues: the gradient of the ReLU's output.
            inputs: what the forward pass took, of the same shape.

        Returns:
            The gradient of the inputs, of `dvalues`' shape and dtype.
        """
        return dvalues * self.xp.astype(inputs > 0, dvalues.dtype)

    def softmax(self, inputs: Array) -> Array:
        """Softmax along the last axis, stable: each row's maximum is subtracted before the exponential.

        Args:
            inputs: scores (n_samples, n_classes), or (M, n_samples, n_classes).

        Returns:
            Probabilities of the same shape; each row sums to 1.
        """
        xp = self.xp
        exponentials = xp.exp(inputs - xp.max(inputs, axis=-1, keepdims=True))
        return exponentials / xp.sum(exponentials, axis=-1, keepdims=True)

    def sigmoid(self, inputs: Array) -> Array:
        """The logistic function 1 / (1 + exp(-inputs)), element-wise.

        Args:
            inputs: any shape.

        Returns:
            Values in (0, 1), of the same shape.
        """
        return 1 / (1 + self.xp.exp(-inputs))

    # Losses -------------------------------------------------------------------------------------------------------

    def one_hot(self, labels: Array, n_classes: int, dtype: Any) -> Array:
        """One-hot rows for integer labels, built by comparison (no scatter, so every backend can run it).

        Args:
            labels: class numbers (n_samples,), integers or integer-valued floats.
            n_classes: the row width.
            dtype: the namespace dtype of the result.

        Returns:
            (n_samples, n_classes): zeros, with a one at each sample's label.
        """
        classes = self.arange(n_classes, dtype=labels.dtype)
        return self.xp.astype(labels[:, None] == classes, dtype)

    def categorical_crossentropy(self, probabilities: Array, labels: Array, epsilon: float) -> Array:
        """Each sample's cross-entropy: -log(p of its true class), p clipped to [epsilon, 1 - epsilon].

        Args:
            probabilities: (n_samples, n_classes), each row summing to 1.
            labels: the true classes (n_samples,), integers.
            epsilon: the clip that keeps log away from 0 (the book's 1e-7).

        Returns:
            (n_samples,) losses.
        """
        xp = self.xp
        clipped = xp.clip(probabilities, epsilon, 1 - epsilon)
        one_hot = self.one_hot(labels, probabilities.shape[-1], probabilities.dtype)
        return -xp.log(xp.sum(clipped * one_hot, axis=-1))

    def softmax_crossentropy_backward(self, probabilities: Array, labels: Array) -> Array:
        """The fused gradient of softmax and cross-entropy: (probabilities - one-hot of labels) / n_samples.

        Args:
            probabilities: the softmax outputs, (n_samples, n_classes).
            labels: the true classes (n_samples,), integers.

        Returns:
            The gradient of the softmax's inputs, (n_samples, n_classes).
        """
        one_hot = self.one_hot(labels, probabilities.shape[-1], probabilities.dtype)
        return (probabilities - one_hot) / probabilities.shape[-2]

    def binary_crossentropy(self, probabilities: Array, targets: Array, epsilon: float) -> Array:
        """Each sample's binary cross-entropy: the mean over the outputs of -(y log p + (1 - y) log(1 - p)).

        Args:
            probabilities: sigmoid outputs (n_samples, n_outputs), clipped to [epsilon, 1 - epsilon] first.
            targets: 0 or 1, of the same shape.
            epsilon: the clip that keeps log away from 0.

        Returns:
            (n_samples,) losses.
        """
        xp = self.xp
        clipped = xp.clip(probabilities, epsilon, 1 - epsilon)
        return xp.mean(-(targets * xp.log(clipped) + (1 - targets) * xp.log(1 - clipped)), axis=-1)

    def binary_crossentropy_backward(self, probabilities: Array, targets: Array, epsilon: float) -> Array:
        """The gradient of the batch's mean binary cross-entropy with respect to the probabilities.

        Args:
            probabilities: sigmoid outputs (n_samples, n_outputs), clipped to [epsilon, 1 - epsilon] first.
            targets: 0 or 1, of the same shape.
            epsilon: the clip, as in the forward pass.

        Returns:
            An array of the probabilities' shape.
        """
        clipped = self.xp.clip(probabilities, epsilon, 1 - epsilon)
        gradient = -(targets / clipped - (1 - targets) / (1 - clipped)) / probabilities.shape[-1]
        return gradient / probabilities.shape[-2]

    def squared_error(self, outputs: Array, targets: Array) -> Array:
        """Each sample's squared error: the mean over the outputs of (y - p)^2.

        Args:
            outputs: predictions (n_samples, n_outputs).
            targets: of the same shape.

        Returns:
            (n_samples,) losses.
        """
        return self.xp.mean((targets - outputs) ** 2, axis=-1)

    def squared_error_backward(self, outputs: Array, targets: Array) -> Array:
        """The gradient of the batch's mean squared error with respect to the outputs.

        Args:
            outputs: predictions (n_samples, n_outputs).
            targets: of the same shape.

        Returns:
            An array of the outputs' shape.
        """
        gradient = -2 * (targets - outputs) / outputs.shape[-1]
        return gradient / outputs.shape[-2]

    # Regularization -----------------------------------------------------------------------------------------------

    def regularization_gradient(self, gradient: Array, values: Array, l1: float | Array, l2: float | Array) -> Array:
        """A parameter's gradient plus its L1 and L2 penalties' gradients, l1 * sign(values) and 2 * l2 * values.

        Args:
            gradient: the data loss's gradient of the parameter.
            values: the parameter (weights or biases), of the same shape.
            l1: the L1 strength; 0 adds nothing. A stack passes one per model, (M, 1, 1).
            l2: the L2 strength, as `l1`.

        Returns:
            The total gradient, of `gradient`'s shape.
        """
        if _active(l1):
            gradient = gradient + l1 * (1 - 2 * self.xp.astype(values < 0, values.dtype))
        if _active(l2):
            gradient = gradient + 2 * l2 * values
        return gradient

    def regularization_penalty(self, values: Array, l1: float | Array, l2: float | Array) -> Array:
        """The L1 and L2 penalties of a parameter: l1 * sum(|values|) + l2 * sum(values^2).

        Args:
            values: the parameter (weights or biases); the sums run over its last two axes.
            l1: the L1 strength; 0 adds nothing. A stack passes one per model, (M, 1, 1).
            l2: the L2 strength, as `l1`.

        Returns:
            A 0-d array (one per model for a stack, (M,)), or the integer 0 when both strengths are 0.
        """
        xp = self.xp
        total = 0
        if _active(l1):
            total = total + l1 * xp.sum(xp.abs(values), axis=(-2, -1))
        if _active(l2):
            total = total + l2 * xp.sum(values * values, axis=(-2, -1))
        return total

    # Optimizer updates --------------------------------------------------------------------------------------------

    def sgd_update(
        self,
        values: Array,
        gradient: Array,
        learning_rate: float | Array,
        momentums: Array | None = None,
        momentum: float | Array = 0.0,
    ) -> tuple[Array, Array | None]:
        """One SGD step, with momentum when `momentums` is given. Faster backends update in place.

        Args:
            values: the parameter.
            gradient: its gradient, of the same shape.
            learning_rate: the step's learning rate (after decay); (M, 1, 1) for a stack.
            momentums: the momentum slot, of the parameter's shape, or None for plain SGD.
            momentum: the momentum factor, used with `momentums`.

        Returns:
            (values, momentums) after the step; momentums is None without momentum.
        """
        if momentums is None:
            return values - learning_rate * gradient, None
        momentums = momentum * momentums - learning_rate * gradient
        return values + momentums, momentums

    def adagrad_update(
        self, values: Array, gradient: Array, cache: Array, learning_rate: float | Array, epsilon: float | Array
    ) -> tuple[Array, Array]:
        """One Adagrad step. Faster backends update in place.

        Args:
            values: the parameter.
            gradient: its gradient, of the same shape.
            cache: the sum of the squared gradients so far, of the same shape.
            learning_rate: the step's learning rate (after decay); (M, 1, 1) for a stack.
            epsilon: added to the root of the cache before dividing.

        Returns:
            (values, cache) after the step.
        """
        cache = cache + gradient**2
        return values - learning_rate * gradient / (self.xp.sqrt(cache) + epsilon), cache

    def rmsprop_update(
        self,
        values: Array,
        gradient: Array,
        cache: Array,
        learning_rate: float | Array,
        epsilon: float | Array,
        rho: float | Array,
    ) -> tuple[Array, Array]:
        """One RMSprop step. Faster backends update in place.

        Args:
            values: the parameter.
            gradient: its gradient, of the same shape.
            cache: the moving average of the squared gradients, of the same shape.
            learning_rate: the step's learning rate (after decay); (M, 1, 1) for a stack.
            epsilon: added to the root of the cache before dividing.
            rho: the cache's decay: cache = rho * cache + (1 - rho) * gradient^2.

        Returns:
            (values, cache) after the step.
        """
        cache = rho * cache + (1 - rho) * gradient**2
        return values - learning_rate * gradient / (self.xp.sqrt(cache) + epsilon), cache

    def adam_update(
        self,
        values: Array,
        gradient: Array,
        momentums: Array,
        cache: Array,
        learning_rate: float | Array,
        epsilon: float | Array,
        beta_1: float | Array,
        beta_2: float | Array,
        step: int | Array,
    ) -> tuple[Array, Array, Array]:
        """One Adam step, both moments bias-corrected. Faster backends update in place.

        Args:
            values: the parameter.
            gradient: its gradient, of the same shape.
            momentums: the moving average of the gradients, of the same shape.
            cache: the moving average of the squared gradients, of the same shape.
            learning_rate: the step's learning rate (after decay); (M, 1, 1) for a stack.
            epsilon: added to the root of the corrected cache before dividing.
            beta_1: the momentums' decay.
            beta_2: the cache's decay.
            step: the step's number, from 1 (the bias corrections divide by 1 - beta**step).

        Returns:
            (values, momentums, cache) after the step.
        """
        momentums = beta_1 * momentums + (1 - beta_1) * gradient
        cache = beta_2 * cache + (1 - beta_2) * gradient**2
        corrected_momentums = momentums / (1 - beta_1**step)
        corrected_cache = cache / (1 - beta_2**step)
        return (
            values - learning_rate * corrected_momentums / (self.xp.sqrt(corrected_cache) + epsilon),
            momentums,
            cache,
        )

    # New arrays ---------------------------------------------------------------------------------------------------

    def zeros(self, shape: tuple[int, ...], dtype: Any) -> Array:
        """A new array of zeros on this backend's device.

        Args:
            shape: its shape.
            dtype: a namespace dtype (see `Backend.dtype`).

        Returns:
            The array.
        """
        return self.xp.zeros(shape, dtype=dtype, device=self.array_device)

    def arange(self, stop: int, dtype: Any = None) -> Array:
        """0, 1, ..., stop - 1 on this backend's device.

        Args:
            stop: how many values.
            dtype: a namespace dtype; None is the namespace's default integer type.

        Returns:
            A 1-d array of `stop` values.
        """
        return self.xp.arange(stop, dtype=dtype, device=self.array_device)


def _active(strength: float | Array) -> bool:
    """Whether a regularization strength adds anything: a number > 0, or an array (per-model strengths)."""
    return strength > 0 if isinstance(strength, (int, float)) else True
