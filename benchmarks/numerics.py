"""How long the book's chapter-10 spiral run prints the same digits: NumPy against JAX, float32 against float64.

python benchmarks/numerics.py [--epochs 1001] [--out docs/data/numerics.json] [--no-jax] [--no-compiled]
python benchmarks/numerics.py --epochs 10001 --no-raw --out docs/data/numerics-10001.json  (how far float64 holds)

Each run is `nnx.recipes.train_spiral` (what `examples/spiral.py` prints: seed 0, 100 samples per class, a 2-64-3
network, SGD with learning rate 1.0) with the metrics copied to the host every epoch (reading them changes nothing
in the training), in a fresh process of its own: JAX's 64-bit switch (`JAX_ENABLE_X64=1`) is set only for the JAX
float64 run, as a user would. Two more runs train the same network with `Model.train`, once on the generic step
(`NNX_COMPILE=0`) and once on the compiled one (the `fast` extra), where Numba is installed.

For each pair of runs it reports the first epoch whose printed line (every `--every` epochs, 3 decimals) differs,
the first epoch whose 3-decimal values differ at all, the first epoch whose raw values differ, and the largest
|difference| of loss and accuracy over the run; it writes everything, with the date, the machine and the versions,
as JSON and prints a table.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import cpu_model  # benchmarks/bench.py, beside this file

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "data" / "numerics.json"
SETTINGS = {"lr": 1.0, "decay": 0.0, "momentum": 0.0, "hidden": 64, "samples": 100, "classes": 3, "seed": 0}
RUNS = {  # name: (what trains, backend, dtype, environment)
    "numpy float32": ("train_spiral", "numpy", "float32", {}),
    "numpy float64": ("train_spiral", "numpy", "float64", {}),
    "jax float32": ("train_spiral", "jax", "float32", {"JAX_ENABLE_X64": "0"}),
    "jax float64": ("train_spiral", "jax", "float64", {"JAX_ENABLE_X64": "1"}),
    "Model.train generic float32": ("model", "numpy", "float32", {"NNX_COMPILE": "0"}),
    "Model.train compiled float32": ("model", "numpy", "float32", {"NNX_COMPILE": "1"}),
}
COMPARISONS = {  # name: (reference run, other run, what it shows)
    "float32: jax vs numpy": ("numpy float32", "jax float32", "another library, same dtype"),
    "float64: jax vs numpy": ("numpy float64", "jax float64", "another library, same dtype"),
    "numpy: float32 vs float64": ("numpy float64", "numpy float32", "the chaos horizon of float32"),
    "float32: compiled vs generic step": (
        "Model.train generic float32",
        "Model.train compiled float32",
        "sums in another order",
    ),
    "float32: Model.train generic vs train_spiral": (
        "numpy float32",
        "Model.train generic float32",
        "the book's two loops (chapters 10 and 18)",
    ),
}
WINDOW = 100  # the growth table: the largest |difference| in each window of this many epochs
DECIMALS = 3
README_TOLERANCE = {"loss": 0.002, "accuracy": 0.01}  # what the README once promised for JAX float32


# One run, in a child process ----------------------------------------------------------------------------------------


def run_child(kind: str, backend: str, dtype: str, epochs: int) -> dict:
    """Train and return every epoch's accuracy and loss (as the book counts epochs: 0 is before the first update)."""
    import nnx

    if kind == "train_spiral":
        start = time.perf_counter()
        result = nnx.recipes.train_spiral(epochs=epochs, every=1, dtype=dtype, backend=backend, **SETTINGS)
        seconds = time.perf_counter() - start
        history, step = result.history, "layer loop (chapter 10)"
        epochs_seen = history.epoch
    else:
        model, X, y = spiral_model(nnx, dtype)
        step = model.explain_step()
        start = time.perf_counter()
        history = model.train(X, y, epochs=epochs, print_every=None)
        seconds = time.perf_counter() - start
        epochs_seen = [epoch - 1 for epoch in history.epoch]  # Model.train counts from 1, after the first update
    backend_object = nnx.backends.get(backend)
    digits = 9 if dtype == "float32" else 17  # enough to tell any two values of the dtype apart
    return {
        "epoch": list(epochs_seen),
        "accuracy": [float(f"{value:.{digits}g}") for value in history.history["accuracy"]],
        "loss": [float(f"{value:.{digits}g}") for value in history.history["loss"]],
        "seconds": seconds,
        "step": step,
        "device": str(backend_object.device),
        "jax_enable_x64": jax_x64() if backend == "jax" else None,
    }


