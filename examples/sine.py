"""The book's chapter 17 on any backend: regression of a sine wave with a 1-64-64-1 network.

python examples/sine.py --backend array_api_strict
python examples/sine.py --progress --plot sine.png
"""

from __future__ import annotations

from _common import everyday_options, load_backend, parse, parser, run, save_outputs, training_options

import nnx
from nnx.datasets import sine_data


def main(argv=None) -> None:
    options = parser(__doc__.splitlines()[0])
    training_options(options, epochs=10001, lr=0.005, decay=1e-3, every=100)
    everyday_options(options)
    args = parse(options, argv, "epochs", "every")
    backend = load_backend(args.backend)

    nnx.seed(args.seed)
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
    verbose = 1 if args.progress else None  # a progress bar instead of the book's lines
    metrics = model.train(X, y, epochs=args.epochs, print_every=args.every, verbose=verbose)
    print(f"done: mean squared error {metrics['data_loss']:.3g}, accuracy {metrics['accuracy']:.3f}")
    save_outputs(args, metrics, lambda plot: plot.regression(model, X, y, title=f"sine: {args.epochs} epochs of Adam"))


if __name__ == "__main__":
    run(main)
