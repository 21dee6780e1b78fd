"""The book's optimizers: SGD (with momentum), Adagrad, RMSprop and Adam, all with 1/t learning-rate decay.

Each keeps its per-layer state (momentums, caches) in `optimizer.state[layer]`, on the layer's backend,
created on the layer's first update.
"""

from __future__ import annotations

from nnx import _checks
from nnx._component import Component, _moved
from nnx.errors import CallOrderError


class Optimizer(Component):
    """The schedule shared by every optimizer: call `pre_update_params`, `update_params` per layer, then
    `post_update_params`, once per step."""

    STATE_NAMES: tuple[str, ...] = ()
    CONFIG = ("learning_rate", "decay")

    def __init__(self, learning_rate: float, decay: float = 0.0, *, xp=None):
        super().__init__(xp)
        owner = type(self).__name__
        self.learning_rate = _checks.positive(learning_rate, "learning_rate", owner)
        self.current_learning_rate = self.learning_rate
        self.decay = _checks.non_negative(decay, "decay", owner)
        self.iterations = 0
        self.state: dict = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.learning_rate}, decay={self.decay})"

    def to(self, spec):
        """Move the per-layer state too; layers keep their keys, so move them with the model."""
        source = self.backend
        super().to(spec)
        self.state = {
            layer: {name: _moved(source, self.backend, value) for name, value in arrays.items()}
            for layer, arrays in self.state.items()
        }
        return self

    def pre_update_params(self) -> None:
        """Apply the decay: lr / (1 + decay * iterations)."""
        if self.decay:
            self.current_learning_rate = self.learning_rate * (1.0 / (1.0 + self.decay * self.iterations))

    def post_update_params(self) -> None:
        self.iterations += 1

    def update_params(self, layer) -> None:
        """Update `layer.weights` and `layer.biases` from `layer.dweights` and `layer.dbiases` (in place where the
        backend can)."""
        gradients = (getattr(layer, "dweights", None), getattr(layer, "dbiases", None))
        if not hasattr(layer, "weights") or not hasattr(layer, "biases"):
            raise TypeError(
                f"{self!r} updates layers with weights and biases, got {layer!r}; pass only trainable layers (Dense)"
            )
        if layer.backend is not self.backend:
            raise TypeError(
                f"{self!r} runs on backend {self.backend.name!r} but {layer!r} is on {layer.backend.name!r}; "
                f"build both with the same xp= or move the model with model.to()"
            )
        if any(gradient is None for gradient in gradients):
            raise CallOrderError(
                f"{self!r}.update_params({layer!r}) was called before {layer!r}.backward(); "
                f"run the backward pass first so the layer has gradients"
            )
        state = self.layer_state(layer)
        layer.weights = self._update(layer.weights, layer.dweights, state, "weight")
        layer.biases = self._update(layer.biases, layer.dbiases, state, "bias")

    def layer_state(self, layer) -> dict:
        """This optimizer's arrays for `layer` (e.g. 'weight_cache'), created as zeros on first use."""
        if layer not in self.state:
            self.state[layer] = {
                f"{kind}_{name}": self.xp.zeros_like(values)
                for kind, values in (("weight", layer.weights), ("bias", layer.biases))
                for name in self.STATE_NAMES
            }
        return self.state[layer]

    def _update(self, values, gradient, state: dict, kind: str):
        """`values` after one step (the same array updated in place on backends that can; use the result)."""
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum."""

    CONFIG = ("learning_rate", "decay", "momentum")

    def __init__(self, learning_rate: float = 1.0, decay: float = 0.0, momentum: float = 0.0, *, xp=None):
        super().__init__(learning_rate, decay, xp=xp)
        self.momentum = _checks.fraction(momentum, "momentum", "SGD")
        self.STATE_NAMES = ("momentums",) if self.momentum else ()

    def _update(self, values, gradient, state, kind):
        if not self.momentum:
            return self.backend.sgd_update(values, gradient, self.current_learning_rate)[0]
        key = f"{kind}_momentums"
        values, state[key] = self.backend.sgd_update(
            values, gradient, self.current_learning_rate, state[key], self.momentum
        )
        return values


class Adagrad(Optimizer):
    """SGD scaled per parameter by the root of the sum of its squared gradients."""

    STATE_NAMES = ("cache",)
    CONFIG = ("learning_rate", "decay", "epsilon")

    def __init__(self, learning_rate: float = 1.0, decay: float = 0.0, epsilon: float = 1e-7, *, xp=None):
        super().__init__(learning_rate, decay, xp=xp)
        self.epsilon = _checks.positive(epsilon, "epsilon", "Adagrad")

    def _update(self, values, gradient, state, kind):
        key = f"{kind}_cache"
        values, state[key] = self.backend.adagrad_update(
            values, gradient, state[key], self.current_learning_rate, self.epsilon
        )
        return values


class RMSprop(Optimizer):
    """SGD scaled per parameter by the root of a moving average of its squared gradients."""

    STATE_NAMES = ("cache",)
    CONFIG = ("learning_rate", "decay", "epsilon", "rho")

    def __init__(
        self, learning_rate: float = 0.001, decay: float = 0.0, epsilon: float = 1e-7, rho: float = 0.9, *, xp=None
    ):
        super().__init__(learning_rate, decay, xp=xp)
        self.epsilon = _checks.positive(epsilon, "epsilon", "RMSprop")
        self.rho = _checks.fraction(rho, "rho", "RMSprop")

    def _update(self, values, gradient, state, kind):
        key = f"{kind}_cache"
        values, state[key] = self.backend.rmsprop_update(
            values, gradient, state[key], self.current_learning_rate, self.epsilon, self.rho
        )
        return values


class Adam(Optimizer):
    """RMSprop with momentum, both bias-corrected (the book's formulation)."""

    STATE_NAMES = ("momentums", "cache")
    CONFIG = ("learning_rate", "decay", "epsilon", "beta_1", "beta_2")

    def __init__(
        self,
        learning_rate: float = 0.001,
        decay: float = 0.0,
        epsilon: float = 1e-7,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        *,
        xp=None,
    ):
        super().__init__(learning_rate, decay, xp=xp)
        self.epsilon = _checks.positive(epsilon, "epsilon", "Adam")
        self.beta_1 = _checks.fraction(beta_1, "beta_1", "Adam")
        self.beta_2 = _checks.fraction(beta_2, "beta_2", "Adam")

    def _update(self, values, gradient, state, kind):
        momentums, cache = f"{kind}_momentums", f"{kind}_cache"
        values, state[momentums], state[cache] = self.backend.adam_update(
            values,
            gradient,
            state[momentums],
            state[cache],
            self.current_learning_rate,
            self.epsilon,
            self.beta_1,
            self.beta_2,
            self.iterations + 1,
        )
        return values
