"""Which class a saved kind names, among those this program defines (never by importing a module a file names).

A bare kind ('Dense') is always nnx's own class. A user class is saved as `module.QualName`; one defined in a script
or a notebook as '__main__.QualName', which a program that imports the class from a module can load too. Loading
may be given the classes outright with `components=` (as Keras' `custom_objects`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeAlias

from nnx import _checks
from nnx._component import MAIN, Component, classes_named, component_class, defined_by_nnx

Components: TypeAlias = "Mapping[str, type[Component]] | Iterable[type[Component]] | None"
Lookup: TypeAlias = Callable[[str], "type[Component] | None"]  # a saved kind -> its class, or None


def named_components(components: Components) -> dict[str, type[Component]]:
    """`components=` checked, as {name: class}: a list names each class by its qualified name ('LeakyReLU').

    Raises:
        TypeError: if it is not a list of nnx Component subclasses or a dict from names to them.
    """
    if components is None:
        return {}
    if isinstance(components, (str, bytes)) or not isinstance(components, Iterable):
        raise TypeError(
            f"components= expected a list of classes or a dict {{saved name: class}}, got "
            f"{_checks.describe(components)}; pass e.g. components=[LeakyReLU]"
        )
    if isinstance(components, Mapping):
        named = dict(components)
    else:
        named = {getattr(cls, "__qualname__", repr(cls)): cls for cls in components}
    for name, cls in named.items():
        if not (isinstance(name, str) and isinstance(cls, type) and issubclass(cls, Component)):
            raise TypeError(
                f"components= expected nnx Component subclasses (the classes of your layers, losses or optimizers), "
                f"got {cls!r} for {name!r}; pass the classes themselves, e.g. components=[LeakyReLU]"
            )
    return named


def lookup(components: Components = None, *, exact_first: bool = False) -> Lookup:
    """How a load finds the class of each saved kind (see `find_class`).

    Args:
        components: What `components=` was given: classes, or {saved kind or class name: class}, or None.
        exact_first: Whether the class registered under a '__main__.X' kind wins over other classes named X (a
            copy or a pickle within one program), rather than the kind being ambiguous.

    Returns:
        A function from a saved kind to its class (or None); it raises ValueError when several classes fit.
    """
    named = named_components(components)
    return lambda kind: find_class(kind, named, exact_first=exact_first)


def find_class(
    kind: str, components: Mapping[str, type[Component]], *, exact_first: bool = False
) -> type[Component] | None:
    """The class a saved kind names: nnx's own for a bare name; else a class in `components` whose name the kind
    equals or ends with ('.' + name); else the class registered under it; and for '__main__.X', the one class named
    X that this program defines.

    Raises:
        ValueError: if several classes fit, listing them.
    """
    registered = component_class(kind)
    if registered is not None and defined_by_nnx(registered):
        return registered
    given = [cls for name, cls in components.items() if kind == name or kind.endswith("." + name)]
    if given:
        return _only(kind, given, "components= gives")
    if registered is not None and (exact_first or not is_main_kind(kind)):
        return registered
    found = classes_named(kind.removeprefix(MAIN + ".")) if is_main_kind(kind) else []
    return _only(kind, found, "this program defines") if found else None


def _only(kind: str, classes: list[type[Component]], where: str) -> type[Component]:
    distinct = list(dict.fromkeys(classes))
    if len(distinct) == 1:
        return distinct[0]
    listed = ", ".join(f"{cls.__module__}.{cls.__qualname__}" for cls in distinct)
    raise ValueError(
        f"it could be any of the {len(distinct)} classes {where} ({listed}); say which with components=, e.g. "
        f"nnx.load(path, components=[{distinct[0].__qualname__}]) with the class you mean imported"
    )


def is_main_kind(kind: str) -> bool:
    """Whether a saved kind names a class of the script or notebook that saved it ('__main__.LeakyReLU')."""
    return kind.startswith(MAIN + ".")


def where_to_find(kind: str) -> str:
    """What to do when this program defines no class for a saved kind."""
    name = kind.rsplit(".", 1)[-1]
    if is_main_kind(kind):
        return (
            f"it was defined in the script or notebook that saved the file: define or import the class "
            f"{kind.removeprefix(MAIN + '.')} before loading, or pass components=[{name}]"
        )
    return f"import the module that defines it before loading, or pass components=[{name}]"


def matches_kind(cls: type, kind: str) -> bool:
    """Whether a saved kind can name `cls`: its own kind, or a script's '__main__' class of the same name."""
    if not (isinstance(cls, type) and issubclass(cls, Component)):
        return cls.__name__ == kind
    if cls.kind() == kind:
        return True
    return is_main_kind(kind) and not defined_by_nnx(cls) and cls.__qualname__ == kind.removeprefix(MAIN + ".")
