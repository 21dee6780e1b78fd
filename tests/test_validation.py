"""Bad input at every public edge, on every backend: the documented exception, a message that names the component,
what it expected and the fix, and nothing changed (parameters, optimizer state, iterations) by the rejected call.

A bug found here gets a test first (``xfail(strict=True)`` with a reason while it is open), then its fix.
"""

from __future__ import annotations

import gc
import math
import os
import re
import types

import numpy as np
import pytest

import nnx

X3 = np.array([[0.1, 0.2], [0.3, -0.1], [-0.2, 0.4]])
LABELS = np.array([0, 1, 2])

# The fix a message suggests: nnx's messages end with an imperative after "; " or ". ", or list what to pass.
FIX = (
    r"(; |\. |: )(pass|Pass|convert|reshape|clean|relabel|round|give|Give|move|call|build|end the model|subclass|run|"
    r"register|lower|make them|fix|reload|try|cast|install|Install)|must be one of|must be True or False|"
    r"must be an \(X, y\) pair|must be \(weights, biases\)"
)
NO_FIX = "the message says what was expected and received but gives no fix"


# Models and snapshots -------------------------------------------------------------------------------------------


def classifier(backend, *, hidden: int = 4, classes: int = 3) -> nnx.Model:
    with nnx.backends.use(backend):
        model = nnx.Model()
        model.add(nnx.Dense(2, hidden))
        model.add(nnx.ReLU())
        model.add(nnx.Dense(hidden, classes))
        model.add(nnx.Softmax())
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=nnx.Adam(learning_rate=0.01),
            accuracy=nnx.metrics.Categorical(),
        )
        model.finalize()
    return model


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
    model = classifier(backend)
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
    """A one-line failure: no traceback to render (most failures here are expected, in xfail tests)."""
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


def xfail_on(request, backend, backends: tuple[str, ...], reason: str) -> None:
    """Mark this run as a known bug on `backends` (strict: it must fail there)."""
    if backend.name in backends:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


# Inputs at the Model API ----------------------------------------------------------------------------------------

INPUT_CASES = [
    pytest.param(
        np.ones((0, 2)),
        ValueError,
        r"empty batch of shape \(0, 2\)",
        id="empty",
    ),
    pytest.param(np.array(1.0), ValueError, r"0-d array", id="0-d"),
    pytest.param(np.ones(2), ValueError, r"1-d array of shape \(2,\)", id="1-d"),
    pytest.param(
        np.ones((3, 2, 1)),
        ValueError,
        r"3-d array of shape \(3, 2, 1\)",
        id="3-d",
    ),
    pytest.param(np.ones((3, 2), dtype=bool), TypeError, r"dtype bool", id="bool"),
    pytest.param(np.ones((3, 2), dtype=complex), TypeError, r"dtype complex128", id="complex"),
    pytest.param(np.array([["a", "b"]] * 3, dtype=object), TypeError, r"dtype object", id="object"),
    pytest.param(np.array([["a", "b"]] * 3), TypeError, r"dtype <U1", id="str"),
    pytest.param(np.array([[np.nan, 1.0]] * 3), ValueError, r"3 NaN or infinite values", id="nan"),
    pytest.param(np.array([[1.0, np.inf]] * 3), ValueError, r"3 NaN or infinite values", id="inf"),
    pytest.param(np.ones((3, 5)), ValueError, r"2 features, got shape \(3, 5\)", id="features"),
    pytest.param([[1.0, 2.0], [1.0], [1.0, 2.0]], ValueError, r"could not be read as an array", id="ragged-list"),
    pytest.param(np.float64(1.0), TypeError, r"must be an array of backend", id="numpy-scalar"),
]


@pytest.mark.parametrize("api", ["train", "evaluate", "predict"])
@pytest.mark.parametrize(("X", "error", "expected"), INPUT_CASES)
def test_model_rejects_bad_inputs(backend, api, X, error, expected, capsys):
    model = trained_classifier(backend)
    calls = {
        "train": lambda: model.train(X, LABELS, print_every=1),
        "evaluate": lambda: model.evaluate(X, LABELS),
        "predict": lambda: model.predict(X),
    }
    assert_rejects(model, error, r"Dense\(2 -> 4\) at layer 0", expected, calls[api])
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("api", ["train", "evaluate", "predict"])
def test_model_rejects_inputs_of_another_backend(backend, api):
    model = trained_classifier(backend)
    X = foreign(backend, X3)
    calls = {
        "train": lambda: model.train(X, LABELS, print_every=None),
        "evaluate": lambda: model.evaluate(X, LABELS, verbose=False),
        "predict": lambda: model.predict(X),
    }
    assert_rejects(model, TypeError, r"Dense\(2 -> 4\) at layer 0", r"must be an array of backend", calls[api])


@pytest.mark.parametrize(
    "X",
    [
        pytest.param(X3.tolist(), id="list"),
        pytest.param(X3.astype(np.float16), id="float16"),
        pytest.param(X3.astype(np.float32), id="float32"),
        pytest.param(np.array([[1, 2], [3, 4], [5, 6]]), id="int64"),
        pytest.param(np.array([[1, 2], [3, 4], [5, 6]], dtype=np.uint8), id="uint8"),
    ],
)
def test_model_accepts_host_inputs_of_any_real_dtype(backend, X):
    model = classifier(backend)
    model.train(X, LABELS, epochs=2, print_every=None)
    model.evaluate(X, LABELS, verbose=False)
    predictions = model.predict(X)
    assert backend.owns(predictions)
    assert np.isfinite(backend.to_numpy(predictions)).all()


def test_float16_host_data_is_cast_on_the_host(backend):
    """A Model casts host float16 data itself; backend.asarray of float16 fails only where the backend has none."""
    half = X3.astype(np.float16)
    model = classifier(backend)
    model.train(half, LABELS, print_every=None)
    assert np.isfinite(backend.to_numpy(model.predict(half))).all()
    if hasattr(backend.xp, "float16"):
        layer = nnx.Dense(2, 3, xp=backend)
        layer.forward(backend.asarray(half))
        assert layer.output.dtype == backend.xp.float32
    else:
        with pytest.raises(TypeError, match=rf"backend '{backend.name}' has no float16 dtype.*astype\('float32'\)"):
            backend.asarray(half)


# Class labels at the Model API ----------------------------------------------------------------------------------

CLASS_LABEL_CASES = [
    pytest.param(np.array([0, 1, -1]), ValueError, r"class labels in \[0, 3\).*from -1 to 1", id="-1"),
    pytest.param(np.array([0, 1, 3]), ValueError, r"class labels in \[0, 3\).*from 0 to 3", id="n_classes"),
    pytest.param(np.array([0.0, 1.5, 2.0]), ValueError, r"1 non-integer or NaN", id="1.5"),
    pytest.param(np.array([0.0, np.nan, 2.0]), ValueError, r"1 non-integer or NaN", id="nan"),
    pytest.param(np.array([0.0, np.inf, 2.0]), ValueError, r"from 0 to inf", id="inf"),
    pytest.param(np.array([True, False, True]), TypeError, r"dtype bool", id="bool"),
    pytest.param(np.eye(3, dtype=bool), TypeError, r"dtype bool", id="one-hot-bool"),
    pytest.param(np.array(["0", "1", "2"]), TypeError, r"dtype <U1", id="str"),
    pytest.param(np.array([0, 1, 2], dtype=object), TypeError, r"dtype object", id="object"),
    pytest.param(np.array([0, 1, 2], dtype=complex), TypeError, r"dtype complex128", id="complex"),
    pytest.param(np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0]]), ValueError, r"one-hot rows.*1 rows", id="one-hot-11"),
    pytest.param(
        np.array([[0.5, 0.5, 0], [1, 0, 0], [0, 1, 0]]), ValueError, r"one-hot rows.*1 rows", id="one-hot-half"
    ),
    pytest.param(
        np.array([[np.nan, 1, 0], [1, 0, 0], [0, 1, 0]]), ValueError, r"one-hot rows.*1 rows", id="one-hot-nan"
    ),
    pytest.param(np.array([0, 1, 2, 0]), ValueError, r"targets for 3 samples, got shape \(4,\)", id="length"),
    pytest.param(np.array(1), ValueError, r"targets for 3 samples, got shape \(\)", id="0-d"),
    pytest.param(
        np.eye(4)[:3],
        ValueError,
        r"one-hot rows of shape \(n_samples, 3\), got shape \(3, 4\)",
        id="one-hot-width",
    ),
    pytest.param(
        np.zeros((3, 3, 1)),
        ValueError,
        r"got shape \(3, 3, 1\)",
        id="3-d",
    ),
    pytest.param([0, 1, 7], ValueError, r"from 0 to 7", id="list-range"),
    pytest.param([True, False, True], TypeError, r"dtype bool", id="list-bool"),
    pytest.param([0, [1], 2], ValueError, r"could not be read as an array", id="list-ragged"),
]


