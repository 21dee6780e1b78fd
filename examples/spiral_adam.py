"""The book's chapters 14-15 on any backend: spiral data, L2 regularization, optional dropout, Adam, validation.

python examples/spiral_adam.py                                  # chapter 14
python examples/spiral_adam.py --dropout 0.1 --lr 0.05 --decay 5e-5   # chapter 15
"""

from __future__ import annotations

from _common import everyday_options, load_backend, parse, parser, run, save_outputs, training_options

import nnx
from nnx.datasets import spiral_data


def main(argv=None) -> None:
    options = parser(__doc__.splitlines()[0])
    training_options(options, epochs=10001, lr=0.02, decay=5e-7, every=100)
    options.add_argument("--l2", type=float, default=5e-4, help="L2 penalty on the first layer's weights and biases")
    options.add_argument("--dropout", type=float, default=0.0, help="dropout rate after the ReLU (0: none)")
    options.add_argument("--hidden", type=int, default=64)
    options.add_argument("--samples", type=int, default=1000, help="training samples per class")
    everyday_options(options)
    args = parse(options, argv, "epochs", "hidden", "samples", "every")
    backend = load_backend(args.backend)

    nnx.seed(args.seed)
    X, y = spiral_data(samples=args.samples, classes=3)
    X_test, y_test = spiral_data(samples=100, classes=3)
    with nnx.backends.use(backend):
        model = nnx.Model()
        model.add(nnx.Dense(2, args.hidden, weight_regularizer_l2=args.l2, bias_regularizer_l2=args.l2))
        model.add(nnx.ReLU())
        if args.dropout:
            model.add(nnx.Dropout(args.dropout))
        model.add(nnx.Dense(args.hidden, 3))
        model.add(nnx.Softmax())
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=nnx.Adam(learning_rate=args.lr, decay=args.decay),
            accuracy=nnx.metrics.Categorical(),
        )
        model.finalize()
    verbose = 1 if args.progress else None  # a progress bar instead of the book's lines
    history = model.train(
        X, y, epochs=args.epochs, print_every=args.every, verbose=verbose, validation_data=(X_test, y_test)
    )
    title = "spiral, Adam: the test data"
    save_outputs(args, history, lambda plot: plot.summary(model, X_test, y_test, history, title=title))


if __name__ == "__main__":
    run(main)
