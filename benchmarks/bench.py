"""Per-epoch time of the book's chapter-10 spiral network: nnx, plain NumPy, PyTorch and JAX side by side, with a
floor.

python benchmarks/bench.py [--quick] [--sizes spiral-300 30k 300k] [--optimizers sgd adam] [--backends numpy]
    [--no-jax]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

import nnx
from nnx import recipes
from nnx.datasets import spiral_data

INPUTS, CLASSES = 2, 3
SIZES = {"spiral-300": (300, 64), "30k": (30_000, 64), "300k": (300_000, 512)}
SLOW_BACKENDS = {"array_api_strict"}
BIG_SAMPLES = 100_000  # from here on, slow backends and the generic variants run only with --all
SCALING_SAMPLES = (3_000, 10_000, 30_000, 100_000, 300_000)
SCALING_HIDDEN = 64
OPTIMIZERS = {
    "sgd": {"learning_rate": 1.0},
    "adam": {"learning_rate": 0.02, "decay": 1e-5},
}
TORCH_ADAM = {"lr": 0.02, "eps": 1e-7}
ADAM_BETAS, ADAM_EPSILON = (0.9, 0.999), 1e-7
MIN_REPEAT_S = 0.05  # a repeat runs enough epochs to last this long
CALIBRATION_ROUNDS = 5  # at most this many calls to find the epochs per repeat
REPEAT_BUDGET_S = 2.5  # repeats per candidate: as many as fit (at most --repeats, at least 3)
QUIET_S = 0.2  # the pause before each timed repeat
HEAVY_EPOCH_S = 1.0  # from here on the first call is the warm-up and the last repeat is also the memory epoch
MIB = 1024 * 1024
RESULTS = Path(__file__).resolve().parent / "results"
REPOSITORY = RESULTS.parent.parent


@dataclass
class Candidate:
    """One implementation: `run(k)` trains k epochs; `memory` names how its peak memory is measured."""

    name: str
    nnx: bool
    run: Callable[[int], None]
    synchronize: Callable[[], None] = lambda: None
    memory: str = "host"
    notes: dict = field(default_factory=dict)
    compiles: bool = False
    traced_repeat: bool = False
    first_call_s: float = 0.0
    epochs_per_repeat: int = 1
    repeats: int = 1
    samples_s: list = field(default_factory=list)
    system_s: list = field(default_factory=list)
    page_faults: list = field(default_factory=list)
    peak_memory: dict = field(default_factory=dict)

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples_s)


# Data and reference weights ----------------------------------------------------------------------------------------


def spiral(samples: int):
    nnx.seed(0)
    X, y = spiral_data(samples=samples // CLASSES, classes=CLASSES)
    return X.astype(np.float32), y


def initial_weights(hidden: int) -> dict:
    """The book's initialisation (0.01 * standard normal, zero biases) for the non-nnx implementations."""
    rng = np.random.default_rng(0)
    return {
        "w1": (0.01 * rng.standard_normal((INPUTS, hidden))).astype(np.float32),
        "b1": np.zeros((1, hidden), np.float32),
        "w2": (0.01 * rng.standard_normal((hidden, CLASSES))).astype(np.float32),
        "b2": np.zeros((1, CLASSES), np.float32),
    }


# nnx ----------------------------------------------------------------------------------------------------------------


def nnx_optimizer(name: str, backend):
    cls = nnx.SGD if name == "sgd" else nnx.Adam
    return cls(**OPTIMIZERS[name], xp=backend)


def layer_loop(label: str, backend, X_host, y_host, hidden: int, optimizer: str) -> Candidate:
    """The book's chapter-10 loop (`nnx.recipes.train_book_loop`): forward, fused softmax + loss, backward, update,
    layer by layer."""
    X, y = backend.asarray(X_host, dtype="float32"), backend.asarray(y_host)
    network = recipes.book_layers(hidden=hidden, classes=CLASSES, optimizer=nnx_optimizer(optimizer, backend))

    def run(epochs: int) -> None:
        recipes.train_book_loop(network, X, y, epochs)

    memory = "cupy" if backend.name == "cupy" else "host"
    return Candidate(label, True, run, backend.synchronize, memory, {"backend": backend.name})


@contextlib.contextmanager
def compile_setting(backend, enabled: bool):
    """Temporarily set the backend's `compile` switch (backends without one are left alone)."""
    if not hasattr(backend, "compile"):
        yield
        return
    saved = backend.compile
    backend.compile = enabled
    try:
        yield
    finally:
        backend.compile = saved


