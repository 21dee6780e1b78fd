"""A component of your own written slightly wrong is named at the Model's seams (`nnx.training.handoff`): a layer's
`output` and `dinputs`, a loss's `dinputs`, the output layer's `predictions`, a NaN it makes, a layer added twice,
and a Softmax subclass that computes something else. Each error comes before the optimizer changes anything."""

from __future__ import annotations

import numpy as np
import pytest

import nnx
from nnx.training import handoff
from tests.conftest import float64_or_skip
from tests.helpers import assert_rejects, numeric_gradient, strict_backend

X = np.array([[0.1, 0.2], [0.3, -0.1], [-0.2, 0.4], [0.5, 0.5]])
LABELS = np.array([0, 1, 2, 1])
VALUES = np.array([[0.5], [-0.2], [0.1], [0.3]])


class GoodReLU(nnx.Component):
    def forward(self, inputs, training=False):
        self.inputs = inputs
        self.output = inputs * self.xp.astype(inputs > 0, inputs.dtype)

    def backward(self, dvalues):
        self.dinputs = dvalues * self.xp.astype(self.inputs > 0, dvalues.dtype)


class ForwardReturns(GoodReLU):
    def forward(self, inputs, training=False):
        self.inputs = inputs
        return inputs


class ForwardOneD(GoodReLU):
    def forward(self, inputs, training=False):
        self.inputs = inputs
        self.output = self.xp.sum(inputs, axis=1)


class ForwardDropsRow(GoodReLU):
    def forward(self, inputs, training=False):
        self.inputs = inputs
        self.output = inputs[:-1, :]


class HostOutput(GoodReLU):
    def forward(self, inputs, training=False):
        super().forward(inputs, training)
        self.output = self.backend.to_numpy(self.output)


class Doubler(nnx.Component):
    def forward(self, inputs, training=False):
        self.output = self.xp.concat([inputs, -inputs], axis=1)

    def backward(self, dvalues):
        half = dvalues.shape[1] // 2
        self.dinputs = dvalues[:, :half] - dvalues[:, half:]


class BackwardForgets(GoodReLU):
    def backward(self, dvalues):
        self.grad = dvalues


class BackwardReturns(GoodReLU):
    def backward(self, dvalues):
        return dvalues


class BackwardNone(GoodReLU):
    def backward(self, dvalues):
        self.dinputs = None


class BackwardTransposed(GoodReLU):
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dinputs = self.dinputs.T


class BackwardStale(GoodReLU):
    """Sets dinputs on its first call only (a typo, `self.dinput`, afterwards)."""

    def backward(self, dvalues):
        if getattr(self, "dinputs", None) is None:
            super().backward(dvalues)
        else:
            self.dinput = dvalues


class HostDinputs(GoodReLU):
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dinputs = self.backend.to_numpy(self.dinputs)


class LinearFloat64(nnx.Component):
    def forward(self, inputs, training=False):
        self.output = self.xp.astype(inputs, self.xp.float64)

    def backward(self, dvalues):
        self.dinputs = dvalues

    def predictions(self, outputs):
        return outputs


class HalfSquaredError(nnx.losses.Loss):
    def forward(self, y_pred, y_true):
        return self.xp.mean((y_true - y_pred) ** 2, axis=-1) / 2

    def backward(self, dvalues, y_true):
        self.dinputs = (dvalues - y_true) / dvalues.shape[0]


class LossNoBackward(nnx.losses.Loss):
    def forward(self, y_pred, y_true):
        return self.xp.mean((y_true - y_pred) ** 2, axis=-1) / 2


class LossBackwardReturns(HalfSquaredError):
    def backward(self, dvalues, y_true):
        return (dvalues - y_true) / dvalues.shape[0]


class LossWrongShape(HalfSquaredError):
    def backward(self, dvalues, y_true):
        super().backward(dvalues, y_true)
        self.dinputs = self.dinputs[:, 0]


class LossHostGradient(HalfSquaredError):
    def backward(self, dvalues, y_true):
        super().backward(dvalues, y_true)
        self.dinputs = self.backend.to_numpy(self.dinputs)


class MySoftmax(nnx.Component):
    def forward(self, inputs, training=False):
        exp = self.xp.exp(inputs - self.xp.max(inputs, axis=1, keepdims=True))
        self.output = exp / self.xp.sum(exp, axis=1, keepdims=True)

    def backward(self, dvalues):
        s = self.output
        self.dinputs = s * (dvalues - self.xp.sum(dvalues * s, axis=1, keepdims=True))

    def predictions(self, outputs):
        return self.xp.argmax(outputs, axis=1)


class ScoresPredictions(MySoftmax):
    def predictions(self, outputs):
        return outputs


