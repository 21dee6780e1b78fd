"""History in a notebook: `summary()`, the HTML table Jupyter shows (`_repr_html_`), and `to_pandas()`."""

from __future__ import annotations

import json
import math
import sys
from html.parser import HTMLParser

import pytest

import nnx
from nnx.callbacks import History
from nnx.datasets import spiral_data
from tests.helpers import spiral_classifier

DASH = "\u2014"


class Table(HTMLParser):
    """The caption, paragraph text and cell texts (one list per row, entities decoded) of `_repr_html_`'s output."""

    def __init__(self, text: str):
        super().__init__()
        self.caption, self.paragraph, self.rows, self._where = "", "", [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("th", "td"):
            self.rows[-1].append("")
        self._where = tag if tag in ("caption", "p", "th", "td") else self._where

    def handle_endtag(self, tag):
        self._where = None

    def handle_data(self, data):
        if self._where == "caption":
            self.caption += data
        elif self._where == "p":
            self.paragraph += data
        elif self._where in ("th", "td"):
            self.rows[-1][-1] += data


def filled() -> History:
    """Four epochs by hand: a gap in loss, validation measured twice, an extra metric, a tie in accuracy."""
    history = History()
    history.record(1, loss=2.0, accuracy=0.30, lr=0.1, val_loss=None, val_accuracy=None)
    history.record(2, loss=None, accuracy=0.60, lr=0.05, val_loss=1.5, val_accuracy=0.5, f1=0.2)
    history.record(3, loss=0.5, accuracy=0.60, lr=0.02, val_loss=None, val_accuracy=None)
    history.record(4, loss=0.9, accuracy=0.55, lr=0.01, val_loss=1.8, val_accuracy=0.4)
    return history


def row(metric, last, last_epoch, best=None, best_epoch=None) -> dict:
    return {"metric": metric, "last": last, "last_epoch": last_epoch, "best": best, "best_epoch": best_epoch}


def test_summary_gives_each_metrics_last_and_best_value_with_their_epochs():
    assert filled().summary() == [
        row("loss", 0.9, 4, 0.5, 3),  # the None at epoch 2 is skipped, not taken as last or best
        row("accuracy", 0.55, 4, 0.60, 2),  # a tie: the first epoch to reach the best
        row("lr", 0.01, 4),  # no best for the learning rate
        row("val_loss", 1.8, 4, 1.5, 2),
        row("val_accuracy", 0.4, 4, 0.5, 2),
        row("f1", 0.2, 2),  # unknown metric: last only, measured at epoch 2 alone
    ]


def test_summary_minimizes_any_loss_and_maximizes_any_accuracy_by_name():
    history = History()
    history.record(1, top5_acc=0.9, kd_loss=3.0, precision=0.7)
    history.record(2, top5_acc=0.8, kd_loss=4.0, precision=0.6)
    assert history.summary() == [
        row("kd_loss", 4.0, 2, 3.0, 1),
        row("precision", 0.6, 2),
        row("top5_acc", 0.8, 2, 0.9, 1),
    ]


def test_a_nan_loss_is_the_last_value_but_never_the_best():
    history = History()
    for epoch, loss in enumerate([math.nan, 2.0, 1.0, math.nan], start=1):
        history.record(epoch, loss=loss)
    (summary,) = history.summary()
    assert math.isnan(summary["last"]) and summary["last_epoch"] == 4
    assert (summary["best"], summary["best_epoch"]) == (1.0, 3)


def test_html_table_shows_the_summary_under_the_epochs_recorded():
    table = Table(filled()._repr_html_())
    assert table.caption == "History: 4 epochs recorded (1\u20134)"
    assert table.rows == [
        ["metric", "last", "epoch", "best", "epoch"],
        ["loss", "0.9", "4", "0.5", "3"],
        ["accuracy", "0.55", "4", "0.6", "2"],
        ["lr", "0.01", "4", DASH, DASH],
        ["val_loss", "1.8", "4", "1.5", "2"],
        ["val_accuracy", "0.4", "4", "0.5", "2"],
        ["f1", "0.2", "2", DASH, DASH],
    ]


def test_html_numbers_are_compact_and_a_metric_never_measured_shows_dashes():
    history = History()
    history.record(0, loss=0.123456789, val_loss=None)
    history.record(2000, loss=1.5e-7, val_loss=None)
    table = Table(history._repr_html_())
    assert table.caption == "History: 2 epochs recorded (0\u20132000)"
    assert table.rows[1:] == [["loss", "1.5e-07", "2000", "1.5e-07", "2000"], ["val_loss", DASH, DASH, DASH, DASH]]
    assert history.summary()[1] == row("val_loss", None, None)


def test_html_of_one_epoch_names_it():
    history = History()
    history.record(7, loss=1.0)
    assert Table(history._repr_html_()).caption == "History: 1 epoch recorded (epoch 7)"


def test_an_empty_history_says_no_epochs_recorded_instead_of_an_empty_table():
    history = History()
    text = history._repr_html_()
    assert "<table" not in text and Table(text).paragraph == "History: no epochs recorded yet"
    assert history.summary() == []
    assert repr(history) == "History(0 epochs)"  # the plain repr is unchanged


def test_html_escapes_metric_names():
    history = History()
    history.record(1, **{"<b>": 1.0, "a&b": 2.0})
    text = history._repr_html_()
    assert "<b>" not in text and "&lt;b&gt;" in text and "a&amp;b" in text
    assert [cells[0] for cells in Table(text).rows[1:]] == ["<b>", "a&b"]


def test_to_pandas_has_one_row_per_epoch_and_one_float_column_per_metric():
    pandas = pytest.importorskip("pandas")
    history = filled()
    frame = history.to_pandas()
    assert frame.shape == (4, 6)
    assert list(frame.columns) == history.columns()
    assert frame.index.name == "epoch" and list(frame.index) == [1, 2, 3, 4] and frame.index.dtype == "int64"
    assert all(dtype == "float64" for dtype in frame.dtypes)
    assert frame.isna().sum().to_dict() == {
        "loss": 1,
        "accuracy": 0,
        "lr": 0,
        "val_loss": 2,
        "val_accuracy": 2,
        "f1": 3,
    }
    for name, values in history.history.items():
        assert [None if math.isnan(v) else v for v in frame[name]] == values
    assert frame.loc[3, "loss"] == 0.5 and isinstance(frame, pandas.DataFrame)


def test_to_pandas_of_a_json_history_with_integer_values_is_still_float(tmp_path):
    pytest.importorskip("pandas")
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"epoch": [5, 6], "history": {"loss": [1, None]}}))
    frame = History.from_json(path).to_pandas()
    assert frame["loss"].dtype == "float64" and frame.loc[5, "loss"] == 1.0 and math.isnan(frame.loc[6, "loss"])


