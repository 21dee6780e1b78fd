"""`NNXClassifier` and `NNXRegressor`: the book's network as scikit-learn estimators (fit, predict, score,
partial_fit, warm_start, get_params/set_params, clone, pickle), validated with scikit-learn's own tools and
trained by nnx: one compiled call per batch where the backend has one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from nnx import _checks
from nnx.backends._host import dtype_name
from nnx.callbacks.history import History
from nnx.model import Model
from nnx.sklearn.fits import ACTIVATIONS, OPTIMIZERS, Fit, Network, built, fit_seeds, split, train_fits

FLOATS = ("float64", "float32")


class NNXEstimator(BaseEstimator):
    """What `NNXClassifier` and `NNXRegressor` share: the parameters, fitting, partial fitting and predicting.

    Args:
        hidden_layer_sizes: the widths of the hidden Dense layers, in order.
        activation: the hidden layers' activation: "relu", "sigmoid" or "linear".
        output: the head: "softmax" (classes, the default for a classifier), "sigmoid" (a binary classifier with
            one output, or a regression in (0, 1)) or "linear" (the default for a regressor).
        loss: "crossentropy" for a classifier; "mse" (the default) or "mae" for a regressor; None for the head's own.
        optimizer: "adam", "sgd", "rmsprop" or "adagrad", with the book's update rules.
        learning_rate: the optimizer's initial learning rate.
        decay: the book's learning-rate decay: lr / (1 + decay * step).
        momentum: SGD's momentum (only with optimizer="sgd").
        l1: L1 strength on every Dense layer's weights.
        l2: L2 strength on every Dense layer's weights.
        dropout: the rate of a Dropout layer after each hidden activation; 0 for none.
        epochs: epochs per `fit` (`partial_fit` trains one).
        batch_size: samples per step (at most the number of samples); None trains on all of them at each step.
        shuffle: whether each epoch takes the samples in a new order.
        early_stopping: whether to hold out `validation_fraction` of the data and stop once the validation loss has
            not improved by `tol` for `n_iter_no_change` epochs (the weights of the last epoch are kept).
        validation_fraction: the share held out with early stopping, in (0, 1).
        n_iter_no_change: epochs without improvement before early stopping ends training.
        tol: the improvement of the validation loss that counts, with early stopping.
        backend: an nnx backend name ("numpy", "cupy", ...); None for the current one.
        dtype: "float32" or "float64"; None follows the data (float32 stays float32, anything else is float64).
        random_state: an int for repeatable fits (initial weights, shuffling, dropout and the validation split),
            a RandomState, or None to draw from NumPy's global RNG.
        verbose: 0 silent, 1 a progress bar, 2 lines.
        warm_start: whether `fit` goes on training the fitted network instead of starting anew.
        model: a function ``model(n_features, n_outputs) -> nnx.Model`` for your own architecture: its layers,
            and any loss, optimizer and accuracy it sets (those it leaves out come from the parameters above);
            None builds the network of `hidden_layer_sizes`.

    Attributes:
        model_: the fitted `nnx.Model`.
        history_: the `nnx.callbacks.History` of the last `fit` or `partial_fit` call.
        n_iter_: the epochs the network has trained, over every call.
        loss_: the training loss of the last epoch.
        n_features_in_: the number of features seen in `fit`.
        feature_names_in_: the column names of a pandas DataFrame given to `fit`.
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
        fit = self._prepared_fit(X, y, **fit_params)
        self._fitted(fit, train_fits([fit])[0])
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
        self._refuse(fit_params, "fit")
        settings = self._settings()
        X, y = self._validated(X, y, reset=True)
        keep = self.warm_start and self._continues(X, y)
        targets = self._encoded(y, reset=not keep)
        return self._fit(X, targets, settings, self.epochs, keep)

    def _partial_fit(self, X: Any, y: Any, classes: Any = None) -> NNXEstimator:
        settings = self._settings()
        first = not hasattr(self, "model_")
        X, y = self._validated(X, y, reset=first)
        if first:
            self._first_classes(classes, y)
        targets = self._encoded(y, reset=False)
        fit = self._fit(X, targets, settings, 1, keep=not first, partial=True)
        self._fitted(fit, train_fits([fit])[0])
        return self

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
        if self.verbose not in (0, 1, 2) or isinstance(self.verbose, bool):
            raise ValueError(f"{owner} verbose must be 0, 1 or 2, got {self.verbose!r}")
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

    def _hidden(self, owner: str) -> tuple[int, ...]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, int) and not isinstance(sizes, bool):
            sizes = (sizes,)
        if not isinstance(sizes, (tuple, list)):
            raise TypeError(
                f"{owner} hidden_layer_sizes must be a tuple of layer widths such as (100,) or (64, 64), got "
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

    def _continues(self, X: Any, y: Any) -> bool:
        """Whether a warm-started fit can go on with the fitted network (same features and classes)."""
        return hasattr(self, "model_") and X.shape[1] == self.n_features_in_ and self._same_targets(y)

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
        X, targets, validation = split(X, targets, fraction, order_seed, self._is_classifier())
        batch_size = None if self.batch_size is None else min(self.batch_size, X.shape[0])
        patience = (self.n_iter_no_change, float(self.tol)) if validation is not None else None
        seeds = (dropout_seed, order_seed)
        key = (fraction, order_seed, X.dtype.name)  # with one training set, equal keys make equal splits
        return Fit(model, X, targets, validation, epochs, batch_size, self.shuffle, seeds, patience, self.verbose, key)

    def _new_model(self, network: Network, n_features: int) -> Model:
        n_outputs = self._n_outputs(network.output)
        if self.model is None:
            return network.model(n_features, n_outputs)
        model = self.model(n_features, n_outputs)
        if not isinstance(model, Model):
            raise TypeError(
                f"{type(self).__name__} model({n_features}, {n_outputs}) must return an nnx.Model, got "
                f"{_checks.describe(model)}"
            )
        return network.completed(model)

    def _fitted(self, fit: Fit, history: History) -> None:
        """Take a trained `Fit` (from `_prepared_fit`) as this estimator's fitted state.

        Args:
            fit: the fit, trained.
            history: its History.
        """
        self.model_ = fit.model
        self.history_ = history
        self.n_iter_ = fit.model.epochs_trained
        self.loss_ = history.final.get("loss")


class NNXClassifier(ClassifierMixin, NNXEstimator):
    """The book's classifier as a scikit-learn estimator: Dense layers with ReLU, a softmax head and the categorical
    cross-entropy, trained by nnx. Class labels may be any values (strings too); `classes_` holds them sorted.

    The parameters and attributes are `NNXEstimator`'s; ``output="sigmoid"`` gives a binary classifier one sigmoid
    output with the binary cross-entropy.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> NNXClassifier(hidden_layer_sizes=(16,), learning_rate=0.01, random_state=0).fit(X, y).score(X, y) > 0.9
        True
    """

    _default_output = "softmax"
    _outputs = ("softmax", "sigmoid")
    _losses = ("crossentropy",)
    _target_options: ClassVar[dict[str, Any]] = {}

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> NNXClassifier:
        """Train one epoch on (X, y), starting a network on the first call.

        Args:
            X: the samples, as `fit` takes them.
            y: their class labels, all of them among `classes`.
            classes: every label the data will have (e.g. ``np.unique(y_all)``): required on the first call,
                ignored later.

        Returns:
            The estimator.
        """
        self._partial_fit(X, y, classes)
        return self

    def predict(self, X: Any) -> Any:
        """The most probable class of each sample.

        Args:
            X: the samples, (n_samples, n_features_in_).

        Returns:
            (n_samples,) labels from `classes_`.
        """
        indices = self.predict_proba(X).argmax(axis=1)
        return self.classes_[indices]

    def predict_proba(self, X: Any) -> Any:
        """The probability of each class for each sample.

        Args:
            X: the samples, (n_samples, n_features_in_).

        Returns:
            (n_samples, n_classes) float64, columns in the order of `classes_`, rows summing to 1.
        """
        outputs = self._predicted(X)
        if outputs.shape[1] == 1:  # a sigmoid head: the probability of classes_[1]
            return np.column_stack([1.0 - outputs[:, 0], outputs[:, 0]])
        return outputs

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags

    def _is_classifier(self) -> bool:
        return True

    def _encoded(self, y: Any, *, reset: bool) -> Any:
        """The labels as class indices (a sigmoid head: (n_samples, 1) zeros and ones); `reset` sets `classes_`."""
        owner = type(self).__name__
        check_classification_targets(y)
        if reset:
            self.classes_ = unique_labels(y)
        unknown = np.setdiff1d(unique_labels(y), self.classes_)
        if unknown.size:
            raise ValueError(
                f"{owner}: y has labels {unknown[:5].tolist()} that are not among classes_ "
                f"{self.classes_[:10].tolist()}; pass every label to the first partial_fit as classes=, or fit anew"
            )
        if len(self.classes_) < 2:
            raise ValueError(
                f"{owner} needs samples of at least 2 classes to learn from, got 1 class ({self.classes_[0]!r}); "
                f"add samples of another class"
            )
        codes = np.searchsorted(self.classes_, y)
        if self._output() != "sigmoid":
            return codes.astype("int64")
        if len(self.classes_) != 2:
            raise ValueError(
                f"{owner} output='sigmoid' is a binary classifier, but y has {len(self.classes_)} classes; use "
                f"output='softmax'"
            )
        return codes.astype("float64").reshape(-1, 1)

    def _first_classes(self, classes: Any, y: Any) -> None:
        if classes is None:
            raise ValueError(
                f"{type(self).__name__}.partial_fit needs classes= on its first call: every label the data will "
                f"have, e.g. classes=np.unique(y_all)"
            )
        self.classes_ = unique_labels(classes)

    def _same_targets(self, y: Any) -> bool:
        labels = unique_labels(y)
        return len(labels) == len(self.classes_) and bool((labels == self.classes_).all())

    def _n_outputs(self, output: str) -> int:
        return 1 if output == "sigmoid" else len(self.classes_)


class NNXRegressor(RegressorMixin, NNXEstimator):
    """The book's regression network as a scikit-learn estimator: Dense layers with ReLU, a linear head and the mean
    squared error, trained by nnx. A 2-d y trains one output per column.

    The parameters and attributes are `NNXEstimator`'s, plus `n_outputs_`, the number of target columns.

    Example:
        >>> from sklearn.datasets import make_regression
        >>> X, y = make_regression(n_samples=200, n_features=4, noise=0.1, random_state=0)
        >>> model = NNXRegressor(hidden_layer_sizes=(32,), learning_rate=0.01, random_state=0).fit(X, y / 100)
        >>> model.score(X, y / 100) > 0.9
        True
    """

    _default_output = "linear"
    _outputs = ("linear", "sigmoid")
    _losses = ("mse", "mae")
    _target_options: ClassVar[dict[str, Any]] = {"multi_output": True, "y_numeric": True}

    def partial_fit(self, X: Any, y: Any) -> NNXRegressor:
        """Train one epoch on (X, y), starting a network on the first call.

        Args:
            X: the samples, as `fit` takes them.
            y: their targets, with the same number of columns on every call.

        Returns:
            The estimator.
        """
        self._partial_fit(X, y)
        return self

    def predict(self, X: Any) -> Any:
        """The network's predictions.

        Args:
            X: the samples, (n_samples, n_features_in_).

        Returns:
            float64 (n_samples,) for one target, (n_samples, n_outputs_) for several.
        """
        outputs = self._predicted(X)
        return outputs[:, 0] if self.n_outputs_ == 1 else outputs

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _encoded(self, y: Any, *, reset: bool) -> Any:
        targets = np.ascontiguousarray(y, dtype="float64").reshape(len(y), -1)
        if reset:
            self.n_outputs_ = targets.shape[1]
        elif targets.shape[1] != self.n_outputs_:
            raise ValueError(
                f"{type(self).__name__} was fitted on {self.n_outputs_} target column(s), got {targets.shape[1]}; "
                f"pass targets of the same shape, or fit anew"
            )
        return targets

    def _first_classes(self, classes: Any, y: Any) -> None:
        self.n_outputs_ = np.reshape(y, (len(y), -1)).shape[1]

    def _same_targets(self, y: Any) -> bool:
        return np.reshape(y, (len(y), -1)).shape[1] == self.n_outputs_

    def _n_outputs(self, output: str) -> int:
        return self.n_outputs_
