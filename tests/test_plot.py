"""nnx.plot: the pictures are rendered to PNG and their pixels checked (size, not blank, every class's point and
region colour present), for a Model, a layer-level predict function, backend arrays, histories and bad inputs."""

from __future__ import annotations

import functools
import sys
import types

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="nnx.plot needs matplotlib (the plot extra)")
Image = pytest.importorskip("PIL.Image", reason="the PNG checks read images with pillow (the test extra)")

import nnx  # noqa: E402
import nnx.plot  # noqa: E402
from nnx.datasets import sine_data, spiral_data  # noqa: E402
from nnx.plot.style import LIGHTEN, PALETTE  # noqa: E402
from nnx.recipes import book_layers  # noqa: E402
from tests import helpers  # noqa: E402

TOLERANCE = 3  # per channel, 0-255: PNG rounding of the exact colours
DPI = 50


# Helpers --------------------------------------------------------------------------------------------------------


def render(figure, tmp_path, name="figure.png", dpi=DPI) -> np.ndarray:
    """The figure saved as PNG and read back: an (height, width, 3) uint8 array."""
    path = nnx.plot.save(figure, tmp_path / name, dpi=dpi)
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def rgb255(colour) -> np.ndarray:
    from matplotlib.colors import to_rgb

    return np.round(np.asarray(to_rgb(colour)) * 255)


def point_colour(k: int) -> np.ndarray:
    return rgb255(PALETTE[k])


def region_colour(k: int) -> np.ndarray:
    colour = rgb255(PALETTE[k]) / 255
    return np.round((colour + (1 - colour) * LIGHTEN) * 255)


def share_of(pixels: np.ndarray, colour: np.ndarray) -> float:
    """The fraction of pixels within TOLERANCE of `colour`."""
    close = np.all(np.abs(pixels.astype(int) - colour) <= TOLERANCE, axis=-1)
    return float(close.mean())


def assert_picture(pixels: np.ndarray, size: tuple[int, int]) -> None:
    """`size` is (width, height); the picture has many colours and is not mostly white."""
    assert (pixels.shape[1], pixels.shape[0]) == size
    distinct = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(distinct) > 50
    white = np.all(pixels > 250, axis=-1).mean()
    assert white < 0.9


spiral_classifier = functools.partial(
    helpers.spiral_classifier, hidden=64, optimizer=functools.partial(nnx.Adam, learning_rate=0.05, decay=5e-5)
)


@pytest.fixture(scope="module")
def trained_spiral():
    """(model, X, y, what train returned) after 300 epochs on the book's spiral."""
    nnx.seed(0)
    X, y = spiral_data(samples=100, classes=3)
    model = spiral_classifier()
    result = model.train(X, y, epochs=300, print_every=None, validation_data=(X, y))
    return model, X, y, result


def hand_history(epochs=20):
    """A history as a dict with validation measured every 5 epochs only."""
    epoch = list(range(1, epochs + 1))
    loss = [1.1 * 0.9**e for e in epoch]
    return {
        "epoch": epoch,
        "loss": loss,
        "accuracy": [min(0.3 + 0.03 * e, 1.0) for e in epoch],
        "lr": [0.05 / (1 + 1e-2 * e) for e in epoch],
        "val_loss": [value * 1.2 if e % 5 == 0 else None for e, value in zip(epoch, loss, strict=True)],
        "val_accuracy": [0.5 if e % 5 == 0 else None for e in epoch],
    }


def layer_network(backend, seed=0):
    """The chapter-10 network as the book's loose objects: its predict function (the forward pass, logits out)."""
    nnx.seed(seed)
    return book_layers(backend=backend).predict


# Decision boundary ----------------------------------------------------------------------------------------------


def test_decision_boundary_of_a_trained_spiral_model(trained_spiral, tmp_path):
    model, X, y, _ = trained_spiral
    figure = nnx.plot.decision_boundary(model, X, y, resolution=150, figsize=(6, 6), dpi=100)
    pixels = render(figure, tmp_path, dpi=60)
    assert_picture(pixels, (360, 360))
    for k in range(3):
        assert share_of(pixels, region_colour(k)) > 0.05, f"region of class {k}"
        assert share_of(pixels, point_colour(k)) > 0.002, f"points of class {k}"
    assert "accuracy 0." in figure.axes[0].get_title()


