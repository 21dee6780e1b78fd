"""The book's chapter-10 spiral training as one function: what `nnx sweep` runs, with the numbers that
`examples/spiral.py` prints for the same settings (the script writes the same loop out, as the book does).

The loop is the book's layer-level one (Dense, ReLU, Dense, softmax + cross-entropy, SGD); metrics come back to
the host only every `every` epochs and at the last one, where they are recorded in a `History`. `book_layers` and
`train_book_loop` are its two halves, the network and the loop, for any optimizer: nnx's tests and benchmarks run
the book's loop through them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nnx import _checks, backends
from nnx._component import Array, BackendSpec
from nnx.activations import ReLU
from nnx.backends import Backend
from nnx.backends._host import checked_seed, float_name
from nnx.callbacks import History, ProgressBar, check_finite
from nnx.callbacks.base import host_float
from nnx.datasets import spiral_data
from nnx.layers import Dense
from nnx.losses import SoftmaxCategoricalCrossentropy
from nnx.metrics import accuracy
from nnx.optimizers import SGD, Optimizer

__all__ = ["SpiralNetwork", "SpiralRun", "book_layers", "build_spiral", "train_book_loop", "train_spiral"]


@dataclass
class SpiralNetwork:
    """The chapter-10 network on one backend: Dense(2 -> hidden), ReLU, Dense(hidden -> classes), softmax with
    cross-entropy, and an optimizer (SGD in the book). `build_spiral` and `book_layers` make one.

    Args:
        dense1: The first layer, Dense(2, hidden).
        activation1: Its ReLU.
        dense2: The output layer, Dense(hidden, classes).
        loss_activation: The fused softmax and cross-entropy.
        optimizer: The optimizer that updates both Dense layers.
    """

    dense1: Dense
    activation1: ReLU
    dense2: Dense
    loss_activation: SoftmaxCategoricalCrossentropy
    optimizer: Optimizer

    @property
    def backend(self) -> Backend:
        """The backend the network computes on (its first layer's)."""
        return self.dense1.backend

    def forward(self, X: Array, y: Array) -> Array:
        """One forward pass; the softmax outputs are left in `loss_activation.output`.

        Args:
            X: The points, shaped (samples, 2), on the network's backend.
            y: Their integer labels, shaped (samples,).

        Returns:
            The mean loss, a 0-d array on the backend.
        """
        self.dense1.forward(X)
        self.activation1.forward(self.dense1.output)
        self.dense2.forward(self.activation1.output)
        return self.loss_activation.forward(self.dense2.output, y)

    def backward_and_update(self, y: Array) -> None:
        """Backpropagate the last forward pass and take one optimizer step.

        Args:
            y: The labels given to that `forward`.
        """
        self.loss_activation.backward(self.loss_activation.output, y)
        self.dense2.backward(self.loss_activation.dinputs)
        self.activation1.backward(self.dense2.dinputs)
        self.dense1.backward(self.activation1.dinputs)
        self.optimizer.pre_update_params()
        self.optimizer.update_params(self.dense1)
        self.optimizer.update_params(self.dense2)
        self.optimizer.post_update_params()

    def predict(self, X_host: Any) -> Array:
        """Class scores for host points: what `nnx.plot.decision_boundary` draws.

        Args:
            X_host: Points shaped (samples, 2), as a NumPy array (or host data).

        Returns:
            The second Dense layer's outputs (logits, before the softmax), shaped (samples, classes), on the
            device.
        """
        X = self.backend.asarray(X_host, dtype=float_name(self.dense1.dtype))
        self.dense1.forward(X)
        self.activation1.forward(self.dense1.output)
        self.dense2.forward(self.activation1.output)
        return self.dense2.output


@dataclass
class SpiralRun:
    """The outcome of `train_spiral`: the trained network, its data (on the host), history and timing.

    Args:
        network: The trained `SpiralNetwork`.
        X: The spiral points, a NumPy array shaped (samples * classes, 2).
        y: Their labels, shaped (samples * classes,).
        history: The recorded epochs: accuracy, loss and lr.
        seconds: The training time, in seconds.
        final: The last recorded accuracy and loss, as floats.
    """

    network: SpiralNetwork
    X: Any
    y: Any
    history: History
    seconds: float
    final: dict[str, float] = field(default_factory=dict)

    @property
    def best(self) -> tuple[int, float]:
        """(epoch, loss) of the lowest loss among the recorded epochs."""
        losses = self.history.history["loss"]
        index = min(range(len(losses)), key=losses.__getitem__)
        return self.history.epoch[index], losses[index]


def build_spiral(
    *,
    hidden: int = 64,
    classes: int = 3,
    lr: float = 1.0,
    decay: float = 0.0,
    momentum: float = 0.0,
    dtype: str = "float32",
    backend: BackendSpec = None,
) -> SpiralNetwork:
    """Build the chapter-10 network with the book's initialisation (it draws from NumPy's global RNG).

    Args:
        hidden: The neurons of the hidden layer: 64, as in the book.
        classes: The number of classes (outputs): 3.
        lr: SGD's learning rate: 1.0.
        decay: SGD's 1/t learning-rate decay; 0 keeps it constant.
        momentum: SGD's momentum, in [0, 1); 0 is plain SGD.
        dtype: The parameters' float dtype: 'float32' or 'float64'.
        backend: The backend: a name, an array module, a Backend, or None for the current one.

    Returns:
        The network.
    """
    backend = backends.get(backend)
    optimizer = SGD(learning_rate=lr, decay=decay, momentum=momentum, xp=backend)
    return book_layers(hidden=hidden, classes=classes, dtype=dtype, optimizer=optimizer)


def book_layers(
    *,
    hidden: int = 64,
    classes: int = 3,
    dtype: str = "float32",
    optimizer: Optimizer | None = None,
    backend: BackendSpec = None,
) -> SpiralNetwork:
    """The chapter-10 network as the book's loose objects, with any optimizer: Dense(2, hidden), ReLU,
    Dense(hidden, classes), softmax with cross-entropy. The weights are drawn from NumPy's global RNG, in the
    book's order (seed it with `nnx.seed` first for the book's numbers).

    Args:
        hidden: The neurons of the hidden layer: 64, as in the book.
        classes: The number of classes (outputs): 3.
        dtype: The parameters' float dtype: 'float32' or 'float64'.
        optimizer: The optimizer that updates both Dense layers; None: the book's SGD (learning rate 1.0).
        backend: The backend: a name, an array module, a Backend, or None for the optimizer's (when one is given)
            or else the current one.

    Returns:
        The network, ready for `train_book_loop`.

    Raises:
        TypeError: if `optimizer` is not an nnx Optimizer.
        ValueError: if `optimizer` computes on another backend than `backend`.
    """
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"book_layers optimizer must be an nnx Optimizer, got {type(optimizer).__name__}; "
            "pass e.g. optimizer=nnx.Adam(learning_rate=0.05)"
        )
    if optimizer is not None and backend is None:
        backend = optimizer.backend
    backend = backends.get(backend)
    if optimizer is not None and optimizer.backend is not backend:
        raise ValueError(
            f"book_layers optimizer {optimizer!r} computes on backend {optimizer.backend.name!r}, the layers on "
            f"{backend.name!r}; make the optimizer on the same backend (xp={backend.name!r})"
        )
    with backends.use(backend):
        return SpiralNetwork(
            Dense(2, hidden, dtype=dtype),
            ReLU(),
            Dense(hidden, classes, dtype=dtype),
            SoftmaxCategoricalCrossentropy(),
            SGD() if optimizer is None else optimizer,
        )


