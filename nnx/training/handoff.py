"""The hand-offs at a Model's seams, checked for components of your own: what a layer's `forward` leaves in
`output`, what its `backward` leaves in `dinputs`, what a loss's `backward` leaves in `dinputs`, and what the output
layer's `predictions` returns.

nnx's own classes are trusted (their tests check them), so a model built from them pays one dictionary look-up per
layer. For any other class the checks look at shapes, dtypes and array types only (no values, no host copy), and
each error names the component, what was expected, what came and the fix, before the optimizer changes anything.
"""

from __future__ import annotations

import inspect
from typing import Any

from nnx import _checks
from nnx._component import defined_by_nnx
from nnx.backends._host import dtype_name

_USERS: dict[type, bool] = {}
_TAKES_TRAINING: dict[type, bool] = {}


def users(component: Any) -> bool:
    """Whether `component` is of a class that is not nnx's own (a subclass of nnx's counts as yours).

    Args:
        component: A layer, activation, loss, optimizer or accuracy.

    Returns:
        True for a class of your own, whose hand-offs are checked.
    """
    cls = type(component)
    known = _USERS.get(cls)
    if known is None:
        known = _USERS[cls] = not defined_by_nnx(cls)
    return known


def takes_training(layer: Any) -> bool:
    """Whether `layer.forward` takes the `training` flag after the inputs, as the book's layers do; a layer of your
    own that behaves the same in training and prediction may leave it out (`forward(self, inputs)`).

    Args:
        layer: A layer or activation.

    Returns:
        False only when its `forward` takes exactly one positional argument.
    """
    cls = type(layer)
    known = _TAKES_TRAINING.get(cls)
    if known is None:
        try:
            parameters = list(inspect.signature(layer.forward).parameters.values())
        except (TypeError, ValueError):  # a signature Python cannot read: pass the flag as the book does
            parameters = []
        positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        one = len(positional) == 1 and not any(p.kind is p.VAR_POSITIONAL for p in parameters)
        known = _TAKES_TRAINING[cls] = not one
    return known


def named(component: Any, index: int | None = None) -> str:
    """How a message names a component: its label (with its place in the model), else its repr and place."""
    label = getattr(component, "label", None)
    if isinstance(label, str):
        return label
    return repr(component) if index is None else f"{component!r} at layer {index}"


def layer_output(model: Any, index: int, inputs: Any, training: bool) -> Any:
    """Run layer `index` of `model` forward on `inputs` and return its `output`, checked for a layer of your own.

    Args:
        model: The Model.
        index: The layer's place in `model.layers`.
        inputs: What the layer before it gave (the batch for the first layer).
        training: Whether this is a training pass.

    Returns:
        The layer's `output`.

    Raises:
        TypeError: a layer of your own set no `output`, or one that is not an array of the model's backend or not
            in its inputs' dtype.
        ValueError: its `output` is not 2-d, has another number of rows than its inputs, or a width the next layer
            does not take.
    """
    layer = model.layers[index]
    if not users(layer):
        layer.forward(inputs, training)
        return layer.output
    if takes_training(layer):
        layer.forward(inputs, training)
    else:
        layer.forward(inputs)
    output = getattr(layer, "output", None)
    name = named(layer, index)
    rows = inputs.shape[0]
    expected = f"an array of backend {model.backend.name!r} shaped ({rows}, features) in {dtype_name(inputs.dtype)}"
    if output is None:
        raise TypeError(
            f"{name}.forward() expected to set self.output to {expected}, got no self.output; store the result in "
            f"self.output (forward's return value is not used)"
        )
    _same_backend(model, output, f"{name}.forward()", "self.output", expected)
    if output.ndim != 2 or output.shape[0] != rows:
        raise ValueError(
            f"{name}.forward() expected to set self.output to one row per input row, shaped ({rows}, features), "
            f"got shape {tuple(output.shape)} from inputs shaped {tuple(inputs.shape)}; keep the samples along axis "
            f"0 and the features along axis 1 (e.g. sum with keepdims=True)"
        )
    _same_dtype(output, inputs, f"{name}.forward()", "self.output", "inputs")
    _next_takes(model, index, output)
    return output


def _next_takes(model: Any, index: int, output: Any) -> None:
    """A ValueError when the layer after `index` declares a width (`n_inputs`) that layer `index`'s output lacks."""
    if index + 1 >= len(model.layers):
        return
    after = model.layers[index + 1]
    width = getattr(after, "n_inputs", None)
    if isinstance(width, int) and output.shape[1] != width:
        name = named(model.layers[index], index)
        raise ValueError(
            f"{named(after, index + 1)} expected {width} features from {name}, got {output.shape[1]}; build it with "
            f"n_inputs={output.shape[1]} (or, if {name} should give {width}, fix its forward; a layer that changes "
            f"the width sets n_inputs and n_neurons in its __init__, which finalize() then checks)"
        )


def layer_gradient(model: Any, index: int, dvalues: Any) -> Any:
    """Run layer `index` of `model` backward on `dvalues` and return its `dinputs`, checked for a layer of your own.

    Args:
        model: The Model, after `forward` on the batch.
        index: The layer's place in `model.layers`.
        dvalues: The gradient of the loss with respect to the layer's output.

    Returns:
        The layer's `dinputs`.

    Raises:
        TypeError: a layer of your own set no new `dinputs` in this call, or one that is not an array of the
            model's backend or not in its inputs' dtype.
        ValueError: its `dinputs` is not shaped like its inputs.
    """
    layer = model.layers[index]
    if not users(layer):
        layer.backward(dvalues)
        return layer.dinputs
    before = getattr(layer, "dinputs", None)
    layer.backward(dvalues)
    inputs = model.layers[index - 1].output if index else model.input_layer.output
    return _gradient(model, layer, named(layer, index), before, dvalues, inputs, "its inputs")


