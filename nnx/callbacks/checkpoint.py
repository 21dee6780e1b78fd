"""Periodic, atomic checkpoints that `Model.train(resume=...)` continues from."""

from __future__ import annotations

from nnx import _checks
from nnx.callbacks.base import Callback, Run


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
