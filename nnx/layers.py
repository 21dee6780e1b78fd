"""Trainable and structural layers: Dense (with the book's L1/L2 regularization), Dropout and Input.

A layer takes a batch shaped (samples, features) and keeps the book's attributes: `inputs` and `output` after
`forward`, `dinputs` (and a Dense layer's `dweights` and `dbiases`) after `backward`.

A layer of your own (an `nnx.Component` with `forward` and `backward`) that changes the width declares it as Dense
does: `n_inputs`, the width it takes, and `n_neurons`, the width it gives; `Model.finalize` checks each `n_inputs`
against the last `n_neurons` before it, and a layer with neither keeps the width. One with `weights` and `biases`
is trained like a Dense layer: its `backward` sets `dweights` and `dbiases` shaped and typed like them
(`check_like` is what the optimizer checks), and a regularizer strength it lacks (`weight_regularizer_l1`, ...)
counts as 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nnx import _checks
from nnx._component import Array, BackendSpec, Component, defined_by_nnx
from nnx.backends._host import RandomGenerator, dtype_name
from nnx.backends.specs import DenseSpec, DropoutSpec
from nnx.errors import CallOrderError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Dense", "Dropout", "Input"]

GRADIENT_FIX = (
    "its backward (or the later layer's or loss's whose gradient reached it) must give gradients shaped and typed "
    "like the parameters, e.g. self.xp.astype(dinputs, inputs.dtype)"
)
_TRUSTED: dict[type, bool] = {}
GRADIENTS = (
    ("weights", "dweights", "{!r} got the gradient dweights"),
    ("biases", "dbiases", "{!r} got the gradient dbiases"),
)


class Dense(Component):
    """A fully connected layer, ``output = inputs @ weights + biases``, initialised as in the book (`Layer_Dense`).

    Weights are `weight_scale` * standard normal numbers drawn on the host with NumPy (its global RNG, or
    `rng`), so every backend starts from the same numbers; biases start at zero. The regularization strengths
    add the book's L1 (sum of absolute values) and L2 (sum of squares) penalties to the loss and their
    gradients to `dweights` and `dbiases`.

    Args:
        n_inputs: The number of input features (the previous layer's neurons).
        n_neurons: The number of neurons, i.e. of outputs.
        weight_regularizer_l1: The L1 penalty strength on the weights; 0 (the default) adds none.
        weight_regularizer_l2: The L2 penalty strength on the weights; 0 adds none.
        bias_regularizer_l1: The L1 penalty strength on the biases; 0 adds none.
        bias_regularizer_l2: The L2 penalty strength on the biases; 0 adds none.
        weight_scale: The standard deviation of the initial weights: 0.01, as in the book.
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.
        dtype: The float dtype of the parameters: 'float32' (None, the default) or 'float64', as a name or dtype.
        rng: A `numpy.random.Generator` to draw the initial weights from; None uses NumPy's global RNG (seed it
            with `nnx.seed`).

    Attributes:
        weights: The weights, shaped (n_inputs, n_neurons), on the layer's backend.
        biases: The biases, shaped (1, n_neurons).
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
    weight_regularizer_l1: float
    weight_regularizer_l2: float
    bias_regularizer_l1: float
    bias_regularizer_l2: float
    weight_scale: float

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
        xp: BackendSpec = None,
        dtype: Any = None,
        rng: RandomGenerator | None = None,
    ) -> None:
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

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer.

        Returns:
            {name: value} for the sizes, regularization strengths, weight scale and dtype name.
        """
        return {**super().get_config(), "dtype": dtype_name(self.dtype)}

    @classmethod
    def config_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
        """The shapes of the parameters that `from_config(config)` allocates.

        Args:
            config: A dictionary as `get_config()` returns it.

        Returns:
            ``{"weights": (n_inputs, n_neurons), "biases": (1, n_neurons)}``.
        """
        return {"weights": (config.get("n_inputs"), config.get("n_neurons")), "biases": (1, config.get("n_neurons"))}

    def kernel_spec(self) -> DenseSpec:
        """What a compiled training step needs to know about this layer.

        Returns:
            Its shape, dtype name and the four regularization strengths.
        """
        regularization = (
            self.weight_regularizer_l1,
            self.weight_regularizer_l2,
            self.bias_regularizer_l1,
            self.bias_regularizer_l2,
        )
        shape = (self.n_inputs, self.n_neurons)
        return DenseSpec(shape, dtype_name(self.dtype), regularization)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.n_inputs} -> {self.n_neurons})"

    def to_onnx(self, graph: Any, inputs: str) -> str:
        """Add this layer to an ONNX graph being exported: one `Gemm` node (inputs @ weights + biases).

        Args:
            graph: the `nnx.io.onnx_export.OnnxGraph` being built.
            inputs: the name of this layer's input in it.

        Returns:
            The name of this layer's output.
        """
        weights = graph.constant(self.weights, name=f"layer{self.position}.weights")
        biases = graph.constant(self.biases, name=f"layer{self.position}.biases")
        return graph.node("Gemm", [inputs, weights, biases], name=f"layer{self.position}.dense")

    def to(self, spec: BackendSpec) -> Self:
        """Move the weights and biases to another backend (through the host), keeping their dtype.

        Args:
            spec: The target backend: a name, an array module, a Backend, or None for the current one.

        Returns:
            This layer, moved.
        """
        super().to(spec)
        self.dtype = self.weights.dtype
        return self

    def forward(self, inputs: Array, training: bool = False) -> None:
        """Set `output` to inputs @ weights + biases.

        Args:
            inputs: A batch shaped (samples, n_inputs) on this backend; inputs of another dtype are cast once to
                the layer's.
            training: Whether this is a training pass (unused: a Dense layer behaves the same either way).

        Raises:
            ValueError: if `inputs` is not 2-d, is empty, has not `n_inputs` columns or holds NaN or infinity.
        """
        inputs = self._accept_batch(inputs, features=self.n_inputs, dtype=self.dtype)
        self.inputs = inputs
        self.output = _checks.produced(self.backend.dense_forward(inputs, self.weights, self.biases))

    def backward(self, dvalues: Array) -> None:
        """Set `dweights`, `dbiases` (regularization gradients included) and `dinputs`.

        Args:
            dvalues: The gradient of the loss with respect to `output`, shaped (samples, n_neurons); a gradient of
                another dtype is cast to the layer's, as `forward` casts its inputs, so the parameters keep theirs.

        Raises:
            CallOrderError: if `forward` has not run.
        """
        self._require_forward(dvalues)
        if dvalues.dtype != self.weights.dtype:
            dvalues = self.xp.astype(dvalues, self.weights.dtype)
        dweights, dbiases, self.dinputs = self.backend.dense_backward(self.inputs, self.weights, dvalues)
        self.dweights = self._regularized(dweights, self.weights, "weight")
        self.dbiases = self._regularized(dbiases, self.biases, "bias")

    def _regularized(self, gradient: Array, values: Array, kind: str) -> Array:
        l1 = getattr(self, f"{kind}_regularizer_l1")
        l2 = getattr(self, f"{kind}_regularizer_l2")
        return self.backend.regularization_gradient(gradient, values, l1, l2)

    def get_parameters(self) -> tuple[Array, Array]:
        """Copies of this layer's parameters (the book's `get_parameters`).

        Returns:
            (weights, biases) on this layer's backend: later training never changes them.
        """
        return _copy(self.xp, self.weights), _copy(self.xp, self.biases)

    def set_parameters(self, weights: Array, biases: Array) -> None:
        """Replace the weights and biases with copies of the given arrays, in this layer's dtype.

        Args:
            weights: An array shaped (n_inputs, n_neurons) on this layer's backend.
            biases: An array shaped (1, n_neurons) on this layer's backend.

        Raises:
            TypeError: if an array is on another backend or does not hold real numbers.
            ValueError: if a shape differs or an array holds NaN or infinity.
        """
        self.check_parameters(weights, biases)
        self.weights = self.xp.astype(weights, self.dtype, copy=True)
        self.biases = self.xp.astype(biases, self.dtype, copy=True)

    def check_parameters(self, weights: Array, biases: Array) -> None:
        """Check parameters for `set_parameters` without changing anything.

        Args:
            weights: An array that should be shaped (n_inputs, n_neurons) on this layer's backend.
            biases: An array that should be shaped (1, n_neurons) on this layer's backend.

        Raises:
            TypeError: if an array is on another backend or does not hold real numbers.
            ValueError: if a shape differs or an array holds NaN or infinity.
        """
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
    """Inverted dropout (the book's `Layer_Dropout`): in training, zero each input with probability `rate` and
    scale the rest by 1 / (1 - rate), so nothing changes at inference.

    The mask comes from the backend's RNG (NumPy's global RNG on the host backends; seed it with `nnx.seed`).

    Args:
        rate: The fraction of inputs to drop, in [0, 1), e.g. 0.1. (The attribute `rate` holds the fraction
            kept, 1 - rate, as in the book.)
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.
    """

    def __init__(self, rate: float, *, xp: BackendSpec = None) -> None:
        super().__init__(xp)
        self.rate = 1 - _checks.fraction(rate, "rate (the fraction of inputs to drop)", "Dropout")
        self.output = self.binary_mask = None

    def get_config(self) -> dict[str, Any]:
        """The constructor argument that rebuilds this layer.

        Returns:
            ``{"rate": the fraction dropped}``.
        """
        return {"rate": 1 - self.rate}

    def kernel_spec(self) -> DropoutSpec:
        """What a compiled training step needs to know about this layer.

        Returns:
            The fraction of inputs kept.
        """
        return DropoutSpec(self.rate)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({1 - self.rate:g})"

    def to_onnx(self, graph: Any, inputs: str) -> str:
        """Add this layer to an ONNX graph being exported: nothing, as inference keeps every input.

        Args:
            graph: the `nnx.io.onnx_export.OnnxGraph` being built.
            inputs: the name of this layer's input in it.

        Returns:
            `inputs`, unchanged.
        """
        return inputs

    def forward(self, inputs: Array, training: bool = True) -> None:
        """Set `output`: the inputs masked and rescaled when `training`, unchanged otherwise.

        Args:
            inputs: A batch shaped (samples, features) on this backend.
            training: Whether to drop inputs (True, the default); `Model` passes False to evaluate and predict.
        """
        inputs = self._accept_batch(inputs)
        self.inputs = inputs
        if not training:
            self.output = inputs
            self.binary_mask = None
            return
        self.binary_mask = self.backend.dropout_mask(tuple(inputs.shape), self.rate, inputs.dtype)
        with self.backend.quiet_float_errors():  # rescaling values near the dtype's maximum gives inf, no warning
            self.output = _checks.produced(inputs * self.binary_mask)

    def backward(self, dvalues: Array) -> None:
        """Set `dinputs`: the gradient through the same mask (or unchanged after an inference pass).

        Args:
            dvalues: The gradient of the loss with respect to `output`, shaped like it.

        Raises:
            CallOrderError: if `forward` has not run.
        """
        self._require_forward(dvalues, "output" if self.binary_mask is None else "binary_mask")
        self.dinputs = dvalues if self.binary_mask is None else dvalues * self.binary_mask


class Input:
    """The model's first, parameter-free layer (the book's `Layer_Input`): its output is the batch it is given."""

    def forward(self, inputs: Array, training: bool = False) -> None:
        """Set `output` to `inputs`.

        Args:
            inputs: A batch of inputs.
            training: Whether this is a training pass (unused).
        """
        self.output = inputs


def _copy(xp: Any, array: Array) -> Array:
    return xp.asarray(array, copy=True)


def check_trainable(layer: Any, optimizer: Any) -> None:
    """A TypeError unless `layer` has weights and biases on `optimizer`'s backend, a CallOrderError unless it has
    gradients (`dweights` and `dbiases`): what `Optimizer.update_params` needs of a trainable layer."""
    if not hasattr(layer, "weights") or not hasattr(layer, "biases"):
        raise TypeError(
            f"{optimizer!r} updates layers with weights and biases, got {layer!r}; pass only trainable layers (Dense)"
        )
    if layer.backend is not optimizer.backend:
        raise TypeError(
            f"{optimizer!r} runs on backend {optimizer.backend.name!r} but {layer!r} is on {layer.backend.name!r}; "
            f"build both with the same xp= or move the model with model.to()"
        )
    if getattr(layer, "dweights", None) is None or getattr(layer, "dbiases", None) is None:
        raise CallOrderError(
            f"{optimizer!r}.update_params({layer!r}) was called before {layer!r}.backward() (it has no dweights "
            f"and dbiases); run the backward pass first (a layer of your own with weights sets both in backward)"
        )


def trusted(component: Any) -> bool:
    """Whether `component` is of one of nnx's own classes, whose results need no check (a subclass is yours)."""
    cls = type(component)
    known = _TRUSTED.get(cls)
    if known is None:
        known = _TRUSTED[cls] = defined_by_nnx(cls)
    return known


