"""``nnx sweep --optuna``: an Optuna study over the book's spiral network, its search space from the sweep's flags (a
range ``--lr 0.01:1.0`` is a log-uniform float, a list ``--hidden 32,64`` a categorical choice), trained with
`nnx.sweep.optimize`; the best trial is printed as the ``examples/spiral.py`` command that reproduces it."""

from __future__ import annotations

import argparse
import os
from typing import Any

from nnx import _checks, backends
from nnx.activations import Softmax
from nnx.datasets import spiral_data
from nnx.losses import CategoricalCrossentropy
from nnx.metrics import Categorical
from nnx.model import Model
from nnx.recipes import build_spiral
from nnx.sweep.batched import SPIRAL_PER_MODEL
from nnx.sweep.plan import SPIRAL_DEFAULTS
from nnx.sweep.space import LogUniform
from nnx.sweep.study import OPTUNA_HINT, optimize
from nnx.sweep.study_result import StudyResult

SEARCHED = (*SPIRAL_PER_MODEL, "hidden")  # what examples/spiral.py takes as options
NOT_WITH_OPTUNA = ("factory", "param", "random", "random_seed", "workers", "batched", "tensorboard", "mlflow", "every")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--optuna`` options, as one argument group of ``nnx sweep``."""
    group = parser.add_argument_group(
        "optuna (--lr, --decay, --momentum, --hidden: a range low:high is searched log-uniformly, a list by choice)"
    )
    group.add_argument("--optuna", action="store_true", help="search with Optuna (TPE), trials in stacked batches")
    group.add_argument("--trials", type=int, metavar="N", help="finished trials the study should hold (default 100)")
    group.add_argument("--batch", type=int, metavar="N", help="trials asked and trained at once (default 32)")
    group.add_argument("--storage", metavar="URL", help="the study's storage, e.g. sqlite:///sweep.db (resumable)")
    group.add_argument("--study", metavar="NAME", help="the study's name in the storage (default: nnx-spiral)")


def optuna_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict | None:
    """The keyword arguments of `spiral_study` for ``--optuna`` (None without it); `parser.error` for options that
    do not go with it."""
    given = [f"--{name}" for name in ("trials", "batch", "storage", "study") if getattr(args, name) is not None]
    if not args.optuna:
        if given:
            parser.error(f"{', '.join(given)} need --optuna")
        return None
    clashing = [name for name in NOT_WITH_OPTUNA if getattr(args, name, None) not in (None, False, [])]
    if clashing:
        parser.error(f"--{clashing[0].replace('_', '-')} does not go with --optuna; leave it out")
    if args.study is not None and args.storage is None:
        parser.error("--study names a study in a storage: give --storage too (e.g. sqlite:///sweep.db)")
    space = {name: getattr(args, name) for name in SEARCHED if getattr(args, name)}
    return {
        "space": space,
        "trials": 100 if args.trials is None else args.trials,
        "batch": 32 if args.batch is None else args.batch,
        "storage": args.storage,
        "study_name": args.study,
        "epochs": args.epochs,
        "samples": args.samples or SPIRAL_DEFAULTS["samples"],
        "dtype": args.dtype or SPIRAL_DEFAULTS["dtype"],
        "seed": args.seed,
        "backend": args.backend,
        "dask": args.dask,
        "dask_timeout": args.dask_timeout,
        "progress": not args.no_progress,
    }


class SpiralBuild:
    """``build_model(trial)`` of the spiral search: the chapter-10 network with the trial's lr, decay, momentum and
    hidden width (a fixed value where the space has one value), drawn as ``examples/spiral.py`` draws it."""

    def __init__(self, space: dict, samples: int, dtype: str):
        self.space, self.samples, self.dtype = space, samples, dtype

    def __call__(self, trial: Any) -> Model:
        params = {name: self._suggest(trial, name) for name in SEARCHED}
        spiral_data(samples=self.samples, classes=SPIRAL_DEFAULTS["classes"])  # the data's draws come first
        network = build_spiral(**params, classes=SPIRAL_DEFAULTS["classes"], dtype=self.dtype)
        model = Model()
        for layer in (network.dense1, network.activation1, network.dense2, Softmax()):
            model.add(layer)
        model.set(loss=CategoricalCrossentropy(), optimizer=network.optimizer, accuracy=Categorical())
        model.finalize()
        return model

    def _suggest(self, trial: Any, name: str) -> Any:
        values = self.space.get(name, [SPIRAL_DEFAULTS[name]])
        if isinstance(values, LogUniform):
            if values.integer:
                return trial.suggest_int(name, round(values.low), round(values.high), log=True)
            return trial.suggest_float(name, values.low, values.high, log=True)
        return values[0] if len(values) == 1 else trial.suggest_categorical(name, values)


def spiral_study(
    *, space, trials, batch, storage, study_name, epochs, samples, dtype, seed, backend, dask, dask_timeout, progress
) -> StudyResult:
    """Create (or load, with a storage) the study and run it over the spiral data with `nnx.sweep.optimize`."""
    optuna = _checks.extra_module("optuna", f"nnx sweep --optuna needs Optuna; install it: {OPTUNA_HINT}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress lines say it, once per batch
    study = optuna.create_study(
        storage=storage,
        study_name=study_name or ("nnx-spiral" if storage else None),
        load_if_exists=storage is not None,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    chosen = backends.get(backend)
    with backends.use(chosen):
        backends.seed(seed)
        X_host, y_host = spiral_data(samples=samples, classes=SPIRAL_DEFAULTS["classes"])
    X, y = chosen.asarray(X_host, dtype=dtype), chosen.asarray(y_host)
    build = SpiralBuild(space, samples, dtype)
    return optimize(
        study, build, X, y, n_trials=trials, batch=batch, epochs=epochs, objective="loss", dask=dask,
        dask_timeout=dask_timeout, progress=progress, seed=seed, backend=chosen.name,
    )  # fmt: skip


def best_command(result: StudyResult, epochs: int, dtype: str) -> str:
    """The ``examples/spiral.py`` command line that trains the study's best trial (its values as Python writes
    them, so they round-trip), or a sentence saying there is none."""
    try:
        best = result.study.best_params
    except ValueError:
        return "no trial completed: no best parameters"
    values = {name: best.get(name, SPIRAL_DEFAULTS[name]) for name in SEARCHED}
    options = " ".join(f"--{name} {value!r}" for name, value in values.items())
    extra = f" --dtype {dtype}" if dtype != SPIRAL_DEFAULTS["dtype"] else ""
    return f"best: python {os.path.join('examples', 'spiral.py')} {options} --epochs {epochs}{extra}"
