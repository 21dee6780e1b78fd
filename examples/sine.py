"""The book's chapter 17 on any backend: regression of a sine wave with a 1-64-64-1 network.

python examples/sine.py --backend array_api_strict
python examples/sine.py --progress --plot sine.png --history sine.csv
"""

from __future__ import annotations

from _common import check_outputs, parser, positive, run

import nnx
from nnx.datasets import sine_data


def main(argv=None) -> None:
    options = parser(__doc__)
    options.add_argument("--epochs", type=positive, default=10001, help="default: %(default)s")
    options.add_argument("--every", type=positive, default=100, help="print every N epochs (default: %(default)s)")
    options.add_argument("--lr", type=float, default=0.005, help="Adam's learning rate (default: %(default)s)")
    options.add_argument("--decay", type=float, default=1e-3, help="learning-rate decay (default: %(default)s)")
    options.add_argument("--progress", action="store_true", help="a progress bar instead of the book's lines")
    options.add_argument("--plot", metavar="PNG", help="save the data and the fitted curve (needs matplotlib)")
    options.add_argument("--history", metavar="FILE", help="save the recorded metrics as .csv or .json")
    args = options.parse_args(argv)
    check_outputs(options, args)
    backend = nnx.backends.get(args.backend)
    print(f"nnx: backend {backend.name} on {backend.device}")

    nnx.seed(0)
    X, y = sine_data()
    with nnx.backends.use(backend):
        model = nnx.Model()
        model.add(nnx.Dense(1, 64, weight_scale=0.1))
        model.add(nnx.ReLU())
        model.add(nnx.Dense(64, 64, weight_scale=0.1))
        model.add(nnx.ReLU())
        model.add(nnx.Dense(64, 1, weight_scale=0.1))
        model.add(nnx.Linear())
        model.set(
            loss=nnx.MeanSquaredError(),
            optimizer=nnx.Adam(learning_rate=args.lr, decay=args.decay),
            accuracy=nnx.metrics.Regression(),
        )
        model.finalize()
    verbose = 1 if args.progress else None  # None: the book's lines every --every epochs
    history = model.train(X, y, epochs=args.epochs, print_every=args.every, verbose=verbose)
    print(f"done: mean squared error {history['data_loss']:.3g}, accuracy {history['accuracy']:.3f}")
    if args.history is not None:
        save = history.to_csv if args.history.lower().endswith(".csv") else history.to_json
        print(f"history: {save(args.history)}")
    if args.plot is not None:
        nnx.plot.save(nnx.plot.regression(model, X, y, title=f"sine: {args.epochs} epochs of Adam"), args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    run(main)
