"""`nnx.sklearn`: the estimators in scikit-learn's workflow (pipelines, searches, cross-validation, clone, pickle),
their own features (labels, partial_fit, warm_start, early stopping, custom models, errors), and `StackedSearchCV`
against `GridSearchCV`."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="the sklearn extra is not installed")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_regression  # noqa: E402
from sklearn.exceptions import FitFailedWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import nnx  # noqa: E402
from nnx.sklearn import NNXClassifier, NNXRegressor, StackedSearchCV  # noqa: E402
from tests.conftest import float64_or_skip  # noqa: E402

EXACT = 1e-9


def _digits(n=400):
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X[:n]), y[:n]


X, Y = _digits()


def _classifier(**params):
    settings = {"hidden_layer_sizes": (16,), "epochs": 15, "batch_size": 32, "learning_rate": 0.01, "random_state": 0}
    return NNXClassifier(**{**settings, **params})


# scikit-learn's workflow ------------------------------------------------------------------------------------------


def test_a_pipeline_with_a_scaler_learns_digits():
    X_raw, y = load_digits(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), _classifier(epochs=20)).fit(X_raw[:1200], y[:1200])
    assert pipeline.score(X_raw[1200:], y[1200:]) > 0.85


def test_grid_and_randomized_searches_run_and_pick_a_candidate():
    grid = GridSearchCV(_classifier(), {"learning_rate": [0.001, 0.01]}, cv=2).fit(X, Y)
    assert grid.best_params_["learning_rate"] in (0.001, 0.01) and len(grid.cv_results_["params"]) == 2
    randomized = RandomizedSearchCV(_classifier(), {"l2": [0.0, 1e-4, 1e-3]}, n_iter=2, cv=2, random_state=0)
    assert randomized.fit(X, Y).best_estimator_.n_iter_ == 15


def test_cross_val_score_in_two_processes_equals_one():
    one = cross_val_score(_classifier(), X, Y, cv=3)
    two = cross_val_score(_classifier(), X, Y, cv=3, n_jobs=2)
    np.testing.assert_array_equal(one, two)
    assert one.mean() > 0.8


def test_clone_keeps_the_parameters_and_drops_the_fit():
    fitted = _classifier(l2=1e-4).fit(X, Y)
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params() and not hasattr(copy, "model_")
    with pytest.raises(NotFittedError):
        copy.predict(X)


def test_pickle_round_trip_predicts_the_same_on_every_backend(backend):
    dtype = "float64" if backend.name != "jax" else None
    if dtype:
        float64_or_skip(backend)
    model = _classifier(backend=backend.name, dtype=dtype or "float32", epochs=3).fit(X, Y)
    again = pickle.loads(pickle.dumps(model))
    assert again.model_.backend.name == backend.name
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    assert b"nnx.layers" not in pickle.dumps(model)  # the network travels as nnx's file format, not as objects


# The estimators' own features -------------------------------------------------------------------------------------


def test_string_labels_and_pandas_feature_names():
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(X[:, :5], columns=[f"f{i}" for i in range(5)])
    labels = np.where(Y % 2, "odd", "even")
    model = _classifier().fit(frame, labels)
    assert list(model.classes_) == ["even", "odd"] and list(model.feature_names_in_) == list(frame.columns)
    assert set(model.predict(frame)) <= {"even", "odd"}
    np.testing.assert_allclose(model.predict_proba(frame).sum(axis=1), 1.0)


def test_a_sigmoid_head_is_a_binary_classifier():
    binary = Y % 2
    model = _classifier(output="sigmoid").fit(X, binary)
    assert model.model_.trainable_layers[-1].n_neurons == 1 and model.score(X, binary) > 0.8
    with pytest.raises(ValueError, match="output='sigmoid' is a binary classifier"):
        _classifier(output="sigmoid").fit(X, Y)


def test_partial_fit_trains_one_epoch_per_call_and_needs_the_classes_first():
    model = _classifier()
    with pytest.raises(ValueError, match="needs classes= on its first call"):
        model.partial_fit(X, Y)
    model.partial_fit(X[:200], Y[:200], classes=np.arange(10))
    model.partial_fit(X[200:], Y[200:])
    assert model.n_iter_ == 2
    with pytest.raises(ValueError, match=r"labels \[10\] that are not among classes_"):
        model.partial_fit(X[:5], np.full(5, 10))


def test_warm_start_goes_on_where_the_last_fit_stopped():
    warm = _classifier(warm_start=True, epochs=5).fit(X, Y)
    weights = warm.model_.get_parameters()[0][0].copy()
    warm.fit(X, Y)
    assert warm.n_iter_ == 10 and not np.array_equal(weights, warm.model_.get_parameters()[0][0])
    cold = _classifier(epochs=5).fit(X, Y)
    cold.fit(X, Y)
    assert cold.n_iter_ == 5


def test_early_stopping_stops_when_the_validation_loss_stalls(capsys):
    model = _classifier(epochs=300, early_stopping=True, n_iter_no_change=3, learning_rate=0.05, verbose=2)
    model.fit(X, Y)
    assert 3 < model.n_iter_ < 300
    assert model.history_.history["val_loss"][-1] is not None
    assert f"NNXClassifier: early stopping after epoch {model.n_iter_}:" in capsys.readouterr().out


def test_multi_output_regression():
    X_reg, y_reg = make_regression(n_samples=200, n_features=5, n_targets=2, noise=0.1, random_state=0)
    model = NNXRegressor(hidden_layer_sizes=(32,), learning_rate=0.01, epochs=100, random_state=0)
    model.fit(X_reg, y_reg / 100)
    assert model.predict(X_reg).shape == (200, 2) and model.n_outputs_ == 2
    assert model.score(X_reg, y_reg / 100) > 0.9


def test_your_own_model_builder_gets_the_sizes_and_missing_parts():
    seen = []

    def build(n_features, n_outputs):
        seen.append((n_features, n_outputs))
        model = nnx.Model()
        for layer in (nnx.Dense(n_features, 8), nnx.ReLU(), nnx.Dense(8, n_outputs), nnx.Softmax()):
            model.add(layer)
        return model

    model = NNXClassifier(model=build, epochs=3, random_state=0).fit(X, Y)
    assert seen == [(64, 10)] and isinstance(model.model_.optimizer, nnx.Adam)
    with pytest.raises(TypeError, match=r"model\(64, 10\) must return an nnx.Model"):
        NNXClassifier(model=lambda n_features, n_outputs: "a model").fit(X, Y)


def _own(n_inputs=None, n_outputs=None, head=nnx.Softmax):
    def build(n_features, outputs):
        model = nnx.Model()
        layers = (nnx.Dense(n_inputs or n_features, 8), nnx.ReLU(), nnx.Dense(8, n_outputs or outputs), head())
        for layer in layers:
            model.add(layer)
        return model

    return build


@pytest.mark.parametrize(
    "params, match",
    [
        ({"model": _own(n_outputs=12)}, r"model\(64, 10\): the last Dense layer has 12 neurons; make it n_outputs=10"),
        ({"model": _own(n_inputs=65)}, r"the first Dense layer takes 65 inputs; make it 64"),
        ({"model": _own(head=nnx.Linear)}, r"output='softmax' needs a Softmax last layer, got Linear"),
        ({"model": _own(), "dropout": 0.2}, "dropout describes the built-in network, which model= replaces"),
        ({"model": _own(), "dtype": "float64"}, "dtype='float64' but the model's layers compute in"),
    ],
)
def test_your_own_model_is_checked_against_the_data(params, match):
    with pytest.raises(ValueError, match=match):
        NNXClassifier(epochs=1, **params).fit(X, Y)


def test_your_own_model_on_float64_with_its_optimizer_and_a_regressor_head_check():
    def float64(n_features, n_outputs):
        model = nnx.Model()
        for layer in (nnx.Dense(n_features, 8, dtype="float64"), nnx.ReLU(), nnx.Dense(8, n_outputs, dtype="float64")):
            model.add(layer)
        model.add(nnx.Softmax())
        model.set(optimizer=nnx.SGD(learning_rate=0.5))
        return model

    model = NNXClassifier(model=float64, dtype="float64", epochs=2, warm_start=True, random_state=0).fit(X, Y)
    model.set_params(learning_rate=0.1).fit(X, Y)  # the model's own optimizer keeps its own rate
    assert model.model_.optimizer.learning_rate == 0.5 and model.n_iter_ == 4
    with pytest.raises(ValueError, match=r"output='linear' needs a Linear last layer .* got Softmax"):
        NNXRegressor(model=_own(), epochs=1).fit(X, X[:, 5])
    with pytest.raises(ValueError, match="hidden_layer_sizes describes the built-in network"):
        NNXClassifier(model=_own(), hidden_layer_sizes=50).fit(X, Y)


def test_a_refused_fit_changes_nothing():
    model = _classifier(epochs=2).fit(X, Y)
    before = dict(model.__dict__)
    with pytest.raises(ValueError, match="hidden_layer_sizes, dropout describe the built-in network"):
        model.set_params(model=_own(), dropout=0.5).fit(X, np.array(list("abcdefghij"))[Y])
    assert model.__dict__.keys() == before.keys() and model.classes_ is before["classes_"]
    assert model.model_ is before["model_"]


def test_a_warm_start_compares_parameters_as_they_resolve():
    model = NNXRegressor(hidden_layer_sizes=(8,), epochs=2, warm_start=True, random_state=0).fit(X, X[:, 5])
    model.set_params(dtype="float64", backend="numpy", loss="mse", output="linear").fit(X, X[:, 5])
    assert model.n_iter_ == 4
    with pytest.raises(ValueError, match="built with dtype='float64', but dtype is now 'float32'"):
        model.set_params(dtype="float32").fit(X, X[:, 5])


def test_a_warm_start_keeps_the_features_the_classes_and_the_structure():
    model = _classifier(warm_start=True, epochs=2).fit(X, Y)
    with pytest.raises(ValueError, match="X has 10 features, but NNXClassifier is expecting 64 features"):
        model.fit(X[:, :10], Y)
    with pytest.raises(ValueError, match=r"does not have the classes \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9\]"):
        model.fit(X, Y % 2)
    with pytest.raises(ValueError, match=r"built with hidden_layer_sizes=\(16,\), but hidden_layer_sizes is now"):
        model.set_params(hidden_layer_sizes=(8,)).fit(X, Y)
    model.set_params(hidden_layer_sizes=(16,), learning_rate=0.002).fit(X, Y)  # a new rate is taken
    assert model.model_.optimizer.learning_rate == 0.002 and model.n_iter_ == 4
    assert model.predict(X).shape == (len(X),)  # still usable after the refusals


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"epochs": 0}, ValueError, "epochs"),
        ({"activation": "tanh"}, ValueError, "activation"),
        ({"optimizer": "lbfgs"}, ValueError, "optimizer"),
        ({"momentum": 0.9}, ValueError, "momentum=0.9 is SGD's"),
        ({"hidden_layer_sizes": "100"}, TypeError, "hidden_layer_sizes"),
        ({"dtype": "float16"}, ValueError, "dtype"),
        ({"loss": "mse"}, ValueError, "loss"),
        ({"model": 3}, TypeError, "model must be a function"),
    ],
)
def test_bad_parameters_are_refused_at_fit_naming_the_estimator(params, error, match):
    with pytest.raises(error, match=match) as raised:
        _classifier(**params).fit(X, Y)
    assert "NNXClassifier" in str(raised.value)


def test_sample_weight_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="does not support sample_weight"):
        _classifier().fit(X, Y, sample_weight=np.ones(len(Y)))


def test_a_diverging_fit_raises_naming_the_estimator():
    with pytest.raises(nnx.DivergenceError, match=r"NNXClassifier.fit: .*diverged.* Lower learning_rate"):
        _classifier(learning_rate=1e38, optimizer="sgd").fit(X, Y)


def test_an_unknown_backend_is_named_with_the_estimator():
    with pytest.raises(ValueError, match="NNXClassifier backend='nope': unknown backend 'nope'"):
        _classifier(backend="nope").fit(X, Y)


def test_a_sigmoid_regressor_refuses_targets_outside_zero_and_one():
    with pytest.raises(ValueError, match=r"output='sigmoid' predicts values in \(0, 1\), but y ranges over"):
        NNXRegressor(output="sigmoid", epochs=1).fit(X, X[:, 3] * 10)


def test_hidden_layer_sizes_may_be_an_array_and_verbose_a_bool():
    model = _classifier(hidden_layer_sizes=np.array([12, 6]), verbose=False, epochs=1).fit(X, Y)
    assert [layer.n_neurons for layer in model.model_.trainable_layers] == [12, 6, 10]


# StackedSearchCV --------------------------------------------------------------------------------------------------

GRID = {
    "learning_rate": [0.003, 0.03],
    "l2": [0.0, 1e-4],
    "dropout": [0.0, 0.2],
    "hidden_layer_sizes": [(16,), (24,)],
}


def _results_equal(ours, theirs):
    for key in ("mean_test_score", "std_test_score", "rank_test_score", "split0_test_score", "split2_test_score"):
        np.testing.assert_allclose(ours.cv_results_[key], theirs.cv_results_[key], rtol=EXACT, atol=EXACT, err_msg=key)
    assert ours.cv_results_["params"] == theirs.cv_results_["params"]
    assert set(ours.cv_results_) == set(theirs.cv_results_)
    assert ours.best_params_ == theirs.best_params_ and ours.best_score_ == pytest.approx(theirs.best_score_, abs=EXACT)


def test_stacked_search_equals_grid_search_in_float64():
    estimator = _classifier(dtype="float64", epochs=8)
    ours = StackedSearchCV(estimator, GRID, cv=3, return_train_score=True).fit(X, Y)
    theirs = GridSearchCV(estimator, GRID, cv=3, return_train_score=True).fit(X, Y)
    _results_equal(ours, theirs)
    np.testing.assert_allclose(ours.cv_results_["mean_train_score"], theirs.cv_results_["mean_train_score"], atol=EXACT)
    assert ours.n_stacks_ == 3 * 4  # per split: one stack per (dropout, width)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def test_stacked_search_equals_grid_search_with_early_stopping_and_a_regressor():
    X_reg, y_reg = make_regression(n_samples=150, n_features=4, noise=1.0, random_state=1)
    y_reg = y_reg / 100
    estimator = NNXRegressor(
        hidden_layer_sizes=(8,), epochs=40, early_stopping=True, n_iter_no_change=2, random_state=3, dtype="float64"
    )
    grid = {"learning_rate": [0.001, 0.01, 0.1], "optimizer": ["adam", "rmsprop"]}
    ours = StackedSearchCV(estimator, grid, cv=3, scoring="neg_mean_squared_error").fit(X_reg, y_reg)
    theirs = GridSearchCV(estimator, grid, cv=3, scoring="neg_mean_squared_error").fit(X_reg, y_reg)
    _results_equal(ours, theirs)
    assert ours.n_stacks_ == 3 * 2  # per split: one stack per optimizer class


def test_a_diverging_candidate_scores_error_score_as_in_grid_search():
    estimator = _classifier(dtype="float64", optimizer="sgd", epochs=4)
    grid = {"learning_rate": [0.1, 1e38]}
    with pytest.warns(FitFailedWarning, match="diverged"), pytest.warns(UserWarning, match="not finite"):
        ours = StackedSearchCV(estimator, grid, cv=3).fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = GridSearchCV(estimator, grid, cv=3).fit(X, Y)
    assert np.isnan(ours.cv_results_["mean_test_score"][1]) and np.isnan(theirs.cv_results_["mean_test_score"][1])
    _results_equal(ours, theirs)
    with pytest.raises(nnx.DivergenceError):
        StackedSearchCV(estimator, grid, cv=3, error_score="raise").fit(X, Y)


def test_a_candidate_that_fails_in_training_or_scoring_fails_alone():
    estimator = NNXClassifier(epochs=2, random_state=0)
    grid = {"model": [_own(), _own(n_inputs=65)]}
    with pytest.warns(FitFailedWarning, match="the fit with .* failed"), pytest.warns(UserWarning, match="not finite"):
        ours = StackedSearchCV(estimator, grid, cv=3).fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = GridSearchCV(estimator, grid, cv=3).fit(X, Y)
    _results_equal(ours, theirs)
    assert np.isnan(ours.cv_results_["mean_test_score"][1])

    def broken(estimator, X, y):
        raise ZeroDivisionError("a scorer bug")

    with pytest.warns(FitFailedWarning, match="the scoring with .* failed"), pytest.raises(ValueError, match="all"):
        StackedSearchCV(estimator, {"epochs": [1]}, cv=2, scoring=broken).fit(X, Y)


def test_a_stack_that_fails_is_trained_again_member_by_member(monkeypatch):
    from nnx.sklearn import search

    real = search.train_fits

    def stacks_fail(fits, **options):
        if len(fits) > 1:
            raise RuntimeError("a stack broke")
        return real(fits, **options)

    monkeypatch.setattr(search, "train_fits", stacks_fail)
    estimator = _classifier(dtype="float64", epochs=3)
    grid = {"learning_rate": [0.003, 0.03], "l2": [0.0, 1e-4]}
    ours = StackedSearchCV(estimator, grid, cv=2).fit(X, Y)
    theirs = GridSearchCV(estimator, grid, cv=2).fit(X, Y)
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"], atol=EXACT)


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"scoring": ["accuracy", "f1_macro"]}, TypeError, "takes one scorer"),
        ({"error_score": "oops"}, ValueError, "error_score must be 'raise' or a number"),
        ({"refit": "accuracy"}, TypeError, "refit"),
    ],
)
def test_stacked_search_checks_its_arguments_before_training(options, error, match):
    with pytest.raises(error, match=match):
        StackedSearchCV(_classifier(), {"epochs": [1]}, **options).fit(X, Y)


def test_when_every_fit_fails_the_search_says_so():
    with pytest.warns(FitFailedWarning), pytest.raises(ValueError, match="all the 4 fits failed"):
        StackedSearchCV(_classifier(), {"learning_rate": [-1, -2]}, cv=2, refit=False).fit(X, Y)


def test_a_pipeline_search_fits_the_steps_before_the_network_once_per_setting(monkeypatch):
    fitted = []
    original = StandardScaler.fit

    def counted(scaler, *args, **kwargs):
        fitted.append(scaler.with_mean)
        return original(scaler, *args, **kwargs)

    X_raw, _ = load_digits(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), _classifier(dtype="float64", epochs=4))
    grid = {"standardscaler__with_mean": [True, False], "nnxclassifier__learning_rate": [0.003, 0.03]}
    monkeypatch.setattr(StandardScaler, "fit", counted)
    ours = StackedSearchCV(pipeline, grid, cv=3).fit(X_raw[:400], Y)
    assert len(fitted) == 3 * 2 + 1 and ours.n_stacks_ == 3 * 2  # per split one fit and one stack per scaler setting
    theirs = GridSearchCV(pipeline, grid, cv=3).fit(X_raw[:400], Y)
    _results_equal(ours, theirs)
    np.testing.assert_array_equal(ours.predict(X_raw[400:500]), theirs.predict(X_raw[400:500]))


class _Columns(sklearn.base.TransformerMixin, sklearn.base.BaseEstimator):
    """Keeps the first `n` columns, and prints alike whatever `n` is."""

    def __init__(self, n=10):
        self.n = n

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X[:, : self.n]

    def __repr__(self, N_CHAR_MAX=700):
        return "_Columns(...)"


def test_pipeline_settings_that_print_alike_are_told_apart():
    pipeline = make_pipeline(_Columns(), _classifier(dtype="float64", epochs=3))
    grid = {"_columns": [_Columns(8), _Columns(64)], "nnxclassifier__learning_rate": [0.01, 0.03]}
    ours = StackedSearchCV(pipeline, grid, cv=2).fit(X, Y)
    theirs = GridSearchCV(pipeline, grid, cv=2).fit(X, Y)
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"], atol=EXACT)
    assert ours.n_stacks_ == 2 * 2


def test_the_grid_may_put_another_estimator_in_the_networks_place():
    from sklearn.linear_model import LogisticRegression

    pipeline = make_pipeline(StandardScaler(), _classifier(dtype="float64", epochs=3))
    grid = {"nnxclassifier": [_classifier(dtype="float64", epochs=3), LogisticRegression(max_iter=200)]}
    ours = StackedSearchCV(pipeline, grid, cv=2).fit(X, Y)
    theirs = GridSearchCV(pipeline, grid, cv=2).fit(X, Y)
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"], atol=EXACT)


def test_a_one_step_pipeline_and_the_searchs_tags():
    search = StackedSearchCV(make_pipeline(_classifier(epochs=2)), {"nnxclassifier__l2": [0.0, 1e-4]}, cv=2)
    assert sklearn.base.is_classifier(search)
    scores = cross_val_score(search, X, Y, cv=2)
    assert scores.shape == (2,) and scores.min() > 0.5
    assert not hasattr(StackedSearchCV(_classifier(), {"l2": [0.0]}, refit=False), "predict")


def test_stacked_search_refuses_other_estimators():
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(TypeError, match="searches an NNXClassifier or NNXRegressor, or a Pipeline whose last step"):
        StackedSearchCV(LogisticRegression(), {"C": [1.0]}).fit(X, Y)
    with pytest.raises(TypeError, match=r"got a Pipeline ending with sklearn\.linear_model.*LogisticRegression"):
        StackedSearchCV(make_pipeline(StandardScaler(), LogisticRegression()), {"logisticregression__C": [1.0]}).fit(
            X, Y
        )


# The extra ------------------------------------------------------------------------------------------------------


def test_importing_nnx_does_not_import_scikit_learn():
    code = "import sys, nnx; print('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_without_scikit_learn_the_error_says_what_to_install():
    code = "import sys; sys.modules['sklearn'] = None; import nnx.sklearn"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert re.search(
        r'ImportError: nnx.sklearn needs scikit-learn; install it: pip install "nnx-nnfs\[sklearn\]"', run.stderr
    )
