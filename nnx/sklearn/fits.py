"""What an estimator's `fit` trains: the network its parameters describe (or the user's own), the data, the seeds,
and the early stopping; `train_fits` trains one fit alone or several that share their data as one `train_many`
stack, so that a search's stacked fits are the same computation as each estimator's own."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

from nnx.activations import Linear, ReLU, Sigmoid, Softmax
from nnx.backends import _host
from nnx.callbacks.history import History
from nnx.layers import Dense, Dropout
from nnx.losses import BinaryCrossentropy, CategoricalCrossentropy, MeanAbsoluteError, MeanSquaredError
from nnx.metrics import Categorical, Regression
from nnx.model import Model
from nnx.optimizers import SGD, Adagrad, Adam, RMSprop
from nnx.training import plan_stack, train_many
from nnx.training.stack_stops import StopHook

ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "linear": Linear}
OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam}
LOSSES = {"mse": MeanSquaredError, "mae": MeanAbsoluteError}  # a regressor's; a classifier's is cross-entropy
SEED_RANGE = 2**31  # seeds drawn from `random_state`; a fit uses a few above its own
FIT_LOCK = threading.RLock()  # fits seed NumPy's global RNG for the book's weights: one at a time per process


@dataclass
class Fit:
    """One estimator's training: the model, the data (the validation part split off for early stopping), and
    what the run needs. Fits with equal `shared()` and one structure can train as one stack."""

    model: Model
    X: Any
    y: Any
    validation: tuple[Any, Any] | None
    epochs: int
    batch_size: int | None
    shuffle: bool
    seeds: tuple[int, int]  # (dropout, shuffling)
    patience: tuple[int, float] | None  # (n_iter_no_change, tol) with early stopping
    verbose: int
    data_key: tuple = ()  # what made the data: equal keys, equal arrays (the split of one training set)

    def shared(self) -> tuple:
        """What every fit of one stack must share: data, epochs, batching, shuffling order and early stopping."""
        return (self.data_key, self.epochs, self.batch_size, self.shuffle, self.seeds[1], self.patience)


def fit_seeds(random_state: Any, trained: int) -> tuple[int, int, int]:
    """(weights, dropout, shuffling) seeds of a fit: from `random_state` (an int, a RandomState, or None for
    NumPy's global RNG, drawn once per fit) and the epochs the model has trained (a continued fit goes on)."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        base = int(random_state) % SEED_RANGE
    else:
        base = int(check_random_state(random_state).randint(0, SEED_RANGE))
    weights, dropout, order = np.random.default_rng([base, trained]).integers(0, SEED_RANGE, size=3)
    return int(weights), int(dropout), int(order)


def built(make: Callable[[], Model], seed: int) -> Model:
    """The model `make` builds with NumPy's global RNG seeded `seed` (the book's weights), the RNG left as it was."""
    with FIT_LOCK, _host.numpy_rng_kept():
        _host.seed_host(seed)
        return make()


@dataclass(frozen=True)
class Network:
    """The layers, head and optimizer an estimator's parameters describe."""

    hidden: tuple[int, ...]
    activation: str
    output: str  # "softmax", "sigmoid" or "linear"
    loss: str
    optimizer: str
    learning_rate: float
    decay: float
    momentum: float
    l1: float
    l2: float
    dropout: float
    dtype: str | None  # None: the data's
    backend: Any

    def model(self, n_features: int, n_outputs: int) -> Model:
        """A finalized Model: Dense layers of `hidden` widths with the activation (and dropout), then the head."""
        model = Model(xp=self.backend)
        width = n_features
        for size in self.hidden:
            model.add(Dense(width, size, self.l1, self.l2, xp=self.backend, dtype=self.dtype))
            model.add(ACTIVATIONS[self.activation](xp=self.backend))
            if self.dropout:
                model.add(Dropout(self.dropout, xp=self.backend))
            width = size
        model.add(Dense(width, n_outputs, self.l1, self.l2, xp=self.backend, dtype=self.dtype))
        model.add({"softmax": Softmax, "sigmoid": Sigmoid, "linear": Linear}[self.output](xp=self.backend))
        return self.completed(model)

    def completed(self, model: Model) -> Model:
        """`model` with the parts it lacks (loss, optimizer, accuracy) set from the parameters, finalized."""
        parts = {}
        backend = model.backend  # a model of your own may be on its own backend
        if model.loss is None:
            parts["loss"] = self._loss(backend)
        if model.optimizer is None:
            parts["optimizer"] = self._optimizer(backend)
        if model.accuracy is None:
            parts["accuracy"] = self._accuracy(backend)
        if parts:
            model.set(**parts)
        if not model.finalized:
            model.finalize()
        return model

    def _accuracy(self, backend: Any) -> Any:
        if self.output == "linear":
            return Regression(xp=backend)
        return Categorical(binary=self.output == "sigmoid", xp=backend)

    def _loss(self, backend: Any) -> Any:
        if self.output == "softmax":
            return CategoricalCrossentropy(xp=backend)
        if self.output == "sigmoid" and self.loss == "crossentropy":
            return BinaryCrossentropy(xp=backend)
        return LOSSES[self.loss](xp=backend)

    def _optimizer(self, backend: Any) -> Any:
        kind = OPTIMIZERS[self.optimizer]
        if kind is SGD:
            return SGD(self.learning_rate, self.decay, self.momentum, xp=backend)
        return kind(self.learning_rate, self.decay, xp=backend)


HEADS = {"softmax": Softmax, "sigmoid": Sigmoid}


def check_own_model(model: Model, owner: str, expected: tuple) -> None:
    """A ValueError unless the user's model takes `n_features` inputs, gives `n_outputs` outputs through the head
    `output` names, and (when `dtype` is given) computes in it; `owner` names the call."""
    n_features, n_outputs, output, dtype = expected
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    if not dense:
        raise ValueError(
            f"{owner} returned a model without Dense layers; add your layers, e.g. Dense({n_features}, 64)"
        )
    first, last = dense[0], dense[-1]
    if first.n_inputs != n_features:
        raise ValueError(f"{owner}: the first Dense layer takes {first.n_inputs} inputs; make it {n_features}")
    if last.n_neurons != n_outputs:
        raise ValueError(
            f"{owner}: the last Dense layer has {last.n_neurons} neurons; make it n_outputs={n_outputs} (one per "
            f"class for a softmax head, 1 for a sigmoid one, one per target column for a regression)"
        )
    head = model.layers[-1]
    wanted = HEADS.get(output)
    if wanted is not None and not isinstance(head, wanted):
        raise ValueError(
            f"{owner}: output={output!r} needs a {wanted.__name__} last layer, got {type(head).__name__}; end the "
            f"model with nnx.{wanted.__name__}()"
        )
    if wanted is None and isinstance(head, tuple(HEADS.values())):
        raise ValueError(
            f"{owner}: output={output!r} needs a Linear last layer (or none after the last Dense), got "
            f"{type(head).__name__}; end the model with nnx.Linear(), or pass output='sigmoid' for a sigmoid head"
        )
    if dtype is not None and _host.dtype_name(first.dtype) != dtype:
        raise ValueError(
            f"{owner}: dtype={dtype!r} but the model's layers compute in {first.dtype}; build them "
            f"with dtype={dtype!r}, or leave dtype=None"
        )


def split(X: Any, y: Any, fraction: float | None, seed: int, stratify: bool) -> tuple[Any, Any, tuple | None]:
    """(X, y, validation): the `fraction` held out for early stopping (stratified for a classifier when every
    class can be), or the data whole and None."""
    if not fraction:
        return X, y, None
    labels = y if stratify and _stratifiable(y, fraction) else None
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=fraction, random_state=seed, stratify=labels)
    return X_train, y_train, (X_val, y_val)


