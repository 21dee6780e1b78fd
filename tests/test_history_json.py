"""A History keeps NaN and infinities through JSON (as the strings "NaN", "Infinity", "-Infinity": strict JSON) and
CSV, so a diverged run reads back as diverged; files written before (null) still load; and no metric may take the
epoch column's name."""

from __future__ import annotations

import csv
import json
import math

import pytest

import nnx
from nnx.callbacks import History
from tests.test_train_many import data, diverging

QUIET_FLOATS = pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered:RuntimeWarning")


def with_special_values() -> History:
    history = History()
    history.record(1, loss=1.5, accuracy=0.25, val_loss=None)
    history.record(2, loss=math.inf, accuracy=0.5, val_loss=-math.inf)
    history.record(3, loss=math.nan, accuracy=None, val_loss=2.0)
    history.final = {"loss": math.nan, "accuracy": 0.5, "val_loss": math.inf, "diverged": True, "epoch": 3}
    return history


def same(ours: list, theirs: list) -> bool:
    """Equal lists where NaN equals NaN and None stays None."""
    return len(ours) == len(theirs) and all(
        (a is None and b is None)
        or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
        or a == b
        for a, b in zip(ours, theirs, strict=True)
    )


def test_nan_and_infinities_round_trip_through_json(tmp_path):
    history = with_special_values()
    path = history.to_json(tmp_path / "h.json")
    text = path.read_text()
    record = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not strict JSON"))
    assert record["history"]["loss"] == [1.5, "Infinity", "NaN"]
    assert record["history"]["val_loss"] == [None, "-Infinity", 2.0]
    assert record["final"]["loss"] == "NaN" and record["final"]["val_loss"] == "Infinity"
    again = History.from_json(path)
    assert again.epoch == [1, 2, 3]
    for name, values in history.history.items():
        assert same(again.history[name], values), name
    assert math.isnan(again.final["loss"]) and again.final["val_loss"] == math.inf
    assert again.final["diverged"] is True and again.final["epoch"] == 3
    assert again.history["accuracy"][2] is None  # null is still "not measured"


def test_files_written_with_null_or_bare_nan_still_load(tmp_path):
    path = tmp_path / "old.json"
    path.write_text('{"epoch": [1, 2], "history": {"loss": [null, 1.0], "val_loss": [NaN, Infinity]}, "final": {}}')
    again = History.from_json(path)
    assert again.history["loss"] == [None, 1.0]
    assert math.isnan(again.history["val_loss"][0]) and again.history["val_loss"][1] == math.inf


@pytest.mark.parametrize("text", ['"nan"', '"inf"', '"Inf"', '"1.0"'])
def test_other_strings_in_a_column_are_refused(tmp_path, text):
    path = tmp_path / "h.json"
    path.write_text(f'{{"epoch": [1], "history": {{"loss": [{text}]}}}}')
    with pytest.raises(ValueError, match=r"its column 'loss' must hold numbers or null, or \"NaN\""):
        History.from_json(path)


@QUIET_FLOATS
def test_a_diverged_run_reads_back_with_its_non_finite_losses(tmp_path):
    X, y = data()
    model = diverging()  # its loss is NaN from epoch 3; the divergence check runs every 100 steps
    history = model.train(X, y, epochs=6, print_every=None, on_divergence="stop")
    assert history.final["diverged"] is True and math.isnan(history.history["loss"][-1])
    again = History.from_json(history.to_json(tmp_path / "h.json"))
    assert again.final == history.final
    assert same(again.history["loss"], history.history["loss"])
    assert math.isnan(again.summary()[0]["last"])  # not the last finite loss, as null (not measured) made it


def test_nan_and_infinities_round_trip_through_csv(tmp_path):
    history = with_special_values()
    with history.to_csv(tmp_path / "h.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [row["loss"] for row in rows] == ["1.5", "inf", "nan"]
    assert [row["val_loss"] for row in rows] == ["", "-inf", "2.0"]
    loss = [float(row["loss"]) for row in rows]
    assert loss[1] == math.inf and math.isnan(loss[2])


# A metric named "epoch" ------------------------------------------------------------------------------------------

EPOCH_METRIC = r"a metric is named 'epoch', the name of the epoch column, which it would overwrite; rename the metric"


def test_a_column_named_epoch_is_refused_by_from_columns():
    with pytest.raises(ValueError, match=rf"History.from_columns: {EPOCH_METRIC}"):
        History.from_columns([1, 2], {"loss": [1.0, 0.5], "epoch": [10, 20]}, {})


@pytest.mark.parametrize("write", ["to_csv", "to_json", "rows"])
def test_a_metric_named_epoch_is_refused_before_anything_is_written(tmp_path, write):
    history = History()
    history.record(1, loss=1.0)
    history.history["epoch"] = [7]  # set by hand
    path = tmp_path / "h.out"
    with pytest.raises(ValueError, match=rf"History.{write}: {EPOCH_METRIC}"):
        getattr(history, write)(*(() if write == "rows" else (path,)))
    assert not path.exists()


def test_a_json_file_with_an_epoch_column_is_refused(tmp_path):
    path = tmp_path / "h.json"
    path.write_text('{"epoch": [1], "history": {"epoch": [5]}}')
    with pytest.raises(ValueError, match=rf"History.from_json: .*h.json: {EPOCH_METRIC}"):
        History.from_json(path)


def test_record_cannot_take_a_metric_named_epoch():
    history = History()
    with pytest.raises(TypeError, match="multiple values for argument 'epoch'"):
        history.record(1, **{"epoch": 2.0})
    assert history.epoch == [] and nnx.callbacks.History().history == {}
