"""Rebuilding what a file describes: components from their kind and config (through the component registry, never
by importing or running code a file names), their arrays checked against the file's tensors, the optimizer's
per-layer state, and the RNG states."""

from __future__ import annotations

from typing import Any

from nnx._component import Component, component_class
from nnx.backends import _host
from nnx.errors import CheckpointError
from nnx.io.fit import is_array
from nnx.io.format import CORRUPTED, is_count, is_number
from nnx.io.kinds import Lookup, lookup, where_to_find
from nnx.losses import Loss
from nnx.metrics import Accuracy
from nnx.optimizers import PARAMETERS, Optimizer

ROLES = {"loss": Loss, "optimizer": Optimizer, "accuracy": Accuracy}
RNG_KEYS = "rng.numpy.keys"
MODEL_KIND = "Model"  # the registered name of nnx.Model, found through the component registry


# Rebuilding components and their arrays ---------------------------------------------------------------------------


def build_model(
    path: Any,
    entry: dict[str, Any] | None,
    backend: Any,
    where: str,
    base: type = Component,
    exclude: tuple[type, ...] = (),
    stored: dict[str, Any] | None = None,
    find: Lookup | None = None,
) -> Any:
    """The component `entry` describes, built with `from_config` from the class `find` gives for its kind (by
    default, as `nnx.io.kinds.lookup()` finds it), after checking the shapes its config declares against the
    `stored` tensors ({name: host array}) when given."""
    if entry is None:
        return None
    kind, config = entry["kind"], entry["config"]
    try:
        cls = (find or lookup())(kind)
    except ValueError as error:
        raise CheckpointError(path, f"its {where} is of kind {kind!r}: {error}") from error
    if cls is None:
        raise CheckpointError(
            path,
            f"its {where} is of kind {kind!r}, which this program does not define; {where_to_find(kind)} (nnx "
            f"never imports or runs code a file names)",
        )
    if not issubclass(cls, base) or issubclass(cls, exclude):
        raise CheckpointError(path, f"its {where} is of kind {kind!r}, which cannot serve as one; {CORRUPTED}")
    _check_declared_shapes(path, cls, config, where, stored)
    try:
        return cls.from_config(config, xp=backend)
    except (TypeError, ValueError) as error:
        raise CheckpointError(path, f"its {where} ({kind}) cannot be rebuilt from {config!r}: {error}") from error


def _check_declared_shapes(
    path: Any, cls: type[Component], config: dict[str, Any], where: str, stored: dict[str, Any] | None
) -> None:
    if stored is None:
        return
    declared = cls.config_shapes(config)
    for name, shape in (declared or {}).items():
        if name in stored and tuple(stored[name].shape) != tuple(
            shape
        ):  # a missing tensor is `record_arrays`' to report
            raise CheckpointError(
                path,
                f"its {where} declares {name} of shape {tuple(shape)}, but the file has a tensor {name} of shape "
                f"{tuple(stored[name].shape)} there; {CORRUPTED}",
            )


def rebuilt_layers(
    path: Any, record: dict[str, Any], tensors: dict[str, Any], backend: Any, find: Lookup | None = None
) -> tuple[list[Any], list[dict[str, Any]], set[str]]:
    """New layers built from the record (without moving NumPy's RNG on) and their checked arrays."""
    exclude = (*ROLES.values(), *[cls for cls in (component_class(MODEL_KIND),) if cls is not None])
    with _host.numpy_rng_kept():
        layers = [
            build_model(
                path, entry, backend, f"layer {i}", exclude=exclude, stored=_stored(tensors, f"layers.{i}."), find=find
            )
            for i, entry in enumerate(record["layers"])
        ]
    used: set[str] = set()
    arrays = [record_arrays(path, tensors, f"layers.{i}", layer, used) for i, layer in enumerate(layers)]
    return layers, arrays, used


