"""Chapter 10's hyperparameter trial and error as one call (`run`) and one command (``nnx sweep``): train the spiral
network, or your own model, over a grid or a seeded random sample, in processes or on Dask, and rank the trials.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import itertools
import math
import multiprocessing
import numbers
import os
import pickle
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from csv import DictWriter
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

from nnx import _checks, backends
from nnx.errors import DivergenceError
from nnx.model import Model
from nnx.recipes import train_spiral

__all__ = [
    "LogUniform",
    "SweepInterrupted",
    "SweepResult",
    "Trial",
    "grid",
    "load_factory",
    "main",
    "parse_values",
    "run",
    "run_trial",
    "sample",
]

OWNER = "nnx sweep"
SPIRAL_DEFAULTS = {
    name: inspect.signature(train_spiral).parameters[name].default
    for name in ("lr", "decay", "momentum", "hidden", "samples", "classes", "dtype")
}
SPIRAL_CHECKS = {
    "lr": _checks.positive,
    "decay": _checks.non_negative,
    "momentum": _checks.fraction,
    "hidden": _checks.positive_int,
    "samples": _checks.positive_int,
    "classes": _checks.positive_int,
    "dtype": lambda value, name, owner: _checks.choice(value, name, owner, ("float32", "float64")),
}
INTEGER_PARAMS = ("hidden", "samples", "classes")
METRIC_COLUMNS = ("status", "loss", "accuracy", "best_epoch", "best_loss", "seconds", "error")
FACTORY_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
DASK_HINT = 'pip install "nnx-nnfs[distributed]"'
PLOT_HINT = 'pip install "nnx-nnfs[plot]"'
MESSAGE_WIDTH = 110  # a failed trial's "failed: Error: message" is cut to this many characters in the table
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# nnx draws weights and data from NumPy's global RNG: two trials in threads of one process would interleave their
# draws, so a process (a Dask worker may run several threads) trains one trial at a time.
_TRIAL_LOCK = threading.Lock()


# The search space ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogUniform:
    """A range for a random sample: values drawn log-uniformly from [low, high] (``--lr 0.01:1.0``); `integer`
    rounds each draw (``--hidden 16:256``). A grid cannot use ranges."""

    low: float
    high: float
    integer: bool = False

    def __post_init__(self):
        valid = all(_checks._is_real(bound) and math.isfinite(bound) for bound in (self.low, self.high))
        if not valid or not 0 < self.low <= self.high:
            raise ValueError(
                f"{OWNER} range must have finite bounds 0 < low <= high, got {self.low!r}:{self.high!r}; "
                f"pass e.g. LogUniform(0.01, 1.0) (--lr 0.01:1.0)"
            )

    def __str__(self) -> str:
        return f"{self.low:g}:{self.high:g}"

    def draw(self, rng: Random):
        """One value, from `rng`."""
        value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return round(value) if self.integer else value


def _normalize(space) -> dict:
    """{name: list of values or LogUniform}; a single value (a number, a string) becomes a one-item list."""
    if space is None:
        return {}
    if not isinstance(space, Mapping):
        raise TypeError(
            f"{OWNER} space must map hyperparameter names to lists of values, got {_checks.describe(space)}; "
            f"pass e.g. {{'lr': [0.5, 1.0], 'decay': [0, 1e-3]}}"
        )
    return {_name(name): _values(name, values) for name, values in space.items()}


def _name(name) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{OWNER} hyperparameter names must be Python identifiers, got {name!r}; pass e.g. 'lr'")
    return name


def _values(name: str, values):
    if isinstance(values, LogUniform):
        return values
    values = values.tolist() if hasattr(values, "tolist") else values  # NumPy arrays and scalars
    values = list(values) if isinstance(values, (list, tuple, range)) else [values]
    if not values:
        raise ValueError(
            f"{OWNER} {name} needs at least one value, got an empty list; pass e.g. {name}=[0.5, 1.0] "
            f"(--{name} 0.5,1.0)"
        )
    return values


def grid(space) -> list[dict]:
    """Every combination of `space`'s values (the cartesian product), the last name varying fastest."""
    space = _normalize(space)
    ranges = [name for name, values in space.items() if isinstance(values, LogUniform)]
    if ranges:
        raise ValueError(
            f"{OWNER} {', '.join(ranges)} is a range (low:high), which only a random sample draws from; "
            f"pass random=N (--random N), or give a list of values instead"
        )
    names = list(space)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*space.values())]


