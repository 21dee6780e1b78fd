"""Objects to records and back: models, parameters and bare layer lists as tensors plus one JSON record (the
architecture, optimizer progress, training state and RNG states), rebuilt through the component registry.

No pickle: classes are looked up by the name they were saved under, among the components this program defines.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nnx import backends
from nnx._component import BackendSpec, Component, FilePath, check_config, component_class
from nnx._paths import output_path
from nnx._version import __version__
from nnx.backends import _host
from nnx.errors import CheckpointError
from nnx.io.fit import fit_problems, raise_misfit
from nnx.io.format import CORRUPTED, FORMAT, FORMAT_VERSION, dumps, expect_content, is_count, loads, read, write
from nnx.io.kinds import Components, Lookup, lookup
from nnx.io.rebuild import (
    MODEL_KIND,
    RNG_KEYS,
    ROLES,
    assign,
    build_model,
    check_state,
    layer_indices,
    no_strays,
    optimizer_state,
    rebuilt_layers,
    record_arrays,
    restore_optimizer,
)

# Saving -----------------------------------------------------------------------------------------------------------


def save_model(model: Any, path: FilePath, *, training: dict[str, Any] | None = None) -> None:
    """Write a whole model to a file, atomically: what `Model.save` does.

    The file holds the layers with their configs and parameters, the loss, the optimizer with its state, and the
    accuracy. The model is finalized first if needed; the path is checked before anything is done.

    Args:
        model: The `nnx.Model` to save.
        path: The file to write (the folder must exist); `.nnx` is the usual suffix.
        training: None for a plain model file; a JSON-friendly dict (epoch, history, ...) makes the file a
            checkpoint for `restore_training`, with the RNG states saved too.

    Raises:
        ValueError: if the model has no layers, the path cannot be written, or the optimizer keeps state that
            its `STATE_NAMES` do not name.
        TypeError: if `training` is not a dict of JSON values, a part is not an nnx component, or its config
            cannot rebuild it (see `nnx.Component`'s `CONFIG`).
        SaveError: if the write fails (the previous file, if any, is intact).
    """
    path = output_path(path, "Model.save")
    ready(model)
    tensors, record = _model_record(model, "save")
    if training is not None:
        if not isinstance(training, dict):
            raise TypeError(f"training must be a dict (epoch, history, ...) or None, got {type(training).__name__}")
        record["training"] = training
        record["rng"] = _rng_record(model.backend, tensors)
    write(path, tensors, record)


def _model_record(model: Any, action: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tensors and record of a model: layers, loss, optimizer (with its state once finalized), accuracy; each
    part's config checked first (`action` says what its error refuses)."""
    tensors, layers = _layer_tensors(model.layers, configs=True, action=action)
    record = _new_record("model", layers, tensors)
    record["epochs_trained"] = int(model.epochs_trained)
    for role in ROLES:
        record[role] = _describe(getattr(model, role), role, tensors, action)
    optimizer = model.optimizer
    if optimizer is not None and model.finalized:
        record["optimizer"].update(_optimizer_progress(model, tensors))
    elif optimizer is not None:
        progress = {"iterations": int(optimizer.iterations), "state_layers": []}
        record["optimizer"].update({**progress, "current_learning_rate": float(optimizer.current_learning_rate)})
    return tensors, record


def save_parameters(model: Any, path: FilePath) -> None:
    """Write only a model's parameters, with each layer's kind and shapes (the book's chapter 21).

    Args:
        model: The `nnx.Model` whose parameters to save.
        path: The file to write (the folder must exist).

    Raises:
        ValueError: if the model has no layers or the path cannot be written.
        SaveError: if the write fails (the previous file, if any, is intact).
    """
    path = output_path(path, "Model.save_parameters")
    ready(model)
    tensors, layers = _layer_tensors(model.layers, configs=False)
    write(path, tensors, _new_record("parameters", layers, tensors))


def save(layers: Iterable[Any], path: FilePath) -> None:
    """Write a bare list of layers (the book's layer-by-layer code): their configs and parameters, for `load`.

    Args:
        layers: nnx components (Dense, ReLU, ...), in order.
        path: The file to write (the folder must exist).

    Raises:
        TypeError: if a layer is not an nnx component, or its config cannot rebuild it.
        ValueError: if the path cannot be written.
        SaveError: if the write fails (the previous file, if any, is intact).
    """
    if isinstance(layers, Component) or not isinstance(layers, Iterable):
        raise TypeError(
            f"nnx.save expected a list of layers, got {type(layers).__name__}; pass a list, e.g. nnx.save([dense1], "
            f"path), or save a Model with model.save(path)"
        )
    path = output_path(path, "nnx.save")
    tensors, entries = _layer_tensors(list(layers), configs=True, action="nnx.save()")
    write(path, tensors, _new_record("layers", entries, tensors))


def ready(model: Any, action: str = "save") -> None:
    if not model.layers:
        raise ValueError(f"cannot {action} a model with no layers: add some with model.add() first")
    if not getattr(model, "finalized", False):
        model.finalize()


def _kind(component: Any) -> str:
    if not isinstance(component, Component):
        raise TypeError(
            f"cannot save {component!r}: only nnx components (subclasses of nnx.Component, which describe "
            f"themselves with kind() and get_config()) can be saved"
        )
    return component.kind()


def _layer_tensors(
    layers: Iterable[Any], *, configs: bool, action: str = "save"
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    tensors: dict[str, Any] = {}
    entries: list[dict[str, Any]] = []
    for index, layer in enumerate(layers):
        entry: dict[str, Any] = {"kind": _kind(layer)}
        if configs:
            check_config(layer, action)
            entry["config"] = layer.saved_config()
        arrays = layer.host_arrays()
        if arrays:
            entry["shapes"] = {name: list(value.shape) for name, value in arrays.items()}
        tensors.update({f"layers.{index}.{name}": value for name, value in arrays.items()})
        entries.append(entry)
    return tensors, entries


def _new_record(content: str, layers: list[Any], tensors: dict[str, Any]) -> dict[str, Any]:
    dtype = next((value.dtype.name for key, value in tensors.items() if key.startswith("layers.")), None)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "nnx_version": __version__,
        "content": content,
        "layers": layers,
        "loss": None,
        "optimizer": None,
        "accuracy": None,
        "dtype": dtype,
        "training": None,
        "rng": None,
    }


def _describe(component: Any, role: str, tensors: dict[str, Any], action: str) -> dict[str, Any] | None:
    if component is None:
        return None
    check_config(component, action)
    tensors.update({f"{role}.{name}": value for name, value in component.host_arrays().items()})
    return {"kind": _kind(component), "config": component.saved_config()}


def _optimizer_progress(model: Any, tensors: dict[str, Any]) -> dict[str, Any]:
    """The optimizer's step count, learning rate and per-layer state (tensors `optimizer.{layer index}.{name}`)."""
    optimizer = model.optimizer
    check_state(optimizer, model.trainable_layers)
    state = optimizer.state_dict(model.trainable_layers)
    index_of = layer_indices(model)
    for position, arrays in state["slots"].items():
        index = index_of[position]
        tensors.update({f"optimizer.{index}.{name}": optimizer.backend.to_numpy(v) for name, v in arrays.items()})
    return {
        "iterations": int(state["iterations"]),
        "current_learning_rate": float(state["current_learning_rate"]),
        "state_layers": sorted(index_of[position] for position in state["slots"]),
    }


def _rng_record(backend: Any, tensors: dict[str, Any]) -> dict[str, Any]:
    keys, numbers = _host.numpy_rng_state()
    tensors[RNG_KEYS] = keys
    state = backend.rng_state()
    return {"numpy": numbers, "backend": None if state is None else {"name": backend.name, "state": state}}


# Loading ----------------------------------------------------------------------------------------------------------


def load_model(path: FilePath, xp: BackendSpec = None, *, components: Components = None) -> Any:
    """Read a model written by `save_model` (or `Model.save`): what `Model.load` does.

    The classes are looked up by the names they were saved under, among those this program defines: import the
    module of a custom layer before loading. A class saved by a script or a notebook ('__main__.LeakyReLU') is the
    one class of that name this program defines; `components` says which when there are several.

    Args:
        path: The file to read.
        xp: The backend to rebuild it on: a name, an array module, a Backend, or None for the current one.
        components: Your own classes to rebuild the file's with, as Keras' `custom_objects`: a list
            (`[LeakyReLU]`, matched by class name) or a dict {saved kind or class name: class}; None (the default)
            looks among the classes this program defines.

    Returns:
        The `nnx.Model`, bit for bit as it was saved: finalized, with its optimizer's state.

    Raises:
        TypeError: if `components` is not a list or dict of nnx Component subclasses.
        CheckpointError: if the file is missing, corrupted, from a newer nnx, or names a class that is not
            defined (or several that are).
    """
    find = lookup(components)
    record, tensors = read(path)
    expect_content(path, record, ("model", "layers"), "load_model")
    return _model(path, record, tensors, backends.get(xp), find)


def model_bytes(model: Any) -> bytes:
    """A model as the bytes of a model file, finalized or not (no RNG state, no training record).

    What `pickle` and `copy.deepcopy` of a Model go through, so they never pickle modules or classes.

    Args:
        model: The `nnx.Model`.

    Returns:
        The bytes, for `model_from_bytes`.
    """
    tensors, record = _model_record(model, "copy.deepcopy() or pickle")
    record["finalized"] = bool(model.finalized)
    return dumps(tensors, record)


def model_from_bytes(raw: bytes, xp: BackendSpec = None) -> Any:
    """Rebuild the model that `model_bytes` wrote, checked as a file is; no code is run from the bytes.

    Args:
        raw: What `model_bytes` returned.
        xp: The backend to rebuild it on: a name, an array module, a Backend, or None for the current one.

    Returns:
        The `nnx.Model`.

    Raises:
        CheckpointError: if the bytes are not a model file.
    """
    record, tensors = loads(raw, "<a copied or unpickled Model>")
    return _model("<a copied or unpickled Model>", record, tensors, backends.get(xp), lookup(exact_first=True))


def _model(path: Any, record: dict[str, Any], tensors: dict[str, Any], backend: Any, find: Lookup) -> Any:
    layers, layer_arrays, used = rebuilt_layers(path, record, tensors, backend, find)
    with _host.numpy_rng_kept():
        parts = {role: build_model(path, record[role], backend, role, ROLES[role], find=find) for role in ROLES}
    parts = {role: part for role, part in parts.items() if part is not None}
    role_arrays = [record_arrays(path, tensors, role, part, used) for role, part in parts.items()]
    state = optimizer_state(path, record, tensors, parts.get("optimizer"), layers, used)
    no_strays(path, tensors, used)
    finalized = record.get("finalized", True) is not False
    model = _assembled(path, backend, layers, parts, finalized, record["content"])
    assign([*layers, *parts.values()], [*layer_arrays, *role_arrays])
    if finalized:
        restore_optimizer(path, model, record["optimizer"], state)
    elif model.optimizer is not None:
        model.optimizer.iterations = record["optimizer"]["iterations"]
        model.optimizer.current_learning_rate = record["optimizer"]["current_learning_rate"]
    model.epochs_trained = _epochs_trained(path, record)
    return model


def _epochs_trained(path: Any, record: dict[str, Any]) -> int:
    """How many epochs the saved model had trained (0 in files written before it was recorded)."""
    epochs = record.get("epochs_trained", 0)
    if not is_count(epochs):
        raise CheckpointError(path, f"its epochs_trained is {epochs!r}, not a count of epochs; {CORRUPTED}")
    return epochs


def _assembled(path: Any, backend: Any, layers: list[Any], parts: dict[str, Any], finalized: bool, content: str) -> Any:
    """A Model of `layers` and the loss, optimizer and accuracy in `parts`, finalized if it was."""
    model_class: Any = component_class(MODEL_KIND)
    model = model_class(xp=backend)
    try:
        for layer in layers:
            model.add(layer)
        model.set(**parts)
        if finalized:
            model.finalize()
    except (TypeError, ValueError) as error:
        if content == "layers":
            advice = "it holds a bare list of layers (from nnx.save): load them with nnx.load(path)"
            raise CheckpointError(path, f"its layers do not make a model ({error}); {advice}") from error
        raise CheckpointError(path, f"its layers do not make a model ({error}); {CORRUPTED}") from error
    return model


def load(path: FilePath, xp: BackendSpec = None, *, components: Components = None) -> list[Any]:
    """Read a bare list of layers written by `save` (or the layers of a `save_model` file).

    Args:
        path: The file to read.
        xp: The backend to rebuild them on: a name, an array module, a Backend, or None for the current one.
        components: Your own classes to rebuild the file's with: a list (`[LeakyReLU]`) or a dict {saved kind
            or class name: class}, as `load_model` takes them; None looks among the classes this program defines.

    Returns:
        The layers, in order, with their saved parameters.

    Raises:
        TypeError: if `components` is not a list or dict of nnx Component subclasses.
        CheckpointError: if the file is missing, corrupted, holds only parameters, or names a class that is
            not defined (or several that are).
    """
    find = lookup(components)
    record, tensors = read(path)
    expect_content(path, record, ("layers", "model"), "load")
    layers, layer_arrays, _ = rebuilt_layers(path, record, tensors, backends.get(xp), find)
    assign(layers, layer_arrays)
    return layers


def load_parameters(model: Any, path: FilePath) -> None:
    """Copy saved parameters into a model built in code with the same layers (the book's chapter 21).

    Args:
        model: The `nnx.Model` to load into.
        path: A file written by `save_parameters`, `save_model` or `save`.

    Raises:
        ValueError: listing every layer whose kind or shapes differ, before anything changes.
        CheckpointError: if the file is missing or corrupted.
    """
    record, tensors = read(path)
    layers = list(model.layers)
    raise_misfit(path, fit_problems(layers, record, tensors))
    layer_arrays = [
        record_arrays(path, tensors, f"layers.{i}", layer, set(), cast=True) for i, layer in enumerate(layers)
    ]
    assign(layers, layer_arrays)