def spiral_model(hidden: int, optimizer) -> nnx.Model:
    """The chapter-10 network Dense(2, hidden)-ReLU-Dense(hidden, 3)-softmax as a finalized Model with `optimizer`,
    on the current backend."""
    model = nnx.Model()
    model.add(nnx.Dense(INPUTS, hidden))
    model.add(nnx.ReLU())
    model.add(nnx.Dense(hidden, CLASSES))
    model.add(nnx.Softmax())
    model.set(loss=nnx.CategoricalCrossentropy(), optimizer=optimizer, accuracy=nnx.metrics.Categorical())
    model.finalize()
    return model


def model_train(
    label: str, backend, X_host, y_host, hidden: int, optimizer: str, compiled: bool, threads: int | None = None
) -> Candidate:
    """`Model.train` on the same network; `compiled=False` turns the backend's compiled step off; `threads` sets
    Numba's thread count while it trains (None: the default, all the cores)."""
    X, y = backend.asarray(X_host, dtype="float32"), backend.asarray(y_host)
    with nnx.backends.use(backend):
        model = spiral_model(hidden, nnx_optimizer(optimizer, backend))

    def run(epochs: int) -> None:
        with compile_setting(backend, compiled), numba_thread_count(threads):
            model.train(X, y, epochs=epochs, print_every=None)

    def compiled_step_used() -> bool:
        with compile_setting(backend, compiled):
            return model.explain_step().startswith("compiled step")

    candidate = Candidate(label, True, run, backend.synchronize, notes={"backend": backend.name}, compiles=compiled)
    candidate.notes["compiled_step_used"] = compiled_step_used
    return candidate


@contextlib.contextmanager
def numba_thread_count(threads: int | None):
    """Numba's thread count set to `threads` for the block (None: left as it is)."""
    if threads is None or importlib.util.find_spec("numba") is None:
        yield
        return
    import numba

    saved = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(saved)


def nnx_candidates(backends: list, X, y, hidden: int, optimizer: str, generic: bool) -> list[Candidate]:
    """The layer loop on every backend (and on its generic reference), and `Model.train` on numpy."""
    candidates = []
    for backend in backends:
        candidates.append(layer_loop(f"loop {backend.name}", backend, X, y, hidden, optimizer))
        reference = backend.reference()
        if generic and reference is not backend:
            candidates.append(layer_loop(f"loop {backend.name} generic", reference, X, y, hidden, optimizer))
        if backend.name == "numpy":
            candidates.append(model_train("train compiled", backend, X, y, hidden, optimizer, compiled=True))
            if (os.cpu_count() or 1) > 1 and importlib.util.find_spec("numba") is not None:
                one = model_train("train compiled 1 thread", backend, X, y, hidden, optimizer, True, threads=1)
                candidates.append(one)
            if generic:
                candidates.append(model_train("train generic", backend, X, y, hidden, optimizer, compiled=False))
    return candidates


# Plain NumPy --------------------------------------------------------------------------------------------------------


def plain_numpy(X, y, hidden: int, optimizer: str) -> Candidate:
    """The network written out in NumPy: matmuls, maximum, softmax, the gradients, the book's update rules."""
    params = initial_weights(hidden)
    update = sgd_update(params) if optimizer == "sgd" else adam_update(params)
    rows, n = np.arange(len(y)), len(y)

    def epoch() -> float:
        h = X @ params["w1"] + params["b1"]
        r = np.maximum(h, 0)
        z = r @ params["w2"] + params["b2"]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        loss = float(np.mean(-np.log(np.clip(p[rows, y], 1e-7, 1 - 1e-7))))
        dz = p.copy()
        dz[rows, y] -= 1
        dz = dz / n
        dr = dz @ params["w2"].T
        dh = dr * (h > 0)
        update(
            {
                "w1": X.T @ dh,
                "b1": dh.sum(axis=0, keepdims=True),
                "w2": r.T @ dz,
                "b2": dz.sum(axis=0, keepdims=True),
            }
        )
        return loss

    def run(epochs: int) -> None:
        for _ in range(epochs):
            epoch()

    return Candidate("plain numpy", False, run)


