"""The value checks: a NaN (or a label out of range) written in place into a host NumPy array that was already checked
is caught at its next use, by every call that checks data; an unchanged array is not checked again; and finite data
too large for the model's float32 is reported as such, not as NaN."""

from __future__ import annotations

import numpy as np
import pytest

import nnx
from nnx import _checks
from nnx.datasets import spiral_data

NAN_INPUTS = r"inputs contain 1 NaN or infinite value; clean the data"


def classifier(backend, dtype="float32"):
    with nnx.backends.use(backend.name):
        model = nnx.Model()
        for layer in (nnx.Dense(2, 8, dtype=dtype), nnx.ReLU(), nnx.Dense(8, 3, dtype=dtype), nnx.Softmax()):
            model.add(layer)
        model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam(0.01), accuracy=nnx.metrics.Categorical())
        model.finalize()
    return model


def regressor(backend):
    with nnx.backends.use(backend.name):
        model = nnx.Model()
        for layer in (nnx.Dense(1, 8), nnx.ReLU(), nnx.Dense(8, 1), nnx.Linear()):
            model.add(layer)
        model.set(loss=nnx.MeanSquaredError(), optimizer=nnx.Adam(0.01), accuracy=nnx.metrics.Regression())
        model.finalize()
    return model


@pytest.fixture
def spiral():
    nnx.seed(0)
    return spiral_data(samples=20, classes=3)  # host float32 inputs and int labels


def skip_cupy(backend):
    if backend.name == "cupy":
        pytest.skip("host data on every CPU backend")


# Every call that checks data catches a NaN written in place since its last check --------------------------------

CALLS = {
    "train": lambda model, X, y: model.train(X, y, epochs=1, print_every=None),
    "evaluate": lambda model, X, y: model.evaluate(X, y, verbose=False),
    "predict": lambda model, X, y: model.predict(X),
    "validation": lambda model, X, y: model.train(X.copy(), y, epochs=1, print_every=None, validation_data=(X, y)),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_a_nan_written_in_place_is_refused_at_the_next_call(backend, spiral, call):
    skip_cupy(backend)
    X, y = spiral
    model = classifier(backend)
    CALLS[call](model, X, y)
    X[5, 1] = np.nan
    with pytest.raises(ValueError, match=NAN_INPUTS):
        CALLS[call](model, X, y)
    X[5, 1] = 0.5  # fixed in place: accepted again
    CALLS[call](model, X, y)


def test_an_infinity_written_into_float64_data_of_a_float32_model_is_refused(backend, spiral):
    skip_cupy(backend)
    X, y = spiral
    X = X.astype(np.float64)
    model = classifier(backend)
    model.train(X, y, epochs=1, print_every=None)
    X[0, 0] = -np.inf
    with pytest.raises(ValueError, match=NAN_INPUTS):
        model.train(X, y, epochs=1, print_every=None)


def test_a_label_written_out_of_range_in_place_is_refused(backend, spiral):
    skip_cupy(backend)
    X, y = spiral
    model = classifier(backend)
    model.train(X, y, epochs=1, print_every=None)
    y[3] = 7
    with pytest.raises(ValueError, match=r"expected class labels in \[0, 3\) for 3 outputs, got values from 0 to 7"):
        model.train(X, y, epochs=1, print_every=None)


def test_a_nan_written_into_regression_targets_is_refused(backend):
    skip_cupy(backend)
    X = np.linspace(-1, 1, 30, dtype=np.float32).reshape(-1, 1)
    y = np.sin(X)
    model = regressor(backend)
    model.train(X, y, epochs=1, print_every=None)
    y[4, 0] = np.nan
    with pytest.raises(ValueError, match=r"targets contain 1 NaN or infinite value"):
        model.train(X, y, epochs=1, print_every=None)


def test_the_book_loop_catches_a_nan_written_between_two_steps(spiral):
    """A layer's forward and a loss's calculate check what they are given at every call (outside Model.train).
    On NumPy a host array is the layers' own kind of array."""
    X, _ = spiral
    dense, loss = nnx.Dense(2, 3), nnx.MeanSquaredError()
    targets = np.zeros((60, 3), dtype=np.float32)
    dense.forward(X)
    loss.calculate(dense.output, targets)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"Dense\(2 -> 3\) inputs contain 1 NaN"):
        dense.forward(X)
    X[0, 0] = 0.0
    dense.forward(X)
    targets[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"MeanSquaredError\(\) targets contain 1 NaN"):
        loss.calculate(dense.output, targets)


