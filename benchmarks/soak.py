"""Soak test: train the book's 2-64-3 spiral network for many epochs and check that memory stays flat.

One `Model.train` call with a memory-sampling callback: host RSS (and tracemalloc with --tracemalloc, and the
CuPy memory pool on cupy) at the start, every --sample-every epochs and at the end. Memory is flat when the
RSS at the end is within --threshold MiB of the RSS at the first sample (after warm-up); otherwise exit 1.
Writes benchmarks/results/soak-<backend>.json.

    python benchmarks/soak.py                                    # 100 000 epochs on $NNX_BACKEND or numpy
    python benchmarks/soak.py --backend array_api_strict --epochs 20000
    python benchmarks/soak.py --dropout 0.1 --checkpoint /tmp/soak.nnx --checkpoint-every 1000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

import nnx
from nnx.callbacks import Callback
from nnx.datasets import spiral_data

MIB = 1024 * 1024
RESULTS = Path(__file__).resolve().parent / "results"


def rss_bytes() -> int:
    """Current resident set size: /proc/self/statm where it exists, else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def pool_bytes(backend) -> int | None:
    """Bytes in use in CuPy's default memory pool, or None on other backends."""
    cupy = getattr(backend, "_cupy", None)
    return None if cupy is None else int(cupy.get_default_memory_pool().used_bytes())


class MemorySampler(Callback):
    """Records memory every `every` epochs, at the start and at the end of training (after a gc pass)."""

    def __init__(self, backend, every: int):
        self.backend, self.every = backend, every
        self.samples: list[dict] = []

    def on_train_begin(self, run):
        self.start = time.perf_counter()
        self._sample(run, 0, "start")

    def on_epoch_end(self, run):
        if not run.epoch % self.every and run.epoch != run.epochs:
            self._sample(run, run.epoch, "sample")

    def on_train_end(self, run):
        self._sample(run, run.completed_epoch, "end")

    def _sample(self, run, epoch: int, label: str) -> None:
        self.backend.synchronize()
        gc.collect()
        sample = {"label": label, "epoch": epoch, "seconds": time.perf_counter() - self.start, "rss": rss_bytes()}
        if tracemalloc.is_tracing():
            sample["traced_current"], sample["traced_peak"] = tracemalloc.get_traced_memory()
        pool = pool_bytes(self.backend)
        if pool is not None:
            sample["pool_used"] = pool
        if run.metrics:
            sample["loss"] = run.host_metrics()["loss"]
        self.samples.append(sample)


def build_model(backend, args) -> nnx.Model:
    with nnx.backends.use(backend):
        model = nnx.Model()
        model.add(nnx.Dense(2, 64))
        model.add(nnx.ReLU())
        if args.dropout:
            model.add(nnx.Dropout(args.dropout))
        model.add(nnx.Dense(64, 3))
        model.add(nnx.Softmax())
        optimizer = nnx.Adam(learning_rate=0.05, decay=5e-7) if args.optimizer == "adam" else nnx.SGD(1.0, 1e-3, 0.9)
        model.set(loss=nnx.CategoricalCrossentropy(), optimizer=optimizer, accuracy=nnx.metrics.Categorical())
        model.finalize()
    return model


def machine_info() -> dict:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "nnx": nnx.__version__,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "threads": {name: os.environ.get(name) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
    }


def growth(samples: list[dict], key: str) -> float | None:
    """Growth of `key` in MiB from the first sample after warm-up (or the start, if none) to the end."""
    baseline = next((s for s in samples if s["label"] == "sample"), samples[0])
    if key not in baseline:
        return None
    return (samples[-1][key] - baseline[key]) / MIB


