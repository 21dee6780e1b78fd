"""Host-side NumPy helpers: the random numbers that must match the book, drawn before any transfer."""

from __future__ import annotations

import contextlib
import numbers
import os
from collections.abc import Iterator

import numpy as np

FLOAT_NAMES = ("float32", "float64")
INTEGER_NAMES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
STANDARD_NAMES = frozenset({*FLOAT_NAMES, *INTEGER_NAMES, "bool", "complex64", "complex128"})  # the Array API's
NARROWER = {"int64": "int32", "uint64": "uint32", "float64": "float32", "complex128": "complex64"}
SEED_LIMIT = 2**32  # NumPy's global RNG takes seeds in [0, 2**32)
RandomGenerator = np.random.Generator  # what draws the book's random numbers on the host, for type hints above


def is_host_data(x) -> bool:
    """Whether `x` is data NumPy reads on the host without a device transfer: lists, tuples, memoryviews and
    array-likes such as pandas objects; never another array library's array (mixing those is an error)."""
    if isinstance(x, (list, tuple, memoryview)):
        return True
    if isinstance(x, np.ndarray) or hasattr(x, "__array_namespace__") or hasattr(x, "__dlpack__"):
        return False
    return hasattr(x, "__array__") and type(x).__module__.split(".")[0] not in DEVICE_LIBRARIES


DEVICE_LIBRARIES = ("cupy", "torch", "jax", "jaxlib", "array_api_strict", "dask")


def host_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system tells it, else the machine's)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def host_array(x):
    """`x` read by NumPy on the host, in C order (a DataFrame reads as Fortran order, and the products' rounding
    would differ from the same data as a NumPy array); a ValueError when it is not rectangular."""
    return np.asarray(x, order="C")


def same_values(a, b) -> bool:
    """Whether two host arrays (anything NumPy reads) hold the same numbers, shape and dtype."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))


def quiet_float_errors():
    """A context in which NumPy does not warn about overflow or NaN: nnx's divergence checks report those."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")


def checked_seed(value: object, owner: str = "nnx.seed") -> int:
    """`value` as a seed: an integer in [0, 2**32), as NumPy's global RNG takes; else a ValueError or TypeError
    whose message starts with `owner`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner} expects an integer in [0, 2**32), got {type(value).__name__} {value!r}")
    if not 0 <= int(value) < SEED_LIMIT:
        raise ValueError(f"{owner} expects an integer in [0, 2**32) = [0, {SEED_LIMIT - 1}], got {value}")
    return int(value)


def seed_host(value: int) -> None:
    """Seed NumPy's global RNG, the one the book's data and weight init draw from."""
    np.random.seed(value)


def dtype_name(spec) -> str:
    """The canonical name ('float32', 'int64', ...) of a dtype given as a string, NumPy dtype or namespace dtype."""
    try:
        return np.dtype(spec).name
    except TypeError:
        return str(getattr(spec, "name", spec)).rsplit(".", 1)[-1]


def float_name(spec) -> str:
    """The canonical name of a float dtype ('float32' or 'float64'); anything else is a ValueError."""
    name = dtype_name(spec)
    if name not in FLOAT_NAMES:
        raise ValueError(f"dtype must be one of {', '.join(FLOAT_NAMES)}, got {spec!r}")
    return name


def is_integer_name(name: str) -> bool:
    return name in INTEGER_NAMES


def narrowed(values, name: str, backend_name: str) -> np.ndarray:
    """Host `values` as the narrower dtype `name` of a backend; integers that do not fit are a ValueError (floats
    too large become inf, which the finiteness checks report)."""
    values = np.asarray(values)
    if name in INTEGER_NAMES and values.size:
        limits = np.iinfo(name)
        if values.min() < limits.min or values.max() > limits.max:
            raise ValueError(
                f"backend {backend_name!r} has no {values.dtype} dtype, and its {name} cannot hold values from "
                f"{values.min()} to {values.max()}; rescale or relabel them on the host first"
            )
    with quiet_float_errors():
        return values.astype(name)


def scaled_normal(shape: tuple[int, ...], scale: float, dtype: str, rng=None) -> np.ndarray:
    """`scale` * standard normal numbers as the book draws them (global RNG unless `rng` is a Generator)."""
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    draws = rng.standard_normal(shape) if rng is not None else np.random.standard_normal(shape)
    typed = draws.astype(dtype)
    with quiet_float_errors():
        scaled = typed * typed.dtype.type(scale)
    if not np.isfinite(scaled).all():
        raise ValueError(f"Dense weight_scale={scale:g} overflows {dtype}; pass a smaller weight_scale such as 0.01")
    return scaled


def bernoulli_mask(shape: tuple[int, ...], keep: float, dtype: str, stream=None) -> np.ndarray:
    """Inverted-dropout mask from NumPy's global RNG (or `stream`, a RandomState): 1/keep where kept, 0 elsewhere,
    in `dtype`."""
    kept = (np.random if stream is None else stream).binomial(1, keep, size=shape).astype(dtype)
    return kept / kept.dtype.type(keep)


def seeded_streams(seeds: list[int]) -> list:
    """One NumPy RandomState stream per seed: stream i draws what NumPy's global RNG draws after
    ``np.random.seed(seeds[i])`` (``nnx.seed``)."""
    return [np.random.RandomState(seed) for seed in seeds]


def stacked(arrays: list, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """`arrays` (each of `shape`) stacked along a new leading axis."""
    return np.stack(arrays) if arrays else np.zeros((0, *shape), dtype=dtype)


def per_model_columns(blocks: list) -> list[list[list[float]]]:
    """Epoch blocks of a stack's host rows ((M, 5) arrays of accuracy, data loss, regularization loss, learning rate
    and finite probe, one per epoch, the same M) as each model's columns of Python floats, in one pass: result[m][c]
    is column c of model m over the epochs, the last column the loss (data loss + regularization loss) instead of
    the probe."""
    stacked = np.stack(blocks, axis=2)
    stacked[:, 4] = stacked[:, 1] + stacked[:, 2]
    return stacked.tolist()


def drawn_seed(limit: int) -> int:
    """A seed in [0, limit) drawn from NumPy's global RNG (so that ``nnx.seed`` makes it reproducible)."""
    return int(np.random.randint(0, limit))


def numpy_rng_state() -> tuple[np.ndarray, dict]:
    """NumPy's global MT19937 state: its 624 uint32 keys, and pos/has_gauss/cached_gaussian as plain numbers."""
    algorithm, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    if algorithm != "MT19937":
        raise ValueError(f"NumPy's global RNG is {algorithm}, not MT19937; its state cannot be saved")
    numbers = {"pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}
    return np.array(keys, dtype=np.uint32), numbers


def set_numpy_rng_state(keys, numbers: dict) -> None:
    """Restore NumPy's global RNG from what `numpy_rng_state` returned."""
    state = (
        "MT19937",
        np.asarray(keys, dtype=np.uint32),
        int(numbers["pos"]),
        int(numbers["has_gauss"]),
        float(numbers["cached_gaussian"]),
    )
    np.random.set_state(state)


@contextlib.contextmanager
def numpy_rng_kept() -> Iterator[None]:
    """Run a block (building layers to load into, say) without moving NumPy's global RNG on."""
    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)
