"""`nnx.train_many` stopped by Ctrl-C or any error keeps what it trained, as `Model.train` does: every model holds
its last completed epoch (chunks done keep their results, chunks not started stay untouched), equal to a solo run of
that many epochs, and the error carries every model's History. Models sharing a component are refused."""

from __future__ import annotations

import copy
import importlib

import numpy as np
import pytest

import nnx
from nnx.training.stack_plan import plan_stack
from tests.conftest import widest_float
from tests.test_train_many import (
    assert_histories_close,
    assert_models_close,
    build,
    data,
    diverging,
    healthy_pair,
    host,
    train_solo,
)

many = importlib.import_module("nnx.training.stack_loop")
NUMPY = nnx.backends.get("numpy")
EXACT = 1e-9  # float64: a stack against solo runs is ~1e-14
FLOAT32 = 1e-4
STEPS = 3  # 120 samples in batches of 40
QUIET_FLOATS = pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered:RuntimeWarning")


def interrupt_after(monkeypatch, n_steps: int, error: type[BaseException] = KeyboardInterrupt) -> None:
    """Make every stack `train_many` builds raise `error` at its step number `n_steps + 1`, counted over every
    stack of the call (a Ctrl-C in the middle of an epoch); each epoch then runs on its own (no spans)."""
    taken = [0]
    original = many.stack_step

    def interrupting(plan, X, targets):
        stack = original(plan, X, targets)
        step = stack.step

        def counted(*args):
            taken[0] += 1
            if taken[0] > n_steps:
                raise error("stopped by the test")
            return step(*args)

        stack.step = counted
        return stack

    monkeypatch.setattr(many, "stack_step", interrupting)
    monkeypatch.setattr(many, "spans_for", lambda *args: None)  # every epoch a step of its own, counted


def grid(backend, n_models=3):
    dtype = widest_float(backend)
    with nnx.backends.use(backend.name):
        return [
            build(lambda: nnx.Adam(learning_rate=0.02, decay=1e-3), seed=index, dtype=dtype, backend=backend.name)
            for index in range(n_models)
        ]


def untouched(model, start) -> None:
    assert_models_close(model, start, 0, "a model whose chunk never started")
    assert model.optimizer.iterations == 0 and model.epochs_trained == 0


@pytest.fixture(params=["fast", "generic"])
def compiled(request, monkeypatch):
    """On NumPy: with the compiled stack kernel (when Numba is there) and without."""
    if request.param == "fast":
        pytest.importorskip("numba", reason="the compiled stack kernel needs numba (the 'fast' extra)")
    monkeypatch.setattr(NUMPY, "compile", request.param == "fast")
    return request.param


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
@pytest.mark.parametrize("chunks", ["one-stack", "one-model-per-chunk"])
def test_an_interrupted_train_many_keeps_every_models_last_completed_epoch(backend, monkeypatch, chunks, error):
    if backend.name == "cupy":
        pytest.skip("a CPU test")
    X, y = data()
    models = grid(backend)
    start = copy.deepcopy(models)
    budget = 1 if chunks == "one-model-per-chunk" else None
    # one stack: every model stops in epoch 3; one model per chunk: model 0 finishes 4 epochs, model 1 stops in
    # epoch 3, model 2 never starts
    interrupt_after(monkeypatch, (4 * STEPS if budget else 0) + 2 * STEPS + 1, error)
    with pytest.raises(error, match="stopped by the test") as caught:
        nnx.train_many(models, X, y, epochs=4, batch_size=40, verbose=0, memory_budget=budget)
    histories = caught.value.histories
    assert len(histories) == 3
    completed = [4, 2, 0] if budget else [2, 2, 2]
    rtol = EXACT if widest_float(backend) == "float64" else FLOAT32
    for index, (model, epochs) in enumerate(zip(models, completed, strict=True)):
        assert list(histories[index].epoch) == list(range(1, epochs + 1))
        if not epochs:
            untouched(model, start[index])
            assert histories[index].final == {}
            continue
        solo, expected = train_solo([start[index]], X, y, epochs=epochs, batch_size=40)
        assert_models_close(model, solo[0], rtol, f"models[{index}]")
        assert_histories_close(histories[index], expected[0], rtol, f"models[{index}]")
    if hasattr(caught.value, "__notes__"):
        note = caught.value.__notes__[-1]
        if budget:
            assert "models [0] finished all 4 epochs" in note and "models [1] hold their last completed epoch" in note
            assert "models [2] were not trained" in note
        else:
            assert "models [0:3] hold their last completed epoch (2 of 4)" in note


