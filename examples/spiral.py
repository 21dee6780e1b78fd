"""The book's chapter-10 run on any backend: a 2-64-3 network learns the spiral data with SGD.

python examples/spiral.py --backend array_api_strict --epochs 1001
"""

from __future__ import annotations

import argparse
import time

from _common import load_backend, parser, require_positive, run, training_options

import nnx
from nnx.datasets import spiral_data


def parse_args(argv=None) -> argparse.Namespace:
    options = parser(__doc__.splitlines()[0])
    training_options(options, epochs=10001, lr=1.0, decay=0.0, every=100)
    options.add_argument("--hidden", type=int, default=64, help="neurons in the hidden layer")
    options.add_argument("--samples", type=int, default=100, help="samples per class")
    options.add_argument("--classes", type=int, default=3)
    options.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = options.parse_args(argv)
    require_positive(options, args, "epochs", "every", "hidden", "samples", "classes")
    return args


def train(args: argparse.Namespace, backend: nnx.backends.Backend) -> None:
    nnx.seed(args.seed)
    X_host, y_host = spiral_data(samples=args.samples, classes=args.classes)
    X, y = backend.asarray(X_host, dtype=args.dtype), backend.asarray(y_host)
    with nnx.backends.use(backend):
        dense1 = nnx.Dense(2, args.hidden, dtype=args.dtype)
        activation1 = nnx.ReLU()
        dense2 = nnx.Dense(args.hidden, args.classes, dtype=args.dtype)
        loss_activation = nnx.SoftmaxCategoricalCrossentropy()
        optimizer = nnx.SGD(learning_rate=args.lr, decay=args.decay)

    with backend.quiet_float_errors():  # too high a learning rate is reported by nnx.check_finite below
        _loop(args, backend, X, y, dense1, activation1, dense2, loss_activation, optimizer)


def _loop(args, backend, X, y, dense1, activation1, dense2, loss_activation, optimizer) -> None:
    start = time.perf_counter()
    for epoch in range(args.epochs):
        dense1.forward(X)
        activation1.forward(dense1.output)
        dense2.forward(activation1.output)
        loss = loss_activation.forward(dense2.output, y)
        if epoch % args.every == 0 or epoch == args.epochs - 1:
            acc = nnx.accuracy(loss_activation.output, y)
            nnx.check_finite(loss, [dense1, dense2], epoch=epoch)  # stops with a clear error if the lr is too high
            line = f"epoch: {epoch}, acc: {_host(backend, acc):.3f}, loss: {_host(backend, loss):.3f}"
            if epoch % args.every == 0:
                print(line + (f", lr: {optimizer.current_learning_rate}" if args.decay else ""))
        loss_activation.backward(loss_activation.output, y)
        dense2.backward(loss_activation.dinputs)
        activation1.backward(dense2.dinputs)
        dense1.backward(activation1.dinputs)
        optimizer.pre_update_params()
        optimizer.update_params(dense1)
        optimizer.update_params(dense2)
        optimizer.post_update_params()
    backend.synchronize()
    elapsed = time.perf_counter() - start
    print(
        f"done: {args.epochs} epochs, final acc: {_host(backend, acc):.3f}, loss: {_host(backend, loss):.3f}, "
        f"{elapsed:.2f} s"
    )


def _host(backend: nnx.backends.Backend, value) -> float:
    """The explicit device -> host copy of a metric, made only when it is printed."""
    return float(backend.to_numpy(value))


def main(argv=None) -> None:
    args = parse_args(argv)
    train(args, load_backend(args.backend))


if __name__ == "__main__":
    run(main)