def sgd_update(params: dict):
    learning_rate = OPTIMIZERS["sgd"]["learning_rate"]

    def update(grads: dict) -> None:
        for name, grad in grads.items():
            params[name] -= learning_rate * grad

    return update


def adam_update(params: dict):
    settings = OPTIMIZERS["adam"]
    (beta_1, beta_2), state = ADAM_BETAS, {"step": 0}
    momentums = {name: np.zeros_like(value) for name, value in params.items()}
    caches = {name: np.zeros_like(value) for name, value in params.items()}

    def update(grads: dict) -> None:
        step = state["step"] + 1
        learning_rate = settings["learning_rate"] / (1 + settings["decay"] * state["step"])
        for name, grad in grads.items():
            momentums[name] = beta_1 * momentums[name] + (1 - beta_1) * grad
            caches[name] = beta_2 * caches[name] + (1 - beta_2) * grad**2
            corrected_momentum = momentums[name] / (1 - beta_1**step)
            corrected_cache = caches[name] / (1 - beta_2**step)
            params[name] -= learning_rate * corrected_momentum / (np.sqrt(corrected_cache) + ADAM_EPSILON)
        state["step"] = step

    return update


# PyTorch ------------------------------------------------------------------------------------------------------------


def torch_candidate(torch, device: str, X, y, hidden: int, optimizer: str) -> Candidate:
    """PyTorch eager: Linear-ReLU-Linear, CrossEntropyLoss, torch.optim.SGD/Adam, same initial weights."""
    model = torch.nn.Sequential(torch.nn.Linear(INPUTS, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, CLASSES))
    weights = initial_weights(hidden)
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(weights["w1"].T.copy()))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.from_numpy(weights["w2"].T.copy()))
        model[2].bias.zero_()
    model = model.to(device)
    X_t = torch.from_numpy(X).to(device)
    y_t = torch.from_numpy(y.astype(np.int64)).to(device)
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=OPTIMIZERS["sgd"]["learning_rate"])
    else:
        opt = torch.optim.Adam(model.parameters(), **TORCH_ADAM)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run(epochs: int) -> None:
        for _ in range(epochs):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(X_t), y_t).backward()
            opt.step()

    if device == "cuda":
        return Candidate("torch cuda", False, run, torch.cuda.synchronize, "cuda")
    return Candidate("torch cpu", False, run, memory="torch-cpu")


def import_torch(threads: int):
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: running without the PyTorch columns")
        return None
    torch.set_num_threads(threads)
    return torch


def torch_candidates(torch, X, y, hidden: int, optimizer: str) -> list[Candidate]:
    if torch is None:
        return []
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    return [torch_candidate(torch, device, X, y, hidden, optimizer) for device in devices]


# JAX ----------------------------------------------------------------------------------------------------------------


def import_jax(enabled: bool):
    if not enabled:
        return None
    try:
        import jax
    except ImportError:
        print("JAX is not installed: running without the JAX column (pip install 'jax[cpu]')")
        return None
    return jax


def jax_candidate(jax, X, y, hidden: int, optimizer: str) -> Candidate:
    """JAX: the same network and update rule as one `jax.jit`-compiled step (forward, loss, gradients by
    `jax.grad`, update), called once per epoch with the data on the device; same initial weights."""
    jnp = jax.numpy
    params = {name: jnp.asarray(value) for name, value in initial_weights(hidden).items()}
    inputs, labels = jnp.asarray(X), jnp.asarray(y.astype(np.int32))

    def loss(p, inputs, labels):
        hidden_values = jnp.maximum(inputs @ p["w1"] + p["b1"], 0)
        log_probabilities = jax.nn.log_softmax(hidden_values @ p["w2"] + p["b2"])
        return -jnp.mean(jnp.take_along_axis(log_probabilities, labels[:, None], axis=1))

    settings = OPTIMIZERS[optimizer]
    (beta_1, beta_2) = ADAM_BETAS

    @jax.jit
    def step(p, state, inputs, labels):
        grads = jax.grad(loss)(p, inputs, labels)
        if optimizer == "sgd":
            return {k: p[k] - settings["learning_rate"] * grads[k] for k in p}, state
        moments, caches, count = state
        rate = settings["learning_rate"] / (1 + settings["decay"] * count)
        count = count + 1
        moments = {k: beta_1 * moments[k] + (1 - beta_1) * grads[k] for k in p}
        caches = {k: beta_2 * caches[k] + (1 - beta_2) * grads[k] ** 2 for k in p}
        updated = {
            k: p[k]
            - rate * (moments[k] / (1 - beta_1**count)) / (jnp.sqrt(caches[k] / (1 - beta_2**count)) + ADAM_EPSILON)
            for k in p
        }
        return updated, (moments, caches, count)

    zeros = {k: jnp.zeros_like(v) for k, v in params.items()}
    holder = {"params": params, "state": (zeros, zeros, jnp.float32(0))}

    def run(epochs: int) -> None:
        p, state = holder["params"], holder["state"]
        for _ in range(epochs):
            p, state = step(p, state, inputs, labels)
        holder["params"], holder["state"] = p, state

    def synchronize() -> None:
        jax.block_until_ready(holder["params"])

    return Candidate("jax jit", False, run, synchronize, notes={"jax": jax.__version__}, compiles=True)


