"""The backend registry: which array library and device nnx computes on.

`get`, `current` and `use` pick a backend; `seed` seeds them all. `Backend` is the interface a backend implements,
and `register` (or the ``nnx.backends`` entry-point group) adds a new one.
"""

from __future__ import annotations

import contextlib
import os
import types
from collections.abc import Callable, Iterator
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from nnx.backends._active import ACTIVE
from nnx.backends._base import Backend, BackendUnavailableError
from nnx.backends._host import checked_seed as _checked_seed
from nnx.backends._host import seed_host
from nnx.backends._moved import moved_names
from nnx.backends.array_api import from_namespace

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "available",
    "current",
    "get",
    "last_seed",
    "register",
    "registered",
    "seed",
    "use",
]

# Names that left the public API in 0.2, kept for one release: name -> the module that holds it now.
_MOVED = {"checked_seed": "nnx.backends._host", "chosen_by_use": "nnx.backends._active"}


__getattr__ = moved_names(__name__, _MOVED)


ENV_VAR = "NNX_BACKEND"
DEFAULT = "numpy"
ENTRY_POINT_GROUP = "nnx.backends"

Loader = Callable[[], Backend]

_BUILTIN = {
    "numpy": "nnx.backends.numpy",
    "cupy": "nnx.backends.cupy",
    "array_api_strict": "nnx.backends.array_api_strict",
    "jax": "nnx.backends.jax",
    "torch": "nnx.backends.torch",
}
_loaders: dict[str, Loader] = {}
_loaded: dict[str, Backend] = {}
_failures: dict[str, BackendUnavailableError] = {}
_entry_points_read = False
_last_seed: int | None = None


def _builtin_loader(module_name: str) -> Loader:
    return lambda: import_module(module_name).load()


def _read_entry_points() -> None:
    global _entry_points_read
    if _entry_points_read:
        return
    _entry_points_read = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in _loaders:
            _loaders[entry.name] = _entry_point_loader(entry)


def _entry_point_loader(entry: EntryPoint) -> Loader:
    """A loader for a plug-in backend; a plug-in that fails to import is unavailable, not an error for all."""

    def load() -> Backend:
        try:
            factory = entry.load()
        except (Exception, SystemExit) as error:
            raise BackendUnavailableError(
                f"backend {entry.name!r} is not available: its plug-in {entry.value!r} failed to import ({error}). "
                f"Reinstall the package that provides it, or uninstall it"
            ) from error
        return factory()

    return load


def _all_loaders() -> dict[str, Loader]:
    _read_entry_points()
    return _loaders


def register(name: str, loader: Callable[[], Backend], *, replace: bool = False) -> None:
    """Make a backend available under a name.

    The loader runs on the first `get(name)`, not now: a backend whose library is missing costs nothing until it
    is asked for. Installed packages can do the same through the ``nnx.backends`` entry-point group.

    Args:
        name: the name `get` and $NNX_BACKEND use, a non-empty string.
        loader: a callable without arguments that returns a `Backend`, or raises `BackendUnavailableError` with
            the reason and the fix when it cannot run here.
        replace: whether to replace a backend already registered as `name`; without it that is a ValueError.

    Raises:
        TypeError: `name` is not a non-empty string, or `loader` is not callable.
        ValueError: `name` is taken and `replace` is False.
    """
    if not isinstance(name, str) or not name.strip():
        raise TypeError(
            f"a backend's name must be a non-empty string, got {name!r}; pass e.g. register('mine', loader)"
        )
    if not callable(loader):
        raise TypeError(f"the loader for backend {name!r} must be callable, got {type(loader).__name__}")
    if name in _all_loaders() and not replace:
        raise ValueError(f"backend {name!r} is already registered; pass replace=True to override it")
    _loaders[name] = loader
    _loaded.pop(name, None)
    _failures.pop(name, None)


def registered() -> list[str]:
    """Names of every registered backend, usable or not.

    Returns:
        The built-in names (numpy, cupy, array_api_strict, jax, torch), then those of `register` and of installed
        plug-ins.
    """
    return list(_all_loaders())


def available() -> list[str]:
    """Names of the backends that can be used on this machine now.

    Each registered backend is loaded to find out (once; the result is kept), so this may import CuPy, JAX or
    PyTorch.

    Returns:
        The registered names whose backend loads, in `registered()` order.
    """
    return [name for name in registered() if _try_load(name) is not None]


def _try_load(name: str) -> Backend | None:
    try:
        return _load(name)
    except BackendUnavailableError:
        return None


def _load(name: str) -> Backend:
    if name in _loaded:
        return _loaded[name]
    if name in _failures:
        raise _failures[name]
    loaders = _all_loaders()
    if name not in loaders:
        known = ", ".join(sorted(loaders))
        raise ValueError(f"unknown backend {name!r}; registered backends are: {known}")
    try:
        backend = _checked_backend(name, loaders[name]())
    except BackendUnavailableError as error:
        _failures[name] = error
        raise
    except (Exception, SystemExit) as error:  # a broken plug-in: unavailable with its error; the others keep working
        _failures[name] = BackendUnavailableError(
            f"backend {name!r} is not available: its loader failed ({type(error).__name__}: {error}). Fix or "
            f"uninstall the package that provides it"
        )
        raise _failures[name] from error
    if _last_seed is not None:
        backend.seed(_last_seed)
    _loaded[name] = backend
    return backend


