"""Components written by users, slightly wrong or merely unusual: each mistake is refused where it is made, naming the
component, what was expected and the fix, before anything changes; each reasonable choice trains."""

from __future__ import annotations

import numpy as np
import pytest

import nnx
from nnx.datasets import spiral_data
from tests.conftest import float64_or_skip

nnx.seed(0)
X, Y = spiral_data(samples=100, classes=3)  # the same data in every process


def spiral_model(backend, *, optimizer=nnx.SGD, loss=nnx.CategoricalCrossentropy, layers=None) -> nnx.Model:
    """The chapter-10 network (narrow), finalized, with every part built on `backend` (the factories called there)."""
    nnx.seed(0)
    with nnx.backends.use(backend):
        model = nnx.Model()
        for layer in layers() if layers else (nnx.Dense(2, 8), nnx.ReLU(), nnx.Dense(8, 3), nnx.Softmax()):
            model.add(layer)
        model.set(loss=loss(), optimizer=optimizer(), accuracy=nnx.metrics.Categorical())
        model.finalize()
    return model


def host_parameters(model: nnx.Model) -> list[np.ndarray]:
    layers = model.trainable_layers
    return [model.backend.to_numpy(array) for layer in layers for array in (layer.weights, layer.biases)]


def assert_unchanged(model: nnx.Model, before: list[np.ndarray]) -> None:
    after = host_parameters(model)
    for old, new in zip(before, after, strict=True):
        assert new.dtype == old.dtype
        np.testing.assert_array_equal(new, old)
    assert model.optimizer.iterations == 0
    assert model.optimizer.state == {}


# Optimizers ---------------------------------------------------------------------------------------------------------


class Returning(nnx.optimizers.Optimizer):
    """An optimizer whose update returns what the function UPDATES[case] makes of the parameters."""

    CONFIG = ("case", "learning_rate", "decay")

    def __init__(self, case, learning_rate=0.1, decay=0.0, *, xp=None):
        super().__init__(learning_rate, decay, xp=xp)
        self.case = case

    def update_array(self, values, gradient, state, kind):
        return UPDATES[self.case](self, values)


def wrong_for_the_second_layer(self, values):
    moved = values - 0.5
    return moved if values.shape[0] == 2 else moved[:1, ...]  # the first Dense layer takes 2 inputs


BAD_UPDATES = {
    "none": (lambda self, values: None, TypeError, r"returned None \(NoneType\)"),
    "scalar": (lambda self, values: 1.0, TypeError, r"returned 1\.0 \(float\)"),
    "0-d": (lambda self, values: self.xp.sum(values), (TypeError, ValueError), r"returned .*\(\)"),
    "shape": (lambda self, values: values[:1, ...], ValueError, r"returned float32 \(1, 8\)"),
    "transposed": (lambda self, values: self.xp.matrix_transpose(values), ValueError, r"returned float32 \(8, 2\)"),
    "float64": (lambda self, values: self.xp.astype(values, self.xp.float64), TypeError, r"returned float64 \(2, 8\)"),
}
UPDATES = {
    **{case: function for case, (function, _, _) in BAD_UPDATES.items()},
    "host": lambda self, values: self.backend.to_numpy(values),
    "second layer": wrong_for_the_second_layer,
    "forgotten": lambda self, values: None,
}


@pytest.mark.parametrize("case", list(BAD_UPDATES))
def test_a_bad_update_is_refused_naming_the_optimizer_and_the_parameter(backend, case):
    _, error, received = BAD_UPDATES[case]
    if case == "float64":
        float64_or_skip(backend)
    model = spiral_model(backend, optimizer=lambda: Returning(case))
    before = host_parameters(model)
    expected = "for the weights of Dense(2 -> 8) at layer 0, which are float32 (2, 8) on backend"
    with pytest.raises(error, match=rf"Returning\(learning_rate=0\.1, decay=0\.0\)\.update_array {received}") as info:
        model.train(X, Y, epochs=1, print_every=None)
    assert expected in str(info.value)
    assert "return an array of that backend, shape and dtype" in str(info.value)
    assert_unchanged(model, before)


