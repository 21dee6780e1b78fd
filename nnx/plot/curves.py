"""The training-curve panels of `nnx.plot.history` and `nnx.plot.summary`: loss, accuracy and learning rate against
epoch, from a History or a dict of per-epoch lists."""

from __future__ import annotations

from typing import Any

import numpy as np

from nnx import _checks
from nnx.plot import checks
from nnx.plot.data import history_table
from nnx.plot.style import METRIC_COLOURS, PALETTE, PANEL_TITLES, PANELS


def _panel_of(name: str) -> str | None:
    base = name.removeprefix("val_")
    if base in ("lr", "learning_rate"):
        return "lr"
    if "acc" in base:
        return "accuracy"
    return "loss" if "loss" in base else None


def panels(history: Any) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """(epochs, panel -> {metric name -> values}) keeping only panels with at least one finite value."""
    epochs, table = history_table(history)
    panels: dict[str, dict[str, np.ndarray]] = {panel: {} for panel in PANELS}
    for name, values in table.items():
        panel = _panel_of(name)
        if panel is not None and np.isfinite(values).any():
            panels[panel][name] = values
    _drop_redundant_losses(panels["loss"])
    panels = {panel: metrics for panel, metrics in panels.items() if metrics}
    if len(epochs) == 0 or not panels:
        raise ValueError(
            f"nnx.plot.history got an empty history ({len(epochs)} epochs, metrics {sorted(table) or 'none'}); "
            f"train first and pass values for loss, accuracy or lr (keys: loss, data_loss, reg_loss, accuracy, lr, "
            f"val_loss, val_accuracy)"
        )
    return epochs, panels


def _drop_redundant_losses(losses: dict[str, np.ndarray]) -> None:
    """Without regularization (reg_loss all zero) data_loss is loss: keep only loss."""
    reg_loss = losses.get("reg_loss")
    if "loss" in losses and reg_loss is not None and np.all(np.nan_to_num(reg_loss) == 0):
        losses.pop("reg_loss")
        losses.pop("data_loss", None)


def _draw_metric(ax: Any, epochs: np.ndarray, name: str, values: np.ndarray, colour: str) -> None:
    """Training solid, validation dashed in the same colour; markers when the metric has gaps."""
    measured = np.isfinite(values)
    style: dict[str, Any] = {"linestyle": "--" if name.startswith("val_") else "-", "color": colour, "label": name}
    if not measured.all():
        style |= {"marker": "o", "markersize": 4}
    ax.plot(epochs[measured], values[measured], **style)


def _draw_panel(ax: Any, panel: str, epochs: np.ndarray, metrics: dict[str, np.ndarray]) -> None:
    extra_colours = iter(PALETTE[4:])
    colours: dict[str, str] = {}
    for name, values in metrics.items():
        base = name.removeprefix("val_")
        if base not in colours:
            colours[base] = METRIC_COLOURS.get(base) or next(extra_colours, PALETTE[-1])
        _draw_metric(ax, epochs, name, values, colours[base])
    ax.set_title(PANEL_TITLES[panel])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    if panel == "lr":
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))


def draw_history(axes: Any, epochs: np.ndarray, panels: dict[str, dict[str, np.ndarray]]) -> None:
    axes = list(axes)
    if len(axes) < len(panels):
        raise ValueError(
            f"nnx.plot.history needs {len(panels)} axes for the panels {', '.join(panels)}, got {len(axes)}; "
            f"pass axes=None to get a new figure, or one Axes per panel"
        )
    for ax, (panel, metrics) in zip(axes, panels.items(), strict=False):
        _draw_panel(ax, panel, epochs, metrics)
    for ax in axes[len(panels) :]:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    axes[len(panels) - 1].set_xlabel("epoch")


def axes_list(axes: Any) -> list:
    """A list of Axes from one Axes, a list of them, or the array `figure.subplots` returns."""
    if hasattr(axes, "plot"):
        axes = [axes]
    elif hasattr(axes, "ravel") or isinstance(axes, (list, tuple)):
        axes = list(axes.ravel()) if hasattr(axes, "ravel") else list(axes)
    if not isinstance(axes, list):
        raise TypeError(
            f"nnx.plot.history expected axes as an Axes or a list of them, got {_checks.describe(axes)}; pass one "
            f"Axes per panel, or axes=None for a new figure"
        )
    if not axes:
        raise ValueError("nnx.plot.history got axes=[]; pass one Axes per panel, or axes=None for a new figure")
    for ax in axes:
        checks.axes(ax, "axes", "nnx.plot.history")
    return axes
