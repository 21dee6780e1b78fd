"""Where `nnx.sweep.optimize` trains: a group of an Optuna batch's models as one `train_many` stack (or one model
alone with `Model.train`), reporting each trial's intermediate values and pruning it inside the stack. Dask workers
unpickle `train_group` from here: the trials travel with their study, whose storage they report through."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nnx import backends
from nnx.callbacks.history import History
from nnx.model import Model
from nnx.sweep.trials import TRIAL_LOCK, divergence_error
from nnx.training import train_many
from nnx.training.stack_stops import StopHook

OPTIMIZE = "nnx.sweep.optimize"  # every message of a study starts with it
METRIC_OBJECTIVES = {"loss": "minimize", "val_loss": "minimize", "accuracy": "maximize", "val_accuracy": "maximize"}


@dataclass
class Member:
    """One asked trial with its built model: the Optuna trial (it reports through the study's storage), its number,
    and how long building took."""

    trial: Any
    number: int
    model: Model
    seconds: float


@dataclass(frozen=True)
class TrainSettings:
    """What every group of one `optimize` call trains with.

    `report`: the metric each trial reports as its intermediate value (None: none); `report_every`: the epochs
    between reports (and the last epoch); `prune`: whether to ask the pruner after each report."""

    epochs: int
    batch_size: int | None
    objective: str | Callable[[History], float]
    report: str | None
    report_every: int
    prune: bool
    seed: int
    backend: str


@dataclass
class Outcome:
    """How a trial ended: "complete" with its `value`, "pruned" at `epoch`, or "fail" with a `reason`."""

    number: int
    state: str
    history: History
    value: float | None = None
    reason: str | None = None
    epoch: int | None = None
    seconds: float = 0.0


def train_group(members: list[Member], X: Any, y: Any, validation_data: Any, settings: TrainSettings) -> list[Outcome]:
    """Train the members as one stack (one member: alone, with `Model.train`) and say how each trial ended.

    Trials report and are pruned as they train; an error other than a divergence (bad data, Ctrl-C) propagates.
    One group per process at a time (NumPy's global RNG)."""
    with TRIAL_LOCK, backends.use(settings.backend):
        start = time.perf_counter()
        pruning = Pruning([member.trial for member in members], settings)
        backends.seed(settings.seed)  # a lone model's dropout masks: those of the stack's first model
        if len(members) == 1:
            histories = [_alone(members[0].model, (X, y, validation_data), settings, pruning)]
        else:
            histories = train_many(
                [member.model for member in members],
                X,
                y,
                epochs=settings.epochs,
                batch_size=settings.batch_size,
                validation_data=validation_data,
                verbose=0,
                on_divergence="stop",
                seed=settings.seed,
                stop_models=pruning if settings.prune else None,
                stop_every=settings.report_every,
            )
        if not settings.prune:  # no pruner: the reports come from the Histories, no hook ran per epoch
            for trial, history in zip(pruning.trials, histories, strict=True):
                pruning.report_after(trial, history)
        seconds = (time.perf_counter() - start + sum(member.seconds for member in members)) / len(members)
        return [
            _outcome(member.number, history, pruning.pruned.get(index), settings.objective, seconds)
            for index, (member, history) in enumerate(zip(members, histories, strict=True))
        ]


class Pruning:
    """`train_many`'s stop_models hook: every `report_every` epochs each model's trial reports its metric, and the
    pruner's verdict stops it (never at the last epoch: a trial that got there is complete). Without a pruner the
    stack runs without the hook, and `report_after` reports the same values from each History once it trained."""

    def __init__(self, trials: list, settings: TrainSettings):
        self.trials, self.settings = trials, settings
        self.pruned: dict[int, int] = {}  # model index -> the epoch it was pruned after

    def __call__(self, epoch: int, metrics: list[dict]) -> list[int]:
        settings = self.settings
        if settings.report is None or not self._reported(epoch):
            return []
        stops = []
        for values in metrics:
            value = values.get(settings.report)
            if not isinstance(value, float) or not math.isfinite(value):
                continue  # not measured this epoch (validation without batch_size), or not finite
            trial = self.trials[values["model"]]
            trial.report(value, epoch)
            if settings.prune and epoch < settings.epochs and trial.should_prune():
                stops.append(values["model"])
                self.pruned[values["model"]] = epoch
        return stops

    def report_after(self, trial, history: History) -> None:
        """Report the trial's metric at the epochs the hook would have, read from its History."""
        if self.settings.report is None:
            return
        for epoch, value in zip(history.epoch, history.history.get(self.settings.report, ()), strict=False):
            if self._reported(epoch) and isinstance(value, float) and math.isfinite(value):
                trial.report(value, epoch)

    def _reported(self, epoch: int) -> bool:
        return epoch % self.settings.report_every == 0 or epoch == self.settings.epochs


def _alone(model: Model, data: tuple, settings: TrainSettings, pruning: Pruning) -> History:
    X, y, validation_data = data
    return model.train(
        X,
        y,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        validation_data=validation_data,
        verbose=0,
        on_divergence="stop",
        callbacks=[StopHook(pruning)] if settings.prune else [],
    )


def _outcome(number: int, history: History, pruned: int | None, objective, seconds: float) -> Outcome:
    final = history.final
    if final.get("diverged"):
        reason = str(divergence_error(final.get("epoch"), final.get("loss")))
        return Outcome(number, "fail", history, reason=reason, epoch=final.get("epoch"), seconds=seconds)
    if pruned is not None:
        return Outcome(number, "pruned", history, epoch=pruned, seconds=seconds)
    try:
        value = objective_value(objective, history)
    except Exception as error:  # the user's objective failed on this trial: the trial fails, the study goes on
        reason = f"the objective raised {type(error).__name__}: {error}"
        return Outcome(number, "fail", history, reason=reason, seconds=seconds)
    if not math.isfinite(value):
        reason = f"the objective is not a finite number: {value!r}"
        return Outcome(number, "fail", history, reason=reason, seconds=seconds)
    return Outcome(number, "complete", history, value=value, seconds=seconds)


def objective_value(objective: str | Callable[[History], float], history: History) -> float:
    """The trial's value: the final metric `objective` names, or what the callable returns for the History."""
    if callable(objective):
        value = objective(history)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{OPTIMIZE} objective must return a number, got {type(value).__name__}")
        return float(value)
    final = history.final.get(objective)
    if final is None:
        raise ValueError(f"{OPTIMIZE} the History has no final {objective!r}")
    return float(final)
