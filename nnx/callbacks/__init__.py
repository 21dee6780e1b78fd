"""Hooks around `Model.train`'s loop: printed lines, progress, history, validation, divergence checks, checkpoints.

A callback overrides any of `on_train_begin`, `on_epoch_begin`, `on_step_end`, `on_epoch_end`, `on_train_end`;
each gets the `Run`, which holds the model, where the loop is, and the current metrics (on the device).
"""

from nnx.callbacks.base import Callback, CallbackList, Run, host_float
from nnx.callbacks.book import BookLog, Validation
from nnx.callbacks.checkpoint import Checkpoint
from nnx.callbacks.divergence import DIVERGENCE_ACTIONS, DivergenceGuard, check_finite
from nnx.callbacks.history import History
from nnx.callbacks.progress import LogLines, ProgressBar, StackProgress, format_metrics, lines_every

__all__ = [
    "DIVERGENCE_ACTIONS",
    "BookLog",
    "Callback",
    "CallbackList",
    "Checkpoint",
    "DivergenceGuard",
    "History",
    "LogLines",
    "ProgressBar",
    "Run",
    "StackProgress",
    "Validation",
    "check_finite",
    "format_metrics",
    "host_float",
    "lines_every",
]
