"""`nnx.sweep.optimize`: an Optuna study trained in stacked batches; pruning inside a stack; resume; Dask; the CLI;
and `train_many`'s stop_models hook under it."""

from __future__ import annotations

import copy
import re
import subprocess
import sys

import numpy as np
import pytest

import nnx
from nnx import sweep
from nnx.datasets import spiral_data
from nnx.sweep import study_train
from nnx.sweep.cli import main as sweep_main

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)

EPOCHS = 12
TOLERANCE = 1e-9


def _data(samples=40, seed=3):
    nnx.seed(seed)
    X, y = spiral_data(samples=samples, classes=3)
    keys = np.random.permutation(len(X))
    return X[keys], y[keys]


X, Y = _data()
X_VAL, Y_VAL = _data(samples=20, seed=4)


def build(trial, high=1.0):
    """float64 spiral networks: two widths (two stacks per batch), lr on a log range, L2 on the first layer."""
    lr = trial.suggest_float("lr", 1e-3, high, log=True)
    hidden = trial.suggest_categorical("hidden", [8, 16])
    model = nnx.Model()
    dense = nnx.Dense(2, hidden, dtype="float64", weight_regularizer_l2=1e-4)
    for layer in (dense, nnx.ReLU(), nnx.Dense(hidden, 3, dtype="float64"), nnx.Softmax()):
        model.add(layer)
    model.set(
        loss=nnx.CategoricalCrossentropy(), optimizer=nnx.SGD(learning_rate=lr), accuracy=nnx.metrics.Categorical()
    )
    model.finalize()
    return model


def wild(trial):
    """`build` with learning rates that diverge: for enqueued trials only."""
    return build(trial, high=1e40)


def _study(**kwargs):
    kwargs.setdefault("sampler", optuna.samplers.RandomSampler(seed=0))
    kwargs.setdefault("pruner", optuna.pruners.NopPruner())
    return optuna.create_study(**kwargs)


def _enqueue(study, rates, hidden=8):
    for lr in rates:
        study.enqueue_trial({"lr": lr, "hidden": hidden})


def _optimize(study, build_model=build, **kwargs):
    settings = {"n_trials": 8, "batch": 4, "epochs": EPOCHS, "batch_size": 30, "validation_data": (X_VAL, Y_VAL)}
    settings.update(kwargs)
    return sweep.optimize(study, build_model, X, Y, progress=False, **settings)


def _alone(params, epochs=EPOCHS, build_model=build):
    nnx.seed(0)
    model = build_model(optuna.trial.FixedTrial(params))
    return model.train(X, Y, epochs=epochs, batch_size=30, validation_data=(X_VAL, Y_VAL), verbose=0)


class StackSpy:
    """Records the sizes of the groups `optimize` trains."""

    def __init__(self, monkeypatch):
        self.sizes = []
        original = study_train.train_group

        def spy(members, *args):
            self.sizes.append(len(members))
            return original(members, *args)

        monkeypatch.setattr("nnx.sweep.study.train_group", spy)


# The same values as each trial trained alone ----------------------------------------------------------------------


def _check_every_trial_alone(study):
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.value == pytest.approx(_alone(trial.params).final["val_loss"], rel=TOLERANCE, abs=TOLERANCE)


def test_every_trial_gets_the_value_it_gets_trained_alone(monkeypatch):
    spy = StackSpy(monkeypatch)
    study = _study()
    _enqueue(study, [0.01, 0.1, 1.0])  # three of one width in the first batch: one stack
    result = _optimize(study)
    assert len(study.trials) == 8 and sum(spy.sizes) == 8 and max(spy.sizes) >= 3
    _check_every_trial_alone(study)
    assert [trial["value"] for trial in result.trials] == [trial.value for trial in study.trials]
    assert result.best["value"] == study.best_value and result.objective == "val_loss"


