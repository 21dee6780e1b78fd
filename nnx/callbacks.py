"""Hooks around `Model.train`'s loop: the book's printed lines, validation, divergence checks and checkpoints.

A callback overrides any of `on_train_begin`, `on_epoch_begin`, `on_step_end`, `on_epoch_end`, `on_train_end`;
each gets the `Run`, which holds the model, where the loop is, and the current metrics (on the device).
"""

from __future__ import annotations

import math
import warnings

from nnx import _checks
from nnx.errors import DivergenceError

DIVERGENCE_ACTIONS = ("raise", "stop", "warn")


class Run:
    """The state of one `Model.train` call that callbacks read: model, epoch, step and the latest metrics.

    Metrics stay on the device; `host_metrics()` copies them once per step, only when someone asks.
    """

    def __init__(self, model, *, epochs: int, steps: int, batch_size: int | None, first_epoch: int = 1):
        self.model = model
        self.epochs = epochs
        self.steps = steps
        self.batch_size = batch_size
        self.first_epoch = first_epoch
        self.epoch = self.completed_epoch = first_epoch - 1
        self.step = 0
        self.global_step = 0
        self.metrics: dict = {}
        self.logs: dict = {}
        self.stop = False
        self.divergence: DivergenceError | None = None
        self.host_watchers: list = []
        self._host: tuple | None = None

    @property
    def last_step(self) -> bool:
        return self.step == self.steps - 1

    def set_metrics(self, accuracy, data_loss, regularization_loss) -> None:
        """The metrics of the step (or, at an epoch's end with batches, of the epoch) just computed."""
        self.metrics = {"accuracy": accuracy, "data_loss": data_loss, "reg_loss": regularization_loss}
        self._host = None

    def host_metrics(self) -> dict:
        """The current metrics as floats (one copy per step); watchers (the divergence check) see them first."""
        if self._host is None or self._host[0] is not self.metrics:
            values = {name: host_float(self.model.backend, value) for name, value in self.metrics.items()}
            values["loss"] = values["data_loss"] + values["reg_loss"]
            values["lr"] = self.model.optimizer.current_learning_rate
            self._host = (self.metrics, values)
            for watch in self.host_watchers:
                watch(self, values)
        return self._host[1]


def host_float(backend, value) -> float:
    """A metric as a Python float: the explicit device -> host copy, made only when a number is needed."""
    return float(value) if isinstance(value, (int, float)) else float(backend.to_numpy(value))


class Callback:
    """Base class: every hook does nothing. Subclass it and override what you need."""

    def on_train_begin(self, run: Run) -> None: ...

    def on_epoch_begin(self, run: Run) -> None: ...

    def on_step_end(self, run: Run) -> None: ...

    def on_epoch_end(self, run: Run) -> None: ...

    def on_train_end(self, run: Run) -> None: ...


class CallbackList(Callback):
    """Calls each hook on every callback in order, and stops calling step hooks once `run.stop` is set."""

    def __init__(self, callbacks):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(
                    f"Model.train callbacks must be nnx.callbacks.Callback instances, got {type(callback).__name__}; "
                    f"subclass nnx.callbacks.Callback"
                )

    def _call(self, hook: str, run: Run) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(run)

    def on_train_begin(self, run):
        self._call("on_train_begin", run)

    def on_epoch_begin(self, run):
        self._call("on_epoch_begin", run)

    def on_step_end(self, run):
        self._call("on_step_end", run)

    def on_epoch_end(self, run):
        self._call("on_epoch_end", run)

    def on_train_end(self, run):
        self._call("on_train_end", run)


class BookLog(Callback):
    """The book's printed lines: chapter 18's every `every` epochs, or chapter 19's per step and epoch."""

    def __init__(self, every: int | None):
        self.every = every

    def on_epoch_begin(self, run):
        if self.every and run.batch_size is not None:
            print(f"epoch: {run.epoch}")

    def on_step_end(self, run):
        if self.every and run.batch_size is not None and (not run.step % self.every or run.last_step):
            self._print(run, f"step: {run.step}")

    def on_epoch_end(self, run):
        if not self.every:
            return
        if run.batch_size is not None:
            self._print(run, "training")
        elif not run.epoch % self.every:
            self._print(run, f"epoch: {run.epoch}")

    @staticmethod
    def _print(run: Run, label: str) -> None:
        values = run.host_metrics()
        if run.stop:
            return
        print(
            f"{label}, acc: {values['accuracy']:.3f}, loss: {values['loss']:.3f} (data_loss: "
            f"{values['data_loss']:.3f}, reg_loss: {values['reg_loss']:.3f}), lr: {values['lr']}"
        )


class Validation(Callback):
    """Evaluates on held-out data: after every epoch with batches, once at the end without (the book's order)."""

    def __init__(self, X, y, *, verbose: bool):
        self.X, self.y, self.verbose = X, y, verbose

    def on_epoch_end(self, run):
        if run.batch_size is not None and not run.stop:
            self._evaluate(run)

    def on_train_end(self, run):
        if run.batch_size is None and not run.stop:
            self._evaluate(run)

    def _evaluate(self, run: Run) -> None:
        loss, accuracy = run.model.evaluate(self.X, self.y, batch_size=run.batch_size, verbose=self.verbose)
        run.logs["val_loss"], run.logs["val_accuracy"] = loss, accuracy


