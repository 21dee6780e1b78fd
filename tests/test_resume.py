"""Checkpoints and exact resume: a run stopped after k epochs and resumed matches an uninterrupted one bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import nnx
from nnx.datasets import spiral_data


def build(backend, optimizer: str, dropout: float):
    with nnx.backends.use(backend):
        model = nnx.Model()
        model.add(nnx.Dense(2, 16, weight_regularizer_l2=5e-4))
        model.add(nnx.ReLU())
        if dropout:
            model.add(nnx.Dropout(dropout))
        model.add(nnx.Dense(16, 3))
        model.add(nnx.Softmax())
        chosen = nnx.SGD(learning_rate=1.0, decay=1e-2, momentum=0.5) if optimizer == "sgd" else nnx.Adam(0.05, 1e-3)
        model.set(loss=nnx.CategoricalCrossentropy(), optimizer=chosen, accuracy=nnx.metrics.Categorical())
        model.finalize()
    return model


def state(model) -> list[np.ndarray]:
    to_host = model.backend.to_numpy
    arrays = [to_host(array) for pair in model.get_parameters() for array in pair]
    for layer in model.trainable_layers:
        arrays += [to_host(value) for _, value in sorted(model.optimizer.state.get(layer, {}).items())]
    return arrays


CASES = [("sgd", 0.0, None), ("adam", 0.1, None), ("adam", 0.1, 16)]


@pytest.mark.parametrize(("optimizer", "dropout", "batch_size"), CASES, ids=["sgd-decay", "adam-dropout", "batched"])
def test_resume_is_bit_identical(backend, tmp_path, capsys, optimizer, dropout, batch_size):
    epochs, stop_after = 6, 3
    nnx.seed(0)
    X, y = spiral_data(samples=20, classes=3)
    options = {"print_every": 1, "batch_size": batch_size}

    nnx.seed(1)
    straight = build(backend, optimizer, dropout)
    straight.train(X, y, epochs=epochs, **options)
    straight_lines = capsys.readouterr().out.splitlines()

    nnx.seed(1)
    path = tmp_path / "run.nnx"
    build(backend, optimizer, dropout).train(X, y, epochs=stop_after, checkpoint=path, **options)
    first_lines = capsys.readouterr().out.splitlines()
    nnx.seed(123)  # the interrupted process is gone: the RNG state must come from the file
    resumed = build(backend, optimizer, dropout)
    resumed.train(X, y, epochs=epochs, resume=path, **options)
    resumed_lines = capsys.readouterr().out.splitlines()

    assert first_lines + resumed_lines == straight_lines
    for a, b in zip(state(straight), state(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed.optimizer.iterations == straight.optimizer.iterations
    assert resumed.optimizer.current_learning_rate == straight.optimizer.current_learning_rate


def test_checkpoint_every_n_epochs_and_at_the_end(backend, tmp_path):
    nnx.seed(0)
    X, y = spiral_data(samples=10, classes=3)
    path = tmp_path / "run.nnx"
    seen = []

    class Spy(nnx.callbacks.Callback):
        def on_epoch_end(self, run):
            seen.append(path.exists() and nnx.io.restore_training(build(backend, "sgd", 0.0), path)["epoch"])

    build(backend, "sgd", 0.0).train(
        X, y, epochs=5, print_every=None, checkpoint=path, checkpoint_every=2, callbacks=[Spy()]
    )
    assert seen == [False, 2, 2, 4, 4]
    assert nnx.io.restore_training(build(backend, "sgd", 0.0), path)["epoch"] == 5


def test_resume_from_a_missing_or_foreign_file_fails_before_training(tmp_path, capsys):
    nnx.seed(0)
    X, y = spiral_data(samples=10, classes=3)
    model = build("numpy", "sgd", 0.0)
    before = state(model)
    with pytest.raises(nnx.CheckpointError, match=r"missing\.nnx"):
        model.train(X, y, epochs=2, resume=tmp_path / "missing.nnx")
    model.save(tmp_path / "plain.nnx")
    with pytest.raises(nnx.CheckpointError, match="no training state"):
        model.train(X, y, epochs=2, resume=tmp_path / "plain.nnx")
    assert capsys.readouterr().out == ""
    for a, b in zip(before, state(model), strict=True):
        np.testing.assert_array_equal(a, b)
