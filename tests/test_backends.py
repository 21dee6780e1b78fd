"""The backend registry: selection, the context manager, errors and the entry-point plugin group. Each backend's own
conformance (transfers, dtypes, RNG, errors, every kernel op) is checked by `nnx.testing.check_backend`, which
tests/test_testing_kit.py runs on every available backend."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nnx
from nnx import backends


def test_builtin_backends_are_registered():
    assert {"numpy", "cupy", "array_api_strict"} <= set(backends.registered())
    assert "numpy" in backends.available()
    assert set(backends.available()) <= set(backends.registered())


def test_default_is_numpy(monkeypatch):
    monkeypatch.delenv("NNX_BACKEND", raising=False)
    assert backends.current().name == "numpy"
    assert backends.get().name == "numpy"


def test_environment_variable_is_read_lazily(monkeypatch):
    monkeypatch.setenv("NNX_BACKEND", "array_api_strict")
    pytest.importorskip("array_api_strict")
    assert backends.current().name == "array_api_strict"
    monkeypatch.setenv("NNX_BACKEND", "numpy")
    assert backends.current().name == "numpy"


def test_use_nests_and_restores(monkeypatch):
    monkeypatch.delenv("NNX_BACKEND", raising=False)
    pytest.importorskip("array_api_strict")
    with backends.use("array_api_strict") as outer:
        assert outer.name == "array_api_strict"
        with backends.use("numpy"):
            assert backends.current().name == "numpy"
        assert backends.current() is outer
    assert backends.current().name == "numpy"


def test_use_restores_after_an_error(monkeypatch):
    monkeypatch.delenv("NNX_BACKEND", raising=False)
    pytest.importorskip("array_api_strict")
    with pytest.raises(KeyError), backends.use("array_api_strict"):
        raise KeyError("boom")
    assert backends.current().name == "numpy"


def test_get_accepts_name_module_and_backend():
    numpy_backend = backends.get("numpy")
    assert backends.get(np) is numpy_backend
    assert backends.get(numpy_backend) is numpy_backend
    assert numpy_backend.xp is np
    assert numpy_backend.default_float == np.float32


def test_get_accepts_the_strict_module():
    strict = pytest.importorskip("array_api_strict")
    assert backends.get(strict).name == "array_api_strict"


def test_unknown_name_lists_registered_backends():
    with pytest.raises(ValueError, match=r"unknown backend 'nope'.*array_api_strict.*cupy.*numpy"):
        backends.get("nope")


def test_bad_spec_type_is_a_type_error():
    with pytest.raises(TypeError, match="string, an array module or a Backend"):
        backends.get(3.5)


def test_unavailable_backend_says_why_and_how_to_fix(isolated_registry):
    def broken():
        raise backends.BackendUnavailableError("backend 'broken' is not available: no CUDA device found")

    backends.register("broken", broken)
    assert "broken" in backends.registered()
    assert "broken" not in backends.available()
    with pytest.raises(backends.BackendUnavailableError, match="no CUDA device found") as info:
        backends.get("broken")
    assert isinstance(info.value, RuntimeError)


def test_cupy_error_names_the_fix():
    try:
        backends.get("cupy")
    except backends.BackendUnavailableError as error:
        message = str(error)
        assert ("cuda12" in message and "cuda13" in message) or "no CUDA device" in message
    else:
        pytest.skip("cupy is available here")


def test_register_refuses_duplicates_and_non_callables(isolated_registry):
    with pytest.raises(ValueError, match="already registered"):
        backends.register("numpy", lambda: None)
    with pytest.raises(TypeError, match="must be callable"):
        backends.register("x", "not callable")


def test_loader_must_return_a_backend(isolated_registry):
    backends.register("wrong", lambda: object())
    with pytest.raises(backends.BackendUnavailableError, match=r"returned object, not an nnx\.backends\.Backend"):
        backends.get("wrong")
    assert "wrong" not in backends.available() and "numpy" in backends.available()


def test_entry_point_plugin(tmp_path, monkeypatch, isolated_registry):
    (tmp_path / "nnx_demo_backend.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            from nnx.backends.numpy import NumpyBackend

            def load():
                return NumpyBackend("demo", np, "CPU (demo plug-in)", array_type=np.ndarray)
            """
        )
    )
    dist_info = tmp_path / "nnx_demo_backend-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: nnx-demo-backend\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[nnx.backends]\ndemo = nnx_demo_backend:load\nbroken = nnx_missing_module:load\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(backends, "_entry_points_read", False)

    assert "demo" in backends.registered()
    demo = backends.get("demo")
    assert demo.device == "CPU (demo plug-in)"
    layer = nnx.Dense(2, 3, xp="demo")
    assert layer.backend is demo
    assert "demo" in backends.available() and "broken" not in backends.available()
    with pytest.raises(backends.BackendUnavailableError, match="plug-in 'nnx_missing_module:load' failed to import"):
        backends.get("broken")


