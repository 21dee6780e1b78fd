"""``nnx sweep``: the command line's options, the ranked table it prints, and its exit status."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from nnx import backends
from nnx.plot import check_path
from nnx.sweep.result import SweepInterrupted, SweepResult, colormaps_or_none
from nnx.sweep.runner import run
from nnx.sweep.space import OWNER, parse_values
from nnx.sweep.study_cli import add_arguments, best_command, optuna_options, spiral_study

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


EPILOG = """\
examples:
  nnx sweep --lr 0.5,0.85,1.0 --decay 0,1e-3,1e-2 --epochs 10001
  nnx sweep --lr 0.01:1.0 --decay 0,1e-3 --random 20 --csv sweep.csv --plot curves.png
  nnx sweep --factory my_models:build --param units=32,64 --lr 0.01,0.05 --epochs 300 --batch-size 128
  nnx sweep --lr 0.5,1.0 --dask tcp://scheduler:8786
  nnx sweep --lr 0.5,0.85,1.0 --decay 0,1e-3 --epochs 501 --batched
  nnx sweep --lr 0.5,1.0 --decay 0,1e-3 --epochs 1001 --tensorboard runs --mlflow spiral
  nnx sweep --optuna --trials 200 --batch 32 --lr 0.01:1.0 --decay 1e-5:1e-2 --hidden 16,32,64 --epochs 1001

A factory is build(**params) -> (model, X, y) or (model, X, y, validation_data), model a finalized nnx.Model;
each trial seeds NumPy (--seed), calls it with the trial's values and trains with model.train(X, y, epochs=...).