def train_book_loop(
    network: SpiralNetwork,
    X: Array,
    y: Array,
    epochs: int,
    *,
    on_step: Callable[[int, Array], object] | None = None,
) -> None:
    """The book's layer-level training loop: `epochs` full-batch steps of forward pass, loss, backward pass and
    optimizer update (`pre_update_params`, `update_params` for each Dense layer, `post_update_params`).

    Nothing is copied to the host unless `on_step` does so.

    Args:
        network: The network to train, from `book_layers` or `build_spiral`.
        X: The points, shaped (samples, 2), on the network's backend.
        y: Their integer labels, shaped (samples,), on the network's backend.
        epochs: The number of steps, a positive integer.
        on_step: None, or a function called as ``on_step(epoch, loss)`` after each forward pass and before that
            step's backward pass (the epochs count from 0; `loss` is the mean loss, a 0-d array on the backend, and
            the softmax outputs are in ``network.loss_activation.output``).

    Raises:
        TypeError: if `epochs` is not an integer.
        ValueError: if `epochs` is below 1.
    """
    _checks.positive_int(epochs, "epochs", "train_book_loop")
    for epoch in range(epochs):
        loss = network.forward(X, y)
        if on_step is not None:
            on_step(epoch, loss)
        network.backward_and_update(y)


