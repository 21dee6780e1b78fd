"""Pictures of a network with matplotlib, on host copies: the book's spiral decision boundary, training curves,
the chapter-17 sine fit and a one-figure summary. Figures are built without pyplot; write them with `save`, or
leave one as a notebook cell's value to see it there (its `_repr_png_`).
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nnx._paths import atomic_write, output_path
from nnx.backends._moved import moved_names
from nnx.callbacks.history import History
from nnx.model import Model
from nnx.plot import checks
from nnx.plot.curves import axes_list, draw_history, panels
from nnx.plot.data import (
    Predictor,
    class_labels,
    finite_floats,
    grid_points,
    host_data,
    input_points,
    regression_values,
)
from nnx.plot.style import EDGE_COLOUR, class_colours
from nnx.plot.style import PALETTE as _PALETTE
from nnx.training.data import output_width

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["decision_boundary", "history", "new_figure", "regression", "save", "summary"]

INSTALL_HINT = 'nnx.plot needs matplotlib: pip install "nnx-nnfs[plot]"'
# Names that left the public API in 0.2, kept for one release: name -> the module that holds it now.
_MOVED = {"LIGHTEN": "nnx.plot.style", "PALETTE": "nnx.plot.style"}

# matplotlib ---------------------------------------------------------------------------------------------------------


def _matplotlib() -> tuple[type, type]:
    """nnx.plot's Figure class (see `_notebook_figure`) and matplotlib's Agg canvas class, imported on first use."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return _notebook_figure(Figure), FigureCanvasAgg


@functools.cache
def _notebook_figure(Figure: Any) -> type:
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


_moved = moved_names(__name__, _MOVED)


def __getattr__(name: str) -> Any:
    """`NotebookFigure`, made on first use so that importing nnx.plot leaves matplotlib unloaded; and the names
    that left `nnx.plot` in 0.2, with a DeprecationWarning that says where they live now."""
    if name == "NotebookFigure":
        return _matplotlib()[0]
    return _moved(name, stacklevel=3)


def new_figure(figsize: tuple[float, float] | None = None, dpi: float = 100) -> Figure:
    """A new, empty matplotlib Figure: the figure every nnx.plot function starts from.

    It is drawn with Agg and unknown to pyplot (no display needed, never shown twice), uses matplotlib's
    constrained layout, and a notebook shows it as a picture when it is a cell's value.

    Args:
        figsize: (width, height) in inches, two finite numbers > 0; None is matplotlib's default.
        dpi: dots per inch, a finite number > 0.

    Returns:
        The Figure.

    Raises:
        ImportError: matplotlib is not installed.
        TypeError: `figsize` is not a pair of numbers, or `dpi` not a number.
        ValueError: a size or `dpi` is not finite and > 0.
    """
    figure_class, canvas_class = _matplotlib()
    size = checks.figure_size(figsize, "nnx.plot.new_figure", optional=True)
    dots = checks.dots_per_inch(dpi, "nnx.plot.new_figure")
    figure = figure_class(figsize=size, dpi=dots, layout="constrained")
    canvas_class(figure)
    return figure


def _figure_and_axes(ax: Axes | None, figsize: tuple[float, float] | None, dpi: float) -> tuple[Figure, Axes]:
    """(Figure, Axes): a new figure with one Axes, or the given Axes and the figure it is in."""
    if ax is not None:
        return _root_figure(ax), ax
    figure = new_figure(figsize, dpi)
    return figure, figure.add_subplot()


def _root_figure(ax: Axes) -> Figure:
    """The top-level Figure that `ax` is drawn in (also when it sits in a SubFigure)."""
    figure: Any = ax.figure
    while getattr(figure, "figure", figure) is not figure:
        figure = figure.figure
    return figure


