"""Saving and loading models, parameters and training checkpoints as safetensors files, never pickle.

The arrays are tensors; the architecture is one JSON record in the file's metadata, rebuilt with `from_config`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile

import safetensors.numpy

from nnx import backends
from nnx._component import Component, component_class
from nnx.backends import _host
from nnx.errors import CheckpointError
from nnx.losses import Loss
from nnx.metrics import Accuracy
from nnx.optimizers import Optimizer

FORMAT = "nnx"
FORMAT_VERSION = 1
METADATA_KEY = "nnx"
CONTENTS = ("model", "parameters", "layers")
ROLES = {"loss": Loss, "optimizer": Optimizer, "accuracy": Accuracy}
RNG_KEYS = "rng.numpy.keys"
_STATE_OWNERS = {"weight": "weights", "bias": "biases"}
_MAX_HEADER = 100_000_000


# Saving -----------------------------------------------------------------------------------------------------------


def save_model(model, path, *, training: dict | None = None) -> None:
    """Write `model` (layers, parameters, loss, optimizer and its state, accuracy) to `path`, atomically.

    `training` (JSON-friendly: epoch, history...) makes the file a checkpoint for `restore_training`, which
    also needs the RNG states saved with it. Finalizes the model first if needed.
    """
    _ready(model)
    tensors, layers = _layer_tensors(model.layers, configs=True)
    record = _new_record("model", layers, tensors)
    for role in ROLES:
        record[role] = _describe(getattr(model, role), role, tensors)
    if record["optimizer"] is not None:
        record["optimizer"].update(_optimizer_progress(model, tensors))
    if training is not None:
        if not isinstance(training, dict):
            raise TypeError(f"training must be a dict (epoch, history, ...) or None, got {type(training).__name__}")
        record["training"] = training
        record["rng"] = _rng_record(model.backend, tensors)
    _write(path, tensors, record)


def save_parameters(model, path) -> None:
    """Write only the parameters of `model`'s layers, with each layer's kind and shapes, for `load_parameters`."""
    _ready(model)
    tensors, layers = _layer_tensors(model.layers, configs=False)
    _write(path, tensors, _new_record("parameters", layers, tensors))


def save(layers, path) -> None:
    """Write a bare list of layers (the book's layer-by-layer code): their configs and parameters, for `load`."""
    tensors, entries = _layer_tensors(list(layers), configs=True)
    _write(path, tensors, _new_record("layers", entries, tensors))


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


def _host_arrays(component) -> dict:
    """Host copies of the arrays `component` keeps (its ARRAYS that are set)."""
    arrays = {}
    for name in component.ARRAYS:
        value = getattr(component, name, None)
        if _is_array(value):
            arrays[name] = component.backend.to_numpy(value)
    return arrays


def _is_array(value) -> bool:
    """An array (NumPy scalars included, which have a shape), not None or a plain Python number."""
    return value is not None and hasattr(value, "shape") and hasattr(value, "dtype")


def _layer_tensors(layers, *, configs: bool) -> tuple[dict, list]:
    tensors, entries = {}, []
    for index, layer in enumerate(layers):
        entry = {"kind": _kind(layer)}
        if configs:
            entry["config"] = _config(layer)
        arrays = _host_arrays(layer)
        if arrays:
            entry["shapes"] = {name: list(value.shape) for name, value in arrays.items()}
        tensors.update({f"layers.{index}.{name}": value for name, value in arrays.items()})
        entries.append(entry)
    return tensors, entries


def _new_record(content: str, layers: list, tensors: dict) -> dict:
    from nnx import __version__

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
    tensors.update({f"{role}.{name}": value for name, value in _host_arrays(component).items()})
    return {"kind": _kind(component), "config": _config(component)}


def _config(component) -> dict:
    """`get_config()`, with a dtype written as its canonical name ('float32') whatever the backend calls it."""
    config = component.get_config()
    if "dtype" in config and getattr(component, "dtype", None) is not None:
        config["dtype"] = _host.dtype_name(component.dtype)
    return config


def _optimizer_progress(model, tensors: dict) -> dict:
    """The optimizer's step count, learning rate and per-layer state (tensors `optimizer.{layer index}.{name}`)."""
    optimizer = model.optimizer
    positions = {id(layer): index for index, layer in enumerate(model.layers)}
    state_layers = []
    for layer, arrays in optimizer.state.items():
        index = positions.get(id(layer))
        if index is None:
            continue
        state_layers.append(index)
        tensors.update({f"optimizer.{index}.{name}": optimizer.backend.to_numpy(v) for name, v in arrays.items()})
    return {
        "iterations": int(optimizer.iterations),
        "current_learning_rate": float(optimizer.current_learning_rate),
        "state_layers": sorted(state_layers),
    }


def _rng_record(backend, tensors: dict) -> dict:
    keys, numbers = _host.numpy_rng_state()
    tensors[RNG_KEYS] = keys
    state = backend.rng_state()
    return {"numpy": numbers, "backend": None if state is None else {"name": backend.name, "state": state}}


def _write(path, tensors: dict, record: dict) -> None:
    """Serialize twice: the first pass lays out the tensors, whose table and bytes the checksum covers."""
    record = json.loads(_json(record))
    draft = safetensors.numpy.save(tensors, metadata={METADATA_KEY: _json(record)})
    header, data = _split(path, draft)
    record["checksum"] = _checksum(record, header, data)
    _atomic_write(path, safetensors.numpy.save(tensors, metadata={METADATA_KEY: _json(record)}))


def _json(record: dict) -> str:
    try:
        return json.dumps(record)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"cannot save: {error}; `training` and component configs may hold only numbers, strings, booleans, "
            f"None, lists and dicts with string keys"
        ) from error


