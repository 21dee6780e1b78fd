"""Names that left a public module keep working for one release, with a DeprecationWarning that says where they
went; each module's tests are named test_<module>_..."""

from __future__ import annotations

import pytest

import nnx.io
from nnx import _paths


def test_io_output_path_warns_and_still_works(tmp_path):
    with pytest.warns(DeprecationWarning, match=r"nnx\.io\.output_path is internal since 0\.2 and will be removed"):
        output_path = nnx.io.output_path
    assert output_path is _paths.output_path
    assert output_path(tmp_path / "model.nnx", "test") == tmp_path / "model.nnx"


def test_io_from_import_of_output_path_warns():
    with pytest.warns(DeprecationWarning, match=r"it lives in nnx\._paths"):
        from nnx.io import output_path
    assert output_path is _paths.output_path


def test_io_unknown_names_are_still_attribute_errors():
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        nnx.io.no_such_name  # noqa: B018
    assert "output_path" not in nnx.io.__all__


# nnx.backends, nnx.training, nnx.callbacks, nnx.sweep, nnx.plot: internals that left the packages' public API.

INTERNALS = {
    "nnx.backends": {"checked_seed": "nnx.backends._host", "chosen_by_use": "nnx.backends._active"},
    "nnx.training": {
        "CHECK_EVERY": "nnx.training.loop",
        "GenericStep": "nnx.training.steps",
        "PlannedStep": "nnx.training.steps",
        "StepPlan": "nnx.training.plan",
        "explain_step": "nnx.training.loop",
        "plan_step": "nnx.training.plan",
        "train": "nnx.training.loop",
        "training_step": "nnx.training.loop",
    },
    "nnx.callbacks": {
        "DIVERGENCE_ACTIONS": "nnx.callbacks.divergence",
        "CallbackList": "nnx.callbacks.base",
        "StackProgress": "nnx.callbacks.progress",
        "format_metrics": "nnx.callbacks.progress",
        "host_float": "nnx.callbacks.base",
        "lines_every": "nnx.callbacks.progress",
    },
    "nnx.sweep": {
        "EXIT_FAILED": "nnx.sweep.cli",
        "EXIT_INTERRUPTED": "nnx.sweep.cli",
        "EXIT_OK": "nnx.sweep.cli",
        "EXIT_USAGE": "nnx.sweep.cli",
        "METRIC_COLUMNS": "nnx.sweep.result",
        "OWNER": "nnx.sweep.space",
        "SPIRAL_DEFAULTS": "nnx.sweep.plan",
        "Trial": "nnx.sweep.trials",
        "load_factory": "nnx.sweep.trials",
        "main": "nnx.sweep.cli",
        "parse_values": "nnx.sweep.space",
        "run_trial": "nnx.sweep.trials",
    },
    "nnx.plot": {"LIGHTEN": "nnx.plot.style", "PALETTE": "nnx.plot.style"},
}


def _moved_name_warns_and_still_works(package: str, name: str) -> None:
    """`package.name` warns, saying where the name lives now, and is that module's object; it is not in __all__."""
    import importlib

    home = INTERNALS[package][name]
    module = importlib.import_module(package)
    message = f"{package}.{name} is internal since 0.2 and will be removed from {package}; it lives in {home}"
    with pytest.warns(DeprecationWarning, match=message.replace(".", r"\.") + "$"):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(home), name)
    assert name not in module.__all__


def _unknown_name_is_an_attribute_error(package: str) -> None:
    import importlib

    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        module.no_such_name  # noqa: B018


@pytest.mark.parametrize("name", sorted(INTERNALS["nnx.backends"]))
def test_backends_moved_names_warn_and_still_work(name):
    _moved_name_warns_and_still_works("nnx.backends", name)


def test_backends_from_import_warns_and_unknown_names_fail():
    with pytest.warns(DeprecationWarning, match=r"nnx\.backends\.checked_seed is internal"):
        from nnx.backends import checked_seed
    assert checked_seed(7, "test seed") == 7
    _unknown_name_is_an_attribute_error("nnx.backends")


@pytest.mark.parametrize("name", sorted(INTERNALS["nnx.training"]))
def test_training_moved_names_warn_and_still_work(name):
    _moved_name_warns_and_still_works("nnx.training", name)


def test_training_from_import_warns_and_unknown_names_fail():
    with pytest.warns(DeprecationWarning, match=r"it lives in nnx\.training\.steps$"):
        from nnx.training import GenericStep
    assert GenericStep.__module__ == "nnx.training.steps"
    _unknown_name_is_an_attribute_error("nnx.training")


@pytest.mark.parametrize("name", sorted(INTERNALS["nnx.callbacks"]))
def test_callbacks_moved_names_warn_and_still_work(name):
    _moved_name_warns_and_still_works("nnx.callbacks", name)


def test_callbacks_from_import_warns_and_unknown_names_fail():
    with pytest.warns(DeprecationWarning, match=r"nnx\.callbacks\.lines_every is internal"):
        from nnx.callbacks import lines_every
    assert lines_every(1000) == 10
    _unknown_name_is_an_attribute_error("nnx.callbacks")


@pytest.mark.parametrize("name", sorted(INTERNALS["nnx.sweep"]))
def test_sweep_moved_names_warn_and_still_work(name):
    _moved_name_warns_and_still_works("nnx.sweep", name)


def test_sweep_from_import_warns_and_unknown_names_fail():
    with pytest.warns(DeprecationWarning, match=r"nnx\.sweep\.EXIT_USAGE is internal"):
        from nnx.sweep import EXIT_USAGE
    assert EXIT_USAGE == 2
    _unknown_name_is_an_attribute_error("nnx.sweep")


@pytest.mark.parametrize("name", sorted(INTERNALS["nnx.plot"]))
def test_plot_moved_names_warn_and_still_work(name):
    _moved_name_warns_and_still_works("nnx.plot", name)


def test_plot_from_import_warns_and_unknown_names_fail():
    with pytest.warns(DeprecationWarning, match=r"nnx\.plot\.PALETTE is internal"):
        from nnx.plot import PALETTE
    assert len(PALETTE) == 10
    _unknown_name_is_an_attribute_error("nnx.plot")
