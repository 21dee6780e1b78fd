"""MLflow: the `MLflow` callback, and `Tracker`, the guarded calls into MLflow that the callback and
``nnx sweep --mlflow`` share (a failing call warns once and turns logging off; training goes on)."""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from nnx import _checks
from nnx.callbacks.base import Callback, Run
from nnx.callbacks.history import History
from nnx.callbacks.tracking import hyperparameters, plain_values

OWNER = "nnx.callbacks.MLflow"
INSTALL = 'pip install "nnx-nnfs[mlflow]"'
METRICS = ("loss", "accuracy", "data_loss", "reg_loss", "lr")
VALIDATION = ("val_loss", "val_accuracy")
FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"
SEND_EVERY_S = 1.0  # metrics go to the store at most once a second (and at the end): one request, not one an epoch
_STARTED: dict[str, MLflow] = {}  # run -> the callback that started it and has not ended it (Ctrl-C skips on_train_end)


def mlflow_module(owner: str = OWNER) -> ModuleType:
    """The mlflow package, or an ImportError that says how to install it.

    Args:
        owner: who needs it, named in the error.

    Returns:
        The imported `mlflow` module.

    Raises:
        ImportError: mlflow is not installed.
    """
    problem = (
        f"{owner} logs runs with MLflow, which is not installed; install it with: {INSTALL} (or the full mlflow "
        f"package, which adds its UI)"
    )
    return _checks.extra_module("mlflow", problem)


