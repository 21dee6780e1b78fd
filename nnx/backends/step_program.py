"""The contract between a training-step plan and a backend's step kernel: one `StepProgram`, in the codes of the
tables (`nnx.backends.tables`).

A program is plain data (integers, floats and tuples of them): the kernels that run it see arrays, codes and
scalars only, never a layer, a loss or an optimizer. Its codes are checked when it is made.
"""

from __future__ import annotations

from dataclasses import dataclass

from nnx.backends.tables import (
    ADAGRAD,
    ADAM,
    LINEAR_SQUARED_ERROR,
    MOMENTUM_SGD,
    PLAIN_SGD,
    RELU,
    RMSPROP,
    SIGMOID_BINARY_CROSSENTROPY,
    SOFTMAX_CROSSENTROPY,
    element_wise_op,
    head,
    update_rule,
)

__all__ = [  # the codes, importable from here as before the tables
    "ADAGRAD",
    "ADAM",
    "FLOAT_DTYPES",
    "LINEAR_SQUARED_ERROR",
    "MOMENTUM_SGD",
    "PLAIN_SGD",
    "RELU",
    "RMSPROP",
    "SIGMOID_BINARY_CROSSENTROPY",
    "SOFTMAX_CROSSENTROPY",
    "StepProgram",
]

FLOAT_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class StepProgram:
    """One training step of a sequential network, as a kernel runs it.

    `dense` holds (n_inputs, n_outputs) per Dense layer, and `regularization` its (weight l1, weight l2, bias l1,
    bias l2). `chains[k]` lists the element-wise ops (an op's code, negative, or a dropout index) applied after
    stage k (stage 0 is the inputs, stage k the k-th Dense's outputs); `dropout_keep` is each dropout's keep
    fraction. `head` and `update_rule` are codes of the tables; `constants` the update rule's fixed numbers by name,
    `precision` the regression accuracy's tolerance and `clip_epsilon` how far the loss clips probabilities from 0
    and 1. An unknown code is a ValueError.
    """

    dtype: str
    dense: tuple[tuple[int, int], ...]
    regularization: tuple[tuple[float, float, float, float], ...]
    chains: tuple[tuple[int, ...], ...]
    dropout_keep: tuple[float, ...]
    head: int
    update_rule: int
    constants: tuple[tuple[str, float], ...] = ()
    precision: float = 0.0
    clip_epsilon: float = 1e-7

    def __post_init__(self) -> None:
        head(self.head)
        update_rule(self.update_rule)
        for chain in self.chains:
            for op in chain:
                if op < 0:
                    element_wise_op(op)
                elif op >= len(self.dropout_keep):
                    raise ValueError(f"dropout index {op} in a chain, but the program has {len(self.dropout_keep)}")

    @property
    def widths(self) -> tuple[int, ...]:
        """The width of every stage: the inputs, then each Dense layer's outputs."""
        return (self.dense[0][0], *(n_outputs for _, n_outputs in self.dense))

    @property
    def slots(self) -> tuple[str, ...]:
        """The optimizer state kept per parameter array ('momentums', 'cache')."""
        return update_rule(self.update_rule).slots

    def constant(self, name: str) -> float:
        return dict(self.constants).get(name, 0.0)

    def dropout_widths(self) -> list[int]:
        """The width of each dropout's inputs, in forward order."""
        widths = [0] * len(self.dropout_keep)
        for stage, chain in enumerate(self.chains):
            for op in chain:
                if op >= 0:
                    widths[op] = self.widths[stage]
        return widths
