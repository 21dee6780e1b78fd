"""The package's layout: imports run one way, downward, with no circle and no import inside a function, and no
module grows past its size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nnx"
MAX_LINES = 500
MAX_MODEL_LINES = 400  # the Model's public methods carry their whole docstrings (train: 13 arguments)

# From the bottom up: a module may import its own level and the levels below it, never one above.
LEVELS = [
    ("nnx.backends",),
    ("nnx._version", "nnx.errors", "nnx._checks", "nnx._paths", "nnx._notebook"),
    ("nnx._component",),
    (
        "nnx.activations",
        "nnx.layers",
        "nnx.losses",
        "nnx.optimizers",
        "nnx.optimizer_state",
        "nnx.metrics",
        "nnx.datasets",
    ),
    ("nnx.callbacks",),
    ("nnx.io",),
    ("nnx.training",),
    ("nnx.model",),  # the Model and its parts (checks, evaluation, summary): nothing below imports them
    ("nnx.plot", "nnx.recipes", "nnx.nnfs", "nnx.testing"),
    ("nnx.sweep", "nnx.sklearn"),
    ("nnx.cli", "nnx.__main__", "nnx"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def level(module: str) -> int:
    """The index in LEVELS of the longest prefix naming `module` (a package names all its modules)."""
    best = None
    for index, names in enumerate(LEVELS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best[1])):
                best = (index, name)
    assert best is not None, f"{module} has no level in tests/test_layout.py LEVELS: give it one"
    return best[0]


def imports(module: str) -> list[tuple[str, bool]]:
    """(nnx module imported, whether the import is inside a function) for every import statement of `module`."""
    tree = ast.parse(MODULES[module].read_text())
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function.update(id(inner) for inner in ast.walk(node) if isinstance(inner, (ast.Import, ast.ImportFrom)))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            targets = [_target(node.module, alias.name) for alias in node.names]
        else:
            continue
        found += [(target, id(node) in in_function) for target in targets if target.split(".")[0] == "nnx"]
    return found


def _target(package: str, name: str) -> str:
    """`from package import name`: the submodule when `name` is one, else the package itself."""
    return f"{package}.{name}" if f"{package}.{name}" in MODULES else package


def graph() -> dict[str, set[str]]:
    return {module: {target for target, _ in imports(module) if target != module} for module in MODULES}


def test_every_import_goes_down_or_sideways():
    upward = [
        f"{module} (level {level(module)}) imports {target} (level {level(target)})"
        for module, targets in graph().items()
        for target in targets
        if level(target) > level(module)
    ]
    assert not upward, "imports that run up the layering:\n" + "\n".join(upward)


def test_backends_import_nothing_but_backends():
    outside = [f"{m} imports {t}" for m, ts in graph().items() if m.startswith("nnx.backends") for t in ts]
    assert not [line for line in outside if not line.split(" imports ")[1].startswith("nnx.backends")]


def find_circle(edges: dict[str, set[str]]) -> list[str] | None:
    """The first import circle found in `edges` (module -> the modules it imports), or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if state.get(target) is None:
                circle = visit(target)
                if circle:
                    return circle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(edges):
        if module not in state:
            circle = visit(module)
            if circle:
                return circle
    return None


def test_no_circle():
    circle = find_circle(graph())
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def test_no_nnx_import_inside_a_function():
    """Except the backend registry loading its own backend modules (an optional library may be missing)."""
    inside = [
        f"{module} imports {target} inside a function"
        for module in MODULES
        for target, in_function in imports(module)
        if in_function and not (module.startswith("nnx.backends") and target.startswith("nnx.backends"))
    ]
    assert not inside, "\n".join(inside)


def private_imports(module: str) -> list[str]:
    """`from nnx.x import _name` statements of `module`: private names taken from another module (a private module,
    such as `nnx.backends._host`, may be imported; what it holds is then public to the package)."""
    found = []
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "nnx":
            found += [
                f"{module} imports {alias.name} from {node.module}"
                for alias in node.names
                if alias.name.startswith("_")
                and not alias.name.startswith("__")
                and f"{node.module}.{alias.name}" not in MODULES
            ]
    return found


def test_no_private_name_is_imported_across_modules():
    """A name another module needs is public (no underscore); a private one stays in the module that defines it."""
    crossing = [line for module in MODULES for line in private_imports(module)]
    assert not crossing, "private names imported across modules (drop their underscore):\n" + "\n".join(crossing)


def test_the_checker_sees_circles_and_upward_imports(tmp_path, monkeypatch):
    """The checks above can fail: an upward import and a function-level import are both found."""
    fake = {"nnx.backends.fake": tmp_path / "fake.py"}
    fake["nnx.backends.fake"].write_text("def load():\n    from nnx.model import Model\n    return Model\n")
    monkeypatch.setitem(MODULES, "nnx.backends.fake", fake["nnx.backends.fake"])
    assert imports("nnx.backends.fake") == [("nnx.model", True)]
    assert level("nnx.model") > level("nnx.backends.fake")
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    fake["nnx.backends.fake"].write_text("from nnx.backends._host import _private\n")
    assert private_imports("nnx.backends.fake") == ["nnx.backends.fake imports _private from nnx.backends._host"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module):
    lines = len(MODULES[module].read_text().splitlines())
    limit = MAX_MODEL_LINES if module == "nnx.model" else MAX_LINES
    assert lines <= limit, f"{module} has {lines} lines, more than {limit}: split it"