@pytest.mark.parametrize("api", ["train", "evaluate", "validation"])
@pytest.mark.parametrize(("y", "error", "expected"), CLASS_LABEL_CASES)
def test_model_rejects_bad_class_labels(backend, api, y, error, expected, capsys):
    model = trained_classifier(backend)
    calls = {
        "train": lambda: model.train(X3, y, print_every=1),
        "evaluate": lambda: model.evaluate(X3, y),
        "validation": lambda: model.train(X3, LABELS, print_every=1, validation_data=(X3, y)),
    }
    what = {"train": "training", "evaluate": "evaluation", "validation": "validation"}[api]
    assert_rejects(model, error, rf"CategoricalCrossentropy\(\) \({what} targets\)", expected, calls[api])
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("labels", "error", "expected"),
    [
        pytest.param([0, 1, 5], ValueError, r"from 0 to 5", id="range"),
        pytest.param([0.0, 1.5, 2.0], ValueError, r"non-integer", id="1.5"),
        pytest.param([True, False, True], TypeError, r"dtype .*bool", id="bool"),
    ],
)
def test_model_rejects_bad_labels_on_its_backend(backend, labels, error, expected):
    model = trained_classifier(backend)
    y = backend.asarray(np.array(labels))
    assert_rejects(
        model,
        error,
        r"CategoricalCrossentropy\(\) \(training targets\)",
        expected,
        lambda: model.train(X3, y, print_every=None),
    )


def test_model_rejects_labels_of_another_backend(backend):
    model = trained_classifier(backend)
    y = foreign(backend, LABELS)
    assert_rejects(
        model,
        TypeError,
        r"CategoricalCrossentropy\(\) \(training targets\)",
        r"must be an array of backend",
        lambda: model.train(X3, y, print_every=None),
    )


@pytest.mark.parametrize(
    "make_labels",
    [
        pytest.param(lambda backend: LABELS, id="numpy"),
        pytest.param(lambda backend: LABELS.astype(np.uint8), id="uint8"),
        pytest.param(lambda backend: LABELS.astype(np.float64), id="integer-floats"),
        pytest.param(lambda backend: [0, 1, 2], id="list"),
        pytest.param(lambda backend: np.eye(3), id="one-hot"),
        pytest.param(lambda backend: np.eye(3, dtype=np.int64), id="one-hot-int"),
        pytest.param(lambda backend: backend.asarray(LABELS), id="backend"),
        pytest.param(lambda backend: backend.asarray(np.eye(3), dtype="float32"), id="backend-one-hot"),
    ],
)
def test_model_accepts_class_labels_in_every_form(backend, make_labels):
    model = classifier(backend)
    y = make_labels(backend)
    result = model.train(X3, y, epochs=2, print_every=None, validation_data=(X3, y))
    assert np.isfinite(result["loss"]) and 0 <= result["val_accuracy"] <= 1
    assert model.optimizer.iterations == 2


# Regression and binary targets at the Model API ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["regression", "binary"])
def test_model_value_targets_must_match_the_outputs(backend, kind):
    one, two = value_model(backend, kind, 1), value_model(backend, kind, 2)
    loss = r"(MeanSquaredError|BinaryCrossentropy)\(\) \(training targets\)"
    assert_rejects(
        one,
        ValueError,
        loss,
        r"shape \(3, 1\) like the outputs, got \(3, 2\); reshape",
        lambda: one.train(X3, np.zeros((3, 2)), print_every=None),
    )
    assert_rejects(
        two,
        ValueError,
        loss,
        r"targets for 3 samples, got shape \(6,\)",
        lambda: two.train(X3, np.zeros(6), print_every=None),
    )
    assert_rejects(
        one,
        ValueError,
        loss,
        r"targets for 3 samples, got shape \(6,\)",
        lambda: one.train(X3, np.zeros(6), print_every=None),
    )
    targets = good_targets(kind)
    for y in (targets, targets.reshape(-1, 1), targets.tolist(), backend.asarray(targets)):
        assert np.isfinite(one.train(X3, y, print_every=None)["loss"])
    assert np.isfinite(two.train(X3, good_targets(kind, 2), print_every=None)["loss"])


@pytest.mark.parametrize("kind", ["regression", "binary"])
def test_model_value_targets_for_two_outputs_name_the_fix(backend, kind):
    two = value_model(backend, kind, 2)
    assert_rejects(
        two,
        ValueError,
        r"\(training targets\)",
        r"shape \(3, 2\) like the outputs, got \(3,\)",
        lambda: two.train(X3, np.zeros(3), print_every=None),
    )


@pytest.mark.parametrize(
    ("y", "error", "expected"),
    [
        pytest.param(np.array([0.0, np.nan, 1.0]), ValueError, r"1 NaN or infinite value", id="nan"),
        pytest.param(np.array([0.0, np.inf, 1.0]), ValueError, r"1 NaN or infinite value", id="inf"),
        pytest.param(np.array([True, False, True]), TypeError, r"dtype bool", id="bool"),
        pytest.param(np.array(["a", "b", "c"]), TypeError, r"dtype <U1", id="str"),
        pytest.param(np.array([0, 1, 2], dtype=complex), TypeError, r"dtype complex128", id="complex"),
    ],
)
@pytest.mark.parametrize("kind", ["regression", "binary"])
def test_model_rejects_bad_value_targets(backend, kind, y, error, expected):
    model = value_model(backend, kind)
    model.train(X3, good_targets(kind), print_every=None)
    assert_rejects(model, error, r"\(training targets\)", expected, lambda: model.train(X3, y, print_every=None))


@pytest.mark.parametrize(
    ("kind", "y"),
    [
        pytest.param("binary", np.array([1.0, 0.0, 1.0]), id="binary-float-targets"),
        pytest.param("regression", np.array([1, 0, 2]), id="regression-int-targets"),
    ],
)
def test_value_targets_of_any_real_dtype_train(request, backend, kind, y):
    model = value_model(backend, kind)
    assert np.isfinite(model.train(X3, y, print_every=None)["loss"])
    assert np.isfinite(model.evaluate(X3, y, verbose=False)[0])


# Inputs at the layer and loss API -------------------------------------------------------------------------------


def layer_calls(backend):
    """(label, component regex, call(x), state()) for each layer-level entry point that takes a batch."""
    dense = nnx.Dense(2, 3, xp=backend)
    relu = nnx.ReLU(xp=backend)
    loss = nnx.CategoricalCrossentropy(xp=backend)
    fused = nnx.SoftmaxCategoricalCrossentropy(xp=backend)
    labels = backend.asarray(np.array([0, 1, 1]))
    good = backend.asarray(X3, dtype="float32")
    for layer in (dense, relu):
        layer.forward(good)
    loss.calculate(backend.asarray(np.full((3, 2), 0.5), dtype="float32"), labels)

    def dense_state():
        return (backend.to_numpy(dense.weights), backend.to_numpy(dense.biases), id(dense.output), id(dense.inputs))

    return {
        "Dense.forward": (r"Dense\(2 -> 3\)", dense.forward, dense_state),
        "ReLU.forward": (r"ReLU\(\)", relu.forward, lambda: (id(relu.output), id(relu.inputs))),
        "CategoricalCrossentropy.calculate": (
            r"CategoricalCrossentropy\(\)",
            lambda x: loss.calculate(x, labels),
            lambda: (loss.accumulated_count, float(backend.to_numpy(loss.accumulated_sum))),
        ),
        "SoftmaxCategoricalCrossentropy.forward": (r"Softmax\(\)", lambda x: fused.forward(x, labels), lambda: None),
    }


