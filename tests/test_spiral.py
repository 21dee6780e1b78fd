"""The chapter-10 spiral run: the book's log, the same losses on every backend, and the example script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import nnx
from nnx.recipes import book_layers, train_book_loop, train_spiral
from tests.conftest import backend_or_skip

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "spiral.py"
BOOK_LOG = {0: (0.360, 1.099), 100: (0.400, 1.087), 200: (0.417, 1.077), 300: (0.413, 1.076)}


def spiral_losses(backend, epochs: int, every: int = 10) -> dict[int, tuple[float, float]]:
    """Train the book's 2-64-3 network with SGD(1.0); (accuracy, loss) every `every` epochs, copied to the host."""
    nnx.seed(0)
    X_host, y_host = nnx.datasets.spiral_data(samples=100, classes=3)
    X, y = backend.asarray(X_host, dtype="float32"), backend.asarray(y_host)
    network = book_layers(backend=backend)
    log = {}

    def record(epoch, loss):
        if epoch % every == 0:
            accuracy = nnx.accuracy(network.loss_activation.output, y)
            log[epoch] = (float(backend.to_numpy(accuracy)), float(backend.to_numpy(loss)))

    train_book_loop(network, X, y, epochs, on_step=record)
    return log


def test_book_log_lines(backend):
    log = spiral_losses(backend, epochs=301, every=100)
    for epoch, (book_acc, book_loss) in BOOK_LOG.items():
        acc, loss = log[epoch]
        assert acc == pytest.approx(book_acc, abs=0.0051), f"epoch {epoch}"
        assert loss == pytest.approx(book_loss, abs=0.002), f"epoch {epoch}"


def test_every_backend_gives_numpys_losses(backend, numpy_backend):
    reference = spiral_losses(numpy_backend, epochs=200)
    log = spiral_losses(backend, epochs=200)
    for epoch, (acc, loss) in reference.items():
        assert log[epoch][1] == pytest.approx(loss, rel=1e-4), f"epoch {epoch}"
        assert log[epoch][0] == pytest.approx(acc, abs=0.01), f"epoch {epoch}"


def test_sgd_decay_schedule():
    optimizer = nnx.SGD(learning_rate=1.0, decay=1e-2)
    rates = []
    for _ in range(4):
        optimizer.pre_update_params()
        rates.append(optimizer.current_learning_rate)
        optimizer.post_update_params()
    assert rates == [1.0 / (1 + 1e-2 * i) for i in range(4)]
    assert optimizer.iterations == 4


