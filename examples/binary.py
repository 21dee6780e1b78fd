"""The book's chapter 16 on any backend: binary logistic regression on two spiral classes.

python examples/binary.py --backend array_api_strict
"""

from __future__ import annotations

from _common import parser, positive, run

import nnx
from nnx.datasets import spiral_data


def main(argv=None) -> None:
    options = parser(__doc__)
    options.add_argument("--epochs", type=positive, default=10001, help="default: %(default)s")
    options.add_argument("--every", type=positive, default=100, help="print every N epochs (default: %(default)s)")
    options.add_argument("--lr", type=float, default=0.001, help="Adam's learning rate (default: %(default)s)")
    options.add_argument("--decay", type=float, default=5e-7, help="learning-rate decay (default: %(default)s)")
    args = options.parse_args(argv)
    backend = nnx.backends.get(args.backend)
    print(f"nnx: backend {backend.name} on {backend.device}")

    nnx.seed(0)
    X, y = spiral_data(samples=100, classes=2)
    X_test, y_test = spiral_data(samples=100, classes=2)
    y, y_test = y.reshape(-1, 1), y_test.reshape(-1, 1)  # one output per sample: the probability of class 1
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