def print_table(samples: list[dict]) -> None:
    baseline = next((s for s in samples if s["label"] == "sample"), samples[0])
    columns = [("epoch", 9), ("s", 8), ("ms/epoch", 10), ("RSS MiB", 9), ("dRSS MiB", 10)]
    names = (("traced_current", "traced MiB"), ("traced_peak", "peak MiB"), ("pool_used", "pool MiB"))
    extra = [(key, name) for key, name in names if key in baseline]
    columns += [(name, 12) for _, name in extra] + [("loss", 10)]
    print("".join(f"{name:>{width}}" for name, width in columns))
    previous = None
    for sample in samples:
        rate = "" if previous is None or sample["epoch"] == previous["epoch"] else _rate(previous, sample)
        row = f"{sample['epoch']:>9}{sample['seconds']:>8.1f}{rate:>10}{sample['rss'] / MIB:>9.1f}"
        row += f"{(sample['rss'] - baseline['rss']) / MIB:>+10.2f}"
        row += "".join(f"{sample[key] / MIB:>12.2f}" for key, _ in extra)
        print(row + (f"{sample['loss']:>10.4f}" if "loss" in sample else f"{'':>10}"))
        previous = sample


def _rate(previous: dict, sample: dict) -> str:
    return f"{(sample['seconds'] - previous['seconds']) / (sample['epoch'] - previous['epoch']) * 1e3:.3f}"


def verdict(samples: list[dict], threshold: float, epochs: int) -> bool:
    baseline = next((s for s in samples if s["label"] == "sample"), samples[0])
    span = samples[-1]["epoch"] - baseline["epoch"]
    rss = growth(samples, "rss")
    pool = growth(samples, "pool_used")
    flat = rss < threshold and (pool is None or pool < threshold)
    pool_text = "" if pool is None else f", CuPy pool {pool:+.2f} MiB"
    print(
        f"memory flat: {'yes' if flat else 'no'} (growth {rss:+.2f} MiB over {span} epochs after a {baseline['epoch']}"
        f"-epoch warm-up{pool_text}; threshold {threshold} MiB, {epochs} epochs in all)"
    )
    return flat


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=os.environ.get("NNX_BACKEND") or "numpy")
    parser.add_argument("--epochs", type=int, default=100_000)
    parser.add_argument("--sample-every", type=int, default=None, help="epochs between samples (default epochs/10)")
    parser.add_argument("--samples", type=int, default=100, help="samples per class (3 classes)")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout rate after the ReLU (0: none)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint to this path during training")
    parser.add_argument("--checkpoint-every", type=int, default=1000)
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    parser.add_argument("--threshold", type=float, default=5.0, help="MiB of RSS growth still called flat")
    parser.add_argument("--output", default=None, help="JSON path (default benchmarks/results/soak-<backend>.json)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.checkpoint_every < 1:
        parser.error("--epochs and --checkpoint-every must be at least 1")
    args.sample_every = args.sample_every or max(1, args.epochs // 10)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.tracemalloc:
        tracemalloc.start()
    backend = nnx.backends.get(args.backend)
    print(f"nnx: backend {backend.name} on {backend.device}; {args.epochs} epochs, {args.optimizer}")
    nnx.seed(args.seed)
    X, y = spiral_data(samples=args.samples, classes=3)
    model = build_model(backend, args)
    sampler = MemorySampler(backend, args.sample_every)
    checkpointing = {"checkpoint": args.checkpoint, "checkpoint_every": args.checkpoint_every}
    checkpointing = checkpointing if args.checkpoint else {}
    start = time.perf_counter()
    result = model.train(X, y, epochs=args.epochs, print_every=None, callbacks=[sampler], **checkpointing)
    seconds = time.perf_counter() - start
    print_table(sampler.samples)
    print(f"{seconds:.1f} s, {seconds / args.epochs * 1e3:.3f} ms/epoch; final {result}")
    flat = verdict(sampler.samples, args.threshold, args.epochs)
    write_json(args, backend, seconds, sampler.samples, result, flat)
    return 0 if flat else 1


def write_json(args, backend, seconds: float, samples: list[dict], result: dict, flat: bool) -> None:
    path = Path(args.output) if args.output else RESULTS / f"soak-{backend.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "soak",
        "machine": machine_info(),
        "backend": backend.name,
        "device": backend.device,
        "options": {key: value for key, value in vars(args).items() if key != "output"},
        "epochs": args.epochs,
        "seconds": seconds,
        "ms_per_epoch": seconds / args.epochs * 1e3,
        "rss_growth_mib": growth(samples, "rss"),
        "pool_growth_mib": growth(samples, "pool_used"),
        "flat": flat,
        "result": result,
        "samples": samples,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
