"""The data a training run takes: inputs and targets checked once, on the host before they are copied (or with one
reduction on the device), then cut into batches.

What the targets must be comes from the loss itself (`Loss.TARGETS`): class labels, probabilities or values. The
widths come from the layers that declare them: `n_inputs` of the first, `n_neurons` of the last that has it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from nnx import _checks, backends
from nnx._component import defined_by_nnx
from nnx.backends import Backend
from nnx.backends._host import dtype_name, host_array, is_host_data


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
    if outputs is not None and outputs > 1 and len(y.shape) == 1 and not defined_by_nnx(type(loss)):
        raise ValueError(
            f"{owner} expected targets of shape ({n_samples}, {outputs}) like the outputs, got {tuple(y.shape)}, as "
            f"its TARGETS = {loss.TARGETS!r} says; pass {outputs} targets per sample, or, if {type(loss).__name__} "
            f"takes class labels, declare TARGETS = 'classes' on its class"
        )
    if outputs is not None:
        y = _checks.value_targets(xp, y, n_samples, outputs, owner)
    y = _finite_copy(model, backend, y, owner, "targets")
    if loss.TARGETS == "probabilities":
        _checks.within(model.backend, y, 0, 1, owner)
    return y


def _finite_copy(model: Any, backend: Backend, x: Any, owner: Any, what: str) -> Any:
    """`x` in the model's float dtype on its backend: cast where it is (on the host for host data), checked finite
    after the cast, then copied over once."""
    trainable = model.trainable_layers
    first = trainable[0] if trainable else None  # a layer of your own may have weights but no dtype attribute
    name = dtype_name(model.backend.default_float if first is None else getattr(first, "dtype", first.weights.dtype))
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
