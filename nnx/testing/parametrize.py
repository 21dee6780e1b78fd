"""One test per check: `checks_of` picks the checks of whatever it is given, `parametrize_with_checks` hands them to
pytest (imported only when it is called)."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from typing import Any

from nnx.backends import Backend
from nnx.testing.backend import backend_checks
from nnx.testing.layer import layer_checks
from nnx.testing.loss import loss_checks
from nnx.testing.optimizer import optimizer_checks
from nnx.testing.report import Check
from nnx.testing.subject import subject


def checks_of(item: Any) -> list[Check]:
    """The checks of a backend (a name or a Backend), or of the component a factory builds (a layer, loss or
    optimizer, told apart by what it builds)."""
    if isinstance(item, (str, Backend)):
        return backend_checks(item)
    kind = subject(item, None, "nnx.testing.parametrize_with_checks").kind
    return {"layer": layer_checks, "loss": loss_checks, "optimizer": optimizer_checks}[kind](item)


def parametrize_with_checks(items: Sequence[Any]) -> Any:
    """A pytest decorator that makes one test per check of each item, with ids like "LeakyReLU(0.3)-gradients".

    The decorated test takes one argument, `check`, and calls it: ``check()``. A check that cannot run here (a
    class defined in `__main__`, no compiled step, no second backend) is skipped with the reason.

    Args:
        items: Factories of components (``lambda xp: LeakyReLU(0.3, xp=xp)``, a class), each called as
            ``factory(xp=backend)``, and backends (a registered name or a `nnx.backends.Backend`).

    Returns:
        `pytest.mark.parametrize("check", ...)` over every check of every item.

    Raises:
        ModuleNotFoundError: pytest is not installed.
        TypeError: an item is neither a factory nor a backend.
    """
    pytest = importlib.import_module("pytest")
    checks = [dataclasses.replace(check, on_skip=pytest.skip) for item in items for check in checks_of(item)]
    return pytest.mark.parametrize("check", checks, ids=[check.id for check in checks])
