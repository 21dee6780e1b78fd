"""MLflow: the callback logs to a real tracking store (a local folder), read back with `mlflow.search_runs` and
`MlflowClient.get_metric_history` equal to the History epoch by epoch; the logged model file loads and predicts the
same; the active run is used and left open; a failing store warns once and loses nothing; ``nnx sweep --mlflow``
makes a parent run with one nested run per trial."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

import nnx
from nnx import sweep
from nnx.callbacks import Callback, MLflow
from nnx.sweep.cli import main as sweep_main
from tests.test_sweep import build_model
from tests.test_tensorboard import build

mlflow = pytest.importorskip("mlflow")
METRICS = ("loss", "accuracy", "data_loss", "reg_loss", "lr")


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A tracking store in a temporary folder: MLflow's file store, which since MLflow 3.13 needs
    MLFLOW_ALLOW_FILE_STORE (the default, sqlite, needs SQLAlchemy, which mlflow-skinny leaves out)."""
    folder = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", folder.as_uri())
    yield folder
    while mlflow.active_run() is not None:
        mlflow.end_run()


def runs(experiment: str = "Default") -> list:
    return mlflow.search_runs(experiment_names=[experiment], output_format="list")


def metric(run_id: str, name: str) -> tuple[list, list]:
    points = sorted(mlflow.MlflowClient().get_metric_history(run_id, name), key=lambda point: point.step)
    return [point.step for point in points], [point.value for point in points]


def assert_metrics_equal_history(run_id: str, history, names=METRICS) -> None:
    for name in names:
        kept = [
            (epoch, value)
            for epoch, value in zip(history.epoch, history.history[name], strict=True)
            if value is not None
        ]
        assert metric(run_id, name) == ([epoch for epoch, _ in kept], [value for _, value in kept]), name


