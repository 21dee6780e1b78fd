"""`nnx.train_many`: many models of one architecture trained as one stack end exactly as if each had been trained
alone with `Model.train` (float64, both the compiled stack kernel and the generic stacked step), with their own
dropout streams, a diverging model frozen without touching the others, chunks equal to one stack, every CPU backend
on the generic step, and clear errors before anything changes."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import re
import statistics
import warnings

import numpy as np
import pytest

import nnx
from nnx.datasets import sine_data, spiral_data
from nnx.training.stack_plan import plan_stack
from nnx.training.stack_step import explain_stack
from tests.conftest import widest_float

many = importlib.import_module("nnx.training.stack_loop")  # the module (nnx.training.train_many is the function)

NUMPY = nnx.backends.get("numpy")
EXACT = 1e-9  # float64, stack against solo or kernel against generic: in practice ~1e-14
FLOAT32 = 1e-4  # float32 after 20 epochs, kernel against generic or one backend against another: observed <= 2e-6
# NumPy's overflow warnings of a model that diverges on the generic step (see test_divergence_is_quiet)
QUIET_FLOATS = pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered:RuntimeWarning")

HEADS = {  # inputs, outputs, output activation, loss, accuracy
    "softmax": (2, 3, nnx.Softmax, nnx.CategoricalCrossentropy, nnx.metrics.Categorical),
    "sigmoid": (2, 1, nnx.Sigmoid, nnx.BinaryCrossentropy, lambda: nnx.metrics.Categorical(binary=True)),
    "linear": (1, 1, nnx.Linear, nnx.MeanSquaredError, nnx.metrics.Regression),
}


def build(
    optimizer=None,
    *,
    head="softmax",
    hidden=8,
    depth=2,
    dropout=0.0,
    regularization=(0.0, 0.0, 0.0, 0.0),
    dtype="float64",
    seed=0,
    backend="numpy",
    scale=0.5,
):
    """A finalized Dense-ReLU(-Dropout)-...-Dense-head model whose weights come from `seed`; `optimizer` is a
    callable that makes its optimizer (default Adam(0.02)); `regularization` (weight L1, weight L2, bias L1,
    bias L2) goes on every Dense layer."""
    n_inputs, n_outputs, activation, loss, accuracy = HEADS[head]
    nnx.seed(seed)
    with nnx.backends.use(backend):
        model = nnx.Model()
        width = n_inputs
        for _ in range(depth - 1):
            model.add(nnx.Dense(width, hidden, *regularization, weight_scale=scale, dtype=dtype))
            model.add(nnx.ReLU())
            if dropout:
                model.add(nnx.Dropout(dropout))
            width = hidden
        model.add(nnx.Dense(width, n_outputs, *regularization, weight_scale=scale, dtype=dtype))
        model.add(activation())
        model.set(
            loss=loss(),
            optimizer=(optimizer or (lambda: nnx.Adam(learning_rate=0.02)))(),
            accuracy=accuracy(),
        )
        model.finalize()
    return model


def data(head="softmax", samples=40, seed=1):
    """(X float64, y) for `head`: spiral classes, two spiral classes as (n, 1) 0/1 targets, or a sine curve."""
    nnx.seed(seed)
    if head == "linear":
        X, y = sine_data(samples=samples * 2)
        return X.astype(np.float64), y.astype(np.float64)
    X, y = spiral_data(samples=samples, classes=3 if head == "softmax" else 2)
    X = X.astype(np.float64)
    return (X, y) if head == "softmax" else (X, y.reshape(-1, 1).astype(np.float64))


def host(model) -> list[np.ndarray]:
    return [model.backend.to_numpy(array) for pair in model.get_parameters() for array in pair]


def slots(model) -> dict:
    """{layer position: {slot name: host array}} of the optimizer, layers without arrays left out."""
    state = model.optimizer.state_dict()["slots"]
    return {
        index: {name: model.backend.to_numpy(value) for name, value in arrays.items()}
        for index, arrays in state.items()
        if arrays
    }


def assert_arrays_close(ours, theirs, rtol, what):
    assert len(ours) == len(theirs), what
    for mine, expected in zip(ours, theirs, strict=True):
        assert mine.shape == expected.shape, what
        scale = float(np.max(np.abs(expected))) if expected.size else 0.0
        np.testing.assert_allclose(mine, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def assert_values_close(ours, theirs, rtol, what):
    """Two lists of numbers (None allowed, as validation columns hold between validations) equal to `rtol`."""
    assert len(ours) == len(theirs), what
    for index, (mine, expected) in enumerate(zip(ours, theirs, strict=True)):
        if expected is None or mine is None:
            assert mine is expected, f"{what}[{index}]"
        else:
            assert mine == pytest.approx(expected, rel=rtol, abs=rtol * 1e-6), f"{what}[{index}]"


def assert_histories_close(ours, theirs, rtol, what="", *, final=True):
    assert list(ours.epoch) == list(theirs.epoch), what
    assert set(ours.history) == set(theirs.history), what
    for name, values in theirs.history.items():
        assert_values_close(list(ours.history[name]), list(values), rtol, f"{what} history[{name!r}]")
    if not final:
        return
    assert set(ours.final) == set(theirs.final), what
    assert_values_close(
        [ours.final[k] for k in sorted(theirs.final)], [theirs.final[k] for k in sorted(theirs.final)], rtol, what
    )


def assert_models_close(ours, theirs, rtol, what=""):
    """Same parameters, optimizer slots, step count, learning rate and epoch count."""
    assert_arrays_close(host(ours), host(theirs), rtol, f"{what} parameters")
    our_slots, their_slots = slots(ours), slots(theirs)
    assert our_slots.keys() == their_slots.keys(), what
    for index, arrays in their_slots.items():
        assert our_slots[index].keys() == arrays.keys(), what
        for name, expected in arrays.items():
            assert_arrays_close([our_slots[index][name]], [expected], rtol, f"{what} slot {index} {name}")
    assert ours.optimizer.iterations == theirs.optimizer.iterations, what
    assert ours.optimizer.current_learning_rate == pytest.approx(theirs.optimizer.current_learning_rate, rel=rtol)
    assert ours.epochs_trained == theirs.epochs_trained, what


def train_solo(models, X, y, seed=None, **options):
    """Copies of `models`, each trained alone (after ``nnx.seed(seed + i)`` if `seed` is given), and their
    Histories."""
    copies, histories = [], []
    for index, model in enumerate(models):
        alone = copy.deepcopy(model)
        if seed is not None:
            nnx.seed(seed + index)
        histories.append(alone.train(X, y, print_every=None, **options))
        copies.append(alone)
    return copies, histories


@pytest.fixture
def stacks_used(monkeypatch):
    """The class of every stack `train_many` builds: 'KernelStack' (compiled) or 'GenericStack'."""
    used = []
    original = many.stack_step

    def recorded(plan, X, targets):
        stack = original(plan, X, targets)
        used.append(type(stack).__name__)
        return stack

    monkeypatch.setattr(many, "stack_step", recorded)
    return used


def _set_compile(monkeypatch, name):
    if name == "fast":
        pytest.importorskip("numba", reason="the compiled stack kernel needs numba (the 'fast' extra)")
    monkeypatch.setattr(NUMPY, "compile", name == "fast")


@pytest.fixture(params=["fast", "generic"])
def path(request, monkeypatch, stacks_used):
    """The numpy backend with its compiled stack kernel ("fast") or without ("generic"); `path.check()` asserts
    that every stack ran on it."""
    _set_compile(monkeypatch, request.param)

    class Path:
        name = request.param
        expected = "KernelStack" if request.param == "fast" else "GenericStack"

        @staticmethod
        def check():
            assert stacks_used and set(stacks_used) == {Path.expected}, stacks_used

    return Path


# 1. Every optimizer: the same numbers as Model.train ------------------------------------------------------------

OPTIMIZER_GRIDS = {  # one optimizer class, a different configuration per model
    "sgd-decay": [
        lambda: nnx.SGD(learning_rate=1.0, decay=1e-2),
        lambda: nnx.SGD(learning_rate=0.5, decay=0.1),
        lambda: nnx.SGD(learning_rate=0.8),
    ],
    "sgd-momentum": [
        lambda: nnx.SGD(learning_rate=0.5, decay=1e-2, momentum=0.9),
        lambda: nnx.SGD(learning_rate=0.5, decay=1e-2),
        lambda: nnx.SGD(learning_rate=0.3, momentum=0.5),
    ],
    "adagrad": [
        lambda: nnx.Adagrad(learning_rate=0.5, decay=1e-3),
        lambda: nnx.Adagrad(learning_rate=0.2, epsilon=1e-5),
        lambda: nnx.Adagrad(learning_rate=1.0, decay=1e-2),
    ],
    "rmsprop": [
        lambda: nnx.RMSprop(learning_rate=0.01, decay=1e-3),
        lambda: nnx.RMSprop(learning_rate=0.02, rho=0.9),
        lambda: nnx.RMSprop(learning_rate=0.005, epsilon=1e-5, decay=1e-2),
    ],
    "adam": [
        lambda: nnx.Adam(learning_rate=0.02, decay=1e-3),
        lambda: nnx.Adam(learning_rate=0.05, beta_1=0.8, beta_2=0.99),
        lambda: nnx.Adam(learning_rate=0.01, epsilon=1e-5, decay=1e-2),
    ],
}
REGULARIZATIONS = [(0.0, 5e-4, 0.0, 1e-3), (1e-4, 0.0, 2e-4, 0.0), (0.0, 0.0, 0.0, 0.0)]
BATCHING = {"full-batch": None, "batches-of-32": 32}  # 120 samples: 3 batches of 32 and one of 24


def optimizer_grid(name, **options):
    """Three models of one architecture: their own optimizer settings, L1/L2 strengths and initial weights."""
    return [
        build(make, regularization=regularization, seed=index, **options)
        for index, (make, regularization) in enumerate(zip(OPTIMIZER_GRIDS[name], REGULARIZATIONS, strict=True))
    ]


@pytest.mark.parametrize("batching", list(BATCHING))
@pytest.mark.parametrize("optimizer", list(OPTIMIZER_GRIDS))
def test_every_optimizer_matches_solo_training(path, optimizer, batching):
    X, y = data()
    validation = data(samples=15, seed=2)
    models = optimizer_grid(optimizer)
    options = {"epochs": 12, "batch_size": BATCHING[batching], "validation_data": validation}
    solo, expected = train_solo(models, X, y, **options)
    histories = nnx.train_many(models, X, y, verbose=0, **options)
    path.check()
    assert len(histories) == len(models)
    steps = 12 * (1 if batching == "full-batch" else 4)
    for index, (model, history, alone, theirs) in enumerate(zip(models, histories, solo, expected, strict=True)):
        what = f"models[{index}]"
        assert_histories_close(history, theirs, EXACT, what)
        assert_models_close(model, alone, EXACT, what)
        assert model.optimizer.iterations == steps and model.epochs_trained == 12
        assert set(history.history) == {"loss", "data_loss", "reg_loss", "accuracy", "lr", "val_loss", "val_accuracy"}
        assert history.final["val_loss"] == pytest.approx(theirs.final["val_loss"], rel=EXACT)
    assert histories[0].final["reg_loss"] > 0 and histories[1].final["reg_loss"] > 0
    assert histories[2].final["reg_loss"] == 0


def test_momentum_zero_model_keeps_no_momentum_slots(path):
    X, y = data()
    models = optimizer_grid("sgd-momentum")
    solo, _ = train_solo(models, X, y, epochs=5, batch_size=50)
    nnx.train_many(models, X, y, epochs=5, batch_size=50, verbose=0)
    path.check()
    assert slots(models[1]) == {} == slots(solo[1])  # momentum 0: plain SGD, no arrays kept
    for model in (models[0], models[2]):
        assert set(slots(model)) == {0, 1}
        assert all(set(arrays) == {"weight_momentums", "bias_momentums"} for arrays in slots(model).values())
        assert all(np.any(array != 0) for arrays in slots(model).values() for array in arrays.values())
    for index, (model, alone) in enumerate(zip(models, solo, strict=True)):
        assert_models_close(model, alone, EXACT, f"models[{index}]")


def test_validation_without_batches_only_at_the_last_epoch(path):
    X, y = data()
    models = optimizer_grid("adam")
    histories = nnx.train_many(models, X, y, epochs=4, validation_data=data(samples=10, seed=3), verbose=0)
    for history in histories:
        assert history.history["val_loss"][:3] == [None] * 3 and history.history["val_loss"][3] > 0
        assert 0 <= history.history["val_accuracy"][3] <= 1


def test_training_continues_from_the_optimizer_state(path):
    """A second call continues every model's schedule, slots and epoch count, as a second Model.train does."""
    X, y = data()
    models = optimizer_grid("adam")
    solo = [copy.deepcopy(model) for model in models]
    nnx.train_many(models, X, y, epochs=3, batch_size=50, verbose=0)
    histories = nnx.train_many(models, X, y, epochs=4, batch_size=50, verbose=0)
    for index, (model, alone, history) in enumerate(zip(models, solo, histories, strict=True)):
        alone.train(X, y, epochs=3, batch_size=50, print_every=None)
        expected = alone.train(X, y, epochs=4, batch_size=50, print_every=None)
        assert_histories_close(history, expected, EXACT, f"models[{index}]")
        assert_models_close(model, alone, EXACT, f"models[{index}]")
        assert model.epochs_trained == 7 and model.optimizer.iterations == 7 * 3