LAYER_INPUT_CASES = [
    pytest.param(
        lambda b: b.asarray(np.ones((0, 2))),
        ValueError,
        r"empty batch",
        id="empty",
    ),
    pytest.param(lambda b: b.asarray(np.array(1.0)), ValueError, r"0-d array", id="0-d"),
    pytest.param(lambda b: b.asarray(np.ones(2)), ValueError, r"1-d array", id="1-d"),
    pytest.param(
        lambda b: b.asarray(np.ones((3, 2, 1))),
        ValueError,
        r"3-d array",
        id="3-d",
    ),
    pytest.param(lambda b: b.asarray(np.ones((3, 2), dtype=bool)), TypeError, r"dtype .*bool", id="bool"),
    pytest.param(lambda b: b.asarray(np.ones((3, 2), dtype=complex)), TypeError, r"dtype .*complex", id="complex"),
    pytest.param(lambda b: b.asarray(np.array([[np.nan, 1.0]] * 3)), ValueError, r"3 NaN or infinite", id="nan"),
    pytest.param(lambda b: b.asarray(np.array([[-np.inf, 1.0]] * 3)), ValueError, r"3 NaN or infinite", id="inf"),
    pytest.param(lambda b: X3.tolist(), TypeError, r"must be an array of backend", id="list"),
    pytest.param(lambda b: foreign(b, X3), TypeError, r"must be an array of backend", id="other-backend"),
]


@pytest.mark.parametrize(
    "api",
    ["Dense.forward", "ReLU.forward", "CategoricalCrossentropy.calculate", "SoftmaxCategoricalCrossentropy.forward"],
)
@pytest.mark.parametrize(("make", "error", "expected"), LAYER_INPUT_CASES)
def test_layers_reject_bad_inputs(backend, api, make, error, expected):
    component, call, state = layer_calls(backend)[api]
    x = make(backend)
    before = state()
    info = assert_raises(error, lambda: call(x))
    assert_message(info, component, expected)
    if before is not None:
        for old, new in zip(before, state(), strict=True):
            np.testing.assert_array_equal(new, old)


@pytest.mark.parametrize(
    ("make", "component"),
    [
        pytest.param(lambda b: nnx.ReLU(xp=b).forward, r"ReLU\(\)", id="ReLU"),
        pytest.param(lambda b: nnx.Softmax(xp=b).forward, r"Softmax\(\)", id="Softmax"),
        pytest.param(lambda b: nnx.Sigmoid(xp=b).forward, r"Sigmoid\(\)", id="Sigmoid"),
        pytest.param(lambda b: nnx.Linear(xp=b).forward, r"Linear\(\)", id="Linear"),
        pytest.param(lambda b: nnx.Dropout(0.5, xp=b).forward, r"Dropout\(0\.5\)", id="Dropout"),
        pytest.param(
            lambda b: lambda x: nnx.accuracy(x, b.asarray(np.zeros(3, dtype=np.int64))), r"nnx\.accuracy", id="accuracy"
        ),
    ],
)
def test_batches_without_features_are_refused(backend, make, component):
    info = assert_raises(ValueError, lambda: make(backend)(backend.asarray(np.ones((3, 0)))))
    assert_message(info, component, r"feature")


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: np.array([["a", "b"]] * 3, dtype=object), id="object"),
        pytest.param(lambda: np.array([["a", "b"]] * 3), id="str"),
    ],
)
def test_numpy_layers_reject_non_numeric_dtypes(numpy_backend, make):
    for layer in (nnx.Dense(2, 3, xp=numpy_backend), nnx.ReLU(xp=numpy_backend), nnx.Softmax(xp=numpy_backend)):
        info = assert_raises(TypeError, lambda layer=layer: layer.forward(make()))
        assert_message(info, re.escape(repr(layer)), r"real numbers, got dtype")


def test_host_numpy_inputs_are_foreign_to_device_layers(backend):
    if backend.name == "numpy":
        pytest.skip("NumPy arrays are the numpy backend's own arrays")
    layer = nnx.Dense(2, 3, xp=backend)
    info = assert_raises(TypeError, lambda: layer.forward(X3))
    assert_message(info, r"Dense\(2 -> 3\) inputs", rf"backend '{backend.name}'.*got numpy\.ndarray")


# Class labels at the loss and metric API ------------------------------------------------------------------------

LOSS_LABEL_CASES = [
    pytest.param([0, 1, -1], ValueError, r"class labels in \[0, 3\).*from -1", id="-1"),
    pytest.param([0, 1, 3], ValueError, r"class labels in \[0, 3\).*to 3", id="n_classes"),
    pytest.param([0.0, 1.5, 2.0], ValueError, r"non-integer", id="1.5"),
    pytest.param([0.0, np.nan, 2.0], ValueError, r"non-integer or NaN", id="nan"),
    pytest.param([True, False, True], TypeError, r"dtype .*bool", id="bool"),
    pytest.param([[1, 1, 0], [1, 0, 0], [0, 1, 0]], ValueError, r"one-hot rows", id="one-hot-11"),
    pytest.param([[0.5, 0.5, 0], [1, 0, 0], [0, 1, 0]], ValueError, r"one-hot rows", id="one-hot-half"),
    pytest.param([0, 1, 2, 0], ValueError, r"targets for 3 samples", id="length"),
    pytest.param(
        np.eye(4)[:3],
        ValueError,
        r"got shape \(3, 4\)",
        id="one-hot-width",
    ),
]


def loss_label_calls(backend):
    probabilities = backend.asarray(np.full((3, 3), 1 / 3), dtype="float32")
    logits = backend.asarray(np.zeros((3, 3)), dtype="float32")
    loss = nnx.CategoricalCrossentropy(xp=backend)
    fused = nnx.SoftmaxCategoricalCrossentropy(xp=backend)
    return {
        "CategoricalCrossentropy.calculate": lambda y: loss.calculate(probabilities, y),
        "CategoricalCrossentropy.backward": lambda y: loss.backward(probabilities, y),
        "SoftmaxCategoricalCrossentropy.forward": lambda y: fused.forward(logits, y),
        "SoftmaxCategoricalCrossentropy.backward": lambda y: fused.backward(probabilities, y),
    }, (loss, fused.loss)


@pytest.mark.parametrize(
    "api",
    [
        "CategoricalCrossentropy.calculate",
        "CategoricalCrossentropy.backward",
        "SoftmaxCategoricalCrossentropy.forward",
        "SoftmaxCategoricalCrossentropy.backward",
    ],
)
@pytest.mark.parametrize(("labels", "error", "expected"), LOSS_LABEL_CASES)
def test_losses_reject_bad_class_labels(backend, api, labels, error, expected):
    calls, losses = loss_label_calls(backend)
    y = backend.asarray(np.array(labels))
    info = assert_raises(error, lambda: calls[api](y))
    assert_message(info, r"CategoricalCrossentropy\(\)", expected)
    assert all(loss.accumulated_count == 0 for loss in losses)


@pytest.mark.parametrize(
    "api",
    [
        "CategoricalCrossentropy.calculate",
        "SoftmaxCategoricalCrossentropy.forward",
        "SoftmaxCategoricalCrossentropy.backward",
    ],
)
def test_losses_take_labels_only_from_their_backend(backend, api):
    calls, _ = loss_label_calls(backend)
    for y in ([0, 1, 2], foreign(backend, LABELS)) + ((LABELS,) if backend.name != "numpy" else ()):
        info = assert_raises(TypeError, lambda y=y: calls[api](y))
        assert_message(info, r"CategoricalCrossentropy\(\) targets", rf"backend '{backend.name}'")


def test_losses_accept_labels_and_one_hot_rows(backend):
    calls, _ = loss_label_calls(backend)
    for y in (np.array([0, 1, 2]), np.array([0, 1, 2], dtype=np.uint8), np.array([0.0, 1.0, 2.0]), np.eye(3)):
        for call in calls.values():
            result = call(backend.asarray(y))
            assert result is None or np.isfinite(backend.to_numpy(result)).all()


ACCURACY_BAD_LABELS = [
    pytest.param([0, 1, -1], ValueError, r"\[0, 3\)", id="-1"),
    pytest.param([0, 1, 3], ValueError, r"\[0, 3\)", id="n_classes"),
    pytest.param([0.0, 1.5, 2.0], ValueError, r"integer", id="1.5"),
    pytest.param([0.0, np.nan, 2.0], ValueError, r"NaN", id="nan"),
    pytest.param([True, False, True], TypeError, r"bool", id="bool"),
    pytest.param([[1, 1, 0], [1, 0, 0], [0, 0, 1]], ValueError, r"one-hot", id="one-hot-11"),
]


@pytest.mark.parametrize(("labels", "error", "expected"), ACCURACY_BAD_LABELS)
def test_accuracy_rejects_bad_label_values(backend, labels, error, expected):
    outputs = backend.asarray(np.eye(3), dtype="float32")
    info = assert_raises(error, lambda: nnx.accuracy(outputs, backend.asarray(np.array(labels))))
    assert_message(info, r"nnx\.accuracy", expected)


