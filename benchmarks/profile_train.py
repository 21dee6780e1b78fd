"""Profile the chapter-10 spiral training (the layer loop, or Model.train) with pyinstrument and print the top lines.

python benchmarks/profile_train.py --size 30k --what loop [--generic] [--optimizer adam]
"""

from __future__ import annotations

import argparse
import time

from bench import OPTIMIZERS, SIZES, layer_loop, model_train, spiral

import nnx


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
    X, y = spiral(samples)
    if args.what == "loop":
        run = layer_loop("loop", backend, X, y, hidden, args.optimizer).run
    else:
        run = model_train("train", backend, X, y, hidden, args.optimizer, compiled=not args.generic).run
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
