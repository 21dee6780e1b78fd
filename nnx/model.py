"""The book's Model: add layers, set loss/optimizer/accuracy, finalize, then train, evaluate and predict.

Host data is copied to the model's backend once per call; metrics stay on the device and are copied back only
when a line is printed.
"""

from __future__ import annotations

import math

from array_api_compat import is_numpy_array

from nnx import backends
from nnx._component import Component, check_positive_int
from nnx.activations import Softmax
from nnx.layers import Dense, Input
from nnx.losses import CategoricalCrossentropy, SoftmaxCategoricalCrossentropy


class Model(Component):
    """A sequential network trained the book's way (chapters 18-22), on one backend."""

    def __init__(self, *, xp=None):
        super().__init__(xp)
        self.layers = []
        self.loss = self.optimizer = self.accuracy = None
        self.softmax_classifier_output = None
        self.finalized = False

    def __repr__(self) -> str:
        return f"Model({', '.join(repr(layer) for layer in self.layers)})"

    def add(self, layer) -> None:
        """Append a layer or activation; its backend must be the model's."""
        self.layers.append(layer)
        self.finalized = False

    def set(self, *, loss=None, optimizer=None, accuracy=None) -> None:
        """Choose the loss, the optimizer and the accuracy measure (any may be set later again)."""
        if loss is not None:
            self.loss = loss
        if optimizer is not None:
            self.optimizer = optimizer
        if accuracy is not None:
            self.accuracy = accuracy
        self.finalized = False

    def finalize(self) -> None:
        """Check the network, remember its trainable layers, and pick the fast softmax + cross-entropy path."""
        if not self.layers:
            raise ValueError("the model has no layers: add some with model.add() before finalize()")
        self._check_backends()
        self._check_shapes()
        self.input_layer = Input()
        self.trainable_layers = [layer for layer in self.layers if hasattr(layer, "weights")]
        self.output_layer_activation = self.layers[-1]
        if self.loss is not None:
            self.loss.remember_trainable_layers(self.trainable_layers)
        fused = isinstance(self.layers[-1], Softmax) and isinstance(self.loss, CategoricalCrossentropy)
        self.softmax_classifier_output = SoftmaxCategoricalCrossentropy(xp=self.backend) if fused else None
        self.finalized = True

    def _components(self):
        extras = (self.loss, self.optimizer, self.accuracy, self.softmax_classifier_output)
        return [*self.layers, *(c for c in extras if c is not None)]

    def _check_backends(self) -> None:
        for component in self._components():
            if getattr(component, "backend", self.backend) is not self.backend:
                raise TypeError(
                    f"{component!r} is on backend {component.backend.name!r} but the model is on "
                    f"{self.backend.name!r}; build them with the same xp= or call model.to(...) before finalize()"
                )

    def _check_shapes(self) -> None:
        previous = None
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, Dense):
                continue
            if previous is not None and layer.n_inputs != previous[1].n_neurons:
                raise ValueError(
                    f"{layer!r} at layer {index} expects {layer.n_inputs} inputs, but {previous[1]!r} at layer "
                    f"{previous[0]} gives {previous[1].n_neurons}"
                )
            previous = (index, layer)

    def _require(self, *names: str) -> None:
        if not self.finalized:
            raise RuntimeError("the model is not finalized: call model.finalize() after add() and set()")
        missing = [name for name in names if getattr(self, name) is None]
        if missing:
            raise RuntimeError(f"the model has no {' or '.join(missing)}: give it with model.set({missing[0]}=...)")

    # Passes ------------------------------------------------------------------------------------------------------

    def forward(self, X, training: bool):
        """Run `X` through every layer (dropout only when `training`); returns the last layer's output."""
        self.input_layer.forward(X, training)
        output = X
        for layer in self.layers:
            layer.forward(output, training)
            output = layer.output
        return output

    def backward(self, output, y) -> None:
        """Backpropagate the loss of `output` against `y` through every layer."""
        if self.softmax_classifier_output is not None:
            self.softmax_classifier_output.backward(output, y)
            self.layers[-1].dinputs = self.softmax_classifier_output.dinputs
            layers = self.layers[:-1]
        else:
            self.loss.backward(output, y)
            self.layers[-1].backward(self.loss.dinputs)
            layers = self.layers[:-1]
            if not layers:
                return
        dvalues = self.layers[-1].dinputs
        for layer in reversed(layers):
            layer.backward(dvalues)
            dvalues = layer.dinputs

    def _optimize(self) -> None:
        self.optimizer.pre_update_params()
        for layer in self.trainable_layers:
            self.optimizer.update_params(layer)
        self.optimizer.post_update_params()

    # Training, evaluation, prediction ------------------------------------------------------------------------------

    def train(
        self, X, y, *, epochs: int = 1, batch_size: int | None = None, print_every: int | None = 1, validation_data=None
    ) -> dict:
        """Train for `epochs`; returns the last epoch's metrics (and validation metrics) as host floats.

        Without `batch_size` it prints the chapter-18 lines every `print_every` epochs and validates once at
        the end; with it, the chapter-19 lines every `print_every` steps and a validation after every epoch.
        `print_every=None` prints nothing.
        """
        self._require("loss", "optimizer", "accuracy")
        X, y = self._inputs(X), self._targets(y)
        if validation_data is not None:
            validation_data = (self._inputs(validation_data[0]), self._targets(validation_data[1]))
        self.accuracy.init(y)
        steps = _steps(X.shape[0], batch_size)
        for epoch in range(1, check_positive_int(epochs, "epochs") + 1):
            if batch_size is not None and print_every:
                print(f"epoch: {epoch}")
            self.loss.new_pass()
            self.accuracy.new_pass()
            for step, (X_batch, y_batch) in enumerate(_batches(X, y, batch_size)):
                output = self.forward(X_batch, training=True)
                data_loss, regularization_loss = self.loss.calculate(output, y_batch, include_regularization=True)
                accuracy = self.accuracy.calculate(self.output_layer_activation.predictions(output), y_batch)
                self.backward(output, y_batch)
                self._optimize()
                if batch_size is not None and print_every and (not step % print_every or step == steps - 1):
                    self._print(f"step: {step}", accuracy, data_loss, regularization_loss)
            if batch_size is None and print_every and not epoch % print_every:
                self._print(f"epoch: {epoch}", accuracy, data_loss, regularization_loss)
            if batch_size is not None:
                data_loss, regularization_loss = self.loss.calculate_accumulated(include_regularization=True)
                accuracy = self.accuracy.calculate_accumulated()
                if print_every:
                    self._print("training", accuracy, data_loss, regularization_loss)
                if validation_data is not None:
                    validation = self.evaluate(*validation_data, batch_size=batch_size, verbose=bool(print_every))
        metrics = {
            "accuracy": _host(self.backend, accuracy),
            "loss": _host(self.backend, data_loss + regularization_loss),
            "data_loss": _host(self.backend, data_loss),
            "reg_loss": _host(self.backend, regularization_loss),
        }
        if validation_data is not None:
            if batch_size is None:
                validation = self.evaluate(*validation_data, verbose=bool(print_every))
            metrics["val_loss"], metrics["val_accuracy"] = validation
        return metrics

    def _print(self, label: str, accuracy, data_loss, regularization_loss) -> None:
        values = (accuracy, data_loss + regularization_loss, data_loss, regularization_loss)
        acc, loss, data, reg = (_host(self.backend, v) for v in values)
        print(
            f"{label}, acc: {acc:.3f}, loss: {loss:.3f} (data_loss: {data:.3f}, reg_loss: {reg:.3f}), "
            f"lr: {self.optimizer.current_learning_rate}"
        )

    def evaluate(self, X_val, y_val, *, batch_size: int | None = None, verbose: bool = True) -> tuple[float, float]:
        """Loss and accuracy on (X_val, y_val) without dropout; prints the book's validation line if `verbose`."""
        self._require("loss", "accuracy")
        X_val, y_val = self._inputs(X_val), self._targets(y_val)
        self.accuracy.init(y_val)
        self.loss.new_pass()
        self.accuracy.new_pass()
        for X_batch, y_batch in _batches(X_val, y_val, batch_size):
            output = self.forward(X_batch, training=False)
            self.loss.calculate(output, y_batch)
            self.accuracy.calculate(self.output_layer_activation.predictions(output), y_batch)
        loss = _host(self.backend, self.loss.calculate_accumulated())
        accuracy = _host(self.backend, self.accuracy.calculate_accumulated())
        if verbose:
            print(f"validation, acc: {accuracy:.3f}, loss: {loss:.3f}")
        return loss, accuracy

    def predict(self, X, *, batch_size: int | None = None):
        """The last layer's outputs for `X`, as one array on the model's backend."""
        if not self.finalized:
            raise RuntimeError("the model is not finalized: call model.finalize() after add() and set()")
        X = self._inputs(X)
        outputs = [self.forward(X[start:stop, ...], training=False) for start, stop in _slices(X.shape[0], batch_size)]
        return outputs[0] if len(outputs) == 1 else self.xp.concat(outputs, axis=0)

    # Parameters and devices ------------------------------------------------------------------------------------------

    def get_parameters(self) -> list[tuple]:
        """(weights, biases) of every trainable layer, in order, on the model's backend."""
        self._require()
        return [layer.get_parameters() for layer in self.trainable_layers]

    def set_parameters(self, parameters) -> None:
        """Replace every trainable layer's (weights, biases); host arrays are copied to the model's backend."""
        self._require()
        parameters = list(parameters)
        if len(parameters) != len(self.trainable_layers):
            raise ValueError(
                f"expected {len(self.trainable_layers)} (weights, biases) pairs, one per trainable layer, "
                f"got {len(parameters)}"
            )
        for layer, (weights, biases) in zip(self.trainable_layers, parameters, strict=True):
            layer.set_parameters(self._parameter(weights, layer), self._parameter(biases, layer))

    def _parameter(self, value, layer):
        value = value if self.backend.owns(value) else self.backend.asarray(value)
        return value if value.dtype == layer.dtype else self.xp.astype(value, layer.dtype)

    def to(self, spec):
        """Move every parameter, the optimizer's state and all components to another backend."""
        target = backends.get(spec)
        for component in self._components():
            if hasattr(component, "to"):
                component.to(target)
        self.backend, self.xp = target, target.xp
        return self

    def _inputs(self, X):
        X = X if self.backend.owns(X) else self.backend.asarray(X)
        dtype = self.trainable_layers[0].dtype if self.trainable_layers else self.backend.default_float
        return X if X.dtype == dtype else self.xp.astype(X, dtype)

    def _targets(self, y):
        if is_numpy_array(y):
            self._check_labels(y)
        return y if self.backend.owns(y) else self.backend.asarray(y)

    def _check_labels(self, y) -> None:
        """Class labels given as NumPy arrays must index the output layer; checked on the host, before any copy."""
        dense = [layer for layer in self.layers if isinstance(layer, Dense)]
        if not isinstance(self.loss, CategoricalCrossentropy) or not dense or getattr(y, "ndim", 0) != 1 or not y.size:
            return
        classes = dense[-1].n_neurons
        low, high = y.min(), y.max()
        if low < 0 or high >= classes or (y != y.astype("int64")).any():
            raise ValueError(
                f"class labels must be integers in [0, {classes}) for the model's {classes} outputs, got values from "
                f"{low} to {high}; relabel the data or give the last Dense layer more neurons"
            )


def _steps(n_samples: int, batch_size: int | None) -> int:
    if batch_size is None:
        return 1
    return math.ceil(n_samples / check_positive_int(batch_size, "batch_size"))


def _slices(n_samples: int, batch_size: int | None):
    """Start and stop of each batch, the last one shorter if needed (never past the end)."""
    step = n_samples if batch_size is None else check_positive_int(batch_size, "batch_size")
    for start in range(0, n_samples, max(step, 1)):
        yield start, min(start + step, n_samples)


def _batches(X, y, batch_size: int | None):
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y must hold as many samples, got {X.shape[0]} and {y.shape[0]}")
    for start, stop in _slices(X.shape[0], batch_size):
        yield X[start:stop, ...], y[start:stop, ...]


def _host(backend, value) -> float:
    """A metric as a Python float: the explicit device -> host copy, made only when a number is needed."""
    return float(value) if isinstance(value, (int, float)) else float(backend.to_numpy(value))
