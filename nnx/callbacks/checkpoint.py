"""Periodic, atomic checkpoints that `Model.train(resume=...)` continues from."""

from __future__ import annotations

from nnx import _checks
from nnx._paths import output_path
from nnx.callbacks.base import Callback, Run
from nnx.errors import SaveError


class Checkpoint(Callback):
    """Saves the model, its optimizer state and the RNG state atomically every `every` epochs and at the end.

    It is handed how to save: `save(model, path, training)`, by default the model's own
    ``model.save(path, training=training)``.
    """

    def __init__(self, path, *, every: int = 1, save=None):
        self.path = output_path(path, "Model.train checkpoint")
        self.every = _checks.positive_int(every, "checkpoint_every", "Model.train")
        if save is not None and not callable(save):
            raise TypeError(f"Checkpoint save must be a function save(model, path, training), got {save!r}")
        self.save = save or _model_save

    def on_train_begin(self, run):
        self.saved_epoch = run.first_epoch - 1

    def on_epoch_end(self, run):
        if not run.stop and not run.epoch % self.every:
            self._save(run)

    def on_train_end(self, run):
        """The last whole epoch, unless training diverged or stopped inside an epoch (then the state is not one)."""
        healthy = run.divergence is None and run.save_error is None
        if healthy and run.completed_epoch == run.epoch and run.epoch > self.saved_epoch:
            self._save(run)

    def _save(self, run: Run) -> None:
        """Save; a write that fails stops training after this epoch, and `Model.train` raises it with the History."""
        try:
            self.save(run.model, self.path, {"epoch": run.epoch, "epochs": run.epochs})
        except (OSError, ValueError) as error:  # a full disk, a folder removed since training began, ...
            failure = error if isinstance(error, SaveError) else SaveError(self.path, str(error))
            run.save_error, run.stop = failure, True
            return
        self.saved_epoch = run.epoch


def _model_save(model, path, training: dict) -> None:
    model.save(path, training=training)
