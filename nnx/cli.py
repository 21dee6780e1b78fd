"""The `nnx` command: ``nnx info`` (what to paste into a bug report), ``nnx sweep`` (chapter 10's search) and
``nnx export`` (a saved model as an ONNX file)."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from nnx import backends
from nnx._version import __version__
from nnx.backends._active import chosen_by_use
from nnx.errors import CheckpointError
from nnx.model import Model
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
    ("ONNX", "onnx"),
    ("onnxruntime", "onnxruntime"),
    ("tensorboardX", "tensorboardX"),
    ("MLflow", ("mlflow", "mlflow-skinny")),
    ("Optuna", "optuna"),
    ("Zarr", "zarr"),
    ("scikit-learn", "scikit-learn"),
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


def export(argv: Sequence[str] | None = None) -> int:
    """``nnx export MODEL.nnx MODEL.onnx [--overwrite] [--import MODULE]``: load a model written by `Model.save` and
    write its inference graph with `Model.export_onnx`; returns the exit status (1 when it could not)."""
    parser = argparse.ArgumentParser(
        prog="nnx export", description="Write a saved model's inference graph as an ONNX file (the onnx extra)."
    )
    parser.add_argument("model", help="a model file written by Model.save (.nnx)")
    parser.add_argument("output", help="the ONNX file to write (.onnx); its folder must exist")
    parser.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    parser.add_argument(
        "--import",
        dest="modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module first: the one defining your own layers (repeat for several)",
    )
    args = parser.parse_args(argv)
    try:
        model = _load_for_export(args.model, args.modules)
        written = model.export_onnx(args.output, overwrite=args.overwrite)
    except (ImportError, OSError, CheckpointError, TypeError, ValueError) as error:
        print(f"nnx export: {error}{_export_hint(error, args.modules)}", file=sys.stderr)
        return 1
    print(f"nnx export: wrote {written} ({len(model.layers)} layers, {model.epochs_trained} epochs trained)")
    return 0


def _load_for_export(path: str, modules: Sequence[str]) -> Model:
    """The model saved at `path`, after importing `modules` (from the current folder too, as `python -m` would)."""
    if modules and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        importlib.import_module(name)
    return Model.load(path)


def _export_hint(error: Exception, modules: Sequence[str]) -> str:
    if isinstance(error, FileExistsError):
        return " (on the command line: --overwrite)"
    if "safetensors" in str(error) and str(getattr(error, "path", "")).lower().endswith(".onnx"):
        return ". It is an ONNX file: nnx export reads a model file written by Model.save (.nnx)"
    if "does not define" in str(error) and not modules:
        return ". On the command line: --import MODULE, the module that defines your layers"
    return ""


COMMANDS = {"export": export, "info": info, "sweep": sweep}


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
        "  export  write a saved model (.nnx) as an ONNX file for other runtimes\n"
        "  info    versions, backends (usable or why not), devices and the active backend\n"
        "  sweep   train the spiral network over a grid or random sample of hyperparameters\n\n"
        "nnx <command> --help shows a command's options"
    )
