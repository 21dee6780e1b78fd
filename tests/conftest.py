"""Shared fixtures: `backend` runs a test once per registered backend, skipping unavailable ones with the reason."""

from __future__ import annotations

import os

import numpy as np
import pytest

import nnx
from nnx import backends


def _selected_backends() -> list[str]:
    """All registered backends, or those named in NNX_TEST_BACKENDS (comma-separated), as nox sets it."""
    chosen = os.environ.get("NNX_TEST_BACKENDS")
    names = nnx.backends.registered()
    return [name for name in chosen.split(",") if name] if chosen else names


def pytest_collection_modifyitems(config, items):
    """With NNX_TEST_BACKEND_TESTS_ONLY=1 (nox's array_api_strict cells and its interop session), keep only the
    tests that take the `backend` fixture or name one of NNX_TEST_BACKENDS (``test_...[jax]``): the others do not
    depend on the backends chosen and run in the numpy cell."""
    if os.environ.get("NNX_TEST_BACKEND_TESTS_ONLY") != "1":
        return
    names = _selected_backends()
    kept = {id(item) for item in items if _concerns(item, names)}
    config.hook.pytest_deselected(items=[item for item in items if id(item) not in kept])
    items[:] = [item for item in items if id(item) in kept]


def _concerns(item, backend_names: list[str]) -> bool:
    return "backend" in getattr(item, "fixturenames", ()) or any(name in item.name for name in backend_names)


def _backend_param(name: str):
    marks = [pytest.mark.gpu] if name == "cupy" else []
    return pytest.param(name, id=name, marks=marks)


BACKEND_PARAMS = [_backend_param(name) for name in _selected_backends()]


def backend_or_skip(name: str) -> nnx.backends.Backend:
    """The backend called `name`, or a skip that says why it is unavailable here."""
    try:
        return nnx.backends.get(name)
    except nnx.backends.BackendUnavailableError as error:
        pytest.skip(f"{name}: {_reason(error)}")


NUMPY_ARITHMETIC = frozenset({"numpy", "array_api_strict"})  # computed by NumPy's own kernels: bit-identical


def widest_float(*backends: nnx.backends.Backend) -> str:
    """'float64' where every one of `backends` has it, else 'float32' (JAX without x64)."""
    return "float64" if all(backend.has_dtype("float64") for backend in backends) else "float32"


def float64_or_skip(backend: nnx.backends.Backend) -> None:
    """Skip a test that needs float64 arithmetic (finite differences, float64 models) on a backend without it."""
    if not backend.has_dtype("float64"):
        pytest.skip(f"{backend.name} has no float64 here (JAX: set JAX_ENABLE_X64=1 to run it)")


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request) -> nnx.backends.Backend:
    return backend_or_skip(request.param)


def _reason(error: Exception) -> str:
    message = str(error)
    return message.split(": ", 1)[1] if message.startswith("backend ") else message


@pytest.fixture
def numpy_backend() -> nnx.backends.Backend:
    return nnx.backends.get("numpy")


@pytest.fixture
def host_rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def isolated_registry(monkeypatch):
    """Let a test register backends or re-read entry points without leaking into other tests."""
    monkeypatch.setattr(backends, "_loaders", dict(backends._loaders))
    monkeypatch.setattr(backends, "_loaded", dict(backends._loaded))
    monkeypatch.setattr(backends, "_failures", dict(backends._failures))
    return backends
