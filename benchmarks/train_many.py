"""Time `nnx.train_many` (many small spiral networks as one stacked computation) against solo runs, PyTorch and JAX.

python benchmarks/train_many.py [--quick] [--repeats 3] [--torch-threads 2] [--no-scaling] [--no-gpu] [--no-jax]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
from bench import (  # benchmarks/bench.py, beside this file
    QUIET_S,
    compile_setting,
    copy_gbps,
    environment,
    floor_seconds,
    import_jax,
    load_average,
    matmul_gflops,
    max_rss_bytes,
    numba_thread_count,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    version_of,
    write_results,
)
from bench import spiral_model as bench_spiral_model

import nnx
from nnx.datasets import spiral_data

INPUTS, HIDDEN, CLASSES = 2, 64, 3
HEADLINE_MODELS, HEADLINE_SAMPLES = 64, 300
EPOCHS, QUICK_EPOCHS = 1001, 201
LEARNING_RATES = (0.05, 1.5)  # model m: linspace over these; decays cycle through DECAYS
DECAYS = (0.0, 1e-3, 1e-4)
SOLO_GENERIC_SUBSET = 8  # solo generic runs: time every (M / this)-th model and scale to M
GRID = {"models": (1, 4, 16, 64, 256), "samples": (300, 3_000, 30_000)}
QUICK_GRID = {"models": (1, 16, 64), "samples": (300, 3_000)}
PATHS = ("compiled", "generic")
CELL_TARGET_S, CELL_PROBE_S, CELL_MAX_EPOCHS = 1.0, 0.25, 10_001
CELL_TIMEOUT_S = 300
CELL_MAX_EPOCH_S = 30.0  # a cell whose epoch would take longer (predicted from the smaller cells) is skipped
GPU_MODELS, GPU_EPOCHS = (64, 256, 1024, 4096), 201
STACK, SOLO = "train_many, compiled stack", "solo Model.train, compiled step"
STACK_ONE_THREAD = "train_many, compiled stack, 1 thread"
TORCH_STACK, JAX_STACK = "PyTorch eager, stacked (bmm)", "JAX vmap + jit + lax.scan"
GOALS = {  # name: (measured key, comparison, bound)
    "compiled stack <= 10 us per model-epoch": ("compiled_us", "<=", 10.0),
    "time <= 0.10x PyTorch stacked": ("vs_torch", "<=", 0.10),
    "time <= 0.15x JAX vmap + jit + lax.scan": ("vs_jax", "<=", 0.15),
    "throughput >= 3x solo compiled": ("vs_solo_compiled", ">=", 3.0),
    "two threads >= 1.8x one thread": ("thread_speedup", ">=", 1.8),
}
SCALING_NOTE = (
    "Each cell runs in a fresh process: a warm-up call (it compiles), one epoch for the memory, then fresh models "
    "for about 1 s of epochs. Memory: the resident-set high-water mark above the resident set before the epoch (freed "
    "heap handed back first) / the tracemalloc peak (NumPy's buffers; the compiled kernel's own are not traced)."
)
MIB = 1024 * 1024
RESULTS = Path(__file__).resolve().parent / "results"
NUMPY = nnx.backends.get("numpy")


# Data and models ----------------------------------------------------------------------------------------------------


def spiral(samples: int):
    nnx.seed(0)
    X, y = spiral_data(samples=samples // CLASSES, classes=CLASSES)
    return X.astype(np.float32), y


def hyperparameters(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Each model's own learning rate and decay."""
    decays = np.array([DECAYS[m % len(DECAYS)] for m in range(count)])
    return np.linspace(*LEARNING_RATES, count), decays


def build_models(count: int, backend=None) -> list:
    """`count` finalized Dense(2, 64)-ReLU-Dense(64, 3)-Softmax models, SGD with their own rate and decay."""
    nnx.seed(1)
    with nnx.backends.use(backend or NUMPY):
        return [spiral_model(lr, decay) for lr, decay in zip(*hyperparameters(count), strict=True)]


def spiral_model(learning_rate: float, decay: float):
    """The headline network with its own SGD learning rate and decay."""
    return bench_spiral_model(HIDDEN, nnx.SGD(learning_rate=float(learning_rate), decay=float(decay)))


