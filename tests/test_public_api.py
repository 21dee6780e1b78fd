"""The public API: every public module says what it exports in `__all__`; every public class, function and method
has a Google-style docstring whose `Args:` section names each argument, a `Returns:` section when it returns
something, and type hints; and the reference pages in docs/reference/ document every public callable."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import warnings
from pathlib import Path

import pytest

PUBLIC_MODULES = [
    "nnx",
    "nnx.activations",
    "nnx.backends",
    "nnx.callbacks",
    "nnx.datasets",
    "nnx.errors",
    "nnx.io",
    "nnx.layers",
    "nnx.losses",
    "nnx.metrics",
    "nnx.nnfs",
    "nnx.optimizers",
    "nnx.plot",
    "nnx.recipes",
    "nnx.sklearn",
    "nnx.sweep",
    "nnx.testing",
    "nnx.training",
]
REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference"
SECTION = re.compile(r"^(\s*)(Args|Arguments|Attributes|Returns|Yields|Raises|Examples?|Notes?|Warns?|See Also):\s*$")
ENTRY = re.compile(r"^\s*(\*{0,2}\w+)\s*(\([^)]*\))?\s*:")
NOTHING_RETURNED = (None, type(None), "None")


def _module(name: str):
    if name == "nnx.plot":
        pytest.importorskip("matplotlib")
    if name == "nnx.sklearn":
        pytest.importorskip("sklearn")
    return importlib.import_module(name)


def public_objects() -> dict[str, object]:
    """Every public class and function, by the first public name that exports it (`module.Name`)."""
    found: dict[int, tuple[str, object]] = {}
    for module_name in PUBLIC_MODULES:
        module = _module(module_name)
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if (inspect.isclass(value) or inspect.isfunction(value)) and id(value) not in found:
                found[id(value)] = (f"{module_name}.{name}", value)
    return dict(found.values())


def sections(docstring: str) -> dict[str, list[str]]:
    """A Google-style docstring's sections: each header's entry names (`Args:` -> ["x", "*args"])."""
    result: dict[str, list[str]] = {}
    current, indent = None, 0
    for line in docstring.splitlines():
        header = SECTION.match(line)
        if header:
            current, indent = header.group(2), len(header.group(1))
            result.setdefault(current, [])
            continue
        if current is None or not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if depth <= indent:
            current = None
            continue
        entry = ENTRY.match(line)
        if entry and depth <= indent + 4:
            result[current].append(entry.group(1).lstrip("*"))
    return result


def arguments(function) -> list[inspect.Parameter]:
    """The arguments a caller passes (no self or cls)."""
    parameters = list(inspect.signature(function).parameters.values())
    return [p for p in parameters if p.name not in ("self", "cls")]


def own_methods(cls) -> dict[str, object]:
    """Public methods and properties that `cls` or an nnx base class defines (inherited ones from outside nnx aside)."""
    result: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("nnx"):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if inspect.isfunction(value) or isinstance(value, property):
                result[name] = value
    return result


def problems_of_function(label: str, function, docstring: str | None, *, init: bool = False) -> list[str]:
    """What is missing from a function's docstring and hints."""
    if not docstring or not docstring.strip():
        return [f"{label}: no docstring"]
    found = sections(inspect.cleandoc(docstring))
    listed = set(found.get("Args", [])) | set(found.get("Arguments", [])) | set(found.get("Attributes", []))
    problems = []
    for parameter in arguments(function):
        if parameter.name not in listed:
            problems.append(f"{label}: argument {parameter.name!r} missing from Args:")
        if parameter.annotation is inspect.Parameter.empty:
            problems.append(f"{label}: argument {parameter.name!r} has no type hint")
    if not init:
        returned = inspect.signature(function).return_annotation
        if returned is inspect.Signature.empty:
            problems.append(f"{label}: no return type hint")
        elif returned not in NOTHING_RETURNED and not ({"Returns", "Yields"} & found.keys()):
            problems.append(f"{label}: returns {returned} but has no Returns: section")
    return problems


def problems_of_class(label: str, cls) -> list[str]:
    if not (cls.__doc__ or "").strip():
        return [f"{label}: no class docstring"]
    problems = []
    if issubclass(cls, BaseException):
        init = None  # exceptions take a message; their extra attributes belong in Attributes:
    elif dataclasses.is_dataclass(cls) or "__init__" in vars(cls):
        init = cls.__init__
    else:
        init = next((vars(k)["__init__"] for k in cls.__mro__[1:] if "__init__" in vars(k)), None)
        init = init if init is not None and getattr(init, "__module__", "").startswith("nnx") else None
    if init is not None and arguments(init):
        docstring = cls.__doc__ + "\n" + (init.__doc__ or "" if "__init__" in vars(cls) else "")
        problems += problems_of_function(f"{label}()", init, docstring, init=True)
    for name, member in own_methods(cls).items():
        where = f"{label}.{name}"
        if isinstance(member, property):
            if not (member.__doc__ or "").strip():
                problems.append(f"{where}: property without a docstring")
            continue
        problems += problems_of_function(where, member, member.__doc__)
    return problems


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_module_declares_all(module_name):
    module = _module(module_name)
    assert (module.__doc__ or "").strip(), f"{module_name} has no module docstring"
    exported = getattr(module, "__all__", None)
    assert exported, f"{module_name} has no __all__"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ names what it does not define: {missing}"


def test_every_public_callable_has_docstring_arguments_and_hints():
    problems = []
    for label, value in public_objects().items():
        if inspect.isclass(value):
            problems += problems_of_class(label, value)
        else:
            problems += problems_of_function(label, value, value.__doc__)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


def documented_objects() -> set[int]:
    """The objects that the reference pages render, from their `::: dotted.path` lines."""
    result = set()
    for page in REFERENCE.glob("*.md"):
        for path in re.findall(r"^::: ([\w.]+)\s*$", page.read_text(), flags=re.MULTILINE):
            module_name, _, name = path.rpartition(".")
            with warnings.catch_warnings():
                warnings.simplefilter("error", DeprecationWarning)
                target = getattr(importlib.import_module(module_name), name)
            result.add(id(target))
    return result


def test_reference_documents_every_public_callable():
    documented = documented_objects()
    missing = [label for label, value in public_objects().items() if id(value) not in documented]
    assert not missing, "not in docs/reference/*.md (add a `::: module.Name` line): " + ", ".join(missing)


def test_sections_parser_reads_google_style():
    doc = """Summary.

    Args:
        x: the first.
        y (int): the second,
            over two lines.
        *rest: more.

    Returns:
        Something.
    """
    assert sections(inspect.cleandoc(doc)) == {"Args": ["x", "y", "rest"], "Returns": []}