# Memory -------------------------------------------------------------------------------------------------------------


def rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


def reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark for this process (Linux); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def max_rss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def host_peaks(run_epoch: Callable[[], None]) -> dict:
    """One epoch's peak bytes allocated as tracemalloc sees them (NumPy reports its buffers to it), and its peak
    resident memory above the resident memory before it."""
    rss_before = rss_bytes()
    resettable = rss_before is not None and reset_peak_rss()
    max_rss_before = max_rss_bytes()
    tracemalloc.start()
    try:
        run_epoch()
        traced = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if resettable:
        rss, method = peak_rss_bytes() - rss_before, "peak RSS (high-water mark reset) minus RSS before"
    else:
        rss, method = max_rss_bytes() - max_rss_before, "ru_maxrss delta (0 unless the epoch set a new process peak)"
    return {"tracemalloc_bytes": traced, "rss_bytes": max(0, rss), "rss_method": method}


def cuda_peak(torch, run_epoch: Callable[[], None]) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    run_epoch()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def cupy_pool(run_epoch: Callable[[], None]) -> dict:
    import cupy

    run_epoch()
    pool = cupy.get_default_memory_pool()
    return {"pool_used_bytes": pool.used_bytes(), "pool_total_bytes": pool.total_bytes()}


def measure_memory(candidate: Candidate, torch) -> dict:
    def run_epoch() -> None:
        candidate.run(1)
        candidate.synchronize()

    if candidate.memory == "cuda":
        return {"cuda_peak_bytes": cuda_peak(torch, run_epoch), "method": "torch.cuda.max_memory_allocated"}
    if candidate.memory == "cupy":
        return {**cupy_pool(run_epoch), "method": "CuPy memory pool after one epoch"}
    if candidate.memory == "torch-cpu":
        cpu_peak = getattr(torch.cpu, "max_memory_allocated", None)
        if cpu_peak is not None:
            run_epoch()
            return {"torch_cpu_peak_bytes": cpu_peak(), "method": "torch.cpu.max_memory_allocated"}
        peaks = host_peaks(run_epoch)
        return {"rss_bytes": peaks["rss_bytes"], "method": peaks["rss_method"]}
    peaks = host_peaks(run_epoch)
    return {**peaks, "method": "tracemalloc peak and RSS growth"}


# Timing -------------------------------------------------------------------------------------------------------------


def seconds_per_epoch(candidate: Candidate, epochs: int) -> float:
    candidate.synchronize()
    start = time.perf_counter()
    candidate.run(epochs)
    candidate.synchronize()
    return (time.perf_counter() - start) / epochs


def prepare(candidate: Candidate, torch, max_repeats: int) -> None:
    """First call (timed: it compiles where there is something to compile), warm-up, epochs per repeat, repeats,
    and the memory of one epoch (for heavy candidates, the last timed repeat's epoch instead)."""
    candidate.first_call_s = epoch_s = seconds_per_epoch(candidate, 1)
    if candidate.compiles or epoch_s < HEAVY_EPOCH_S:
        # The first call may compile, and a call's fixed cost weighs on one epoch: measure again (twice at least)
        # until the epochs per repeat settle, or one slow call after the compile leaves too few of them.
        for round_ in range(CALIBRATION_ROUNDS):
            epochs = math.ceil(MIN_REPEAT_S / epoch_s)
            epoch_s = seconds_per_epoch(candidate, epochs)
            if round_ >= 1 and math.ceil(MIN_REPEAT_S / epoch_s) <= 2 * epochs:
                break
    candidate.epochs_per_repeat = math.ceil(MIN_REPEAT_S / epoch_s)
    repeat_s = candidate.epochs_per_repeat * epoch_s
    candidate.repeats = max(min(max_repeats, 3), min(max_repeats, int(REPEAT_BUDGET_S / repeat_s)))
    candidate.traced_repeat = epoch_s >= HEAVY_EPOCH_S
    if not candidate.traced_repeat:
        candidate.peak_memory = measure_memory(candidate, torch)
    probe = candidate.notes.get("compiled_step_used")
    if callable(probe):
        candidate.notes["compiled_step_used"] = probe()