def test_one_hot_targets_match_labels(path):
    X, y = data()
    models = optimizer_grid("rmsprop")
    copies = [copy.deepcopy(model) for model in models]
    labels = nnx.train_many(models, X, y, epochs=5, verbose=0)
    one_hot = nnx.train_many(copies, X, np.eye(3)[y], epochs=5, verbose=0)
    for ours, theirs in zip(labels, one_hot, strict=True):
        assert_histories_close(ours, theirs, EXACT)
    for ours, theirs in zip(models, copies, strict=True):
        assert_models_close(ours, theirs, EXACT)


# 2. Dropout: each model its own stream, seed + i ---------------------------------------------------------------


def dropout_grid(rates=(0.1, 0.3, 0.5), optimizer=None, **options):
    return [
        build(optimizer, dropout=rate, hidden=12, depth=3, seed=index, **options) for index, rate in enumerate(rates)
    ]


@pytest.mark.parametrize("batch_size", [None, 50])
def test_dropout_matches_solo_training_after_seeding_seed_plus_i(path, batch_size):
    X, y = data()
    models = dropout_grid()
    options = {"epochs": 8, "batch_size": batch_size, "validation_data": data(samples=10, seed=3)}
    solo, expected = train_solo(models, X, y, seed=7, **options)
    histories = nnx.train_many(models, X, y, seed=7, verbose=0, **options)
    path.check()
    for index, (model, history, alone, theirs) in enumerate(zip(models, histories, solo, expected, strict=True)):
        assert_histories_close(history, theirs, EXACT, f"models[{index}]")
        assert_models_close(model, alone, EXACT, f"models[{index}]")


