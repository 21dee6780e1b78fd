"""Divergence: a non-finite loss or parameter stops training with the last finite parameters restored."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnx
from nnx.datasets import spiral_data
from tests.helpers import spiral_classifier


def spiral_model(backend, learning_rate: float, optimizer=None):
    return spiral_classifier(backend, optimizer=optimizer or nnx.SGD(learning_rate=learning_rate, xp=backend))


def host_parameters(model) -> list[np.ndarray]:
    return [model.backend.to_numpy(array) for pair in model.get_parameters() for array in pair]


class Recorder(nnx.callbacks.Callback):
    """Keeps host copies of the parameters after every step it sees (user callbacks run after the guard)."""

    def __init__(self):
        self.parameters = {}

    def on_train_begin(self, run):
        self.parameters[0] = host_parameters(run.model)

    def on_step_end(self, run):
        self.parameters[run.global_step] = host_parameters(run.model)


@pytest.fixture
def data():
    nnx.seed(0)
    return spiral_data(samples=20, classes=3)


@pytest.mark.parametrize("check_every", [1, 3])
def test_huge_learning_rate_raises_with_the_last_checked_parameters(backend, data, check_every, capsys):
    model = spiral_model(backend, 1e30)
    recorder = Recorder()
    with pytest.raises(nnx.DivergenceError, match=r"diverged at epoch \d+.*lower the learning rate") as caught:
        model.train(*data, epochs=50, print_every=None, check_every=check_every, callbacks=[recorder])
    last_check = max(step for step in recorder.parameters if step % check_every == 0)
    for restored, recorded in zip(host_parameters(model), recorder.parameters[last_check], strict=True):
        np.testing.assert_array_equal(restored, recorded)
        assert np.isfinite(restored).all()
    assert caught.value.epoch >= 1
    assert caught.value.last_finite_loss is None or math.isfinite(caught.value.last_finite_loss)
    assert model.optimizer.iterations == last_check


def test_infinite_learning_rate_is_refused_before_training():
    with pytest.raises(ValueError, match=r"SGD learning_rate must be a finite number > 0, got inf"):
        nnx.SGD(learning_rate=float("inf"))


def test_divergence_is_caught_at_a_printed_epoch_without_printing_nan(backend, data, capsys):
    model = spiral_model(backend, 1e30)
    with pytest.raises(nnx.DivergenceError):
        model.train(*data, epochs=50, print_every=1, check_every=10_000)
    printed = capsys.readouterr().out
    assert "nan" not in printed and "inf" not in printed
    assert all(np.isfinite(array).all() for array in host_parameters(model))


def test_adam_state_is_restored_too(backend, data):
    model = spiral_model(backend, 0, optimizer=nnx.Adam(learning_rate=1e30, xp=backend))
    with pytest.raises(nnx.DivergenceError):
        model.train(*data, epochs=50, print_every=None, check_every=1)
    for arrays in model.optimizer.state.values():
        for value in arrays.values():
            assert np.isfinite(model.backend.to_numpy(value)).all()


def test_stop_returns_quietly_with_finite_parameters(backend, data):
    model = spiral_model(backend, 1e30)
    result = model.train(*data, epochs=50, print_every=None, check_every=1, on_divergence="stop")
    assert result["diverged"] is True and result["epoch"] >= 1
    assert all(np.isfinite(array).all() for array in host_parameters(model))


def test_warn_warns_and_stops(backend, data):
    model = spiral_model(backend, 1e30)
    with pytest.warns(RuntimeWarning, match="diverged"):
        result = model.train(*data, epochs=50, print_every=None, check_every=1, on_divergence="warn")
    assert result["diverged"] is True


def test_a_healthy_run_is_untouched_by_the_checks(backend, data):
    checked, unchecked = spiral_model(backend, 1.0), spiral_model(backend, 1.0)
    unchecked.set_parameters(checked.get_parameters())
    checked.train(*data, epochs=30, print_every=None, check_every=1)
    unchecked.train(*data, epochs=30, print_every=None, check_every=10_000)
    for a, b in zip(host_parameters(checked), host_parameters(unchecked), strict=True):
        np.testing.assert_array_equal(a, b)


def test_check_finite_for_hand_written_loops(backend, data):
    X, y = backend.asarray(data[0], dtype="float32"), backend.asarray(data[1])
    dense = nnx.Dense(2, 3, xp=backend)
    head = nnx.SoftmaxCategoricalCrossentropy(xp=backend)
    dense.forward(X)
    loss = head.forward(dense.output, y)
    assert nnx.check_finite(loss, [dense]) == pytest.approx(float(backend.to_numpy(loss)))
    dense.weights = dense.weights * float("nan")
    with pytest.raises(nnx.DivergenceError, match=r"at epoch 7.*Lower the learning rate"):
        nnx.check_finite(loss, [dense], epoch=7)


def test_spiral_example_stops_with_one_line_and_status_1():
    from tests.test_examples import run

    result = run("spiral.py", "--lr", "1e30", "--epochs", "201")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "DivergenceError" in result.stderr and "learning rate" in result.stderr
    assert "nan" not in result.stdout


def test_training_copies_to_the_host_only_at_checks_and_prints(backend, data, monkeypatch):
    """No host sync per step: the data is checked once per call, the guard every check_every steps."""
    model = spiral_model(backend, 0.5)
    copies = []
    original = type(model.backend).to_numpy
    monkeypatch.setattr(type(model.backend), "to_numpy", lambda self, x: copies.append(1) or original(self, x))
    model.train(*data, epochs=200, batch_size=10, print_every=None, check_every=50)
    steps = 200 * 6
    assert len(copies) <= 4 + steps // 50 + 4, len(copies)