def check_path(path: str | os.PathLike[str], owner: str = "nnx.plot.save") -> Path:
    """`path` as an absolute Path if a figure can be written there (its folder exists and is writable, its suffix is
    a picture format, in any case, that this machine can write: .pgf needs TeX), else a ValueError saying what to
    change: call it before long work whose result you will plot."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = tuple(sorted(f".{name}" for name in FigureCanvasBase.get_supported_filetypes()))
    target = output_path(path, owner, suffixes=formats, what="picture file")
    checks.writable_format(target, owner)
    return target


def save(figure: Figure, path: str | os.PathLike[str], *, dpi: float | None = None) -> str | os.PathLike[str]:
    """Write a figure to a picture file, replacing the file in one step.

    The figure, dpi and path are checked before anything is drawn.

    Args:
        figure: a matplotlib Figure, such as the nnx.plot functions return.
        path: the file; its suffix gives the format (.png, .svg, .pdf, ... in any case). Its folder must exist.
        dpi: dots per inch, a finite number > 0; None is the figure's own.

    Returns:
        `path`, as given.

    Raises:
        TypeError: `figure` is not a matplotlib Figure.
        ValueError: `dpi` is not finite and > 0, or `path` cannot be written as a picture (its folder is missing,
            its suffix is no picture format, or .pgf without TeX).
    """
    checks.figure(figure, "nnx.plot.save")
    dots = checks.dots_per_inch(dpi, "nnx.plot.save", optional=True)
    target = check_path(path)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=target.suffix[1:].lower(), dpi="figure" if dots is None else dots)
    atomic_write(target, buffer.getvalue())
    return path


# Decision boundary --------------------------------------------------------------------------------------------------


def decision_boundary(
    model_or_predict_fn: Model | Callable[[np.ndarray], Any],
    X: Any,
    y: Any,
    *,
    ax: Axes | None = None,
    resolution: int = 300,
    margin: float = 0.1,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
    point_size: float = 20.0,
    figsize: tuple[float, float] = (6.0, 6.0),
    dpi: float = 100,
) -> Figure:
    """The book's spiral picture: each class's learned region in a light colour, the data points on top.

    The regions are the model's predictions on a grid over the data. Up to 10 classes take matplotlib's tab10
    colours and get a legend; more take evenly spaced turbo colours.

    Args:
        model_or_predict_fn: a finalized nnx.Model, or a function that takes a NumPy float array (n, 2) and returns
            scores (n, C) (the class is the argmax), labels (n,) or one probability (n, 1) (above 0.5 is class 1),
            as NumPy or as an array of an nnx backend.
        X: the points, (n, 2), NumPy or an array of an nnx backend.
        y: their classes, labels (n,) or one-hot rows (n, C), likewise.
        ax: a matplotlib Axes to draw in; None makes a new figure.
        resolution: grid points per side, an integer in [1, 2000].
        margin: how much the grid extends past the data's box on each side, as a fraction of its size, in
            [0, 100].
        title: the title; None shows the accuracy on (X, y).
        class_names: a name for each class in `y`, for the legend; None names them "class k".
        point_size: the markers' area in points squared, >= 0.
        figsize: a new figure's (width, height) in inches (unused with `ax`).
        dpi: a new figure's dots per inch (unused with `ax`).

    Returns:
        A new Figure (a notebook shows it as a picture), or, given `ax`, the figure `ax` is in, as it is.

    Raises:
        ImportError: matplotlib is not installed.
        TypeError: an argument has the wrong type (the message says what was expected).
        ValueError: the data or the model's outputs do not fit: X is not (n, 2), a class in y is one the model
            cannot predict, the model is a regression, ...
        CallOrderError: the model is not finalized.
    """
    owner = "nnx.plot.decision_boundary"
    _matplotlib()  # the install hint before any work
    resolution, margin = checks.resolution(resolution, owner), checks.margin(margin, owner)
    point_size = checks.point_size(point_size, owner)
    figsize, dpi = checks.figure_size(figsize, owner), checks.dots_per_inch(dpi, owner)
    checks.axes(ax, "ax", owner)
    predict = Predictor(model_or_predict_fn, owner)
    predict.require_classifier()
    X = input_points(X, owner)
    labels = class_labels(y, X.shape[0], owner)
    names = checks.class_names(class_names, int(labels.max()) + 1, owner)
    _labels_within_outputs(predict, labels, owner)
    predicted = predict.classes(X)  # a predict function's output is checked here, on the data, before the grid
    _labels_within_function_classes(predict, X, labels, owner)
    grid, box = grid_points(X, resolution, margin, owner)
    regions = predict.classes(grid).reshape(resolution, resolution)
    accuracy = float(np.mean(predicted == labels))
    n_classes = int(max(labels.max(), regions.max())) + 1
    point_colours, region_colours = class_colours(n_classes)
    figure, ax = _figure_and_axes(ax, figsize, dpi)
    ax.imshow(region_colours[regions], origin="lower", extent=box, interpolation="nearest", aspect="auto", zorder=0)
    for k in range(n_classes):
        chosen = labels == k
        name = names[k] if names is not None and k < len(names) else f"class {k}"
        ax.scatter(
            X[chosen, 0],
            X[chosen, 1],
            s=point_size,
            color=point_colours[k],
            edgecolors=EDGE_COLOUR,
            linewidths=0.5,
            label=name,
        )
    _square_if_balanced(ax, box)
    ax.set(xlim=box[:2], ylim=box[2:], xlabel="x1", ylabel="x2")
    ax.set_title(title if title is not None else f"decision boundary (accuracy {accuracy:.3f})")
    if n_classes <= len(_PALETTE):
        ax.legend(loc="upper right", fontsize="small", framealpha=0.85)
    return figure


def _labels_within_outputs(predict: Predictor, labels: np.ndarray, owner: str) -> None:
    """A ValueError for labels the model cannot predict (a class number >= its number of outputs)."""
    outputs = output_width(predict.model) if predict.model is not None else None
    if outputs is not None and outputs > 1 and labels.max() >= outputs:
        raise ValueError(
            f"{owner} got class {int(labels.max())} in y, but the model has {outputs} outputs (classes 0 to "
            f"{outputs - 1}); pass the labels the model was trained on"
        )


def _labels_within_function_classes(predict: Predictor, X: np.ndarray, labels: np.ndarray, owner: str) -> None:
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


def _square_if_balanced(ax: Axes, box: Sequence[float]) -> None:
    """Equal axis scales when the box's sides are within a factor of 3 (the spiral), else fill the axes."""
    ratio = (box[1] - box[0]) / (box[3] - box[2])
    if 1 / 3 <= ratio <= 3:
        ax.set_aspect("equal", adjustable="box")


