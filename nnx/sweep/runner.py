"""`run`: plan the trials, run them where asked and collect their records, with a progress bar, the CSV log and
Ctrl-C keeping the finished ones."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Generator, Mapping
from typing import Any

from nnx import _checks, backends
from nnx._paths import output_path
from nnx.sweep.executors import connect, importing_main_in_a_worker, run_trials
from nnx.sweep.plan import planned_trials, worker_count
from nnx.sweep.result import CsvLog, SweepInterrupted, SweepResult
from nnx.sweep.space import OWNER, LogUniform, normalize
from nnx.sweep.tracking import SweepTracking
from nnx.sweep.trials import Trial


def run(
    space: Mapping[str, Any] | None = None,
    *,
    factory: str | Callable[..., Any] | None = None,
    epochs: int = 10001,
    seed: int = 0,
    backend: str | None = None,
    every: int | None = None,
    batch_size: int | None = None,
    random: int | None = None,
    random_seed: int | None = None,
    workers: int | None = None,
    dask: Any = None,
    dask_timeout: float = 10.0,
    csv: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    batched: bool = False,
    tensorboard: str | os.PathLike[str] | None = None,
    mlflow: str | None = None,
) -> SweepResult:
    """Train one model per combination of hyperparameters, where asked, and rank the trials: chapter 10's trial
    and error as one call (``nnx sweep`` on the command line).

    Without `factory` it trains the book's chapter-10 spiral network with `nnx.recipes.train_spiral`, exactly as
    ``examples/spiral.py`` does for the same values. With `factory` it trains your own model: for each trial the
    sweep seeds (``nnx.seed(seed)``) and makes `backend` current, calls ``build(**params)`` with the trial's values
    as given, trains with ``model.train(X, y, epochs=epochs, batch_size=batch_size, verbose=0,
    validation_data=validation_data)`` and reads the returned History. Every trial is seeded with the same `seed`,
    so the results do not depend on where trials run. A failing trial (a bad value, a `DivergenceError`, an error
    in the factory) is recorded as failed and the others go on.

    Local workers start with "spawn", which imports the main module: a script calls `run` under
    ``if __name__ == "__main__":``. Dask's nanny starts workers with OPENBLAS_NUM_THREADS=1: with data large
    enough for BLAS to use threads (about 3000 samples), losses then round differently from a local run.

    With `batched`, a task (run by one worker process, this process when there is one task, or one Dask task) is a
    list of trials. Spiral trials stack when only lr, decay and momentum differ; each model is built and seeded as
    its unbatched trial (the same data and initial weights) and its records have the same epochs (the book's, from
    0), columns and table. A diverged model is frozen and its trial fails with "DivergenceError: training diverged
    at epoch E" (E: its first epoch that is not finite), its history kept up to there. A factory's models are known
    only once built: its trials are dealt into one task per worker (consecutive in trial order; `workers=1`: one
    task) and stack when their models share an architecture (layers, dtype, loss, optimizer and accuracy classes,
    backend) and equal training and validation data; the others train alone as without `batched`. Stacked models
    draw their dropout masks from their own streams, seeded from `seed`, not the masks of an unbatched run. A
    batched trial's `seconds` is its stack's wall time, building included, divided by the stack's number of trials.

    Batched numbers equal the unbatched ones up to rounding (float32 sums in another order) that training then
    amplifies; the ranking is the same while the losses are further apart than that. Measured, relative
    difference of the final loss, float32, lr 0.5,0.85,1.0 x decay 0,1e-3: at most 1.1e-7 (one rounding) at 51
    epochs; at 501 epochs at most 6.2e-6 with seed 0 (documented tolerance: 1e-4, the same ranking and 3-decimal
    losses), a median of 2e-7 over seeds 0-19 but 1.6e-3 for one trial of seed 4. Longer and momentum runs drift
    further (2001 epochs: up to 8e-3, and trials whose losses lie within 1e-2 of each other change places; 10001:
    up to 0.2; momentum 0.9 at 501 epochs: up to 0.36), and float64 drifts the same way from 1e-16. The generic
    stacked step (no Numba, other backends) gave the unbatched numbers bit for bit on numpy, array_api_strict and
    torch (jax: 4.5e-6 at 501 epochs).

    Args:
        space: hyperparameter name -> a list of values, one value, or (with `random`) a `LogUniform` range; None
            trains one trial with the defaults. The spiral network takes lr, decay, momentum, hidden, samples,
            classes and dtype; a factory takes the names its function takes.
        factory: your model's builder, ``"module:function"`` or a callable: ``build(**params) -> (model, X, y)``
            or ``(model, X, y, validation_data)``, `model` a finalized `nnx.Model`. The module must be importable
            where the trials run (the current folder is, for local processes started by ``nnx sweep``). None
            trains the spiral network.
        epochs: epochs per trial, an integer >= 1.
        seed: the seed of every trial (``nnx.seed(seed)`` before it builds), an integer in [0, 2**32).
        backend: the registered backend name the trials train on; None is $NNX_BACKEND, else numpy.
        every: spiral only: record the metrics every `every` epochs (default 100).
        batch_size: factory only: `Model.train`'s batch_size.
        random: train this many combinations drawn at random (see `sample`) instead of the whole grid.
        random_seed: the seed of that draw; None uses `seed`.
        workers: local processes to run trials in; None is one per core, at most one per trial; 1 runs them one
            after another in this process.
        dask: run the trials on a Dask cluster instead: a scheduler address ("tcp://host:8786") or a
            `distributed.Client`; None runs them locally.
        dask_timeout: seconds to reach the scheduler and its first worker.
        csv: a file that gets each trial's row as soon as it finishes, rewritten ranked at the end; None for none.
        progress: a tqdm bar over the trials on stderr; None shows it when stderr is a terminal.
        batched: train the trials of one architecture together as one stack with `nnx.train_many` (a compiled
            kernel over the models on CPU), as described above.
        tensorboard: a folder that gets one TensorBoard run per trial as it finishes ("trial3,lr=0.5,decay=0":
            its metric curves and, for the HParams view, its hyperparameters, settings and status); None for none.
        mlflow: an MLflow experiment (made if missing) that gets a parent run for the sweep (its space and
            settings) with one nested run per trial (hyperparameters, metric history with the epochs as steps,
            status; a failed trial's error as the tag "error"); Ctrl-C ends the parent run as KILLED. MLflow's own
            setting says where (``mlflow.set_tracking_uri`` or $MLFLOW_TRACKING_URI). None for none.

    Returns:
        The trials, with their ranking, table, CSV and loss plot.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: an argument has a wrong value (an unknown hyperparameter, a range in a grid, ...).
        ImportError: the factory's module cannot be imported, or Dask, tensorboardX or MLflow is needed and not
            installed.
        ConnectionError: the Dask scheduler or its workers cannot be reached.
        SweepInterrupted: Ctrl-C cancelled the pending trials; its `result` holds the finished ones.
    """
    trials = planned_trials(
        space,
        factory=factory,
        epochs=epochs,
        seed=seed,
        backend=backend,
        every=every,
        batch_size=batch_size,
        random=random,
        random_seed=random_seed,
    )
    if progress is not None:
        _checks.boolean(progress, "progress", OWNER)  # before the CSV file is opened
    batched = _checks.boolean(batched, "batched", OWNER)
    if csv is not None:
        csv = output_path(csv, f"{OWNER} csv")
    workers = worker_count(workers, dask, len(trials), factory)
    if dask is None:
        _usable_here(trials)
    if (workers or 1) > 1 and importing_main_in_a_worker():
        raise RuntimeError(
            f"{OWNER} was called while a worker process imported your script: call nnx.sweep.run(...) under "
            f"`if __name__ == '__main__':` (local workers start with 'spawn', which imports the main module)"
        )
    tracking = SweepTracking(tensorboard, mlflow)  # the folder and the packages, before any trial trains
    result = _empty_result(space, trials)
    client, owned = connect(dask, dask_timeout) if dask is not None else (None, False)
    log = None
    try:
        log = CsvLog(csv, result.columns()) if csv is not None else None
        with tracking.session(space, result):
            return _collect(result, run_trials(trials, workers, client, batched), log, progress, tracking.trial)
    finally:
        if log is not None:
            log.close(result)
        if owned and client is not None:
            client.close()


def _usable_here(trials: list[Trial]) -> None:
    """The trials' backend is available here and has their dtypes: say why not now, not once per trial."""
    backend = backends.get(trials[0].settings["backend"])
    for dtype in sorted({trial.params["dtype"] for trial in trials if isinstance(trial.params.get("dtype"), str)}):
        backend.float_dtype(dtype)


def _empty_result(space, trials: list[Trial]) -> SweepResult:
    space = normalize(space)
    varied = [name for name, values in space.items() if isinstance(values, LogUniform) or len(values) > 1]
    first = trials[0]
    return SweepResult(varied=varied, params=list(first.params), settings=list(first.settings), planned=len(trials))


def _collect(
    result: SweepResult, results: Generator[dict, None, None], log: Any, progress: Any, track: Callable[[dict], None]
) -> SweepResult:
    bar = _progress_bar(progress, result.planned)
    try:
        for trial in results:
            result.trials.append(trial)
            track(trial)
            if log is not None:
                log.write(result.row(trial))
            bar.update(trial)
    except KeyboardInterrupt:
        result.interrupted = True
        raise SweepInterrupted(result) from None
    finally:
        results.close()
        bar.close()
        result.trials.sort(key=lambda trial: trial["trial"])
    return result


class _Bar:
    """A tqdm bar over the trials, showing the best final loss so far; nothing at all when off."""

    def __init__(self, enabled: bool, total: int):
        self.bar, self.best = None, math.inf
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="trial", desc="sweep", file=sys.stderr, leave=False)

    def update(self, trial: dict) -> None:
        if self.bar is None:
            return
        if trial["status"] == "ok":
            self.best = min(self.best, trial["loss"])
        if math.isfinite(self.best):
            self.bar.set_postfix_str(f"best loss: {self.best:.3f}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress_bar(progress: Any, total: int) -> _Bar:
    if progress is None:
        progress = sys.stderr.isatty()
    return _Bar(_checks.boolean(progress, "progress", OWNER), total)
