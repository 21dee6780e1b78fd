"""The book's chapter 16 on any backend: binary logistic regression on two spiral classes.

python examples/binary.py --backend array_api_strict
"""

from __future__ import annotations

from _common import load_backend, parse, parser, run, training_options

import nnx
from nnx.datasets import spiral_data


def main(argv=None) -> None:
    options = parser(__doc__.splitlines()[0])
    training_options(options, epochs=10001, lr=0.001, decay=5e-7, every=100)
    args = parse(options, argv, "epochs", "every")
    backend = load_backend(args.backend)

    nnx.seed(args.seed)
    X, y = spiral_data(samples=100, classes=2)
    X_test, y_test = spiral_data(samples=100, classes=2)
    y, y_test = y.reshape(-1, 1), y_test.reshape(-1, 1)
    with nnx.backends.use(backend):
        model = nnx.Model()
        model.add(nnx.Dense(2, 64, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4))
        model.add(nnx.ReLU())
        model.add(nnx.Dense(64, 1))
        model.add(nnx.Sigmoid())
        model.set(
            loss=nnx.BinaryCrossentropy(),
            optimizer=nnx.Adam(learning_rate=args.lr, decay=args.decay),
            accuracy=nnx.metrics.Categorical(binary=True),
        )
        model.finalize()
    model.train(X, y, epochs=args.epochs, print_every=args.every, validation_data=(X_test, y_test))


if __name__ == "__main__":
    run(main)