class ListPredictions(MySoftmax):
    def predictions(self, outputs):
        return [0] * outputs.shape[0]


class ShortPredictions(MySoftmax):
    def predictions(self, outputs):
        return self.xp.argmax(outputs, axis=1)[:-1]


class HostPredictions(MySoftmax):
    def predictions(self, outputs):
        return np.argmax(self.backend.to_numpy(outputs), axis=1)


class LogLayer(GoodReLU):
    def forward(self, inputs, training=False):
        self.inputs = inputs
        self.output = self.xp.log(inputs)


class NaNSGD(nnx.optimizers.Optimizer):
    def update_array(self, values, gradient, state, kind):
        return values - self.current_learning_rate * gradient / (gradient * 0)


class TemperatureSoftmax(nnx.Softmax):
    CONFIG = ("temperature",)

    def __init__(self, temperature=2.0, *, xp=None):
        super().__init__(xp)
        self.temperature = temperature

    def forward(self, inputs, training=False):
        super().forward(inputs / self.temperature, training)

    def backward(self, dvalues):
        super().backward(dvalues)
        self.dinputs = self.dinputs / self.temperature


class SmoothedCCE(nnx.CategoricalCrossentropy):
    """Cross-entropy whose backward is its own: never to be replaced by the fused softmax gradient."""

    def backward(self, dvalues, y_true):
        super().backward(dvalues, y_true)
        self.dinputs = self.dinputs * 0.5


def classifier(backend, mid=None, last=None, *, loss=None, optimizer=None, dtype=None):
    """Dense(2, 4) - `mid` (ReLU) - Dense(4, 3) - `last` (Softmax), cross-entropy and SGD, finalized."""
    with nnx.backends.use(backend):
        nnx.seed(0)
        model = nnx.Model()
        for layer in (nnx.Dense(2, 4, dtype=dtype), mid or nnx.ReLU(), nnx.Dense(4, 3, dtype=dtype)):
            model.add(layer)
        model.add(last or nnx.Softmax())
        model.set(
            loss=loss or nnx.CategoricalCrossentropy(),
            optimizer=optimizer or nnx.SGD(learning_rate=0.5),
            accuracy=nnx.metrics.Categorical(),
        )
        model.finalize()
    return model


def regressor(backend, last=None, *, loss=None):
    """Dense(2, 4) - ReLU - Dense(4, 1) - `last` (Linear), `loss` (MeanSquaredError) and SGD, finalized."""
    with nnx.backends.use(backend):
        nnx.seed(0)
        model = nnx.Model()
        for layer in (nnx.Dense(2, 4), nnx.ReLU(), nnx.Dense(4, 1), last or nnx.Linear()):
            model.add(layer)
        model.set(
            loss=loss or nnx.MeanSquaredError(),
            optimizer=nnx.SGD(learning_rate=0.1),
            accuracy=nnx.metrics.Regression(),
        )
        model.finalize()
    return model


def train(model, X=X, y=LABELS, **kwargs):
    return lambda: model.train(X, y, print_every=None, **kwargs)


def built(backend, cls, *args):
    with nnx.backends.use(backend):
        return cls(*args)


# A layer's output --------------------------------------------------------------------------------------------------


def test_a_forward_that_returns_instead_of_setting_output_is_named(backend):
    model = classifier(backend, built(backend, ForwardReturns))
    assert_rejects(
        model,
        TypeError,
        r"ForwardReturns\(\) at layer 1\.forward\(\)",
        "got no self.output",
        train(model),
        r"; store the result in self\.output",
    )


def test_a_one_d_output_is_named_not_the_next_dense(backend):
    model = classifier(backend, built(backend, ForwardOneD))
    assert_rejects(
        model,
        ValueError,
        r"ForwardOneD\(\) at layer 1",
        r"shaped \(4, features\), got shape \(4,\)",
        train(model),
        "; keep the samples along axis 0",
    )


def test_an_output_that_drops_a_row_is_named_not_the_loss(backend):
    model = classifier(backend, built(backend, ForwardDropsRow))
    assert_rejects(
        model,
        ValueError,
        r"ForwardDropsRow\(\) at layer 1",
        r"got shape \(3, 4\) from inputs shaped \(4, 4\)",
        train(model),
        "; keep the samples",
    )


def test_a_host_output_on_array_api_strict_is_named():
    strict = strict_backend()
    model = classifier(strict, built(strict, HostOutput))
    assert_rejects(
        model,
        TypeError,
        r"HostOutput\(\) at layer 1\.forward\(\)",
        r"backend 'array_api_strict'.*got numpy\.ndarray",
        train(model),
        r"; compute it with self\.xp",
    )


