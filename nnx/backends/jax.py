"""The JAX backend: ``jax.numpy`` (an Array API namespace itself) on JAX's default device.

JAX arrays are immutable: nnx's generic code never updates an array in place, so it runs here unchanged.
"""

from __future__ import annotations

from nnx.backends._base import Backend, BackendUnavailableError
from nnx.backends.array_api import ArrayApiBackend

X64_NAMES = frozenset({"float64", "int64", "uint64", "complex128"})
X64_HINT = (
    "JAX leaves 64-bit types off by default. Set the environment variable JAX_ENABLE_X64=1 (or call "
    "jax.config.update('jax_enable_x64', True)) before creating arrays, or use float32"
)


class JaxBackend(ArrayApiBackend):
    """JAX on its default device; 64-bit dtypes exist only while ``jax_enable_x64`` is on, read at each ask."""

    def __init__(self, jax):
        self._jax = jax
        super().__init__("jax", jax.numpy, f"{jax.devices()[0]} (jax {jax.__version__})")

    def has_dtype(self, name: str) -> bool:
        if name in X64_NAMES:
            return bool(self._jax.config.jax_enable_x64) and hasattr(self.xp, name)
        return super().has_dtype(name)

    def missing_dtype_hint(self, name: str) -> str:
        return X64_HINT if name in X64_NAMES else super().missing_dtype_hint(name)


def load() -> Backend:
    try:
        import jax
    except ImportError as error:
        raise BackendUnavailableError(
            f"backend 'jax' is not available: JAX is not installed ({error}). Install it with: pip install jax"
        ) from error
    return JaxBackend(jax)
