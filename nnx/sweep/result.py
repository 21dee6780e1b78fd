"""The outcome of a sweep: `SweepResult` (ranking, table, CSV, loss plot), `SweepInterrupted`, and the CSV log
written as the trials finish."""

from __future__ import annotations

import io
import os
from csv import DictWriter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnx._paths import atomic_write, output_path, write_failure
from nnx.plot import check_path, new_figure
from nnx.plot import save as save_figure
from nnx.sweep.space import OWNER
from nnx.sweep.trials import is_finite_number

METRIC_COLUMNS = ("status", "loss", "accuracy", "best_epoch", "best_loss", "seconds", "error")
PLOT_HINT = 'pip install "nnx-nnfs[plot]"'
MESSAGE_WIDTH = 110  # a failed trial's "failed: Error: message" is cut to this many characters in the table


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during `run`: the pending trials were cancelled.

    Attributes:
        result: the `SweepResult` of the finished trials (the CSV file, if any, holds them too).
    """

    def __init__(self, result: SweepResult):
        super().__init__(f"{OWNER} interrupted: {len(result.trials)} of {result.planned} trials finished")
        self.result = result


@dataclass
class SweepResult:
    """The finished trials of a sweep, in trial order, as `run` returns them.

    Each trial is a dict: ``trial`` (its number), ``params`` (the hyperparameters it trained with), ``settings``
    (epochs, seed, backend, ...), ``status`` ("ok" or "failed"), ``loss`` and ``accuracy`` (final), ``best_epoch``
    and ``best_loss``, ``seconds`` (wall time), ``error`` ("Type: message" when failed) and ``history``
    (``{"epoch": [...], "loss": [...], "accuracy": [...]}``, and a factory's trials every other column of their
    History, such as "val_loss"; up to the failure for a failed run).

    Attributes:
        trials: the trial dicts, in trial order.
        varied: the hyperparameters that take more than one value (the table's and labels' columns).
        params: every hyperparameter's name, as a trial's ``params`` has them.
        settings: the names of the settings shared by every trial (epochs, seed, backend, ...).
        planned: how many trials the sweep planned.
        interrupted: whether Ctrl-C ended the sweep before every trial finished.
    """

    trials: list = field(default_factory=list)
    varied: list = field(default_factory=list)
    params: list = field(default_factory=list)
    settings: list = field(default_factory=list)
    planned: int = 0
    interrupted: bool = False

    @property
    def failed(self) -> list[dict]:
        """The failed trials."""
        return [trial for trial in self.trials if trial["status"] != "ok"]

    @property
    def best(self) -> dict | None:
        """The trial with the lowest final loss (None when every trial failed)."""
        ranked = self.ranked()
        return ranked[0] if ranked and ranked[0]["status"] == "ok" else None

    def ranked(self) -> list[dict]:
        """The trials, ranked.

        Returns:
            The trials best first by final loss (ties: trial order), then the failed ones in trial order.
        """
        ok = sorted((t for t in self.trials if t["status"] == "ok"), key=lambda t: (t["loss"], t["trial"]))
        return ok + sorted(self.failed, key=lambda t: t["trial"])

    def table(self, *, seconds: bool = True) -> str:
        """The ranked table that ``nnx sweep`` prints.

        Its columns: rank, the varied hyperparameters, final loss and accuracy (3 decimals, as the book's log), epoch
        and value of the best loss, wall seconds, status. A failed trial is one line, ``failed: Error: message``.

        Args:
            seconds: whether to show the seconds column (leave it out for output that must not change between
                runs).

        Returns:
            The table as lines of text, the columns aligned with spaces.
        """
        header = ["rank", *self.varied, "loss", "acc", "best epoch", "best loss", *(["seconds"] * seconds), "status"]
        rows, failed = [header], []
        for rank, trial in enumerate(self.ranked(), 1):
            params = [shown(trial["params"].get(name)) for name in self.varied]
            if trial["status"] == "ok":
                rows.append([str(rank), *params, *_metric_cells(trial, seconds), "ok"])
            else:
                failed.append(["-", *params, _shorten(f"failed: {trial['error']}")])
        prefixes = [row[:-1] for row in failed]  # a failed trial's message runs on from its loss column
        widths = [max(len(row[i]) for row in rows + prefixes if i < len(row)) for i in range(len(header))]
        lines = [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
            for row in rows + failed
        ]
        return "\n".join(lines if len(lines) > 1 else [*lines, "(no trial finished)"])

    def columns(self) -> list[str]:
        """The CSV's columns.

        Returns:
            "trial", every hyperparameter, every setting, then "status", "loss", "accuracy", "best_epoch",
            "best_loss", "seconds" and "error".
        """
        return ["trial", *self.params, *self.settings, *METRIC_COLUMNS]

    def row(self, trial: dict) -> dict:
        """One trial as a CSV row.

        Args:
            trial: one of `trials`.

        Returns:
            Column name -> cell text: numbers at full precision (``repr``), an empty cell for None.
        """
        values = {"trial": trial["trial"], **trial["params"], **trial["settings"]}
        values.update({name: trial[name] for name in METRIC_COLUMNS})
        return {name: _cell(values.get(name)) for name in self.columns()}

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the ranked trials as CSV, one row each in `columns()`; the file is replaced in one step.

        Args:
            path: the file to write.

        Returns:
            The absolute path written.
        """
        path = output_path(path, f"{OWNER} csv")
        text = io.StringIO(newline="")
        writer = DictWriter(text, fieldnames=self.columns())
        writer.writeheader()
        writer.writerows(self.row(trial) for trial in self.ranked())
        atomic_write(path, text.getvalue().encode())
        return path

    def plot(
        self, path: str | os.PathLike[str] | None = None, *, figsize: tuple[float, float] = (8.0, 5.0), dpi: float = 100
    ) -> Any:
        """Every trial's loss curve in one figure, labelled by its hyperparameters. Needs matplotlib.

        A failed trial is dashed, up to where it failed, or left out when it has no history; the loss axis is
        logarithmic when the losses span more than a factor of 100.

        Args:
            path: a picture file to save the figure to (.png, .svg, .pdf, ...); None only returns it.
            figsize: (width, height) in inches.
            dpi: dots per inch.

        Returns:
            The matplotlib Figure (a notebook shows it as a picture).

        Raises:
            ImportError: matplotlib is not installed.
            ValueError: `path` cannot be written as a picture.
        """
        if path is not None:
            check_path(path, f"{OWNER} plot")
        figure = _loss_figure(self, figsize, dpi)
        if path is not None:
            save_figure(figure, path)
        return figure

    def label(self, trial: dict) -> str:
        """A trial's name in the plot's legend.

        Args:
            trial: one of `trials`.

        Returns:
            Its varied hyperparameters, e.g. "lr=0.85, decay=0.001" ("trial N" when nothing varies).
        """
        return (
            ", ".join(f"{name}={shown(trial['params'].get(name))}" for name in self.varied) or f"trial {trial['trial']}"
        )


def _metric_cells(trial: dict, seconds: bool) -> list[str]:
    cells = [fixed(trial["loss"]), fixed(trial["accuracy"]), shown(trial["best_epoch"]), fixed(trial["best_loss"])]
    return cells + ([fixed(trial["seconds"], 2)] if seconds else [])


def fixed(value, decimals: int = 3) -> str:
    """A number in a table cell with `decimals` decimals; "-" for None."""
    return "-" if value is None else f"{value:.{decimals}f}"


def shown(value) -> str:
    """A hyperparameter or epoch in a table cell (floats in 4 significant digits); "-" for None."""
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _cell(value) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _shorten(text: str) -> str:
    return text if len(text) <= MESSAGE_WIDTH else text[: MESSAGE_WIDTH - 3] + "..."


def _loss_figure(result: SweepResult, figsize, dpi):
    colormaps = colormaps_or_none()
    figure = new_figure(figsize, dpi)
    ax = figure.add_subplot()
    curves = [(trial, _points(trial)) for trial in result.ranked()]
    curves = [(trial, points) for trial, points in curves if points[0]]
    colours = colormaps["tab10" if len(curves) <= 10 else "viridis"]
    for index, (trial, (epochs, losses)) in enumerate(curves):
        ok = trial["status"] == "ok"
        colour = colours(index if len(curves) <= 10 else index / max(len(curves) - 1, 1))
        label = result.label(trial) + ("" if ok else " (failed)")
        style = {"linestyle": "-"} if ok else {"linestyle": "--", "marker": "x", "markevery": [len(epochs) - 1]}
        ax.plot(epochs, losses, color=colour, linewidth=1.2, label=label, **style)  # failed: x where it stopped
    losses = [loss for _, (_, values) in curves for loss in values]
    if losses and min(losses) > 0 and max(losses) / min(losses) > 100:
        ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="loss", title=f"nnx sweep: loss of {len(curves)} trials")
    if curves:
        ax.legend(fontsize="small", ncols=1 + len(curves) // 16)
    else:
        ax.text(0.5, 0.5, "no trial has a loss history", ha="center", va="center", transform=ax.transAxes)
    return figure


def _points(trial: dict) -> tuple[list, list]:
    history = trial["history"]
    pairs = [
        (epoch, loss) for epoch, loss in zip(history["epoch"], history["loss"], strict=True) if is_finite_number(loss)
    ]
    return [epoch for epoch, _ in pairs], [loss for _, loss in pairs]


def colormaps_or_none():
    try:
        from matplotlib import colormaps
    except ImportError as error:
        raise ImportError(f"{OWNER} plots need matplotlib ({error}); install it: {PLOT_HINT}") from None
    return colormaps


class CsvLog:
    """The CSV file of a sweep: opened before the first trial, a flushed row per finished trial, ranked at the end."""

    def __init__(self, path, columns: list[str]):
        self.path = output_path(path, f"{OWNER} csv")
        try:
            self.file = self.path.open("w", newline="")
        except OSError as error:
            raise write_failure(self.path, error, existed=self.path.exists()) from None
        self.writer = DictWriter(self.file, fieldnames=columns)
        self.writer.writeheader()
        self.file.flush()

    def write(self, row: dict) -> None:
        self.writer.writerow(row)
        self.file.flush()

    def close(self, result: SweepResult) -> None:
        self.file.close()
        result.to_csv(self.path)