def test_a_run_reads_back_equal_to_the_history(backend, store, tmp_path):
    with nnx.backends.use(backend.name):
        model, X, y = build(dropout=0.1, l2=5e-4)
        history = model.train(
            X, y, epochs=5, batch_size=32, verbose=0, validation_data=(X, y), callbacks=[MLflow("first")]
        )
    (run,) = runs()
    assert (run.info.run_name, run.info.status) == ("first", "FINISHED")
    assert_metrics_equal_history(run.info.run_id, history, (*METRICS, "val_loss", "val_accuracy"))
    params = run.data.params
    assert (params["optimizer"], params["learning_rate"], params["decay"]) == ("Adam", "0.05", "0.0")
    assert (params["layers"], params["dense1_weight_l2"], params["dropout1_rate"]) == ("2-16-3", "0.0005", "0.1")
    assert (params["batch_size"], params["epochs"], params["seed"]) == ("32", "5", "0")
    assert (params["backend"], params["dtype"]) == (backend.name, "float32")
    folder = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / "got"))
    with nnx.backends.use(backend.name):
        loaded = nnx.Model.load(f"{folder}/model/model.nnx")
        assert np.array_equal(backend.to_numpy(loaded.predict(X)), backend.to_numpy(model.predict(X)))
    with open(f"{folder}/history.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [float(row["loss"]) for row in rows] == history.history["loss"]


def test_the_onnx_file_is_logged_when_onnx_is_installed(store):
    pytest.importorskip("onnx")
    model, X, y = build()
    model.train(X, y, epochs=2, verbose=0, callbacks=[MLflow()])
    (run,) = runs()
    names = [item.path for item in mlflow.MlflowClient().list_artifacts(run.info.run_id, "model")]
    assert names == ["model/model.nnx", "model/model.onnx"]


class Halved(nnx.Component):
    """A layer of the user's without an ONNX export."""

    def forward(self, inputs, training=False):
        self.output = inputs * 0.5

    def backward(self, dvalues):
        self.dinputs = dvalues * 0.5


def test_a_model_without_an_onnx_export_still_logs_its_model_file(store):
    pytest.importorskip("onnx")
    model, X, y = build()
    model.layers.insert(2, Halved())  # after the ReLU: the width stays
    model.finalize()
    with pytest.warns(UserWarning, match=r"ONNX export is left out of the run .*Halved\(\), has no ONNX export"):
        history = model.train(X, y, epochs=2, verbose=0, callbacks=[MLflow()])
    (run,) = runs()
    names = [item.path for item in mlflow.MlflowClient().list_artifacts(run.info.run_id, "model")]
    assert names == ["model/model.nnx"] and run.info.status == "FINISHED"
    assert_metrics_equal_history(run.info.run_id, history)


def test_the_default_store_sqlite_works_with_the_extra(tmp_path, monkeypatch):
    pytest.importorskip("sqlalchemy", reason="the mlflow extra's SQLAlchemy is not installed")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # MLflow's default: sqlite:///mlflow.db in the current folder
    model, X, y = build()
    history = model.train(X, y, epochs=3, verbose=0, callbacks=[MLflow("default store")])
    assert (tmp_path / "mlflow.db").is_file()
    (run,) = runs()
    assert (run.info.run_name, run.info.status) == ("default store", "FINISHED")
    assert_metrics_equal_history(run.info.run_id, history)


def test_the_active_run_is_used_and_left_open(store):
    model, X, y = build()
    with mlflow.start_run(run_name="mine") as active:
        history = model.train(X, y, epochs=3, verbose=0, validation_data=(X, y), callbacks=[MLflow("ignored")])
        assert mlflow.active_run().info.run_id == active.info.run_id
        assert mlflow.get_run(active.info.run_id).info.status == "RUNNING"
    (run,) = runs()
    assert run.info.run_name == "mine"
    assert_metrics_equal_history(run.info.run_id, history)
    assert metric(run.info.run_id, "val_loss") == ([3], [history.history["val_loss"][-1]])  # at the end


def test_a_started_run_is_ended_and_a_new_experiment_made(store):
    model, X, y = build()
    model.train(X, y, epochs=4, verbose=0, callbacks=[MLflow("every 2", every=2, experiment="nnx", log_model=False)])
    (run,) = runs("nnx")
    assert run.info.status == "FINISHED" and mlflow.active_run() is None
    assert metric(run.info.run_id, "loss")[0] == [2, 4]
    assert [item.path for item in mlflow.MlflowClient().list_artifacts(run.info.run_id)] == ["history.csv"]


def test_a_diverged_run_is_failed(store):
    model, X, y = build(lr=1e30)
    history = model.train(X, y, epochs=4, verbose=0, on_divergence="stop", check_every=1, callbacks=[MLflow()])
    assert history.final["diverged"]
    (run,) = runs()
    assert run.info.status == "FAILED"


class Vanish(Callback):
    """Deletes the tracking store after epoch 2."""

    def __init__(self, folder):
        self.folder = folder

    def on_epoch_end(self, run):
        if run.epoch == 2:
            shutil.rmtree(self.folder)


def test_a_vanished_store_warns_once_and_loses_nothing(store, tmp_path):
    model, X, y = build()
    checkpoint = tmp_path / "checkpoint.nnx"
    with pytest.warns(UserWarning, match=r"MLflow logging stopped after an error") as caught:
        history = model.train(
            X, y, epochs=5, batch_size=32, verbose=0, checkpoint=checkpoint, callbacks=[Vanish(store), MLflow()]
        )
    assert len(caught) == 1 and "nnx.callbacks.MLflow" in str(caught[0].message)
    assert history.epoch == [1, 2, 3, 4, 5] and history.final["loss"] == history.history["loss"][-1]
    restored = nnx.Model.load(checkpoint)
    assert np.array_equal(np.asarray(restored.predict(X)), np.asarray(model.predict(X)))
    assert mlflow.active_run() is None


def test_an_unusable_store_warns_once_and_training_goes_on(tmp_path, monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_text("x")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (blocker / "mlruns").as_uri())
    model, X, y = build()
    with pytest.warns(UserWarning, match=r"MLflow logging stopped") as caught:
        history = model.train(X, y, epochs=3, verbose=0, callbacks=[MLflow()])
    assert len(caught) == 1 and history.epoch == [1, 2, 3]
    assert mlflow.active_run() is None


def test_bad_arguments_are_refused(store):
    with pytest.raises(TypeError, match=r"MLflow run_name must be a str"):
        MLflow(3)
    with pytest.raises(ValueError, match=r"MLflow experiment is empty"):
        MLflow(experiment=" ")
    with pytest.raises(ValueError, match=r"every"):
        MLflow(every=0)
    with pytest.raises(TypeError, match=r"log_model"):
        MLflow(log_model="yes")
    with pytest.raises(TypeError, match=r"hparams must be a mapping"):
        MLflow(hparams=[("a", 1)])


def test_a_missing_mlflow_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ImportError, match=r'pip install "nnx-nnfs\[mlflow\]"'):
        MLflow()
    with pytest.raises(ImportError, match=r"nnx-nnfs\[mlflow\]"):
        sweep.run({"lr": [0.5]}, epochs=2, workers=1, mlflow="sweep")


