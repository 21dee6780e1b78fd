"""Resume is all or nothing and explicit: the file is compared with the model before anything changes, fewer epochs
than the file has done is an error, and the optimizer takes the file's hyperparameters, saying so."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

import nnx
from nnx.datasets import spiral_data
from tests.helpers import spiral_classifier

# on the current backend; l2 regularizes the first layer's weights only
classifier = functools.partial(
    spiral_classifier,
    None,
    hidden=8,
    bias_l2=0.0,
    dtype="float32",
    optimizer=functools.partial(nnx.SGD, 1.0, decay=1e-3, momentum=0.5),
)


@pytest.fixture
def data():
    nnx.seed(0)
    return spiral_data(samples=30, classes=3)


@pytest.fixture
def checkpoint(tmp_path, data):
    """A checkpoint of `classifier()` after 5 epochs."""
    nnx.seed(1)
    path = tmp_path / "run.nnx"
    classifier().train(*data, epochs=5, print_every=None, checkpoint=path)
    return path


def everything(model) -> list:
    """Parameters, optimizer state and progress, and NumPy's RNG: what a refused resume must leave alone."""
    arrays = [np.array(a) for pair in model.get_parameters() for a in pair]
    for layer in model.trainable_layers:
        arrays += [np.array(v) for _, v in sorted(model.optimizer.state.get(layer, {}).items())]
    optimizer = model.optimizer
    config = sorted(optimizer.get_config().items())
    return [*arrays, optimizer.iterations, optimizer.current_learning_rate, config, np.random.get_state()[1].copy()]


def assert_unchanged(before: list, after: list) -> None:
    assert len(before) == len(after)
    for a, b in zip(before, after, strict=True):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        (
            {"last": nnx.Linear, "loss": nnx.MeanSquaredError},
            [
                "layer 3: the model has Linear, the file Softmax",
                "loss: the model has MeanSquaredError",
                "accuracy: the model has Regression",
            ],
        ),
        ({"l2": 5e-4}, ["layer 0 Dense: weight_regularizer_l2 0.0 in the file, 0.0005 in the model"]),
        ({"dtype": "float64"}, ["dtype: the file holds float32 parameters, the model float64"]),
        ({"optimizer": nnx.Adam()}, ["optimizer: the model has Adam, the file holds SGD's state"]),
    ],
    ids=["loss-and-output", "regularization", "dtype", "optimizer-kind"],
)
def test_a_checkpoint_of_another_model_is_refused_before_anything_changes(data, checkpoint, other, expected):
    model = classifier(**other)
    X, y = data
    targets = y if isinstance(model.loss, nnx.CategoricalCrossentropy) else np.eye(3)[y]
    model.train(X, targets, epochs=2, print_every=None)
    before = everything(model)
    with pytest.raises(ValueError, match="cannot resume") as raised:
        model.train(X, targets, epochs=8, print_every=None, resume=checkpoint)
    for line in expected:
        assert line in str(raised.value)
    assert_unchanged(before, everything(model))


def test_resuming_to_fewer_epochs_than_the_file_has_done_is_an_error(data, checkpoint):
    model = classifier()
    model.train(*data, epochs=20, print_every=None)
    before = everything(model)
    with pytest.raises(ValueError, match="already trained 5 epochs; pass epochs greater than 5"):
        model.train(*data, epochs=3, print_every=None, resume=checkpoint)
    assert_unchanged(before, everything(model))


def test_a_record_without_an_epoch_changes_nothing(data, tmp_path):
    path = tmp_path / "odd.nnx"
    classifier().save(path, training={"note": "no epoch here"})
    model = classifier()
    model.train(*data, epochs=2, print_every=None)
    np.random.seed(3)
    before = everything(model)
    with pytest.raises(nnx.CheckpointError, match="has no epoch"):
        model.train(*data, epochs=4, print_every=None, resume=path)
    assert_unchanged(before, everything(model))


def test_a_restore_that_fails_part_way_puts_everything_back(data, checkpoint, monkeypatch):
    model = classifier()
    model.train(*data, epochs=2, print_every=None)
    before = everything(model)

    calls = []

    def broken_once(state):  # the restore fails after the optimizer took the file's state; putting back works
        calls.append(state)
        if len(calls) == 1:
            raise ValueError("this RNG state cannot be restored")

    monkeypatch.setattr(model.backend, "set_rng_state", broken_once)
    with pytest.raises(nnx.CheckpointError, match="cannot be restored"):
        model.train(*data, epochs=8, print_every=None, resume=checkpoint)
    monkeypatch.undo()
    assert_unchanged(before, everything(model))


def test_resume_takes_the_files_hyperparameters_and_says_so_in_one_line(data, checkpoint):
    nnx.seed(1)
    straight = classifier()
    straight.train(*data, epochs=8, print_every=None)

    resumed = classifier(optimizer=nnx.SGD(0.5, decay=0.0, momentum=0.0))
    with pytest.warns(UserWarning) as caught:
        resumed.train(*data, epochs=8, print_every=None, resume=checkpoint)
    lines = [str(w.message) for w in caught]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "learning_rate 0.5 -> 1.0" in lines[0] and "decay 0.0 -> 0.001" in lines[0]
    assert "momentum 0.0 -> 0.5" in lines[0] and caught[0].filename == __file__
    assert resumed.optimizer.get_config() == straight.optimizer.get_config()
    assert resumed.optimizer.current_learning_rate == straight.optimizer.current_learning_rate
    assert_unchanged(everything(straight)[:-1], everything(resumed)[:-1])  # the same run, bit for bit


def test_resume_with_the_same_hyperparameters_is_quiet(data, checkpoint):
    model = classifier()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.train(*data, epochs=7, print_every=None, resume=checkpoint)
    assert history.epoch == [6, 7]


def test_resume_says_when_it_replaces_the_models_own_progress(data, checkpoint):
    model = classifier()
    model.train(*data, epochs=20, print_every=None)
    with pytest.warns(UserWarning, match=r"replaced this model's own progress \(20 optimizer steps\)"):
        model.train(*data, epochs=7, print_every=None, resume=checkpoint)
    assert model.optimizer.iterations == 7


def test_resuming_a_finished_run_says_there_is_nothing_to_train(data, checkpoint):
    model = classifier()
    with pytest.warns(UserWarning, match="already trained all 5 epochs, so there is nothing left to train"):
        history = model.train(*data, epochs=5, print_every=None, resume=checkpoint)
    assert history.epoch == [] and model.optimizer.iterations == 5


def test_resume_says_so_even_when_the_step_counts_happen_to_match(data, checkpoint):
    model = classifier()
    model.train(*data, epochs=5, print_every=None)
    with pytest.warns(UserWarning, match=r"replaced this model's own progress \(5 optimizer steps\)"):
        model.train(*data, epochs=6, print_every=None, resume=checkpoint)


def test_a_model_loaded_from_the_checkpoint_resumes_quietly(data, checkpoint):
    model = nnx.Model.load(checkpoint)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.train(*data, epochs=7, print_every=None, resume=checkpoint)
    assert history.epoch == [6, 7]
