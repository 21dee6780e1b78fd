"""Saving and loading (nnx.io): round trips across backends, parameters into a model, bare layer lists, resuming
training bit for bit, atomic writes, and every kind of broken file as a CheckpointError."""

from __future__ import annotations

import ast
import functools
import inspect
import json
import os
import sys

import numpy as np
import pytest
import safetensors.numpy

import nnx
from nnx import io
from nnx._component import Component
from nnx.errors import CheckpointError
from nnx.io import format as file_format
from nnx.io import mapping
from tests.conftest import BACKEND_PARAMS, backend_or_skip, widest_float
from tests.helpers import spiral_classifier

OPTIMIZERS = {
    "sgd": functools.partial(nnx.SGD, learning_rate=0.5, decay=1e-3, momentum=0.9),
    "plain_sgd": functools.partial(nnx.SGD, learning_rate=0.5),
    "adam": functools.partial(nnx.Adam, learning_rate=0.02, decay=1e-4),
}
classifier = functools.partial(spiral_classifier, hidden=8, dropout=0.1, l2=5e-4, optimizer=OPTIMIZERS["adam"])


@pytest.fixture(params=BACKEND_PARAMS)
def target(request) -> nnx.backends.Backend:
    """A second backend, to load what `backend` saved."""
    return backend_or_skip(request.param)


def regressor(backend) -> nnx.Model:
    model = nnx.Model(xp=backend)
    model.add(nnx.Dense(1, 8, weight_scale=0.1, xp=backend))
    model.add(nnx.ReLU(xp=backend))
    model.add(nnx.Dense(8, 1, weight_scale=0.1, xp=backend))
    model.add(nnx.Linear(xp=backend))
    model.set(
        loss=nnx.MeanSquaredError(xp=backend),
        optimizer=nnx.Adam(learning_rate=0.005, decay=1e-3, xp=backend),
        accuracy=nnx.metrics.Regression(xp=backend),
    )
    model.finalize()
    return model


def spiral():
    nnx.seed(0)
    return nnx.datasets.spiral_data(samples=50, classes=3)


def trained(backend, kind: str = "adam") -> tuple[nnx.Model, np.ndarray]:
    """A model of `kind` ('sgd', 'plain_sgd', 'adam' or 'regression') trained for 3 epochs, and its inputs."""
    if kind == "regression":
        nnx.seed(0)
        X, y = nnx.datasets.sine_data(samples=100)
        model = regressor(backend)
    else:
        X, y = spiral()
        model = classifier(backend, optimizer=OPTIMIZERS[kind])
    model.train(X, y, epochs=3, print_every=None)
    return model, X


def host(model, value):
    return None if value is None else model.backend.to_numpy(value)


def snapshot(model) -> dict:
    """Everything a file restores, as host arrays and numbers keyed by layer position."""
    layers = {id(layer): index for index, layer in enumerate(model.layers)}
    result = {f"layers.{i}.{name}": host(model, getattr(layer, name)) for i, layer in _dense(model) for name in WB}
    optimizer = model.optimizer
    for layer, arrays in optimizer.state.items():
        result.update({f"optimizer.{layers[id(layer)]}.{name}": host(model, v) for name, v in arrays.items()})
    result["state_layers"] = sorted(layers[id(layer)] for layer in optimizer.state)
    result["iterations"] = optimizer.iterations
    result["lr"] = optimizer.current_learning_rate
    result["precision"] = host(model, getattr(model.accuracy, "precision", None))
    return result


WB = ("weights", "biases")


def _dense(model):
    return [(i, layer) for i, layer in enumerate(model.layers) if hasattr(layer, "weights")]


def assert_identical(expected: dict, actual: dict) -> None:
    assert expected.keys() == actual.keys()
    for key, value in expected.items():
        other = actual[key]
        if isinstance(value, np.ndarray):
            assert value.dtype == other.dtype and value.shape == other.shape, key
            assert value.tobytes() == other.tobytes(), key
        else:
            assert value == other, key


def predictions(model, X) -> np.ndarray:
    return model.backend.to_numpy(model.predict(X))