def _stored(tensors: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {key.removeprefix(prefix): value for key, value in tensors.items() if key.startswith(prefix)}


def record_arrays(
    path: Any,
    tensors: dict[str, Any],
    prefix: str,
    component: Any,
    used: set[str],
    *,
    cast: bool = False,
    optional: bool = False,
) -> dict[str, Any]:
    """`component`'s arrays from tensors `{prefix}.{name}`, checked and copied to its backend (None if absent).

    Shapes must match the arrays it has; dtypes too unless `cast` (then they become its dtype). Absent tensors
    are errors unless `optional` or the component holds no array there.
    """
    result: dict[str, Any] = {}
    for name in component.ARRAYS:
        key, current = f"{prefix}.{name}", getattr(component, name, None)
        has_array = is_array(current)
        if key not in tensors:
            if has_array and not optional:
                raise CheckpointError(path, f"it has no tensor {key!r} for {component!r}; {CORRUPTED}")
            result[name] = None
            continue
        result[name] = _device_array(path, key, tensors[key], current if has_array else None, component, cast)
        used.add(key)
    return result


def _device_array(path: Any, key: str, host: Any, like: Any, component: Any, cast: bool) -> Any:
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


def assign(components: list[Any], arrays: list[dict[str, Any]]) -> None:
    for component, values in zip(components, arrays, strict=True):
        for name, value in values.items():
            setattr(component, name, value)


def no_strays(path: Any, tensors: dict[str, Any], used: set[str], ignore: tuple[str, ...] = ()) -> None:
    strays = sorted(key for key in tensors if key not in used and key != RNG_KEYS and not key.startswith(ignore))
    if strays:
        raise CheckpointError(path, f"its tensors {strays} are not described by its record; {CORRUPTED}")


# Optimizer state and random number generators ---------------------------------------------------------------------


def optimizer_state(
    path: Any,
    record: dict[str, Any],
    tensors: dict[str, Any],
    optimizer: Any,
    layers: list[Any],
    used: set[str],
    *,
    cast: bool = False,
) -> dict[int, dict[str, Any]]:
    """{layer index: {slot name: array on the optimizer's backend}} for the layers the saved optimizer updated."""
    saved = record["optimizer"]
    if saved is None or optimizer is None:
        return {}
    state: dict[int, dict[str, Any]] = {}
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


def check_state(optimizer: Any, layers: list[Any]) -> None:
    """Refuse, before a file is written, optimizer state that loading could not restore: per layer, exactly the
    slots `STATE_NAMES` names ('weight_<name>', 'bias_<name>'), each an array shaped and typed like its parameter."""
    state = optimizer.state_dict(layers)["slots"]
    expected, kind = optimizer.slot_names(), type(optimizer).__name__
    for position, arrays in state.items():
        layer = layers[position]
        unknown, missing = sorted(set(arrays) - set(expected)), sorted(set(expected) - set(arrays))
        if unknown or missing:
            names = sorted({name.split("_", 1)[-1] for name in unknown})
            raise ValueError(
                f"cannot save {optimizer!r}: it keeps the state {sorted(arrays)} for {layer!r}, but its "
                f"{kind}.STATE_NAMES {tuple(optimizer.STATE_NAMES)!r} make the slots {expected}, so the file could "
                f"not be loaded; name every state array in STATE_NAMES (e.g. STATE_NAMES = {tuple(names)!r}) and "
                f"keep it in state['weight_<name>'] and state['bias_<name>']"
            )
        for name, value in arrays.items():
            like = getattr(layer, PARAMETERS[name.split("_", 1)[0]])
            if not is_array(value) or tuple(value.shape) != tuple(like.shape) or value.dtype != like.dtype:
                got = f"{_host.dtype_name(value.dtype)} {tuple(value.shape)}" if is_array(value) else repr(value)
                raise ValueError(
                    f"cannot save {optimizer!r}: its state {name!r} for {layer!r} is {got}, but a file keeps each "
                    f"slot shaped and typed like its parameter ({_host.dtype_name(like.dtype)} {tuple(like.shape)}); "
                    f"make update_array keep arrays like self.xp.zeros_like(values) there"
                )


def restore_optimizer(path: Any, model: Any, saved: dict[str, Any] | None, state: dict[int, dict[str, Any]]) -> None:
    """Hand the optimizer its saved progress through `load_state_dict` (which checks it all first)."""
    optimizer = model.optimizer
    if optimizer is None or saved is None:
        return
    position_of = {index: position for position, index in enumerate(layer_indices(model))}
    slots = {position_of[index]: arrays for index, arrays in state.items()}
    progress = {"iterations": saved["iterations"], "current_learning_rate": saved["current_learning_rate"]}
    try:
        optimizer.load_state_dict({**progress, "slots": slots}, model.trainable_layers, copy=False)
    except (TypeError, ValueError) as error:
        raise CheckpointError(path, f"its optimizer state cannot be restored ({error}); {CORRUPTED}") from error


def rng_to_restore(
    path: Any, record: dict[str, Any], tensors: dict[str, Any], backend: Any, used: set[str]
) -> dict[str, Any] | None:
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


def _rng_numbers(numbers: Any) -> bool:
    if not isinstance(numbers, dict) or not is_number(numbers.get("cached_gaussian")):
        return False
    pos, has_gauss = numbers.get("pos"), numbers.get("has_gauss")
    return is_count(pos) and pos <= 624 and has_gauss in (0, 1)


def restore_rng(path: Any, backend: Any, rng: dict[str, Any] | None) -> None:
    if rng is None:
        return
    try:
        backend.set_rng_state(rng["backend"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(path, f"its saved {backend.name} RNG state cannot be restored ({error})") from error
    _host.set_numpy_rng_state(rng["keys"], rng["numbers"])


def layer_indices(model: Any) -> list[int]:
    """The index in `model.layers` of each trainable layer, by its trainable position."""
    positions = {id(layer): index for index, layer in enumerate(model.layers)}
    return [positions[id(layer)] for layer in model.trainable_layers]