def test_an_update_on_another_backend_is_refused(backend):
    if backend.name == "numpy":
        pytest.skip("a NumPy array is the numpy backend's own")
    model = spiral_model(backend, optimizer=lambda: Returning("host"))
    before = host_parameters(model)
    with pytest.raises(TypeError, match=rf"update_array returned .* on backend {backend.name!r}"):
        model.train(X, Y, epochs=1, print_every=None)
    assert_unchanged(model, before)


def test_a_refusal_at_a_later_layer_undoes_the_earlier_layers_update(backend):
    model = spiral_model(backend, optimizer=lambda: Returning("second layer"))
    before = host_parameters(model)
    with pytest.raises(ValueError, match=r"update_array returned float32 \(1, 3\) for the weights of Dense\(8 -> 3\)"):
        model.train(X, Y, epochs=1, print_every=None)
    assert_unchanged(model, before)


def test_a_refused_update_outside_a_model_leaves_the_layer_as_it_was(backend):
    layer = nnx.Dense(2, 3, xp=backend)
    layer.forward(backend.asarray(X, dtype="float32"))
    layer.backward(backend.asarray(np.ones((300, 3)), dtype="float32"))
    weights, biases = layer.weights, layer.biases
    optimizer = Returning("forgotten", xp=backend)
    with pytest.raises(TypeError, match=r"update_array returned None"):
        optimizer.update_params(layer)
    assert layer.weights is weights and layer.biases is biases
    assert optimizer.state == {}


def test_a_gradient_of_another_dtype_is_blamed_on_the_layer_not_on_the_optimizer(backend):
    float64_or_skip(backend)
    model = spiral_model(backend, layers=lambda: (Float64Weights(2, 8), nnx.ReLU(), nnx.Dense(8, 3), nnx.Softmax()))
    before = host_parameters(model)
    expected = (
        r"SGD\(.*\) got the gradient dweights float64 \(2, 8\) for the weights of Float64Weights\(.*\) at layer 0"
    )
    with pytest.raises(TypeError, match=expected) as info:
        model.train(X, Y, epochs=1, print_every=None)
    assert "its backward" in str(info.value) and "astype" in str(info.value)
    assert_unchanged(model, before)


class NoSuper(nnx.optimizers.Optimizer):
    """An optimizer whose __init__ forgets the base class's."""

    def __init__(self, rate=0.1):
        self.rate = rate

    def update_array(self, values, gradient, state, kind):
        return values - self.rate * gradient


def test_an_optimizer_that_skips_the_base_init_is_told_to_call_it():
    optimizer = NoSuper()
    assert repr(optimizer) == "NoSuper()"
    with pytest.raises(TypeError, match=r"NoSuper\.__init__ did not call super\(\)\.__init__\(learning_rate, decay"):
        optimizer.pre_update_params()
    model = nnx.Model()
    for layer in (nnx.Dense(2, 8), nnx.ReLU(), nnx.Dense(8, 3), nnx.Softmax()):
        model.add(layer)
    with pytest.raises(TypeError, match=r"call it at the start of NoSuper\.__init__"):
        model.set(loss=nnx.CategoricalCrossentropy(), optimizer=NoSuper(), accuracy=nnx.metrics.Categorical())
        model.finalize()
        model.train(X, Y, epochs=1, print_every=None)


def test_other_missing_attributes_stay_attribute_errors():
    assert not hasattr(nnx.SGD(), "no_such_attribute")
    with pytest.raises(AttributeError, match="no_such_attribute"):
        _ = NoSuper().no_such_attribute


# Layers -------------------------------------------------------------------------------------------------------------


