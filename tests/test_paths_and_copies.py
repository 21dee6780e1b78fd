"""Output paths are checked before any work starts and a failed write names its file; models copy and pickle
through the file format."""

from __future__ import annotations

import copy
import errno
import os
import pickle
import pickletools

import numpy as np
import pytest

import nnx
from nnx.datasets import spiral_data
from tests.helpers import spiral_classifier


@pytest.fixture
def data():
    nnx.seed(0)
    return spiral_data(samples=20, classes=3)


def parameters(model) -> list[np.ndarray]:
    return [model.backend.to_numpy(a) for pair in model.get_parameters() for a in pair]


# Paths ----------------------------------------------------------------------------------------------------------------


def bad_paths(tmp_path) -> dict:
    return {
        "missing folder": (tmp_path / "missing" / "m.nnx", ValueError, "does not exist; create it first"),
        "a folder": (tmp_path, ValueError, "got the folder"),
        "empty": ("", ValueError, "the path is empty"),
        "not a path": (3.5, TypeError, "must be a str, bytes or os.PathLike"),
    }


WRITERS = {
    "Model.save": lambda model, history, path: model.save(path),
    "Model.save_parameters": lambda model, history, path: model.save_parameters(path),
    "nnx.save": lambda model, history, path: nnx.save(model.layers, path),
    "History.to_csv": lambda model, history, path: history.to_csv(path),
    "History.to_json": lambda model, history, path: history.to_json(path),
}


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("case", ["missing folder", "a folder", "empty", "not a path"])
def test_every_writer_checks_its_path_first(data, tmp_path, writer, case):
    model = spiral_classifier()
    history = model.train(*data, epochs=1, print_every=None)
    path, error, message = bad_paths(tmp_path)[case]
    with pytest.raises(error, match=message) as raised:
        WRITERS[writer](model, history, path)
    assert writer.split(".")[-1] in str(raised.value)
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize("case", ["missing folder", "a folder", "empty", "not a path"])
def test_a_bad_checkpoint_path_is_refused_before_training(data, tmp_path, case):
    model = spiral_classifier()
    before = parameters(model)
    path, error, message = bad_paths(tmp_path)[case]
    with pytest.raises(error, match=message):
        model.train(*data, epochs=3, print_every=None, checkpoint=path)
    assert model.optimizer.iterations == 0
    for a, b in zip(before, parameters(model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_read_only_folder_is_refused(data, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders: the permission check cannot fail here")
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    with pytest.raises(ValueError, match="is not writable"):
        spiral_classifier().save(folder / "m.nnx")


def test_home_bytes_and_pathlike_paths_work(data, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    model = spiral_classifier()
    model.train(*data, epochs=2, print_every=None, checkpoint="~/run.nnx")
    assert (tmp_path / "run.nnx").is_file()
    model.save(os.fsencode(tmp_path / "bytes.nnx"))
    model.save(tmp_path / "pathlike.nnx")
    for name in ("~/run.nnx", os.fsencode(tmp_path / "bytes.nnx"), tmp_path / "pathlike.nnx"):
        np.testing.assert_array_equal(nnx.Model.load(name).predict(data[0]), model.predict(data[0]))


def test_saving_through_a_symlink_writes_the_file_it_points_to(data, tmp_path):
    model = spiral_classifier()
    target, link = tmp_path / "real.nnx", tmp_path / "link.nnx"
    model.save(target)
    link.symlink_to(target)
    model.train(*data, epochs=3, print_every=None)
    model.save(link)
    assert link.is_symlink()
    np.testing.assert_array_equal(nnx.Model.load(target).predict(data[0]), model.predict(data[0]))


def disk_full(monkeypatch):
    def full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nnx._paths.os, "fsync", full)


def test_a_failed_write_names_the_file_and_keeps_the_previous_one(data, tmp_path, monkeypatch):
    model = spiral_classifier()
    path = tmp_path / "m.nnx"
    model.save(path)
    old = path.read_bytes()
    model.train(*data, epochs=2, print_every=None)
    disk_full(monkeypatch)
    with pytest.raises(nnx.errors.SaveError) as raised:
        model.save(path)
    message = str(raised.value)
    assert str(path) in message and "disk is full" in message and "the previous file there is intact" in message
    assert raised.value.errno == errno.ENOSPC and isinstance(raised.value, OSError)
    monkeypatch.undo()
    assert path.read_bytes() == old and os.listdir(tmp_path) == ["m.nnx"]


def test_a_failed_checkpoint_stops_training_and_keeps_the_history(data, tmp_path, monkeypatch):
    model = spiral_classifier()
    path = tmp_path / "run.nnx"
    model.train(*data, epochs=2, print_every=None, checkpoint=path)
    disk_full(monkeypatch)
    with pytest.raises(nnx.errors.SaveError, match="Training stopped at epoch 1") as raised:
        model.train(*data, epochs=5, print_every=None, checkpoint=path)
    history = raised.value.history
    assert history.epoch == [1] and np.isfinite(history.history["loss"][0])
    assert model.optimizer.iterations == 3
    monkeypatch.undo()
    assert nnx.io.restore_training(spiral_classifier(), path)["epoch"] == 2  # the previous checkpoint, intact


def test_any_error_in_training_carries_the_runs_history(data):
    class Boom(nnx.callbacks.Callback):
        def on_epoch_end(self, run):
            if run.epoch == 3:
                raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom") as raised:
        spiral_classifier().train(*data, epochs=5, print_every=None, callbacks=[Boom()])
    assert raised.value.history.epoch == [1, 2, 3]  # epoch 3 was trained before the callback raised


# Copies and pickles ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_model_is_independent_and_equal(backend, data, how):
    model = spiral_classifier(backend)
    model.train(*data, epochs=3, print_every=None)
    clone = copy.deepcopy(model) if how == "deepcopy" else pickle.loads(pickle.dumps(model))
    assert clone is not model and clone.backend is model.backend and clone.finalized
    assert repr(clone) == repr(model) and clone.optimizer.get_config() == model.optimizer.get_config()
    assert clone.optimizer.iterations == 3
    for a, b in zip(parameters(model), parameters(clone), strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(a is not b for a, b in zip(model.get_parameters(), clone.get_parameters(), strict=True))
    clone.train(*data, epochs=2, print_every=None)
    assert model.optimizer.iterations == 3  # training the copy leaves the original alone
    model.train(*data, epochs=2, print_every=None)
    for a, b in zip(parameters(model), parameters(clone), strict=True):
        np.testing.assert_array_equal(a, b)  # the optimizer state went with it: the same next steps


def test_a_pickle_holds_arrays_and_json_only(data):
    model = spiral_classifier()
    model.train(*data, epochs=1, print_every=None)
    raw = pickle.dumps(model)
    names = [arg for op, arg, _ in pickletools.genops(raw) if op.name in ("GLOBAL", "STACK_GLOBAL", "SHORT_BINUNICODE")]
    assert "nnx.io.mapping" in names and "model_from_bytes" in names
    forbidden = ("numpy.", "nnx.model", "nnx.layers", "nnx.optimizers", "builtins")  # no array or class pickled
    assert not any(name.startswith(forbidden) for name in names if isinstance(name, str))


def test_unfinalized_and_empty_models_copy_too():
    assert copy.deepcopy(nnx.Model()).layers == []
    model = nnx.Model()
    model.add(nnx.Dense(2, 3))
    model.set(optimizer=nnx.SGD(0.5))
    clone = pickle.loads(pickle.dumps(model))
    assert not clone.finalized and repr(clone.optimizer) == repr(model.optimizer)
    np.testing.assert_array_equal(clone.layers[0].weights, model.layers[0].weights)


def test_layers_copy_and_a_used_optimizer_says_to_copy_the_model(data):
    layer = nnx.Dense(2, 4, weight_regularizer_l2=1e-3)
    clone = copy.deepcopy(layer)
    assert clone.get_config() == layer.get_config() and clone.weights is not layer.weights
    np.testing.assert_array_equal(clone.weights, layer.weights)
    assert pickle.loads(pickle.dumps(nnx.Dropout(0.25))).get_config() == {"rate": 0.25}
    model = spiral_classifier()
    model.train(*data, epochs=1, print_every=None)
    with pytest.raises(TypeError, match=r"Copy the model instead \(copy.deepcopy\(model\)"):
        copy.deepcopy(model.optimizer)


def test_a_checkpoint_folder_removed_while_training_stops_it_with_the_history(data, tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()

    class RemoveTheFolder(nnx.callbacks.Callback):
        def on_epoch_end(self, run):
            if run.epoch == 1:
                (folder / "run.nnx").unlink()
                folder.rmdir()

    with pytest.raises(nnx.errors.SaveError, match=r"does not exist.*Training stopped at epoch 2") as raised:
        spiral_classifier().train(
            *data, epochs=4, print_every=None, checkpoint=folder / "run.nnx", callbacks=[RemoveTheFolder()]
        )
    assert raised.value.history.epoch == [1, 2]


def test_the_history_of_an_interrupted_run_holds_every_checkpointed_epoch(data, tmp_path):
    class Boom(nnx.callbacks.Callback):
        def on_epoch_end(self, run):
            if run.epoch == 3:
                raise RuntimeError("boom")

    path = tmp_path / "run.nnx"
    with pytest.raises(RuntimeError) as raised:
        spiral_classifier().train(*data, epochs=5, print_every=None, checkpoint=path, callbacks=[Boom()])
    assert raised.value.history.epoch == [1, 2, 3]
    assert nnx.io.restore_training(spiral_classifier(), path)["epoch"] == 3