def test_an_interrupt_before_the_first_epoch_ends_leaves_the_models_untouched(monkeypatch, compiled):
    X, y = data()
    models = grid(NUMPY)
    start = copy.deepcopy(models)
    interrupt_after(monkeypatch, STEPS - 1)
    with pytest.raises(KeyboardInterrupt) as caught:
        nnx.train_many(models, X, y, epochs=4, batch_size=40, verbose=0)
    for model, before in zip(models, start, strict=True):
        untouched(model, before)
    assert [list(history.epoch) for history in caught.value.histories] == [[], [], []]


def test_an_error_between_the_steps_and_the_end_of_the_epoch_keeps_the_epoch_before(monkeypatch, compiled):
    """The steps of epoch 3 ran, then its validation failed: the models hold epoch 2, not half of epoch 3."""
    X, y = data()
    models = grid(NUMPY, 2)
    start = copy.deepcopy(models)
    validate = many._validate
    calls = [0]

    def failing(*args):
        calls[0] += 1
        if calls[0] == 3:
            raise MemoryError("validation ran out of memory")
        return validate(*args)

    monkeypatch.setattr(many, "_validate", failing)
    with pytest.raises(MemoryError) as caught:
        nnx.train_many(models, X, y, epochs=5, batch_size=40, verbose=0, validation_data=(X, y))
    solo, expected = train_solo(start, X, y, epochs=2, batch_size=40, validation_data=(X, y))
    for index, model in enumerate(models):
        assert_models_close(model, solo[index], EXACT, f"models[{index}]")
        assert_histories_close(caught.value.histories[index], expected[index], EXACT, f"models[{index}]")


@QUIET_FLOATS
def test_an_interrupt_after_a_divergence_writes_the_diverged_model_back_once(monkeypatch, compiled):
    X, y = data()
    healthy = healthy_pair()
    bad = diverging()  # diverges at epoch 3 on the full batch
    before = copy.deepcopy(bad)
    start = copy.deepcopy(healthy)
    interrupt_after(monkeypatch, 5)  # one step per epoch: stops in epoch 6
    with pytest.raises(KeyboardInterrupt) as caught:
        nnx.train_many([healthy[0], bad, healthy[1]], X, y, epochs=8, verbose=0)
    histories = caught.value.histories
    assert histories[1].final["diverged"] is True and list(histories[1].epoch) == [1, 2]
    assert bad.epochs_trained == 2 and bad.optimizer.iterations == 2
    solo_bad, _ = train_solo([before], X, y, epochs=2)
    assert_models_close(bad, solo_bad[0], EXACT, "diverged")
    solo, expected = train_solo(start, X, y, epochs=5)
    for index, position in enumerate((0, 2)):
        assert_models_close(healthy[index], solo[index], EXACT, f"models[{position}]")
        assert_histories_close(histories[position], expected[index], EXACT, f"models[{position}]")


@QUIET_FLOATS
def test_raise_with_chunks_names_the_model_by_its_place_in_the_list_and_carries_every_history(compiled):
    X, y = data()
    models = [*healthy_pair(), diverging(), healthy_pair()[0]]
    start = copy.deepcopy(models)
    with pytest.raises(
        nnx.DivergenceError, match=r"nnx\.train_many models\[2\]: training diverged at epoch 3"
    ) as caught:
        nnx.train_many(models, X, y, epochs=6, on_divergence="raise", verbose=0, memory_budget=1)
    histories = caught.value.histories
    assert [len(history.epoch) for history in histories] == [6, 6, 2, 0]
    assert histories[2].final["diverged"] is True
    assert models[2].epochs_trained == 2 and all(np.isfinite(array).all() for array in host(models[2]))
    untouched(models[3], start[3])


@QUIET_FLOATS
def test_warn_with_chunks_names_the_model_by_its_place_in_the_list(compiled):
    X, y = data()
    models = [*healthy_pair(), diverging()]
    with pytest.warns(RuntimeWarning, match=r"nnx\.train_many models\[2\]: training diverged at epoch 3"):
        nnx.train_many(models, X, y, epochs=4, on_divergence="warn", verbose=0, memory_budget=1)


# Models that share a component ----------------------------------------------------------------------------------