def sample(space, n: int, seed: int = 0) -> list[dict]:
    """`n` combinations drawn with ``random.Random(seed)``: the same seed gives the same trials.

    With lists only, the combinations are drawn without replacement (all of them, in grid order, when `n` is at
    least their number); with a `LogUniform` range each value of each trial is drawn on its own.
    """
    space = _normalize(space)
    n = _checks.positive_int(n, "random", OWNER)
    rng = Random(seed)
    if any(isinstance(values, LogUniform) for values in space.values()):
        return [{name: _draw(values, rng) for name, values in space.items()} for _ in range(n)]
    total = math.prod(len(values) for values in space.values())
    indices = range(total) if n >= total else sorted(rng.sample(range(total), n))
    return [_combination(space, index) for index in indices]


def _draw(values, rng: Random):
    return values.draw(rng) if isinstance(values, LogUniform) else rng.choice(values)


def _combination(space: dict, index: int) -> dict:
    """The `index`-th combination of `grid(space)`, without building the grid."""
    chosen = {}
    for name in reversed(list(space)):
        index, digit = divmod(index, len(space[name]))
        chosen[name] = space[name][digit]
    return {name: chosen[name] for name in space}


# Trials ------------------------------------------------------------------------------------------------------


@dataclass
class Trial:
    """One training run of a sweep: its number (from 1), hyperparameters, settings (epochs, seed, backend, ...)
    and the factory that builds its model (None: the spiral network)."""

    index: int
    params: dict
    settings: dict
    factory: object = None


def run_trial(trial: Trial) -> dict:
    """Train one trial here and return its record; a failed run is a record with status "failed", not an error.

    Trials in one process run one at a time (NumPy's global RNG). Ctrl-C (KeyboardInterrupt) is not caught.
    """
    with _TRIAL_LOCK:
        curves = {"epoch": [], "loss": [], "accuracy": []}
        start = time.perf_counter()
        try:
            train = _train_spiral if trial.factory is None else _train_factory
            loss, accuracy = train(trial, curves)
        except Exception as error:
            return _record(trial, curves, time.perf_counter() - start, error=error)
        return _record(trial, curves, time.perf_counter() - start, loss=loss, accuracy=accuracy)


def _train_spiral(trial: Trial, curves: dict) -> tuple[float, float]:
    def record(epoch: int, values: dict) -> None:
        curves["epoch"].append(epoch)
        curves["loss"].append(values["loss"])
        curves["accuracy"].append(values["accuracy"])

    result = train_spiral(**trial.params, **trial.settings, on_record=record)
    return result.final["loss"], result.final["accuracy"]


def _train_factory(trial: Trial, curves: dict) -> tuple[float, float | None]:
    build, settings = load_factory(trial.factory), trial.settings
    with backends.use(settings["backend"]):
        backends.seed(settings["seed"])
        model, X, y, validation_data = _unpack(build(**trial.params), trial.factory)
        history = model.train(
            X,
            y,
            epochs=settings["epochs"],
            batch_size=settings["batch_size"],
            verbose=0,
            validation_data=validation_data,
            on_divergence="stop",  # keeps the history up to the divergence, for the plot
        )
    curves.update(epoch=list(history.epoch), loss=history.history.get("loss", []))
    curves["accuracy"] = history.history.get("accuracy", [])
    final = history.final
    if final.get("diverged"):
        last = final.get("loss")
        raise DivergenceError(
            f"training diverged at epoch {final.get('epoch')}: the loss or a parameter is NaN or infinite "
            f"(last finite loss: {'none' if last is None else f'{last:.6g}'}). Lower the learning rate or add decay",
            epoch=final.get("epoch"),
            last_finite_loss=last,
        )
    return final["loss"], final.get("accuracy")


def _unpack(built, factory) -> tuple:
    name = _factory_name(factory)
    if not isinstance(built, (tuple, list)) or len(built) not in (3, 4):
        raise TypeError(
            f"{OWNER} factory {name} must return (model, X, y) or (model, X, y, validation_data), got "
            f"{_checks.describe(built)}; end it with: return model, X, y"
        )
    if not isinstance(built[0], Model):
        raise TypeError(
            f"{OWNER} factory {name} must return an nnx.Model first, got {type(built[0]).__name__}; build, set and "
            f"finalize an nnx.Model and return model, X, y"
        )
    return (*built, None) if len(built) == 3 else tuple(built)


