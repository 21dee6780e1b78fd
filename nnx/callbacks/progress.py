"""Progress while training: one tqdm bar (a terminal or a notebook), or one plain log line every few epochs.

Both show metrics only when they come back to the host: the bar fetches them at most every `interval` seconds
(and sees every copy someone else makes, such as a validation pass), the lines every `every` epochs.
"""

from __future__ import annotations

import statistics
import sys
import time

from nnx import _checks, _notebook
from nnx.callbacks.base import Callback, Run
from nnx.errors import CallOrderError

MAX_LINES = 100
SHOWN = (("loss", "loss"), ("accuracy", "acc"), ("lr", "lr"), ("val_loss", "val_loss"), ("val_accuracy", "val_acc"))


def format_metrics(values: dict, separator: str = " - ") -> str:
    """``loss: 0.123 - acc: 0.912 - lr: 0.5`` from host metrics (those present, in a fixed order)."""
    return separator.join(f"{label}: {_number(values[name])}" for name, label in SHOWN if name in values)


def _number(value) -> str:
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
    """One tqdm bar over the whole run: over the epochs, or over every step with `batch_size` (its description
    names the epoch); metrics in its postfix. In a notebook it is tqdm's widget bar when ipywidgets is installed,
    else a single line updated in place. Outside `Model.train`, drive it by hand: `start(total, unit)`,
    `advance(n, metrics)`, `close()`.
    """

    def __init__(self, *, interval: float = 0.5, file=None, leave: bool = True):
        self.interval = _checks.non_negative(interval, "interval", "ProgressBar")
        self.file = _checks.text_stream(file, "ProgressBar")
        self.leave = _checks.boolean(leave, "leave", "ProgressBar")
        self.bar = None
        self._fetched = 0.0

    # The bar itself, usable from any loop ---------------------------------------------------------------------

    def start(self, total: int, *, unit: str = "epoch", description: str | None = None) -> None:
        """Open a new bar of `total` units (closing the previous one)."""
        total = _checks.positive_int(total, "total", "ProgressBar.start")
        self.close()
        self.bar = _new_bar(self.file, total=total, unit=unit, desc=description, leave=self.leave)
        self._fetched = time.monotonic()

    def advance(self, n: int = 1, metrics: dict | None = None) -> None:
        """Move the bar on by `n`; `metrics` (host numbers) replace the postfix."""
        if self.bar is None:
            raise CallOrderError("ProgressBar.advance() needs an open bar: call start(total) first")
        if metrics:
            self.show(metrics)
        self.bar.update(_checks.positive_int(n, "n", "ProgressBar.advance"))

    def show(self, metrics: dict) -> None:
        """Put host metrics in the postfix; the bar redraws them at its next update."""
        if self.bar is not None:
            self.bar.set_postfix_str(format_metrics(metrics, ", "), refresh=False)

    def write(self, line: str) -> None:
        """Print a line on stdout without breaking the bar (it is redrawn below the line)."""
        if self.bar is None:
            print(line, flush=True)
        else:
            self.bar.write(line, file=sys.stdout)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    # As a callback --------------------------------------------------------------------------------------------

    def on_train_begin(self, run: Run) -> None:
        run.host_watchers.append(lambda _, values: self.show(values))
        epochs = run.epochs - run.first_epoch + 1
        if run.batch_size is None:
            self.start(epochs, unit="epoch", description="training")
        else:
            self.start(epochs * run.steps, unit="step", description=f"epoch {run.first_epoch}/{run.epochs}")

    def on_epoch_begin(self, run: Run) -> None:
        if run.batch_size is not None and self.bar is not None:
            self.bar.set_description_str(f"epoch {run.epoch}/{run.epochs}", refresh=False)

    def on_step_end(self, run: Run) -> None:
        if run.batch_size is not None:
            self._fetch_if_due(run)
            self.bar.update(1)

    def on_epoch_end(self, run: Run) -> None:
        if run.batch_size is None:
            self._fetch_if_due(run)
            self.bar.update(1)
        elif not run.stop:
            self._show_all(run)

    def on_train_end(self, run: Run) -> None:
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
    """One plain line per `every` epochs (and the last), Keras-style: ``epoch 100/10001 - loss: ... - acc: ...``."""

    def __init__(self, every: int = 1, *, file=None):
        self.every = _checks.positive_int(every, "every", "LogLines")
        self.file = _checks.text_stream(file, "LogLines")

    def on_epoch_end(self, run: Run) -> None:
        if run.stop or not run.metrics:
            return
        if run.epoch % self.every and run.epoch != run.epochs:
            return
        if run.batch_size is None and run.epoch == run.epochs:
            return  # the last line waits for the validation pass at the end of training
        self._print(run)

    def on_train_end(self, run: Run) -> None:
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

    def __init__(self, verbose: int | None, every: int | None, *, file=None, interval: float = 0.5):
        self.file = _checks.text_stream(file, "StackProgress")
        bar = verbose == 1 and (sys.stderr.isatty() or _notebook.in_notebook())
        silent = verbose == 0 or (verbose is None and every is None)
        self.mode = None if silent else "bar" if bar else "lines"
        self.every, self.interval = every or 1, interval
        self.bar = None
        self.label, self.epochs, self._shown = "", 1, 0.0

    def start(self, number: int, stacks: int, models: int, epochs: int) -> None:
        """A new stack (`number` of `stacks`) of `models` models begins `epochs` epochs."""
        self.close()
        self.label, self.epochs = f"stack {number}/{stacks} ({models} models)", epochs
        if self.mode == "bar":
            self.bar = _new_bar(self.file, total=epochs, unit="epoch", desc=self.label, leave=True)
            self._shown = 0.0

    def epoch(self, epoch: int, losses, diverged: int) -> None:
        """An epoch ended; `losses()` gives the host losses of the models still training (called only when they
        are shown) and `diverged` counts the frozen models."""
        if self.mode == "bar":
            if time.monotonic() - self._shown >= self.interval or epoch == self.epochs:
                self._shown = time.monotonic()
                self.bar.set_postfix_str(stack_metrics(losses(), diverged, ", "), refresh=False)
            self.bar.update(1)
        elif self.mode == "lines" and (epoch % self.every == 0 or epoch == self.epochs):
            line = f"{self.label} epoch {epoch}/{self.epochs} - {stack_metrics(losses(), diverged)}"
            print(line, file=self.file or sys.stdout, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def stack_metrics(losses: list[float], diverged: int, separator: str = " - ") -> str:
    """``best loss: 0.1 - median loss: 0.5 - diverged: 2`` for the losses of a stack's models."""
    best = _number(min(losses)) if losses else "-"
    median = _number(float(statistics.median(losses))) if losses else "-"
    return separator.join((f"best loss: {best}", f"median loss: {median}", f"diverged: {diverged}"))


def _new_bar(file, **options):
    """A tqdm bar: on `file` if given, else tqdm's notebook widget or a line in place in a notebook, else stderr."""
    if file is None and _notebook.in_notebook():
        if _notebook.has_widgets():
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm(**options)
        file = _notebook.LineInPlace()
    from tqdm import tqdm

    return tqdm(file=file or sys.stderr, **options)
