"""The checks every component gets for its config: `get_config()` rebuilds it with every constructor argument,
NumPy scalars in it save and copy, `copy.deepcopy` and pickle keep it, and a fresh process loads its file."""

from __future__ import annotations

import copy
import importlib.util
import inspect
import json
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

from nnx.backends import Backend
from nnx.io import save
from nnx.model import Model
from nnx.testing.models import with_head
from nnx.testing.numeric import dtype_of
from nnx.testing.report import CheckSkipped, Unmet
from nnx.testing.subject import Subject

NOT_CONFIG = {"self", "xp", "rng"}  # constructor arguments that are not part of a config: the backend, an RNG
FRESH_PROCESS_SECONDS = 120
CONFIG_FIX = "list every constructor argument in CONFIG and keep each as an attribute of the same name"
LOAD_SCRIPT = """
import importlib, json, sys
import numpy as np
path, module, role, arrays = sys.argv[1:5]
importlib.import_module(module)
import nnx
loaded = nnx.load(path, xp="numpy")[0] if role == "layer" else getattr(nnx.Model.load(path, xp="numpy"), role)
np.savez(arrays, **loaded.host_arrays())
kind = f"{type(loaded).__module__}.{type(loaded).__qualname__}"
print(json.dumps({"kind": kind, "config": loaded.saved_config(), "repr": repr(loaded)}))
"""


def constructor_arguments(cls: type) -> list[str]:
    """The arguments of `cls.__init__` that a config must keep (not the backend, an RNG or *args/**kwargs)."""
    parameters = inspect.signature(cast(Any, cls).__init__).parameters.values()
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in parameters if p.name not in NOT_CONFIG and p.kind not in variadic]


def as_json(component: Any) -> str:
    """`saved_config()` as JSON text, or Unmet when it is not JSON."""
    try:
        return json.dumps(component.saved_config(), sort_keys=True)
    except (TypeError, ValueError) as error:
        raise Unmet(
            f"its config {component.get_config()!r} cannot be written to a file ({error})",
            "keep plain Python numbers and strings as the CONFIG attributes: float(value), int(value)",
        ) from None


def config(subject: Subject) -> None:
    """from_config(get_config()) builds an equal component, and every constructor argument is in the config."""
    component = subject.build()
    cls = type(component)
    given = component.get_config()
    if not isinstance(given, dict) or not all(isinstance(key, str) for key in given):
        raise Unmet(f"get_config() returned {given!r}, not a dict of argument names", CONFIG_FIX)
    text = as_json(component)
    missing = [name for name in constructor_arguments(cls) if name not in given]
    if missing:
        raise Unmet(
            f"the constructor argument(s) {', '.join(missing)} are missing from get_config() (CONFIG = "
            f"{cls.CONFIG!r}): a saved, loaded or copied {subject.label} comes back with their defaults",
            f"add {', '.join(repr(name) for name in missing)} to CONFIG and keep each as an attribute of that name",
        )
    rebuilt = cls.from_config(json.loads(text), xp=component.backend)
    if as_json(rebuilt) != text or repr(rebuilt) != repr(component):
        raise Unmet(
            f"from_config(get_config()) builds {rebuilt!r} with config {as_json(rebuilt)}, not {subject.label} with "
            f"config {text}",
            CONFIG_FIX,
        )


