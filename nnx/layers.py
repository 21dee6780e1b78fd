"""Trainable and structural layers: Dense (with the book's L1/L2 regularization), Dropout and Input."""

from __future__ import annotations

from nnx import _checks
from nnx._component import Component
from nnx.backends._host import dtype_name


class Dense(Component):
    """A fully connected layer, ``output = inputs @ weights + biases``, initialised as in the book.

    Weights are `weight_scale` * standard normal numbers drawn on the host with NumPy (its global RNG, or
    `rng`), so every backend starts from the same numbers; biases start at zero.
    """

    ARRAYS = ("weights", "biases")
    CONFIG = (
        "n_inputs",
        "n_neurons",
        "weight_regularizer_l1",
        "weight_regularizer_l2",
        "bias_regularizer_l1",
        "bias_regularizer_l2",
        "weight_scale",
    )

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
        self.n_inputs = _checks.positive_int(n_inputs, "n_inputs", "Dense")
        self.n_neurons = _checks.positive_int(n_neurons, "n_neurons", "Dense")
        for name, value in (
            ("weight_regularizer_l1", weight_regularizer_l1),
            ("weight_regularizer_l2", weight_regularizer_l2),
            ("bias_regularizer_l1", bias_regularizer_l1),
            ("bias_regularizer_l2", bias_regularizer_l2),
            ("weight_scale", weight_scale),
        ):
            setattr(self, name, _checks.non_negative(value, name, repr(self)))
        self.dtype = self.backend.float_dtype(dtype)
        self.weights = self.backend.scaled_normal((self.n_inputs, self.n_neurons), self.weight_scale, self.dtype, rng)
        self.biases = self.backend.zeros((1, self.n_neurons), self.dtype)
        self.inputs = self.output = self.dweights = self.dbiases = None

    def get_config(self) -> dict:
        return {**super().get_config(), "dtype": dtype_name(self.dtype)}

    @classmethod
    def config_shapes(cls, config: dict) -> dict:
        return {"weights": (config.get("n_inputs"), config.get("n_neurons")), "biases": (1, config.get("n_neurons"))}

    def kernel_spec(self) -> dict:
        regularization = (
            self.weight_regularizer_l1,
            self.weight_regularizer_l2,
            self.bias_regularizer_l1,
            self.bias_regularizer_l2,
        )
        shape = (self.n_inputs, self.n_neurons)
        return {"op": "dense", "shape": shape, "dtype": dtype_name(self.dtype), "regularization": regularization}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.n_inputs} -> {self.n_neurons})"

    def to(self, spec):
        super().to(spec)
        self.dtype = self.weights.dtype
        return self

    def forward(self, inputs, training: bool = False) -> None:
        """Set `output` for a (n_samples, n_inputs) batch; inputs of another float dtype are cast once."""
        inputs = self._accept_batch(inputs, features=self.n_inputs, dtype=self.dtype)
        self.inputs = inputs
        self.output = _checks.produced(self.backend.dense_forward(inputs, self.weights, self.biases))

    def backward(self, dvalues) -> None:
        """Set `dweights`, `dbiases` (regularization terms included) and `dinputs` from the output gradient."""
        self._require_forward(dvalues)
        dweights, dbiases, self.dinputs = self.backend.dense_backward(self.inputs, self.weights, dvalues)
        self.dweights = self._regularized(dweights, self.weights, "weight")
        self.dbiases = self._regularized(dbiases, self.biases, "bias")

    def _regularized(self, gradient, values, kind: str):
        l1 = getattr(self, f"{kind}_regularizer_l1")
        l2 = getattr(self, f"{kind}_regularizer_l2")
        return self.backend.regularization_gradient(gradient, values, l1, l2)

    def get_parameters(self):
        """Copies of (weights, biases) on this layer's backend: later training never changes them."""
        return _copy(self.xp, self.weights), _copy(self.xp, self.biases)

    def set_parameters(self, weights, biases) -> None:
        """Replace weights and biases with copies of same-shaped, finite arrays on this layer's backend."""
        self.check_parameters(weights, biases)
        self.weights = self.xp.astype(weights, self.dtype, copy=True)
        self.biases = self.xp.astype(biases, self.dtype, copy=True)

    def check_parameters(self, weights, biases) -> None:
        """A TypeError/ValueError unless both are finite real arrays of this layer's shapes on its backend."""
        for name, new, old in (("weights", weights, self.weights), ("biases", biases, self.biases)):
            self._accept(new, name)
            if tuple(new.shape) != tuple(old.shape):
                raise ValueError(
                    f"{self.label} {name} must have shape {tuple(old.shape)}, got {tuple(new.shape)}; "
                    f"pass the parameters of a layer built with the same n_inputs and n_neurons"
                )
            _checks.real_dtype(self.xp, new, self.label, name)
            _checks.finite(self.backend, new, self.label, name)


class Dropout(Component):
    """Inverted dropout: in training, zero each input with probability `rate` and scale the rest by 1/(1-rate).

    The mask comes from the backend's RNG (NumPy's global RNG on the host backends; seed it with nnx.seed).
    """

    def __init__(self, rate: float, *, xp=None):
        super().__init__(xp)
        self.rate = 1 - _checks.fraction(rate, "rate (the fraction of inputs to drop)", "Dropout")
        self.output = self.binary_mask = None

    def get_config(self) -> dict:
        return {"rate": 1 - self.rate}

    def kernel_spec(self) -> dict:
        return {"op": "dropout", "keep": self.rate}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({1 - self.rate:g})"

    def forward(self, inputs, training: bool = True) -> None:
        """Set `output`: masked and rescaled when `training`, the inputs unchanged otherwise."""
        inputs = self._accept_batch(inputs)
        self.inputs = inputs
        if not training:
            self.output = inputs
            self.binary_mask = None
            return
        self.binary_mask = self.backend.dropout_mask(tuple(inputs.shape), self.rate, inputs.dtype)
        self.output = _checks.produced(inputs * self.binary_mask)

    def backward(self, dvalues) -> None:
        """Set `dinputs`: the gradient through the same mask (or unchanged after an inference pass)."""
        self._require_forward(dvalues, "output" if self.binary_mask is None else "binary_mask")
        self.dinputs = dvalues if self.binary_mask is None else dvalues * self.binary_mask


class Input:
    """The model's first, parameter-free layer: its output is the batch it is given."""

    def forward(self, inputs, training: bool = False) -> None:
        self.output = inputs


def _copy(xp, array):
    return xp.asarray(array, copy=True)