def test_accuracy_rejects_labels_that_are_not_arrays_of_its_backend(backend):
    outputs = backend.asarray(np.eye(3), dtype="float32")
    for y in ([0, 1, 2], foreign(backend, LABELS)):
        info = assert_raises(TypeError, lambda y=y: nnx.accuracy(outputs, y))
        assert_message(info, r"nnx\.accuracy", r"backend|array")


def test_accuracy_rejects_bad_shapes(backend):
    outputs = backend.asarray(np.eye(3), dtype="float32")
    for y, expected in (([0, 1, 2, 0], r"labels for 3 samples"), (np.array(1), r"labels for 3 samples")):
        info = assert_raises(ValueError, lambda y=y: nnx.accuracy(outputs, backend.asarray(np.array(y))))
        assert_message(info, r"nnx\.accuracy", expected)
    info = assert_raises(ValueError, lambda: nnx.accuracy(backend.asarray(np.ones(3)), backend.asarray(LABELS)))
    assert_message(info, r"nnx\.accuracy", r"1-d array")
    assert float(backend.to_numpy(nnx.accuracy(outputs, backend.asarray(np.eye(3))))) == 1.0


@pytest.mark.parametrize(
    ("outputs", "labels"),
    [
        pytest.param(np.eye(3), np.eye(4)[:3], id="one-hot-width"),
        pytest.param(np.ones((0, 3)), np.zeros(0, dtype=np.int64), id="empty"),
    ],
)
def test_accuracy_shape_errors_name_the_fix(backend, outputs, labels):
    info = assert_raises(ValueError, lambda: nnx.accuracy(backend.asarray(outputs), backend.asarray(labels)))
    assert_message(info, r"nnx\.accuracy", r"got")


# Value targets at the loss and metric API -----------------------------------------------------------------------

VALUE_LOSSES = [nnx.MeanSquaredError, nnx.MeanAbsoluteError, nnx.BinaryCrossentropy]


@pytest.mark.parametrize("loss_class", VALUE_LOSSES, ids=lambda cls: cls.__name__)
def test_value_losses_check_target_shapes(backend, loss_class):
    loss = loss_class(xp=backend)
    one = backend.asarray(np.full((3, 1), 0.5), dtype="float32")
    two = backend.asarray(np.full((3, 2), 0.5), dtype="float32")
    component = re.escape(repr(loss))
    for predictions, y, expected in (
        (one, np.zeros((3, 2)), r"shape \(3, 1\) like the outputs, got \(3, 2\); reshape"),
        (two, np.zeros(6), r"targets for 3 samples, got shape \(6,\)"),
        (one, np.zeros(6), r"targets for 3 samples, got shape \(6,\)"),
    ):
        info = assert_raises(
            ValueError, lambda predictions=predictions, y=y: loss.calculate(predictions, backend.asarray(y))
        )
        assert_message(info, component, expected)
    assert loss.accumulated_count == 0
    assert np.isfinite(float(backend.to_numpy(loss.calculate(one, backend.asarray(np.array([0.0, 1.0, 1.0]))))))
    loss.backward(one, backend.asarray(np.array([0.0, 1.0, 1.0])))
    assert tuple(loss.dinputs.shape) == (3, 1)


@pytest.mark.parametrize(
    ("y", "error", "expected"),
    [
        pytest.param(np.array([[0.0], [np.nan], [1.0]]), ValueError, r"1 NaN or infinite value", id="nan"),
        pytest.param(np.array([[0.0], [np.inf], [1.0]]), ValueError, r"1 NaN or infinite value", id="inf"),
        pytest.param(np.array([[True], [False], [True]]), TypeError, r"dtype .*bool", id="bool"),
        pytest.param(np.array([[1], [0], [1]], dtype=complex), TypeError, r"dtype .*complex", id="complex"),
    ],
)
@pytest.mark.parametrize("loss_class", VALUE_LOSSES, ids=lambda cls: cls.__name__)
def test_value_losses_reject_bad_targets(backend, loss_class, y, error, expected):
    loss = loss_class(xp=backend)
    predictions = backend.asarray(np.full((3, 1), 0.5), dtype="float32")
    for call in (loss.calculate, loss.backward):
        info = assert_raises(error, lambda call=call: call(predictions, backend.asarray(y)))
        assert_message(info, re.escape(repr(loss)), expected)
    assert loss.accumulated_count == 0
    info = assert_raises(TypeError, lambda: loss.calculate(predictions, [[0.0], [1.0], [1.0]]))
    assert_message(info, re.escape(repr(loss)), rf"backend '{backend.name}'")


@pytest.mark.parametrize("loss_class", VALUE_LOSSES, ids=lambda cls: cls.__name__)
def test_value_losses_two_output_shape_error_names_the_fix(backend, loss_class):
    loss = loss_class(xp=backend)
    info = assert_raises(
        ValueError,
        lambda: loss.calculate(backend.asarray(np.full((3, 2), 0.5), dtype="float32"), backend.asarray(np.zeros(3))),
    )
    assert_message(info, re.escape(repr(loss)), r"shape \(3, 2\)")


@pytest.mark.parametrize("loss_class", VALUE_LOSSES[:2], ids=lambda cls: cls.__name__)
def test_value_losses_never_cast_targets_to_integer_predictions(backend, loss_class):
    loss = loss_class(xp=backend)
    targets = backend.asarray(np.array([[0.5], [0.25]]))
    reference = loss_class(xp=backend).calculate(backend.asarray(np.array([[0.0], [1.0]])), targets)
    expected = float(backend.to_numpy(reference))
    try:
        value = float(backend.to_numpy(loss.calculate(backend.asarray(np.array([[0], [1]])), targets)))
    except TypeError as error:  # refusing integer predictions is fine, if the message says so
        assert_message(error, re.escape(repr(loss)), r"predictions|dtype")
        return
    except Exception as error:
        fail(f"{type(error).__name__}: {error}")
    if not math.isclose(value, expected, rel_tol=1e-6):
        fail(f"{loss!r} of integer predictions gave {value}; the same float predictions give {expected}")


def test_regression_metric_checks_shapes_and_order(backend):
    metric = nnx.metrics.Regression(xp=backend)
    one = backend.asarray(np.zeros((3, 1)), dtype="float32")
    info = assert_raises(nnx.CallOrderError, lambda: metric.calculate(one, backend.asarray(np.zeros(3))))
    assert_message(info, r"Regression\(\)", r"no precision yet", r"call init\(y\) first")
    metric.init(backend.asarray(np.array([0.0, 1.0, 2.0])))
    for predictions, y, expected in (
        (one, np.zeros((3, 2)), r"predictions \(3, 1\), got \(3, 2\)"),
        (one, np.zeros(6), r"predictions \(3, 1\), got \(6,\)"),
        (backend.asarray(np.zeros((3, 2)), dtype="float32"), np.zeros(6), r"predictions \(3, 2\), got \(6,\)"),
        (backend.asarray(np.zeros((3, 2)), dtype="float32"), np.zeros(3), r"predictions \(3, 2\), got \(3,\)"),
    ):
        info = assert_raises(
            ValueError, lambda predictions=predictions, y=y: metric.calculate(predictions, backend.asarray(y))
        )
        assert_message(info, r"Regression\(\)", expected, r"pass one target per output")
    assert metric.accumulated_count == 0
    assert float(backend.to_numpy(metric.calculate(one, backend.asarray(np.zeros(3))))) == 1.0


@pytest.mark.parametrize("api", ["init", "calculate"])
def test_regression_metric_rejects_nan_targets(backend, api):
    metric = nnx.metrics.Regression(xp=backend)
    y = backend.asarray(np.array([0.0, np.nan, 2.0]))
    if api == "calculate":
        metric.init(backend.asarray(np.array([0.0, 1.0, 2.0])))
    info = assert_raises(
        ValueError,
        lambda: (
            metric.init(y, reinit=True) if api == "init" else metric.calculate(backend.asarray(np.zeros((3, 1))), y)
        ),
    )
    assert_message(info, r"Regression\(\)", r"NaN")


@pytest.mark.parametrize("metric_class", [nnx.metrics.Regression, nnx.metrics.Categorical])
def test_metrics_reject_targets_that_are_not_arrays_of_their_backend(backend, metric_class):
    metric = metric_class(xp=backend)
    predictions = backend.asarray(np.zeros((3, 1)), dtype="float32")
    metric.init(backend.asarray(np.array([0.0, 1.0, 2.0])))
    others = [[0.0, 1.0, 2.0], foreign(backend, np.zeros(3))] + ([np.zeros(3)] if backend.name != "numpy" else [])
    for y in others:
        info = assert_raises(TypeError, lambda y=y: metric.calculate(predictions, y))
        assert_message(info, re.escape(repr(metric)), rf"backend '{backend.name}'")


