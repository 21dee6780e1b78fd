"""The compiled training step of the numpy backend against the generic one: same metrics, same parameters, same
RNG use, and a fallback (None) for every model it does not cover."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba", reason="the compiled training step needs numba (the 'fast' extra)")

import numba

import nnx
from nnx.backends import numba_columns
from nnx.backends import numba_step as _compiled
from nnx.backends import numpy as numpy_backend
from nnx.callbacks import divergence
from nnx.datasets import sine_data, spiral_data
from nnx.training.data import checked_data
from nnx.training.loop import training_step
from nnx.training.plan import plan_step
from nnx.training.steps import PlannedStep

FAST = nnx.backends.get("numpy")
REFERENCE = FAST.reference()

OPTIMIZERS = {
    "sgd": lambda: nnx.SGD(learning_rate=0.5),
    "sgd-momentum-decay": lambda: nnx.SGD(learning_rate=0.5, decay=1e-2, momentum=0.9),
    "adagrad": lambda: nnx.Adagrad(learning_rate=0.2, decay=1e-3),
    "rmsprop": lambda: nnx.RMSprop(learning_rate=0.005, decay=1e-3),
    "adam": lambda: nnx.Adam(learning_rate=0.01, decay=1e-3),
}
DIVERGING = {"diverging": lambda: nnx.SGD(learning_rate=1e30)}


@pytest.fixture(autouse=True)
def compile_on():
    """Every test starts with the compiled step switched on, and leaves it as it was."""
    before = FAST.compile
    FAST.compile = True
    yield
    FAST.compile = before


@pytest.fixture
def kernel_calls(monkeypatch):
    """How many batches went through the compiled kernel."""
    calls = []
    original = _compiled.NumbaStepKernel.run

    def counted(self, X_batch, *args):
        calls.append(X_batch.shape[0])
        return original(self, X_batch, *args)

    monkeypatch.setattr(_compiled.NumbaStepKernel, "run", counted)
    return calls


def build(backend, head="softmax", *, optimizer="adam", hidden=16, dropout=0.0, l1=0.0, l2=0.0, depth=2, **options):
    """A small model on `backend`, initialised from seed 0 (or `seed`) so that two builds start from the same
    weights."""
    dtype = options.get("dtype")
    inputs, outputs = {"softmax": (2, 3), "sigmoid": (2, 1), "linear": (1, 1)}[head]
    nnx.seed(options.get("seed", 0))
    with nnx.backends.use(backend):
        model = nnx.Model()
        width = inputs
        for _ in range(depth - 1):
            model.add(nnx.Dense(width, hidden, l1, l2, l1, l2, weight_scale=0.1, dtype=dtype))
            model.add(nnx.ReLU())
            if dropout:
                model.add(nnx.Dropout(dropout))
            width = hidden
        model.add(nnx.Dense(width, outputs, weight_scale=0.1, dtype=dtype))
        activation, loss, accuracy = {
            "softmax": (nnx.Softmax, nnx.CategoricalCrossentropy, nnx.metrics.Categorical),
            "sigmoid": (nnx.Sigmoid, nnx.BinaryCrossentropy, lambda: nnx.metrics.Categorical(binary=True)),
            "linear": (nnx.Linear, nnx.MeanSquaredError, nnx.metrics.Regression),
        }[head]
        model.add(activation())
        model.set(loss=loss(), optimizer={**OPTIMIZERS, **DIVERGING}[optimizer](), accuracy=accuracy())
        model.finalize()
    return model


def data(head="softmax", *, one_hot=False, samples=30):
    nnx.seed(1)
    if head == "linear":
        return sine_data(samples=samples * 2)
    X, y = spiral_data(samples=samples, classes=3 if head == "softmax" else 2)
    if head == "sigmoid":
        return X, y.reshape(-1, 1)
    return X, np.eye(3, dtype=np.float32)[y] if one_hot else y


def train_both(head="softmax", *, one_hot=False, epochs=5, train=None, **options):
    """(compiled model, its metrics, reference model, its metrics) after the same training from the same seed."""
    X, y = data(head, one_hot=one_hot)
    results = []
    for backend in (FAST, REFERENCE):
        model = build(backend, head, **options)
        nnx.seed(2)
        results += [model, model.train(X, y, epochs=epochs, print_every=None, **(train or {}))]
    return results


def assert_same(compiled, compiled_metrics, reference, reference_metrics, rtol=1e-4):
    for name in ("accuracy", "data_loss", "reg_loss"):
        assert compiled_metrics[name] == pytest.approx(reference_metrics[name], rel=rtol, abs=rtol * 1e-2), name
    for ours, theirs in zip(compiled.get_parameters(), reference.get_parameters(), strict=True):
        for mine, expected in zip(ours, theirs, strict=True):
            assert mine.dtype == expected.dtype
            scale = float(np.max(np.abs(expected)))
            np.testing.assert_allclose(mine, expected, rtol=rtol, atol=rtol * scale)


# Same results as the generic step ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "one_hot"), [("softmax", False), ("softmax", True), ("sigmoid", False), ("linear", False)]
)
def test_every_head_matches_the_generic_step(head, one_hot, kernel_calls):
    assert_same(*train_both(head, one_hot=one_hot))
    assert len(kernel_calls) == 5


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_every_optimizer_matches_the_generic_step(optimizer, kernel_calls):
    compiled, *rest = train_both(optimizer=optimizer)
    assert_same(compiled, *rest)
    assert len(kernel_calls) == 5
    assert compiled.optimizer.iterations == 5
    if optimizer != "sgd":
        assert all(np.any(value != 0) for value in compiled.optimizer.layer_state(compiled.layers[0]).values())


def test_l1_and_l2_regularization_on_weights_and_biases(kernel_calls):
    compiled, metrics, reference, expected = train_both(optimizer="sgd", l1=1e-3, l2=5e-3)
    assert metrics["reg_loss"] > 0
    assert_same(compiled, metrics, reference, expected)


def test_dropout_draws_the_same_masks_from_the_global_rng(kernel_calls):
    assert_same(*train_both(dropout=0.2, depth=3))
    assert len(kernel_calls) == 5


def test_dropout_leaves_the_rng_where_the_generic_step_does():
    X, y = data()
    states = []
    for backend in (FAST, REFERENCE):
        model = build(backend, dropout=0.5)
        nnx.seed(5)
        model.train(X, y, epochs=3, print_every=None)
        states.append(np.random.random())
    assert states[0] == states[1]


def test_three_dense_layers(kernel_calls):
    assert_same(*train_both(depth=3, optimizer="sgd-momentum-decay"))


def test_batches_accumulate_the_epoch_metrics_and_print_the_same_lines(capsys, kernel_calls):
    X, y = data()
    outputs, results = [], []
    for backend in (FAST, REFERENCE):
        model = build(backend)
        nnx.seed(2)
        results += [model, model.train(X, y, epochs=2, batch_size=32, print_every=1)]
        outputs.append(capsys.readouterr().out)
    assert kernel_calls == [32, 32, 26] * 2
    assert outputs[0] == outputs[1]
    assert_same(*results)


def test_float64_matches_tightly():
    compiled, metrics, reference, expected = train_both(dtype="float64", l2=1e-3)
    assert compiled.layers[0].weights.dtype == np.float64
    assert_same(compiled, metrics, reference, expected, rtol=1e-9)


def test_parallel_chunks_match(monkeypatch, kernel_calls):
    if numba.get_num_threads() < 2:
        pytest.skip("one thread: the parallel kernel is never used")
    monkeypatch.setattr(_compiled, "PARALLEL_MIN_ROWS", 2)
    monkeypatch.setattr(_compiled, "MIN_CHUNK_ROWS", 8)
    assert_same(*train_both(optimizer="rmsprop", l1=1e-4))


def test_the_divergence_check_reads_the_kernels_own_probe(monkeypatch, kernel_calls):
    reductions = []
    original = divergence._finite_probe

    def counted(loss, layers):
        reductions.append(loss)
        return original(loss, layers)

    monkeypatch.setattr(divergence, "_finite_probe", counted)
    X, y = data("softmax")
    build(FAST, optimizer="sgd").train(X, y, epochs=5, print_every=None, check_every=1)
    assert len(kernel_calls) == 5
    assert reductions == [None]  # the check before training; the five checks after a step read the kernel's probe


def test_divergence_stops_with_the_same_finite_parameters(kernel_calls):
    compiled, metrics, reference, expected = train_both(
        optimizer="diverging", epochs=20, train={"on_divergence": "stop", "check_every": 1}
    )
    assert metrics["diverged"] and expected["diverged"]
    assert (metrics["epoch"], metrics["step"]) == (expected["epoch"], expected["step"])
    assert metrics["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert kernel_calls
    for ours, theirs in zip(compiled.get_parameters(), reference.get_parameters(), strict=True):
        for mine, expected_values in zip(ours, theirs, strict=True):
            assert np.isfinite(mine).all()
            np.testing.assert_allclose(mine, expected_values, rtol=1e-4)


def test_replaced_parameters_are_read_on_every_step(kernel_calls):
    X, y = data()
    model = build(FAST, optimizer="adam")
    model.train(X, y, epochs=2, print_every=None)
    model.set_parameters(build(FAST).get_parameters())
    model.optimizer.state = {}
    model.optimizer.iterations = 0
    first = model.train(X, y, epochs=2, print_every=None)
    fresh = build(FAST, optimizer="adam")
    again = fresh.train(X, y, epochs=2, print_every=None)
    assert first == again


# Falling back to the generic step --------------------------------------------------------------------------------


class MyDense(nnx.Dense):
    pass


def _prepared(model, X, y):
    return checked_data(model, X, y, "training")


def compile_step(model, X, y):
    """The planned step `Model.train` would run on (X, y), or None when it runs the generic step."""
    step = training_step(model, X, y)
    return step if isinstance(step, PlannedStep) else None


def test_the_covered_model_compiles():
    model = build(FAST)
    assert compile_step(model, *_prepared(model, *data())) is not None


def _finalized(*layers, loss, optimizer=nnx.SGD, accuracy=nnx.metrics.Categorical):
    model = nnx.Model()
    for layer in layers:
        model.add(layer)
    model.set(loss=loss(), optimizer=optimizer(), accuracy=accuracy())
    model.finalize()
    return model


def test_sigmoid_with_categorical_crossentropy_falls_back():
    model = _finalized(nnx.Dense(2, 3), nnx.Sigmoid(), loss=nnx.CategoricalCrossentropy)
    assert compile_step(model, *_prepared(model, *data())) is None


def test_a_user_subclass_falls_back():
    model = _finalized(MyDense(2, 3), nnx.Softmax(), loss=nnx.CategoricalCrossentropy)
    assert compile_step(model, *_prepared(model, *data())) is None


def test_a_wide_layer_falls_back():
    layers = (nnx.Dense(784, 128), nnx.ReLU(), nnx.Dense(128, 10), nnx.Softmax())
    model = _finalized(*layers, loss=nnx.CategoricalCrossentropy, optimizer=nnx.Adam)
    X = np.zeros((4, 784), dtype=np.float32)
    assert compile_step(model, *_prepared(model, X, np.arange(4))) is None


def test_mean_absolute_error_falls_back():
    model = _finalized(
        nnx.Dense(1, 1), nnx.Linear(), loss=nnx.MeanAbsoluteError, optimizer=nnx.Adam, accuracy=nnx.metrics.Regression
    )
    X, y = data("linear")
    model.accuracy.init(y)
    assert compile_step(model, *_prepared(model, X, y)) is None


def test_compile_false_turns_it_off(kernel_calls):
    FAST.compile = False
    model = build(FAST)
    X, y = data()
    model.train(X, y, epochs=1, print_every=None)
    assert compile_step(model, *_prepared(model, X, y)) is None
    assert "compile = False" in FAST.why_no_step_kernel(plan_step(model).program)
    assert kernel_calls == []


def test_the_environment_variable_turns_it_off(monkeypatch):
    monkeypatch.setenv(numpy_backend.COMPILE_ENV_VAR, "0")
    backend = numpy_backend.load()
    assert backend.compile is False
    model = build(FAST)
    assert backend.why_no_step_kernel(plan_step(model).program) is not None


# Rows in tiles: several full tiles and a partial one, in one chunk and in several --------------------------------


def train_both_on(X, y, head="softmax", *, epochs=3, train=None, **options):
    results = []
    for backend in (FAST, REFERENCE):
        model = build(backend, head, **options)
        nnx.seed(2)
        results += [model, model.train(X, y, epochs=epochs, print_every=None, **(train or {}))]
    return results


@pytest.mark.parametrize("head", ["softmax", "sigmoid", "linear"])
@pytest.mark.parametrize("parallel", [False, True])
def test_several_tiles_with_a_partial_one(head, parallel, monkeypatch, kernel_calls):
    if parallel:
        if numba.get_num_threads() < 2:
            pytest.skip("one thread: the parallel kernel is never used")
        monkeypatch.setattr(_compiled, "PARALLEL_MIN_ROWS", 2)
        monkeypatch.setattr(_compiled, "MIN_CHUNK_ROWS", 8)
    else:
        monkeypatch.setattr(_compiled, "PARALLEL_MIN_ROWS", 10**9)
    X, y = data(head)
    tile = min(numba_columns.MAX_TILE, numba_columns.TILE_ELEMENTS // 16)  # the widest stage has 16 features
    repeats = 1 + 3 * tile // X.shape[0]  # more than three tiles, and rarely a whole number of them
    X, y = np.concatenate([X] * repeats)[:-7], np.concatenate([y] * repeats)[:-7]
    assert X.shape[0] % tile
    compiled, metrics, reference, expected = train_both_on(X, y, head, dropout=0.3, depth=3, optimizer="sgd")
    assert_same(compiled, metrics, reference, expected)
    assert kernel_calls and all(rows == X.shape[0] for rows in kernel_calls)


# explain_step, and a plan that sees and affects the live parameters --------------------------------------------


def test_explain_step_names_the_path_and_the_reason():
    assert build(FAST).explain_step().startswith("compiled step: backend 'numpy'")
    assert "has no compiled step kernel" in build(REFERENCE).explain_step()
    FAST.compile = False
    assert "compile = False" in build(FAST).explain_step()
    FAST.compile = True
    subclass = _finalized(MyDense(2, 3), nnx.Softmax(), loss=nnx.CategoricalCrossentropy)
    assert "MyDense(2 -> 3) at layer 0 has no kernel_spec()" in subclass.explain_step()
    mismatched = _finalized(nnx.Dense(2, 3), nnx.Sigmoid(), loss=nnx.CategoricalCrossentropy)
    assert "no kernel computes the head sigmoid + categorical_crossentropy + categorical" in mismatched.explain_step()
    wide = _finalized(
        nnx.Dense(784, 128), nnx.ReLU(), nnx.Dense(128, 10), nnx.Softmax(), loss=nnx.CategoricalCrossentropy
    )
    assert "more than 65536" in wide.explain_step()


class ReplaceAndRead(nnx.callbacks.Callback):
    """At epoch 2, puts in other parameters and a fresh optimizer state; every epoch, keeps a copy of the weights."""

    def __init__(self, parameters):
        self.parameters = parameters
        self.seen = []

    def on_epoch_end(self, run):
        model = run.model
        self.seen.append(np.array(model.trainable_layers[-1].weights))
        if run.epoch == 2:
            model.set_parameters(self.parameters)
            model.optimizer.load_state_dict({"iterations": 0, "current_learning_rate": 0.01, "slots": {}})


def test_the_plan_sees_and_affects_the_live_parameters(kernel_calls):
    X, y = data()
    replacement = build(REFERENCE, optimizer="adam").get_parameters()
    results, seen = [], []
    for backend in (FAST, REFERENCE):
        model = build(backend, optimizer="adam")
        callback = ReplaceAndRead([(np.array(w) * 2, np.array(b)) for w, b in replacement])
        results += [model, model.train(X, y, epochs=5, print_every=None, callbacks=[callback])]
        seen.append(callback.seen)
    assert len(kernel_calls) == 5
    assert_same(*results)
    for mine, theirs in zip(*seen, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-6)
    compiled = results[0]
    for layer in compiled.trainable_layers:  # standalone arrays again, not views of the step's buffers
        assert layer.weights.base is None and layer.weights.flags.c_contiguous
        assert all(value.base is None for value in compiled.optimizer.state[layer].values())


# How a batch splits across the threads ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("models", "rows", "threads", "expected"),
    [
        (1, 300, 2, (False, 1)),  # the book's spiral: one thread (waking another costs more than it saves)
        (1, 30_000, 2, (True, 2)),  # one model, many rows: its rows split across both threads
        (1, 30_000, 1, (False, 1)),
        (64, 300, 2, (True, 1)),  # many models: the models split across the threads
        (3, 30_000, 2, (True, 2)),  # fewer models than threads would leave one idle: 6 pieces, 3 per thread
        (3, 30_000, 4, (True, 4)),
        (1, 600, 8, (True, 2)),  # no run of rows shorter than MIN_CHUNK_ROWS
    ],
)
def test_work_split(models, rows, threads, expected):
    assert _compiled.work_split(models, rows, threads) == expected


def test_a_stack_of_fewer_models_than_threads_splits_rows_and_matches_solo_runs(monkeypatch):
    if numba.get_num_threads() < 2:
        pytest.skip("one thread: rows are never split")
    monkeypatch.setattr(_compiled, "PARALLEL_MIN_ROWS", 2)
    monkeypatch.setattr(_compiled, "MIN_CHUNK_ROWS", 8)
    X, y = data("softmax", samples=40)
    stacked = [build(FAST, dtype="float64", optimizer="adam", l2=1e-3, seed=seed) for seed in (0, 1, 2)]
    nnx.train_many(stacked, X, y, epochs=4, print_every=None)
    for seed, model in enumerate(stacked):
        solo = build(FAST, dtype="float64", optimizer="adam", l2=1e-3, seed=seed)
        monkeypatch.setattr(_compiled, "PARALLEL_MIN_ROWS", 10**9)  # one piece: the rows in one run
        solo.train(X, y, epochs=4, print_every=None)
        for (weights, biases), (solo_weights, solo_biases) in zip(
            model.get_parameters(), solo.get_parameters(), strict=True
        ):
            np.testing.assert_allclose(weights, solo_weights, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(biases, solo_biases, rtol=1e-9, atol=1e-12)