def two_models(share: str):
    """Two finalized models that share one layer object: "dense" (the first Dense) or "activation" (the ReLU).
    (A shared loss, optimizer or accuracy is refused earlier, by Model.set.)"""
    shared = {"dense": nnx.Dense(2, 8), "activation": nnx.ReLU()}
    models = []
    for _ in range(2):
        parts = {"dense": nnx.Dense(2, 8), "activation": nnx.ReLU(), share: shared[share]}
        model = nnx.Model()
        for layer in (parts["dense"], parts["activation"], nnx.Dense(8, 3), nnx.Softmax()):
            model.add(layer)
        model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam(0.02), accuracy=nnx.metrics.Categorical())
        model.finalize()
        models.append(model)
    return models


@pytest.mark.parametrize(
    ("share", "where"),
    [
        ("dense", r"Dense\(2 -> 8\): models\[0\]'s layer 0, models\[1\]'s layer 0"),
        ("activation", r"ReLU\(\): models\[0\]'s layer 1, models\[1\]'s layer 1"),
    ],
)
def test_models_sharing_a_layer_are_refused_naming_both(share, where):
    models = two_models(share)
    saved = [host(model) for model in models]
    message = rf"nnx\.train_many models\[0\] and models\[1\] share one layer object \({where}\).*Build each model"
    with pytest.raises(ValueError, match=message):
        plan_stack(models)
    X, y = data()
    with pytest.raises(ValueError, match=message):
        nnx.train_many(models, X, y, epochs=2, verbose=0)
    for model, before in zip(models, saved, strict=True):
        assert all(np.array_equal(a, b) for a, b in zip(host(model), before, strict=True))
        assert model.optimizer.iterations == 0 and model.epochs_trained == 0


def test_a_copied_model_stacks_with_its_original():
    models = two_models("dense")
    models[1] = copy.deepcopy(models[0])
    assert len(plan_stack(models).models) == 2


# sweep --batched: Ctrl-C keeps the finished trials and the interrupted stack's completed epochs -----------------


def test_ctrl_c_in_a_batched_factory_sweep_keeps_finished_trials_and_completed_epochs(monkeypatch, tmp_path):
    from nnx import sweep
    from tests.test_sweep import build_model

    space = {"units": [8, 16], "lr": [0.1, 0.2]}  # two architectures: one task (workers=1), two stacks
    unbatched = sweep.run(space, factory=build_model, epochs=5, workers=1)
    interrupt_after(monkeypatch, 5 + 2)  # full batch, one step per epoch: the second stack stops in epoch 3
    path = tmp_path / "sweep.csv"
    with pytest.raises(sweep.SweepInterrupted) as caught:
        sweep.run(space, factory=build_model, epochs=5, workers=1, batched=True, csv=path)
    result = caught.value.result
    assert result.interrupted and len(result.trials) == 4
    for trial, alone in zip(result.trials, unbatched.trials, strict=True):
        if trial["params"]["units"] == 8:  # the first stack finished
            assert trial["status"] == "ok" and trial["history"]["epoch"] == [1, 2, 3, 4, 5]
            assert trial["loss"] == pytest.approx(alone["loss"], rel=1e-6)
        else:
            assert trial["status"] == "failed" and trial["history"]["epoch"] == [1, 2]
            assert trial["error"].startswith("KeyboardInterrupt: Ctrl-C stopped training after 2 of 5 epochs")
            assert trial["history"]["loss"] == pytest.approx(alone["history"]["loss"][:2], rel=1e-6)
    assert len(path.read_text().splitlines()) == 5  # the header and every trial kept


def test_ctrl_c_in_a_batched_spiral_sweep_keeps_finished_tasks_and_completed_epochs(monkeypatch):
    from nnx import sweep

    space = {"lr": [0.5, 1.0], "hidden": [8, 16]}  # one task (and stack) per hidden size, one after another
    interrupt_after(monkeypatch, 11 + 3)  # the second stack stops in its epoch 4 (the book's epoch 3)
    with pytest.raises(sweep.SweepInterrupted) as caught:
        sweep.run(space, epochs=11, every=5, workers=1, batched=True)
    trials = caught.value.result.trials
    assert len(trials) == 4
    finished = [trial for trial in trials if trial["status"] == "ok"]
    stopped = [trial for trial in trials if trial["status"] == "failed"]
    assert len(finished) == 2 and len(stopped) == 2
    assert len({trial["params"]["hidden"] for trial in finished}) == 1
    assert all(trial["history"]["epoch"] == [0, 5, 10] for trial in finished)
    for trial in stopped:
        assert trial["history"]["epoch"] == [0, 2]  # every 5th epoch and the last completed one
        assert "Ctrl-C stopped training after 3 of 11 epochs" in trial["error"]
