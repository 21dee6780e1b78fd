"""What the trackers log about a run: a model's hyperparameters as plain values, and a run's name made of them.

`TensorBoard`, `MLflow`, ``nnx sweep --tensorboard/--mlflow`` and ``train_many(tensorboard=...)`` all describe a run
with `hyperparameters`, so the same names line up in TensorBoard's HParams view and MLflow's parameter columns.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nnx import backends
from nnx.backends._host import dtype_name
from nnx.layers import Dropout

Plain = str | int | float
REGULARIZERS = (
    ("weight_regularizer_l1", "weight_l1"),
    ("weight_regularizer_l2", "weight_l2"),
    ("bias_regularizer_l1", "bias_l1"),
    ("bias_regularizer_l2", "bias_l2"),
)
UNSAFE = re.compile(r"[^\w.=,+-]")  # characters a folder name made of hyperparameters leaves out


def hyperparameters(model: Any, *, epochs: int | None = None, batch_size: int | None = None) -> dict[str, Plain]:
    """A model's hyperparameters as plain values, the names every tracker logs them under.

    Args:
        model: a finalized `nnx.Model`.
        epochs: the run's epochs, or None to leave them out.
        batch_size: the run's batch size; None (the whole set at each step) is logged as "none".

    Returns:
        {name: str, int or float}: "optimizer" (its class name) and its settings ("learning_rate", "decay",
        "momentum", Adam's "beta_1", ...), "layers" (the Dense sizes, "2-64-3"), "dense1_units", ... per Dense
        layer with its non-zero L1/L2 strengths ("dense1_weight_l2", ...), "dropout1_rate", ... (the fraction
        dropped), "activations", "loss", "accuracy", "batch_size", "epochs" (when given), "seed" (the last
        `nnx.seed`, when seeded), "backend" and "dtype".
    """
    values: dict[str, Plain] = {}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        values["optimizer"] = type(optimizer).__name__
        values.update({name: plain(value) for name, value in optimizer.get_config().items()})
    values.update(_layers(model.layers))
    for part in ("loss", "accuracy"):
        if getattr(model, part, None) is not None:
            values[part] = type(getattr(model, part)).__name__
    values["batch_size"] = "none" if batch_size is None else int(batch_size)
    if epochs is not None:
        values["epochs"] = int(epochs)
    seed = backends.last_seed()
    if seed is not None:
        values["seed"] = seed
    values["backend"] = model.backend.name
    dtypes = [layer.dtype for layer in model.trainable_layers if hasattr(layer, "dtype")]
    if dtypes:
        values["dtype"] = dtype_name(dtypes[0])
    return values


def _layers(layers: Iterable[Any]) -> dict[str, Plain]:
    """The Dense sizes and regularization, the dropout rates and the activations' names, numbered by kind."""
    values: dict[str, Plain] = {}
    sizes: list[int] = []
    activations: list[str] = []
    dense = dropout = 0
    for layer in layers:
        if hasattr(layer, "n_inputs") and hasattr(layer, "n_neurons"):
            dense += 1
            sizes += [layer.n_inputs, layer.n_neurons] if not sizes else [layer.n_neurons]
            values[f"dense{dense}_units"] = int(layer.n_neurons)
            for attribute, short in REGULARIZERS:
                strength = getattr(layer, attribute, 0)
                if strength:
                    values[f"dense{dense}_{short}"] = plain(strength)
        elif isinstance(layer, Dropout):
            dropout += 1
            dropped = float(f"{1 - layer.rate:.12g}")  # the attribute holds the fraction kept: 1 - (1 - 0.1)
            values[f"dropout{dropout}_rate"] = dropped
        else:
            activations.append(type(layer).__name__)
    if sizes:
        values["layers"] = "-".join(str(size) for size in sizes)
    if activations:
        values["activations"] = ",".join(activations)
    return values


def plain(value: Any) -> Plain:
    """A value as a tracker stores it: an int or float as itself (a bool as 0 or 1), anything else as its text.

    Args:
        value: a hyperparameter's value.

    Returns:
        An int, a float or a str.
    """
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)


def plain_values(values: Mapping[str, Any]) -> dict[str, Plain]:
    """Every value of a mapping as `plain` makes it (None left out).

    Args:
        values: name -> value.

    Returns:
        name -> an int, a float or a str.
    """
    return {str(name): plain(value) for name, value in values.items() if value is not None}


def run_name(values: Mapping[str, Any], names: Iterable[str] | None = None) -> str:
    """A run's name made of its hyperparameters, as TensorBoard's run list and MLflow's run names show it.

    Args:
        values: hyperparameter name -> value.
        names: the names to use, in order; None uses them all.

    Returns:
        "name=value" pairs joined by commas, e.g. "lr=0.05,decay=0.001" (numbers in their shortest form), with any
        character that does not belong in a folder's name replaced by "_"; "run" when there is nothing to name.
    """
    chosen = list(values) if names is None else [name for name in names if name in values]
    text = ",".join(f"{name}={_short(values[name])}" for name in chosen)
    return UNSAFE.sub("_", text) or "run"


def _short(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return format(value, "g")
    return str(value)


def differing(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The names whose values differ between rows (in the first row's order), for naming runs of one family.

    Args:
        rows: one mapping of hyperparameters per run.

    Returns:
        The names not equal in every row, in the order the first row has them (then any others).
    """
    names = list(dict.fromkeys(name for row in rows for name in row))
    return [name for name in names if len({repr(row.get(name)) for row in rows}) > 1]
