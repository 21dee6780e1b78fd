"""Pictures of a network with matplotlib, on host copies: the book's spiral decision boundary, training curves,
the chapter-17 sine fit and a one-figure summary. Figures are built without pyplot; write them with `save`, or
leave one as a notebook cell's value to see it there (its `_repr_png_`).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnx import _checks
from nnx._paths import atomic_write, output_path
from nnx.model_data import output_width
from nnx.plot import checks
from nnx.plot.data import _finite_floats, _grid, _history_table, _host, _labels, _points, _Predictor, _values

__all__ = ["LIGHTEN", "PALETTE", "decision_boundary", "history", "new_figure", "regression", "save", "summary"]

INSTALL_HINT = 'nnx.plot needs matplotlib: pip install "nnx-nnfs[plot]"'

# matplotlib's tab10: class k is PALETTE[k] for points and the same colour lightened by LIGHTEN for its region.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
LIGHTEN = 0.6  # fraction of the way from a class colour to white, for the regions
EDGE_COLOUR = "#222222"

PANELS = ("loss", "accuracy", "lr")
PANEL_TITLES = {"loss": "loss", "accuracy": "accuracy", "lr": "learning rate"}
METRIC_COLOURS = {
    "loss": PALETTE[0],
    "data_loss": PALETTE[1],
    "reg_loss": PALETTE[2],
    "accuracy": PALETTE[0],
    "lr": PALETTE[3],
}


# matplotlib ---------------------------------------------------------------------------------------------------------


def _matplotlib():
    """nnx.plot's Figure class (see `_notebook_figure`) and matplotlib's Agg canvas class, imported on first use."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return _notebook_figure(Figure), FigureCanvasAgg


@functools.cache
def _notebook_figure(Figure):
    """A subclass of matplotlib's `Figure` that IPython shows as a PNG; pickle finds it as nnx.plot.NotebookFigure."""

    class NotebookFigure(Figure):
        """A matplotlib Figure that a Jupyter notebook shows as a picture when it is a cell's value."""

        def _repr_png_(self) -> bytes:
            """The figure as PNG bytes at its own dpi, trimmed to what is drawn (IPython's rich display)."""
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi="figure", bbox_inches="tight")
            return buffer.getvalue()

    NotebookFigure.__module__, NotebookFigure.__qualname__ = __name__, "NotebookFigure"
    return NotebookFigure