def test_a_list_of_seeds_gives_each_model_its_own(path):
    X, y = data()
    models, seeds = dropout_grid(), [7, 7, 9]
    options = {"epochs": 6, "batch_size": 50}
    expected = []
    for model, seed in zip(models, seeds, strict=True):
        expected += train_solo([model], X, y, seed=seed, **options)[1]
    histories = nnx.train_many(models, X, y, seed=seeds, verbose=0, **options)
    path.check()
    for index, (history, theirs) in enumerate(zip(histories, expected, strict=True)):
        assert_histories_close(history, theirs, EXACT, f"models[{index}]")


@pytest.mark.parametrize(
    "seeds, error, match", [([1, 2], ValueError, "2 seeds for 3 models"), ([1, 2, -1], ValueError, r"seed\[2\]")]
)
def test_a_list_of_seeds_is_checked(seeds, error, match):
    X, y = data()
    with pytest.raises(error, match=match):
        nnx.train_many(dropout_grid(), X, y, seed=seeds, verbose=0)


@pytest.mark.parametrize("batch_size", [None, 32])
def test_shuffle_takes_the_rows_in_model_trains_order(path, batch_size):
    X, y = data()
    models = [build(lambda r=rate: nnx.SGD(learning_rate=r, momentum=0.5), seed=i) for i, rate in enumerate((0.3, 1.0))]
    expected = []
    for model in models:
        alone = copy.deepcopy(model)
        nnx.seed(3)
        expected.append(alone.train(X, y, epochs=5, batch_size=batch_size, shuffle=True, print_every=None))
    nnx.seed(3)
    histories = nnx.train_many(models, X, y, epochs=5, batch_size=batch_size, shuffle=True, verbose=0)
    path.check()
    for index, (history, theirs) in enumerate(zip(histories, expected, strict=True)):
        assert_histories_close(history, theirs, EXACT, f"models[{index}]")
    if batch_size is not None:  # the order matters: without shuffling the losses differ
        unshuffled = nnx.train_many(copy.deepcopy(models), X, y, epochs=5, batch_size=batch_size, verbose=0)
        assert unshuffled[0].history["loss"][-1] != histories[0].history["loss"][-1]


