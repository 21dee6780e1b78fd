"""scikit-learn's own estimator checks (`sklearn.utils.estimator_checks`) over `NNXClassifier` and `NNXRegressor`."""

from __future__ import annotations

import pytest

pytest.importorskip("sklearn", reason="the sklearn extra is not installed")

from sklearn.utils.estimator_checks import parametrize_with_checks

from nnx.sklearn import NNXClassifier, NNXRegressor

ESTIMATORS = [NNXClassifier(backend="numpy"), NNXRegressor(backend="numpy")]


@parametrize_with_checks(ESTIMATORS)
def test_scikit_learn_checks(estimator, check):
    check(estimator)
