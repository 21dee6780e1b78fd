"""Where a training step is planned: a model's step as a backend-neutral `StepProgram`, built from what each
component says about itself (`kernel_spec()`, a typed spec from `nnx.backends.specs`), or the reason it cannot be
planned.

Nothing here knows a layer class: a component without a kernel spec (a user-written layer, a subclass) makes the
plan fall back to the generic, layer-by-layer step, and `StepPlan.reason` says so. A `kernel_spec()` that returns
anything but a spec or None, or raises, is a TypeError naming the component: a user's bug, not a fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar, cast

from nnx.backends.specs import (
    LAYER_SPECS,
    SPEC_TYPES,
    AccuracySpec,
    ActivationSpec,
    DenseSpec,
    DropoutSpec,
    LossSpec,
    OptimizerSpec,
)
from nnx.backends.step_program import StepProgram
from nnx.backends.tables import ELEMENT_WISE_OPS, HEADS, UPDATE_RULES

Spec = TypeVar("Spec")
LAYER_OPS = {DenseSpec: "dense", DropoutSpec: "dropout"}  # how a head names a layer that is no activation


@dataclass
class StepPlan:
    """A model's training step as a kernel runs it, or the reason it runs the generic step.

    Attributes:
        program: the step as plain data, or None when it cannot be planned.
        dense: the Dense layers whose arrays the kernel packs, in order.
        dropouts: the Dropout layers whose masks it draws, in forward order.
        reason: why the step cannot be planned, or None.
    """

    program: StepProgram | None
    dense: list
    dropouts: list
    reason: str | None = None

    @property
    def planned(self) -> bool:
        """Whether the step has a program (`reason` is None)."""
        return self.program is not None


def spec_of(component: Any, kinds: tuple[type, ...] = SPEC_TYPES) -> Any:
    """`component.kernel_spec()` if its own class defines one, else None (a subclass may compute something else).

    Raises:
        TypeError: `kernel_spec()` raised, or returned something other than None or a spec of `kinds`; the message
            names the component, what it returned and what it must return.
    """
    if component is None or "kernel_spec" not in vars(type(component)):
        return None
    try:
        spec = component.kernel_spec()
    except Exception as error:
        label, expected = _label(component), _expected(kinds)
        raise TypeError(
            f"{label}.kernel_spec() raised {type(error).__name__}: {error}. It must return one of {expected}; fix "
            f"it, or delete kernel_spec() so that the generic step computes {label}"
        ) from error
    if spec is not None and not isinstance(spec, kinds):
        label, expected = _label(component), _expected(kinds)
        raise TypeError(
            f"{label}.kernel_spec() must return one of {expected}, got {type(spec).__name__} {spec!r}; return e.g. "
            f"{kinds[0].__name__}(...), or None so that the generic step computes {label}"
        )
    return spec


def _label(component: Any) -> str:
    return getattr(component, "label", None) or repr(component)


def _expected(kinds: tuple[type, ...]) -> str:
    return ", ".join(kind.__name__ for kind in kinds) + " (from nnx.training) or None"


def check_specs(model: Any) -> dict[int, Any]:
    """Ask every component of `model` for its kernel spec, so that a broken `kernel_spec()` is refused before
    training changes anything.

    Args:
        model: a Model with its loss, accuracy and optimizer set.

    Returns:
        {id(component): its spec or None} for every layer, the loss, the accuracy and the optimizer.

    Raises:
        TypeError: a component's `kernel_spec()` raised or returned something other than its spec or None.
    """
    specs = {id(layer): spec_of(layer, LAYER_SPECS) for layer in model.layers}
    for component, kinds in ((model.loss, LossSpec), (model.accuracy, AccuracySpec), (model.optimizer, OptimizerSpec)):
        specs[id(component)] = spec_of(component, (kinds,))
    return specs


def plan_step(model: Any) -> StepPlan:
    """The step plan of a finalized `model`, or a plan with the reason it runs the generic step.

    Raises:
        TypeError: a component's `kernel_spec()` is broken (see `spec_of`).
    """
    try:
        return _plan(model)
    except _Unplanned as why:
        return StepPlan(None, [], [], reason=str(why))


class _Unplanned(Exception):
    """Why a model has no step plan (caught by `plan_step`)."""


def _plan(model: Any) -> StepPlan:
    known = check_specs(model)  # every broken spec is a TypeError, whatever the plan stops at
    body, last = model.layers[:-1], model.layers[-1]
    specs = [_body_spec(layer, known[id(layer)]) for layer in body]
    dense_specs = [spec for spec in specs if isinstance(spec, DenseSpec)]
    dense = [layer for layer, spec in zip(body, specs, strict=True) if isinstance(spec, DenseSpec)]
    if not dense:
        raise _Unplanned("the model has no Dense layer before its output activation")
    if dense != list(model.trainable_layers) or dense != list(model.loss.trainable_layers):
        raise _Unplanned("the layers the loss regularizes are not the model's Dense layers")
    dtypes = {spec.dtype for spec in dense_specs}
    if len(dtypes) > 1:
        raise _Unplanned(f"its Dense layers mix dtypes ({', '.join(sorted(dtypes))})")
    chains, dropouts = _chains(body, specs)
    head, loss, accuracy = _head(model, last, known)
    optimizer = cast(OptimizerSpec, _required(model.optimizer, known, "the optimizer", "its update"))
    program = StepProgram(
        dtype=dtypes.pop(),
        dense=tuple(spec.shape for spec in dense_specs),
        regularization=tuple(spec.regularization for spec in dense_specs),
        chains=chains,
        dropout_keep=tuple(spec.keep for _, spec in dropouts),
        head=head,
        update_rule=UPDATE_RULES[optimizer.update_rule].code,
        constants=cast(tuple, optimizer.constants),
        precision=_precision(model, accuracy),
        clip_epsilon=loss.clip_epsilon,
    )
    return StepPlan(program, dense, [layer for layer, _ in dropouts])


def _body_spec(layer: Any, spec: Any) -> Any:
    label = getattr(layer, "label", repr(layer))
    if spec is None:
        raise _Unplanned(f"{label} has no kernel_spec(): no kernel computes it")
    if isinstance(spec, ActivationSpec) and spec.op not in ELEMENT_WISE_OPS:
        raise _Unplanned(f"{label} ({spec.op}) cannot come before the output activation in a kernel")
    return spec


def _chains(body: list, specs: list) -> tuple[tuple, list]:
    """The element-wise ops after each stage, and the dropout layers with their specs in forward order."""
    chains: list[list[int]] = [[]]
    dropouts: list[tuple[Any, DropoutSpec]] = []
    for layer, spec in zip(body, specs, strict=True):
        if isinstance(spec, DenseSpec):
            chains.append([])
        elif isinstance(spec, DropoutSpec):
            chains[-1].append(len(dropouts))
            dropouts.append((layer, spec))
        else:
            chains[-1].append(ELEMENT_WISE_OPS[spec.op].code)
    return tuple(tuple(chain) for chain in chains), dropouts


def _head(model: Any, last: Any, known: dict[int, Any]) -> tuple[int, LossSpec, AccuracySpec]:
    """The head code of (output activation, loss, accuracy), from their specs (`known`, by component id), and the
    loss's and accuracy's specs."""
    activation = known[id(last)]
    if activation is None:
        raise _Unplanned(f"the output activation {last!r} has no kernel_spec(): no kernel computes it")
    loss = cast(LossSpec, _required(model.loss, known, "the loss", "it"))
    accuracy = cast(AccuracySpec, _required(model.accuracy, known, "the accuracy", "it"))
    name = activation.op if isinstance(activation, ActivationSpec) else LAYER_OPS[type(activation)]
    parts = (name, loss.loss, accuracy.accuracy)
    head = HEADS.get(parts)
    if head is None:
        kernels = "; ".join(entry.name for entry in HEADS.values())
        raise _Unplanned(f"no kernel computes the head {' + '.join(parts)} (kernels compute: {kernels})")
    return head.code, loss, accuracy


def _required(component: Any, known: dict[int, Any], role: str, what: str) -> Any:
    spec = known[id(component)]
    if spec is None:
        raise _Unplanned(f"{role} {component!r} has no kernel_spec(): no kernel computes {what}")
    return spec


def _precision(model: Any, accuracy: AccuracySpec) -> float:
    """The regression accuracy's tolerance as a host number (one copy per plan), or 0."""
    precision = accuracy.precision
    if precision is None:
        return 0.0
    return float(model.backend.to_numpy(precision)) if hasattr(precision, "shape") else float(precision)
