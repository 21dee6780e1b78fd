"""`StackedSearchCV`: `GridSearchCV`'s interface and results, with the candidates of each split that share an
architecture (and their data, epochs and batching) trained as one `train_many` stack instead of one by one."""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Iterator
from numbers import Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.exceptions import FitFailedWarning
from sklearn.metrics import check_scoring
from sklearn.model_selection import ParameterGrid, check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing, get_tags, indexable
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from nnx import _checks
from nnx.callbacks.history import History
from nnx.errors import DivergenceError
from nnx.sklearn.base import NNXEstimator
from nnx.sklearn.fits import SEED_RANGE, Fit, train_fits
from nnx.sklearn.results import Scores
from nnx.training import plan_stack

OWNER = "StackedSearchCV"
Member = tuple[int, Any, Fit]  # a candidate's index, its estimator (or Pipeline) and its prepared fit


class StackedSearchCV(MetaEstimatorMixin, BaseEstimator):
    """An exhaustive search over a parameter grid with cross-validation, as `sklearn.model_selection.GridSearchCV`
    does it, for an `NNXClassifier` or `NNXRegressor` (alone or at the end of a Pipeline): in each split, the
    candidates whose networks share a
    structure (layers and widths, head, optimizer class, dtype) and their training settings (epochs, batch size,
    shuffling, early stopping) train together as one `nnx.train_many` stack. Every candidate ends as its own `fit`
    would leave it, so `cv_results_` holds the numbers `GridSearchCV` gives on the same grid.

    With ``random_state=None`` on the estimator, one seed is drawn for the whole search (from NumPy's global RNG),
    so that every candidate takes its batches in one order and can stack; give an int to repeat a search. There is
    no `n_jobs`: a stack already trains its models on every core (NumPy backend with the ``fast`` extra).

    Args:
        estimator: an `NNXClassifier` or `NNXRegressor`, or a `Pipeline` that ends with one: its steps before the
            network are fitted once per split and setting of theirs, and shared by the candidates with that
            setting.
        param_grid: a dict of parameter names to lists of values, or a list of such dicts.
        scoring: one scorer: None for the estimator's `score`, a name ("accuracy", "neg_mean_squared_error", ...)
            or a callable ``scorer(estimator, X, y)``.
        cv: as `GridSearchCV` takes it: None for 5 folds (stratified for a classifier), an int, a splitter or an
            iterable of (train, test) index pairs.
        refit: whether to fit `best_estimator_` on the whole data with the best parameters.
        return_train_score: whether `cv_results_` holds the training scores too.
        error_score: the score of a candidate whose fit fails (a divergence, a bad parameter), with a
            FitFailedWarning; "raise" raises the error instead.
        verbose: 0 silent; 1 or more prints one line per stack trained (the estimator's own `verbose` shows
            each stack's progress).

    Attributes:
        cv_results_: `GridSearchCV`'s dict: params, param_<name>, split<k>_test_score, mean/std/rank_test_score,
            mean/std fit and score times (a stack's time shared by its members), and train scores on request.
        best_index_, best_params_, best_score_: the candidate ranked first (by mean test score).
        best_estimator_: the estimator refitted with `best_params_` (with refit=True).
        refit_time_: the seconds that refit took.
        n_splits_: the number of splits.
        scorer_: the scorer used.
        n_stacks_: how many stacks the search trained (one per group of candidates per split).
    """

    def __init__(
        self,
        estimator: Any,
        param_grid: dict | list[dict],
        *,
        scoring: Any = None,
        cv: Any = None,
        refit: bool = True,
        return_train_score: bool = False,
        error_score: Any = np.nan,
        verbose: int = 0,
    ) -> None:
        self.estimator = estimator
        self.param_grid = param_grid
        self.scoring = scoring
        self.cv = cv
        self.refit = refit
        self.return_train_score = return_train_score
        self.error_score = error_score
        self.verbose = verbose

    def fit(self, X: Any, y: Any, groups: Any = None) -> StackedSearchCV:
        """Score every candidate on every split, rank them, and refit the best.

        Args:
            X: the samples, as the estimator's `fit` takes them.
            y: the targets.
            groups: group labels for a group splitter (GroupKFold, ...); None otherwise.

        Returns:
            The fitted search.
        """
        self._check_arguments()
        base = self._base()
        candidates = list(ParameterGrid(self.param_grid))
        scorer = check_scoring(base, scoring=self.scoring)
        X, y, groups = indexable(X, y, groups)
        splits = list(check_cv(self.cv, y, classifier=is_classifier(base)).split(X, y, groups))
        scores = Scores(len(candidates), len(splits), self.return_train_score)
        self.scorer_, self.multimetric_ = scorer, False
        if self.verbose:
            print(
                f"{OWNER}: {len(splits)} splits of {len(candidates)} candidates, {len(splits) * len(candidates)} fits"
            )
        self.n_stacks_ = 0
        for split_index, (train, test) in enumerate(splits):
            data = (
                _safe_indexing(X, train),
                _safe_indexing(y, train),
                _safe_indexing(X, test),
                _safe_indexing(y, test),
            )
            self._search_split(base, candidates, data, scorer, scores.of_split(split_index))
        self._transformed: dict[str, tuple] = {}  # the last split's transformed data: not kept after the search
        scores.check_some_succeeded()
        self.cv_results_ = scores.results(candidates)
        self.n_splits_ = len(splits)
        self.best_index_ = int(np.argmin(self.cv_results_["rank_test_score"]))
        self.best_params_ = candidates[self.best_index_]
        self.best_score_ = float(self.cv_results_["mean_test_score"][self.best_index_])
        if self.refit:
            start = time.perf_counter()
            self.best_estimator_ = clone(base).set_params(**self.best_params_).fit(X, y)
            self.refit_time_ = time.perf_counter() - start
        return self

    def _check_arguments(self) -> None:
        if isinstance(self.scoring, (list, tuple, set, dict)):
            raise TypeError(
                f"{OWNER} takes one scorer (a name, a callable or None), got {_checks.describe(self.scoring)}; "
                f"search once per metric, or use GridSearchCV for several metrics"
            )
        error_score = self.error_score
        if error_score != "raise" and (isinstance(error_score, bool) or not isinstance(error_score, Real)):
            raise ValueError(f"{OWNER} error_score must be 'raise' or a number (NaN by default), got {error_score!r}")
        if isinstance(self.verbose, str) or not isinstance(self.verbose, int) or self.verbose < 0:
            raise ValueError(f"{OWNER} verbose must be 0 (silent), a positive int or a bool, got {self.verbose!r}")
        _checks.boolean(self.refit, "refit", OWNER)
        _checks.boolean(self.return_train_score, "return_train_score", OWNER)

    def _base(self) -> Any:
        final = _final(self.estimator)
        if not isinstance(final, NNXEstimator):
            within = "a Pipeline ending with " if final is not self.estimator else ""
            raise TypeError(
                f"{OWNER} searches an NNXClassifier or NNXRegressor, or a Pipeline whose last step is one, got "
                f"{within}{_checks.describe(final)}; put the network last in one flat Pipeline, or use "
                f"sklearn.model_selection.GridSearchCV for other estimators"
            )
        self._seed = int(np.random.randint(0, SEED_RANGE))  # random_state=None: one seed for every candidate
        return clone(self.estimator)

    def _search_split(self, base: Any, candidates: list[dict], data: tuple, scorer: Any, out: Any) -> None:
        prepared = []
        self._transformed = {}  # a Pipeline's steps before the network, fitted once per setting
        for index, params in enumerate(candidates):
            member = self._prepared(base, index, params, data, out)
            if member is not None:
                prepared.append(member)
        for group in _stacks(prepared):
            self.n_stacks_ += 1
            for member, history, seconds in self._trained(group, base, candidates, data, out):
                self._scored(member, history, seconds, (data, scorer, candidates[member[0]]), out)

    def _prepared(self, base: Any, index: int, params: dict, data: tuple, out: Any) -> Member | None:
        """The candidate's estimator and its `Fit` on the split's training part; None when preparing it failed."""
        candidate = clone(base).set_params(**params)
        network = _final(candidate)
        if not isinstance(network, NNXEstimator):  # the grid swapped the network for another estimator
            self._plain(index, candidate, (data, self.scorer_, params), out)
            return None
        if network.random_state is None:  # one order of batches for the candidates, so that they can stack
            network.set_params(random_state=self._seed)
        try:
            X_train, setting = self._before_network(candidate, params, data)
            fit = network._prepared_fit(X_train, data[1])
        except Exception as error:  # a bad candidate fails alone, as in GridSearchCV
            out.failed(index, self._failure(error, params))
            return None
        fit.data_key = (setting, *fit.data_key)  # candidates whose steps before the network differ do not stack
        return index, candidate, fit

    def _before_network(self, candidate: Any, params: dict, data: tuple) -> tuple[Any, str]:
        """The training inputs the network of `candidate` sees, and the setting of the Pipeline steps before it
        (fitted once per setting and split, and shared by the candidates with that setting)."""
        if not isinstance(candidate, Pipeline):
            return data[0], ""
        network = candidate.steps[-1][0]
        # the grid's value objects, by identity: two settings that print alike are still told apart
        setting = repr(sorted((key, id(value)) for key, value in params.items() if key.split("__")[0] != network))
        if len(candidate.steps) == 1:
            return data[0], setting
        if setting not in self._transformed:
            steps = Pipeline(candidate.steps[:-1])
            self._transformed[setting] = (steps.fit_transform(data[0], data[1]), steps.steps)
        X_train, fitted = self._transformed[setting]
        candidate.steps[:-1] = fitted
        return X_train, setting

    def _trained(self, group: list[Member], base: Any, candidates: list[dict], data: tuple, out: Any) -> list:
        """(member, History, seconds) for each member that trained: the group as one stack, or, when the stack
        fails, each member again from a fresh start, alone, so that a failing candidate fails alone."""
        start = time.perf_counter()
        try:
            histories = train_fits([fit for _, _, fit in group], on_divergence="stop")
        except Exception as error:
            if len(group) == 1:
                out.failed(group[0][0], self._failure(error, candidates[group[0][0]]))
                return []
            again = [self._prepared(base, index, candidates[index], data, out) for index, _, _ in group]
            return [done for member in again if member for done in self._trained([member], base, candidates, data, out)]
        seconds = (time.perf_counter() - start) / len(group)
        if self.verbose:
            what = "1 candidate alone" if len(group) == 1 else f"{len(group)} candidates as one stack"
            print(f"{OWNER}: split {out.split + 1}: {what} in {seconds * len(group):.2f} s")
        return [(member, history, seconds) for member, history in zip(group, histories, strict=True)]

    def _scored(self, member: Member, history: History, seconds: float, context: tuple, out: Any) -> None:
        params = context[2]
        index, estimator, fit = member
        final = history.final
        if final.get("diverged"):
            error = DivergenceError(
                f"training diverged at epoch {final.get('epoch')} (last finite loss: {final.get('loss')}); lower "
                f"the learning rate or add decay",
                epoch=final.get("epoch"),
            )
            out.failed(index, self._failure(error, params), seconds)
            return
        _final(estimator)._fitted(fit, history)
        self._score(index, estimator, seconds, context, out)

    def _score(self, index: int, estimator: Any, seconds: float, context: tuple, out: Any) -> None:
        (X_train, y_train, X_test, y_test), scorer, params = context
        try:
            out.scored(index, seconds, lambda: scorer(estimator, X_test, y_test))
            if self.return_train_score:
                out.train_score(index, scorer(estimator, X_train, y_train))
        except Exception as error:
            out.failed(index, self._failure(error, params, "scoring"), seconds)

    def _plain(self, index: int, candidate: Any, context: tuple, out: Any) -> None:
        """A candidate whose grid put another estimator in the network's place: fitted and scored alone, as
        GridSearchCV does."""
        data, _, params = context
        start = time.perf_counter()
        try:
            candidate.fit(data[0], data[1])
        except Exception as error:
            out.failed(index, self._failure(error, params), time.perf_counter() - start)
            return
        self._score(index, candidate, time.perf_counter() - start, context, out)

    def _failure(self, error: Exception, params: dict, what: str = "fit") -> float:
        if self.error_score == "raise":
            if isinstance(error, DivergenceError):
                raise DivergenceError(f"{OWNER}: the fit with {params} failed: {error}", epoch=error.epoch) from None
            raise error
        warnings.warn(
            f"{OWNER}: the {what} with {params} failed and scores error_score={self.error_score!r}: "
            f"{type(error).__name__}: {error}",
            FitFailedWarning,
            stacklevel=3,
        )
        return float(self.error_score)

    # The best estimator's methods -------------------------------------------------------------------------------

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = copy.deepcopy(inner.classifier_tags)
        tags.regressor_tags = copy.deepcopy(inner.regressor_tags)
        return tags

    @available_if(lambda search: _offers(search, "predict"))
    def predict(self, X: Any) -> Any:
        """`best_estimator_.predict(X)`.

        Args:
            X: the samples.

        Returns:
            The predictions.
        """
        return self._best().predict(X)

    @available_if(lambda search: _offers(search, "predict_proba"))
    def predict_proba(self, X: Any) -> Any:
        """`best_estimator_.predict_proba(X)` (a classifier).

        Args:
            X: the samples.

        Returns:
            The class probabilities.
        """
        return self._best().predict_proba(X)

    @available_if(lambda search: _offers(search, "score"))
    def score(self, X: Any, y: Any) -> float:
        """The scorer's value for `best_estimator_` on (X, y).

        Args:
            X: the samples.
            y: their targets.

        Returns:
            The score.
        """
        return float(self.scorer_(self._best(), X, y))

    @property
    def n_features_in_(self) -> int:
        """The number of features the best estimator was fitted on."""
        return self._best().n_features_in_

    @property
    def feature_names_in_(self) -> Any:
        """The best estimator's feature names (when fitted on a pandas DataFrame)."""
        return self._best().feature_names_in_

    @property
    def classes_(self) -> Any:
        """The best estimator's class labels."""
        return self._best().classes_

    def _best(self) -> Any:
        check_is_fitted(self, "cv_results_")
        if not self.refit:
            raise AttributeError(f"{OWNER} was created with refit=False: it has no best_estimator_ to predict with")
        return self.best_estimator_


def _offers(search: StackedSearchCV, method: str) -> bool:
    """Whether the search has `method`: with refit, when its (best) estimator has it."""
    return bool(search.refit) and hasattr(getattr(search, "best_estimator_", search.estimator), method)


def _final(estimator: Any) -> Any:
    """The network of a search: the estimator itself, or a Pipeline's last step."""
    return estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator


def _stacks(prepared: list[Member]) -> Iterator[list[Member]]:
    """The prepared candidates in groups that train as one stack: the same `Fit.shared()` and one structure."""
    groups: list[list[Member]] = []
    for member in prepared:
        for group in groups:
            first = group[0][2]
            if first.shared() == member[2].shared() and _one_structure(first, member[2]):
                group.append(member)
                break
        else:
            groups.append([member])
    yield from groups


def _one_structure(first: Fit, other: Fit) -> bool:
    try:
        plan_stack([first.model, other.model])
    except Exception:  # not one structure, or models train_many cannot run
        return False
    return True