def test_dropout_is_reproducible_with_the_same_seed(path):
    X, y = data()
    start = dropout_grid()
    runs = []
    for seed in (11, 11, 12):
        models = copy.deepcopy(start)
        histories = nnx.train_many(models, X, y, epochs=5, batch_size=40, seed=seed, verbose=0)
        runs.append(([h.history["loss"] for h in histories], [host(m) for m in models]))
    assert runs[0][0] == runs[1][0]
    for ours, theirs in zip(runs[0][1], runs[1][1], strict=True):
        assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert all(a != b for a, b in zip(runs[0][0], runs[2][0], strict=True))  # another seed, other masks


def test_seed_none_draws_from_the_global_rng(path):
    X, y = data()
    start = dropout_grid()
    losses = []
    for _ in range(2):
        models = copy.deepcopy(start)
        nnx.seed(5)
        losses.append([h.history["loss"] for h in nnx.train_many(models, X, y, epochs=3, verbose=0)])
    assert losses[0] == losses[1]


def test_models_with_the_same_weights_and_rate_draw_independent_masks(path):
    X, y = data()
    twin = build(dropout=0.4, depth=3, hidden=12, seed=0)
    models = [twin, copy.deepcopy(twin)]
    solo, expected = train_solo(models, X, y, seed=3, epochs=5)
    histories = nnx.train_many(models, X, y, epochs=5, seed=3, verbose=0)
    assert histories[0].history["loss"] != histories[1].history["loss"]
    assert not np.array_equal(host(models[0])[0], host(models[1])[0])
    for index in range(2):  # model 1's masks are those of seed 4, not a copy of model 0's
        assert_histories_close(histories[index], expected[index], EXACT, f"models[{index}]")
        assert_models_close(models[index], solo[index], EXACT, f"models[{index}]")


def test_dropout_layers_are_off_afterwards(path):
    X, y = data()
    models = dropout_grid()
    nnx.train_many(models, X, y, epochs=2, seed=1, verbose=0)
    for model in models:
        first, second = model.predict(X), model.predict(X)
        np.testing.assert_array_equal(first, second)


# 3. Divergence: frozen at the last finite epoch, the others unchanged ------------------------------------------


def diverging(l2=0.0, **options):
    """A float64 model whose loss becomes infinite after a few finite epochs: SGD with learning rate 1e100 (at
    epoch 3 on the full batch), or SGD(1.0) with a weight L2 strength `l2` so large that each step multiplies the
    weights by about -2 * l2 (1e10: at epoch 4 in batches of 32)."""
    if l2:
        return build(
            lambda: nnx.SGD(learning_rate=1.0), seed=9, scale=0.1, regularization=(0.0, l2, 0.0, 0.0), **options
        )
    return build(lambda: nnx.SGD(learning_rate=1e100), seed=9, scale=0.1, **options)


def healthy_pair():
    """Two SGD models that train well (the diverging one is SGD too: one optimizer class per stack)."""
    return [
        build(lambda: nnx.SGD(learning_rate=1.0, decay=1e-2), seed=1),
        build(lambda: nnx.SGD(learning_rate=0.5), seed=2),
    ]


@QUIET_FLOATS
@pytest.mark.parametrize(("batch_size", "l2", "epoch"), [(None, 0.0, 3), (32, 1e10, 4), (32, 1e40, 1)])
def test_a_diverging_model_leaves_the_others_as_without_it(path, batch_size, l2, epoch):
    X, y = data()
    healthy = healthy_pair()
    alone = copy.deepcopy(healthy)
    bad = diverging(l2)
    before = copy.deepcopy(bad)
    histories = nnx.train_many([healthy[0], bad, healthy[1]], X, y, epochs=8, batch_size=batch_size, verbose=0)
    without = nnx.train_many(alone, X, y, epochs=8, batch_size=batch_size, verbose=0)
    path.check()
    for index, (model, other) in enumerate(zip(healthy, alone, strict=True)):
        assert_histories_close(histories[2 * index], without[index], 1e-12, f"healthy {index}")
        assert_models_close(model, other, 1e-12, f"healthy {index}")
        assert model.epochs_trained == 8
    final = histories[1].final
    assert final["diverged"] is True
    assert final["epoch"] == epoch
    assert list(histories[1].epoch) == list(range(1, epoch))
    assert set(final) == {"diverged", "epoch", "step", "loss"}
    steps_per_epoch = 1 if batch_size is None else 4
    assert final["step"] == steps_per_epoch - 1
    assert all(np.isfinite(array).all() for array in host(bad))
    assert all(np.isfinite(array).all() for arrays in slots(bad).values() for array in arrays.values())
    assert bad.epochs_trained == epoch - 1
    assert bad.optimizer.iterations == (epoch - 1) * steps_per_epoch
    if epoch > 1:  # its state is that of a solo run of the epochs before it diverged
        assert final["loss"] == histories[1].history["loss"][-1]
        solo, expected = train_solo([before], X, y, epochs=epoch - 1, batch_size=batch_size)
        assert_histories_close(histories[1], expected[0], EXACT, "diverged", final=False)
        assert_models_close(bad, solo[0], EXACT, "diverged")
    else:
        assert final["loss"] is None
        assert_models_close(bad, before, 0, "diverged in its first epoch")