class OwnDense(nnx.Component):
    """A dense layer of one's own: weights and biases, but none of Dense's other attributes."""

    ARRAYS = ("weights", "biases")
    CONFIG = ("n_inputs", "n_neurons")

    def __init__(self, n_inputs, n_neurons, *, xp=None):
        super().__init__(xp)
        self.n_inputs, self.n_neurons = n_inputs, n_neurons
        rng = np.random.default_rng(n_inputs * 100 + n_neurons)
        self.weights = self.backend.asarray(0.1 * rng.standard_normal((n_inputs, n_neurons)), dtype="float32")
        self.biases = self.backend.asarray(np.zeros((1, n_neurons)), dtype="float32")

    def forward(self, inputs, training=False):
        self.inputs = inputs
        self.output = inputs @ self.weights + self.biases

    def backward(self, dvalues):
        self.dweights = self.xp.matrix_transpose(self.inputs) @ dvalues
        self.dbiases = self.xp.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = dvalues @ self.xp.matrix_transpose(self.weights)


class Float64Weights(OwnDense):
    """Its weight gradient comes in float64."""

    def backward(self, dvalues):
        super().backward(dvalues)
        self.dweights = self.xp.astype(self.dweights, self.xp.float64)


def test_a_layer_with_its_own_weights_and_no_regularizers_trains(backend):
    model = spiral_model(
        backend,
        layers=lambda: (OwnDense(2, 16), nnx.ReLU(), OwnDense(16, 3), nnx.Softmax()),
        optimizer=lambda: nnx.Adam(learning_rate=0.05),
    )
    start, _ = model.evaluate(X, Y, verbose=False)
    history = model.train(X, Y, epochs=30, print_every=None)
    assert history["reg_loss"] == 0.0
    assert history["loss"] < start - 0.05


class Concat(nnx.Component):
    """Doubles the width: the features side by side with themselves."""

    def forward(self, inputs, training=False):
        self.output = self.xp.concat([inputs, inputs], axis=1)

    def backward(self, dvalues):
        half = dvalues.shape[1] // 2
        self.dinputs = dvalues[:, :half] + dvalues[:, half:]


class DeclaredConcat(Concat):
    CONFIG = ("n_inputs",)

    def __init__(self, n_inputs, *, xp=None):
        super().__init__(xp)
        self.n_inputs, self.n_neurons = n_inputs, 2 * n_inputs


class Halve(nnx.Component):
    """Keeps the width, with no width attributes."""

    def forward(self, inputs, training=False):
        self.output = inputs / 2

    def backward(self, dvalues):
        self.dinputs = dvalues / 2


def test_a_layer_that_changes_the_width_undeclared_is_named_with_the_attributes_to_set():
    with pytest.raises(ValueError, match=r"Concat\(\) at layer 1 declares no width") as info:
        spiral_model("numpy", layers=lambda: (nnx.Dense(2, 8), Concat(), nnx.Dense(16, 3), nnx.Softmax()))
    assert "sets n_inputs (the width it takes) and n_neurons (the width it gives)" in str(info.value)


def test_a_width_mismatch_between_dense_layers_names_no_builtin_activation():
    with pytest.raises(ValueError, match=r"gives 8; make them match"):
        spiral_model("numpy", layers=lambda: (nnx.Dense(2, 8), nnx.ReLU(), nnx.Dense(16, 3), nnx.Softmax()))


def test_a_layer_that_declares_its_widths_or_keeps_the_width_trains(backend):
    model = spiral_model(
        backend,
        layers=lambda: (nnx.Dense(2, 8), DeclaredConcat(8), Halve(), nnx.ReLU(), nnx.Dense(16, 3), nnx.Softmax()),
    )
    model.train(X, Y, epochs=2, print_every=None)
    assert model.optimizer.iterations == 2
    with pytest.raises(ValueError, match=r"Dense\(8 -> 3\) at layer 2 expects 8 inputs, but DeclaredConcat"):
        spiral_model("numpy", layers=lambda: (nnx.Dense(2, 8), DeclaredConcat(8), nnx.Dense(8, 3), nnx.Softmax()))


