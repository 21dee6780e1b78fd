"""Building a Model wrong, on every backend: `add`, `set` and `finalize` refusing what cannot work, training
before `finalize` or without an optimizer, and a component shared by two models.

Each bad call must raise the documented exception, with a message that names the component, what it
expected and the fix, and change nothing it was given (parameters, optimizer state, iterations); the checks
are in tests/helpers.py.
"""

from __future__ import annotations

import gc
import re

import numpy as np
import pytest

import nnx
from tests.helpers import (
    LABELS,
    X3,
    assert_message,
    assert_raises,
    assert_same,
    small_classifier,
    snapshot,
)


def test_model_must_end_with_an_activation(backend):
    model = nnx.Model(xp=backend)
    model.add(nnx.Dense(2, 3, xp=backend))
    model.set(
        loss=nnx.CategoricalCrossentropy(xp=backend),
        optimizer=nnx.SGD(xp=backend),
        accuracy=nnx.metrics.Categorical(xp=backend),
    )
    info = assert_raises(TypeError, lambda: model.finalize())
    assert_message(info, r"Dense\(2 -> 3\)", r"no predictions\(\)", r"end the model with an activation")
    assert not model.finalized
    with pytest.raises(nnx.CallOrderError, match="not finalized"):
        model.train(X3, LABELS)


def test_model_set_refuses_the_fused_loss_and_wrong_kinds(backend):
    model = small_classifier(backend)
    before = snapshot(model)
    info = assert_raises(TypeError, lambda: model.set(loss=nnx.SoftmaxCategoricalCrossentropy(xp=backend)))
    assert_message(
        info,
        r"Model\.set\(loss=SoftmaxCategoricalCrossentropy\(\)\)",
        r"fused",
        r"loss=CategoricalCrossentropy\(\)",
    )
    for kwargs in (
        {"loss": nnx.CategoricalCrossentropy},
        {"optimizer": nnx.CategoricalCrossentropy(xp=backend)},
        {"accuracy": 0.5},
        {"optimizer": "adam"},
    ):
        info = assert_raises(TypeError, lambda kwargs=kwargs: model.set(**kwargs))
        assert_message(info, r"Model\.set", r"expected an nnx", r"e\.g\. nnx\.")
    assert_same(before, snapshot(model))
    assert model.finalized


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda b: nnx.Adam(xp=b), id="optimizer"),
        pytest.param(lambda b: nnx.CategoricalCrossentropy(xp=b), id="loss"),
        pytest.param(lambda b: nnx.metrics.Categorical(xp=b), id="accuracy"),
        pytest.param(lambda b: nnx.Model(xp=b), id="model"),
        pytest.param(lambda b: 3, id="int"),
        pytest.param(lambda b: "Dense", id="str"),
        pytest.param(lambda b: None, id="None"),
    ],
)
def test_model_add_refuses_non_layers(backend, make):
    model = small_classifier(backend)
    info = assert_raises(TypeError, lambda: model.add(make(backend)))
    assert_message(info, r"Model\.add\(\)", r"expected a layer or activation", r"give losses")
    assert len(model.layers) == 4 and model.finalized


@pytest.mark.parametrize("layer_class", [nnx.ReLU, nnx.Softmax, nnx.Dense])
def test_model_add_refuses_layer_classes(backend, layer_class):
    model = nnx.Model(xp=backend)
    info = assert_raises(TypeError, lambda: model.add(layer_class))
    assert_message(info, r"Model\.add\(\)", layer_class.__name__)
    assert model.layers == []


def test_train_evaluate_predict_before_finalize(backend):
    with nnx.backends.use(backend):
        model = nnx.Model()
        model.add(nnx.Dense(2, 3))
        model.add(nnx.Softmax())
        model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.SGD(), accuracy=nnx.metrics.Categorical())
    for call in (
        lambda: model.train(X3, LABELS),
        lambda: model.evaluate(X3, LABELS),
        lambda: model.predict(X3),
        model.get_parameters,
        lambda: model.set_parameters([]),
    ):
        info = assert_raises(nnx.CallOrderError, call)
        assert_message(info, r"the model", r"not finalized", r"call model\.finalize\(\)")
    model.finalize()
    model.train(X3, LABELS, print_every=None)
    model.add(nnx.Linear(xp=backend))  # any change needs a new finalize()
    with pytest.raises(nnx.CallOrderError, match="not finalized"):
        model.train(X3, LABELS, print_every=None)


def test_train_without_an_optimizer(backend):
    with nnx.backends.use(backend):
        model = nnx.Model()
        model.add(nnx.Dense(2, 3))
        model.add(nnx.Softmax())
        model.set(loss=nnx.CategoricalCrossentropy(), accuracy=nnx.metrics.Categorical())
        model.finalize()
    info = assert_raises(nnx.CallOrderError, lambda: model.train(X3, LABELS))
    assert_message(info, r"the model", r"no optimizer", r"give it with model\.set\(optimizer=\.\.\.\)")
    assert np.isfinite(model.evaluate(X3, LABELS, verbose=False)[0])


# Sharing ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["loss", "optimizer", "accuracy"])
def test_a_component_belongs_to_one_model(backend, name):
    first, second = small_classifier(backend), small_classifier(backend)
    shared = getattr(first, name)
    before = snapshot(second)
    info = assert_raises(ValueError, lambda: second.set(**{name: shared}))
    assert_message(info, re.escape(repr(shared)), rf"already the {name} of another Model", r"Give each model")
    assert_same(before, snapshot(second))
    assert second.finalized
    del first, info  # the traceback's frames hold the first model
    gc.collect()
    second.set(**{name: shared})  # free again once its model is gone
    assert getattr(second, name) is shared


def test_model_set_changes_nothing_when_one_component_is_refused(backend):
    first, second = small_classifier(backend), small_classifier(backend)
    loss, optimizer = second.loss, second.optimizer
    fresh = nnx.CategoricalCrossentropy(xp=backend)
    with pytest.raises(ValueError, match="another Model"):
        second.set(loss=fresh, optimizer=first.optimizer)
    assert second.loss is loss and second.optimizer is optimizer
    small_classifier(backend).set(loss=fresh)  # the refused loss is still free