@QUIET_FLOATS
def test_divergence_epoch_and_loss_match_solo_training(path):
    X, y = data()
    bad = diverging()
    solo, expected = train_solo([bad], X, y, epochs=8, on_divergence="stop", check_every=1)
    (history,) = nnx.train_many([bad], X, y, epochs=8, verbose=0)
    assert expected[0].final["diverged"] is True and history.final["diverged"] is True
    assert history.final["epoch"] == expected[0].final["epoch"] == 3  # two finite epochs recorded
    assert history.final["step"] == expected[0].final["step"]
    assert history.final["loss"] == pytest.approx(expected[0].final["loss"], rel=EXACT)
    assert_models_close(bad, solo[0], EXACT)


@pytest.mark.parametrize(("batch_size", "l2"), [(None, 0.0), (None, 1e40), (32, 1e10)])
def test_divergence_is_quiet(path, batch_size, l2):
    """With on_divergence="stop" (the default) a divergence shows in the History only: no NumPy floating-point
    warning escapes, as none escapes Model.train(on_divergence="stop") of the same model."""
    X, y = data()
    bad = diverging(l2)
    with warnings.catch_warnings(record=True) as solo_warnings:
        warnings.simplefilter("always")
        train_solo([bad], X, y, epochs=8, batch_size=batch_size, on_divergence="stop")
    assert [str(w.message) for w in solo_warnings] == []
    with warnings.catch_warnings(record=True) as stack_warnings:
        warnings.simplefilter("always")
        (history,) = nnx.train_many([bad], X, y, epochs=8, batch_size=batch_size, verbose=0)
    assert history.final["diverged"] is True
    assert [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in stack_warnings] == []


@QUIET_FLOATS
def test_warn_warns_with_the_model_and_epoch(path):
    X, y = data()
    models = [*healthy_pair(), diverging()]
    with pytest.warns(RuntimeWarning, match=r"nnx\.train_many models\[2\]: training diverged at epoch 3"):
        histories = nnx.train_many(models, X, y, epochs=6, on_divergence="warn", verbose=0)
    assert histories[2].final["diverged"] is True and histories[2].final["epoch"] == 3
    assert [h.epoch[-1] for h in histories[:2]] == [6, 6]


@QUIET_FLOATS
def test_raise_raises_with_every_history(path):
    X, y = data()
    healthy = healthy_pair()
    solo, expected = train_solo(healthy, X, y, epochs=3)  # the stack stops at the end of epoch 3
    models = [healthy[0], diverging(), healthy[1]]
    with pytest.raises(nnx.DivergenceError, match=r"models\[1\].*diverged at epoch 3") as caught:
        nnx.train_many(models, X, y, epochs=6, on_divergence="raise", verbose=0)
    error = caught.value
    assert error.epoch == 3
    assert len(error.histories) == 3
    assert error.histories[1].final["diverged"] is True and list(error.histories[1].epoch) == [1, 2]
    assert error.last_finite_loss == error.histories[1].history["loss"][-1]
    for index, position in enumerate((0, 2)):
        assert_histories_close(error.histories[position], expected[index], EXACT, f"models[{position}]")
        assert_models_close(models[position], solo[index], EXACT, f"models[{position}]")
    assert all(np.isfinite(array).all() for array in host(models[1]))
    assert models[1].epochs_trained == 2


# 4. Compiled stack kernel against the generic stacked step ----------------------------------------------------


def head_grid(head, dtype, dropout=0.0):
    optimizers = [
        lambda: nnx.Adam(learning_rate=0.01, decay=1e-3),
        lambda: nnx.Adam(learning_rate=0.005),
        lambda: nnx.Adam(learning_rate=0.02, beta_1=0.85),
    ]
    return [
        build(make, head=head, dtype=dtype, dropout=dropout, depth=3 if dropout else 2, hidden=12, seed=index,
              regularization=REGULARIZATIONS[index])
        for index, make in enumerate(optimizers)
    ]  # fmt: skip


def train_on_both_paths(monkeypatch, stacks_used, models, X, y, **options):
    """(models, histories) of the compiled stack, then of the generic step, from the same start."""
    results = []
    for name in ("fast", "generic"):
        _set_compile(monkeypatch, name)
        trained = copy.deepcopy(models)
        stacks_used.clear()
        results.append((trained, nnx.train_many(trained, X, y, verbose=0, **options)))
        assert set(stacks_used) == {"KernelStack" if name == "fast" else "GenericStack"}
    return results


def state_arrays(model) -> list[np.ndarray]:
    """The model's parameters and optimizer slots as host arrays, in a fixed order."""
    return host(model) + [array for _, arrays in sorted(slots(model).items()) for _, array in sorted(arrays.items())]


def relative_error(ours, theirs) -> float:
    """The largest difference between two lists of host arrays, relative to the largest value of each."""
    return max(
        float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-30) for a, b in zip(ours, theirs, strict=True)
    )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("dropout", [0.0, 0.2], ids=["no-dropout", "dropout"])
