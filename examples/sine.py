"""The book's chapter 17 on any backend: regression of a sine wave with a 1-64-64-1 network.

python examples/sine.py --backend array_api_strict
"""

from __future__ import annotations

from _common import load_backend, parser, require_positive, run, training_options

import nnx
from nnx.datasets import sine_data


def main(argv=None) -> None:
    options = parser(__doc__.splitlines()[0])
    training_options(options, epochs=10001, lr=0.005, decay=1e-3, every=100)
    args = options.parse_args(argv)
    require_positive(options, args, "epochs", "every")
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
    metrics = model.train(X, y, epochs=args.epochs, print_every=args.every)
    print(f"done: mean squared error {metrics['data_loss']:.3g}, accuracy {metrics['accuracy']:.3f}")


if __name__ == "__main__":
    run(main)
