"""The NumPy backend: the CPU, NumPy's own namespace (Array API compatible since NumPy 2)."""

from __future__ import annotations

import numpy as np

from nnx.backends._base import Backend


class NumpyBackend(Backend):
    """NumPy on the CPU; `to_numpy` still copies, so the result never aliases a live parameter."""

    def to_numpy(self, x):
        return np.array(x, copy=True)


def load() -> Backend:
    return NumpyBackend("numpy", np, "CPU", array_type=np.ndarray)
