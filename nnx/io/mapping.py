"""Objects to records and back: models, parameters and bare layer lists as tensors plus one JSON record (the
architecture, optimizer progress, training state and RNG states), rebuilt through the component registry.

No pickle: classes are looked up by the name they were saved under, among the components this program defines.
"""

from __future__ import annotations

from nnx import backends
from nnx._component import Component, component_class
from nnx._paths import output_path
from nnx._version import __version__
from nnx.backends import _host
from nnx.errors import CheckpointError
from nnx.io.fit import _fit_problems, _is_array, _raise_misfit
from nnx.io.format import (
    CORRUPTED,
    FORMAT,
    FORMAT_VERSION,
    dumps,
    expect_content,
    is_count,
    is_number,
    loads,
    read,
    write,
)
from nnx.losses import Loss
from nnx.metrics import Accuracy
from nnx.optimizers import PARAMETERS, Optimizer

ROLES = {"loss": Loss, "optimizer": Optimizer, "accuracy": Accuracy}
RNG_KEYS = "rng.numpy.keys"
MODEL_KIND = "Model"  # the registered name of nnx.Model, found through the component registry


# Saving -----------------------------------------------------------------------------------------------------------


def save_model(model, path, *, training: dict | None = None) -> None:
    """Write `model` (layers, parameters, loss, optimizer and its state, accuracy) to `path`, atomically.

    `training` (JSON-friendly: epoch, history...) makes the file a checkpoint for `restore_training`, which
    also needs the RNG states saved with it. Finalizes the model first if needed. The path is checked first.
    """
    path = output_path(path, "Model.save")
    _ready(model)
    tensors, record = _model_record(model)
    if training is not None:
        if not isinstance(training, dict):
            raise TypeError(f"training must be a dict (epoch, history, ...) or None, got {type(training).__name__}")
        record["training"] = training
        record["rng"] = _rng_record(model.backend, tensors)
    write(path, tensors, record)


def _model_record(model) -> tuple[dict, dict]:
    """The tensors and record of a model: layers, loss, optimizer (with its state once finalized), accuracy."""
    tensors, layers = _layer_tensors(model.layers, configs=True)
    record = _new_record("model", layers, tensors)
    record["epochs_trained"] = int(model.epochs_trained)
    for role in ROLES:
        record[role] = _describe(getattr(model, role), role, tensors)
    optimizer = model.optimizer
    if optimizer is not None and model.finalized:
        record["optimizer"].update(_optimizer_progress(model, tensors))
    elif optimizer is not None:
        progress = {"iterations": int(optimizer.iterations), "state_layers": []}
        record["optimizer"].update({**progress, "current_learning_rate": float(optimizer.current_learning_rate)})
    return tensors, record


def save_parameters(model, path) -> None:
    """Write only the parameters of `model`'s layers, with each layer's kind and shapes, for `load_parameters`."""
    path = output_path(path, "Model.save_parameters")
    _ready(model)
    tensors, layers = _layer_tensors(model.layers, configs=False)
    write(path, tensors, _new_record("parameters", layers, tensors))


def save(layers, path) -> None:
    """Write a bare list of layers (the book's layer-by-layer code): their configs and parameters, for `load`."""
    path = output_path(path, "nnx.save")
    tensors, entries = _layer_tensors(list(layers), configs=True)
    write(path, tensors, _new_record("layers", entries, tensors))


def _ready(model, action: str = "save") -> None:
    if not model.layers:
        raise ValueError(f"cannot {action} a model with no layers: add some with model.add() first")
    if not getattr(model, "finalized", False):
        model.finalize()


def _kind(component) -> str:
    if not isinstance(component, Component):
        raise TypeError(
            f"cannot save {component!r}: only nnx components (subclasses of nnx._component.Component, which "
            f"describe themselves with kind() and get_config()) can be saved"
        )
    return component.kind()


def _layer_tensors(layers, *, configs: bool) -> tuple[dict, list]:
    tensors, entries = {}, []
    for index, layer in enumerate(layers):
        entry = {"kind": _kind(layer)}
        if configs:
            entry["config"] = layer.saved_config()
        arrays = layer.host_arrays()
        if arrays:
            entry["shapes"] = {name: list(value.shape) for name, value in arrays.items()}
        tensors.update({f"layers.{index}.{name}": value for name, value in arrays.items()})
        entries.append(entry)
    return tensors, entries


def _new_record(content: str, layers: list, tensors: dict) -> dict:
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


