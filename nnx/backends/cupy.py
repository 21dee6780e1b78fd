"""The CuPy backend: NVIDIA GPUs through CuPy, seen through array-api-compat's CuPy namespace."""

from __future__ import annotations

import hashlib
import os
from typing import cast

import numpy as np

from nnx.backends._base import Backend, BackendUnavailableError

INSTALL_HINT = 'Install it with: pip install "nnx-nnfs[cuda12]" (CUDA 12) or "nnx-nnfs[cuda13]" (CUDA 13)'


class CupyBackend(Backend):
    """CuPy on the current CUDA device; transfers and synchronisation are explicit.

    Dropout masks come from the backend's own Philox generator, reseeded for mask n from (seed, n), so its
    whole state is those two integers: `rng_state()` saves them and `set_rng_state()` resumes exactly there.
    """

    def __init__(self, cupy, xp, device: str):
        super().__init__("cupy", xp, device, array_type=cupy.ndarray)
        self._cupy = cupy
        self._stream_seed = int.from_bytes(os.urandom(8), "little")
        self._draws = 0
        self._random = None

    def to_numpy(self, x):
        return self._cupy.asnumpy(x)

    def device_info(self) -> list[dict]:
        """Every CUDA device: name, memory and compute capability (the current one marked)."""
        runtime = self._cupy.cuda.runtime
        current = runtime.getDevice()
        devices = []
        for index in range(runtime.getDeviceCount()):
            properties = runtime.getDeviceProperties(index)
            name = properties["name"]
            devices.append(
                {
                    "name": f"{name.decode() if isinstance(name, bytes) else name} (cuda:{index})",
                    "memory": f"{properties['totalGlobalMem'] / 2**30:.1f} GiB",
                    "compute capability": f"{properties['major']}.{properties['minor']}",
                    **({"current": "yes"} if index == current else {}),
                }
            )
        return devices

    def synchronize(self) -> None:
        self._cupy.cuda.get_current_stream().synchronize()

    def seed(self, value: int) -> None:
        self._cupy.random.seed(np.uint64(value))  # CuPy under NumPy 2 refuses a plain int here
        self._stream_seed, self._draws = int(value), 0

    def rng_state(self) -> dict:
        return {"seed": self._stream_seed, "draws": self._draws}

    def set_rng_state(self, state) -> None:
        if state is None:
            return
        seed, draws = (state.get(key) if isinstance(state, dict) else None for key in ("seed", "draws"))
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (seed, draws)):
            raise ValueError(f"a cupy RNG state is {{'seed': int >= 0, 'draws': int >= 0}}, got {state!r}")
        self._stream_seed, self._draws = cast(int, seed), cast(int, draws)

    def dropout_mask(self, shape, keep, dtype):
        kept = self._next_generator().random_sample(shape, dtype=dtype) < keep
        return self.xp.astype(kept, dtype) / keep

    def _next_generator(self):
        """The Philox generator, seeded for the next mask: a 64-bit hash of (seed, number of masks drawn)."""
        if self._random is None:
            philox = self._cupy.cuda.curand.CURAND_RNG_PSEUDO_PHILOX4_32_10
            self._random = self._cupy.random.RandomState(np.uint64(0), method=philox)
        key = hashlib.blake2b(f"{self._stream_seed}:{self._draws}".encode(), digest_size=8).digest()
        self._random.seed(np.uint64(int.from_bytes(key, "little")))
        self._draws += 1
        return self._random


def _device_name(cupy) -> str:
    index = cupy.cuda.runtime.getDevice()
    name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    return f"{name} (cuda:{index})"


def load() -> Backend:
    try:
        import cupy
    except Exception as error:  # CuPy raises more than ImportError when its CUDA libraries are missing
        raise BackendUnavailableError(
            f"backend 'cupy' is not available: CuPy could not be imported ({error}). {INSTALL_HINT}"
        ) from error
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CUDARuntimeError, or a missing driver library
        raise BackendUnavailableError(
            f"backend 'cupy' is not available: no CUDA device found ({error}). Check the NVIDIA driver and that "
            f"the CuPy build matches its CUDA version: {INSTALL_HINT[0].lower()}{INSTALL_HINT[1:]}"
        ) from error
    if count == 0:
        raise BackendUnavailableError(f"backend 'cupy' is not available: no CUDA device found. {INSTALL_HINT}")
    import array_api_compat.cupy as xp

    return CupyBackend(cupy, xp, _device_name(cupy))