# Round trips --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sgd", "plain_sgd", "adam", "regression"])
def test_save_model_load_model_bit_identical_across_backends(backend, target, kind, tmp_path):
    model, X = trained(backend, kind)
    path = tmp_path / "model.nnx"
    io.save_model(model, path)
    loaded = io.load_model(path, xp=target)
    assert loaded.backend is target and loaded.finalized
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert type(loaded.loss) is type(model.loss) and type(loaded.accuracy) is type(model.accuracy)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert_identical(snapshot(model), snapshot(loaded))
    if kind == "regression":
        assert snapshot(loaded)["precision"].shape == ()
    if target is backend:
        np.testing.assert_array_equal(predictions(loaded, X), predictions(model, X))
    else:
        np.testing.assert_allclose(predictions(loaded, X), predictions(model, X), rtol=1e-5, atol=1e-6)


def test_loaded_model_trains_on_like_the_original(backend, tmp_path):
    model, _ = trained(backend, "adam")
    io.save_model(model, tmp_path / "m.nnx")
    loaded = io.load_model(tmp_path / "m.nnx", xp=backend)
    X, y = nnx.datasets.spiral_data(samples=50, classes=3)
    for each in (model, loaded):
        nnx.seed(1)
        each.train(X, y, epochs=2, print_every=None)
    assert_identical(snapshot(model), snapshot(loaded))


def test_record_describes_the_model(numpy_backend, tmp_path):
    model, _ = trained(numpy_backend, "sgd")
    io.save_model(model, tmp_path / "m.nnx")
    record = read_record(tmp_path / "m.nnx")
    assert record["format"] == "nnx" and record["format_version"] == 1 and record["nnx_version"] == nnx.__version__
    assert [entry["kind"] for entry in record["layers"]] == ["Dense", "ReLU", "Dropout", "Dense", "Softmax"]
    assert record["layers"][2]["config"] == {"rate": pytest.approx(0.1)}
    assert record["layers"][0]["config"]["dtype"] == "float32" and record["dtype"] == "float32"
    assert record["optimizer"]["kind"] == "SGD" and record["optimizer"]["iterations"] == 3
    assert record["optimizer"]["config"] == {"learning_rate": 0.5, "decay": 1e-3, "momentum": 0.9}
    assert record["loss"] == {"kind": "CategoricalCrossentropy", "config": {}}
    assert record["training"] is None and record["rng"] is None and len(record["checksum"]) == 64


def test_untrained_model_saves_without_optimizer_state(backend, tmp_path):
    model = classifier(backend)
    io.save_model(model, tmp_path / "m.nnx")
    loaded = io.load_model(tmp_path / "m.nnx", xp=backend)
    assert loaded.optimizer.state == {} and loaded.optimizer.iterations == 0
    assert_identical(snapshot(model), snapshot(loaded))


def test_save_model_finalizes_and_refuses_an_empty_model(numpy_backend, tmp_path):
    model = nnx.Model(xp=numpy_backend)
    with pytest.raises(ValueError, match="no layers"):
        io.save_model(model, tmp_path / "m.nnx")
    assert not (tmp_path / "m.nnx").exists()
    model.add(nnx.Dense(2, 3, xp=numpy_backend))
    model.add(nnx.Softmax(xp=numpy_backend))
    io.save_model(model, tmp_path / "m.nnx")
    assert model.finalized
    assert io.load_model(tmp_path / "m.nnx").optimizer is None


def test_load_model_leaves_numpys_rng_alone(numpy_backend, tmp_path):
    model, _ = trained(numpy_backend)
    io.save_model(model, tmp_path / "m.nnx")
    np.random.seed(5)
    expected = np.random.random(3)
    np.random.seed(5)
    io.load_model(tmp_path / "m.nnx")
    np.testing.assert_array_equal(np.random.random(3), expected)


def test_training_record_must_be_json(numpy_backend, tmp_path):
    model, _ = trained(numpy_backend)
    with pytest.raises(TypeError, match="may hold only numbers, strings"):
        io.save_model(model, tmp_path / "m.nnx", training={"epoch": object()})
    assert not os.listdir(tmp_path)


# Parameters only ------------------------------------------------------------------------------------------------------


def test_save_parameters_load_parameters(backend, tmp_path):
    model, X = trained(backend)
    io.save_parameters(model, tmp_path / "p.nnx")
    record = read_record(tmp_path / "p.nnx")
    assert record["content"] == "parameters" and record["optimizer"] is None
    assert record["layers"][0] == {"kind": "Dense", "shapes": {"weights": [2, 8], "biases": [1, 8]}}
    assert record["layers"][1] == {"kind": "ReLU"}
    nnx.seed(123)
    other = classifier(backend)
    io.load_parameters(other, tmp_path / "p.nnx")
    for (_, mine), (_, theirs) in zip(_dense(model), _dense(other), strict=True):
        for name in WB:
            assert host(model, getattr(mine, name)).tobytes() == host(other, getattr(theirs, name)).tobytes()
    np.testing.assert_array_equal(predictions(other, X), predictions(model, X))
    with pytest.raises(CheckpointError, match="load_parameters"):
        io.load_model(tmp_path / "p.nnx")


