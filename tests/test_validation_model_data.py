"""Bad data at `Model.train`, `evaluate` and `predict`, on every backend: inputs, class labels, regression and
binary targets, and validation data.

Each bad call must raise the documented exception, with a message that names the component, what it
expected and the fix, and change nothing it was given (parameters, optimizer state, iterations); the checks
are in tests/helpers.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import nnx
from tests.helpers import (
    LABELS,
    X3,
    assert_rejects,
    foreign,
    good_targets,
    small_classifier,
    trained_classifier,
    value_model,
)

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
    model = small_classifier(backend)
    model.train(X, LABELS, epochs=2, print_every=None)
    model.evaluate(X, LABELS, verbose=False)
    predictions = model.predict(X)
    assert backend.owns(predictions)
    assert np.isfinite(backend.to_numpy(predictions)).all()


def test_float16_host_data_is_cast_on_the_host(backend):
    """A Model casts host float16 data itself; backend.asarray of float16 fails only where the backend has none."""
    half = X3.astype(np.float16)
    model = small_classifier(backend)
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
    model = small_classifier(backend)
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
def test_value_targets_of_any_real_dtype_train(backend, kind, y):
    model = value_model(backend, kind)
    assert np.isfinite(model.train(X3, y, print_every=None)["loss"])
    assert np.isfinite(model.evaluate(X3, y, verbose=False)[0])


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
