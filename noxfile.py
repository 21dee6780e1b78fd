"""Tests, lint, docs and benchmarks. ``nox`` runs the quick check on the Python that runs nox (every backend with the
compiled step, then lint and the type check); ``nox -s tests`` the full matrix, Python 3.10-3.13 x backend;
``nox -s interop`` JAX and PyTorch; ``nox -s docs`` builds the documentation site."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
SUPPORTED = ((3, 10), (3, 13))  # the oldest and newest Python nnx supports
FULL_LENGTH_PYTHON = "3.12"  # the 10 001-epoch acceptance runs test numerics, not Python: run them once
BACKENDS = ["numpy", "array_api_strict", "cupy"]
PYTEST_NO_TESTS_COLLECTED = 5
PARALLEL = ["-n", "auto"]  # pytest-xdist: one worker per core
LINT_TOOLS = ["ruff==0.17.6", "mypy==2.4.1"]

nox.options.sessions = ["quick"]
nox.options.error_on_missing_interpreters = True  # a Python that is not there fails the run: never a silent skip
nox.options.download_python = "never"
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


def require_supported_python(session: nox.Session) -> None:
    """Stop with what to install when the Python running nox is not one nnx supports."""
    running = sys.version_info[:2]
    if not SUPPORTED[0] <= running <= SUPPORTED[1]:
        oldest, newest = (".".join(map(str, version)) for version in SUPPORTED)
        session.error(
            f"nnx needs Python {oldest}-{newest}, but nox runs on Python {running[0]}.{running[1]}. Install one of "
            f"Python {', '.join(PYTHONS)} and run the command with it, e.g. `python3.12 -m pip install nox && "
            "python3.12 -m nox`."
        )


@nox.session
def quick(session: nox.Session) -> None:
    """The quick check, on the Python that runs nox: the suite over every backend (CuPy where there is a GPU) with
    the `fast` extra, so `Model.train` on NumPy takes the compiled step, without the full-length acceptance runs and
    the whole matrices of the export and tracking integrations (a sample of each runs); then ruff and mypy. This is
    what the README's `python -m nox` runs."""
    require_supported_python(session)
    session.install("-e", f".[test,fast{cuda_extra() or ''}]", *LINT_TOOLS)
    run_pytest(session, ",".join(BACKENDS), "-m", "not slow and not integration")
    run_lint(session)


@nox.session(python=PYTHONS)
def check(session: nox.Session) -> None:
    """The suite on one Python over every backend (CuPy where there is a GPU) in one run, without the full-length
    acceptance runs (`-- -m slow` runs only those), on the generic step (no `fast` extra). CI runs it on every
    Python."""
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
def interop(session: nox.Session) -> None:
    """The backend tests (and those naming jax or torch) on other Array API libraries: JAX (CPU) always, PyTorch
    where it is installed (not here: a PyPI torch is a multi-GB CUDA build), skipping with the reason otherwise."""
    session.install("-e", ".[test]", "jax[cpu]")
    run_pytest(session, "jax,torch", "-m", "not slow", env=BACKEND_TESTS_ONLY)


def run_lint(session: nox.Session) -> None:
    """ruff (lint rules and formatting) and mypy (the types of nnx/, settings in pyproject.toml)."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(python="3.12")
def lint(session: nox.Session) -> None:
    """ruff and mypy alone."""
    session.install("-e", ".", *LINT_TOOLS)
    run_lint(session)


@nox.session(python="3.12")
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/ with --strict: a broken link, a missing reference or a code block
    that fails stops the build. Every code block runs (markdown-exec), and so does the chapter-10 notebook.
    `nox -s docs -- serve` serves it at http://127.0.0.1:8000 instead."""
    session.install("-e", ".[docs]", LINT_TOOLS[0])  # ruff formats the reference's signatures
    session.env["NO_MKDOCS_2_WARNING"] = "1"
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", *session.posargs[1:])
    else:
        session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Per-epoch timings: nnx, plain NumPy, PyTorch and JAX side by side (benchmarks/bench.py; posargs go to it),
    then many models trained as one stack with `nnx.train_many` against PyTorch and JAX (benchmarks/train_many.py)."""
    session.install("-e", ".[fast]", "threadpoolctl", "pyinstrument")
    for peer in ("torch", "jax[cpu]"):
        try:
            session.install(peer)
        except nox.command.CommandFailed:
            session.log(f"{peer} did not install: benchmarking without it")
    session.run("python", "benchmarks/bench.py", *session.posargs)
    session.run("python", "benchmarks/train_many.py")


@nox.session(python="3.12")
def fuzz(session: nox.Session) -> None:
    """Property-based fuzzing of the public API: at least 10 000 generated cases."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", "tests/test_fuzz.py", "-p", "no:cacheprovider", env={"NNX_FUZZ": "1"})