def test_decision_boundary_of_a_layer_level_network_with_one_hot_labels(tmp_path, numpy_backend):
    X, y = spiral_data(samples=40, classes=3)
    one_hot = np.eye(3)[y]
    figure = nnx.plot.decision_boundary(layer_network(numpy_backend), X, one_hot, resolution=60, title="untrained")
    pixels = render(figure, tmp_path, dpi=100)
    assert_picture(pixels, (600, 600))
    assert figure.axes[0].get_title() == "untrained"
    assert [len(points.get_offsets()) for points in figure.axes[0].collections] == [40, 40, 40]
    for k in range(3):
        assert share_of(pixels, point_colour(k)) > 0.001, f"points of class {k}"


def test_decision_boundary_takes_backend_arrays(backend, tmp_path):
    X, y = spiral_data(samples=30, classes=3)
    X_device, y_device = backend.asarray(X, dtype="float32"), backend.asarray(y)
    figure = nnx.plot.decision_boundary(layer_network(backend), X_device, y_device, resolution=40)
    assert_picture(render(figure, tmp_path), (300, 300))


def test_decision_boundary_takes_labels_and_draws_into_given_axes(tmp_path):
    from matplotlib.figure import Figure

    X, y = spiral_data(samples=30, classes=2)
    figure = Figure(figsize=(8, 4), dpi=DPI)
    left, right = figure.subplots(1, 2)
    returned = nnx.plot.decision_boundary(lambda points: (points[:, 0] > 0).astype(int), X, y, ax=right)
    assert returned is figure
    assert right.images and not left.images
    pixels = render(figure, tmp_path)
    assert (pixels.shape[1], pixels.shape[0]) == (400, 200)
    assert share_of(pixels, region_colour(0)) > 0.05 and share_of(pixels, region_colour(1)) > 0.05


def test_decision_boundary_of_a_sigmoid_probability(tmp_path):
    X, y = spiral_data(samples=30, classes=2)
    figure = nnx.plot.decision_boundary(lambda points: 1 / (1 + np.exp(-points[:, :1] * 5)), X, y, resolution=50)
    pixels = render(figure, tmp_path)
    assert share_of(pixels, region_colour(0)) > 0.05 and share_of(pixels, region_colour(1)) > 0.05


# History --------------------------------------------------------------------------------------------------------


def test_history_from_a_mapping(tmp_path):
    figure = nnx.plot.history(hand_history(), figsize=(6, 7.8))
    assert [ax.get_title() for ax in figure.axes] == ["loss", "accuracy", "learning rate"]
    loss_lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert loss_lines["val_loss"].get_linestyle() == "--" and loss_lines["loss"].get_linestyle() == "-"
    assert loss_lines["val_loss"].get_color() == loss_lines["loss"].get_color()
    assert len(loss_lines["val_loss"].get_xdata()) == 4 and loss_lines["val_loss"].get_marker() == "o"
    assert_picture(render(figure, tmp_path), (300, 390))


def test_history_from_an_object_with_epoch_and_history_and_default_epochs(tmp_path):
    recorded = types.SimpleNamespace(
        epoch=[10, 20, 30],
        history={"loss": [1.0, 0.7, 0.5], "accuracy": [0.4, 0.6, 0.7], "val_accuracy": [None, None, 0.65]},
    )
    figure = nnx.plot.history(recorded)
    assert [ax.get_title() for ax in figure.axes] == ["loss", "accuracy"]
    val = next(line for line in figure.axes[1].get_lines() if line.get_label() == "val_accuracy")
    assert list(val.get_xdata()) == [30] and val.get_marker() == "o"
    render(figure, tmp_path)
    unnumbered = nnx.plot.history({"loss": np.array([3.0, 2.0, np.nan, 1.0])})
    assert list(unnumbered.axes[0].get_lines()[0].get_xdata()) == [0, 1, 3]


