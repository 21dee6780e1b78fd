"""Bad targets at the losses and metrics, on every backend: class labels, value targets and their shapes.

Each bad call must raise the documented exception, with a message that names the component, what it
expected and the fix, and change nothing it was given (parameters, optimizer state, iterations); the checks
are in tests/helpers.py.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import nnx
from tests.helpers import (
    LABELS,
    X3,
    assert_message,
    assert_raises,
    assert_rejects,
    fail,
    foreign,
    value_model,
)

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
