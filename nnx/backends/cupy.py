"""The CuPy backend: NVIDIA GPUs through CuPy, seen through array-api-compat's CuPy namespace."""

from __future__ import annotations

from nnx.backends._base import Backend, BackendUnavailableError

INSTALL_HINT = 'Install it with: pip install "nnx-nnfs[cuda12]" (CUDA 12) or "nnx-nnfs[cuda13]" (CUDA 13)'


class CupyBackend(Backend):
    """CuPy on the current CUDA device; transfers and synchronisation are explicit."""

    def __init__(self, cupy, xp, device: str):
        super().__init__("cupy", xp, device, array_type=cupy.ndarray)
        self._cupy = cupy

    def to_numpy(self, x):
        return self._cupy.asnumpy(x)

    def synchronize(self) -> None:
        self._cupy.cuda.get_current_stream().synchronize()

    def seed(self, value: int) -> None:
        self._cupy.random.seed(value)

    def dropout_mask(self, shape, keep, dtype):
        kept = self._cupy.random.random_sample(shape, dtype=dtype) < keep
        return self.xp.astype(kept, dtype) / keep


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
