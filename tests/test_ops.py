"""Every layer, activation and loss on every backend against hand-computed values and the book's numbers, and errors
for bad arguments. Their gradients, dtypes, input errors and agreement across backends are checked by the
`nnx.testing` kit (tests/test_testing_kit.py); the book's fused softmax and cross-entropy, which the kit does not
take, is checked here."""

from __future__ import annotations

import numpy as np
import pytest

import nnx
from tests.conftest import float64_or_skip
from tests.helpers import assert_gradient_close, numeric_gradient


def run_forward(backend, component, x_host, *extra):
    component.forward(backend.asarray(x_host), *extra)
    return backend.to_numpy(component.output)


# Dense ------------------------------------------------------------------------------------------------------------


def test_dense_initialisation_matches_the_book(backend):
    nnx.seed(0)
    expected = (np.random.standard_normal((2, 3)).astype(np.float32) * np.float32(0.01)).astype(np.float32)
    nnx.seed(0)
    layer = nnx.Dense(2, 3, xp=backend)
    np.testing.assert_array_equal(backend.to_numpy(layer.weights), expected)
    np.testing.assert_array_equal(backend.to_numpy(layer.biases), np.zeros((1, 3), np.float32))
    assert layer.weights.dtype == backend.xp.float32


def test_dense_forward_matches_the_book_chapter_3_output(backend):
    nnx.seed(0)
    X, _ = nnx.datasets.spiral_data(samples=100, classes=3)
    layer = nnx.Dense(2, 3, xp=backend)
    out = run_forward(backend, layer, X.astype(np.float32))
    expected = np.array(
        [
            [0.0, 0.0, 0.0],
            [-1.0475187e-04, 1.1395361e-04, -4.7983500e-05],
            [-2.7414842e-04, 3.1729150e-04, -8.6921798e-05],
            [-4.2188365e-04, 5.2666257e-04, -5.5912682e-05],
            [-5.7707680e-04, 7.1401405e-04, -8.9430439e-05],
        ]
    )
    np.testing.assert_allclose(out[:5], expected, rtol=1e-5, atol=1e-10)


def test_dense_with_a_generator_is_reproducible(backend):
    a = nnx.Dense(4, 5, xp=backend, rng=np.random.default_rng(3))
    b = nnx.Dense(4, 5, xp=backend, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(backend.to_numpy(a.weights), backend.to_numpy(b.weights))


def test_dense_forward_by_hand(backend):
    float64_or_skip(backend)
    layer = nnx.Dense(2, 2, xp=backend, dtype="float64")
    layer.weights = backend.asarray(np.array([[1.0, 2.0], [3.0, 4.0]]))
    layer.biases = backend.asarray(np.array([[0.5, -0.5]]))
    out = run_forward(backend, layer, np.array([[1.0, 1.0], [2.0, -1.0]]))
    np.testing.assert_allclose(out, [[4.5, 5.5], [-0.5, -0.5]])


def test_dense_rejects_bad_arguments_and_inputs(backend):
    with pytest.raises(ValueError, match="n_inputs must be a positive integer"):
        nnx.Dense(0, 3, xp=backend)
    with pytest.raises(ValueError, match="n_neurons must be a positive integer"):
        nnx.Dense(2, 2.5, xp=backend)
    with pytest.raises(ValueError, match="weight_regularizer_l2 must be a finite number >= 0"):
        nnx.Dense(2, 3, weight_regularizer_l2=-1, xp=backend)
    with pytest.raises(ValueError, match="dtype must be one of float32, float64"):
        nnx.Dense(2, 3, xp=backend, dtype="int32")
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        nnx.Dense(2, 3, xp=backend, rng=42)
    layer = nnx.Dense(2, 64, xp=backend)
    with pytest.raises(ValueError, match=r"Dense\(2 -> 64\) expected inputs with 2 features, got shape"):
        layer.forward(backend.asarray(np.ones((300, 3), np.float32)))


def test_dense_casts_inputs_to_its_dtype(backend):
    float64_or_skip(backend)
    layer = nnx.Dense(2, 3, xp=backend)
    layer.forward(backend.asarray(np.ones((4, 2)), dtype="float64"))
    assert layer.output.dtype == backend.xp.float32


# Activations ------------------------------------------------------------------------------------------------------


def test_relu_forward_by_hand(backend):
    relu = nnx.ReLU(xp=backend)
    np.testing.assert_array_equal(run_forward(backend, relu, np.array([[-1.0, 0.0, 2.0]])), [[0.0, 0.0, 2.0]])


def test_softmax_forward_by_hand_and_stability(backend):
    softmax = nnx.Softmax(xp=backend)
    out = run_forward(backend, softmax, np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 1000.0]]))
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(out[0], e / e.sum())
    np.testing.assert_allclose(out[1], [1 / 3] * 3)


