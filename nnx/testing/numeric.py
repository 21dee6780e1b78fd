"""The kit's host-side arithmetic: central finite differences in float64, comparisons that say where two arrays
differ, seeded random inputs, and the RNG kept as it was around every check."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from nnx import backends
from nnx.backends import Backend
from nnx.backends._host import dtype_name
from nnx.testing.report import CheckSkipped, Unmet

STEP = 1e-6  # the finite-difference step, in float64
GRADIENT_RTOL = 1e-6  # a gradient's allowed relative error against finite differences
GRADIENT_ATOL = 1e-9  # and absolute error, for entries near zero
FLOAT32_RTOL = 1e-5  # two backends' float32 results may differ by rounding
SAMPLES = 5  # rows of the batches the checks feed
SEED = 1234  # every check draws its data from here: a failure reproduces
BACKEND_FIX = "compute with self.xp and the Array API only (no NumPy calls, no host copies), so every backend agrees"
DTYPE_FIX = "compute in the inputs' dtype (or cast once to the parameters' dtype): use Python numbers as constants"
KINK = 1e-2  # inputs closer than this to 0 move away from it: ReLU-like kinks are not differentiable there


def rng(offset: int = 0) -> np.random.Generator:
    """The kit's own generator (NumPy's global RNG is never moved by it)."""
    return np.random.default_rng(SEED + offset)


def away_from_zero(values: np.ndarray) -> np.ndarray:
    """`values` with entries near 0 moved to +-0.5, where kinks (ReLU, L1, |x|) have no derivative."""
    near = np.abs(values) < KINK
    return np.where(near, np.where(values < 0, -0.5, 0.5), values)


def inputs(width: int, dtype: str = "float32", offset: int = 0) -> np.ndarray:
    """A (SAMPLES, width) host batch of standard normal numbers, away from zero."""
    return away_from_zero(rng(offset).standard_normal((SAMPLES, width))).astype(dtype)


def numeric_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, step: float = STEP) -> np.ndarray:
    """Central differences of the scalar function `f` at the float64 host array `x`."""
    gradient = np.zeros_like(x, dtype=np.float64)
    for index in np.ndindex(x.shape):
        shifted = np.array(x, dtype=np.float64)
        shifted[index] += step
        up = f(shifted)
        shifted[index] -= 2 * step
        gradient[index] = (up - f(shifted)) / (2 * step)
    return gradient


def gradient_problem(what: str, analytic: Any, numeric: np.ndarray) -> str | None:
    """Where an analytic gradient differs from finite differences beyond GRADIENT_RTOL, or None."""
    return difference(what, analytic, numeric, GRADIENT_RTOL, GRADIENT_ATOL, "central finite differences")


def difference(what: str, got: Any, expected: np.ndarray, rtol: float, atol: float, against: str) -> str | None:
    """A sentence saying where `got` differs from `expected` beyond rtol * scale + atol, or None when it does not."""
    got = np.asarray(got)
    if got.shape != expected.shape:
        return f"{what} has shape {got.shape}, but {against} give shape {expected.shape}"
    if got.size == 0:
        return None
    got64 = got.astype(np.float64)
    expected64 = expected.astype(np.float64)
    with np.errstate(invalid="ignore"):
        scale = np.maximum(np.abs(got64), np.abs(expected64))
        excess = np.abs(got64 - expected64) - rtol * scale
    excess = np.where(np.isnan(excess), np.inf, excess)
    if np.max(excess) <= atol:
        return None
    index = np.unravel_index(int(np.argmax(excess)), excess.shape)
    relative = abs(got64[index] - expected64[index]) / max(scale[index], 1e-300)
    place = f" at index {tuple(int(i) for i in index)}" if got.ndim else ""
    return (
        f"{what} differs from {against}{place}: {got64[index]:.8g} against "
        f"{expected64[index]:.8g} (relative error {relative:.1e}, allowed {rtol:g})"
    )


def comparison_backends(names: Sequence[str] | None) -> list[Backend]:
    """The backends to compare with NumPy: those named, or every available one; a skip when there is none."""
    chosen = [name for name in (backends.available() if names is None else names) if name != "numpy"]
    if not chosen:
        raise CheckSkipped("no backend but NumPy is available here to compare with")
    return [backends.get(name) for name in chosen]


def host(backend: Backend, value: Any) -> np.ndarray:
    """A host copy of an array of `backend` (a Python number as a 0-d array)."""
    if isinstance(value, (int, float)):
        return np.asarray(value)
    return backend.to_numpy(value)


@contextlib.contextmanager
def kept_rng() -> Iterator[None]:
    """Run a block that seeds and draws (nnx.seed, dropout masks) and put NumPy's global RNG, and each loaded
    backend's own, back as they were."""
    state = np.random.get_state()
    loaded = [backends.get(name) for name in backends.available()]
    own = [(backend, backend.rng_state()) for backend in loaded]
    try:
        yield
    finally:
        np.random.set_state(state)
        for backend, saved in own:
            if saved is not None:
                backend.set_rng_state(saved)


def seeded(value: int) -> None:
    """Seed NumPy's global RNG and each available backend's own (inside `kept_rng`), as `nnx.seed` does but without
    changing the seed that backends loaded later get: a random layer draws the same numbers each time."""
    np.random.seed(value)
    for name in backends.available():
        backends.get(name).seed(value)


def is_float(backend: Backend, array: Any) -> bool:
    """Whether `array` is a floating-point array of `backend`."""
    return hasattr(array, "dtype") and backend.xp.isdtype(array.dtype, "real floating")


def dtype_of(array: Any) -> str:
    """The canonical name of an array's dtype ('float32'), whatever its library calls it."""
    return dtype_name(array.dtype) if hasattr(array, "dtype") else type(array).__name__


def compare(expected: dict[str, np.ndarray], got: dict[str, np.ndarray], backend: str) -> None:
    """Unmet where a backend's results differ from NumPy's in names, dtypes or values (float32 rounding allowed)."""
    if sorted(got) != sorted(expected):
        raise Unmet(f"on backend {backend!r} it gives {sorted(got)}, but on NumPy {sorted(expected)}", BACKEND_FIX)
    for name, values in expected.items():
        if got[name].dtype != values.dtype:
            raise Unmet(
                f"on backend {backend!r} its {name} is {got[name].dtype}, but {values.dtype} on NumPy", BACKEND_FIX
            )
        scale = float(np.max(np.abs(values))) if values.size else 0.0
        problem = difference(
            f"its {name} on backend {backend!r}", got[name], values, FLOAT32_RTOL, FLOAT32_RTOL * scale, "NumPy's"
        )
        if problem:
            raise Unmet(problem, BACKEND_FIX)