def test_the_readme_way_to_choose_a_backend_moves_every_part(backend):
    nnx.seed(0)
    model = nnx.Model()
    for layer in (nnx.Dense(2, 8), nnx.ReLU(), nnx.Dense(8, 3), nnx.Softmax()):
        model.add(layer)
    model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam(), accuracy=nnx.metrics.Categorical())
    model.to(backend.name)
    model.finalize()
    model.train(X, Y, epochs=2, print_every=None)
    assert all(layer.backend is backend for layer in model.layers)
    assert model.optimizer.backend is backend and model.loss.backend is backend


# Losses -------------------------------------------------------------------------------------------------------------


class Returns(nnx.losses.Loss):
    """A class-label loss whose forward returns what LOSSES[case] makes of the predictions; its backward is the
    book's."""

    TARGETS = "classes"
    CONFIG = ("case",)

    def __init__(self, case, *, xp=None):
        super().__init__(xp=xp)
        self.case = case

    def forward(self, y_pred, y_true):
        return LOSSES[self.case](self, y_pred)

    def backward(self, dvalues, y_true):
        one_hot = self.xp.astype(
            y_true[:, None] == self.xp.arange(dvalues.shape[1], device=dvalues.device), dvalues.dtype
        )
        self.dinputs = -one_hot / dvalues / dvalues.shape[0]


BAD_LOSSES = {
    "none": (lambda self, y_pred: None, TypeError, r"returned None \(NoneType\)"),
    "columns": (lambda self, y_pred: y_pred, ValueError, r"returned float32 \(300, 3\)"),
    "kept axis": (lambda self, y_pred: y_pred[:, :1], ValueError, r"returned float32 \(300, 1\)"),
    "per output": (lambda self, y_pred: self.xp.mean(y_pred, axis=0), ValueError, r"returned float32 \(3,\)"),
}
LOSSES = {
    **{case: function for case, (function, _, _) in BAD_LOSSES.items()},
    "batch mean": lambda self, y_pred: self.xp.mean(y_pred),
    "batch mean (1,)": lambda self, y_pred: self.xp.reshape(self.xp.mean(y_pred), (1,)),
}


@pytest.mark.parametrize("case", list(BAD_LOSSES))
def test_a_loss_forward_of_another_shape_is_refused_naming_the_loss(backend, case):
    _, error, received = BAD_LOSSES[case]
    model = spiral_model(backend, loss=lambda: Returns(case))
    before = host_parameters(model)
    with pytest.raises(error, match=rf"Returns\(case=.*\)\.forward {received} for a batch of 300 samples") as info:
        model.train(X, Y, epochs=1, print_every=None)
    assert "must return the per-sample losses shaped (300,)" in str(info.value)
    assert_unchanged(model, before)
    assert model.loss.accumulated_count == 0


@pytest.mark.parametrize("case", ["batch mean", "batch mean (1,)"])
def test_a_batch_mean_is_refused_and_the_mean_reduction_named(backend, case):
    model = spiral_model(backend, loss=lambda: Returns(case))
    with pytest.raises(ValueError, match=r"not one value \(a batch mean\?\).*declare REDUCTION = 'mean'"):
        model.train(X, Y, epochs=1, batch_size=64, print_every=None)


class HalfSquaredError(nnx.losses.Loss):
    """(p - y)^2 / 2 averaged over outputs, per sample or over the batch."""

    def forward(self, y_pred, y_true):
        return self.xp.mean((y_pred - y_true) ** 2, axis=-1) / 2

    def backward(self, dvalues, y_true):
        self.dinputs = (dvalues - y_true) / dvalues.shape[1] / dvalues.shape[0]


class BatchMeanHalfSquaredError(HalfSquaredError):
    REDUCTION = "mean"

    def forward(self, y_pred, y_true):
        return self.xp.mean(super().forward(y_pred, y_true))


def test_a_declared_mean_reduction_weights_each_batch_by_its_size(backend):
    loss = BatchMeanHalfSquaredError(xp=backend)
    big = (backend.asarray(np.zeros((3, 1)), dtype="float32"), backend.asarray(np.zeros((3, 1)), dtype="float32"))
    small = (backend.asarray(np.zeros((1, 1)), dtype="float32"), backend.asarray(np.full((1, 1), 4.0), dtype="float32"))
    loss.new_pass()
    assert float(backend.to_numpy(loss.calculate(*big))) == 0.0
    assert float(backend.to_numpy(loss.calculate(*small))) == 8.0
    assert float(backend.to_numpy(loss.calculate_accumulated())) == 2.0  # (3 * 0 + 1 * 8) / 4, not (0 + 8) / 2


