"""Training from a Zarr store larger than the batch: peak memory and throughput against the same data in memory.

python benchmarks/streaming.py [--rows 10_000_000] [--batch 30_000] [--chunk 300_000] [--repeats 2]

(a) Memory: one epoch over a store of `rows` x 2 float32 features, in a fresh process; its peak resident memory
    (ru_maxrss) minus that of a baseline process that imports the same libraries, builds the same model and trains
    one in-memory batch (so that the compiled step's own memory counts in both), compared with one batch in bytes
    and with the store's size.
(b) Throughput: one epoch from the store (chunks of `chunk` rows) and one from the same rows in memory, side by side
    in one process, batch `batch`, alternated `repeats` times; the ratio of the best times.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FEATURES, CLASSES, HIDDEN = 2, 3, 64
WRITE_ROWS = 1_000_000  # rows generated and written at a time


def write_store(path: Path, rows: int, chunk: int) -> None:
    """A spiral-like store of `rows` x 2 float32 inputs and int64 labels, written a slab at a time."""
    import zarr

    X = zarr.open_array(str(path / "X"), mode="w", shape=(rows, FEATURES), chunks=(chunk, FEATURES), dtype="float32")
    y = zarr.open_array(str(path / "y"), mode="w", shape=(rows,), chunks=(chunk,), dtype="int64")
    rng = np.random.default_rng(0)
    for start in range(0, rows, WRITE_ROWS):
        n = min(WRITE_ROWS, rows - start)
        labels = rng.integers(0, CLASSES, size=n)
        radius = rng.random(n)
        angle = labels * 4.0 + radius * 4.0 + rng.normal(scale=0.2, size=n)
        X[start : start + n] = np.stack([radius * np.sin(angle * 2.5), radius * np.cos(angle * 2.5)], axis=1)
        y[start : start + n] = labels


def build_model():
    import nnx

    nnx.seed(0)
    model = nnx.Model(xp="numpy")
    model.add(nnx.Dense(FEATURES, HIDDEN, dtype="float32"))
    model.add(nnx.ReLU())
    model.add(nnx.Dense(HIDDEN, CLASSES, dtype="float32"))
    model.add(nnx.Softmax())
    model.set(
        loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam(learning_rate=0.02), accuracy=nnx.metrics.Categorical()
    )
    model.finalize()
    return model


def child(mode: str, store: str, batch: int, repeats: int) -> dict:
    """What one fresh process measures: "baseline" or "stream" (peak memory), or "speed" (both epochs timed)."""
    import zarr

    X, y = zarr.open_array(f"{store}/X", mode="r"), zarr.open_array(f"{store}/y", mode="r")
    model = build_model()
    quiet = {"print_every": None, "verbose": 0}
    if mode == "baseline":
        model.train(X[:batch], y[:batch], batch_size=batch, **quiet)
    elif mode == "stream":
        model.train(X, y, batch_size=batch, **quiet)
    else:
        X_memory, y_memory = X[:], y[:]
        model.train(X_memory[:batch], y_memory[:batch], batch_size=batch, **quiet)  # compile once
        times: dict[str, list[float]] = {"memory": [], "zarr": []}
        for _ in range(repeats):
            for name, data in (("memory", (X_memory, y_memory)), ("zarr", (X, y))):
                start = time.perf_counter()
                model.train(*data, batch_size=batch, **quiet)
                times[name].append(time.perf_counter() - start)
        return {"times": times, "step": model.last_step}
    return {"max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def run_child(mode: str, store: Path, batch: int, repeats: int) -> dict:
    command = [sys.executable, __file__, "--child", mode, "--store", str(store), "--batch", str(batch)]
    command += ["--repeats", str(repeats)]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=30_000)
    parser.add_argument("--chunk", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", choices=("baseline", "stream", "speed"))
    parser.add_argument("--store")
    options = parser.parse_args()
    if options.child:
        print(json.dumps(child(options.child, options.store, options.batch, options.repeats)))
        return
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "spiral.zarr"
        start = time.perf_counter()
        write_store(store, options.rows, options.chunk)
        written = time.perf_counter() - start
        on_disk = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        baseline = run_child("baseline", store, options.batch, 1)["max_rss_kib"]
        streamed = run_child("stream", store, options.batch, 1)["max_rss_kib"]
        speed = run_child("speed", store, options.batch, options.repeats)
    batch_bytes = options.batch * FEATURES * 4
    data_bytes = options.rows * FEATURES * 4
    extra = (streamed - baseline) * 1024
    best = {name: min(values) for name, values in speed["times"].items()}
    print(
        f"store: {options.rows:,} rows x {FEATURES} float32 ({data_bytes / 1e6:.0f} MB of inputs, "
        f"{on_disk / 1e6:.0f} MB on disk, chunks of {options.chunk:,} rows), written in {written:.1f} s"
    )
    print(
        f"(a) peak RSS: baseline {baseline / 1024:.0f} MiB, one streamed epoch {streamed / 1024:.0f} MiB: "
        f"+{extra / 2**20:.1f} MiB = {extra / batch_bytes:.1f} x one batch ({batch_bytes / 1e3:.0f} kB), "
        f"{extra / data_bytes:.1%} of the inputs"
    )
    print(
        f"(b) one epoch, batch {options.batch:,}: in memory {best['memory']:.2f} s, from Zarr {best['zarr']:.2f} s "
        f"-> {best['memory'] / best['zarr']:.0%} of the in-memory speed "
        f"({options.rows / best['zarr'] / 1e6:.2f} M rows/s)"
    )
    print(f"    all times: {speed['times']}")
    print(f"    step: {speed['step']}")


if __name__ == "__main__":
    main()
