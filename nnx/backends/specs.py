"""What a component tells a compiled training step about itself: the typed specs its `kernel_spec()` returns.

Specs are plain, frozen data (names and numbers), checked when they are made: a name no kernel knows is a
ValueError that lists the known ones. The planner (`nnx.training.plan`) reads them; it refuses anything else.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nnx.backends.tables import ACCURACIES, ACTIVATIONS, LOSSES, UPDATE_RULES


@dataclass(frozen=True)
class DenseSpec:
    """A Dense layer as a kernel computes it: inputs @ weights + biases, with L1/L2 penalties.

    Args:
        shape: (n_inputs, n_outputs), positive integers.
        dtype: the parameters' dtype name, e.g. 'float32'.
        regularization: (weight L1, weight L2, bias L1, bias L2) strengths, each a finite number >= 0.

    Raises:
        TypeError: a field has the wrong type.
        ValueError: a size is not positive, or a strength is negative or not finite.
    """

    shape: tuple[int, int]
    dtype: str
    regularization: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        shape = _pair(self.shape)
        if not isinstance(self.dtype, str):
            raise TypeError(f"DenseSpec dtype must be a dtype name such as 'float32', got {self.dtype!r}")
        strengths = _four(self.regularization)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "regularization", strengths)


@dataclass(frozen=True)
class ActivationSpec:
    """An activation as a kernel computes it: an element-wise op between Dense layers, or an output activation.

    Args:
        op: its name: 'relu' (between layers), or 'softmax', 'sigmoid' or 'linear' (the output activation).

    Raises:
        ValueError: no kernel computes an activation of this name.
    """

    op: str

    def __post_init__(self) -> None:
        _known(self.op, ACTIVATIONS, "ActivationSpec", "op")


@dataclass(frozen=True)
class DropoutSpec:
    """A dropout layer as a kernel computes it: inputs times a mask of 0 and 1 / keep.

    Args:
        keep: the fraction of inputs kept, in (0, 1].

    Raises:
        TypeError: `keep` is not a number.
        ValueError: `keep` is outside (0, 1].
    """

    keep: float

    def __post_init__(self) -> None:
        keep = _real(self.keep, "DropoutSpec keep")
        if not 0 < keep <= 1:
            raise ValueError(f"DropoutSpec keep (the fraction kept) must be in (0, 1], got {keep!r}")
        object.__setattr__(self, "keep", keep)


@dataclass(frozen=True)
class LossSpec:
    """A loss as a kernel computes it.

    Args:
        loss: its name: 'categorical_crossentropy', 'binary_crossentropy' or 'mean_squared_error'.
        clip_epsilon: how far it clips probabilities from 0 and 1 before the log, in [0, 0.5).

    Raises:
        TypeError: `clip_epsilon` is not a number.
        ValueError: no kernel computes a loss of this name, or `clip_epsilon` is outside [0, 0.5).
    """

    loss: str
    clip_epsilon: float = 0.0

    def __post_init__(self) -> None:
        _known(self.loss, LOSSES, "LossSpec", "loss")
        epsilon = _real(self.clip_epsilon, "LossSpec clip_epsilon")
        if not 0 <= epsilon < 0.5:
            raise ValueError(f"LossSpec clip_epsilon must be in [0, 0.5), got {epsilon!r}")
        object.__setattr__(self, "clip_epsilon", epsilon)


@dataclass(frozen=True)
class AccuracySpec:
    """An accuracy as a kernel computes it.

    Args:
        accuracy: its name: 'categorical' (classes, or 0/1 outputs) or 'regression' (within a precision).
        precision: the regression tolerance: a number >= 0, a 0-d array on the component's backend, or None
            before it is fitted (read as 0).

    Raises:
        TypeError: `precision` is neither a number, a 0-d array nor None.
        ValueError: no kernel computes an accuracy of this name, or `precision` is negative.
    """

    accuracy: str
    precision: Any = None

    def __post_init__(self) -> None:
        _known(self.accuracy, ACCURACIES, "AccuracySpec", "accuracy")
        precision = self.precision
        if precision is None or getattr(precision, "shape", None) == ():
            return
        if _real(precision, "AccuracySpec precision") < 0:
            raise ValueError(f"AccuracySpec precision must be >= 0, got {precision!r}")
        object.__setattr__(self, "precision", float(precision))


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer's update as a kernel computes it.

    Args:
        update_rule: its name: 'sgd', 'momentum_sgd', 'adagrad', 'rmsprop' or 'adam'.
        constants: {name: number} for exactly the rule's hyperparameters ('momentum'; 'epsilon'; 'epsilon', 'rho';
            'epsilon', 'beta_1', 'beta_2'), kept as sorted (name, value) pairs. The learning rate and its decay
            come from the optimizer at every step.

    Raises:
        TypeError: `constants` is not a mapping of names to numbers.
        ValueError: no kernel computes a rule of this name, or `constants` does not name exactly its
            hyperparameters.
    """

    update_rule: str
    constants: Mapping[str, float] | tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        _known(self.update_rule, tuple(UPDATE_RULES), "OptimizerSpec", "update_rule")
        given = dict(self.constants) if isinstance(self.constants, (Mapping, tuple)) else None
        if given is None:
            raise TypeError(f"OptimizerSpec constants must be a dict of names to numbers, got {self.constants!r}")
        expected = UPDATE_RULES[self.update_rule].constants
        if set(given) != set(expected):
            names = ", ".join(repr(name) for name in expected) or "none"
            raise ValueError(
                f"OptimizerSpec({self.update_rule!r}) constants must name exactly the rule's hyperparameters "
                f"({names}), got {sorted(given)}; pass each of them, e.g. {dict.fromkeys(expected, 0.9)}"
            )
        pairs = tuple(sorted((name, _real(value, f"OptimizerSpec constant {name!r}")) for name, value in given.items()))
        object.__setattr__(self, "constants", pairs)

    def constant(self, name: str) -> float:
        """One hyperparameter's value.

        Args:
            name: its name, e.g. 'epsilon'.

        Returns:
            Its value; 0.0 for a name the rule does not have.
        """
        return dict(self.constants).get(name, 0.0)


