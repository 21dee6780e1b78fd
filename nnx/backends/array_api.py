"""The generic backend: any array namespace array-api-compat recognises, on that library's default device.

JAX, PyTorch and modules without a backend of their own (``nnx.backends.get(dask.array)``) all use it.
"""

from __future__ import annotations

import numpy as np

from nnx.backends._base import Backend

HOST_DEVICE = "cpu"


class ArrayApiBackend(Backend):
    """Array API namespace `xp` on its default device; host copies go through DLPack, else through the CPU."""

    def __init__(self, name: str, xp, device: str | None = None):
        import array_api_compat

        sample = xp.asarray(0)
        self._compat = array_api_compat
        home = array_api_compat.device(sample)
        description = device or f"{home} ({name})"
        super().__init__(name, xp, description, array_type=type(sample), array_device=home)
        self.copy_host = True  # never a view of host memory that its owner may change later

    def to_numpy(self, x):
        try:
            host = np.from_dlpack(x)
        except (AttributeError, BufferError, RuntimeError, TypeError, ValueError):
            host = np.asarray(self._on_host(x))
        return np.array(host, copy=True, order="C")

    def _on_host(self, x):
        """`x` moved to the CPU, where a library that can (PyTorch, CuPy, dask) lets NumPy read it."""
        try:
            return self._compat.to_device(x, HOST_DEVICE)
        except (TypeError, ValueError, RuntimeError):
            return x

    def owns(self, x) -> bool:
        return isinstance(x, self.array_type) and self._compat.device(x) == self.array_device


def from_namespace(name: str, module) -> ArrayApiBackend:
    """A generic backend for `module` if array-api-compat knows its arrays, else a TypeError."""
    import array_api_compat

    try:
        xp = array_api_compat.array_namespace(module.asarray(0))
    except (AttributeError, TypeError) as error:
        raise TypeError(f"module {name!r} is not an Array API namespace ({error})") from error
    return ArrayApiBackend(name, xp)
