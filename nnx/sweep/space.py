"""The search space of a sweep: lists of values and log-uniform ranges (`LogUniform`), the grid, a seeded random
sample, and the command line's ``0.5,1.0`` and ``0.01:1.0`` parsed into them."""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from random import Random

from nnx import _checks

OWNER = "nnx sweep"  # every message of a sweep starts with it


@dataclass(frozen=True)
class LogUniform:
    """A range for a random sample: values drawn log-uniformly from [low, high] (``--lr 0.01:1.0``); `integer`
    rounds each draw (``--hidden 16:256``). A grid cannot use ranges."""

    low: float
    high: float
    integer: bool = False

    def __post_init__(self):
        valid = all(_checks._is_real(bound) and math.isfinite(bound) for bound in (self.low, self.high))
        if not valid or not 0 < self.low <= self.high:
            raise ValueError(
                f"{OWNER} range must have finite bounds 0 < low <= high, got {self.low!r}:{self.high!r}; "
                f"pass e.g. LogUniform(0.01, 1.0) (--lr 0.01:1.0)"
            )

    def __str__(self) -> str:
        return f"{self.low:g}:{self.high:g}"

    def draw(self, rng: Random):
        """One value, from `rng`."""
        value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return round(value) if self.integer else value


def _normalize(space) -> dict:
    """{name: list of values or LogUniform}; a single value (a number, a string) becomes a one-item list."""
    if space is None:
        return {}
    if not isinstance(space, Mapping):
        raise TypeError(
            f"{OWNER} space must map hyperparameter names to lists of values, got {_checks.describe(space)}; "
            f"pass e.g. {{'lr': [0.5, 1.0], 'decay': [0, 1e-3]}}"
        )
    return {_name(name): _values(name, values) for name, values in space.items()}


def _name(name) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{OWNER} hyperparameter names must be Python identifiers, got {name!r}; pass e.g. 'lr'")
    return name


def _values(name: str, values):
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


def grid(space) -> list[dict]:
    """Every combination of `space`'s values (the cartesian product), the last name varying fastest."""
    space = _normalize(space)
    ranges = [name for name, values in space.items() if isinstance(values, LogUniform)]
    if ranges:
        raise ValueError(
            f"{OWNER} {', '.join(ranges)} is a range (low:high), which only a random sample draws from; "
            f"pass random=N (--random N), or give a list of values instead"
        )
    names = list(space)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*space.values())]


def sample(space, n: int, seed: int = 0) -> list[dict]:
    """`n` combinations drawn with ``random.Random(seed)``: the same seed gives the same trials.

    With lists only, the combinations are drawn without replacement (all of them, in grid order, when `n` is at
    least their number); with a `LogUniform` range each value of each trial is drawn on its own.
    """
    space = _normalize(space)
    n = _checks.positive_int(n, "random", OWNER)
    rng = Random(seed)
    if any(isinstance(values, LogUniform) for values in space.values()):
        return [{name: _draw(values, rng) for name, values in space.items()} for _ in range(n)]
    total = math.prod(len(values) for values in space.values())
    indices = range(total) if n >= total else sorted(rng.sample(range(total), n))
    return [_combination(space, index) for index in indices]


def _draw(values, rng: Random):
    return values.draw(rng) if isinstance(values, LogUniform) else rng.choice(values)


def _combination(space: dict, index: int) -> dict:
    """The `index`-th combination of `grid(space)`, without building the grid."""
    chosen = {}
    for name in reversed(list(space)):
        index, digit = divmod(index, len(space[name]))
        chosen[name] = space[name][digit]
    return {name: chosen[name] for name in space}


def parse_values(text: str, kind=None):
    """``"0.5,0.85,1.0"`` -> [0.5, 0.85, 1.0]; ``"0.01:1.0"`` -> LogUniform(0.01, 1.0). `kind` (float, int or
    None: int, else float, else the string) converts each value."""
    text = text.strip()
    if ":" in text:
        bounds = [_convert(bound.strip(), kind) for bound in text.split(":", 1)]
        if not all(isinstance(bound, (int, float)) for bound in bounds):
            raise argparse.ArgumentTypeError(f"a range is low:high with two numbers such as 0.01:1.0, got {text!r}")
        integer = kind is int or (kind is None and all(isinstance(bound, int) for bound in bounds))
        try:
            return LogUniform(*bounds, integer=integer)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected comma-separated values such as 0.5,1.0, got {text!r}")
    return [_convert(item, kind) for item in items]


def _convert(item: str, kind):
    for convert in (kind,) if kind is not None else (int, float):
        try:
            return convert(item)
        except ValueError:
            continue
    if kind is None:
        return item
    what = "integers" if kind is int else "numbers"
    raise argparse.ArgumentTypeError(f"expected {what}, got {item!r}; pass e.g. {'64,128' if kind is int else '0.5,1'}")
