"""``nnx sweep --tensorboard DIR --mlflow EXPERIMENT``: each trial logged from the main process as its record arrives
(so it works alike with processes, Dask and ``--batched``): one TensorBoard run folder per trial, and one MLflow
parent run for the sweep with a nested run per trial."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from nnx import _checks
from nnx._component import FilePath
from nnx.callbacks.mlflow import FAILED, FINISHED, KILLED, Tracker
from nnx.callbacks.tensorboard import FAILURE, SUCCESS, log_folder, tensorboardx, write_history
from nnx.callbacks.tracking import run_name
from nnx.sweep.result import SweepResult
from nnx.sweep.space import OWNER


class SweepTracking:
    """Where a sweep's trials are logged; checks the folder and the packages when made, before any trial trains.

    Args:
        tensorboard: the folder that gets one TensorBoard run per trial, or None.
        mlflow: the MLflow experiment that gets the sweep's parent run (made if missing), or None.
    """

    def __init__(self, tensorboard: FilePath | None, mlflow: str | None):
        self.folder: Path | None = None
        if tensorboard is not None:
            self.folder = log_folder(tensorboard, f"{OWNER} tensorboard")
            tensorboardx(f"{OWNER} tensorboard")
        if mlflow is not None and not isinstance(mlflow, str):
            raise TypeError(
                f"{OWNER} mlflow must be the name of an MLflow experiment, got {_checks.describe(mlflow)}; pass e.g. "
                f"mlflow='spiral-sweep'"
            )
        if mlflow is not None and not mlflow.strip():
            raise ValueError(f"{OWNER} mlflow is empty; pass the name of an MLflow experiment, e.g. mlflow='spiral'")
        self.experiment = mlflow
        self.tracker = None if mlflow is None else Tracker(f"{OWNER} mlflow")
        self.experiment_id: str | None = None
        self.parent: str | None = None
        self.tensorboard_failure: Exception | None = None
        self.varied: list[str] = []
        self.width = 1

    @contextlib.contextmanager
    def session(self, space: Mapping[str, Any] | None, result: SweepResult) -> Iterator[None]:
        """Open the sweep's parent run (its space and settings as parameters) and end it when the sweep ends:
        FINISHED, KILLED on Ctrl-C, FAILED on an error.

        Args:
            space: the sweep's search space, as `run` got it.
            result: the sweep's (empty) result, which names the varied hyperparameters and the settings.

        Yields:
            Nothing; log each trial with `trial`.
        """
        self.varied, self.width = list(result.varied), len(str(result.planned))
        self._start(space, result)
        status = FAILED
        try:
            yield
            status = FINISHED
        except KeyboardInterrupt:
            status = KILLED
            raise
        finally:
            if self.tracker is not None and self.parent is not None:
                self.tracker.call(self.tracker.client.set_terminated, self.parent, status)

    def _start(self, space: Mapping[str, Any] | None, result: SweepResult) -> None:
        tracker = self.tracker
        if tracker is None:
            return
        self.experiment_id = tracker.experiment_id(self.experiment)  # type: ignore[arg-type]
        if self.experiment_id is None:
            return
        parent = tracker.call(tracker.client.create_run, self.experiment_id, run_name="sweep")
        if parent is None:
            return
        self.parent = parent.info.run_id
        values: dict[str, Any] = {f"space.{name}": repr(values) for name, values in (space or {}).items()}
        values.update(trials=result.planned, varied=",".join(result.varied) or "none")
        tracker.log_params(self.parent, values)

    def trial(self, record: dict) -> None:
        """Log one finished trial: its hyperparameters and settings, its metric history (epochs as steps) and its
        status (a failed trial's error as the tag "error").

        Args:
            record: the trial's record, as `nnx.sweep.run` collects it.
        """
        name = self.name(record)
        values = {**record["params"], **{k: v for k, v in record["settings"].items() if v is not None}}
        history = record["history"]
        epochs = list(history.get("epoch", []))
        columns = {key: list(column) for key, column in history.items() if key != "epoch"}
        ok = record["status"] == "ok"
        if self.folder is not None and self.tensorboard_failure is None:
            try:
                write_history(self.folder / name, epochs, columns, values, status=SUCCESS if ok else FAILURE)
            except (OSError, ValueError) as error:  # a full disk, a folder removed: the sweep goes on
                self.tensorboard_failure = error
                _checks.warn(
                    f"{OWNER} tensorboard: writing the trials' runs stopped after an error ({type(error).__name__}: "
                    f"{error}); the sweep goes on"
                )
        if self.parent is not None:
            self._mlflow_trial(record, name, values, epochs, columns)

    def _mlflow_trial(self, record: dict, name: str, values: dict, epochs: list, columns: dict) -> None:
        tracker = self.tracker
        assert tracker is not None
        tags = {"mlflow.parentRunId": self.parent, "status": record["status"]}
        if record.get("error"):
            tags["error"] = record["error"]
        run = tracker.call(tracker.client.create_run, self.experiment_id, run_name=name, tags=tags)
        if run is None:
            return
        run_id = run.info.run_id
        tracker.log_params(run_id, values)
        tracker.log_history(run_id, epochs, columns)
        tracker.call(tracker.client.set_terminated, run_id, FINISHED if record["status"] == "ok" else FAILED)

    def name(self, record: dict) -> str:
        """A trial's run name: its number and the hyperparameters the sweep varies, e.g. "trial03,lr=0.5,decay=0".

        Args:
            record: the trial's record.

        Returns:
            The name (also its TensorBoard folder's).
        """
        label = f"trial{record['trial']:0{self.width}d}"
        return label + (f",{run_name(record['params'], self.varied)}" if self.varied else "")
