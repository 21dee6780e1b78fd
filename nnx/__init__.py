"""nnx: the network of *Neural Networks from Scratch* on any array backend (NumPy, CuPy, Array API).

The book's classes are here under short names (`nnx.Dense`, `nnx.ReLU`, `nnx.Model`, ...); `nnx.nnfs` has them
under the book's own names (`Layer_Dense`, ...). `nnx.plot`, `nnx.recipes`, `nnx.sklearn` and `nnx.sweep` load on
first use.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from nnx import backends, callbacks, datasets, metrics, training
from nnx._component import Component
from nnx._version import __version__
from nnx.activations import Linear, ReLU, Sigmoid, Softmax
from nnx.backends import BackendUnavailableError, seed
from nnx.callbacks import check_finite
from nnx.errors import CallOrderError, CheckpointError, DivergenceError
from nnx.io import load, save
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
from nnx.training import train_many

# imported on first use: matplotlib, Dask and the testing kit stay unloaded until then
LAZY_MODULES = ("plot", "recipes", "sklearn", "sweep", "testing")


def __getattr__(name: str) -> ModuleType:
    if name in LAZY_MODULES:
        return import_module(f"nnx.{name}")
    raise AttributeError(f"module 'nnx' has no attribute {name!r}")


__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "BackendUnavailableError",
    "BinaryCrossentropy",
    "CallOrderError",
    "CategoricalCrossentropy",
    "CheckpointError",
    "Component",
    "Dense",
    "DivergenceError",
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
    "__version__",
    "accuracy",
    "backends",
    "callbacks",
    "check_finite",
    "datasets",
    "load",
    "metrics",
    "save",
    "seed",
    "train_many",
    "training",
]
