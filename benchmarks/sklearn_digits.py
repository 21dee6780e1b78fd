"""nnx in scikit-learn on the digits data: `NNXClassifier` against `MLPClassifier` (same hidden size, epochs, batch
size, learning rate and Adam), and `StackedSearchCV` against `GridSearchCV` on one 32-candidate grid.

python benchmarks/sklearn_digits.py [--hidden 64] [--epochs 50] [--folds 5]

Both classifiers sit behind a StandardScaler in a Pipeline and are scored with 5-fold cross-validation; the script
prints each one's accuracy (mean over the folds) and time. Then both searches run the same grid (learning rate x L2
x dropout x hidden width) in float64; the script prints both times, their ratio, and the largest difference between
their mean test scores (the goal: 0, to 1e-9).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nnx.sklearn import NNXClassifier, StackedSearchCV

GRID = {
    "learning_rate": [0.0003, 0.001, 0.003, 0.01],
    "l2": [0.0, 1e-4],
    "dropout": [0.0, 0.1],
    "hidden_layer_sizes": [(32,), (64,)],
}


def timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def compare_with_mlp(X, y, args) -> None:
    common = {"batch_size": 32, "random_state": 0}
    ours = NNXClassifier(hidden_layer_sizes=(args.hidden,), epochs=args.epochs, learning_rate=0.001, **common)
    theirs = MLPClassifier(
        hidden_layer_sizes=(args.hidden,), max_iter=args.epochs, learning_rate_init=0.001, alpha=0.0, tol=0.0,
        n_iter_no_change=args.epochs + 1, **common,
    )  # fmt: skip
    print(f"digits, {args.folds}-fold CV, StandardScaler + one hidden layer of {args.hidden}, {args.epochs} epochs:")
    for name, model in (("NNXClassifier", ours), ("MLPClassifier", theirs)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            scores, seconds = timed(
                lambda m=model: cross_val_score(make_pipeline(StandardScaler(), m), X, y, cv=args.folds)
            )
        print(f"  {name}: accuracy {scores.mean():.4f} (+/- {scores.std():.4f}) in {seconds:6.2f} s")


def compare_searches(X, y, args) -> None:
    X = StandardScaler().fit_transform(X)
    estimator = NNXClassifier(epochs=args.search_epochs, batch_size=64, dtype="float64", random_state=0)
    n_candidates = int(np.prod([len(values) for values in GRID.values()]))
    print(f"a grid of {n_candidates} candidates, {args.folds}-fold CV, {args.search_epochs} epochs each (float64):")
    GridSearchCV(estimator, {"epochs": [1]}, cv=2).fit(X, y)  # compile the kernels once, outside the timings
    StackedSearchCV(estimator, {"epochs": [1]}, cv=2).fit(X, y)
    stacked, stacked_s = timed(lambda: StackedSearchCV(estimator, GRID, cv=args.folds).fit(X, y))
    grid, grid_s = timed(lambda: GridSearchCV(estimator, GRID, cv=args.folds).fit(X, y))
    print(f"  StackedSearchCV: {stacked_s:7.2f} s ({stacked.n_stacks_} stacks)")
    print(f"  GridSearchCV:    {grid_s:7.2f} s (n_jobs=1)")
    print(f"  speed-up: {grid_s / stacked_s:.2f}x")
    if args.jobs > 1:
        _, parallel_s = timed(lambda: GridSearchCV(estimator, GRID, cv=args.folds, n_jobs=args.jobs).fit(X, y))
        print(f"  GridSearchCV:    {parallel_s:7.2f} s (n_jobs={args.jobs}); speed-up {parallel_s / stacked_s:.2f}x")
    gap = np.abs(stacked.cv_results_["mean_test_score"] - grid.cv_results_["mean_test_score"]).max()
    same = stacked.best_params_ == grid.best_params_
    print(f"  largest difference of the mean test scores: {gap:.1e}; same best parameters: {same}")


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--hidden", type=int, default=64)
    options.add_argument("--epochs", type=int, default=50)
    options.add_argument("--folds", type=int, default=5)
    options.add_argument("--search-epochs", type=int, default=20)
    options.add_argument("--jobs", type=int, default=2, help="also time GridSearchCV with this many processes")
    args = options.parse_args()
    X, y = load_digits(return_X_y=True)
    compare_with_mlp(X, y, args)
    compare_searches(X, y, args)


if __name__ == "__main__":
    main()
