"""nnx's own exceptions; bad values and shapes are ValueError, wrong kinds and backends TypeError."""

from __future__ import annotations

from nnx.backends import BackendUnavailableError


class CallOrderError(RuntimeError):
    """A method was called before the one it depends on (``backward`` before ``forward``, ...)."""


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or parameter; the parameters were restored to the last finite check.

    `epoch` and `step` say where it was found, `last_finite_loss` is the loss at the last good check (or None).
    """

    def __init__(self, message: str, *, epoch: int | None = None, step: int | None = None, last_finite_loss=None):
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.last_finite_loss = last_finite_loss


class CheckpointError(ValueError):
    """A saved file cannot be loaded: missing, truncated, corrupted, not written by nnx, or from a newer nnx."""

    def __init__(self, path, problem: str):
        super().__init__(f"cannot load {str(path)!r}: {problem}")
        self.path = path
        self.problem = problem


class SaveError(OSError):
    """A file could not be written (full disk, permissions, ...); the message names it and says what is left there.

    The write is atomic: the previous file at that path, if any, is intact.
    """

    def __init__(self, path, problem: str, *, errno: int | None = None):
        super().__init__(f"cannot write {str(path)!r}: {problem}")
        self.path = path
        self.problem = problem
        self.errno = errno


class ConcurrentTrainingError(RuntimeError):
    """`Model.train` was called on a model that is already training (in another thread, or from its own callback)."""


__all__ = [
    "BackendUnavailableError",
    "CallOrderError",
    "CheckpointError",
    "ConcurrentTrainingError",
    "DivergenceError",
    "SaveError",
]