def test_history_accepts_what_model_train_returns(trained_spiral, tmp_path):
    result = trained_spiral[3]
    if not hasattr(result, "epoch"):
        pytest.skip("Model.train returns only the last epoch's metrics here, not a History")
    figure = nnx.plot.history(result)
    assert "loss" in [ax.get_title() for ax in figure.axes]
    render(figure, tmp_path)


def test_history_into_given_axes_marks_extra_ones_no_data():
    from matplotlib.figure import Figure

    figure = Figure()
    axes = figure.subplots(3, 1)
    assert nnx.plot.history({"loss": [1.0, 0.5]}, axes=axes) is figure
    assert axes[1].texts[0].get_text() == "no data"


# Regression and summary -----------------------------------------------------------------------------------------


def test_regression_of_sine_data(tmp_path):
    nnx.seed(0)
    X, y = sine_data()
    model = nnx.Model()
    model.add(nnx.Dense(1, 64))
    model.add(nnx.ReLU())
    model.add(nnx.Dense(64, 1))
    model.add(nnx.Linear())
    model.set(loss=nnx.MeanSquaredError(), optimizer=nnx.Adam(learning_rate=0.01), accuracy=nnx.metrics.Regression())
    model.finalize()
    model.train(X, y, epochs=50, print_every=None)
    order = np.random.default_rng(0).permutation(len(X))
    figure = nnx.plot.regression(model, X[order], y[order][:, 0], figsize=(6, 4))
    line = figure.axes[0].get_lines()[0]
    assert np.all(np.diff(line.get_xdata()) >= 0)
    pixels = render(figure, tmp_path)
    assert_picture(pixels, (300, 200))
    assert share_of(pixels, point_colour(1)) > 0.002  # the prediction line


def test_regression_of_a_function_is_exact():
    X = np.linspace(0, 1, 50)
    figure = nnx.plot.regression(lambda column: np.sin(column), X, np.sin(X))
    line = figure.axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), np.sin(X))
    assert "mean squared error 0" in figure.axes[0].get_title()


def test_summary_puts_the_boundary_left_and_the_curves_right(trained_spiral, tmp_path):
    model, X, y, _ = trained_spiral
    figure = nnx.plot.summary(model, X, y, hand_history(), title="spiral", resolution=100, figsize=(12, 6))
    boundary, *curves = figure.axes
    assert boundary.images and [ax.get_title() for ax in curves] == ["loss", "accuracy", "learning rate"]
    pixels = render(figure, tmp_path)
    assert boundary.get_position().x1 <= min(ax.get_position().x0 for ax in curves)
    assert_picture(pixels, (600, 300))
    for k in range(3):
        assert share_of(pixels, region_colour(k)) > 0.02, f"region of class {k}"


# Bad inputs -----------------------------------------------------------------------------------------------------


def identity_scores(points):
    return np.column_stack([points, -points.sum(axis=1)])


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.zeros((5, 3)), np.zeros(5, dtype=int), r"decision_boundary expected X of shape \(n_samples, 2\).*\(5, 3\)"),
        (np.zeros(5), np.zeros(5, dtype=int), r"expected X of shape \(n_samples, 2\).*\(5,\)"),
        (np.zeros((5, 2)), np.zeros(4, dtype=int), r"expected y as 5 class labels.*\(4,\)"),
        (np.zeros((5, 2)), np.full(5, 0.5), "whole class numbers"),
        (np.full((5, 2), np.nan), np.zeros(5, dtype=int), "NaN or infinity in X"),
    ],
)
def test_decision_boundary_rejects_bad_data(X, y, message):
    with pytest.raises(ValueError, match=message):
        nnx.plot.decision_boundary(identity_scores, X, y)


def test_decision_boundary_rejects_a_predict_function_of_the_wrong_shape():
    X, y = np.zeros((5, 2)), np.zeros(5, dtype=int)
    with pytest.raises(ValueError, match=r"scores of shape \(\d+, n_classes\).*got an array of shape \(3,\)"):
        nnx.plot.decision_boundary(lambda points: np.zeros(3), X, y, resolution=10)
    with pytest.raises(ValueError, match=r"got an array of shape \(5, 2, 2\)"):  # checked on the data first
        nnx.plot.decision_boundary(lambda points: np.zeros((len(points), 2, 2)), X, y, resolution=10)


