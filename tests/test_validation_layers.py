"""Bad input at the layer level, on every backend: batches given to layers and losses, and calls out of order
(backward before forward, an update before backward).

Each bad call must raise the documented exception, with a message that names the component, what it
expected and the fix, and change nothing it was given (parameters, optimizer state, iterations); the checks
are in tests/helpers.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import nnx
from tests.helpers import (
    X3,
    assert_message,
    assert_raises,
    foreign,
)

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
