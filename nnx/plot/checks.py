"""Checks of nnx.plot's settings (grid resolution and margin, point size, class names, figure size and dpi), of the
figure `save` is given and of the picture formats this machine can write. Each error names the function, the
argument, what was expected, what was received and the fix, and is raised before any work."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from nnx import _checks

MAX_RESOLUTION = 2000
MAX_MARGIN = 100.0  # the grid spans the data's box widened by at most 100 times its size on each side


def _reworded(check: Callable[..., Any], value: Any, name: str, owner: str, expected: str, example: str) -> Any:
    """`check(value, name, owner)`, an nnx._checks helper, with its error reworded to say what `name` is and to
    give an example that makes sense for it."""
    try:
        return check(value, name, owner)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{owner} expected {name} as {expected}, got {_shown(value)}; pass e.g. {example}") from None


def _shown(value: Any) -> str:
    """A received value in a message: short tuples and lists in full, anything else as nnx._checks describes it."""
    if isinstance(value, (tuple, list)) and len(value) <= 4:
        return repr(value)
    return _checks.describe(value)


def resolution(value: Any, owner: str) -> int:
    """The grid's points per side: an integer in [1, MAX_RESOLUTION]."""
    value = _checks.positive_int(value, "resolution", owner)
    if value > MAX_RESOLUTION:
        raise ValueError(
            f"{owner} resolution must be at most {MAX_RESOLUTION} (a {MAX_RESOLUTION}**2-point grid), got {value}; "
            f"the default 300 is already finer than the screen"
        )
    return value


def margin(value: Any, owner: str) -> float:
    """The fraction of the data's size added on each side of the grid: a finite number in [0, MAX_MARGIN]."""
    expected = f"a finite number in [0, {MAX_MARGIN:g}] (the fraction of the data's size added on each side)"
    check = functools.partial(_checks.number, low=0, high=MAX_MARGIN)
    return _reworded(check, value, "margin", owner, expected, "margin=0.1")


def point_size(value: Any, owner: str) -> float:
    """The marker area in points squared: a finite number >= 0."""
    expected = "a finite number >= 0 (the marker area in points squared)"
    return _reworded(_checks.non_negative, value, "point_size", owner, expected, "point_size=20")


def class_names(names: Any, n_classes: int, owner: str) -> list[str] | None:
    """`names` as a list of strings with a name for each of `n_classes` classes, or None (names "class k")."""
    if names is None:
        return None
    if isinstance(names, (str, bytes)) or not isinstance(names, (Sequence, np.ndarray)):
        raise TypeError(
            f"{owner} expected class_names as a list of strings, one per class, or None, got "
            f"{_checks.describe(names)}; pass e.g. class_names=['cat', 'dog'] (a single string is not a list of names)"
        )
    names = list(names)
    wrong = [index for index, name in enumerate(names) if not isinstance(name, str)]
    if wrong:
        raise TypeError(
            f"{owner} expected class_names as strings, got {_checks.describe(names[wrong[0]])} at position "
            f"{wrong[0]}; pass one string per class, e.g. [str(name) for name in names]"
        )
    if len(names) < n_classes:
        raise ValueError(
            f"{owner} expected class_names for all {n_classes} classes in y, got {len(names)} names {names}; pass "
            f"one name per class 0 to {n_classes - 1}, or class_names=None"
        )
    return names


@overload
def figure_size(figsize: Any, owner: str, *, optional: Literal[False] = False) -> tuple[float, float]: ...


@overload
def figure_size(figsize: Any, owner: str, *, optional: bool) -> tuple[float, float] | None: ...


def figure_size(figsize: Any, owner: str, *, optional: bool = False) -> tuple[float, float] | None:
    """`figsize` as (width, height) in inches, two finite numbers > 0 (or None when `optional`: the plot's own)."""
    if figsize is None and optional:
        return None
    or_none = " or None (sized by the plot)" if optional else ""
    message = (
        f"{owner} expected figsize as (width, height) in inches, two finite numbers > 0{or_none}, got "
        f"{_shown(figsize)}; pass e.g. figsize=(6, 6)"
    )
    pair = isinstance(figsize, (tuple, list)) or (isinstance(figsize, np.ndarray) and figsize.ndim == 1)
    if not pair or len(figsize) != 2:
        raise TypeError(message)
    try:
        width, height = (_checks.positive(size, "figsize", owner) for size in figsize)
    except (TypeError, ValueError) as error:
        raise type(error)(message) from None
    return width, height


@overload
def dots_per_inch(dpi: Any, owner: str, *, optional: Literal[False] = False) -> float: ...


@overload
def dots_per_inch(dpi: Any, owner: str, *, optional: bool) -> float | None: ...


def dots_per_inch(dpi: Any, owner: str, *, optional: bool = False) -> float | None:
    """`dpi` as a finite number > 0 (or None when `optional`: the figure's own)."""
    if dpi is None and optional:
        return None
    or_none = " or None (the figure's own)" if optional else ""
    expected = f"a finite number > 0 (dots per inch){or_none}"
    return _reworded(_checks.positive, dpi, "dpi", owner, expected, "dpi=100")


def figure(value: Any, owner: str) -> None:
    """A TypeError unless `value` is a matplotlib Figure."""
    kinds: tuple[type, ...] = ()  # without matplotlib nothing is a Figure
    try:
        from matplotlib.figure import Figure

        kinds = (Figure,)
    except ImportError:
        pass
    if not isinstance(value, kinds):
        raise TypeError(
            f"{owner} expected a matplotlib Figure (what nnx.plot's functions return), got {_checks.describe(value)}; "
            f"pass the figure, e.g. nnx.plot.save(nnx.plot.history(result), 'history.png')"
        )


def axes(ax: Any, name: str, owner: str) -> None:
    """A TypeError unless `ax` is None or a matplotlib Axes."""
    from matplotlib.axes import Axes

    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(
            f"{owner} expected {name} as a matplotlib Axes (e.g. figure.add_subplot()) or None, got "
            f"{_checks.describe(ax)}; leave it out to get a new figure"
        )


def writable_format(target: Path, owner: str) -> None:
    """A ValueError for a .pgf file when the TeX program matplotlib's PGF output runs is not installed."""
    from matplotlib import rcParams

    if target.suffix.lower() != ".pgf":
        return
    tex = rcParams["pgf.texsystem"]
    if shutil.which(tex) is None:
        raise ValueError(
            f"{owner} cannot write {str(target)!r}: .pgf output runs {tex} (matplotlib's rcParams['pgf.texsystem']), "
            f"which is not installed here; install TeX (e.g. TeX Live) or save as .png, .svg or .pdf"
        )