def time_repeat(candidate: Candidate, torch, last: bool) -> None:
    """One timed repeat, with the process's system time and minor page faults per epoch beside it; a heavy
    candidate's last repeat (a single epoch) also measures its memory. It starts after a pause in which the other
    libraries' idle threads stop spinning (OpenBLAS's spin for about 0.1 s after a product): each repeat gets the
    cores as a program running alone would."""
    time.sleep(QUIET_S)
    before = resource.getrusage(resource.RUSAGE_SELF)
    if last and candidate.traced_repeat:
        candidate.synchronize()
        start = time.perf_counter()
        candidate.peak_memory = measure_memory(candidate, torch)
        seconds = time.perf_counter() - start
    else:
        seconds = seconds_per_epoch(candidate, candidate.epochs_per_repeat)
    after = resource.getrusage(resource.RUSAGE_SELF)
    epochs = candidate.epochs_per_repeat
    candidate.samples_s.append(seconds)
    candidate.system_s.append((after.ru_stime - before.ru_stime) / epochs)
    candidate.page_faults.append((after.ru_minflt - before.ru_minflt) / epochs)


def time_interleaved(candidates: list[Candidate], torch) -> None:
    """Round-robin repeats, so that noise on the machine hits every candidate alike."""
    for repeat in range(max(c.repeats for c in candidates)):
        for candidate in candidates:
            if repeat < candidate.repeats:
                time_repeat(candidate, torch, last=repeat == candidate.repeats - 1)


def benchmark(candidates: list[Candidate], torch, max_repeats: int) -> list[Candidate]:
    """Prepare and time `candidates`; one that fails is reported and dropped."""
    ready = []
    for candidate in candidates:
        try:
            prepare(candidate, torch, max_repeats)
        except Exception as error:
            print(f"  skipping {candidate.name}: {type(error).__name__}: {error}")
            continue
        ready.append(candidate)
    time_interleaved(ready, torch)
    return ready