def test_a_view_checked_before_sees_a_nan_written_through_its_base(spiral):
    X, _ = spiral
    model = classifier(nnx.backends.get("numpy"))
    first = X[:30]
    model.predict(first)
    X[10, 0] = np.nan  # through the base array
    with pytest.raises(ValueError, match=NAN_INPUTS):
        model.predict(first)


def test_an_unchanged_array_is_not_checked_again(monkeypatch, spiral):
    """The fingerprint (a sum) replaces the check on a later call: the count of non-finite values runs once."""
    X, _ = spiral
    X = X.astype(np.float64)  # cast to the model's float32, checked by counting the cast's non-finite values
    model = classifier(nnx.backends.get("numpy"))
    counted = []
    count = _checks._count_not_finite
    monkeypatch.setattr(_checks, "_count_not_finite", lambda backend, x: counted.append(x.shape) or count(backend, x))
    for _ in range(3):
        model.predict(X)
    assert counted == [X.shape]
    X[0, 0] = 2.0  # a finite change: checked again, and accepted
    model.predict(X)
    assert counted == [X.shape, X.shape]


def test_arrays_nnx_made_are_known_by_identity(spiral):
    X, _ = spiral
    output = _checks.produced(X * 2)
    assert _checks.already_checked(output, "finite")
    output[0, 0] = np.nan  # a layer's output written by hand is the user's own doing: not watched
    assert _checks.already_checked(output, "finite")


# Finite data beyond float32's range -----------------------------------------------------------------------------

TOO_LARGE = (
    r"inputs hold finite values too large for float32: the largest magnitude is 1e\+300 and float32 holds at most "
    r"3\.40282e\+38; scale the data .* or build the model in float64"
)


@pytest.mark.parametrize(
    "call",
    [
        lambda model, X, y: model.train(X, y, epochs=1, print_every=None),
        lambda model, X, y: model.predict(X),
        lambda model, X, y: model.evaluate(X, y, verbose=False),
        lambda model, X, y: model.layers[0].forward(X) if model.backend.name == "numpy" else model.predict(X),
    ],
    ids=["train", "predict", "evaluate", "Dense.forward"],
)
def test_finite_float64_data_beyond_float32_is_reported_as_too_large(backend, spiral, call):
    skip_cupy(backend)
    X, y = spiral
    X = X.astype(np.float64)
    X[7, 0] = -1e300
    X[8, 1] = 1e200
    model = classifier(backend)
    with pytest.raises(ValueError, match=TOO_LARGE):
        call(model, X, y)


def test_nan_next_to_values_beyond_float32_is_reported_as_nan(backend, spiral):
    skip_cupy(backend)
    X, y = spiral
    X = X.astype(np.float64)
    X[7, 0], X[8, 1] = 1e300, np.nan
    with pytest.raises(ValueError, match=NAN_INPUTS):
        classifier(backend).train(X, y, epochs=1, print_every=None)


def test_the_same_data_trains_a_float64_model(spiral):
    X, _ = spiral
    X = X.astype(np.float64)
    X[7, 0] = 1e300
    model = classifier(nnx.backends.get("numpy"), dtype="float64")
    assert model.predict(X).shape == (60, 3)


# The one-pass value checks: a finite sum proves finite values; integer labels need only their extremes ------------


def test_finite_values_whose_sum_overflows_are_accepted(backend):
    X = backend.asarray(np.full((4, 2), 3e38, dtype=np.float32))  # each finite; their float32 sum is inf
    assert _checks._count_not_finite(backend, X) == 0
    _checks.finite(backend, X, "Dense", "inputs")  # no error


@pytest.mark.parametrize("bad", [[np.inf, -np.inf], [np.nan, 1.0], [1.0, -np.inf]], ids=["inf-inf", "nan", "-inf"])
def test_non_finite_values_are_counted_whatever_their_sum(backend, bad):
    X = np.ones((3, 2), dtype=np.float32)
    X[1] = bad
    expected = sum(not np.isfinite(value) for value in bad)
    with pytest.raises(ValueError, match=rf"inputs contain {expected} NaN or infinite value"):
        _checks.finite(backend, backend.asarray(X), "Dense", "inputs")


@pytest.mark.parametrize("dtype", ["uint8", "int32", "int64"])
@pytest.mark.parametrize(("labels", "message"), [([0, 2, 1], None), ([0, 3, 1], "got values from 0 to 3")])
def test_integer_labels_are_checked_by_their_extremes(backend, dtype, labels, message):
    y = backend.asarray(np.array(labels, dtype=dtype))
    if message is None:
        assert _checks.class_targets(backend, y, 3, "CategoricalCrossentropy") is y
        return
    with pytest.raises(ValueError, match=message):
        _checks.class_targets(backend, y, 3, "CategoricalCrossentropy")