def test_load_parameters_into_another_architecture_lists_every_mismatch(backend, tmp_path):
    model, _ = trained(backend)
    io.save_parameters(model, tmp_path / "p.nnx")
    other = nnx.Model(xp=backend)
    for layer in (nnx.Dense(2, 16, xp=backend), nnx.ReLU(xp=backend), nnx.ReLU(xp=backend)):
        other.add(layer)
    other.add(nnx.Dense(16, 3, xp=backend))
    other.add(nnx.Dense(3, 3, xp=backend))
    other.add(nnx.Softmax(xp=backend))
    other.finalize()
    before = [host(other, getattr(layer, name)) for _, layer in _dense(other) for name in WB]
    with pytest.raises(ValueError) as raised:
        io.load_parameters(other, tmp_path / "p.nnx")
    message = str(raised.value)
    assert (
        "layer 0 Dense(2 -> 16): expected Dense weights (2, 16), biases (1, 16), found Dense weights (2, 8)" in message
    )
    assert "layer 3 Dense(16 -> 3)" in message and "(16, 3)" in message and "(8, 3)" in message
    assert "layer 4 Dense(3 -> 3): expected weights (3, 3), biases (1, 3); the file has no parameters there" in message
    after = [host(other, getattr(layer, name)) for _, layer in _dense(other) for name in WB]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(before, after, strict=True))


def test_load_parameters_into_a_smaller_model_names_the_extra_layers(numpy_backend, tmp_path):
    model, _ = trained(numpy_backend)
    io.save_parameters(model, tmp_path / "p.nnx")
    small = nnx.Model(xp=numpy_backend)
    small.add(nnx.Dense(2, 8, xp=numpy_backend))
    small.add(nnx.Softmax(xp=numpy_backend))
    weights = small.layers[0].weights.copy()
    with pytest.raises(ValueError, match=r"layer 3: the file has Dense parameters weights \(8, 3\), biases \(1, 3\); "):
        io.load_parameters(small, tmp_path / "p.nnx")
    np.testing.assert_array_equal(small.layers[0].weights, weights)


# Bare layer lists -----------------------------------------------------------------------------------------------------


def test_save_and_load_a_bare_list_of_layers(backend, target, tmp_path):
    nnx.seed(0)
    layers = [nnx.Dense(2, 4, weight_regularizer_l1=1e-3, xp=backend), nnx.ReLU(xp=backend)]
    wide = widest_float(backend, target)  # a second float dtype where both backends have one
    layers += [nnx.Dropout(0.2, xp=backend), nnx.Dense(4, 3, dtype=wide, xp=backend), nnx.Softmax(xp=backend)]
    io.save(layers, tmp_path / "layers.nnx")
    loaded = io.load(tmp_path / "layers.nnx", xp=target)
    assert [type(layer) for layer in loaded] == [type(layer) for layer in layers]
    assert [layer.saved_config() for layer in loaded] == [layer.saved_config() for layer in layers]
    assert loaded[0].weight_regularizer_l1 == 1e-3 and loaded[2].get_config() == {"rate": pytest.approx(0.2)}
    for mine, theirs in ((layers[0], loaded[0]), (layers[3], loaded[3])):
        for name in WB:
            expected, got = mine.backend.to_numpy(getattr(mine, name)), target.to_numpy(getattr(theirs, name))
            assert expected.dtype == got.dtype and expected.tobytes() == got.tobytes()
    assert all(layer.backend is target for layer in loaded)
    X, _ = spiral()
    output = target.asarray(X)
    for layer in loaded:
        layer.forward(output, training=False)
        output = layer.output
    assert target.to_numpy(output).shape == (150, 3)
    with pytest.raises(CheckpointError, match=r"nnx\.io\.load\(path\)"):
        io.restore_training(classifier(backend), tmp_path / "layers.nnx")


class Table(Component):
    """A made-up component with an empty array and a 0-d one, to save through the generic path."""

    ARRAYS = ("table", "scale")
    CONFIG = ("columns",)

    def __init__(self, columns: int = 3, *, xp=None):
        super().__init__(xp)
        self.columns = columns
        self.table = self.backend.zeros((0, columns), self.xp.float32)
        self.scale = self.backend.asarray(0.5, dtype=widest_float(self.backend))


