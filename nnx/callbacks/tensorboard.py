"""TensorBoard: the `TensorBoard` callback, and `write_history`, which writes one finished run (a sweep's trial, a
model of `train_many`) as a TensorBoard run folder. Both write through tensorboardX, imported only when used."""

from __future__ import annotations

import io
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from nnx import _checks
from nnx._component import FilePath
from nnx._paths import input_path
from nnx.callbacks.base import Callback, Run
from nnx.callbacks.tracking import Plain, differing, hyperparameters, plain_values, run_name

OWNER = "nnx.callbacks.TensorBoard"
INSTALL = 'pip install "nnx-nnfs[tensorboard]"'
SCALARS = ("loss", "accuracy", "data_loss", "reg_loss", "lr")
VALIDATION = ("val_loss", "val_accuracy")
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")  # what the HParams view compares runs by
SUCCESS, FAILURE, UNKNOWN = "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_UNKNOWN"
FLUSH_EVERY_S = 1.0  # the event file reaches the disk at most once a second while training, and at the end


def tensorboardx(owner: str = OWNER) -> ModuleType:
    """The tensorboardX package, or an ImportError that says how to install it.

    Args:
        owner: who needs it, named in the error.

    Returns:
        The imported `tensorboardX` module.

    Raises:
        ImportError: tensorboardX is not installed.
    """
    problem = f"{owner} writes TensorBoard logs with tensorboardX, which is not installed; install it with: {INSTALL}"
    return _checks.extra_module("tensorboardX", problem)


def event_writer(package: ModuleType, folder: Path) -> Any:
    """A tensorboardX SummaryWriter on a new event file in `folder`: its name made unique (the process and a random
    tag), so that two runs written into one folder within the same second both stay.

    Args:
        package: the tensorboardX module.
        folder: the run's folder.

    Returns:
        The open SummaryWriter.
    """
    return package.SummaryWriter(logdir=str(folder), filename_suffix=f".{os.getpid()}.{secrets.token_hex(4)}")


def log_folder(path: FilePath, owner: str = OWNER) -> Path:
    """`path` as an absolute folder that TensorBoard logs can be written to (made when the first run is written),
    or a clear error before anything is written.

    Args:
        path: the folder: a str or os.PathLike.
        owner: who asks, named in the errors.

    Returns:
        The absolute folder.

    Raises:
        TypeError: `path` is not a str or os.PathLike.
        ValueError: `path` (or a folder above it) is a file, or the folder (or the nearest existing one above it)
            is not writable.
    """
    folder = input_path(path, f"{owner} log_dir")
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"{owner} log_dir {str(folder)!r}: {str(existing)!r} is a file, not a folder; pass a folder for the "
            f"TensorBoard runs (it is made if missing), e.g. log_dir='runs'"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"{owner} log_dir {str(folder)!r}: the folder {str(existing)!r} is not writable (its permissions, or a "
            f"read-only file system); choose another folder"
        )
    return folder


def runs_folder(path: FilePath, owner: str) -> Path:
    """`log_folder(path, owner)`, having checked that tensorboardX is installed: what a writer of runs checks
    before it trains anything.

    Args:
        path: the folder.
        owner: who asks, named in the errors.

    Returns:
        The absolute folder.

    Raises:
        ImportError: tensorboardX is not installed.
        TypeError: `path` is not a str or os.PathLike.
        ValueError: `path` is a file or not writable.
    """
    folder = log_folder(path, owner)
    tensorboardx(owner)
    return folder


