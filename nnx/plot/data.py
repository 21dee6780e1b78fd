"""Host copies of what nnx.plot draws (inputs, labels, histories) and the predictions of a model or function,
each checked with an error that names the plot and the fix."""

from __future__ import annotations

import numbers

import numpy as np

from nnx import _checks, backends
from nnx.activations import Linear
from nnx.errors import CallOrderError
from nnx.model import Model

# Host copies --------------------------------------------------------------------------------------------------------


def _host(x, name: str, owner: str) -> np.ndarray:
    """`x` as a NumPy array: NumPy as it is, a loaded backend's array through its `to_numpy`, lists read."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple, numbers.Number)):
        return np.asarray(x)
    try:
        backend = backends.owner_of(x)
    except TypeError:
        raise TypeError(
            f"{owner} expected {name} as a NumPy array or an array of an nnx backend, got {_checks.describe(x)}; "
            f"convert it with numpy.asarray(...) or nnx.backends.get(name).asarray(...)"
        ) from None
    return np.asarray(backend.to_numpy(x))


def _points(X, owner: str) -> np.ndarray:
    """Inputs of shape (n, 2) as finite host floats."""
    X = _host(X, "X", owner)
    if X.ndim != 2 or X.shape[1] != 2 or X.shape[0] == 0:
        raise ValueError(
            f"{owner} expected X of shape (n_samples, 2), 2-D points, got an array of shape {X.shape}; plot 2 "
            f"input features (e.g. spiral_data) or project your data to 2 columns first"
        )
    return _finite_floats(X, "X", owner)


def _finite_floats(x: np.ndarray, name: str, owner: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{owner} expected {name} of real numbers, got dtype {x.dtype}; pass a float array")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{owner} found NaN or infinity in {name}; drop or fix those samples before plotting")
    return x


def _labels(y, n_samples: int, owner: str) -> np.ndarray:
    """Integer class labels (n,) from labels (n,) or (n, 1), or from one-hot rows (n, C)."""
    y = _host(y, "y", owner)
    if y.ndim == 2 and y.shape[1] > 1:
        y = np.argmax(y, axis=1)
    elif y.ndim == 2:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != n_samples:
        raise ValueError(
            f"{owner} expected y as {n_samples} class labels (n,) or one-hot rows (n, C), one per row of X, got "
            f"an array of shape {y.shape}; pass the labels that go with X"
        )
    return _integer_labels(y, "y", owner)


def _integer_labels(labels: np.ndarray, name: str, owner: str) -> np.ndarray:
    if labels.dtype.kind == "b":
        return labels.astype(np.int64)
    if labels.dtype.kind not in "iuf" or not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
        raise ValueError(f"{owner} expected {name} as whole class numbers 0, 1, 2, ..., got values of {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{owner} expected {name} as class numbers >= 0, got {labels.min():g}")
    return labels.astype(np.int64)


# Predictions --------------------------------------------------------------------------------------------------------


class _Predictor:
    """Host inputs -> host outputs, from a finalized Model or from a predict function."""

    def __init__(self, model_or_predict_fn, owner: str):
        if not isinstance(model_or_predict_fn, Model) and not callable(model_or_predict_fn):
            raise TypeError(
                f"{owner} expected a finalized nnx.Model or a function predict_fn(X) returning scores (n, C) or "
                f"labels (n,), got {_checks.describe(model_or_predict_fn)}; wrap a layer-level network in a "
                f"function, e.g. def predict_fn(X): dense1.forward(X); ...; return dense2.output"
            )
        self.model = model_or_predict_fn if isinstance(model_or_predict_fn, Model) else None
        if self.model is not None and not self.model.finalized:
            raise CallOrderError(
                f"{owner} got a Model that is not finalized; call model.finalize() (and train it) before plotting"
            )
        self.function = model_or_predict_fn
        self.owner = owner

    def require_classifier(self) -> None:
        """A ValueError for a Model whose output is a regression (Linear): it has no classes to colour."""
        if self.model is not None and isinstance(self.model.output_layer_activation, Linear):
            raise ValueError(
                f"{self.owner} needs a classifier (a model ending in Softmax or Sigmoid), got a model ending in "
                f"Linear(), a regression; plot it with nnx.plot.regression(model, X, y)"
            )

    def outputs(self, X: np.ndarray) -> np.ndarray:
        """The model's last-layer outputs, or what the function returns, on the host."""
        if self.model is not None:
            return np.asarray(self.model.backend.to_numpy(self.model.predict(X)))
        return _host(self.function(X), "the predict function's output", self.owner)

    def classes(self, X: np.ndarray) -> np.ndarray:
        """Class labels (n,): the model's output activation's predictions, or labels from the function's output."""
        if self.model is None:
            return _as_labels(self.outputs(X), X.shape[0], self.owner)
        predictions = self.model.output_layer_activation.predictions(self.model.predict(X))
        return _as_labels(np.asarray(self.model.backend.to_numpy(predictions)), X.shape[0], self.owner)


def _as_labels(outputs: np.ndarray, n_samples: int, owner: str) -> np.ndarray:
    if outputs.dtype.kind == "f" and not np.isfinite(outputs).all():
        raise ValueError(
            f"{owner} got NaN or infinite predictions; the model has diverged or its predict function is broken: "
            f"retrain with a lower learning rate (nnx.DivergenceError tells you when)"
        )
    if outputs.ndim == 2 and outputs.shape[0] == n_samples and outputs.shape[1] > 1:
        return np.argmax(outputs, axis=1)
    if outputs.ndim == 2 and outputs.shape == (n_samples, 1):
        column = outputs[:, 0]
        is_label = column.dtype.kind in "biu" or np.all(np.isin(column, (0, 1)))
        return column.astype(np.int64) if is_label else (column > 0.5).astype(np.int64)
    if outputs.ndim == 1 and outputs.shape[0] == n_samples:
        return _integer_labels(outputs, "the predicted labels", owner)
    raise ValueError(
        f"{owner} expected the prediction for {n_samples} points as scores of shape ({n_samples}, n_classes) or "
        f"labels of shape ({n_samples},), got an array of shape {outputs.shape}; return one row per input row"
    )


def _values(predict: _Predictor, X: np.ndarray, owner: str) -> np.ndarray:
    """One real output per row of X, for regression: (n,) from outputs (n,) or (n, 1)."""
    outputs = predict.outputs(X)
    if outputs.shape in ((X.shape[0],), (X.shape[0], 1)):
        return _finite_floats(outputs.reshape(-1), "the predictions", owner)
    raise ValueError(
        f"{owner} expected one prediction per sample, shape ({X.shape[0]}, 1) or ({X.shape[0]},), got an array of "
        f"shape {outputs.shape}; end the model with a single output, e.g. Dense(64, 1) + Linear()"
    )
