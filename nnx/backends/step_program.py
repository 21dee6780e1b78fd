"""The contract between a training-step plan and a backend's step kernel: integer codes and one `StepProgram`.

A program is plain data (integers, floats and tuples of them): the kernels that run it see arrays, codes and
scalars only, never a layer, a loss or an optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass

RELU = -1  # an element-wise op; an op >= 0 is the index of a dropout mask, in forward order

# Heads: (output activation, loss, accuracy) as the components name themselves in their kernel specs.
SOFTMAX_CROSSENTROPY, SIGMOID_BINARY_CROSSENTROPY, LINEAR_SQUARED_ERROR = 0, 1, 2
HEADS = {
    ("softmax", "categorical_crossentropy", "categorical"): SOFTMAX_CROSSENTROPY,
    ("sigmoid", "binary_crossentropy", "categorical"): SIGMOID_BINARY_CROSSENTROPY,
    ("linear", "mean_squared_error", "regression"): LINEAR_SQUARED_ERROR,
}

# Update rules, and the state slots each keeps per parameter array (the optimizer's `STATE_NAMES`).
PLAIN_SGD, MOMENTUM_SGD, ADAGRAD, RMSPROP, ADAM = range(5)
UPDATE_RULES = {"sgd": PLAIN_SGD, "momentum_sgd": MOMENTUM_SGD, "adagrad": ADAGRAD, "rmsprop": RMSPROP, "adam": ADAM}
SLOTS = {
    PLAIN_SGD: (),
    MOMENTUM_SGD: ("momentums",),
    ADAGRAD: ("cache",),
    RMSPROP: ("cache",),
    ADAM: ("momentums", "cache"),
}
FLOAT_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class StepProgram:
    """One training step of a sequential network, as a kernel runs it.

    `dense` holds (n_inputs, n_outputs) per Dense layer, and `regularization` its (weight l1, weight l2, bias l1,
    bias l2). `chains[k]` lists the element-wise ops (RELU or a dropout index) applied after stage k (stage 0 is
    the inputs, stage k the k-th Dense's outputs); `dropout_keep` is each dropout's keep fraction. `head` and
    `update_rule` are codes; `constants` the update rule's fixed numbers (momentum, epsilon, rho, beta_1, beta_2)
    `precision` the regression accuracy's tolerance and `clip_epsilon` how far the loss clips probabilities
    from 0 and 1.
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

    @property
    def widths(self) -> tuple[int, ...]:
        """The width of every stage: the inputs, then each Dense layer's outputs."""
        return (self.dense[0][0], *(n_outputs for _, n_outputs in self.dense))

    @property
    def slots(self) -> tuple[str, ...]:
        """The optimizer state kept per parameter array ('momentums', 'cache')."""
        return SLOTS[self.update_rule]

    def constant(self, name: str) -> float:
        return dict(self.constants).get(name, 0.0)

    def dropout_widths(self) -> list[int]:
        """The width of each dropout's inputs, in forward order."""
        widths = [0] * len(self.dropout_keep)
        for stage, chain in enumerate(self.chains):
            for op in chain:
                if op != RELU:
                    widths[op] = self.widths[stage]
        return widths
