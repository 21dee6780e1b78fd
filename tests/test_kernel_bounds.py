"""The compiled kernels never index outside an array: every head, dropout, partial tiles and batches, float64, and a
stack whose rows split across the threads, run once with Numba's bounds checks on (a fresh process with a cache of
its own: the checks are compiled in, so the kernels compile again; about a minute)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("numba", reason="the compiled kernels need numba (the 'fast' extra)")

SCRIPT = textwrap.dedent(
    """
    import numba
    import numpy as np

    import nnx
    from nnx.backends import numba_step
    from nnx.datasets import sine_data, spiral_data

    numba_step.PARALLEL_MIN_ROWS, numba_step.MIN_CHUNK_ROWS = 2, 8  # rows split across the threads
    HEADS = {
        "softmax": (nnx.Softmax, nnx.CategoricalCrossentropy, nnx.metrics.Categorical, 3),
        "sigmoid": (nnx.Sigmoid, nnx.BinaryCrossentropy, lambda: nnx.metrics.Categorical(binary=True), 1),
        "linear": (nnx.Linear, nnx.MeanSquaredError, nnx.metrics.Regression, 1),
    }

    def build(head, dtype, dropout, inputs):
        activation, loss, accuracy, outputs = HEADS[head]
        model = nnx.Model()
        for layer in (
            nnx.Dense(inputs, 21, dtype=dtype), nnx.ReLU(), nnx.Dropout(dropout), nnx.Dense(21, 6, dtype=dtype),
            nnx.ReLU(), nnx.Dense(6, outputs, dtype=dtype), activation(),
        ):
            model.add(layer)
        model.set(loss=loss(), optimizer=nnx.Adam(learning_rate=0.01), accuracy=accuracy())
        model.finalize()
        return model

    for head in HEADS:
        for dtype in ("float32", "float64"):
            nnx.seed(0)
            if head == "linear":
                X, y = sine_data(samples=537)
            else:
                X, y = spiral_data(samples=179, classes=3 if head == "softmax" else 2)
                y = y if head == "softmax" else y.reshape(-1, 1)
            for dropout, batch_size in ((0.0, None), (0.3, 100)):
                model = build(head, dtype, dropout, X.shape[1])
                assert model.explain_step(X, y).startswith("compiled step"), model.explain_step(X, y)
                model.train(X, y, epochs=2, batch_size=batch_size, print_every=None)
                models = [build(head, dtype, dropout, X.shape[1]) for _ in range(3)]
                nnx.train_many(models, X, y, epochs=2, batch_size=batch_size, print_every=None, seed=1)
    print("in bounds on", numba.get_num_threads(), "threads")
    """
)


def test_the_kernels_stay_in_bounds(tmp_path):
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path), "NNX_BACKEND": "numpy"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=900, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "in bounds on" in result.stdout
