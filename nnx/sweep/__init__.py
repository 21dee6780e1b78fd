"""Chapter 10's hyperparameter trial and error as one call (`run`) and one command (``nnx sweep``): train the spiral
network, or your own model, over a grid or a seeded random sample, in processes or on Dask, and rank the trials.
"""

from nnx.sweep.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, main
from nnx.sweep.plan import SPIRAL_DEFAULTS
from nnx.sweep.result import METRIC_COLUMNS, SweepInterrupted, SweepResult
from nnx.sweep.runner import run
from nnx.sweep.space import OWNER, LogUniform, grid, parse_values, sample
from nnx.sweep.trials import Trial, load_factory, run_trial

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "METRIC_COLUMNS",
    "OWNER",
    "SPIRAL_DEFAULTS",
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
