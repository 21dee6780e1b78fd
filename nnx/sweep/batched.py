"""``--batched``: trials of one architecture trained together as one stack with `nnx.train_many`.

`stack_tasks` cuts the trials into tasks (what one worker runs); `run_stack` builds a task's models, stacks those
that share an architecture and their data, trains each stack with `train_many` and gives every trial the record a
trial trained alone would have. Worker processes and Dask workers unpickle `run_stack` from here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from nnx import backends
from nnx.activations import Softmax
from nnx.backends._host import same_values
from nnx.datasets import spiral_data
from nnx.losses import CategoricalCrossentropy
from nnx.metrics import Categorical
from nnx.model import Model
from nnx.recipes import build_spiral
from nnx.sweep.trials import TRIAL_LOCK, Trial, divergence_error, load_factory, run_trial, trial_record, unpack
from nnx.training import train_many
from nnx.training.stack_plan import plan_stack

# What may differ between the spiral trials of one stack: every other hyperparameter changes the architecture
# (hidden, classes), the data (samples, classes) or the dtype.
SPIRAL_PER_MODEL = ("lr", "decay", "momentum")


class StackInterrupted(KeyboardInterrupt):
    """Ctrl-C while `run_stack` trained a task in this process.

    Attributes:
        records: the task's trials that finished (their records as without Ctrl-C) and those of the stack that was
            training, each failed with "KeyboardInterrupt: ..." and its history up to its last completed epoch.
    """

    def __init__(self, records: list[dict]):
        super().__init__(f"{len(records)} trials of a --batched task kept after Ctrl-C")
        self.records = records


@dataclass
class _Built:
    """A trial's model, ready to train, with its data and how long building it took."""

    trial: Trial
    model: Model
    X: Any
    y: Any
    validation: Any
    seconds: float


def stack_tasks(trials: list[Trial], parts: int) -> list[list[Trial]]:
    """The trials as tasks, each a list trained by one worker, in trial order.

    Spiral trials: one task per architecture (every hyperparameter but lr, decay and momentum). A factory's
    trials: the architecture is known only once a model is built, so they are dealt into `parts` tasks (one per
    worker), consecutive in trial order; each worker stacks those of its trials that share an architecture."""
    if trials[0].factory is None:
        groups: dict = {}
        for trial in trials:
            key = tuple((name, repr(value)) for name, value in trial.params.items() if name not in SPIRAL_PER_MODEL)
            groups.setdefault(key, []).append(trial)
        return list(groups.values())
    parts = max(1, min(parts, len(trials)))
    size, extra = divmod(len(trials), parts)
    tasks, start = [], 0
    for part in range(parts):
        end = start + size + (part < extra)
        tasks.append(trials[start:end])
        start = end
    return tasks


def run_stack(trials: list[Trial]) -> list[dict]:
    """Train a task's trials here, stacked by architecture, and return their records in trial order; a trial that
    fails to build, or whose model cannot be stacked, fails or trains alone without touching the others.

    One task per process at a time (NumPy's global RNG). Ctrl-C (KeyboardInterrupt) raises `StackInterrupted`
    with the records of the trials that finished and of the stack that was training (up to its last completed
    epoch); a trial trained alone when Ctrl-C came is lost, as without --batched."""
    with TRIAL_LOCK:
        records: list[dict] = []
        try:
            built = []
            for trial in trials:
                start = time.perf_counter()
                try:
                    built.append(_build(trial))
                except Exception as error:
                    records.append(trial_record(trial, _no_curves(), time.perf_counter() - start, error=error))
            for group, stackable in _groups(built):
                if stackable:
                    records += _train_stack(group)
                else:
                    records += [run_trial(item.trial) for item in group]  # as without --batched
        except KeyboardInterrupt as error:
            records += getattr(error, "records", [])  # the interrupted stack's trials
            raise StackInterrupted(_in_order(records)) from None
        return _in_order(records)


def _in_order(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda record: record["trial"])


def _no_curves() -> dict:
    return {"epoch": [], "loss": [], "accuracy": []}


def _build(trial: Trial) -> _Built:
    """The trial's model and data, seeded and drawn exactly as its unbatched run draws them."""
    start = time.perf_counter()
    settings = trial.settings
    with backends.use(settings["backend"]) as backend:
        backends.seed(settings["seed"])
        if trial.factory is None:
            model, X, y, validation = _spiral(backend, **trial.params)
        else:
            model, X, y, validation = unpack(load_factory(trial.factory)(**trial.params), trial.factory)
    return _Built(trial, model, X, y, validation, time.perf_counter() - start)


def _spiral(backend, *, lr, decay, momentum, hidden, samples, classes, dtype) -> tuple:
    """`nnx.recipes.train_spiral`'s data and network (the same draws of NumPy's global RNG) as an `nnx.Model`."""
    X_host, y_host = spiral_data(samples=samples, classes=classes)
    X, y = backend.asarray(X_host, dtype=dtype), backend.asarray(y_host)
    network = build_spiral(
        hidden=hidden, classes=classes, lr=lr, decay=decay, momentum=momentum, dtype=dtype, backend=backend
    )
    model = Model()
    for layer in (network.dense1, network.activation1, network.dense2, Softmax()):
        model.add(layer)
    model.set(loss=CategoricalCrossentropy(), optimizer=network.optimizer, accuracy=Categorical())
    model.finalize()
    return model, X, y, None