def __getattr__(name: str):
    """`NotebookFigure`, made on first use so that importing nnx.plot leaves matplotlib unloaded."""
    if name == "NotebookFigure":
        return _matplotlib()[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def new_figure(figsize=None, dpi: float = 100):
    """A new, empty matplotlib Figure drawn with Agg and unknown to pyplot (no display needed, never shown twice),
    that a notebook shows as a picture when it is a cell's value: the figure every nnx.plot function starts from."""
    Figure, FigureCanvasAgg = _matplotlib()
    figsize = checks.figure_size(figsize, "nnx.plot.new_figure", optional=True)
    dpi = checks.dots_per_inch(dpi, "nnx.plot.new_figure")
    figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _figure_and_axes(ax, figsize, dpi):
    """(Figure, Axes): a new figure with one Axes, or the given Axes and the figure it is in."""
    if ax is not None:
        return _root_figure(ax), ax
    figure = new_figure(figsize, dpi)
    return figure, figure.add_subplot()


def _root_figure(ax):
    """The top-level Figure that `ax` is drawn in (also when it sits in a SubFigure)."""
    figure = ax.figure
    while getattr(figure, "figure", figure) is not figure:
        figure = figure.figure
    return figure


def check_path(path, owner: str = "nnx.plot.save") -> Path:
    """`path` as an absolute Path if a figure can be written there (its folder exists and is writable, its suffix is
    a picture format, in any case, that this machine can write: .pgf needs TeX), else a ValueError saying what to
    change: call it before long work whose result you will plot."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = tuple(sorted(f".{name}" for name in FigureCanvasBase.get_supported_filetypes()))
    target = output_path(path, owner, suffixes=formats, what="picture file")
    checks.writable_format(target, owner)
    return target


def save(figure, path, *, dpi=None):
    """Write `figure` to `path` (format from the suffix: .png, .svg, .pdf); `dpi` defaults to the figure's own.
    The figure, dpi and path are checked first, and the file is replaced in one step."""
    checks.figure(figure, "nnx.plot.save")
    dpi = checks.dots_per_inch(dpi, "nnx.plot.save", optional=True)
    target = check_path(path)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=target.suffix[1:].lower(), dpi="figure" if dpi is None else dpi)
    atomic_write(target, buffer.getvalue())
    return path


# Decision boundary --------------------------------------------------------------------------------------------------


def _class_colours(n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB rows (points, regions): the palette up to 10 classes, then evenly spaced turbo colours."""
    from matplotlib import colormaps
    from matplotlib.colors import to_rgb

    if n_classes <= len(PALETTE):
        points = np.array([to_rgb(colour) for colour in PALETTE[:n_classes]])
    else:
        points = colormaps["turbo"](np.linspace(0.05, 0.95, n_classes))[:, :3]
    return points, points + (1.0 - points) * LIGHTEN


def decision_boundary(
    model_or_predict_fn,
    X,
    y,
    *,
    ax=None,
    resolution: int = 300,
    margin: float = 0.1,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
    point_size: float = 20.0,
    figsize=(6.0, 6.0),
    dpi: float = 100,
):
    """The book's spiral picture: each class's learned region in a light colour, the data points on top.

    `model_or_predict_fn` is a finalized nnx.Model or a function taking a NumPy float array (n, 2) and returning
    scores (n, C) (argmax), labels (n,) or one probability (n, 1) (above 0.5 is class 1), as NumPy or as an
    array of an nnx backend. `X` (n, 2) and `y` (labels or one-hot) may be NumPy or backend arrays. The grid has
    `resolution` x `resolution` points over the data's box widened by `margin` (at most 100) of its size.
    `class_names` is a list with a name for each class in y. Returns a new Figure (a notebook shows it as a picture),
    or, given `ax`, draws there and returns ax's own figure as it is (figsize and dpi are then unused).
    """
    owner = "nnx.plot.decision_boundary"
    _matplotlib()  # the install hint before any work
    resolution, margin = checks.resolution(resolution, owner), checks.margin(margin, owner)
    point_size = checks.point_size(point_size, owner)
    figsize, dpi = checks.figure_size(figsize, owner), checks.dots_per_inch(dpi, owner)
    _check_axes(ax, "ax", owner)
    predict = _Predictor(model_or_predict_fn, owner)
    predict.require_classifier()
    X = _points(X, owner)
    labels = _labels(y, X.shape[0], owner)
    names = checks.class_names(class_names, int(labels.max()) + 1, owner)
    _labels_within_outputs(predict, labels, owner)
    predicted = predict.classes(X)  # a predict function's output is checked here, on the data, before the grid
    _labels_within_function_classes(predict, X, labels, owner)
    grid, box = _grid(X, resolution, margin, owner)
    regions = predict.classes(grid).reshape(resolution, resolution)
    accuracy = float(np.mean(predicted == labels))
    n_classes = int(max(labels.max(), regions.max())) + 1
    point_colours, region_colours = _class_colours(n_classes)
    figure, ax = _figure_and_axes(ax, figsize, dpi)
    ax.imshow(region_colours[regions], origin="lower", extent=box, interpolation="nearest", aspect="auto", zorder=0)
    for k in range(n_classes):
        chosen = labels == k
        name = names[k] if names is not None and k < len(names) else f"class {k}"
        ax.scatter(
            *X[chosen].T, s=point_size, color=point_colours[k], edgecolors=EDGE_COLOUR, linewidths=0.5, label=name
        )
    _square_if_balanced(ax, box)
    ax.set(xlim=box[:2], ylim=box[2:], xlabel="x1", ylabel="x2")
    ax.set_title(title if title is not None else f"decision boundary (accuracy {accuracy:.3f})")
    if n_classes <= len(PALETTE):
        ax.legend(loc="upper right", fontsize="small", framealpha=0.85)
    return figure


def _labels_within_outputs(predict: _Predictor, labels: np.ndarray, owner: str) -> None:
    """A ValueError for labels the model cannot predict (a class number >= its number of outputs)."""
    outputs = output_width(predict.model) if predict.model is not None else None
    if outputs is not None and outputs > 1 and labels.max() >= outputs:
        raise ValueError(
            f"{owner} got class {int(labels.max())} in y, but the model has {outputs} outputs (classes 0 to "
            f"{outputs - 1}); pass the labels the model was trained on"
        )


def _labels_within_function_classes(predict: _Predictor, X: np.ndarray, labels: np.ndarray, owner: str) -> None:
    """A ValueError when a predict function's scores (n, C) have fewer classes than `y` names (one probability
    column means 2 classes)."""
    if predict.model is not None:
        return
    outputs = predict.outputs(X[:1])
    if outputs.ndim != 2:
        return
    classes = max(outputs.shape[1], 2)
    if labels.max() >= classes:
        raise ValueError(
            f"{owner} got class {int(labels.max())} in y, but the predict function returns {outputs.shape[1]} "
            f"score column(s) (classes 0 to {classes - 1}); return one column per class, or pass the labels it "
            f"was trained on"
        )


def _check_axes(ax, name: str, owner: str) -> None:
    """A TypeError unless `ax` is None or a matplotlib Axes."""
    from matplotlib.axes import Axes

    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(
            f"{owner} expected {name} as a matplotlib Axes (e.g. figure.add_subplot()) or None, got "
            f"{_checks.describe(ax)}; leave it out to get a new figure"
        )


def _square_if_balanced(ax, box) -> None:
    """Equal axis scales when the box's sides are within a factor of 3 (the spiral), else fill the axes."""
    ratio = (box[1] - box[0]) / (box[3] - box[2])
    if 1 / 3 <= ratio <= 3:
        ax.set_aspect("equal", adjustable="box")


# History ------------------------------------------------------------------------------------------------------------


def _panel_of(name: str) -> str | None:
    base = name.removeprefix("val_")
    if base in ("lr", "learning_rate"):
        return "lr"
    if "acc" in base:
        return "accuracy"
    return "loss" if "loss" in base else None


def _panels(history) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """(epochs, panel -> {metric name -> values}) keeping only panels with at least one finite value."""
    epochs, table = _history_table(history)
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


def _draw_metric(ax, epochs: np.ndarray, name: str, values: np.ndarray, colour) -> None:
    """Training solid, validation dashed in the same colour; markers when the metric has gaps."""
    measured = np.isfinite(values)
    style = {"linestyle": "--" if name.startswith("val_") else "-", "color": colour, "label": name}
    if not measured.all():
        style |= {"marker": "o", "markersize": 4}
    ax.plot(epochs[measured], values[measured], **style)


def _draw_panel(ax, panel: str, epochs: np.ndarray, metrics: dict[str, np.ndarray]) -> None:
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


def _draw_history(axes, epochs: np.ndarray, panels: dict[str, dict[str, np.ndarray]]) -> None:
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


def _axes_list(axes) -> list:
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
        _check_axes(ax, "axes", "nnx.plot.history")
    return axes


def history(history, *, axes=None, figsize=None, dpi: float = 100):
    """Loss, accuracy and learning-rate curves against epoch, one panel each (lr only if recorded).

    `history` is an object with `.epoch` (list of ints) and `.history` (name -> list aligned with it, None where
    not measured), or a dict name -> list with an optional "epoch" list (default 0, 1, ...). Validation metrics
    (val_...) are dashed in their training metric's colour; metrics with gaps get markers. Returns a new Figure (a
    notebook shows it as a picture), or, given `axes` (one Axes per panel, in the order loss, accuracy, lr), draws
    there and returns their own figure as it is.
    """
    figsize = checks.figure_size(figsize, "nnx.plot.history", optional=True)
    dpi = checks.dots_per_inch(dpi, "nnx.plot.history")
    epochs, panels = _panels(history)
    if axes is not None:
        axes = _axes_list(axes)
        figure = _root_figure(axes[0])
    else:
        figure = new_figure(figsize or (6.0, 2.6 * len(panels)), dpi)
        axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    _draw_history(axes, epochs, panels)
    return figure


# Regression ---------------------------------------------------------------------------------------------------------


def _column(X, owner: str) -> np.ndarray:
    X = _host(X, "X", owner)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[1] != 1 or X.shape[0] == 0:
        raise ValueError(
            f"{owner} expected X with one feature, shape (n,) or (n, 1), got an array of shape {X.shape}; "
            f"plot one input feature, e.g. sine_data()"
        )
    return _finite_floats(X, "X", owner)


def regression(model_or_predict_fn, X, y, *, ax=None, title: str | None = None, figsize=(7.0, 4.5), dpi: float = 100):
    """Chapter 17's fit: the data as points and the model's prediction as a line, sorted by X.

    `X` is (n, 1) or (n,), `y` (n, 1) or (n,), NumPy or backend arrays; the model is a finalized nnx.Model or a
    function of a NumPy (n, 1) float array returning (n, 1) or (n,). Returns a new Figure (a notebook shows it as a
    picture), or, given `ax`, draws there and returns ax's own figure as it is.
    """
    owner = "nnx.plot.regression"
    figsize, dpi = checks.figure_size(figsize, owner), checks.dots_per_inch(dpi, owner)
    _check_axes(ax, "ax", owner)
    predict = _Predictor(model_or_predict_fn, owner)
    X = _column(X, owner)
    y = _host(y, "y", owner)
    if y.shape not in ((X.shape[0],), (X.shape[0], 1)):
        raise ValueError(
            f"{owner} expected y with one target per row of X, shape ({X.shape[0]},) or ({X.shape[0]}, 1), got "
            f"an array of shape {y.shape}; pass the targets that go with X"
        )
    y = _finite_floats(y.reshape(-1), "y", owner)
    order = np.argsort(X[:, 0], kind="stable")
    X, y = X[order], y[order]
    predicted = _values(predict, X, owner)
    error = float(np.mean((predicted - y) ** 2))
    figure, ax = _figure_and_axes(ax, figsize, dpi)
    ax.scatter(X[:, 0], y, s=10, color=PALETTE[0], label="data", zorder=2)
    ax.plot(X[:, 0], predicted, color=PALETTE[1], linewidth=2.5, label="prediction", zorder=3)
    ax.set(xlabel="x", ylabel="y")
    ax.set_title(title if title is not None else f"regression (mean squared error {error:.4g})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return figure


# Summary ------------------------------------------------------------------------------------------------------------


def summary(
    model_or_predict_fn, X, y, history, *, title: str | None = None, resolution: int = 300, figsize=None, dpi=100
):
    """One figure: the decision boundary on the left, the history's loss, accuracy and lr panels stacked on the
    right; what examples/spiral.py --plot saves. Arguments as for `decision_boundary` and `history`. Returns a new
    Figure (a notebook shows it as a picture)."""
    owner = "nnx.plot.summary"
    resolution = checks.resolution(resolution, owner)
    figsize, dpi = checks.figure_size(figsize, owner, optional=True), checks.dots_per_inch(dpi, owner)
    epochs, panels = _panels(history)
    figure = new_figure(figsize or (12.0, 6.0), dpi)
    grid = figure.add_gridspec(len(panels), 2, width_ratios=(1.15, 1.0))
    boundary_ax = figure.add_subplot(grid[:, 0])
    first = figure.add_subplot(grid[0, 1])
    history_axes = [first, *(figure.add_subplot(grid[row, 1], sharex=first) for row in range(1, len(panels)))]
    decision_boundary(model_or_predict_fn, X, y, ax=boundary_ax, resolution=resolution)
    _draw_history(history_axes, epochs, panels)
    for ax in history_axes[:-1]:
        ax.tick_params(labelbottom=False)
    if title is not None:
        figure.suptitle(title)
    return figure
