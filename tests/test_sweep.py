"""`nnx sweep`: grids and random samples, ranking, every executor giving the same numbers as examples/spiral.py,
failures and Ctrl-C keeping the other trials, the CSV, the plot, the command line and its errors."""

from __future__ import annotations

import csv
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nnx
from nnx import sweep
from nnx.datasets import spiral_data
from nnx.recipes import train_spiral
from nnx.sweep.cli import main as sweep_main
from nnx.sweep.plan import SPIRAL_DEFAULTS
from nnx.sweep.result import METRIC_COLUMNS
from nnx.sweep.trials import Trial

ROOT = Path(__file__).resolve().parent.parent
EPOCH_LINE = re.compile(r"^epoch: \d+, acc: (\d\.\d{3}), loss: (\d+\.\d{3})$")  # examples/spiral.py's
FAST = {"epochs": 201, "every": 50}  # ~0.1 s a trial
GRID = {"lr": [0.85, 1.0], "decay": [0.0, 1e-3]}


@pytest.fixture(autouse=True)
def _default_backend(monkeypatch):
    """Trials on the default backend (numpy), whatever the shell exports; worker processes inherit it."""
    monkeypatch.delenv("NNX_BACKEND", raising=False)


def numbers(result: sweep.SweepResult) -> list[tuple]:
    """Everything a trial computed, at full precision (not its wall time)."""
    return [
        (t["trial"], t["params"], t["status"], t["loss"], t["accuracy"], t["best_epoch"], t["best_loss"], t["history"])
        for t in result.trials
    ]


def build_model(lr: float = 0.5, units: int = 8, samples: int = 20, fail: bool = False, validation: bool = False):
    """A factory for the tests: the chapter-18 Model on a small spiral."""
    if fail:
        raise ValueError("this factory fails on purpose")
    X, y = spiral_data(samples=samples, classes=3)
    model = nnx.Model()
    for layer in (nnx.Dense(2, units), nnx.ReLU(), nnx.Dense(units, 3), nnx.Softmax()):
        model.add(layer)
    model.set(
        loss=nnx.CategoricalCrossentropy(), optimizer=nnx.SGD(learning_rate=lr), accuracy=nnx.metrics.Categorical()
    )
    model.finalize()
    return (model, X, y, (X, y)) if validation else (model, X, y)


def returns_nothing(lr: float = 0.5):
    return None


