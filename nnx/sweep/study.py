"""`optimize`: an Optuna study whose trials train in batches, the trials of a batch that share a structure as one
`train_many` stack, each pruned inside its stack and told its objective; stored studies resume after a crash."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from nnx import _checks, backends
from nnx.backends._host import checked_seed
from nnx.callbacks.history import History
from nnx.callbacks.progress import lines_every
from nnx.model import Model
from nnx.sweep.executors import connect
from nnx.sweep.result import SweepInterrupted
from nnx.sweep.study_result import StudyResult
from nnx.sweep.study_train import METRIC_OBJECTIVES, OPTIMIZE, Member, Outcome, TrainSettings, train_group
from nnx.sweep.trials import Trial, load_factory, trial_record
from nnx.training.stack_plan import components, structure

OPTUNA_HINT = 'pip install "nnx-nnfs[optuna]"'
INTERRUPTED = "interrupted"  # the fail_reason of a trial that Ctrl-C or a crash stopped: it is asked again


def optimize(
    study: Any,
    build_model: Callable[[Any], Model] | str,
    X: Any,
    y: Any,
    *,
    n_trials: int,
    epochs: int,
    batch: int = 32,
    validation_data: tuple[Any, Any] | None = None,
    objective: str | Callable[[History], float] | None = None,
    batch_size: int | None = None,
    report_every: int | None = None,
    dask: Any = None,
    dask_timeout: float = 10.0,
    progress: bool | None = None,
    seed: int = 0,
    backend: str | None = None,
) -> StudyResult:
    """Run an Optuna study in batches of trials, training the models of a batch that share a structure as one stack.

    Each batch asks the study for `batch` trials (ask-and-tell), seeds NumPy (``nnx.seed(seed)``) and calls
    ``build_model(trial)`` for each; the models that share a structure (layers, dtype, loss, optimizer and accuracy
    classes, backend: what `nnx.training.plan_stack` accepts) train as one `nnx.train_many` stack, a model with a
    structure of its own alone with `Model.train`, on the same data. Each trial is told its objective, and gets the
    value it gets trained alone: ``nnx.seed(seed); model = build_model(trial); model.train(X, y, epochs=epochs,
    batch_size=batch_size, validation_data=validation_data)`` (float64: equal to about 1e-13; float32 differs by
    rounding, as `train_many` says; with dropout, the stack's model i draws the masks of ``nnx.seed(seed + i)``).

    Pruning: with a pruner, every `report_every` epochs each trial reports its objective metric
    (``trial.report(value, epoch)``) and asks the pruner (``trial.should_prune()``); a pruned model leaves its
    stack at once, and the others go on with unchanged numbers. A validation metric is measured every epoch only
    with `batch_size` (else once, at the end, and nothing is reported); a callable objective reports nothing. A trial
    whose training diverges is told FAIL, with the reason in its user attribute "fail_reason".

    Resuming: `n_trials` counts the study's finished trials (complete, pruned, failed), earlier runs' included, so
    calling `optimize` again on a stored study (``optuna.create_study(storage="sqlite:///study.db",
    study_name=..., load_if_exists=True)``) trains only what is left. Trials that Ctrl-C or a crash left unfinished
    are told FAIL with fail_reason "interrupted" and asked again, with the same parameters (``study.enqueue_trial``);
    they do not count. One `optimize` call per study at a time.

    Args:
        study: a single-objective ``optuna.Study``; its sampler draws the trials, its pruner prunes them.
        build_model: ``build_model(trial) -> Model``: a finalized `nnx.Model` built from ``trial.suggest_*`` values,
            or its ``"module:function"`` name.
        X: the training inputs, shared by every trial (host data or an array of the models' backend).
        y: the targets.
        n_trials: how many finished trials the study should hold at the end, an integer >= 1.
        epochs: epochs per trial, an integer >= 1.
        batch: trials asked at once, an integer >= 1.
        validation_data: an (X_val, y_val) pair, or None.
        objective: what a trial is told: "val_loss", "loss", "val_accuracy" or "accuracy" (the final metric; the
            study's direction must fit: minimize a loss, maximize an accuracy), or a function of the trial's
            `History` returning a number. None is "val_loss" with validation data, else "loss".
        batch_size: samples per step; None trains on the whole set at each step.
        report_every: epochs between a trial's reports (and its last epoch). None makes at most about 100 reports
            with a pruner, and none without one (each trial's History still holds every epoch); pass it to see the
            curves in Optuna's plots (each report is a write to the study's storage).
        dask: run each batch's stacks as Dask tasks, one stack per task: a scheduler address or a
            ``distributed.Client``. The trials report through the study's storage, which must then be an RDB URL
            (``sqlite:///study.db`` on one machine, ``postgresql://...`` for several). None trains here.
        dask_timeout: seconds to reach the scheduler and its first worker.
        progress: one line per batch on stderr (a bar on a terminal): trials finished, the best value so far, and
            how many were pruned and failed. None and True show it, False shows nothing.
        seed: the NumPy seed before each build, an integer in [0, 2**32).
        backend: the registered backend the models are built and trained on; None is the current one.

    Returns:
        A `StudyResult`: the trials this call trained (table, CSV and loss plot as ``nnx sweep``'s) and the study.

    Raises:
        ImportError: Optuna (or, with `dask`, Dask's distributed) is not installed.
        TypeError: an argument has the wrong type, or `build_model` returns something else than a finalized Model.
        ValueError: an argument has a wrong value (a multi-objective study, an objective that does not fit the
            direction or the data, an in-memory study with `dask`, ...).
        SweepInterrupted: Ctrl-C; its `result` holds the trials told so far, the unfinished ones are asked again
            when `optimize` runs again.
    """
    optuna = _checks.extra_module("optuna", f"{OPTIMIZE} needs Optuna; install it: {OPTUNA_HINT}")
    direction = _checked_study(optuna, study)
    build = _checked_build(build_model)
    n_trials = _checks.positive_int(n_trials, "n_trials", OPTIMIZE)
    epochs = _checks.positive_int(epochs, "epochs", OPTIMIZE)
    batch = _checks.positive_int(batch, "batch", OPTIMIZE)
    batch_size = _checks.optional_positive_int(batch_size, "batch_size", OPTIMIZE)
    every = (
        lines_every(epochs) if report_every is None else _checks.positive_int(report_every, "report_every", OPTIMIZE)
    )
    objective = _checked_objective(objective, direction, validation_data)
    seed = checked_seed(seed, f"{OPTIMIZE} seed")
    show = True if progress is None else _checks.boolean(progress, "progress", OPTIMIZE)
    if dask is not None:
        _check_shared_storage(optuna, study)
    prune = not isinstance(study.pruner, optuna.pruners.NopPruner)
    asked_reports = report_every is not None or prune  # without a pruner, reports only fill Optuna's curves
    report = objective if isinstance(objective, str) and asked_reports else None
    name = backends.get(backend).name
    settings = TrainSettings(epochs, batch_size, objective, report, every, prune, seed, name)
    client, owned = connect(dask, dask_timeout) if dask is not None else (None, False)
    data = (X, y, validation_data) if client is None else _scattered(client, X, y, validation_data)
    result = StudyResult(planned=n_trials, study=study, objective=_objective_name(objective), direction=direction)
    result.settings = ["epochs", "batch_size", "seed", "backend", "objective"]
    try:
        sizes = (n_trials, batch)
        _run_batches(optuna, study, build, (data, client), settings, sizes, result, _Progress(show, n_trials, result))
    finally:
        if owned and client is not None:
            client.close()
    return result


# The checks, before any trial is asked ---------------------------------------------------------------------------


def _checked_study(optuna: Any, study: Any) -> str:
    """The study's direction ("minimize" or "maximize"); a TypeError or ValueError for anything else."""
    if not isinstance(study, optuna.study.Study):
        raise TypeError(
            f"{OPTIMIZE} study must be an optuna.Study, got {_checks.describe(study)}; make one with "
            f"optuna.create_study() (direction='minimize' for a loss)"
        )
    if len(study.directions) != 1:
        raise ValueError(
            f"{OPTIMIZE} takes a single-objective study, got one with {len(study.directions)} directions; make it "
            f"with optuna.create_study(direction='minimize')"
        )
    return "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"


def _checked_build(build_model: Any) -> Callable[[Any], Model]:
    if isinstance(build_model, str) or callable(build_model):
        try:
            return load_factory(build_model)
        except (ValueError, TypeError, ImportError) as error:
            raise type(error)(f"{OPTIMIZE} build_model: {error}") from None
    raise TypeError(
        f"{OPTIMIZE} build_model must be a function build_model(trial) -> nnx.Model or its 'module:function' name, "
        f"got {_checks.describe(build_model)}"
    )


def _checked_objective(objective: Any, direction: str, validation_data: Any) -> str | Callable[[History], float]:
    if objective is None:
        return "loss" if validation_data is None else "val_loss"
    if callable(objective):
        return objective
    if objective not in METRIC_OBJECTIVES:
        raise ValueError(
            f"{OPTIMIZE} objective must be one of {', '.join(map(repr, METRIC_OBJECTIVES))} or a function of the "
            f"History returning a number, got {objective!r}"
        )
    if objective.startswith("val_") and validation_data is None:
        raise ValueError(
            f"{OPTIMIZE} objective {objective!r} needs validation_data; pass validation_data=(X_val, y_val), or "
            f"objective={objective[4:]!r}"
        )
    if METRIC_OBJECTIVES[objective] != direction:
        raise ValueError(
            f"{OPTIMIZE} objective {objective!r} must be {METRIC_OBJECTIVES[objective]}d, but the study's direction "
            f"is {direction!r}; create the study with direction={METRIC_OBJECTIVES[objective]!r}"
        )
    return objective


def _objective_name(objective: str | Callable) -> str:
    return objective if isinstance(objective, str) else getattr(objective, "__name__", "value")


def _check_shared_storage(optuna: Any, study: Any) -> None:
    """With Dask the workers report through the study's storage: an in-memory one would stay in this process."""
    if isinstance(getattr(study, "_storage", None), optuna.storages.InMemoryStorage):
        raise ValueError(
            f"{OPTIMIZE} with dask needs a study whose storage the workers can reach, got an in-memory study; "
            f"create it with an RDB URL: optuna.create_study(storage='sqlite:///study.db', ...) for one machine, "
            f"'postgresql://...' for several (--storage on the command line)"
        )


# The batches -----------------------------------------------------------------------------------------------------


def _run_batches(optuna, study, build, data, settings: TrainSettings, sizes, result: StudyResult, progress) -> None:
    n_trials, batch = sizes
    data, client = data
    state = optuna.trial.TrialState
    _recover(optuna, study)
    try:
        while (done := _finished(study, state)) < n_trials:
            asked: dict[int, Any] = {}
            try:
                members = _ask(optuna, study, build, (min(batch, n_trials - done), settings), asked, result)
                for outcome in _train(_groups(members), data, settings, client):
                    _tell(study, state, asked.pop(outcome.number), outcome, result)
            except BaseException:
                _abandon(study, state, list(asked.values()))
                raise
            progress.batch(_finished(study, state))
    except KeyboardInterrupt:
        result.interrupted = True
        raise SweepInterrupted(result) from None
    finally:
        progress.close()
        result.trials.sort(key=lambda trial: trial["trial"])


def _finished(study: Any, state: Any) -> int:
    """The study's finished trials, without those that an interruption stopped (they are asked again)."""
    trials = study.get_trials(deepcopy=False, states=(state.COMPLETE, state.PRUNED, state.FAIL))
    return sum(trial.user_attrs.get("fail_reason") != INTERRUPTED for trial in trials)


def _recover(optuna: Any, study: Any) -> None:
    """Trials that a crash left running: told FAIL ("interrupted") and enqueued again with their parameters."""
    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        trial = optuna.trial.Trial(study, frozen._trial_id)
        _abandon(study, optuna.trial.TrialState, [trial])


def _abandon(study: Any, state: Any, trials: list) -> None:
    """Tell each unfinished trial FAIL with fail_reason "interrupted" and enqueue its parameters again."""
    for trial in trials:
        params = dict(trial.params)
        trial.set_user_attr("fail_reason", INTERRUPTED)
        study.tell(trial, state=state.FAIL)
        study.enqueue_trial(params, user_attrs={"retry_of": trial.number})


def _ask(optuna, study, build, what: tuple, asked: dict, result: StudyResult) -> list[Member]:
    """Ask `size` trials and build their models, each after ``nnx.seed(seed)``; a build that fails is told FAIL
    and its error raised (Optuna's TrialPruned from a build: told PRUNED)."""
    size, settings = what
    members = []
    for _ in range(size):
        trial = study.ask()
        asked[trial.number] = trial
        start = time.perf_counter()
        with backends.use(settings.backend):
            backends.seed(settings.seed)
            try:
                model = build(trial)
            except optuna.TrialPruned:
                pruned = Outcome(trial.number, "pruned", History())
                _tell(study, optuna.trial.TrialState, asked.pop(trial.number), pruned, result)
                continue
        if not isinstance(model, Model) or not model.finalized:
            raise TypeError(
                f"{OPTIMIZE} build_model must return a finalized nnx.Model, got {_checks.describe(model)} for "
                f"trial {trial.number}; end it with model.finalize() and return model"
            )
        members.append(Member(trial, trial.number, model, time.perf_counter() - start))
    return members


def _groups(members: list[Member]) -> list[list[Member]]:
    """The members in groups that train as one stack, in trial order: models of one structure that share no layer,
    loss, optimizer or accuracy object (a model that stacks with no other: alone)."""
    groups: list[tuple[Any, set[int], list[Member]]] = []  # (structure, the members' components, the members)
    for member in members:
        key, parts = structure(member.model), components(member.model)
        joined = key is not None and next((group for group in groups if group[0] == key and not parts & group[1]), None)
        if joined:
            joined[1].update(parts)
            joined[2].append(member)
        else:
            groups.append((key, parts, [member]))
    return [group[2] for group in groups]


def _train(groups: list[list[Member]], data: tuple, settings: TrainSettings, client: Any):
    """Each group's outcomes: group by group here, or each group a Dask task (as the tasks finish)."""
    X, y, validation_data = data
    if client is None:
        for group in groups:
            yield from train_group(group, X, y, validation_data, settings)
        return
    from distributed import as_completed

    futures = [client.submit(train_group, group, X, y, validation_data, settings, pure=False) for group in groups]
    try:
        for future in as_completed(futures, loop=client.loop):
            yield from future.result()
    finally:
        pending = [future for future in futures if not future.done()]
        if pending:
            client.cancel(pending)


def _scattered(client: Any, X: Any, y: Any, validation_data: Any) -> tuple:
    """The data on every Dask worker once, as futures (the tasks then carry only the models)."""
    X, y = client.scatter([X, y], broadcast=True)
    if validation_data is not None:
        validation_data = client.scatter(list(validation_data), broadcast=True)
    return X, y, validation_data


def _tell(study: Any, state: Any, trial: Any, outcome: Outcome, result: StudyResult) -> None:
    """Tell the study how the trial ended and add its record to `result`."""
    if outcome.state == "complete":
        study.tell(trial, outcome.value)
    elif outcome.state == "pruned":
        study.tell(trial, state=state.PRUNED)
    else:
        trial.set_user_attr("fail_reason", outcome.reason)
        study.tell(trial, state=state.FAIL)
    params = trial.params  # a copy Optuna makes at each reading
    result.trials.append(_record(trial.number, params, outcome, result))
    for name in params:
        if name not in result.params:
            result.params.append(name)
            result.varied.append(name)


def _record(number: int, params: dict, outcome: Outcome, result: StudyResult) -> dict:
    """Trial `number` (with `params`) as a sweep's record (`nnx.sweep.SweepResult`), with its value and Optuna
    state."""
    history = outcome.history
    curves = {"epoch": history.epoch, "loss": [], "accuracy": [], **history.history}  # trial_record copies them
    final = history.final
    settings = {"objective": result.objective}
    entry = Trial(number, params, settings)
    if outcome.state == "fail":
        record = trial_record(entry, curves, outcome.seconds, error=RuntimeError(outcome.reason))
        record["error"] = outcome.reason
    else:
        record = trial_record(entry, curves, outcome.seconds, loss=final.get("loss"), accuracy=final.get("accuracy"))
    if outcome.state == "pruned":
        record["status"] = "pruned"
        record["error"] = f"pruned after epoch {outcome.epoch}" if outcome.epoch else "pruned while building"
    record["value"] = outcome.value
    record["state"] = {"complete": "COMPLETE", "pruned": "PRUNED", "fail": "FAIL"}[outcome.state]
    return record


class _Progress:
    """One line per batch on stderr (a tqdm bar on a terminal): trials finished, best value, pruned and failed."""

    def __init__(self, show: bool, total: int, result: StudyResult):
        self.show, self.total, self.result, self.bar = show, total, result, None
        self.number = 0
        if show and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="trial", desc="optuna", file=sys.stderr, leave=False)

    def batch(self, finished: int) -> None:
        self.number += 1
        if not self.show:
            return
        result = self.result
        try:
            best = f"best {result.objective} {result.study.best_value:.6g} (trial {result.study.best_trial.number})"
        except ValueError:  # no complete trial yet
            best = "no complete trial yet"
        counts = f"{len(result.pruned)} pruned, {len(result.failed)} failed"
        if self.bar is not None:
            self.bar.set_postfix_str(f"{best}, {counts}", refresh=False)
            self.bar.update(min(finished, self.total) - self.bar.n)
        else:
            print(f"{OPTIMIZE}: batch {self.number}: {finished}/{self.total} trials, {best}, {counts}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