class DivergenceGuard(Callback):
    """Stops training when the loss or a parameter stops being finite, and restores the last finite state.

    It checks every `check_every` steps (one reduction, one host copy) and whenever metrics reach the host
    anyway; after each good check it keeps a device-side copy of the parameters and the optimizer state.
    `action` is "raise" (DivergenceError), "stop" (end training quietly) or "warn" (RuntimeWarning, then stop).
    """

    def __init__(self, *, check_every: int, action: str = "raise"):
        self.check_every = _checks.positive_int(check_every, "check_every", "Model.train")
        self.action = _checks.choice(action, "on_divergence", "Model.train", DIVERGENCE_ACTIONS)

    def on_train_begin(self, run):
        run.host_watchers.append(self._watch)
        self.last_loss = None
        self.snapshot = None
        if not self._finite(run, None):
            raise ValueError(
                f"{run.model!r} has NaN or infinite parameters before training; reload them with "
                f"model.load_parameters() or rebuild the model"
            )

    def on_step_end(self, run):
        if not run.stop and not run.global_step % self.check_every:
            self._check(run)

    def on_train_end(self, run):
        if not run.stop:
            self._check(run)

    def _check(self, run: Run) -> None:
        loss = _loss_of(run) if run.metrics else None
        if self._finite(run, loss):
            return
        self._diverged(run, "a parameter" if loss is None else "the loss or a parameter")

    def _finite(self, run: Run, loss) -> bool:
        """One reduction over the loss and every parameter: NaN unless all are finite (x * 0 keeps NaN/inf)."""
        model = run.model
        value = host_float(model.backend, _finite_probe(loss, model.trainable_layers))
        if not math.isfinite(value):
            return False
        if loss is not None:
            self.last_loss = value
        self.snapshot = _snapshot(model)
        return True

    def _watch(self, run: Run, values: dict) -> None:
        if not math.isfinite(values["loss"]) or not math.isfinite(values["accuracy"]):
            self._diverged(run, "the loss")

    def _diverged(self, run: Run, what: str) -> None:
        _restore(run.model, self.snapshot)
        where = f"epoch {run.epoch}" + (f", step {run.step}" if run.batch_size is not None else "")
        last = "none was finite" if self.last_loss is None else f"{self.last_loss:.6g}"
        lr = run.model.optimizer.learning_rate
        error = DivergenceError(
            f"training diverged at {where}: {what} became NaN or infinite (last finite loss: {last}). The parameters "
            f"are restored to the last finite check; lower the learning rate (now {lr:g}) or add decay",
            epoch=run.epoch,
            step=run.step,
            last_finite_loss=self.last_loss,
        )
        run.divergence, run.stop = error, True
        if self.action == "raise":
            raise error
        if self.action == "warn":
            warnings.warn(str(error), RuntimeWarning, stacklevel=2)


def _finite_probe(loss, layers):
    """`loss` (or 0) plus sum(p * 0) over every parameter: one value, NaN or inf unless all of them are finite."""
    probe = 0 if loss is None else loss
    for layer in layers:
        if hasattr(layer, "weights"):
            probe = probe + layer.xp.sum(layer.weights * 0) + layer.xp.sum(layer.biases * 0)
    return probe


def _loss_of(run: Run):
    metrics = run.metrics
    return metrics["data_loss"] + metrics["reg_loss"]


def _snapshot(model) -> dict:
    """Device-side copies of every parameter and the optimizer state, and the optimizer's counters."""
    xp = model.xp
    optimizer = model.optimizer
    return {
        "parameters": [
            (xp.asarray(layer.weights, copy=True), xp.asarray(layer.biases, copy=True))
            for layer in model.trainable_layers
        ],
        "state": {
            layer: {name: xp.asarray(value, copy=True) for name, value in arrays.items()}
            for layer, arrays in optimizer.state.items()
        },
        "iterations": optimizer.iterations,
        "current_learning_rate": optimizer.current_learning_rate,
    }


def _restore(model, snapshot: dict | None) -> None:
    if snapshot is None:
        return
    for layer, (weights, biases) in zip(model.trainable_layers, snapshot["parameters"], strict=True):
        layer.weights, layer.biases = weights, biases
    optimizer = model.optimizer
    optimizer.state = snapshot["state"]
    optimizer.iterations = snapshot["iterations"]
    optimizer.current_learning_rate = snapshot["current_learning_rate"]


class Checkpoint(Callback):
    """Saves the model, its optimizer state and the RNG state atomically every `every` epochs and at the end."""

    def __init__(self, path, *, every: int = 1):
        self.path = path
        self.every = _checks.positive_int(every, "checkpoint_every", "Model.train")

    def on_train_begin(self, run):
        self.saved_epoch = run.first_epoch - 1

    def on_epoch_end(self, run):
        if not run.stop and not run.epoch % self.every:
            self._save(run)

    def on_train_end(self, run):
        """The last whole epoch, unless training diverged or stopped inside an epoch (then the state is not one)."""
        if run.divergence is None and run.completed_epoch == run.epoch and run.epoch > self.saved_epoch:
            self._save(run)

    def _save(self, run: Run) -> None:
        from nnx import io

        io.save_model(run.model, self.path, training={"epoch": run.epoch, "epochs": run.epochs})
        self.saved_epoch = run.epoch


def check_finite(loss, layers=(), *, epoch: int | None = None) -> float:
    """For hand-written loops: the loss as a float if it and every layer's parameters are finite, else a
    DivergenceError with a hint. One reduction and one host copy: call it when you print, not every step."""
    from nnx import backends

    layers = list(layers)
    backend = layers[0].backend if layers else backends.current()
    if not math.isfinite(host_float(backend, _finite_probe(loss, layers))):
        where = f" at epoch {epoch}" if epoch is not None else ""
        raise DivergenceError(
            f"training diverged{where}: the loss or a parameter is NaN or infinite. Lower the learning rate or add "
            f"decay, and start again from saved or freshly initialised parameters",
            epoch=epoch,
        )
    return host_float(backend, loss)
