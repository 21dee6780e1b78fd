"""TensorBoard: the callback's event files, read back with TensorBoard's own reader, equal the History epoch by epoch
(float32, as TensorBoard keeps scalars); hyperparameters, summary, histograms; `train_many(tensorboard=...)` and
``nnx sweep --tensorboard`` write one run per model or trial; bad arguments and a missing package are clear errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import nnx
from nnx import sweep
from nnx.callbacks import TensorBoard
from nnx.callbacks import tensorboard as tensorboard_module
from nnx.callbacks.base import Run
from nnx.datasets import spiral_data
from nnx.sweep.cli import main as sweep_main

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

SCALARS = ("loss", "accuracy", "data_loss", "reg_loss", "lr")


def build(lr: float = 0.05, *, dropout: float = 0.0, l2: float = 0.0, samples: int = 30) -> tuple:
    """The chapter-19 classifier (Adam) on a small spiral, on the current backend."""
    nnx.seed(0)
    X, y = spiral_data(samples=samples, classes=3)
    model = nnx.Model()
    layers = [nnx.Dense(2, 16, weight_regularizer_l2=l2), nnx.ReLU()]
    layers += [nnx.Dropout(dropout)] if dropout else []
    for layer in [*layers, nnx.Dense(16, 3), nnx.Softmax()]:
        model.add(layer)
    model.set(
        loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam(learning_rate=lr), accuracy=nnx.metrics.Categorical()
    )
    model.finalize()
    return model, X, y


def read(folder) -> tuple[dict, dict, str]:
    """A run folder read with TensorBoard's reader: {tag: [(step, value)]}, the hparams and the session status."""
    reader = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    reader.Reload()
    scalars = {tag: [(event.step, event.value) for event in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]}
    hparams, status = {}, ""
    for tag, content in reader.PluginTagToContent("hparams").items():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if tag.endswith("session_start_info"):
            hparams = {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
                       for name, value in data.session_start_info.hparams.items()}  # fmt: skip
        if tag.endswith("session_end_info"):
            status = (
                type(data.session_end_info)
                .DESCRIPTOR.fields_by_name["status"]
                .enum_type.values_by_number[data.session_end_info.status]
                .name
            )
    return scalars, hparams, status


def as_float32(values: list) -> list:
    return [None if value is None else float(np.float32(value)) for value in values]


def assert_scalars_equal_history(scalars: dict, history, names=SCALARS) -> None:
    """Every epoch's value of each metric, exactly as float32."""
    for name in names:
        steps = [step for step, _ in scalars[name]]
        kept = [
            (epoch, value)
            for epoch, value in zip(history.epoch, history.history[name], strict=True)
            if value is not None
        ]
        assert steps == [epoch for epoch, _ in kept], name
        assert [value for _, value in scalars[name]] == as_float32([value for _, value in kept]), name


def test_scalars_equal_the_history_epoch_by_epoch(backend, tmp_path):
    with nnx.backends.use(backend.name):
        model, X, y = build()
        history = model.train(
            X, y, epochs=6, batch_size=32, verbose=0, validation_data=(X, y), callbacks=[TensorBoard(tmp_path / "run")]
        )
    scalars, hparams, status = read(tmp_path / "run")
    assert_scalars_equal_history(scalars, history, (*SCALARS, "val_loss", "val_accuracy"))
    assert status == "STATUS_SUCCESS"
    assert hparams["optimizer"] == "Adam" and hparams["learning_rate"] == 0.05 and hparams["layers"] == "2-16-3"
    assert (hparams["batch_size"], hparams["epochs"], hparams["backend"]) == (32, 6, backend.name)
    assert hparams["dtype"] == "float32" and hparams["seed"] == 0