def final_metrics(histories: list) -> dict:
    losses = np.array([h["loss"] for h in histories], dtype=float)
    accuracies = np.array([h["accuracy"] for h in histories], dtype=float)
    return {"loss": float(np.nanmean(losses)), "accuracy": float(np.nanmean(accuracies))}


def timed(function: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


# Headline: nnx -------------------------------------------------------------------------------------------------------


def stack_run(X, y, count: int, epochs: int, compiled: bool, threads: int | None = None) -> dict:
    """`nnx.train_many` over `count` fresh models, on the compiled stack or the generic stacked path; `threads`
    sets Numba's thread count while it trains (None: all the cores)."""
    models = build_models(count)
    with compile_setting(NUMPY, compiled), numba_thread_count(threads):
        seconds, histories = timed(lambda: nnx.train_many(models, X, y, epochs=epochs, verbose=0))
    return {"seconds": seconds, "models": count, **final_metrics(histories)}


def solo_run(X, y, count: int, epochs: int, compiled: bool, subset: int | None = None) -> dict:
    """One `Model.train` after another; with `subset`, only every (count / subset)-th model (spread over the rates)."""
    models = build_models(count)
    if subset:
        models = models[:: max(1, count // subset)]
    with compile_setting(NUMPY, compiled):
        seconds, histories = timed(lambda: [m.train(X, y, epochs=epochs, verbose=0) for m in models])
    return {"seconds": seconds, "models": len(models), **final_metrics(histories)}


def warm_up(X, y, count: int) -> dict:
    """Compile (or load from Numba's cache) the compiled stack and the compiled solo step; return what each took."""
    with compile_setting(NUMPY, True):
        models, model = build_models(count), build_models(1)[0]
        stack_s, _ = timed(lambda: nnx.train_many(models, X, y, epochs=2, verbose=0))
        solo_s, _ = timed(lambda: model.train(X, y, epochs=2, verbose=0))
        explained = model.explain_step()
    return {"train_many_first_call_s": stack_s, "solo_first_call_s": solo_s, "solo_step": explained}


# Headline: PyTorch ---------------------------------------------------------------------------------------------------


def import_torch(threads: int):
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: skipping the PyTorch stacked implementation")
        return None
    torch.set_num_threads(threads)
    return torch


def torch_parameters(torch, count: int) -> list:
    """(M, 2, H), (M, 1, H), (M, H, 3), (M, 1, 3): 0.01 * standard normal weights and zero biases, as nnx.Dense."""
    generator = torch.Generator().manual_seed(1)
    shapes = [((count, INPUTS, HIDDEN), 0.01), ((count, 1, HIDDEN), 0.0), ((count, HIDDEN, CLASSES), 0.01)]
    shapes.append(((count, 1, CLASSES), 0.0))
    return [(scale * torch.randn(shape, generator=generator)).requires_grad_() for shape, scale in shapes]


def torch_stack_run(torch, X, y, count: int, epochs: int) -> dict:
    """PyTorch eager, stacked: baddbmm, ReLU, log-softmax + NLL averaged per model and summed over models, then SGD
    with each model's rate lr_m / (1 + decay_m * step) under no_grad."""
    w1, b1, w2, b2 = params = torch_parameters(torch, count)
    rates, decays = (torch.tensor(v, dtype=torch.float32).view(count, 1, 1) for v in hyperparameters(count))
    inputs = torch.from_numpy(X).expand(count, -1, -1).contiguous()
    labels = torch.from_numpy(y.astype(np.int64)).view(1, -1, 1).expand(count, -1, 1)

    def train():
        for step in range(epochs):
            logits = torch.baddbmm(b2, torch.baddbmm(b1, inputs, w1).relu(), w2)
            losses = -torch.log_softmax(logits, dim=2).gather(2, labels).squeeze(2).mean(dim=1)
            losses.sum().backward()
            with torch.no_grad():
                rate = rates / (1 + decays * step)
                for p in params:
                    p.sub_(rate * p.grad)
                    p.grad = None
        return logits.detach(), losses.detach()

    seconds, (logits, losses) = timed(train)
    accuracy = (logits.argmax(dim=2) == labels.squeeze(2)).float().mean(dim=1)
    return {"seconds": seconds, "models": count, "loss": losses.mean().item(), "accuracy": accuracy.mean().item()}


# Headline: JAX -------------------------------------------------------------------------------------------------------


def jax_stack(jax, X, y, count: int, epochs: int):
    """The same stack in JAX as one XLA program: one model's step (`jax.grad` of its mean cross-entropy, then SGD
    with its rate lr_m / (1 + decay_m * step)) mapped over the models with `jax.vmap`, the epochs a `jax.lax.scan`,
    the whole run `jax.jit`-compiled. Returns (run, parameters): `run(parameters)` trains every epoch."""
    jnp = jax.numpy
    rng = np.random.default_rng(1)
    shapes = [((count, INPUTS, HIDDEN), 0.01), ((count, 1, HIDDEN), 0.0), ((count, HIDDEN, CLASSES), 0.01)]
    shapes.append(((count, 1, CLASSES), 0.0))
    parameters = tuple(jnp.asarray((scale * rng.standard_normal(shape)).astype(np.float32)) for shape, scale in shapes)
    rates, decays = (jnp.asarray(v, dtype=jnp.float32) for v in hyperparameters(count))
    inputs, labels = jnp.asarray(X), jnp.asarray(y.astype(np.int32))

    def loss(params):
        w1, b1, w2, b2 = params
        logits = jnp.maximum(inputs @ w1 + b1, 0) @ w2 + b2
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))

    def model_step(params, rate):
        grads = jax.grad(loss)(params)
        return tuple(p - rate * g for p, g in zip(params, grads, strict=True))

    def epoch(params, step):
        return jax.vmap(model_step)(params, rates / (1 + decays * step)), None

    def metrics(params):
        w1, b1, w2, b2 = params
        logits = jnp.maximum(inputs @ w1 + b1, 0) @ w2 + b2
        return loss(params), jnp.mean(jnp.argmax(logits, axis=1) == labels)

    @jax.jit
    def run(params):
        trained, _ = jax.lax.scan(epoch, params, jnp.arange(epochs, dtype=jnp.float32))
        return trained, *jax.vmap(metrics)(trained)

    return run, parameters


def jax_stack_run(run, parameters, count: int) -> dict:
    """One timed call of a compiled `jax_stack` (its first call compiles it, and is not timed)."""
    seconds, (_, losses, accuracies) = timed(lambda: jax_block(run(parameters)))
    return {"seconds": seconds, "models": count, "loss": float(losses.mean()), "accuracy": float(accuracies.mean())}


def jax_block(result):
    """`result` once every array in it is computed (JAX dispatches asynchronously)."""
    for array in (*result[0], *result[1:]):
        array.block_until_ready()
    return result


# Headline: timing and goals ------------------------------------------------------------------------------------------


def headline_candidates(X, y, epochs: int, torch, jax) -> dict[str, Callable[[], dict]]:
    count = HEADLINE_MODELS
    candidates = {
        STACK: lambda: stack_run(X, y, count, epochs, compiled=True),
        "train_many, generic stack": lambda: stack_run(X, y, count, epochs, compiled=False),
        "solo Model.train, generic step": lambda: solo_run(X, y, count, epochs, False, SOLO_GENERIC_SUBSET),
        SOLO: lambda: solo_run(X, y, count, epochs, compiled=True),
    }
    if (os.cpu_count() or 1) > 1:
        candidates[STACK_ONE_THREAD] = lambda: stack_run(X, y, count, epochs, compiled=True, threads=1)
    if torch is not None:
        candidates[TORCH_STACK] = lambda: torch_stack_run(torch, X, y, count, epochs)
    if jax is not None:
        run, parameters = jax_stack(jax, X, y, count, epochs)
        jax_block(run(parameters))  # the first call compiles the whole run: not timed
        candidates[JAX_STACK] = lambda: jax_stack_run(run, parameters, count)
    return candidates


def headline(args, torch, jax) -> dict:
    """The candidates round-robin, `repeats` times each, so that noise on the machine hits them alike."""
    X, y = spiral(HEADLINE_SAMPLES)
    epochs = args.epochs or (QUICK_EPOCHS if args.quick else EPOCHS)
    print(f"headline: M={HEADLINE_MODELS}, N={len(y)}, H={HIDDEN}, {epochs} epochs, {args.repeats} repeats", flush=True)
    first_calls = warm_up(X, y, HEADLINE_MODELS)
    candidates = headline_candidates(X, y, epochs, torch, jax)
    runs = {name: [] for name in candidates}
    for _ in range(args.repeats):
        for name, run in candidates.items():
            time.sleep(QUIET_S)  # the other libraries' idle threads stop spinning first
            runs[name].append(run())
            print(f"  {name}: {runs[name][-1]['seconds']:.2f} s", flush=True)
    rows = {name: headline_row(results, epochs) for name, results in runs.items()}
    machine = {"matmul_gflops": matmul_gflops(), "copy_gbps": copy_gbps()}
    floor_us = floor_seconds(len(y), HIDDEN, "sgd", y.itemsize, machine) * 1e6
    for row in rows.values():
        row["floor_multiple"] = row["us_per_model_epoch"] / floor_us
    return {
        "models": HEADLINE_MODELS,
        "samples": len(y),
        "epochs": epochs,
        "first_calls": first_calls,
        "rows": rows,
        "floor_machine": machine,
        "floor_us_per_model_epoch": floor_us,
    }


def headline_row(results: list[dict], epochs: int) -> dict:
    seconds = statistics.median(r["seconds"] for r in results)
    timed_models = results[0]["models"]
    return {
        "us_per_model_epoch": seconds / (timed_models * epochs) * 1e6,
        "best_us_per_model_epoch": min(r["seconds"] for r in results) / (timed_models * epochs) * 1e6,
        "median_s": seconds,
        "samples_s": [r["seconds"] for r in results],
        "models_timed": timed_models,
        "loss": statistics.median(r["loss"] for r in results),
        "accuracy": statistics.median(r["accuracy"] for r in results),
    }


def goals(rows: dict) -> dict:
    us = {name: row["us_per_model_epoch"] for name, row in rows.items()}
    compiled = us[STACK]
    torch_us, jax_us, one_thread = us.get(TORCH_STACK), us.get(JAX_STACK), us.get(STACK_ONE_THREAD)
    measured = {
        "compiled_us": compiled,
        "vs_solo_compiled": us[SOLO] / compiled,
        "vs_torch": None if torch_us is None else compiled / torch_us,
        "vs_jax": None if jax_us is None else compiled / jax_us,
        "thread_speedup": None if one_thread is None else one_thread / compiled,
    }
    return {name: goal_result(measured[key], op, bound) for name, (key, op, bound) in GOALS.items()}


def goal_result(value: float | None, op: str, bound: float) -> dict:
    met = None if value is None else value <= bound if op == "<=" else value >= bound
    return {"measured": value, "bound": f"{op} {bound:g}", "met": met}


# Scaling grid: one subprocess per cell --------------------------------------------------------------------------------


def malloc_trim() -> None:
    """Hand freed heap memory back to the OS (glibc), so that the resident set before a call holds only live data."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def memory_epoch(models: list, X, y) -> tuple[float, dict]:
    """One epoch of `train_many` (after the warm-up): its time, the resident-set peak above the resident set before
    it (high-water mark reset, freed heap trimmed first), and the tracemalloc peak (NumPy's buffers, not Numba's)."""
    malloc_trim()
    before, resettable = rss_bytes(), reset_peak_rss()
    tracemalloc.start()
    try:
        seconds = train_many_s(models, X, y, 1)
        traced = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    peak = peak_rss_bytes() if resettable and before is not None else None
    rss = None if peak is None else max(0, peak - before)
    return seconds, {"rss_peak_bytes": rss, "tracemalloc_peak_bytes": traced}


def calibrated_epochs(train: Callable[[int], float], epoch_s: float) -> int:
    """Epochs for a run of about CELL_TARGET_S: one where an epoch (`epoch_s`, first measured with tracemalloc on)
    takes that long already, else from clean probes that grow fourfold until one lasts CELL_PROBE_S."""
    if epoch_s >= CELL_TARGET_S:
        return 1
    epochs, seconds = 1, train(1)
    while seconds < CELL_PROBE_S and epochs < CELL_MAX_EPOCHS:
        epochs = min(4 * epochs, CELL_MAX_EPOCHS)
        seconds = train(epochs)
    return int(min(CELL_MAX_EPOCHS, max(1, round(CELL_TARGET_S * epochs / seconds))))


def train_many_s(models: list, X, y, epochs: int) -> float:
    return timed(lambda: nnx.train_many(models, X, y, epochs=epochs, verbose=0))[0]


def warm_and_measure(X, y, count: int) -> tuple[int, dict]:
    """Warm up (the first call compiles), measure one epoch's memory and calibrate the epochs, on models thrown
    away afterwards."""
    models = build_models(count)
    train_many_s(models, X, y, 1)
    seconds, memory = memory_epoch(models, X, y)
    return calibrated_epochs(lambda epochs: train_many_s(models, X, y, epochs), seconds), memory


def cell(count: int, samples: int, path: str) -> dict:
    """One grid cell, in this (fresh) process: warm up, memory and calibration, then the time on fresh models."""
    X, y = spiral(samples)
    with compile_setting(NUMPY, path == "compiled"):
        epochs, memory = warm_and_measure(X, y, count)
        seconds = train_many_s(build_models(count), X, y, epochs)
    us = seconds / (count * epochs) * 1e6
    return {"models": count, "samples": len(y), "path": path, "epochs": epochs, "seconds": seconds, "us": us, **memory}


def run_cell(count: int, samples: int, path: str) -> dict:
    """`cell` in a subprocess, so that each cell's peak memory starts from a fresh process."""
    command = [sys.executable, str(Path(__file__).resolve()), "--cell", str(count), str(samples), path]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CELL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return {"models": count, "samples": samples, "path": path, "error": f"timed out after {CELL_TIMEOUT_S} s"}
    if done.returncode != 0:
        error = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return {"models": count, "samples": samples, "path": path, "error": f"failed: {error}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def scaling(quick: bool) -> list[dict]:
    """The grid, N then M ascending, so that each cell's time can be predicted from the smaller ones."""
    grid = QUICK_GRID if quick else GRID
    cells = []
    for samples in grid["samples"]:
        for count in grid["models"]:
            for path in PATHS:
                cells.append(grid_cell(cells, count, samples, path))
                print(f"  {cell_line(cells[-1])}", flush=True)
    return cells


def grid_cell(cells: list[dict], count: int, samples: int, path: str) -> dict:
    """`run_cell`, unless one epoch is predicted to take longer than CELL_MAX_EPOCH_S."""
    predicted = predicted_epoch_s(cells, count, samples, path)
    if predicted is not None and predicted > CELL_MAX_EPOCH_S:
        error = f"skipped: one epoch would take about {predicted:.0f} s"
        return {"models": count, "samples": samples, "path": path, "error": error}
    return run_cell(count, samples, path)


def predicted_epoch_s(cells: list[dict], count: int, samples: int, path: str) -> float | None:
    """One epoch's time from the biggest measured cell of `path` no bigger in M and N, with the time per model-epoch
    growing linearly in N; None before there is one."""
    smaller = [c for c in cells if c["path"] == path and "us" in c and c["models"] <= count and c["samples"] <= samples]
    if not smaller:
        return None
    base = max(smaller, key=lambda c: c["models"] * c["samples"])
    return base["us"] * 1e-6 * count * samples / base["samples"]


def cell_line(result: dict) -> str:
    where = f"M={result['models']} N={result['samples']} {result['path']}"
    if "error" in result:
        return f"{where}: {result['error']}"
    return f"{where}: {result['us']:.2f} us/model-epoch ({result['epochs']} epochs, {result['seconds']:.2f} s)"


# GPU (CuPy) -----------------------------------------------------------------------------------------------------------


def gpu(quick: bool) -> list[dict] | None:
    """`train_many` on CuPy for growing M (N=300), when CuPy is available; None otherwise."""
    if "cupy" not in nnx.backends.available():
        return None
    try:
        backend = nnx.backends.get("cupy")
    except nnx.BackendUnavailableError as error:
        print(f"skipping the GPU section: {error}")
        return None
    X, y = spiral(HEADLINE_SAMPLES)
    epochs = GPU_EPOCHS // 4 if quick else GPU_EPOCHS
    rows = []
    for count in GPU_MODELS[:2] if quick else GPU_MODELS:
        try:
            rows.append(gpu_row(backend, backend.asarray(X), backend.asarray(y), count, epochs))
        except Exception as error:
            rows.append({"models": count, "error": f"{type(error).__name__}: {error}"})
        print(f"  cupy M={count}: {rows[-1]}", flush=True)
    return rows


def gpu_row(backend, X, y, count: int, epochs: int) -> dict:
    nnx.train_many(build_models(count, backend), X, y, epochs=2, verbose=0)
    backend.synchronize()
    models = build_models(count, backend)

    def train() -> None:
        nnx.train_many(models, X, y, epochs=epochs, verbose=0)
        backend.synchronize()

    seconds, _ = timed(train)
    return {"models": count, "samples": HEADLINE_SAMPLES, "epochs": epochs, "us": seconds / (count * epochs) * 1e6}


# Printing -------------------------------------------------------------------------------------------------------------


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def headline_markdown(result: dict) -> str:
    rows = result["rows"]
    compiled = rows["train_many, compiled stack"]["us_per_model_epoch"]
    table = []
    for name, row in rows.items():
        timed_note = "" if row["models_timed"] == result["models"] else f" ({row['models_timed']} timed, scaled)"
        us, best = row["us_per_model_epoch"], row["best_us_per_model_epoch"]
        metrics = [f"{row['loss']:.3f}", f"{row['accuracy']:.3f}"]
        floor = f"{row['floor_multiple']:.1f}x"
        table.append([name + timed_note, f"{us:.1f}", f"{best:.1f}", floor, f"{us / compiled:.2f}x", *metrics])
    header = ["implementation", "µs per model-epoch", "best", "vs floor", "time vs compiled stack", "mean final loss"]
    return markdown([*header, "mean accuracy"], table)


def first_calls_line(first_calls: dict) -> str:
    return (
        f"Not timed above: the first calls, which compile or load Numba's cache: `train_many` "
        f"{first_calls['train_many_first_call_s']:.1f} s, solo `Model.train` {first_calls['solo_first_call_s']:.1f} s. "
        f"The solo generic row times {SOLO_GENERIC_SUBSET} of the {HEADLINE_MODELS} models (spread over the learning "
        f"rates) and scales the time to {HEADLINE_MODELS}."
    )


def goals_markdown(goal_results: dict) -> str:
    rows = []
    for name, goal in goal_results.items():
        value = "-" if goal["measured"] is None else f"{goal['measured']:.3g}"
        rows.append([name, value, {True: "met", False: "not met", None: "not measured"}[goal["met"]]])
    return markdown(["goal", "measured", "status"], rows)


def scaling_markdown(cells: list[dict]) -> str:
    by_key = {(c["models"], c["samples"], c["path"]): c for c in cells}
    keys = sorted({(c["models"], c["samples"]) for c in cells}, key=lambda k: (k[1], k[0]))
    rows = []
    for count, samples in keys:
        compiled, generic = by_key.get((count, samples, "compiled")), by_key.get((count, samples, "generic"))
        times = [us_cell(compiled), us_cell(generic), speedup(compiled, generic)]
        rows.append([count, f"{samples:,}", *times, mib_cell(compiled), mib_cell(generic)])
    header = ["M", "N", "compiled stack µs", "generic stack µs", "generic / compiled"]
    return markdown([*header, "compiled peak MiB", "generic peak MiB"], rows)


def us_cell(result: dict | None) -> str:
    if not result:
        return "-"
    return result["error"].split(":")[0] if "error" in result else f"{result['us']:.2f}"


def speedup(compiled: dict | None, generic: dict | None) -> str:
    if not compiled or not generic or "error" in compiled or "error" in generic:
        return "-"
    return f"{generic['us'] / compiled['us']:.1f}x"


def mib_cell(result: dict | None) -> str:
    """Resident-set peak growth / tracemalloc peak, MiB."""
    if not result or "error" in result:
        return "-"
    rss = "-" if result["rss_peak_bytes"] is None else f"{result['rss_peak_bytes'] / MIB:.1f}"
    return f"{rss} / {result['tracemalloc_peak_bytes'] / MIB:.1f}"


def gpu_markdown(rows: list[dict]) -> str:
    table = [[r["models"], r.get("error") or f"{r['us']:.2f}"] for r in rows]
    return markdown(["M (CuPy, N=300)", "µs per model-epoch"], table)


def report(result: dict) -> str:
    head = result["headline"]
    parts = [
        f"### Many models at once: M={head['models']}, N={head['samples']}, H={HIDDEN}, SGD, {head['epochs']} "
        "epochs (median of the repeats)",
        machine_line(result),
        headline_markdown(head),
        first_calls_line(head["first_calls"]),
        goals_markdown(result["goals"]),
    ]
    if result["scaling"]:
        parts += [
            "### Scaling: µs per model-epoch and peak memory of one epoch (resident-set growth / tracemalloc, MiB)",
            scaling_markdown(result["scaling"]),
            SCALING_NOTE,
        ]
    if result["gpu"]:
        parts += ["### GPU", gpu_markdown(result["gpu"])]
    return "\n\n".join(parts)


def machine_line(result: dict) -> str:
    versions, threads = result["versions"], result["threads"]
    busy = result["machine"]["cpus_busy_at_start"]
    torch = f"PyTorch {versions['torch']} on {threads['torch']} threads" if versions["torch"] else "no PyTorch"
    return (
        f"{result['machine']['cpu_count']} CPUs ({'-' if busy is None else f'{busy:.0%}'} busy before the run), "
        f"NumPy {versions['numpy']}, Numba {versions['numba']} on {threads['numba']} threads, {torch}, "
        f"Python {platform.python_version()}, nnx {versions['nnx']}."
    )


# Machine ------------------------------------------------------------------------------------------------------------


def run_info(torch) -> dict:
    """bench.py's machine, versions and thread counts, plus Numba's threads and how busy the CPUs were."""
    info = environment(torch, [NUMPY])
    info["threads"]["numba"] = numba_threads()
    info["machine"]["cpus_busy_at_start"] = busy = busy_share()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, torch threads {info['threads']['torch']}, "
        f"numba threads {info['threads']['numba']}, CPUs busy before the run: "
        f"{'-' if busy is None else f'{busy:.0%}'} (other work on the CPUs adds noise)"
    )
    return info


def cpu_times() -> tuple[int, int]:
    """All CPUs' total and idle (idle + iowait) time so far, in clock ticks (/proc/stat)."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    return sum(values), values[3] + values[4]


def busy_share(seconds: float = 0.5) -> float | None:
    """The share of all CPUs busy (any process) over `seconds`; None where /proc/stat is unreadable."""
    try:
        total, idle = cpu_times()
        time.sleep(seconds)
        total_after, idle_after = cpu_times()
    except OSError:
        return None
    return 1 - (idle_after - idle) / max(1, total_after - total)


def numba_threads() -> int | None:
    try:
        import numba
    except ImportError:
        return None
    return numba.get_num_threads()


# Main -----------------------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EPOCHS} epochs, one repeat, a smaller grid")
    parser.add_argument("--epochs", type=int, help=f"headline epochs (default {EPOCHS}, {QUICK_EPOCHS} with --quick)")
    parser.add_argument("--repeats", type=int, default=3, help="headline repeats per candidate (default 3)")
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1, help="default: all CPUs")
    parser.add_argument("--no-scaling", action="store_true", help="skip the M x N scaling grid")
    parser.add_argument("--no-gpu", action="store_true", help="skip the CuPy section")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--no-jax", action="store_true", help="leave JAX out even where it is installed")
    parser.add_argument("--cell", nargs=3, metavar=("M", "N", "PATH"), help="internal: one grid cell, as JSON")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    return args


def main() -> None:
    args = parse_args()
    if args.cell:
        print(json.dumps(cell(int(args.cell[0]), int(args.cell[1]), args.cell[2])))
        return
    started = time.perf_counter()
    torch = import_torch(args.torch_threads)
    jax = import_jax(not args.no_jax)
    result = {**run_info(torch), "args": vars(args), "headline": headline(args, torch, jax)}
    result["versions"]["jax"] = version_of("jax") if jax is not None else None
    result["goals"] = goals(result["headline"]["rows"])
    result["scaling"] = None if args.no_scaling else scaling(args.quick)
    for grid_cell_result in result["scaling"] or []:
        machine = result["headline"]["floor_machine"]
        grid_cell_result["floor_us"] = floor_seconds(grid_cell_result["samples"], HIDDEN, "sgd", 8, machine) * 1e6
    result["gpu"] = None if args.no_gpu else gpu(args.quick)
    result["memory_method"] = memory_epoch.__doc__
    print("\n" + report(result))
    result.update(total_s=time.perf_counter() - started, process_peak_rss_bytes=max_rss_bytes())
    result["load_average_at_end"] = load_average()
    path = write_results(result, args.out, "train_many")
    print(f"\ntotal {result['total_s']:.0f} s; results in {path}")


if __name__ == "__main__":
    main()
