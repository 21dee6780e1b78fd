"""Every example script runs briefly on every backend and prints the book's line formats."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import NUMPY_ARITHMETIC
from tests.test_datasets import write_idx_dataset

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EPOCH_LINE = re.compile(
    r"^epoch: \d+, acc: \d\.\d{3}, loss: \d+\.\d{3} \(data_loss: \d+\.\d{3}, reg_loss: \d+\.\d{3}\), lr: "
)


def run(script: str, *args: str, backend: str = "numpy", compile: bool = True) -> subprocess.CompletedProcess:
    """Run an example on `backend`; `compile=False` keeps Model.train on the generic step (NNX_COMPILE=0)."""
    env = {**os.environ, "NNX_BACKEND": backend, **({} if compile else {"NNX_COMPILE": "0"})}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.parametrize("script", ["spiral_adam.py", "binary.py", "sine.py"])
def test_model_examples(backend, script):
    result = run(script, "--epochs", "20", "--every", "10", backend=backend.name)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"nnx: backend {backend.name} on {backend.device}"
    assert EPOCH_LINE.match(lines[1]) and lines[1].startswith("epoch: 10,")
    assert EPOCH_LINE.match(lines[2]) and lines[2].startswith("epoch: 20,")
    if script == "sine.py":
        assert lines[3].startswith("done: mean squared error ")
    else:
        assert re.match(r"^validation, acc: \d\.\d{3}, loss: \d+\.\d{3}$", lines[3])


def test_spiral_adam_with_dropout_matches_on_every_backend(backend):
    args = ("--epochs", "30", "--every", "10", "--dropout", "0.1", "--lr", "0.05", "--decay", "5e-5")
    reference = run("spiral_adam.py", *args, compile=False)  # the generic code, line for line on every backend
    result = run("spiral_adam.py", *args, backend=backend.name, compile=False)
    assert result.returncode == 0, result.stderr
    if backend.name in NUMPY_ARITHMETIC:  # NumPy's kernels and NumPy's dropout masks: line for line
        assert result.stdout.splitlines()[1:] == reference.stdout.splitlines()[1:]
    elif backend.name != "cupy":  # NumPy's masks, another library's rounding: the same numbers within a tolerance
        for mine, theirs in zip(_values(result.stdout), _values(reference.stdout), strict=True):
            assert mine.keys() == theirs.keys()
            for name, value in mine.items():
                # acc: 6 of the 300 validation samples. A barely trained model leaves many points on its class
                # boundaries, where another library's float32 rounding flips a few (JAX 0.12: 4 of 300 at epoch 30).
                tolerance = 0.02 + 1e-9 if name == "acc" else 0.003
                assert value == pytest.approx(theirs[name], abs=tolerance), (name, mine, theirs)


def _values(output: str) -> list[dict[str, float]]:
    """The named numbers (acc, loss, lr, ...) of each printed line after the backend's."""
    pattern = r"(\w+): (\d+(?:\.\d+)?(?:e-?\d+)?)"
    return [{name: float(v) for name, v in re.findall(pattern, line)} for line in output.splitlines()[1:]]


def test_fashion_mnist_example(backend, tmp_path):
    write_idx_dataset(tmp_path, np.random.default_rng(0), n_train=40, n_test=10)
    result = run(
        "fashion_mnist.py",
        "--data",
        str(tmp_path),
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--hidden",
        "16",
        backend=backend.name,
    )
    assert result.returncode == 0, result.stderr
    labels = [line.split(",")[0] for line in result.stdout.splitlines()[1:]]
    per_epoch = ["step: 0", "step: 2", "training", "validation"]
    assert labels[:10] == ["epoch: 1", *per_epoch, "epoch: 2", *per_epoch]
    assert len(labels) == 15 and all(label.startswith("predicted: ") for label in labels[10:])


