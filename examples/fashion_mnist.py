"""The book's chapters 19-22 on any backend: a 784-128-128-10 classifier of Fashion-MNIST in mini-batches.

python examples/fashion_mnist.py --data path/to/fashion_mnist_images
"""

from __future__ import annotations

from _common import parser, positive, run

import nnx
from nnx.datasets import fashion_mnist

LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def main(argv=None) -> None:
    options = parser(__doc__)
    options.add_argument("--data", required=True, help="folder with train/ and test/ PNGs, or the IDX files")
    options.add_argument("--epochs", type=positive, default=10, help="default: %(default)s")
    options.add_argument("--batch-size", type=positive, default=128, help="default: %(default)s")
    options.add_argument("--every", type=positive, default=100, help="print every N steps (default: %(default)s)")
    options.add_argument("--hidden", type=positive, default=128, help="neurons in each hidden layer (default: 128)")
    args = options.parse_args(argv)
    backend = nnx.backends.get(args.backend)
    print(f"nnx: backend {backend.name} on {backend.device}")

    nnx.seed(0)
    X, y, X_test, y_test = fashion_mnist(args.data)
    with nnx.backends.use(backend):
        model = nnx.Model()
        model.add(nnx.Dense(X.shape[1], args.hidden))
        model.add(nnx.ReLU())
        model.add(nnx.Dense(args.hidden, args.hidden))
        model.add(nnx.ReLU())
        model.add(nnx.Dense(args.hidden, len(LABELS)))
        model.add(nnx.Softmax())
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=nnx.Adam(decay=1e-3),
            accuracy=nnx.metrics.Categorical(),
        )
        model.finalize()
    model.train(
        X, y, validation_data=(X_test, y_test), epochs=args.epochs, batch_size=args.batch_size, print_every=args.every
    )
    confidences = model.predict(X_test[:5])
    predictions = backend.to_numpy(model.output_layer_activation.predictions(confidences))
    for predicted, actual in zip(predictions, y_test[:5], strict=True):
        print(f"predicted: {LABELS[int(predicted)]}, actual: {LABELS[int(actual)]}")


if __name__ == "__main__":
    run(main)
