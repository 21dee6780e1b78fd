"""Progress while training: one tqdm bar (a terminal or a notebook), or one plain log line every few epochs.

Both show metrics only when they come back to the host: the bar fetches them at most every `interval` seconds
(and sees every copy someone else makes, such as a validation pass), the lines every `every` epochs.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from nnx import _checks, _notebook
from nnx.callbacks.base import Callback, Run
from nnx.errors import CallOrderError

MAX_LINES = 100
SHOWN = (("loss", "loss"), ("accuracy", "acc"), ("lr", "lr"), ("val_loss", "val_loss"), ("val_accuracy", "val_acc"))


def format_metrics(values: dict[str, Any], separator: str = " - ") -> str:
    """``loss: 0.123 - acc: 0.912 - lr: 0.5`` from host metrics (those present, in a fixed order)."""
    return separator.join(f"{label}: {_number(values[name])}" for name, label in SHOWN if name in values)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def lines_every(epochs: int, most: int = MAX_LINES) -> int:
    """The smallest round step (1, 2, 5, 10, 20, 50, ...) at which one line per step, and the last epoch's, make
    at most `most` lines over `epochs` epochs."""
    scale = 1
    while True:
        for step in (scale, 2 * scale, 5 * scale):
            if -(-epochs // step) <= most:
                return step
        scale *= 10


class ProgressBar(Callback):
    """One tqdm bar over the whole run, with the latest metrics in its postfix.

    The bar runs over the epochs, or with `batch_size` over every step (its description names the epoch). In a
    notebook it is tqdm's widget bar when ipywidgets is installed, else a single line updated in place.
    `Model.train(verbose=1)` adds one; outside `Model.train`, drive it by hand with `start`, `advance` and `close`.

    Args:
        interval: the least seconds between two copies of the metrics to the host, a number >= 0; the bar also
            shows every copy something else makes (a validation pass, a printed line).
        file: the text stream to draw on (sys.stderr, an open file, io.StringIO); None is stderr, or the notebook.
        leave: whether the finished bar stays on screen.

    Raises:
        TypeError: `file` is not a text stream, or `leave` not a bool.
        ValueError: `interval` < 0.
    """

    def __init__(self, *, interval: float = 0.5, file: IO[str] | None = None, leave: bool = True):
        self.interval = _checks.non_negative(interval, "interval", "ProgressBar")
        self.file = _checks.text_stream(file, "ProgressBar")
        self.leave = _checks.boolean(leave, "leave", "ProgressBar")
        self.bar: Any = None
        self._fetched = 0.0

    # The bar itself, usable from any loop ---------------------------------------------------------------------

    def start(self, total: int | None, *, unit: str = "epoch", description: str | None = None) -> None:
        """Open a new bar, closing the previous one.

        Args:
            total: the number of units the bar counts to, an integer >= 1; None counts without a total.
            unit: what it counts, shown after the rate ("epoch", "step", ...).
            description: the text before the bar; None for none.

        Raises:
            ValueError: `total` < 1.
        """
        total = None if total is None else _checks.positive_int(total, "total", "ProgressBar.start")
        self.close()
        self.bar = _new_bar(self.file, total=total, unit=unit, desc=description, leave=self.leave)
        self._fetched = time.monotonic()

    def advance(self, n: int = 1, metrics: dict[str, Any] | None = None) -> None:
        """Move the bar on.

        Args:
            n: how many units, an integer >= 1.
            metrics: host numbers by name ("loss", "accuracy", "lr", "val_loss", "val_accuracy"), shown in place of
                the postfix; None keeps it.

        Raises:
            CallOrderError: no bar is open (call `start` first).
        """
        if self.bar is None:
            raise CallOrderError("ProgressBar.advance() needs an open bar: call start(total) first")
        if metrics:
            self.show(metrics)
        self.bar.update(_checks.positive_int(n, "n", "ProgressBar.advance"))

    def show(self, metrics: dict[str, Any]) -> None:
        """Put metrics in the postfix; the bar redraws them at its next update. Without an open bar it does nothing.

        Args:
            metrics: host numbers by name; loss, accuracy, lr, val_loss and val_accuracy are shown.
        """
        if self.bar is not None:
            self.bar.set_postfix_str(format_metrics(metrics, ", "), refresh=False)

    def write(self, line: str) -> None:
        """Print a line on stdout without breaking the bar (it is redrawn below the line).

        Args:
            line: the text, without its newline.
        """
        if self.bar is None:
            print(line, flush=True)
        else:
            self.bar.write(line, file=sys.stdout)

    def close(self) -> None:
        """Close the bar, if one is open; it stays on screen when `leave` is True."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    # As a callback --------------------------------------------------------------------------------------------

    def on_train_begin(self, run: Run) -> None:
        """Open the bar over the run's epochs (with batches: its steps; a count of them when a stream's length is
        unknown), and show every host copy of the metrics.

        Args:
            run: the training run.
        """
        run.host_watchers.append(lambda _, values: self.show(values))
        epochs = run.epochs - run.first_epoch + 1
        if run.batch_size is None:
            self.start(epochs, unit="epoch", description="training")
        else:
            total = epochs * run.steps if run.steps else None
            self.start(total, unit="step", description=f"epoch {run.first_epoch}/{run.epochs}")

    def on_epoch_begin(self, run: Run) -> None:
        """With batches, name the epoch in the bar's description.

        Args:
            run: the training run.
        """
        if run.batch_size is not None and self.bar is not None:
            self.bar.set_description_str(f"epoch {run.epoch}/{run.epochs}", refresh=False)

    def on_step_end(self, run: Run) -> None:
        """With batches, move on one step (fetching the metrics when `interval` has passed).

        Args:
            run: the training run.
        """
        if run.batch_size is not None:
            self._fetch_if_due(run)
            self.bar.update(1)

    def on_epoch_end(self, run: Run) -> None:
        """Without batches, move on one epoch; with them, show the epoch's metrics and the validation's.

        Args:
            run: the training run.
        """
        if run.batch_size is None:
            self._fetch_if_due(run)
            self.bar.update(1)
        elif not run.stop:
            self._show_all(run)

    def on_train_end(self, run: Run) -> None:
        """Show the final metrics and close the bar.

        Args:
            run: the training run.
        """
        if self.bar is not None and run.metrics and not run.stop:
            self._show_all(run)
        self.close()

    def _show_all(self, run: Run) -> None:
        """The epoch's metrics and the validation pass's, redrawn now."""
        self._fetch(run)
        self.show({**run.host_metrics(), **run.logs})
        self.bar.refresh()

    def _fetch_if_due(self, run: Run) -> None:
        if time.monotonic() - self._fetched >= self.interval:
            self._fetch(run)

    def _fetch(self, run: Run) -> None:
        self._fetched = time.monotonic()
        if run.metrics and not run.stop:
            run.host_metrics()  # the watcher added in on_train_begin shows them