SPEC_TYPES = (DenseSpec, ActivationSpec, DropoutSpec, LossSpec, AccuracySpec, OptimizerSpec)
LAYER_SPECS = (DenseSpec, ActivationSpec, DropoutSpec)


def _known(name: Any, known: tuple[str, ...], spec: str, field: str) -> None:
    if name not in known:
        choices = ", ".join(repr(choice) for choice in known)
        raise ValueError(
            f"{spec} {field} must be one of {choices}, got {name!r}; use one of these names, or return None from "
            f"kernel_spec() so that the generic step computes the component"
        )


def _real(value: Any, what: str) -> float:
    """`value` as a float, if it is a finite real number (a NumPy scalar too)."""
    if type(value) is float or type(value) is int:  # the usual case, without the slower checks below
        if not math.isfinite(value):
            raise ValueError(f"{what} must be finite, got {value!r}")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return float(value)


def _pair(shape: Any) -> tuple[int, int]:
    if (
        not isinstance(shape, (tuple, list))
        or len(shape) != 2
        or not all(isinstance(size, numbers.Integral) and not isinstance(size, bool) for size in shape)
    ):
        raise TypeError(f"DenseSpec shape must be (n_inputs, n_outputs), two integers, got {shape!r}")
    if min(shape) < 1:
        raise ValueError(f"DenseSpec shape sizes must be >= 1, got {tuple(shape)}")
    return int(shape[0]), int(shape[1])


def _four(strengths: Any) -> tuple[float, float, float, float]:
    if not isinstance(strengths, (tuple, list)) or len(strengths) != 4:
        raise TypeError(f"DenseSpec regularization must be (weight l1, weight l2, bias l1, bias l2), got {strengths!r}")
    values = [_real(value, "DenseSpec regularization strength") for value in strengths]
    if min(values) < 0:
        raise ValueError(f"DenseSpec regularization strengths must be >= 0, got {tuple(strengths)}")
    return values[0], values[1], values[2], values[3]
