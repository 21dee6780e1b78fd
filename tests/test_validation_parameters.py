"""`Model.get_parameters` and `set_parameters`, on every backend: copies both ways, and a bad pair refused
before anything changes.

Each bad call must raise the documented exception, with a message that names the component, what it
expected and the fix, and change nothing it was given (parameters, optimizer state, iterations); the checks
are in tests/helpers.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import (
    LABELS,
    X3,
    assert_rejects,
    foreign,
    small_classifier,
    snapshot,
    trained_classifier,
)

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
    a, b = trained_classifier(backend), small_classifier(backend)
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
    pytest.param(_pairs((np.full((4, 3), np.nan), np.zeros((1, 3)))), ValueError, r"weights contain 12 NaN", id="nan"),
    pytest.param(_pairs((np.zeros((4, 3)), np.full((1, 3), np.inf))), ValueError, r"biases contain 3 NaN", id="inf"),
    pytest.param(_pairs((np.zeros((4, 2)), np.zeros((1, 3)))), ValueError, r"shape \(4, 3\), got \(4, 2\)", id="shape"),
    pytest.param(
        _pairs((np.zeros((4, 3), dtype=bool), np.zeros((1, 3)))),
        TypeError,
        r"dtype bool",
        id="bool",
    ),
    pytest.param(
        _pairs((np.zeros((4, 3)).astype(str), np.zeros((1, 3)))),
        TypeError,
        r"dtype <U",
        id="str",
    ),
    pytest.param(
        _pairs((np.zeros((4, 3), dtype=complex), np.zeros((1, 3)))),
        TypeError,
        r"complex",
        id="complex",
    ),
    pytest.param(_pairs(np.zeros((4, 3))), TypeError, r"must be \(weights, biases\)", id="not-a-pair"),
    pytest.param(
        _pairs((np.zeros((4, 3)), np.zeros((1, 3)), 0)), TypeError, r"must be \(weights, biases\)", id="triple"
    ),
    pytest.param(
        _pairs((np.zeros((4, 3)), np.zeros((1, 3))))[:1], ValueError, r"expected 2 \(weights, biases\)", id="count"
    ),
]


@pytest.mark.parametrize(("parameters", "error", "expected"), SET_PARAMETER_CASES)
def test_set_parameters_with_one_bad_pair_changes_nothing(backend, parameters, error, expected):
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