def run_script(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "NNX_BACKEND": "numpy"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


# The search space --------------------------------------------------------------------------------------------


def test_grid_is_the_cartesian_product_with_the_last_name_fastest():
    trials = sweep.grid({"lr": [0.5, 1.0], "decay": [0, 1e-3, 1e-2], "dtype": "float64"})
    assert len(trials) == 6
    assert trials[:3] == [{"lr": 0.5, "decay": d, "dtype": "float64"} for d in (0, 1e-3, 1e-2)]
    assert trials[3]["lr"] == 1.0
    assert sweep.grid({}) == [{}]  # no hyperparameters: the one default run


def test_random_sample_is_seeded_and_draws_without_replacement_from_lists():
    space = {"lr": [0.1, 0.5, 1.0], "decay": [0, 1e-3, 1e-2, 1e-1]}
    first = sweep.sample(space, 5, seed=3)
    assert first == sweep.sample(space, 5, seed=3)
    assert first != sweep.sample(space, 5, seed=4)
    assert len({tuple(t.values()) for t in first}) == 5
    assert all(t in sweep.grid(space) for t in first)
    assert sweep.sample(space, 50, seed=3) == sweep.grid(space)  # asking for more than there are: all of them


def test_random_sample_draws_log_uniform_ranges():
    space = {"lr": sweep.LogUniform(0.01, 1.0), "hidden": sweep.LogUniform(16, 256, integer=True), "decay": [0, 1]}
    trials = sweep.sample(space, 200, seed=0)
    assert trials == sweep.sample(space, 200, seed=0)
    assert all(0.01 <= t["lr"] <= 1.0 and 16 <= t["hidden"] <= 256 for t in trials)
    assert all(isinstance(t["hidden"], int) for t in trials)
    assert sum(t["lr"] < 0.1 for t in trials) > 60  # log-uniform: half the draws below the geometric middle
    with pytest.raises(ValueError, match="only a random sample draws from"):
        sweep.grid(space)


def test_the_table_ranks_by_final_loss_and_puts_each_failure_last_on_one_line():
    def trial(index, lr, loss, error=None):
        history = {"epoch": [0, 100], "loss": [1.1, loss or 9.0], "accuracy": [0.3, 0.5]}
        return {
            "trial": index,
            "params": {"lr": lr, "decay": 0.0},
            "settings": {},
            "status": "failed" if error else "ok",
            "loss": loss,
            "accuracy": None if error else 0.51234,
            "best_epoch": None if error else 100,
            "best_loss": loss,
            "seconds": 1.5,
            "error": error,
            "history": history,
        }

    long_error = "DivergenceError: training diverged at epoch 300: " + "the loss is NaN " * 20
    trials = [trial(1, 0.5, 0.91234), trial(2, 1e30, None, long_error), trial(3, 1.0, 0.3), trial(4, 2.0, 0.3)]
    result = sweep.SweepResult(trials=trials, varied=["lr"], params=["lr", "decay"], planned=4)
    assert [t["trial"] for t in result.ranked()] == [3, 4, 1, 2]
    assert result.best["trial"] == 3 and [t["trial"] for t in result.failed] == [2]
    lines = result.table().splitlines()
    assert lines[0].split() == ["rank", "lr", "loss", "acc", "best", "epoch", "best", "loss", "seconds", "status"]
    assert lines[1].split() == ["1", "1", "0.300", "0.512", "100", "0.300", "1.50", "ok"]
    assert lines[3].split()[:3] == ["3", "0.5", "0.912"]
    assert lines[4].startswith("-     1e+30") and "failed: DivergenceError: training diverged at epoch 300" in lines[4]
    assert len(lines) == 5 and lines[4].endswith("...") and len(lines[4]) < 130
    assert "seconds" not in result.table(seconds=False)


# Trials: the same numbers as train_spiral and examples/spiral.py, wherever they run -------------------------


def test_serial_trials_equal_train_spiral_and_a_divergence_does_not_stop_the_others():
    result = sweep.run({"lr": [1.0, 1e30, 0.5]}, workers=1, **FAST)
    assert [t["status"] for t in result.trials] == ["ok", "failed", "ok"]
    failed = result.trials[1]
    assert failed["error"].startswith("DivergenceError: training diverged at epoch 50")
    assert failed["history"]["epoch"] == [0] and failed["loss"] is None  # drawn up to where it failed
    for trial in (result.trials[0], result.trials[2]):
        alone = train_spiral(lr=trial["params"]["lr"], **FAST)
        assert trial["loss"] == alone.final["loss"] and trial["accuracy"] == alone.final["accuracy"]
        assert trial["history"]["loss"] == alone.history.history["loss"]
        assert (trial["best_epoch"], trial["best_loss"]) == alone.best
    assert result.trials[0]["params"] == {**SPIRAL_DEFAULTS, "lr": 1.0}
    assert result.trials[0]["settings"] == {"epochs": 201, "seed": 0, "backend": "numpy", "every": 50}


def test_local_processes_give_the_serial_numbers():
    serial = sweep.run(GRID, workers=1, **FAST)
    processes = sweep.run(GRID, workers=2, **FAST)
    assert numbers(processes) == numbers(serial)
    assert processes.table(seconds=False) == serial.table(seconds=False)


def test_dask_gives_the_serial_numbers():
    distributed = pytest.importorskip("distributed")
    serial = sweep.run(GRID, workers=1, **FAST)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        on_client = sweep.run(GRID, dask=client, **FAST)
        on_address = sweep.run(GRID, dask=cluster.scheduler_address, **FAST)
    assert numbers(on_client) == numbers(serial)
    assert numbers(on_address) == numbers(serial)


def test_a_trial_equals_examples_spiral_py():
    settings = ["--lr", "0.85", "--decay", "1e-3", "--momentum", "0.5", "--epochs", "201"]
    example = run_script("examples/spiral.py", *settings)
    assert example.returncode == 0, example.stderr
    result = sweep.run({"lr": [0.85], "decay": [1e-3], "momentum": [0.5]}, workers=1, epochs=201, every=100)
    trial = result.trials[0]
    history = trial["history"]
    curves = zip(history["epoch"], history["accuracy"], history["loss"], strict=True)
    lines = [f"epoch: {epoch}, acc: {acc:.3f}, loss: {value:.3f}" for epoch, acc, value in curves]  # the book's
    assert example.stdout.splitlines()[1:] == lines  # every printed line: epochs 0, 100 and 200
    accuracy, loss = EPOCH_LINE.match(example.stdout.splitlines()[-1]).groups()  # epoch 200, the last one
    assert (f"{trial['accuracy']:.3f}", f"{trial['loss']:.3f}") == (accuracy, loss)
    assert result.table().splitlines()[1].split()[1:3] == [loss, accuracy]


# Files, failures, interruptions --------------------------------------------------------------------------------


def test_the_csv_gets_each_trial_as_it_finishes_and_all_of_them_ranked_at_the_end(tmp_path):
    path = tmp_path / "sweep.csv"
    rows_seen = []

    def build(lr):
        with path.open() as file:
            rows_seen.append(len(list(csv.DictReader(file))))
        return build_model(lr=lr)

    result = sweep.run({"lr": [0.05, 0.5, 1e30]}, factory=build, epochs=20, workers=1, csv=path)
    assert rows_seen == [0, 1, 2]  # written and flushed before the next trial starts
    with path.open() as file:
        rows = list(csv.DictReader(file))
    assert [row["trial"] for row in rows] == [str(t["trial"]) for t in result.ranked()]
    assert list(rows[0]) == ["trial", "lr", "epochs", "seed", "backend", "batch_size", *METRIC_COLUMNS]
    ok = result.ranked()[0]
    assert float(rows[0]["loss"]) == ok["loss"] and rows[0]["loss"] == repr(ok["loss"])  # full precision
    assert rows[-1]["status"] == "failed" and rows[-1]["error"].startswith("DivergenceError: training diverged")
    assert rows[-1]["loss"] == ""


def test_factory_trials_train_the_returned_model_and_a_failing_factory_is_one_line():
    space = {"lr": [0.5, 0.1], "fail": [False, True]}
    result = sweep.run(space, factory="tests.test_sweep:build_model", epochs=15, workers=1)
    assert [t["status"] for t in result.trials] == ["ok", "failed", "ok", "failed"]
    assert result.trials[1]["error"] == "ValueError: this factory fails on purpose"
    nnx.seed(0)
    model, X, y = build_model(lr=0.5)
    history = model.train(X, y, epochs=15, verbose=0)
    assert (
        result.trials[0]["loss"] == history["loss"] and result.trials[0]["history"]["loss"] == history.history["loss"]
    )
    table = result.table().splitlines()
    assert [line.split()[0] for line in table[1:]] == ["1", "2", "-", "-"]
    assert "failed: ValueError: this factory fails on purpose" in table[3]
    with_validation = sweep.run({"validation": True}, factory=build_model, epochs=5, workers=1)
    assert with_validation.trials[0]["status"] == "ok"


def test_a_factory_that_does_not_return_model_x_y_fails_its_trials_with_the_fix():
    result = sweep.run({"lr": [0.5]}, factory=returns_nothing, epochs=5, workers=1)
    assert result.trials[0]["error"].startswith("TypeError: nnx sweep factory tests.test_sweep:returns_nothing must")
    assert "return (model, X, y)" in result.trials[0]["error"]


def test_ctrl_c_keeps_the_finished_trials_in_the_result_and_the_csv(tmp_path):
    path = tmp_path / "sweep.csv"

    def build(lr):
        if lr == 0.3:
            raise KeyboardInterrupt
        return build_model(lr=lr)

    with pytest.raises(sweep.SweepInterrupted) as interrupted:
        sweep.run({"lr": [0.1, 0.2, 0.3, 0.4]}, factory=build, epochs=5, workers=1, csv=path)
    assert isinstance(interrupted.value, KeyboardInterrupt)
    result = interrupted.value.result
    assert result.interrupted and result.planned == 4
    assert [t["params"]["lr"] for t in result.trials] == [0.1, 0.2]
    with path.open() as file:
        assert sorted(row["lr"] for row in csv.DictReader(file)) == ["0.1", "0.2"]
    assert "2 of 4 trials finished" in str(interrupted.value)


def test_a_worker_that_dies_fails_its_trial_with_the_likely_causes():
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from nnx.sweep.executors import _outcome

    future = Future()
    future.set_exception(BrokenProcessPool("A process in the process pool was terminated abruptly"))
    record = _outcome(future, Trial(3, {"lr": 0.5}, {"epochs": 5}))
    assert record["trial"] == 3 and record["status"] == "failed" and record["seconds"] is None
    assert record["error"].startswith("BrokenProcessPool: a worker process died (A process in the process pool")
    assert "if __name__ == '__main__':" in record["error"]


# Plots -------------------------------------------------------------------------------------------------------


def test_plot_draws_every_loss_curve_in_one_png(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    result = sweep.run({"lr": [0.5, 1.0, 1e30]}, workers=1, epochs=301, every=20)
    figure = result.plot(tmp_path / "curves.png")
    ax = figure.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["lr=1", "lr=0.5", "lr=1e+30 (failed)"]
    assert len(ax.get_lines()[0].get_xdata()) == 16
    with Image.open(tmp_path / "curves.png") as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colours) > 20  # not a blank canvas


def test_plot_without_matplotlib_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = sweep.SweepResult()
    with pytest.raises(ImportError, match=re.escape('pip install "nnx-nnfs[plot]"')):
        result.plot()


# Bad inputs ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"space": {"lr": []}}, ValueError, "lr needs at least one value"),
        ({"space": {"lr": ["fast"]}}, TypeError, "lr must be a real number"),
        ({"space": {"lr": [0.5, -1.0]}}, ValueError, "lr must be a finite number > 0, got -1.0"),
        ({"space": {"momentum": [1.5]}}, ValueError, r"momentum must be a finite number in \[0, 1\)"),
        ({"space": {"hidden": [0]}}, ValueError, "hidden must be a positive integer"),
        ({"space": {"units": [8]}}, ValueError, "has no hyperparameter 'units'.*factory="),
        ({"space": [0.5, 1.0]}, TypeError, "space must map hyperparameter names"),
        ({"space": {"lr": sweep.LogUniform(0.1, 1)}}, ValueError, "only a random sample"),
        ({"epochs": 0}, ValueError, "epochs must be a positive integer"),
        ({"seed": -1}, ValueError, r"seed expects an integer in \[0, 2\*\*32\)"),
        ({"random": 0}, ValueError, "random must be a positive integer"),
        ({"workers": 0}, ValueError, "workers must be an integer >= 1, got 0; pass workers=1"),
        ({"workers": 2, "dask": "tcp://127.0.0.1:1"}, ValueError, "workers or dask, not both"),
        ({"backend": "nope"}, ValueError, "backend 'nope' is unknown; registered backends are"),
        ({"batch_size": 32}, ValueError, "batch_size applies to a factory"),
        ({"factory": "build_model"}, ValueError, "factory must be 'module:function'"),
        ({"factory": "no_such_module:build"}, ImportError, "cannot import 'no_such_module'"),
        ({"factory": "tests.test_sweep:nothing"}, ValueError, "has no 'nothing'"),
        ({"factory": "tests.test_sweep:ROOT"}, TypeError, "not a function"),
        ({"factory": build_model, "space": {"units": [8], "colour": [1]}}, TypeError, "cannot be called with"),
        ({"factory": build_model, "every": 10}, ValueError, "every applies to the spiral network only"),
        ({"factory": lambda lr: None, "space": {"lr": [1, 2]}, "workers": 2}, TypeError, "top level of a module"),
    ],
)
def test_bad_inputs_are_clear_errors_before_any_trial(kwargs, error, message):
    kwargs = {"epochs": 5, **kwargs}
    with pytest.raises(error, match=message):
        sweep.run(kwargs.pop("space", None), **kwargs)