def test_strict_backend_refuses_implicit_host_conversion():
    strict = backends.get("array_api_strict") if "array_api_strict" in backends.available() else None
    if strict is None:
        pytest.skip("array_api_strict is not installed")
    x = strict.asarray(np.ones(3))
    with pytest.raises(RuntimeError):
        np.asarray(x)
    with pytest.raises(TypeError):
        x + np.ones(3)
    np.testing.assert_array_equal(strict.to_numpy(x), np.ones(3))


def test_mixing_backends_is_a_clear_type_error():
    if "array_api_strict" not in backends.available():
        pytest.skip("array_api_strict is not installed")
    layer = nnx.Dense(2, 3, xp="array_api_strict")
    with pytest.raises(TypeError, match=r"Dense\(2 -> 3\) inputs must be an array of backend 'array_api_strict'"):
        layer.forward(np.ones((4, 2), dtype=np.float32))


def test_importing_nnx_does_not_import_cupy():
    code = "import sys, nnx; nnx.backends.get('numpy'); assert 'cupy' not in sys.modules, 'cupy imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_seed_reseeds_the_host_rng():
    nnx.seed(7)
    first = nnx.Dense(3, 4).weights
    nnx.seed(7)
    np.testing.assert_array_equal(nnx.Dense(3, 4).weights, first)


def fake_cupy(device_count):
    """A stand-in CuPy module whose CUDA runtime reports `device_count` devices (or raises it)."""
    import types

    def get_device_count():
        if isinstance(device_count, Exception):
            raise device_count
        return device_count

    runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
    module = types.ModuleType("cupy")
    module.cuda = types.SimpleNamespace(runtime=runtime)
    return module


@pytest.mark.parametrize(
    "device_count, message",
    [
        (0, r"no CUDA device found\. Install it with: pip install \"nnx-nnfs\[cuda12\]\""),
        (RuntimeError("cudaErrorNoDevice"), r"no CUDA device found \(cudaErrorNoDevice\)\. Check the NVIDIA driver"),
    ],
)
def test_cupy_without_a_device_says_so(monkeypatch, device_count, message):
    from nnx.backends import cupy as cupy_backend

    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(device_count))
    with pytest.raises(backends.BackendUnavailableError, match=message):
        cupy_backend.load()


def test_cupy_that_cannot_import_says_how_to_install(monkeypatch):
    from nnx.backends import cupy as cupy_backend

    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(backends.BackendUnavailableError, match=r"CuPy could not be imported.*\[cuda13\]"):
        cupy_backend.load()


def test_seed_reaches_backends_loaded_later(isolated_registry, monkeypatch):
    seen = []

    class Recording(nnx.backends.get("numpy").__class__):
        def seed(self, value):
            seen.append(value)

    backends.register("recording", lambda: Recording("recording", np, "CPU", array_type=np.ndarray))
    monkeypatch.setattr(backends, "_last_seed", None)
    backends.seed(11)
    backends.get("recording")
    backends.seed(12)
    assert seen == [11, 12]


def test_a_numpy_array_belongs_to_numpy_before_any_backend_is_asked_for():
    """`nnx.accuracy(numpy_array, labels)` as the first nnx call in a process: the NumPy backend owns it."""
    code = (
        "import numpy as np, nnx\n"
        "print(float(nnx.accuracy(np.array([[0.9, 0.1], [0.2, 0.8]], dtype='float32'), np.array([0, 0]))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "0.5"
