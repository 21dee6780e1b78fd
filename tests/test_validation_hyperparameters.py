"""Bad hyperparameters of every component, on every backend: the check each one runs, NumPy scalars accepted
like Python numbers, and the binary flag.

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
    FIX,
    assert_message,
    assert_raises,
)

# Hyperparameters --------------------------------------------------------------------------------------------------

# (owner, parameter, build(value), component regex, kind)
HYPERPARAMETERS = [
    ("SGD", "learning_rate", lambda v: nnx.SGD(learning_rate=v), "positive"),
    ("SGD", "decay", lambda v: nnx.SGD(decay=v), "non_negative"),
    ("SGD", "momentum", lambda v: nnx.SGD(momentum=v), "fraction"),
    ("Adagrad", "learning_rate", lambda v: nnx.Adagrad(learning_rate=v), "positive"),
    ("Adagrad", "epsilon", lambda v: nnx.Adagrad(epsilon=v), "positive"),
    ("RMSprop", "rho", lambda v: nnx.RMSprop(rho=v), "fraction"),
    ("RMSprop", "epsilon", lambda v: nnx.RMSprop(epsilon=v), "positive"),
    ("Adam", "beta_1", lambda v: nnx.Adam(beta_1=v), "fraction"),
    ("Adam", "beta_2", lambda v: nnx.Adam(beta_2=v), "fraction"),
    ("Adam", "epsilon", lambda v: nnx.Adam(epsilon=v), "positive"),
    ("Adam", "decay", lambda v: nnx.Adam(decay=v), "non_negative"),
    ("Dense", "n_inputs", lambda v: nnx.Dense(v, 3), "positive_int"),
    ("Dense", "n_neurons", lambda v: nnx.Dense(2, v), "positive_int"),
    ("Dense(2 -> 3)", "weight_regularizer_l1", lambda v: nnx.Dense(2, 3, weight_regularizer_l1=v), "non_negative"),
    ("Dense(2 -> 3)", "weight_regularizer_l2", lambda v: nnx.Dense(2, 3, weight_regularizer_l2=v), "non_negative"),
    ("Dense(2 -> 3)", "bias_regularizer_l1", lambda v: nnx.Dense(2, 3, bias_regularizer_l1=v), "non_negative"),
    ("Dense(2 -> 3)", "bias_regularizer_l2", lambda v: nnx.Dense(2, 3, bias_regularizer_l2=v), "non_negative"),
    ("Dense(2 -> 3)", "weight_scale", lambda v: nnx.Dense(2, 3, weight_scale=v), "non_negative"),
    ("Dropout", "rate", lambda v: nnx.Dropout(v), "fraction"),
    ("Regression", "precision_divisor", lambda v: nnx.metrics.Regression(precision_divisor=v), "positive"),
]

# value -> the exception each kind of check raises for it (None: accepted)
BAD_VALUES = {
    "inf": (float("inf"), {"*": ValueError}),
    "nan": (float("nan"), {"*": ValueError}),
    "-1": (-1, {"*": ValueError}),
    "0": (0, {"positive": ValueError, "positive_int": ValueError, "non_negative": None, "fraction": None}),
    "1.0": (1.0, {"fraction": ValueError, "positive_int": ValueError, "*": None}),
    "1.5": (1.5, {"fraction": ValueError, "positive_int": ValueError, "*": None}),
    "str": ("0.1", {"*": TypeError}),
    "bool": (True, {"*": TypeError}),
    "None": (None, {"*": TypeError}),
    "complex": (1 + 0j, {"*": TypeError}),
    "list": ([0.1], {"*": TypeError}),
}


def _expected(kind: str, table: dict):
    return table.get(kind, table.get("*"))


@pytest.mark.parametrize("value_id", list(BAD_VALUES))
@pytest.mark.parametrize(
    ("owner", "name", "build", "kind"),
    HYPERPARAMETERS,
    ids=[f"{o.split('(')[0]}.{n}" for o, n, _, _ in HYPERPARAMETERS],
)
def test_hyperparameters_are_checked(backend, owner, name, build, kind, value_id):
    value, table = BAD_VALUES[value_id]
    error = _expected(kind, table)
    with nnx.backends.use(backend):
        if error is None:
            build(value)
            return
        info = assert_raises(error, lambda: build(value))
    assert_message(info, re.escape(owner) + r"(?![A-Za-z])", re.escape(name), FIX)


@pytest.mark.parametrize(
    ("owner", "name", "build", "kind"),
    HYPERPARAMETERS,
    ids=[f"{o.split('(')[0]}.{n}" for o, n, _, _ in HYPERPARAMETERS],
)
def test_numpy_scalars_are_accepted_like_python_numbers(backend, owner, name, build, kind):
    values = {
        "positive_int": (np.int64(3), np.int32(3), np.uint8(3)),
        "fraction": (np.float32(0.5), np.float64(0.5), np.int64(0)),
    }.get(kind, (np.float32(0.1), np.float64(0.1), np.int64(3)))
    with nnx.backends.use(backend):
        for value in values:
            component = build(value)
            stored = getattr(component, name, None)
            if name == "rate":
                stored = 1 - component.rate  # Dropout keeps the book's keep-probability
            assert stored == pytest.approx(float(value)), (name, value, stored)
            assert type(stored) in (int, float)


@pytest.mark.parametrize("value", [1, 0, "True", None, 1.0, np.float64(1.0)])
def test_binary_flag_must_be_a_bool(backend, value):
    info = assert_raises(TypeError, lambda: nnx.metrics.Categorical(binary=value, xp=backend))
    assert_message(info, r"Categorical", r"binary", r"must be True or False")
    assert nnx.metrics.Categorical(binary=False, xp=backend).binary is False


def test_binary_flag_accepts_a_numpy_bool(backend):
    assert nnx.metrics.Categorical(binary=np.bool_(True), xp=backend).binary is True


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda v: nnx.SGD(learning_rate=v), id="SGD.learning_rate"),
        pytest.param(lambda v: nnx.Adam(beta_1=v), id="Adam.beta_1"),
        pytest.param(lambda v: nnx.Dense(2, 3, weight_scale=v), id="Dense.weight_scale"),
        pytest.param(lambda v: nnx.Dropout(v), id="Dropout.rate"),
        pytest.param(lambda v: nnx.metrics.Regression(precision_divisor=v), id="Regression.precision_divisor"),
    ],
)
def test_integers_beyond_the_float_range_are_value_errors(backend, build):
    with nnx.backends.use(backend):
        info = assert_raises(ValueError, lambda: build(10**400))
    assert_message(info, r"SGD|Adam|Dense|Dropout|Regression", r"finite number")
