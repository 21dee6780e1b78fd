"""Whether a file's saved layers fit a model: kinds and parameter shapes per layer, and the optimizer's kind, as one
line per mismatch, raised together before anything changes."""

from __future__ import annotations

from typing import Any, TypeGuard

from nnx._component import Component
from nnx.io.kinds import matches_kind


def fit_problems(layers: list[Any], record: dict[str, Any], tensors: dict[str, Any]) -> list[str]:
    """One line for every layer whose saved parameters do not fit `layers` (kinds and shapes)."""
    found = _saved_shapes(record, tensors)
    kinds = [entry["kind"] for entry in record["layers"]]
    problems = []
    for index in sorted(set(found) | {i for i, layer in enumerate(layers) if _shapes(layer)}):
        layer = layers[index] if index < len(layers) else None
        problem = _layer_problem(index, layer, kinds[index] if index < len(kinds) else "?", found.get(index, {}))
        if problem:
            problems.append(problem)
    return problems


def raise_misfit(path: Any, problems: list[str], what: str = "the saved parameters in {path} do not fit") -> None:
    if problems:
        raise ValueError(
            what.format(path=repr(str(path)))
            + " this model:\n  "
            + "\n  ".join(problems)
            + "\nbuild the model with the saved layers, or rebuild the saved one with nnx.io.load_model(path)"
        )


def _saved_shapes(record: dict[str, Any], tensors: dict[str, Any]) -> dict[int, dict[str, tuple[int, ...]]]:
    """{layer index: {array name: shape}} of the saved layer tensors, in the order the record lists them."""
    listed = [f"layers.{i}.{name}" for i, entry in enumerate(record["layers"]) for name in entry.get("shapes") or ()]
    found: dict[int, dict[str, tuple[int, ...]]] = {}
    for key in [*listed, *sorted(tensors)]:
        parts = key.split(".")
        if key in tensors and len(parts) == 3 and parts[0] == "layers" and parts[1].isdigit():
            found.setdefault(int(parts[1]), {}).setdefault(parts[2], tuple(tensors[key].shape))
    return found


def _shapes(layer: Any) -> dict[str, tuple[int, ...]]:
    if layer is None:
        return {}
    shapes = {}
    for name in getattr(layer, "ARRAYS", ()):
        value = getattr(layer, name, None)
        if is_array(value):
            shapes[name] = tuple(value.shape)
    return shapes


def _layer_problem(index: int, layer: Any, saved_kind: str, saved: dict[str, tuple[int, ...]]) -> str | None:
    expected = _shapes(layer)
    kind = layer.kind() if isinstance(layer, Component) else type(layer).__name__
    if expected == saved and (not saved or matches_kind(type(layer), saved_kind)):
        return None
    if not saved:
        return f"layer {index} {layer!r}: expected {_listing(expected)}; the file has no parameters there"
    if not expected:
        there = "no layer" if layer is None else f"{layer!r}, which has no parameters,"
        return f"layer {index}: the file has {saved_kind} parameters {_listing(saved)}; the model has {there} there"
    return f"layer {index} {layer!r}: expected {kind} {_listing(expected)}, found {saved_kind} {_listing(saved)}"


def _listing(shapes: dict[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{name} {shape}" for name, shape in shapes.items())


def optimizer_problem(optimizer: Any, record: dict[str, Any]) -> list[str]:
    saved = record["optimizer"]
    if saved is None or _same_kind(optimizer, saved):
        return []
    if optimizer is None:
        return [f"optimizer: the model has none, the file holds {saved['kind']}'s state (model.set(optimizer=...))"]
    return [f"optimizer: the model has {optimizer.kind()}, the file holds {saved['kind']}'s state"]


def _same_kind(component: Any, saved: dict[str, Any] | None) -> bool:
    return component is not None and saved is not None and matches_kind(type(component), saved["kind"])


def is_array(value: object) -> TypeGuard[Any]:
    """An array (NumPy scalars included, which have a shape), not None or a plain Python number."""
    return value is not None and hasattr(value, "shape") and hasattr(value, "dtype")
