"""The book's Model: add layers, set loss/optimizer/accuracy, finalize, then train, evaluate, predict and save.

Building, the forward and backward passes, evaluation, prediction, parameters and devices live here; training is
`nnx.training` (the loop, its callbacks and the step plan), data checks are `nnx.model_data`, files are `nnx.io`.
"""

from __future__ import annotations

import weakref

from nnx import _checks, backends, io, model_checks, model_summary, training
from nnx._component import Component
from nnx.activations import Softmax
from nnx.callbacks import host_float
from nnx.errors import CallOrderError
from nnx.layers import Input
from nnx.losses import CategoricalCrossentropy, SoftmaxCategoricalCrossentropy
from nnx.model_data import batches, checked_data, checked_inputs, checked_parameters, slices

CHECK_EVERY = training.CHECK_EVERY


class Model(Component):
    """A sequential network trained the book's way (chapters 18-22), on one backend."""

    def __init__(self, *, xp=None):
        super().__init__(xp)
        self.layers = []
        self.loss = self.optimizer = self.accuracy = None
        self.softmax_classifier_output = None
        self.trainable_layers = []
        self.finalized = False
        self.epochs_trained = 0

    def __repr__(self) -> str:
        return f"Model({', '.join(repr(layer) for layer in self.layers)})"

    def _repr_html_(self) -> str:
        """The summary as a table, shown when a model is the value of a notebook cell."""
        return model_summary.html_table(self)

    def summary(self, *, file=None) -> None:
        """Print each layer with its output shape and parameter count, the totals, the backend, device and dtype,
        the loss, the optimizer (with its current learning rate), the accuracy, and the epochs and steps trained."""
        model_summary.show(self, file)

    def __reduce__(self):
        """`pickle` and `copy.deepcopy` go through the file format (arrays plus a JSON record, `nnx.io.model_bytes`):
        the copy has the same layers, parameters, loss, optimizer with its state, and accuracy, on the same backend.
        Unpickle only data you trust, as always with pickle; files written by `save` are safetensors."""
        return (io.model_from_bytes, (io.model_bytes(self), self.backend.name))

    def add(self, layer) -> None:
        """Append a layer or activation (anything with `forward` and `backward`)."""
        model_checks.layer(layer, not_layers=(Model,))
        if isinstance(layer, Component):
            layer.position = len(self.layers)
        self.layers.append(layer)
        self.finalized = False

    def set(self, *, loss=None, optimizer=None, accuracy=None) -> None:
        """Choose the loss, the optimizer and the accuracy measure (any may be set later again)."""
        chosen = model_checks.chosen_parts(self, loss=loss, optimizer=optimizer, accuracy=accuracy)
        for name, value in chosen.items():
            value._owner = weakref.ref(self)
            setattr(self, name, value)
        self.finalized = False

    def finalize(self) -> None:
        """Check the network, remember its trainable layers, and pick the fast softmax + cross-entropy path."""
        if not self.layers:
            raise ValueError("the model has no layers: add some with model.add() before finalize()")
        model_checks.same_backend(self, self._components())
        model_checks.chained_shapes(self.layers)
        last = model_checks.output_activation(self.layers)
        self.input_layer = Input()
        self.trainable_layers = [layer for layer in self.layers if hasattr(layer, "weights")]
        self.output_layer_activation = last
        if self.loss is not None:
            self.loss.remember_trainable_layers(self.trainable_layers)
        if self.optimizer is not None:
            self.optimizer.remember_layers(self.trainable_layers)
        fused = isinstance(last, Softmax) and isinstance(self.loss, CategoricalCrossentropy)
        self.softmax_classifier_output = SoftmaxCategoricalCrossentropy(xp=self.backend) if fused else None
        self.finalized = True

    def _components(self):
        extras = (self.loss, self.optimizer, self.accuracy, self.softmax_classifier_output)
        return [*self.layers, *(c for c in extras if c is not None)]

    def _require(self, *names: str) -> None:
        if not self.finalized:
            raise CallOrderError("the model is not finalized: call model.finalize() after add() and set()")
        missing = [name for name in names if getattr(self, name) is None]
        if missing:
            raise CallOrderError(
                f"the model has no {' or '.join(missing)}: give it with model.set({missing[0]}=...) and finalize()"
            )

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
        else:
            self.loss.backward(output, y)
            self.layers[-1].backward(self.loss.dinputs)
        dvalues = self.layers[-1].dinputs
        for layer in reversed(self.layers[:-1]):
            layer.backward(dvalues)
            dvalues = layer.dinputs

    # Training, evaluation, prediction ------------------------------------------------------------------------------

    train = training.train  # Model.train(X, y, *, epochs=1, ...): the loop lives in nnx.training

    def explain_step(self) -> str:
        """Which training step `train` runs on this model (one compiled kernel call per batch, or the generic
        layer-by-layer step) and why, e.g. which layer has no kernel."""
        self._require("loss", "optimizer", "accuracy")
        return training.explain_step(self)

    def evaluate(self, X_val, y_val, *, batch_size: int | None = None, verbose: bool = True) -> tuple[float, float]:
        """Loss and accuracy on (X_val, y_val) without dropout; prints the book's validation line if `verbose`."""
        self._require("loss", "accuracy")
        batch_size = _checks.optional_positive_int(batch_size, "batch_size", "Model.evaluate")
        verbose = _checks.boolean(verbose, "verbose", "Model.evaluate")
        X_val, y_val = checked_data(self, X_val, y_val, "evaluation")
        with self.backend.quiet_float_errors():
            self.accuracy.init(y_val)
        self.loss.new_pass()
        self.accuracy.new_pass()
        with _checks.trusted(), self.backend.quiet_float_errors():
            for X_batch, y_batch in batches(X_val, y_val, batch_size):
                output = self.forward(X_batch, training=False)
                self.loss.calculate(output, y_batch)
                self.accuracy.calculate(self.output_layer_activation.predictions(output), y_batch)
        loss = host_float(self.backend, self.loss.calculate_accumulated())
        accuracy = host_float(self.backend, self.accuracy.calculate_accumulated())
        if verbose:
            print(f"validation, acc: {accuracy:.3f}, loss: {loss:.3f}")
        return loss, accuracy

    def predict(self, X, *, batch_size: int | None = None):
        """The last layer's outputs for `X`, as one array on the model's backend."""
        self._require()
        batch_size = _checks.optional_positive_int(batch_size, "batch_size", "Model.predict")
        X = checked_inputs(self, X)
        with _checks.trusted(), self.backend.quiet_float_errors():
            outputs = [
                self.forward(X[start:stop, ...], training=False) for start, stop in slices(X.shape[0], batch_size)
            ]
        return outputs[0] if len(outputs) == 1 else self.xp.concat(outputs, axis=0)

    # Parameters, devices and files -------------------------------------------------------------------------------

    def get_parameters(self) -> list[tuple]:
        """Copies of (weights, biases) of every trainable layer, in order, on the model's backend."""
        self._require()
        return [layer.get_parameters() for layer in self.trainable_layers]

    def set_parameters(self, parameters) -> None:
        """Replace every trainable layer's (weights, biases) with copies; host arrays are copied to the backend.

        Everything is checked before anything changes.
        """
        self._require()
        for layer, weights, biases in checked_parameters(self, parameters):
            layer.set_parameters(weights, biases)

    def to(self, spec):
        """Move every parameter, the optimizer's state and all components to another backend."""
        target = backends.get(spec)
        for component in self._components():
            if hasattr(component, "to"):
                component.to(target)
        self.backend, self.xp = target, target.xp
        return self

    def save_parameters(self, path) -> None:
        """Write the trainable parameters to `path` (safetensors, atomically), as the book's chapter 21 does."""
        io.save_parameters(self, path)

    def load_parameters(self, path) -> None:
        """Read parameters saved by `save_parameters` (or `save`) into this model of the same architecture."""
        io.load_parameters(self, path)

    def save(self, path, *, training: dict | None = None) -> None:
        """Write the whole model: architecture, parameters, loss, optimizer with its state, accuracy; `training`
        (the epoch, ...) makes the file a checkpoint that `train(resume=...)` continues from."""
        io.save_model(self, path, training=training)

    @staticmethod
    def load(path, xp=None) -> Model:
        """A finalized Model read from a file written by `save`, on backend `xp` (default: the current one)."""
        return io.load_model(path, xp=xp)
