"""Spans: where each epoch is one step on the whole set (no dropout, no shuffling), the compiled stack trains many
epochs in one kernel call. Every number must be the one epoch-by-epoch training gives, bit for bit: Histories,
parameters, optimizer state; a model diverging inside a span, a `stop_models` hook, Ctrl-C and
``on_divergence="raise"`` included."""

from __future__ import annotations

import copy
import importlib
import time

import numpy as np
import pytest

import nnx
from nnx.training.stack_step import KernelStack
from tests.test_train_many import (
    HEADS,
    OPTIMIZER_GRIDS,
    QUIET_FLOATS,
    REGULARIZATIONS,
    build,
    data,
    diverging,
    healthy_pair,
    host,
    slots,
    train_solo,
)

pytest.importorskip("numba", reason="spans run on the compiled stack kernel, which needs numba (the 'fast' extra)")

many = importlib.import_module("nnx.training.stack_loop")
spans = importlib.import_module("nnx.training.stack_spans")
NUMPY = nnx.backends.get("numpy")


@pytest.fixture(autouse=True)
def compiled(monkeypatch):
    monkeypatch.setattr(NUMPY, "compile", True)


@pytest.fixture
def span_lengths(monkeypatch):
    """The number of epochs of every span the compiled stacks train, in order."""
    lengths = []
    original = KernelStack.run_epochs

    def recorded(self, X, y, epochs):
        lengths.append(epochs)
        return original(self, X, y, epochs)

    monkeypatch.setattr(KernelStack, "run_epochs", recorded)
    return lengths


def epoch_by_epoch(monkeypatch, models, X, y, **options):
    """`train_many` on copies of `models` with every epoch on its own (no spans): (copies, Histories)."""
    copies = copy.deepcopy(models)
    with monkeypatch.context() as patch:
        patch.setattr(many, "spans_for", lambda *args: None)
        histories = nnx.train_many(copies, X, y, verbose=0, **options)
    return copies, histories


def assert_same_histories(ours, theirs) -> None:
    for mine, expected in zip(ours, theirs, strict=True):
        assert list(mine.epoch) == list(expected.epoch)
        assert mine.history.keys() == expected.history.keys()
        for name, values in expected.history.items():
            assert list(mine.history[name]) == list(values), name  # bit for bit (NaN never appears here)
        assert mine.final == expected.final


def assert_same_models(ours, theirs) -> None:
    for mine, expected in zip(ours, theirs, strict=True):
        for array, other in zip(host(mine), host(expected), strict=True):
            np.testing.assert_array_equal(array, other)
        assert slots(mine).keys() == slots(expected).keys()
        for index, arrays in slots(expected).items():
            for name, array in arrays.items():
                np.testing.assert_array_equal(slots(mine)[index][name], array)
        assert mine.optimizer.iterations == expected.optimizer.iterations
        assert mine.optimizer.current_learning_rate == expected.optimizer.current_learning_rate
        assert mine.epochs_trained == expected.epochs_trained


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("optimizer", list(OPTIMIZER_GRIDS))
def test_spans_give_every_number_of_epoch_by_epoch_training(monkeypatch, span_lengths, optimizer, head, dtype):
    X, y = data(head)
    models = [
        build(make, head=head, dtype=dtype, regularization=regularization, seed=index)
        for index, (make, regularization) in enumerate(zip(OPTIMIZER_GRIDS[optimizer], REGULARIZATIONS, strict=True))
    ]
    options = {"epochs": 30, "validation_data": data(head, samples=10, seed=4)}
    expected_models, expected = epoch_by_epoch(monkeypatch, models, X, y, **options)
    histories = nnx.train_many(models, X, y, verbose=0, **options)
    assert span_lengths and sum(span_lengths) == 30  # every epoch in a span
    assert_same_histories(histories, expected)
    assert_same_models(models, expected_models)


