"""Where many models become one stack: the checks that they share one architecture, and their step programs.

A stack is the step plan of every model (`plan_step`), one per model: they agree on the structure (layer shapes,
element-wise ops, head, update rule, dtype) and each keeps its own numbers (L1/L2 strengths, optimizer constants,
dropout rates, regression precision). Learning rates, decays and step counts come from each model's optimizer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from nnx import _checks
from nnx.backends.specs import DenseSpec
from nnx.backends.step_program import StepProgram
from nnx.backends.tables import update_rule
from nnx.errors import CallOrderError
from nnx.training.plan import StepPlan, plan_step, spec_of

OWNER = "nnx.train_many"


@dataclass
class StackPlan:
    """How `nnx.train_many` trains a stack of models: each model's step plan, in order, and their programs.

    `plan_stack` makes it; `explain_stack` says which step runs it.

    Args:
        models: the models, finalized, of one architecture and on one backend.
        plans: each model's step plan (`nnx.training.plan.StepPlan`), every one planned.
        programs: each model's step program, with one update rule for all (plain SGD runs as momentum SGD with
            momentum 0 when other models have momentum).
    """

    models: list
    plans: list[StepPlan]
    programs: list[StepProgram]

    @property
    def program(self) -> StepProgram:
        """The first model's program: the structure every model shares."""
        return self.programs[0]

    @property
    def backend(self) -> Any:
        """The backend every model of the stack is on."""
        return self.models[0].backend

    def part(self, positions: Sequence[int]) -> StackPlan:
        """The plan of some of the models: a chunk of the stack, or the models still training.

        Args:
            positions: the models' positions in this plan, in the order wanted.

        Returns:
            A new StackPlan of those models.
        """
        return StackPlan(
            [self.models[i] for i in positions],
            [self.plans[i] for i in positions],
            [self.programs[i] for i in positions],
        )


def plan_stack(models: Sequence[Any]) -> StackPlan:
    """Check that models can train as one stack, and plan it.

    Args:
        models: a non-empty list (or tuple) of distinct, finalized Models of one architecture (layers, dtype, loss,
            accuracy and optimizer classes) on one backend, whose steps can be planned: Dense, ReLU and Dropout
            layers with a softmax, sigmoid or linear head and one of the book's optimizers.

    Returns:
        The stack's plan, for `explain_stack` or `nnx.train_many`.

    Raises:
        TypeError: `models` is not a list of Models.
        CallOrderError: a model is not finalized, or lacks a loss, optimizer or accuracy.
        ValueError: the list is empty or names a model twice, two models share a layer (or loss, optimizer,
            accuracy) object, the models differ in architecture or backend, or a model's step cannot be planned;
            the message names the first such model.
    """
    models = _model_list(models)
    _own_components(models)
    plans = []
    for index, model in enumerate(models):
        plan = plan_step(model)
        if not plan.planned:
            raise ValueError(
                f"{OWNER} cannot stack models[{index}]: {plan.reason}. It stacks networks of Dense, ReLU and Dropout "
                f"layers with a softmax, sigmoid or linear head and a book optimizer; train this one with "
                f"model.train()"
            )
        plans.append(plan)
    signatures = [_signature(model, plan) for model, plan in zip(models, plans, strict=True)]
    for index, signature in enumerate(signatures[1:], start=1):
        _same_structure(index, signature, signatures[0])
    return StackPlan(models, plans, _one_update_rule([cast(StepProgram, plan.program) for plan in plans]))


def structure(model: Any) -> tuple | None:
    """What `model` shares with every model it can stack with (`plan_stack` stacks models whose structures are
    equal), or None when `train_many` cannot train it.

    Args:
        model: a finalized Model.

    Returns:
        A hashable tuple: the backend, the layer kinds and sizes, dtype, and the loss, accuracy and optimizer
        classes; or None.
    """
    try:
        model._require("loss", "optimizer", "accuracy")
        plan = plan_step(model)
    except Exception:  # a model train_many cannot take: it trains alone
        return None
    if not plan.planned:
        return None
    return (id(model.backend), *(what for _, what in _signature(model, plan)))


def components(model: Any) -> set[int]:
    """The ids of `model`'s layer, loss, optimizer and accuracy objects: two models of one stack share none.

    Args:
        model: a Model.

    Returns:
        The set of ids.
    """
    return {id(part) for _, part in _parts(model)}


