"""Where a training step is planned: a model's step as a backend-neutral `StepProgram`, built from what each
component says about itself (`kernel_spec()`), or the reason it cannot be planned.

Nothing here knows a layer class: a component without a kernel spec (a user-written layer, a subclass) makes the
plan fall back to the generic, layer-by-layer step, and `StepPlan.reason` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from nnx.backends.step_program import HEADS, RELU, UPDATE_RULES, StepProgram

BODY_OPS = ("dense", "relu", "dropout")


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


def spec_of(component: Any) -> dict | None:
    """`component.kernel_spec()` if its own class defines one, else None (a subclass may compute something else)."""
    if component is None or "kernel_spec" not in vars(type(component)):
        return None
    return component.kernel_spec()


def plan_step(model: Any) -> StepPlan:
    """The step plan of a finalized `model`, or a plan with the reason it runs the generic step."""
    try:
        return _plan(model)
    except _Unplanned as why:
        return StepPlan(None, [], [], reason=str(why))


class _Unplanned(Exception):
    """Why a model has no step plan (caught by `plan_step`)."""


def _plan(model: Any) -> StepPlan:
    body, last = model.layers[:-1], model.layers[-1]
    specs = [_body_spec(layer) for layer in body]
    dense = [layer for layer, spec in zip(body, specs, strict=True) if spec["op"] == "dense"]
    if not dense:
        raise _Unplanned("the model has no Dense layer before its output activation")
    if dense != list(model.trainable_layers) or dense != list(model.loss.trainable_layers):
        raise _Unplanned("the layers the loss regularizes are not the model's Dense layers")
    dtypes = {spec["dtype"] for spec in specs if spec["op"] == "dense"}
    if len(dtypes) > 1:
        raise _Unplanned(f"its Dense layers mix dtypes ({', '.join(sorted(dtypes))})")
    chains, dropouts = _chains(body, specs)
    head = _head(model, last)
    rule, constants = _update_rule(model.optimizer)
    program = StepProgram(
        dtype=dtypes.pop(),
        dense=tuple(tuple(spec["shape"]) for spec in specs if spec["op"] == "dense"),
        regularization=tuple(tuple(spec["regularization"]) for spec in specs if spec["op"] == "dense"),
        chains=chains,
        dropout_keep=tuple(spec["keep"] for _, spec in dropouts),
        head=head,
        update_rule=rule,
        constants=constants,
        precision=_precision(model),
        clip_epsilon=float(cast(dict, spec_of(model.loss)).get("clip_epsilon", 0.0)),  # _head checked it
    )
    return StepPlan(program, dense, [layer for layer, _ in dropouts])


def _body_spec(layer: Any) -> dict:
    spec = spec_of(layer)
    label = getattr(layer, "label", repr(layer))
    if spec is None:
        raise _Unplanned(f"{label} has no kernel_spec(): no kernel computes it")
    if spec.get("op") not in BODY_OPS:
        raise _Unplanned(f"{label} ({spec.get('op')}) cannot come before the output activation in a kernel")
    return spec


def _chains(body: list, specs: list[dict]) -> tuple[tuple, list]:
    """The element-wise ops after each stage, and the dropout layers with their specs in forward order."""
    chains: list[list[int]] = [[]]
    dropouts: list[tuple[Any, dict]] = []
    for layer, spec in zip(body, specs, strict=True):
        if spec["op"] == "dense":
            chains.append([])
        elif spec["op"] == "relu":
            chains[-1].append(RELU)
        else:
            chains[-1].append(len(dropouts))
            dropouts.append((layer, spec))
    return tuple(tuple(chain) for chain in chains), dropouts


def _head(model: Any, last: Any) -> int:
    """The head code of (output activation, loss, accuracy), from their specs."""
    parts = []
    for role, component, key in (("output activation", last, "op"), ("loss", model.loss, "loss")):
        spec = spec_of(component)
        if spec is None:
            raise _Unplanned(f"the {role} {component!r} has no kernel_spec(): no kernel computes it")
        parts.append(spec[key])
    accuracy = spec_of(model.accuracy)
    if accuracy is None:
        raise _Unplanned(f"the accuracy {model.accuracy!r} has no kernel_spec(): no kernel computes it")
    parts.append(accuracy["accuracy"])
    head = HEADS.get(tuple(parts))
    if head is None:
        known = "; ".join(" + ".join(names) for names in HEADS)
        raise _Unplanned(f"no kernel computes the head {' + '.join(parts)} (kernels compute: {known})")
    return head


def _update_rule(optimizer: Any) -> tuple[int, tuple]:
    spec = spec_of(optimizer)
    if spec is None or spec.get("update_rule") not in UPDATE_RULES:
        raise _Unplanned(f"the optimizer {optimizer!r} has no kernel_spec(): no kernel computes its update")
    return UPDATE_RULES[spec["update_rule"]], tuple(sorted(spec.get("constants", {}).items()))


def _precision(model: Any) -> float:
    """The regression accuracy's tolerance as a host number (one copy per plan), or 0."""
    precision = cast(dict, spec_of(model.accuracy)).get("precision")  # _head checked it
    if precision is None:
        return 0.0
    return float(model.backend.to_numpy(precision)) if hasattr(precision, "shape") else float(precision)