def test_empty_and_0d_arrays_round_trip(backend, tmp_path):
    layer = Table(4, xp=backend)
    layer.scale = backend.asarray(2.25, dtype=widest_float(backend))
    io.save([layer], tmp_path / "t.nnx")
    (loaded,) = io.load(tmp_path / "t.nnx", xp=backend)
    assert isinstance(loaded, Table) and loaded.columns == 4
    assert tuple(loaded.table.shape) == (0, 4) and tuple(loaded.scale.shape) == ()
    assert backend.to_numpy(loaded.scale) == 2.25


# Resuming training ----------------------------------------------------------------------------------------------------


def test_restore_training_resumes_bit_for_bit(backend, tmp_path):
    X, y = spiral()
    model = classifier(backend, dropout=0.2)
    model.train(X, y, epochs=2, print_every=None)
    io.save_model(model, tmp_path / "ckpt.nnx", training={"epoch": 2, "history": [1.5, 1.25]})
    model.train(X, y, epochs=2, print_every=None)
    expected = snapshot(model)

    nnx.seed(99)  # another initialisation and another RNG position: the checkpoint must override both
    resumed = classifier(backend, dropout=0.2)
    np.random.random(17)
    training = io.restore_training(resumed, tmp_path / "ckpt.nnx")
    assert training == {"epoch": 2, "history": [1.5, 1.25]}
    resumed.train(X, y, epochs=2, print_every=None)
    assert_identical(expected, snapshot(resumed))


def test_restore_training_of_regression_precision(backend, tmp_path):
    model, _ = trained(backend, "regression")
    io.save_model(model, tmp_path / "r.nnx", training={"epoch": 3})
    other = regressor(backend)
    assert io.restore_training(other, tmp_path / "r.nnx") == {"epoch": 3}
    assert_identical(snapshot(model), snapshot(other))


def test_restore_training_without_training_record_changes_nothing(numpy_backend, tmp_path):
    model, _ = trained(numpy_backend)
    io.save_model(model, tmp_path / "m.nnx")
    fresh = classifier(numpy_backend)
    before = snapshot(fresh)
    with pytest.raises(nnx.CheckpointError, match="no training state"):
        io.restore_training(fresh, tmp_path / "m.nnx")
    after = snapshot(fresh)
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)


def test_restore_training_refuses_another_architecture_and_changes_nothing(numpy_backend, tmp_path):
    model, _ = trained(numpy_backend)
    io.save_model(model, tmp_path / "m.nnx", training={"epoch": 3})
    other = classifier(numpy_backend, optimizer=OPTIMIZERS["sgd"], hidden=16)
    before = snapshot(other)
    rng = np.random.get_state()[1].copy()
    with pytest.raises(ValueError) as raised:
        io.restore_training(other, tmp_path / "m.nnx")
    message = str(raised.value)
    assert "layer 0" in message and "layer 3" in message and "(2, 16)" in message and "(2, 8)" in message
    assert "optimizer: the model has SGD, the file holds Adam's state" in message
    assert_identical(before, snapshot(other))
    np.testing.assert_array_equal(np.random.get_state()[1], rng)


def test_checkpoint_saves_numpys_rng(numpy_backend, tmp_path):
    model, _ = trained(numpy_backend)
    np.random.seed(7)
    io.save_model(model, tmp_path / "m.nnx", training={"epoch": 3})
    expected = np.random.random(4)
    record = read_record(tmp_path / "m.nnx")
    assert set(record["rng"]["numpy"]) == {"pos", "has_gauss", "cached_gaussian"}
    assert record["rng"]["backend"] is None
    keys = safetensors.numpy.load_file(tmp_path / "m.nnx")["rng.numpy.keys"]
    assert keys.dtype == np.uint32 and keys.shape == (624,)
    io.restore_training(model, tmp_path / "m.nnx")
    np.testing.assert_array_equal(np.random.random(4), expected)


def test_host_backends_have_no_rng_state_of_their_own(backend):
    if backend.name == "cupy":
        state = backend.rng_state()
        backend.set_rng_state(state)
        assert backend.rng_state() == state
        return
    assert backend.rng_state() is None
    backend.set_rng_state(None)
    with pytest.raises(ValueError, match="no RNG"):
        backend.set_rng_state({"seed": 1})