def train_spiral(
    *,
    lr: float = 1.0,
    decay: float = 0.0,
    momentum: float = 0.0,
    epochs: int = 10001,
    hidden: int = 64,
    samples: int = 100,
    classes: int = 3,
    seed: int = 0,
    dtype: str = "float32",
    every: int = 100,
    backend: BackendSpec = None,
    on_record: Callable[[int, dict[str, float]], object] | None = None,
    progress: ProgressBar | None = None,
) -> SpiralRun:
    """Seed, make the spiral data, build the network and train it for `epochs` (epoch 0 first, as the book does).

    Every `every` epochs and at the last one the metrics are copied to the host, checked finite, recorded and
    passed to `on_record`. This is the loop of `examples/spiral.py`, and what `nnx sweep` runs.

    Args:
        lr: SGD's learning rate: 1.0, as in the book.
        decay: SGD's 1/t learning-rate decay; 0 keeps it constant.
        momentum: SGD's momentum, in [0, 1); 0 is plain SGD.
        epochs: The number of epochs (full-batch steps): 10001, as in the book.
        hidden: The neurons of the hidden layer: 64.
        samples: The points per class: 100.
        classes: The number of classes: 3.
        seed: The seed of NumPy's global RNG (`nnx.seed`), for the data and the initial weights: 0.
        dtype: The float dtype: 'float32' or 'float64'.
        every: Record the metrics every this many epochs (and at the last one): 100.
        backend: The backend: a name, an array module, a Backend, or None for the current one.
        on_record: None, or a function called as ``on_record(epoch, {"accuracy": ..., "loss": ..., "lr": ...})``
            at each record.
        progress: None, or an `nnx.callbacks.ProgressBar` that advances by one per epoch.

    Returns:
        The run: the trained network, the data, the history and the time taken.

    Raises:
        DivergenceError: if the loss or a parameter stops being finite.
    """
    for name, value in (("epochs", epochs), ("every", every), ("hidden", hidden), ("samples", samples)):
        _checks.positive_int(value, name, "train_spiral")
    _checks.positive_int(classes, "classes", "train_spiral")
    backend = backends.get(backend)
    backends.seed(checked_seed(seed, "train_spiral seed"))
    X_host, y_host = spiral_data(samples=samples, classes=classes)
    X, y = backend.asarray(X_host, dtype=dtype), backend.asarray(y_host)
    network = build_spiral(
        hidden=hidden, classes=classes, lr=lr, decay=decay, momentum=momentum, dtype=dtype, backend=backend
    )
    history = History()
    start = time.perf_counter()
    with backend.quiet_float_errors():  # too high a learning rate is reported by check_finite
        _loop(network, X, y, epochs, every, history, on_record, progress)
    backend.synchronize()
    seconds = time.perf_counter() - start
    final = {name: history.history[name][-1] for name in ("accuracy", "loss")}
    history.final = {**final, "lr": history.history["lr"][-1]}
    return SpiralRun(network, X_host, y_host, history, seconds, final)


def _loop(
    network: SpiralNetwork,
    X: Array,
    y: Array,
    epochs: int,
    every: int,
    history: History,
    on_record: Callable[[int, dict[str, float]], object] | None,
    progress: ProgressBar | None,
) -> None:
    def record(epoch: int, loss: Array) -> None:
        if epoch % every == 0 or epoch == epochs - 1:
            values = _metrics(network, loss, y, epoch)
            history.record(epoch, **values)
            if on_record is not None:
                on_record(epoch, values)
            if progress is not None:
                progress.show(values)
        if progress is not None:
            progress.advance(1)

    if progress is not None:
        progress.start(epochs, unit="epoch", description="spiral")
    train_book_loop(network, X, y, epochs, on_step=record)
    if progress is not None:
        progress.close()


def _metrics(network: SpiralNetwork, loss: Array, y: Array, epoch: int) -> dict[str, float]:
    """The host copies of accuracy and loss, after a check that the loss and the parameters are finite."""
    backend = network.backend
    check_finite(loss, [network.dense1, network.dense2], epoch=epoch)
    acc = accuracy(network.loss_activation.output, y)
    return {
        "accuracy": host_float(backend, acc),
        "loss": host_float(backend, loss),
        "lr": network.optimizer.current_learning_rate,
    }
