"""nnx.plot's figures in a notebook: each carries IPython's `_repr_png_`, so a figure left as a cell's value shows as a
picture, without pyplot (checked in fresh processes); saving, pickling and figures of the user's own Axes as before."""

from __future__ import annotations

import copy
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="nnx.plot needs matplotlib (the plot extra)")

import nnx.plot

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
DPI = 40

POINTS = np.array([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [0.0, 0.5], [0.5, 0.0]])
LABELS = np.array([0, 1, 2, 0, 1, 2])
SINE_X = np.linspace(0.0, 1.0, 20)
HISTORY = {"loss": [1.0, 0.5, 0.25], "accuracy": [0.3, 0.6, 0.9], "lr": [0.1, 0.09, 0.08]}


def scores(points):
    """Three class scores per point, by hand: no training."""
    return np.column_stack([points, -points.sum(axis=1)])


# Every public function of nnx.plot that returns a figure, on small data, and its figure's (width, height) in inches.
FIGURES = {
    "decision_boundary": lambda: nnx.plot.decision_boundary(scores, POINTS, LABELS, resolution=20, dpi=DPI),
    "history": lambda: nnx.plot.history(HISTORY, figsize=(5, 6), dpi=DPI),
    "regression": lambda: nnx.plot.regression(np.sin, SINE_X, np.sin(SINE_X), dpi=DPI),
    "summary": lambda: nnx.plot.summary(scores, POINTS, LABELS, HISTORY, resolution=20, dpi=DPI),
}
SIZES = {"decision_boundary": (6, 6), "history": (5, 6), "regression": (7, 4.5), "summary": (12, 6)}

FRESH_PROCESS = """
import pathlib, sys
from tests.test_plot_inline import FIGURES
for name, plot in FIGURES.items():
    figure = plot()
    assert figure._repr_png_().startswith(b"\\x89PNG"), f"{name}: no PNG"
    figure.savefig(pathlib.Path(sys.argv[1]) / f"{name}.png")
    assert "matplotlib.pyplot" not in sys.modules, f"{name} imported pyplot"
"""

UNPICKLE = """
import pickle, sys
with open(sys.argv[1], "rb") as file:
    figure = pickle.load(file)
assert type(figure).__name__ == "NotebookFigure", type(figure)
assert figure._repr_png_().startswith(b"\\x89PNG"), "no PNG"
assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
"""


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG's header chunk."""
    return struct.unpack(">II", png[16:24])


def run_fresh(code: str, *args: str) -> None:
    """Run `code` in a new Python process at the repository root; fail with its error output."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


def test_every_public_figure_function_is_covered():
    public = {name for name in nnx.plot.__all__ if callable(getattr(nnx.plot, name))}
    assert public - {"save", "new_figure"} == set(FIGURES)


@pytest.mark.parametrize("name", FIGURES)
def test_figure_has_a_png_of_its_own_size_for_notebooks(name):
    png = FIGURES[name]()._repr_png_()
    assert isinstance(png, bytes) and png.startswith(PNG)
    width, height = png_size(png)
    drawn = np.array(SIZES[name]) * DPI
    assert np.all(np.abs(np.array([width, height]) - drawn) <= 0.2 * drawn), ((width, height), drawn)


@pytest.mark.parametrize("name", FIGURES)
def test_ipython_displays_the_figure_as_a_png(name):
    formatters = pytest.importorskip("IPython.core.formatters")
    data, _ = formatters.DisplayFormatter().format(FIGURES[name]())
    assert data["image/png"].startswith(PNG)
    assert "NotebookFigure" in data["text/plain"]


def test_figures_show_and_save_without_pyplot_in_a_fresh_process(tmp_path):
    run_fresh(FRESH_PROCESS, str(tmp_path))
    for name in FIGURES:
        assert (tmp_path / f"{name}.png").read_bytes().startswith(PNG), name


def test_importing_nnx_plot_leaves_matplotlib_unloaded():
    run_fresh("import sys, nnx.plot; assert 'matplotlib' not in sys.modules, 'matplotlib was imported'")


def test_figures_still_save_with_savefig_and_save(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = FIGURES["history"]()
    assert isinstance(figure.canvas, FigureCanvasAgg)
    figure.savefig(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes().startswith(PNG)
    nnx.plot.save(figure, tmp_path / "curves.svg")
    assert b"<svg" in (tmp_path / "curves.svg").read_bytes()


def test_figures_pickle_and_copy_with_their_png(tmp_path):
    figure = FIGURES["regression"]()
    for copied in (pickle.loads(pickle.dumps(figure)), copy.deepcopy(figure)):
        assert type(copied) is type(figure)
        assert copied._repr_png_().startswith(PNG)
    path = tmp_path / "figure.pickle"
    path.write_bytes(pickle.dumps(figure))
    run_fresh(UNPICKLE, str(path))


def test_given_axes_return_the_users_figure_as_it_is():
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4), dpi=DPI)
    left, right = figure.subplots(1, 2)
    assert nnx.plot.decision_boundary(scores, POINTS, LABELS, ax=left, resolution=10) is figure
    assert nnx.plot.regression(np.sin, SINE_X, np.sin(SINE_X), ax=right) is figure
    panels = Figure(dpi=DPI)
    assert nnx.plot.history(HISTORY, axes=panels.subplots(3, 1)) is panels
    assert type(figure) is Figure and type(panels) is Figure
