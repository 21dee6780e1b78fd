"""Bad arguments to `Model.train`, `evaluate` and `predict` (epochs, batch_size, print_every, checkpoints,
callbacks), checked before training starts.

Each bad call must raise the documented exception, with a message that names the component, what it
expected and the fix, and change nothing it was given (parameters, optimizer state, iterations); the checks
are in tests/helpers.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import nnx
from tests.helpers import (
    LABELS,
    X3,
    assert_rejects,
    small_classifier,
    trained_classifier,
)

NOT_POSITIVE_INTS = {
    "0": (0, ValueError),
    "-1": (-1, ValueError),
    "1.5": (1.5, ValueError),
    "inf": (float("inf"), ValueError),
    "nan": (float("nan"), ValueError),
    "str": ("3", TypeError),
    "bool": (True, TypeError),
}
OPTIONAL = ("0", "None")  # print_every accepts 0 and None (print nothing); batch_size accepts None
TRAIN_ARGUMENTS = {
    "epochs": {**NOT_POSITIVE_INTS, "None": (None, TypeError)},
    "batch_size": NOT_POSITIVE_INTS,
    "print_every": {key: case for key, case in NOT_POSITIVE_INTS.items() if key not in OPTIONAL},
    "check_every": {**NOT_POSITIVE_INTS, "None": (None, TypeError)},
    "on_divergence": {"unknown": ("explode", ValueError), "upper": ("RAISE", ValueError)},
}
TRAIN_CASES = [
    pytest.param(name, value, error, id=f"{name}={value_id}")
    for name, cases in TRAIN_ARGUMENTS.items()
    for value_id, (value, error) in cases.items()
]


@pytest.mark.parametrize(("name", "value", "error"), TRAIN_CASES)
def test_train_arguments_are_checked_before_training(backend, name, value, error, capsys):
    model = trained_classifier(backend)
    assert_rejects(model, error, r"Model\.train", re.escape(name), lambda: model.train(X3, LABELS, **{name: value}))
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("value", [0, -1, 1.5, "1", True, None])
def test_checkpoint_every_is_checked_with_a_checkpoint(backend, tmp_path, value, capsys):
    model = trained_classifier(backend)
    error = TypeError if isinstance(value, (str, bool)) or value is None else ValueError
    assert_rejects(
        model,
        error,
        r"Model\.train",
        r"checkpoint_every",
        lambda: model.train(X3, LABELS, checkpoint=tmp_path / "run.nnx", checkpoint_every=value),
    )
    assert capsys.readouterr().out == ""
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("value", [0, -1, "1", None])
def test_checkpoint_every_is_checked_without_a_checkpoint(backend, value):
    model = trained_classifier(backend)
    assert_rejects(
        model,
        (TypeError, ValueError),
        r"Model\.train",
        r"checkpoint_every",
        lambda: model.train(X3, LABELS, print_every=None, checkpoint_every=value),
    )


@pytest.mark.parametrize("value", [False, "", 0.0, []])
def test_falsy_print_every_values_are_rejected(backend, value):
    model = trained_classifier(backend)
    assert_rejects(
        model,
        (TypeError, ValueError),
        r"Model\.train",
        r"print_every",
        lambda: model.train(X3, LABELS, print_every=value),
    )


def test_callbacks_must_be_a_list_of_callbacks(backend, capsys):
    model = trained_classifier(backend)
    assert_rejects(model, TypeError, r"Model\.train", r"callbacks", lambda: model.train(X3, LABELS, callbacks=5))
    assert capsys.readouterr().out == ""
    model.train(X3, LABELS, callbacks=None, print_every=None)  # None means none, like ()


@pytest.mark.parametrize(
    ("api", "name"),
    [("evaluate", "batch_size"), ("predict", "batch_size")],
)
@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-2, ValueError), (1.5, ValueError), ("2", TypeError), (True, TypeError)]
)
def test_evaluate_and_predict_batch_size_is_checked(backend, api, name, value, error):
    model = trained_classifier(backend)
    call = {
        "evaluate": lambda: model.evaluate(X3, LABELS, batch_size=value, verbose=False),
        "predict": lambda: model.predict(X3, batch_size=value),
    }[api]
    assert_rejects(model, error, rf"Model\.{api}", name, call)


def test_numpy_scalars_are_accepted_by_train(backend, tmp_path, capsys):
    model = small_classifier(backend)
    result = model.train(
        X3,
        LABELS,
        epochs=np.int64(2),
        batch_size=np.int32(2),
        print_every=np.int64(1),
        check_every=np.uint8(1),
        on_divergence=np.str_("raise"),
    )
    assert np.isfinite(result["loss"]) and model.optimizer.iterations == 4
    assert "epoch: 2" in capsys.readouterr().out
    assert nnx.callbacks.Checkpoint(tmp_path / "run.nnx", every=np.int64(2)).every == 2
    assert model.predict(X3, batch_size=np.int64(2)).shape[0] == 3
    assert np.isfinite(model.evaluate(X3, LABELS, batch_size=np.int64(2), verbose=False)[0])