@pytest.mark.parametrize("not_a_model", [None, "model", 3, [1, 2]])
def test_plots_reject_what_is_neither_a_model_nor_a_function(not_a_model):
    with pytest.raises(TypeError, match=r"expected a finalized nnx\.Model or a function predict_fn"):
        nnx.plot.decision_boundary(not_a_model, np.zeros((5, 2)), np.zeros(5, dtype=int))
    with pytest.raises(TypeError, match=r"nnx\.plot\.regression expected a finalized nnx\.Model"):
        nnx.plot.regression(not_a_model, np.zeros(5), np.zeros(5))


def test_regression_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"regression expected X with one feature.*\(5, 2\)"):
        nnx.plot.regression(np.sin, np.zeros((5, 2)), np.zeros(5))
    with pytest.raises(ValueError, match=r"one target per row of X.*\(4,\)"):
        nnx.plot.regression(np.sin, np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError, match=r"one prediction per sample.*\(5, 3\)"):
        nnx.plot.regression(lambda column: np.zeros((5, 3)), np.zeros(5), np.zeros(5))


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        ({}, ValueError, "empty history"),
        ({"epoch": [], "loss": []}, ValueError, "empty history"),
        (types.SimpleNamespace(epoch=[], history={}), ValueError, "empty history"),
        ({"loss": [None, None]}, ValueError, "empty history"),
        ({"loss": 0.5, "accuracy": 0.9}, ValueError, "not the final metrics"),
        ({"epoch": [1, 2, 3], "loss": [1.0, 0.5]}, ValueError, r"one value per epoch \(3\), got 2"),
        ([1.0, 0.5], TypeError, "expected a History"),
        ({"loss": [True, False]}, TypeError, r"history\['loss'\] to hold real numbers, got True \(bool\)"),
        ({"loss": np.array([True, False])}, TypeError, r"history\['loss'\] to hold real numbers"),
        ({"loss": [1.0, "0.5"]}, TypeError, r"history\['loss'\] to hold real numbers, got '0.5'"),
        ({1: [1.0, 0.5], "loss": [1.0, 0.5]}, TypeError, r"metric names as strings, got 1 \(int\)"),
        ({"epoch": ["a", "b"], "loss": [1.0, 0.5]}, TypeError, r"history\['epoch'\] to hold real numbers, got 'a'"),
        ({"epoch": [1, None], "loss": [1.0, 0.5]}, ValueError, r"history\['epoch'\] as finite epoch numbers"),
        ({"epoch": 2, "loss": [1.0, 0.5]}, TypeError, r"history\['epoch'\] as a list of epoch numbers"),
        (types.SimpleNamespace(epoch=["a"], history={"loss": [1.0]}), TypeError, r"history\.epoch to hold real"),
    ],
)
def test_history_rejects_bad_histories(bad, error, message):
    with pytest.raises(error, match=message):
        nnx.plot.history(bad)


def test_missing_matplotlib_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'pip install "nnx-nnfs\[plot\]"') as caught:
        nnx.plot.decision_boundary(identity_scores, np.zeros((5, 2)), np.zeros(5, dtype=int))
    assert caught.value.__cause__ is not None


def test_decision_boundary_refuses_models_it_cannot_colour(trained_spiral):
    model, X, y, _ = trained_spiral
    unfinished = spiral_classifier()
    unfinished.finalized = False
    with pytest.raises(nnx.CallOrderError, match=r"decision_boundary got a Model that is not finalized"):
        nnx.plot.decision_boundary(unfinished, X, y)
    regressor = nnx.Model()
    for layer in (nnx.Dense(2, 4), nnx.ReLU(), nnx.Dense(4, 1), nnx.Linear()):
        regressor.add(layer)
    regressor.set(loss=nnx.MeanSquaredError(), optimizer=nnx.Adam(), accuracy=nnx.metrics.Regression())
    regressor.finalize()
    with pytest.raises(ValueError, match=r"needs a classifier .* ending in Linear\(\).*nnx\.plot\.regression"):
        nnx.plot.decision_boundary(regressor, X, y)
    with pytest.raises(ValueError, match=r"got class 5 in y, but the model has 3 outputs"):
        nnx.plot.decision_boundary(model, X, np.where(y == 2, 5, y))