# History ------------------------------------------------------------------------------------------------------------


def history(
    history: History | Mapping[str, Any],
    *,
    axes: Axes | Sequence[Axes] | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
) -> Figure:
    """Training curves against epoch: loss, accuracy and learning rate, one panel each.

    A panel is drawn only for metrics that have a finite value (lr only if recorded). Validation metrics (val_...)
    are dashed in their training metric's colour; metrics with gaps get markers. Without regularization (reg_loss
    all 0) only loss is drawn, not data_loss.

    Args:
        history: a `History` (or any object with `.epoch`, a list of epoch numbers, and `.history`, name -> a
            list aligned with it, None where not measured), or a dict name -> list of per-epoch values with an
            optional "epoch" list (default 0, 1, ...).
        axes: one matplotlib Axes per panel, in the order loss, accuracy, lr (an Axes, a list, or the array
            ``figure.subplots`` returns); None makes a new figure.
        figsize: a new figure's (width, height) in inches; None is 6 wide and 2.6 high per panel.
        dpi: a new figure's dots per inch.

    Returns:
        A new Figure (a notebook shows it as a picture), or, given `axes`, the figure they are in, as it is.

    Raises:
        ImportError: matplotlib is not installed.
        TypeError: `history` is neither of the above, or holds values that are not numbers.
        ValueError: the history is empty, its columns do not have one value per epoch, or `axes` has fewer Axes
            than there are panels.
    """
    figsize = checks.figure_size(figsize, "nnx.plot.history", optional=True)
    dpi = checks.dots_per_inch(dpi, "nnx.plot.history")
    epochs, metrics = panels(history)
    drawn_on: Any
    if axes is not None:
        drawn_on = axes_list(axes)
        figure = _root_figure(drawn_on[0])
    else:
        figure = new_figure(figsize or (6.0, 2.6 * len(metrics)), dpi)
        drawn_on = figure.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    draw_history(drawn_on, epochs, metrics)
    return figure


# Regression ---------------------------------------------------------------------------------------------------------


def _column(X: Any, owner: str) -> np.ndarray:
    X = host_data(X, "X", owner)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[1] != 1 or X.shape[0] == 0:
        raise ValueError(
            f"{owner} expected X with one feature, shape (n,) or (n, 1), got an array of shape {X.shape}; "
            f"plot one input feature, e.g. sine_data()"
        )
    return finite_floats(X, "X", owner)