def test_a_float64_output_in_a_float32_model_is_named_not_the_optimizer(backend):
    float64_or_skip(backend)
    model = regressor(backend, built(backend, LinearFloat64))
    assert_rejects(
        model,
        TypeError,
        r"LinearFloat64\(\) at layer 3\.forward\(\)",
        "in float32 like inputs, got float64",
        train(model, y=VALUES),
        "; compute in the dtype",
    )


def test_a_layer_that_widens_before_a_dense_sized_for_less_is_named(backend):
    model = classifier(backend, built(backend, Doubler))
    assert_rejects(
        model,
        ValueError,
        r"Dense\(4 -> 3\) at layer 2 expected 4 features from Doubler\(\) at layer 1",
        "got 8",
        train(model),
        "; build it with n_inputs=8",
    )


# A layer's gradient ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "got"),
    [(BackwardForgets, "got None"), (BackwardReturns, "got None"), (BackwardNone, "got None")],
)
def test_a_backward_that_sets_no_dinputs_is_named(backend, cls, got):
    model = classifier(backend, built(backend, cls))
    assert_rejects(
        model,
        TypeError,
        rf"{cls.__name__}\(\) at layer 1\.backward\(\)",
        f"self.dinputs to an array.*{got}",
        train(model),
        "; assign the gradient to self.dinputs in every call",
    )


def test_a_stale_dinputs_is_named_at_the_next_step(backend):
    model = classifier(backend, built(backend, BackwardStale))
    model.train(X, LABELS, print_every=None)
    assert_rejects(
        model,
        TypeError,
        r"BackwardStale\(\) at layer 1\.backward\(\)",
        "the array it set in the call before",
        train(model),
        "; assign the gradient",
    )


def test_a_transposed_dinputs_is_named_not_the_dense_before(backend):
    model = classifier(backend, built(backend, BackwardTransposed))
    assert_rejects(
        model,
        ValueError,
        r"BackwardTransposed\(\) at layer 1\.backward\(\)",
        r"like its inputs \(3, 4\), got shape \(4, 3\)",
        train(model, X[:3], LABELS[:3]),
        "; give one gradient",
    )


def test_a_host_dinputs_on_array_api_strict_is_named():
    strict = strict_backend()
    model = classifier(strict, built(strict, HostDinputs))
    assert_rejects(
        model,
        TypeError,
        r"HostDinputs\(\) at layer 1\.backward\(\)",
        "got numpy.ndarray",
        train(model),
        r"; compute it with self\.xp",
    )


# A loss's gradient -------------------------------------------------------------------------------------------------


def test_a_loss_without_backward_is_named(backend):
    model = regressor(backend, loss=built(backend, LossNoBackward))
    assert_rejects(
        model,
        TypeError,
        r"LossNoBackward\(\)",
        r"expected a backward\(dvalues, y_true\) method",
        train(model, y=VALUES),
        "; define it to set self.dinputs",
    )


def test_a_loss_backward_that_returns_is_named_not_linear(backend):
    model = regressor(backend, loss=built(backend, LossBackwardReturns))
    assert_rejects(
        model,
        TypeError,
        r"LossBackwardReturns\(\)\.backward\(\)",
        "got None",
        train(model, y=VALUES),
        "; assign the gradient",
    )


def test_a_loss_gradient_of_the_wrong_shape_is_named_not_linear(backend):
    model = regressor(backend, loss=built(backend, LossWrongShape))
    assert_rejects(
        model,
        ValueError,
        r"LossWrongShape\(\)\.backward\(\)",
        r"like the outputs \(4, 1\), got shape \(4,\)",
        train(model, y=VALUES),
        "; give one gradient per input value",
    )


def test_a_host_loss_gradient_on_array_api_strict_is_named():
    strict = strict_backend()
    model = regressor(strict, loss=built(strict, LossHostGradient))
    assert_rejects(
        model,
        TypeError,
        r"LossHostGradient\(\)\.backward\(\)",
        "got numpy.ndarray",
        train(model, y=VALUES),
        r"; compute it with self\.xp",
    )


# Predictions -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "error", "got"),
    [
        (ScoresPredictions, ValueError, r"one class per row, shaped \(4,\).*got shape \(4, 3\)"),
        (ListPredictions, TypeError, "got a list of length 4"),
        (ShortPredictions, ValueError, r"got shape \(3,\) for outputs shaped \(4, 3\)"),
    ],
)
def test_wrong_predictions_are_named_not_the_accuracy(backend, cls, error, got):
    model = classifier(backend, last=built(backend, cls))
    assert_rejects(
        model, error, rf"{cls.__name__}\(\) at layer 3\.predictions\(\)", got, train(model), "; (return|compute)"
    )
    with pytest.raises(error, match=rf"{cls.__name__}\(\) at layer 3\.predictions\(\)"):
        model.evaluate(X, LABELS, verbose=False)