def test_without_a_pruner_the_intermediate_values_are_the_historys_at_each_report():
    study = _study()
    _enqueue(study, [0.01, 0.1])  # two of width 8: a stack
    study.enqueue_trial({"lr": 0.2, "hidden": 16})  # alone
    _optimize(study, n_trials=3, batch=3, report_every=5)
    for trial in study.trials:
        history = _alone(trial.params).history
        assert sorted(trial.intermediate_values) == [5, 10, EPOCHS]
        for epoch, value in trial.intermediate_values.items():
            assert value == pytest.approx(history["val_loss"][epoch - 1], rel=TOLERANCE)


def test_without_a_pruner_or_report_every_nothing_is_reported():
    study = _study()
    _optimize(study, n_trials=3, batch=3)
    assert [trial.intermediate_values for trial in study.trials] == [{}, {}, {}]
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in study.trials)


def test_full_batch_trials_pruned_inside_spans_equal_each_trial_alone(monkeypatch):
    """On the whole set the compiled stack trains the epochs between two reports in one call: the values are still
    each trial's alone, and the pruned trials stop at their report."""
    spy = StackSpy(monkeypatch)
    study = _study(pruner=PruneTrials({1}, step=4))
    _enqueue(study, [0.01, 0.1, 1.0, 0.5])
    _optimize(study, n_trials=4, batch=4, batch_size=None, objective="loss", report_every=4, validation_data=None)
    assert spy.sizes == [4]
    pruned = study.trials[1]
    assert pruned.state == optuna.trial.TrialState.PRUNED and sorted(pruned.intermediate_values) == [4]
    for trial in study.trials:
        nnx.seed(0)
        alone = build(optuna.trial.FixedTrial(trial.params)).train(X, Y, epochs=EPOCHS if trial.number != 1 else 4)
        expected = alone.final["loss"]
        value = trial.value if trial.number != 1 else trial.intermediate_values[4]
        assert value == pytest.approx(expected, rel=TOLERANCE)


def test_models_sharing_a_layer_train_in_separate_stacks(monkeypatch):
    spy = StackSpy(monkeypatch)
    shared = nnx.ReLU()  # every trial's model holds this one layer object: they cannot stack together

    def sharing(trial):
        lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
        hidden = trial.suggest_categorical("hidden", [8, 16])
        model = nnx.Model()
        for layer in (nnx.Dense(2, hidden, dtype="float64"), shared, nnx.Dense(hidden, 3, dtype="float64")):
            model.add(layer)
        model.add(nnx.Softmax())
        model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.SGD(learning_rate=lr))
        model.set(accuracy=nnx.metrics.Categorical())
        model.finalize()
        return model

    study = _study()
    _enqueue(study, [0.01, 0.1, 0.5])
    _optimize(study, sharing, n_trials=3, batch=3)
    assert spy.sizes == [1, 1, 1]
    for trial in study.trials:
        expected = _alone(trial.params, build_model=sharing).final["val_loss"]
        assert trial.value == pytest.approx(expected, rel=TOLERANCE)


@pytest.mark.integration
def test_64_trials_in_batches_of_16_equal_each_trial_alone(monkeypatch):
    spy = StackSpy(monkeypatch)
    study = _study(sampler=optuna.samplers.TPESampler(seed=1))
    _optimize(study, n_trials=64, batch=16)
    assert len(study.trials) == 64 and max(spy.sizes) > 1
    _check_every_trial_alone(study)


def test_the_table_and_the_plot_are_the_sweeps():
    study = _study()
    _enqueue(study, [0.05, 1e38, 0.5, 0.2])
    result = _optimize(study, wild, n_trials=4, batch=4)
    lines = result.table(seconds=False).splitlines()
    assert lines[0].split() == [
        "rank",
        "lr",
        "hidden",
        "val_loss",
        "loss",
        "acc",
        "best",
        "epoch",
        "best",
        "loss",
        "status",
    ]
    assert re.search(r"failed: training diverged at epoch \d+", result.table())
    assert len(result.failed) == 1 and len(result.trials) == 4
    pytest.importorskip("matplotlib")
    assert result.plot().axes[0].get_ylabel() == "loss"


# Pruning and divergence inside a stack --------------------------------------------------------------------------


