"""The loop's side of the hooks: `Run` (what callbacks read), `Callback` (the hooks) and `CallbackList`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from nnx.errors import CallOrderError, DivergenceError, SaveError

if TYPE_CHECKING:
    from nnx.backends import Backend


class Run:
    """The state of one `Model.train` call that callbacks read: model, epoch, step and the latest metrics.

    `Model.train` makes it and hands it to every hook. Metrics stay on the device; `host_metrics()` copies them
    once per step, only when someone asks. A callback stops training by setting `stop`.

    Args:
        model: the Model being trained.
        epochs: the epoch training ends with (`Model.train`'s `epochs`).
        steps: steps per epoch: batches with `batch_size`, else 1.
        batch_size: `Model.train`'s `batch_size`; None trains on the whole set at each step.
        first_epoch: the first epoch this call runs: 1, or one past a resumed checkpoint's.

    Attributes:
        epoch: the current epoch, from `first_epoch` (first_epoch - 1 before the first one).
        completed_epoch: the last epoch that ran to its end.
        step: the step within the epoch, from 0.
        batch: the (X, y) batch of the latest step (references to the loop's arrays), or None before the first.
        global_step: steps run so far in this call.
        metrics: the latest "accuracy", "data_loss" and "reg_loss", on the device ({} before the first step).
        logs: host numbers that callbacks add, such as "val_loss" and "val_accuracy".
        stop: set it to True to end training after the current hook.
        divergence: the DivergenceError when training diverged, else None.
        save_error: the SaveError of a checkpoint that could not be written (it stops training), else None.
        host_watchers: functions ``watch(run, values)`` called with every new host copy of the metrics.
        finite_probe: the step's own finite check, or None: a function that returns a device value that is NaN or
            inf unless the last step's loss and updated parameters are all finite (the compiled step computes it),
            or None when it has none for that step.
    """

    def __init__(self, model: Any, *, epochs: int, steps: int, batch_size: int | None, first_epoch: int = 1):
        self.model = model
        self.epochs = epochs
        self.steps = steps
        self.batch_size = batch_size
        self.first_epoch = first_epoch
        self.epoch = self.completed_epoch = first_epoch - 1
        self.step = 0
        self.global_step = 0
        self.batch: tuple[Any, Any] | None = None
        self.metrics: dict[str, Any] = {}
        self.logs: dict[str, Any] = {}
        self.stop = False
        self.divergence: DivergenceError | None = None
        self.save_error: SaveError | None = None  # a checkpoint that could not be written stops the run
        self.host_watchers: list[Callable[[Run, dict[str, float]], None]] = []
        self.finite_probe: Callable[[], Any] | None = None
        self._host: tuple[dict[str, Any], dict[str, float]] | None = None

    @property
    def last_step(self) -> bool:
        """Whether the current step is the epoch's last."""
        return self.step == self.steps - 1

    def set_metrics(self, accuracy: Any, data_loss: Any, regularization_loss: Any) -> None:
        """Set the metrics of the step just computed (at an epoch's end with batches: of the whole epoch).

        The training loop calls it; the values stay on the device until `host_metrics()` asks for them.

        Args:
            accuracy: the accuracy, a 0-d device array or a number.
            data_loss: the mean loss without regularization, likewise.
            regularization_loss: the L1/L2 penalty, likewise.
        """
        self.metrics = {"accuracy": accuracy, "data_loss": data_loss, "reg_loss": regularization_loss}
        self._host = None

    def host_metrics(self) -> dict[str, float]:
        """The current metrics as Python floats: one device -> host copy per step, made on the first ask.

        Watchers (the divergence check, a progress bar) see each new copy first.

        Returns:
            {"accuracy", "data_loss", "reg_loss", "loss" (data + regularization), "lr" (the current learning
            rate)}.

        Raises:
            CallOrderError: no step has run yet.
        """
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


def host_float(backend: Backend, value: Any) -> float:
    """A metric as a Python float: the explicit device -> host copy, made only when a number is needed."""
    return float(value) if isinstance(value, (int, float)) else float(backend.to_numpy(value))


class Callback:
    """Base class of the hooks around `Model.train`'s loop: every hook does nothing. Subclass it and override what
    you need; pass instances as ``model.train(..., callbacks=[...])``.

    Each hook gets the `Run`. Reading ``run.host_metrics()`` copies the metrics to the host, so call it only when
    you need the numbers; set ``run.stop = True`` to end training.
    """

    def on_train_begin(self, run: Run) -> None:
        """Called once, before the first epoch.

        Args:
            run: the training run.
        """

    def on_epoch_begin(self, run: Run) -> None:
        """Called at the start of every epoch, after `run.epoch` has moved on.

        Args:
            run: the training run.
        """

    def on_step_end(self, run: Run) -> None:
        """Called after every training step (every batch), with the step's metrics in `run.metrics`.

        Args:
            run: the training run.
        """

    def on_epoch_end(self, run: Run) -> None:
        """Called at the end of every epoch, with the epoch's metrics in `run.metrics` (with batches: the whole
        epoch's).

        Args:
            run: the training run.
        """

    def on_train_end(self, run: Run) -> None:
        """Called once, when training ends: after the last epoch, or when it stopped or diverged.

        Args:
            run: the training run.
        """


class CallbackList(Callback):
    """Calls each hook on every callback in order, and stops calling step hooks once `run.stop` is set."""

    def __init__(self, callbacks: Iterable[Callback]):
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

    def _hooks(self, hook: str) -> list[Callable[[Run], None]]:
        """The bound `hook` methods of the callbacks that override it (the base class's do nothing), in order."""
        return [
            getattr(callback, hook)
            for callback in self.callbacks
            if getattr(type(callback), hook, None) is not getattr(Callback, hook)
        ]

    def on_train_begin(self, run: Run) -> None:
        self._call("on_train_begin", run)
        self._per_step = {hook: self._hooks(hook) for hook in ("on_epoch_begin", "on_step_end", "on_epoch_end")}

    def on_epoch_begin(self, run: Run) -> None:
        for method in self._per_step["on_epoch_begin"]:
            method(run)

    def on_step_end(self, run: Run) -> None:
        for method in self._per_step["on_step_end"]:
            method(run)

    def on_epoch_end(self, run: Run) -> None:
        for method in self._per_step["on_epoch_end"]:
            method(run)

    def on_train_end(self, run: Run) -> None:
        self._call("on_train_end", run)
