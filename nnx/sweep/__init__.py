"""Chapter 10's hyperparameter trial and error as one call (`run`) and one command (``nnx sweep``): train the spiral
network, or your own model, over a grid or a seeded random sample, in processes or on Dask, and rank the trials.

`grid` and `sample` list the combinations a search space gives, `LogUniform` is a range to sample from, and `run`
returns a `SweepResult` (or raises `SweepInterrupted` on Ctrl-C). `optimize` runs an Optuna study, its trials in
batches trained as stacks, and returns a `StudyResult`.
"""

from __future__ import annotations

from nnx.backends._moved import moved_names
from nnx.sweep.result import SweepInterrupted, SweepResult
from nnx.sweep.runner import run
from nnx.sweep.space import LogUniform, grid, sample
from nnx.sweep.study import optimize
from nnx.sweep.study_result import StudyResult

__all__ = ["LogUniform", "StudyResult", "SweepInterrupted", "SweepResult", "grid", "optimize", "run", "sample"]

# Names that left the public API in 0.2, kept for one release: name -> the module that holds it now.
_MOVED = {
    "EXIT_FAILED": "nnx.sweep.cli",
    "EXIT_INTERRUPTED": "nnx.sweep.cli",
    "EXIT_OK": "nnx.sweep.cli",
    "EXIT_USAGE": "nnx.sweep.cli",
    "METRIC_COLUMNS": "nnx.sweep.result",
    "OWNER": "nnx.sweep.space",
    "SPIRAL_DEFAULTS": "nnx.sweep.plan",
    "Trial": "nnx.sweep.trials",
    "load_factory": "nnx.sweep.trials",
    "main": "nnx.sweep.cli",
    "parse_values": "nnx.sweep.space",
    "run_trial": "nnx.sweep.trials",
}


__getattr__ = moved_names(__name__, _MOVED)