def test_two_runs_in_one_folder_within_a_second_both_stay(tmp_path):
    model, X, y = build()
    for _ in range(2):
        model.train(X, y, epochs=2, verbose=0, callbacks=[TensorBoard(tmp_path / "same")])
    assert len(list((tmp_path / "same").glob("events.out.tfevents.*"))) == 2
    scalars, _, _ = read(tmp_path / "same")
    assert [step for step, _ in scalars["loss"]] == [1, 2, 1, 2]


def test_a_folder_removed_while_training_warns_once_and_training_goes_on(tmp_path):
    class RemoveFolder(nnx.callbacks.Callback):
        def on_epoch_end(self, run):
            if run.epoch == 2:
                shutil.rmtree(tmp_path / "gone")

    model, X, y = build()
    with pytest.warns(UserWarning, match=r"was removed while training; the run's later epochs are not kept") as caught:
        history = model.train(X, y, epochs=5, verbose=0, callbacks=[RemoveFolder(), TensorBoard(tmp_path / "gone")])
    assert len(caught) == 1 and history.epoch == [1, 2, 3, 4, 5]


def test_validation_without_batches_is_written_at_the_last_epoch(tmp_path):
    model, X, y = build()
    history = model.train(X, y, epochs=4, verbose=0, validation_data=(X, y), callbacks=[TensorBoard(tmp_path)])
    scalars, _, _ = read(tmp_path)
    assert [step for step, _ in scalars["val_loss"]] == [4]
    assert scalars["val_accuracy"][0][1] == np.float32(history.history["val_accuracy"][-1])
    assert_scalars_equal_history(scalars, history)


def test_metrics_reach_the_host_only_on_the_epochs_written(tmp_path, monkeypatch):
    copies = []
    original = Run.host_metrics

    def counted(run):
        if run._host is None or run._host[0] is not run.metrics:
            copies.append(run.epoch)
        return original(run)

    monkeypatch.setattr(Run, "host_metrics", counted)
    model, X, y = build()
    history = model.train(X, y, epochs=7, batch_size=30, verbose=0, callbacks=[TensorBoard(tmp_path, every=3)])
    assert copies == [3, 6, 7]  # epochs 3 and 6, and the last (which `Model.train`'s result reads too)
    scalars, _, _ = read(tmp_path)
    assert [step for step, _ in scalars["loss"]] == [3, 6, 7]
    assert [value for _, value in scalars["loss"]] == as_float32([history.history["loss"][i] for i in (2, 5, 6)])


def test_histograms_leave_training_unchanged(backend, tmp_path):
    with nnx.backends.use(backend.name):
        model, X, y = build(dropout=0.1, l2=5e-4)
        callback = TensorBoard(tmp_path, histograms_every=2)
        with_histograms = model.train(X, y, epochs=4, batch_size=32, verbose=0, callbacks=[callback])
        alone, X, y = build(dropout=0.1, l2=5e-4)
        without = alone.train(X, y, epochs=4, batch_size=32, verbose=0)
    for ours, theirs in zip(model.get_parameters(), alone.get_parameters(), strict=True):
        for mine, other in zip(ours, theirs, strict=True):
            assert np.array_equal(backend.to_numpy(mine), backend.to_numpy(other))
    assert with_histograms.history == without.history
    reader = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={"histograms": 0})
    reader.Reload()
    tags = reader.Tags()["histograms"]
    assert {"dense1/weights", "dense1/weights_gradient", "dense2/biases_gradient"} <= set(tags)
    assert [event.step for event in reader.Histograms("dense1/weights_gradient")] == [2, 4]
    _, hparams, _ = read(tmp_path)
    assert hparams["dropout1_rate"] == 0.1 and hparams["dense1_weight_l2"] == 5e-4