def test_spans_match_solo_training(span_lengths):
    X, y = data()
    models = healthy_pair()
    _, expected = train_solo(models, X, y, epochs=25)
    histories = nnx.train_many(models, X, y, epochs=25, verbose=0)
    assert span_lengths[0] == spans.FIRST_SPAN and sum(span_lengths) == 25
    for history, alone in zip(histories, expected, strict=True):
        np.testing.assert_allclose(history.history["loss"], alone.history["loss"], rtol=1e-12)


@QUIET_FLOATS
@pytest.mark.parametrize("epochs", [2, 5, 20])
def test_a_model_diverging_inside_a_span_is_frozen_as_epoch_by_epoch(monkeypatch, span_lengths, epochs):
    """The diverging model turns infinite at epoch 3, inside the first span: the stack goes back to the span's
    start, trains epochs 1-2 as a span, then epoch 3 on its own."""
    monkeypatch.setattr(spans, "FIRST_SPAN", 8)
    X, y = data()
    models = [healthy_pair()[0], diverging(), healthy_pair()[1]]
    expected_models, expected = epoch_by_epoch(monkeypatch, models, X, y, epochs=epochs)
    histories = nnx.train_many(models, X, y, epochs=epochs, verbose=0)
    assert_same_histories(histories, expected)
    assert_same_models(models, expected_models)
    if epochs > 2:
        assert histories[1].final["diverged"] is True and histories[1].final["epoch"] == 3
        assert span_lengths[:2] == [min(epochs, 8), 2]  # the span, then its epochs before 3


@QUIET_FLOATS
def test_a_model_diverging_in_a_spans_first_epoch_runs_that_epoch_alone(monkeypatch, span_lengths):
    monkeypatch.setattr(spans, "FIRST_SPAN", 2)  # epochs 1-2, then a span from epoch 3, where a model diverges
    X, y = data()
    models = [healthy_pair()[0], diverging(), healthy_pair()[1]]
    expected_models, expected = epoch_by_epoch(monkeypatch, models, X, y, epochs=30)
    histories = nnx.train_many(models, X, y, epochs=30, verbose=0)
    assert_same_histories(histories, expected)
    assert_same_models(models, expected_models)
    assert histories[1].final["epoch"] == 3 and span_lengths[0] == 2


@QUIET_FLOATS
def test_raise_inside_a_span_stops_every_model_at_that_epoch(monkeypatch, span_lengths):
    X, y = data()
    models = [healthy_pair()[0], diverging(), healthy_pair()[1]]
    expected_models = copy.deepcopy(models)
    with monkeypatch.context() as patch, pytest.raises(nnx.DivergenceError) as expected:
        patch.setattr(many, "spans_for", lambda *args: None)
        nnx.train_many(expected_models, X, y, epochs=12, verbose=0, on_divergence="raise")
    with pytest.raises(nnx.DivergenceError, match=r"models\[1\].*diverged at epoch 3") as caught:
        nnx.train_many(models, X, y, epochs=12, verbose=0, on_divergence="raise")
    assert span_lengths  # the divergence was found inside a span
    assert caught.value.epoch == expected.value.epoch == 3
    assert_same_histories(caught.value.histories, expected.value.histories)
    assert_same_models(models, expected_models)


def test_stop_models_is_called_every_stop_every_epochs_and_spans_end_there(monkeypatch, span_lengths):
    monkeypatch.setattr(spans, "FIRST_SPAN", 100)  # the spans end at the hook's epochs, not for time
    X, y = data()
    models = [build(lambda rate=0.5 + 0.1 * index: nnx.SGD(learning_rate=rate), seed=index) for index in range(3)]
    called = []

    def stop_models(epoch, metrics):
        called.append((epoch, [values["model"] for values in metrics]))
        return [1] if epoch == 8 else []

    options = {"epochs": 14, "stop_models": stop_models, "stop_every": 4}
    expected_models, expected = epoch_by_epoch(monkeypatch, models, X, y, **options)
    assert called == [(4, [0, 1, 2]), (8, [0, 1, 2]), (12, [0, 2]), (14, [0, 2])]
    called.clear()
    histories = nnx.train_many(models, X, y, verbose=0, **options)
    assert called == [(4, [0, 1, 2]), (8, [0, 1, 2]), (12, [0, 2]), (14, [0, 2])]
    assert span_lengths == [4, 4, 4, 2]  # each span ends where the hook is called
    assert histories[1].final["stopped"] is True and histories[1].final["epoch"] == 8
    assert_same_histories(histories, expected)
    assert_same_models(models, expected_models)


