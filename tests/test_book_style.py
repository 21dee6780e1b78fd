"""Code written the book's way runs on nnx: `nnfs.init()` patching NumPy, then `from nnx.nnfs import *`.

Each script runs in its own process (nnfs.init() patches NumPy globally) and is checked against the same
training written out in plain NumPy here.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

BOOK_STYLE_LOOP = """
import numpy as np
import nnfs
from nnfs.datasets import spiral_data
from nnx.nnfs import *

nnfs.init()
X, y = spiral_data(samples=100, classes=3)
dense1 = Layer_Dense(2, 64, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4)
activation1 = Activation_ReLU()
dropout1 = Layer_Dropout(0.1)
dense2 = Layer_Dense(64, 3)
loss_activation = Activation_Softmax_Loss_CategoricalCrossentropy()
optimizer = Optimizer_Adam(learning_rate=0.05, decay=5e-5)
for epoch in range(EPOCHS):
    dense1.forward(X)
    activation1.forward(dense1.output)
    dropout1.forward(activation1.output)
    dense2.forward(dropout1.output)
    data_loss = loss_activation.forward(dense2.output, y)
    regularization_loss = (loss_activation.loss.regularization_loss(dense1)
                           + loss_activation.loss.regularization_loss(dense2))
    loss = data_loss + regularization_loss
    accuracy = np.mean(np.argmax(loss_activation.output, axis=1) == y)
    loss_activation.backward(loss_activation.output, y)
    dense2.backward(loss_activation.dinputs)
    dropout1.backward(dense2.dinputs)
    activation1.backward(dropout1.dinputs)
    dense1.backward(activation1.dinputs)
    optimizer.pre_update_params()
    optimizer.update_params(dense1)
    optimizer.update_params(dense2)
    optimizer.post_update_params()
print(f'epoch: {epoch}, acc: {accuracy:.3f}, loss: {loss:.3f} (data_loss: {data_loss:.3f}, '
      f'reg_loss: {regularization_loss:.3f}), lr: {optimizer.current_learning_rate}')
"""

BOOK_STYLE_MODEL = """
import nnfs
from nnfs.datasets import spiral_data
from nnx.nnfs import *

nnfs.init()
X, y = spiral_data(samples=100, classes=2)
X_test, y_test = spiral_data(samples=100, classes=2)
y, y_test = y.reshape(-1, 1), y_test.reshape(-1, 1)
model = Model()
model.add(Layer_Dense(2, 64, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4))
model.add(Activation_ReLU())
model.add(Layer_Dense(64, 1))
model.add(Activation_Sigmoid())
model.set(loss=Loss_BinaryCrossentropy(), optimizer=Optimizer_Adam(decay=5e-7),
          accuracy=Accuracy_Categorical(binary=True))
model.finalize()
model.train(X, y, validation_data=(X_test, y_test), epochs=300, print_every=100)
"""


def run_script(source: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def plain_numpy_run(epochs: int) -> tuple[float, float]:
    """The same dropout + L2 + Adam training, written out in plain NumPy (float32, book formulas)."""
    from nnx.datasets import spiral_data

    np.random.seed(0)
    X, y = spiral_data(samples=100, classes=3)
    X = X.astype(np.float32)
    params = {
        "w1": (0.01 * np.random.standard_normal((2, 64)).astype(np.float32)).astype(np.float32),
        "b1": np.zeros((1, 64), np.float32),
        "w2": (0.01 * np.random.standard_normal((64, 3)).astype(np.float32)).astype(np.float32),
        "b2": np.zeros((1, 3), np.float32),
    }
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(v) for k, v in params.items()}
    one_hot = np.eye(3, dtype=np.float32)[y]
    for t in range(epochs):
        h = X @ params["w1"] + params["b1"]
        r = np.maximum(h, 0)
        mask = (np.random.binomial(1, 0.9, size=r.shape).astype(np.float32) / np.float32(0.9)).astype(np.float32)
        d = r * mask
        z = d @ params["w2"] + params["b2"]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        s = e / e.sum(axis=1, keepdims=True)
        data_loss = -np.mean(np.log(np.clip(np.sum(s * one_hot, axis=1), 1e-7, 1 - 1e-7)))
        reg = 5e-4 * (np.sum(params["w1"] ** 2) + np.sum(params["b1"] ** 2))
        dz = (s - one_hot) / len(X)
        grads = {"w2": d.T @ dz, "b2": dz.sum(axis=0, keepdims=True)}
        dh = (dz @ params["w2"].T) * mask * (h > 0)
        grads["w1"] = X.T @ dh + 2 * 5e-4 * params["w1"]
        grads["b1"] = dh.sum(axis=0, keepdims=True) + 2 * 5e-4 * params["b1"]
        lr = 0.05 * (1.0 / (1.0 + 5e-5 * t))
        for k, g in grads.items():
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g**2
            step = lr * (m[k] / (1 - 0.9 ** (t + 1))) / (np.sqrt(v[k] / (1 - 0.999 ** (t + 1))) + 1e-7)
            params[k] = (params[k] - step).astype(np.float32)
    return float(data_loss + reg), float(reg)


def test_book_style_loop_matches_plain_numpy():
    epochs = 50  # float32 rounding (nnfs.init patches np.dot) is chaotic: later epochs drift apart
    [line] = run_script(BOOK_STYLE_LOOP.replace("EPOCHS", str(epochs)))
    assert line.startswith(f"epoch: {epochs - 1}, acc: ")
    loss = float(line.split("loss: ")[1].split(" ")[0])
    reg = float(line.split("reg_loss: ")[1].split(")")[0])
    expected_loss, expected_reg = plain_numpy_run(epochs)
    assert loss == pytest.approx(expected_loss, abs=2e-3)
    assert reg == pytest.approx(expected_reg, abs=2e-3)
    assert line.endswith(f"lr: {0.05 * (1.0 / (1.0 + 5e-5 * (epochs - 1)))}")


def test_book_style_model_prints_the_chapter_18_lines():
    lines = run_script(BOOK_STYLE_MODEL)
    assert [line.split(",")[0] for line in lines] == ["epoch: 100", "epoch: 200", "epoch: 300", "validation"]
    assert lines[-1].startswith("validation, acc: 0.")
    assert " (data_loss: " in lines[0] and "), lr: 0.000999" in lines[0]


def test_book_names_map_to_nnx():
    import nnx
    from nnx import nnfs as book

    assert book.Layer_Dense is nnx.Dense
    assert book.Activation_Softmax_Loss_CategoricalCrossentropy is nnx.SoftmaxCategoricalCrossentropy
    assert book.Optimizer_Adam is nnx.Adam
    assert book.Accuracy_Categorical is nnx.metrics.Categorical
    assert book.Model is nnx.Model
    assert all(hasattr(book, name) for name in book.__all__)
