"""Notebooks: examples/notebooks/chapter10.ipynb run in a real Jupyter kernel, and progress that stays short."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import sys
from pathlib import Path

import pytest

import nnx
from nnx.callbacks import ProgressBar
from nnx.callbacks.progress import lines_every
from nnx.datasets import spiral_data
from tests.helpers import spiral_classifier as classifier

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "notebooks" / "chapter10.ipynb"
BOOK_LINES = [
    "epoch: 0, acc: 0.360, loss: 1.099",
    "epoch: 100, acc: 0.400, loss: 1.087",
    "epoch: 200, acc: 0.417, loss: 1.077",
]
MAX_LINES = 100


@pytest.fixture
def data():
    nnx.seed(0)
    return spiral_data(samples=40, classes=3)


def kernel_name(tmp_path: Path, monkeypatch) -> str:
    """A kernel spec running this very interpreter, found before any user-wide 'python3' spec."""
    spec = tmp_path / "kernels" / "nnx-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "nnx test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("NNX_COMPILE", "0")  # the generic step: a fresh kernel would compile Numba's for a minute
    return "nnx-test"


def execute(notebook, tmp_path: Path, monkeypatch):
    nbclient = pytest.importorskip("nbclient", reason="the test extra (nbclient, ipykernel) is not installed")
    pytest.importorskip("ipykernel", reason="the test extra (nbclient, ipykernel) is not installed")
    client = nbclient.NotebookClient(
        notebook, kernel_name=kernel_name(tmp_path, monkeypatch), timeout=600, resources={"metadata": {"path": "."}}
    )
    client.execute()
    return notebook


def text_of(output: dict) -> str:
    """What a cell output shows as text: a stream's text, or a display's text/plain."""
    if output["output_type"] == "stream":
        return output["text"]
    return output.get("data", {}).get("text/plain", "")


def code_cell(notebook, text: str):
    """The first code cell whose source contains `text`."""
    return next(cell for cell in notebook.cells if cell.cell_type == "code" and text in cell.source)


def cell_lines(cell) -> list[str]:
    return [line for output in cell.get("outputs", []) for line in text_of(output).splitlines()]


def test_the_notebook_is_committed_without_outputs():
    notebook = json.loads(NOTEBOOK.read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code and all(not cell["outputs"] and cell["execution_count"] is None for cell in code)


def test_the_chapter10_notebook_runs_in_a_kernel(tmp_path, monkeypatch):
    """One test, one kernel run (about 20 s), then every check on its outputs; all failures are reported."""
    nbformat = pytest.importorskip("nbformat", reason="the test extra (nbformat) is not installed")
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    pytest.importorskip("array_api_strict", reason="the notebook's second backend is not installed")
    executed = execute(nbformat.read(NOTEBOOK, as_version=4), tmp_path, monkeypatch)
    checks = (
        the_layer_loop_prints_the_books_first_lines,
        figures_come_out_as_images,
        the_summary_names_the_layers_and_the_optimizer,
        the_model_and_its_history_show_as_tables,
        no_cell_prints_more_than_a_hundred_lines_or_to_stderr,
        the_training_cell_shows_one_bar_that_ends_full,
        the_other_backend_gives_numpys_numbers,
    )
    failures = [failure for check in checks if (failure := failed(check, executed))]
    assert not failures, "\n".join(failures)


def failed(check, executed) -> str | None:
    """None when `check` passes on the executed notebook, else its name and what went wrong."""
    try:
        check(executed)
    except (AssertionError, KeyError, StopIteration) as error:
        return f"{check.__name__}: {type(error).__name__} {error}"
    return None


def the_layer_loop_prints_the_books_first_lines(executed):
    printed = next(lines for cell in executed.cells if (lines := cell_lines(cell)) and lines[0].startswith("epoch: 0"))
    assert printed[: len(BOOK_LINES)] == BOOK_LINES
    assert len(printed) == 21 and printed[-1].startswith("epoch: 2000, ")


def figures_come_out_as_images(executed):
    images = [
        output for cell in executed.cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {})
    ]
    assert len(images) >= 3, "the learning rates, the spiral's regions and the sweep should show as pictures"


def the_summary_names_the_layers_and_the_optimizer(executed):
    summary = "\n".join(cell_lines(code_cell(executed, "model.summary()")))
    for part in ("Dense(2 -> 64)", "ReLU()", "Dense(64 -> 3)", "Softmax()", "387", "SGD(", "numpy on CPU"):
        assert part in summary, summary


def the_model_and_its_history_show_as_tables(executed):
    html = {
        cell.source: output["data"]["text/html"]
        for cell in executed.cells
        for output in cell.get("outputs", [])
        if "text/html" in output.get("data", {})
    }
    assert "Dense(2 -&gt; 64)" in html["model"] and "10,001 epochs" in html["model"]
    assert "10001 epochs recorded" in html["history"] and "val" not in html["history"]
    assert "<table" in html["history.to_pandas().tail()"]


def no_cell_prints_more_than_a_hundred_lines_or_to_stderr(executed):
    for cell in executed.cells:
        assert len(cell_lines(cell)) <= MAX_LINES, cell.source
        streams = [output for output in cell.get("outputs", []) if output["output_type"] == "stream"]
        assert all(output["name"] == "stdout" for output in streams), cell.source


def the_training_cell_shows_one_bar_that_ends_full(executed):
    training = code_cell(executed, "verbose=1")
    assert len(training.outputs) == 1 and "application/vnd.jupyter.widget-view+json" in training.outputs[0]["data"]
    widgets = executed.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"].values()
    assert any(widget["state"].get("value") == widget["state"].get("max") == 10_001 for widget in widgets)


def the_other_backend_gives_numpys_numbers(executed):
    lines = cell_lines(code_cell(executed, "array_api_strict"))
    numbers = [line.split(":", 1)[1] for line in lines]
    assert len(lines) == 2 and lines[1].strip().startswith("array_api_strict") and numbers[0] == numbers[1]


def test_without_ipywidgets_the_bar_is_one_line_in_place_and_a_figure_shows_once_with_pyplot(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="the test extra (nbformat) is not installed")
    cells = [
        "import sys\nsys.modules['ipywidgets'] = None  # as if it were not installed",
        "import nnx\nfrom nnx.datasets import spiral_data\nnnx.seed(0)\nX, y = spiral_data(samples=20, classes=3)\n"
        "model = nnx.Model()\nmodel.add(nnx.Dense(2, 8))\nmodel.add(nnx.ReLU())\nmodel.add(nnx.Dense(8, 3))\n"
        "model.add(nnx.Softmax())\nmodel.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.SGD(), "
        "accuracy=nnx.metrics.Categorical())\nmodel.finalize()\n"
        "history = model.train(X, y, epochs=3001, batch_size=20, verbose=1)",
    ]
    cells.append(
        "import matplotlib.pyplot as plt  # the inline backend now shows pyplot's figures\nnnx.plot.history(history)"
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    training, figure = execute(notebook, tmp_path, monkeypatch).cells[1:]
    assert [output["output_type"] for output in training.outputs] == ["display_data"]
    line = text_of(training.outputs[0])
    assert "\n" not in line and "epoch 3001/3001" in line and "9003/9003" in line and "loss: " in line
    images = [output for output in figure.outputs if "image/png" in output.get("data", {})]
    assert len(images) == 1 and len(figure.outputs) == 1  # shown once, also with pyplot imported


@pytest.mark.parametrize("verbose", [1, 2])
@pytest.mark.parametrize("batch_size", [None, 30])
def test_verbose_training_prints_about_a_hundred_lines_whatever_the_epochs(data, verbose, batch_size):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        classifier("numpy").train(
            *data, epochs=10_001 if batch_size is None else 2_001, batch_size=batch_size, verbose=verbose
        )
    lines = out.getvalue().splitlines()
    assert 10 <= len(lines) <= MAX_LINES
    assert lines[-1].startswith(("epoch 10001/10001 - loss: ", "epoch 2001/2001 - loss: "))


def test_an_explicit_print_every_is_kept_with_verbose(data, capsys):
    classifier("numpy").train(*data, epochs=250, verbose=2, print_every=1)
    assert len(capsys.readouterr().out.splitlines()) == 250


def test_the_books_lines_are_unchanged(data, capsys):
    classifier("numpy").train(*data, epochs=3)
    assert [line.split(",")[0] for line in capsys.readouterr().out.splitlines()] == ["epoch: 1", "epoch: 2", "epoch: 3"]


@pytest.mark.parametrize(
    ("epochs", "every"), [(1, 1), (100, 1), (101, 2), (200, 2), (201, 5), (10_001, 200), (10**6, 10_000)]
)
def test_lines_every_is_the_smallest_round_step_within_a_hundred_lines(epochs, every):
    assert lines_every(epochs) == every
    assert -(-epochs // every) <= MAX_LINES


def test_print_every_refuses_other_words(data):
    with pytest.raises(TypeError, match=r'print_every must be a positive integer, "auto" or None, got \'100\''):
        classifier("numpy").train(*data, print_every="100")


def test_a_terminal_gets_one_bar_over_every_step(data):
    stream = io.StringIO()
    classifier("numpy").train(*data, epochs=3, batch_size=60, print_every=None, callbacks=[ProgressBar(file=stream)])
    text = stream.getvalue()
    assert "epoch 3/3" in text and "6/6" in text and text.count("\n") == 1


def test_summary_of_an_unfinished_model_says_what_is_missing(capsys):
    model = nnx.Model()
    model.add(nnx.Dense(2, 4))
    model.summary()
    printed = capsys.readouterr().out
    assert "0: Dense(2 -> 4)  (None, 4)" in printed and "Total parameters: 12" in printed
    assert "Finalized: no: call model.finalize()" in printed and "Loss: none: give one with model.set()" in printed


def test_summary_counts_epochs_and_steps_and_keeps_them_through_save_and_copy(data, tmp_path, capsys):
    model = classifier("numpy")
    model.train(*data, epochs=4, batch_size=100, print_every=None)
    model.save(tmp_path / "m.nnx")
    for each in (model, copy.deepcopy(model), nnx.Model.load(tmp_path / "m.nnx")):
        each.summary()
        assert "Trained: 4 epochs, 8 steps" in capsys.readouterr().out


def test_summary_to_a_file_name_says_to_open_it():
    with pytest.raises(TypeError, match=r"Model.summary file must be an open text stream .* got .*'summary.txt'"):
        nnx.Model().summary(file="summary.txt")


def test_summary_writes_to_an_open_stream():
    stream = io.StringIO()
    nnx.Model().summary(file=stream)
    assert stream.getvalue().startswith("Layer") and "Total parameters: 0" in stream.getvalue()