def test_binary_accuracy_never_broadcasts(backend):
    metric = nnx.metrics.Categorical(binary=True, xp=backend)
    predictions = backend.asarray(np.zeros((3, 2), dtype=np.int64))
    targets = backend.asarray(np.zeros(6, dtype=np.int64))
    info = assert_raises(ValueError, lambda: metric.calculate(predictions, targets))
    assert_message(info, r"Categorical\(\)", r"predictions \(3, 2\), got \(6,\)", r"pass one target per output")


@pytest.mark.parametrize("api", ["BinaryCrossentropy.calculate", "Model.train"])
def test_binary_targets_outside_0_1_are_refused(backend, api):
    y = np.array([[2], [0], [-1]])  # integers: float binary targets hit another (array_api_strict) bug
    if api == "Model.train":
        model = value_model(backend, "binary")
        info = assert_rejects(
            model, ValueError, r"BinaryCrossentropy\(\)", r"\[0, 1\]", lambda: model.train(X3, y, print_every=None)
        )
    else:
        loss = nnx.BinaryCrossentropy(xp=backend)
        probabilities = backend.asarray(np.full((3, 1), 0.5), dtype="float32")
        info = assert_raises(ValueError, lambda: loss.calculate(probabilities, backend.asarray(y)))
    assert_message(info, r"BinaryCrossentropy\(\)", r"\[0, 1\]")


# Hyperparameters --------------------------------------------------------------------------------------------------

# (owner, parameter, build(value), component regex, kind)
HYPERPARAMETERS = [
    ("SGD", "learning_rate", lambda v: nnx.SGD(learning_rate=v), "positive"),
    ("SGD", "decay", lambda v: nnx.SGD(decay=v), "non_negative"),
    ("SGD", "momentum", lambda v: nnx.SGD(momentum=v), "fraction"),
    ("Adagrad", "learning_rate", lambda v: nnx.Adagrad(learning_rate=v), "positive"),
    ("Adagrad", "epsilon", lambda v: nnx.Adagrad(epsilon=v), "positive"),
    ("RMSprop", "rho", lambda v: nnx.RMSprop(rho=v), "fraction"),
    ("RMSprop", "epsilon", lambda v: nnx.RMSprop(epsilon=v), "positive"),
    ("Adam", "beta_1", lambda v: nnx.Adam(beta_1=v), "fraction"),
    ("Adam", "beta_2", lambda v: nnx.Adam(beta_2=v), "fraction"),
    ("Adam", "epsilon", lambda v: nnx.Adam(epsilon=v), "positive"),
    ("Adam", "decay", lambda v: nnx.Adam(decay=v), "non_negative"),
    ("Dense", "n_inputs", lambda v: nnx.Dense(v, 3), "positive_int"),
    ("Dense", "n_neurons", lambda v: nnx.Dense(2, v), "positive_int"),
    ("Dense(2 -> 3)", "weight_regularizer_l1", lambda v: nnx.Dense(2, 3, weight_regularizer_l1=v), "non_negative"),
    ("Dense(2 -> 3)", "weight_regularizer_l2", lambda v: nnx.Dense(2, 3, weight_regularizer_l2=v), "non_negative"),
    ("Dense(2 -> 3)", "bias_regularizer_l1", lambda v: nnx.Dense(2, 3, bias_regularizer_l1=v), "non_negative"),
    ("Dense(2 -> 3)", "bias_regularizer_l2", lambda v: nnx.Dense(2, 3, bias_regularizer_l2=v), "non_negative"),
    ("Dense(2 -> 3)", "weight_scale", lambda v: nnx.Dense(2, 3, weight_scale=v), "non_negative"),
    ("Dropout", "rate", lambda v: nnx.Dropout(v), "fraction"),
    ("Regression", "precision_divisor", lambda v: nnx.metrics.Regression(precision_divisor=v), "positive"),
]

# value -> the exception each kind of check raises for it (None: accepted)
BAD_VALUES = {
    "inf": (float("inf"), {"*": ValueError}),
    "nan": (float("nan"), {"*": ValueError}),
    "-1": (-1, {"*": ValueError}),
    "0": (0, {"positive": ValueError, "positive_int": ValueError, "non_negative": None, "fraction": None}),
    "1.0": (1.0, {"fraction": ValueError, "positive_int": ValueError, "*": None}),
    "1.5": (1.5, {"fraction": ValueError, "positive_int": ValueError, "*": None}),
    "str": ("0.1", {"*": TypeError}),
    "bool": (True, {"*": TypeError}),
    "None": (None, {"*": TypeError}),
    "complex": (1 + 0j, {"*": TypeError}),
    "list": ([0.1], {"*": TypeError}),
}


def _expected(kind: str, table: dict):
    return table.get(kind, table.get("*"))


@pytest.mark.parametrize("value_id", list(BAD_VALUES))
@pytest.mark.parametrize(
    ("owner", "name", "build", "kind"),
    HYPERPARAMETERS,
    ids=[f"{o.split('(')[0]}.{n}" for o, n, _, _ in HYPERPARAMETERS],
)
def test_hyperparameters_are_checked(backend, owner, name, build, kind, value_id):
    value, table = BAD_VALUES[value_id]
    error = _expected(kind, table)
    with nnx.backends.use(backend):
        if error is None:
            build(value)
            return
        info = assert_raises(error, lambda: build(value))
    assert_message(info, re.escape(owner) + r"(?![A-Za-z])", re.escape(name), FIX)


@pytest.mark.parametrize(
    ("owner", "name", "build", "kind"),
    HYPERPARAMETERS,
    ids=[f"{o.split('(')[0]}.{n}" for o, n, _, _ in HYPERPARAMETERS],
)
def test_numpy_scalars_are_accepted_like_python_numbers(backend, owner, name, build, kind):
    values = {
        "positive_int": (np.int64(3), np.int32(3), np.uint8(3)),
        "fraction": (np.float32(0.5), np.float64(0.5), np.int64(0)),
    }.get(kind, (np.float32(0.1), np.float64(0.1), np.int64(3)))
    with nnx.backends.use(backend):
        for value in values:
            component = build(value)
            stored = getattr(component, name, None)
            if name == "rate":
                stored = 1 - component.rate  # Dropout keeps the book's keep-probability
            assert stored == pytest.approx(float(value)), (name, value, stored)
            assert type(stored) in (int, float)


@pytest.mark.parametrize("value", [1, 0, "True", None, 1.0, np.float64(1.0)])
def test_binary_flag_must_be_a_bool(backend, value):
    info = assert_raises(TypeError, lambda: nnx.metrics.Categorical(binary=value, xp=backend))
    assert_message(info, r"Categorical", r"binary", r"must be True or False")
    assert nnx.metrics.Categorical(binary=False, xp=backend).binary is False


def test_binary_flag_accepts_a_numpy_bool(backend):
    assert nnx.metrics.Categorical(binary=np.bool_(True), xp=backend).binary is True


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda v: nnx.SGD(learning_rate=v), id="SGD.learning_rate"),
        pytest.param(lambda v: nnx.Adam(beta_1=v), id="Adam.beta_1"),
        pytest.param(lambda v: nnx.Dense(2, 3, weight_scale=v), id="Dense.weight_scale"),
        pytest.param(lambda v: nnx.Dropout(v), id="Dropout.rate"),
        pytest.param(lambda v: nnx.metrics.Regression(precision_divisor=v), id="Regression.precision_divisor"),
    ],
)
def test_integers_beyond_the_float_range_are_value_errors(backend, build):
    with nnx.backends.use(backend):
        info = assert_raises(ValueError, lambda: build(10**400))
    assert_message(info, r"SGD|Adam|Dense|Dropout|Regression", r"finite number")


NOT_POSITIVE_INTS = {
    "0": (0, ValueError),
    "-1": (-1, ValueError),
    "1.5": (1.5, ValueError),
    "inf": (float("inf"), ValueError),
    "nan": (float("nan"), ValueError),
    "str": ("3", TypeError),
    "bool": (True, TypeError),
}
OPTIONAL = ("0", "None")  # print_every accepts 0 and None (print nothing); batch_size accepts None
TRAIN_ARGUMENTS = {
    "epochs": {**NOT_POSITIVE_INTS, "None": (None, TypeError)},
    "batch_size": NOT_POSITIVE_INTS,
    "print_every": {key: case for key, case in NOT_POSITIVE_INTS.items() if key not in OPTIONAL},
    "check_every": {**NOT_POSITIVE_INTS, "None": (None, TypeError)},
    "on_divergence": {"unknown": ("explode", ValueError), "upper": ("RAISE", ValueError)},
}
TRAIN_CASES = [
    pytest.param(name, value, error, id=f"{name}={value_id}")
    for name, cases in TRAIN_ARGUMENTS.items()
    for value_id, (value, error) in cases.items()
]