def test_decision_boundary_refuses_non_finite_predictions_and_huge_grids():
    X, y = np.zeros((5, 2)), np.zeros(5, dtype=int)
    with pytest.raises(ValueError, match="NaN or infinite predictions"):
        nnx.plot.decision_boundary(lambda points: np.full((len(points), 3), np.nan), X, y, resolution=10)
    with pytest.raises(ValueError, match=r"resolution must be at most 2000 .* got 100000"):
        nnx.plot.decision_boundary(identity_scores, X, y, resolution=100_000)


@pytest.mark.parametrize("not_axes", ["x", 1, object()])
def test_plots_refuse_what_is_not_an_axes(not_axes):
    X, y = np.zeros((5, 2)), np.zeros(5, dtype=int)
    with pytest.raises(TypeError, match=r"decision_boundary expected ax as a matplotlib Axes"):
        nnx.plot.decision_boundary(identity_scores, X, y, ax=not_axes, resolution=10)
    with pytest.raises(TypeError, match=r"regression expected ax as a matplotlib Axes"):
        nnx.plot.regression(np.sin, np.zeros(5), np.zeros(5), ax=not_axes)
    with pytest.raises(TypeError, match=r"history expected axes as an Axes or a list of them"):
        nnx.plot.history({"loss": [1.0, 0.5]}, axes=not_axes)
    with pytest.raises(TypeError, match=r"history expected axes as a matplotlib Axes"):
        nnx.plot.history({"loss": [1.0, 0.5]}, axes=[not_axes])


# Settings, figures and formats ----------------------------------------------------------------------------------


def never_called(points):
    raise AssertionError("the predict function ran before the arguments were checked")


@pytest.mark.parametrize(
    ("setting", "error", "message"),
    [
        ({"point_size": -5}, ValueError, r"decision_boundary expected point_size as a finite number >= 0.*got -5"),
        ({"point_size": "big"}, TypeError, r"point_size as a finite number >= 0.*got 'big' \(str\)"),
        ({"class_names": "cat"}, TypeError, r"class_names as a list of strings.*got 'cat' \(str\)"),
        ({"class_names": ["a", 2, "c"]}, TypeError, r"class_names as strings, got 2 \(int\) at position 1"),
        ({"class_names": ["a", "b"]}, ValueError, r"class_names for all 3 classes in y, got 2 names"),
        ({"margin": 1e308}, ValueError, r"margin as a finite number in \[0, 100\].*got 1e\+308"),
        ({"margin": -0.1}, ValueError, r"margin as a finite number in \[0, 100\]"),
    ],
)
def test_decision_boundary_checks_its_settings_before_predicting(setting, error, message):
    X, y = spiral_data(samples=10, classes=3)
    with pytest.raises(error, match=message):
        nnx.plot.decision_boundary(never_called, X, y, resolution=10, **setting)


def test_decision_boundary_names_margin_when_the_grid_overflows():
    X, y = spiral_data(samples=10, classes=3)
    with pytest.raises(ValueError, match=r"widened by margin=50 of its size overflows float64.*smaller margin"):
        nnx.plot.decision_boundary(identity_scores, X * 1e307, y, margin=50, resolution=10)


