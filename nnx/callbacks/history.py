"""`History`: every epoch's metrics of a training run, kept on the device and copied back once, at the end.

It is what `Model.train` returns: indexing it gives the last epoch's values (``history["loss"]``), its `history`
attribute the per-epoch lists (``history.history["loss"]``), and it saves itself as CSV or JSON. In a notebook it
shows as a table of each metric's last and best value (`summary()`), and `to_pandas()` gives a DataFrame.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import numbers
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import array_api_compat

from nnx import _checks
from nnx._paths import atomic_write, input_path, output_path
from nnx.callbacks.base import Callback, Run, host_float

if TYPE_CHECKING:
    from nnx.backends import Backend

METRICS = ("loss", "data_loss", "reg_loss", "accuracy", "lr")
VALIDATION = ("val_loss", "val_accuracy")
# How to_json writes the numbers JSON has no literal for (strict JSON: any parser reads the file), and from_json
# reads them back; a number is never a string otherwise.
JSON_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
RESERVED = "epoch"  # the epoch column of rows() and to_csv: no metric may take its name


class History(Callback, Mapping):
    """Per-epoch loss (data and regularization), accuracy, learning rate and validation metrics of one run.

    `Model.train` returns one. As a mapping it holds the final metrics (``history["loss"]``); its `history`
    attribute holds the per-epoch lists. Use it as a callback, or fill it by hand with `record()` in your own loop.

    Attributes:
        epoch: the epochs recorded, in order.
        history: metric name -> one value per recorded epoch, aligned with `epoch` (None where a metric was not
            measured, e.g. validation without batches, measured once at the end). Names: "loss", "data_loss",
            "reg_loss", "accuracy", "lr", and "val_loss", "val_accuracy" with validation data.
        final: the final metrics `Model.train` reports (after a divergence: {"diverged": True, "epoch", "step",
            "loss"}, the last finite loss).

    NaN and infinite values are kept: `to_json` writes them as the strings "NaN", "Infinity" and "-Infinity"
    (the file stays strict JSON) and `from_json` reads them back as floats, while null stays "not measured". `to_csv`
    writes them as nan, inf and -inf, which ``float()`` reads back. No metric may be named "epoch": that name is
    the epoch column.
    """

    def __init__(self) -> None:
        self.epoch: list[int] = []
        self.history: dict[str, list] = {}
        self.final: dict[str, Any] = {}
        self._pending: list[tuple[int, dict[str, Any], float, dict[str, Any] | None]] = []
        self._backend: Backend | None = None

    def __repr__(self) -> str:
        last = ", ".join(f"{name}={_short(value)}" for name, value in self.final.items())
        return f"History({len(self.epoch)} epochs{', ' if last else ''}{last})"

    # Mapping: the final metrics -------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Any:
        try:
            return self.final[name]
        except KeyError:
            raise KeyError(
                f"History has no final {name!r}; it has {', '.join(map(repr, self.final)) or 'none yet'} (the "
                f"per-epoch lists are in history.history: {', '.join(map(repr, self.columns())) or 'none yet'})"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.final)

    def __len__(self) -> int:
        return len(self.final)

    # Recording --------------------------------------------------------------------------------------------------

    def record(self, epoch: int, **values: Any) -> None:
        """Add one epoch's values, for a hand-written loop.

        Args:
            epoch: the epoch's number, an integer >= 0.
            **values: metric name -> value: a real number, an array holding one (0-d or of size 1, copied to the
                host), or None where it was not measured. A new name starts a column (None for earlier epochs);
                a name left out gets None.

        Raises:
            TypeError: `epoch` is not a number (a string, a bool), or a value is not one real number.
            ValueError: `epoch` is not a whole number >= 0 (1.0 and -1 are refused).
        """
        epoch = _epoch(epoch)
        values = {name: _metric(name, value) for name, value in values.items()}
        self.epoch.append(epoch)
        for name in values.keys() - self.history.keys():
            self.history[name] = [None] * (len(self.epoch) - 1)
        for name, column in self.history.items():
            column.append(values.get(name))

    @classmethod
    def from_columns(cls, epoch: list[int], columns: dict[str, list], final: dict[str, Any]) -> History:
        """The History of a finished run, from host values (what `nnx.train_many` returns per model).

        Args:
            epoch: the epochs recorded.
            columns: metric name -> one value per epoch, aligned with `epoch` (None where not measured).
            final: the final metrics.

        Returns:
            A new History holding copies of them.

        Raises:
            ValueError: a column's length differs from the number of epochs, or a column is named "epoch".
        """
        history = cls()
        history.epoch = [int(value) for value in epoch]
        for name, column in columns.items():
            _not_reserved(name, "History.from_columns")
            if len(column) != len(history.epoch):
                raise ValueError(
                    f"History.from_columns column {name!r} has {len(column)} values for {len(history.epoch)} epochs; "
                    f"give one value (or None) per epoch"
                )
        history.history = {name: list(column) for name, column in columns.items()}
        history.final = dict(final)
        return history

    def on_train_begin(self, run: Run) -> None:
        """Start afresh: a History records one training run (as Keras' does).

        Args:
            run: the training run.
        """
        self.epoch, self.history, self.final = [], {}, {}
        self._pending = []
        self._backend = run.model.backend

    def on_epoch_end(self, run: Run) -> None:
        """Keep the epoch's metrics, still on the device.

        Args:
            run: the training run.
        """
        if run.metrics:
            lr = run.model.optimizer.current_learning_rate
            self._pending.append((run.epoch, run.metrics, lr, dict(run.logs) if run.logs else None))

    def on_train_end(self, run: Run) -> None:
        """Copy the epochs' metrics to the host (one transfer per metric) and fill the columns.

        Args:
            run: the training run.
        """
        pending, self._pending = self._pending, []
        if pending:
            data_loss, reg_loss, accuracy = (
                self._host([metrics[name] for _, metrics, _, _ in pending])
                for name in ("data_loss", "reg_loss", "accuracy")
            )
            self.epoch = [epoch for epoch, _, _, _ in pending]
            self.history = {
                "loss": [data + reg for data, reg in zip(data_loss, reg_loss, strict=True)],
                "data_loss": data_loss,
                "reg_loss": reg_loss,
                "accuracy": accuracy,
                "lr": [float(lr) for _, _, lr, _ in pending],
            }
            logs = [entry or {} for _, _, _, entry in pending]
            logs[-1] = {**logs[-1], **run.logs}  # validation at the end of training belongs to the last epoch
            for name in VALIDATION:
                if any(name in entry for entry in logs):
                    self.history[name] = [entry.get(name) for entry in logs]
        self._backend = None  # done with the device: the History pickles and copies like plain data

    def _host(self, values: list) -> list[float]:
        """Host floats of a list of 0-d device values (stacked: one copy for all) or Python numbers."""
        backend = cast("Backend", self._backend)  # set by on_train_begin
        if not values or any(isinstance(value, (int, float)) for value in values):
            return [host_float(backend, value) for value in values]
        return backend.host_floats(values)

    # Notebook views ---------------------------------------------------------------------------------------------

    def summary(self) -> list[dict]:
        """Each metric's last and best value, as a notebook shows the History.

        Returns:
            One dict per metric, in `columns()` order: {"metric", "last", "last_epoch", "best", "best_epoch"}.
            Epochs not measured (None) are skipped; best is the minimum of a loss, the maximum of an accuracy, and
            None (as is last when never measured) for the learning rate and other metrics.
        """
        return [_summary_row(name, self.epoch, self.history[name]) for name in self.columns()]

    def _repr_html_(self) -> str:
        """Jupyter's view: a table of `summary()` under a line saying which epochs were recorded."""
        if not self.epoch:
            return "<p>History: no epochs recorded yet</p>"
        header = "".join(f"<th>{title}</th>" for title in ("metric", "last", "epoch", "best", "epoch"))
        body = "".join(_html_row(row) for row in self.summary())
        return (
            f'<table class="nnx-history"><caption style="text-align: left">{self._heading()}</caption>'
            f"<thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"
        )

    def _heading(self) -> str:
        n, first, last = len(self.epoch), self.epoch[0], self.epoch[-1]
        span = f"{first}&ndash;{last}" if n > 1 else f"epoch {first}"
        return f"History: {n} epoch{'s' if n > 1 else ''} recorded ({span})"

    def to_pandas(self) -> Any:
        """The History as a pandas DataFrame.

        Returns:
            A DataFrame with one row per recorded epoch (index "epoch"), one float column per metric in `columns()`
            order, NaN where not measured.

        Raises:
            ImportError: pandas is not installed.
        """
        try:
            import pandas
        except ImportError as error:
            raise ImportError(
                "History.to_pandas() needs pandas: pip install pandas (or the nnx-nnfs[pandas] extra)"
            ) from error
        columns = {name: [math.nan if v is None else float(v) for v in self.history[name]] for name in self.columns()}
        index = pandas.Index(self.epoch, dtype="int64", name="epoch")
        return pandas.DataFrame(columns, index=index, columns=self.columns(), dtype="float64")

    # Files ------------------------------------------------------------------------------------------------------

    def columns(self) -> list[str]:
        """The recorded metric names.

        Returns:
            loss, data_loss, reg_loss, accuracy, lr, val_loss, val_accuracy (those recorded), then any others in
            alphabetical order.
        """
        known = [name for name in (*METRICS, *VALIDATION) if name in self.history]
        return known + sorted(name for name in self.history if name not in known)

    def rows(self) -> list[dict]:
        """The History by epoch.

        Returns:
            One dict per recorded epoch: {"epoch": 1, "loss": ..., ...}, with a key for every column.

        Raises:
            ValueError: a metric is named "epoch", the name of the epoch column.
        """
        self._check_names("History.rows")
        names = self.columns()
        return [
            {"epoch": epoch, **{name: self.history[name][index] for name in names}}
            for index, epoch in enumerate(self.epoch)
        ]

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the History as CSV: an "epoch" column, then `columns()`; one row per epoch.

        Numbers are written at full precision (NaN and infinities as nan, inf and -inf, which ``float()`` reads
        back), and a metric not measured leaves its cell empty. The file is replaced in one step.

        Args:
            path: the file to write.

        Returns:
            The absolute path written.

        Raises:
            ValueError: a metric is named "epoch", the name of the epoch column.
        """
        self._check_names("History.to_csv")
        path = output_path(path, "History.to_csv")
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=["epoch", *self.columns()])
        writer.writeheader()
        for row in self.rows():
            writer.writerow({name: "" if value is None else repr(value) for name, value in row.items()})
        atomic_write(path, text.getvalue().encode())
        return path

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the History as JSON, which `from_json` reads back.

        The object is {"epoch": [...], "history": {name: [...]}, "final": {...}}, with null where a metric was not
        measured and the strings "NaN", "Infinity" and "-Infinity" for those values (strict JSON, which every
        parser reads; `from_json` turns them back into floats). The file is replaced in one step.

        Args:
            path: the file to write.

        Returns:
            The absolute path written.

        Raises:
            ValueError: a metric is named "epoch", the name of the epoch column.
        """
        self._check_names("History.to_json")
        path = output_path(path, "History.to_json")
        record = {
            "epoch": self.epoch,
            "history": {name: [_json_number(v) for v in self.history[name]] for name in self.columns()},
            "final": {name: _json_number(v) for name, v in self.final.items()},
        }
        atomic_write(path, (json.dumps(record, indent=1, allow_nan=False) + "\n").encode())
        return path

    def _check_names(self, owner: str) -> None:
        for name in self.history:
            _not_reserved(name, owner)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> History:
        """A History read back from `to_json`'s file.

        Args:
            path: the JSON file.

        Returns:
            A new History with its epochs, columns and final metrics: "NaN", "Infinity" and "-Infinity" read back
            as floats, null as None (not measured). Files written before NaN was kept (null) still load.

        Raises:
            FileNotFoundError: there is no such file.
            ValueError: the file is not a History's JSON, or it has a column named "epoch".
        """
        record = _read_record(path)
        history = cls()
        history.epoch = list(record["epoch"])
        history.history = {
            name: [_from_json_number(v) for v in values] for name, values in record.get("history", {}).items()
        }
        history.final = {name: _from_json_number(v) for name, v in record.get("final", {}).items()}
        return history


def _epoch(value: Any) -> int:
    """`record`'s epoch as an int: an integer >= 0 (Python or NumPy, not bool), else a TypeError/ValueError."""
    message = f"History.record epoch must be an integer >= 0, got {_checks.describe(value)}; pass e.g. epoch=1"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(message)
    if not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(message)
    return int(value)


def _metric(name: str, value: Any) -> float | None:
    """One metric value as a float: a real number or an array holding one (0-d or size 1); None: not measured."""
    if value is None or _checks._is_real(value):
        return None if value is None else float(value)
    if array_api_compat.is_array_api_obj(value) and math.prod(value.shape) == 1:
        xp = array_api_compat.array_namespace(value)
        if _checks.is_kind(xp, value.dtype, _checks.REAL):
            return float(xp.reshape(value, ()))
    raise TypeError(
        f"History.record {name} must be one real number (or an array holding one), got {_checks.describe(value)}"
        f"{_shape(value)}; pass e.g. {name}=float(value), or None where it was not measured"
    )


def _summary_row(name: str, epochs: list[int], values: list) -> dict:
    """`History.summary`'s row for one column: its last measured value and its best, each with its epoch."""
    measured = [(epoch, value) for epoch, value in zip(epochs, values, strict=True) if value is not None]
    last_epoch, last = measured[-1] if measured else (None, None)
    pick = _best_of(name)
    ranked = [(epoch, value) for epoch, value in measured if not math.isnan(value)] if pick else []
    best_epoch, best = pick(ranked, key=lambda pair: pair[1]) if pick is not None and ranked else (None, None)
    return {"metric": name, "last": last, "last_epoch": last_epoch, "best": best, "best_epoch": best_epoch}


def _best_of(name: str) -> Callable[..., Any] | None:
    """`min` for a loss, `max` for an accuracy, None (no best) for the learning rate and other metrics."""
    lowered = name.lower()
    if "loss" in lowered:
        return min
    return max if "acc" in lowered else None


def _html_row(row: dict) -> str:
    cells = (row["last"], row["last_epoch"], row["best"], row["best_epoch"])
    return f"<tr><th>{html.escape(row['metric'])}</th>{''.join(f'<td>{_cell(v)}</td>' for v in cells)}</tr>"


def _cell(value) -> str:
    return "&mdash;" if value is None else html.escape(_short(value))


def _shape(value) -> str:
    shape = getattr(value, "shape", None)
    return "" if shape is None else f" of shape {tuple(shape)} and dtype {getattr(value, 'dtype', '?')}"


def _read_record(path) -> dict:
    """The JSON object `to_json` wrote, checked: an epoch list, and columns of one value per epoch."""
    record = _load_json(path)
    valid = isinstance(record, dict) and isinstance(record.get("epoch"), list)
    if not valid or not isinstance(record.get("history", {}), dict) or not isinstance(record.get("final", {}), dict):
        raise ValueError(
            f"History.from_json: {path} is not a History JSON file (it needs an 'epoch' list and a 'history' "
            f"object); {FROM_JSON_FIX}"
        )
    if not all(_is_json_int(epoch) and epoch >= 0 for epoch in record["epoch"]):
        raise ValueError(
            f"History.from_json: {path} is not a History JSON file (its 'epoch' list must hold integers >= 0); "
            f"{FROM_JSON_FIX}"
        )
    for name, values in record.get("history", {}).items():
        _not_reserved(name, f"History.from_json: {path}")
        _check_column(path, name, values, len(record["epoch"]))
    return record


FROM_JSON_FIX = "write one with History.to_json"


def _load_json(path):
    """The file's JSON value; a missing file or text that is not JSON is an error naming History.from_json."""
    try:
        return json.loads(input_path(path, "History.from_json").read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"History.from_json: there is no file {path}; check the path, or {FROM_JSON_FIX}"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"History.from_json: {path} is not a JSON file ({error}); {FROM_JSON_FIX}") from None


def _check_column(path, name: str, values, n_epochs: int) -> None:
    if not isinstance(values, list) or len(values) != n_epochs:
        raise ValueError(
            f"History.from_json: {path} has {n_epochs} epochs but its column {name!r} does not hold one value "
            f"per epoch; the file is damaged: {FROM_JSON_FIX}"
        )
    if not all(value is None or _is_json_number(value) for value in values):
        raise ValueError(
            f"History.from_json: {path} is not a History JSON file (its column {name!r} must hold numbers or null, "
            f'or "NaN", "Infinity", "-Infinity"); {FROM_JSON_FIX}'
        )


def _is_json_number(value) -> bool:
    if isinstance(value, str):
        return value in JSON_SPECIAL
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _not_reserved(name: str, owner: str) -> None:
    """A ValueError if a metric takes the epoch column's name."""
    if name == RESERVED:
        raise ValueError(
            f"{owner}: a metric is named {RESERVED!r}, the name of the epoch column, which it would overwrite; "
            f"rename the metric (e.g. to 'epoch_metric')"
        )


def _is_json_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_number(value):
    """A value as to_json writes it: NaN and infinities as their strings, anything else as it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    return value


def _from_json_number(value):
    """A value as from_json reads it: the strings of NaN and the infinities as floats, anything else as it is."""
    return JSON_SPECIAL[value] if isinstance(value, str) and value in JSON_SPECIAL else value


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else repr(value)
