"""A Model's evaluation and prediction passes, and `set_parameters`: its data checked by `nnx.training.data`."""

from __future__ import annotations

import contextlib
from typing import Any

from nnx import _checks
from nnx.backends._host import dtype_name
from nnx.callbacks.base import host_float
from nnx.training import handoff, streams
from nnx.training.data import batches, checked_data, checked_inputs, located, pair, slices


def evaluated(
    model: Any, X_val: Any, y_val: Any, *, batch_size: Any, verbose: Any, prefetch: Any = "auto"
) -> tuple[float, float]:
    """What `Model.evaluate` does once its parts are checked: (loss, accuracy) over the data, without dropout."""
    batch_size = _checks.optional_positive_int(batch_size, "batch_size", "Model.evaluate")
    verbose = _checks.boolean(verbose, "verbose", "Model.evaluate")
    prefetch = streams.checked_prefetch(prefetch, "Model.evaluate")
    if streams.is_stream(X_val, y_val, batch_size=batch_size):  # read, checked and copied batch by batch
        source = streams.source(X_val, y_val, batch_size, owner="Model.evaluate")
        with contextlib.closing(streams.Feed(model, source, "evaluation", prefetch)) as feed:
            loss, accuracy = _evaluation_pass(model, *feed.first(), feed.batches())
    elif y_val is None:
        raise TypeError(
            f"Model.evaluate got inputs ({_checks.describe(X_val)}) without targets; pass evaluate(X_val, y_val), "
            f"or an iterable of (X, y) batches"
        )
    else:
        X_val, y_val = checked_data(model, X_val, y_val, "evaluation")
        loss, accuracy = _evaluation_pass(model, X_val, y_val, batches(X_val, y_val, batch_size))
    if verbose:
        print(f"validation, acc: {accuracy:.3f}, loss: {loss:.3f}")
    return loss, accuracy


def _evaluation_pass(model: Any, X_first: Any, y_first: Any, pairs: Any) -> tuple[float, float]:
    """(loss, accuracy) over the checked (X, y) `pairs`; the accuracy is set up from the first batch's targets (a
    streamed regression's precision)."""
    with model.backend.quiet_float_errors():
        model.accuracy.init(y_first)
    model.loss.new_pass()
    model.accuracy.new_pass()
    with _checks.trusted(), model.backend.quiet_float_errors():
        for X_batch, y_batch in pairs:
            output = model.forward(X_batch, training=False)
            model.loss.calculate(output, y_batch)
            model.accuracy.calculate(handoff.predictions(model, output, y_batch), y_batch)
    loss = host_float(model.backend, model.loss.calculate_accumulated())
    return loss, host_float(model.backend, model.accuracy.calculate_accumulated())


def predicted(model: Any, X: Any, *, batch_size: Any, prefetch: Any = "auto") -> Any:
    """What `Model.predict` does once the model is checked: the last layer's outputs for `X`, as one array."""
    batch_size = _checks.optional_positive_int(batch_size, "batch_size", "Model.predict")
    prefetch = streams.checked_prefetch(prefetch, "Model.predict")
    if streams.is_stream(X, None, lists=False, batch_size=batch_size):  # read, checked and copied batch by batch
        source = streams.source(X, None, batch_size, owner="Model.predict", targets=False)
        with contextlib.closing(streams.Feed(model, source, "prediction", prefetch)) as feed:
            feed.first()
            with _checks.trusted(), model.backend.quiet_float_errors():
                outputs = [model.forward(X_batch, training=False) for X_batch in feed.batches()]
        return outputs[0] if len(outputs) == 1 else model.xp.concat(outputs, axis=0)
    X = checked_inputs(model, X)
    with _checks.trusted(), model.backend.quiet_float_errors():
        outputs = [model.forward(X[start:stop, ...], training=False) for start, stop in slices(X.shape[0], batch_size)]
    return outputs[0] if len(outputs) == 1 else model.xp.concat(outputs, axis=0)


def set_parameters(model: Any, parameters: Any) -> None:
    """What `Model.set_parameters` does: every pair checked first, then copied into its layer."""
    for layer, weights, biases in checked_parameters(model, parameters):
        layer.set_parameters(weights, biases)


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


def checked_parameter(model: Any, value: Any, layer: Any, name: str) -> Any:
    """`value` as `layer`'s parameter `name` on the model's backend: real, finite, in the layer's dtype."""
    backend, value = located(model.backend, value, f"{layer.label} {name}")
    _checks.real_dtype(backend.xp, value, layer, name)
    value = _checks.as_finite(backend, value, getattr(backend.xp, dtype_name(layer.dtype)), layer, name)
    return value if backend is model.backend else model.backend.asarray(value)