def test_fashion_mnist_example_without_data(tmp_path):
    result = run("fashion_mnist.py", "--data", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert "no Fashion-MNIST data" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("script", ["spiral_adam.py", "binary.py", "sine.py", "fashion_mnist.py"])
def test_examples_unknown_backend(script, tmp_path):
    result = (
        run(script, "--data", str(tmp_path), backend="nope")
        if script == "fashion_mnist.py"
        else run(script, backend="nope")
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "registered backends are" in result.stderr


@pytest.mark.parametrize(
    ("script", "args", "fragment"),
    [
        ("spiral.py", ["--lr", "-1"], "SGD learning_rate must be a finite number > 0"),
        ("spiral_adam.py", ["--dropout", "1.5", "--epochs", "2"], "Dropout rate"),
        ("spiral_adam.py", ["--decay", "inf", "--epochs", "2"], "Adam decay must be a finite number"),
        ("sine.py", ["--lr", "nan", "--epochs", "2"], "learning_rate must be a finite number"),
    ],
)
def test_user_errors_end_with_one_line_and_status_2(script, args, fragment):
    result = run(script, *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr


@pytest.mark.parametrize("script", ["sine.py", "spiral_adam.py"])
def test_model_examples_save_history_and_plot(tmp_path, script):
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    picture, history = tmp_path / "result.png", tmp_path / "history.csv"
    result = run(script, "--epochs", "20", "--every", "10", "--plot", str(picture), "--history", str(history))
    assert result.returncode == 0, result.stderr
    assert f"plot: {picture}" in result.stdout and picture.stat().st_size > 10_000
    assert history.read_text().splitlines()[0].startswith("epoch,loss,data_loss,reg_loss,accuracy,lr")
    assert len(history.read_text().splitlines()) == 21


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_model_examples_save_their_history_as_csv_or_json(tmp_path, suffix):
    path = tmp_path / f"history{suffix}"
    result = run("sine.py", "--epochs", "3", "--history", str(path))
    assert result.returncode == 0, result.stderr
    assert f"history: {path}" in result.stdout
    text = path.read_text()
    assert text.startswith("epoch,loss") if suffix == ".csv" else ('"epoch": [' in text)


def test_model_examples_progress_replaces_the_books_lines():
    result = run("sine.py", "--epochs", "20", "--every", "10", "--progress")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()  # not a terminal: plain lines, Keras-style
    assert lines[1].startswith("epoch 10/20 - loss: ") and lines[2].startswith("epoch 20/20 - loss: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--plot", "{tmp}"], "--plot needs a picture file name, got the folder"),
        (["--plot", "{tmp}/no_suffix"], "--plot needs a picture file name ending in "),
        (["--plot", "{tmp}/missing/x.png"], "--plot: the folder '{tmp}/missing' of"),
        (["--history", "{tmp}/missing/x.csv"], "--history: the folder '{tmp}/missing' of"),
        (["--history", "{tmp}/x.txt"], "--history needs a file name ending in .csv or .json"),
    ],
)
def test_output_files_are_checked_before_training(tmp_path, args, message):
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    for script in ("spiral.py", "sine.py") if args[0] == "--plot" else ("sine.py", "spiral_adam.py"):
        result = run(script, "--epochs", "3", *(arg.format(tmp=tmp_path) for arg in args))
        assert result.returncode == 2
        assert message.format(tmp=tmp_path) in result.stderr
        assert "epoch" not in result.stdout
        if message.startswith("--plot needs a picture file name ending in"):
            assert ".png, " in result.stderr and ".svg, " in result.stderr


def test_examples_are_short_and_compute_on_the_backend():
    """No NumPy for array math in the examples: data goes to the device with backend.asarray, back with to_numpy."""
    for path in EXAMPLES.glob("*.py"):
        text = path.read_text()
        assert "import numpy" not in text and "np." not in text, path.name
        assert len(text.splitlines()) <= 90, path.name


@pytest.mark.parametrize(
    "script", ["spiral.py", "spiral_adam.py", "binary.py", "sine.py", "fashion_mnist.py", "onnx_export.py"]
)
def test_examples_explain_themselves_and_their_options(script):
    result = run(script, "--help")
    assert result.returncode == 0, result.stderr
    assert "python examples/" + script in result.stdout and "--backend BACKEND" in result.stdout
    assert "--epochs EPOCHS" in result.stdout and "(default: " in result.stdout


def test_the_onnx_example_exports_and_runs_the_file(backend, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime (the test extra) is not installed")
    target = tmp_path / "spiral.onnx"
    result = run("onnx_export.py", "--epochs", "50", "--output", str(target), backend=backend.name)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == f"exported: {target}" and target.is_file()
    assert re.match(r"^onnxruntime: 300 rows, accuracy 0\.\d{3}$", lines[2])
    assert float(lines[3].rsplit(" ", 1)[1]) < 1e-5