def _describe(component, role: str, tensors: dict) -> dict | None:
    if component is None:
        return None
    tensors.update({f"{role}.{name}": value for name, value in component.host_arrays().items()})
    return {"kind": _kind(component), "config": component.saved_config()}


def _optimizer_progress(model, tensors: dict) -> dict:
    """The optimizer's step count, learning rate and per-layer state (tensors `optimizer.{layer index}.{name}`)."""
    optimizer = model.optimizer
    state = optimizer.state_dict(model.trainable_layers)
    index_of = _layer_indices(model)
    for position, arrays in state["slots"].items():
        index = index_of[position]
        tensors.update({f"optimizer.{index}.{name}": optimizer.backend.to_numpy(v) for name, v in arrays.items()})
    return {
        "iterations": int(state["iterations"]),
        "current_learning_rate": float(state["current_learning_rate"]),
        "state_layers": sorted(index_of[position] for position in state["slots"]),
    }


def _layer_indices(model) -> list[int]:
    """The index in `model.layers` of each trainable layer, by its trainable position."""
    positions = {id(layer): index for index, layer in enumerate(model.layers)}
    return [positions[id(layer)] for layer in model.trainable_layers]


def _rng_record(backend, tensors: dict) -> dict:
    keys, numbers = _host.numpy_rng_state()
    tensors[RNG_KEYS] = keys
    state = backend.rng_state()
    return {"numpy": numbers, "backend": None if state is None else {"name": backend.name, "state": state}}


# Loading ----------------------------------------------------------------------------------------------------------


def load_model(path, xp=None):
    """The Model saved in `path`, rebuilt on backend `xp` (None: the current one), bit for bit."""
    record, tensors = read(path)
    expect_content(path, record, ("model", "layers"), "load_model")
    return _model(path, record, tensors, backends.get(xp))


def model_bytes(model) -> bytes:
    """`model` as the bytes of a model file (no RNG state, no training record), finalized or not: what `pickle`
    and `copy.deepcopy` of a Model go through, so they never pickle modules or classes."""
    tensors, record = _model_record(model)
    record["finalized"] = bool(model.finalized)
    return dumps(tensors, record)


def model_from_bytes(raw: bytes, xp=None):
    """The Model `model_bytes` made, on backend `xp` (None: the current one)."""
    record, tensors = loads(raw, "<a copied or unpickled Model>")
    return _model("<a copied or unpickled Model>", record, tensors, backends.get(xp))


def _model(path, record: dict, tensors: dict, backend):
    layers, layer_arrays, used = _rebuilt_layers(path, record, tensors, backend)
    with _host.numpy_rng_kept():
        parts = {role: _build(path, record[role], backend, role, ROLES[role]) for role in ROLES}
    parts = {role: part for role, part in parts.items() if part is not None}
    role_arrays = [_arrays(path, tensors, role, part, used) for role, part in parts.items()]
    state = _optimizer_state(path, record, tensors, parts.get("optimizer"), layers, used)
    _no_strays(path, tensors, used)
    finalized = record.get("finalized", True) is not False
    model = _assembled(path, backend, layers, parts, finalized, record["content"])
    _assign([*layers, *parts.values()], [*layer_arrays, *role_arrays])
    if finalized:
        _restore_optimizer(path, model, record["optimizer"], state)
    elif model.optimizer is not None:
        model.optimizer.iterations = record["optimizer"]["iterations"]
        model.optimizer.current_learning_rate = record["optimizer"]["current_learning_rate"]
    model.epochs_trained = _epochs_trained(path, record)
    return model


def _epochs_trained(path, record: dict) -> int:
    """How many epochs the saved model had trained (0 in files written before it was recorded)."""
    epochs = record.get("epochs_trained", 0)
    if not is_count(epochs):
        raise CheckpointError(path, f"its epochs_trained is {epochs!r}, not a count of epochs; {CORRUPTED}")
    return epochs


def _assembled(path, backend, layers: list, parts: dict, finalized: bool, content: str):
    """A Model of `layers` and the loss, optimizer and accuracy in `parts`, finalized if it was."""
    model = component_class(MODEL_KIND)(xp=backend)
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


def load(path, xp=None) -> list:
    """The bare list of layers saved in `path` (by `save`, or the layers of a `save_model` file), on backend `xp`."""
    record, tensors = read(path)
    expect_content(path, record, ("layers", "model"), "load")
    layers, layer_arrays, _ = _rebuilt_layers(path, record, tensors, backends.get(xp))
    _assign(layers, layer_arrays)
    return layers