def loss_gradient(model: Any, output: Any, y: Any) -> Any:
    """Run the model's loss backward on the batch and return its `dinputs`, checked for a loss of your own.

    Args:
        model: The Model, after `forward` on the batch.
        output: The last layer's output.
        y: The batch's targets.

    Returns:
        The loss's `dinputs`: the gradient of the mean loss with respect to `output`.

    Raises:
        TypeError: a loss of your own has no `backward`, or set no new `dinputs`, or one that is not an array of the
            model's backend or not in the outputs' dtype.
        ValueError: its `dinputs` is not shaped like the outputs.
    """
    loss = model.loss
    if not users(loss):
        loss.backward(output, y)
        return loss.dinputs
    if not callable(getattr(loss, "backward", None)):
        raise TypeError(
            f"{named(loss)} expected a backward(dvalues, y_true) method to train with, got none; define it to set "
            f"self.dinputs to the gradient of the mean loss with respect to the outputs, shaped like them"
        )
    before = getattr(loss, "dinputs", None)
    loss.backward(output, y)
    return _gradient(model, loss, named(loss), before, output, output, "the outputs")


def _gradient(model: Any, component: Any, name: str, before: Any, dvalues: Any, like: Any, what: str) -> Any:
    """`component.dinputs` after its backward, checked to be new and shaped and typed like `like` (`what`)."""
    dinputs = getattr(component, "dinputs", None)
    shape, dtype = tuple(like.shape), dtype_name(like.dtype)
    expected = f"an array of backend {model.backend.name!r} shaped {shape} like {what}, in {dtype}"
    if dinputs is None or (dinputs is before and dinputs is not dvalues):
        got = "None" if dinputs is None else "the array it set in the call before (a stale gradient)"
        raise TypeError(
            f"{name}.backward() expected to set self.dinputs to {expected}, got {got}; assign the gradient to "
            f"self.dinputs in every call (backward's return value is not used)"
        )
    _same_backend(model, dinputs, f"{name}.backward()", "self.dinputs", expected)
    if tuple(dinputs.shape) != tuple(like.shape):
        raise ValueError(
            f"{name}.backward() expected to set self.dinputs shaped like {what} {tuple(like.shape)}, got shape "
            f"{tuple(dinputs.shape)}; give one gradient per input value (check for a transpose, a lost axis or a "
            f"sum without keepdims=True)"
        )
    _same_dtype(dinputs, like, f"{name}.backward()", "self.dinputs", what)
    return dinputs


def predictions(model: Any, output: Any, y: Any) -> Any:
    """The output layer's `predictions(output)`, checked for a layer of your own.

    Args:
        model: The Model.
        output: The last layer's output for a batch.
        y: The batch's targets.

    Returns:
        What `predictions` returned.

    Raises:
        TypeError: a layer of your own returned something other than an array of the model's backend.
        ValueError: its predictions are not one per row of `output`, or are rows of scores where nnx's accuracy
            compares them with class labels.
    """
    last = model.output_layer_activation
    predicted = last.predictions(output)
    if not users(last):
        return predicted
    name = named(last, len(model.layers) - 1)
    rows = output.shape[0]
    expected = f"one prediction per row ({rows} rows) as an array of backend {model.backend.name!r}"
    _same_backend(model, predicted, f"{name}.predictions()", "its result", expected)
    if predicted.ndim not in (1, 2) or predicted.shape[0] != rows:
        raise ValueError(
            f"{name}.predictions() expected to return {expected}, got shape {tuple(predicted.shape)} for outputs "
            f"shaped {tuple(output.shape)}; return e.g. self.xp.argmax(outputs, axis=1) for classes"
        )
    labels = y.ndim == 1 and predicted.ndim == 2 and predicted.shape[1] != 1
    if labels and not users(model.accuracy):
        raise ValueError(
            f"{name}.predictions() expected to return one class per row, shaped ({rows},), to compare with the "
            f"class labels, got shape {tuple(predicted.shape)}; return the predicted class, e.g. "
            f"self.xp.argmax(outputs, axis=1), not the scores"
        )
    return predicted


def _same_backend(model: Any, value: Any, where: str, what: str, expected: str) -> None:
    if not model.backend.owns(value):
        raise TypeError(
            f"{where} expected {what} to be {expected}, got {_checks.describe(value)}; compute it with self.xp "
            f"(not NumPy or a list) so that it stays on the model's backend"
        )


def _same_dtype(value: Any, like: Any, where: str, what: str, like_what: str) -> None:
    if value.dtype != like.dtype:
        got, wanted = dtype_name(value.dtype), dtype_name(like.dtype)
        raise TypeError(
            f"{where} expected {what} in {wanted} like {like_what}, got {got}; compute in the dtype of the arrays it "
            f"is given (a NumPy scalar such as np.float64(0.3) in the arithmetic promotes them: keep hyperparameters "
            f"as Python numbers, or cast with self.xp.astype(x, inputs.dtype))"
        )
