"""Names that left a public module: still found there for one release, with a DeprecationWarning that says where
they live now. At the bottom of the package so that every public module, the backend registry included, can use it.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

SINCE = "0.2"  # the release in which the names below left the public API


def moved_names(module: str, homes: dict[str, str]) -> Callable[..., Any]:
    """A module-level `__getattr__` that serves names which moved out of `module`.

    Args:
        module: The public module's name, e.g. "nnx.training".
        homes: Each moved name -> the module that holds it now, e.g. {"GenericStep": "nnx.training.steps"}.

    Returns:
        The function to assign to the module's `__getattr__`: it returns the name from its new module with a
        DeprecationWarning, and raises AttributeError for any other name. A module `__getattr__` that calls it
        passes `stacklevel=3`, so that the warning names the user's line.
    """

    def __getattr__(name: str, stacklevel: int = 2) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} is internal since {SINCE} and will be removed from {module}; it lives in {home}",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        return getattr(importlib.import_module(home), name)

    return __getattr__