@pytest.mark.parametrize("head", list(HEADS))
def test_compiled_stack_matches_the_generic_stack(monkeypatch, stacks_used, head, dropout, dtype):
    X, y = data(head)
    models = head_grid(head, dtype, dropout)
    rtol = EXACT if dtype == "float64" else FLOAT32
    options = {"epochs": 20, "batch_size": 32, "seed": 3, "validation_data": data(head, samples=10, seed=4)}
    (fast, fast_histories), (generic, generic_histories) = train_on_both_paths(
        monkeypatch, stacks_used, models, X, y, **options
    )
    for index in range(len(models)):
        assert_histories_close(fast_histories[index], generic_histories[index], rtol, f"models[{index}]")
        assert relative_error(state_arrays(fast[index]), state_arrays(generic[index])) < rtol
        assert fast[index].layers[0].weights.dtype == np.dtype(dtype)
        assert fast[index].optimizer.iterations == generic[index].optimizer.iterations == 20 * -(-len(X) // 32)
    losses = [history.history["loss"] for history in fast_histories]
    assert all(loss[-1] < loss[0] for loss in losses)  # they learn


def test_explain_stack_names_the_path(monkeypatch):
    plan = plan_stack(optimizer_grid("adam"))
    if importlib.util.find_spec("numba") is not None:
        monkeypatch.setattr(NUMPY, "compile", True)
        assert explain_stack(plan).startswith("compiled stack")
    monkeypatch.setattr(NUMPY, "compile", False)
    assert explain_stack(plan).startswith("generic stacked step")


# 5. Bad inputs: a clear error, nothing changed -----------------------------------------------------------------


class KernelLessDense(nnx.Dense):
    """A Dense subclass: it does not inherit the kernel spec (it might compute something else)."""


class OwnCrossentropy(nnx.CategoricalCrossentropy):
    """Another loss class that a kernel computes (it says so itself)."""

    def kernel_spec(self):
        return super().kernel_spec()


def snapshot(models):
    """Each finalized model with a copy of its parameters and its step count."""
    return [
        (model, host(model), model.optimizer.iterations)
        for model in models
        if isinstance(model, nnx.Model) and model.finalized
    ]


def assert_unchanged(saved):
    for model, parameters, iterations in saved:
        assert model.optimizer.iterations == iterations == 0
        assert model.epochs_trained == 0
        assert all(np.array_equal(a, b) for a, b in zip(host(model), parameters, strict=True))
        assert slots(model) == {}


def unfinalized():
    model = nnx.Model()
    for layer in (nnx.Dense(2, 8, dtype="float64"), nnx.ReLU(), nnx.Dense(8, 3, dtype="float64"), nnx.Softmax()):
        model.add(layer)
    model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam(), accuracy=nnx.metrics.Categorical())
    return model


def strict_model():
    pytest.importorskip("array_api_strict")
    return build(backend="array_api_strict")


MODEL_LISTS = {
    "empty": (lambda first: [], ValueError, r"empty list of models"),
    "not-a-list": (lambda first: first, TypeError, r"expected a list of finalized nnx\.Model"),
    "not-a-model": (lambda first: [first, "model"], TypeError, r"models\[1\] must be an nnx\.Model, got"),
    "same-twice": (
        lambda first: [first, build(), first],
        ValueError,
        r"same model twice \(models\[0\] and models\[2\]",
    ),
    "unfinalized": (lambda first: [first, unfinalized()], nnx.CallOrderError, r"models\[1\]: .*not finalized"),
    "other-backend": (
        lambda first: [first, strict_model()],
        ValueError,
        r"models\[0\] is on 'numpy' but models\[1\] is on 'array_api_strict'",
    ),
    "hidden-size": (
        lambda first: [first, build(), build(hidden=9)],
        ValueError,
        r"models\[2\] differs from models\[0\] in its layer 0 \(Dense\(2 -> 9\) against Dense\(2 -> 8\)\)",
    ),
    "layer-count": (
        lambda first: [first, build(depth=3)],
        ValueError,
        r"models\[1\] has 6 layers but models\[0\] has 4",
    ),
    "dtype": (
        lambda first: [first, build(dtype="float32")],
        ValueError,
        r"models\[1\] differs from models\[0\] in its dtype \(float32 against float64\)",
    ),
    "loss-class": (
        lambda first: [first, _with_loss(OwnCrossentropy)],
        ValueError,
        r"models\[1\] differs from models\[0\] in its loss \(OwnCrossentropy against CategoricalCrossentropy\)",
    ),
    "optimizer-class": (
        lambda first: [first, build(lambda: nnx.SGD())],
        ValueError,
        r"models\[1\] differs from models\[0\] in its optimizer \(SGD against Adam\)",
    ),
    "no-kernel-spec": (
        lambda first: [first, _with_first_dense(KernelLessDense)],
        ValueError,
        r"cannot stack models\[1\]: KernelLessDense.*no kernel_spec\(\).*train this one with model\.train\(\)",
    ),
}


def _with_loss(loss_class):
    model = build()
    model.set(loss=loss_class(), optimizer=nnx.Adam(learning_rate=0.02), accuracy=nnx.metrics.Categorical())
    model.finalize()
    return model


def _with_first_dense(dense_class):
    nnx.seed(0)
    model = nnx.Model()
    for layer in (dense_class(2, 8, dtype="float64"), nnx.ReLU(), nnx.Dense(8, 3, dtype="float64"), nnx.Softmax()):
        model.add(layer)
    model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam(), accuracy=nnx.metrics.Categorical())
    model.finalize()
    return model


@pytest.mark.parametrize("case", list(MODEL_LISTS))
def test_bad_model_lists_are_refused_before_anything_changes(case):
    X, y = data(samples=10)
    make, error, message = MODEL_LISTS[case]
    first = build()
    models = make(first)
    saved = snapshot([first, *(models if isinstance(models, list) else [])])
    with pytest.raises(error, match=rf"nnx\.train_many .*{message}"):
        nnx.train_many(models, X, y, epochs=2, verbose=0)
    assert_unchanged(saved)