# Atomic writes --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("victim", "error"), [("replace", OSError), ("fsync", KeyboardInterrupt)])
def test_interrupted_save_keeps_the_old_file(numpy_backend, tmp_path, monkeypatch, victim, error):
    model, _ = trained(numpy_backend)
    path = tmp_path / "m.nnx"
    io.save_model(model, path)
    old = path.read_bytes()
    model.train(*spiral(), epochs=1, print_every=None)

    def fail(*args, **kwargs):
        raise error("interrupted")

    monkeypatch.setattr(nnx._paths.os, victim, fail)
    with pytest.raises(error) as raised:
        io.save_model(model, path)
    if error is OSError:
        assert isinstance(raised.value, nnx.errors.SaveError)
        assert str(path) in str(raised.value) and "the previous file there is intact" in str(raised.value)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["m.nnx"]
    assert path.read_bytes() == old
    io.load_model(path)


def test_save_replaces_an_existing_file_and_keeps_its_mode(numpy_backend, tmp_path):
    model, _ = trained(numpy_backend)
    path = tmp_path / "m.nnx"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    io.save_model(model, path)
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["m.nnx"]
    io.load_model(path)


# Broken files ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def saved(numpy_backend, tmp_path):
    model, _ = trained(numpy_backend, "adam")
    path = tmp_path / "m.nnx"
    io.save_model(model, path, training={"epoch": 3})
    return path


def read_record(path) -> dict:
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    return json.loads(json.loads(raw[8 : 8 + size])["__metadata__"]["nnx"])


def rewrite(path, change) -> None:
    """Re-serialize `path` with its record changed by `change(record)`, keeping the old checksum."""
    tensors = safetensors.numpy.load_file(path)
    record = read_record(path)
    change(record)
    safetensors.numpy.save_file(tensors, path, metadata={"nnx": json.dumps(record)})