def _record(trial: Trial, curves: dict, seconds, *, loss=None, accuracy=None, error=None) -> dict:
    best_epoch = best_loss = None
    points = [(value, epoch) for epoch, value in zip(curves["epoch"], curves["loss"], strict=True) if _finite(value)]
    if error is None and points:
        best_loss, best_epoch = min(points)  # the first epoch among equal losses
    return {
        "trial": trial.index,
        "params": dict(trial.params),
        "settings": dict(trial.settings),
        "status": "ok" if error is None else "failed",
        "loss": loss,
        "accuracy": accuracy,
        "best_epoch": best_epoch,
        "best_loss": best_loss,
        "seconds": seconds,
        "error": None if error is None else f"{type(error).__name__}: {' '.join(str(error).split())}",
        "history": {name: list(values) for name, values in curves.items()},
    }


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def load_factory(spec):
    """The callable `spec` names: ``"module:function"`` (imported here), or `spec` itself when it is callable."""
    if callable(spec):
        return spec
    if not isinstance(spec, str) or not FACTORY_PATH.match(spec):
        raise ValueError(
            f"{OWNER} factory must be 'module:function' or a callable, got {spec!r}; pass e.g. my_models:build "
            f"for def build(**params) in my_models.py"
        )
    module_name, attribute = spec.split(":")
    try:
        found = importlib.import_module(module_name)
    except Exception as error:  # also a SyntaxError or a failing import inside the user's module
        raise ImportError(
            f"{OWNER} factory {spec!r}: cannot import {module_name!r} ({type(error).__name__}: {error}); run from "
            f"the folder holding {module_name.replace('.', '/')}.py, or install the package that provides it"
        ) from error
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ValueError(f"{OWNER} factory {spec!r}: {module_name!r} has no {attribute!r}; check the name")
        found = getattr(found, part)
    if not callable(found):
        raise TypeError(f"{OWNER} factory {spec!r} is a {type(found).__name__}, not a function; name a function")
    return found


def _factory_name(factory) -> str:
    if isinstance(factory, str):
        return repr(factory)
    return f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', repr(factory))}"


# Planning: validate everything before the first trial -------------------------------------------------------


def _plan(space, *, factory, epochs, seed, backend, every, batch_size, random, random_seed) -> list[Trial]:
    space = _normalize(space)
    settings = {"epochs": _checks.positive_int(epochs, "epochs", OWNER), "seed": _seed(seed, "seed")}
    settings["backend"] = _backend_name(backend)
    if factory is None:
        _check_spiral(space, batch_size)
        settings["every"] = _checks.positive_int(100 if every is None else every, "every", OWNER)
    else:
        build = load_factory(factory)
        if every is not None:
            raise ValueError(f"{OWNER} every applies to the spiral network only, got every={every!r} with a factory")
        settings["batch_size"] = _checks.optional_positive_int(batch_size, "batch_size", OWNER)
    if random is None:
        combinations = grid(space)
    else:
        combinations = sample(space, random, _seed(seed if random_seed is None else random_seed, "random_seed"))
    if factory is None:
        combinations = [{**SPIRAL_DEFAULTS, **params} for params in combinations]
    else:
        _check_signature(build, combinations[0], factory)
    return [Trial(index, params, dict(settings), factory) for index, params in enumerate(combinations, 1)]