def _checksum(record: dict, header: dict, data) -> str:
    """sha256 of the record (less its checksum), the tensor table (names, dtypes, shapes, offsets) and the data."""
    described = {key: value for key, value in record.items() if key != "checksum"}
    table = {key: value for key, value in header.items() if key != "__metadata__"}
    digest = hashlib.sha256(_canonical(described) + _canonical(table))
    digest.update(data)
    return digest.hexdigest()


def _canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _atomic_write(path, data: bytes) -> None:
    """Write `data` to `path` through a synced temporary file renamed over it: a crash leaves old or new, never torn."""
    target = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(target)
    mode = _file_mode(target)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_directory(directory)


def _file_mode(target: str) -> int:
    """The permissions the file gets: the old file's, else what the umask gives a new file."""
    with contextlib.suppress(OSError):
        return os.stat(target).st_mode & 0o7777
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _sync_directory(directory: str) -> None:
    """Make the rename itself durable where the platform allows it."""
    with contextlib.suppress(OSError, AttributeError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


# Loading ----------------------------------------------------------------------------------------------------------


def load_model(path, xp=None):
    """The Model saved in `path`, rebuilt on backend `xp` (None: the current one), bit for bit."""
    record, tensors = _read(path)
    _expect_content(path, record, ("model", "layers"), "load_model")
    backend = backends.get(xp)
    layers, layer_arrays, used = _rebuilt_layers(path, record, tensors, backend)
    with _host.numpy_rng_kept():
        parts = {role: _build(path, record[role], backend, role, ROLES[role]) for role in ROLES}
    parts = {role: part for role, part in parts.items() if part is not None}
    role_arrays = [_arrays(path, tensors, role, part, used) for role, part in parts.items()]
    state = _optimizer_state(path, record, tensors, parts.get("optimizer"), layers, used)
    _no_strays(path, tensors, used)
    model = _assembled(path, backend, layers, parts)
    _assign([*layers, *parts.values()], [*layer_arrays, *role_arrays])
    _restore_optimizer(parts.get("optimizer"), record["optimizer"], layers, state)
    return model


def _assembled(path, backend, layers: list, parts: dict):
    """A finalized Model of `layers` and the loss, optimizer and accuracy in `parts`."""
    from nnx.model import Model

    model = Model(xp=backend)
    try:
        for layer in layers:
            model.add(layer)
        model.set(**parts)
        model.finalize()
    except (TypeError, ValueError) as error:
        raise CheckpointError(path, f"its layers do not make a model ({error}); the file is corrupted") from error
    return model


def load(path, xp=None) -> list:
    """The bare list of layers saved in `path` (by `save`, or the layers of a `save_model` file), on backend `xp`."""
    record, tensors = _read(path)
    _expect_content(path, record, ("layers", "model"), "load")
    layers, layer_arrays, _ = _rebuilt_layers(path, record, tensors, backends.get(xp))
    _assign(layers, layer_arrays)
    return layers


def load_parameters(model, path) -> None:
    """Copy the parameters in `path` into `model`, whose layers must have the same kinds and shapes.

    Any mismatch is one ValueError listing every mismatched layer, raised before anything changes.
    """
    record, tensors = _read(path)
    layers = list(model.layers)
    _raise_misfit(path, _fit_problems(layers, record, tensors))
    layer_arrays = [_arrays(path, tensors, f"layers.{i}", layer, set(), cast=True) for i, layer in enumerate(layers)]
    _assign(layers, layer_arrays)


def restore_training(model, path) -> dict:
    """Resume from a `save_model(..., training=...)` checkpoint: put its parameters, optimizer state and step,
    learning rate, accuracy precision and RNG states into `model` (same architecture), and return `training`."""
    record, tensors = _read(path)
    _expect_content(path, record, ("model",), "restore_training")
    if not record["training"]:
        raise CheckpointError(path, "it holds no training state; write one with model.train(checkpoint=...)")
    _ready(model, "restore")
    layers = list(model.layers)
    _raise_misfit(path, _fit_problems(layers, record, tensors) + _optimizer_problem(model.optimizer, record))
    used = set()
    layer_arrays = [_arrays(path, tensors, f"layers.{i}", layer, used, cast=True) for i, layer in enumerate(layers)]
    accuracy = model.accuracy if _same_kind(model.accuracy, record["accuracy"]) else None
    accuracy_arrays = (
        {} if accuracy is None else _arrays(path, tensors, "accuracy", accuracy, used, cast=True, optional=True)
    )
    state = _optimizer_state(path, record, tensors, model.optimizer, layers, used, cast=True)
    rng = _rng_to_restore(path, record, tensors, model.backend, used)
    _no_strays(path, tensors, used, ignore=("loss.", "accuracy."))
    _restore_rng(path, model.backend, rng)
    _assign(layers, layer_arrays)
    if accuracy is not None:
        _assign([accuracy], [accuracy_arrays])
    _restore_optimizer(model.optimizer, record["optimizer"], layers, state)
    return dict(record["training"] or {})


# Reading and checking the file ------------------------------------------------------------------------------------


def _read(path) -> tuple[dict, dict]:
    """The file's nnx record and its tensors (host arrays), after every check a file can fail."""
    raw = _read_bytes(path)
    header, data = _split(path, raw)
    record = _check_record(path, header)
    _check_data(path, record, header, data)
    try:
        tensors = safetensors.numpy.load(raw)
    except Exception as error:  # safetensors raises its own SafetensorError, and others, on bad layouts
        raise CheckpointError(path, f"its tensors cannot be read ({error}); the file is corrupted") from error
    return record, tensors


def _read_bytes(path) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError as error:
        raise CheckpointError(path, "there is no such file; check the path, or save there first") from error
    except OSError as error:
        raise CheckpointError(path, f"it cannot be read ({error}); check the path and its permissions") from error


def _split(path, raw: bytes) -> tuple[dict, memoryview]:
    """The safetensors JSON header and the data bytes after it (the header length is 8 bytes, little-endian)."""
    if len(raw) < 8:
        raise CheckpointError(path, f"it is {len(raw)} bytes long, too short for a safetensors file: {_TRUNCATED}")
    size = int.from_bytes(raw[:8], "little")
    if size > _MAX_HEADER:
        raise CheckpointError(path, f"its header length field reads {size} bytes: {_NOT_SAFETENSORS}")
    if 8 + size > len(raw):
        raise CheckpointError(path, f"its {size}-byte header runs past the end of the file: {_TRUNCATED}")
    try:
        header = json.loads(raw[8 : 8 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise CheckpointError(path, f"its header is not JSON ({error}): {_NOT_SAFETENSORS}") from error
    if not isinstance(header, dict):
        raise CheckpointError(path, f"its header is not a JSON object: {_NOT_SAFETENSORS}")
    return header, memoryview(raw)[8 + size :]


_TRUNCATED = "the file was cut short (an interrupted copy or a full disk?); save it again or use an older checkpoint"
_NOT_SAFETENSORS = "it is corrupted, or not a safetensors file at all"
_CORRUPTED = "the file is corrupted or was edited by hand; save it again or use an older checkpoint"


def _check_record(path, header: dict) -> dict:
    metadata = header.get("__metadata__")
    text = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    if not isinstance(text, str):
        raise CheckpointError(
            path,
            "it is a safetensors file without nnx's metadata, so nnx did not write it; read it with "
            "safetensors.numpy.load_file, or save the model with nnx.io.save_model",
        )
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise CheckpointError(path, f"its nnx record is not JSON ({error}); {_CORRUPTED}") from error
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(path, f"its {METADATA_KEY!r} metadata is not an nnx record; {_CORRUPTED}")
    _check_version(path, record)
    _check_fields(path, record)
    return record


def _check_version(path, record: dict) -> None:
    version = record.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(path, f"its format_version {version!r} is not a positive integer; {_CORRUPTED}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            path,
            f"it was written by nnx {record.get('nnx_version')} in format version {version}, and this nnx reads "
            f"versions up to {FORMAT_VERSION}; upgrade nnx (pip install -U nnx-nnfs) to load it",
        )


def _check_fields(path, record: dict) -> None:
    configured = record.get("content") != "parameters"
    layers = record.get("layers")
    _require(path, record.get("content") in CONTENTS, f"'content' is not one of {', '.join(CONTENTS)}")
    _require(path, isinstance(record.get("checksum"), str), "it has no checksum")
    _require(path, isinstance(layers, list), "'layers' is not a list")
    _require(path, all(_is_entry(entry, configured) for entry in layers), "a layer has no kind or config")
    for role in ROLES:
        _require(path, record.get(role) is None or _is_entry(record[role], True), f"'{role}' has no kind or config")
    optimizer = record.get("optimizer")
    if optimizer is not None:
        _require(path, _is_count(optimizer.get("iterations")), "the optimizer's 'iterations' is not a count")
        rate = optimizer.get("current_learning_rate")
        _require(path, _is_number(rate), "the optimizer's 'current_learning_rate' is not a number")
        states = optimizer.get("state_layers")
        _require(path, isinstance(states, list) and all(map(_is_count, states)), "bad 'state_layers'")
    _require(path, record.get("training") is None or isinstance(record["training"], dict), "bad 'training'")
    _require(path, record.get("rng") is None or isinstance(record["rng"], dict), "bad 'rng'")


def _require(path, ok: bool, problem: str) -> None:
    if not ok:
        raise CheckpointError(path, f"its nnx record is malformed ({problem}); {_CORRUPTED}")


def _is_entry(entry, configured: bool) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
        return False
    return isinstance(entry.get("config"), dict) or not configured


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_data(path, record: dict, header: dict, data) -> None:
    try:
        end = max((int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError) as error:
        raise CheckpointError(path, f"its tensor table is malformed ({error!r}); {_CORRUPTED}") from error
    if len(data) < end:
        raise CheckpointError(path, f"its data stops at byte {len(data)} of {end}: {_TRUNCATED}")
    if len(data) > end:
        raise CheckpointError(path, f"{len(data) - end} stray bytes follow its last tensor; {_CORRUPTED}")
    if _checksum(record, header, data) != record["checksum"]:
        raise CheckpointError(path, f"its checksum does not match its contents; {_CORRUPTED}")


def _expect_content(path, record: dict, allowed: tuple[str, ...], reader: str) -> None:
    content = record["content"]
    if content in allowed:
        return
    advice = {
        "parameters": "it holds parameters only (from save_parameters): build the model in code and call "
        "nnx.io.load_parameters(model, path)",
        "layers": "it holds a bare list of layers (from save) with no optimizer state: load it with nnx.io.load(path)",
        "model": "it holds a whole model: load it with nnx.io.load_model(path)",
    }[content]
    raise CheckpointError(path, f"{reader} cannot use it: {advice}")


# Rebuilding components and their arrays ---------------------------------------------------------------------------


def _build(path, entry: dict | None, backend, where: str, base: type = Component, exclude: tuple = ()):
    """The component `entry` describes, built with `from_config` from the class registered under its kind."""
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
        raise CheckpointError(path, f"its {where} is of kind {kind!r}, which cannot serve as one; {_CORRUPTED}")
    try:
        return cls.from_config(config, xp=backend)
    except (TypeError, ValueError) as error:
        raise CheckpointError(path, f"its {where} ({kind}) cannot be rebuilt from {config!r}: {error}") from error


def _rebuilt_layers(path, record: dict, tensors: dict, backend) -> tuple[list, list, set]:
    """New layers built from the record (without moving NumPy's RNG on) and their checked arrays."""
    from nnx.model import Model

    exclude = (*ROLES.values(), Model)
    with _host.numpy_rng_kept():
        layers = [_build(path, e, backend, f"layer {i}", exclude=exclude) for i, e in enumerate(record["layers"])]
    used = set()
    arrays = [_arrays(path, tensors, f"layers.{i}", layer, used) for i, layer in enumerate(layers)]
    return layers, arrays, used


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
                raise CheckpointError(path, f"it has no tensor {key!r} for {component!r}; {_CORRUPTED}")
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
            raise CheckpointError(path, f"its tensor {key!r} is {dtype}, not a float; {_CORRUPTED}")
        return component.backend.asarray(host.copy(), dtype=dtype)
    want_shape, want_dtype = tuple(like.shape), _host.dtype_name(like.dtype)
    if tuple(host.shape) != want_shape or (dtype != want_dtype and not cast) or dtype not in _host.FLOAT_NAMES:
        raise CheckpointError(
            path,
            f"its tensor {key!r} is {dtype} {tuple(host.shape)}, but {component!r} needs {want_dtype} {want_shape}; "
            f"{_CORRUPTED}",
        )
    return component.backend.asarray(host.copy(), dtype=want_dtype)


def _assign(components: list, arrays: list) -> None:
    for component, values in zip(components, arrays, strict=True):
        for name, value in values.items():
            setattr(component, name, value)


def _no_strays(path, tensors: dict, used: set, ignore: tuple[str, ...] = ()) -> None:
    strays = sorted(key for key in tensors if key not in used and key != RNG_KEYS and not key.startswith(ignore))
    if strays:
        raise CheckpointError(path, f"its tensors {strays} are not described by its record; {_CORRUPTED}")


# Optimizer state and random number generators ---------------------------------------------------------------------


def _optimizer_state(path, record: dict, tensors: dict, optimizer, layers: list, used: set, *, cast=False) -> dict:
    """{layer index: {state name: array on the optimizer's backend}} for the layers the saved optimizer updated."""
    saved = record["optimizer"]
    if saved is None or optimizer is None:
        return {}
    names = [f"{kind}_{name}" for kind in _STATE_OWNERS for name in optimizer.STATE_NAMES]
    state = {}
    for index in saved["state_layers"]:
        layer = layers[index] if index < len(layers) else None
        if layer is None or not all(hasattr(layer, owner) for owner in _STATE_OWNERS.values()):
            raise CheckpointError(path, f"it holds optimizer state for layer {index}, which has no parameters")
        state[index] = {}
        for name in names:
            key = f"optimizer.{index}.{name}"
            if key not in tensors:
                raise CheckpointError(path, f"it has no tensor {key!r} for {optimizer!r}; {_CORRUPTED}")
            like = getattr(layer, _STATE_OWNERS[name.split("_", 1)[0]])
            state[index][name] = _device_array(path, key, tensors[key], like, optimizer, cast)
            used.add(key)
    return state


def _restore_optimizer(optimizer, saved: dict | None, layers: list, state: dict) -> None:
    if optimizer is None or saved is None:
        return
    optimizer.state = {layers[index]: arrays for index, arrays in state.items()}
    optimizer.iterations = saved["iterations"]
    optimizer.current_learning_rate = saved["current_learning_rate"]


def _rng_to_restore(path, record: dict, tensors: dict, backend, used: set) -> dict | None:
    """The saved RNG states, checked: NumPy's keys and numbers, and this backend's own state if it saved one."""
    rng = record["rng"]
    if rng is None:
        return None
    keys, numbers = tensors.get(RNG_KEYS), rng.get("numpy")
    if keys is None or keys.dtype.name != "uint32" or tuple(keys.shape) != (624,) or not _rng_numbers(numbers):
        raise CheckpointError(path, f"its saved NumPy RNG state is malformed; {_CORRUPTED}")
    used.add(RNG_KEYS)
    saved_backend = rng.get("backend")
    own = saved_backend.get("state") if isinstance(saved_backend, dict) else None
    same = isinstance(saved_backend, dict) and saved_backend.get("name") == backend.name
    return {"keys": keys.copy(), "numbers": numbers, "backend": own if same else None}


def _rng_numbers(numbers) -> bool:
    if not isinstance(numbers, dict) or not _is_number(numbers.get("cached_gaussian")):
        return False
    pos, has_gauss = numbers.get("pos"), numbers.get("has_gauss")
    return _is_count(pos) and pos <= 624 and has_gauss in (0, 1)


def _restore_rng(path, backend, rng: dict | None) -> None:
    if rng is None:
        return
    try:
        backend.set_rng_state(rng["backend"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(path, f"its saved {backend.name} RNG state cannot be restored ({error})") from error
    _host.set_numpy_rng_state(rng["keys"], rng["numbers"])


# Fitting saved parameters to a model ------------------------------------------------------------------------------


def _fit_problems(layers: list, record: dict, tensors: dict) -> list[str]:
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


def _raise_misfit(path, problems: list[str]) -> None:
    if problems:
        raise ValueError(
            f"the saved parameters in {str(path)!r} do not fit this model:\n  "
            + "\n  ".join(problems)
            + "\nbuild the model with the saved layers, or rebuild the saved one with nnx.io.load_model(path)"
        )


def _saved_shapes(record: dict, tensors: dict) -> dict[int, dict[str, tuple]]:
    """{layer index: {array name: shape}} of the saved layer tensors, in the order the record lists them."""
    listed = [f"layers.{i}.{name}" for i, entry in enumerate(record["layers"]) for name in entry.get("shapes") or ()]
    found: dict[int, dict[str, tuple]] = {}
    for key in [*listed, *sorted(tensors)]:
        parts = key.split(".")
        if key in tensors and len(parts) == 3 and parts[0] == "layers" and parts[1].isdigit():
            found.setdefault(int(parts[1]), {}).setdefault(parts[2], tuple(tensors[key].shape))
    return found


def _shapes(layer) -> dict[str, tuple]:
    if layer is None:
        return {}
    shapes = {}
    for name in getattr(layer, "ARRAYS", ()):
        value = getattr(layer, name, None)
        if _is_array(value):
            shapes[name] = tuple(value.shape)
    return shapes


def _layer_problem(index: int, layer, saved_kind: str, saved: dict) -> str | None:
    expected = _shapes(layer)
    kind = layer.kind() if isinstance(layer, Component) else type(layer).__name__
    if expected == saved and (not saved or kind == saved_kind):
        return None
    if not saved:
        return f"layer {index} {layer!r}: expected {_listing(expected)}; the file has no parameters there"
    if not expected:
        there = "no layer" if layer is None else f"{layer!r}, which has no parameters,"
        return f"layer {index}: the file has {saved_kind} parameters {_listing(saved)}; the model has {there} there"
    return f"layer {index} {layer!r}: expected {kind} {_listing(expected)}, found {saved_kind} {_listing(saved)}"


def _listing(shapes: dict) -> str:
    return ", ".join(f"{name} {shape}" for name, shape in shapes.items())


def _optimizer_problem(optimizer, record: dict) -> list[str]:
    saved = record["optimizer"]
    if saved is None or _same_kind(optimizer, saved):
        return []
    if optimizer is None:
        return [f"optimizer: the model has none, the file holds {saved['kind']}'s state (model.set(optimizer=...))"]
    return [f"optimizer: the model has {optimizer.kind()}, the file holds {saved['kind']}'s state"]


def _same_kind(component, saved: dict | None) -> bool:
    return component is not None and saved is not None and component.kind() == saved["kind"]
