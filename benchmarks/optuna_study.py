"""Time `nnx.sweep.optimize` (Optuna trials asked in batches, each batch's models trained as stacks) against Optuna's
own trial-by-trial `study.optimize(objective, n_trials, n_jobs=1)`, on the same trials of the spiral network.

python benchmarks/optuna_study.py [--trials 64] [--batch 32] [--epochs 501]

Both studies draw their trials with a `RandomSampler` of one seed and no pruner, so they train the same models;
the script prints both wall times, their ratio (the goal: >= 3x) and the largest difference between the values.
"""

from __future__ import annotations

import argparse
import time

import optuna

import nnx
from nnx.datasets import spiral_data

GOAL = 3.0


def build(trial):
    """The chapter-10 network with a searched learning rate, decay and hidden width (float32, SGD)."""
    lr = trial.suggest_float("lr", 0.01, 1.0, log=True)
    decay = trial.suggest_float("decay", 1e-5, 1e-2, log=True)
    hidden = trial.suggest_categorical("hidden", [32, 64])
    model = nnx.Model()
    for layer in (nnx.Dense(2, hidden), nnx.ReLU(), nnx.Dense(hidden, 3), nnx.Softmax()):
        model.add(layer)
    model.set(
        loss=nnx.CategoricalCrossentropy(),
        optimizer=nnx.SGD(learning_rate=lr, decay=decay),
        accuracy=nnx.metrics.Categorical(),
    )
    model.finalize()
    return model


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--trials", type=int, default=64)
    options.add_argument("--batch", type=int, default=32)
    options.add_argument("--epochs", type=int, default=501)
    args = options.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    nnx.seed(0)
    X, y = spiral_data(samples=100, classes=3)

    def study():
        return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), pruner=optuna.pruners.NopPruner())

    def objective(trial):
        nnx.seed(0)
        return build(trial).train(X, y, epochs=args.epochs, verbose=0).final["loss"]

    warm = study()  # compile the kernels once, outside both timings
    nnx.sweep.optimize(warm, build, X, y, n_trials=8, batch=8, epochs=2, objective="loss", progress=False)
    warm.optimize(objective, n_trials=1)

    batched = study()
    start = time.perf_counter()
    nnx.sweep.optimize(
        batched, build, X, y, n_trials=args.trials, batch=args.batch, epochs=args.epochs, objective="loss",
        progress=False,
    )  # fmt: skip
    batched_s = time.perf_counter() - start
    one_by_one = study()
    start = time.perf_counter()
    one_by_one.optimize(objective, n_trials=args.trials, n_jobs=1)
    solo_s = time.perf_counter() - start

    same = [a.params == b.params for a, b in zip(batched.trials, one_by_one.trials, strict=True)]
    gap = max(abs(a.value - b.value) / abs(b.value) for a, b in zip(batched.trials, one_by_one.trials, strict=True))
    print(f"{args.trials} trials of {args.epochs} epochs, batches of {args.batch}; same parameters: {all(same)}")
    print(f"nnx.sweep.optimize (stacked batches): {batched_s:8.2f} s")
    print(f"study.optimize(n_jobs=1), one by one: {solo_s:8.2f} s")
    ratio = solo_s / batched_s
    print(f"speed-up: {ratio:.1f}x (goal >= {GOAL:g}x: {'met' if ratio >= GOAL else 'not met'})")
    print(f"largest relative difference of the values (float32 rounding in another order): {gap:.2e}")


if __name__ == "__main__":
    main()
