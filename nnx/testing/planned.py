"""The kernel_spec check: a component that describes itself to the compiled step (`kernel_spec()`) is trained a few
steps by the planned step and by the generic, layer-by-layer step, from the same start; both must agree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np

from nnx import backends
from nnx.backends import Backend
from nnx.backends.step_program import StepProgram
from nnx.metrics import Accuracy
from nnx.model import Model
from nnx.testing.models import HEADS, around_layer, data, parameters, with_head
from nnx.testing.numeric import SEED, difference, dtype_of, host, inputs, is_float, kept_rng, seeded
from nnx.testing.report import CheckSkipped, Unmet
from nnx.testing.subject import Subject, width_of
from nnx.training.loop import training_step
from nnx.training.plan import plan_step, spec_of
from nnx.training.steps import GenericStep, PlannedStep

STEPS = 3  # training steps compared
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}  # relative, planned against generic
KERNEL_FIX = (
    "make kernel_spec() describe exactly what forward() and backward() compute, or return None (the generic step "
    "then runs it): the compiled step trusts it"
)

Builder = Callable[[Backend], Model]


def layer_kernel(subject: Subject) -> None:
    """A layer with a kernel_spec, as a hidden layer or as the output activation, trains as the generic step does."""
    layer = subject.build()
    spec = given_spec(layer)
    dtype = layer_dtype(layer)
    width = width_of(subject, layer)
    layer.forward(layer.backend.asarray(inputs(width, dtype)), False)
    out_width = int(layer.output.shape[1])

    def hidden(backend: Backend) -> Model:
        return around_layer(subject.build(backend), backend, width, out_width, dtype)

    candidates: list[tuple[str, Builder, str]] = [("as a hidden layer", hidden, "softmax")]
    for head in HEADS:
        candidates.append(
            (f"as the output activation of a {head} head", head_builder(subject, head, "activation"), head)
        )
    agree(spec, candidates, dtype)


def loss_kernel(subject: Subject) -> None:
    """A loss with a kernel_spec trains as the generic step does, after whichever output activation plans it."""
    spec = given_spec(subject.build())
    agree(spec, [(f"after a {head} head", head_builder(subject, head, "loss"), head) for head in HEADS], "float32")


def optimizer_kernel(subject: Subject) -> None:
    """An optimizer with a kernel_spec trains a small classifier as the generic step does."""
    spec = given_spec(subject.build())
    agree(spec, [("on a softmax classifier", head_builder(subject, "softmax", "optimizer"), "softmax")], "float32")


def given_spec(component: Any) -> Any:
    """The component's own kernel_spec(), or a skip: without one the generic step runs it, and nothing to check."""
    spec = spec_of(component)
    if spec is None:
        raise CheckSkipped(f"{component!r} gives no kernel_spec() of its own: the generic step always runs it")
    return spec


def layer_dtype(layer: Any) -> str:
    """The dtype of a layer's float parameters, else float32."""
    for name in getattr(layer, "ARRAYS", ()):
        value = getattr(layer, name, None)
        if is_float(layer.backend, value):
            return dtype_of(value)
    return "float32"


def head_builder(subject: Subject, head: str, role: str) -> Builder:
    """Builds the small model of `head` with the subject as its `role` (activation, loss or optimizer)."""
    return lambda backend: with_head(backend, head, "float32", **{role: subject.build(backend)})


def agree(spec: Any, candidates: list[tuple[str, Builder, str]], dtype: str) -> None:
    """Train the first candidate model that plans on the planned and the generic step; Unmet if they disagree, or if
    no candidate plans."""
    backend = backends.get("numpy")
    reasons = []
    for what, build, head in candidates:
        with kept_rng():
            seeded(SEED)
            try:
                plan = plan_step(build(backend))
            except (TypeError, ValueError) as error:
                reasons.append(f"{what}: {error}")
                continue
            if not plan.planned:
                reasons.append(f"{what}: {plan.reason}")
                continue
            why = backend.why_no_step_kernel(cast(StepProgram, plan.program))
            if why is not None:
                raise CheckSkipped(f"the numpy backend runs no compiled step here: {why}")
            return compared(spec, what, build, head, dtype, backend)
    raise Unmet(f"kernel_spec() returns {spec!r}, but no step plan takes it ({'; '.join(reasons)})", KERNEL_FIX)


def compared(spec: Any, what: str, build: Builder, head: str, dtype: str, backend: Backend) -> None:
    """Run STEPS planned and generic steps from the same parameters and compare the losses and parameters."""
    seeded(SEED)
    fast = build(backend)
    seeded(SEED)
    slow = build(backend)
    same_parameters(fast, slow)
    X, y = data(backend, head, dtype)
    cast(Accuracy, fast.accuracy).init(y)
    cast(Accuracy, slow.accuracy).init(y)
    step = training_step(fast, X, y)
    if not isinstance(step, PlannedStep):
        raise CheckSkipped(f"the compiled step does not take this model's data: {fast.explain_step()}")
    generic = GenericStep(slow)
    try:
        for number in range(1, STEPS + 1):
            seeded(SEED + number)
            planned_loss = host(backend, step(X, y)[1])
            seeded(SEED + number)
            generic_loss = host(backend, generic(X, y)[1])
            problem = disagreement(fast, slow, planned_loss, generic_loss, dtype)
            if problem:
                raise Unmet(
                    f"{what}, the compiled step planned from kernel_spec() {spec!r} disagrees with the generic step "
                    f"after {number} step(s): {problem}",
                    KERNEL_FIX,
                )
        if step.state_version is None:  # the last batch went to the generic step: nothing was compared
            raise CheckSkipped(f"the compiled step passed this model's batches to the generic step: {what}")
    finally:
        step.close()


def same_parameters(source: Model, target: Model) -> None:
    """Copy every layer's arrays from `source` to `target`, so both start from the same numbers."""
    for mine, theirs in zip(source.layers, target.layers, strict=True):
        for name in getattr(mine, "ARRAYS", ()):
            value = getattr(mine, name, None)
            if hasattr(value, "shape"):
                setattr(theirs, name, mine.xp.asarray(value, copy=True))


def disagreement(fast: Model, slow: Model, fast_loss: np.ndarray, slow_loss: np.ndarray, dtype: str) -> str | None:
    """Where the planned model's loss or parameters differ from the generic one's, or None."""
    rtol = TOLERANCE.get(dtype, TOLERANCE["float32"])
    problem = difference("the loss", fast_loss, slow_loss, rtol, rtol, "the generic step's")
    if problem:
        return problem
    backend = fast.backend
    for (name, planned_values), (_, generic_values) in zip(parameters(fast), parameters(slow), strict=True):
        expected = host(backend, generic_values)
        scale = float(np.max(np.abs(expected)))
        problem = difference(name, host(backend, planned_values), expected, rtol, rtol * scale, "the generic step's")
        if problem:
            return problem
    return None
