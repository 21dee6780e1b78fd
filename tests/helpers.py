"""Test helpers: central finite differences on the host, the one classifier the tests build, and the checks of
the bad-input tests (test_validation_*.py): a snapshot of a model, and the error, its message and nothing changed."""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest

import nnx

BEYOND_FLOAT32 = r"finite values too large for float32"  # what nnx says of float64 data beyond float32's range


def numeric_gradient(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar function `f` at `x` (a float64 host array)."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        shifted = x.copy()
        shifted[index] += eps
        up = f(shifted)
        shifted[index] -= 2 * eps
        grad[index] = (up - f(shifted)) / (2 * eps)
    return grad


def assert_gradient_close(analytic, numeric, rtol: float = 1e-6, atol: float = 1e-9) -> None:
    """Relative error of an analytic gradient against finite differences, below `rtol` (design: 1e-6)."""
    analytic = np.asarray(analytic, dtype=np.float64)
    scale = np.maximum(np.abs(analytic), np.abs(numeric))
    error = np.abs(analytic - numeric)
    worst = np.max(error - rtol * scale)
    assert worst <= atol, f"max abs error {np.max(error):.3e}, relative {np.max(error / (scale + 1e-30)):.3e}"


def spiral_classifier(
    backend="numpy",
    *,
    inputs: int = 2,
    hidden: int = 16,
    classes: int = 3,
    dropout: float = 0.0,
    l2: float = 0.0,
    bias_l2: float | None = None,
    dtype: str | None = None,
    optimizer=None,
    last=None,
    loss=None,
):
    """The tests' one classifier: a finalized Dense(inputs, hidden)-ReLU-[Dropout]-Dense(hidden, classes)-`last`
    model with cross-entropy and categorical accuracy, built on `backend` (None: the current backend).

    Args:
        backend: The backend the model and every component are built on.
        inputs: The features per sample.
        hidden: The neurons of the hidden layer.
        classes: The outputs.
        dropout: The rate of a Dropout layer after the ReLU; 0 adds none.
        l2: The first Dense layer's L2 regularization of its weights (and of its biases, unless `bias_l2` is given).
        bias_l2: The first Dense layer's L2 regularization of its biases; None: `l2`.
        dtype: The Dense layers' dtype; None: nnx's default.
        optimizer: An optimizer, a function that makes one (called on `backend`), or None for
            Adam(0.02, decay 1e-3).
        last: The output activation class: Softmax unless given (with another one the accuracy is Regression's).
        loss: The loss class: CategoricalCrossentropy unless given.
    """
    last = last or nnx.Softmax
    with nnx.backends.use(backend):
        model = nnx.Model()
        model.add(
            nnx.Dense(inputs, hidden, weight_regularizer_l2=l2, bias_regularizer_l2=_or(bias_l2, l2), dtype=dtype)
        )
        model.add(nnx.ReLU())
        if dropout:
            model.add(nnx.Dropout(dropout))
        model.add(nnx.Dense(hidden, classes, dtype=dtype))
        model.add(last())
        if optimizer is None:
            optimizer = nnx.Adam(learning_rate=0.02, decay=1e-3)
        elif not isinstance(optimizer, nnx.optimizers.Optimizer):
            optimizer = optimizer()
        accuracy = nnx.metrics.Categorical() if last is nnx.Softmax else nnx.metrics.Regression()
        model.set(loss=(loss or nnx.CategoricalCrossentropy)(), optimizer=optimizer, accuracy=accuracy)
        model.finalize()
    return model


def _or(value, default):
    return default if value is None else value


# Bad input: what the test_validation_*.py files share -------------------------------------------------------------
# Each bad call must raise the documented exception, with a message that names the component, what it expected and
# the fix, and must leave the model as it was (parameters, optimizer state, iterations).

X3 = np.array([[0.1, 0.2], [0.3, -0.1], [-0.2, 0.4]])
LABELS = np.array([0, 1, 2])

# The fix a message suggests: nnx's messages end with an imperative after "; " or ". ", or list what to pass.
FIX = (
    r"(; |\. |: )(pass|Pass|convert|reshape|clean|relabel|round|give|Give|move|call|build|end the model|subclass|run|"
    r"register|lower|make them|fix|reload|try|cast|install|Install|scale)|must be one of|must be True or False|"
    r"must be an \(X, y\) pair|must be \(weights, biases\)"
)


small_classifier = functools.partial(
    spiral_classifier, hidden=4, optimizer=functools.partial(nnx.Adam, learning_rate=0.01)
)


def value_model(backend, kind: str, outputs: int = 1, optimizer=None) -> nnx.Model:
    """A regression (Linear + MSE) or binary (Sigmoid + BCE) model with `outputs` outputs."""
    regression = kind == "regression"
    with nnx.backends.use(backend):
        model = nnx.Model()
        model.add(nnx.Dense(2, 4))
        model.add(nnx.ReLU())
        model.add(nnx.Dense(4, outputs))
        model.add(nnx.Linear() if regression else nnx.Sigmoid())
        model.set(
            loss=nnx.MeanSquaredError() if regression else nnx.BinaryCrossentropy(),
            optimizer=optimizer or nnx.SGD(learning_rate=0.1, momentum=0.5),
            accuracy=nnx.metrics.Regression() if regression else nnx.metrics.Categorical(binary=True),
        )
        model.finalize()
    return model


def good_targets(kind: str, outputs: int = 1) -> np.ndarray:
    """Targets every backend takes: floats for regression, 0/1 integers for binary (float ones: a bug, below)."""
    targets = np.array([1, 0, 1]) if outputs == 1 else np.array([[1, 0], [0, 1], [1, 1]])
    return targets.astype(np.float64) if kind == "regression" else targets


def trained_classifier(backend) -> nnx.Model:
    """A classifier after one step, so the optimizer has state and iterations to keep."""
    model = small_classifier(backend)
    model.train(X3, LABELS, print_every=None)
    return model


def snapshot(model: nnx.Model) -> dict:
    """Host copies of everything a rejected call must leave alone."""
    to_numpy = model.backend.to_numpy
    layers = model.trainable_layers
    optimizer = model.optimizer
    return {
        "parameters": [(to_numpy(layer.weights), to_numpy(layer.biases)) for layer in layers],
        "iterations": None if optimizer is None else optimizer.iterations,
        "learning_rate": None if optimizer is None else optimizer.current_learning_rate,
        "state": None
        if optimizer is None
        else {
            (layers.index(layer), name): to_numpy(value)
            for layer, arrays in optimizer.state.items()
            for name, value in arrays.items()
        },
        "components": (model.loss, model.optimizer, model.accuracy, tuple(model.layers)),
    }


def fail(message: str) -> None:
    """A one-line failure: no traceback to render."""
    pytest.fail(message, pytrace=False)


def assert_raises(error, call) -> BaseException:
    """The exception `call()` raises, which must be an `error` (a class or a tuple of them)."""
    expected = " or ".join(cls.__name__ for cls in (error if isinstance(error, tuple) else (error,)))
    try:
        call()
    except Exception as caught:  # RuntimeWarnings turned into errors by filterwarnings=error included
        if isinstance(caught, error):
            return caught
        fail(f"expected {expected}, got {type(caught).__module__}.{type(caught).__name__}: {caught}")
    fail(f"expected {expected}, but nothing was raised")


def assert_same(before: dict, after: dict) -> None:
    changed = [
        f"parameters of trainable layer {index}"
        for index, ((w0, b0), (w1, b1)) in enumerate(zip(before["parameters"], after["parameters"], strict=True))
        if not (np.array_equal(w0, w1, equal_nan=True) and np.array_equal(b0, b1, equal_nan=True))
    ]
    changed += [name for name in ("iterations", "learning_rate") if before[name] != after[name]]
    if (before["state"] is None) != (after["state"] is None) or (
        before["state"] is not None
        and (
            before["state"].keys() != after["state"].keys()
            or not all(np.array_equal(v, after["state"][k], equal_nan=True) for k, v in before["state"].items())
        )
    ):
        changed.append("optimizer state")
    if not all(a is b for a, b in zip(before["components"][:3], after["components"][:3], strict=True)):
        changed.append("loss, optimizer or accuracy")
    if before["components"][3] != after["components"][3]:
        changed.append("layers")
    if changed:
        fail(f"the rejected call changed: {', '.join(changed)}")


def assert_message(error: BaseException, component: str, expected: str, fix: str = FIX) -> None:
    message = str(error)
    for what, pattern in (("component", component), ("expected/received", expected), ("fix", fix)):
        if not re.search(pattern, message):
            fail(f"{what} {pattern!r} not found in {type(error).__name__}: {message}")


def assert_rejects(model, error, component: str, expected: str, call, fix: str = FIX):
    """`call()` raises `error` with a good message and leaves `model` as it was."""
    before = snapshot(model)
    info = assert_raises(error, call)
    assert_message(info, component, expected, fix)
    assert_same(before, snapshot(model))
    return info


def strict_backend() -> nnx.backends.Backend:
    try:
        return nnx.backends.get("array_api_strict")
    except nnx.BackendUnavailableError as error:
        pytest.skip(str(error))


def foreign(backend, host):
    """`host` as an array of another backend than `backend` (not NumPy: a NumPy array is host data to a Model)."""
    strict = strict_backend()
    if backend is strict:
        return strict.xp.asarray(np.asarray(host), device=strict.xp.Device("CPU_DEVICE"))
    return strict.asarray(np.asarray(host))