def test_the_model_summary_is_written_as_text(tmp_path):
    model, X, y = build()
    model.train(X, y, epochs=1, verbose=0, callbacks=[TensorBoard(tmp_path)])
    reader = event_accumulator.EventAccumulator(str(tmp_path))
    reader.Reload()
    text = reader.Tensors("model/summary/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "Dense" in text and "ReLU" in text


def test_a_diverged_run_is_marked_failed_and_closed(tmp_path):
    model, X, y = build(lr=1e30)
    callback = TensorBoard(tmp_path)
    history = model.train(X, y, epochs=5, verbose=0, on_divergence="stop", check_every=1, callbacks=[callback])
    assert history.final["diverged"] and callback.writer is None
    scalars, _, status = read(tmp_path)
    assert status == "STATUS_FAILURE"
    assert all(np.isfinite(value) for _, value in scalars.get("loss", []))


def test_bad_arguments_are_refused_at_construction(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ValueError, match=r"is a file, not a folder"):
        TensorBoard(a_file)
    with pytest.raises(ValueError, match=r"is a file, not a folder"):
        TensorBoard(a_file / "run")
    with pytest.raises(TypeError, match=r"must be a str, bytes or os.PathLike"):
        TensorBoard(3)
    with pytest.raises(ValueError, match=r"every"):
        TensorBoard(tmp_path, every=0)
    with pytest.raises(TypeError, match=r"histograms_every"):
        TensorBoard(tmp_path, histograms_every="2")
    with pytest.raises(TypeError, match=r"hparams must be a mapping"):
        TensorBoard(tmp_path, hparams=[1])
    assert not (tmp_path / "run").exists()


def test_a_missing_tensorboardx_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r'pip install "nnx-nnfs\[tensorboard\]"'):
        TensorBoard(tmp_path)
    model, X, y = build()
    with pytest.raises(ImportError, match=r"train_many tensorboard .*nnx-nnfs\[tensorboard\]"):
        nnx.train_many([model], X, y, epochs=1, verbose=0, tensorboard=tmp_path)
    assert model.epochs_trained == 0


def test_import_nnx_imports_no_tracker():
    code = "import nnx, sys; assert not {'tensorboardX', 'tensorboard', 'mlflow'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_train_many_writes_one_run_per_model(tmp_path):
    models, data = [], None
    for lr in (0.01, 0.05, 0.1):
        model, X, y = build(lr)
        models.append(model)
        data = (X, y)
    histories = nnx.train_many(models, *data, epochs=5, batch_size=32, verbose=0, tensorboard=tmp_path)
    folders = sorted(path.name for path in tmp_path.iterdir())
    assert folders == ["model0,learning_rate=0.01", "model1,learning_rate=0.05", "model2,learning_rate=0.1"]
    for folder, history, lr in zip(folders, histories, (0.01, 0.05, 0.1), strict=True):
        scalars, hparams, status = read(tmp_path / folder)
        assert_scalars_equal_history(scalars, history)
        assert (hparams["learning_rate"], status) == (lr, "STATUS_SUCCESS")


def test_a_sweep_writes_one_run_per_trial(tmp_path):
    space = {"lr": [0.5, 0.85, 1.0], "decay": [0.0, 1e-3]}
    result = sweep.run(space, epochs=21, every=10, workers=1, progress=False, tensorboard=tmp_path)
    folders = sorted(path.name for path in tmp_path.iterdir())
    assert len(folders) == 6 and folders[0] == "trial1,lr=0.5,decay=0"
    for trial in result.trials:
        name = f"trial{trial['trial']},lr={trial['params']['lr']:g},decay={trial['params']['decay']:g}"
        scalars, hparams, status = read(tmp_path / name)
        assert [step for step, _ in scalars["loss"]] == trial["history"]["epoch"] == [0, 10, 20]
        assert [value for _, value in scalars["loss"]] == as_float32(trial["history"]["loss"])
        assert (hparams["lr"], hparams["decay"], hparams["epochs"]) == (
            trial["params"]["lr"],
            trial["params"]["decay"],
            21,
        )
        assert status == "STATUS_SUCCESS"


