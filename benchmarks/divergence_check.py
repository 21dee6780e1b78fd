"""What the divergence check costs: `Model.train` time for several `check_every` values vs (almost) never checking.

For the book's 2-64-3 spiral network on 300 samples and on 30 000 samples, each backend, each check_every:
a fresh model (same seed) trained with print_every=None, repeated and interleaved; the per-epoch time is the
median, the overhead the median of the per-repeat ratios to the "never" run of the same repeat. End-to-end
differences of 1% drown in timing noise (the "noise" line: median deviation of the "never" runs), so two
estimates scale one check's cost to check_every epochs of "never" training: "direct" times the check itself
(DivergenceGuard.on_step_end on a trained run, many times), "via 1" takes the (well measurable) difference
between check_every=1 and never. The recommendation uses the larger of the two.
Epochs shrink (to one significant digit) when the estimated run would exceed its share of --budget seconds;
the 300-sample model gets two thirds of each backend's share. On a busy machine, pin BLAS to one thread
(OPENBLAS_NUM_THREADS=1): an oversubscribed multi-threaded BLAS makes the 30 000-sample epochs 10-20x slower
and the timings useless.

    python benchmarks/divergence_check.py
    OPENBLAS_NUM_THREADS=1 python benchmarks/divergence_check.py --backend numpy --repeats 7 --budget 300
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import nnx
from nnx.callbacks import Callback, DivergenceGuard
from nnx.datasets import spiral_data
from nnx.training.loop import CHECK_EVERY

NEVER = 10**9
CHECKS = (1, 10, 100, 1000, NEVER)
RESULTS = Path(__file__).resolve().parent / "results"
CALIBRATION_EPOCHS = 30
CHECK_CALLS = 200  # direct timings of one check: batches of this many calls
CHECK_BATCHES = 5
SPIRAL_SHARE = 2 / 3  # of each backend's budget; the rest goes to the 30 000-sample model
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def build_model(backend) -> nnx.Model:
    with nnx.backends.use(backend):
        model = nnx.Model()
        for layer in (nnx.Dense(2, 64), nnx.ReLU(), nnx.Dense(64, 3), nnx.Softmax()):
            model.add(layer)
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=nnx.Adam(learning_rate=0.05, decay=5e-7),
            accuracy=nnx.metrics.Categorical(),
        )
        model.finalize()
    return model


def train_once(backend, data, epochs: int, check_every: int) -> tuple[float, float]:
    """Seconds for one `Model.train` call on a fresh model (same seed every time), and its final loss."""
    nnx.seed(0)
    model = build_model(backend)
    X, y = backend.asarray(data[0], dtype="float32"), backend.asarray(data[1])
    backend.synchronize()
    start = time.perf_counter()
    result = model.train(X, y, epochs=epochs, print_every=None, check_every=check_every)
    backend.synchronize()
    return time.perf_counter() - start, result["loss"]


def choose_epochs(backend, data, wanted: int, budget: float, repeats: int) -> tuple[int, float]:
    """`wanted` epochs, or fewer (one significant digit, at least 10) if the runs would exceed `budget` s."""
    train_once(backend, data, CALIBRATION_EPOCHS, NEVER)
    seconds, _ = train_once(backend, data, CALIBRATION_EPOCHS, NEVER)
    per_epoch = seconds / CALIBRATION_EPOCHS
    affordable = budget / (per_epoch * len(CHECKS) * repeats)
    if affordable >= wanted:
        return wanted, per_epoch
    scale = 10 ** max(1, len(str(int(affordable))) - 1)
    return max(10, int(affordable) // scale * scale), per_epoch


class CheckTimer(Callback):
    """At the end of a training run, times one divergence check (every parameter, the loss, the snapshot)."""

    def on_train_end(self, run):
        guard = DivergenceGuard(check_every=1)
        guard.on_train_begin(run)
        batches = []
        for _ in range(CHECK_BATCHES):
            run.model.backend.synchronize()
            start = time.perf_counter()
            for _ in range(CHECK_CALLS):
                guard.on_step_end(run)
            run.model.backend.synchronize()
            batches.append((time.perf_counter() - start) / CHECK_CALLS)
        self.seconds = statistics.median(batches)


def time_one_check(backend, data) -> float:
    """Seconds for one divergence check on a model trained a few epochs on `data`."""
    nnx.seed(0)
    model, timer = build_model(backend), CheckTimer()
    X, y = backend.asarray(data[0], dtype="float32"), backend.asarray(data[1])
    model.train(X, y, epochs=CALIBRATION_EPOCHS, print_every=None, check_every=NEVER, callbacks=[timer])
    return timer.seconds


def measure(backend, data, epochs: int, repeats: int) -> dict:
    """Per check_every: the times and final losses of `repeats` interleaved runs (order rotated each repeat)."""
    times = {check: [] for check in CHECKS}
    losses = {}
    for repeat in range(repeats):
        order = CHECKS[repeat % len(CHECKS) :] + CHECKS[: repeat % len(CHECKS)]
        for check in order:
            seconds, loss = train_once(backend, data, epochs, check)
            times[check].append(seconds)
            losses[check] = loss
    return {"times": times, "losses": losses, "check_seconds": time_one_check(backend, data)}


def noise_pct(seconds: list[float]) -> float:
    """Median absolute deviation of repeated timings, in percent of their median."""
    middle = statistics.median(seconds)
    return statistics.median(abs(value - middle) for value in seconds) / middle * 100


def summarize(measured: dict, epochs: int) -> list[dict]:
    times, losses, check_cost = measured["times"], measured["losses"], measured["check_seconds"]
    never = times[NEVER]
    base = statistics.median(never) / epochs
    via_one = statistics.median(t1 - t0 for t1, t0 in zip(times[1], never, strict=True)) / epochs
    rows = []
    for check in CHECKS:
        ratios = [t / t0 for t, t0 in zip(times[check], never, strict=True)]
        rows.append(
            {
                "check_every": check,
                "us_per_epoch": statistics.median(times[check]) / epochs * 1e6,
                "overhead_pct": (statistics.median(ratios) - 1) * 100,
                "estimated_pct": 0.0 if check == NEVER else check_cost / check / base * 100,
                "via_one_pct": 0.0 if check == NEVER else via_one / check / base * 100,
                "checks": epochs // check + 2,  # also one as training begins and one as it ends
                "same_loss": losses[check] == losses[NEVER],
                "loss": losses[check],
                "seconds": times[check],
            }
        )
    return rows


def print_table(title: str, rows: list[dict], measured: dict) -> None:
    print(title)
    never = next(row for row in rows if row["check_every"] == NEVER)
    print(
        f"one check: {measured['check_seconds'] * 1e6:.1f} us (timed directly); never: "
        f"{never['us_per_epoch']:.1f} us/epoch; noise: {noise_pct(never['seconds']):.1f}%"
    )
    print(f"{'check_every':>12}{'checks':>8}{'us/epoch':>11}{'overhead':>10}{'direct':>9}{'via 1':>9}{'same loss':>11}")
    for row in rows:
        name = "never" if row["check_every"] == NEVER else str(row["check_every"])
        print(
            f"{name:>12}{row['checks']:>8}{row['us_per_epoch']:>11.1f}{row['overhead_pct']:>+9.2f}%"
            f"{row['estimated_pct']:>8.2f}%{row['via_one_pct']:>8.2f}%{'yes' if row['same_loss'] else 'NO':>11}"
        )


def recommend(rows: list[dict], limit: float) -> int | None:
    """The smallest check_every whose two estimated overheads are both below `limit` percent."""
    for row in rows:
        if row["check_every"] != NEVER and max(row["estimated_pct"], row["via_one_pct"]) < limit:
            return row["check_every"]
    return None


def machine_info() -> dict:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "nnx": nnx.__version__,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "threads": {name: os.environ.get(name) for name in THREAD_VARIABLES},
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", help="backend to time (repeatable; default: every available)")
    parser.add_argument("--epochs", type=int, default=2000, help="epochs on the 300-sample spiral")
    parser.add_argument("--large-epochs", type=int, default=100, help="epochs on the 30 000-sample spiral")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=160.0, help="seconds for the whole run (roughly)")
    parser.add_argument("--limit", type=float, default=1.0, help="overhead percent for the recommendation")
    parser.add_argument("--output", default=str(RESULTS / "divergence_check.json"))
    return parser.parse_args(argv)


def time_model(backend, title: str, data, wanted: int, budget: float, args) -> dict:
    """Times one model on one backend, prints its table and recommendation; the JSON record of the run."""
    epochs, per_epoch = choose_epochs(backend, data, wanted, budget, args.repeats)
    measured = measure(backend, data, epochs, args.repeats)
    rows = summarize(measured, epochs)
    print_table(
        f"\n{backend.name} on {backend.device}, {title}: {epochs} epochs x {args.repeats} repeats", rows, measured
    )
    best = recommend(rows, args.limit)
    print(f"smallest check_every under {args.limit}% overhead: {best}")
    return {
        "backend": backend.name,
        "device": backend.device,
        "model": title,
        "epochs": epochs,
        "repeats": args.repeats,
        "calibrated_us_per_epoch": per_epoch * 1e6,
        "us_per_check": measured["check_seconds"] * 1e6,
        "recommended": best,
        "rows": rows,
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    names = args.backend or nnx.backends.available()
    share = args.budget / len(names)
    models = {
        "spiral 300": (100, args.epochs, share * SPIRAL_SHARE),
        "spiral 30000": (10_000, args.large_epochs, share * (1 - SPIRAL_SHARE)),
    }
    nnx.seed(0)
    datasets = {title: spiral_data(samples=samples, classes=3) for title, (samples, *_) in models.items()}
    record = {"benchmark": "divergence_check", "machine": machine_info(), "default_check_every": CHECK_EVERY}
    record["runs"] = [
        time_model(nnx.backends.get(name), title, datasets[title], wanted, budget, args)
        for name in names
        for title, (_, wanted, budget) in models.items()
    ]
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {path} (nnx default CHECK_EVERY = {CHECK_EVERY})")


if __name__ == "__main__":
    main()