# The floor ----------------------------------------------------------------------------------------------------------


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 `np.matmul` throughput on square matrices, with all the cores NumPy's BLAS uses."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
    np.matmul(a, b)
    best = min(timed(lambda: np.matmul(a, b)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def copy_gbps(megabytes: int = 512, repeats: int = 5) -> float:
    """Best `np.copyto` bandwidth (bytes read + written) on arrays far bigger than any cache."""
    source = np.ones(megabytes * MIB // 4, np.float32)
    target = np.zeros_like(source)
    np.copyto(target, source)
    best = min(timed(lambda: np.copyto(target, source)) for _ in range(repeats))
    return 2 * source.nbytes / best / 1e9


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def epoch_flops(samples: int, hidden: int) -> int:
    forward = 2 * samples * (INPUTS * hidden + hidden * CLASSES)
    backward = 2 * samples * (hidden * CLASSES + hidden * CLASSES + INPUTS * hidden)
    return forward + backward


def epoch_bytes(samples: int, hidden: int, optimizer: str, label_bytes: int) -> int:
    """Reading X and y once, reading and writing the parameters (and Adam's two state arrays per parameter)."""
    parameters = INPUTS * hidden + hidden + hidden * CLASSES + CLASSES
    copies = 1 if optimizer == "sgd" else 3
    return samples * (INPUTS * 4 + label_bytes) + 2 * 4 * parameters * copies


def floor_seconds(samples: int, hidden: int, optimizer: str, label_bytes: int, machine: dict) -> float:
    compute = epoch_flops(samples, hidden) / (machine["matmul_gflops"] * 1e9)
    memory = epoch_bytes(samples, hidden, optimizer, label_bytes) / (machine["copy_gbps"] * 1e9)
    return max(compute, memory)


# Time versus N ------------------------------------------------------------------------------------------------------


def scaling(backend, torch, samples_list, max_repeats: int, machine: dict) -> dict:
    """nnx layer loop and Model.train (numpy, SGD) at growing N: time per sample, the floor and the log-log slope."""
    rows = []
    for samples in samples_list:
        X, y = spiral(samples)
        candidates = [
            layer_loop("loop numpy", backend, X, y, SCALING_HIDDEN, "sgd"),
            model_train("train", backend, X, y, SCALING_HIDDEN, "sgd", compiled=True),
        ]
        done = benchmark(candidates, torch, max_repeats)
        floor_s = floor_seconds(len(y), SCALING_HIDDEN, "sgd", y.itemsize, machine)
        rows.append({"samples": len(y), "floor_s": floor_s, **{c.name: c.median_s for c in done}})
    names = [name for name in ("loop numpy", "train") if all(name in row for row in rows)]
    slopes = {name: log_log_slope([r["samples"] for r in rows], [r[name] for r in rows]) for name in names}
    return {"hidden": SCALING_HIDDEN, "optimizer": "sgd", "rows": rows, "slopes": slopes}


def log_log_slope(x: list, y: list) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


# Machine and versions -----------------------------------------------------------------------------------------------


def version_of(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def cupy_version() -> str | None:
    if importlib.util.find_spec("cupy") is None:
        return None
    import cupy

    return cupy.__version__


def blas_threads() -> dict:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
        return {"source": "environment", **{name: os.environ.get(name) for name in names}}
    return {"source": "threadpoolctl", "pools": threadpool_info()}


def load_average() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment(torch, backends: list) -> dict:
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_model(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "load_average_at_start": load_average(),
            "python": sys.version,
        },
        "versions": {
            "python": platform.python_version(),
            "nnx": nnx.__version__,
            "numpy": np.__version__,
            "torch": torch.__version__ if torch is not None else None,
            "numba": version_of("numba"),
            "cupy": cupy_version(),
        },
        "backends": [{"name": b.name, "device": str(b.device)} for b in backends],
        "threads": {
            "torch": torch.get_num_threads() if torch is not None else None,
            "torch_cuda": torch.cuda.is_available() if torch is not None else None,
            "blas": blas_threads(),
        },
    }


# Printing -----------------------------------------------------------------------------------------------------------


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.3g}" if seconds < 1e-2 else f"{seconds * 1e3:.1f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.3g}"


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.1f}"


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """A title, then columns as wide as their widest cell: the first left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(title)
    for row in [header, *rows]:
        first, *rest = (str(cell) for cell in row)
        print(f"{first:<{widths[0]}}" + "".join(f"  {cell:>{w}}" for cell, w in zip(rest, widths[1:], strict=True)))


def print_time_table(optimizer: str, runs: list[dict], names: list[str]) -> None:
    rows = [[run["size"], *(ms(run["ms"].get(name)) for name in names), ms(run["floor_s"])] for run in runs]
    settings = ", ".join(f"{key}={value}" for key, value in OPTIMIZERS[optimizer].items())
    print_table(f"\n{optimizer.upper()} ({settings}): median ms per epoch", ["size", *names, "floor"], rows)


def print_ratio_table(runs: list[dict], names: list[str]) -> None:
    nnx_names = [name for name in names if name.startswith(("loop", "train"))]
    peers = ("torch cpu", "jax jit", "plain numpy")
    rows = []
    for run in runs:
        times = run["ms"]
        cells = (
            " | ".join([ratio(times.get(n), run["floor_s"]), *(ratio(times.get(n), times.get(p)) for p in peers)])
            for n in nnx_names
        )
        rows.append([run["size"], *cells])
    print_table(f"ratios: nnx / floor | nnx / {' | nnx / '.join(peers)}", ["size", *nnx_names], rows)
    rows = [
        [run["size"], ratio(run["ms"].get("train compiled 1 thread"), run["ms"].get("train compiled"))]
        for run in runs
        if "train compiled 1 thread" in run["ms"]
    ]
    if rows:
        print_table("threads: Model.train compiled, 1 thread / all threads", ["size", "speed-up"], rows)


def print_memory_table(runs: list[dict], names: list[str]) -> None:
    rows = [[run["size"], *(memory_cell(run["memory"].get(name)) for name in names)] for run in runs]
    title = "peak memory of one epoch, MiB (host: tracemalloc / RSS growth; torch cpu: RSS growth; GPU: device)"
    print_table(title, ["size", *names], rows)


def print_system_table(runs: list[dict], names: list[str]) -> None:
    rows = [[run["size"], *(system_cell(run["system"].get(n), run["ms"].get(n)) for n in names)] for run in runs]
    title = "per epoch: minor page faults | system time as a share of the wall time (all threads)"
    print_table(title, ["size", *names], rows)


def system_cell(system: tuple | None, seconds: float | None) -> str:
    if system is None or not seconds:
        return "-"
    system_s, faults = system
    return f"{faults:,.0f} | {system_s / seconds:.0%}"


def memory_cell(memory: dict | None) -> str:
    if not memory:
        return "-"
    if "tracemalloc_bytes" in memory:
        return f"{mib(memory['tracemalloc_bytes'])} / {mib(memory['rss_bytes'])}"
    for key in ("cuda_peak_bytes", "pool_used_bytes", "torch_cpu_peak_bytes", "rss_bytes"):
        if key in memory:
            return mib(memory[key])
    return "-"


def print_first_calls(runs: list[dict]) -> None:
    for run in runs:
        for name, details in run["first_call"].items():
            print(
                f"compile/first call of {name} at {run['size']}: {ms(details['first_call_s'])} ms "
                f"(compiled step used: {details['compiled_step_used']})"
            )


def print_scaling(result: dict) -> None:
    names = list(result["slopes"])
    rows = [[str(row["samples"]), *(f"{row[n] / row['samples'] * 1e6:.3f}" for n in names)] for row in result["rows"]]
    rows.append(["slope", *(f"{result['slopes'][n]:.3f}" for n in names)])
    title = (
        f"\ntime vs N (numpy, H={result['hidden']}, SGD): microseconds per sample per epoch; "
        f"slope = least-squares slope of log time vs log N (1 is linear)"
    )
    print_table(title, ["N", *names], rows)


# Main ---------------------------------------------------------------------------------------------------------------


def chosen_backends(names: list[str] | None) -> list:
    available = nnx.backends.available()
    unknown = sorted(set(names or []) - set(available))
    if unknown:
        raise SystemExit(f"backends not available here: {', '.join(unknown)}; available: {', '.join(available)}")
    return [nnx.backends.get(name) for name in (names or available)]


def run_size(size: str, optimizer: str, backends: list, torch, machine: dict, args) -> dict:
    samples, hidden = SIZES[size]
    X, y = spiral(samples)
    everything = samples < BIG_SAMPLES or args.all
    usable = [b for b in backends if everything or b.name not in SLOW_BACKENDS]
    if not everything:
        skipped = [b.name for b in backends if b not in usable] + ["generic variants"]
        print(f"{size}: skipping {', '.join(skipped)} (add them with --all)")
    candidates = [
        *nnx_candidates(usable, X, y, hidden, optimizer, generic=everything),
        *torch_candidates(torch, X, y, hidden, optimizer),
        *([jax_candidate(args.jax, X, y, hidden, optimizer)] if args.jax is not None else []),
        plain_numpy(X, y, hidden, optimizer),
    ]
    print(f"{size} (N={len(y)}, H={hidden}) {optimizer}: {', '.join(c.name for c in candidates)}", flush=True)
    done = benchmark(candidates, torch, args.repeats)
    compiled = [c for c in done if "compiled_step_used" in c.notes]
    return {
        "size": size,
        "samples": len(y),
        "hidden": hidden,
        "optimizer": optimizer,
        "floor_s": floor_seconds(len(y), hidden, optimizer, y.itemsize, machine),
        "flops": epoch_flops(len(y), hidden),
        "bytes": epoch_bytes(len(y), hidden, optimizer, y.itemsize),
        "ms": {c.name: c.median_s for c in done},
        "memory": {c.name: c.peak_memory for c in done},
        "system": {c.name: (statistics.median(c.system_s), statistics.median(c.page_faults)) for c in done},
        "first_call": {c.name: {"first_call_s": c.first_call_s, **c.notes} for c in compiled},
        "candidates": [candidate_record(c) for c in done],
    }


def candidate_record(candidate: Candidate) -> dict:
    return {
        "name": candidate.name,
        "nnx": candidate.nnx,
        "median_s": candidate.median_s,
        "samples_s": candidate.samples_s,
        "system_s_per_epoch": candidate.system_s,
        "minor_page_faults_per_epoch": candidate.page_faults,
        "epochs_per_repeat": candidate.epochs_per_repeat,
        "memory_traced_in_last_repeat": candidate.traced_repeat,
        "first_call_s": candidate.first_call_s,
        "peak_memory": candidate.peak_memory,
        **candidate.notes,
    }


def portable(value):
    """`value` with this machine's paths left out, so that the JSON can be shared: paths inside the repository
    relative to it, other absolute paths (the libraries' files that threadpoolctl names) as their file names."""
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [portable(item) for item in value]
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str) and os.path.isabs(value) and os.sep in value:
        path = Path(value)
        return str(path.relative_to(REPOSITORY)) if path.is_relative_to(REPOSITORY) else path.name
    return value


def write_results(result: dict, out: Path, name: str = "bench") -> Path:
    """Write `result` as JSON to out/<name>-<time>.json and out/<name>-latest.json; returns the first."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out / f"{name}-{stamp}.json"
    text = json.dumps(portable(result), indent=2, default=str)
    path.write_text(text)
    (out / f"{name}-latest.json").write_text(text)
    return path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--optimizers", nargs="+", choices=list(OPTIMIZERS), default=list(OPTIMIZERS))
    parser.add_argument("--backends", nargs="+", help="nnx backends (default: all available)")
    parser.add_argument("--all", action="store_true", help="also run slow backends and generic variants at 300k")
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1, help="default: all CPUs")
    parser.add_argument("--quick", action="store_true", help="a smoke run: one repeat, fewer scaling sizes")
    parser.add_argument("--repeats", type=int, default=7, help="most repeats per candidate (default 7)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--no-jax", action="store_true", help="leave JAX out even where it is installed")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    return args


def run_all(args, backends: list, torch, machine: dict) -> tuple[list[dict], dict]:
    """Sizes from small to big, both optimizers each; time versus N before the big sizes, so that the aftermath of
    their gigabytes of temporaries does not disturb it."""
    sizes = [size for size in SIZES if size in args.sizes]
    small = [size for size in sizes if SIZES[size][0] < BIG_SAMPLES]
    big = [size for size in sizes if SIZES[size][0] >= BIG_SAMPLES]
    runs = [run_size(size, opt, backends, torch, machine, args) for size in small for opt in args.optimizers]
    print("time vs N", flush=True)
    scaling_samples = SCALING_SAMPLES[:3] if args.quick else SCALING_SAMPLES
    scaled = scaling(nnx.backends.get("numpy"), torch, scaling_samples, args.repeats, machine)
    runs += [run_size(size, opt, backends, torch, machine, args) for size in big for opt in args.optimizers]
    return runs, scaled


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    backends = chosen_backends(args.backends)
    torch = import_torch(args.torch_threads)
    args.jax = import_jax(not args.no_jax)
    info = environment(torch, backends)
    info["versions"]["jax"] = version_of("jax") if args.jax is not None else None
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, torch threads {info['threads']['torch']}, "
        f"load average {info['machine']['load_average_at_start']} (other work on the CPUs adds noise)"
    )
    machine = {"matmul_gflops": matmul_gflops(), "copy_gbps": copy_gbps()}
    print(f"floor: float32 matmul {machine['matmul_gflops']:.1f} GFLOP/s, copy {machine['copy_gbps']:.1f} GB/s\n")
    runs, scaled = run_all(args, backends, torch, machine)
    for optimizer in args.optimizers:
        chosen = [run for run in runs if run["optimizer"] == optimizer]
        names = list(dict.fromkeys(name for run in chosen for name in run["ms"]))
        print_time_table(optimizer, chosen, names)
        print_ratio_table(chosen, names)
        print_memory_table(chosen, names)
        print_system_table(chosen, names)
        print_first_calls(chosen)
    print_scaling(scaled)
    total_s = time.perf_counter() - started
    settings = {key: value for key, value in vars(args).items() if key != "jax"}
    result = {**info, "floor_machine": machine, "args": settings, "runs": runs, "scaling": scaled}
    result.update(total_s=total_s, process_peak_rss_bytes=max_rss_bytes(), load_average_at_end=load_average())
    path = write_results(result, args.out)
    print(f"\ntotal {total_s:.0f} s, process peak RSS {mib(max_rss_bytes())} MiB; results in {path}")


if __name__ == "__main__":
    main()
