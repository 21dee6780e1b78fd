"""Periodic, atomic checkpoints that `Model.train(resume=...)` continues from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nnx import _checks
from nnx._component import FilePath
from nnx._paths import output_path
from nnx.callbacks.base import Callback, Run
from nnx.errors import SaveError


class Checkpoint(Callback):
    """Saves the model, its optimizer state and the RNG state atomically every `every` epochs and at the end.

    `Model.train(checkpoint=path, checkpoint_every=...)` adds one, and `Model.train(resume=path)` continues from its
    file. A write that fails (a full disk, say) stops training after that epoch, and `Model.train` raises the
    `SaveError` with the run's History.

    Args:
        path: the file to write, replaced in one step each time.
        every: epochs between saves, an integer >= 1.
        save: how to save, ``save(model, path, training)`` with `training` the dict {"epoch", "epochs"} (and the
            entries of `record`); None is the model's own ``model.save(path, training=training)``.
        record: more JSON-friendly entries for the training record, read when it is saved (`Model.train` keeps
            its shuffling seed there, for `resume`); None for none.

    Raises:
        TypeError: `save` is not callable, `record` not a dict, or `every` not an integer.
        ValueError: `every` < 1, or `path` cannot be written (its folder is missing, say).
    """

    def __init__(
        self,
        path: FilePath,
        *,
        every: int = 1,
        save: Callable[[Any, Any, dict[str, Any]], None] | None = None,
        record: dict[str, Any] | None = None,
    ):
        self.path = output_path(path, "Model.train checkpoint")
        self.every = _checks.positive_int(every, "checkpoint_every", "Model.train")
        if save is not None and not callable(save):
            raise TypeError(f"Checkpoint save must be a function save(model, path, training), got {save!r}")
        self.save = save or _model_save
        if record is not None and not isinstance(record, dict):
            raise TypeError(f"Checkpoint record must be a dict or None, got {_checks.describe(record)}")
        self.record = {} if record is None else record

    def on_train_begin(self, run: Run) -> None:
        """Note where the run starts: nothing is saved before an epoch ends.

        Args:
            run: the training run.
        """
        self.saved_epoch = run.first_epoch - 1

    def on_epoch_end(self, run: Run) -> None:
        """Save every `every` epochs (unless training stopped).

        Args:
            run: the training run.
        """
        if not run.stop and not run.epoch % self.every:
            self._save(run)

    def on_train_end(self, run: Run) -> None:
        """Save the last whole epoch if it is not saved yet, unless training diverged or stopped inside an epoch
        (then the state is not one).

        Args:
            run: the training run.
        """
        healthy = run.divergence is None and run.save_error is None
        if healthy and run.completed_epoch == run.epoch and run.epoch > self.saved_epoch:
            self._save(run)

    def _save(self, run: Run) -> None:
        """Save; a write that fails stops training after this epoch, and `Model.train` raises it with the History."""
        try:
            self.save(run.model, self.path, {**self.record, "epoch": run.epoch, "epochs": run.epochs})
        except (OSError, ValueError) as error:  # a full disk, a folder removed since training began, ...
            failure = error if isinstance(error, SaveError) else SaveError(self.path, str(error))
            run.save_error, run.stop = failure, True
            return
        self.saved_epoch = run.epoch


def _model_save(model: Any, path: Any, training: dict[str, Any]) -> None:
    model.save(path, training=training)