class TensorBoard(Callback):
    """Writes a training run for TensorBoard: each epoch's metrics as scalars, the model's summary as text, its
    hyperparameters for the HParams view and, if asked, weight and gradient histograms.

    Scalars, at the epoch as the step: "loss", "accuracy", "data_loss", "reg_loss", "lr" and, with validation data,
    "val_loss" and "val_accuracy" (validation without `batch_size` runs once, at the end: written at the last
    epoch). The metrics reach the host only on the epochs written. The hyperparameters are those of
    `nnx.callbacks.tracking.hyperparameters` (optimizer, learning rate, layer sizes, regularization, batch size,
    epochs, seed, backend, dtype) plus `hparams`. Gradients for the histograms are computed on the epoch's last
    batch without dropout, so they draw no random numbers: training is the same with histograms as without.
    View the runs with TensorBoard, pointed at the folder above `log_dir`.

    Args:
        log_dir: the run's folder (made if missing); give each run its own, e.g. ``runs/lr=0.05``.
        histograms_every: epochs between weight and gradient histograms; None writes none.
        every: epochs between scalar writes (the last epoch is always written).
        hparams: more hyperparameters to log with the model's own (name -> a number or a str), or None.

    Raises:
        ImportError: tensorboardX is not installed.
        TypeError: `log_dir` is not a path, `every` or `histograms_every` not an integer, or `hparams` not a
            mapping.
        ValueError: `log_dir` is a file or not writable, or `every` or `histograms_every` < 1.
    """

    def __init__(
        self,
        log_dir: FilePath,
        *,
        histograms_every: int | None = None,
        every: int = 1,
        hparams: Mapping[str, Any] | None = None,
    ):
        self.every = _checks.positive_int(every, "every", OWNER)
        self.histograms_every = _checks.optional_positive_int(histograms_every, "histograms_every", OWNER)
        if hparams is not None and not isinstance(hparams, Mapping):
            raise TypeError(
                f"{OWNER} hparams must be a mapping of name -> value, got {_checks.describe(hparams)}; pass e.g. "
                f"hparams={{'trial': 3}}"
            )
        self.hparams = plain_values(hparams or {})
        self.log_dir = log_folder(log_dir)
        self._tensorboardx = tensorboardx()
        self.writer: Any = None
        self.written_epoch: int | None = None
        self.folder_gone = False
        self.flushed = 0.0  # when the event file was last flushed (time.monotonic)

    def __repr__(self) -> str:
        return f"TensorBoard({str(self.log_dir)!r})"

    def on_train_begin(self, run: Run) -> None:
        """Open the run's event file; write the model's summary and its hyperparameters.

        Args:
            run: the training run.
        """
        self.close()  # a run a Ctrl-C or an error left open
        self.writer = event_writer(self._tensorboardx, self.log_dir)
        self.written_epoch, self.folder_gone, self.flushed = None, False, time.monotonic()
        values = {**hyperparameters(run.model, epochs=run.epochs, batch_size=run.batch_size), **self.hparams}
        summary = io.StringIO()
        run.model.summary(file=summary)
        text = "\n".join("    " + line for line in summary.getvalue().splitlines())  # Markdown: a code block
        self.writer.add_text("model/summary", text, run.first_epoch - 1)
        write_hparams(self.writer, values, METRICS)
        self.writer.flush()

    def on_epoch_end(self, run: Run) -> None:
        """Every `every` epochs and at the last: write the scalars; every `histograms_every`: the histograms.

        Args:
            run: the training run.
        """
        if self.writer is None:
            return
        if not run.epoch % self.every or run.epoch == run.epochs:
            self._scalars(run)
        if self.histograms_every and not run.epoch % self.histograms_every and not run.stop:
            self._histograms(run)
            self._flush()

    def on_train_end(self, run: Run) -> None:
        """Write the last whole epoch if it is not written yet, the validation measured at the end, and the run's
        status (failed when training diverged); then close the event file.

        Args:
            run: the training run.
        """
        if self.writer is None:
            return
        try:
            whole = run.completed_epoch == run.epoch >= run.first_epoch
            if whole and run.divergence is None and self.written_epoch != run.epoch and run.metrics:
                self._scalars(run)
            if run.batch_size is None and whole:
                write_scalars(self.writer, {name: run.logs[name] for name in VALIDATION if name in run.logs}, run.epoch)
            self.writer.file_writer.add_summary(session_end(FAILURE if run.divergence is not None else SUCCESS))
        finally:
            self.close()

    def close(self) -> None:
        """Flush and close the event file (`on_train_end` does it; after Ctrl-C, call it yourself or let the next
        training run do it)."""
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()

    def _scalars(self, run: Run) -> None:
        values = run.host_metrics()
        if run.divergence is not None:  # the copy just found NaN or inf: the guard has restored the model
            return
        scalars = {name: values[name] for name in SCALARS}
        if run.batch_size is not None:
            scalars.update({name: run.logs[name] for name in VALIDATION if name in run.logs})
        write_scalars(self.writer, scalars, run.epoch)
        self.written_epoch = run.epoch
        self._flush()

    def _flush(self) -> None:
        """Flush the event file at most once a second (a Ctrl-C loses at most that); warn once if its folder has
        gone (what is written from then on is lost)."""
        if time.monotonic() - self.flushed >= FLUSH_EVERY_S:
            self.flushed = time.monotonic()
            self.writer.flush()
        if not self.folder_gone and not self.log_dir.is_dir():
            self.folder_gone = True
            _checks.warn(
                f"{OWNER}: the folder {str(self.log_dir)!r} was removed while training; the run's later epochs are "
                f"not kept. Training goes on"
            )

    def _histograms(self, run: Run) -> None:
        """Weights, biases and their gradients on the epoch's last batch (forward without dropout, then backward)."""
        model = run.model
        if run.batch is not None:
            X, y = run.batch
            model.backward(model.forward(X, training=False), y)
        to_host = model.backend.to_numpy
        for number, layer in enumerate(model.trainable_layers, start=1):
            for name in ("weights", "biases"):
                self.writer.add_histogram(f"dense{number}/{name}", to_host(getattr(layer, name)), run.epoch)
                gradient = getattr(layer, f"d{name}", None) if run.batch is not None else None
                if gradient is not None:
                    self.writer.add_histogram(f"dense{number}/{name}_gradient", to_host(gradient), run.epoch)


