"""The book's chapters 19-22 on any backend: a 784-128-128-10 classifier of Fashion-MNIST in mini-batches.

python examples/fashion_mnist.py --data path/to/fashion_mnist_images
"""

from __future__ import annotations

from _common import load_backend, parse, parser, run

import nnx
from nnx.datasets import fashion_mnist

LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def main(argv=None) -> None:
    options = parser(__doc__.splitlines()[0])
    options.add_argument("--data", required=True, help="folder with train/ and test/ PNGs, or the IDX files")
    options.add_argument("--epochs", type=int, default=10)
    options.add_argument("--batch-size", type=int, default=128)
    options.add_argument("--every", type=int, default=100, help="print every N steps")
    options.add_argument("--hidden", type=int, default=128)
    args = parse(options, argv, "epochs", "batch_size", "every", "hidden")
    backend = load_backend(args.backend)

    nnx.seed(args.seed)
    try:
        X, y, X_test, y_test = fashion_mnist(args.data)
    except (OSError, ValueError, ImportError) as error:
        options.exit(2, f"fashion_mnist.py: {error}\n")
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
