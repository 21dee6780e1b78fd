"""Any Array API library as a backend: JAX and PyTorch by name or module, dask.array through the generic backend,
host transfers, dtypes a library lacks, and the book's training runs tracking NumPy's."""

from __future__ import annotations

import functools
import importlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nnx
from nnx.backends.array_api import ArrayApiBackend
from nnx.datasets import spiral_data
from nnx.recipes import train_spiral
from tests.conftest import backend_or_skip
from tests.helpers import spiral_classifier

LIBRARIES = {"jax": "jax", "torch": "torch"}
MODULES = [("jax", "jax.numpy"), ("torch", "torch"), ("torch", "array_api_compat.torch")]


def library_backend(name: str) -> nnx.backends.Backend:
    """The named backend, or a skip that says the library is missing here."""
    pytest.importorskip(LIBRARIES[name], reason=f"{name} is not installed: pip install {name}")
    return backend_or_skip(name)


def dask_backend() -> nnx.backends.Backend:
    return nnx.backends.get(pytest.importorskip("dask.array", reason="dask is not installed"))


def jax_without_x64() -> nnx.backends.Backend:
    backend = library_backend("jax")
    if backend._jax.config.jax_enable_x64:
        pytest.skip("JAX_ENABLE_X64 is on in this process: float64 exists")
    return backend


# The registry -----------------------------------------------------------------------------------------------------


def test_jax_and_torch_are_registered_but_not_imported():
    code = (
        "import sys, nnx; names = nnx.backends.registered(); assert {'jax', 'torch'} <= set(names), names; "
        "nnx.backends.get('numpy'); loaded = {'jax', 'torch'} & set(sys.modules); assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name, module_name", MODULES, ids=[module for _, module in MODULES])
def test_a_library_module_gives_its_named_backend(name, module_name):
    backend = library_backend(name)
    module = importlib.import_module(module_name)
    assert nnx.backends.get(module) is backend
    assert isinstance(backend, ArrayApiBackend) and backend.name == name
    assert nnx.Dense(2, 3, xp=module).backend is backend


@pytest.mark.parametrize("name", sorted(LIBRARIES))
def test_a_missing_library_says_how_to_install_it(monkeypatch, name):
    module = importlib.import_module(f"nnx.backends.{name}")
    monkeypatch.setitem(sys.modules, LIBRARIES[name], None)
    with pytest.raises(nnx.BackendUnavailableError, match=rf"backend '{name}' is not available: .*pip install {name}"):
        module.load()


def test_dask_array_gets_a_generic_backend_once():
    backend = dask_backend()
    import dask.array

    assert isinstance(backend, ArrayApiBackend) and backend.name == "dask.array"
    assert nnx.backends.get(dask.array) is backend
    assert "dask.array" not in nnx.backends.registered()


# Transfers, ownership, dtypes -------------------------------------------------------------------------------------


@pytest.fixture(params=["jax", "torch", "dask"])
def library(request) -> nnx.backends.Backend:
    return dask_backend() if request.param == "dask" else library_backend(request.param)


def test_round_trip_on_the_default_device(library):
    import array_api_compat

    host = np.arange(6, dtype=np.float64).reshape(2, 3)
    x = library.asarray(host, dtype="float32")
    assert library.owns(x) and array_api_compat.device(x) == library.array_device
    back = library.to_numpy(x)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, host)
    host[0, 0] = 99.0  # the device copy never shares the host's memory
    assert library.to_numpy(x)[0, 0] == 0.0


def test_owns_only_its_arrays_on_its_device(library):
    assert not library.owns(np.ones(3, np.float32))
    assert not nnx.backends.get("numpy").owns(library.asarray(np.ones(3), dtype="float32"))
    with pytest.raises(TypeError, match=rf"must be an array of backend '{library.name}'.*asarray\(x\)"):
        nnx.Dense(3, 2, xp=library).forward(np.ones((2, 3), np.float32))


def test_torch_owns_only_tensors_on_its_device():
    backend = library_backend("torch")
    import torch

    assert backend.owns(torch.ones(2)) and not backend.owns(torch.ones(2, device="meta"))


def test_int64_labels_become_int32_on_jax_without_x64():
    backend = jax_without_x64()
    labels = backend.asarray(np.array([0, 2, 1], dtype=np.int64))
    assert labels.dtype == backend.xp.int32 and backend.int_dtype == backend.xp.int32
    np.testing.assert_array_equal(backend.to_numpy(backend.asarray(np.arange(3), dtype="int64")), [0, 1, 2])
    with pytest.raises(ValueError, match=r"backend 'jax' has no int64 dtype, and its int32 cannot hold"):
        backend.asarray(np.array([0, 2**40]))


def test_float64_on_jax_without_x64_is_a_clear_error():
    backend = jax_without_x64()
    fix = r"has no float64 dtype; .*JAX_ENABLE_X64=1 .*jax\.config\.update\('jax_enable_x64', True\)"
    for ask in (
        lambda: nnx.Dense(2, 3, xp=backend, dtype="float64"),
        lambda: backend.asarray(np.ones(3), dtype="float64"),
        lambda: nnx.Dense(2, 3, dtype="float64").to(backend),
    ):
        with pytest.raises(TypeError, match=fix):
            ask()


