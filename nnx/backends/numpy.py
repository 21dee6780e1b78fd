"""The NumPy backend: the CPU, NumPy's own namespace (Array API compatible since NumPy 2)."""

from __future__ import annotations

import numpy as np

from nnx.backends._base import Backend


class NumpyBackend(Backend):
    """NumPy on the CPU; transfers are free."""

    def to_numpy(self, x):
        return np.asarray(x)


def load() -> Backend:
    return NumpyBackend("numpy", np, "CPU", array_type=np.ndarray)
