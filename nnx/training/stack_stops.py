"""`train_many`'s ``stop_models`` hook: after each epoch it sees every live model's host metrics and names the models
to stop there (a search pruning its bad trials). A stopped model leaves the stack at once, written back at that
epoch, the way a diverged one is frozen; the others go on with their numbers unchanged."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from nnx import _checks
from nnx.callbacks.base import Callback, Run
from nnx.training.stack_plan import OWNER

StopModels = Callable[[int, list[dict]], Iterable[int]]


def checked_hook(stop_models: Any) -> StopModels | None:
    """`stop_models` as given (None or a callable), else a TypeError saying what to pass."""
    if stop_models is None or callable(stop_models):
        return stop_models
    raise TypeError(
        f"{OWNER} stop_models must be a function stop_models(epoch, metrics) -> indices of the models to stop, or "
        f"None, got {_checks.describe(stop_models)}; pass a function or leave it out"
    )


def live_metrics(chunk: list[int], members: list, host, validation, diverged: list[int]) -> list[dict]:
    """Each model that is still training after this epoch, as a dict: "model" (its index in train_many's list),
    "loss", "data_loss", "reg_loss", "accuracy", "lr" and, when validated this epoch, "val_loss" and
    "val_accuracy"; in the order of the stack's members once the diverged ones left."""
    rows, gone = host.tolist(), set(diverged)
    metrics = []
    for position, member in enumerate(members):
        if position in gone:
            continue
        accuracy, data_loss, reg_loss, lr, _ = rows[position]
        values = {"model": chunk[member], "loss": data_loss + reg_loss, "data_loss": data_loss}
        values.update(reg_loss=reg_loss, accuracy=accuracy, lr=lr)
        if validation is not None:
            values.update(val_loss=validation[position][0], val_accuracy=validation[position][1])
        metrics.append(values)
    return metrics


def asked_stops(stop_models: StopModels, epoch: int, metrics: list[dict]) -> list[int]:
    """The positions (in `metrics`' order) of the models `stop_models` names; a ValueError or TypeError naming the
    hook when it returns something else than indices of live models."""
    asked = stop_models(epoch, metrics)
    if asked is None:
        return []
    if not isinstance(asked, Iterable) or isinstance(asked, (str, bytes)):
        raise TypeError(
            f"{OWNER} stop_models must return the indices of the models to stop (a list of ints, [] for none), got "
            f"{_checks.describe(asked)} at epoch {epoch}"
        )
    where = {values["model"]: position for position, values in enumerate(metrics)}
    positions = set()
    for index in asked:
        if isinstance(index, bool) or not isinstance(index, int) or index not in where:
            raise ValueError(
                f"{OWNER} stop_models returned {index!r} at epoch {epoch}, which is not the index of a model still "
                f"training (those are {sorted(where)}); return values of the metrics' 'model' entries"
            )
        positions.add(where[index])
    return sorted(positions)


class StopHook(Callback):
    """A ``stop_models`` hook for one model trained alone with `Model.train`: after each epoch the hook sees the
    model's metrics (validation ones included) as model 0, and naming it ends the run after that epoch.

    Args:
        stop_models: the hook, as `train_many` takes it.
    """

    def __init__(self, stop_models: StopModels):
        self.stop_models = stop_models

    def on_epoch_end(self, run: Run) -> None:
        """Ask the hook about this epoch; stop the run when it names the model."""
        values = {"model": 0, **run.host_metrics(), **run.logs}
        if asked_stops(self.stop_models, run.epoch, [values]):
            run.stop = True
