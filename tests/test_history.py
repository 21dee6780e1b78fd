"""History and progress as callbacks: per-epoch metrics copied back once, CSV/JSON, verbose=0|1|2, tqdm bars."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

import nnx
from nnx.callbacks import Callback, History, LogLines, ProgressBar
from nnx.datasets import spiral_data
from tests.helpers import spiral_classifier as classifier


@pytest.fixture
def data():
    nnx.seed(0)
    return spiral_data(samples=40, classes=3)


class Recorder(Callback):
    """Every epoch's metrics as the book's lines would print them (one host copy each)."""

    def __init__(self):
        self.values = []

    def on_epoch_end(self, run):
        self.values.append(dict(run.host_metrics()))


def test_history_holds_every_epoch_and_matches_the_printed_metrics(backend, data):
    recorder = Recorder()
    history = classifier(backend).train(*data, epochs=30, print_every=None, callbacks=[recorder])
    assert isinstance(history, History)
    assert history.epoch == list(range(1, 31))
    for name in ("loss", "data_loss", "reg_loss", "accuracy", "lr"):
        assert history.history[name] == pytest.approx([values[name] for values in recorder.values], rel=1e-6)
    assert history["loss"] == pytest.approx(history.history["loss"][-1])
    assert dict(history) == {name: history[name] for name in ("accuracy", "loss", "data_loss", "reg_loss", "lr")}
    assert history["lr"] == history.history["lr"][-1]
    with pytest.raises(KeyError, match=r"History has no final 'val_loss'; it has 'accuracy'.*per-epoch lists"):
        history["val_loss"]
    assert history.history["lr"][0] > history.history["lr"][-1]  # decay shows in the learning-rate column


def test_history_copies_metrics_back_once_not_every_epoch(backend, data):
    def copies_for(epochs: int) -> int:
        model = classifier(backend)
        copies = []
        original = model.backend.to_numpy
        model.backend.to_numpy = lambda x: (copies.append(1), original(x))[1]
        try:
            history = model.train(*data, epochs=epochs, print_every=None, check_every=1000)
        finally:
            del model.backend.to_numpy
        assert len(history.epoch) == epochs
        return len(copies)

    assert copies_for(3) <= 12 and copies_for(300) <= 12  # a few per run (stacked columns), none per epoch


def test_validation_is_aligned_with_epochs(backend, data):
    X, y = data
    once = classifier(backend).train(X, y, epochs=5, print_every=None, validation_data=(X, y))
    assert once.history["val_loss"][:-1] == [None] * 4 and once.history["val_loss"][-1] == once["val_loss"]
    batched = classifier(backend).train(X, y, epochs=3, batch_size=32, print_every=None, validation_data=(X, y))
    assert all(isinstance(value, float) for value in batched.history["val_accuracy"])
    assert batched.history["val_accuracy"][-1] == batched["val_accuracy"]


def test_csv_and_json_round_trip(tmp_path, data):
    X, y = data
    history = classifier("numpy").train(X, y, epochs=4, print_every=None, validation_data=(X, y))
    with history.to_csv(tmp_path / "h.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [row["epoch"] for row in rows] == ["1", "2", "3", "4"]
    assert list(rows[0]) == ["epoch", "loss", "data_loss", "reg_loss", "accuracy", "lr", "val_loss", "val_accuracy"]
    assert rows[0]["val_loss"] == "" and float(rows[-1]["val_loss"]) == history["val_loss"]
    assert float(rows[2]["loss"]) == history.history["loss"][2]  # full precision
    path = history.to_json(tmp_path / "h.json")
    again = History.from_json(path)
    assert again.epoch == history.epoch and again.history == history.history and dict(again) == dict(history)
    assert json.loads(path.read_text())["history"]["val_loss"][0] is None


def test_non_finite_values_are_strings_in_json_and_not_measured_is_null(tmp_path):
    history = History()
    history.record(1, loss=math.nan, accuracy=0.5)
    history.record(2, loss=1.0)
    record = json.loads(history.to_json(tmp_path / "h.json").read_text())
    assert record["history"] == {"loss": ["NaN", 1.0], "accuracy": [0.5, None]}


def test_history_stops_where_training_stopped(data):
    X, y = data
    model = classifier("numpy")
    model.optimizer.learning_rate = model.optimizer.current_learning_rate = 1e30
    history = model.train(X, y, epochs=50, print_every=None, check_every=1, on_divergence="stop")
    assert history["diverged"] is True
    assert len(history.epoch) < 50


def test_a_history_given_as_callback_is_the_one_returned_and_holds_one_run(data):
    mine = History()
    model = classifier("numpy")
    assert model.train(*data, epochs=3, print_every=None, callbacks=[mine]) is mine
    assert mine.epoch == [1, 2, 3]
    model.train(*data, epochs=2, print_every=None, callbacks=[mine])
    assert mine.epoch == [1, 2] and len(mine.history["loss"]) == 2  # starts afresh, as Keras' does
    with pytest.raises(ValueError, match=r"got the same callback twice \(History\)"):
        model.train(*data, epochs=2, print_every=None, callbacks=[mine, mine])


def test_a_trained_history_pickles_and_copies_like_plain_data(data):
    import copy
    import pickle

    history = classifier("numpy").train(*data, epochs=3, print_every=None)
    for again in (pickle.loads(pickle.dumps(history)), copy.deepcopy(history)):
        assert again.epoch == history.epoch and again.history == history.history and dict(again) == dict(history)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "is not a JSON file"),
        ("[1]", "is not a History JSON file"),
        ('{"epoch": [1, 2], "history": {"loss": [1.0]}}', r"has 2 epochs but its column 'loss'"),
        ('{"epoch": [1], "history": []}', "is not a History JSON file"),
    ],
)
def test_from_json_names_the_damaged_file(tmp_path, text, message):
    path = tmp_path / "h.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"History.from_json: .*h.json {message}"):
        History.from_json(path)


def test_resumed_training_numbers_epochs_on(tmp_path, data):
    X, y = data
    path = tmp_path / "ckpt.safetensors"
    classifier("numpy").train(X, y, epochs=2, print_every=None, checkpoint=path)
    history = classifier("numpy").train(X, y, epochs=5, print_every=None, resume=path)
    assert history.epoch == [3, 4, 5]


# Output: verbose and progress --------------------------------------------------------------------------------------


def test_default_output_is_still_the_books(capsys, data):
    classifier("numpy").train(*data, epochs=2, print_every=1)
    assert capsys.readouterr().out.splitlines()[0].startswith("epoch: 1, acc: ")


def test_verbose_0_is_silent_and_2_prints_a_line_every_print_every_epochs(capsys, data):
    X, y = data
    classifier("numpy").train(X, y, epochs=3, verbose=0, validation_data=(X, y))
    assert capsys.readouterr() == ("", "")
    classifier("numpy").train(X, y, epochs=25, verbose=2, print_every=10, validation_data=(X, y))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["epoch 10/25", "epoch 20/25", "epoch 25/25"]
    assert "val_loss: " in lines[-1] and "val_loss" not in lines[0]
    assert lines[0].split(" - ")[1].startswith("loss: ")


def test_verbose_1_without_a_terminal_prints_plain_lines(capsys, data):
    classifier("numpy").train(*data, epochs=2, batch_size=64, verbose=1)
    captured = capsys.readouterr()
    assert [line.split(" - ")[0] for line in captured.out.splitlines()] == ["epoch 1/2", "epoch 2/2"]
    assert "%|" not in captured.err


@pytest.mark.parametrize("verbose", [3, -1, True, "1", 1.0])
def test_bad_verbose_is_refused_before_training(verbose, data):
    model = classifier("numpy")
    before = model.get_parameters()
    with pytest.raises(ValueError, match=r"Model.train verbose must be None .* got "):
        model.train(*data, verbose=verbose)
    after = model.get_parameters()
    assert all(np.array_equal(a, b) for pair in zip(before, after, strict=True) for a, b in zip(*pair, strict=True))


def test_progress_bar_counts_epochs_and_shows_metrics(data):
    stream = io.StringIO()
    classifier("numpy").train(*data, epochs=40, print_every=None, callbacks=[ProgressBar(file=stream)])
    text = stream.getvalue()
    assert "40/40" in text and "loss: " in text and "acc: " in text and "lr: " in text


def test_progress_bar_over_steps_with_batches(data):
    stream = io.StringIO()
    X, y = data
    classifier("numpy").train(X, y, epochs=2, batch_size=32, print_every=None, callbacks=[ProgressBar(file=stream)])
    text = stream.getvalue()
    assert "epoch 1/2" in text and "epoch 2/2" in text and "8/8" in text


def test_progress_bar_fetches_metrics_only_when_due(data):
    fetched = []

    class Count(Callback):
        def on_train_begin(self, run):
            run.host_watchers.append(lambda run, values: fetched.append(run.epoch))

    bar = ProgressBar(file=io.StringIO(), interval=3600)
    classifier("numpy").train(*data, epochs=200, print_every=None, check_every=1000, callbacks=[Count(), bar])
    assert fetched == [200]  # once, at the end: never per epoch


def test_progress_bar_by_hand():
    stream = io.StringIO()
    bar = ProgressBar(file=stream)
    bar.start(10, unit="trial", description="sweep")
    bar.advance(4, {"loss": 0.5})
    bar.close()
    assert "4/10" in stream.getvalue() and "loss: 0.5" in stream.getvalue() and "trial" in stream.getvalue()


def test_log_lines_to_a_file(data):
    stream = io.StringIO()
    classifier("numpy").train(*data, epochs=4, print_every=None, callbacks=[LogLines(2, file=stream)])
    assert [line.split(" - ")[0] for line in stream.getvalue().splitlines()] == ["epoch 2/4", "epoch 4/4"]


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: ProgressBar(interval="x"), TypeError, "ProgressBar interval must be a real number"),
        (lambda: ProgressBar(interval=-1), ValueError, "ProgressBar interval must be a finite number >= 0"),
        (lambda: ProgressBar(file="out.txt"), TypeError, "ProgressBar file must be an open text stream"),
        (lambda: ProgressBar().advance(1), nnx.CallOrderError, r"call start\(total\) first"),
        (lambda: ProgressBar(file=io.StringIO()).start("x"), TypeError, "ProgressBar.start total must be"),
        (lambda: ProgressBar(file=io.StringIO()).start(0), ValueError, "ProgressBar.start total must be"),
        (lambda: LogLines(0), ValueError, "LogLines every must be a positive integer"),
    ],
)
def test_progress_refuses_bad_settings_up_front(make, error, message):
    with pytest.raises(error, match=message):
        make()


# Bad input to record, from_json and check_finite --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("epoch", "error"),
    [(1.7, ValueError), (1.0, ValueError), (-1, ValueError), ("one", TypeError), (True, TypeError), (None, TypeError)],
)
def test_record_refuses_an_epoch_that_is_not_an_integer(epoch, error):
    history = History()
    history.record(0, loss=2.0)
    with pytest.raises(error, match=r"History.record epoch must be an integer >= 0, got .*; pass e.g. epoch=1"):
        history.record(epoch, loss=1.0)
    assert history.epoch == [0] and history.history == {"loss": [2.0]}  # nothing half-recorded


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", r"got 'abc' \(str\)"),
        (np.array([1.0, 2.0]), r"of shape \(2,\)"),
        (np.array(1 + 2j), "dtype complex128"),
        (True, r"got True \(bool\)"),
        ([1.0], "a list of length 1"),
    ],
)
def test_record_refuses_a_metric_that_is_not_one_real_number(value, message):
    history = History()
    with pytest.raises(TypeError, match=rf"History.record loss must be one real number .*{message}.*loss=float"):
        history.record(1, accuracy=0.5, loss=value)
    assert history.epoch == [] and history.history == {}


def test_record_takes_numbers_and_arrays_holding_one():
    history = History()
    history.record(np.int64(0), loss=np.array(1.5), accuracy=np.float32(0.25), lr=1, val_loss=None)
    history.record(1, loss=np.array([[2.5]]), accuracy=np.int32(1), lr=0.5)
    assert history.epoch == [0, 1] and type(history.epoch[0]) is int
    assert history.history == {
        "loss": [1.5, 2.5],
        "accuracy": [0.25, 1.0],
        "lr": [1.0, 0.5],
        "val_loss": [None, None],
    }
    assert all(type(value) is float for value in history.history["loss"])


def test_from_json_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"History.from_json: there is no file .*missing.json; check the path"):
        History.from_json(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"epoch": ["a"], "history": {"loss": [1]}}, "'epoch' list must hold integers"),
        ({"epoch": [1.5], "history": {"loss": [1]}}, "'epoch' list must hold integers"),
        ({"epoch": [True], "history": {"loss": [1]}}, "'epoch' list must hold integers"),
        ({"epoch": [1], "history": {"loss": ["x"]}}, "column 'loss' must hold numbers or null"),
    ],
)
def test_from_json_refuses_a_file_with_bad_values(tmp_path, record, message):
    path = tmp_path / "h.json"
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=rf"History.from_json: .*h.json is not a History JSON file \(its {message}"):
        History.from_json(path)


@pytest.mark.parametrize("loss", ["abc", None, [1.0], np.array([1.0, 2.0])])
def test_check_finite_refuses_a_loss_that_is_not_a_number(loss):
    with pytest.raises(TypeError, match=r"check_finite loss must be a real number or a 0-d array, got .*; pass"):
        nnx.check_finite(loss)


def test_check_finite_takes_numbers_and_0d_arrays():
    assert nnx.check_finite(np.float32(1.5)) == 1.5
    assert nnx.check_finite(np.array(2.0)) == 2.0
    assert nnx.check_finite(3) == 3.0
