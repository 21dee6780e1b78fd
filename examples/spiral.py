"""NNX_BACKEND=cupy python examples/spiral.py: the book's chapter 10 on any array backend.

    python examples/spiral.py --backend array_api_strict --epochs 1001
    python examples/spiral.py --decay 1e-3 --momentum 0.9 --plot spiral.png

The book's script with `xp`, the backend's array library, where the book has `np`: a 2-64-3 network learns the
spiral data with SGD. The data is made on the host and copied to the device once; numbers come back to the host
only on the epochs that print: the book's log (epoch: 0, acc: 0.360, loss: 1.099, ...) on every backend.
`nnx.recipes.train_spiral`, what `nnx sweep` runs, is this loop as a function and gives the same numbers.
"""

from __future__ import annotations

from _common import check_outputs, parser, positive, run

import nnx
from nnx.datasets import spiral_data


def main(argv=None) -> None:
    options = parser(__doc__)
    options.add_argument("--epochs", type=positive, default=10001, help="printed every 100 (default: %(default)s)")
    options.add_argument("--lr", type=float, default=1.0, help="SGD's learning rate (default: %(default)s)")
    options.add_argument("--decay", type=float, default=0.0, help="learning-rate decay (default: %(default)s)")
    options.add_argument("--momentum", type=float, default=0.0, help="SGD's momentum (default: %(default)s)")
    options.add_argument("--hidden", type=positive, default=64, help="hidden-layer width (default: %(default)s)")
    options.add_argument(
        "--dtype", default="float32", choices=["float32", "float64"], help="the arrays' dtype (default: %(default)s)"
    )
    options.add_argument("--plot", metavar="PNG", help="save the decision boundary and the curves (needs matplotlib)")
    args = options.parse_args(argv)
    check_outputs(options, args)
    backend = nnx.backends.get(args.backend)
    xp = backend.xp
    print(f"nnx: backend {backend.name} on {backend.device}")

    nnx.seed(0)  # as the book's nnfs.init(): NumPy's global RNG draws the data and the weights
    X_host, y_host = spiral_data(samples=100, classes=3)
    X, y = backend.asarray(X_host, dtype=args.dtype), backend.asarray(y_host)

    dense1 = nnx.Dense(2, args.hidden, xp=backend, dtype=args.dtype)
    activation1 = nnx.ReLU(xp=backend)
    dense2 = nnx.Dense(args.hidden, 3, xp=backend, dtype=args.dtype)
    loss_activation = nnx.SoftmaxCategoricalCrossentropy(xp=backend)
    optimizer = nnx.SGD(learning_rate=args.lr, decay=args.decay, momentum=args.momentum, xp=backend)
    history = nnx.callbacks.History()  # the printed numbers, for --plot

    with backend.quiet_float_errors():  # no NumPy warnings: check_finite reports a NaN or an overflow
        for epoch in range(args.epochs):
            dense1.forward(X)
            activation1.forward(dense1.output)
            dense2.forward(activation1.output)
            loss = loss_activation.forward(dense2.output, y)

            predictions = xp.argmax(loss_activation.output, axis=1)
            accuracy = xp.mean(xp.astype(predictions == y, xp.float32))

            if not epoch % 100:
                nnx.check_finite(loss, [dense1, dense2], epoch=epoch)  # a DivergenceError if the loss is NaN or inf
                acc, loss = float(backend.to_numpy(accuracy)), float(backend.to_numpy(loss))  # device -> host
                print(f"epoch: {epoch}, acc: {acc:.3f}, loss: {loss:.3f}")
                history.record(epoch, loss=loss, accuracy=acc, lr=optimizer.current_learning_rate)

            loss_activation.backward(loss_activation.output, y)
            dense2.backward(loss_activation.dinputs)
            activation1.backward(dense2.dinputs)
            dense1.backward(activation1.dinputs)

            optimizer.pre_update_params()
            optimizer.update_params(dense1)
            optimizer.update_params(dense2)
            optimizer.post_update_params()

    if args.plot is not None:

        def scores(points):  # the network's outputs for host points: what the decision boundary colours
            dense1.forward(backend.asarray(points, dtype=args.dtype))
            activation1.forward(dense1.output)
            dense2.forward(activation1.output)
            return dense2.output

        title = f"spiral: SGD(lr={args.lr:g}, decay={args.decay:g}, momentum={args.momentum:g}), {args.epochs} epochs"
        nnx.plot.save(nnx.plot.summary(scores, X_host, y_host, history, title=title), args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    run(main)