exit status: 0 every trial trained, 1 some trials failed (the table and the CSV still hold them all),
2 bad options, 130 interrupted (Ctrl-C: the finished trials are printed and kept in the CSV).
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """One line on stderr, exit status 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _typed(kind):
    def parse(text: str):
        return parse_values(text, kind)

    return parse


def _named(text: str) -> tuple[str, object]:
    name, equals, values = text.partition("=")
    if not equals or not name.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUES such as units=32,64, got {text!r}")
    return name.strip(), parse_values(values)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nnx sweep",
        description="Train the book's spiral network (or your model) over a grid or a random sample of\n"
        "hyperparameters and print the trials ranked by final loss.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.register("action", None, _Once)  # every plain option: given twice is an error, not the last one kept
    parser.register("action", "store", _Once)
    space = parser.add_argument_group(
        "hyperparameters (comma-separated values; low:high, a log-uniform range, with --random)"
    )
    space.add_argument("--lr", type=_typed(float), metavar="LIST", help="learning rates, e.g. 0.5,0.85,1.0")
    space.add_argument("--decay", type=_typed(float), metavar="LIST", help="learning-rate decays, e.g. 0,1e-3")
    space.add_argument("--momentum", type=_typed(float), metavar="LIST", help="SGD momentum values, e.g. 0,0.9")
    space.add_argument("--hidden", type=_typed(int), metavar="LIST", help="hidden-layer sizes, e.g. 32,64")
    space.add_argument(
        "--param",
        type=_named,
        action="append",
        default=[],
        metavar="NAME=LIST",
        help="any other hyperparameter (numbers or words), e.g. --param classes=2,3",
    )
    fixed = parser.add_argument_group("the same for every trial")
    fixed.add_argument("--epochs", type=int, default=10001, metavar="N", help="(default 10001)")
    fixed.add_argument("--samples", type=int, metavar="N", help="spiral samples per class (default 100)")
    fixed.add_argument("--dtype", choices=["float32", "float64"], help="spiral dtype (default float32)")
    fixed.add_argument("--every", type=int, metavar="N", help="spiral: record the metrics every N epochs (default 100)")
    fixed.add_argument("--batch-size", type=int, metavar="N", help="factory: Model.train's batch_size")
    fixed.add_argument("--seed", type=int, default=0, metavar="N", help="NumPy seed of every trial (default 0)")
    fixed.add_argument("--backend", metavar="NAME", help="numpy, cupy, ... (default: $NNX_BACKEND, else numpy)")
    fixed.add_argument("--factory", metavar="MODULE:FUNCTION", help="build(**params) -> (model, X, y)")
    how = parser.add_argument_group("how")
    how.add_argument("--random", type=int, metavar="N", help="train N combinations drawn at random, not the grid")
    how.add_argument("--random-seed", type=int, metavar="N", help="seed of the random draw (default: --seed)")
    how.add_argument("--workers", type=int, metavar="N", help="local processes (default: one per core; 1: serial)")
    how.add_argument("--dask", metavar="ADDRESS", help="run on this Dask scheduler, e.g. tcp://127.0.0.1:8786")
    how.add_argument("--dask-timeout", type=float, default=10.0, metavar="S", help="seconds to reach it")
    how.add_argument("--csv", metavar="FILE", help="write every trial's row as it finishes (default: no file)")
    how.add_argument("--plot", metavar="PNG", help="save every trial's loss curve in one figure")
    how.add_argument(
        "--batched",
        action="store_true",
        help="train the trials of one architecture as one stack with nnx.train_many (a worker trains a stack); a "
        "trial's seconds = its stack's wall time / its number of trials. float32 losses differ from the unbatched "
        "ones by rounding that training amplifies: within 1e-4 relative for the --batched example below "
        "(measured 6.2e-6), more for long or momentum runs (see help(nnx.sweep.run))",
    )
    how.add_argument("--tensorboard", metavar="DIR", help="write one TensorBoard run per trial into DIR")
    how.add_argument(
        "--mlflow",
        metavar="EXPERIMENT",
        help="log the sweep to this MLflow experiment: a parent run with one nested run per trial (where: "
        "$MLFLOW_TRACKING_URI)",
    )
    how.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    add_arguments(parser)
    return parser


class _Once(argparse.Action):
    """An option given at most once: argparse would keep the last of two values and drop the first silently."""

    def __call__(self, parser, namespace, values, option_string=None):
        seen = namespace.__dict__.setdefault("_given", {})
        if self.dest in seen:
            parser.error(
                f"{option_string} is given twice ({seen[self.dest]!r} and {values!r}); give it once (a list of "
                f"values is comma-separated: {option_string} 0.5,1.0)"
            )
        seen[self.dest] = values
        setattr(namespace, self.dest, values)


def _space(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    space = {name: getattr(args, name) for name in ("lr", "decay", "momentum", "hidden") if getattr(args, name)}
    space.update({name: getattr(args, name) for name in ("samples", "dtype") if getattr(args, name) is not None})
    for name, values in args.param:
        if name in space:
            parser.error(f"{name} is given twice (--{name} or --param {name}=...); give it once")
        space[name] = values
    return space


def _same_file(first: str, second: str) -> bool:
    return os.path.realpath(os.path.expanduser(first)) == os.path.realpath(os.path.expanduser(second))


def _options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    if args.csv and args.plot and _same_file(args.csv, args.plot):
        parser.error(f"--csv and --plot name the same file {args.csv!r}; the picture would replace the table")
    return {
        "space": _space(args, parser),
        "factory": args.factory,
        "epochs": args.epochs,
        "seed": args.seed,
        "backend": args.backend,
        "every": args.every,
        "batch_size": args.batch_size,
        "random": args.random,
        "random_seed": args.random_seed,
        "workers": args.workers,
        "dask": args.dask,
        "dask_timeout": args.dask_timeout,
        "csv": args.csv,
        "progress": False if args.no_progress else None,
        "batched": args.batched,
        "tensorboard": args.tensorboard,
        "mlflow": args.mlflow,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``nnx sweep [options]``: run the sweep, print the ranked table; returns the exit status (0 every trial
    trained, 1 some failed, 2 bad options, 130 interrupted)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        study = optuna_options(args, parser)
        options = _options(args, parser) if study is None else study
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if study is not None:
        return _optuna(study, args)
    if args.factory and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # `nnx` is a console script: find my_models.py here, as `python -m` would
    try:
        _check_plot(args)
        result = run(**options)
    except SweepInterrupted as interrupted:
        status = _report(interrupted.result, args)
        print(f"{interrupted}{f'; {args.csv} holds them' if args.csv else ''}", file=sys.stderr)
        return status or EXIT_INTERRUPTED
    except USER_ERRORS as error:
        return _fail(error)
    return _report(result, args) or (EXIT_FAILED if result.failed else EXIT_OK)


USER_ERRORS = (ValueError, TypeError, ImportError, OSError, backends.BackendUnavailableError)  # one line, status 1


def _check_plot(args: argparse.Namespace) -> None:
    """With --plot: matplotlib is there and the file can be written, checked before the trials, not after them."""
    if args.plot:
        colormaps_or_none()
        check_path(args.plot, f"{OWNER} --plot")


def _optuna(options: dict, args: argparse.Namespace) -> int:
    """``--optuna``: run the study, print the table and the best trial's ``examples/spiral.py`` command."""
    try:
        _check_plot(args)
        result = spiral_study(**options)
        if args.csv:
            result.to_csv(args.csv)
    except SweepInterrupted as interrupted:
        status = _report(interrupted.result, args)
        print(f"{interrupted}; run the same command again to resume", file=sys.stderr)
        return status or EXIT_INTERRUPTED
    except USER_ERRORS as error:
        return _fail(error)
    status = _report(result, args)
    print(best_command(result, options["epochs"], options["dtype"]))
    return status or (EXIT_FAILED if result.failed else EXIT_OK)


def _report(result: SweepResult, args: argparse.Namespace) -> int:
    """Print the table, save the plot; a non-zero status when the plot cannot be written."""
    print(result.table(), flush=True)
    errors = {trial["error"] for trial in result.trials}
    if result.trials and len(result.failed) == len(result.trials) and len(errors) == 1:
        print(f"{OWNER}: every trial failed: {errors.pop()}", file=sys.stderr)  # the whole message, once
    if args.csv:
        print(f"csv: {args.csv}")
    if args.plot:
        try:
            result.plot(args.plot)
        except (ImportError, OSError, ValueError) as error:
            return _fail(error)
        print(f"plot: {args.plot}")
    return 0


def _fail(error: Exception) -> int:
    message = " ".join(str(error).split())
    prefix = "" if message.startswith(OWNER) else f"{OWNER}: "
    print(f"{prefix}{message}", file=sys.stderr)
    return EXIT_USAGE