@pytest.mark.parametrize(("name", "value", "error"), TRAIN_CASES)
def test_train_arguments_are_checked_before_training(backend, name, value, error, capsys):
    model = trained_classifier(backend)
    assert_rejects(model, error, r"Model\.train", re.escape(name), lambda: model.train(X3, LABELS, **{name: value}))
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("value", [0, -1, 1.5, "1", True, None])
def test_checkpoint_every_is_checked_with_a_checkpoint(backend, tmp_path, value, capsys):
    model = trained_classifier(backend)
    error = TypeError if isinstance(value, (str, bool)) or value is None else ValueError
    assert_rejects(
        model,
        error,
        r"Model\.train",
        r"checkpoint_every",
        lambda: model.train(X3, LABELS, checkpoint=tmp_path / "run.nnx", checkpoint_every=value),
    )
    assert capsys.readouterr().out == ""
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("value", [0, -1, "1", None])
def test_checkpoint_every_is_checked_without_a_checkpoint(backend, value):
    model = trained_classifier(backend)
    assert_rejects(
        model,
        (TypeError, ValueError),
        r"Model\.train",
        r"checkpoint_every",
        lambda: model.train(X3, LABELS, print_every=None, checkpoint_every=value),
    )


@pytest.mark.parametrize("value", [False, "", 0.0, []])
def test_falsy_print_every_values_are_rejected(backend, value):
    model = trained_classifier(backend)
    assert_rejects(
        model,
        (TypeError, ValueError),
        r"Model\.train",
        r"print_every",
        lambda: model.train(X3, LABELS, print_every=value),
    )


def test_callbacks_must_be_a_list_of_callbacks(backend, capsys):
    model = trained_classifier(backend)
    assert_rejects(model, TypeError, r"Model\.train", r"callbacks", lambda: model.train(X3, LABELS, callbacks=5))
    assert capsys.readouterr().out == ""
    model.train(X3, LABELS, callbacks=None, print_every=None)  # None means none, like ()


@pytest.mark.parametrize(
    ("api", "name"),
    [("evaluate", "batch_size"), ("predict", "batch_size")],
)
@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-2, ValueError), (1.5, ValueError), ("2", TypeError), (True, TypeError)]
)
def test_evaluate_and_predict_batch_size_is_checked(backend, api, name, value, error):
    model = trained_classifier(backend)
    call = {
        "evaluate": lambda: model.evaluate(X3, LABELS, batch_size=value, verbose=False),
        "predict": lambda: model.predict(X3, batch_size=value),
    }[api]
    assert_rejects(model, error, rf"Model\.{api}", name, call)


def test_numpy_scalars_are_accepted_by_train(backend, tmp_path, capsys):
    model = classifier(backend)
    result = model.train(
        X3,
        LABELS,
        epochs=np.int64(2),
        batch_size=np.int32(2),
        print_every=np.int64(1),
        check_every=np.uint8(1),
        on_divergence=np.str_("raise"),
    )
    assert np.isfinite(result["loss"]) and model.optimizer.iterations == 4
    assert "epoch: 2" in capsys.readouterr().out
    assert nnx.callbacks.Checkpoint(tmp_path / "run.nnx", every=np.int64(2)).every == 2
    assert model.predict(X3, batch_size=np.int64(2)).shape[0] == 3
    assert np.isfinite(model.evaluate(X3, LABELS, batch_size=np.int64(2), verbose=False)[0])


# Lifecycle --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda b: nnx.Dense(2, 3, xp=b), id="Dense"),
        pytest.param(lambda b: nnx.ReLU(xp=b), id="ReLU"),
        pytest.param(lambda b: nnx.Softmax(xp=b), id="Softmax"),
        pytest.param(lambda b: nnx.Sigmoid(xp=b), id="Sigmoid"),
        pytest.param(lambda b: nnx.Linear(xp=b), id="Linear"),
        pytest.param(lambda b: nnx.Dropout(0.5, xp=b), id="Dropout"),
    ],
)
def test_backward_before_forward(backend, make):
    layer = make(backend)
    info = assert_raises(nnx.CallOrderError, lambda: layer.backward(backend.asarray(np.ones((3, 3)), dtype="float32")))
    assert isinstance(info, RuntimeError)
    assert_message(info, re.escape(repr(layer)) + r"\.backward\(\)", r"before forward\(\)", r"call forward")
    assert getattr(layer, "dinputs", None) is None


def test_backward_with_a_gradient_of_the_wrong_shape(backend):
    layer = nnx.Dense(2, 3, xp=backend)
    layer.forward(backend.asarray(X3, dtype="float32"))
    info = assert_raises(ValueError, lambda: layer.backward(backend.asarray(np.ones((3, 4)), dtype="float32")))
    assert_message(info, r"Dense\(2 -> 3\)\.backward\(\)", r"\(3, 3\), got \(3, 4\)")
    assert layer.dweights is None


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda b: nnx.SGD(xp=b), id="SGD"),
        pytest.param(lambda b: nnx.SGD(momentum=0.9, xp=b), id="SGD-momentum"),
        pytest.param(lambda b: nnx.Adagrad(xp=b), id="Adagrad"),
        pytest.param(lambda b: nnx.RMSprop(xp=b), id="RMSprop"),
        pytest.param(lambda b: nnx.Adam(xp=b), id="Adam"),
    ],
)
@pytest.mark.parametrize("after_forward", [False, True], ids=["fresh", "after-forward"])
def test_update_params_before_backward(backend, make, after_forward):
    optimizer = make(backend)
    layer = nnx.Dense(2, 3, xp=backend)
    if after_forward:
        layer.forward(backend.asarray(X3, dtype="float32"))
    weights, biases = backend.to_numpy(layer.weights), backend.to_numpy(layer.biases)
    optimizer.pre_update_params()
    info = assert_raises(nnx.CallOrderError, lambda: optimizer.update_params(layer))
    assert_message(info, re.escape(repr(optimizer)), r"before Dense\(2 -> 3\)\.backward\(\)", r"run the backward")
    np.testing.assert_array_equal(backend.to_numpy(layer.weights), weights)
    np.testing.assert_array_equal(backend.to_numpy(layer.biases), biases)
    assert optimizer.state == {} and optimizer.iterations == 0


def test_update_params_of_a_layer_without_parameters(backend):
    optimizer = nnx.Adam(xp=backend)
    info = assert_raises(TypeError, lambda: optimizer.update_params(nnx.ReLU(xp=backend)))
    assert_message(info, r"Adam", r"weights and biases, got ReLU\(\)", r"pass only trainable layers")


def test_model_must_end_with_an_activation(backend):
    model = nnx.Model(xp=backend)
    model.add(nnx.Dense(2, 3, xp=backend))
    model.set(
        loss=nnx.CategoricalCrossentropy(xp=backend),
        optimizer=nnx.SGD(xp=backend),
        accuracy=nnx.metrics.Categorical(xp=backend),
    )
    info = assert_raises(TypeError, lambda: model.finalize())
    assert_message(info, r"Dense\(2 -> 3\)", r"no predictions\(\)", r"end the model with an activation")
    assert not model.finalized
    with pytest.raises(nnx.CallOrderError, match="not finalized"):
        model.train(X3, LABELS)


def test_model_set_refuses_the_fused_loss_and_wrong_kinds(backend):
    model = classifier(backend)
    before = snapshot(model)
    info = assert_raises(TypeError, lambda: model.set(loss=nnx.SoftmaxCategoricalCrossentropy(xp=backend)))
    assert_message(
        info,
        r"Model\.set\(loss=SoftmaxCategoricalCrossentropy\(\)\)",
        r"fused",
        r"loss=CategoricalCrossentropy\(\)",
    )
    for kwargs in (
        {"loss": nnx.CategoricalCrossentropy},
        {"optimizer": nnx.CategoricalCrossentropy(xp=backend)},
        {"accuracy": 0.5},
        {"optimizer": "adam"},
    ):
        info = assert_raises(TypeError, lambda kwargs=kwargs: model.set(**kwargs))
        assert_message(info, r"Model\.set", r"expected an nnx", r"e\.g\. nnx\.")
    assert_same(before, snapshot(model))
    assert model.finalized


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda b: nnx.Adam(xp=b), id="optimizer"),
        pytest.param(lambda b: nnx.CategoricalCrossentropy(xp=b), id="loss"),
        pytest.param(lambda b: nnx.metrics.Categorical(xp=b), id="accuracy"),
        pytest.param(lambda b: nnx.Model(xp=b), id="model"),
        pytest.param(lambda b: 3, id="int"),
        pytest.param(lambda b: "Dense", id="str"),
        pytest.param(lambda b: None, id="None"),
    ],
)
def test_model_add_refuses_non_layers(backend, make):
    model = classifier(backend)
    info = assert_raises(TypeError, lambda: model.add(make(backend)))
    assert_message(info, r"Model\.add\(\)", r"expected a layer or activation", r"give losses")
    assert len(model.layers) == 4 and model.finalized


