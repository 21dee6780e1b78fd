"""scikit-learn's own estimator checks (`sklearn.utils.estimator_checks`) over `NNXClassifier` and `NNXRegressor`."""

from __future__ import annotations

import pytest

pytest.importorskip("sklearn", reason="the sklearn extra is not installed")

from sklearn.utils.estimator_checks import parametrize_with_checks

from nnx.sklearn import NNXClassifier, NNXRegressor

ESTIMATORS = [NNXClassifier(backend="numpy"), NNXRegressor(backend="numpy")]
# scikit-learn's own parametrization, its checks listed first (older releases hand pytest a generator, which pytest
# deprecates)
_MARK = parametrize_with_checks(ESTIMATORS).mark
CHECKS = pytest.mark.parametrize(_MARK.args[0], list(_MARK.args[1]), **_MARK.kwargs)


@CHECKS
def test_scikit_learn_checks(estimator, check):
    check(estimator)
