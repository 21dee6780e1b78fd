"""How an optimizer's saved progress is checked before `Optimizer.load_state_dict` takes it: the step count, the
learning rate, and one slot array per parameter, shaped and typed like it."""

from __future__ import annotations

import math
import numbers
from typing import Any, cast

from nnx import _checks
from nnx.backends._host import dtype_name

PARAMETERS = {"weight": "weights", "bias": "biases"}  # slot prefix -> the layer array it shadows


def checked_state(optimizer: Any, state: Any, layers: list[Any]) -> tuple[int, float, dict[int, dict[str, Any]]]:
    """(iterations, learning rate, slots) of `state` for `optimizer.load_state_dict`, every value checked first."""
    if not isinstance(state, dict) or not {"iterations", "current_learning_rate", "slots"} <= state.keys():
        raise TypeError(
            f"{optimizer!r}.load_state_dict() expected a dict with 'iterations', 'current_learning_rate' and "
            f"'slots', got {_checks.describe(state)}; pass what state_dict() returns"
        )
    iterations = state["iterations"]
    if not isinstance(iterations, numbers.Integral) or isinstance(iterations, bool) or iterations < 0:
        raise ValueError(f"{optimizer!r}.load_state_dict() 'iterations' must be a count >= 0, got {iterations!r}")
    rate = state["current_learning_rate"]
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 < cast(float, rate) < math.inf:
        raise ValueError(
            f"{optimizer!r}.load_state_dict() 'current_learning_rate' must be a finite number > 0, got {rate!r}"
        )
    slots = state["slots"]
    if not isinstance(slots, dict):
        raise TypeError(
            f"{optimizer!r}.load_state_dict() 'slots' must be a dict from layer positions to arrays, got "
            f"{_checks.describe(slots)}"
        )
    for index, arrays in slots.items():
        check_slots(optimizer, index, arrays, layers)
    return int(iterations), float(rate), slots


def check_slots(optimizer: Any, index: Any, arrays: Any, layers: list[Any]) -> None:
    """A ValueError unless `arrays` are the slots `optimizer` keeps for the layer at `index`, shaped like it."""
    if not isinstance(index, int) or not 0 <= index < len(layers):
        raise ValueError(
            f"{optimizer!r}.load_state_dict() has slots for layer position {index!r}, but there are {len(layers)} "
            f"layers"
        )
    layer = layers[index]
    expected = optimizer.slot_names()
    if not isinstance(arrays, dict) or sorted(arrays) != sorted(expected):
        got = sorted(arrays) if isinstance(arrays, dict) else _checks.describe(arrays)
        raise ValueError(f"{optimizer!r}.load_state_dict() expected the slots {expected} for {layer!r}, got {got}")
    for name, value in arrays.items():
        like = getattr(layer, PARAMETERS[name.split("_", 1)[0]])
        optimizer._accept(value, f"{name} of {layer!r}")
        if tuple(value.shape) != tuple(like.shape) or value.dtype != like.dtype:
            raise ValueError(
                f"{optimizer!r}.load_state_dict() {name} of {layer!r} must be {dtype_name(like.dtype)} "
                f"{tuple(like.shape)} like the layer's parameters, got {dtype_name(value.dtype)} "
                f"{tuple(value.shape)}"
            )