def test_log_uniform_needs_positive_ordered_bounds():
    with pytest.raises(ValueError, match="0 < low <= high"):
        sweep.LogUniform(0, 1)
    with pytest.raises(ValueError, match="integer=True"):
        sweep.run({"hidden": sweep.LogUniform(16, 64)}, random=2, epochs=5)


def test_an_unreachable_dask_scheduler_times_out_with_a_clear_message():
    pytest.importorskip("distributed")
    start = time.perf_counter()
    with pytest.raises(
        ConnectionError, match=re.escape("could not reach the Dask scheduler at 'tcp://127.0.0.1:1' within 0.5 s")
    ):
        sweep.run(dask="tcp://127.0.0.1:1", dask_timeout=0.5, epochs=5)
    assert time.perf_counter() - start < 5
    with pytest.raises(ValueError, match="malformed"):
        sweep.run(dask="not-an-address", epochs=5)


def test_dask_missing_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=re.escape('pip install "nnx-nnfs[distributed]"')):
        sweep.run(dask="tcp://127.0.0.1:8786", epochs=5)


# The command line ----------------------------------------------------------------------------------------------


def test_cli_prints_the_ranked_table_and_the_exit_status_says_whether_trials_failed(capsys, tmp_path):
    args = ["--lr", "0.5,1.0", "--epochs", "201", "--every", "50", "--workers", "1", "--csv", str(tmp_path / "s.csv")]
    assert sweep_main(args) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["rank", "lr"] and len(lines) == 4 and lines[3] == f"csv: {tmp_path / 's.csv'}"
    expected = sweep.run({"lr": [1.0]}, workers=1, **FAST).trials[0]
    assert lines[1].split()[:3] == ["1", "1", f"{expected['loss']:.3f}"]
    assert err == ""
    assert sweep_main([*args[:1], "0.5,1e30", *args[2:]]) == 1
    assert capsys.readouterr().out.splitlines()[2].startswith("-     1e+30  failed: DivergenceError")
    assert sweep_main([*args[:1], "1e30", *args[2:]]) == 1
    err = capsys.readouterr().err  # every trial failed the same way: the whole message, once
    assert err.startswith("nnx sweep: every trial failed: DivergenceError: training diverged at epoch 50")
    assert err.strip().endswith("start again from saved or freshly initialised parameters")