def _stratifiable(y: Any, fraction: float) -> bool:
    counts = np.unique(y, return_counts=True)[1]
    return bool(min(counts) >= 2 and math.floor(fraction * len(y)) >= len(counts))


class Patience:
    """``train_many``'s stop_models hook for early stopping: a model stops once its validation loss has not
    improved on its best by more than `tol` for `n_iter_no_change` epochs in a row."""

    def __init__(self, n_iter_no_change: int, tol: float):
        self.n_iter_no_change, self.tol = n_iter_no_change, tol
        self.best: dict[int, float] = {}
        self.waited: dict[int, int] = {}

    def __call__(self, epoch: int, metrics: list[dict]) -> list[int]:
        stops = []
        for values in metrics:
            model, loss = values["model"], values.get("val_loss")
            if not isinstance(loss, float):
                continue
            if loss < self.best.get(model, math.inf) - self.tol:
                self.best[model], self.waited[model] = loss, 0
            else:
                self.waited[model] = self.waited.get(model, 0) + 1
                if self.waited[model] >= self.n_iter_no_change:
                    stops.append(model)
        return stops


def stackable(model: Model) -> bool:
    """Whether `train_many` can train the model (Dense, ReLU, Dropout, a book head and optimizer)."""
    try:
        plan_stack([model])
    except ValueError:
        return False
    return True


def train_fits(fits: list[Fit], *, on_divergence: str = "raise") -> list[History]:
    """Train fits of one structure that share `Fit.shared()`: as one stack (a single fit: a stack of one), or, for
    a model `train_many` cannot run, alone with `Model.train`. Each model draws its dropout masks from its own
    seed, and the shuffling order comes from the first fit's seed, as it would alone."""
    first = fits[0]
    hook = None if first.patience is None else Patience(*first.patience)
    with FIT_LOCK, _host.numpy_rng_kept():
        _host.seed_host(first.seeds[1])  # the shuffling order is the first draw of either path
        if len(fits) == 1 and not stackable(first.model):
            return [_alone(first, hook)]
        return train_many(
            [fit.model for fit in fits],
            first.X,
            first.y,
            epochs=first.epochs,
            batch_size=first.batch_size,
            validation_data=first.validation,
            verbose=first.verbose,
            print_every=None if first.verbose == 0 else "auto",
            on_divergence=on_divergence,
            seed=[fit.seeds[0] for fit in fits],
            shuffle=first.shuffle,
            stop_models=hook,
        )


def _alone(fit: Fit, hook: Patience | None) -> History:
    return fit.model.train(
        fit.X,
        fit.y,
        epochs=fit.epochs,
        batch_size=fit.batch_size,
        shuffle=fit.shuffle,
        validation_data=fit.validation,
        verbose=fit.verbose,
        callbacks=[] if hook is None else [StopHook(hook)],
    )