def test_ctrl_c_in_a_span_keeps_the_epoch_before_it(monkeypatch):
    """Ctrl-C reaches Python when the kernel call returns: the span it interrupted is dropped, and every model holds
    the epoch before the span, as a solo run of that many epochs."""
    X, y = data()
    models = healthy_pair()
    solo, expected = train_solo(models, X, y, epochs=spans.FIRST_SPAN)
    calls = [0]
    original = KernelStack.run_epochs

    def interrupted(self, X, y, epochs):
        result = original(self, X, y, epochs)
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(KernelStack, "run_epochs", interrupted)
    with pytest.raises(KeyboardInterrupt) as caught:
        nnx.train_many(models, X, y, epochs=100, verbose=0)
    for model, alone, history, alone_history in zip(models, solo, caught.value.histories, expected, strict=True):
        assert model.epochs_trained == spans.FIRST_SPAN
        assert list(history.epoch) == list(range(1, spans.FIRST_SPAN + 1))
        np.testing.assert_allclose(history.history["loss"], alone_history.history["loss"], rtol=1e-12)
        for array, other in zip(host(model), host(alone), strict=True):
            np.testing.assert_allclose(array, other, rtol=1e-12)


def test_spans_grow_to_about_span_seconds(monkeypatch, span_lengths):
    X, y = data()
    monkeypatch.setattr(spans, "SPAN_SECONDS", 1e-12)  # every epoch "too long" for a span: one epoch per call
    nnx.train_many(healthy_pair(), X, y, epochs=20, verbose=0)
    assert span_lengths == [1] * 20
    span_lengths.clear()
    monkeypatch.setattr(spans, "SPAN_SECONDS", 1e6)  # never too long: each span twice the one before
    nnx.train_many(healthy_pair(), X, y, epochs=1000, verbose=0)
    assert span_lengths == [1, 2, 4, 8, 16, 32, 64, 128, 256, 489]


def test_a_slow_first_span_does_not_stop_the_spans_from_growing(monkeypatch):
    """The first call may compile the kernel or load it from the cache (seconds): later spans grow again."""
    X, y = data()
    lengths = []
    original = KernelStack.run_epochs

    def slow_first(self, X, y, epochs):
        if not lengths:
            time.sleep(0.3)  # longer than a span may last
        lengths.append(epochs)
        return original(self, X, y, epochs)

    monkeypatch.setattr(KernelStack, "run_epochs", slow_first)
    nnx.train_many(healthy_pair(), X, y, epochs=200, verbose=0)
    assert lengths[:2] == [1, 1] and max(lengths) >= 64 and sum(lengths) == 200


@pytest.mark.parametrize(
    "options",
    [{"batch_size": 32}, {"shuffle": True}, {"seed": 1, "dropout": 0.2}],
    ids=["batches", "shuffle", "dropout"],
)
def test_no_spans_where_epochs_differ(span_lengths, options):
    X, y = data()
    options = dict(options)
    dropout = options.pop("dropout", 0.0)
    models = [build(dropout=dropout, depth=3, seed=index) for index in range(2)]
    nnx.train_many(models, X, y, epochs=10, verbose=0, **options)
    assert span_lengths == []


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-2, ValueError), (1.5, ValueError), (True, TypeError), ("4", TypeError)]
)
def test_stop_every_is_checked(value, error):
    X, y = data(samples=10)
    models = healthy_pair()
    before = [host(model) for model in models]
    with pytest.raises(error, match=r"nnx\.train_many stop_every"):
        nnx.train_many(models, X, y, epochs=2, verbose=0, stop_every=value)
    for model, arrays in zip(models, before, strict=True):
        for array, saved in zip(host(model), arrays, strict=True):
            np.testing.assert_array_equal(array, saved)
