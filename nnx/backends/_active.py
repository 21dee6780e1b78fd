"""The backend that the innermost `nnx.backends.use()` block chose, per thread and per asyncio task."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nnx.backends._base import Backend

ACTIVE: contextvars.ContextVar[Backend | None] = contextvars.ContextVar("nnx_backend", default=None)


def chosen_by_use() -> bool:
    """Whether the current backend comes from an enclosing `use()` block (else $NNX_BACKEND or the default)."""
    return ACTIVE.get() is not None
