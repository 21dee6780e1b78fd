"""The scores of a search (`StackedSearchCV`) per candidate and split, and `cv_results_` made from them the way
scikit-learn's `GridSearchCV` makes it: the same keys, masked parameter columns and ranks."""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
from scipy.stats import rankdata

OWNER = "StackedSearchCV"


class Scores:
    """Every candidate's scores and times on every split, and `cv_results_` made from them as GridSearchCV makes
    it."""

    def __init__(self, n_candidates: int, n_splits: int, train: bool):
        shape = (n_candidates, n_splits)
        self.test, self.fit_time, self.score_time = np.full(shape, np.nan), np.zeros(shape), np.zeros(shape)
        self.train = np.full(shape, np.nan) if train else None
        self.split = 0
        self.failures: list[str] = []

    def of_split(self, split: int) -> Scores:
        self.split = split
        return self

    def failed(self, index: int, score: float, seconds: float = 0.0) -> None:
        self.failures.append(f"candidate {index}, split {self.split}")
        self.test[index, self.split] = score
        self.fit_time[index, self.split] = seconds
        if self.train is not None:
            self.train[index, self.split] = score

    def check_some_succeeded(self) -> None:
        """A ValueError when every fit failed, as GridSearchCV raises it."""
        if len(self.failures) == self.test.size:
            raise ValueError(
                f"{OWNER}: all the {self.test.size} fits failed (the warnings say why); the estimator is very likely "
                f"misconfigured. Pass error_score='raise' to see the first error as it happens"
            )

    def scored(self, index: int, seconds: float, score: Any) -> None:
        start = time.perf_counter()
        self.test[index, self.split] = score()
        self.score_time[index, self.split] = time.perf_counter() - start
        self.fit_time[index, self.split] = seconds

    def train_score(self, index: int, score: float) -> None:
        if self.train is not None:
            self.train[index, self.split] = score

    def results(self, candidates: list[dict]) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for name, times in (("fit_time", self.fit_time), ("score_time", self.score_time)):
            results[f"mean_{name}"], results[f"std_{name}"] = times.mean(axis=1), times.std(axis=1)
        results.update(_param_columns(candidates))
        results["params"] = candidates
        kinds: list[tuple[str, Any]] = [("test", self.test), ("train", self.train)]
        for kind, values in kinds:
            if values is None:
                continue
            for split in range(values.shape[1]):
                results[f"split{split}_{kind}_score"] = values[:, split]
            results[f"mean_{kind}_score"], results[f"std_{kind}_score"] = values.mean(axis=1), values.std(axis=1)
            if kind == "test":
                results["rank_test_score"] = _ranks(results["mean_test_score"])
            if not np.isfinite(results[f"mean_{kind}_score"]).all():
                warnings.warn(
                    f"{OWNER}: one or more of the mean {kind} scores are not finite: {results[f'mean_{kind}_score']}",
                    UserWarning,
                    stacklevel=3,
                )
        return results


def _ranks(means: Any) -> Any:
    """Ranks as GridSearchCV gives them: 1 is best, ties share the lowest rank, NaN ranks last."""
    if np.isnan(means).all():
        return np.ones(len(means), dtype=np.int32)
    filled = np.nan_to_num(means, nan=np.nanmin(means) - 1)
    return rankdata(-filled, method="min").astype(np.int32)


def _param_columns(candidates: list[dict]) -> dict[str, Any]:
    """A masked "param_<name>" column per parameter (masked where a candidate lacks it), typed as its values."""
    names = sorted({name for params in candidates for name in params})
    columns = {}
    for name in names:
        values = [params[name] for params in candidates if name in params]
        try:
            typed = np.array(values)
            dtype = typed.dtype if typed.dtype.kind not in "UO" and typed.ndim == 1 else np.dtype(object)
        except ValueError:
            dtype = np.dtype(object)
        column = np.ma.MaskedArray(np.empty(len(candidates), dtype=dtype), mask=True)
        for index, params in enumerate(candidates):
            if name in params:
                column[index] = params[name]
        columns[f"param_{name}"] = column
    return columns