def test_to_pandas_of_an_empty_history_is_an_empty_frame(tmp_path):
    pytest.importorskip("pandas")
    frame = History().to_pandas()
    assert frame.shape == (0, 0) and frame.index.name == "epoch"
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"epoch": [], "history": {"loss": []}}))
    frame = History.from_json(path).to_pandas()
    assert frame.shape == (0, 1) and frame["loss"].dtype == "float64" and frame.index.dtype == "int64"


def test_to_pandas_without_pandas_says_how_to_install_it(monkeypatch):
    history = filled()
    monkeypatch.setitem(sys.modules, "pandas", None)
    message = r"History\.to_pandas\(\) needs pandas: pip install pandas \(or the nnx-nnfs\[pandas\] extra\)"
    with pytest.raises(ImportError, match=message) as caught:
        history.to_pandas()
    assert isinstance(caught.value.__cause__, ImportError)  # chained from the failed import


def test_the_table_of_a_real_run_matches_its_history():
    nnx.seed(0)
    X, y = spiral_data(samples=40, classes=3)
    history = spiral_classifier("numpy").train(X, y, epochs=5, print_every=None, validation_data=(X, y))
    summary = {entry["metric"]: entry for entry in history.summary()}
    assert list(summary) == history.columns()
    assert summary["loss"]["last"] == history.history["loss"][-1] == history["loss"]
    assert summary["loss"]["best"] == min(history.history["loss"])
    assert summary["val_loss"]["last_epoch"] == 5  # validation measured once, at the end
    cells = {cells[0]: cells[1:] for cells in Table(history._repr_html_()).rows[1:]}
    assert cells["loss"][:2] == [f"{history.history['loss'][-1]:.4g}", "5"]
    assert cells["lr"][2:] == [DASH, DASH]
