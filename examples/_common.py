"""What the example scripts share: the --backend option and a one-line exit when a backend can't be used."""

from __future__ import annotations

import argparse
import os
import sys

import nnx

HISTORY_FORMATS = (".csv", ".json")


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with --backend (default: $NNX_BACKEND, else numpy) and --seed."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument("--backend", default=os.environ.get("NNX_BACKEND") or "numpy", help="numpy, cupy, ...")
    result.add_argument("--seed", type=seed, default=0, help="seed of NumPy's RNG (data, weights, dropout)")
    return result


def seed(text: str) -> int:
    """--seed's value: an integer in [0, 2**32)."""
    try:
        return nnx.backends.checked_seed(int(text), "--seed")
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"an integer in [0, 2**32) expected, got {text!r}") from error


def training_options(parser: argparse.ArgumentParser, *, epochs: int, lr: float, decay: float, every: int) -> None:
    """--epochs, --lr, --decay and --every with the chapter's defaults."""
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--lr", type=float, default=lr, help="learning rate")
    parser.add_argument("--decay", type=float, default=decay, help="learning-rate decay")
    parser.add_argument("--every", type=int, default=every, help="print every N epochs (steps with batches)")


def everyday_options(parser: argparse.ArgumentParser) -> None:
    """--progress, --plot PNG and --history FILE (.csv or .json)."""
    parser.add_argument("--progress", action="store_true", help="show a progress bar on stderr")
    parser.add_argument("--plot", metavar="PNG", help="save a picture of the result to this file")
    parser.add_argument("--history", metavar="FILE", help="save the recorded metrics as .csv or .json")


def check_everyday_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--history and --plot name files that can be written, in formats that exist, before any training starts."""
    if args.history is not None:
        try:
            nnx.io.output_path(args.history, "--history", suffixes=HISTORY_FORMATS)
        except (TypeError, ValueError) as error:
            parser.error(str(error))
    if args.plot is not None:
        try:
            from nnx.plot import check_path

            check_path(args.plot, "--plot")
        except ImportError:
            parser.error('--plot needs matplotlib: pip install "nnx-nnfs[plot]"')
        except ValueError as error:
            parser.error(str(error))


def save_outputs(args: argparse.Namespace, history, draw) -> None:
    """Write --history (CSV or JSON by its suffix) and --plot (`draw(nnx.plot)` returns the figure), saying where."""
    if args.history is not None:
        csv = args.history.lower().endswith(".csv")
        saved = history.to_csv(args.history) if csv else history.to_json(args.history)
        print(f"history: {saved}")
    if args.plot is not None:
        from nnx import plot

        plot.save(draw(plot), args.plot)
        print(f"plot: {args.plot}")


def parse(parser: argparse.ArgumentParser, argv, *positive: str) -> argparse.Namespace:
    """Parse `argv`, check that the `positive` options are at least 1 and that output files can be written."""
    args = parser.parse_args(argv)
    require_positive(parser, args, *positive)
    if hasattr(args, "plot"):
        check_everyday_options(parser, args)
    return args


def require_positive(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> None:
    for name in names:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")


def run(main) -> None:
    """Call `main()`; a user error becomes one line on stderr and exit status 2, a divergence exit status 1."""
    try:
        main()
    except nnx.DivergenceError as error:
        _fail(error, 1)
    except (ValueError, TypeError, OSError, nnx.BackendUnavailableError) as error:
        _fail(error, 2)


def _fail(error: Exception, status: int) -> None:
    message = " ".join(str(error).split())
    print(f"{os.path.basename(sys.argv[0])}: {type(error).__name__}: {message}", file=sys.stderr)
    raise SystemExit(status) from None


def load_backend(name: str) -> nnx.backends.Backend:
    """The backend called `name`, or one line on stderr saying what to do and exit status 2."""
    try:
        backend = nnx.backends.get(name)
    except (ValueError, nnx.backends.BackendUnavailableError) as error:
        print(f"{os.path.basename(sys.argv[0])}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"nnx: backend {backend.name} on {backend.device}")
    return backend