class PruneTrials(optuna.pruners.BasePruner):
    """Prunes the named trials once they reported `step`."""

    def __init__(self, numbers, step):
        self.numbers, self.step = set(numbers), step

    def prune(self, study, trial):
        return trial.number in self.numbers and (trial.last_step or 0) >= self.step


def test_a_pruned_member_leaves_the_stack_and_the_others_are_unchanged(monkeypatch):
    spy = StackSpy(monkeypatch)
    study = _study(pruner=PruneTrials({1, 2}, step=5))
    _enqueue(study, [0.01, 0.1, 1.0, 0.5])
    result = _optimize(study, n_trials=4, batch=4, report_every=1)
    assert spy.sizes == [4]
    states = [trial.state for trial in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, *[optuna.trial.TrialState.PRUNED] * 2, states[0]]
    for number in (1, 2):
        pruned = study.trials[number]
        assert sorted(pruned.intermediate_values) == [1, 2, 3, 4, 5]
        alone = _alone(pruned.params, epochs=5)
        assert pruned.intermediate_values[5] == pytest.approx(alone.final["val_loss"], rel=TOLERANCE)
        assert result.trials[number]["status"] == "pruned"
        assert result.trials[number]["history"]["epoch"] == [1, 2, 3, 4, 5]
    for number in (0, 3):
        trial = study.trials[number]
        assert trial.value == pytest.approx(_alone(trial.params).final["val_loss"], rel=TOLERANCE)
        assert sorted(trial.intermediate_values) == list(range(1, EPOCHS + 1))
    assert "pruned: pruned after epoch 5" in result.table()


def test_a_median_pruner_prunes_inside_stacks():
    study = _study(pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2))
    result = _optimize(study, n_trials=12, batch=6, report_every=2)
    pruned = [trial for trial in study.trials if trial.state == optuna.trial.TrialState.PRUNED]
    assert pruned and len(result.pruned) == len(pruned)
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert trial.value == pytest.approx(_alone(trial.params).final["val_loss"], rel=TOLERANCE)


def test_a_diverged_member_fails_with_its_reason_and_the_others_are_unchanged():
    study = _study()
    _enqueue(study, [0.05, 1e38, 0.5])
    _optimize(study, wild, n_trials=3, batch=3)
    diverged = study.trials[1]
    assert diverged.state == optuna.trial.TrialState.FAIL
    assert diverged.user_attrs["fail_reason"].startswith("training diverged at epoch")
    for number in (0, 2):
        trial = study.trials[number]
        assert trial.value == pytest.approx(_alone(trial.params, build_model=wild).final["val_loss"], rel=TOLERANCE)


def test_objectives_loss_accuracy_and_a_callable():
    study = _study()
    result = _optimize(study, n_trials=2, batch=2, objective="loss")
    assert [t.value for t in study.trials] == [t["loss"] for t in result.trials]
    best_accuracy = _study(direction="maximize")
    _optimize(best_accuracy, n_trials=2, batch=2, objective="val_accuracy")
    own = _study()

    def best_val_loss(history):
        return min(history.history["val_loss"])

    result = _optimize(own, n_trials=2, batch=2, objective=best_val_loss)
    assert result.objective == "best_val_loss"
    assert [t.value for t in own.trials] == [min(t["history"]["val_loss"]) for t in result.trials]


# Resume -----------------------------------------------------------------------------------------------------------


def test_a_stored_study_resumes_after_a_crash_without_repeating_finished_trials(tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = _study(storage=storage, study_name="s")
    _optimize(study, n_trials=3, batch=3)
    crashed = study.ask()  # a crash left it running
    build(crashed)
    spy = StackSpy(monkeypatch)
    again = optuna.load_study(study_name="s", storage=storage, sampler=optuna.samplers.RandomSampler(seed=1))
    _optimize(again, n_trials=6, batch=4)
    trials = again.trials
    assert trials[3].state == optuna.trial.TrialState.FAIL and trials[3].user_attrs["fail_reason"] == "interrupted"
    assert trials[4].params == crashed.params and trials[4].user_attrs["retry_of"] == 3  # asked again, first
    assert sum(spy.sizes) == 3  # only what was left
    finished = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) == 6
    assert trials[4].value == pytest.approx(_alone(crashed.params).final["val_loss"], rel=TOLERANCE)