def test_sigmoid_forward_by_hand(backend):
    float64_or_skip(backend)
    sigmoid = nnx.Sigmoid(xp=backend)
    np.testing.assert_allclose(run_forward(backend, sigmoid, np.array([[0.0, np.log(3.0)]])), [[0.5, 0.75]])


def test_linear_forward_by_hand(backend, host_rng):
    float64_or_skip(backend)
    x = host_rng.normal(size=(3, 2))
    np.testing.assert_array_equal(run_forward(backend, nnx.Linear(xp=backend), x), x)


def test_predictions(backend):
    outputs = backend.asarray(np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]]))
    np.testing.assert_array_equal(backend.to_numpy(nnx.Softmax(xp=backend).predictions(outputs)), [1, 0])
    np.testing.assert_array_equal(
        backend.to_numpy(nnx.Sigmoid(xp=backend).predictions(outputs)), [[0, 1, 0], [1, 0, 0]]
    )
    np.testing.assert_array_equal(
        backend.to_numpy(nnx.Linear(xp=backend).predictions(outputs)), backend.to_numpy(outputs)
    )


# Losses -----------------------------------------------------------------------------------------------------------


def test_categorical_crossentropy_by_hand(backend):
    loss = nnx.CategoricalCrossentropy(xp=backend)
    y_pred = backend.asarray(np.array([[0.7, 0.1, 0.2], [0.1, 0.5, 0.4], [0.02, 0.9, 0.08]]), dtype="float32")
    expected = -np.mean(np.log([0.7, 0.5, 0.9]))
    sparse = backend.asarray(np.array([0, 1, 1], dtype=np.uint8))
    one_hot = backend.asarray(np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0]], dtype=np.int64))
    assert float(backend.to_numpy(loss.calculate(y_pred, sparse))) == pytest.approx(expected, rel=1e-6)
    assert float(backend.to_numpy(loss.calculate(y_pred, one_hot))) == pytest.approx(expected, rel=1e-6)


def test_categorical_crossentropy_clips(backend):
    loss = nnx.CategoricalCrossentropy(xp=backend)
    y_pred = backend.asarray(np.array([[0.0, 1.0]]))
    value = float(backend.to_numpy(loss.calculate(y_pred, backend.asarray(np.array([0])))))
    assert value == pytest.approx(-np.log(1e-7))


@pytest.mark.parametrize("one_hot", [False, True])
def test_softmax_crossentropy_equals_softmax_then_crossentropy(backend, host_rng, one_hot):
    float64_or_skip(backend)
    logits = backend.asarray(host_rng.normal(size=(6, 4)))
    labels = np.array([0, 3, 1, 2, 2, 0])
    targets = backend.asarray(np.eye(4)[labels] if one_hot else labels)
    combined = nnx.SoftmaxCategoricalCrossentropy(xp=backend)
    combined_loss = combined.forward(logits, targets)
    combined.backward(combined.output, targets)

    softmax, loss = nnx.Softmax(xp=backend), nnx.CategoricalCrossentropy(xp=backend)
    softmax.forward(logits)
    separate_loss = loss.calculate(softmax.output, targets)
    loss.backward(softmax.output, targets)
    softmax.backward(loss.dinputs)

    np.testing.assert_allclose(backend.to_numpy(combined_loss), backend.to_numpy(separate_loss), rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(combined.dinputs), backend.to_numpy(softmax.dinputs), atol=1e-12)


def test_softmax_crossentropy_gradient_wrt_logits(backend, host_rng):
    float64_or_skip(backend)
    combined = nnx.SoftmaxCategoricalCrossentropy(xp=backend)
    labels = backend.asarray(np.array([1, 0, 2]))
    logits = host_rng.normal(size=(3, 3))
    combined.forward(backend.asarray(logits), labels)
    combined.backward(combined.output, labels)

    def f(z):
        return float(backend.to_numpy(combined.forward(backend.asarray(z), labels)))

    assert_gradient_close(backend.to_numpy(combined.dinputs), numeric_gradient(f, logits))