def load_parameters(model, path) -> None:
    """Copy the parameters in `path` into `model`, whose layers must have the same kinds and shapes.

    Any mismatch is one ValueError listing every mismatched layer, raised before anything changes.
    """
    record, tensors = read(path)
    layers = list(model.layers)
    _raise_misfit(path, _fit_problems(layers, record, tensors))
    layer_arrays = [_arrays(path, tensors, f"layers.{i}", layer, set(), cast=True) for i, layer in enumerate(layers)]
    _assign(layers, layer_arrays)


# Rebuilding components and their arrays ---------------------------------------------------------------------------


def _build(path, entry: dict | None, backend, where: str, base: type = Component, exclude: tuple = (), stored=None):
    """The component `entry` describes, built with `from_config` from the class registered under its kind, after
    checking the shapes its config declares against the `stored` tensors ({name: host array}) when given."""
    if entry is None:
        return None
    kind, config = entry["kind"], entry["config"]
    cls = component_class(kind)
    if cls is None:
        raise CheckpointError(
            path,
            f"its {where} is of kind {kind!r}, which this program does not define; import the module that "
            f"defines it before loading (nnx never imports or runs code a file names)",
        )
    if not issubclass(cls, base) or issubclass(cls, exclude):
        raise CheckpointError(path, f"its {where} is of kind {kind!r}, which cannot serve as one; {CORRUPTED}")
    _check_declared_shapes(path, cls, config, where, stored)
    try:
        return cls.from_config(config, xp=backend)
    except (TypeError, ValueError) as error:
        raise CheckpointError(path, f"its {where} ({kind}) cannot be rebuilt from {config!r}: {error}") from error


def _check_declared_shapes(path, cls, config: dict, where: str, stored: dict | None) -> None:
    declared = cls.config_shapes(config) if stored is not None else None
    for name, shape in (declared or {}).items():
        if name in stored and tuple(stored[name].shape) != tuple(shape):  # a missing tensor is `_arrays`' to report
            raise CheckpointError(
                path,
                f"its {where} declares {name} of shape {tuple(shape)}, but the file has a tensor {name} of shape "
                f"{tuple(stored[name].shape)} there; {CORRUPTED}",
            )


def _rebuilt_layers(path, record: dict, tensors: dict, backend) -> tuple[list, list, set]:
    """New layers built from the record (without moving NumPy's RNG on) and their checked arrays."""
    exclude = (*ROLES.values(), *[cls for cls in (component_class(MODEL_KIND),) if cls is not None])
    with _host.numpy_rng_kept():
        layers = [
            _build(path, entry, backend, f"layer {i}", exclude=exclude, stored=_stored(tensors, f"layers.{i}."))
            for i, entry in enumerate(record["layers"])
        ]
    used = set()
    arrays = [_arrays(path, tensors, f"layers.{i}", layer, used) for i, layer in enumerate(layers)]
    return layers, arrays, used


def _stored(tensors: dict, prefix: str) -> dict:
    return {key.removeprefix(prefix): value for key, value in tensors.items() if key.startswith(prefix)}


def _arrays(path, tensors: dict, prefix: str, component, used: set, *, cast=False, optional=False) -> dict:
    """`component`'s arrays from tensors `{prefix}.{name}`, checked and copied to its backend (None if absent).

    Shapes must match the arrays it has; dtypes too unless `cast` (then they become its dtype). Absent tensors
    are errors unless `optional` or the component holds no array there.
    """
    result = {}
    for name in component.ARRAYS:
        key, current = f"{prefix}.{name}", getattr(component, name, None)
        has_array = _is_array(current)
        if key not in tensors:
            if has_array and not optional:
                raise CheckpointError(path, f"it has no tensor {key!r} for {component!r}; {CORRUPTED}")
            result[name] = None
            continue
        result[name] = _device_array(path, key, tensors[key], current if has_array else None, component, cast)
        used.add(key)
    return result


