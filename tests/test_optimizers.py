"""Each optimizer's updates against the book's formulas, written out again here with NumPy, over several
decaying steps; its state's shapes, lazy creation and backend."""

from __future__ import annotations

import re

import numpy as np
import pytest

import nnx
from tests.conftest import widest_float


def reference_steps(name: str, settings: dict, w: np.ndarray, gradients: list[np.ndarray]) -> np.ndarray:
    """The book's update rules, step by step, in float64."""
    lr0, decay = settings["learning_rate"], settings.get("decay", 0.0)
    eps = settings.get("epsilon", 1e-7)
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(gradients):
        lr = lr0 * (1.0 / (1.0 + decay * t)) if decay else lr0
        if name == "sgd":
            mu = settings.get("momentum", 0.0)
            m = mu * m - lr * g
            w = w + (m if mu else -lr * g)
        elif name == "adagrad":
            v = v + g**2
            w = w - lr * g / (np.sqrt(v) + eps)
        elif name == "rmsprop":
            rho = settings["rho"]
            v = rho * v + (1 - rho) * g**2
            w = w - lr * g / (np.sqrt(v) + eps)
        elif name == "adam":
            b1, b2 = settings["beta_1"], settings["beta_2"]
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g**2
            w = w - lr * (m / (1 - b1 ** (t + 1))) / (np.sqrt(v / (1 - b2 ** (t + 1))) + eps)
    return w


CASES = [
    ("sgd", nnx.SGD, {"learning_rate": 0.5, "decay": 0.1}),
    ("sgd", nnx.SGD, {"learning_rate": 0.5, "decay": 0.1, "momentum": 0.9}),
    ("adagrad", nnx.Adagrad, {"learning_rate": 0.3, "decay": 1e-2, "epsilon": 1e-7}),
    ("rmsprop", nnx.RMSprop, {"learning_rate": 0.02, "decay": 1e-3, "epsilon": 1e-7, "rho": 0.95}),
    ("adam", nnx.Adam, {"learning_rate": 0.05, "decay": 5e-3, "epsilon": 1e-7, "beta_1": 0.85, "beta_2": 0.99}),
]