def test_ctrl_c_keeps_the_told_trials_and_the_next_call_finishes_the_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    calls = []

    def interrupted(trial):
        calls.append(trial.number)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return build(trial)

    study = _study(storage=storage, study_name="s")
    with pytest.raises(sweep.SweepInterrupted) as stopped:
        sweep.optimize(study, interrupted, X, Y, n_trials=8, batch=4, epochs=EPOCHS, progress=False)
    assert len(stopped.value.result.trials) == 4 and stopped.value.result.interrupted
    states = [trial.state for trial in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    result = sweep.optimize(study, build, X, Y, n_trials=8, batch=4, epochs=EPOCHS, progress=False)
    assert len(result.trials) == 4
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 8


# Dask -------------------------------------------------------------------------------------------------------------


def test_dask_refuses_an_in_memory_study():
    with pytest.raises(ValueError, match=r"nnx.sweep.optimize with dask needs .*sqlite:///study.db"):
        _optimize(_study(), dask="tcp://127.0.0.1:1")


@pytest.mark.integration
def test_two_dask_workers_share_one_sqlite_storage(tmp_path):
    distributed = pytest.importorskip("distributed")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = _study(storage=storage, study_name="dask", pruner=PruneTrials({2}, step=4))
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        _optimize(study, n_trials=8, batch=4, dask=client, report_every=1)
    states = [trial.state for trial in study.trials]
    assert len(states) == 8 and states[2] == optuna.trial.TrialState.PRUNED
    assert sorted(study.trials[2].intermediate_values) == [1, 2, 3, 4]  # reported from a worker
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert trial.value == pytest.approx(_alone(trial.params).final["val_loss"], rel=TOLERANCE)


# Bad arguments and the missing package ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"study": "study"}, TypeError, "study must be an optuna.Study"),
        ({"build_model": 3}, TypeError, "build_model must be a function"),
        ({"build_model": "no module"}, ValueError, "build_model: .*'module:function'"),
        ({"n_trials": 0}, ValueError, "n_trials"),
        ({"batch": 1.5}, ValueError, "batch must be a positive integer"),
        ({"objective": "val_loss", "validation_data": None}, ValueError, "needs validation_data"),
        ({"objective": "accuracy"}, ValueError, "must be maximized"),
        ({"objective": "f1"}, ValueError, "objective must be one of"),
        ({"report_every": 0}, ValueError, "report_every"),
        ({"progress": "yes"}, TypeError, "progress"),
    ],
)
def test_bad_arguments_are_refused_before_any_trial(change, error, match):
    study = _study()
    arguments = {"study": study, "build_model": build, "validation_data": (X_VAL, Y_VAL), "n_trials": 2, "epochs": 2}
    arguments.update(change)
    with pytest.raises(error, match=f"nnx.sweep.optimize.*{match}"):
        sweep.optimize(arguments.pop("study"), arguments.pop("build_model"), X, Y, **arguments)
    assert study.trials == []


def test_a_multi_objective_study_is_refused():
    with pytest.raises(ValueError, match="single-objective study"):
        sweep.optimize(optuna.create_study(directions=["minimize", "minimize"]), build, X, Y, n_trials=1, epochs=1)


def test_build_model_must_return_a_finalized_model():
    with pytest.raises(TypeError, match=r"build_model must return a finalized nnx\.Model, got a list"):
        sweep.optimize(_study(), lambda trial: [], X, Y, n_trials=1, epochs=1, progress=False)


def test_without_optuna_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ImportError, match=re.escape('pip install "nnx-nnfs[optuna]"')):
        sweep.optimize(object(), build, X, Y, n_trials=1, epochs=1)


def test_importing_nnx_and_nnx_sweep_does_not_import_optuna():
    code = "import sys, nnx, nnx.sweep, nnx.sweep.cli; print('optuna' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


