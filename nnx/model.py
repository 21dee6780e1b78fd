"""The book's Model: add layers, set loss/optimizer/accuracy, finalize, then train, evaluate, predict and save.

Data is checked once per call, on the host before it is copied (or with one reduction on the device); the
training loop is a short loop plus callbacks (`nnx.callbacks`): the printed lines, divergence checks and
checkpoints all happen around it.
"""

from __future__ import annotations

import math
import sys
import weakref

from nnx import _checks, backends
from nnx._component import Component
from nnx.activations import Softmax
from nnx.backends._host import dtype_name
from nnx.callbacks import (
    BookLog,
    CallbackList,
    Checkpoint,
    DivergenceGuard,
    History,
    LogLines,
    ProgressBar,
    Run,
    Validation,
    host_float,
)
from nnx.errors import CallOrderError, CheckpointError
from nnx.layers import Dense, Input
from nnx.losses import BinaryCrossentropy, CategoricalCrossentropy, Loss, SoftmaxCategoricalCrossentropy
from nnx.metrics import Accuracy
from nnx.optimizers import Optimizer

CHECK_EVERY = 100  # steps between divergence checks; see benchmarks/divergence_check.py


class Model(Component):
    """A sequential network trained the book's way (chapters 18-22), on one backend."""

    def __init__(self, *, xp=None):
        super().__init__(xp)
        self.layers = []
        self.loss = self.optimizer = self.accuracy = None
        self.softmax_classifier_output = None
        self.trainable_layers = []
        self.finalized = False

    def __repr__(self) -> str:
        return f"Model({', '.join(repr(layer) for layer in self.layers)})"

    def add(self, layer) -> None:
        """Append a layer or activation (anything with `forward` and `backward`)."""
        if isinstance(layer, (type, Loss, SoftmaxCategoricalCrossentropy, Optimizer, Accuracy, Model)) or not (
            callable(getattr(layer, "forward", None)) and callable(getattr(layer, "backward", None))
        ):
            raise TypeError(
                f"Model.add() expected a layer or activation (Dense, Dropout, ReLU, Softmax, ...), got "
                f"{_checks.describe(layer)}; pass an instance such as Dense(2, 64) or ReLU(), and give losses, "
                f"optimizers and accuracies to model.set() instead"
            )
        if isinstance(layer, Component):
            layer.position = len(self.layers)
        self.layers.append(layer)
        self.finalized = False

    def set(self, *, loss=None, optimizer=None, accuracy=None) -> None:
        """Choose the loss, the optimizer and the accuracy measure (any may be set later again)."""
        if isinstance(loss, SoftmaxCategoricalCrossentropy):
            raise TypeError(
                "Model.set(loss=SoftmaxCategoricalCrossentropy()) is the layer-level fused class; end the model with "
                "model.add(Softmax()) and pass loss=CategoricalCrossentropy(): finalize() fuses them the same way"
            )
        for name, value, kind in (
            ("loss", loss, Loss),
            ("optimizer", optimizer, Optimizer),
            ("accuracy", accuracy, Accuracy),
        ):
            if value is not None and not isinstance(value, kind):
                raise TypeError(
                    f"Model.set({name}=...) expected an nnx {kind.__name__} (e.g. nnx.{_EXAMPLES[name]}), "
                    f"got {_checks.describe(value)}"
                )
        chosen = {name: value for name, value in (("loss", loss), ("optimizer", optimizer), ("accuracy", accuracy))}
        chosen = {name: value for name, value in chosen.items() if value is not None}
        for name, value in chosen.items():
            self._check_unclaimed(value, name)
        for name, value in chosen.items():
            value._owner = weakref.ref(self)
            setattr(self, name, value)
        self.finalized = False

    def _check_unclaimed(self, component, name: str) -> None:
        """A ValueError if `component` belongs to another model: sharing a loss or optimizer mixes their state."""
        owner = getattr(component, "_owner", None)
        owner = owner() if owner is not None else None
        if owner is not None and owner is not self:
            raise ValueError(
                f"{component!r} is already the {name} of another Model; sharing it would mix the two models' "
                f"state. Give each model its own: {name}={type(component).__name__}(...)"
            )

    def finalize(self) -> None:
        """Check the network, remember its trainable layers, and pick the fast softmax + cross-entropy path."""
        if not self.layers:
            raise ValueError("the model has no layers: add some with model.add() before finalize()")
        self._check_backends()
        self._check_shapes()
        last = self.layers[-1]
        if not callable(getattr(last, "predictions", None)):
            raise TypeError(
                f"the model's last layer {last!r} has no predictions(); end the model with an activation: Softmax "
                f"(classes), Sigmoid (binary) or Linear (regression)"
            )
        self.input_layer = Input()
        self.trainable_layers = [layer for layer in self.layers if hasattr(layer, "weights")]
        self.output_layer_activation = last
        if self.loss is not None:
            self.loss.remember_trainable_layers(self.trainable_layers)
        fused = isinstance(last, Softmax) and isinstance(self.loss, CategoricalCrossentropy)
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
                    f"{previous[0]} gives {previous[1].n_neurons}; make them match"
                )
            previous = (index, layer)

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

    def _optimize(self) -> None:
        self.optimizer.pre_update_params()
        for layer in self.trainable_layers:
            self.optimizer.update_params(layer)
        self.optimizer.post_update_params()

    def _train_step(self, X, y):
        output = self.forward(X, training=True)
        data_loss, regularization_loss = self.loss.calculate(output, y, include_regularization=True)
        accuracy = self.accuracy.calculate(self.output_layer_activation.predictions(output), y)
        self.backward(output, y)
        self._optimize()
        return accuracy, data_loss, regularization_loss

    # Training, evaluation, prediction ------------------------------------------------------------------------------

    def train(
        self,
        X,
        y,
        *,
        epochs: int = 1,
        batch_size: int | None = None,
        print_every: int | None = 1,
        verbose: int | None = None,
        validation_data=None,
        callbacks=(),
        on_divergence: str = "raise",
        check_every: int = CHECK_EVERY,
        checkpoint=None,
        checkpoint_every: int = 1,
        resume=None,
    ) -> History:
        """Train for `epochs`; returns a `History` of every epoch's metrics, whose items are the last epoch's.

        Output: by default the book's lines, chapter 18's every `print_every` epochs without `batch_size` (one
        validation at the end) or chapter 19's every `print_every` steps with it (validation after every epoch);
        `print_every=None` prints nothing. `verbose` replaces them as in Keras: 0 silent, 1 a progress bar on a
        terminal (plain lines elsewhere), 2 one line every `print_every` epochs. A non-finite loss or parameter
        stops training with the last finite parameters restored (`on_divergence`: "raise", "stop" or "warn";
        checked every `check_every` steps and whenever metrics reach the host). `checkpoint=path` saves every
        `checkpoint_every` epochs and at the end; `resume=path` continues from such a file, bit for bit.
        """
        self._require("loss", "optimizer", "accuracy")
        epochs = _checks.positive_int(epochs, "epochs", "Model.train")
        batch_size = _checks.optional_positive_int(batch_size, "batch_size", "Model.train")
        print_every = None if print_every is None or _is_zero(print_every) else print_every
        print_every = _checks.optional_positive_int(print_every, "print_every", "Model.train")
        checkpoint_every = _checks.positive_int(checkpoint_every, "checkpoint_every", "Model.train")
        verbose = _verbosity(verbose)
        if callbacks is None:
            callbacks = ()
        if not isinstance(callbacks, (list, tuple)):
            raise TypeError(
                f"Model.train callbacks must be a list of nnx.callbacks.Callback, got {_checks.describe(callbacks)}; "
                f"pass e.g. callbacks=[MyCallback()]"
            )
        X, y = self._data(X, y, "training")
        given = [c for c in callbacks if isinstance(c, History)]
        history = given[0] if given else History()
        hooks = [
            DivergenceGuard(check_every=check_every, action=on_divergence),
            *([BookLog(print_every)] if verbose is None else []),
            *(
                [Validation(*self._data(*_pair(validation_data), "validation"), verbose=_book(verbose, print_every))]
                if validation_data is not None
                else []
            ),
            *([Checkpoint(checkpoint, every=checkpoint_every)] if checkpoint is not None else []),
            *_progress_callbacks(verbose, print_every),
            *callbacks,
            *([] if given else [history]),
        ]
        callback = CallbackList(hooks)
        first_epoch = self._resume(resume) + 1 if resume is not None else 1
        with self.backend.quiet_float_errors():
            self.accuracy.init(y)
        run = Run(
            self, epochs=epochs, steps=_steps(X.shape[0], batch_size), batch_size=batch_size, first_epoch=first_epoch
        )
        train_step = self.backend.compiled_step(self, X, y) or self._train_step
        with _checks.trusted(), self.backend.quiet_float_errors():
            self._loop(run, callback, X, y, train_step)
        history.final = self._result(run)
        return history

    def _loop(self, run: Run, callback: CallbackList, X, y, train_step) -> None:
        callback.on_train_begin(run)
        for epoch in range(run.first_epoch, run.epochs + 1):
            run.epoch = epoch
            self.loss.new_pass()
            self.accuracy.new_pass()
            callback.on_epoch_begin(run)
            for step, (X_batch, y_batch) in enumerate(_batches(X, y, run.batch_size)):
                run.step = step
                run.set_metrics(*train_step(X_batch, y_batch))
                run.global_step += 1
                callback.on_step_end(run)
                if run.stop:
                    break
            if run.stop:
                break
            if run.batch_size is not None:
                data_loss, regularization_loss = self.loss.calculate_accumulated(include_regularization=True)
                run.set_metrics(self.accuracy.calculate_accumulated(), data_loss, regularization_loss)
            callback.on_epoch_end(run)
            run.completed_epoch = run.epoch
            if run.stop:
                break
        callback.on_train_end(run)

    def _result(self, run: Run) -> dict:
        if run.divergence is not None:
            error = run.divergence
            return {"diverged": True, "epoch": error.epoch, "step": error.step, "loss": error.last_finite_loss}
        if not run.metrics:
            return dict(run.logs)
        values = run.host_metrics()
        result = {name: values[name] for name in ("accuracy", "loss", "data_loss", "reg_loss", "lr")}
        return {**result, **run.logs}

    def _resume(self, path) -> int:
        """Load a checkpoint into this model (parameters, optimizer and RNG state); the last epoch it completed."""
        from nnx import io

        training = io.restore_training(self, path)
        if not isinstance(training.get("epoch"), int) or isinstance(training["epoch"], bool):
            raise CheckpointError(path, "its training state has no epoch; write it with model.train(checkpoint=...)")
        return training["epoch"]

    def evaluate(self, X_val, y_val, *, batch_size: int | None = None, verbose: bool = True) -> tuple[float, float]:
        """Loss and accuracy on (X_val, y_val) without dropout; prints the book's validation line if `verbose`."""
        self._require("loss", "accuracy")
        batch_size = _checks.optional_positive_int(batch_size, "batch_size", "Model.evaluate")
        X_val, y_val = self._data(X_val, y_val, "evaluation")
        with self.backend.quiet_float_errors():
            self.accuracy.init(y_val)
        self.loss.new_pass()
        self.accuracy.new_pass()
        with _checks.trusted(), self.backend.quiet_float_errors():
            for X_batch, y_batch in _batches(X_val, y_val, batch_size):
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
        X = self._inputs(X)
        with _checks.trusted(), self.backend.quiet_float_errors():
            outputs = [
                self.forward(X[start:stop, ...], training=False) for start, stop in _slices(X.shape[0], batch_size)
            ]
        return outputs[0] if len(outputs) == 1 else self.xp.concat(outputs, axis=0)

    # Data --------------------------------------------------------------------------------------------------------

    def _data(self, X, y, what: str):
        """Checked (inputs, targets) on the model's backend: host data checked on the host, then copied once."""
        X = self._inputs(X, what)
        return X, self._targets(y, X.shape[0], what)

    def _inputs(self, X, what: str = "prediction"):
        first = self.layers[0]
        features = first.n_inputs if isinstance(first, Dense) else None
        owner = getattr(first, "label", repr(first))
        backend, X = self._located(X, f"{owner} {what} inputs")
        _checks.batch(X, owner, what=f"{what} inputs", features=features)
        _checks.real_dtype(backend.xp, X, owner, f"{what} inputs")
        return self._finite_copy(backend, X, owner, f"{what} inputs")

    def _finite_copy(self, backend, x, owner, what: str):
        """`x` in the model's float dtype on its backend: cast where it is (on the host for host data), checked
        finite after the cast, then copied over once."""
        name = dtype_name(self.trainable_layers[0].dtype if self.trainable_layers else self.backend.default_float)
        x = _checks.as_finite(backend, x, getattr(backend.xp, name), owner, what)
        return x if backend is self.backend else self.backend.asarray(x, dtype=name)

    def _targets(self, y, n_samples: int, what: str):
        owner = f"{self.loss!r} ({what} targets)"
        backend, y = self._located(y, owner)
        xp = backend.xp
        _checks.same_samples(n_samples, y, owner)
        outputs = self._output_width()
        if isinstance(self.loss, CategoricalCrossentropy):
            if outputs is not None:
                _checks.class_targets(backend, y, outputs, owner)
            if len(y.shape) == 1 and not xp.isdtype(y.dtype, "integral"):
                y = xp.astype(y, backend.int_dtype)
            return y if backend is self.backend else self.backend.asarray(y)
        _checks.real_dtype(xp, y, owner, "targets")
        if outputs is not None:
            y = _checks.value_targets(xp, y, n_samples, outputs, owner)
        y = self._finite_copy(backend, y, owner, "targets")
        if isinstance(self.loss, BinaryCrossentropy):
            _checks.within(self.backend, y, 0, 1, owner)
        return y

    def _located(self, x, what: str):
        """(backend, array): `x` as it is if it is on the model's backend, else as a host array to check first."""
        if self.backend.owns(x):
            return self.backend, x
        host = backends.get("numpy")
        if isinstance(x, (list, tuple)):
            try:
                return host, host.xp.asarray(x)
            except (ValueError, TypeError) as error:
                raise ValueError(f"{what} could not be read as an array ({error}); pass a rectangular array") from None
        return host, host.check(x, what) if not host.owns(x) else x

    def _output_width(self) -> int | None:
        dense = [layer for layer in self.layers if isinstance(layer, Dense)]
        return dense[-1].n_neurons if dense else None

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
        if not isinstance(parameters, (list, tuple)):
            raise TypeError(
                f"Model.set_parameters() expected a list of (weights, biases) pairs, got "
                f"{_checks.describe(parameters)}; pass the list model.get_parameters() returns"
            )
        parameters = list(parameters)
        if len(parameters) != len(self.trainable_layers):
            raise ValueError(
                f"Model.set_parameters() expected {len(self.trainable_layers)} (weights, biases) pairs, one per "
                f"trainable layer, got {len(parameters)}; pass the list model.get_parameters() returns"
            )
        converted = []
        for layer, pair in zip(self.trainable_layers, parameters, strict=True):
            weights, biases = _pair(pair, f"Model.set_parameters() entry for {layer.label}", "(weights, biases)")
            weights, biases = self._parameter(weights, layer, "weights"), self._parameter(biases, layer, "biases")
            layer.check_parameters(weights, biases)
            converted.append((layer, weights, biases))
        for layer, weights, biases in converted:
            layer.set_parameters(weights, biases)

    def _parameter(self, value, layer, name: str):
        backend, value = self._located(value, f"{layer.label} {name}")
        _checks.real_dtype(backend.xp, value, layer, name)
        value = _checks.as_finite(backend, value, getattr(backend.xp, dtype_name(layer.dtype)), layer, name)
        return value if backend is self.backend else self.backend.asarray(value)

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
        from nnx import io

        io.save_parameters(self, path)

    def load_parameters(self, path) -> None:
        """Read parameters saved by `save_parameters` (or `save`) into this model of the same architecture."""
        from nnx import io

        io.load_parameters(self, path)

    def save(self, path) -> None:
        """Write the whole model: architecture, parameters, loss, optimizer with its state, accuracy."""
        from nnx import io

        io.save_model(self, path)

    @staticmethod
    def load(path, xp=None) -> Model:
        """A finalized Model read from a file written by `save`, on backend `xp` (default: the current one)."""
        from nnx import io

        return io.load_model(path, xp=xp)


