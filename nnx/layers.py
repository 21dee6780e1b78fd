"""Trainable and structural layers: Dense (with the book's L1/L2 regularization), Dropout and Input."""

from __future__ import annotations

from nnx._component import Component, check_non_negative, check_positive_int


class Dense(Component):
    """A fully connected layer, ``output = inputs @ weights + biases``, initialised as in the book.

    Weights are `weight_scale` * standard normal numbers drawn on the host with NumPy (its global RNG, or
    `rng`), so every backend starts from the same numbers; biases start at zero.
    """

    ARRAYS = ("weights", "biases")

    def __init__(
        self,
        n_inputs: int,
        n_neurons: int,
        weight_regularizer_l1: float = 0.0,
        weight_regularizer_l2: float = 0.0,
        bias_regularizer_l1: float = 0.0,
        bias_regularizer_l2: float = 0.0,
        *,
        weight_scale: float = 0.01,
        xp=None,
        dtype=None,
        rng=None,
    ):
        super().__init__(xp)
        self.n_inputs = check_positive_int(n_inputs, "n_inputs")
        self.n_neurons = check_positive_int(n_neurons, "n_neurons")
        self.weight_regularizer_l1 = check_non_negative(weight_regularizer_l1, "weight_regularizer_l1")
        self.weight_regularizer_l2 = check_non_negative(weight_regularizer_l2, "weight_regularizer_l2")
        self.bias_regularizer_l1 = check_non_negative(bias_regularizer_l1, "bias_regularizer_l1")
        self.bias_regularizer_l2 = check_non_negative(bias_regularizer_l2, "bias_regularizer_l2")
        self.dtype = self.backend.float_dtype(dtype)
        scale = check_non_negative(weight_scale, "weight_scale")
        self.weights = self.backend.scaled_normal((n_inputs, n_neurons), scale, self.dtype, rng)
        self.biases = self.backend.zeros((1, n_neurons), self.dtype)

    def __repr__(self) -> str:
        return f"Dense({self.n_inputs} -> {self.n_neurons})"

    def to(self, spec):
        super().to(spec)
        self.dtype = self.weights.dtype
        return self

    def forward(self, inputs, training: bool = False) -> None:
        """Set `output` for a (n_samples, n_inputs) batch; inputs of another float dtype are cast once."""
        self._accept(inputs)
        if inputs.ndim != 2 or inputs.shape[1] != self.n_inputs:
            raise ValueError(
                f"{self!r} expected inputs of shape (n_samples, {self.n_inputs}), got shape {tuple(inputs.shape)}"
            )
        if inputs.dtype != self.dtype:
            inputs = self.xp.astype(inputs, self.dtype)
        self.inputs = inputs
        self.output = self.xp.matmul(inputs, self.weights) + self.biases

    def backward(self, dvalues) -> None:
        """Set `dweights`, `dbiases` (regularization terms included) and `dinputs` from the output gradient."""
        xp = self.xp
        self.dweights = xp.matmul(self.inputs.T, dvalues)
        self.dbiases = xp.sum(dvalues, axis=0, keepdims=True)
        self.dweights = self._regularized(self.dweights, self.weights, "weight")
        self.dbiases = self._regularized(self.dbiases, self.biases, "bias")
        self.dinputs = xp.matmul(dvalues, self.weights.T)

    def _regularized(self, gradient, values, kind: str):
        l1 = getattr(self, f"{kind}_regularizer_l1")
        l2 = getattr(self, f"{kind}_regularizer_l2")
        if l1 > 0:
            negative = self.xp.astype(values < 0, values.dtype)
            gradient = gradient + l1 * (1 - 2 * negative)
        if l2 > 0:
            gradient = gradient + 2 * l2 * values
        return gradient

    def get_parameters(self):
        """(weights, biases), on this layer's backend."""
        return self.weights, self.biases

    def set_parameters(self, weights, biases) -> None:
        """Replace weights and biases with arrays of the same shapes on this layer's backend."""
        for name, new, old in (("weights", weights, self.weights), ("biases", biases, self.biases)):
            self._accept(new, name)
            if tuple(new.shape) != tuple(old.shape):
                raise ValueError(f"{self!r} {name} must have shape {tuple(old.shape)}, got {tuple(new.shape)}")
        self.weights, self.biases = weights, biases


class Dropout(Component):
    """Inverted dropout: in training, zero each input with probability `rate` and scale the rest by 1/(1-rate).

    The mask comes from the backend's RNG (NumPy's global RNG on the host backends; seed it with nnx.seed).
    """

    def __init__(self, rate: float, *, xp=None):
        super().__init__(xp)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"Dropout rate is the fraction of inputs to drop, in [0, 1), got {rate!r}")
        self.rate = 1 - float(rate)

    def __repr__(self) -> str:
        return f"Dropout({1 - self.rate:g})"

    def forward(self, inputs, training: bool = True) -> None:
        """Set `output`: masked and rescaled when `training`, the inputs unchanged otherwise."""
        self._accept(inputs)
        self.inputs = inputs
        if not training:
            self.output = inputs
            self.binary_mask = None
            return
        self.binary_mask = self.backend.dropout_mask(tuple(inputs.shape), self.rate, inputs.dtype)
        self.output = inputs * self.binary_mask

    def backward(self, dvalues) -> None:
        """Set `dinputs`: the gradient through the same mask (or unchanged after an inference pass)."""
        self.dinputs = dvalues if self.binary_mask is None else dvalues * self.binary_mask


class Input:
    """The model's first, parameter-free layer: its output is the batch it is given."""

    def forward(self, inputs, training: bool = False) -> None:
        self.output = inputs
