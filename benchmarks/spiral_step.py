"""Time one training step of the book's 2-64-3 spiral network: nnx on each available backend, a plain NumPy
version and PyTorch eager (if installed), side by side in one run. Prints ratios to plain NumPy.

    python benchmarks/spiral_step.py --steps 2000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import nnx
from nnx.datasets import spiral_data


def nnx_step(backend, X_host, y_host):
    X, y = backend.asarray(X_host, dtype="float32"), backend.asarray(y_host)
    with nnx.backends.use(backend):
        dense1, relu, dense2 = nnx.Dense(2, 64), nnx.ReLU(), nnx.Dense(64, 3)
        head, optimizer = nnx.SoftmaxCategoricalCrossentropy(), nnx.SGD()

    def step():
        dense1.forward(X)
        relu.forward(dense1.output)
        dense2.forward(relu.output)
        head.forward(dense2.output, y)
        head.backward(head.output, y)
        dense2.backward(head.dinputs)
        relu.backward(dense2.dinputs)
        dense1.backward(relu.dinputs)
        optimizer.pre_update_params()
        optimizer.update_params(dense1)
        optimizer.update_params(dense2)
        optimizer.post_update_params()

    return step, backend.synchronize


def numpy_step(X_host, y_host):
    X, rows = X_host.astype(np.float32), np.arange(len(y_host))
    w1 = (0.01 * np.random.standard_normal((2, 64))).astype(np.float32)
    w2 = (0.01 * np.random.standard_normal((64, 3))).astype(np.float32)
    b1, b2 = np.zeros((1, 64), np.float32), np.zeros((1, 3), np.float32)

    def step():
        nonlocal w1, w2, b1, b2
        h = X @ w1 + b1
        r = np.maximum(h, 0)
        z = r @ w2 + b2
        e = np.exp(z - z.max(axis=1, keepdims=True))
        s = e / e.sum(axis=1, keepdims=True)
        np.mean(-np.log(np.clip(s[rows, y_host], 1e-7, 1 - 1e-7)))
        s[rows, y_host] -= 1
        dz = s / len(X)
        dr = dz @ w2.T
        dr[h <= 0] = 0
        w2 -= r.T @ dz
        b2 -= dz.sum(axis=0, keepdims=True)
        w1 -= X.T @ dr
        b1 -= dr.sum(axis=0, keepdims=True)

    return step, lambda: None


def torch_step(X_host, y_host):
    import torch

    torch.set_num_threads(1)
    X, y = torch.tensor(X_host, dtype=torch.float32), torch.tensor(y_host, dtype=torch.long)
    model = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad()
        loss_fn(model(X), y).backward()
        optimizer.step()

    return step, lambda: None


def seconds_per_step(step, synchronize, steps: int) -> float:
    for _ in range(20):
        step()
    synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=100, help="samples per class")
    args = parser.parse_args()
    nnx.seed(0)
    X, y = spiral_data(samples=args.samples, classes=3)
    candidates = {"plain numpy": numpy_step(X, y)}
    for name in nnx.backends.available():
        candidates[f"nnx {name}"] = nnx_step(nnx.backends.get(name), X, y)
    try:
        candidates["torch eager (1 thread)"] = torch_step(X, y)
    except ImportError:
        print("torch is not installed: skipping PyTorch eager")
    timings = {name: seconds_per_step(*pair, args.steps) for name, pair in candidates.items()}
    reference = timings["plain numpy"]
    print(f"{'implementation':<26}{'us/step':>10}{'vs plain numpy':>16}")
    for name, seconds in timings.items():
        print(f"{name:<26}{seconds * 1e6:>10.1f}{seconds / reference:>15.2f}x")


if __name__ == "__main__":
    main()