def test_decision_boundary_takes_class_names_and_extreme_settings():
    X, y = spiral_data(samples=10, classes=3)
    figure = nnx.plot.decision_boundary(
        identity_scores, X, y, resolution=10, class_names=("x", "y", "z", "w"), point_size=0, margin=100
    )
    assert [text.get_text() for text in figure.axes[0].get_legend().get_texts()] == ["x", "y", "z"]


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ({"figsize": (0, 0)}, ValueError),
        ({"figsize": (-1, 2)}, ValueError),
        ({"figsize": (6, float("nan"))}, ValueError),
        ({"figsize": "big"}, TypeError),
        ({"figsize": (6,)}, TypeError),
        ({"dpi": 0}, ValueError),
        ({"dpi": -1}, ValueError),
        ({"dpi": "high"}, TypeError),
    ],
)
def test_plots_check_figsize_and_dpi(setting, error):
    X, y = spiral_data(samples=10, classes=3)
    name = next(iter(setting))
    expected = "figsize as \\(width, height\\) in inches" if name == "figsize" else "dpi as a finite number > 0"
    plots = {
        "decision_boundary": lambda: nnx.plot.decision_boundary(never_called, X, y, **setting),
        "regression": lambda: nnx.plot.regression(never_called, X[:, 0], y, **setting),
        "history": lambda: nnx.plot.history({"loss": [1.0, 0.5]}, **setting),
        "summary": lambda: nnx.plot.summary(never_called, X, y, {"loss": [1.0, 0.5]}, **setting),
    }
    for function, plot in plots.items():
        with pytest.raises((TypeError, ValueError), match=rf"nnx\.plot\.{function} expected {expected}") as caught:
            plot()
        assert caught.type is error


def test_save_checks_the_figure_and_dpi_first(tmp_path):
    figure = nnx.plot.history({"loss": [1.0, 0.5]})
    with pytest.raises(TypeError, match=r"save expected a matplotlib Figure .*got 'figure' \(str\)"):
        nnx.plot.save("figure", tmp_path / "c.png")
    for dpi in (0, -1, float("inf")):
        with pytest.raises(ValueError, match=r"save expected dpi as a finite number > 0 .*or None"):
            nnx.plot.save(figure, tmp_path / "c.png", dpi=dpi)
    assert not list(tmp_path.iterdir())
    assert nnx.plot.save(figure, tmp_path / "c.png", dpi=None) == tmp_path / "c.png"


def test_check_path_refuses_pgf_without_tex(monkeypatch, tmp_path):
    import shutil

    from matplotlib import rc_context

    monkeypatch.setattr(shutil, "which", lambda program: None)
    with rc_context({"pgf.texsystem": "lualatex"}), pytest.raises(ValueError, match=r"runs lualatex .*install TeX"):
        nnx.plot.check_path(tmp_path / "figure.PGF")
    with pytest.raises(ValueError, match=r"nnx\.plot\.save cannot write .*\.pgf.*\.png, \.svg or \.pdf"):
        nnx.plot.save(nnx.plot.history({"loss": [1.0, 0.5]}), tmp_path / "figure.pgf")
    assert nnx.plot.check_path(tmp_path / "figure.eps") == tmp_path / "figure.eps"
    monkeypatch.setattr(shutil, "which", lambda program: f"/usr/bin/{program}")
    assert nnx.plot.check_path(tmp_path / "figure.pgf") == tmp_path / "figure.pgf"


@pytest.mark.parametrize("library", ["array_api_strict", "torch"])
def test_plots_read_arrays_of_backends_not_loaded_yet(library, monkeypatch):
    module = pytest.importorskip(library)
    try:
        nnx.backends.get(library)
    except nnx.backends.BackendUnavailableError as error:
        pytest.skip(str(error))
    monkeypatch.setattr(nnx.backends, "_loaded", {})  # as in a fresh process: no backend loaded yet
    X, y = spiral_data(samples=10, classes=3)

    def predict_fn(points):
        return module.asarray(points) @ module.asarray(np.eye(2, 3))

    figure = nnx.plot.decision_boundary(predict_fn, X, y, resolution=10)
    assert figure.axes[0].images
    history = nnx.plot.history({"loss": [module.asarray(1.0), module.asarray(0.5)]})
    assert list(history.axes[0].get_lines()[0].get_ydata()) == [1.0, 0.5]
    for not_an_array in (module.float64, object()):
        with pytest.raises(TypeError, match=r"predict function's output as a NumPy array or an array of an nnx"):
            nnx.plot.decision_boundary(lambda points, bad=not_an_array: bad, X, y, resolution=10)
