"""The small models the kit trains and saves a component in: a Dense layer around it, a head, a loss, an optimizer.

Their Dense layers draw their weights from the kit's own generator, so two builds start from the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from nnx.activations import Linear, ReLU, Sigmoid, Softmax
from nnx.backends import Backend
from nnx.layers import Dense
from nnx.losses import BinaryCrossentropy, CategoricalCrossentropy, MeanSquaredError
from nnx.metrics import Categorical, Regression
from nnx.model import Model
from nnx.optimizers import SGD
from nnx.testing.numeric import SAMPLES, SEED, away_from_zero, rng

FEATURES = 2  # the models' input width
HIDDEN = 4
# (output activation, its width, loss, accuracy) of each head a kernel computes
HEADS: dict[str, tuple[Any, int, Any, Any]] = {
    "softmax": (Softmax, 3, CategoricalCrossentropy, Categorical),
    "sigmoid": (Sigmoid, 1, BinaryCrossentropy, lambda xp: Categorical(binary=True, xp=xp)),
    "linear": (Linear, 1, MeanSquaredError, Regression),
}


def dense(n_inputs: int, n_neurons: int, backend: Backend, dtype: Any, offset: int) -> Dense:
    """A Dense layer whose weights come from the kit's generator (`offset` picks which numbers)."""
    return Dense(n_inputs, n_neurons, weight_scale=0.5, xp=backend, dtype=dtype, rng=rng(100 + offset))


def model(layers: list[Any], backend: Backend, *, loss: Any, optimizer: Any = None, accuracy: Any = None) -> Model:
    """A finalized Model of `layers` with its loss, optimizer (SGD(0.1) if None) and accuracy."""
    built = Model(xp=backend)
    for layer in layers:
        built.add(layer)
    built.set(
        loss=loss,
        optimizer=optimizer if optimizer is not None else SGD(0.1, xp=backend),
        accuracy=accuracy if accuracy is not None else Categorical(xp=backend),
    )
    built.finalize()
    return built


def around_layer(layer: Any, backend: Backend, width: int, out_width: int, dtype: Any) -> Model:
    """Dense(2 -> width), `layer` (width -> out_width), Dense(out_width -> 3), Softmax, with cross-entropy."""
    body = [
        dense(FEATURES, width, backend, dtype, 0),
        layer,
        dense(out_width, 3, backend, dtype, 1),
        Softmax(xp=backend),
    ]
    return model(body, backend, loss=CategoricalCrossentropy(xp=backend))


def with_head(
    backend: Backend, head: str, dtype: Any, *, activation: Any = None, loss: Any = None, optimizer: Any = None
) -> Model:
    """Dense(2 -> 4), ReLU, Dense(4 -> outputs) and the head's activation, loss and accuracy (or those given)."""
    make_activation, outputs, make_loss, make_accuracy = HEADS[head]
    layers = [
        dense(FEATURES, HIDDEN, backend, dtype, 0),
        ReLU(xp=backend),
        dense(HIDDEN, outputs, backend, dtype, 1),
        activation if activation is not None else make_activation(xp=backend),
    ]
    loss = loss if loss is not None else make_loss(xp=backend)
    return model(layers, backend, loss=loss, optimizer=optimizer, accuracy=make_accuracy(xp=backend))


def data(backend: Backend, head: str, dtype: str, samples: int = SAMPLES * 3) -> tuple[Any, Any]:
    """(X, y) on `backend` for a model of `head`: class labels, 0/1 targets or values."""
    generator = np.random.default_rng(SEED + 7)
    X = away_from_zero(generator.standard_normal((samples, FEATURES))).astype(dtype)
    if head == "softmax":
        y = backend.asarray(generator.integers(0, 3, size=samples), dtype=backend.int_dtype)
    elif head == "sigmoid":
        y = backend.asarray(generator.integers(0, 2, size=(samples, 1)).astype(dtype))
    else:
        y = backend.asarray(generator.standard_normal((samples, 1)).astype(dtype))
    return backend.asarray(X), y


def parameters(built: Model) -> Iterator[tuple[str, Any]]:
    """(name, array) of every parameter of a model's trainable layers."""
    for index, layer in enumerate(built.trainable_layers):
        yield f"layer {index} weights", layer.weights
        yield f"layer {index} biases", layer.biases