def nested(experiment: str) -> tuple:
    found = runs(experiment)
    (parent,) = [run for run in found if run.info.run_name == "sweep"]
    children = [run for run in found if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, sorted(children, key=lambda run: run.info.run_name)


def test_a_sweep_of_six_trials_gives_six_nested_runs(store):
    space = {"lr": [0.5, 0.85, 1.0], "decay": [0.0, 1e-3]}
    result = sweep.run(space, epochs=21, every=10, workers=1, progress=False, mlflow="spiral")
    parent, children = nested("spiral")
    assert parent.info.status == "FINISHED" and len(children) == 6
    assert parent.data.params["space.lr"] == "[0.5, 0.85, 1.0]" and parent.data.params["trials"] == "6"
    for trial in result.trials:
        name = f"trial{trial['trial']},lr={trial['params']['lr']:g},decay={trial['params']['decay']:g}"
        (child,) = [run for run in children if run.info.run_name == name]
        assert (child.info.status, child.data.tags["status"]) == ("FINISHED", "ok")
        assert child.data.params["lr"] == str(trial["params"]["lr"]) and child.data.params["epochs"] == "21"
        assert metric(child.info.run_id, "loss") == (trial["history"]["epoch"], trial["history"]["loss"])


def test_a_failed_trial_is_a_failed_run_with_its_error(store):
    space = {"lr": [0.5], "fail": [False, True]}
    sweep.run(space, factory=build_model, epochs=3, workers=1, progress=False, mlflow="failing")
    _, (ok, failed) = nested("failing")
    assert ok.info.status == "FINISHED" and failed.info.status == "FAILED"
    assert failed.data.tags["error"] == "ValueError: this factory fails on purpose"
    assert metric(ok.info.run_id, "lr")[0] == [1, 2, 3]  # every History column of a factory trial


def interrupting_factory(lr: float = 0.5):
    if lr > 0.6:
        raise KeyboardInterrupt
    return build_model(lr=lr)


def test_ctrl_c_ends_the_parent_run_as_killed(store, tmp_path):
    with pytest.raises(sweep.SweepInterrupted):
        sweep.run(
            {"lr": [0.5, 1.0]}, factory=interrupting_factory, epochs=2, workers=1, progress=False, mlflow="stopped",
            tensorboard=tmp_path / "tb",
        )  # fmt: skip
    parent, children = nested("stopped")
    assert parent.info.status == "KILLED" and [run.info.run_name for run in children] == ["trial1,lr=0.5"]
    assert [path.name for path in (tmp_path / "tb").iterdir()] == ["trial1,lr=0.5"]


def test_the_command_line_flags(store, tmp_path, capsys):
    arguments = ["--lr", "0.5,1.0", "--epochs", "3", "--every", "1", "--workers", "1", "--no-progress"]
    assert sweep_main([*arguments, "--tensorboard", str(tmp_path / "tb"), "--mlflow", "cli"]) == 0
    assert sorted(path.name for path in (tmp_path / "tb").iterdir()) == ["trial1,lr=0.5", "trial2,lr=1"]
    _, children = nested("cli")
    assert [run.info.run_name for run in children] == ["trial1,lr=0.5", "trial2,lr=1"]
    assert sweep_main([*arguments, "--mlflow", ""]) == 2
    assert "mlflow is empty" in capsys.readouterr().err


@pytest.mark.integration
def test_a_batched_sweep_in_processes_logs_every_trial(store, tmp_path):
    space = {"lr": [0.5, 0.85, 1.0], "decay": [0.0, 1e-3]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = sweep.run(
            space, epochs=21, every=10, workers=2, batched=True, progress=False, mlflow="batched",
            tensorboard=tmp_path / "tb",
        )  # fmt: skip
    _, children = nested("batched")
    assert len(children) == 6 and len(list((tmp_path / "tb").iterdir())) == 6
    for trial in result.trials:
        (child,) = [run for run in children if run.info.run_name.startswith(f"trial{trial['trial']},")]
        assert metric(child.info.run_id, "loss") == (trial["history"]["epoch"], trial["history"]["loss"])


def test_a_run_left_open_by_an_uncaught_ctrl_c_ends_killed_at_exit(store, tmp_path):
    script = (
        "import nnx\n"
        "from nnx.callbacks import Callback, MLflow\n"
        "from tests.test_tensorboard import build\n\n"
        "class Interrupt(Callback):\n"
        "    def on_epoch_end(self, run):\n"
        "        if run.epoch == 2:\n"
        "            raise KeyboardInterrupt\n\n"
        "model, X, y = build()\n"
        "model.train(X, y, epochs=5, verbose=0, callbacks=[MLflow('stopped'), Interrupt()])\n"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True)
    assert result.returncode != 0 and "KeyboardInterrupt" in result.stderr
    (run,) = runs()
    assert (run.info.run_name, run.info.status) == ("stopped", "KILLED")
    assert metric(run.info.run_id, "loss")[0] == [1, 2]  # the MLflow callback logged epoch 2 before the Ctrl-C
