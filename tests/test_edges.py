"""The less-trodden edges: host data of any kind, threads, broken plug-ins, seeds, records from hand-edited files,
plots of predict functions and the examples' options."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import nnx
from nnx import backends, cli
from nnx.datasets import spiral_data
from nnx.io import format as file_format
from nnx.io import mapping
from tests.helpers import spiral_classifier

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def data():
    nnx.seed(0)
    return spiral_data(samples=20, classes=3)


# Host data of any kind -----------------------------------------------------------------------------------------------


def test_pandas_objects_are_read_like_arrays(data):
    pandas = pytest.importorskip("pandas")
    X, y = data
    frame, labels = pandas.DataFrame(X, columns=["x1", "x2"]), pandas.Series(y)
    nnx.seed(1)
    from_pandas = spiral_classifier(optimizer=nnx.SGD())
    history = from_pandas.train(frame, labels, epochs=3, print_every=None, validation_data=(frame, labels))
    nnx.seed(1)
    from_numpy = spiral_classifier(optimizer=nnx.SGD())
    expected = from_numpy.train(X, y, epochs=3, print_every=None, validation_data=(X, y))
    assert history.history == expected.history
    np.testing.assert_array_equal(from_pandas.predict(frame), from_numpy.predict(X))
    assert from_pandas.evaluate(frame, labels, verbose=False) == from_numpy.evaluate(X, y, verbose=False)
    with pytest.raises(TypeError, match="expected training inputs of real numbers, got dtype object"):
        from_pandas.train(frame.assign(x2=["a"] * len(frame)), labels, print_every=None)


def test_memoryviews_and_nested_lists_are_read_like_arrays(data):
    X, _ = data
    model = spiral_classifier()
    expected = model.predict(X)
    np.testing.assert_array_equal(model.predict(memoryview(np.ascontiguousarray(X))), expected)
    np.testing.assert_array_equal(model.predict(X.tolist()), expected)
    with pytest.raises(ValueError, match="could not be read as an array"):
        model.predict([[1.0, 2.0], [3.0]])


def test_another_librarys_array_is_still_refused(data):
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"must be an array of backend 'numpy'.*got torch\.Tensor"):
        spiral_classifier().predict(torch.zeros(3, 2))


# Threads -------------------------------------------------------------------------------------------------------------


def test_one_model_trains_in_one_thread_at_a_time(data):
    model = spiral_classifier()
    errors, started, tried = [], threading.Event(), threading.Event()

    class WaitForTheOther(nnx.callbacks.Callback):
        def on_epoch_end(self, run):
            started.set()
            tried.wait(timeout=60)

    def first():
        model.train(*data, epochs=3, print_every=None, callbacks=[WaitForTheOther()])

    def second():
        started.wait(timeout=60)
        try:
            model.train(*data, epochs=3, print_every=None)
        except nnx.errors.ConcurrentTrainingError as error:
            errors.append(error)
        tried.set()

    workers = [threading.Thread(target=first), threading.Thread(target=second)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(errors) == 1 and "this model is already training (in another thread" in str(errors[0])
    assert model.optimizer.iterations == 3  # the first run finished undisturbed


def test_a_callback_cannot_train_its_own_model(data):
    class Nested(nnx.callbacks.Callback):
        def on_epoch_end(self, run):
            run.model.train(*data, epochs=1, print_every=None)

    model = spiral_classifier()
    with pytest.raises(nnx.errors.ConcurrentTrainingError, match="in a callback of its own training"):
        model.train(*data, epochs=2, print_every=None, callbacks=[Nested()])
    model.train(*data, epochs=1, print_every=None)  # the lock was released


def test_different_models_train_in_different_threads(data):
    X, y = (np.repeat(a, 10, axis=0) for a in data)
    rates = [0.5, 1.0, 0.1, 0.8]

    def model(rate):
        nnx.seed(3)
        return spiral_classifier(optimizer=nnx.SGD(rate, momentum=0.5))

    alone = {}
    for rate in rates:
        alone[rate] = model(rate).train(X, y, epochs=15, print_every=None).history
    threaded, models = {}, {rate: model(rate) for rate in rates}

    def train(rate):
        threaded[rate] = models[rate].train(X, y, epochs=15, print_every=None).history

    workers = [threading.Thread(target=train, args=(rate,)) for rate in rates]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert threaded == alone


# Registry and seeds --------------------------------------------------------------------------------------------------


def test_a_broken_plugin_is_unavailable_and_the_others_keep_working(isolated_registry, capsys):
    def broken():
        raise RuntimeError("the plug-in's own bug")

    backends.register("broken", broken)
    assert "broken" not in backends.available() and "numpy" in backends.available()
    with pytest.raises(backends.BackendUnavailableError, match=r"its loader failed \(RuntimeError: the plug-in's"):
        backends.get("broken")
    cli.main(["info"])
    assert "broken             unavailable: its loader failed (RuntimeError" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("value", "error"), [(1.5, TypeError), (-1, ValueError), (2**32, ValueError), (True, TypeError), ("1", TypeError)]
)
def test_seeds_are_checked(value, error):
    state = np.random.get_state()[1].copy()
    with pytest.raises(error, match=r"nnx.seed expects an integer in \[0, 2\*\*32\)"):
        nnx.seed(value)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_seed_limits_and_numpy_integers_work():
    for value in (0, 2**32 - 1, np.int64(7)):
        nnx.seed(value)
        first = np.random.random(3)
        nnx.seed(int(value))
        np.testing.assert_array_equal(np.random.random(3), first)


def run_example(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_the_examples_name_a_bad_count():
    result = run_example("examples/spiral.py", "--epochs", "1.5")
    assert result.returncode == 2 and "argument --epochs: invalid positive value: '1.5'" in result.stderr


def test_the_examples_take_upper_case_suffixes(tmp_path):
    history = tmp_path / "h.CSV"
    result = run_example("examples/sine.py", "--epochs", "2", "--history", str(history))
    assert result.returncode == 0, result.stderr
    assert history.read_text().startswith("epoch,")


# Records from hand-edited files --------------------------------------------------------------------------------------


def edited(path, change) -> None:
    """Rewrite the model file at `path` with `change(record)` applied (a valid checksum: a hand edit)."""
    record, tensors = file_format.read(path)
    change(record)
    record.pop("checksum")
    file_format.write(path, tensors, record)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["optimizer"]["config"].update(learning_rate=float("nan")), "learning_rate must be a finite"),
        (lambda r: r["optimizer"].update(current_learning_rate=float("nan")), "'current_learning_rate' is not > 0"),
        (lambda r: r["layers"][0]["config"].update(weight_regularizer_l2=float("inf")), "must be a finite number"),
        (lambda r: r["layers"][0]["config"].update(n_inputs=10**6, n_neurons=10**6), r"declares weights of shape"),
    ],
    ids=["nan-learning-rate", "nan-current-rate", "inf-regularizer", "huge-layer"],
)
def test_records_are_validated_before_anything_is_allocated(tmp_path, change, message):
    path = tmp_path / "m.nnx"
    spiral_classifier().save(path, training={"epoch": 1})
    edited(path, change)
    with pytest.raises(nnx.CheckpointError, match=message):
        nnx.Model.load(path)


def test_model_load_of_a_layer_list_points_to_nnx_load(tmp_path):
    path = tmp_path / "layers.nnx"
    nnx.save([nnx.Dense(2, 3), nnx.Dense(4, 5)], path)  # the book's layer-by-layer code: not one model
    with pytest.raises(nnx.CheckpointError, match=r"a bare list of layers \(from nnx.save\): load them with nnx.load"):
        nnx.Model.load(path)
    assert len(nnx.load(path)) == 2


def test_a_file_from_format_version_1_without_new_fields_still_loads(tmp_path, data):
    model = spiral_classifier()
    model.train(*data, epochs=2, print_every=None)
    path = tmp_path / "m.nnx"
    model.save(path)
    record = json.loads(json.dumps(file_format.read(path)[0]))
    assert "finalized" not in record  # only copies and pickles say whether the model was finalized
    np.testing.assert_array_equal(nnx.Model.load(path).predict(data[0]), model.predict(data[0]))
    assert mapping.model_from_bytes(mapping.model_bytes(model)).finalized


# Messages ------------------------------------------------------------------------------------------------------------


def test_dropouts_message_suggests_a_rate():
    with pytest.raises(ValueError, match=r"got 1.0; pass a value such as rate=0.1$"):
        nnx.Dropout(1.0)


def test_decision_boundary_checks_a_functions_classes_against_the_labels(data):
    pytest.importorskip("matplotlib")
    X, y = data
    with pytest.raises(ValueError, match=r"got class 2 in y, but the predict function returns 2 score column"):
        nnx.plot.decision_boundary(lambda points: np.ones((len(points), 2)), X, y)
    with pytest.raises(ValueError, match=r"returns 1 score column"):
        nnx.plot.decision_boundary(lambda points: np.ones((len(points), 1)), X, y)
    figure = nnx.plot.decision_boundary(lambda points: np.ones((len(points), 3)), X, y, resolution=20)
    assert figure.axes


# What a probe found besides ----------------------------------------------------------------------------------------


def test_a_stop_before_the_first_step_trains_nothing(data):
    class StopAtBegin(nnx.callbacks.Callback):
        def on_train_begin(self, run):
            run.stop = True

    class StopAtEpoch2(nnx.callbacks.Callback):
        def on_epoch_begin(self, run):
            run.stop = run.epoch == 2

    model = spiral_classifier()
    before = [np.array(a) for pair in model.get_parameters() for a in pair]
    history = model.train(*data, epochs=5, print_every=None, callbacks=[StopAtBegin()])
    assert model.optimizer.iterations == 0 and history.epoch == [] and history.final == {}
    for a, b in zip(before, [a for pair in model.get_parameters() for a in pair], strict=True):
        np.testing.assert_array_equal(a, b)
    history = model.train(*data, epochs=5, print_every=None, callbacks=[StopAtEpoch2()])
    assert model.optimizer.iterations == 1 and history.epoch == [1]


def test_everyday_mistakes_are_named(data):
    model = spiral_classifier()

    class Mine(nnx.callbacks.Callback):
        pass

    with pytest.raises(TypeError, match=r"got the class Mine; pass an instance: callbacks=\[Mine\(\)\]"):
        model.train(*data, callbacks=[Mine])
    with pytest.raises(TypeError, match=r"Model\.evaluate verbose must be True or False, got .no."):
        model.evaluate(*data, verbose="no")
    with pytest.raises(TypeError, match=r"got the base class Loss, which computes nothing itself"):
        nnx.Model().set(loss=nnx.losses.Loss())
    with pytest.raises(TypeError, match=r"got the base class Accuracy"):
        nnx.Model().set(accuracy=nnx.metrics.Accuracy())
    with pytest.raises(ValueError, match="a diverged run"):
        model.set_parameters([(np.full((2, 16), np.nan), np.zeros((1, 16))), model.get_parameters()[1]])

    class Early(nnx.callbacks.Callback):
        def on_train_begin(self, run):
            run.host_metrics()

    with pytest.raises(nnx.CallOrderError, match="no metrics before the first training step"):
        model.train(*data, callbacks=[Early()], print_every=None)


def test_a_foreign_array_is_named_against_the_models_own_backend(data):
    torch = pytest.importorskip("torch")
    model = spiral_classifier(backends.get("array_api_strict"))
    with pytest.raises(TypeError, match=r"must be an array of backend 'array_api_strict'.*got torch\.Tensor"):
        model.predict(torch.zeros(3, 2))


def test_torch_tensors_that_require_grad_are_read_as_values(data):
    torch = pytest.importorskip("torch")
    X, y = data
    model = spiral_classifier(backends.get("torch"))
    model.train(torch.tensor(X, requires_grad=True), torch.tensor(y), epochs=2, print_every=None)
    assert not model.layers[0].weights.requires_grad
    assert model.backend.to_numpy(torch.ones(2, requires_grad=True)).tolist() == [1.0, 1.0]


def test_the_sweep_cli_refuses_options_that_would_lose_work(tmp_path, capsys):
    assert cli.main(["sweep", "--lr", "0.5", "--lr", "1.0", "--epochs", "1"]) == 2
    assert "--lr is given twice ([0.5] and [1.0]); give it once" in capsys.readouterr().err
    same = str(tmp_path / "same.png")
    assert cli.main(["sweep", "--lr", "0.5", "--epochs", "1", "--csv", same, "--plot", same]) == 2
    assert "--csv and --plot name the same file" in capsys.readouterr().err


def test_a_sweep_checks_its_arguments_before_touching_the_csv(tmp_path):
    kept = tmp_path / "keep.csv"
    kept.write_text("precious")
    with pytest.raises(TypeError, match="progress must be True or False"):
        nnx.sweep.run({"samples": [10]}, epochs=1, workers=1, csv=kept, progress="yes")
    assert kept.read_text() == "precious"


def test_a_sweep_refuses_a_dtype_its_backend_lacks_before_any_trial(monkeypatch, capsys):
    numpy_backend = backends.get("numpy")

    def no_float64(dtype=None):
        raise TypeError("backend 'numpy' has no float64 dtype here")

    monkeypatch.setattr(numpy_backend, "float_dtype", no_float64)
    with pytest.raises(TypeError, match="has no float64 dtype here"):
        nnx.sweep.run({"dtype": ["float64"], "samples": [10]}, epochs=1, workers=1, progress=False)
    assert capsys.readouterr().out == ""


def test_numpy_subclasses_are_read_as_their_values_or_refused(data):
    X, y = data
    model = spiral_classifier()
    expected = model.predict(X)
    with pytest.warns(PendingDeprecationWarning):  # NumPy's own, for making a matrix
        matrix = np.asmatrix(X)
    np.testing.assert_array_equal(model.predict(matrix), expected)
    np.testing.assert_array_equal(model.predict(np.ma.masked_array(X)), expected)
    masked = np.ma.masked_array(X)
    masked[3, 1] = np.ma.masked
    with pytest.raises(TypeError, match=r"masked array with 1 masked values.*x\.filled"):
        model.train(masked, y, print_every=None)
    assert model.optimizer.iterations == 0


@pytest.mark.parametrize("name", ["", 123, None])
def test_backend_names_are_checked(isolated_registry, name):
    with pytest.raises(TypeError, match="a backend's name must be a non-empty string"):
        backends.register(name, lambda: backends.get("numpy"))


def test_a_loader_that_exits_or_a_device_that_fails_does_not_stop_the_report(isolated_registry):
    def exits():
        raise SystemExit(3)

    def crashed():
        raise RuntimeError("driver crashed")

    crashing = copy.copy(backends.get("numpy"))
    crashing.device_info = crashed
    backends.register("exits", exits)
    backends.register("crashing", lambda: crashing)
    assert "exits" not in backends.available()
    lines = cli.info_lines()
    assert any("exits" in line and "unavailable: its loader failed (SystemExit: 3)" in line for line in lines)
    assert any("device: unknown (RuntimeError: driver crashed)" in line for line in lines)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("file.txt/m.nnx", "is a file, not a folder"),
        ("m\x00.nnx", "contains a NUL character"),
        ("m" * 300 + ".nnx", "cannot be a file here"),
    ],
    ids=["under-a-file", "nul", "too-long"],
)
def test_impossible_file_names_are_named(tmp_path, name, message):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match=f"Model.save.*{message}"):
        spiral_classifier().save(str(tmp_path / name))


def test_the_examples_refuse_empty_output_names():
    for script, option, message in (
        ("examples/sine.py", "--history", "--history needs a file name ending in .csv or .json, got ''"),
        ("examples/spiral.py", "--plot", "--plot: the path is empty"),
    ):
        result = run_example(script, "--epochs", "1", option, "")
        assert result.returncode == 2 and message in result.stderr
