"""The book's chapter-10 spiral training as one function: what `examples/spiral.py` and `nnx sweep` both run.

The loop is the book's layer-level one (Dense, ReLU, Dense, softmax + cross-entropy, SGD); metrics come back to
the host only every `every` epochs and at the last one, where they are recorded in a `History`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from nnx import _checks, backends
from nnx.activations import ReLU
from nnx.backends._host import float_name
from nnx.callbacks import History, check_finite, host_float
from nnx.datasets import spiral_data
from nnx.layers import Dense
from nnx.losses import SoftmaxCategoricalCrossentropy
from nnx.metrics import accuracy
from nnx.optimizers import SGD


@dataclass
class SpiralNetwork:
    """The chapter-10 network on one backend: Dense(2 -> hidden), ReLU, Dense(hidden -> classes), softmax."""

    dense1: Dense
    activation1: ReLU
    dense2: Dense
    loss_activation: SoftmaxCategoricalCrossentropy
    optimizer: SGD

    @property
    def backend(self):
        return self.dense1.backend

    def forward(self, X, y):
        """One forward pass on device arrays; returns the mean loss (softmax outputs in `loss_activation.output`)."""
        self.dense1.forward(X)
        self.activation1.forward(self.dense1.output)
        self.dense2.forward(self.activation1.output)
        return self.loss_activation.forward(self.dense2.output, y)

    def backward_and_update(self, y) -> None:
        """Backpropagate the last forward pass and take one SGD step."""
        self.loss_activation.backward(self.loss_activation.output, y)
        self.dense2.backward(self.loss_activation.dinputs)
        self.activation1.backward(self.dense2.dinputs)
        self.dense1.backward(self.activation1.dinputs)
        self.optimizer.pre_update_params()
        self.optimizer.update_params(self.dense1)
        self.optimizer.update_params(self.dense2)
        self.optimizer.post_update_params()

    def predict(self, X_host):
        """Class scores (logits) for host inputs, on the device: what `nnx.plot.decision_boundary` draws."""
        X = self.backend.asarray(X_host, dtype=float_name(self.dense1.dtype))
        self.dense1.forward(X)
        self.activation1.forward(self.dense1.output)
        self.dense2.forward(self.activation1.output)
        return self.dense2.output


@dataclass
class SpiralRun:
    """The outcome of `train_spiral`: the trained network, its data (host), history and timing."""

    network: SpiralNetwork
    X: object
    y: object
    history: History
    seconds: float
    final: dict = field(default_factory=dict)

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
    backend=None,
) -> SpiralNetwork:
    """The chapter-10 network with the book's initialisation (draws from NumPy's global RNG)."""
    with backends.use(backends.get(backend)):
        return SpiralNetwork(
            Dense(2, hidden, dtype=dtype),
            ReLU(),
            Dense(hidden, classes, dtype=dtype),
            SoftmaxCategoricalCrossentropy(),
            SGD(learning_rate=lr, decay=decay, momentum=momentum),
        )


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
    backend=None,
    on_record=None,
    progress=None,
) -> SpiralRun:
    """Seed, make the spiral data, build the network and train it for `epochs` (epoch 0 first, as the book does).

    Every `every` epochs and at the last one the metrics are copied to the host, checked finite (a
    `DivergenceError` otherwise), recorded and passed to ``on_record(epoch, values)``. `progress`, an
    `nnx.callbacks.ProgressBar`, advances by one per epoch.
    """
    for name, value in (("epochs", epochs), ("every", every), ("hidden", hidden), ("samples", samples)):
        _checks.positive_int(value, name, "train_spiral")
    _checks.positive_int(classes, "classes", "train_spiral")
    backend = backends.get(backend)
    backends.seed(backends.checked_seed(seed, "train_spiral seed"))
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


def _loop(network: SpiralNetwork, X, y, epochs: int, every: int, history: History, on_record, progress) -> None:
    if progress is not None:
        progress.start(epochs, unit="epoch", description="spiral")
    for epoch in range(epochs):
        loss = network.forward(X, y)
        if epoch % every == 0 or epoch == epochs - 1:
            values = _metrics(network, loss, y, epoch)
            history.record(epoch, **values)
            if on_record is not None:
                on_record(epoch, values)
            if progress is not None:
                progress.show(values)
        network.backward_and_update(y)
        if progress is not None:
            progress.advance(1)
    if progress is not None:
        progress.close()


def _metrics(network: SpiralNetwork, loss, y, epoch: int) -> dict:
    """The host copies of accuracy and loss, after a check that the loss and the parameters are finite."""
    backend = network.backend
    check_finite(loss, [network.dense1, network.dense2], epoch=epoch)
    acc = accuracy(network.loss_activation.output, y)
    return {
        "accuracy": host_float(backend, acc),
        "loss": host_float(backend, loss),
        "lr": network.optimizer.current_learning_rate,
    }