def _parts(model: Any) -> list[tuple[str, Any]]:
    """(where, object) for each layer, the loss, the optimizer and the accuracy of `model`."""
    parts = [(f"layer {position}", layer) for position, layer in enumerate(model.layers)]
    return parts + [(name, getattr(model, name)) for name in ("loss", "optimizer", "accuracy")]


def _model_list(models: Any) -> list:
    if not isinstance(models, (list, tuple)):
        raise TypeError(
            f"{OWNER} expected a list of finalized nnx.Model objects, got {_checks.describe(models)}; pass e.g. "
            f"[model_a, model_b]"
        )
    if not models:
        raise ValueError(f"{OWNER} got an empty list of models; pass at least one finalized nnx.Model")
    for index, model in enumerate(models):
        if not hasattr(model, "trainable_layers") or not hasattr(model, "_require"):
            raise TypeError(f"{OWNER} models[{index}] must be an nnx.Model, got {_checks.describe(model)}")
        try:
            model._require("loss", "optimizer", "accuracy")
        except CallOrderError as error:
            raise CallOrderError(f"{OWNER} models[{index}]: {error}") from None
        for earlier in range(index):
            if models[earlier] is model:
                raise ValueError(
                    f"{OWNER} got the same model twice (models[{earlier}] and models[{index}]); each would be "
                    f"trained twice per step. Pass distinct models: copy.deepcopy(model) makes an independent one"
                )
    first = models[0].backend
    for index, model in enumerate(models):
        if model.backend is not first:
            raise ValueError(
                f"{OWNER} stacks models on one backend: models[0] is on {first.name!r} but models[{index}] is on "
                f"{model.backend.name!r}; move it first with model.to({first.name!r})"
            )
    return list(models)


def _own_components(models: list) -> None:
    """A ValueError naming the first two models that share a layer, loss, optimizer or accuracy object: trained as
    one stack, each would be written back over the other."""
    owners: dict[int, tuple[int, str, Any]] = {}
    for index, model in enumerate(models):
        for where, part in _parts(model):
            earlier = owners.setdefault(id(part), (index, where, part))
            if earlier[0] != index:
                raise ValueError(
                    f"{OWNER} models[{earlier[0]}] and models[{index}] share one {where.split()[0]} object "
                    f"({part!r}: models[{earlier[0]}]'s {earlier[1]}, models[{index}]'s {where}); each model would "
                    f"end with the other's results. Build each model from new layer, loss, optimizer and accuracy "
                    f"objects, or copy one with copy.deepcopy(model)"
                )


def _signature(model: Any, plan: StepPlan) -> list[tuple[str, str]]:
    """(where, what) for every part of `model` that a stack must share: layer kinds and sizes, dtype, head parts,
    loss, accuracy and optimizer classes."""
    parts = [(f"layer {index}", _layer_kind(layer)) for index, layer in enumerate(model.layers)]
    parts.append(("dtype", cast(StepProgram, plan.program).dtype))
    parts.append(("loss", type(model.loss).__name__))
    binary = getattr(model.accuracy, "binary", None)
    parts.append(("accuracy", type(model.accuracy).__name__ + ("" if binary is None else f"(binary={binary})")))
    parts.append(("optimizer", type(model.optimizer).__name__))
    return parts


def _layer_kind(layer: Any) -> str:
    if isinstance(spec_of(layer), DenseSpec):
        return repr(layer)
    return type(layer).__name__


def _same_structure(index: int, signature: list, first: list) -> None:
    if len(signature) != len(first):
        raise ValueError(
            f"{OWNER} stacks models of one architecture: models[{index}] has {len(signature) - 4} layers but "
            f"models[0] has {len(first) - 4}; group the models by architecture, or train them one at a time"
        )
    for (where, theirs), (_, ours) in zip(signature, first, strict=True):
        if theirs != ours:
            raise ValueError(
                f"{OWNER} stacks models of one architecture: models[{index}] differs from models[0] in its {where} "
                f"({theirs} against {ours}); group the models by architecture, or train them one at a time"
            )


def _one_update_rule(programs: list[StepProgram]) -> list[StepProgram]:
    """The programs with one update rule: a rule the table says stacks as another (SGD without momentum, as
    momentum SGD with momentum 0: the same numbers) runs as that one when other models of the stack use it."""
    rules = {program.update_rule for program in programs}
    widened = {update_rule(rule).stacks_as: rule for rule in rules if update_rule(rule).stacks_as is not None}
    if len(rules) == 2 and any(target in rules for target in widened):
        target = next(target for target in widened if target in rules)
        programs = [
            dataclasses.replace(program, update_rule=target) if program.update_rule == widened[target] else program
            for program in programs
        ]
    return programs