class Tracker:
    """Calls into MLflow through one client; the first call that fails warns once (a UserWarning naming MLflow and
    the error) and turns every later call into nothing, so a vanished store never stops training.

    Args:
        owner: who logs, named in the warning.
    """

    def __init__(self, owner: str):
        self.owner = owner
        self.mlflow = mlflow_module(owner)
        self.failure: Exception | None = None
        self.client: Any = self.call(self.mlflow.MlflowClient)

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`function(*args, **kwargs)`, or None once a call has failed (the first failure warns).

        Args:
            function: an MLflow function or method.
            *args: its positional arguments.
            **kwargs: its keyword arguments.

        Returns:
            What it returns, or None when logging is off.
        """
        if self.failure is not None:
            return None
        try:
            return function(*args, **kwargs)
        except Exception as error:  # any failure of the store: training must go on
            self.failure = error
            _checks.warn(
                f"{self.owner}: MLflow logging stopped after an error ({type(error).__name__}: "
                f"{' '.join(str(error).split())[:500]}); training goes on, and its History and checkpoint are kept"
            )
            return None

    def experiment_id(self, name: str) -> str | None:
        """The id of the experiment `name`, made if missing.

        Args:
            name: the experiment's name.

        Returns:
            Its id, or None when logging is off.
        """
        found = self.call(self.client.get_experiment_by_name, name)
        if found is not None:
            return found.experiment_id
        return self.call(self.client.create_experiment, name)

    def log_params(self, run_id: str, values: Mapping[str, Any]) -> None:
        """Log parameters (MLflow keeps them as text).

        Args:
            run_id: the run.
            values: name -> value.
        """
        from mlflow.entities import Param

        params = [Param(name, str(value)) for name, value in plain_values(values).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters per call
            self.call(self.client.log_batch, run_id, params=params[start : start + 100])

    def log_metrics(self, run_id: str, values: Mapping[str, Any], step: int) -> None:
        """Log metrics at `step` (None values left out).

        Args:
            run_id: the run.
            values: name -> number or None.
            step: the epoch.
        """
        self.log_history(run_id, [step], {name: [value] for name, value in values.items()})

    def log_history(self, run_id: str, epochs: Sequence[int], columns: Mapping[str, Sequence[Any]]) -> None:
        """Log every column at its epochs as the steps (None values and an "epoch" column left out).

        Args:
            run_id: the run.
            epochs: the epochs.
            columns: metric name -> one value per epoch.
        """
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(name, float(value), now, int(epoch))
            for name, column in columns.items()
            if name != "epoch"
            for epoch, value in zip(epochs, column, strict=True)
            if value is not None
        ]
        for start in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per call
            self.call(self.client.log_batch, run_id, metrics=metrics[start : start + 1000])

    def log_files(self, run_id: str, files: Iterable[tuple[Path, str | None]]) -> None:
        """Log files as artifacts.

        Args:
            run_id: the run.
            files: (file, artifact folder or None) pairs.
        """
        for path, folder in files:
            self.call(self.client.log_artifact, run_id, str(path), folder)

    def end(self, run_id: str | None, status: str) -> None:
        """End a run with `status` ("FINISHED", "FAILED" or "KILLED"): the active run through MLflow's own
        `end_run` (which also makes it inactive, whatever the store says), any other through the client.

        Args:
            run_id: the run; None does nothing.
            status: its final status.
        """
        if run_id is None:
            return
        _STARTED.pop(run_id, None)
        active = self.mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            if self.failure is None:
                self.call(self.mlflow.end_run, status)
            else:  # make it inactive all the same; the store's failure has been reported once already
                with contextlib.suppress(Exception):
                    self.mlflow.end_run(status)
            return
        self.call(self.client.set_terminated, run_id, status)


class MLflow(Callback):
    """Logs a training run to MLflow: its hyperparameters, every epoch's metrics (the epoch as the step), the
    History as CSV and, with `log_model`, the model file (``model/model.nnx``, which `nnx.Model.load` reads) and,
    when the `onnx` package is installed, its ONNX export (``model/model.onnx``).

    It logs into the active run (``with mlflow.start_run(): model.train(...)``) and leaves it open, or starts a run
    and ends it when training ends (FINISHED, or FAILED when training diverged). Where runs go is MLflow's own
    setting (``mlflow.set_tracking_uri`` or $MLFLOW_TRACKING_URI). A failing MLflow call (the store vanished, a
    server went down) warns once and turns logging off: training goes on, and its History and checkpoint are kept.

    Args:
        run_name: the name of a run it starts; None lets MLflow choose one.
        log_model: log the model file (and its ONNX export) at the end.
        every: epochs between metric logs (the last epoch is always logged).
        experiment: the experiment of a run it starts, made if missing; None is MLflow's current one.
        hparams: more parameters to log with the model's own (name -> a number or a str), or None.

    Raises:
        ImportError: mlflow is not installed.
        TypeError: an argument has the wrong type.
        ValueError: `every` < 1, or `run_name` or `experiment` is empty.
    """

    def __init__(
        self,
        run_name: str | None = None,
        *,
        log_model: bool = True,
        every: int = 1,
        experiment: str | None = None,
        hparams: Mapping[str, Any] | None = None,
    ):
        self.run_name = _optional_name(run_name, "run_name")
        self.log_model = _checks.boolean(log_model, "log_model", OWNER)
        self.every = _checks.positive_int(every, "every", OWNER)
        self.experiment = _optional_name(experiment, "experiment")
        if hparams is not None and not isinstance(hparams, Mapping):
            raise TypeError(
                f"{OWNER} hparams must be a mapping of name -> value, got {_checks.describe(hparams)}; pass e.g. "
                f"hparams={{'trial': 3}}"
            )
        self.hparams = plain_values(hparams or {})
        mlflow_module()
        self.tracker: Tracker | None = None
        self.run_id: str | None = None
        self.started = False
        self.history = History()
        self.logged_epoch: int | None = None
        self.pending: list[tuple[int, dict[str, Any]]] = []  # epochs' metrics not sent yet
        self.sent = 0.0  # when metrics were last sent (time.monotonic)

    def __repr__(self) -> str:
        return f"MLflow(run_name={self.run_name!r})"

    def on_train_begin(self, run: Run) -> None:
        """Use the active run or start one, and log the hyperparameters.

        Args:
            run: the training run.
        """
        self.tracker = tracker = Tracker(OWNER)
        self.history.on_train_begin(run)
        self.logged_epoch, self.run_id, self.started = None, None, False
        self.pending, self.sent = [], time.monotonic()
        active = tracker.call(_active_run, tracker.mlflow)
        if active is None and tracker.failure is None:
            experiment = None if self.experiment is None else tracker.experiment_id(self.experiment)
            active = tracker.call(tracker.mlflow.start_run, run_name=self.run_name, experiment_id=experiment)
            self.started = active is not None
        if active is None:
            return
        self.run_id = active.info.run_id
        if self.started:
            _STARTED[self.run_id] = self
            _end_left_runs_at_exit()
        values = {**hyperparameters(run.model, epochs=run.epochs, batch_size=run.batch_size), **self.hparams}
        tracker.log_params(self.run_id, values)

    def on_epoch_end(self, run: Run) -> None:
        """Log the metrics every `every` epochs and at the last.

        Args:
            run: the training run.
        """
        self.history.on_epoch_end(run)
        if self._logging() and (not run.epoch % self.every or run.epoch == run.epochs):
            self._metrics(run)

    def on_train_end(self, run: Run) -> None:
        """Log the last epoch if not yet logged, the validation measured at the end, the History CSV and the model
        files; end the run if this callback started it.

        Args:
            run: the training run.
        """
        self.history.on_train_end(run)
        if self.tracker is None:
            return
        tracker, run_id = self.tracker, self.run_id
        try:
            whole = run.completed_epoch == run.epoch >= run.first_epoch
            if self._logging() and whole and run.divergence is None and self.logged_epoch != run.epoch and run.metrics:
                self._metrics(run)
            if run.batch_size is None and whole:  # validation without batches: once, at the end
                self.pending.append((run.epoch, {name: run.logs[name] for name in VALIDATION if name in run.logs}))
            self._send()
            if self._logging():
                with tempfile.TemporaryDirectory() as folder:
                    tracker.log_files(run_id, self._files(run, Path(folder)))  # type: ignore[arg-type]
        finally:
            if self.started:
                tracker.end(run_id, FAILED if run.divergence is not None else FINISHED)
            self.tracker = None

    def _logging(self) -> bool:
        return self.tracker is not None and self.tracker.failure is None and self.run_id is not None

    def _metrics(self, run: Run) -> None:
        values: dict[str, Any] = dict(run.host_metrics())
        if run.divergence is not None:  # the copy just found NaN or inf: nothing finite to log
            return
        if run.batch_size is not None:
            values.update({name: run.logs[name] for name in VALIDATION if name in run.logs})
        self.pending.append((run.epoch, values))
        self.logged_epoch = run.epoch
        if time.monotonic() - self.sent >= SEND_EVERY_S:
            self._send()

    def _send(self) -> None:
        """Send the pending epochs' metrics in one request (one per `SEND_EVERY_S`, and at the end)."""
        pending, self.pending, self.sent = self.pending, [], time.monotonic()
        if pending and self._logging():
            names = list(dict.fromkeys(name for _, values in pending for name in values))
            columns = {name: [values.get(name) for _, values in pending] for name in names}
            epochs = [epoch for epoch, _ in pending]
            self.tracker.log_history(self.run_id, epochs, columns)  # type: ignore[union-attr,arg-type]

    def _files(self, run: Run, folder: Path) -> list[tuple[Path, str | None]]:
        """The History CSV and, with `log_model`, the model file and its ONNX export, written into `folder`."""
        tracker = self.tracker
        files: list[tuple[Path, str | None]] = []
        if self.history.epoch:
            files.append((self.history.to_csv(folder / "history.csv"), None))
        if not self.log_model:
            return files
        model_file = folder / "model.nnx"
        if tracker.call(run.model.save, model_file, training=None) is None and tracker.failure is None:  # type: ignore[union-attr]
            files.append((model_file, "model"))
        if importlib.util.find_spec("onnx") is not None and hasattr(run.model, "export_onnx"):
            try:
                files.append((run.model.export_onnx(folder / "model.onnx", overwrite=True), "model"))
            except (TypeError, ValueError) as error:  # a layer without an export: log the rest all the same
                _checks.warn(f"{OWNER}: the model's ONNX export is left out of the run ({error})")
        return files


def _active_run(mlflow: ModuleType) -> Any:
    """MLflow's active run in this thread; a run an MLflow callback started and a Ctrl-C left open is ended
    (KILLED) first."""
    active = mlflow.active_run()
    if active is not None and active.info.run_id in _STARTED:
        _STARTED.pop(active.info.run_id)._send()
        mlflow.end_run(KILLED)
        active = mlflow.active_run()
    return active


@functools.cache
def _end_left_runs_at_exit() -> None:
    """At exit, end the runs an MLflow callback started that training never ended (an uncaught Ctrl-C or error) as
    KILLED, before MLflow's own exit hook (registered earlier, so run later) would end them as FINISHED."""
    atexit.register(_end_left_runs)


def _end_left_runs() -> None:
    with contextlib.suppress(Exception):  # at exit, a store that is gone cannot be told
        for run_id, callback in list(_STARTED.items()):
            callback._send()  # the epochs logged since the last send
            Tracker(OWNER).end(run_id, KILLED)


def _optional_name(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{OWNER} {name} must be a str or None, got {_checks.describe(value)}; pass e.g. {name}='lr'")
    if not value.strip():
        raise ValueError(f"{OWNER} {name} is empty; pass a name, or None to let MLflow choose")
    return value
