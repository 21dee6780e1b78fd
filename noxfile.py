"""Tests, lint and benchmarks. ``nox`` runs the quick check (one Python over every backend, the compiled step, lint);
``nox -s tests`` the full matrix, Python 3.10-3.13 x backend; ``nox -s interop`` JAX and PyTorch."""

from __future__ import annotations

import re
import shutil
import subprocess

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
FULL_LENGTH_PYTHON = "3.12"  # the 10 001-epoch acceptance runs test numerics, not Python: run them once
BACKENDS = ["numpy", "array_api_strict", "cupy"]
PYTEST_NO_TESTS_COLLECTED = 5
PARALLEL = ["-n", "auto"]  # pytest-xdist: one worker per core

nox.options.sessions = [f"check-{FULL_LENGTH_PYTHON}", "fast", "lint"]
BACKEND_TESTS_ONLY = {"NNX_TEST_BACKEND_TESTS_ONLY": "1"}  # tests that concern other backends run in the numpy cell


def cuda_major_version() -> int | None:
    """The CUDA major version the driver supports, from nvidia-smi; None when there is no NVIDIA GPU."""
    if shutil.which("nvidia-smi") is None:
        return None
    result = subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=False)
    match = re.search(r"CUDA Version:\s*(\d+)", result.stdout)
    return int(match.group(1)) if result.returncode == 0 and match else None


def cuda_extra() -> str | None:
    """The extra naming the CuPy wheel for this machine's driver (",cuda12" or ",cuda13"), or None without a GPU."""
    cuda = cuda_major_version()
    return None if cuda is None else ",cuda13" if cuda >= 13 else ",cuda12"


def run_pytest(session: nox.Session, backends: str, *selection: str, env: dict | None = None) -> None:
    """pytest in parallel with the `backend` fixture over `backends`; "no tests collected" is a success."""
    session.run(
        "pytest",
        "-rs",
        *PARALLEL,
        *selection,
        *session.posargs,
        env={"NNX_TEST_BACKENDS": backends, **(env or {})},
        success_codes=[0, PYTEST_NO_TESTS_COLLECTED],
    )


@nox.session(python=PYTHONS)
def check(session: nox.Session) -> None:
    """The suite on one Python over every backend (CuPy where there is a GPU) in one run, without the full-length
    acceptance runs (`-- -m slow` runs only those). `nox` runs check-3.12; CI every Python."""
    session.install("-e", f".[test{cuda_extra() or ''}]")
    run_pytest(session, ",".join(BACKENDS), "-m", "not slow")


@nox.session(python=PYTHONS)
@nox.parametrize("backend", BACKENDS)
def tests(session: nox.Session, backend: str) -> None:
    """The test suite with the `backend` fixture limited to one backend (NumPy stays the reference). The
    array_api_strict cell runs only the tests that take the `backend` fixture: the others run in the numpy cell."""
    extras = "test"
    if backend == "cupy":
        if cuda_extra() is None:
            session.skip("cupy: no CUDA device found (nvidia-smi is missing or failed); GPU tests skipped")
        extras += cuda_extra()
    session.install("-e", f".[{extras}]")
    selection = [] if session.python == FULL_LENGTH_PYTHON or backend == "cupy" else ["-m", "not slow"]
    run_pytest(session, backend, *selection, env=BACKEND_TESTS_ONLY if backend == "array_api_strict" else {})


@nox.session(python=FULL_LENGTH_PYTHON)
def fast(session: nox.Session) -> None:
    """The suite with the `fast` extra (Numba): Model.train on NumPy runs its compiled step, tested against the
    generic one. The full-length runs stay on the generic step, where the book's numbers are pinned."""
    session.install("-e", ".[test,fast]")
    run_pytest(session, "numpy", "-m", "not slow")


@nox.session(python=FULL_LENGTH_PYTHON)
def interop(session: nox.Session) -> None:
    """The backend tests (and those naming jax or torch) on other Array API libraries: JAX (CPU) always, PyTorch
    where it is installed (not here: a PyPI torch is a multi-GB CUDA build), skipping with the reason otherwise."""
    session.install("-e", ".[test]", "jax[cpu]")
    run_pytest(session, "jax,torch", "-m", "not slow", env=BACKEND_TESTS_ONLY)


@nox.session(python="3.12")
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Per-epoch timings: nnx, plain NumPy and PyTorch side by side (benchmarks/bench.py; posargs go to it), then
    many models trained as one stack with `nnx.train_many` (benchmarks/train_many.py)."""
    session.install("-e", ".[fast]", "threadpoolctl", "pyinstrument")
    try:
        session.install("torch")
    except nox.command.CommandFailed:
        session.log("PyTorch did not install: benchmarking without it")
    session.run("python", "benchmarks/bench.py", *session.posargs)
    session.run("python", "benchmarks/train_many.py")


@nox.session(python="3.12")
def fuzz(session: nox.Session) -> None:
    """Property-based fuzzing of the public API: at least 10 000 generated cases."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", "tests/test_fuzz.py", "-p", "no:cacheprovider", env={"NNX_FUZZ": "1"})
