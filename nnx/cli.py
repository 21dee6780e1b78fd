"""The `nnx` command: ``nnx info`` (what to paste into a bug report) and ``nnx sweep`` (chapter 10's search)."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from nnx import backends
from nnx._version import __version__
from nnx.backends._active import chosen_by_use
from nnx.sweep.cli import main as sweep_main

LIBRARIES = (
    ("NumPy", "numpy"),
    ("array-api-compat", "array-api-compat"),
    ("CuPy", ("cupy-cuda13x", "cupy-cuda12x", "cupy")),
    ("Numba", "numba"),
    ("JAX", "jax"),
    ("PyTorch", "torch"),
    ("array-api-strict", "array-api-strict"),
    ("safetensors", "safetensors"),
    ("tqdm", "tqdm"),
    ("matplotlib", "matplotlib"),
    ("Dask", "distributed"),
)


def installed_version(distributions: str | Sequence[str]) -> str | None:
    """The installed version of the first of `distributions` found, without importing it."""
    for name in (distributions,) if isinstance(distributions, str) else distributions:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def active_backend_source() -> str:
    """Where the current backend was chosen: `nnx.backends.use()`, $NNX_BACKEND, or the default."""
    if chosen_by_use():
        return "nnx.backends.use()"
    if os.environ.get(backends.ENV_VAR):
        return f"{backends.ENV_VAR}={os.environ[backends.ENV_VAR]}"
    return "default"


def info_lines() -> list[str]:
    """The report `nnx info` prints: versions, every backend (usable or why not), devices, the active backend."""
    lines = [f"nnx {__version__}", f"Python {platform.python_version()} ({sys.executable}) on {platform.platform()}"]
    lines += ["", "libraries:"]
    for label, distributions in LIBRARIES:
        lines.append(f"  {label + ':':<18} {installed_version(distributions) or 'not installed'}")
    lines += ["", "backends:"]
    for name in backends.registered():
        lines += _backend_lines(name)
    lines += ["", f"active backend: {_active_line()}"]
    return lines


def _backend_lines(name: str) -> list[str]:
    try:
        backend = backends.get(name)
    except backends.BackendUnavailableError as error:  # a broken plug-in too: the registry says why
        reason = str(error).removeprefix(f"backend {name!r} is not available: ")
        return [f"  {name:<18} unavailable: {reason}"]
    lines = [f"  {name:<18} available ({type(backend).__name__})"]
    try:
        devices = backend.device_info()
    except Exception as error:  # a broken driver must not stop the report
        return [*lines, f"    device: unknown ({type(error).__name__}: {error})"]
    for device in devices:
        details = ", ".join(f"{key}: {value}" for key, value in device.items() if key != "name")
        lines.append(f"    device: {device['name']}" + (f" ({details})" if details else ""))
    return lines


def _active_line() -> str:
    source = active_backend_source()
    try:
        backend = backends.current()
    except (ValueError, backends.BackendUnavailableError) as error:
        return f"none usable ({source}): {error}"
    return f"{backend.name} on {backend.device} (chosen by {source})"


def info(argv: Sequence[str] | None = None) -> int:
    """``nnx info``: print the report of `info_lines`; returns the exit status."""
    argparse.ArgumentParser(prog="nnx info", description="Print versions, backends and devices.").parse_args(argv)
    print("\n".join(info_lines()))
    return 0


def sweep(argv: Sequence[str] | None = None) -> int:
    """``nnx sweep [options]``: see `nnx.sweep.cli.main`; returns the exit status."""
    return sweep_main(argv)


COMMANDS = {"info": info, "sweep": sweep}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nnx <command> [options]``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"nnx {__version__}")
        return 0
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"nnx: unknown command {argv[0]!r}\n{_usage()}", file=sys.stderr)
        return 2
    return command(argv[1:])


def _usage() -> str:
    return (
        "usage: nnx <command> [options]\n\n"
        "commands:\n"
        "  info    versions, backends (usable or why not), devices and the active backend\n"
        "  sweep   train the spiral network over a grid or random sample of hyperparameters\n\n"
        "nnx <command> --help shows a command's options"
    )