def check_gradients(layer: Any, owner: Any) -> None:
    """`check_like` for the gradients that a layer of your own has (`dweights`, `dbiases`; None is skipped), for
    `owner`: nnx's own compute theirs in their parameters' dtype and shape."""
    if trusted(layer):
        return
    for name, gradient, what in GRADIENTS:
        array = getattr(layer, gradient, None)
        if array is not None:
            check_like(layer, name, array, owner, what)


def check_like(layer: Any, name: str, array: Any, owner: Any, what: str, fix: str = GRADIENT_FIX) -> None:
    """Nothing if `array` (a gradient, or an update of the parameter `name`) is an array of `layer`'s backend shaped
    and typed like `layer.<name>`; else a TypeError or ValueError that says what gave it (`what`, formatted with
    `owner`, only then) and the `fix`. Shapes and dtypes only: no copy, no transfer."""
    values = getattr(layer, name)
    owned = layer.backend.owns(array)
    if owned and array.shape == values.shape and array.dtype == values.dtype:
        return
    raise (ValueError if owned and array.dtype == values.dtype else TypeError)(
        f"{what.format(owner)} {shown(array)} for the {name} of {getattr(layer, 'label', repr(layer))}, which "
        f"are {shown(values)} on backend {layer.backend.name!r}; {fix}. Nothing was updated"
    )


def shown(value: Any) -> str:
    """How a message shows a checked value: an array's dtype and shape ('float32 (2, 64)'), or what else it is."""
    return f"{dtype_name(value.dtype)} {tuple(value.shape)}" if hasattr(value, "dtype") else _checks.describe(value)