class LogLines(Callback):
    """One plain line every `every` epochs and at the last, Keras-style: ``epoch 100/10001 - loss: ... - acc:
    ... - lr: ...``, with val_loss and val_acc where measured. `Model.train(verbose=2)` adds one.

    Args:
        every: epochs between lines, an integer >= 1.
        file: the text stream to print on; None is stdout.

    Raises:
        TypeError: `file` is not a text stream.
        ValueError: `every` < 1.
    """

    def __init__(self, every: int = 1, *, file: IO[str] | None = None):
        self.every = _checks.positive_int(every, "every", "LogLines")
        self.file = _checks.text_stream(file, "LogLines")

    def on_epoch_end(self, run: Run) -> None:
        """Print the epoch's line every `every` epochs (the last epoch's waits for a final validation pass).

        Args:
            run: the training run.
        """
        if run.stop or not run.metrics:
            return
        if run.epoch % self.every and run.epoch != run.epochs:
            return
        if run.batch_size is None and run.epoch == run.epochs:
            return  # the last line waits for the validation pass at the end of training
        self._print(run)

    def on_train_end(self, run: Run) -> None:
        """Without batches, print the last epoch's line, with the validation pass's metrics.

        Args:
            run: the training run.
        """
        if run.batch_size is None and run.metrics and not run.stop and run.epoch == run.epochs:
            self._print(run)

    def _print(self, run: Run) -> None:
        values = {**run.host_metrics(), **run.logs}
        if not run.stop:
            print(f"epoch {run.epoch}/{run.epochs} - {format_metrics(values)}", file=self.file or sys.stdout)


