"""Numbers at the edges, on every backend: an unknown array module, divergence before the first finite loss,
finite data that overflows float32, and integer batches.

Each bad call must raise the documented exception, with a message that names the component, what it
expected and the fix, and change nothing it was given (parameters, optimizer state, iterations); the checks
are in tests/helpers.py.
"""

from __future__ import annotations

import math
import os
import types

import numpy as np
import pytest

import nnx
from tests.helpers import (
    BEYOND_FLOAT32,
    LABELS,
    X3,
    assert_message,
    assert_raises,
    assert_same,
    small_classifier,
    snapshot,
    value_model,
)

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


# Numbers at the edges -------------------------------------------------------------------------------------------


def test_divergence_restores_the_model_before_the_first_finite_loss(backend):
    """A loss that is never finite raises DivergenceError; the model must be as it was before train()."""
    model = value_model(backend, "regression", optimizer=nnx.Adam(learning_rate=0.001, xp=backend))
    before = snapshot(model)
    info = assert_raises(nnx.DivergenceError, lambda: model.train(X3, np.array([1e30, 0.0, 1.0]), print_every=None))
    assert info.last_finite_loss is None
    assert_same(before, snapshot(model))


def output(layer, backend, host, dtype=None):
    """`layer`'s output for the batch `host`, on the host."""
    layer.forward(backend.asarray(host, dtype=dtype))
    return backend.to_numpy(layer.output)


def host_float(backend, value) -> float:
    return float(backend.to_numpy(value))


TOO_BIG = np.full((3, 2), 1e300)  # finite in float64, beyond float32's range

OVERFLOW_CASES = [
    pytest.param(
        lambda b: output(nnx.Sigmoid(xp=b), b, np.array([[-1000.0, 0.0]])), None, [[0.0, 0.5]], id="Sigmoid.forward"
    ),
    pytest.param(
        lambda b: output(nnx.Softmax(xp=b), b, np.array([[3e38, -3e38]]), "float32"),
        None,
        [[1.0, 0.0]],
        id="Softmax.forward",
    ),
    pytest.param(
        lambda b: host_float(
            b,
            nnx.MeanSquaredError(xp=b).calculate(
                b.asarray(np.array([[3e38]]), dtype="float32"), b.asarray(np.array([[-3e38]]), dtype="float32")
            ),
        ),
        None,
        math.inf,  # the squared error, 3.6e77, is beyond float32
        id="MeanSquaredError.calculate",
    ),
    pytest.param(
        lambda b: nnx.Dense(2, 3, xp=b).forward(b.asarray(TOO_BIG)),
        ValueError,
        (r"Dense\(2 -> 3\) inputs", BEYOND_FLOAT32),
        id="Dense.forward-float64-to-float32",
    ),
    pytest.param(
        lambda b: nnx.MeanSquaredError(xp=b).calculate(
            b.asarray(np.zeros((3, 1)), dtype="float32"), b.asarray(np.full((3, 1), 1e300))
        ),
        ValueError,
        (r"MeanSquaredError\(\) targets", BEYOND_FLOAT32),
        id="MeanSquaredError.calculate-float64-targets",
    ),
    pytest.param(
        lambda b: nnx.Dense(2, 3, weight_scale=1e40, xp=b),
        ValueError,
        (r"Dense weight_scale=1e\+40", r"overflows float32"),
        id="Dense-weight_scale-1e40",
    ),
    pytest.param(
        lambda b: small_classifier(b).train(TOO_BIG, LABELS, print_every=None),
        ValueError,
        (r"Dense\(2 -> 4\) at layer 0 training inputs", BEYOND_FLOAT32),
        id="Model.train-float64-inputs",
    ),
    pytest.param(
        lambda b: small_classifier(b).predict(TOO_BIG),
        ValueError,
        (r"Dense\(2 -> 4\) at layer 0 prediction inputs", BEYOND_FLOAT32),
        id="Model.predict-float64-inputs",
    ),
    pytest.param(
        lambda b: small_classifier(b).set_parameters(
            [(np.full((2, 4), 1e300), np.zeros((1, 4))), (np.zeros((4, 3)), np.zeros((1, 3)))]
        ),
        ValueError,
        (r"Dense\(2 -> 4\) at layer 0 weights", BEYOND_FLOAT32),
        id="Model.set_parameters-float64",
    ),
    pytest.param(
        lambda b: value_model(b, "regression").train(X3, np.array([1e200, 0.0, 1.0]), print_every=None),
        ValueError,
        (r"MeanSquaredError\(\) \(training targets\)", BEYOND_FLOAT32),
        id="Model.train-Regression.init",
    ),
    pytest.param(
        lambda b: value_model(b, "regression").evaluate(X3, np.array([1e30, 0.0, 1.0]), verbose=False)[0],
        None,
        math.inf,  # a squared error of 1e60 is beyond float32
        id="Model.evaluate-loss",
    ),
]


