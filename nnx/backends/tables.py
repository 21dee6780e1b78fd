"""One table per concept the training-step kernels compute: update rules, heads and element-wise ops.

Each entry is the one place that says what a concept is: its name (as a component's `kernel_spec()` gives it), its
integer code (what a `StepProgram` holds and the compiled kernels switch on), its state slots and hyperparameters,
its generic op (the `xp` code the generic stacked step runs, through the backend's generic kernels) and the numbers
its kernel op reads. The planner, the generic stack and the compiled kernels all dispatch from here, and an unknown
code raises everywhere (`update_rule`, `head`, `element_wise_op`): no dispatch falls through to some other rule.

A new update rule, head or element-wise op is an entry here, the `kernel_spec()` of its component and its branch
in the compiled kernels (`numba_ops`); see the development docs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Array = Any  # an array of the backend's library

# Update rules ------------------------------------------------------------------------------------------------------

PLAIN_SGD, MOMENTUM_SGD, ADAGRAD, RMSPROP, ADAM = range(5)


@dataclass(frozen=True)
class UpdateRule:
    """An optimizer's update, as the kernels compute it.

    Attributes:
        name: what an `OptimizerSpec` calls it ('adam').
        code: the integer a program holds and the compiled kernels switch on.
        slots: the state kept per parameter array, in order (the optimizer's `STATE_NAMES`).
        constants: the names of its fixed hyperparameters (an `OptimizerSpec` gives exactly these).
        generic: ``generic(ops, values, gradient, slots, learning_rate, numbers, step) -> values``: one step of the
            generic stacked update on the backend's generic kernels `ops`; `slots` ({name: array}) is updated in
            the dict, `numbers` maps each constant to its value (per model), `step` counts from 1 (None unless
            `counts_steps`).
        kernel_numbers: ``kernel_numbers(constants) -> tuple``: the fixed numbers the compiled op reads after the
            learning rate, in its order, from {name: value} (values may be arrays, one per model).
        step_numbers: ``step_numbers(constants, step) -> tuple``: the numbers that change every step, read after
            the fixed ones; None when there are none.
        stacks_as: the code of the rule it runs as in a stack that mixes it with that rule (plain SGD as momentum
            SGD with momentum 0), or None.
    """

    name: str
    code: int
    slots: tuple[str, ...]
    constants: tuple[str, ...]
    generic: Callable[..., Array]
    kernel_numbers: Callable[[Mapping[str, Any]], tuple]
    step_numbers: Callable[[Mapping[str, Any], Any], tuple] | None = None
    stacks_as: int | None = None

    @property
    def counts_steps(self) -> bool:
        """Whether the update depends on the step count (Adam's bias corrections)."""
        return self.step_numbers is not None


def _plain_sgd(ops, values, gradient, slots, learning_rate, numbers, step):
    return ops.sgd_update(values, gradient, learning_rate)[0]


def _momentum_sgd(ops, values, gradient, slots, learning_rate, numbers, step):
    momentums = slots["momentums"]
    values, slots["momentums"] = ops.sgd_update(values, gradient, learning_rate, momentums, numbers["momentum"])
    return values


def _adagrad(ops, values, gradient, slots, learning_rate, numbers, step):
    values, slots["cache"] = ops.adagrad_update(values, gradient, slots["cache"], learning_rate, numbers["epsilon"])
    return values


def _rmsprop(ops, values, gradient, slots, learning_rate, numbers, step):
    values, slots["cache"] = ops.rmsprop_update(
        values, gradient, slots["cache"], learning_rate, numbers["epsilon"], numbers["rho"]
    )
    return values


def _adam(ops, values, gradient, slots, learning_rate, numbers, step):
    values, slots["momentums"], slots["cache"] = ops.adam_update(
        values, gradient, slots["momentums"], slots["cache"], learning_rate, numbers["epsilon"], numbers["beta_1"],
        numbers["beta_2"], step,
    )  # fmt: skip
    return values


UPDATE_RULES = {
    rule.name: rule
    for rule in (
        UpdateRule("sgd", PLAIN_SGD, (), (), _plain_sgd, lambda c: (), stacks_as=MOMENTUM_SGD),
        UpdateRule(
            "momentum_sgd", MOMENTUM_SGD, ("momentums",), ("momentum",), _momentum_sgd, lambda c: (c["momentum"],)
        ),
        UpdateRule("adagrad", ADAGRAD, ("cache",), ("epsilon",), _adagrad, lambda c: (c["epsilon"],)),
        UpdateRule(
            "rmsprop",
            RMSPROP,
            ("cache",),
            ("epsilon", "rho"),
            _rmsprop,
            lambda c: (c["epsilon"], c["rho"], 1 - c["rho"]),
        ),
        UpdateRule(
            "adam",
            ADAM,
            ("momentums", "cache"),
            ("epsilon", "beta_1", "beta_2"),
            _adam,
            lambda c: (c["epsilon"], c["beta_1"], 1 - c["beta_1"], c["beta_2"], 1 - c["beta_2"]),
            step_numbers=lambda c, step: (1 - c["beta_1"] ** step, 1 - c["beta_2"] ** step),
        ),
    )
}


def kernel_numbers_count(rule: UpdateRule) -> int:
    """How many numbers the compiled op of `rule` reads after the learning rate: the fixed ones, then the per-step.

    Args:
        rule: an update rule's entry.

    Returns:
        The count.
    """
    zeros = dict.fromkeys(rule.constants, 0.0)
    return len(rule.kernel_numbers(zeros)) + (len(rule.step_numbers(zeros, 1)) if rule.step_numbers else 0)


# the learning rate (negated, then as is), then the most numbers any rule's compiled op reads
KERNEL_NUMBERS = 2 + max(kernel_numbers_count(rule) for rule in UPDATE_RULES.values())


def update_rule(code: int) -> UpdateRule:
    """The update rule of `code`.

    Args:
        code: an update rule's code, as a `StepProgram` holds it.

    Returns:
        Its table entry.

    Raises:
        ValueError: no update rule has this code.
    """
    return _entry(_RULES_BY_CODE, code, "update rule")


# Heads: the output activation, the loss and the accuracy, computed together -------------------------------------

SOFTMAX_CROSSENTROPY, SIGMOID_BINARY_CROSSENTROPY, LINEAR_SQUARED_ERROR = range(3)


@dataclass(frozen=True)
class Head:
    """An output activation, loss and accuracy that the kernels compute as one.

    Attributes:
        parts: (output activation op, loss, accuracy), as their specs name them.
        code: the integer a program holds and the compiled kernels switch on.
        labels: whether its targets are class labels, one per sample (else values shaped like the outputs).
        generic: ``generic(ops, outputs, y, epsilon, precision, backward) -> (losses, hits, delta)``: per-sample
            losses, the accuracy's comparisons and (when `backward`) the loss gradient at the head's inputs, on the
            backend's generic kernels `ops`; `epsilon` is the loss's clip, `precision` the regression tolerance.
    """

    parts: tuple[str, str, str]
    code: int
    labels: bool
    generic: Callable[..., tuple[Array, Array, Array]]

    @property
    def name(self) -> str:
        """'activation + loss + accuracy'."""
        return " + ".join(self.parts)


def _softmax_crossentropy(ops, outputs, y, epsilon, precision, backward):
    probabilities = ops.softmax(outputs)
    losses = ops.categorical_crossentropy(probabilities, y, epsilon)
    hits = ops.xp.argmax(probabilities, axis=-1) == y
    delta = ops.softmax_crossentropy_backward(probabilities, y) if backward else None
    return losses, hits, delta


def _sigmoid_binary_crossentropy(ops, outputs, y, epsilon, precision, backward):
    probabilities = ops.sigmoid(outputs)
    losses = ops.binary_crossentropy(probabilities, y, epsilon)
    hits = ops.xp.astype(probabilities > 0.5, probabilities.dtype) == y
    delta = None
    if backward:
        gradient = ops.binary_crossentropy_backward(probabilities, y, epsilon)
        delta = gradient * (1 - probabilities) * probabilities
    return losses, hits, delta


def _linear_squared_error(ops, outputs, y, epsilon, precision, backward):
    losses = ops.squared_error(outputs, y)
    hits = ops.xp.abs(outputs - y) < precision
    delta = ops.squared_error_backward(outputs, y) if backward else None
    return losses, hits, delta


HEADS = {
    head.parts: head
    for head in (
        Head(("softmax", "categorical_crossentropy", "categorical"), SOFTMAX_CROSSENTROPY, True, _softmax_crossentropy),
        Head(
            ("sigmoid", "binary_crossentropy", "categorical"),
            SIGMOID_BINARY_CROSSENTROPY,
            False,
            _sigmoid_binary_crossentropy,
        ),
        Head(("linear", "mean_squared_error", "regression"), LINEAR_SQUARED_ERROR, False, _linear_squared_error),
    )
}


def head(code: int) -> Head:
    """The head of `code`.

    Args:
        code: a head's code, as a `StepProgram` holds it.

    Returns:
        Its table entry.

    Raises:
        ValueError: no head has this code.
    """
    return _entry(_HEADS_BY_CODE, code, "head")


# Element-wise ops: what a chain after a stage applies, in place ---------------------------------------------------

RELU = -1  # element-wise ops have negative codes: a code >= 0 in a chain is the index of a dropout mask


@dataclass(frozen=True)
class ElementWiseOp:
    """An element-wise activation between Dense layers, as the kernels compute it.

    Attributes:
        name: what an `ActivationSpec` calls it ('relu').
        code: a negative integer (codes >= 0 in a chain are dropout masks), which the compiled kernels switch on.
        forward: ``forward(ops, values) -> (values, saved)``: the op on the backend's generic kernels `ops`, and
            what its backward needs.
        backward: ``backward(ops, delta, saved) -> delta``: the gradient of its inputs.
    """

    name: str
    code: int
    forward: Callable[[Any, Array], tuple[Array, Array]]
    backward: Callable[[Any, Array, Array], Array]


ELEMENT_WISE_OPS = {
    op.name: op
    for op in (
        ElementWiseOp(
            "relu",
            RELU,
            lambda ops, values: (ops.relu_forward(values), values),
            lambda ops, delta, inputs: ops.relu_backward(delta, inputs),
        ),
    )
}


def element_wise_op(code: int) -> ElementWiseOp:
    """The element-wise op of `code`.

    Args:
        code: a negative op code from a program's chain (codes >= 0 are dropout masks).

    Returns:
        Its table entry.

    Raises:
        ValueError: no element-wise op has this code.
    """
    return _entry(_OPS_BY_CODE, code, "element-wise op")


# Names the specs accept --------------------------------------------------------------------------------------------

HEAD_ACTIVATIONS = tuple(dict.fromkeys(parts[0] for parts in HEADS))
LOSSES = tuple(dict.fromkeys(parts[1] for parts in HEADS))
ACCURACIES = tuple(dict.fromkeys(parts[2] for parts in HEADS))
ACTIVATIONS = (*ELEMENT_WISE_OPS, *HEAD_ACTIVATIONS)

_RULES_BY_CODE = {rule.code: rule for rule in UPDATE_RULES.values()}
_HEADS_BY_CODE = {entry.code: entry for entry in HEADS.values()}
_OPS_BY_CODE = {op.code: op for op in ELEMENT_WISE_OPS.values()}


def _entry(table: dict, code: Any, what: str) -> Any:
    try:
        entry = table.get(code)
    except TypeError:  # unhashable
        entry = None
    if entry is None:
        known = ", ".join(f"{key} ({value.name})" for key, value in table.items())
        raise ValueError(f"unknown {what} code {code!r}; the known codes are {known}")
    return entry