class StackProgress:
    """Progress of `nnx.train_many`, per stack of models: one bar (verbose=1 on a terminal or in a notebook) or one
    line every `every` epochs, with the best and median loss of the models still training and how many diverged.
    Nothing is shown with verbose=0, or with the default verbose and `every` None."""

    def __init__(self, verbose: int | None, every: int | None, *, file: IO[str] | None = None, interval: float = 0.5):
        self.file = _checks.text_stream(file, "StackProgress")
        bar = verbose == 1 and (sys.stderr.isatty() or _notebook.in_notebook())
        silent = verbose == 0 or (verbose is None and every is None)
        self.mode = None if silent else "bar" if bar else "lines"
        self.every, self.interval = every or 1, interval
        self.bar: Any = None
        self.label, self.epochs, self._shown = "", 1, 0.0
        self.alone = False

    def start(self, number: int, stacks: int, models: int, epochs: int) -> None:
        """A new stack (`number` of `stacks`) of `models` models begins `epochs` epochs."""
        self.close()
        self.alone = (stacks, models) == (1, 1)  # one model (an estimator's fit): no stack to speak of
        self.label, self.epochs = "training" if self.alone else f"stack {number}/{stacks} ({models} models)", epochs
        if self.mode == "bar":
            self.bar = _new_bar(self.file, total=epochs, unit="epoch", desc=self.label, leave=True)
            self._shown = 0.0

    def epoch(self, epoch: int, losses: Callable[[], list[float]], diverged: int) -> None:
        """An epoch ended; `losses()` gives the host losses of the models still training (called only when they
        are shown) and `diverged` counts the frozen models."""
        if self.mode == "bar":
            if time.monotonic() - self._shown >= self.interval or epoch == self.epochs:
                self._shown = time.monotonic()
                self.bar.set_postfix_str(self._metrics(losses(), diverged, ", "), refresh=False)
            self.bar.update(1)
        elif self.mode == "lines" and (epoch % self.every == 0 or epoch == self.epochs):
            line = f"{self.label} epoch {epoch}/{self.epochs} - {self._metrics(losses(), diverged)}"
            print(line, file=self.file or sys.stdout, flush=True)

    def _metrics(self, losses: list[float], diverged: int, separator: str = " - ") -> str:
        if self.alone and losses:
            return f"loss: {_number(losses[0])}"
        return stack_metrics(losses, diverged, separator)

    def close(self) -> None:
        """Close the bar, if one is open."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def stack_metrics(losses: list[float], diverged: int, separator: str = " - ") -> str:
    """``best loss: 0.1 - median loss: 0.5 - diverged: 2`` for the losses of a stack's models."""
    best = _number(min(losses)) if losses else "-"
    median = _number(float(statistics.median(losses))) if losses else "-"
    return separator.join((f"best loss: {best}", f"median loss: {median}", f"diverged: {diverged}"))


def _new_bar(file: Any, **options: Any) -> Any:
    """A tqdm bar: on `file` if given, else tqdm's notebook widget or a line in place in a notebook, else stderr."""
    if file is None and _notebook.in_notebook():
        if _notebook.has_widgets():
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm(**options)
        file = _notebook.LineInPlace()
    from tqdm import tqdm

    return tqdm(file=file or sys.stderr, **options)
