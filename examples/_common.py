"""What the examples share: the --backend option, checks of output files, and user errors as one line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nnx


def parser(doc: str) -> argparse.ArgumentParser:
    """Options that show the script's docstring in --help, with --backend (default: $NNX_BACKEND, else numpy)."""
    options = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    backend = os.environ.get("NNX_BACKEND") or "numpy"
    options.add_argument("--backend", default=backend, help="numpy, cupy, ... (default: $NNX_BACKEND, else numpy)")
    return options


def positive(text: str) -> int:
    """An option's value that must be an integer of at least 1 (--epochs 0 is a usage error)."""
    if int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return int(text)


def check_outputs(options: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A usage error now, before any training, if --history or --plot names a file that cannot be written."""
    history = getattr(args, "history", None)
    if history is not None:
        folder = Path(history).absolute().parent
        if Path(history).suffix.lower() not in (".csv", ".json"):
            options.error(f"--history needs a file name ending in .csv or .json, got {history!r}")
        if not folder.is_dir():
            options.error(f"--history: the folder {str(folder)!r} of {history!r} does not exist")
    if args.plot is not None:
        try:
            nnx.plot.check_path(args.plot, "--plot")  # a folder that exists, a picture format matplotlib writes
        except ImportError:
            options.error('--plot needs matplotlib: pip install "nnx-nnfs[plot]"')
        except ValueError as error:
            options.error(str(error))


def run(main) -> None:
    """Call `main()`: a user error (a bad value, a missing file or package, an unusable backend) ends with one line
    on stderr and exit status 2, a diverged training with exit status 1."""
    try:
        main()
    except (nnx.DivergenceError, ValueError, TypeError, OSError, ImportError, nnx.BackendUnavailableError) as error:
        message = " ".join(str(error).split())
        print(f"{os.path.basename(sys.argv[0])}: {type(error).__name__}: {message}", file=sys.stderr)
        raise SystemExit(1 if isinstance(error, nnx.DivergenceError) else 2) from None
