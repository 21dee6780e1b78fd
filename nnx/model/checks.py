"""What a Model checks about its parts when they are added, set and finalized: each error names the part, what was
expected and the fix, before anything changes. `finalize` wires the checked parts together."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from nnx import _checks
from nnx._component import Component, check_config
from nnx.activations import Softmax
from nnx.errors import CallOrderError
from nnx.io.rebuild import ROLES
from nnx.layers import Input
from nnx.losses import CategoricalCrossentropy, Loss, SoftmaxCategoricalCrossentropy
from nnx.metrics import Accuracy
from nnx.optimizers import Optimizer
from nnx.training.plan import check_specs

EXAMPLES = {"loss": "CategoricalCrossentropy()", "optimizer": "Adam()", "accuracy": "metrics.Categorical()"}


def layer(candidate: Any, *, not_layers: tuple[type, ...] = ()) -> None:
    """A TypeError unless `candidate` is a layer or activation instance (anything with `forward` and `backward`)
    whose config, if it is a Component, can rebuild it (`nnx._component.check_config`)."""
    refused = (type, Loss, SoftmaxCategoricalCrossentropy, Optimizer, Accuracy, *not_layers)
    if isinstance(candidate, refused) or not (
        callable(getattr(candidate, "forward", None)) and callable(getattr(candidate, "backward", None))
    ):
        raise TypeError(
            f"Model.add() expected a layer or activation (Dense, Dropout, ReLU, Softmax, ...), got "
            f"{_checks.describe(candidate)}; pass an instance such as Dense(2, 64) or ReLU(), and give losses, "
            f"optimizers and accuracies to model.set() instead"
        )
    if isinstance(candidate, Component):
        check_config(candidate, "Model.add()")


def not_added(model: Any, candidate: Any) -> None:
    """A ValueError if `candidate` is one of `model`'s layers already: one object keeps one set of inputs and
    gradients, so its second use would overwrite the first's."""
    for index, each in enumerate(model.layers):
        if each is candidate:
            raise ValueError(
                f"Model.add() got {candidate!r}, which is layer {index} of this model already; as layer "
                f"{len(model.layers)} too, its second use would overwrite the inputs and gradients of its first. Add "
                f"a new instance instead, e.g. model.add({type(candidate).__name__}(...))"
            )


def set_parts(model: Any, **parts: Any) -> None:
    """What `Model.set` does: check the parts given (None left out) and their configs, claim them for `model`, and
    set them."""
    chosen = chosen_parts(model, **parts)
    for name, value in chosen.items():
        check_config(value, f"Model.set({name}=...)")
    for name, value in chosen.items():
        value._owner = weakref.ref(model)
        setattr(model, name, value)


def chosen_parts(model: Any, **parts: Any) -> dict[str, Any]:
    """The parts given to `Model.set` (None left out), each checked to be of its kind and not another model's."""
    if isinstance(parts.get("loss"), SoftmaxCategoricalCrossentropy):
        raise TypeError(
            "Model.set(loss=SoftmaxCategoricalCrossentropy()) is the layer-level fused class; end the model with "
            "model.add(Softmax()) and pass loss=CategoricalCrossentropy(): finalize() fuses them the same way"
        )
    for name, value in parts.items():
        if value is not None and not isinstance(value, ROLES[name]):
            raise TypeError(
                f"Model.set({name}=...) expected an nnx {ROLES[name].__name__} (e.g. nnx.{EXAMPLES[name]}), "
                f"got {_checks.describe(value)}"
            )
    chosen = {name: value for name, value in parts.items() if value is not None}
    for name, value in chosen.items():
        if type(value) is ROLES[name]:
            raise TypeError(
                f"Model.set({name}={type(value).__name__}()) got the base class {type(value).__name__}, which "
                f"computes nothing itself; pass one of its kinds, e.g. {name}=nnx.{EXAMPLES[name]}"
            )
        _unclaimed(model, value, name)
    return chosen


def _unclaimed(model: Any, component: Any, name: str) -> None:
    """A ValueError if `component` belongs to another model: sharing a loss or optimizer mixes their state."""
    owner = getattr(component, "_owner", None)
    owner = owner() if owner is not None else None
    if owner is not None and owner is not model:
        raise ValueError(
            f"{component!r} is already the {name} of another Model; sharing it would mix the two models' "
            f"state. Give each model its own: {name}={type(component).__name__}(...)"
        )


