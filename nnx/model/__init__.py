"""The book's Model: add layers, set loss/optimizer/accuracy, finalize, then train, evaluate, predict and save.

Training is `nnx.training` (its data checks `nnx.training.data`); what a Model checks about its parts is
`nnx.model.checks`, evaluation and prediction `nnx.model.evaluation`, the summary `nnx.model.summary`, files `nnx.io`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from nnx import backends, io
from nnx._component import Array, BackendSpec, Component, FilePath
from nnx.callbacks import Callback, History
from nnx.io.kinds import Components
from nnx.io.mapping import model_bytes, model_from_bytes
from nnx.layers import Input
from nnx.losses import Loss, SoftmaxCategoricalCrossentropy
from nnx.metrics import Accuracy
from nnx.model import checks, evaluation
from nnx.model import summary as model_summary
from nnx.optimizers import Optimizer
from nnx.training import handoff, loop
from nnx.training.loop import CHECK_EVERY


class Model(Component):
    """A sequential network trained the book's way (chapters 18-22), on one backend (the book's `Model`).

    Args:
        xp: The backend: a name ('numpy', 'cupy', ...), an array module, a Backend, or None for the current one.

    Attributes:
        layers: The layers and activations, in the order they were added.
        loss: The loss given to `set`, or None.
        optimizer: The optimizer given to `set`, or None.
        accuracy: The accuracy given to `set`, or None.
        trainable_layers: The layers with parameters, once finalized.
        epochs_trained: How many epochs `train` has run, over every call (and in the saved file).
        last_step: The sentence `explain_step` gives for the step the last `train` call ran, or None before one.
    """

    input_layer: Input  # set by finalize, with output_layer_activation (the last layer)
    output_layer_activation: Any

    def __init__(self, *, xp: BackendSpec = None) -> None:
        super().__init__(xp)
        self.layers: list[Any] = []
        self.loss: Loss | None = None
        self.optimizer: Optimizer | None = None
        self.accuracy: Accuracy | None = None
        self.softmax_classifier_output: SoftmaxCategoricalCrossentropy | None = None
        self.trainable_layers: list[Any] = []
        self.finalized = False
        self.epochs_trained = 0
        self.last_step: str | None = None

    def __repr__(self) -> str:
        return f"Model({', '.join(repr(layer) for layer in self.layers)})"

    _repr_html_ = model_summary.html_table  # the summary as a table, when a model is a notebook cell's value

    def summary(self, *, file: IO[str] | None = None) -> None:
        """Print the layers with their output shapes and parameter counts, the backend, the parts and the training.

        Args:
            file: An open text stream to print to; None (the default) is standard output.
        """
        model_summary.show(self, file)

    def __reduce__(self) -> tuple[Any, ...]:
        """`pickle` and `copy.deepcopy` go through the file format (`nnx.io.model_bytes`): a complete copy."""
        return (model_from_bytes, (model_bytes(self), self.backend.name))

    def add(self, layer: Any) -> None:
        """Append a layer or an activation: a new instance (one that is in the model already is a ValueError).

        Args:
            layer: An instance with `forward` and `backward` (Dense, Dropout, ReLU, Softmax, your own Component).
        """
        checks.layer(layer, not_layers=(Model,))
        checks.not_added(self, layer)
        if isinstance(layer, Component):
            layer.position = len(self.layers)
        self.layers.append(layer)
        self.finalized = False

    def set(
        self, *, loss: Loss | None = None, optimizer: Optimizer | None = None, accuracy: Accuracy | None = None
    ) -> None:
        """Choose the loss, the optimizer and the accuracy measure; any may be set again later (then `finalize`).

        Args:
            loss: A loss, e.g. `CategoricalCrossentropy()`; None keeps the current one.
            optimizer: An optimizer, e.g. `Adam()`; None keeps the current one.
            accuracy: An accuracy, e.g. `metrics.Categorical()`; None keeps the current one.
        """
        checks.set_parts(self, loss=loss, optimizer=optimizer, accuracy=accuracy)
        self.finalized = False

    def finalize(self) -> None:
        """Check the network, remember its trainable layers, and pick the fast softmax + cross-entropy path.

        Raises:
            ValueError: if there are no layers or two Dense layers do not chain.
            TypeError: if the last layer has no `predictions` or a part is on another backend.
        """
        checks.finalize(self)

    def _require(self, *names: str) -> None:
        checks.require(self, *names)

    def forward(self, X: Array, training: bool) -> Array:
        """Run a batch through every layer.

        Args:
            X: The inputs, shaped (samples, features), on the model's backend.
            training: Whether this is a training pass (dropout drops only then).

        Returns:
            The last layer's output.
        """
        self.input_layer.forward(X, training)
        output = X
        for index in range(len(self.layers)):
            output = handoff.layer_output(self, index, output, training)  # checked for a layer of your own
        return output

    def backward(self, output: Array, y: Array) -> None:
        """Backpropagate the loss of `output` against `y` through every layer, setting their gradients.

        Args:
            output: What `forward` returned for the batch.
            y: The batch's targets.
        """
        last = len(self.layers) - 1
        if self.softmax_classifier_output is not None:
            self.softmax_classifier_output.backward(output, y)
            self.layers[last].dinputs = dvalues = self.softmax_classifier_output.dinputs
        else:  # a loss and layers of your own have their gradients checked (nnx.training.handoff)
            dvalues = handoff.layer_gradient(self, last, handoff.loss_gradient(self, output, y))
        for index in reversed(range(last)):
            dvalues = handoff.layer_gradient(self, index, dvalues)

    def train(
        self,
        X: Any,
        y: Any = None,
        *,
        epochs: int = 1,
        batch_size: int | None = None,
        shuffle: bool = False,
        print_every: int | str | None = "auto",
        verbose: int | None = None,
        validation_data: tuple[Array, Array] | None = None,
        callbacks: Sequence[Callback] | None = (),
        on_divergence: str = "raise",
        check_every: int = CHECK_EVERY,
        checkpoint: FilePath | None = None,
        checkpoint_every: int = 1,
        resume: FilePath | None = None,
        prefetch: int | str = "auto",
    ) -> History:
        """Train the model for `epochs` epochs on (X, y), as the book's `Model.train` does.

        By default it prints the book's lines: chapter 18's every `print_every` epochs without `batch_size` (one
        validation at the end), or chapter 19's every `print_every` steps with it (validation after every epoch).
        A non-finite loss or parameter stops training with the last finite parameters restored. Every argument is
        checked before anything changes. Where a backend has a compiled step for the model, each batch runs as one
        kernel call (`Model.explain_step()` says which step runs). Data larger than memory stream batch by batch,
        each one read, checked and copied once (how-to: streaming).

        Args:
            X: the inputs, (n_samples, n_features): NumPy or other host data (copied to the model's backend once), an
                array of the model's backend, a chunked array read batch by batch (Zarr, Dask, HDF5), or, with y
                None, an iterable of (X, y) batches (a generator feeds one epoch; for more pass a re-iterable or a
                function that returns a new generator).
            y: the targets: class labels (n_samples,), one-hot rows, or (n_samples, n_outputs) for regression;
                None when X is an iterable of batches.
            epochs: the epoch to train up to, an integer >= 1; with `resume`, counted from the start of the run.
            batch_size: samples per step; None trains on the whole set at each step (one step per epoch). An
                iterable of batches makes its own (leave it None); a chunked array needs one.
            shuffle: whether each epoch takes the rows in a new order, drawn from a seed (from NumPy's global RNG,
                which `nnx.seed` seeds; kept in checkpoints for `resume`) and the epoch: a permutation in memory, a
                chunked array's chunks in a new order and rows within windows of about ten batches.
            print_every: epochs (with `batch_size`: steps) between the book's lines; "auto" prints every one as the
                book does (and, for `verbose` 1 or 2, at most about 100 lines); None or 0 prints nothing.
            verbose: None for the book's lines; else as in Keras: 0 silent, 1 one progress bar (on a terminal or in
                a notebook; plain lines elsewhere), 2 one line every `print_every` epochs.
            validation_data: an (X_val, y_val) pair (arrays or chunked arrays) or an iterable of (X, y) batches
                (not a list: a list is read as a pair), evaluated after every epoch with `batch_size`, else once at
                the end; None for none.
            callbacks: `nnx.callbacks.Callback` instances, called after the built-in ones; None for none.
            on_divergence: what a NaN or infinite loss or parameter does: "raise" a DivergenceError, "stop" training
                quietly, or "warn" and stop. The parameters are restored to the last finite check either way.
            check_every: steps between the divergence checks (one reduction and host copy each); metrics that reach
                the host for printing are checked too.
            checkpoint: a file to save the model, optimizer and RNG state to every `checkpoint_every` epochs and at
                the end (replaced in one step); None for none.
            checkpoint_every: epochs between checkpoints, an integer >= 1.
            resume: a checkpoint file to continue from, bit for bit as if training had not stopped; None starts
                from the model's current state.
            prefetch: for streamed data (validation too), how many batches a background thread reads ahead while
                one trains; 0 reads each in this thread when it is needed. "auto": 2, or 0 on the CPU for batches
                the kernels spread over every core (a reader thread would only take cores from them).

        Returns:
            The run's `History`: every epoch's metrics, and as a mapping the final ones (accuracy, loss, data_loss,
            reg_loss, lr, and val_loss, val_accuracy with validation data).

        Raises:
            CallOrderError: the model is not finalized, or lacks a loss, optimizer or accuracy.
            ConcurrentTrainingError: the model is training already (another thread, or a callback of its own run).
            DivergenceError: training diverged and `on_divergence` is "raise"; its `history` holds the History.
            SaveError: a checkpoint could not be written; training stopped after that epoch, and its `history` holds
                the History.
            TypeError: an argument has the wrong type.
            ValueError: an argument has a wrong value, or the data do not fit the model.
        """
        return loop.train(
            self,
            X,
            y,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=shuffle,
            print_every=print_every,
            verbose=verbose,
            validation_data=validation_data,
            callbacks=callbacks,
            on_divergence=on_divergence,
            check_every=check_every,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            resume=resume,
            prefetch=prefetch,
        )

    def explain_step(self, X: Array | None = None, y: Array | None = None) -> str:
        """Say which training step `train` runs, and why: for (X, y) as `train` would take them, or without data for
        the usual data. After `train`, `model.last_step` holds the sentence for the step that run took.

        Args:
            X: the inputs `train` would get, or None (then y too).
            y: their targets, or None (then X too).

        Returns:
            One sentence: a compiled kernel call per batch, or the generic step and why.
        """
        self._require("loss", "optimizer", "accuracy")
        return loop.explain_step(self, X, y)

    def evaluate(
        self,
        X_val: Any,
        y_val: Any = None,
        *,
        batch_size: int | None = None,
        verbose: bool = True,
        prefetch: int | str = "auto",
    ) -> tuple[float, float]:
        """Measure the loss and the accuracy on validation data, without dropout (the book's chapter 19).

        Args:
            X_val: The inputs, shaped (samples, features): an array on the model's backend, host data, a chunked
                array, or with `y_val` None an iterable of (X, y) batches (all read batch by batch, as `train` does).
            y_val: Their targets; None with an iterable of batches.
            batch_size: How many samples to pass at once; None (the default) passes them all (a chunked array: one
                chunk at a time).
            verbose: Whether to print the book's line ``validation, acc: ..., loss: ...`` (True, the default).
            prefetch: For streamed data, batches read ahead on a background thread, as in `train`.

        Returns:
            (loss, accuracy) as Python floats.
        """
        self._require("loss", "accuracy")
        return evaluation.evaluated(self, X_val, y_val, batch_size=batch_size, verbose=verbose, prefetch=prefetch)

    def predict(self, X: Any, *, batch_size: int | None = None, prefetch: int | str = "auto") -> Array:
        """The model's outputs for some inputs, without dropout.

        Args:
            X: The inputs, shaped (samples, features): an array on the model's backend, host data, a chunked array,
                or an iterable of X batches or (X, y) batches whose y is ignored (not a list: a list is rows).
            batch_size: How many samples to pass at once; None (the default) passes them all (a chunked array: one
                chunk at a time).
            prefetch: For streamed data, batches read ahead on a background thread, as in `train`.

        Returns:
            The last layer's outputs, as one array on the model's backend.
        """
        self._require()
        return evaluation.predicted(self, X, batch_size=batch_size, prefetch=prefetch)

    def get_parameters(self) -> list[tuple[Array, Array]]:
        """Copies of the parameters of every trainable layer (the book's `get_parameters`).

        Returns:
            [(weights, biases), ...], in layer order, on the model's backend.
        """
        self._require()
        return [layer.get_parameters() for layer in self.trainable_layers]

    def set_parameters(self, parameters: list[tuple[Any, Any]] | tuple[tuple[Any, Any], ...]) -> None:
        """Replace every trainable layer's weights and biases with copies. Everything is checked first.

        Args:
            parameters: [(weights, biases), ...] as `get_parameters` returns it; host arrays are copied over.
        """
        self._require()
        evaluation.set_parameters(self, parameters)

    def to(self, spec: BackendSpec) -> Model:
        """Move every parameter, the optimizer's state and all components to another backend.

        Args:
            spec: The target backend: a name, an array module, a Backend, or None for the current one.

        Returns:
            This model, moved.
        """
        target = backends.get(spec)
        for component in checks.components(self, movable=True):
            component.to(target)
        self.backend, self.xp = target, target.xp
        return self

    def save_parameters(self, path: FilePath) -> None:
        """Write the trainable parameters to a file (safetensors, atomically), as the book's chapter 21 does.

        Args:
            path: The file to write (the folder must exist).
        """
        io.save_parameters(self, path)

    def load_parameters(self, path: FilePath) -> None:
        """Read parameters written by `save_parameters` (or `save`) into this model of the same layers.

        Args:
            path: The file to read.
        """
        io.load_parameters(self, path)

    def save(self, path: FilePath, *, training: dict[str, Any] | None = None) -> None:
        """Write the whole model: layers, parameters, loss, optimizer with its state, and accuracy.

        Args:
            path: The file to write (the folder must exist).
            training: None for a plain model file; a JSON-friendly dict (the epoch, ...) makes a checkpoint.
        """
        io.save_model(self, path, training=training)

    def export_onnx(self, path: FilePath, *, overwrite: bool = False) -> Path:
        """Write the inference graph (no dropout) as an ONNX file for other runtimes (the ``onnx`` extra).

        Dense becomes `Gemm`; ReLU, Sigmoid, Softmax and Linear their ONNX ops; Dropout nothing. The file has opset 17,
        the model's dtype, an input "inputs" and an output "outputs" with a dynamic batch size, and metadata (nnx's
        version, this summary, the class count). Parameters are copied to the host through the backend, so a model
        on any backend gives the same file. A layer of your own exports through its `to_onnx(graph, inputs)`.

        Args:
            path: The file to write, ending in .onnx (the folder must exist); it is replaced in one step.
            overwrite: Whether to replace an existing file (False, the default, refuses to).

        Returns:
            The absolute path written.

        Raises:
            CallOrderError: the model is not finalized.
            FileExistsError: the file exists and `overwrite` is False.
            ImportError: the `onnx` package is not installed.
            TypeError: a layer has no `to_onnx` method (the message says how to add one).
        """
        return io.export_onnx(self, path, overwrite=overwrite, summary=model_summary.text(self))

    @staticmethod
    def load(path: FilePath, xp: BackendSpec = None, *, components: Components = None) -> Model:
        """Read a model written by `save`, finalized (the book's `Model.load`).

        Args:
            path: The file to read.
            xp: The backend to load it on: a name, an array module, a Backend, or None for the current one.
            components: Your own classes in the file, when this program defines several of a name (see
                `nnx.io.load_model`): a list ([LeakyReLU]) or a dict {saved name: class}.

        Returns:
            The model, with its parameters and optimizer state.
        """
        return io.load_model(path, xp=xp, components=components)
