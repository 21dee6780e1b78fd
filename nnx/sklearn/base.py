"""`NNXEstimator`: what scikit-learn's `NNXClassifier` and `NNXRegressor` share: their parameters (checked with
nnx's messages), fit, partial_fit and predict, validated with scikit-learn's own tools."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from nnx import _checks, backends
from nnx.backends import BackendUnavailableError
from nnx.backends._host import dtype_name
from nnx.callbacks.history import History
from nnx.errors import DivergenceError
from nnx.model import Model
from nnx.sklearn.fits import (
    ACTIVATIONS,
    OPTIMIZERS,
    Fit,
    Network,
    built,
    check_own_model,
    fit_seeds,
    split,
    train_fits,
)

FLOATS = ("float64", "float32")
# What a fitted network is made of: a warm start or partial_fit that changes one of these is refused.
STRUCTURE = (
    "hidden_layer_sizes", "activation", "output", "loss", "optimizer", "momentum", "l1", "l2", "dropout", "dtype",
    "backend", "model",
)  # fmt: skip
NETWORK_DEFAULTS = {"hidden_layer_sizes": (100,), "activation": "relu", "dropout": 0.0, "l1": 0.0, "l2": 0.0}


class NNXEstimator(BaseEstimator):
    """What `NNXClassifier` and `NNXRegressor` share: the parameters (documented on each), fitting, partial fitting
    and predicting.
    """

    _default_output = "linear"

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (100,),
        activation: str = "relu",
        *,
        output: str | None = None,
        loss: str | None = None,
        optimizer: str = "adam",
        learning_rate: float = 0.001,
        decay: float = 0.0,
        momentum: float = 0.0,
        l1: float = 0.0,
        l2: float = 0.0,
        dropout: float = 0.0,
        epochs: int = 200,
        batch_size: int | None = 32,
        shuffle: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        backend: str | None = None,
        dtype: str | None = None,
        random_state: Any = None,
        verbose: int = 0,
        warm_start: bool = False,
        model: Callable[[int, int], Model] | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.output = output
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.decay = decay
        self.momentum = momentum
        self.l1 = l1
        self.l2 = l2
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.backend = backend
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.model = model

    # scikit-learn's API -----------------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any, **fit_params: Any) -> NNXEstimator:
        """Train a new network on (X, y) for `epochs` epochs (with `warm_start`, go on training the fitted one).

        Args:
            X: the samples, (n_samples, n_features): anything `sklearn.utils.check_array` takes, dense.
            y: the targets: class labels for a classifier, (n_samples,) or (n_samples, n_outputs) for a regressor.
            **fit_params: refused: ``sample_weight`` is not supported (each sample counts once in the loss).

        Returns:
            The fitted estimator.
        """
        with self._kept_on_error():
            fit = self._prepared_fit(X, y, **fit_params)
            self._fitted(fit, self._trained([fit]))
        return self

    def _prepared_fit(self, X: Any, y: Any, **fit_params: Any) -> Fit:
        """Check everything and build the network a `fit` of (X, y) trains, without training it (a stacked search
        trains many at once).

        Args:
            X: the samples, as `fit` takes them.
            y: the targets, as `fit` takes them.
            **fit_params: refused, as in `fit`.

        Returns:
            The `Fit` to train; `_fitted` sets the estimator's attributes once it trained.
        """
        with self._kept_on_error():
            self._refuse(fit_params, "fit")
            settings = self._settings()
            keep = self.warm_start and hasattr(self, "model_")
            X, y = self._validated(X, y, reset=not keep)  # a warm start keeps n_features_in_: another is refused
            if keep:
                self._check_same_targets(y)
                self._go_on_with(settings)
            targets = self._encoded(y, reset=not keep)
            return self._fit(X, targets, settings, self.epochs, keep)

    def _partial_fit(self, X: Any, y: Any, classes: Any = None) -> NNXEstimator:
        with self._kept_on_error():
            settings = self._settings()
            first = not hasattr(self, "model_")
            X, y = self._validated(X, y, reset=first)
            if first:
                self._first_classes(classes, y)
            else:
                self._go_on_with(settings)
            targets = self._encoded(y, reset=False)
            fit = self._fit(X, targets, settings, 1, keep=not first, partial=True)
            self._fitted(fit, self._trained([fit]))
        return self

    @contextlib.contextmanager
    def _kept_on_error(self) -> Iterator[None]:
        """Leave the estimator as it was when the block raises (a refused fit changes nothing)."""
        state = dict(self.__dict__)
        try:
            yield
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(state)
            raise

    def _predicted(self, X: Any) -> Any:
        """The network's outputs for X, on the host in float64."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=FLOATS)
        model = self.model_
        X = np.require(X, dtype=dtype_name(model.trainable_layers[0].dtype), requirements=["C"])
        return model.backend.to_numpy(model.predict(X)).astype("float64")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags

    # Parts ----------------------------------------------------------------------------------------------------

    def _settings(self) -> Network:
        """The parameters, checked (nnx's messages, naming the estimator)."""
        owner = type(self).__name__
        for name in ("epochs", "n_iter_no_change"):
            _checks.positive_int(getattr(self, name), name, owner)
        _checks.optional_positive_int(self.batch_size, "batch_size", owner)
        for name in ("shuffle", "early_stopping", "warm_start"):
            _checks.boolean(getattr(self, name), name, owner)
        _checks.number(
            self.validation_fraction, "validation_fraction", owner, low=0, high=1, low_open=True, high_open=True
        )
        _checks.non_negative(self.tol, "tol", owner)
        if self.verbose not in (0, 1, 2):
            raise ValueError(f"{owner} verbose must be 0, 1 or 2 (or a bool), got {self.verbose!r}")
        self._backend(owner)
        if self.model is not None and not callable(self.model):
            raise TypeError(
                f"{owner} model must be a function model(n_features, n_outputs) -> nnx.Model, or None, got "
                f"{_checks.describe(self.model)}"
            )
        return Network(
            hidden=self._hidden(owner),
            activation=_checks.choice(self.activation, "activation", owner, tuple(ACTIVATIONS)),
            output=_checks.choice(self._output(), "output", owner, self._outputs),
            loss=_checks.choice(self._loss(), "loss", owner, self._losses),
            optimizer=_checks.choice(self.optimizer, "optimizer", owner, tuple(OPTIMIZERS)),
            learning_rate=_checks.positive(self.learning_rate, "learning_rate", owner),
            decay=_checks.non_negative(self.decay, "decay", owner),
            momentum=self._momentum(owner),
            l1=_checks.non_negative(self.l1, "l1", owner),
            l2=_checks.non_negative(self.l2, "l2", owner),
            dropout=_checks.number(self.dropout, "dropout", owner, low=0, high=1, high_open=True),
            dtype=self.dtype if self.dtype is None else _checks.choice(self.dtype, "dtype", owner, FLOATS),
            backend=self.backend,
        )

    def _backend(self, owner: str) -> None:
        try:
            backends.get(self.backend)
        except (ValueError, TypeError, BackendUnavailableError) as error:
            raise type(error)(f"{owner} backend={self.backend!r}: {error}") from None

    def _hidden(self, owner: str) -> tuple[int, ...]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, int) and not isinstance(sizes, bool):
            sizes = (sizes,)
        sizes = sizes.tolist() if hasattr(sizes, "tolist") and getattr(sizes, "ndim", 0) == 1 else sizes
        if not isinstance(sizes, (tuple, list)) or not sizes:
            raise TypeError(
                f"{owner} hidden_layer_sizes must be a non-empty tuple of layer widths such as (100,) or (64, 64), got "
                f"{_checks.describe(sizes)}"
            )
        return tuple(_checks.positive_int(size, "hidden_layer_sizes[i]", owner) for size in sizes)

    def _momentum(self, owner: str) -> float:
        momentum = _checks.fraction(self.momentum, "momentum", owner)
        if momentum and self.optimizer != "sgd":
            raise ValueError(
                f"{owner} momentum={momentum:g} is SGD's: with optimizer={self.optimizer!r} it would be ignored; "
                f"pass optimizer='sgd' or leave momentum at 0"
            )
        return momentum

    def _output(self) -> str:
        return self._default_output if self.output is None else self.output

    def _loss(self) -> str:
        if self.loss is not None:
            return self.loss
        return "crossentropy" if self._output() == "softmax" or self._is_classifier() else "mse"

    def _is_classifier(self) -> bool:
        return False

    def _refuse(self, fit_params: dict, method: str) -> None:
        if not fit_params:
            return
        owner = type(self).__name__
        if "sample_weight" in fit_params:
            raise ValueError(
                f"{owner}.{method} does not support sample_weight: nnx's losses count every sample once; "
                f"repeat or resample the rows instead (or leave sample_weight out)"
            )
        raise TypeError(f"{owner}.{method} got unexpected arguments {sorted(fit_params)}; it takes X and y")

    def _validated(self, X: Any, y: Any, *, reset: bool) -> tuple[Any, Any]:
        X, y = validate_data(self, X, y, reset=reset, dtype=FLOATS, **self._target_options)
        return np.require(X, requirements=["C", "W"]), y

    def _check_same_targets(self, y: Any) -> None:
        if not self._same_targets(y):
            raise ValueError(
                f"{type(self).__name__} warm_start=True goes on with the fitted network, but y does not have the "
                f"{self._targets_fitted()} it was fitted on; set warm_start=False to fit a new network"
            )

    def _go_on_with(self, settings: Network) -> None:
        """Check that a continued fit keeps the network's structure, and give its optimizer the new learning rate
        and decay (a schedule over warm starts)."""
        owner = type(self).__name__
        now_values = self._structure()
        for name, before in self._built_with_.items():
            now = now_values[name]
            if now != before and not (name == "dtype" and now is None):  # dtype=None follows the data
                raise ValueError(
                    f"{owner} goes on with the fitted network, built with {name}={before!r}, but {name} is now "
                    f"{now!r}; set it back, or fit a new network (warm_start=False, or a new estimator)"
                )
        optimizer = self.model_.optimizer
        if self._sets_optimizer_ and optimizer is not None:
            optimizer.learning_rate, optimizer.decay = settings.learning_rate, settings.decay

    def _structure(self) -> dict[str, Any]:
        """The parameters that make the network, as they resolve (None: the head's loss, the current backend)."""
        values = {name: _comparable(getattr(self, name)) for name in STRUCTURE}
        values.update(
            hidden_layer_sizes=self._hidden(type(self).__name__),
            output=self._output(),
            loss=self._loss(),
            backend=backends.get(self.backend).name,
        )
        return values

    def _fit(self, X: Any, targets: Any, network: Network, epochs: int, keep: bool, partial: bool = False) -> Fit:
        trained = self.model_.epochs_trained if keep else 0
        weights_seed, dropout_seed, order_seed = fit_seeds(self.random_state, trained)
        if keep:
            model = self.model_
        else:
            dtype = network.dtype or dtype_name(X.dtype)
            network = Network(**{**network.__dict__, "dtype": dtype})
            model = built(lambda: self._new_model(network, X.shape[1]), weights_seed)
        X = np.require(X, dtype=dtype_name(model.trainable_layers[0].dtype), requirements=["C"])
        fraction = self.validation_fraction if self.early_stopping and not partial else None
        try:
            X, targets, validation = split(X, targets, fraction, order_seed, self._is_classifier())
        except ValueError as error:
            raise ValueError(
                f"{type(self).__name__} early_stopping cannot hold out validation_fraction={fraction} of "
                f"{X.shape[0]} samples: {error}; use a validation_fraction that leaves samples of every class on "
                f"both sides, or early_stopping=False"
            ) from None
        batch_size = None if self.batch_size is None else min(self.batch_size, X.shape[0])
        patience = (self.n_iter_no_change, float(self.tol)) if validation is not None else None
        seeds = (dropout_seed, order_seed)
        key = (fraction, order_seed, X.dtype.name)  # with one training set, equal keys make equal splits
        return Fit(
            model, X, targets, validation, epochs, batch_size, self.shuffle, seeds, patience, int(self.verbose), key
        )

    def _new_model(self, network: Network, n_features: int) -> Model:
        n_outputs = self._n_outputs(network.output)
        if self.model is None:
            self._sets_optimizer_ = True
            return network.model(n_features, n_outputs)
        owner = f"{type(self).__name__} model({n_features}, {n_outputs})"
        structure = self._structure()
        unused = [name for name, default in NETWORK_DEFAULTS.items() if structure[name] != default]
        if unused:
            names = ", ".join(unused)
            raise ValueError(
                f"{type(self).__name__}: {names} {'describes' if len(unused) == 1 else 'describe'} the built-in "
                f"network, which model= replaces; put those layers in your model, or leave {names} at the default"
            )
        try:
            model = self.model(n_features, n_outputs)
        except TypeError as error:
            raise TypeError(f"{owner} raised TypeError: {error}; model must take (n_features, n_outputs)") from error
        if not isinstance(model, Model):
            raise TypeError(f"{owner} must return an nnx.Model, got {_checks.describe(model)}")
        check_own_model(model, owner, (n_features, n_outputs, network.output, self.dtype))
        self._sets_optimizer_ = model.optimizer is None  # else its own optimizer: learning_rate etc. unused
        return network.completed(model)

    def _fitted(self, fit: Fit, history: History) -> None:
        """Take a trained `Fit` (from `_prepared_fit`) as this estimator's fitted state.

        Args:
            fit: the fit, trained.
            history: its History.
        """
        self.model_ = fit.model
        self._built_with_ = {**self._structure(), "dtype": dtype_name(fit.model.trainable_layers[0].dtype)}
        self.history_ = history
        self.n_iter_ = fit.model.epochs_trained
        self.loss_ = history.final.get("loss")
        if fit.verbose and fit.patience is not None and len(history.epoch) < fit.epochs:
            print(
                f"{type(self).__name__}: early stopping after epoch {history.epoch[-1]}: the validation loss has not "
                f"improved by tol={fit.patience[1]:g} for n_iter_no_change={fit.patience[0]} epochs"
            )

    def _trained(self, fits: list[Fit]) -> History:
        """Train one fit; a divergence is raised naming the estimator."""
        try:
            return train_fits(fits)[0]
        except DivergenceError as error:
            raise DivergenceError(
                f"{type(self).__name__}.fit: {error}. Lower learning_rate, add decay, or scale the data",
                epoch=error.epoch,
                step=error.step,
                last_finite_loss=error.last_finite_loss,
            ) from None


def _comparable(value: Any) -> Any:
    """A parameter's value as a warm start compares it: sequences as tuples, numbers as floats."""
    if hasattr(value, "tolist") and not callable(value):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return tuple(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value
