"""Hooks around `Model.train`'s loop: printed lines, progress, history, validation, divergence checks, checkpoints.

A callback subclasses `Callback` and overrides any of `on_train_begin`, `on_epoch_begin`, `on_step_end`,
`on_epoch_end` and `on_train_end`; each gets the `Run`, which holds the model, where the loop is, and the current
metrics (on the device). `check_finite` is the divergence check for hand-written loops.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from nnx.callbacks.base import Callback, Run
from nnx.callbacks.book import BookLog, Validation
from nnx.callbacks.checkpoint import Checkpoint
from nnx.callbacks.divergence import DivergenceGuard, check_finite
from nnx.callbacks.history import History
from nnx.callbacks.progress import LogLines, ProgressBar

__all__ = [
    "BookLog",
    "Callback",
    "Checkpoint",
    "DivergenceGuard",
    "History",
    "LogLines",
    "ProgressBar",
    "Run",
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


def __getattr__(name: str) -> Any:
    """A name that left `nnx.callbacks` in 0.2, with a DeprecationWarning that says where it lives now."""
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"nnx.callbacks.{name} is internal since 0.2 and will be removed from nnx.callbacks; it lives in {home}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(home), name)
