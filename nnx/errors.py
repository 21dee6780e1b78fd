"""nnx's own exceptions; bad values and shapes are ValueError, wrong kinds and backends TypeError.

Each message names what went wrong and how to fix it.
"""

from __future__ import annotations

import os
from typing import Any

from nnx.backends import BackendUnavailableError

__all__ = [
    "BackendUnavailableError",
    "CallOrderError",
    "CheckpointError",
    "ConcurrentTrainingError",
    "DivergenceError",
    "SaveError",
]


class CallOrderError(RuntimeError):
    """A method was called before the one it depends on (``backward`` before ``forward``, ...)."""


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or parameter; the parameters were restored to the last finite check.

    Attributes:
        epoch: The epoch where it was found, or None.
        step: The step where it was found, or None.
        last_finite_loss: The loss at the last good check, or None.
    """

    def __init__(
        self, message: str, *, epoch: int | None = None, step: int | None = None, last_finite_loss: float | None = None
    ) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.last_finite_loss = last_finite_loss


class CheckpointError(ValueError):
    """A saved file cannot be loaded: missing, truncated, corrupted, not written by nnx, or from a newer nnx.

    Attributes:
        path: The file.
        problem: What is wrong with it, and what to do.
    """

    def __init__(self, path: str | bytes | os.PathLike[Any], problem: str) -> None:
        super().__init__(f"cannot load {str(path)!r}: {problem}")
        self.path = path
        self.problem = problem


class SaveError(OSError):
    """A file could not be written (full disk, permissions, ...); the message names it and says what is left there.

    The write is atomic: the previous file at that path, if any, is intact.

    Attributes:
        path: The file.
        problem: Why it could not be written.
        errno: The operating system's error number, or None.
    """

    def __init__(self, path: str | bytes | os.PathLike[Any], problem: str, *, errno: int | None = None) -> None:
        super().__init__(f"cannot write {str(path)!r}: {problem}")
        self.path = path
        self.problem = problem
        self.errno = errno


class ConcurrentTrainingError(RuntimeError):
    """`Model.train` was called on a model that is already training (in another thread, or from its own callback)."""
