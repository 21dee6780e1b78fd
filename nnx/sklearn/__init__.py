"""nnx in scikit-learn: `NNXClassifier` and `NNXRegressor` (estimators that pass scikit-learn's own checks) and
`StackedSearchCV` (a grid search that trains the candidates of each split as stacks). Needs the ``sklearn`` extra."""

from __future__ import annotations

from nnx import _checks

_checks.extra_module("sklearn", 'nnx.sklearn needs scikit-learn; install it: pip install "nnx-nnfs[sklearn]"')

from nnx.sklearn.estimators import NNXClassifier, NNXRegressor  # noqa: E402  (after the check)
from nnx.sklearn.search import StackedSearchCV  # noqa: E402

__all__ = ["NNXClassifier", "NNXRegressor", "StackedSearchCV"]