def write_scalars(writer: Any, values: Mapping[str, Any], step: int) -> None:
    """Write one epoch's scalars as one event (one event per scalar costs as much each: about 75 µs).

    Args:
        writer: an open tensorboardX SummaryWriter.
        values: tag -> a number, or None (left out).
        step: the epoch.
    """
    from tensorboardX.proto.summary_pb2 import Summary

    kept = [Summary.Value(tag=tag, simple_value=float(value)) for tag, value in values.items() if value is not None]
    if kept:
        writer.file_writer.add_summary(Summary(value=kept), int(step))


def write_hparams(writer: Any, values: Mapping[str, Plain], metrics: Sequence[str]) -> None:
    """Write the HParams plugin's experiment and session-start summaries into `writer`'s own run folder.

    Args:
        writer: an open tensorboardX SummaryWriter.
        values: hyperparameter name -> a number or a str.
        metrics: the scalar tags the HParams view compares runs by.
    """
    from tensorboardX.summary import hparams

    experiment, start, _ = hparams(dict(values), {name: 0.0 for name in metrics})
    writer.file_writer.add_summary(experiment)
    writer.file_writer.add_summary(start)


def session_end(status: str) -> Any:
    """The HParams plugin's session-end summary with `status`.

    Args:
        status: "STATUS_SUCCESS", "STATUS_FAILURE" or "STATUS_UNKNOWN".

    Returns:
        A tensorboardX Summary to add with ``writer.file_writer.add_summary``.
    """
    from tensorboardX.proto.api_pb2 import Status
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionEndInfo
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

    content = HParamsPluginData(session_end_info=SessionEndInfo(status=Status.Value(status)), version=0)
    plugin = SummaryMetadata.PluginData(plugin_name="hparams", content=content.SerializeToString())
    return Summary(
        value=[Summary.Value(tag="_hparams_/session_end_info", metadata=SummaryMetadata(plugin_data=plugin))]
    )