def finalize(model: Any) -> None:
    """What `Model.finalize` does: check the network, remember its trainable layers, and pick the fast softmax +
    cross-entropy path."""
    if not model.layers:
        raise ValueError("the model has no layers: add some with model.add() before finalize()")
    same_backend(model, components(model))
    for component in components(model):
        if isinstance(component, Component):
            check_config(component, "Model.finalize()")
    chained_shapes(model.layers)
    check_specs(model)  # a broken kernel_spec() is refused here, before a train() or a resume changes anything
    last = output_activation(model.layers)
    model.input_layer = Input()
    model.trainable_layers = [layer for layer in model.layers if hasattr(layer, "weights")]
    model.output_layer_activation = last
    if model.loss is not None:
        model.loss.remember_trainable_layers(model.trainable_layers)
    if model.optimizer is not None:
        model.optimizer.remember_layers(model.trainable_layers)
    fused = own_computation(last, Softmax) and own_computation(model.loss, CategoricalCrossentropy)
    model.softmax_classifier_output = SoftmaxCategoricalCrossentropy(xp=model.backend) if fused else None
    model.finalized = True


def own_computation(component: Any, base: type) -> bool:
    """Whether `component` is a `base` that computes as `base` does: a subclass that overrides `forward` or
    `backward` (a Softmax with a temperature) computes something else, so it is never fused into the combined
    softmax + cross-entropy gradient."""
    return isinstance(component, base) and all(
        getattr(type(component), method) is getattr(base, method) for method in ("forward", "backward")
    )


def components(model: Any, *, movable: bool = False) -> list[Any]:
    """The model's layers, loss, optimizer, accuracy and fused output (those that are set); with `movable`, only
    those that have a `to` method."""
    extras = (model.loss, model.optimizer, model.accuracy, model.softmax_classifier_output)
    found = [*model.layers, *(c for c in extras if c is not None)]
    return [c for c in found if hasattr(c, "to")] if movable else found


def require(model: Any, *names: str) -> None:
    """A CallOrderError unless the model is finalized and has each part in `names` ('loss', 'optimizer', ...)."""
    if not model.finalized:
        raise CallOrderError("the model is not finalized: call model.finalize() after add() and set()")
    missing = [name for name in names if getattr(model, name) is None]
    if missing:
        raise CallOrderError(
            f"the model has no {' or '.join(missing)}: give it with model.set({missing[0]}=...) and finalize()"
        )


def same_backend(model: Any, components: Sequence[Any]) -> None:
    """A TypeError unless every component computes on the model's backend."""
    for component in components:
        if getattr(component, "backend", model.backend) is not model.backend:
            raise TypeError(
                f"{component!r} is on backend {component.backend.name!r} but the model is on "
                f"{model.backend.name!r}; build them with the same xp= or call model.to(...) before finalize()"
            )


def chained_shapes(layers: Sequence[Any]) -> None:
    """A ValueError unless each layer that declares the width it takes (`n_inputs`) gets the width that the last
    layer before it to declare one gives (`n_neurons`). Layers that declare neither keep the width; when one between
    the two may not, the message names it and the attributes to give it."""
    previous = None
    for index, each in enumerate(layers):
        if previous is not None and hasattr(each, "n_inputs") and each.n_inputs != previous[1].n_neurons:
            raise ValueError(
                f"{each!r} at layer {index} expects {each.n_inputs} inputs, but {previous[1]!r} at layer "
                f"{previous[0]} gives {previous[1].n_neurons}{_silent_between(layers, previous[0], index)}"
            )
        if hasattr(each, "n_neurons"):
            previous = (index, each)


def _silent_between(layers: Sequence[Any], start: int, stop: int) -> str:
    """The end of a width error: the fix, naming the layers of your own between `start` and `stop` that declare no
    width (nnx's own activations and Dropout keep it)."""
    silent = [
        f"{layer!r} at layer {index}"
        for index, layer in enumerate(layers[start + 1 : stop], start + 1)
        if not type(layer).__module__.startswith("nnx.")
    ]
    if not silent:
        return "; make them match"
    return (
        f", and {', '.join(silent)} declare{'s' if len(silent) == 1 else ''} no width, so nnx takes it to keep the "
        f"width. A layer that changes the width sets n_inputs (the width it takes) and n_neurons (the width it "
        f"gives) in its __init__; else make the Dense layers match"
    )


def output_activation(layers: Sequence[Any]) -> Any:
    """The last layer, which must turn outputs into predictions (an activation)."""
    last = layers[-1]
    if not callable(getattr(last, "predictions", None)):
        raise TypeError(
            f"the model's last layer {last!r} has no predictions(); end the model with an activation: Softmax "
            f"(classes), Sigmoid (binary) or Linear (regression)"
        )
    return last