def test_the_sweep_refuses_a_file_as_its_folder_before_training(tmp_path, capsys):
    a_file = tmp_path / "runs"
    a_file.write_text("x")
    assert sweep_main(["--lr", "0.5", "--epochs", "2", "--workers", "1", "--tensorboard", str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_train_many_keeps_its_histories_when_the_runs_cannot_be_written(tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tensorboard_module, "write_history", full_disk)
    model, X, y = build()
    with pytest.warns(UserWarning, match=r"TensorBoard runs could not all be written .*No space left"):
        (history,) = nnx.train_many([model], X, y, epochs=2, verbose=0, tensorboard=tmp_path)
    assert history.epoch == [1, 2] and model.epochs_trained == 2


def test_train_many_stopped_by_ctrl_c_writes_the_epochs_trained(tmp_path, monkeypatch):
    from tests.test_stack_interrupts import interrupt_after

    models = [build(lr)[0] for lr in (0.01, 0.05)]
    _, X, y = build()
    interrupt_after(monkeypatch, 2 * 2 + 1)  # in epoch 3 of 2 steps each
    with pytest.raises(KeyboardInterrupt) as caught:
        nnx.train_many(models, X, y, epochs=5, batch_size=45, verbose=0, tensorboard=tmp_path)
    for index, history in enumerate(caught.value.histories):
        scalars, _, status = read(next(tmp_path.glob(f"model{index},*")))
        assert history.epoch == [1, 2] and [step for step, _ in scalars["loss"]] == [1, 2]
        assert status == "STATUS_UNKNOWN"


@pytest.mark.integration
@pytest.mark.parametrize("batched", [False, True])
def test_sweep_of_factory_trials_keeps_every_history_column(tmp_path, batched):
    from tests.test_sweep import build_model

    space = {"lr": [0.05, 0.5], "units": [4, 8, 16]}
    result = sweep.run(
        {**space, "validation": [True]}, factory=build_model, epochs=6, batch_size=20, workers=1,
        batched=batched, progress=False, tensorboard=tmp_path,
    )  # fmt: skip
    assert len(list(tmp_path.iterdir())) == 6
    for trial in result.trials:
        assert {"loss", "accuracy", "data_loss", "reg_loss", "lr", "val_loss", "val_accuracy"} <= set(trial["history"])
        name = f"trial{trial['trial']},lr={trial['params']['lr']:g},units={trial['params']['units']}"
        scalars, hparams, _ = read(tmp_path / name)
        for metric in ("loss", "val_loss", "lr"):
            assert [value for _, value in scalars[metric]] == as_float32(trial["history"][metric])
        assert hparams["units"] == trial["params"]["units"]


@pytest.mark.integration
def test_sweep_in_processes_and_batched_writes_every_trial(tmp_path):
    space = {"lr": [0.5, 0.85, 1.0], "decay": [0.0, 1e-3]}
    for name, options in {"processes": {"workers": 2}, "batched": {"workers": 2, "batched": True}}.items():
        result = sweep.run(space, epochs=21, every=10, progress=False, tensorboard=tmp_path / name, **options)
        assert len(list((tmp_path / name).iterdir())) == 6
        first = read(tmp_path / name / "trial1,lr=0.5,decay=0")[0]
        assert [value for _, value in first["loss"]] == as_float32(result.trials[0]["history"]["loss"])


def test_an_uncaught_ctrl_c_keeps_the_epochs_written(tmp_path):
    script = (
        "from nnx.callbacks import Callback, TensorBoard\n"
        "from tests.test_tensorboard import build\n\n"
        "class Interrupt(Callback):\n"
        "    def on_epoch_end(self, run):\n"
        "        if run.epoch == 3:\n"
        "            raise KeyboardInterrupt\n\n"
        "model, X, y = build()\n"
        f"model.train(X, y, epochs=5, verbose=0, callbacks=[TensorBoard({str(tmp_path / 'run')!r}), Interrupt()])\n"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True)
    assert result.returncode != 0 and "KeyboardInterrupt" in result.stderr
    scalars, _, _ = read(tmp_path / "run")
    assert [step for step, _ in scalars["loss"]] == [1, 2, 3]
