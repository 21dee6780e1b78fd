"""The book's optimizers: SGD (with momentum), Adagrad, RMSprop and Adam, all with 1/t learning-rate decay.

Each keeps its per-layer state (momentums, caches) in `optimizer.state[layer]`, on the layer's backend, from the
layer's first update; `state_dict()` and `load_state_dict()` are the one way in and out of that state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nnx import _checks
from nnx._component import Array, BackendSpec, Component, copied_between
from nnx.backends.specs import OptimizerSpec
from nnx.layers import check_gradients, check_like, check_trainable, trusted
from nnx.optimizer_state import PARAMETERS, checked_state

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["SGD", "Adagrad", "Adam", "Optimizer", "RMSprop"]

UPDATE_FIX = "return an array of that backend, shape and dtype (values - rate * gradient, cast with xp.astype)"
BASE_ATTRIBUTES = {"backend", "xp", "learning_rate", "current_learning_rate", "decay", "iterations", "_state"}


class Optimizer(Component):
    """The base of every optimizer: the book's learning-rate decay and the per-layer state.

    A step is `pre_update_params()` (the decay), `update_params(layer)` for each trainable layer, then
    `post_update_params()` (the step count). A subclass calls ``super().__init__(learning_rate, decay, xp=xp)`` in
    its `__init__`, defines `update_array`, and names the arrays it keeps per parameter in `STATE_NAMES`.

    `state_version` changes whenever the state's arrays are replaced (an update, `load_state_dict`, `to`): a
    compiled step that keeps them in its own buffers then reads them again.

    Args:
        learning_rate: The starting learning rate, a number > 0.
        decay: The book's 1/t decay: the rate at step t is learning_rate / (1 + decay * t); 0 (the default): none.
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.

    Attributes:
        current_learning_rate: The learning rate of the current step, after the decay.
        iterations: The number of steps taken.
    """

    STATE_NAMES: tuple[str, ...] = ()
    CONFIG: tuple[str, ...] = ("learning_rate", "decay")

    def __init__(self, learning_rate: float, decay: float = 0.0, *, xp: BackendSpec = None) -> None:
        super().__init__(xp)
        owner = type(self).__name__
        self.learning_rate = _checks.positive(learning_rate, "learning_rate", owner)
        self.current_learning_rate = self.learning_rate
        self.decay = _checks.non_negative(decay, "decay", owner)
        self.iterations = 0
        self.state_version = 0
        self.state = {}
        self.layers: list[Any] = []
        self._journal: list[tuple[Any, Array, Array, dict[str, Array] | None]] | None = None

    def __getattr__(self, name: str) -> Any:
        """Only reached for a missing attribute: one the base `__init__` sets means it never ran."""
        if name in BASE_ATTRIBUTES and "_state" not in self.__dict__:
            raise TypeError(
                f"{type(self).__name__}.__init__ did not call super().__init__(learning_rate, decay, xp=xp), so the "
                f"optimizer has no {name!r}; call it at the start of {type(self).__name__}.__init__"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        if "_state" not in self.__dict__:  # its __init__ skipped the base's: the error that says so comes on use
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}(learning_rate={self.learning_rate}, decay={self.decay})"

    def __reduce__(self) -> tuple[Any, ...]:
        """A lone optimizer copies only before its first step: its state is keyed by its model's layers."""
        if self.iterations or self.state:
            raise TypeError(
                f"cannot copy or pickle {self!r} on its own after {self.iterations} steps: its state belongs to its "
                f"model's layers. Copy the model instead (copy.deepcopy(model), pickle.dumps(model)), which keeps it"
            )
        return super().__reduce__()

    @property
    def state(self) -> dict[Any, dict[str, Array]]:
        """{layer: {slot name ('weight_cache', ...): array}} for every layer updated so far."""
        return self._state

    @state.setter
    def state(self, value: dict[Any, dict[str, Array]]) -> None:
        self._state = value
        self.state_version += 1

    def to(self, spec: BackendSpec) -> Self:
        """Move the optimizer and its per-layer state (keyed by the same layers: move them too) to another backend.

        Args:
            spec: The target backend: a name, an array module, a Backend, or None for the current one.

        Returns:
            This optimizer, moved.
        """
        source = self.backend
        super().to(spec)
        self.state = {
            layer: {name: copied_between(source, self.backend, value) for name, value in arrays.items()}
            for layer, arrays in self.state.items()
        }
        return self

    def set_config(self, config: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Take new hyperparameters, checked as the constructor checks them: nothing changes on an error.

        Args:
            config: The hyperparameters, as `get_config()` gives them.

        Returns:
            {name: (old value, new value)} for those that changed.
        """
        fresh = type(self).from_config(config, xp=self.backend)
        changed = {
            name: (getattr(self, name), getattr(fresh, name))
            for name in self.CONFIG
            if getattr(self, name) != getattr(fresh, name)
        }
        for name, (_, value) in changed.items():
            setattr(self, name, value)
        return changed

    def remember_layers(self, trainable_layers: Iterable[Any]) -> None:
        """Remember the trainable layers whose positions key `state_dict()`'s slots (`Model.finalize` does this).

        Args:
            trainable_layers: The layers with parameters (Dense layers), in order.
        """
        self.layers = list(trainable_layers)

    def slot_names(self) -> list[str]:
        """The names of the arrays this optimizer keeps per layer.

        Returns:
            The names in `STATE_NAMES`, prefixed for weights and biases: ['weight_momentums', 'bias_momentums'].
        """
        return [f"{prefix}_{name}" for prefix in PARAMETERS for name in self.STATE_NAMES]

    def state_dict(self, layers: Iterable[Any] | None = None) -> dict[str, Any]:
        """The optimizer's progress, to save or restore. The arrays are its own: copy them to keep a snapshot.

        Args:
            layers: The layers whose positions key the slots; None (the default): the remembered ones.

        Returns:
            ``{"iterations": int, "current_learning_rate": float, "slots": {position: {slot name: array}}}``,
            with a slot entry for each layer updated so far.
        """
        layers = self.layers if layers is None else list(layers)
        slots = {index: dict(self.state[layer]) for index, layer in enumerate(layers) if layer in self.state}
        return {"iterations": self.iterations, "current_learning_rate": self.current_learning_rate, "slots": slots}

    def load_state_dict(self, state: dict[str, Any], layers: Iterable[Any] | None = None, *, copy: bool = True) -> None:
        """Replace the step count, learning rate and per-layer arrays; all is checked first (an error changes nothing).

        Args:
            state: What `state_dict()` returns.
            layers: The layers whose positions key the slots; None (the default): the remembered ones.
            copy: Whether to copy the arrays (True, the default); False makes them the optimizer's own.

        Raises:
            TypeError: if `state` is not such a dict, or an array is on another backend.
            ValueError: if a value, slot name, layer position, shape or dtype does not fit.
        """
        layers = self.layers if layers is None else list(layers)
        iterations, rate, slots = checked_state(self, state, layers)
        xp = self.xp
        self.state = {
            layers[index]: {name: xp.asarray(value, copy=True) if copy else value for name, value in arrays.items()}
            for index, arrays in slots.items()
        }
        self.iterations, self.current_learning_rate = iterations, rate

    def pre_update_params(self) -> None:
        """Apply the decay before a step: current_learning_rate = learning_rate / (1 + decay * iterations)."""
        self._journal = []  # what each layer held before this step's update: a refused update undoes the step
        if self.decay:
            self.current_learning_rate = self.learning_rate * (1.0 / (1.0 + self.decay * self.iterations))

    def post_update_params(self) -> None:
        """Count the step, after every layer was updated."""
        self.iterations += 1
        self._journal = None

    def update_params(self, layer: Any) -> None:
        """Update a layer's parameters from its gradients (in place where the backend can). The gradients, then
        `update_array`'s results, are checked first (`nnx.layers.check_like`): a refusal undoes the step so far.

        Args:
            layer: A trainable layer (Dense, or your own with `weights` and `biases`) after its `backward`.
        """
        journal = self._journal
        entries = [] if journal is None else journal
        try:
            check_trainable(layer, self)
            remembered = layer in self.layers  # checked with all of them at a step's first update
            for each in (*self.layers, layer) if journal == [] else () if journal and remembered else (layer,):
                check_gradients(each, self)
            entries.append(
                (layer, layer.weights, layer.biases, dict(self.state[layer]) if layer in self.state else None)
            )
            state = self.layer_state(layer)
            weights = self.update_array(layer.weights, layer.dweights, state, "weight")
            biases = self.update_array(layer.biases, layer.dbiases, state, "bias")
            if not trusted(self):  # nnx's own update rules always return what fits
                check_like(layer, "weights", weights, self, "{!r}.update_array returned", UPDATE_FIX)
                check_like(layer, "biases", biases, self, "{!r}.update_array returned", UPDATE_FIX)
        except Exception:
            self._undo(entries)
            raise
        layer.weights, layer.biases = weights, biases
        self.state_version += 1

    def _undo(self, entries: list[tuple[Any, Array, Array, dict[str, Array] | None]]) -> None:
        """Give layers back the parameters and slots they held before this step (arrays that a backend updated in
        place stay so: only nnx's own update rules do that, and their results always fit)."""
        for layer, weights, biases, slots in reversed(entries):
            layer.weights, layer.biases = weights, biases
            if slots is None:
                self._state.pop(layer, None)
            else:
                self._state[layer] = slots
        self._journal = None
        self.state_version += 1

    def layer_state(self, layer: Any) -> dict[str, Array]:
        """This optimizer's arrays for a layer, created as zeros on first use.

        Args:
            layer: A trainable layer.

        Returns:
            {slot name ('weight_cache', ...): array shaped like the parameter}.
        """
        if layer not in self.state:
            self.state[layer] = {
                f"{kind}_{name}": self.xp.zeros_like(values)
                for kind, values in (("weight", layer.weights), ("bias", layer.biases))
                for name in self.STATE_NAMES
            }
            self.state_version += 1
        return self.state[layer]

    def update_array(self, values: Array, gradient: Array, state: dict[str, Array], kind: str) -> Array:
        """One parameter array after one step: override it to write an optimizer.

        Args:
            values: The parameter array (weights or biases).
            gradient: Its gradient (dweights or dbiases).
            state: This layer's slots ('weight_cache', ...: `STATE_NAMES` prefixed by `kind`); store new ones in it.
            kind: 'weight' or 'bias'.

        Returns:
            The updated parameters. Faster backends update in place: use the result.
        """
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum (the book's `Optimizer_SGD`).

    Args:
        learning_rate: The starting learning rate, > 0: 1.0, as in the book.
        decay: The 1/t learning-rate decay; 0 (the default) keeps it constant.
        momentum: The fraction of the previous update added to each, in [0, 1); 0 (the default) is plain SGD.
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.
    """

    CONFIG = ("learning_rate", "decay", "momentum")

    def __init__(
        self, learning_rate: float = 1.0, decay: float = 0.0, momentum: float = 0.0, *, xp: BackendSpec = None
    ) -> None:
        super().__init__(learning_rate, decay, xp=xp)
        self.momentum = _checks.fraction(momentum, "momentum", "SGD")

    @property
    def STATE_NAMES(self) -> tuple[str, ...]:  # type: ignore[override]  # a class attribute elsewhere
        """The arrays kept per parameter: ('momentums',) with momentum, none without."""
        return ("momentums",) if self.momentum else ()

    def kernel_spec(self) -> OptimizerSpec:
        """What a compiled training step needs to know about this optimizer.

        Returns:
            Its update rule: 'sgd', or 'momentum_sgd' with the momentum.
        """
        if self.momentum:
            return OptimizerSpec("momentum_sgd", {"momentum": self.momentum})
        return OptimizerSpec("sgd")

    def update_array(self, values: Array, gradient: Array, state: dict[str, Array], kind: str) -> Array:
        """One SGD step on one parameter array.

        Args:
            values: The parameter array (weights or biases).
            gradient: Its gradient.
            state: This layer's slots; '<kind>_momentums' is updated with momentum.
            kind: 'weight' or 'bias'.

        Returns:
            The updated parameters.
        """
        if not self.momentum:
            return self.backend.sgd_update(values, gradient, self.current_learning_rate)[0]
        key = f"{kind}_momentums"
        values, state[key] = self.backend.sgd_update(
            values, gradient, self.current_learning_rate, state[key], self.momentum
        )
        return values


class Adagrad(Optimizer):
    """SGD scaled per parameter by the root of the sum of its squared gradients (the book's `Optimizer_Adagrad`).

    Args:
        learning_rate: The starting learning rate, > 0: 1.0 by default.
        decay: The 1/t learning-rate decay; 0 (the default) keeps it constant.
        epsilon: A small number > 0 added to the root, to never divide by zero: 1e-7.
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.
    """

    STATE_NAMES = ("cache",)
    CONFIG = ("learning_rate", "decay", "epsilon")

    def __init__(
        self, learning_rate: float = 1.0, decay: float = 0.0, epsilon: float = 1e-7, *, xp: BackendSpec = None
    ) -> None:
        super().__init__(learning_rate, decay, xp=xp)
        self.epsilon = _checks.positive(epsilon, "epsilon", "Adagrad")

    def kernel_spec(self) -> OptimizerSpec:
        """What a compiled training step needs to know about this optimizer.

        Returns:
            Its update rule ('adagrad') and epsilon.
        """
        return OptimizerSpec("adagrad", {"epsilon": self.epsilon})

    def update_array(self, values: Array, gradient: Array, state: dict[str, Array], kind: str) -> Array:
        """One Adagrad step on one parameter array.

        Args:
            values: The parameter array (weights or biases).
            gradient: Its gradient.
            state: This layer's slots; '<kind>_cache' adds the squared gradient.
            kind: 'weight' or 'bias'.

        Returns:
            The updated parameters.
        """
        key = f"{kind}_cache"
        values, state[key] = self.backend.adagrad_update(
            values, gradient, state[key], self.current_learning_rate, self.epsilon
        )
        return values


class RMSprop(Optimizer):
    """SGD scaled per parameter by the root of a moving average of its squared gradients (the book's
    `Optimizer_RMSprop`).

    Args:
        learning_rate: The starting learning rate, > 0: 0.001 by default.
        decay: The 1/t learning-rate decay; 0 (the default) keeps it constant.
        epsilon: A small number > 0 added to the root, to never divide by zero: 1e-7.
        rho: How much of the moving average is kept at each step, in [0, 1): 0.9.
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.
    """

    STATE_NAMES = ("cache",)
    CONFIG = ("learning_rate", "decay", "epsilon", "rho")

    def __init__(
        self,
        learning_rate: float = 0.001,
        decay: float = 0.0,
        epsilon: float = 1e-7,
        rho: float = 0.9,
        *,
        xp: BackendSpec = None,
    ) -> None:
        super().__init__(learning_rate, decay, xp=xp)
        self.epsilon = _checks.positive(epsilon, "epsilon", "RMSprop")
        self.rho = _checks.fraction(rho, "rho", "RMSprop")

    def kernel_spec(self) -> OptimizerSpec:
        """What a compiled training step needs to know about this optimizer.

        Returns:
            Its update rule ('rmsprop'), epsilon and rho.
        """
        return OptimizerSpec("rmsprop", {"epsilon": self.epsilon, "rho": self.rho})

    def update_array(self, values: Array, gradient: Array, state: dict[str, Array], kind: str) -> Array:
        """One RMSprop step on one parameter array.

        Args:
            values: The parameter array (weights or biases).
            gradient: Its gradient.
            state: This layer's slots; '<kind>_cache' holds the moving average of squared gradients.
            kind: 'weight' or 'bias'.

        Returns:
            The updated parameters.
        """
        key = f"{kind}_cache"
        values, state[key] = self.backend.rmsprop_update(
            values, gradient, state[key], self.current_learning_rate, self.epsilon, self.rho
        )
        return values


class Adam(Optimizer):
    """Adaptive momentum: RMSprop with momentum, both bias-corrected (the book's `Optimizer_Adam`).

    Args:
        learning_rate: The starting learning rate, > 0: 0.001 by default.
        decay: The 1/t learning-rate decay; 0 (the default) keeps it constant.
        epsilon: A small number > 0 added to the root, to never divide by zero: 1e-7.
        beta_1: How much of the momentum is kept at each step, in [0, 1): 0.9.
        beta_2: How much of the squared-gradient cache is kept at each step, in [0, 1): 0.999.
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.
    """

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
        xp: BackendSpec = None,
    ) -> None:
        super().__init__(learning_rate, decay, xp=xp)
        self.epsilon = _checks.positive(epsilon, "epsilon", "Adam")
        self.beta_1 = _checks.fraction(beta_1, "beta_1", "Adam")
        self.beta_2 = _checks.fraction(beta_2, "beta_2", "Adam")

    def kernel_spec(self) -> OptimizerSpec:
        """What a compiled training step needs to know about this optimizer.

        Returns:
            Its update rule ('adam'), epsilon, beta_1 and beta_2.
        """
        return OptimizerSpec("adam", {"epsilon": self.epsilon, "beta_1": self.beta_1, "beta_2": self.beta_2})

    def update_array(self, values: Array, gradient: Array, state: dict[str, Array], kind: str) -> Array:
        """One Adam step on one parameter array, bias-corrected for step `iterations + 1`.

        Args:
            values: The parameter array (weights or biases).
            gradient: Its gradient.
            state: This layer's slots: '<kind>_momentums' and '<kind>_cache'.
            kind: 'weight' or 'bias'.

        Returns:
            The updated parameters.
        """
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
