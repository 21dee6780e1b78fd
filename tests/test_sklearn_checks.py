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
CASES = list(_MARK.args[1])


@pytest.mark.parametrize(_MARK.args[0], CASES, **_MARK.kwargs)
def test_scikit_learn_checks(estimator, check):
    """Each check raises AssertionError (or the error it expected not to see) when the estimator breaks it."""
    check(estimator)


def test_the_suite_covers_both_estimators():
    names = {}
    for case in CASES:
        estimator = case.values[0] if hasattr(case, "values") else case[0]
        names[type(estimator).__name__] = names.get(type(estimator).__name__, 0) + 1
    assert set(names) == {"NNXClassifier", "NNXRegressor"} and min(names.values()) > 40, names
