"""Test helpers: central finite differences on the host, and host copies of backend arrays."""

from __future__ import annotations

import numpy as np


def numeric_gradient(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar function `f` at `x` (a float64 host array)."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        shifted = x.copy()
        shifted[index] += eps
        up = f(shifted)
        shifted[index] -= 2 * eps
        grad[index] = (up - f(shifted)) / (2 * eps)
    return grad


def assert_gradient_close(analytic, numeric, rtol: float = 1e-6, atol: float = 1e-9) -> None:
    """Relative error of an analytic gradient against finite differences, below `rtol` (design: 1e-6)."""
    analytic = np.asarray(analytic, dtype=np.float64)
    scale = np.maximum(np.abs(analytic), np.abs(numeric))
    error = np.abs(analytic - numeric)
    worst = np.max(error - rtol * scale)
    assert worst <= atol, f"max abs error {np.max(error):.3e}, relative {np.max(error / (scale + 1e-30)):.3e}"


def spiral_classifier(backend="numpy", *, hidden: int = 16, optimizer=None):
    """A finalized Dense(2, hidden)-ReLU-Dense(hidden, 3)-Softmax model with cross-entropy on `backend`
    (Adam(0.02, decay 1e-3) unless an optimizer is given)."""
    import nnx

    with nnx.backends.use(backend):
        model = nnx.Model()
        for layer in (nnx.Dense(2, hidden), nnx.ReLU(), nnx.Dense(hidden, 3), nnx.Softmax()):
            model.add(layer)
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=optimizer or nnx.Adam(learning_rate=0.02, decay=1e-3),
            accuracy=nnx.metrics.Categorical(),
        )
        model.finalize()
    return model
