"""The data of a Model's calls (train, evaluate, predict, set_parameters): checked once, on the host before it is
copied (or with one reduction on the device), then cut into batches; and the evaluation and prediction passes.

What the targets must be comes from the loss itself (`Loss.TARGETS`): class labels, probabilities or values.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from nnx import _checks, backends
from nnx.backends import Backend
from nnx.backends._host import dtype_name, host_array, is_host_data
from nnx.callbacks.base import host_float


def evaluated(model: Any, X_val: Any, y_val: Any, *, batch_size: Any, verbose: Any) -> tuple[float, float]:
    """What `Model.evaluate` does once its parts are checked: (loss, accuracy) over the data, without dropout."""
    batch_size = _checks.optional_positive_int(batch_size, "batch_size", "Model.evaluate")
    verbose = _checks.boolean(verbose, "verbose", "Model.evaluate")
    X_val, y_val = checked_data(model, X_val, y_val, "evaluation")
    with model.backend.quiet_float_errors():
        model.accuracy.init(y_val)
    model.loss.new_pass()
    model.accuracy.new_pass()
    with _checks.trusted(), model.backend.quiet_float_errors():
        for X_batch, y_batch in batches(X_val, y_val, batch_size):
            output = model.forward(X_batch, training=False)
            model.loss.calculate(output, y_batch)
            model.accuracy.calculate(model.output_layer_activation.predictions(output), y_batch)
    loss = host_float(model.backend, model.loss.calculate_accumulated())
    accuracy = host_float(model.backend, model.accuracy.calculate_accumulated())
    if verbose:
        print(f"validation, acc: {accuracy:.3f}, loss: {loss:.3f}")
    return loss, accuracy


def predicted(model: Any, X: Any, *, batch_size: Any) -> Any:
    """What `Model.predict` does once the model is checked: the last layer's outputs for `X`, as one array."""
    batch_size = _checks.optional_positive_int(batch_size, "batch_size", "Model.predict")
    X = checked_inputs(model, X)
    with _checks.trusted(), model.backend.quiet_float_errors():
        outputs = [model.forward(X[start:stop, ...], training=False) for start, stop in slices(X.shape[0], batch_size)]
    return outputs[0] if len(outputs) == 1 else model.xp.concat(outputs, axis=0)


def set_parameters(model: Any, parameters: Any) -> None:
    """What `Model.set_parameters` does: every pair checked first, then copied into its layer."""
    for layer, weights, biases in checked_parameters(model, parameters):
        layer.set_parameters(weights, biases)


def checked_data(model: Any, X: Any, y: Any, what: str) -> tuple[Any, Any]:
    """Checked (inputs, targets) on the model's backend: host data checked on the host, then copied once."""
    X = checked_inputs(model, X, what)
    return X, checked_targets(model, y, X.shape[0], what)


def checked_inputs(model: Any, X: Any, what: str = "prediction") -> Any:
    first = model.layers[0]
    features = getattr(first, "n_inputs", None)
    owner = getattr(first, "label", repr(first))
    backend, X = located(model.backend, X, f"{owner} {what} inputs")
    _checks.batch(X, owner, what=f"{what} inputs", features=features)
    _checks.real_dtype(backend.xp, X, owner, f"{what} inputs")
    return _finite_copy(model, backend, X, owner, f"{what} inputs")


def checked_targets(model: Any, y: Any, n_samples: int, what: str) -> Any:
    loss = model.loss
    owner = f"{loss!r} ({what} targets)"
    backend, y = located(model.backend, y, owner)
    xp = backend.xp
    _checks.same_samples(n_samples, y, owner)
    outputs = output_width(model)
    if loss.TARGETS == "classes":
        if outputs is not None:
            _checks.class_targets(backend, y, outputs, owner)
        if len(y.shape) == 1 and not xp.isdtype(y.dtype, "integral"):
            y = xp.astype(y, backend.int_dtype)
        return y if backend is model.backend else model.backend.asarray(y)
    _checks.real_dtype(xp, y, owner, "targets")
    if outputs is not None:
        y = _checks.value_targets(xp, y, n_samples, outputs, owner)
    y = _finite_copy(model, backend, y, owner, "targets")
    if loss.TARGETS == "probabilities":
        _checks.within(model.backend, y, 0, 1, owner)
    return y