def run_example(*args: str, backend: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NNX_BACKEND"}
    if backend is not None:
        env["NNX_BACKEND"] = backend
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def test_example_prints_the_book_log():
    result = run_example("--epochs", "301")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "nnx: backend numpy on CPU"
    assert lines[1:5] == [
        "epoch: 0, acc: 0.360, loss: 1.099",
        "epoch: 100, acc: 0.400, loss: 1.087",
        "epoch: 200, acc: 0.417, loss: 1.077",
        "epoch: 300, acc: 0.413, loss: 1.076",
    ]
    assert len(lines) == 5


def test_example_on_strict_backend_matches_numpy():
    pytest.importorskip("array_api_strict")
    numpy_run = run_example("--epochs", "201")
    strict_run = run_example("--epochs", "201", backend="array_api_strict")
    assert strict_run.returncode == 0, strict_run.stderr
    assert strict_run.stdout.splitlines()[0].startswith("nnx: backend array_api_strict on ")
    assert strict_run.stdout.splitlines()[1:] == numpy_run.stdout.splitlines()[1:]
    assert len(numpy_run.stdout.splitlines()) == 4  # epochs 0, 100 and 200


@pytest.mark.slow
def test_example_full_length_is_line_for_line_the_same_on_array_api_strict():
    """All 10 001 epochs of the book's run (about 4 s on NumPy and 12 s on array_api_strict, on a CPU)."""
    pytest.importorskip("array_api_strict")
    numpy_run, strict_run = run_example(), run_example(backend="array_api_strict")
    assert strict_run.returncode == 0, strict_run.stderr
    lines = numpy_run.stdout.splitlines()
    assert len(lines) == 102 and lines[-1].startswith("epoch: 10000, acc: ")
    assert strict_run.stdout.splitlines()[1:] == lines[1:]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_example_prints_the_recipes_numbers_with_decay_and_momentum(backend, dtype):
    """The script and `train_spiral` (what `nnx sweep` runs) are the same loop: the same numbers, on any backend,
    in either float width."""
    if not backend.has_dtype(dtype):
        pytest.skip(f"{backend.name} has no {dtype} here (JAX: without JAX_ENABLE_X64; test_array_api runs it with)")
    settings = {"lr": 0.85, "decay": 1e-3, "momentum": 0.5}
    options = [text for name, value in settings.items() for text in (f"--{name}", str(value))]
    result = run_example("--epochs", "301", "--dtype", dtype, *options, backend=backend.name)
    assert result.returncode == 0, result.stderr
    history = train_spiral(epochs=301, every=100, backend=backend, dtype=dtype, **settings).history
    curves = zip(history.epoch, history.history["accuracy"], history.history["loss"], strict=True)
    lines = [f"epoch: {epoch}, acc: {acc:.3f}, loss: {loss:.3f}" for epoch, acc, loss in curves]
    assert result.stdout.splitlines()[1:] == lines


@pytest.mark.parametrize("name, message", [("cupy", "pip install"), ("no_such_backend", "registered backends are")])
def test_example_unavailable_backend_exits_2_with_one_line(name, message):
    if name in nnx.backends.available():
        pytest.skip(f"{name} is available here")
    result = run_example("--epochs", "1", backend=name)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_example_rejects_bad_options():
    result = run_example("--epochs", "0")
    assert result.returncode == 2 and result.stdout == ""
    assert "spiral.py: error: argument --epochs: must be at least 1, got 0" in result.stderr
    removed = run_example("--epochs", "1", "--every", "10")  # the book prints every 100 epochs
    assert removed.returncode == 2 and "unrecognized arguments: --every 10" in removed.stderr


def test_runs_alongside_nnfs_init():
    """nnfs.init() patches NumPy globally; nnx must still reproduce the book under it (in a fresh process)."""
    code = (
        "import nnfs, numpy as np, nnx\n"
        "nnfs.init()\n"
        "from nnfs.datasets import spiral_data\n"
        "X, y = spiral_data(samples=100, classes=3)\n"
        "d1, r, d2 = nnx.Dense(2, 64), nnx.ReLU(), nnx.Dense(64, 3)\n"
        "head = nnx.SoftmaxCategoricalCrossentropy()\n"
        "d1.forward(X); r.forward(d1.output); d2.forward(r.output)\n"
        "print(f'{head.forward(d2.output, y):.3f} {nnx.accuracy(head.output, y):.3f}')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["1.099", "0.360"]


# nnx.recipes.train_spiral (the example's loop as a function, what `nnx sweep` runs) and the example's --plot -------


def test_recipe_is_the_layer_loop_exactly(backend):

    result = train_spiral(epochs=101, every=10, backend=backend)
    reference = spiral_losses(backend, epochs=101)
    assert result.history.epoch == [*range(0, 101, 10)]
    for epoch, (acc, loss) in reference.items():
        index = result.history.epoch.index(epoch)
        assert (result.history.history["accuracy"][index], result.history.history["loss"][index]) == (acc, loss)
    assert result.final == {"accuracy": reference[100][0], "loss": reference[100][1]}
    recorded = zip(result.history.epoch, result.history.history["loss"], strict=True)
    assert result.best == min(recorded, key=lambda pair: pair[1])


def test_recipe_records_the_last_epoch_and_stops_on_divergence():

    result = train_spiral(epochs=25, every=10, lr=0.5, decay=1e-2, momentum=0.5)
    assert result.history.epoch == [0, 10, 20, 24]
    assert result.history.history["lr"][-1] == pytest.approx(0.5 / (1 + 1e-2 * 23))
    with pytest.raises(nnx.DivergenceError, match="training diverged at epoch"):
        train_spiral(epochs=201, every=50, lr=1e30)
    with pytest.raises(ValueError, match="train_spiral epochs must be"):
        train_spiral(epochs=0)


def test_book_layers_take_any_optimizer_on_its_backend(backend):
    network = book_layers(hidden=8, optimizer=nnx.Adam(learning_rate=0.05, xp=backend))
    assert network.backend is backend and network.dense1.backend is backend
    assert (network.dense1.n_neurons, network.dense2.n_neurons) == (8, 3)
    X, y = nnx.datasets.spiral_data(samples=20, classes=3)
    losses = []
    train_book_loop(
        network,
        backend.asarray(X, dtype="float32"),
        backend.asarray(y),
        3,
        on_step=lambda epoch, loss: losses.append((epoch, float(backend.to_numpy(loss)))),
    )
    assert [epoch for epoch, _ in losses] == [0, 1, 2] and network.optimizer.iterations == 3


def test_book_layers_and_loop_refuse_bad_arguments(numpy_backend):
    with pytest.raises(TypeError, match=r"book_layers optimizer must be an nnx Optimizer, got str; pass e\.g\."):
        book_layers(optimizer="adam")
    strict = backend_or_skip("array_api_strict")
    with pytest.raises(ValueError, match=r"computes on backend 'array_api_strict', the layers on 'numpy'; make the"):
        book_layers(optimizer=nnx.SGD(xp=strict), backend=numpy_backend)
    network = book_layers(backend=numpy_backend)
    with pytest.raises(ValueError, match=r"train_book_loop epochs must be a positive integer, got 0"):
        train_book_loop(network, numpy_backend.asarray([[0.0, 1.0]]), numpy_backend.asarray([0]), 0)
    assert network.optimizer.iterations == 0


def test_example_plot_writes_the_picture(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    from PIL import Image

    path = tmp_path / "spiral.png"
    result = run_example("--epochs", "101", "--plot", str(path))
    assert result.returncode == 0, result.stderr
    with Image.open(path) as image:
        width, height = image.size
        colours = len(image.convert("RGB").resize((200, 100)).getcolors(maxcolors=20000) or ())
    assert width > 2 * height / 1.5 and height >= 300
    assert colours > 50  # regions, points and curves: far from a blank canvas
