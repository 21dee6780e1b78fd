"""The book's chapter-10 run on any backend: a 2-64-3 network learns the spiral data with SGD.

python examples/spiral.py --backend array_api_strict --epochs 1001
python examples/spiral.py --progress --plot spiral.png --history spiral.csv

The loop itself is `nnx.recipes.train_spiral` (Dense, ReLU, Dense, softmax + cross-entropy, SGD, the book's
order), the same function `nnx sweep` runs, so a sweep's numbers are this script's.
"""

from __future__ import annotations

import argparse

from _common import everyday_options, load_backend, parse, parser, run, save_outputs, training_options

import nnx
from nnx.recipes import train_spiral


def parse_args(argv=None) -> argparse.Namespace:
    options = parser(__doc__.splitlines()[0])
    training_options(options, epochs=10001, lr=1.0, decay=0.0, every=100)
    options.add_argument("--momentum", type=float, default=0.0, help="SGD momentum")
    options.add_argument("--hidden", type=int, default=64, help="neurons in the hidden layer")
    options.add_argument("--samples", type=int, default=100, help="samples per class")
    options.add_argument("--classes", type=int, default=3)
    options.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    everyday_options(options)
    args = parse(options, argv, "epochs", "every", "hidden", "samples", "classes")
    return args


def train(args: argparse.Namespace, backend: nnx.backends.Backend):
    progress = nnx.callbacks.ProgressBar() if args.progress else None

    def show(epoch: int, values: dict) -> None:
        if epoch % args.every == 0:
            line = f"epoch: {epoch}, acc: {values['accuracy']:.3f}, loss: {values['loss']:.3f}"
            line += f", lr: {values['lr']}" if args.decay else ""
            if progress is not None:
                progress.write(line)
            else:
                print(line, flush=True)

    result = train_spiral(
        lr=args.lr,
        decay=args.decay,
        momentum=args.momentum,
        epochs=args.epochs,
        hidden=args.hidden,
        samples=args.samples,
        classes=args.classes,
        seed=args.seed,
        dtype=args.dtype,
        every=args.every,
        backend=backend,
        on_record=show,
        progress=progress,
    )
    final = result.final
    print(
        f"done: {args.epochs} epochs, final acc: {final['accuracy']:.3f}, loss: {final['loss']:.3f}, "
        f"{result.seconds:.2f} s"
    )
    return result


def draw(args: argparse.Namespace, result):
    """The decision boundary and the curves of a `train_spiral` result, in one figure."""
    momentum = f", momentum={args.momentum:g}" if args.momentum else ""
    title = f"spiral: lr={args.lr:g}, decay={args.decay:g}{momentum}, {args.epochs} epochs"
    return lambda plot: plot.summary(result.network.predict, result.X, result.y, result.history, title=title)


def main(argv=None) -> None:
    args = parse_args(argv)
    result = train(args, load_backend(args.backend))
    save_outputs(args, result.history, draw(args, result))


if __name__ == "__main__":
    run(main)
