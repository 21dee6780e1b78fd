"""Host copies of what nnx.plot draws (inputs, labels, histories) and the predictions of a model or function,
each checked with an error that names the plot and the fix."""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from nnx import _checks, backends
from nnx.activations import Linear
from nnx.errors import CallOrderError
from nnx.model import Model

# Host copies --------------------------------------------------------------------------------------------------------


def host_data(x, name: str, owner: str) -> np.ndarray:
    """`x` as a NumPy array: NumPy as it is, a backend's array through its `to_numpy`, lists read."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple, numbers.Number)):
        return np.asarray(x)
    backend = _backend_of(x, name, owner)
    if backend is None:
        raise TypeError(
            f"{owner} expected {name} as a NumPy array or an array of an nnx backend, got {_checks.describe(x)}; "
            f"convert it with numpy.asarray(...) or nnx.backends.get(name).asarray(...)"
        )
    return np.asarray(backend.to_numpy(x))


def _backend_of(x, name: str, owner: str):
    """The loaded backend whose array `x` is, else the registered backend of the library `x` comes from (loaded
    now: torch, jax from jaxlib, ...) if `x` is of its array type, on any device (to_numpy copies it to the host),
    else None."""
    with contextlib.suppress(TypeError):
        return backends.owner_of(x)
    library = type(x).__module__.split(".")[0]
    for backend_name in dict.fromkeys((library, library.removesuffix("lib"))):
        if backend_name not in backends.registered():
            continue
        try:
            backend = backends.get(backend_name)
        except backends.BackendUnavailableError as error:
            raise TypeError(f"{owner} cannot read {name}, an array of {library}: {error}") from error
        if isinstance(x, backend.array_type):
            return backend
    return None


def input_points(X, owner: str) -> np.ndarray:
    """Inputs of shape (n, 2) as finite host floats."""
    X = host_data(X, "X", owner)
    if X.ndim != 2 or X.shape[1] != 2 or X.shape[0] == 0:
        raise ValueError(
            f"{owner} expected X of shape (n_samples, 2), 2-D points, got an array of shape {X.shape}; plot 2 "
            f"input features (e.g. spiral_data) or project your data to 2 columns first"
        )
    return finite_floats(X, "X", owner)


def finite_floats(x: np.ndarray, name: str, owner: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{owner} expected {name} of real numbers, got dtype {x.dtype}; pass a float array")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{owner} found NaN or infinity in {name}; drop or fix those samples before plotting")
    return x


def class_labels(y, n_samples: int, owner: str) -> np.ndarray:
    """Integer class labels (n,) from labels (n,) or (n, 1), or from one-hot rows (n, C)."""
    y = host_data(y, "y", owner)
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


def grid_points(X: np.ndarray, resolution: int, margin: float, owner: str):
    """Grid points (resolution**2, 2) covering X's bounding box widened by `margin` of its size, and the box; a
    ValueError naming margin when that box is too large for float64."""
    low, high = X.min(axis=0), X.max(axis=0)
    with np.errstate(over="ignore", invalid="ignore"):
        pad = np.where(high > low, (high - low) * margin, 1.0)
        low, high = low - pad, high + pad
        finite = np.isfinite(high - low).all()
    if not finite:
        raise ValueError(
            f"{owner} cannot build the grid: X's box widened by margin={margin:g} of its size overflows float64 "
            f"(X spans {X.min(axis=0)} to {X.max(axis=0)}); use a smaller margin, or rescale X (e.g. standardize it)"
        )
    xs, ys = (np.linspace(low[i], high[i], resolution) for i in range(2))
    grid_x, grid_y = np.meshgrid(xs, ys)
    box = (low[0], high[0], low[1], high[1])
    return np.column_stack([grid_x.ravel(), grid_y.ravel()]), box


# Predictions --------------------------------------------------------------------------------------------------------


class Predictor:
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
        return host_data(self.function(X), "the predict function's output", self.owner)

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


def regression_values(predict: Predictor, X: np.ndarray, owner: str) -> np.ndarray:
    """One real output per row of X, for regression: (n,) from outputs (n,) or (n, 1)."""
    outputs = predict.outputs(X)
    if outputs.shape in ((X.shape[0],), (X.shape[0], 1)):
        return finite_floats(outputs.reshape(-1), "the predictions", owner)
    raise ValueError(
        f"{owner} expected one prediction per sample, shape ({X.shape[0]}, 1) or ({X.shape[0]},), got an array of "
        f"shape {outputs.shape}; end the model with a single output, e.g. Dense(64, 1) + Linear()"
    )


# Histories ----------------------------------------------------------------------------------------------------------

HISTORY = "nnx.plot.history"


def history_table(history) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(epochs, name -> values aligned with them) as host floats from a History-like object or a Mapping."""
    if hasattr(history, "epoch") and hasattr(history, "history"):
        epochs, table = _epochs(history.epoch, "history.epoch"), dict(history.history)
    elif isinstance(history, Mapping):
        table = {name: values for name, values in history.items() if name != "epoch"}
        lengths = {len(values) for values in table.values() if _is_column(values)}
        default = np.arange(max(lengths, default=0), dtype=np.float64)
        epochs = _epochs(history["epoch"], "history['epoch']") if "epoch" in history else default
    else:
        raise TypeError(
            f"{HISTORY} expected a History (an object with .epoch and .history) or a dict name -> list of values per "
            f"epoch, got {_checks.describe(history)}; record the metrics of every epoch, e.g. "
            f"{{'loss': [...], 'accuracy': [...]}}"
        )
    for name in table:
        if not isinstance(name, str):
            raise TypeError(
                f"{HISTORY} expected metric names as strings, got {_checks.describe(name)}; name each metric, e.g. "
                f"{{'loss': [...], 'accuracy': [...]}}"
            )
    return epochs, {name: _series(name, values, len(epochs)) for name, values in table.items()}


