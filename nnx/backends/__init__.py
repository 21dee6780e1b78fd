"""The backend registry: which array library and device nnx computes on.

`get`, `current` and `use` pick a backend; `register` and the ``nnx.backends`` entry-point group add new ones.
"""

from __future__ import annotations

import contextlib
import contextvars
import numbers
import os
import types
from collections.abc import Callable, Iterator
from importlib import import_module
from importlib.metadata import entry_points

from nnx.backends._base import Backend, BackendUnavailableError
from nnx.backends._host import seed_host
from nnx.backends.array_api import from_namespace

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "available",
    "checked_seed",
    "chosen_by_use",
    "current",
    "get",
    "register",
    "registered",
    "seed",
    "use",
]

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
_active: contextvars.ContextVar[Backend | None] = contextvars.ContextVar("nnx_backend", default=None)


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


def _entry_point_loader(entry) -> Loader:
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


def register(name: str, loader: Loader, *, replace: bool = False) -> None:
    """Register `loader`, a callable returning a Backend (or raising BackendUnavailableError), as `name`."""
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
    """Names of every registered backend, usable or not."""
    return list(_all_loaders())


def available() -> list[str]:
    """Names of the backends that can be used on this machine now."""
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


def _checked_backend(name: str, backend) -> Backend:
    if not isinstance(backend, Backend):
        raise BackendUnavailableError(
            f"backend {name!r} is not available: its loader returned {type(backend).__name__}, not an "
            f"nnx.backends.Backend. Fix or uninstall the package that provides it"
        )
    return backend


def get(spec: str | types.ModuleType | Backend | None = None) -> Backend:
    """The Backend for `spec`: a registered name, an array module, a Backend, or None for `current()`."""
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


def owner_of(x) -> Backend:
    """The loaded backend whose array `x` is, else a TypeError naming what `x` is."""
    for backend in _loaded.values():
        if backend.owns(x):
            return backend
    kind = f"{type(x).__module__}.{type(x).__qualname__}"
    raise TypeError(
        f"expected an array of an nnx backend ({', '.join(_loaded)}), got {kind}; convert it with "
        f"nnx.backends.get(name).asarray(x)"
    )


def current() -> Backend:
    """The active backend: the innermost `use()`, else $NNX_BACKEND, else numpy."""
    active = _active.get()
    if active is not None:
        return active
    return _load(os.environ.get(ENV_VAR) or DEFAULT)


def chosen_by_use() -> bool:
    """Whether the current backend comes from an enclosing `use()` block (else $NNX_BACKEND or the default)."""
    return _active.get() is not None


@contextlib.contextmanager
def use(spec: str | types.ModuleType | Backend) -> Iterator[Backend]:
    """Make `spec` the current backend inside a ``with`` block; nests and restores on exit, errors included."""
    token = _active.set(get(spec))
    try:
        yield _active.get()
    finally:
        _active.reset(token)


def seed(value: int) -> None:
    """Seed NumPy's global RNG (weight init, book data, host dropout masks) and every backend's own RNG,
    including backends loaded later."""
    global _last_seed
    value = checked_seed(value)
    seed_host(value)
    _last_seed = value
    for backend in _loaded.values():
        backend.seed(value)


SEED_LIMIT = 2**32


def checked_seed(value, owner: str = "nnx.seed") -> int:
    """`value` as a seed: an integer in [0, 2**32), as NumPy's global RNG takes; else a ValueError or TypeError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner} expects an integer in [0, 2**32), got {type(value).__name__} {value!r}")
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(f"{owner} expects an integer in [0, 2**32) = [0, {SEED_LIMIT - 1}], got {value}")
    return int(value)


for _name, _module in _BUILTIN.items():
    _loaders[_name] = _builtin_loader(_module)