def spiral_model(nnx, dtype: str):
    """The chapter-10 network as a chapter-18 Model, initialised as `train_spiral` initialises it."""
    from nnx.datasets import spiral_data

    nnx.seed(SETTINGS["seed"])
    X, y = spiral_data(samples=SETTINGS["samples"], classes=SETTINGS["classes"])
    model = nnx.Model()
    model.add(nnx.Dense(2, SETTINGS["hidden"], dtype=dtype))
    model.add(nnx.ReLU())
    model.add(nnx.Dense(SETTINGS["hidden"], SETTINGS["classes"], dtype=dtype))
    model.add(nnx.Softmax())
    model.set(
        loss=nnx.CategoricalCrossentropy(),
        optimizer=nnx.SGD(learning_rate=SETTINGS["lr"], decay=SETTINGS["decay"], momentum=SETTINGS["momentum"]),
        accuracy=nnx.metrics.Categorical(),
    )
    model.finalize()
    return model, X.astype(dtype), y


def jax_x64() -> bool:
    import jax

    return bool(jax.config.jax_enable_x64)


def run(name: str, epochs: int, python: str) -> dict:
    """`name` in a fresh process of `python`; {"error": ...} if it fails."""
    kind, backend, dtype, env = RUNS[name]
    command = [python, __file__, "--child", name, "--epochs", str(epochs)]
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, check=False)
    if completed.returncode != 0:
        lines = (completed.stderr or completed.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {completed.returncode}"}
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return {"trains": kind, "backend": backend, "dtype": dtype, "environment": env, **result}


# Comparing runs -----------------------------------------------------------------------------------------------------


def printed(acc: float, loss: float) -> str:
    return f"acc: {acc:.{DECIMALS}f}, loss: {loss:.{DECIMALS}f}"


def printed_lines(result: dict, every: int) -> list[str]:
    """The lines `examples/spiral.py --every <every>` prints for this run."""
    last = result["epoch"][-1]
    rows = zip(result["epoch"], result["accuracy"], result["loss"], strict=True)
    return [f"epoch: {e}, {printed(a, loss)}" for e, a, loss in rows if e % every == 0 or e == last]


def first(flags) -> int | None:
    return next((epoch for epoch, differs in flags if differs), None)


def compare(reference: dict, other: dict, every: int) -> dict:
    """Where `other`'s numbers leave `reference`'s: printed lines, 3-decimal values, raw values; the largest gaps."""
    epochs = reference["epoch"]
    if other["epoch"] != epochs:
        return {"error": "the runs recorded different epochs"}
    last = epochs[-1]
    pairs = list(zip(epochs, reference["accuracy"], reference["loss"], other["accuracy"], other["loss"], strict=True))
    loss_gaps = [abs(lo - lr) for _, _, lr, _, lo in pairs]
    acc_gaps = [abs(ao - ar) for _, ar, _, ao, _ in pairs]
    shown = [i for i, e in enumerate(epochs) if e % every == 0 or e == last]
    rounded = [(e, printed(ar, lr) != printed(ao, lo)) for e, ar, lr, ao, lo in pairs]
    windows = []
    for start in range(0, len(epochs), WINDOW):
        part = range(start, min(start + WINDOW, len(epochs)))
        windows.append(
            {
                "epochs": [epochs[part[0]], epochs[part[-1]]],
                "max_abs_loss": max(loss_gaps[i] for i in part),
                "max_abs_accuracy": max(acc_gaps[i] for i in part),
            }
        )
    worst_loss = max(range(len(epochs)), key=loss_gaps.__getitem__)
    worst_acc = max(range(len(epochs)), key=acc_gaps.__getitem__)
    printed_loss = max(loss_gaps[i] for i in shown)
    printed_acc = max(acc_gaps[i] for i in shown)
    return {
        "epochs": len(epochs),
        "first_printed_difference": first((epochs[i], rounded[i][1]) for i in shown),
        "first_rounded_difference": first(rounded),
        "first_raw_difference": first((e, ar != ao or lr != lo) for e, ar, lr, ao, lo in pairs),
        "max_abs_loss": loss_gaps[worst_loss],
        "max_abs_loss_epoch": epochs[worst_loss],
        "max_abs_accuracy": acc_gaps[worst_acc],
        "max_abs_accuracy_epoch": epochs[worst_acc],
        "printed_max_abs_loss": printed_loss,
        "printed_max_abs_accuracy": printed_acc,
        "within_readme_tolerance": printed_loss <= README_TOLERANCE["loss"]
        and printed_acc <= README_TOLERANCE["accuracy"],
        "final": {"reference": printed(*last_values(reference)), "other": printed(*last_values(other))},
        "windows": windows,
    }


def last_values(result: dict) -> tuple[float, float]:
    return result["accuracy"][-1], result["loss"][-1]


# Machine and versions -----------------------------------------------------------------------------------------------


def version_of(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def blas() -> str | None:
    """NumPy's BLAS, as its build configuration names it."""
    import numpy as np

    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (TypeError, KeyError):
        return None
    return f"{info.get('name')} {info.get('version')}".strip()


def machine() -> dict:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def versions() -> dict:
    import numpy as np

    import nnx

    return {
        "python": platform.python_version(),
        "nnx": nnx.__version__,
        "numpy": np.__version__,
        "blas": blas(),
        "jax": version_of("jax"),
        "jaxlib": version_of("jaxlib"),
        "numba": version_of("numba"),
    }


# Main ---------------------------------------------------------------------------------------------------------------


def chosen_runs(args) -> list[str]:
    names = list(RUNS)
    if args.no_jax or version_of("jax") is None:
        if not args.no_jax:
            print("JAX is not installed here: skipping the JAX runs (pip install 'jax[cpu]')")
        names = [name for name in names if RUNS[name][1] != "jax"]
    if args.no_compiled or version_of("numba") is None:
        if not args.no_compiled:
            print("Numba is not installed here: skipping the Model.train runs (pip install 'nnx-nnfs[fast]')")
        names = [name for name in names if RUNS[name][0] != "model"]
    return names


def compact_lists(text: str) -> str:
    """Lists of numbers on one line each (the every-epoch values would take a line per number)."""
    return re.sub(r"\[([-\d.eE+,\s]+)\]", lambda m: "[" + ", ".join(m.group(1).replace(",", " ").split()) + "]", text)


def table(comparisons: dict) -> str:
    header = ["comparison", "first printed line that differs", "first 3-decimal diff", "first raw diff"]
    header += ["max |Δloss|", "max |Δacc|"]
    rows = []
    for name, c in comparisons.items():
        if "error" in c:
            rows.append([name, c["error"], "", "", "", ""])
            continue
        cells = [c["first_printed_difference"], c["first_rounded_difference"], c["first_raw_difference"]]
        cells = [f"none through {c['epochs']}" if cell is None else f"epoch {cell}" for cell in cells]
        rows.append([name, *cells, f"{c['max_abs_loss']:.2g}", f"{c['max_abs_accuracy']:.2g}"])
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=True)) for row in [header, *rows])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1001, help="epochs per run (default 1001: epochs 0-1000)")
    parser.add_argument("--every", type=int, default=100, help="the printed lines: every this many epochs")
    parser.add_argument("--out", type=Path, default=OUT, help=f"the JSON (default {OUT.relative_to(ROOT)})")
    parser.add_argument("--no-jax", action="store_true", help="skip the JAX runs")
    parser.add_argument("--no-compiled", action="store_true", help="skip the Model.train runs")
    parser.add_argument("--no-raw", action="store_true", help="leave every epoch's values out of the JSON")
    parser.add_argument("--child", choices=list(RUNS), help="internal: one run, printed as JSON")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        kind, backend, dtype, _ = RUNS[args.child]
        print(json.dumps(run_child(kind, backend, dtype, args.epochs)))
        return
    started = time.perf_counter()
    info = {
        "script": "python benchmarks/numerics.py",
        "date": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "settings": {**SETTINGS, "epochs": args.epochs, "every": args.every, "decimals": DECIMALS, "window": WINDOW},
    }
    runs = {}
    for name in chosen_runs(args):
        print(f"{name} ...", end=" ", flush=True)
        runs[name] = run(name, args.epochs, sys.executable)
        print(runs[name].get("error") or f"{runs[name]['seconds']:.1f} s ({runs[name]['step']})", flush=True)
    comparisons = {}
    for name, (reference, other, meaning) in COMPARISONS.items():
        if reference in runs and other in runs:
            if "error" in runs[reference] or "error" in runs[other]:
                comparisons[name] = {"error": "a run failed", "shows": meaning}
            else:
                comparisons[name] = {"reference": reference, "other": other, "shows": meaning}
                comparisons[name].update(compare(runs[reference], runs[other], args.every))
    for result in runs.values():
        if "error" not in result:
            result["printed"] = printed_lines(result, args.every)
            if args.no_raw:
                del result["epoch"], result["accuracy"], result["loss"]
            elif result["epoch"] == list(range(len(result["epoch"]))):
                del result["epoch"]  # "accuracy" and "loss" hold epochs 0, 1, 2, ...
    result = {**info, "comparisons": comparisons, "runs": runs, "total_s": time.perf_counter() - started}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(compact_lists(json.dumps(result, indent=1)) + "\n")
    m, v = info["machine"], info["versions"]
    print(
        f"\n{info['date']}, {m['cpu']} ({m['cores']} cores), Python {v['python']}, NumPy {v['numpy']}, "
        f"JAX {v['jax']}, nnx {v['nnx']}; {args.epochs} epochs, lines every {args.every}"
    )
    print(table(comparisons))
    shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    print(f"\ntotal {result['total_s']:.0f} s; results in {shown}")


if __name__ == "__main__":
    main()