def checked_parameter(model: Any, value: Any, layer: Any, name: str) -> Any:
    """`value` as `layer`'s parameter `name` on the model's backend: real, finite, in the layer's dtype."""
    backend, value = located(model.backend, value, f"{layer.label} {name}")
    _checks.real_dtype(backend.xp, value, layer, name)
    value = _checks.as_finite(backend, value, getattr(backend.xp, dtype_name(layer.dtype)), layer, name)
    return value if backend is model.backend else model.backend.asarray(value)


def _finite_copy(model: Any, backend: Backend, x: Any, owner: Any, what: str) -> Any:
    """`x` in the model's float dtype on its backend: cast where it is (on the host for host data), checked finite
    after the cast, then copied over once."""
    trainable = model.trainable_layers
    name = dtype_name(trainable[0].dtype if trainable else model.backend.default_float)
    x = _checks.as_finite(backend, x, getattr(backend.xp, name), owner, what)
    return x if backend is model.backend else model.backend.asarray(x, dtype=name)


def located(backend: Backend, x: Any, what: str) -> tuple[Backend, Any]:
    """(backend, array): `x` as it is if it is on `backend`, else as a host array to check first."""
    if backend.owns(x):
        return backend, backend.plain(x, what)
    host = backends.get("numpy")
    if is_host_data(x):  # lists, memoryviews, pandas objects: read as NumPy reads them, then checked the same way
        try:
            return host, host_array(x)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{what} could not be read as an array ({error}); pass a rectangular array") from None
    if host.owns(x):
        return host, host.plain(x, what)
    return backend, backend.check(x, what)  # another library's array: the error names the model's own backend


def output_width(model: Any) -> int | None:
    """The outputs of the model's last layer with parameters (its Dense), or None without one."""
    widths = [layer.n_neurons for layer in model.layers if hasattr(layer, "n_neurons")]
    return widths[-1] if widths else None


def pair(value: Any, what: str = "Model.train validation_data", expected: str = "an (X, y) pair") -> Sequence[Any]:
    """`value` itself if it is a tuple or list of two, else a TypeError naming `what` and what it must be."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{what} must be {expected}, got {_checks.describe(value)}")
    return value


def steps(n_samples: int, batch_size: int | None) -> int:
    """The number of batches of `batch_size` (None: one) in `n_samples`."""
    return 1 if batch_size is None else math.ceil(n_samples / batch_size)


def slices(n_samples: int, batch_size: int | None) -> Iterator[tuple[int, int]]:
    """Start and stop of each batch, the last one shorter if needed (never past the end)."""
    step = n_samples if batch_size is None else batch_size
    for start in range(0, n_samples, max(step, 1)):
        yield start, min(start + step, n_samples)


def batches(X: Any, y: Any, batch_size: int | None) -> Iterator[tuple[Any, Any]]:
    """(X, y) batches of `batch_size` rows, in order (the arrays themselves for one batch)."""
    if batch_size is None or batch_size >= X.shape[0]:
        yield X, y  # the arrays themselves: a compiled step recognises them without looking at their memory
        return
    for start, stop in slices(X.shape[0], batch_size):
        yield X[start:stop, ...], y[start:stop, ...]


def checked_parameters(model: Any, parameters: Any) -> list[tuple[Any, Any, Any]]:
    """[(layer, weights, biases)] for `Model.set_parameters`: one checked pair per trainable layer, on its backend."""
    if not isinstance(parameters, (list, tuple)):
        raise TypeError(
            f"Model.set_parameters() expected a list of (weights, biases) pairs, got "
            f"{_checks.describe(parameters)}; pass the list model.get_parameters() returns"
        )
    layers = model.trainable_layers
    if len(parameters) != len(layers):
        raise ValueError(
            f"Model.set_parameters() expected {len(layers)} (weights, biases) pairs, one per trainable layer, got "
            f"{len(parameters)}; pass the list model.get_parameters() returns"
        )
    checked = []
    for layer, entry in zip(layers, parameters, strict=True):
        weights, biases = pair(entry, f"Model.set_parameters() entry for {layer.label}", "(weights, biases)")
        weights = checked_parameter(model, weights, layer, "weights")
        biases = checked_parameter(model, biases, layer, "biases")
        layer.check_parameters(weights, biases)
        checked.append((layer, weights, biases))
    return checked
