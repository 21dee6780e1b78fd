"""nnx: the network of *Neural Networks from Scratch* on any array backend (NumPy, CuPy, Array API)."""

from nnx import backends, datasets, metrics
from nnx.activations import Linear, ReLU, Sigmoid, Softmax
from nnx.backends import seed
from nnx.layers import Dense, Dropout
from nnx.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    MeanAbsoluteError,
    MeanSquaredError,
    SoftmaxCategoricalCrossentropy,
)
from nnx.metrics import accuracy
from nnx.model import Model
from nnx.optimizers import SGD, Adagrad, Adam, RMSprop

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Dense",
    "Dropout",
    "Linear",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Model",
    "RMSprop",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "SoftmaxCategoricalCrossentropy",
    "accuracy",
    "backends",
    "datasets",
    "metrics",
    "seed",
]