def _seed(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < 2**32:
        raise ValueError(f"{OWNER} {name} must be an integer in [0, 2**32), got {value!r}; pass e.g. {name}=0")
    return int(value)


def _backend_name(backend) -> str:
    """The backend's name, checked against the registry without loading it (no CuPy import in this process)."""
    name = backend or os.environ.get(backends.ENV_VAR) or backends.DEFAULT
    if not isinstance(name, str):
        raise TypeError(
            f"{OWNER} backend must be a registered name (trials run in other processes), got "
            f"{type(name).__name__}; pass e.g. backend='numpy'"
        )
    if name not in backends.registered():
        known = ", ".join(sorted(backends.registered()))
        raise ValueError(f"{OWNER} backend {name!r} is unknown; registered backends are: {known}")
    return name


def _check_spiral(space: dict, batch_size) -> None:
    if batch_size is not None:
        raise ValueError(
            f"{OWNER} batch_size applies to a factory's Model.train, got batch_size={batch_size!r} for the spiral "
            f"network, which trains on the whole batch; drop it or pass a factory"
        )
    for name, values in space.items():
        if name not in SPIRAL_CHECKS:
            raise ValueError(
                f"{OWNER} the spiral network has no hyperparameter {name!r}; it takes {', '.join(SPIRAL_CHECKS)}. "
                f"To sweep your own model, pass factory='module:function'"
            )
        if isinstance(values, LogUniform) and name in INTEGER_PARAMS and not values.integer:
            raise ValueError(
                f"{OWNER} {name} takes integers: pass LogUniform({values.low}, {values.high}, integer=True)"
            )
        for value in (values.low, values.high) if isinstance(values, LogUniform) else values:
            SPIRAL_CHECKS[name](value, name, OWNER)


def _check_signature(build, params: dict, factory) -> None:
    try:
        inspect.signature(build).bind(**params)
    except TypeError as error:
        raise TypeError(
            f"{OWNER} factory {_factory_name(factory)} cannot be called with the hyperparameters "
            f"{', '.join(params) or '(none)'} ({error}); give it those parameters (or **params), or drop them"
        ) from None
    except ValueError:  # no signature to read (a builtin): the trials will tell
        pass


def _workers(workers, dask, n_trials: int, factory) -> int | None:
    """How many local processes (1: this process), or None on Dask."""
    if dask is not None:
        if workers is not None:
            raise ValueError(
                f"{OWNER} takes workers or dask, not both, got workers={workers!r}; a Dask cluster runs as many "
                f"trials at once as it has worker threads"
            )
        return None
    if workers is None:
        workers = os.cpu_count() or 1
    elif isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise ValueError(
            f"{OWNER} workers must be an integer >= 1, got {workers!r}; pass workers=1 to run the trials one after "
            f"another in this process"
        )
    workers = min(int(workers), n_trials)
    if workers > 1 and factory is not None and not isinstance(factory, str):
        _check_picklable(factory)
    return workers


def _check_picklable(factory) -> None:
    try:
        pickle.dumps(factory)
    except Exception as error:
        raise TypeError(
            f"{OWNER} factory {_factory_name(factory)} cannot be sent to worker processes ({error}); define it at "
            f"the top level of a module, pass 'module:function', or run with workers=1"
        ) from None


# Executors: this process, local processes, a Dask cluster ----------------------------------------------------


def _results(trials: list[Trial], workers: int | None, client) -> Iterator[dict]:
    """The trials' records, as they finish."""
    if client is not None:
        yield from _on_dask(trials, client)
    elif workers == 1:
        for trial in trials:
            yield run_trial(trial)
    else:
        yield from _in_processes(trials, workers)


def _in_processes(trials: list[Trial], workers: int) -> Iterator[dict]:
    """Fresh ("spawn") processes: nothing inherited but the environment, which a normal run has too."""
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_ignore_interrupts)
    futures = {}
    try:
        futures = {pool.submit(run_trial, trial): trial for trial in trials}
        for future in as_completed(futures):
            yield _outcome(future, futures[future])
    finally:
        if not all(future.done() for future in futures):  # Ctrl-C, or the caller stopped early
            _terminate(pool)
        pool.shutdown(wait=True, cancel_futures=True)


def _ignore_interrupts() -> None:
    """In a worker: Ctrl-C reaches the whole process group, and only the parent decides what stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _terminate(pool: ProcessPoolExecutor) -> None:
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


def _on_dask(trials: list[Trial], client) -> Iterator[dict]:
    from distributed import as_completed as dask_completed

    futures = {}
    try:
        futures = {client.submit(run_trial, trial, pure=False): trial for trial in trials}
        for future in dask_completed(futures, loop=client.loop):
            yield _outcome(future, futures[future])
    finally:
        pending = [future for future in futures if not future.done()]
        if pending:
            client.cancel(pending)


def _outcome(future, trial: Trial) -> dict:
    """The trial's record, or a failed one when the worker itself broke (killed, out of memory, ...)."""
    try:
        return future.result()
    except BrokenProcessPool as error:
        broken = BrokenProcessPool(
            f"a worker process died ({error}): killed, out of memory, or a script started the sweep outside "
            f"`if __name__ == '__main__':` (workers start with 'spawn', which imports the main module)"
        )
        return _record(trial, {"epoch": [], "loss": [], "accuracy": []}, None, error=broken)
    except Exception as error:
        return _record(trial, {"epoch": [], "loss": [], "accuracy": []}, None, error=error)


