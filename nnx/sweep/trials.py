"""One trial, trained where it runs: `Trial`, `run_trial` (the spiral network or a factory's model), `load_factory`.
Worker processes and Dask workers unpickle `run_trial` and `Trial` from here."""

from __future__ import annotations

import importlib
import math
import re
import threading
import time
from dataclasses import dataclass

from nnx import _checks, backends
from nnx.errors import DivergenceError
from nnx.model import Model
from nnx.recipes import train_spiral
from nnx.sweep.space import OWNER

FACTORY_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

# nnx draws weights and data from NumPy's global RNG: two trials in threads of one process would interleave their
# draws, so a process (a Dask worker may run several threads) trains one trial (or one stack) at a time. Reentrant:
# a stack that cannot train together runs its trials with `run_trial` while it holds the lock.
TRIAL_LOCK = threading.RLock()


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
    with TRIAL_LOCK:
        curves: dict[str, list] = {"epoch": [], "loss": [], "accuracy": []}
        start = time.perf_counter()
        try:
            train = _train_spiral if trial.factory is None else _train_factory
            loss, accuracy = train(trial, curves)
        except Exception as error:
            return trial_record(trial, curves, time.perf_counter() - start, error=error)
        return trial_record(trial, curves, time.perf_counter() - start, loss=loss, accuracy=accuracy)


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
        model, X, y, validation_data = unpack(build(**trial.params), trial.factory)
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
    curves.update({name: column for name, column in history.history.items() if name not in curves})  # lr, val_loss...
    final = history.final
    if final.get("diverged"):
        raise divergence_error(final.get("epoch"), final.get("loss"))
    return final["loss"], final.get("accuracy")


def divergence_error(epoch, last) -> DivergenceError:
    """The failure of a trial whose training diverged at `epoch`, after `last` (the last finite loss, or None)."""
    return DivergenceError(
        f"training diverged at epoch {epoch}: the loss or a parameter is NaN or infinite "
        f"(last finite loss: {'none' if last is None else f'{last:.6g}'}). Lower the learning rate or add decay",
        epoch=epoch,
        last_finite_loss=last,
    )


def unpack(built, factory) -> tuple:
    name = factory_name(factory)
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


def trial_record(trial: Trial, curves: dict, seconds, *, loss=None, accuracy=None, error=None) -> dict:
    best_epoch = best_loss = None
    if error is None:
        best_loss, best_epoch = _lowest(curves["epoch"], curves["loss"])
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


def _lowest(epochs: list, losses: list) -> tuple:
    """(the lowest finite loss, its first epoch), or (None, None) when no loss is a finite number."""
    try:
        whole = math.isfinite(sum(losses))  # every loss a finite number (a sum is finite only then): no loop here
    except TypeError:  # a None
        whole = False
    if whole and losses:
        best = min(losses)
        return best, epochs[losses.index(best)]
    best_loss = best_epoch = None
    for epoch, loss in zip(epochs, losses, strict=True):
        if isinstance(loss, (int, float)) and math.isfinite(loss) and (best_loss is None or loss < best_loss):
            best_loss, best_epoch = loss, epoch
    return best_loss, best_epoch


def is_finite_number(value) -> bool:
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


def factory_name(factory) -> str:
    if isinstance(factory, str):
        return repr(factory)
    return f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', repr(factory))}"
