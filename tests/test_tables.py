"""One table per concept: update rules, heads and element-wise ops are dispatched from `nnx.backends.tables`, an
unknown code raises at every dispatch point, kernel specs are typed and checked, a broken `kernel_spec()` is a
TypeError naming the component, and `explain_step(X, y)` says the step `train` takes on that data."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest

import nnx
from nnx.backends import tables
from nnx.datasets import spiral_data
from nnx.training import (
    AccuracySpec,
    ActivationSpec,
    DenseSpec,
    DropoutSpec,
    LossSpec,
    OptimizerSpec,
    stack_step,
)
from nnx.training.loop import training_step
from nnx.training.plan import plan_step
from nnx.training.steps import GenericStep, PlannedStep

NUMBA = importlib.util.find_spec("numba") is not None
UNKNOWN = 99


# The tables ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lookup", "what"),
    [(tables.update_rule, "update rule"), (tables.head, "head"), (tables.element_wise_op, "element-wise op")],
)
def test_an_unknown_code_raises_in_the_table(lookup, what):
    with pytest.raises(ValueError, match=rf"unknown {what} code {UNKNOWN}; the known codes are"):
        lookup(UNKNOWN)


def test_every_entry_is_found_by_its_code():
    for rule in tables.UPDATE_RULES.values():
        assert tables.update_rule(rule.code) is rule
        assert 2 + tables.kernel_numbers_count(rule) <= tables.KERNEL_NUMBERS
    for head in tables.HEADS.values():
        assert tables.head(head.code) is head
    for op in tables.ELEMENT_WISE_OPS.values():
        assert op.code < 0
        assert tables.element_wise_op(op.code) is op


def test_a_program_with_an_unknown_code_is_refused():
    program = plan_step(classifier()).program
    for field, code in (("update_rule", UNKNOWN), ("head", UNKNOWN), ("chains", ((-UNKNOWN,), ()))):
        with pytest.raises(ValueError, match="unknown"):
            dataclasses.replace(program, **{field: code})


def test_the_generic_stack_raises_on_an_unknown_op_code():
    ops = nnx.backends.get("numpy").reference()
    values = np.ones((1, 2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"unknown element-wise op code -99"):
        stack_step._element_wise(ops, (-UNKNOWN,), values, None)
    with pytest.raises(ValueError, match=r"unknown element-wise op code -99"):
        stack_step._element_wise_backward(ops, [(-UNKNOWN, values)], values)


def test_the_generic_stack_dispatches_from_the_table(monkeypatch):
    """A model stacked with an update rule the table does not know fails in the table's lookup, not in some
    other rule."""
    models = [classifier(seed) for seed in (0, 1)]
    plan = nnx.training.plan_stack(models)
    stack = stack_step.GenericStack(plan)
    object.__setattr__(stack.program, "update_rule", UNKNOWN)  # past the program's own check
    X, y = spiral_data(samples=10, classes=3)
    with pytest.raises(ValueError, match=r"unknown update rule code 99"):
        stack.step(np.asarray(X, dtype=np.float32), y, None)
    object.__setattr__(stack.program, "update_rule", tables.ADAM)
    object.__setattr__(stack.program, "head", UNKNOWN)
    with pytest.raises(ValueError, match=r"unknown head code 99"):
        stack.head(np.zeros((2, 10, 3), dtype=np.float32), y)


# The compiled kernels' dispatch ------------------------------------------------------------------------------------


@pytest.fixture
def numba_ops():
    if not NUMBA:
        pytest.skip("the compiled kernels need numba (the 'fast' extra)")
    return importlib.import_module("nnx.backends.numba_ops")


def test_the_compiled_update_raises_on_an_unknown_rule(numba_ops):
    params, gradient = np.ones(4), np.ones(4)
    hyper = np.zeros(tables.KERNEL_NUMBERS)
    with pytest.raises(ValueError, match="unknown update rule code"):
        numba_ops.update_rule_step(params, gradient, np.zeros(4), np.zeros(4), UNKNOWN, hyper)
    assert np.all(params == 1)


def test_the_compiled_heads_raise_on_an_unknown_head(numba_ops):
    labels, targets = np.zeros(2, dtype=np.int64), np.zeros((2, 3))
    constants = np.array([2.0, 0.0, 1e-7, 1 - 1e-7])
    with pytest.raises(ValueError, match="unknown head code"):
        numba_ops.head_columns(
            UNKNOWN, np.zeros((3, 2)), labels, targets, 0, constants, np.zeros((3, 2)), np.zeros((3, 2)), 2
        )


def test_the_compiled_element_wise_ops_raise_on_an_unknown_op(numba_ops):
    ops, masks, columns = np.array([-UNKNOWN], dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64)
    with pytest.raises(ValueError, match="unknown element-wise op code"):
        numba_ops.element_wise_columns(np.ones((3, 2)), np.ones((3, 2)), 0, ops, masks, columns, 2, 0, 2)


# Typed specs ---------------------------------------------------------------------------------------------------------


def test_the_built_in_components_return_typed_specs():
    model = classifier(dropout=0.25)
    assert [type(layer.kernel_spec()) for layer in model.layers] == [
        DenseSpec, ActivationSpec, DropoutSpec, DenseSpec, ActivationSpec,
    ]  # fmt: skip
    assert model.layers[0].kernel_spec() == DenseSpec((2, 16), "float32", (0.0, 0.0, 0.0, 0.0))
    assert model.layers[2].kernel_spec() == DropoutSpec(0.75)
    assert model.loss.kernel_spec() == LossSpec("categorical_crossentropy", 1e-7)
    assert model.accuracy.kernel_spec() == AccuracySpec("categorical")
    assert nnx.SGD().kernel_spec() == OptimizerSpec("sgd")
    assert nnx.SGD(momentum=0.5).kernel_spec() == OptimizerSpec("momentum_sgd", {"momentum": 0.5})
    assert nnx.Adam().kernel_spec().constant("beta_2") == 0.999
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.loss.kernel_spec().loss = "mean_squared_error"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ActivationSpec("tanh"), r"ActivationSpec op must be one of 'relu', 'softmax'.*got 'tanh'"),
        (lambda: LossSpec("hinge"), r"LossSpec loss must be one of 'categorical_crossentropy'.*got 'hinge'"),
        (lambda: AccuracySpec("top5"), r"AccuracySpec accuracy must be one of 'categorical', 'regression'"),
        (lambda: OptimizerSpec("lion"), r"OptimizerSpec update_rule must be one of 'sgd'.*'adam', got 'lion'"),
        (lambda: OptimizerSpec("adam", {"epsilon": 1e-7}), r"must name exactly the rule's hyperparameters"),
        (lambda: OptimizerSpec("sgd", {"momentum": 0.9}), r"\('sgd'\) constants must name exactly .*\(none\)"),
        (lambda: DropoutSpec(0.0), r"DropoutSpec keep \(the fraction kept\) must be in \(0, 1\], got 0.0"),
        (lambda: DenseSpec((2, 0), "float32"), r"DenseSpec shape sizes must be >= 1, got \(2, 0\)"),
        (lambda: DenseSpec((2, 3), "float32", (0, -1, 0, 0)), r"strengths must be >= 0"),
        (lambda: LossSpec("binary_crossentropy", 0.5), r"clip_epsilon must be in \[0, 0.5\)"),
        (lambda: AccuracySpec("regression", -1.0), r"precision must be >= 0"),
        (lambda: OptimizerSpec("adagrad", {"epsilon": float("nan")}), r"constant 'epsilon' must be finite"),
    ],
)
def test_a_spec_refuses_what_no_kernel_computes(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: DenseSpec("2x3", "float32"), r"DenseSpec shape must be \(n_inputs, n_outputs\)"),
        (lambda: DenseSpec((2, 3), np.float32), r"DenseSpec dtype must be a dtype name"),
        (lambda: DropoutSpec("half"), r"DropoutSpec keep must be a number, got 'half'"),
        (lambda: OptimizerSpec("momentum_sgd", [0.9]), r"OptimizerSpec constants must be a dict"),
    ],
)
def test_a_spec_refuses_the_wrong_types(make, message):
    with pytest.raises(TypeError, match=message):
        make()


def test_numpy_scalars_are_plain_numbers_in_a_spec():
    spec = OptimizerSpec("momentum_sgd", {"momentum": np.float32(0.5)})
    assert spec.constants == (("momentum", 0.5),) and type(spec.constants[0][1]) is float
    assert DenseSpec((np.int64(2), np.int64(3)), "float32").shape == (2, 3)


# A broken kernel_spec() is the user's bug: a TypeError naming the component -------------------------------------


class StringSpecReLU(nnx.ReLU):
    def kernel_spec(self):
        return "relu"


class DictSpecLoss(nnx.CategoricalCrossentropy):
    def kernel_spec(self):
        return {"loss": "categorical_crossentropy", "clip_epsilon": 1e-7}


class RaisingSpecAdam(nnx.Adam):
    def kernel_spec(self):
        raise KeyError("beta_3")


class LossSpecLayer(nnx.ReLU):
    def kernel_spec(self):
        return LossSpec("mean_squared_error")


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        (
            {"layer": StringSpecReLU()},
            r"StringSpecReLU\(\).*kernel_spec\(\) must return one of DenseSpec, ActivationSpec, DropoutSpec "
            r"\(from nnx.training\) or None, got str 'relu'",
        ),
        (
            {"loss": DictSpecLoss()},
            r"DictSpecLoss\(\)\.kernel_spec\(\) must return one of LossSpec \(from nnx.training\) or None, got dict",
        ),
        (
            {"optimizer": RaisingSpecAdam()},
            r"RaisingSpecAdam\(.*\)\.kernel_spec\(\) raised KeyError: 'beta_3'\. It must return one of OptimizerSpec",
        ),
        ({"layer": LossSpecLayer()}, r"must return one of DenseSpec, ActivationSpec, DropoutSpec .*got LossSpec"),
    ],
)
def test_a_broken_kernel_spec_is_refused_at_finalize_and_at_plan_time(parts, message):
    with pytest.raises(TypeError, match=message):
        classifier(**parts)  # finalize asks every component for its spec, before a train or a resume
    model = classifier()
    ((role, broken),) = parts.items()
    if role == "layer":
        model.layers[1] = broken
    else:
        setattr(model, role, broken)  # a part swapped after finalize: the plan still refuses it
    X, y = spiral_data(samples=20, classes=3)
    with pytest.raises(TypeError, match=message):
        model.explain_step()
    with pytest.raises(TypeError, match=message):
        model.train(X, y, epochs=1, print_every=None)
    assert model.epochs_trained == 0


def test_a_subclass_without_its_own_spec_still_runs_the_generic_step():
    class MyReLU(nnx.ReLU):
        pass

    model = classifier(layer=MyReLU())
    assert "has no kernel_spec(): no kernel computes it" in model.explain_step()


# explain_step tells what train runs on the data -------------------------------------------------------------------


def binary_setup():
    """The book's binary logistic regression: integer (n, 1) targets, Sigmoid + BinaryCrossentropy."""
    nnx.seed(0)
    X, y = spiral_data(samples=50, classes=2)
    model = nnx.Model()
    for layer in (nnx.Dense(2, 16, weight_regularizer_l2=5e-4), nnx.ReLU(), nnx.Dense(16, 1), nnx.Sigmoid()):
        model.add(layer)
    model.set(
        loss=nnx.BinaryCrossentropy(), optimizer=nnx.Adam(decay=5e-7), accuracy=nnx.metrics.Categorical(binary=True)
    )
    model.finalize()
    return model, X, y.reshape(-1, 1)