def _connect(dask, timeout: float):
    """(client, owned): a `distributed.Client` as given, or one connected to the address (owned: closed after)."""
    try:
        import distributed
    except ImportError as error:
        raise ImportError(
            f"{OWNER} on Dask needs Dask's distributed scheduler ({error}); install it: {DASK_HINT}"
        ) from None
    if isinstance(dask, distributed.Client):
        return dask, False
    if not isinstance(dask, str):
        raise TypeError(
            f"{OWNER} dask must be a scheduler address or a distributed.Client, got {_checks.describe(dask)}; "
            f"pass e.g. dask='tcp://127.0.0.1:8786'"
        )
    timeout = _checks.positive(timeout, "dask_timeout", OWNER)
    try:
        client = distributed.Client(dask, timeout=timeout, set_as_default=False)
    except ValueError as error:
        raise ValueError(
            f"{OWNER} dask address {dask!r} is malformed ({error}); pass e.g. tcp://127.0.0.1:8786"
        ) from None
    except OSError as error:
        raise ConnectionError(
            f"{OWNER} could not reach the Dask scheduler at {dask!r} within {timeout:g} s ({error}); start one with "
            f"`dask scheduler` and workers with `dask worker {dask}`, or check the address"
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        client.close()
        raise ConnectionError(
            f"{OWNER} found the Dask scheduler at {dask!r} but no worker within {timeout:g} s; start workers with "
            f"`dask worker {dask}`"
        ) from None
    return client, True


# The result ---------------------------------------------------------------------------------------------------


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during `run`: pending trials were cancelled; `result` holds the finished ones (the CSV too)."""

    def __init__(self, result: SweepResult):
        super().__init__(f"{OWNER} interrupted: {len(result.trials)} of {result.planned} trials finished")
        self.result = result


@dataclass
class SweepResult:
    """The finished trials of a sweep, in trial order.

    Each trial is a dict: ``trial`` (its number), ``params`` (the hyperparameters it trained with), ``settings``
    (epochs, seed, backend, ...), ``status`` ("ok" or "failed"), ``loss`` and ``accuracy`` (final), ``best_epoch``
    and ``best_loss``, ``seconds`` (wall time), ``error`` ("Type: message" when failed) and ``history``
    (``{"epoch": [...], "loss": [...], "accuracy": [...]}``, up to the failure for a failed run).
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
        """The trials best first by final loss (ties: trial order), then the failed ones in trial order."""
        ok = sorted((t for t in self.trials if t["status"] == "ok"), key=lambda t: (t["loss"], t["trial"]))
        return ok + sorted(self.failed, key=lambda t: t["trial"])

    def table(self, *, seconds: bool = True) -> str:
        """The ranked table: rank, the varied hyperparameters, final loss and accuracy (3 decimals, as the book's
        log), epoch and value of the best loss, wall seconds (`seconds=False` leaves them out), status; a failed
        trial is one line, ``failed: Error: message``."""
        header = ["rank", *self.varied, "loss", "acc", "best epoch", "best loss", *(["seconds"] * seconds), "status"]
        rows, failed = [header], []
        for rank, trial in enumerate(self.ranked(), 1):
            params = [_show(trial["params"].get(name)) for name in self.varied]
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
        """The CSV's columns: trial, every hyperparameter, every setting, then the metrics."""
        return ["trial", *self.params, *self.settings, *METRIC_COLUMNS]

    def row(self, trial: dict) -> dict:
        """One trial as a CSV row: numbers at full precision (``repr``), empty cells for None."""
        values = {"trial": trial["trial"], **trial["params"], **trial["settings"]}
        values.update({name: trial[name] for name in METRIC_COLUMNS})
        return {name: _cell(values.get(name)) for name in self.columns()}

    def to_csv(self, path) -> Path:
        """Write the ranked trials, one row each (replacing the file in one step); returns the path."""
        path = Path(path)
        partial = path.with_name(path.name + ".partial")
        with partial.open("w", newline="") as file:
            writer = DictWriter(file, fieldnames=self.columns())
            writer.writeheader()
            writer.writerows(self.row(trial) for trial in self.ranked())
        os.replace(partial, path)
        return path

    def plot(self, path=None, *, figsize=(8.0, 5.0), dpi: float = 100):
        """One figure with every trial's loss curve, labelled by its hyperparameters (a failed trial dashed, up to
        where it failed, or left out without history); saved to `path` when given. Needs matplotlib."""
        figure = _loss_figure(self, figsize, dpi)
        if path is not None:
            figure.savefig(path)
        return figure

    def label(self, trial: dict) -> str:
        """``lr=0.85, decay=0.001``: the trial's varied hyperparameters."""
        return (
            ", ".join(f"{name}={_show(trial['params'].get(name))}" for name in self.varied) or f"trial {trial['trial']}"
        )


def _metric_cells(trial: dict, seconds: bool) -> list[str]:
    cells = [_fixed(trial["loss"]), _fixed(trial["accuracy"]), _show(trial["best_epoch"]), _fixed(trial["best_loss"])]
    return cells + ([_fixed(trial["seconds"], 2)] if seconds else [])


def _fixed(value, decimals: int = 3) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def _show(value) -> str:
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
    Figure, FigureCanvasAgg, colormaps = _matplotlib()
    figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
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
    pairs = [(epoch, loss) for epoch, loss in zip(history["epoch"], history["loss"], strict=True) if _finite(loss)]
    return [epoch for epoch, _ in pairs], [loss for _, loss in pairs]


def _matplotlib():
    try:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(f"{OWNER} plots need matplotlib ({error}); install it: {PLOT_HINT}") from None
    return Figure, FigureCanvasAgg, colormaps


# Running a sweep ----------------------------------------------------------------------------------------------


def run(
    space=None,
    *,
    factory=None,
    epochs: int = 10001,
    seed: int = 0,
    backend: str | None = None,
    every: int | None = None,
    batch_size: int | None = None,
    random: int | None = None,
    random_seed: int | None = None,
    workers: int | None = None,
    dask=None,
    dask_timeout: float = 10.0,
    csv=None,
    progress: bool | None = None,
) -> SweepResult:
    """Train one model per combination of `space`'s hyperparameters and return the trials (`SweepResult`).

    `space` maps names to lists of values (or one value; a `LogUniform` range with `random`). Without `factory`
    it trains the book's chapter-10 spiral network with `nnx.recipes.train_spiral` (names: lr, decay, momentum,
    hidden, samples, classes, dtype; `every`: record metrics every N epochs), exactly as ``examples/spiral.py``
    does for the same values. Every trial is seeded with the same `seed`, so the results do not depend on where
    trials run. `random=N` trains N combinations drawn with `random_seed` (default: `seed`) instead of the grid.

    `factory`, ``"module:function"`` or a callable, trains your own model: ``build(**params) -> (model, X, y)``
    or ``(model, X, y, validation_data)``, where `model` is a finalized `nnx.Model`. For each trial the sweep
    seeds (``nnx.seed(seed)``) and makes `backend` current, calls ``build(**params)`` with the trial's values as
    given, trains with ``model.train(X, y, epochs=epochs, batch_size=batch_size, verbose=0,
    validation_data=validation_data)`` and reads the returned History. The module must be importable where the
    trials run (the current folder is, for local processes started by ``nnx sweep``).

    Where: `workers` local processes (default: one per core, at most one per trial; 1: one after another in this
    process), or a Dask cluster, `dask` = a scheduler address (connected within `dask_timeout` seconds) or a
    `distributed.Client`. Local workers start with "spawn", which imports the main module: a script calls `run`
    under ``if __name__ == "__main__":``. Dask's nanny starts workers with OPENBLAS_NUM_THREADS=1: with data large
    enough for BLAS to use threads (about 3000 samples), losses then round differently from a local run.

    A failing trial (bad value, `DivergenceError`, an error in the factory) is recorded as failed and the others
    go on. `csv`: a file that gets each trial's row as soon as it finishes, rewritten ranked at the end. Ctrl-C
    cancels the pending trials and raises `SweepInterrupted`, whose `result` holds the finished ones.
    `progress`: a tqdm bar over the trials on stderr (default: when stderr is a terminal).
    """
    trials = _plan(
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
    workers = _workers(workers, dask, len(trials), factory)
    if dask is None:
        backends.get(trials[0].settings["backend"])  # unavailable here: say why now, not once per trial
    if (workers or 1) > 1 and _importing_main_in_a_worker():
        raise RuntimeError(
            f"{OWNER} was called while a worker process imported your script: call nnx.sweep.run(...) under "
            f"`if __name__ == '__main__':` (local workers start with 'spawn', which imports the main module)"
        )
    result = _empty_result(space, trials)
    client, owned = _connect(dask, dask_timeout) if dask is not None else (None, False)
    log = None
    try:
        log = _CsvLog(csv, result.columns()) if csv is not None else None
        return _collect(result, _results(trials, workers, client), log, progress)
    finally:
        if log is not None:
            log.close(result)
        if owned:
            client.close()


def _importing_main_in_a_worker() -> bool:
    """True while a process started by 'spawn' runs the user's script as ``__mp_main__`` (the script calls `run`
    at import, outside ``if __name__ == "__main__":``); multiprocessing points both names at one module otherwise."""
    return "__mp_main__" in sys.modules and sys.modules["__mp_main__"] is not sys.modules.get("__main__")


def _empty_result(space, trials: list[Trial]) -> SweepResult:
    space = _normalize(space)
    varied = [name for name, values in space.items() if isinstance(values, LogUniform) or len(values) > 1]
    first = trials[0]
    return SweepResult(varied=varied, params=list(first.params), settings=list(first.settings), planned=len(trials))


def _collect(result: SweepResult, results: Iterator[dict], log, progress) -> SweepResult:
    bar = _progress_bar(progress, result.planned)
    try:
        for trial in results:
            result.trials.append(trial)
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


class _CsvLog:
    """The CSV file of a sweep: opened before the first trial, a flushed row per finished trial, ranked at the end."""

    def __init__(self, path, columns: list[str]):
        self.path = Path(path)
        try:
            self.file = self.path.open("w", newline="")
        except OSError as error:
            raise OSError(f"{OWNER} cannot write the CSV file {str(self.path)!r} ({error}); check the folder") from None
        self.writer = DictWriter(self.file, fieldnames=columns)
        self.writer.writeheader()
        self.file.flush()

    def write(self, row: dict) -> None:
        self.writer.writerow(row)
        self.file.flush()

    def close(self, result: SweepResult) -> None:
        self.file.close()
        result.to_csv(self.path)


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


def _progress_bar(progress, total: int) -> _Bar:
    if progress is None:
        progress = sys.stderr.isatty()
    return _Bar(_checks.boolean(progress, "progress", OWNER), total)


# The command line ---------------------------------------------------------------------------------------------

EPILOG = """\
examples:
  nnx sweep --lr 0.5,0.85,1.0 --decay 0,1e-3,1e-2 --epochs 10001
  nnx sweep --lr 0.01:1.0 --decay 0,1e-3 --random 20 --csv sweep.csv --plot curves.png
  nnx sweep --factory my_models:build --param units=32,64 --lr 0.01,0.05 --epochs 300 --batch-size 128
  nnx sweep --lr 0.5,1.0 --dask tcp://scheduler:8786

A factory is build(**params) -> (model, X, y) or (model, X, y, validation_data), model a finalized nnx.Model;
each trial seeds NumPy (--seed), calls it with the trial's values and trains with model.train(X, y, epochs=...).

exit status: 0 every trial trained, 1 some trials failed (the table and the CSV still hold them all),
2 bad options, 130 interrupted (Ctrl-C: the finished trials are printed and kept in the CSV).
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """One line on stderr, exit status 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_values(text: str, kind=None):
    """``"0.5,0.85,1.0"`` -> [0.5, 0.85, 1.0]; ``"0.01:1.0"`` -> LogUniform(0.01, 1.0). `kind` (float, int or
    None: int, else float, else the string) converts each value."""
    text = text.strip()
    if ":" in text:
        bounds = [_convert(bound.strip(), kind) for bound in text.split(":", 1)]
        if not all(isinstance(bound, (int, float)) for bound in bounds):
            raise argparse.ArgumentTypeError(f"a range is low:high with two numbers such as 0.01:1.0, got {text!r}")
        integer = kind is int or (kind is None and all(isinstance(bound, int) for bound in bounds))
        try:
            return LogUniform(*bounds, integer=integer)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected comma-separated values such as 0.5,1.0, got {text!r}")
    return [_convert(item, kind) for item in items]


def _convert(item: str, kind):
    for convert in (kind,) if kind is not None else (int, float):
        try:
            return convert(item)
        except ValueError:
            continue
    if kind is None:
        return item
    what = "integers" if kind is int else "numbers"
    raise argparse.ArgumentTypeError(f"expected {what}, got {item!r}; pass e.g. {'64,128' if kind is int else '0.5,1'}")


def _typed(kind):
    def parse(text: str):
        return parse_values(text, kind)

    return parse


def _named(text: str) -> tuple[str, object]:
    name, equals, values = text.partition("=")
    if not equals or not name.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUES such as units=32,64, got {text!r}")
    return name.strip(), parse_values(values)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nnx sweep",
        description="Train the book's spiral network (or your model) over a grid or a random sample of\n"
        "hyperparameters and print the trials ranked by final loss.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    space = parser.add_argument_group(
        "hyperparameters (comma-separated values; low:high, a log-uniform range, with --random)"
    )
    space.add_argument("--lr", type=_typed(float), metavar="LIST", help="learning rates, e.g. 0.5,0.85,1.0")
    space.add_argument("--decay", type=_typed(float), metavar="LIST", help="learning-rate decays, e.g. 0,1e-3")
    space.add_argument("--momentum", type=_typed(float), metavar="LIST", help="SGD momentum values, e.g. 0,0.9")
    space.add_argument("--hidden", type=_typed(int), metavar="LIST", help="hidden-layer sizes, e.g. 32,64")
    space.add_argument(
        "--param",
        type=_named,
        action="append",
        default=[],
        metavar="NAME=LIST",
        help="any other hyperparameter (numbers or words), e.g. --param classes=2,3",
    )
    fixed = parser.add_argument_group("the same for every trial")
    fixed.add_argument("--epochs", type=int, default=10001, metavar="N", help="(default 10001)")
    fixed.add_argument("--samples", type=int, metavar="N", help="spiral samples per class (default 100)")
    fixed.add_argument("--dtype", choices=["float32", "float64"], help="spiral dtype (default float32)")
    fixed.add_argument("--every", type=int, metavar="N", help="spiral: record the metrics every N epochs (default 100)")
    fixed.add_argument("--batch-size", type=int, metavar="N", help="factory: Model.train's batch_size")
    fixed.add_argument("--seed", type=int, default=0, metavar="N", help="NumPy seed of every trial (default 0)")
    fixed.add_argument("--backend", metavar="NAME", help="numpy, cupy, ... (default: $NNX_BACKEND, else numpy)")
    fixed.add_argument("--factory", metavar="MODULE:FUNCTION", help="build(**params) -> (model, X, y)")
    how = parser.add_argument_group("how")
    how.add_argument("--random", type=int, metavar="N", help="train N combinations drawn at random, not the grid")
    how.add_argument("--random-seed", type=int, metavar="N", help="seed of the random draw (default: --seed)")
    how.add_argument("--workers", type=int, metavar="N", help="local processes (default: one per core; 1: serial)")
    how.add_argument("--dask", metavar="ADDRESS", help="run on this Dask scheduler, e.g. tcp://127.0.0.1:8786")
    how.add_argument("--dask-timeout", type=float, default=10.0, metavar="S", help="seconds to reach it")
    how.add_argument("--csv", metavar="FILE", help="write every trial's row as it finishes (default: no file)")
    how.add_argument("--plot", metavar="PNG", help="save every trial's loss curve in one figure")
    how.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    return parser


def _space(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    space = {name: getattr(args, name) for name in ("lr", "decay", "momentum", "hidden") if getattr(args, name)}
    space.update({name: getattr(args, name) for name in ("samples", "dtype") if getattr(args, name) is not None})
    for name, values in args.param:
        if name in space:
            parser.error(f"{name} is given twice (--{name} or --param {name}=...); give it once")
        space[name] = values
    return space


def _options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    return {
        "space": _space(args, parser),
        "factory": args.factory,
        "epochs": args.epochs,
        "seed": args.seed,
        "backend": args.backend,
        "every": args.every,
        "batch_size": args.batch_size,
        "random": args.random,
        "random_seed": args.random_seed,
        "workers": args.workers,
        "dask": args.dask,
        "dask_timeout": args.dask_timeout,
        "csv": args.csv,
        "progress": False if args.no_progress else None,
    }


def main(argv=None) -> int:
    """``nnx sweep [options]``: run the sweep, print the ranked table; returns the exit status (0 every trial
    trained, 1 some failed, 2 bad options, 130 interrupted)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        options = _options(args, parser)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if args.factory and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # `nnx` is a console script: find my_models.py here, as `python -m` would
    try:
        if args.plot:
            _matplotlib()  # before the trials, not after them
            from nnx.plot import check_path

            check_path(args.plot, f"{OWNER} --plot")
        result = run(**options)
    except SweepInterrupted as interrupted:
        status = _report(interrupted.result, args)
        print(f"{interrupted}{f'; {args.csv} holds them' if args.csv else ''}", file=sys.stderr)
        return status or EXIT_INTERRUPTED
    except (ValueError, TypeError, ImportError, OSError, backends.BackendUnavailableError) as error:
        return _fail(error)
    return _report(result, args) or (EXIT_FAILED if result.failed else EXIT_OK)


def _report(result: SweepResult, args: argparse.Namespace) -> int:
    """Print the table, save the plot; a non-zero status when the plot cannot be written."""
    print(result.table(), flush=True)
    errors = {trial["error"] for trial in result.trials}
    if result.trials and len(result.failed) == len(result.trials) and len(errors) == 1:
        print(f"{OWNER}: every trial failed: {errors.pop()}", file=sys.stderr)  # the whole message, once
    if args.csv:
        print(f"csv: {args.csv}")
    if args.plot:
        try:
            result.plot(args.plot)
        except (ImportError, OSError, ValueError) as error:
            return _fail(error)
        print(f"plot: {args.plot}")
    return 0


def _fail(error: Exception) -> int:
    message = " ".join(str(error).split())
    prefix = "" if message.startswith(OWNER) else f"{OWNER}: "
    print(f"{prefix}{message}", file=sys.stderr)
    return EXIT_USAGE
