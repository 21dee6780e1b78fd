"""Spans of epochs that a compiled stack trains in one kernel call, where nothing happens between its epochs: the
whole set as one batch, no dropout, no shuffling, and no `stop_models` call before the span's last epoch.

A span gives the numbers the epochs would give one call at a time (each model's steps are the same compiled code, on
its own). Where a model stops being finite inside a span, the stack goes back to the span's start and trains up to
that epoch again, so that the epoch runs alone and the usual freezing applies. A span lasts about `SPAN_SECONDS`, so
that Ctrl-C and the progress bar wait no longer than that.
"""

from __future__ import annotations

import time

from nnx.training.stack_records import StackRecords
from nnx.training.stack_step import GenericStack, KernelStack, epoch_rows

SPAN_SECONDS = 0.2  # a span's wall time at most, about (measured on the spans before it)
FIRST_SPAN = 1  # epochs in the first span; each next one is at most twice as long, and about SPAN_SECONDS


class Spans:
    """Chooses and runs the spans of one stack (`train_many`'s loop asks it before each epoch).

    Args:
        stack: the stack; spans run only on a `KernelStack` whose kernel trains several steps per call.
        X: the training inputs; spans run only when each epoch is one step on all of them.
        targets: the training targets, as the stack's steps take them.
        epochs: the epochs of the run.
        stop_every: the epochs between calls of the `stop_models` hook (a span ends at each), or None without one.
    """

    def __init__(self, stack: GenericStack, X, targets, epochs: int, stop_every: int | None):
        self.stack, self.X, self.targets = stack, X, targets
        self.epochs, self.stop_every = epochs, stop_every
        self.length = FIRST_SPAN
        self.alone: int | None = None  # an epoch in which a model stopped being finite: it runs on its own

    def run(self, epoch: int, records: StackRecords):
        """Train the span that starts at `epoch`; returns its epochs' host rows (an (epochs, M, 5) array, see
        `StackRecords.add`), or None when `epoch` should run on its own (a model diverges in it)."""
        if self.alone == epoch:
            self.alone = None
            return None
        length = self._length(epoch)
        rows = self._train(length)
        finite = self.stack.xp.all(self.stack.xp.isfinite(rows[:, :, 4]), axis=1).tolist()
        if all(finite):
            return rows
        self.stack.restore(records.completed.state)  # type: ignore[attr-defined, union-attr]
        first_bad = finite.index(False)
        if first_bad == 0:  # this epoch runs on its own, now
            return None
        self.alone = epoch + first_bad
        return self._train(first_bad)  # the epochs before it, again: the same numbers

    def _train(self, length: int):
        """Train a span of `length` epochs; returns its host rows, and sets the length of the next span from the
        time it took (at most twice this one: the first calls also compile or load the kernel)."""
        start = time.perf_counter()
        rows = self._rows(self.stack.run_epochs(self.X, self.targets, length))  # type: ignore[attr-defined]
        fitting = int(SPAN_SECONDS * length / max(time.perf_counter() - start, 1e-9))
        self.length = max(1, min(2 * length, fitting))
        return rows

    def _length(self, epoch: int) -> int:
        """How many epochs the span from `epoch` holds: up to the next call of the hook, the epoch that runs alone
        and the end of training, about SPAN_SECONDS long."""
        last = self.epochs
        if self.stop_every is not None:
            last = min(last, -(-epoch // self.stop_every) * self.stop_every)
        if self.alone is not None:
            last = min(last, self.alone - 1)
        return min(last - epoch + 1, self.length)

    def _rows(self, results: tuple):
        """The host rows of every epoch of a span, computed as one epoch's are."""
        losses, hits, penalties, probes, rates = results
        return epoch_rows(self.stack, (losses, hits, penalties), rates, self.X.shape[0], probes)


def spans_for(stack: GenericStack, X, targets, epochs: int, stop_every: int | None) -> Spans | None:
    """The `Spans` of a stack whose epochs are each one step on the whole set, without dropout or shuffling, or
    None where the stack cannot train several steps in one call.

    Args:
        stack: the stack.
        X: the training inputs.
        targets: the training targets.
        epochs: the epochs of the run.
        stop_every: the epochs between calls of the `stop_models` hook, or None without one.
    """
    if not (isinstance(stack, KernelStack) and stack.can_run_epochs(X, targets)):
        return None
    return Spans(stack, X, targets, epochs, stop_every)
