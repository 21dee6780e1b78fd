"""Every layer, activation and loss on every backend: forward against hand-computed values, backward against
central finite differences in float64, and errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

import nnx
from tests.conftest import float64_or_skip
from tests.helpers import assert_gradient_close, numeric_gradient


def run_forward(backend, component, x_host, *extra):
    component.forward(backend.asarray(x_host), *extra)
    return backend.to_numpy(component.output)


def check_input_gradient(backend, component, x_host, upstream):
    """d/dx of sum(upstream * component(x)) via backward(), against finite differences."""
    component.forward(backend.asarray(x_host))
    component.backward(backend.asarray(upstream))
    analytic = backend.to_numpy(component.dinputs)

    def f(x):
        return float(np.sum(upstream * run_forward(backend, component, x)))

    assert_gradient_close(analytic, numeric_gradient(f, x_host))


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


@pytest.mark.parametrize(
    "regularizers",
    [
        {},
        {
            "weight_regularizer_l1": 0.1,
            "weight_regularizer_l2": 0.2,
            "bias_regularizer_l1": 0.3,
            "bias_regularizer_l2": 0.4,
        },
    ],
)
def test_dense_gradients(backend, host_rng, regularizers):
    float64_or_skip(backend)
    layer = nnx.Dense(3, 4, xp=backend, dtype="float64", rng=host_rng, **regularizers)
    layer.biases = backend.asarray(host_rng.normal(size=(1, 4)))
    x = host_rng.normal(size=(5, 3))
    upstream = host_rng.normal(size=(5, 4))
    check_input_gradient(backend, layer, x, upstream)

    loss = nnx.CategoricalCrossentropy(xp=backend)
    inputs = backend.asarray(x)

    def objective(weights, biases):
        layer.weights, layer.biases = backend.asarray(weights), backend.asarray(biases)
        layer.forward(inputs)
        data = np.sum(upstream * backend.to_numpy(layer.output))
        return data + float(backend.to_numpy(backend.xp.asarray(loss.regularization_loss(layer))))

    weights, biases = backend.to_numpy(layer.weights), backend.to_numpy(layer.biases)
    objective(weights, biases)
    layer.backward(backend.asarray(upstream))
    assert_gradient_close(backend.to_numpy(layer.dweights), numeric_gradient(lambda w: objective(w, biases), weights))
    assert_gradient_close(backend.to_numpy(layer.dbiases), numeric_gradient(lambda b: objective(weights, b), biases))


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


def test_relu_forward_and_gradient(backend, host_rng):
    float64_or_skip(backend)
    relu = nnx.ReLU(xp=backend)
    np.testing.assert_array_equal(run_forward(backend, relu, np.array([[-1.0, 0.0, 2.0]])), [[0.0, 0.0, 2.0]])
    x = host_rng.normal(size=(4, 5))
    x[np.abs(x) < 1e-3] = 0.5
    check_input_gradient(backend, relu, x, host_rng.normal(size=(4, 5)))


def test_softmax_forward_by_hand_and_stability(backend):
    softmax = nnx.Softmax(xp=backend)
    out = run_forward(backend, softmax, np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 1000.0]]))
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(out[0], e / e.sum())
    np.testing.assert_allclose(out[1], [1 / 3] * 3)


def test_softmax_gradient(backend, host_rng):
    float64_or_skip(backend)
    check_input_gradient(backend, nnx.Softmax(xp=backend), host_rng.normal(size=(4, 3)), host_rng.normal(size=(4, 3)))


def test_softmax_backward_equals_the_full_jacobian(backend, host_rng):
    float64_or_skip(backend)
    softmax = nnx.Softmax(xp=backend)
    x, upstream = host_rng.normal(size=(3, 4)), host_rng.normal(size=(3, 4))
    s = run_forward(backend, softmax, x)
    softmax.backward(backend.asarray(upstream))
    expected = np.stack([(np.diag(row) - np.outer(row, row)) @ d for row, d in zip(s, upstream, strict=True)])
    np.testing.assert_allclose(backend.to_numpy(softmax.dinputs), expected, atol=1e-12)


def test_sigmoid_forward_and_gradient(backend, host_rng):
    float64_or_skip(backend)
    sigmoid = nnx.Sigmoid(xp=backend)
    np.testing.assert_allclose(run_forward(backend, sigmoid, np.array([[0.0, np.log(3.0)]])), [[0.5, 0.75]])
    check_input_gradient(backend, sigmoid, host_rng.normal(size=(4, 2)), host_rng.normal(size=(4, 2)))


def test_linear_forward_and_gradient(backend, host_rng):
    float64_or_skip(backend)
    linear = nnx.Linear(xp=backend)
    x = host_rng.normal(size=(3, 2))
    np.testing.assert_array_equal(run_forward(backend, linear, x), x)
    check_input_gradient(backend, linear, x, host_rng.normal(size=(3, 2)))


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


def probabilities(rng, n: int, k: int) -> np.ndarray:
    p = rng.uniform(0.2, 1.0, size=(n, k))
    return p / p.sum(axis=1, keepdims=True)


def check_loss_gradient(backend, loss, y_pred, y_true):
    y_dev = backend.asarray(y_true)
    loss.backward(backend.asarray(y_pred), y_dev)
    analytic = backend.to_numpy(loss.dinputs)

    def f(p):
        return float(backend.to_numpy(loss.calculate(backend.asarray(p), y_dev)))

    assert_gradient_close(analytic, numeric_gradient(f, y_pred))


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
def test_categorical_crossentropy_gradient(backend, host_rng, one_hot):
    float64_or_skip(backend)
    labels = np.array([0, 2, 1, 2])
    targets = np.eye(3)[labels] if one_hot else labels
    check_loss_gradient(backend, nnx.CategoricalCrossentropy(xp=backend), probabilities(host_rng, 4, 3), targets)


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


def test_binary_crossentropy_by_hand_and_gradient(backend, host_rng):
    float64_or_skip(backend)
    loss = nnx.BinaryCrossentropy(xp=backend)
    y_pred = np.array([[0.9, 0.2], [0.3, 0.6]])
    y_true = np.array([[1, 0], [0, 0]], dtype=np.uint8)
    expected = -np.mean([np.log(0.9), np.log(0.8), np.log(0.7), np.log(0.4)])
    value = loss.calculate(backend.asarray(y_pred), backend.asarray(y_true))
    assert float(backend.to_numpy(value)) == pytest.approx(expected, rel=1e-12)
    check_loss_gradient(backend, loss, host_rng.uniform(0.1, 0.9, size=(5, 2)), host_rng.integers(0, 2, size=(5, 2)))


def test_mean_squared_error_by_hand_and_gradient(backend, host_rng):
    float64_or_skip(backend)
    loss = nnx.MeanSquaredError(xp=backend)
    value = loss.calculate(backend.asarray(np.array([[1.0], [3.0]])), backend.asarray(np.array([[0.0], [1.0]])))
    assert float(backend.to_numpy(value)) == pytest.approx(2.5)
    check_loss_gradient(backend, loss, host_rng.normal(size=(5, 2)), host_rng.normal(size=(5, 2)))


def test_mean_absolute_error_by_hand_and_gradient(backend, host_rng):
    float64_or_skip(backend)
    loss = nnx.MeanAbsoluteError(xp=backend)
    value = loss.calculate(backend.asarray(np.array([[1.0], [3.0]])), backend.asarray(np.array([[0.0], [1.0]])))
    assert float(backend.to_numpy(value)) == pytest.approx(1.5)
    y_pred = host_rng.normal(size=(5, 2))
    check_loss_gradient(backend, loss, y_pred, y_pred + host_rng.choice([-1.0, 1.0], size=(5, 2)))


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
