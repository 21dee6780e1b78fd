"""The book's chapter-10 network trained with the Model, exported to ONNX and run with onnxruntime (the onnx extra
writes the file; onnxruntime, or any ONNX runtime, runs it without nnx):

python examples/onnx_export.py                              # writes (or replaces) spiral.onnx
python examples/onnx_export.py --output model.onnx --epochs 2001 --backend array_api_strict
"""

from __future__ import annotations

from pathlib import Path

from _common import parser, positive, run

import nnx
from nnx.datasets import spiral_data


def main(argv=None) -> None:
    options = parser(__doc__)
    options.add_argument("--epochs", type=positive, default=10001, help="default: %(default)s")
    options.add_argument("--output", default="spiral.onnx", help="the ONNX file to write (default: %(default)s)")
    args = options.parse_args(argv)
    if not args.output.lower().endswith(".onnx") or not Path(args.output).absolute().parent.is_dir():
        options.error(f"--output needs a file name ending in .onnx in a folder that exists, got {args.output!r}")
    try:  # before training: the export needs onnx, running the file onnxruntime
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError as error:
        raise ImportError(f'this example needs {error.name}: pip install "nnx-nnfs[onnx]" onnxruntime') from None
    backend = nnx.backends.get(args.backend)
    print(f"nnx: backend {backend.name} on {backend.device}")

    nnx.seed(0)
    X, y = spiral_data(samples=100, classes=3)
    with nnx.backends.use(backend):
        model = nnx.Model()
        model.add(nnx.Dense(2, 64))
        model.add(nnx.ReLU())
        model.add(nnx.Dense(64, 3))
        model.add(nnx.Softmax())
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=nnx.SGD(learning_rate=1.0, decay=1e-3, momentum=0.9),
            accuracy=nnx.metrics.Categorical(),
        )
        model.finalize()
    model.train(X, y, epochs=args.epochs, print_every=None)
    path = model.export_onnx(args.output, overwrite=True)
    print(f"exported: {path}")

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probabilities = session.run(None, {"inputs": X.astype("float32")})[0]
    predicted = backend.to_numpy(model.predict(X))
    print(f"onnxruntime: {probabilities.shape[0]} rows, accuracy {(probabilities.argmax(axis=1) == y).mean():.3f}")
    print(f"largest difference from model.predict: {abs(probabilities - predicted).max():.2e}")


if __name__ == "__main__":
    run(main)