def _groups(built: list[_Built]) -> list[tuple[list[_Built], bool]]:
    """(models that train as one stack, True) and (one model that cannot be stacked, False), in trial order: models
    join the first stack whose first model they stack with and whose training and validation data equal theirs."""
    groups: list[tuple[list[_Built], bool]] = []
    for item in built:
        if not _stacks_with(item.model):
            groups.append(([item], False))
            continue
        for group, stackable in groups:
            if stackable and _same_data(group[0], item) and _stacks_with(group[0].model, item.model):
                group.append(item)
                break
        else:
            groups.append(([item], True))
    return groups


def _stacks_with(*models) -> bool:
    try:
        plan_stack(list(models))
    except Exception:  # not one architecture, or a model train_many cannot run
        return False
    return True


def _same_data(first: _Built, other: _Built) -> bool:
    if not (_same_array(first, first.X, other.X) and _same_array(first, first.y, other.y)):
        return False
    ours, theirs = first.validation, other.validation
    if ours is None or theirs is None:
        return ours is theirs
    if not isinstance(ours, (tuple, list)) or not isinstance(theirs, (tuple, list)) or len(ours) != len(theirs):
        return False
    return all(_same_array(first, a, b) for a, b in zip(ours, theirs, strict=True))


def _same_array(built: _Built, a, b) -> bool:
    """`a` and `b` hold the same numbers, shape and dtype (compared on the host)."""
    if a is b:
        return True
    try:
        return same_values(*(_on_host(built, array) for array in (a, b)))
    except Exception:  # not arrays we can read: trained apart
        return False


def _on_host(built: _Built, array):
    """Host data as it is; an array of the model's backend copied to the host."""
    backend = built.model.backend
    return backend.to_numpy(array) if backend.owns(array) else array


def _train_stack(group: list[_Built]) -> list[dict]:
    """Train the group with `train_many`; each trial's seconds are the group's wall time (building included)
    divided by its number of trials. Should `train_many` refuse the group, its trials train one at a time."""
    start = time.perf_counter()
    first, settings = group[0], group[0].trial.settings
    histories = None
    try:
        with backends.use(settings["backend"]):
            backends.seed(settings["seed"])  # the dropout streams' seeds are drawn from it
            histories = train_many(
                [item.model for item in group],
                first.X,
                first.y,
                epochs=settings["epochs"],
                batch_size=settings.get("batch_size"),
                validation_data=first.validation,
                verbose=0,
                on_divergence="stop",  # a diverged model is frozen, with its history up to the divergence
            )
    except KeyboardInterrupt as error:  # each trial keeps the epochs its model completed
        seconds = (sum(item.seconds for item in group) + time.perf_counter() - start) / len(group)
        histories = getattr(error, "histories", None)
        if histories is not None:
            error.records = [  # type: ignore[attr-defined]
                _stacked_record(item.trial, history, seconds, _interrupted(history, settings["epochs"]))
                for item, history in zip(group, histories, strict=True)
            ]
        raise
    except Exception:
        return [run_trial(item.trial) for item in group]  # as without --batched
    seconds = (sum(item.seconds for item in group) + time.perf_counter() - start) / len(group)
    return [_stacked_record(item.trial, history, seconds) for item, history in zip(group, histories, strict=True)]


def _interrupted(history, epochs: int) -> KeyboardInterrupt:
    """The failure of a trial that Ctrl-C stopped: how far it got."""
    done = history.epoch[-1] if history.epoch else 0
    return KeyboardInterrupt(
        f"Ctrl-C stopped training after {done} of {epochs} epochs; the history holds the completed epochs"
    )


def _stacked_record(trial: Trial, history, seconds: float, stopped: BaseException | None = None) -> dict:
    """The trial's record from its `train_many` History, shaped as an unbatched trial's record (`stopped`: the
    error that stopped it before the end)."""
    epochs = list(history.epoch)
    losses, accuracies = history.history.get("loss", []), history.history.get("accuracy", [])
    final = history.final
    if trial.factory is None:
        # Model.train's epoch k is the book loop's epoch k - 1, recorded every `every` epochs and at the last one.
        every, last = trial.settings["every"], trial.settings["epochs"] - 1
        last_kept = len(epochs) - 1 if stopped is not None else None  # an interrupted trial's last epoch too
        kept = [i for i, epoch in enumerate(epochs) if (epoch - 1) % every == 0 or epoch - 1 == last or i == last_kept]
        curves = {
            "epoch": [epochs[i] - 1 for i in kept],
            "loss": [losses[i] for i in kept],
            "accuracy": [accuracies[i] for i in kept],
        }
        shift = 1
    else:
        curves = {"epoch": epochs, "loss": list(losses), "accuracy": list(accuracies)}
        curves.update({name: list(column) for name, column in history.history.items() if name not in curves})
        shift = 0
    if final.get("diverged"):
        return trial_record(
            trial, curves, seconds, error=divergence_error(final.get("epoch") - shift, final.get("loss"))
        )
    if stopped is not None:
        return trial_record(trial, curves, seconds, error=stopped)
    if trial.factory is None:
        return trial_record(trial, curves, seconds, loss=curves["loss"][-1], accuracy=curves["accuracy"][-1])
    return trial_record(trial, curves, seconds, loss=final["loss"], accuracy=final.get("accuracy"))