BAD_ARGUMENTS = {
    "epochs-zero": ({"epochs": 0}, ValueError, "epochs"),
    "epochs-float": ({"epochs": 1.5}, ValueError, "epochs"),
    "epochs-str": ({"epochs": "3"}, TypeError, "epochs"),
    "epochs-bool": ({"epochs": True}, TypeError, "epochs"),
    "batch-size-zero": ({"batch_size": 0}, ValueError, "batch_size"),
    "batch-size-negative": ({"batch_size": -8}, ValueError, "batch_size"),
    "on-divergence": ({"on_divergence": "explode"}, ValueError, "on_divergence must be one of 'raise', 'stop', 'warn'"),
    "verbose": ({"verbose": 3}, ValueError, "verbose"),
    "print-every-negative": ({"print_every": -1}, ValueError, "print_every"),
    "print-every-str": ({"print_every": "often"}, TypeError, "print_every"),
    "seed-negative": ({"seed": -1}, ValueError, "seed"),
    "seed-float": ({"seed": 1.5}, TypeError, "seed"),
    "seed-too-large": ({"seed": 2**32}, ValueError, "seed"),
    "seed-no-room": ({"seed": 2**32 - 2}, ValueError, r"seed must leave room for one seed per model"),
    "memory-budget-zero": ({"memory_budget": 0}, ValueError, "memory_budget"),
    "memory-budget-negative": ({"memory_budget": -1}, ValueError, "memory_budget"),
    "validation-not-a-pair": ({"validation_data": np.zeros((30, 2))}, TypeError, "validation_data"),
}


def three_models():
    return [build(dropout=0.2, depth=3, seed=index) for index in range(3)]


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_arguments_are_refused_before_anything_changes(case):
    X, y = data(samples=10)
    options, error, message = BAD_ARGUMENTS[case]
    models = three_models()
    saved = snapshot(models)
    with pytest.raises(error, match=message):
        nnx.train_many(models, X, y, **{"epochs": 2, "verbose": 0, **options})
    assert_unchanged(saved)


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_argument_errors_name_train_many(case):
    """Every refused keyword argument of train_many is reported as train_many's, not as another function's."""
    X, y = data(samples=10)
    options, error, _ = BAD_ARGUMENTS[case]
    with pytest.raises(error) as caught:
        nnx.train_many(three_models(), X, y, **{"epochs": 2, "verbose": 0, **options})
    assert str(caught.value).startswith("nnx.train_many "), str(caught.value)


BAD_DATA = {
    "targets-too-short": (lambda X, y: (X, y[:-1], {}), ValueError, r"expected targets for 30 samples"),
    "too-few-features": (lambda X, y: (X[:, :1], y, {}), ValueError, r"expected training inputs with 2 features"),
    "not-an-array": (lambda X, y: ("inputs", y, {}), TypeError, r"training inputs must be an array"),
    "validation-short": (
        lambda X, y: (X, y, {"validation_data": (X, y[:-1])}),
        ValueError,
        r"validation targets\) expected targets for 30 samples",
    ),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_is_refused_before_anything_changes(case):
    X, y = data(samples=10)
    make, error, message = BAD_DATA[case]
    inputs, targets, options = make(X, y)
    models = three_models()
    saved = snapshot(models)
    with pytest.raises(error, match=message):
        nnx.train_many(models, inputs, targets, epochs=2, verbose=0, **options)
    assert_unchanged(saved)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("memory_budget", [None, 1], ids=["one-stack", "one-model-per-chunk"])
def test_non_finite_start_is_refused_before_anything_changes(memory_budget, value):
    """A model whose parameters are already NaN or infinite is refused (a ValueError, no NumPy warning), and no
    model trains (in chunks too)."""
    X, y = data(samples=10)
    models = three_models()
    models[2].layers[0].weights[0, 0] = value
    saved = snapshot(models)
    with pytest.raises(ValueError, match=r"nnx\.train_many models\[2\] has NaN or infinite parameters"):
        nnx.train_many(models, X, y, epochs=2, verbose=0, memory_budget=memory_budget)
    for model, parameters, _ in saved:
        assert model.optimizer.iterations == 0 and model.epochs_trained == 0
        for now, before in zip(host(model), parameters, strict=True):
            np.testing.assert_array_equal(now, before)


# 6. The generic step on every CPU backend ----------------------------------------------------------------------


def test_generic_stack_on_every_backend_matches_numpy(backend, monkeypatch, stacks_used):
    if backend.name == "cupy":
        pytest.skip("a CPU test")
    dtype = widest_float(backend)
    X, y = data()
    validation = data(samples=20, seed=3)  # 60 rows: every batch and validation has one shape (JAX compiles once)
    start = [
        build(lambda: nnx.Adam(learning_rate=0.01, decay=1e-3), dropout=0.2, depth=3, hidden=8, dtype=dtype, seed=i,
              regularization=REGULARIZATIONS[i])
        for i in range(3)
    ]  # fmt: skip
    options = {"epochs": 3, "batch_size": 60, "seed": 5, "validation_data": validation}
    monkeypatch.setattr(NUMPY, "compile", False)
    reference = copy.deepcopy(start)
    expected = nnx.train_many(reference, X, y, verbose=0, **options)
    models = [copy.deepcopy(model).to(backend.name) for model in start]
    assert explain_stack(plan_stack(models)).startswith("generic stacked step")
    stacks_used.clear()
    histories = nnx.train_many(models, X, y, verbose=0, **options)
    assert stacks_used == ["GenericStack"]
    rtol = EXACT if dtype == "float64" else FLOAT32
    for index, model in enumerate(models):
        assert model.backend is backend
        assert_histories_close(histories[index], expected[index], rtol, f"models[{index}] on {backend.name}")
        assert model.optimizer.iterations == 6 and model.epochs_trained == 3
        assert slots(model).keys() == slots(reference[index]).keys()
        assert relative_error(state_arrays(model), state_arrays(reference[index])) < rtol


# 7. Chunks and output -------------------------------------------------------------------------------------------


def momentum_sgd():
    return nnx.SGD(learning_rate=0.5, momentum=0.5)


@QUIET_FLOATS
@pytest.mark.parametrize("memory_budget", [1, "two-models"])
def test_chunks_give_the_same_results_as_one_stack(path, memory_budget, stacks_used):
    X, y = data()
    start = [*dropout_grid((0.1, 0.2, 0.3, 0.4, 0.5), momentum_sgd), diverging(1e10, dropout=0.3, depth=3, hidden=12)]
    if memory_budget == "two-models":
        memory_budget = two_models_per_chunk(start, 40)
    options = {"epochs": 6, "batch_size": 40, "seed": 21, "validation_data": data(samples=10, seed=3)}
    whole = copy.deepcopy(start)
    stacks_used.clear()
    expected = nnx.train_many(whole, X, y, verbose=0, **options)
    assert len(stacks_used) == 1
    stacks_used.clear()
    chunked = copy.deepcopy(start)
    histories = nnx.train_many(chunked, X, y, verbose=0, memory_budget=memory_budget, **options)
    assert len(stacks_used) == (6 if memory_budget == 1 else 3)
    assert expected[5].final["diverged"] is True and histories[5].final["epoch"] == expected[5].final["epoch"]
    for index, (model, other) in enumerate(zip(chunked, whole, strict=True)):
        assert_histories_close(histories[index], expected[index], 1e-12, f"models[{index}]")
        assert_models_close(model, other, 1e-12, f"models[{index}]")


def two_models_per_chunk(models, rows):
    """A memory budget that fits two of `models` (trained on batches of `rows`) in a stack, not three."""
    return 2 * many._bytes_per_model(plan_stack(models), rows) + 1


@QUIET_FLOATS
def test_verbose_2_prints_one_line_per_stack_every_print_every_epochs(path, capsys):
    X, y = data()
    models = [*optimizer_grid("sgd-decay"), diverging()]
    budget = two_models_per_chunk(models, len(X))
    histories = nnx.train_many(models, X, y, epochs=6, verbose=2, print_every=2, memory_budget=budget)
    lines = capsys.readouterr().out.splitlines()
    pattern = re.compile(
        r"stack (\d)/2 \(2 models\) epoch (\d)/6 - best loss: (\S+) - median loss: (\S+) - diverged: (\d)"
    )
    parsed = [pattern.fullmatch(line) for line in lines]
    assert all(parsed), lines
    assert [(int(m[1]), int(m[2])) for m in parsed] == [(1, 2), (1, 4), (1, 6), (2, 2), (2, 4), (2, 6)]
    assert [m[5] for m in parsed] == ["0", "0", "0", "0", "1", "1"]  # models[3] diverges at epoch 3
    for match in parsed:
        stack, epoch = int(match[1]), int(match[2])
        members = [histories[2 * stack - 2], histories[2 * stack - 1]]
        losses = [h.history["loss"][epoch - 1] for h in members if len(h.history["loss"]) >= epoch]
        assert float(match[3]) == pytest.approx(min(losses), rel=1e-3)
        assert float(match[4]) == pytest.approx(statistics.median(losses), rel=1e-3)
    assert histories[3].final["diverged"] is True and histories[3].final["epoch"] == 3


def test_verbose_2_one_model_reports_its_loss(path, capsys):
    X, y = data()
    (history,) = nnx.train_many(optimizer_grid("adam")[:1], X, y, epochs=3, verbose=2, print_every=3)
    (line,) = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"training epoch 3/3 - loss: (\S+)", line), line
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(history.final["loss"], rel=1e-3)