VERBOSITY = (0, 1, 2)


def _progress_callbacks(verbose: int | None, print_every: int | None) -> list:
    """What `Model.train` shows besides the book's lines: a bar on a terminal (verbose=1), else plain lines."""
    if not verbose:
        return []
    if verbose == 1 and sys.stderr.isatty():
        return [ProgressBar()]
    return [LogLines(print_every or 1)]


def _verbosity(verbose) -> int | None:
    if verbose is None or (isinstance(verbose, int) and not isinstance(verbose, bool) and verbose in VERBOSITY):
        return verbose
    hint = "; use 1 for True and 0 for False" if isinstance(verbose, bool) else ""
    raise ValueError(
        f"Model.train verbose must be None (the book's lines), 0 (silent), 1 (progress bar) or 2 (a line every "
        f"print_every epochs), got {verbose!r}{hint}"
    )


def _book(verbose: int | None, print_every: int | None) -> bool:
    """Whether the validation pass prints the book's line."""
    return verbose is None and bool(print_every)


_EXAMPLES = {"loss": "CategoricalCrossentropy()", "optimizer": "Adam()", "accuracy": "metrics.Categorical()"}


def _pair(value, what: str = "Model.train validation_data", expected: str = "an (X, y) pair"):
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{what} must be {expected}, got {_checks.describe(value)}")
    return value


def _is_zero(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == 0


def _steps(n_samples: int, batch_size: int | None) -> int:
    return 1 if batch_size is None else math.ceil(n_samples / batch_size)


def _slices(n_samples: int, batch_size: int | None):
    """Start and stop of each batch, the last one shorter if needed (never past the end)."""
    step = n_samples if batch_size is None else batch_size
    for start in range(0, n_samples, max(step, 1)):
        yield start, min(start + step, n_samples)


def _batches(X, y, batch_size: int | None):
    if batch_size is None or batch_size >= X.shape[0]:
        yield X, y  # the arrays themselves: a compiled step recognises them without looking at their memory
        return
    for start, stop in _slices(X.shape[0], batch_size):
        yield X[start:stop, ...], y[start:stop, ...]