def float_labels():
    X, y = spiral_data(samples=50, classes=3)
    return classifier(), X, y.astype(np.float32)


def fortran_inputs():
    X, y = spiral_data(samples=50, classes=3)
    return classifier(), np.asfortranarray(X), y


@pytest.mark.parametrize("case", [binary_setup, float_labels, fortran_inputs])
def test_explain_step_with_data_says_what_train_runs(case, monkeypatch):
    model, X, y = case()
    explained = model.explain_step(X, y)
    taken = []
    original = training_step

    def recorded(*args):
        step = original(*args)
        taken.append(step)
        return step

    monkeypatch.setattr("nnx.training.loop.training_step", recorded)
    model.train(X, y, epochs=2, print_every=None)
    assert model.last_step == explained
    assert explained.startswith("compiled step") == isinstance(taken[0], PlannedStep)
    assert explained.startswith("generic step") == isinstance(taken[0], GenericStep)


@pytest.mark.skipif(not NUMBA, reason="the compiled step needs numba (the 'fast' extra)")
def test_explain_step_names_the_data_that_change_the_step(monkeypatch):
    monkeypatch.setattr(nnx.backends.get("numpy"), "compile", True)
    model, X, y = fortran_inputs()
    assert "other data runs the generic step; explain_step(X, y) checks yours" in model.explain_step()
    assert "class labels or one-hot rows" in model.explain_step()
    explained = model.explain_step(X, y)
    assert explained.startswith("generic step")
    assert "the compiled step takes C-contiguous float32 inputs" in explained and "not C-contiguous" in explained
    for data in (binary_setup(), float_labels()):
        assert data[0].explain_step(*data[1:]).startswith("compiled step")


def test_explain_step_takes_both_x_and_y_or_neither():
    model, X, y = float_labels()
    with pytest.raises(TypeError, match=r"takes both X and y .* or neither; got only X"):
        model.explain_step(X)
    with pytest.raises(ValueError, match="expected"):
        model.explain_step(X, y[:-1])


# A model -------------------------------------------------------------------------------------------------------------


def classifier(seed=0, *, layer=None, loss=None, optimizer=None, dropout=0.0):
    """Dense(2, 16), ReLU (or `layer`), [Dropout], Dense(16, 3), Softmax, categorical cross-entropy, Adam."""
    nnx.seed(seed)
    model = nnx.Model()
    layers = [nnx.Dense(2, 16), layer or nnx.ReLU(), *([nnx.Dropout(dropout)] if dropout else [])]
    for part in (*layers, nnx.Dense(16, 3), nnx.Softmax()):
        model.add(part)
    model.set(
        loss=loss or nnx.CategoricalCrossentropy(),
        optimizer=optimizer or nnx.Adam(),
        accuracy=nnx.metrics.Categorical(),
    )
    model.finalize()
    return model
