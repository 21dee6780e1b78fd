"""What `nnx.sweep.optimize` returns: `StudyResult`, a `SweepResult` of the trials it trained (the same table, CSV and
loss plot as ``nnx sweep``), ranked by the study's objective, with the Optuna study itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nnx.sweep.result import SweepResult, fixed, shown

MESSAGE_WIDTH = 110  # a pruned or failed trial's line is cut to this many characters


@dataclass
class StudyResult(SweepResult):
    """The trials one `nnx.sweep.optimize` call trained, in trial order, and the study.

    Each trial is a dict as in `SweepResult` (``trial`` is the Optuna trial number), with ``status`` "ok", "pruned"
    or "failed", ``value`` (the objective, for a complete trial) and ``state`` (Optuna's: "COMPLETE", "PRUNED",
    "FAIL"); a pruned trial's ``error`` says after which epoch, a failed one's why. `table()` and `plot()` are the
    sweep's, ranked by the objective.

    Attributes:
        trials: the trial dicts, in trial order.
        varied: the hyperparameters the trials suggested (the table's and labels' columns).
        params: the same names, as a trial's ``params`` has them.
        settings: the names of the settings every trial shares.
        planned: the `n_trials` asked for.
        interrupted: whether Ctrl-C ended the call before the study held `planned` finished trials.
        study: the Optuna study (every trial, earlier calls' too: ``study.best_params``, ``study.trials_dataframe()``).
        objective: the objective's name ("val_loss", "loss", ... or the callable's name).
        direction: "minimize" or "maximize", the study's direction.
    """

    study: Any = None
    objective: str = "loss"
    direction: str = "minimize"

    @property
    def failed(self) -> list[dict]:
        """The failed trials (diverged, or the objective was not a number), not the pruned ones."""
        return [trial for trial in self.trials if trial["status"] == "failed"]

    @property
    def pruned(self) -> list[dict]:
        """The trials the pruner stopped."""
        return [trial for trial in self.trials if trial["status"] == "pruned"]

    def ranked(self) -> list[dict]:
        """The trials, ranked.

        Returns:
            The complete trials best first by the objective's value (ties: trial order), then the pruned and then
            the failed ones, each in trial order.
        """
        sign = -1.0 if self.direction == "maximize" else 1.0
        ok = sorted((t for t in self.trials if t["status"] == "ok"), key=lambda t: (sign * t["value"], t["trial"]))
        return ok + sorted(self.pruned, key=lambda t: t["trial"]) + sorted(self.failed, key=lambda t: t["trial"])

    def table(self, *, seconds: bool = True) -> str:
        """The ranked table, as ``nnx sweep`` prints it, with the objective's column when it is not the loss.

        Args:
            seconds: whether to show the seconds column (leave it out for output that must not change between
                runs).

        Returns:
            The table as lines of text, the columns aligned with spaces; a pruned or failed trial is one line that
            says after which epoch it was pruned, or why it failed.
        """
        value = [self.objective] if self.objective != "loss" else []
        header = ["rank", *self.varied, *value, "loss", "acc", "best epoch", "best loss", *(["seconds"] * seconds)]
        rows, others = [[*header, "status"]], []
        for rank, trial in enumerate(self.ranked(), 1):
            params = [shown(trial["params"].get(name)) for name in self.varied]
            if trial["status"] == "ok":
                cells = [fixed(trial["value"])] * bool(value) + [fixed(trial["loss"]), fixed(trial["accuracy"])]
                cells += [shown(trial["best_epoch"]), fixed(trial["best_loss"])]
                rows.append([str(rank), *params, *cells, *([fixed(trial["seconds"], 2)] * seconds), "ok"])
            else:
                others.append(["-", *params, _shorten(f"{trial['status']}: {trial['error']}")])
        prefixes = [row[:-1] for row in others]
        widths = [max(len(row[i]) for row in rows + prefixes if i < len(row)) for i in range(len(header) + 1)]
        lines = [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
            for row in rows + others
        ]
        return "\n".join(lines if len(lines) > 1 else [*lines, "(no trial finished)"])


def _shorten(text: str) -> str:
    return text if len(text) <= MESSAGE_WIDTH else text[: MESSAGE_WIDTH - 3] + "..."