def test_binary_crossentropy_by_hand(backend):
    float64_or_skip(backend)
    loss = nnx.BinaryCrossentropy(xp=backend)
    y_pred = np.array([[0.9, 0.2], [0.3, 0.6]])
    y_true = np.array([[1, 0], [0, 0]], dtype=np.uint8)
    expected = -np.mean([np.log(0.9), np.log(0.8), np.log(0.7), np.log(0.4)])
    value = loss.calculate(backend.asarray(y_pred), backend.asarray(y_true))
    assert float(backend.to_numpy(value)) == pytest.approx(expected, rel=1e-12)


def test_mean_squared_error_by_hand(backend):
    loss = nnx.MeanSquaredError(xp=backend)
    value = loss.calculate(backend.asarray(np.array([[1.0], [3.0]])), backend.asarray(np.array([[0.0], [1.0]])))
    assert float(backend.to_numpy(value)) == pytest.approx(2.5)


def test_mean_absolute_error_by_hand(backend):
    loss = nnx.MeanAbsoluteError(xp=backend)
    value = loss.calculate(backend.asarray(np.array([[1.0], [3.0]])), backend.asarray(np.array([[0.0], [1.0]])))
    assert float(backend.to_numpy(value)) == pytest.approx(1.5)


def test_loss_rejects_mismatched_targets(backend):
    loss = nnx.CategoricalCrossentropy(xp=backend)
    y_pred = backend.asarray(np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="expected targets for 3 samples"):
        loss.calculate(y_pred, backend.asarray(np.array([0, 1])))
    with pytest.raises(ValueError, match="one-hot rows of shape"):
        loss.calculate(y_pred, backend.asarray(np.ones((3, 5))))


def test_regularization_loss_by_hand(backend):
    float64_or_skip(backend)
    layer = nnx.Dense(2, 2, 0.1, 0.2, 0.3, 0.4, xp=backend, dtype="float64")
    layer.weights = backend.asarray(np.array([[1.0, -2.0], [0.5, 0.0]]))
    layer.biases = backend.asarray(np.array([[-1.0, 1.0]]))
    expected = 0.1 * 3.5 + 0.2 * 5.25 + 0.3 * 2.0 + 0.4 * 2.0
    loss = nnx.CategoricalCrossentropy(xp=backend)
    assert float(backend.to_numpy(loss.regularization_loss(layer))) == pytest.approx(expected)
    loss.remember_trainable_layers([layer, layer])
    assert float(backend.to_numpy(loss.regularization_loss())) == pytest.approx(2 * expected)
    assert loss.regularization_loss(nnx.Dense(2, 2, xp=backend)) == 0


# Accuracy ---------------------------------------------------------------------------------------------------------


def test_accuracy_helper(backend):
    output = backend.asarray(np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), dtype="float32")
    labels = backend.asarray(np.array([1, 0, 0, 0]))
    assert float(backend.to_numpy(nnx.accuracy(output, labels))) == pytest.approx(0.75)
    one_hot = backend.asarray(np.eye(2)[[1, 0, 0, 0]])
    assert float(backend.to_numpy(nnx.accuracy(output, one_hot))) == pytest.approx(0.75)


def test_accuracy_classes_accumulate_over_batches(backend):
    binary = nnx.metrics.Categorical(binary=True, xp=backend)
    with pytest.raises(RuntimeError, match="no batches to average"):
        binary.calculate_accumulated()
    predictions = backend.asarray(np.array([[1, 0], [1, 1]]))
    targets = backend.asarray(np.array([[1, 1], [1, 1]]))
    assert float(backend.to_numpy(binary.calculate(predictions, targets))) == pytest.approx(0.75)
    binary.calculate(predictions[:1, ...], targets[:1, ...])
    assert float(backend.to_numpy(binary.calculate_accumulated())) == pytest.approx(4 / 6)

    regression = nnx.metrics.Regression(xp=backend)
    y = backend.asarray(np.array([[0.0], [1.0], [2.0], [3.0]]))
    regression.init(y)
    assert float(backend.to_numpy(regression.precision)) == pytest.approx(np.std([0, 1, 2, 3]) / 250)
    near = backend.asarray(np.array([[0.001], [1.5], [2.0], [3.0]]))
    assert float(backend.to_numpy(regression.calculate(near, y))) == pytest.approx(0.75)