@pytest.mark.parametrize(("call", "error", "expected"), OVERFLOW_CASES)
def test_finite_inputs_never_leak_overflow_warnings(backend, call, error, expected):
    """Finite data computes (inf only where the true value is beyond float32) or is refused with the documented
    error, naming the component; a RuntimeWarning (an error here, by filterwarnings) fails."""
    if error is None:
        np.testing.assert_array_equal(call(backend), expected)
        return
    component, message = expected
    if message == BEYOND_FLOAT32 and not backend.has_dtype("float64"):
        # a backend without float64 (JAX without x64) makes 1e300 inf when the array is made on it: what nnx then
        # receives does hold infinities (host data is still checked on the host, before the copy)
        message = f"(?:{BEYOND_FLOAT32}|NaN or infinite values)"
    info = assert_raises(error, lambda: call(backend))
    assert_message(info, component, message)


INTEGER_INPUT_CASES = [
    pytest.param(lambda b: nnx.Softmax(xp=b), "forward", id="Softmax.forward"),
    pytest.param(lambda b: nnx.Sigmoid(xp=b), "forward", id="Sigmoid.forward"),
    pytest.param(lambda b: nnx.Dropout(0.5, xp=b), "forward", id="Dropout.forward"),
    pytest.param(lambda b: nnx.CategoricalCrossentropy(xp=b), "calculate", id="CategoricalCrossentropy.calculate"),
    pytest.param(lambda b: nnx.BinaryCrossentropy(xp=b), "calculate", id="BinaryCrossentropy.calculate"),
    pytest.param(lambda b: nnx.MeanSquaredError(xp=b), "calculate", id="MeanSquaredError.calculate"),
    pytest.param(
        lambda b: nnx.SoftmaxCategoricalCrossentropy(xp=b), "forward", id="SoftmaxCategoricalCrossentropy.forward"
    ),
    pytest.param(lambda b: nnx.Dense(2, 2, xp=b), "forward", id="Dense.forward"),
    pytest.param(lambda b: nnx.ReLU(xp=b), "forward", id="ReLU.forward"),
    pytest.param(lambda b: nnx.Linear(xp=b), "forward", id="Linear.forward"),
]
INTEGERS = np.array([[0, 1], [1, 0], [1, 1]])


@pytest.mark.parametrize(("make", "method"), INTEGER_INPUT_CASES)
def test_integer_inputs_are_computed(backend, make, method):
    """Integer batches pass the real-number check, so every layer and loss computes them, in float32."""
    component = make(backend)
    x = backend.asarray(INTEGERS)
    if method == "calculate":
        labels = np.array([1, 0, 1]) if isinstance(component, nnx.CategoricalCrossentropy) else INTEGERS
        result = component.calculate(x, backend.asarray(labels))
    elif isinstance(component, nnx.SoftmaxCategoricalCrossentropy):
        result = component.forward(x, backend.asarray(np.array([1, 0, 1])))
    else:
        component.forward(x, training=True)
        result = component.output
    values = backend.to_numpy(result)
    assert values.dtype == np.float32 and np.isfinite(values).all(), values
    if isinstance(component, (nnx.ReLU, nnx.Linear)):
        np.testing.assert_array_equal(values, INTEGERS)