@pytest.mark.parametrize("layer_class", [nnx.ReLU, nnx.Softmax, nnx.Dense])
def test_model_add_refuses_layer_classes(backend, layer_class):
    model = nnx.Model(xp=backend)
    info = assert_raises(TypeError, lambda: model.add(layer_class))
    assert_message(info, r"Model\.add\(\)", layer_class.__name__)
    assert model.layers == []


VALIDATION_DATA_CASES = [
    pytest.param(X3, TypeError, r"validation_data must be an \(X, y\) pair", id="array"),
    pytest.param((X3,), TypeError, r"validation_data must be an \(X, y\) pair", id="1-tuple"),
    pytest.param((X3, LABELS, LABELS), TypeError, r"validation_data must be an \(X, y\) pair", id="3-tuple"),
    pytest.param({"X": X3, "y": LABELS}, TypeError, r"validation_data must be an \(X, y\) pair", id="dict"),
    pytest.param((X3, LABELS[:2]), ValueError, r"validation targets\) expected targets for 3 samples", id="length"),
    pytest.param((np.ones((3, 5)), LABELS), ValueError, r"validation inputs with 2 features", id="features"),
    pytest.param((X3, np.array([0, 1, 7])), ValueError, r"validation targets\).*from 0 to 7", id="labels"),
    pytest.param((np.full((3, 2), np.nan), LABELS), ValueError, r"validation inputs contain", id="nan"),
]


@pytest.mark.parametrize(("validation_data", "error", "expected"), VALIDATION_DATA_CASES)
def test_validation_data_is_checked_before_the_first_epoch(backend, validation_data, error, expected, capsys):
    model = trained_classifier(backend)
    assert_rejects(
        model,
        error,
        r"Model\.train|Dense\(2 -> 4\) at layer 0|CategoricalCrossentropy\(\)",
        expected,
        lambda: model.train(X3, LABELS, epochs=3, print_every=1, validation_data=validation_data),
    )
    assert capsys.readouterr().out == ""


def test_train_evaluate_predict_before_finalize(backend):
    with nnx.backends.use(backend):
        model = nnx.Model()
        model.add(nnx.Dense(2, 3))
        model.add(nnx.Softmax())
        model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.SGD(), accuracy=nnx.metrics.Categorical())
    for call in (
        lambda: model.train(X3, LABELS),
        lambda: model.evaluate(X3, LABELS),
        lambda: model.predict(X3),
        model.get_parameters,
        lambda: model.set_parameters([]),
    ):
        info = assert_raises(nnx.CallOrderError, call)
        assert_message(info, r"the model", r"not finalized", r"call model\.finalize\(\)")
    model.finalize()
    model.train(X3, LABELS, print_every=None)
    model.add(nnx.Linear(xp=backend))  # any change needs a new finalize()
    with pytest.raises(nnx.CallOrderError, match="not finalized"):
        model.train(X3, LABELS, print_every=None)


def test_train_without_an_optimizer(backend):
    with nnx.backends.use(backend):
        model = nnx.Model()
        model.add(nnx.Dense(2, 3))
        model.add(nnx.Softmax())
        model.set(loss=nnx.CategoricalCrossentropy(), accuracy=nnx.metrics.Categorical())
        model.finalize()
    info = assert_raises(nnx.CallOrderError, lambda: model.train(X3, LABELS))
    assert_message(info, r"the model", r"no optimizer", r"give it with model\.set\(optimizer=\.\.\.\)")
    assert np.isfinite(model.evaluate(X3, LABELS, verbose=False)[0])


# Sharing ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["loss", "optimizer", "accuracy"])
def test_a_component_belongs_to_one_model(backend, name):
    first, second = classifier(backend), classifier(backend)
    shared = getattr(first, name)
    before = snapshot(second)
    info = assert_raises(ValueError, lambda: second.set(**{name: shared}))
    assert_message(info, re.escape(repr(shared)), rf"already the {name} of another Model", r"Give each model")
    assert_same(before, snapshot(second))
    assert second.finalized
    del first, info  # the traceback's frames hold the first model
    gc.collect()
    second.set(**{name: shared})  # free again once its model is gone
    assert getattr(second, name) is shared


def test_model_set_changes_nothing_when_one_component_is_refused(backend):
    first, second = classifier(backend), classifier(backend)
    loss, optimizer = second.loss, second.optimizer
    fresh = nnx.CategoricalCrossentropy(xp=backend)
    with pytest.raises(ValueError, match="another Model"):
        second.set(loss=fresh, optimizer=first.optimizer)
    assert second.loss is loss and second.optimizer is optimizer
    classifier(backend).set(loss=fresh)  # the refused loss is still free


# Parameters -------------------------------------------------------------------------------------------------------


def test_get_parameters_returns_copies(backend):
    model = trained_classifier(backend)
    held = model.get_parameters()
    host = [(backend.to_numpy(w), backend.to_numpy(b)) for w, b in held]
    _zero_in_place(held[0][0])  # mutating what was returned does not touch the model
    np.testing.assert_array_equal(backend.to_numpy(model.trainable_layers[0].weights), host[0][0])
    held = model.get_parameters()
    host = [(backend.to_numpy(w), backend.to_numpy(b)) for w, b in held]
    model.train(X3, LABELS, epochs=3, print_every=None)
    for (w, b), (hw, hb) in zip(held, host, strict=True):
        np.testing.assert_array_equal(backend.to_numpy(w), hw)
        np.testing.assert_array_equal(backend.to_numpy(b), hb)
    # the output layer always learns (its ReLU inputs may all be dead, so the first layer may not)
    assert not np.array_equal(backend.to_numpy(model.trainable_layers[-1].biases), host[-1][1])


@pytest.mark.parametrize("source", ["backend", "host"])
def test_set_parameters_copies(backend, source):
    a, b = trained_classifier(backend), classifier(backend)
    parameters = a.get_parameters()
    if source == "host":
        parameters = [(backend.to_numpy(w), backend.to_numpy(bias)) for w, bias in parameters]
    b.set_parameters(parameters)
    copied = snapshot(b)["parameters"]
    a.train(X3, LABELS, epochs=3, print_every=None)
    _zero_in_place(parameters[0][0])
    for (w, bias), (cw, cb) in zip(snapshot(b)["parameters"], copied, strict=True):
        np.testing.assert_array_equal(w, cw)
        np.testing.assert_array_equal(bias, cb)


def _zero_in_place(x) -> None:
    """x[...] = 0 where arrays can change in place; JAX arrays cannot, so nothing can reach the model through them."""
    try:
        x[...] = 0
    except TypeError as error:
        if "immutable" not in str(error):
            raise


def _pairs(second):
    return [(np.zeros((2, 4)), np.zeros((1, 4))), second]


SET_PARAMETER_CASES = [
    pytest.param(
        _pairs((np.full((4, 3), np.nan), np.zeros((1, 3)))), ValueError, r"weights contain 12 NaN", (), id="nan"
    ),
    pytest.param(
        _pairs((np.zeros((4, 3)), np.full((1, 3), np.inf))), ValueError, r"biases contain 3 NaN", (), id="inf"
    ),
    pytest.param(
        _pairs((np.zeros((4, 2)), np.zeros((1, 3)))), ValueError, r"shape \(4, 3\), got \(4, 2\)", (), id="shape"
    ),
    pytest.param(
        _pairs((np.zeros((4, 3), dtype=bool), np.zeros((1, 3)))),
        TypeError,
        r"dtype bool",
        ("array_api_strict",),
        id="bool",
    ),
    pytest.param(
        _pairs((np.zeros((4, 3)).astype(str), np.zeros((1, 3)))),
        TypeError,
        r"dtype <U",
        ("array_api_strict",),
        id="str",
    ),
    pytest.param(
        _pairs((np.zeros((4, 3), dtype=complex), np.zeros((1, 3)))),
        TypeError,
        r"complex",
        ("array_api_strict",),
        id="complex",
    ),
    pytest.param(_pairs(np.zeros((4, 3))), TypeError, r"must be \(weights, biases\)", (), id="not-a-pair"),
    pytest.param(
        _pairs((np.zeros((4, 3)), np.zeros((1, 3)), 0)), TypeError, r"must be \(weights, biases\)", (), id="triple"
    ),
    pytest.param(
        _pairs((np.zeros((4, 3)), np.zeros((1, 3))))[:1], ValueError, r"expected 2 \(weights, biases\)", (), id="count"
    ),
]