def regression(
    model_or_predict_fn: Model | Callable[[np.ndarray], Any],
    X: Any,
    y: Any,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (7.0, 4.5),
    dpi: float = 100,
) -> Figure:
    """Chapter 17's fit: the data as points and the model's prediction as a line, sorted by X.

    Args:
        model_or_predict_fn: a finalized nnx.Model, or a function that takes a NumPy float array (n, 1) and returns
            (n, 1) or (n,) predictions, as NumPy or as an array of an nnx backend.
        X: one input feature, (n, 1) or (n,), NumPy or an array of an nnx backend.
        y: the targets, (n, 1) or (n,), likewise.
        ax: a matplotlib Axes to draw in; None makes a new figure.
        title: the title; None shows the mean squared error.
        figsize: a new figure's (width, height) in inches (unused with `ax`).
        dpi: a new figure's dots per inch (unused with `ax`).

    Returns:
        A new Figure (a notebook shows it as a picture), or, given `ax`, the figure `ax` is in, as it is.

    Raises:
        ImportError: matplotlib is not installed.
        TypeError: an argument has the wrong type.
        ValueError: X has more than one feature, y does not have one target per row of X, or a value is not
            finite.
        CallOrderError: the model is not finalized.
    """
    owner = "nnx.plot.regression"
    figsize, dpi = checks.figure_size(figsize, owner), checks.dots_per_inch(dpi, owner)
    checks.axes(ax, "ax", owner)
    predict = Predictor(model_or_predict_fn, owner)
    X = _column(X, owner)
    y = host_data(y, "y", owner)
    if y.shape not in ((X.shape[0],), (X.shape[0], 1)):
        raise ValueError(
            f"{owner} expected y with one target per row of X, shape ({X.shape[0]},) or ({X.shape[0]}, 1), got "
            f"an array of shape {y.shape}; pass the targets that go with X"
        )
    y = finite_floats(y.reshape(-1), "y", owner)
    order = np.argsort(X[:, 0], kind="stable")
    X, y = X[order], y[order]
    predicted = regression_values(predict, X, owner)
    error = float(np.mean((predicted - y) ** 2))
    figure, ax = _figure_and_axes(ax, figsize, dpi)
    ax.scatter(X[:, 0], y, s=10, color=_PALETTE[0], label="data", zorder=2)
    ax.plot(X[:, 0], predicted, color=_PALETTE[1], linewidth=2.5, label="prediction", zorder=3)
    ax.set(xlabel="x", ylabel="y")
    ax.set_title(title if title is not None else f"regression (mean squared error {error:.4g})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return figure


# Summary ------------------------------------------------------------------------------------------------------------


def summary(
    model_or_predict_fn: Model | Callable[[np.ndarray], Any],
    X: Any,
    y: Any,
    history: History | Mapping[str, Any],
    *,
    title: str | None = None,
    resolution: int = 300,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
) -> Figure:
    """One figure: the decision boundary on the left, the history's loss, accuracy and lr panels stacked on the
    right; what ``examples/spiral.py --plot`` saves.

    Args:
        model_or_predict_fn: a finalized nnx.Model or a predict function, as for `decision_boundary`.
        X: the points, (n, 2), as for `decision_boundary`.
        y: their classes, as for `decision_boundary`.
        history: the training run's History or a dict of per-epoch lists, as for `history`.
        title: a title over the whole figure; None for none.
        resolution: the decision boundary's grid points per side, an integer in [1, 2000].
        figsize: (width, height) in inches; None is (12, 6).
        dpi: dots per inch.

    Returns:
        A new Figure (a notebook shows it as a picture).

    Raises:
        ImportError: matplotlib is not installed.
        TypeError: an argument has the wrong type.
        ValueError: as `decision_boundary` and `history` raise them.
        CallOrderError: the model is not finalized.
    """
    owner = "nnx.plot.summary"
    resolution = checks.resolution(resolution, owner)
    figsize, dpi = checks.figure_size(figsize, owner, optional=True), checks.dots_per_inch(dpi, owner)
    epochs, metrics = panels(history)
    figure = new_figure(figsize or (12.0, 6.0), dpi)
    grid = figure.add_gridspec(len(metrics), 2, width_ratios=(1.15, 1.0))
    boundary_ax = figure.add_subplot(grid[:, 0])
    first = figure.add_subplot(grid[0, 1])
    history_axes = [first, *(figure.add_subplot(grid[row, 1], sharex=first) for row in range(1, len(metrics)))]
    decision_boundary(model_or_predict_fn, X, y, ax=boundary_ax, resolution=resolution)
    draw_history(history_axes, epochs, metrics)
    for ax in history_axes[:-1]:
        ax.tick_params(labelbottom=False)
    if title is not None:
        figure.suptitle(title)
    return figure
