"""The book's printed lines (chapters 18 and 19) and its validation pass, as callbacks."""

from __future__ import annotations

from nnx.callbacks.base import Callback, Run


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
