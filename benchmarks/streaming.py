"""Training from a Zarr store larger than the batch: peak memory and throughput against the same data in memory.

python benchmarks/streaming.py [--rows 10_000_000] [--batch 30_000] [--chunk 300_000] [--repeats 5]

(a) Memory: one epoch over stores of rows/10 and `rows` rows, with chunks of one batch and of `chunk` rows, each
    in a fresh process: its peak resident memory (ru_maxrss) minus its peak after training one batch of the same
    size in memory (so that the model, the compiled step and its scratch count in both), in MiB and in batches
    (inputs plus labels).
(b) Throughput: one epoch from a store and one from the same rows in memory, side by side in one process, batch
    `batch`, chunks of `chunk` rows, alternated `repeats` times; the ratio of the best times. Two stores: float32
    inputs without compression and uint8 labels (the layout the streaming how-to recommends), and Zarr's default
    codec with int64 labels. Each is read with `prefetch="auto"` (in line on the CPU for large batches) and with a
    reader thread two batches ahead (`prefetch=2`).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FEATURES, CLASSES, HIDDEN = 2, 3, 64
WRITE_ROWS = 1_000_000  # rows generated and written at a time
LAYOUTS = {"plain": (None, "uint8"), "default": ("default", "int64")}  # name: (inputs' codec, labels' dtype)


def open_for_writing(path: Path, shape: tuple, chunks: tuple, dtype: str, codec: str | None):
    """A Zarr array to write: Zarr's default codec, or none (`codec` None)."""
    import zarr

    if codec == "default":
        return zarr.open_array(str(path), mode="w", shape=shape, chunks=chunks, dtype=dtype)
    if hasattr(zarr, "create_array"):  # Zarr 3
        return zarr.create_array(str(path), shape=shape, chunks=chunks, dtype=dtype, compressors=None, overwrite=True)
    return zarr.open_array(str(path), mode="w", shape=shape, chunks=chunks, dtype=dtype, compressor=None)


def write_store(path: Path, rows: int, chunk: int, layout: str = "plain") -> None:
    """A spiral-like store of `rows` x 2 float32 inputs and labels, written a slab at a time."""
    codec, label_dtype = LAYOUTS[layout]
    X = open_for_writing(path / "X", (rows, FEATURES), (chunk, FEATURES), "float32", codec)
    y = open_for_writing(path / "y", (rows,), (chunk,), label_dtype, codec)
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


QUIET = {"print_every": None, "verbose": 0}


def peak_memory(store: str, batch: int) -> dict:
    """In a fresh process: peak RSS after one in-memory batch, then after one streamed epoch."""
    import zarr

    X, y = zarr.open_array(f"{store}/X", mode="r"), zarr.open_array(f"{store}/y", mode="r")
    model = build_model()
    model.train(X[:batch], y[:batch], batch_size=batch, **QUIET)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model.train(X, y, batch_size=batch, **QUIET)
    return {"baseline_kib": baseline, "streamed_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def epoch_times(stores: dict[str, str], batch: int, repeats: int) -> dict:
    """In one process: one epoch in memory and from each store (prefetch "auto" and 2), alternated `repeats` times."""
    import zarr

    arrays = {
        name: (zarr.open_array(f"{s}/X", mode="r"), zarr.open_array(f"{s}/y", mode="r")) for name, s in stores.items()
    }
    first = next(iter(arrays.values()))
    in_memory = (first[0][:], first[1][:])
    model = build_model()
    model.train(in_memory[0][:batch], in_memory[1][:batch], batch_size=batch, **QUIET)  # compile once
    runs = [("memory", in_memory, {})]
    runs += [(f"{name}, prefetch={p!r}", data, {"prefetch": p}) for name, data in arrays.items() for p in ("auto", 2)]
    times: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    for _ in range(repeats):
        for name, data, options in runs:
            start = time.perf_counter()
            model.train(*data, batch_size=batch, **options, **QUIET)
            times[name].append(time.perf_counter() - start)
    return {"times": times, "step": model.last_step}


def in_child(task: str, **arguments) -> dict:
    command = [sys.executable, __file__, "--child", json.dumps({"task": task, **arguments})]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1])


def memory_table(folder: Path, rows: int, batch: int, chunk: int) -> None:
    print(f"(a) peak memory of one streamed epoch, batch {batch:,}, above one in-memory batch (fresh processes):")
    batch_bytes = batch * (FEATURES * 4 + 1)  # float32 inputs and uint8 labels
    for n, chunk_rows in ((rows // 10, batch), (rows, batch), (3 * rows, batch), (rows, chunk)):
        store = folder / f"memory-{n}-{chunk_rows}.zarr"
        write_store(store, n, chunk_rows)
        peaks = in_child("memory", store=str(store), batch=batch)
        extra = (peaks["streamed_kib"] - peaks["baseline_kib"]) * 1024
        shutil.rmtree(store)
        print(
            f"    {n:>12,} rows, chunks of {chunk_rows:>9,} rows: +{extra / 2**20:5.1f} MiB = "
            f"{extra / batch_bytes:5.1f} batches ({batch_bytes / 1e3:.0f} kB each); the inputs are "
            f"{n * FEATURES * 4 / 1e6:.0f} MB"
        )


def speed_table(folder: Path, rows: int, batch: int, chunk: int, repeats: int) -> None:
    print(f"(b) one epoch of {rows:,} rows, batch {batch:,}, chunks of {chunk:,} rows (best of {repeats}):")
    stores = {}
    for layout in LAYOUTS:
        stores[layout] = str(folder / f"speed-{layout}.zarr")
        write_store(Path(stores[layout]), rows, chunk, layout)
        size = sum(f.stat().st_size for f in Path(stores[layout]).rglob("*") if f.is_file())
        codec, labels = LAYOUTS[layout]
        print(
            f"    store {layout!r}: inputs {'uncompressed' if codec is None else 'Zarr default codec'}, "
            f"{labels} labels, {size / 1e6:.0f} MB on disk"
        )
    result = in_child("speed", stores=stores, batch=batch, repeats=repeats)
    best = {name: min(values) for name, values in result["times"].items()}
    for name, seconds in best.items():
        median = sorted(result["times"][name])[repeats // 2]
        print(f"    {name:26s} {seconds:.3f} s (median {median:.3f}) -> {best['memory'] / seconds:4.0%} of in memory")
    print(f"    step: {result['step']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=30_000)
    parser.add_argument("--chunk", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-memory", action="store_true", help="only the throughput table")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        job = json.loads(options.child)
        task = job.pop("task")
        print(json.dumps(peak_memory(**job) if task == "memory" else epoch_times(**job)))
        return
    with tempfile.TemporaryDirectory() as folder:
        if not options.skip_memory:
            memory_table(Path(folder), options.rows, options.batch, options.chunk)
        speed_table(Path(folder), options.rows, options.batch, options.chunk, options.repeats)


if __name__ == "__main__":
    main()