def _is_column(values) -> bool:
    """A list (or tuple, or 1-D NumPy array) of per-epoch values."""
    if isinstance(values, np.ndarray):
        return values.ndim == 1
    return isinstance(values, Sequence) and not isinstance(values, (str, bytes))


def _epochs(values, label: str) -> np.ndarray:
    """The epoch numbers as host floats: a column of finite real numbers."""
    if not _is_column(values):
        raise TypeError(
            f"{HISTORY} expected {label} as a list of epoch numbers, got {_checks.describe(values)}; pass one number "
            f"per recorded epoch, or leave the epochs out to number them 0, 1, 2, ..."
        )
    epochs = _floats(values, label, "pass the number of each recorded epoch, e.g. list(range(1, n + 1))")
    if not np.isfinite(epochs).all():
        position = int(np.argmin(np.isfinite(epochs)))
        raise ValueError(
            f"{HISTORY} expected {label} as finite epoch numbers, got {values[position]!r} at position {position}; "
            f"pass the number of every recorded epoch"
        )
    return epochs


def _series(name: str, values, n_epochs: int) -> np.ndarray:
    label = f"history[{name!r}]"
    if not _is_column(values):
        raise ValueError(
            f"{HISTORY} expected {label} as a list with one value per epoch, got {_checks.describe(values)}; pass the "
            f"per-epoch lists (the History Model.train returns, or a dict of lists), not the final metrics"
        )
    if len(values) != n_epochs:
        raise ValueError(
            f"{HISTORY} expected {label} to have one value per epoch ({n_epochs}), got {len(values)}; use None for "
            f"the epochs where it was not measured"
        )
    return _floats(values, label, "record each epoch's value as a number, e.g. float(loss), or None if not measured")


def _floats(values, label: str, fix: str) -> np.ndarray:
    return np.array([_host_float(value, label, fix) for value in values], dtype=np.float64)


def _host_float(value, label: str, fix: str) -> float:
    """One recorded value as a float: None is NaN (not measured); real numbers and one-element real arrays are
    read; booleans, strings and anything else are a TypeError naming `label`, with `fix`."""
    if value is None:
        return math.nan
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    scalar = isinstance(value, (bool, np.bool_, str, bytes, numbers.Number))
    array = None if scalar else host_data(value, f"the values of {label}", HISTORY)
    if array is None or array.dtype.kind not in "iuf" or array.size != 1:
        raise TypeError(f"{HISTORY} expected {label} to hold real numbers, got {_checks.describe(value)}; {fix}")
    return float(array.reshape(()))