def _device_array(path, key: str, host, like, component, cast: bool):
    """`host` on `component`'s backend, after checking it against `like` (an array it must match, or None)."""
    dtype = host.dtype.name
    if like is None:
        if dtype not in _host.FLOAT_NAMES:
            raise CheckpointError(path, f"its tensor {key!r} is {dtype}, not a float; {CORRUPTED}")
        return component.backend.asarray(host.copy(), dtype=dtype)
    want_shape, want_dtype = tuple(like.shape), _host.dtype_name(like.dtype)
    if tuple(host.shape) != want_shape or (dtype != want_dtype and not cast) or dtype not in _host.FLOAT_NAMES:
        raise CheckpointError(
            path,
            f"its tensor {key!r} is {dtype} {tuple(host.shape)}, but {component!r} needs {want_dtype} {want_shape}; "
            f"{CORRUPTED}",
        )
    return component.backend.asarray(host.copy(), dtype=want_dtype)


def _assign(components: list, arrays: list) -> None:
    for component, values in zip(components, arrays, strict=True):
        for name, value in values.items():
            setattr(component, name, value)


def _no_strays(path, tensors: dict, used: set, ignore: tuple[str, ...] = ()) -> None:
    strays = sorted(key for key in tensors if key not in used and key != RNG_KEYS and not key.startswith(ignore))
    if strays:
        raise CheckpointError(path, f"its tensors {strays} are not described by its record; {CORRUPTED}")


# Optimizer state and random number generators ---------------------------------------------------------------------


def _optimizer_state(path, record: dict, tensors: dict, optimizer, layers: list, used: set, *, cast=False) -> dict:
    """{layer index: {slot name: array on the optimizer's backend}} for the layers the saved optimizer updated."""
    saved = record["optimizer"]
    if saved is None or optimizer is None:
        return {}
    state = {}
    for index in saved["state_layers"]:
        layer = layers[index] if index < len(layers) else None
        if layer is None or not all(hasattr(layer, owner) for owner in PARAMETERS.values()):
            raise CheckpointError(path, f"it holds optimizer state for layer {index}, which has no parameters")
        state[index] = {}
        for name in optimizer.slot_names():
            key = f"optimizer.{index}.{name}"
            if key not in tensors:
                raise CheckpointError(path, f"it has no tensor {key!r} for {optimizer!r}; {CORRUPTED}")
            like = getattr(layer, PARAMETERS[name.split("_", 1)[0]])
            state[index][name] = _device_array(path, key, tensors[key], like, optimizer, cast)
            used.add(key)
    return state


def _restore_optimizer(path, model, saved: dict | None, state: dict) -> None:
    """Hand the optimizer its saved progress through `load_state_dict` (which checks it all first)."""
    optimizer = model.optimizer
    if optimizer is None or saved is None:
        return
    position_of = {index: position for position, index in enumerate(_layer_indices(model))}
    slots = {position_of[index]: arrays for index, arrays in state.items()}
    progress = {"iterations": saved["iterations"], "current_learning_rate": saved["current_learning_rate"]}
    try:
        optimizer.load_state_dict({**progress, "slots": slots}, model.trainable_layers, copy=False)
    except (TypeError, ValueError) as error:
        raise CheckpointError(path, f"its optimizer state cannot be restored ({error}); {CORRUPTED}") from error


def _rng_to_restore(path, record: dict, tensors: dict, backend, used: set) -> dict | None:
    """The saved RNG states, checked: NumPy's keys and numbers, and this backend's own state if it saved one."""
    rng = record["rng"]
    if rng is None:
        return None
    keys, numbers = tensors.get(RNG_KEYS), rng.get("numpy")
    if keys is None or keys.dtype.name != "uint32" or tuple(keys.shape) != (624,) or not _rng_numbers(numbers):
        raise CheckpointError(path, f"its saved NumPy RNG state is malformed; {CORRUPTED}")
    used.add(RNG_KEYS)
    saved_backend = rng.get("backend")
    own = saved_backend.get("state") if isinstance(saved_backend, dict) else None
    same = isinstance(saved_backend, dict) and saved_backend.get("name") == backend.name
    return {"keys": keys.copy(), "numbers": numbers, "backend": own if same else None}


def _rng_numbers(numbers) -> bool:
    if not isinstance(numbers, dict) or not is_number(numbers.get("cached_gaussian")):
        return False
    pos, has_gauss = numbers.get("pos"), numbers.get("has_gauss")
    return is_count(pos) and pos <= 624 and has_gauss in (0, 1)


def _restore_rng(path, backend, rng: dict | None) -> None:
    if rng is None:
        return
    try:
        backend.set_rng_state(rng["backend"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(path, f"its saved {backend.name} RNG state cannot be restored ({error})") from error
    _host.set_numpy_rng_state(rng["keys"], rng["numbers"])