@pytest.mark.parametrize(("parameters", "error", "expected", "buggy_on"), SET_PARAMETER_CASES)
def test_set_parameters_with_one_bad_pair_changes_nothing(request, backend, parameters, error, expected, buggy_on):
    model = trained_classifier(backend)
    assert_rejects(
        model,
        error,
        r"Model\.set_parameters\(\)|Dense\(4 -> 3\) at layer 2",
        expected,
        lambda: model.set_parameters(parameters),
    )


def test_set_parameters_rejects_another_backends_arrays(backend):
    model = trained_classifier(backend)
    pairs = [
        (foreign(backend, np.zeros((2, 4))), foreign(backend, np.zeros((1, 4)))),
        (np.zeros((4, 3)), np.zeros((1, 3))),
    ]
    assert_rejects(
        model,
        TypeError,
        r"Dense\(2 -> 4\) at layer 0 weights",
        r"must be an array of backend",
        lambda: model.set_parameters(pairs),
    )


@pytest.mark.parametrize("value", [None, 3])
def test_set_parameters_names_a_non_list(backend, value):
    model = trained_classifier(backend)
    assert_rejects(model, TypeError, r"Model\.set_parameters\(\)", r"list", lambda: model.set_parameters(value))


# Backends ---------------------------------------------------------------------------------------------------------


def test_unknown_array_namespace_is_a_type_error():
    namespace = types.ModuleType("my_array_library")
    namespace.__array_namespace_info__ = lambda: None
    for module, expected in (
        (namespace, r"'my_array_library' is an Array API namespace without an nnx backend"),
        (types.ModuleType("array_api_compat.my_array_library"), r"'array_api_compat\.my_array_library' is not an"),
        (os, r"'os' is not an array module"),
    ):
        info = assert_raises(TypeError, lambda module=module: nnx.backends.get(module))
        assert not isinstance(info, ModuleNotFoundError)
        assert_message(info, r"module", expected, r"register a backend")
    with pytest.raises(TypeError, match="string, an array module or a Backend"):
        nnx.backends.get(3)
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        nnx.backends.get("nope")


# Known numerical and kind bugs ------------------------------------------------------------------------------------


def test_divergence_restores_the_model_before_the_first_finite_loss(backend):
    """A loss that is never finite raises DivergenceError; the model must be as it was before train()."""
    model = value_model(backend, "regression", optimizer=nnx.Adam(learning_rate=0.001, xp=backend))
    before = snapshot(model)
    info = assert_raises(nnx.DivergenceError, lambda: model.train(X3, np.array([1e30, 0.0, 1.0]), print_every=None))
    assert info.last_finite_loss is None
    assert_same(before, snapshot(model))


OVERFLOW_CASES = [
    pytest.param(lambda b: nnx.Sigmoid(xp=b).forward(b.asarray(np.array([[-1000.0, 0.0]]))), id="Sigmoid.forward"),
    pytest.param(
        lambda b: nnx.Softmax(xp=b).forward(b.asarray(np.array([[3e38, -3e38]]), dtype="float32")), id="Softmax.forward"
    ),
    pytest.param(
        lambda b: nnx.MeanSquaredError(xp=b).calculate(
            b.asarray(np.array([[3e38]]), dtype="float32"), b.asarray(np.array([[-3e38]]), dtype="float32")
        ),
        id="MeanSquaredError.calculate",
    ),
    pytest.param(
        lambda b: nnx.Dense(2, 3, xp=b).forward(b.asarray(np.full((3, 2), 1e300))),
        id="Dense.forward-float64-to-float32",
    ),
    pytest.param(
        lambda b: nnx.MeanSquaredError(xp=b).calculate(
            b.asarray(np.zeros((3, 1)), dtype="float32"), b.asarray(np.full((3, 1), 1e300))
        ),
        id="MeanSquaredError.calculate-float64-targets",
    ),
    pytest.param(lambda b: nnx.Dense(2, 3, weight_scale=1e40, xp=b), id="Dense-weight_scale-1e40"),
    pytest.param(
        lambda b: classifier(b).train(np.full((3, 2), 1e300), LABELS, print_every=None), id="Model.train-float64-inputs"
    ),
    pytest.param(lambda b: classifier(b).predict(np.full((3, 2), 1e300)), id="Model.predict-float64-inputs"),
    pytest.param(
        lambda b: classifier(b).set_parameters(
            [(np.full((2, 4), 1e300), np.zeros((1, 4))), (np.zeros((4, 3)), np.zeros((1, 3)))]
        ),
        id="Model.set_parameters-float64",
    ),
    pytest.param(
        lambda b: value_model(b, "regression").train(X3, np.array([1e200, 0.0, 1.0]), print_every=None),
        id="Model.train-Regression.init",
    ),
    pytest.param(
        lambda b: value_model(b, "regression").evaluate(X3, np.array([1e30, 0.0, 1.0]), verbose=False),
        id="Model.evaluate-loss",
    ),
]


@pytest.mark.parametrize("call", OVERFLOW_CASES)
def test_finite_inputs_never_leak_overflow_warnings(backend, call):
    """Finite data must compute (finite where the math is finite) or raise a documented error."""
    try:
        call(backend)
    except (ValueError, TypeError, nnx.DivergenceError) as error:
        assert str(error), "a documented error must say what is wrong"
    except Exception as error:  # a RuntimeWarning raised as an error by filterwarnings=error
        fail(f"{type(error).__name__}: {error}")


INTEGER_INPUT_CASES = [
    pytest.param(lambda b: nnx.Softmax(xp=b), "forward", ("array_api_strict",), id="Softmax.forward"),
    pytest.param(lambda b: nnx.Sigmoid(xp=b), "forward", ("array_api_strict",), id="Sigmoid.forward"),
    pytest.param(lambda b: nnx.Dropout(0.5, xp=b), "forward", ("numpy", "array_api_strict"), id="Dropout.forward"),
    pytest.param(
        lambda b: nnx.CategoricalCrossentropy(xp=b),
        "calculate",
        ("array_api_strict",),
        id="CategoricalCrossentropy.calculate",
    ),
    pytest.param(
        lambda b: nnx.BinaryCrossentropy(xp=b), "calculate", ("array_api_strict",), id="BinaryCrossentropy.calculate"
    ),
    pytest.param(
        lambda b: nnx.MeanSquaredError(xp=b), "calculate", ("array_api_strict",), id="MeanSquaredError.calculate"
    ),
    pytest.param(
        lambda b: nnx.SoftmaxCategoricalCrossentropy(xp=b),
        "forward",
        ("array_api_strict",),
        id="SoftmaxCategoricalCrossentropy.forward",
    ),
    pytest.param(lambda b: nnx.Dense(2, 2, xp=b), "forward", (), id="Dense.forward"),
    pytest.param(lambda b: nnx.ReLU(xp=b), "forward", (), id="ReLU.forward"),
    pytest.param(lambda b: nnx.Linear(xp=b), "forward", (), id="Linear.forward"),
]


@pytest.mark.parametrize(("make", "method", "buggy_on"), INTEGER_INPUT_CASES)
def test_integer_inputs_are_computed_or_named(request, backend, make, method, buggy_on):
    """Integer batches pass the real-number check, so every layer must compute them or say why not."""
    component = make(backend)
    x = backend.asarray(np.array([[0, 1], [1, 0], [1, 1]]))
    try:
        if method == "calculate":
            component.calculate(
                x,
                backend.asarray(
                    np.array([1, 0, 1]) if "Categ" in repr(component) else np.array([[0, 1], [1, 0], [1, 1]])
                ),
            )
        elif isinstance(component, nnx.SoftmaxCategoricalCrossentropy):
            component.forward(x, backend.asarray(np.array([1, 0, 1])))
        else:
            component.forward(x, training=True)
    except (TypeError, ValueError) as error:
        assert_message(error, re.escape(repr(component)), r"dtype|integer")
    except Exception as error:
        fail(f"{type(error).__name__}: {error}")
