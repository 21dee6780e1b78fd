"""What the kit checks: a factory that builds one layer, loss or optimizer on any backend, with its label."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nnx._component import Component
from nnx.backends import Backend
from nnx.losses import Loss
from nnx.optimizers import Optimizer

KINDS = {"layer": "a layer or activation", "loss": "a loss", "optimizer": "an optimizer"}
CHECKERS = {"layer": "check_layer", "loss": "check_loss", "optimizer": "check_optimizer"}

DEFAULT_WIDTH = 4  # the input width of a layer that does not say (no n_inputs)

Factory = Callable[..., Any]  # called as factory(xp=backend): a new component on that backend


@dataclass
class Subject:
    """A component to check: how to build it, what it is, and the options of its checks."""

    factory: Factory
    kind: str
    label: str
    backends: Sequence[str] | None = None
    input_width: int | None = None

    def build(self, backend: str | Backend = "numpy") -> Any:
        """A new component on `backend`, from the factory."""
        return self.factory(xp=backend)


def width_of(subject: Subject, layer: Any) -> int:
    """The input width the checks feed a layer: the one asked for, else the layer's n_inputs, else 4."""
    return subject.input_width or getattr(layer, "n_inputs", None) or DEFAULT_WIDTH


def kind_of(component: Any) -> str:
    """'optimizer', 'loss' or 'layer' (anything else with forward and backward)."""
    if isinstance(component, Optimizer):
        return "optimizer"
    if isinstance(component, Loss):
        return "loss"
    return "layer"


def subject(factory: Any, kind: str | None, caller: str, **options: Any) -> Subject:
    """The Subject of `factory`, checked to build a component of `kind` (None: whatever it builds)."""
    if isinstance(factory, Component) or not callable(factory):
        example = "lambda xp: LeakyReLU(0.3, xp=xp)"
        raise TypeError(
            f"{caller} expected a factory that builds the component on a backend, got {describe(factory)}; "
            f"pass e.g. {example}, so the kit can build it on every backend"
        )
    try:
        component = factory(xp="numpy")
    except Exception as error:  # every check then fails with this error, naming the factory
        return Subject(factory, kind or "layer", f"{name_of(factory)} (its factory raised {error!r})", **options)
    found = kind_of(component)
    if kind is not None and found != kind:
        raise TypeError(
            f"{caller} expected a factory of {KINDS[kind]}, but it built {component!r}, which is {KINDS[found]}; "
            f"use nnx.testing.{CHECKERS[found]} for it"
        )
    return Subject(factory, found, repr(component), **options)


def name_of(factory: Any) -> str:
    """A factory's name for messages: the class it is, or its qualified name."""
    return getattr(factory, "__qualname__", None) or repr(factory)


def describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not inspect.isclass(value) else f"the class {value.__name__}"


def bound(run: Callable[[Subject], None], checked: Subject) -> Callable[[], None]:
    """`run` with its subject, as a Check calls it."""
    return lambda: run(checked)
