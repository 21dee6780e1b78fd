"""The search space of a sweep: lists of values and log-uniform ranges (`LogUniform`), the grid, a seeded random
sample, and the command line's ``0.5,1.0`` and ``0.01:1.0`` parsed into them."""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from random import Random
from typing import Any

from nnx import _checks

OWNER = "nnx sweep"  # every message of a sweep starts with it


@dataclass(frozen=True)
class LogUniform:
    """A range for a random sample: values drawn log-uniformly from [low, high] (``--lr 0.01:1.0`` on the command
    line). Only `sample` (``run(random=N)``) draws from ranges; a grid cannot use them.

    Attributes:
        low: the smallest value, a finite number > 0.
        high: the largest value, a finite number >= low.
        integer: whether each draw is rounded to an integer (``--hidden 16:256``).

    Raises:
        ValueError: the bounds are not finite with 0 < low <= high.
    """

    low: float
    high: float
    integer: bool = False

    def __post_init__(self) -> None:
        valid = all(_checks._is_real(bound) and math.isfinite(bound) for bound in (self.low, self.high))
        if not valid or not 0 < self.low <= self.high:
            raise ValueError(
                f"{OWNER} range must have finite bounds 0 < low <= high, got {self.low!r}:{self.high!r}; "
                f"pass e.g. LogUniform(0.01, 1.0) (--lr 0.01:1.0)"
            )

    def __str__(self) -> str:
        return f"{self.low:g}:{self.high:g}"

    def draw(self, rng: Random) -> float | int:
        """One value: exp of a uniform draw between log(low) and log(high), rounded when `integer`.

        Args:
            rng: the `random.Random` to draw from.

        Returns:
            The value, a float (an int when `integer`).
        """
        value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return round(value) if self.integer else value


def normalize(space: Any) -> dict:
    """{name: list of values or LogUniform}; a single value (a number, a string) becomes a one-item list."""
    if space is None:
        return {}
    if not isinstance(space, Mapping):
        raise TypeError(
            f"{OWNER} space must map hyperparameter names to lists of values, got {_checks.describe(space)}; "
            f"pass e.g. {{'lr': [0.5, 1.0], 'decay': [0, 1e-3]}}"
        )
    return {_name(name): _values(name, values) for name, values in space.items()}


def _name(name: Any) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{OWNER} hyperparameter names must be Python identifiers, got {name!r}; pass e.g. 'lr'")
    return name


def _values(name: str, values: Any) -> list | LogUniform:
    if isinstance(values, LogUniform):
        return values
    values = values.tolist() if hasattr(values, "tolist") else values  # NumPy arrays and scalars
    values = list(values) if isinstance(values, (list, tuple, range)) else [values]
    if not values:
        raise ValueError(
            f"{OWNER} {name} needs at least one value, got an empty list; pass e.g. {name}=[0.5, 1.0] "
            f"(--{name} 0.5,1.0)"
        )
    return values


def grid(space: Mapping[str, Any] | None) -> list[dict]:
    """Every combination of a search space's values: the cartesian product, the last name varying fastest.

    Args:
        space: hyperparameter name -> a list of values (or one value: a one-item list); None is the empty space.

    Returns:
        One dict name -> value per combination ([{}] for an empty space).

    Raises:
        TypeError: `space` is not a mapping.
        ValueError: a name is not an identifier, a list is empty, or a value is a `LogUniform` range.
    """
    space = normalize(space)
    ranges = [name for name, values in space.items() if isinstance(values, LogUniform)]
    if ranges:
        raise ValueError(
            f"{OWNER} {', '.join(ranges)} is a range (low:high), which only a random sample draws from; "
            f"pass random=N (--random N), or give a list of values instead"
        )
    names = list(space)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*space.values())]


def sample(space: Mapping[str, Any] | None, n: int, seed: int = 0) -> list[dict]:
    """Combinations of a search space drawn at random: the same seed gives the same trials.

    With lists only, the combinations are drawn without replacement (all of them, in grid order, when `n` is at
    least their number); with a `LogUniform` range each value of each trial is drawn on its own.

    Args:
        space: hyperparameter name -> a list of values, one value, or a `LogUniform` range.
        n: how many combinations, an integer >= 1.
        seed: the seed of the ``random.Random`` that draws them.

    Returns:
        `n` dicts name -> value (fewer when the lists have fewer combinations), in grid order for lists only.

    Raises:
        TypeError: `space` is not a mapping.
        ValueError: `n` < 1, a name is not an identifier, or a list is empty.
    """
    space = normalize(space)
    n = _checks.positive_int(n, "random", OWNER)
    rng = Random(seed)
    if any(isinstance(values, LogUniform) for values in space.values()):
        return [{name: _draw(values, rng) for name, values in space.items()} for _ in range(n)]
    total = math.prod(len(values) for values in space.values())
    indices = range(total) if n >= total else sorted(rng.sample(range(total), n))
    return [_combination(space, index) for index in indices]


def _draw(values: list | LogUniform, rng: Random) -> Any:
    return values.draw(rng) if isinstance(values, LogUniform) else rng.choice(values)


def _combination(space: dict, index: int) -> dict:
    """The `index`-th combination of `grid(space)`, without building the grid."""
    chosen = {}
    for name in reversed(list(space)):
        index, digit = divmod(index, len(space[name]))
        chosen[name] = space[name][digit]
    return {name: chosen[name] for name in space}


def parse_values(text: str, kind: Callable[[str], Any] | None = None) -> list | LogUniform:
    """``"0.5,0.85,1.0"`` -> [0.5, 0.85, 1.0]; ``"0.01:1.0"`` -> LogUniform(0.01, 1.0). `kind` (float, int or
    None: int, else float, else the string) converts each value."""
    text = text.strip()
    if ":" in text:
        bounds = [_convert(bound.strip(), kind) for bound in text.split(":", 1)]
        if not all(isinstance(bound, (int, float)) for bound in bounds):
            raise argparse.ArgumentTypeError(f"a range is low:high with two numbers such as 0.01:1.0, got {text!r}")
        integer = kind is int or (kind is None and all(isinstance(bound, int) for bound in bounds))
        try:
            return LogUniform(bounds[0], bounds[1], integer=integer)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected comma-separated values such as 0.5,1.0, got {text!r}")
    return [_convert(item, kind) for item in items]


def _convert(item: str, kind: Callable[[str], Any] | None) -> Any:
    for convert in (kind,) if kind is not None else (int, float):
        try:
            return convert(item)
        except ValueError:
            continue
    if kind is None:
        return item
    what = "integers" if kind is int else "numbers"
    raise argparse.ArgumentTypeError(f"expected {what}, got {item!r}; pass e.g. {'64,128' if kind is int else '0.5,1'}")
