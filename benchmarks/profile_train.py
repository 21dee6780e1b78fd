"""Profile the chapter-10 spiral training (the layer loop, or Model.train) with pyinstrument and print the top lines.

python benchmarks/profile_train.py --size 30k --what loop [--generic] [--optimizer adam]
"""

from __future__ import annotations

import argparse
import time

import nnx
from nnx.datasets import spiral_data

SIZES = {"spiral-300": (300, 64), "30k": (30_000, 64), "300k": (300_000, 512)}
OPTIMIZERS = {"sgd": lambda: nnx.SGD(learning_rate=1.0), "adam": lambda: nnx.Adam(learning_rate=0.02, decay=1e-5)}


def layer_loop(X, y, hidden: int, optimizer):
    dense1, relu, dense2 = nnx.Dense(2, hidden), nnx.ReLU(), nnx.Dense(hidden, 3)
    head = nnx.SoftmaxCategoricalCrossentropy()

    def epoch() -> None:
        dense1.forward(X)
        relu.forward(dense1.output)
        dense2.forward(relu.output)
        head.forward(dense2.output, y)
        head.backward(head.output, y)
        dense2.backward(head.dinputs)
        relu.backward(dense2.dinputs)
        dense1.backward(relu.dinputs)
        optimizer.pre_update_params()
        optimizer.update_params(dense1)
        optimizer.update_params(dense2)
        optimizer.post_update_params()

    return lambda epochs: [epoch() for _ in range(epochs)]


def model_train(X, y, hidden: int, optimizer):
    model = nnx.Model()
    for layer in (nnx.Dense(2, hidden), nnx.ReLU(), nnx.Dense(hidden, 3), nnx.Softmax()):
        model.add(layer)
    model.set(loss=nnx.CategoricalCrossentropy(), optimizer=optimizer, accuracy=nnx.metrics.Categorical())
    model.finalize()
    return lambda epochs: model.train(X, y, epochs=epochs, print_every=None)


def main() -> None:
    from pyinstrument import Profiler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="30k")
    parser.add_argument("--what", choices=("loop", "train"), default="loop")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    parser.add_argument("--generic", action="store_true", help="the generic kernels only (no fast path)")
    parser.add_argument("--seconds", type=float, default=5.0, help="about how long to profile")
    args = parser.parse_args()
    samples, hidden = SIZES[args.size]
    backend = nnx.backends.get("numpy")
    backend = backend.reference() if args.generic else backend
    nnx.seed(0)
    X, y = spiral_data(samples=samples // 3, classes=3)
    X, y = backend.asarray(X, dtype="float32"), backend.asarray(y)
    with nnx.backends.use(backend):
        build = layer_loop if args.what == "loop" else model_train
        run = build(X, y, hidden, OPTIMIZERS[args.optimizer]())
    run(3)
    start = time.perf_counter()
    run(3)
    epochs = max(3, int(args.seconds / ((time.perf_counter() - start) / 3)))
    profiler = Profiler(interval=0.0002)
    with profiler:
        run(epochs)
    print(f"{args.what} at {args.size} ({args.optimizer}, {'generic' if args.generic else 'fast'}), {epochs} epochs")
    print(profiler.output_text(unicode=False, color=False, show_all=False))


if __name__ == "__main__":
    main()