def test_truncated_anywhere_is_a_checkpoint_error(saved):
    raw = saved.read_bytes()
    size = len(raw)
    for offset in [*range(0, size, max(1, size // 200)), size - 1]:
        saved.write_bytes(raw[:offset])
        with pytest.raises(CheckpointError):
            io.load_model(saved)
        with pytest.raises(CheckpointError):
            io.load_parameters(classifier(nnx.backends.get("numpy")), saved)


def test_flipped_data_bytes_fail_the_checksum(saved):
    raw = saved.read_bytes()
    start = 8 + int.from_bytes(raw[:8], "little")
    for offset in range(start, len(raw), max(1, (len(raw) - start) // 50)):
        corrupted = bytearray(raw)
        corrupted[offset] ^= 0x01
        saved.write_bytes(bytes(corrupted))
        with pytest.raises(CheckpointError, match="checksum"):
            io.load_model(saved)


def test_edited_record_fails_the_checksum(saved):
    rewrite(saved, lambda record: record["optimizer"].update(iterations=1000))
    with pytest.raises(CheckpointError, match="checksum"):
        io.load_model(saved)


def test_stray_bytes_after_the_data(saved):
    saved.write_bytes(saved.read_bytes() + b"\0" * 16)
    with pytest.raises(CheckpointError, match="stray bytes"):
        io.load_model(saved)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "too short"),
        (b"\xff" * 8 + b"{}", "header length"),
        ((40).to_bytes(8, "little") + b"{}", "runs past the end"),
        ((4).to_bytes(8, "little") + b"{no}", "not JSON"),
        ((2).to_bytes(8, "little") + b"[]", "not a JSON object"),
        ((2).to_bytes(8, "little") + b"{}", "without nnx's metadata"),
    ],
)
def test_garbage_is_a_checkpoint_error(tmp_path, content, match):
    path = tmp_path / "garbage.nnx"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        io.load_model(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such file") as raised:
        io.load_model(tmp_path / "absent.nnx")
    assert raised.value.path == tmp_path / "absent.nnx"
    with pytest.raises(CheckpointError, match="cannot be read"):
        io.load_model(tmp_path)


def test_foreign_safetensors_file(tmp_path):
    path = tmp_path / "foreign.safetensors"
    safetensors.numpy.save_file({"weight": np.ones((2, 2), np.float32)}, path, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="without nnx's metadata"):
        io.load_model(path)
    safetensors.numpy.save_file({"weight": np.ones(2, np.float32)}, path, metadata={"nnx": json.dumps({"a": 1})})
    with pytest.raises(CheckpointError, match="not an nnx record"):
        io.load_model(path)


def test_newer_format_version_asks_for_an_upgrade(saved):
    rewrite(saved, lambda record: record.update(format_version=999, nnx_version="9.0"))
    with pytest.raises(CheckpointError, match=r"format version 999.*upgrade nnx"):
        io.load_model(saved)
    with pytest.raises(CheckpointError, match="upgrade"):
        io.restore_training(classifier(nnx.backends.get("numpy")), saved)


def test_unknown_kind_is_named_and_never_imported(numpy_backend, tmp_path):
    path = tmp_path / "evil.nnx"
    record = mapping._new_record("layers", [{"kind": "evil_module_for_nnx_test.Payload", "config": {}}], {})
    file_format.write(path, {}, record)
    with pytest.raises(CheckpointError, match=r"'evil_module_for_nnx_test\.Payload'.*import the module"):
        io.load(path)
    assert "evil_module_for_nnx_test" not in sys.modules


def test_a_loss_is_not_a_layer(tmp_path):
    path = tmp_path / "odd.nnx"
    file_format.write(path, {}, mapping._new_record("layers", [{"kind": "MeanSquaredError", "config": {}}], {}))
    with pytest.raises(CheckpointError, match="cannot serve as one"):
        io.load(path)


def test_tensors_that_do_not_fit_the_config(numpy_backend, tmp_path):
    path = tmp_path / "m.nnx"
    layer = nnx.Dense(2, 3, xp=numpy_backend)
    tensors, entries = mapping._layer_tensors([layer], configs=True)
    tensors["layers.0.weights"] = np.zeros((3, 2), np.float32)
    file_format.write(path, tensors, mapping._new_record("layers", entries, tensors))
    with pytest.raises(
        CheckpointError,
        match=r"declares weights of shape \(2, 3\), but the file has a tensor weights of shape \(3, 2\)",
    ):
        io.load(path)
    tensors["layers.0.weights"] = np.zeros((2, 3), np.float64)
    file_format.write(path, tensors, mapping._new_record("layers", entries, tensors))
    with pytest.raises(CheckpointError, match="float64"):
        io.load(path)
    del tensors["layers.0.weights"]
    file_format.write(path, tensors, mapping._new_record("layers", entries, tensors))
    with pytest.raises(CheckpointError, match=r"no tensor 'layers\.0\.weights'"):
        io.load(path)


def test_bad_config_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "m.nnx"
    file_format.write(path, {}, mapping._new_record("layers", [{"kind": "Dropout", "config": {"rate": 7}}], {}))
    with pytest.raises(CheckpointError, match="cannot be rebuilt"):
        io.load(path)


def test_no_pickle_no_code_loading_and_no_numpy_in_the_module():
    source = inspect.getsource(io)
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert not imported & {"pickle", "cloudpickle", "dill", "marshal", "shelve", "numpy", "importlib"}
    for call in ("allow_pickle", "eval(", "exec(", "__import__", "import_module", "torch"):
        assert call not in source


def test_layers_that_do_not_make_a_model(backend, tmp_path):
    io.save([Table(xp=backend)], tmp_path / "t.nnx")
    with pytest.raises(CheckpointError, match="do not make a model"):
        io.load_model(tmp_path / "t.nnx", xp=backend)


def test_parameters_in_any_memory_order_save_as_their_values(backend, tmp_path):
    """A transposed (column-major) parameter array is written as its values, not as its memory."""
    with nnx.backends.use(backend):
        model = nnx.Model()
        model.add(nnx.Dense(3, 2))
        model.add(nnx.Softmax())
        model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.SGD(), accuracy=nnx.metrics.Categorical())
        model.finalize()
    weights = np.arange(6, dtype=np.float32).reshape(2, 3).T  # (3, 2), column-major
    model.set_parameters([(weights, np.zeros((1, 2), dtype=np.float32))])
    model.save(tmp_path / "model.nnx")
    loaded = nnx.Model.load(tmp_path / "model.nnx", xp=backend)
    np.testing.assert_array_equal(backend.to_numpy(loaded.get_parameters()[0][0]), weights)


@pytest.mark.parametrize("what", ["a layer", "a model"])
def test_save_of_one_layer_or_a_model_asks_for_a_list(what, tmp_path):
    dense = nnx.Dense(2, 3)
    thing = dense if what == "a layer" else nnx.Model()
    with pytest.raises(TypeError, match=r"nnx\.save expected a list of layers, got (Dense|Model); pass a list"):
        nnx.save(thing, tmp_path / "layers.nnx")
    assert not (tmp_path / "layers.nnx").exists()
