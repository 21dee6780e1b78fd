"""`Model.summary()` and a model's notebook view: each layer with its output shape and parameter count, the
totals, where it computes, its loss, optimizer and accuracy, and how far it has trained.

Everything here is read from shapes and host numbers: a summary copies nothing from the device.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import IO, Any

from nnx import _checks
from nnx.backends._host import dtype_name
from nnx.callbacks.base import host_float


def layer_rows(model: Any) -> list[tuple[str, str, int]]:
    """(layer, output shape, parameter count) for every layer, in order; an unknown width shows as '?'."""
    rows: list[tuple[str, str, int]] = []
    width = "?"
    for index, layer in enumerate(model.layers):
        weights = getattr(layer, "weights", None)
        if weights is not None and len(weights.shape) == 2:
            width = str(weights.shape[1])
        rows.append((f"{index}: {layer!r}", f"(None, {width})", _parameter_count(layer)))
    return rows


def facts(model: Any) -> list[tuple[str, str]]:
    """(name, value) lines below the layer table: backend, parts, and training so far."""
    optimizer = model.optimizer
    return [
        ("Backend", f"{model.backend.name} on {model.backend.device}, {_dtype(model)}"),
        ("Loss", _named(model.loss)),
        ("Optimizer", _optimizer(optimizer) if optimizer is not None else "none: give one with model.set()"),
        ("Accuracy", _named(model.accuracy)),
        ("Finalized", "yes" if model.finalized else "no: call model.finalize() after add() and set()"),
        ("Trained", _trained(model)),
    ]


def show(model: Any, file: IO[str] | None = None) -> None:
    """Print `text(model)` to `file` (an open text stream; default stdout)."""
    print(text(model), file=_checks.text_stream(file, "Model.summary"))


def text(model: Any) -> str:
    """The summary as a plain-text table (what `Model.summary()` prints)."""
    layers = layer_rows(model)
    rows = [("Layer", "Output shape", "Parameters")] + [(name, shape, f"{count:,}") for name, shape, count in layers]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    rule = "-" * (sum(widths) + 4)
    lines = [_line(rows[0], widths), rule, *(_line(row, widths) for row in rows[1:]), rule]
    lines += [f"{name}: {value}" for name, value in _totals(layers) + facts(model)]
    return "\n".join(lines)


def html_table(model: Any) -> str:
    """The summary as an HTML table, for Jupyter (`Model._repr_html_`)."""
    layers = layer_rows(model)
    head = "".join(f"<th>{name}</th>" for name in ("Layer", "Output shape", "Parameters"))
    body = "".join(
        f"<tr><td style='text-align:left'>{html.escape(name)}</td><td>{shape}</td><td>{count:,}</td></tr>"
        for name, shape, count in layers
    )
    notes = "".join(
        f"<tr><th style='text-align:left'>{name}</th><td colspan='2' style='text-align:left'>{html.escape(value)}"
        f"</td></tr>"
        for name, value in _totals(layers) + facts(model)
    )
    return f"<table><caption>{html.escape(repr(model))}</caption><tr>{head}</tr>{body}{notes}</table>"


def _line(cells: tuple[str, str, str], widths: Sequence[int]) -> str:
    name, shape, count = cells
    return f"{name:<{widths[0]}}  {shape:<{widths[1]}}  {count:>{widths[2]}}"


def _parameter_count(layer: Any) -> int:
    arrays = (getattr(layer, name, None) for name in ("weights", "biases"))
    return sum(math.prod(array.shape) for array in arrays if array is not None)


def _totals(layers: list[tuple[str, str, int]]) -> list[tuple[str, str]]:
    total = sum(count for _, _, count in layers)
    return [("Total parameters", f"{total:,} (all trainable)")]


def _dtype(model: Any) -> str:
    layer = next((layer for layer in model.layers if getattr(layer, "weights", None) is not None), None)
    return dtype_name(layer.weights.dtype) if layer is not None else "no parameters"


def _named(part: Any) -> str:
    return repr(part) if part is not None else "none: give one with model.set()"


def _optimizer(optimizer: Any) -> str:
    settings = ", ".join(f"{name}={value}" for name, value in optimizer.get_config().items())
    current = host_float(optimizer.backend, optimizer.current_learning_rate)
    return f"{type(optimizer).__name__}({settings}), current learning rate {current:.6g}"


def _trained(model: Any) -> str:
    steps = model.optimizer.iterations if model.optimizer is not None else 0
    epochs = model.epochs_trained
    return f"{epochs:,} epoch{'s' * (epochs != 1)}, {steps:,} step{'s' * (steps != 1)}"
