"""The loop's side of the hooks: `Run` (what callbacks read), `Callback` (the hooks) and `CallbackList`."""

from __future__ import annotations

from nnx.errors import CallOrderError, DivergenceError, SaveError


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
        self.save_error: SaveError | None = None  # a checkpoint that could not be written stops the run
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
        if not self.metrics:
            raise CallOrderError(
                "run.host_metrics(): there are no metrics before the first training step; read them from "
                "on_step_end or on_epoch_end"
            )
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
        for index, callback in enumerate(self.callbacks):
            if isinstance(callback, type) and issubclass(callback, Callback):
                raise TypeError(
                    f"Model.train callbacks must be Callback instances, got the class {callback.__name__}; "
                    f"pass an instance: callbacks=[{callback.__name__}()]"
                )
            if not isinstance(callback, Callback):
                raise TypeError(
                    f"Model.train callbacks must be nnx.callbacks.Callback instances, got {type(callback).__name__}; "
                    f"subclass nnx.callbacks.Callback"
                )
            if any(callback is other for other in self.callbacks[:index]):
                raise ValueError(
                    f"Model.train got the same callback twice ({type(callback).__name__}); each would see every "
                    f"hook twice. Pass it once"
                )

    def _call(self, hook: str, run: Run) -> None:
        for method in self._hooks(hook):
            method(run)

    def _hooks(self, hook: str) -> list:
        """The bound `hook` methods of the callbacks that override it (the base class's do nothing), in order."""
        return [
            getattr(callback, hook)
            for callback in self.callbacks
            if getattr(type(callback), hook, None) is not getattr(Callback, hook)
        ]

    def on_train_begin(self, run):
        self._call("on_train_begin", run)
        self._per_step = {hook: self._hooks(hook) for hook in ("on_epoch_begin", "on_step_end", "on_epoch_end")}

    def on_epoch_begin(self, run):
        for method in self._per_step["on_epoch_begin"]:
            method(run)

    def on_step_end(self, run):
        for method in self._per_step["on_step_end"]:
            method(run)

    def on_epoch_end(self, run):
        for method in self._per_step["on_epoch_end"]:
            method(run)

    def on_train_end(self, run):
        self._call("on_train_end", run)
