"""Hooks around `Model.train`'s loop: printed lines, progress, history, validation, divergence checks, checkpoints.

A callback subclasses `Callback` and overrides any of `on_train_begin`, `on_epoch_begin`, `on_step_end`,
`on_epoch_end` and `on_train_end`; each gets the `Run`, which holds the model, where the loop is, and the current
metrics (on the device). `check_finite` is the divergence check for hand-written loops.
"""

from __future__ import annotations

from nnx.backends._moved import moved_names
from nnx.callbacks.base import Callback, Run
from nnx.callbacks.book import BookLog, Validation
from nnx.callbacks.checkpoint import Checkpoint
from nnx.callbacks.divergence import DivergenceGuard, check_finite
from nnx.callbacks.history import History
from nnx.callbacks.mlflow import MLflow
from nnx.callbacks.progress import LogLines, ProgressBar
from nnx.callbacks.tensorboard import TensorBoard

__all__ = [
    "BookLog",
    "Callback",
    "Checkpoint",
    "DivergenceGuard",
    "History",
    "LogLines",
    "MLflow",
    "ProgressBar",
    "Run",
    "TensorBoard",
    "Validation",
    "check_finite",
]

# Names that left the public API in 0.2, kept for one release: name -> the module that holds it now.
_MOVED = {
    "DIVERGENCE_ACTIONS": "nnx.callbacks.divergence",
    "CallbackList": "nnx.callbacks.base",
    "StackProgress": "nnx.callbacks.progress",
    "format_metrics": "nnx.callbacks.progress",
    "host_float": "nnx.callbacks.base",
    "lines_every": "nnx.callbacks.progress",
}


__getattr__ = moved_names(__name__, _MOVED)
