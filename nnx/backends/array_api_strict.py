"""The array_api_strict backend: a CPU stand-in for a GPU.

Every array lives on the library's non-default device, so implicit NumPy conversions and host mixing fail
exactly where they would on CuPy.
"""

from __future__ import annotations

import numpy as np

from nnx.backends._base import Backend, BackendUnavailableError

DEVICE_NAME = "device1"


class StrictBackend(Backend):
    """array_api_strict on its pretend device ``device1``; `to_numpy` goes through the CPU device."""

    def to_numpy(self, x):
        host = self.xp.asarray(x, device=self.xp.Device("CPU_DEVICE"))
        return np.array(host, copy=True, order="C")

    def owns(self, x) -> bool:
        return isinstance(x, self.array_type) and x.device == self.array_device


def load() -> Backend:
    try:
        import array_api_strict as xp
    except ImportError as error:
        raise BackendUnavailableError(
            f"backend 'array_api_strict' is not available: {error}. Install it with: pip install \"nnx-nnfs[test]\""
        ) from error
    device = xp.Device(DEVICE_NAME)
    return StrictBackend(
        "array_api_strict",
        xp,
        f"CPU (array_api_strict {DEVICE_NAME})",
        array_type=type(xp.asarray(0)),
        array_device=device,
    )