def test_verbose_2_one_stack_reports_best_and_median(path, capsys):
    X, y = data()
    models = optimizer_grid("adam")
    histories = nnx.train_many(models, X, y, epochs=4, verbose=2, print_every=4)
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("stack 1/1 (3 models) epoch 4/4 - best loss: ")
    losses = [history.final["loss"] for history in histories]
    best, median = re.search(r"best loss: (\S+) - median loss: (\S+) - diverged: 0$", line).groups()
    assert float(best) == pytest.approx(min(losses), rel=1e-3)
    assert float(median) == pytest.approx(statistics.median(losses), rel=1e-3)


def test_verbose_0_prints_nothing(path, capsys):
    X, y = data()
    nnx.train_many(optimizer_grid("adam"), X, y, epochs=3, verbose=0, print_every=1)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# 8. The models afterwards ---------------------------------------------------------------------------------------


def test_models_predict_evaluate_save_load_and_train_on(path, tmp_path):
    X, y = data()
    X_val, y_val = data(samples=10, seed=3)
    models = optimizer_grid("adam")
    solo, _ = train_solo(models, X, y, epochs=6, batch_size=50)
    nnx.train_many(models, X, y, epochs=6, batch_size=50, verbose=0)
    for index, (model, alone) in enumerate(zip(models, solo, strict=True)):
        predictions = model.backend.to_numpy(model.predict(X_val))
        np.testing.assert_allclose(predictions, alone.backend.to_numpy(alone.predict(X_val)), rtol=EXACT)
        assert predictions.shape == (len(X_val), 3)
        loss, accuracy = model.evaluate(X_val, y_val, verbose=False)
        assert (loss, accuracy) == pytest.approx(alone.evaluate(X_val, y_val, verbose=False), rel=EXACT)
        path_ = tmp_path / f"model{index}.nnx"
        model.save(path_)
        loaded = nnx.Model.load(path_)
        assert_models_close(loaded, model, 0, f"loaded models[{index}]")
        np.testing.assert_array_equal(loaded.backend.to_numpy(loaded.predict(X_val)), predictions)
        further = [m.train(X, y, epochs=3, batch_size=50, print_every=None) for m in (model, loaded, alone)]
        assert_histories_close(further[0], further[2], EXACT, f"models[{index}] trained on")
        assert_histories_close(further[1], further[2], EXACT, f"loaded models[{index}] trained on")
        assert_models_close(model, alone, EXACT, f"models[{index}] trained on")
        assert model.epochs_trained == 9 and model.optimizer.iterations == 9 * 3
