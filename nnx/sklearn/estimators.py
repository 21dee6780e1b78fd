"""`NNXClassifier` and `NNXRegressor`: the book's network as scikit-learn estimators (fit, predict, score,
partial_fit, warm_start, get_params/set_params, clone, pickle), trained by nnx: one compiled call per batch where the
backend has one."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets, unique_labels

from nnx.sklearn.base import NNXEstimator


class NNXClassifier(ClassifierMixin, NNXEstimator):
    """The book's classifier as a scikit-learn estimator: Dense layers with ReLU, a softmax head and the categorical
    cross-entropy, trained by nnx. Class labels may be any values (strings too); `classes_` holds them sorted.

    The defaults follow scikit-learn's `MLPClassifier` (one hidden layer of 100, ReLU, Adam at 0.001, 200 epochs).

    Args:
        hidden_layer_sizes: the widths of the hidden Dense layers, in order.
        activation: the hidden layers' activation: "relu", "sigmoid" or "linear".
        output: the head: None or "softmax" (one output per class), or "sigmoid" (one output: a binary classifier
            with the binary cross-entropy).
        loss: None or "crossentropy".
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
        verbose: 0 silent (or False); 1 a progress bar (or True; lines where there is no terminal or notebook); 2
            lines (at most about 100). Both say when early stopping ends training.
        warm_start: whether `fit` goes on training the fitted network instead of starting anew: with the same
            features, targets and structure (a changed layer parameter is refused), and the current
            `learning_rate` and `decay`.
        model: a function ``model(n_features, n_outputs) -> nnx.Model`` for your own architecture: its layers
            (checked: n_features inputs, n_outputs outputs, the head `output` names), and any loss, optimizer and
            accuracy it sets (those it leaves out come from the parameters above: a model with its own optimizer
            does not use `optimizer`, `learning_rate`, `decay` or `momentum`); `hidden_layer_sizes`,
            `activation`, `dropout`, `l1` and `l2` must then keep their defaults. None builds the network of
            `hidden_layer_sizes`.

    Attributes:
        model_: the fitted `nnx.Model`.
        history_: the `nnx.callbacks.History` of the last `fit` or `partial_fit` call.
        n_iter_: the epochs the network has trained, over every call.
        loss_: the training loss of the last epoch.
        n_features_in_: the number of features seen in `fit`.
        feature_names_in_: the column names of a pandas DataFrame given to `fit`.
        classes_: the class labels, sorted.

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
                f"{owner} needs samples of at least 2 classes to learn from, got 1 class "
                f"({self.classes_.tolist()[0]!r}); add samples of another class"
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

    def _targets_fitted(self) -> str:
        return f"classes {self.classes_.tolist()}"

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

    The defaults follow scikit-learn's `MLPRegressor` (one hidden layer of 100, ReLU, Adam at 0.001, 200 epochs).

    Args:
        hidden_layer_sizes: the widths of the hidden Dense layers, in order.
        activation: the hidden layers' activation: "relu", "sigmoid" or "linear".
        output: the head: None or "linear", or "sigmoid" (targets in (0, 1)).
        loss: None or "mse" (the mean squared error), or "mae" (the mean absolute error).
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
        verbose: 0 silent (or False); 1 a progress bar (or True; lines where there is no terminal or notebook); 2
            lines (at most about 100). Both say when early stopping ends training.
        warm_start: whether `fit` goes on training the fitted network instead of starting anew: with the same
            features, targets and structure (a changed layer parameter is refused), and the current
            `learning_rate` and `decay`.
        model: a function ``model(n_features, n_outputs) -> nnx.Model`` for your own architecture: its layers
            (checked: n_features inputs, n_outputs outputs, the head `output` names), and any loss, optimizer and
            accuracy it sets (those it leaves out come from the parameters above: a model with its own optimizer
            does not use `optimizer`, `learning_rate`, `decay` or `momentum`); `hidden_layer_sizes`,
            `activation`, `dropout`, `l1` and `l2` must then keep their defaults. None builds the network of
            `hidden_layer_sizes`.

    Attributes:
        model_: the fitted `nnx.Model`.
        history_: the `nnx.callbacks.History` of the last `fit` or `partial_fit` call.
        n_iter_: the epochs the network has trained, over every call.
        loss_: the training loss of the last epoch.
        n_features_in_: the number of features seen in `fit`.
        feature_names_in_: the column names of a pandas DataFrame given to `fit`.
        n_outputs_: the number of target columns.

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
        if self._output() == "sigmoid" and len(targets) and not ((targets >= 0) & (targets <= 1)).all():
            raise ValueError(
                f"{type(self).__name__} output='sigmoid' predicts values in (0, 1), but y ranges over "
                f"[{targets.min():g}, {targets.max():g}]; scale y into [0, 1] or use output='linear'"
            )
        if reset:
            self.n_outputs_ = targets.shape[1]
        elif targets.shape[1] != self.n_outputs_:
            raise ValueError(
                f"{type(self).__name__} was fitted on {self.n_outputs_} target column(s), got {targets.shape[1]}; "
                f"pass targets of the same shape, or fit anew"
            )
        return targets

    def _targets_fitted(self) -> str:
        return f"{self.n_outputs_} target column(s)"

    def _first_classes(self, classes: Any, y: Any) -> None:
        self.n_outputs_ = np.reshape(y, (len(y), -1)).shape[1]

    def _same_targets(self, y: Any) -> bool:
        return np.reshape(y, (len(y), -1)).shape[1] == self.n_outputs_

    def _n_outputs(self, output: str) -> int:
        return self.n_outputs_