def _checked_backend(name: str, backend: object) -> Backend:
    if not isinstance(backend, Backend):
        raise BackendUnavailableError(
            f"backend {name!r} is not available: its loader returned {type(backend).__name__}, not an "
            f"nnx.backends.Backend. Fix or uninstall the package that provides it"
        )
    return backend


def get(spec: str | types.ModuleType | Backend | None = None) -> Backend:
    """The backend for a name, an array module or a Backend.

    Args:
        spec: a registered name ("numpy", "cupy", ...); an array module (``numpy``, ``cupy``, ``jax.numpy``, an
            array-api-compat namespace, or any namespace array-api-compat recognises, which gets a generic
            backend); a Backend, returned as is; or None for `current()`.

    Returns:
        The backend, loaded on first use and the same object afterwards.

    Raises:
        ValueError: `spec` names no registered backend.
        BackendUnavailableError: the backend cannot run here (its library or device is missing); the message
            says how to fix it.
        TypeError: `spec` is none of the above.
    """
    if spec is None:
        return current()
    if isinstance(spec, Backend):
        return spec
    if isinstance(spec, str):
        return _load(spec)
    if isinstance(spec, types.ModuleType):
        return _from_module(spec)
    raise TypeError(
        f"a backend is named by a string, an array module or a Backend, got {type(spec).__name__}; "
        f"try one of: {', '.join(registered())}"
    )


def _from_module(module: types.ModuleType) -> Backend:
    """The named backend of `module`'s library (jax.numpy -> jax, array_api_compat.torch -> torch), else a generic
    one for any namespace array-api-compat recognises, made once per module."""
    for backend in _loaded.values():
        if module is backend.xp:
            return backend
    name = module.__name__
    root = name.removeprefix("array_api_compat.").split(".")[0]
    if root in _all_loaders():
        return _load(root)
    if name not in _loaded:
        _loaded[name] = _generic(module)
    return _loaded[name]


def _generic(module: types.ModuleType) -> Backend:
    try:
        return from_namespace(module.__name__, module)
    except TypeError as error:
        array_api = hasattr(module, "__array_namespace_info__")
        kind = "an Array API namespace without" if array_api else "not an array module with"
        raise TypeError(
            f"module {module.__name__!r} is {kind} an nnx backend, and array-api-compat does not recognise its arrays "
            f"({error}); registered backends are {', '.join(registered())}. Pass one of those names, or register a "
            f"backend for it with nnx.backends.register(name, loader)"
        ) from None


def owner_of(x: Any) -> Backend:
    """The loaded backend whose array `x` is, else a TypeError naming what `x` is."""
    for backend in _loaded.values():
        if backend.owns(x):
            return backend
    default = _try_load(DEFAULT)  # a NumPy array before any backend was asked for
    if default is not None and default.owns(x):
        return default
    kind = f"{type(x).__module__}.{type(x).__qualname__}"
    raise TypeError(
        f"expected an array of an nnx backend ({', '.join(_loaded)}), got {kind}; convert it with "
        f"nnx.backends.get(name).asarray(x)"
    )


def current() -> Backend:
    """The backend nnx computes on when none is named.

    Returns:
        The backend of the innermost `use()` block, else the one $NNX_BACKEND names, else numpy.
    """
    active = ACTIVE.get()
    if active is not None:
        return active
    return _load(os.environ.get(ENV_VAR) or DEFAULT)


@contextlib.contextmanager
def use(spec: str | types.ModuleType | Backend) -> Iterator[Backend]:
    """Make a backend the current one inside a ``with`` block.

    Blocks nest, and the previous backend comes back on exit, errors included. The choice belongs to the thread
    (and asyncio task) that made it.

    Args:
        spec: the backend, as `get` takes it: a registered name, an array module or a Backend.

    Yields:
        The backend, as `get(spec)` returns it.
    """
    backend = get(spec)
    token = ACTIVE.set(backend)
    try:
        yield backend
    finally:
        ACTIVE.reset(token)


def seed(value: int) -> None:
    """Seed every random number nnx draws.

    That is NumPy's global RNG (weight init, the book's data, dropout masks on host-drawn backends) and each
    backend's own RNG (CuPy's masks), including backends loaded later.

    Args:
        value: an integer in [0, 2**32), as NumPy's global RNG takes.

    Raises:
        TypeError: `value` is not an integer.
        ValueError: `value` is outside [0, 2**32).
    """
    global _last_seed
    value = _checked_seed(value)
    seed_host(value)
    _last_seed = value
    for backend in _loaded.values():
        backend.seed(value)


def last_seed() -> int | None:
    """The value nnx was last seeded with (`seed`), for logging a run's settings.

    Returns:
        The last `seed` value in this process, or None when `seed` has not been called.
    """
    return _last_seed


for _name, _module in _BUILTIN.items():
    _loaders[_name] = _builtin_loader(_module)