def numpy_scalars(subject: Subject) -> None:
    """A config whose numbers are NumPy scalars (np.float32(0.3)) builds a component that saves and copies."""
    component = subject.build()
    given = component.get_config()
    scalars = {
        name: np.float32(value) if isinstance(value, float) else np.int64(value)
        for name, value in given.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    if not scalars:
        return
    shown = ", ".join(f"{name}=np.{type(value).__name__}({given[name]!r})" for name, value in scalars.items())
    fix = "convert them in __init__ with float(value) or int(value), as nnx's own components do"
    try:
        built = type(component).from_config({**given, **scalars}, xp=component.backend)
    except (TypeError, ValueError) as error:
        raise Unmet(f"it refuses NumPy scalars ({shown}): {error}", fix) from None
    try:
        json.dumps(built.saved_config())
        copy.deepcopy(built)
    except (TypeError, ValueError) as error:
        raise Unmet(f"built with NumPy scalars ({shown}) it cannot be saved or copied: {error}", fix) from None


def copies(subject: Subject) -> None:
    """`copy.deepcopy` and pickle give a component of the same class, config, arrays and backend."""
    component = subject.build()
    copiers: dict[str, Callable[[Any], Any]] = {
        "copy.deepcopy": copy.deepcopy,
        "pickle": lambda value: pickle.loads(pickle.dumps(value)),
    }
    for how, copier in copiers.items():
        try:
            twin = copier(component)
        except (TypeError, ValueError) as error:
            raise Unmet(f"{how} refuses it: {error}", CONFIG_FIX) from None
        problem = twin_problem(component, twin, twin.backend if hasattr(twin, "backend") else None)
        if problem:
            raise Unmet(f"{how} gives {problem}", CONFIG_FIX)


def twin_problem(original: Any, twin: Any, backend: Backend | None, arrays: dict | None = None) -> str | None:
    """What differs between a component and its copy (class, config, repr, backend, arrays), or None."""
    if type(twin) is not type(original):
        return f"a {type(twin).__qualname__} ({twin!r}), not a {type(original).__qualname__}"
    if as_json(twin) != as_json(original) or repr(twin) != repr(original):
        return f"{twin!r} with config {as_json(twin)}, not {original!r} with config {as_json(original)}"
    if backend is not original.backend:
        return f"{twin!r} on backend {getattr(backend, 'name', backend)!r}, not {original.backend.name!r}"
    return arrays_problem(original.host_arrays(), twin.host_arrays() if arrays is None else arrays)


def arrays_problem(expected: dict[str, Any], got: dict[str, Any]) -> str | None:
    """What differs between two {name: host array} dicts (names, dtypes, values bit for bit), or None."""
    if sorted(expected) != sorted(got):
        return f"the arrays {sorted(got)}, not {sorted(expected)}"
    for name, value in expected.items():
        other = np.asarray(got[name])
        if other.dtype != value.dtype or other.shape != value.shape or not np.array_equal(other, value):
            return f"a different {name} ({dtype_of(other)} {other.shape}, not {dtype_of(value)} {value.shape})"
    return None


def importable(module: str) -> bool:
    """Whether a fresh process can import `module` by its name (not __main__, a notebook or exec'd code)."""
    if module == "__main__" or getattr(sys.modules.get(module), "__file__", None) is None:
        return False
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def save_load(subject: Subject) -> None:
    """A file saved here loads in a fresh process that imports the component's module: same class and config."""
    component = subject.build()
    cls = type(component)
    if not importable(cls.__module__):
        raise CheckSkipped(
            f"{cls.__qualname__} is defined in {cls.__module__}, which a fresh process cannot import (a script's "
            f"__main__, a notebook or code run with exec); define it in a module to check loading it elsewhere"
        )
    with tempfile.TemporaryDirectory() as folder:
        path, arrays = Path(folder) / "component.nnx", Path(folder) / "arrays.npz"
        try:
            saved = saved_file(subject, component, path)
        except (TypeError, ValueError) as error:
            raise Unmet(f"saving it fails: {error}", CONFIG_FIX) from None
        loaded = run_fresh(subject, [str(path), cls.__module__, subject.kind, str(arrays)])
        with np.load(arrays) as stored:
            host = {name: stored[name] for name in stored.files}
    expected = f"{cls.__module__}.{cls.__qualname__}"
    fix = f"{CONFIG_FIX}; import {cls.__module__} before loading"
    if loaded["kind"] != expected:
        raise Unmet(f"a fresh process loads the file as {loaded['kind']}, not {expected}", fix)
    if json.dumps(loaded["config"], sort_keys=True) != as_json(saved) or loaded["repr"] != repr(saved):
        raise Unmet(f"a fresh process loads {loaded['repr']} with config {loaded['config']}, not {saved!r}", fix)
    problem = arrays_problem(saved.host_arrays(), host)
    if problem:
        raise Unmet(f"a fresh process loads {problem}", fix)


def saved_file(subject: Subject, component: Any, path: Path) -> Any:
    """Write `component` to `path` (a layer on its own, a loss or optimizer in a model); the component saved."""
    if subject.kind == "layer":
        save([component], path)
        return component
    role = {subject.kind: component}
    model: Model = with_head(component.backend, "softmax", "float32", **role)
    model.save(path)
    return getattr(model, subject.kind)


def run_fresh(subject: Subject, arguments: list[str]) -> dict[str, Any]:
    """Run LOAD_SCRIPT in a new Python process with this one's import path; what it printed, as JSON."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(entry for entry in sys.path if entry)}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, *arguments],
        capture_output=True,
        text=True,
        env=environment,
        timeout=FRESH_PROCESS_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise Unmet(
            f"a fresh Python process that imports {arguments[1]} cannot load the file it saved: {last}",
            f"{CONFIG_FIX}; keep the class importable from {arguments[1]}",
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def checks() -> list[tuple[str, Callable[[Subject], None], str]]:
    """The config checks every kind of component gets."""
    return [
        ("config", config, CONFIG_FIX),
        ("numpy_scalars", numpy_scalars, "convert numbers in __init__ with float(value) or int(value)"),
        ("copy", copies, CONFIG_FIX),
        ("save_load", save_load, CONFIG_FIX),
    ]
