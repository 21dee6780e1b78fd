"""The book's chapters 14-15 on any backend: spiral data, L2 regularization, optional dropout, Adam, validation.

python examples/spiral_adam.py                                        # chapter 14
python examples/spiral_adam.py --dropout 0.1 --lr 0.05 --decay 5e-5   # chapter 15
python examples/spiral_adam.py --progress --plot spiral.png --history spiral.csv
"""

from __future__ import annotations

from _common import check_outputs, parser, positive, run

import nnx
from nnx.datasets import spiral_data


def main(argv=None) -> None:
    options = parser(__doc__)
    options.add_argument("--epochs", type=positive, default=10001, help="default: %(default)s")
    options.add_argument("--every", type=positive, default=100, help="print every N epochs (default: %(default)s)")
    options.add_argument("--lr", type=float, default=0.02, help="Adam's learning rate (default: %(default)s)")
    options.add_argument("--decay", type=float, default=5e-7, help="learning-rate decay (default: %(default)s)")
    options.add_argument("--dropout", type=float, default=0.0, help="dropout rate after the ReLU (default: none)")
    options.add_argument("--progress", action="store_true", help="a progress bar instead of the book's lines")
    options.add_argument("--plot", metavar="PNG", help="save the decision boundary and the curves (needs matplotlib)")
    options.add_argument("--history", metavar="FILE", help="save the recorded metrics as .csv or .json")
    args = options.parse_args(argv)
    check_outputs(options, args)
    backend = nnx.backends.get(args.backend)
    print(f"nnx: backend {backend.name} on {backend.device}")

    nnx.seed(0)
    X, y = spiral_data(samples=1000, classes=3)
    X_test, y_test = spiral_data(samples=100, classes=3)
    with nnx.backends.use(backend):
        model = nnx.Model()
        model.add(nnx.Dense(2, 64, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4))
        model.add(nnx.ReLU())
        if args.dropout:
            model.add(nnx.Dropout(args.dropout))
        model.add(nnx.Dense(64, 3))
        model.add(nnx.Softmax())
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=nnx.Adam(learning_rate=args.lr, decay=args.decay),
            accuracy=nnx.metrics.Categorical(),
        )
        model.finalize()
    verbose = 1 if args.progress else None  # None: the book's lines every --every epochs
    history = model.train(
        X, y, epochs=args.epochs, print_every=args.every, verbose=verbose, validation_data=(X_test, y_test)
    )
    if args.history is not None:
        save = history.to_csv if args.history.lower().endswith(".csv") else history.to_json
        print(f"history: {save(args.history)}")
    if args.plot is not None:
        nnx.plot.save(nnx.plot.summary(model, X_test, y_test, history, title="spiral, Adam: the test data"), args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    run(main)