def test_float64_on_jax_with_x64():
    library_backend("jax")
    code = textwrap.dedent(
        """
        import numpy as np, nnx
        backend = nnx.backends.get("jax")
        layer = nnx.Dense(2, 3, xp=backend, dtype="float64")
        assert layer.weights.dtype == backend.xp.float64 and backend.int_dtype == backend.xp.int64
        assert backend.to_numpy(backend.asarray(np.ones(2))).dtype == np.float64
        """
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, env={**os.environ, "JAX_ENABLE_X64": "1"})


# Training tracks NumPy --------------------------------------------------------------------------------------------


CHAOS_HORIZON = 200  # float32: the last printed epoch at which another library's rounding has not yet shown


def spiral_log(backend, epochs: int = 1001, every: int = 100, dtype: str = "float32") -> list[tuple[float, float]]:
    """(accuracy, loss) as examples/spiral.py prints them every `every` epochs: the book's chapter-10 layer loop."""
    history = train_spiral(epochs=epochs, every=every, backend=backend, dtype=dtype).history
    pairs = zip(history.epoch, history.history["accuracy"], history.history["loss"], strict=True)
    return [(round(accuracy, 3), round(loss, 3)) for epoch, accuracy, loss in pairs if epoch % every == 0]


def assert_tracks(log, reference) -> None:
    """Printed (3-decimal) accuracy within 0.01 and loss within 0.002 of NumPy's at every logged epoch."""
    assert len(log) == len(reference)
    for (accuracy, loss), (want_accuracy, want_loss) in zip(log, reference, strict=True):
        assert abs(accuracy - want_accuracy) <= 0.01 + 1e-9, (log, reference)
        assert abs(loss - want_loss) <= 0.002 + 1e-9, (log, reference)


@pytest.mark.parametrize("name", sorted(LIBRARIES))
def test_spiral_float32_prints_numpys_lines_within_the_chaos_horizon(name):
    """float32 rounding differs between libraries and training amplifies it (docs: numerics and reproducibility):
    the printed lines are NumPy's up to the horizon, and stay near them over the 1001 epochs."""
    log, reference = spiral_log(library_backend(name)), spiral_log(nnx.backends.get("numpy"))
    within = CHAOS_HORIZON // 100 + 1
    assert log[:within] == reference[:within]
    for (accuracy, loss), (want_accuracy, want_loss) in zip(log, reference, strict=True):
        assert abs(accuracy - want_accuracy) <= 0.05 and abs(loss - want_loss) <= 0.01, (log, reference)


@pytest.mark.parametrize("name", sorted(LIBRARIES))
def test_spiral_float64_prints_numpys_lines_through_1001_epochs(name):
    """In float64 the rounding differences stay below the printed digits for the whole 1001 epochs."""
    library_backend(name)
    code = textwrap.dedent(
        f"""
        import json, nnx
        from tests.test_array_api import spiral_log
        print(json.dumps(spiral_log(nnx.backends.get({name!r}), dtype="float64")))
        """
    )
    env = {**os.environ, "JAX_ENABLE_X64": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    log = [tuple(pair) for pair in json.loads(result.stdout)]
    assert log == spiral_log(nnx.backends.get("numpy"), dtype="float64")


def test_spiral_on_dask_array_tracks_numpy_briefly():
    """Dask trains through the generic backend; its lazy graph grows with every step, so only a short run here."""
    assert_tracks(spiral_log(dask_backend(), epochs=21, every=10), spiral_log(nnx.backends.get("numpy"), 21, 10))


@pytest.mark.parametrize("name", sorted(LIBRARIES))
def test_model_trains_saves_and_loads(name, tmp_path):
    backend = library_backend(name)
    nnx.seed(0)
    X, y = spiral_data(samples=60, classes=3)
    X_val, y_val = spiral_data(samples=20, classes=3)
    model = spiral_classifier(
        backend, hidden=32, l2=5e-4, dropout=0.1, optimizer=functools.partial(nnx.Adam, learning_rate=0.02, decay=5e-5)
    )
    model.train(X, y, epochs=5, batch_size=64, print_every=None, validation_data=(X_val, y_val))
    loss, accuracy = model.evaluate(X_val, y_val, verbose=False)
    assert np.isfinite(loss) and 0.0 <= accuracy <= 1.0
    predictions = backend.to_numpy(model.predict(X_val, batch_size=32))
    model.save(tmp_path / "model.nnx")
    loaded = nnx.Model.load(tmp_path / "model.nnx", xp=backend)
    assert loaded.backend is backend
    np.testing.assert_array_equal(backend.to_numpy(loaded.predict(X_val, batch_size=32)), predictions)
    on_numpy = nnx.Model.load(tmp_path / "model.nnx", xp="numpy")
    np.testing.assert_allclose(on_numpy.predict(X_val), predictions, rtol=1e-5, atol=1e-7)
