"""The book's printed lines (chapters 18 and 19) and its validation pass, as callbacks."""

from __future__ import annotations

from typing import Any

from nnx.callbacks.base import Callback, Run


class BookLog(Callback):
    """The book's printed lines, what `Model.train` prints by default.

    Without `batch_size`, chapter 18's ``epoch: 100, acc: ..., loss: ... (data_loss: ..., reg_loss: ...), lr: ...``
    every `every` epochs. With it, chapter 19's: ``epoch: N`` at each epoch's start, a ``step: ...`` line every
    `every` steps and at the epoch's last step, and a ``training, acc: ...`` line at its end.

    Args:
        every: epochs (or, with batches, steps) between lines; None or 0 prints nothing.
    """

    def __init__(self, every: int | None):
        self.every = every

    def on_epoch_begin(self, run: Run) -> None:
        """With batches, print ``epoch: N``.

        Args:
            run: the training run.
        """
        if self.every and run.batch_size is not None:
            print(f"epoch: {run.epoch}")

    def on_step_end(self, run: Run) -> None:
        """With batches, print the step's line every `every` steps and at the epoch's last step.

        Args:
            run: the training run.
        """
        if self.every and run.batch_size is not None and (not run.step % self.every or run.last_step):
            self._print(run, f"step: {run.step}")

    def on_epoch_end(self, run: Run) -> None:
        """Print the epoch's line: every `every` epochs without batches, every epoch (``training, ...``) with them.

        Args:
            run: the training run.
        """
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
    """Evaluates on held-out data, as `Model.train(validation_data=...)` does: after every epoch with batches, once
    at the end without (the book's order).

    The loss and accuracy go to ``run.logs["val_loss"]`` and ``run.logs["val_accuracy"]``, where `History` and the
    progress output find them.

    Args:
        X: the validation inputs, on the model's backend; or streamed data that `Model.evaluate` takes (a chunked
            array, or an iterable of (X, y) batches with `y` None), checked batch by batch at each pass.
        y: their targets, likewise; None with an iterable of batches.
        verbose: whether `Model.evaluate` prints the book's ``validation, acc: ..., loss: ...`` line.
        prefetch: for streamed data, batches read ahead on a background thread (`Model.train`'s `prefetch`).
    """

    def __init__(self, X: Any, y: Any, *, verbose: bool, prefetch: int | str = "auto"):
        self.X, self.y, self.verbose, self.prefetch = X, y, verbose, prefetch

    def on_epoch_end(self, run: Run) -> None:
        """With batches, evaluate after the epoch (unless training stopped).

        Args:
            run: the training run.
        """
        if run.batch_size is not None and not run.stop:
            self._evaluate(run)

    def on_train_end(self, run: Run) -> None:
        """Without batches, evaluate once at the end (unless training stopped).

        Args:
            run: the training run.
        """
        if run.batch_size is None and not run.stop:
            self._evaluate(run)

    def _evaluate(self, run: Run) -> None:
        batch_size = None if self.y is None else run.batch_size  # an iterable of batches makes its own
        options = {"batch_size": batch_size, "verbose": self.verbose, "prefetch": self.prefetch}
        try:
            loss, accuracy = run.model.evaluate(self.X, self.y, **options)
        except Exception as error:  # a bad batch of streamed validation data: say where training stood
            note = getattr(error, "add_note", None)
            if note is not None:
                note(
                    f"(raised while validating after epoch {run.epoch}: its evaluation batches are validation_data's; "
                    f"the model holds the parameters of that epoch's last step)"
                )
            raise
        run.logs["val_loss"], run.logs["val_accuracy"] = loss, accuracy
