"""Resuming training from a checkpoint, all or nothing: everything in the file is compared with the model first
(layers and their configs, loss, accuracy, dtype, optimizer kind), then everything is restored or nothing is.

Restored: parameters, the optimizer's hyperparameters (as the file has them), step count, learning rate and state,
the accuracy's precision, and the RNG states. A changed hyperparameter is reported in one warning line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from nnx import _checks
from nnx._component import FilePath
from nnx.backends import _host
from nnx.errors import CheckpointError
from nnx.io.fit import fit_problems, is_array, optimizer_problem, raise_misfit
from nnx.io.format import expect_content, read
from nnx.io.kinds import lookup, matches_kind
from nnx.io.mapping import ready
from nnx.io.rebuild import (
    ROLES,
    assign,
    build_model,
    no_strays,
    optimizer_state,
    record_arrays,
    restore_optimizer,
    restore_rng,
    rng_to_restore,
)


def restore_training(
    model: Any, path: FilePath, *, check: Callable[[dict[str, Any]], object] | None = None
) -> dict[str, Any]:
    """Resume from a checkpoint: what `Model.train(resume=...)` does before its first epoch.

    Puts the file's parameters, optimizer (hyperparameters, state, step and learning rate), accuracy precision
    and RNG states into `model`. Nothing changes unless everything can be restored. A hyperparameter that differs
    from the model's is taken from the file, with one warning line.

    Args:
        model: The `nnx.Model` to resume: the same layers and configs, loss, accuracy, dtype and optimizer kind
            as the saved one.
        path: A checkpoint, written by `save_model(..., training=...)` (or `Model.train(checkpoint=...)`).
        check: None, or a function called with the file's training record before anything changes; it raises
            to refuse the file.

    Returns:
        The file's training record (the epoch, history, ...).

    Raises:
        ValueError: listing every way the model differs from the file's.
        CheckpointError: if the file is missing, corrupted or holds no training state.
    """
    record, tensors = read(path)
    expect_content(path, record, ("model",), "restore_training")
    if not record["training"]:
        raise CheckpointError(path, "it holds no training state; write one with model.train(checkpoint=...)")
    ready(model, "restore")
    problems = architecture_problems(model, record, tensors) + optimizer_problem(model.optimizer, record)
    raise_misfit(path, problems, "cannot resume: the checkpoint {path} does not match")
    training = dict(record["training"])
    if check is not None:
        check(training)
    changed = _all_or_nothing(model, _prepared(path, model, record, tensors))
    _report_changes(path, changed)
    return training


def _prepared(
    path: Any, model: Any, record: dict[str, Any], tensors: dict[str, Any]
) -> Callable[[], dict[str, tuple[Any, Any]]]:
    """Every array and value to restore, read and checked; returns the function that puts them in place."""
    layers = list(model.layers)
    used: set[str] = set()
    layer_arrays = [record_arrays(path, tensors, f"layers.{i}", layer, used) for i, layer in enumerate(layers)]
    accuracy = model.accuracy
    accuracy_arrays = record_arrays(path, tensors, "accuracy", accuracy, used, optional=True)
    own = lookup(None if model.optimizer is None else [type(model.optimizer)])  # the model's class comes first
    saved_optimizer = build_model(path, record["optimizer"], model.backend, "optimizer", ROLES["optimizer"], find=own)
    state = optimizer_state(path, record, tensors, saved_optimizer, layers, used)
    rng = rng_to_restore(path, record, tensors, model.backend, used)
    no_strays(path, tensors, used, ignore=("loss.",))
    config = None if saved_optimizer is None else saved_optimizer.get_config()

    def restore() -> dict[str, tuple[Any, Any]]:
        changed = {} if config is None else model.optimizer.set_config(config)
        restore_optimizer(path, model, record["optimizer"], state)
        restore_rng(path, model.backend, rng)
        assign(layers, layer_arrays)
        assign([accuracy], [{k: v for k, v in accuracy_arrays.items() if v is not None}])
        return changed

    return restore


def _report_changes(path: Any, changed: dict[str, tuple[Any, Any]]) -> None:
    if changed:
        listed = ", ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in changed.items())
        _checks.warn(
            f"resume from {str(path)!r}: the optimizer takes the checkpoint's hyperparameters ({listed}), as a "
            f"resumed run continues the saved one"
        )


# All or nothing -----------------------------------------------------------------------------------------------------


def _all_or_nothing(model: Any, restore: Callable[[], dict[str, tuple[Any, Any]]]) -> dict[str, tuple[Any, Any]]:
    """`restore()`; if it fails part-way, what the model, its optimizer and the RNGs held before is put back."""
    kept = _kept(model)
    try:
        return restore()
    except BaseException:
        _put_back(model, kept)
        raise


def _kept(model: Any) -> dict[str, Any]:
    optimizer = model.optimizer
    components = [*model.layers, model.accuracy]
    return {
        "arrays": [(c, {n: getattr(c, n) for n in c.ARRAYS if is_array(getattr(c, n, None))}) for c in components],
        "config": optimizer.get_config(),
        "optimizer": optimizer.state_dict(model.trainable_layers),
        "numpy_rng": _host.numpy_rng_state(),
        "backend_rng": model.backend.rng_state(),
    }


def _put_back(model: Any, kept: dict[str, Any]) -> None:
    for component, arrays in kept["arrays"]:
        for name, value in arrays.items():
            setattr(component, name, value)
    model.optimizer.set_config(kept["config"])
    model.optimizer.load_state_dict(kept["optimizer"], model.trainable_layers, copy=False)
    _host.set_numpy_rng_state(*kept["numpy_rng"])
    model.backend.set_rng_state(kept["backend_rng"])


# What must match ----------------------------------------------------------------------------------------------------


def architecture_problems(model: Any, record: dict[str, Any], tensors: dict[str, Any]) -> list[str]:
    """One line for every way the model differs from the file's: layer kinds, shapes and configs, the loss, the
    accuracy and the dtype (the optimizer's kind is `optimizer_problem`'s; its hyperparameters are restored)."""
    problems = fit_problems(list(model.layers), record, tensors)
    reported = {int(line.split()[1].rstrip(":")) for line in problems if line.startswith("layer ")}
    saved = record["layers"]
    if len(saved) != len(model.layers):
        problems.append(
            f"layers: the file has {len(saved)} ({_kinds(e['kind'] for e in saved)}), the model "
            f"{len(model.layers)} ({_kinds(_kind_of(layer) for layer in model.layers)})"
        )
    for index, (layer, entry) in enumerate(zip(model.layers, saved, strict=False)):
        if index not in reported:
            problems += _component_problem(f"layer {index}", layer, entry)
    for role in ("loss", "accuracy"):
        problems += _component_problem(role, getattr(model, role), record[role])
    dtype = _model_dtype(model)
    if record.get("dtype") is not None and dtype is not None and record["dtype"] != dtype:
        problems.append(f"dtype: the file holds {record['dtype']} parameters, the model {dtype}")
    return problems


def _component_problem(where: str, component: Any, entry: dict[str, Any] | None) -> list[str]:
    kind = _kind_of(component)
    if entry is None:
        return [] if component is None else [f"{where}: the model has {kind}, the file none"]
    if component is None or not matches_kind(type(component), entry["kind"]):
        return [f"{where}: the model has {kind}, the file {entry['kind']}"]
    ours = json.loads(json.dumps(component.saved_config()))
    theirs = entry.get("config") or {}
    differing = [name for name in sorted(set(ours) | set(theirs)) if ours.get(name) != theirs.get(name)]
    if not differing:
        return []
    listed = ", ".join(
        f"{name} {theirs.get(name)!r} in the file, {ours.get(name)!r} in the model" for name in differing
    )
    return [f"{where} {kind}: {listed}"]


def _kind_of(component: Any) -> str:
    return "none" if component is None else getattr(component, "kind", lambda: type(component).__name__)()


def _kinds(kinds: Iterable[str]) -> str:
    return ", ".join(kinds)


def _model_dtype(model: Any) -> str | None:
    trainable = model.trainable_layers
    return _host.dtype_name(trainable[0].dtype) if trainable else None