# train_many's stop_models hook ------------------------------------------------------------------------------------


def test_stop_models_stops_a_model_and_leaves_the_others_unchanged():
    nnx.seed(1)
    models = [build(optuna.trial.FixedTrial({"lr": lr, "hidden": 8})) for lr in (0.1, 0.5, 1.0)]
    with_stop = copy.deepcopy(models)
    without = [copy.deepcopy(models[0]), copy.deepcopy(models[2])]
    seen = []

    def stop_models(epoch, metrics):
        seen.append((epoch, [values["model"] for values in metrics], sorted(metrics[0])))
        return [1] if epoch == 3 else []

    settings = {"epochs": 8, "batch_size": 30, "validation_data": (X_VAL, Y_VAL), "verbose": 0}
    stopped = nnx.train_many(with_stop, X, Y, stop_models=stop_models, **settings)
    reference = nnx.train_many(without, X, Y, **settings)
    assert seen[2][1] == [0, 1, 2] and seen[3][1] == [0, 2]
    assert seen[0][2] == ["accuracy", "data_loss", "loss", "lr", "model", "reg_loss", "val_accuracy", "val_loss"]
    assert stopped[1].final["stopped"] and stopped[1].final["epoch"] == 3 and stopped[1].epoch == [1, 2, 3]
    assert with_stop[1].epochs_trained == 3 and with_stop[1].optimizer.iterations == 12
    assert stopped[0].history == reference[0].history and stopped[2].history == reference[1].history
    alone = copy.deepcopy(models[1])
    alone.train(X, Y, epochs=3, batch_size=30, verbose=0)
    np.testing.assert_array_equal(alone.trainable_layers[0].weights, with_stop[1].trainable_layers[0].weights)


@pytest.mark.parametrize(
    ("returned", "error", "match"),
    [
        (7, TypeError, "must return the indices"),
        ([5], ValueError, "returned 5 at epoch 1"),
        ([True], ValueError, "True"),
    ],
)
def test_stop_models_must_return_live_indices(returned, error, match):
    models = [build(optuna.trial.FixedTrial({"lr": 0.1, "hidden": 8})) for _ in range(2)]
    with pytest.raises(error, match=f"train_many stop_models {match}|train_many stop_models.*{match}"):
        nnx.train_many(models, X, Y, epochs=2, verbose=0, stop_models=lambda epoch, metrics: returned)


def test_stop_models_must_be_callable():
    with pytest.raises(TypeError, match="stop_models must be a function"):
        nnx.train_many([build(optuna.trial.FixedTrial({"lr": 0.1, "hidden": 8}))], X, Y, stop_models=3)


# The command line -------------------------------------------------------------------------------------------------


def test_cli_runs_a_study_and_prints_the_best_as_an_examples_spiral_command(capsys, tmp_path):
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    argv = ["--optuna", "--trials", "4", "--batch", "2", "--lr", "0.05:1.0", "--hidden", "16,32", "--epochs", "101"]
    assert sweep_main([*argv, "--storage", storage, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["rank", "lr", "hidden", "loss"]
    command = re.search(r"best: python (examples/spiral.py .*)", out).group(1).split()
    assert command[1:3] == ["--lr", command[2]] and "--hidden" in command and command[-2:] == ["--epochs", "101"]
    example = subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=300)
    assert example.returncode == 0, example.stderr
    last = re.findall(r"loss: ([\d.]+)", example.stdout)[-1]
    assert out.splitlines()[1].split()[3] == last  # the best trial's final loss, as the example prints it
    assert sweep_main([*argv, "--storage", storage, "--no-progress"]) == 0  # resumed: nothing left to train
    assert "(no trial finished)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--trials", "4"], "--trials need --optuna"),
        (["--optuna", "--random", "3"], "--random does not go with --optuna"),
        (["--optuna", "--study", "x"], "give --storage too"),
    ],
)
def test_cli_refuses_options_that_do_not_go_with_optuna(argv, match, capsys):
    assert sweep_main(argv) == 2
    assert match in capsys.readouterr().err
