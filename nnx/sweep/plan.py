"""Planning a sweep: every option and value checked, and the trials made, before the first trial runs."""

from __future__ import annotations

import inspect
import numbers
import os
import pickle
from typing import Any

from nnx import _checks, backends
from nnx.backends._host import checked_seed
from nnx.recipes import train_spiral
from nnx.sweep.space import OWNER, LogUniform, grid, normalize, sample
from nnx.sweep.trials import Trial, factory_name, load_factory

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


def planned_trials(space, *, factory, epochs, seed, backend, every, batch_size, random, random_seed) -> list[Trial]:
    space = normalize(space)
    settings: dict[str, Any] = {"epochs": _checks.positive_int(epochs, "epochs", OWNER), "seed": _seed(seed, "seed")}
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
    return checked_seed(value, f"{OWNER} {name}")


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
            f"{OWNER} factory {factory_name(factory)} cannot be called with the hyperparameters "
            f"{', '.join(params) or '(none)'} ({error}); give it those parameters (or **params), or drop them"
        ) from None
    except ValueError:  # no signature to read (a builtin): the trials will tell
        pass


def worker_count(workers, dask, n_trials: int, factory) -> int | None:
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
            f"{OWNER} factory {factory_name(factory)} cannot be sent to worker processes ({error}); define it at "
            f"the top level of a module, pass 'module:function', or run with workers=1"
        ) from None