def test_host_predictions_on_array_api_strict_are_named():
    strict = strict_backend()
    model = classifier(strict, last=built(strict, HostPredictions))
    assert_rejects(
        model,
        TypeError,
        r"HostPredictions\(\) at layer 3\.predictions\(\)",
        "got numpy.ndarray",
        train(model),
        r"; compute it with self\.xp",
    )


def test_right_components_of_your_own_train_as_nnx_own(backend):
    mine = classifier(backend, built(backend, GoodReLU), built(backend, MySoftmax))
    ours = classifier(backend)
    for model in (mine, ours):
        model.train(X, LABELS, epochs=3, print_every=None)
    for (w0, b0), (w1, b1) in zip(mine.get_parameters(), ours.get_parameters(), strict=True):
        np.testing.assert_allclose(backend.to_numpy(w0), backend.to_numpy(w1), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(backend.to_numpy(b0), backend.to_numpy(b1), rtol=1e-5, atol=1e-6)


def test_nnx_own_components_are_trusted_and_yours_are_checked():
    assert not any(handoff.users(part) for part in (nnx.Dense(2, 3), nnx.ReLU(), nnx.Softmax(), nnx.SGD()))
    assert handoff.users(GoodReLU()) and handoff.users(TemperatureSoftmax())


# A NaN of your own, a layer added twice, a Softmax of your own -----------------------------------------------------


def test_a_divergence_names_the_layer_of_your_own_that_made_the_nan(backend):
    model = classifier(backend, built(backend, LogLayer))
    with pytest.raises(nnx.DivergenceError, match=r"LogLayer\(\) at layer 1 is the first layer whose output") as info:
        model.train(X, LABELS, epochs=2, print_every=None)
    assert "check its forward" in str(info.value) and "lower the learning rate" in str(info.value)


def test_a_divergence_with_finite_layers_names_the_optimizer_of_your_own(backend):
    model = classifier(backend, optimizer=built(backend, NaNSGD, 0.1))
    with pytest.raises(nnx.DivergenceError, match=r"lower the learning rate.*check NaNSGD\(.*\)\.update_array"):
        model.train(X, LABELS, epochs=2, print_every=None)


def test_a_divergence_of_nnx_own_model_keeps_the_learning_rate_fix():
    model = classifier("numpy", optimizer=nnx.SGD(learning_rate=1e30))
    with pytest.raises(nnx.DivergenceError, match=r"lower the learning rate \(now 1e\+30\) or add decay$"):
        model.train(X * 1e10, LABELS, epochs=3, print_every=None)


def test_the_same_layer_object_added_twice_is_refused_naming_both_positions():
    model = nnx.Model()
    relu = nnx.ReLU()
    for layer in (nnx.Dense(2, 4), relu, nnx.Dense(4, 4)):
        model.add(layer)
    with pytest.raises(
        ValueError, match=r"ReLU\(\), which is layer 1 of this model already; as layer 3 too.*new instance"
    ):
        model.add(relu)
    assert len(model.layers) == 3 and relu.position == 1


def test_a_softmax_subclass_with_its_own_math_is_not_fused_and_its_gradient_is_right():
    model = classifier("numpy", last=TemperatureSoftmax(4.0), dtype="float64")
    assert model.softmax_classifier_output is None
    assert classifier("numpy").softmax_classifier_output is not None
    first = model.layers[0]
    output = model.forward(X, training=True)
    model.loss.calculate(output, LABELS)
    model.backward(output, LABELS)
    analytic = first.dweights.copy()
    weights = first.weights.copy()

    def loss_at(w):
        first.weights = w
        model.loss.new_pass()
        return float(model.loss.calculate(model.forward(X, training=True), LABELS))

    numeric = numeric_gradient(loss_at, weights)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_a_cross_entropy_with_its_own_backward_is_not_fused():
    model = classifier("numpy", loss=SmoothedCCE())
    assert model.softmax_classifier_output is None
    model.train(X, LABELS, print_every=None)
    assert model.optimizer.iterations == 1


class NoTrainingFlag(GoodReLU):
    def forward(self, inputs):
        super().forward(inputs)


def test_a_forward_without_the_training_flag_trains_as_with_it(backend):
    mine = classifier(backend, built(backend, NoTrainingFlag))
    ours = classifier(backend)
    for model in (mine, ours):
        model.train(X, LABELS, epochs=2, print_every=None)
    for (w0, _), (w1, _) in zip(mine.get_parameters(), ours.get_parameters(), strict=True):
        np.testing.assert_allclose(backend.to_numpy(w0), backend.to_numpy(w1), rtol=1e-6)
    assert not handoff.takes_training(NoTrainingFlag()) and handoff.takes_training(GoodReLU())