def write_history(
    log_dir: FilePath,
    epochs: Sequence[int],
    columns: Mapping[str, Sequence[Any]],
    hparams: Mapping[str, Any],
    *,
    status: str = SUCCESS,
) -> Path:
    """Write one finished run as a TensorBoard run folder: every column as scalars at its epochs, and the
    hyperparameters for the HParams view.

    Args:
        log_dir: the run's folder (made if missing).
        epochs: the epochs recorded.
        columns: metric name -> one value per epoch (None where not measured); an "epoch" column is skipped.
        hparams: hyperparameter name -> value.
        status: the run's HParams status: "STATUS_SUCCESS", "STATUS_FAILURE" or "STATUS_UNKNOWN" (stopped).

    Returns:
        The run's folder.

    Raises:
        ImportError: tensorboardX is not installed.
        ValueError: `log_dir` is a file or not writable, or a column's length differs from the epochs'.
    """
    folder = log_folder(log_dir, "nnx TensorBoard run")
    for name, column in columns.items():
        if name != "epoch" and len(column) != len(epochs):
            raise ValueError(
                f"nnx TensorBoard run {str(folder)!r}: column {name!r} has {len(column)} values for {len(epochs)} "
                f"epochs; give one value (or None) per epoch"
            )
    writer = event_writer(tensorboardx("nnx TensorBoard run"), folder)
    try:
        write_hparams(writer, plain_values(hparams), [name for name in METRICS if name in columns])
        for row, epoch in enumerate(epochs):
            write_scalars(writer, {name: column[row] for name, column in columns.items() if name != "epoch"}, epoch)
        writer.file_writer.add_summary(session_end(status))
    finally:
        writer.close()
    return folder


def write_models(
    log_dir: FilePath,
    models: Sequence[Any],
    histories: Sequence[Any],
    *,
    epochs: int,
    batch_size: int | None,
    stopped_by: BaseException | None = None,
) -> list[Path]:
    """Write each model's History as a run, named by its index and the hyperparameters that differ between the
    models ("model0,learning_rate=0.05"), as `train_many(tensorboard=...)` does.

    Args:
        log_dir: the folder that gets one run folder per model.
        models: the models.
        histories: their Histories, in the same order (a model never trained: an empty one).
        epochs: the epochs they were asked to train.
        batch_size: their batch size.
        stopped_by: the error (or Ctrl-C) that stopped training, or None: each run's status is then unknown, not
            success.

    Returns:
        The run folders written, in order: those written before a failure to write one, which is a UserWarning
        (with `stopped_by`: a note on that error), never an error that would lose the trained models' Histories.
    """
    folders: list[Path] = []
    try:
        folder = log_folder(log_dir, "nnx TensorBoard runs")
        _write_models(folder, models, histories, epochs, batch_size, stopped_by is not None, folders)
    except (OSError, ValueError) as error:  # a full disk, a folder removed: the trained models and Histories stay
        message = f"the TensorBoard runs could not all be written to {str(log_dir)!r}: {error}"
        note = getattr(stopped_by, "add_note", None)  # Python 3.11+
        if stopped_by is None:
            _checks.warn(f"{message}; the models are trained and their Histories returned")
        elif note is not None:
            note(message)
    return folders


def _write_models(log_dir: Path, models, histories, epochs, batch_size, stopped: bool, folders: list) -> None:
    rows = [hyperparameters(model, epochs=epochs, batch_size=batch_size) for model in models]
    names = differing(rows)
    width = len(str(max(len(models) - 1, 0)))
    for index, (row, history) in enumerate(zip(rows, histories, strict=True)):
        label = f"model{index:0{width}d}" + (f",{run_name(row, names)}" if names else "")
        diverged = bool(history.final.get("diverged"))
        status = FAILURE if diverged else UNKNOWN if stopped or not history.epoch else SUCCESS
        folders.append(write_history(log_dir / label, history.epoch, history.history, row, status=status))