def test_a_mean_reduction_loss_trains_as_its_per_sample_twin():
    X_sine, y_sine = nnx.datasets.sine_data(samples=100)
    histories, parameters = [], []
    for loss in (HalfSquaredError(), BatchMeanHalfSquaredError()):
        nnx.seed(0)
        model = nnx.Model()
        for layer in (nnx.Dense(1, 16, weight_scale=0.1), nnx.ReLU(), nnx.Dense(16, 1, weight_scale=0.1), nnx.Linear()):
            model.add(layer)
        model.set(loss=loss, optimizer=nnx.Adam(learning_rate=0.01), accuracy=nnx.metrics.Regression())
        model.finalize()
        histories.append(model.train(X_sine, y_sine, epochs=3, batch_size=30, print_every=None))
        parameters.append(host_parameters(model))
    assert histories[1]["loss"] == pytest.approx(histories[0]["loss"], rel=1e-5)
    for mine, twin in zip(*parameters, strict=True):
        np.testing.assert_allclose(mine, twin, rtol=1e-5, atol=1e-7)


class LabelCrossentropy(nnx.losses.Loss):
    """The book's categorical cross-entropy on integer labels, written as a user would."""

    def forward(self, y_pred, y_true):
        picked = self.xp.take_along_axis(y_pred, self.xp.reshape(y_true, (-1, 1)), axis=1)
        return -self.xp.log(self.xp.clip(picked[:, 0], 1e-7, 1 - 1e-7))

    def backward(self, dvalues, y_true):
        one_hot = self.xp.astype(
            y_true[:, None] == self.xp.arange(dvalues.shape[1], device=dvalues.device), dvalues.dtype
        )
        self.dinputs = -one_hot / dvalues / dvalues.shape[0]


class DeclaredLabelCrossentropy(LabelCrossentropy):
    TARGETS = "classes"


def test_class_labels_for_an_undeclared_loss_are_refused_naming_the_declaration():
    model = spiral_model("numpy", loss=LabelCrossentropy)
    with pytest.raises(ValueError, match=r"LabelCrossentropy takes class labels, declare TARGETS = 'classes'"):
        model.train(X, Y, epochs=1, print_every=None)


def test_a_loss_that_declares_class_labels_trains_on_them(backend):
    model = spiral_model(backend, loss=DeclaredLabelCrossentropy)
    builtin = spiral_model(backend)
    mine, theirs = (each.train(X, Y, epochs=3, print_every=None) for each in (model, builtin))
    assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)  # the built-in fuses softmax and its gradient
    for ours, builtins in zip(host_parameters(model), host_parameters(builtin), strict=True):
        np.testing.assert_allclose(ours, builtins, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name, value", [("TARGETS", "labels"), ("REDUCTION", "sum")])
def test_an_unknown_declaration_is_refused_when_the_class_is_defined(name, value):
    with pytest.raises(ValueError, match=rf"Typo\.{name} = {value!r} is not one nnx knows; declare one of"):
        type("Typo", (nnx.losses.Loss,), {name: value})


def test_a_dense_layer_casts_a_gradient_of_another_dtype_so_its_parameters_keep_theirs(backend):
    float64_or_skip(backend)
    layer, optimizer = nnx.Dense(2, 3, xp=backend), nnx.SGD(xp=backend)
    layer.forward(backend.asarray(X, dtype="float32"))
    layer.backward(backend.asarray(np.ones((300, 3)), dtype="float64"))
    assert layer.dweights.dtype == layer.dbiases.dtype == layer.weights.dtype
    optimizer.update_params(layer)
    assert layer.weights.dtype == layer.biases.dtype == backend.xp.float32