@pytest.mark.parametrize("name, cls, settings", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_updates_follow_the_book(backend, host_rng, name, cls, settings):
    dtype = widest_float(backend)  # float32 on JAX without x64: the same steps within its rounding
    layer = nnx.Dense(3, 2, xp=backend, dtype=dtype, rng=host_rng)
    start_w, start_b = backend.to_numpy(layer.weights), backend.to_numpy(layer.biases)
    grads_w = [host_rng.normal(size=(3, 2)) for _ in range(5)]
    grads_b = [host_rng.normal(size=(1, 2)) for _ in range(5)]
    optimizer = cls(xp=backend, **settings)
    for gw, gb in zip(grads_w, grads_b, strict=True):
        layer.dweights, layer.dbiases = backend.asarray(gw, dtype=dtype), backend.asarray(gb, dtype=dtype)
        optimizer.pre_update_params()
        optimizer.update_params(layer)
        optimizer.post_update_params()
    rtol = 1e-7 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(backend.to_numpy(layer.weights), reference_steps(name, settings, start_w, grads_w), rtol)
    np.testing.assert_allclose(backend.to_numpy(layer.biases), reference_steps(name, settings, start_b, grads_b), rtol)
    assert optimizer.iterations == 5
    assert optimizer.current_learning_rate == settings["learning_rate"] * (1.0 / (1.0 + settings["decay"] * 4))


def test_book_defaults():
    assert (nnx.SGD().learning_rate, nnx.SGD().decay, nnx.SGD().momentum) == (1.0, 0.0, 0.0)
    assert (nnx.Adagrad().learning_rate, nnx.Adagrad().epsilon) == (1.0, 1e-7)
    rms = nnx.RMSprop()
    assert (rms.learning_rate, rms.decay, rms.epsilon, rms.rho) == (0.001, 0.0, 1e-7, 0.9)
    adam = nnx.Adam()
    assert (adam.learning_rate, adam.decay, adam.epsilon, adam.beta_1, adam.beta_2) == (0.001, 0.0, 1e-7, 0.9, 0.999)


@pytest.mark.parametrize(
    "cls, names",
    [
        (nnx.Adam, {"weight_momentums", "weight_cache", "bias_momentums", "bias_cache"}),
        (nnx.RMSprop, {"weight_cache", "bias_cache"}),
        (nnx.Adagrad, {"weight_cache", "bias_cache"}),
    ],
)
def test_state_is_lazy_and_on_the_backend(backend, cls, names):
    layer = nnx.Dense(4, 3, xp=backend)
    layer.dweights = backend.asarray(np.ones((4, 3)), dtype="float32")
    layer.dbiases = backend.asarray(np.ones((1, 3)), dtype="float32")
    optimizer = cls(xp=backend)
    assert optimizer.state == {}
    optimizer.update_params(layer)
    state = optimizer.state[layer]
    assert set(state) == names
    for key, value in state.items():
        assert backend.owns(value)
        assert tuple(value.shape) == ((4, 3) if key.startswith("weight") else (1, 3))
        assert value.dtype == backend.xp.float32


def test_sgd_without_momentum_keeps_no_state():
    layer = nnx.Dense(2, 2)
    layer.dweights, layer.dbiases = np.ones((2, 2), np.float32), np.ones((1, 2), np.float32)
    optimizer = nnx.SGD()
    optimizer.update_params(layer)
    assert optimizer.state[layer] == {}


def test_bad_hyperparameters_are_rejected():
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0"):
        nnx.Adam(learning_rate=-1)
    with pytest.raises(TypeError, match="decay must be a real number >= 0"):
        nnx.SGD(decay="fast")


def test_optimizer_and_layer_on_different_backends_is_a_type_error():
    if "array_api_strict" not in nnx.backends.available():
        pytest.skip("array_api_strict is not installed")
    layer = nnx.Dense(2, 2, xp="array_api_strict")
    with pytest.raises(TypeError, match=r"model\.to\(\)"):
        nnx.Adam(xp="numpy").update_params(layer)


# The one way in and out of optimizer state: state_dict() / load_state_dict() -----------------------------------


def trained_adam(backend, steps: int = 3):
    """Two Dense layers and an Adam that has updated them `steps` times (with decay)."""
    layers = [nnx.Dense(4, 3, xp=backend), nnx.Dense(3, 2, xp=backend)]
    optimizer = nnx.Adam(learning_rate=0.1, decay=0.1, xp=backend)
    optimizer.remember_layers(layers)
    for layer in layers:
        layer.dweights = backend.asarray(np.full((layer.n_inputs, layer.n_neurons), 0.5), dtype="float32")
        layer.dbiases = backend.asarray(np.full((1, layer.n_neurons), 0.25), dtype="float32")
    for _ in range(steps):
        optimizer.pre_update_params()
        for layer in layers:
            optimizer.update_params(layer)
        optimizer.post_update_params()
    return layers, optimizer


def test_state_dict_holds_progress_and_slots_by_position(backend):
    layers, optimizer = trained_adam(backend)
    state = optimizer.state_dict()
    assert state["iterations"] == 3
    assert state["current_learning_rate"] == pytest.approx(0.1 / (1 + 0.1 * 2))
    assert sorted(state["slots"]) == [0, 1]
    assert set(state["slots"][1]) == {"weight_momentums", "weight_cache", "bias_momentums", "bias_cache"}
    assert state["slots"][1]["weight_cache"] is optimizer.state[layers[1]]["weight_cache"]  # the arrays themselves
    assert sorted(optimizer.state_dict(layers[::-1])["slots"]) == [0, 1]


def test_load_state_dict_copies_into_another_optimizer(backend):
    layers, optimizer = trained_adam(backend)
    fresh = nnx.Adam(learning_rate=0.1, decay=0.1, xp=backend)
    fresh.remember_layers(layers)
    version = fresh.state_version
    fresh.load_state_dict(optimizer.state_dict())
    assert fresh.state_version != version
    assert (fresh.iterations, fresh.current_learning_rate) == (optimizer.iterations, optimizer.current_learning_rate)
    for layer in layers:
        for name, value in optimizer.state[layer].items():
            copied = fresh.state[layer][name]
            assert copied is not value
            np.testing.assert_array_equal(backend.to_numpy(copied), backend.to_numpy(value))


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda s: [1, 2], TypeError, "expected a dict with 'iterations'"),
        (lambda s: {**s, "iterations": -1}, ValueError, "'iterations' must be a count >= 0"),
        (
            lambda s: {**s, "current_learning_rate": float("nan")},
            ValueError,
            "'current_learning_rate' must be a finite number > 0",
        ),
        (lambda s: {**s, "slots": {5: s["slots"][0]}}, ValueError, "layer position 5, but there are 2 layers"),
        (lambda s: {**s, "slots": {0: {"weight_cache": s["slots"][0]["weight_cache"]}}}, ValueError, "expected the"),
        (lambda s: {**s, "slots": {0: s["slots"][1]}}, ValueError, "must be float32 \\(4, 3\\)"),
    ],
)
def test_load_state_dict_refuses_bad_state_and_changes_nothing(backend, change, error, message):
    layers, optimizer = trained_adam(backend)
    good = optimizer.state_dict()
    before = {name: backend.to_numpy(value) for name, value in optimizer.state[layers[0]].items()}
    with pytest.raises(error, match=message):
        optimizer.load_state_dict(change(good))
    assert optimizer.iterations == 3 and optimizer.state_dict()["slots"].keys() == {0, 1}
    for name, value in optimizer.state[layers[0]].items():
        np.testing.assert_array_equal(backend.to_numpy(value), before[name])


def test_load_state_dict_refuses_an_array_of_another_backend():
    if "array_api_strict" not in nnx.backends.available():
        pytest.skip("array_api_strict is not installed")
    _, optimizer = trained_adam(nnx.backends.get("numpy"))
    state = optimizer.state_dict()
    strict = nnx.backends.get("array_api_strict")
    foreign = {name: strict.asarray(value) for name, value in state["slots"][0].items()}
    with pytest.raises(TypeError, match="must be an array of backend 'numpy'"):
        optimizer.load_state_dict({**state, "slots": {0: foreign}})


@pytest.mark.parametrize(
    "make, fix",
    [
        (lambda: nnx.SGD(learning_rate=0), "pass a finite value > 0 such as learning_rate=0.01"),
        (lambda: nnx.Adam(beta_2=1.0), "pass a value such as beta_2=0.999"),
    ],
)
def test_hyperparameter_errors_suggest_a_value_that_fixes_them(make, fix):
    with pytest.raises(ValueError, match=re.escape(fix)):
        make()