def test_cli_random_sample_and_factory_params(capsys):
    args = ["--factory", "tests.test_sweep:build_model", "--param", "units=4,8,16", "--lr", "0.01:1.0"]
    assert sweep_main([*args, "--random", "2", "--epochs", "5", "--workers", "1", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["rank", "lr", "units"] and len(lines) == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", ""], "expected comma-separated values"),
        (["--lr", "0.5,,1"], "expected comma-separated values"),
        (["--lr", "fast"], "expected numbers, got 'fast'"),
        (["--hidden", "1.5"], "expected integers"),
        (["--lr=-1"], "lr must be a finite number > 0"),
        (["--lr", "1:0.1", "--random", "2"], "0 < low <= high"),
        (["--lr", "0.01:1"], "only a random sample"),
        (["--workers", "0"], "workers must be an integer >= 1"),
        (["--param", "units"], "expected NAME=VALUES"),
        (["--lr", "1", "--param", "lr=2"], "lr is given twice"),
        (["--factory", "not a path"], "factory must be 'module:function'"),
        (["--epochs", "ten"], "invalid int value"),
        (["--no-such-option"], "unrecognized arguments"),
    ],
)
def test_cli_errors_are_one_line_on_stderr_and_exit_status_2(capsys, argv, message):
    assert sweep_main([*argv, "--epochs", "5"] if "--epochs" not in argv else argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith("nnx sweep")
    assert re.search(message, err), err


def test_python_m_nnx_sweep_runs_in_worker_processes():
    result = run_script("-m", "nnx", "sweep", "--lr", "0.5,1.0", "--epochs", "201", "--every", "50", "--workers", "2")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    serial = sweep.run({"lr": [0.5, 1.0]}, workers=1, **FAST)
    expected = [line.split() for line in serial.table(seconds=False).splitlines()[1:]]
    assert [row[:6] + row[7:] for row in rows] == expected  # all but the wall time


# Full-length checks -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_acceptance_a_sweep_table_equals_four_example_runs(capsys):
    assert sweep_main(["--lr", "0.85,1.0", "--decay", "0,1e-3", "--epochs", "2001", "--workers", "2"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert len(rows) == 4
    for _rank, lr, decay, loss, accuracy, *_ in rows:
        example = run_script("examples/spiral.py", "--lr", lr, "--decay", decay, "--epochs", "2001")
        last = example.stdout.splitlines()[-1]  # epoch 2000, the last one
        assert last.startswith("epoch: 2000, ") and EPOCH_LINE.match(last).groups() == (accuracy, loss), (lr, decay)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups and SIGINT")
@pytest.mark.skipif(
    sys.platform != "win32" and signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
    reason="SIGINT is ignored in this process (started in the background of a non-interactive shell), and its "
    "children inherit that: they cannot be interrupted",
)
def test_ctrl_c_in_the_cli_cancels_pending_trials_keeps_finished_ones_and_exits_130(tmp_path):
    path = tmp_path / "sweep.csv"
    argv = ["-m", "nnx", "sweep", "--lr", "0.5,0.85,1.0", "--decay", "0,1e-3,1e-2", "--epochs", "3001"]
    process = subprocess.Popen(
        [sys.executable, *argv, "--workers", "2", "--csv", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches it
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(path.read_text().splitlines() if path.exists() else []) < 3:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    finished = [line for line in out.splitlines()[1:] if line[:1].isdigit()]
    assert 2 <= len(finished) < 9
    assert re.search(rf"interrupted: {len(finished)} of 9 trials finished", err)
    with path.open() as file:
        assert len(list(csv.DictReader(file))) == len(finished)
    assert all(math.isfinite(float(line.split()[3])) for line in finished)


def test_cli_checks_the_plot_path_and_the_backend_before_any_trial(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    missing = tmp_path / "missing" / "curves.png"
    assert sweep_main(["--lr", "1", "--epochs", "3", "--workers", "1", "--plot", str(missing)]) == 2
    assert "--plot: the folder" in capsys.readouterr().err
    if "cupy" not in nnx.backends.available():
        assert sweep_main(["--lr", "1", "--epochs", "3", "--workers", "1", "--backend", "cupy"]) == 2
        err = capsys.readouterr().err
        assert "backend 'cupy' is not available" in err and "pip install" in err


def test_a_script_without_the_main_guard_gets_one_clear_error(tmp_path):
    script = tmp_path / "no_guard.py"
    script.write_text('import nnx\nprint(nnx.sweep.run({"lr": [0.5, 1.0]}, epochs=3, workers=2).table())\n')
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False)
    assert "call nnx.sweep.run(...) under `if __name__ == '__main__':`" in result.stderr
    assert "bootstrapping phase" not in result.stderr  # not multiprocessing's own traceback
