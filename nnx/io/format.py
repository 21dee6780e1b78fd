"""The nnx file format: a safetensors file whose metadata holds one JSON record with a SHA-256 checksum.

Writing is atomic; reading checks everything a file can get wrong (length, header, record, version, checksum) and
names the file and the problem in a `CheckpointError`. What the record means for objects is `nnx.io.mapping`.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, TypeGuard

import safetensors.numpy

from nnx._component import FilePath
from nnx._paths import atomic_write, input_path
from nnx.errors import CheckpointError

FORMAT = "nnx"
FORMAT_VERSION = 1
METADATA_KEY = "nnx"
CONTENTS = ("model", "parameters", "layers")
ROLE_NAMES = ("loss", "optimizer", "accuracy")
_MAX_HEADER = 100_000_000


# Writing ----------------------------------------------------------------------------------------------------------


def write(path: FilePath, tensors: dict[str, Any], record: dict[str, Any]) -> None:
    """Write the file atomically to `path` (checked first with `output_path`)."""
    atomic_write(path, dumps(tensors, record))


def dumps(tensors: dict[str, Any], record: dict[str, Any]) -> bytes:
    """The file's bytes. Serialized twice: the first pass lays out the tensors, whose table and bytes the checksum
    covers."""
    record = json.loads(_json(record))
    draft = safetensors.numpy.save(tensors, metadata={METADATA_KEY: _json(record)})
    header, data = _split("<memory>", draft)
    record["checksum"] = _checksum(record, header, data)
    return safetensors.numpy.save(tensors, metadata={METADATA_KEY: _json(record)})


def _json(record: dict[str, Any]) -> str:
    try:
        return json.dumps(record)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"cannot save: {error}; `training` and component configs may hold only numbers, strings, booleans, "
            f"None, lists and dicts with string keys"
        ) from error


def _checksum(record: dict[str, Any], header: dict[str, Any], data: bytes | memoryview) -> str:
    """sha256 of the record (less its checksum), the tensor table (names, dtypes, shapes, offsets) and the data."""
    described = {key: value for key, value in record.items() if key != "checksum"}
    table = {key: value for key, value in header.items() if key != "__metadata__"}
    digest = hashlib.sha256(_canonical(described) + _canonical(table))
    digest.update(data)
    return digest.hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# Reading and checking a file ------------------------------------------------------------------------------------


def read(path: FilePath) -> tuple[dict[str, Any], dict[str, Any]]:
    """The file's nnx record and its tensors (host arrays), after every check a file can fail."""
    return loads(_read_bytes(path), path)


def loads(raw: bytes, path: Any = "<memory>") -> tuple[dict[str, Any], dict[str, Any]]:
    """The record and tensors of a file's bytes (`dumps`), checked as `read` checks a file; `path` names it."""
    header, data = _split(path, raw)
    record = _check_record(path, header)
    _check_data(path, record, header, data)
    try:
        tensors = safetensors.numpy.load(raw)
    except Exception as error:  # safetensors raises its own SafetensorError, and others, on bad layouts
        raise CheckpointError(path, f"its tensors cannot be read ({error}); the file is corrupted") from error
    return record, tensors


def _read_bytes(path: FilePath) -> bytes:
    path = input_path(path, "loading a file")
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError as error:
        raise CheckpointError(path, "there is no such file; check the path, or save there first") from error
    except OSError as error:
        raise CheckpointError(path, f"it cannot be read ({error}); check the path and its permissions") from error


def _split(path: Any, raw: bytes) -> tuple[dict[str, Any], memoryview]:
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
CORRUPTED = "the file is corrupted or was edited by hand; save it again or use an older checkpoint"


def _check_record(path: Any, header: dict[str, Any]) -> dict[str, Any]:
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
        raise CheckpointError(path, f"its nnx record is not JSON ({error}); {CORRUPTED}") from error
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(path, f"its {METADATA_KEY!r} metadata is not an nnx record; {CORRUPTED}")
    _check_version(path, record)
    _check_fields(path, record)
    return record


def _check_version(path: Any, record: dict[str, Any]) -> None:
    version = record.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(path, f"its format_version {version!r} is not a positive integer; {CORRUPTED}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            path,
            f"it was written by nnx {record.get('nnx_version')} in format version {version}, and this nnx reads "
            f"versions up to {FORMAT_VERSION}; upgrade nnx (pip install -U nnx-nnfs) to load it",
        )


def _check_fields(path: Any, record: dict[str, Any]) -> None:
    configured = record.get("content") != "parameters"
    layers: Any = record.get("layers")
    _require(path, record.get("content") in CONTENTS, f"'content' is not one of {', '.join(CONTENTS)}")
    _require(path, isinstance(record.get("checksum"), str), "it has no checksum")
    _require(path, isinstance(layers, list), "'layers' is not a list")
    _require(path, all(_is_entry(entry, configured) for entry in layers), "a layer has no kind or config")
    for role in ROLE_NAMES:
        _require(path, record.get(role) is None or _is_entry(record[role], True), f"'{role}' has no kind or config")
    optimizer = record.get("optimizer")
    if optimizer is not None:
        _require(path, is_count(optimizer.get("iterations")), "the optimizer's 'iterations' is not a count")
        rate = optimizer.get("current_learning_rate")
        _require(path, is_number(rate) and 0 < rate < math.inf, "the optimizer's 'current_learning_rate' is not > 0")
        states = optimizer.get("state_layers")
        _require(path, isinstance(states, list) and all(map(is_count, states)), "bad 'state_layers'")
    _require(path, record.get("training") is None or isinstance(record["training"], dict), "bad 'training'")
    _require(path, record.get("rng") is None or isinstance(record["rng"], dict), "bad 'rng'")


def _require(path: Any, ok: bool, problem: str) -> None:
    if not ok:
        raise CheckpointError(path, f"its nnx record is malformed ({problem}); {CORRUPTED}")


def _is_entry(entry: Any, configured: bool) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
        return False
    return isinstance(entry.get("config"), dict) or not configured


def is_count(value: object) -> TypeGuard[int]:
    """Whether `value` is an int >= 0 (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_number(value: object) -> TypeGuard[int | float]:
    """Whether `value` is an int or a float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_data(path: Any, record: dict[str, Any], header: dict[str, Any], data: memoryview) -> None:
    try:
        end = max((int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError) as error:
        raise CheckpointError(path, f"its tensor table is malformed ({error!r}); {CORRUPTED}") from error
    if len(data) < end:
        raise CheckpointError(path, f"its data stops at byte {len(data)} of {end}: {_TRUNCATED}")
    if len(data) > end:
        raise CheckpointError(path, f"{len(data) - end} stray bytes follow its last tensor; {CORRUPTED}")
    if _checksum(record, header, data) != record["checksum"]:
        raise CheckpointError(path, f"its checksum does not match its contents; {CORRUPTED}")


def expect_content(path: Any, record: dict[str, Any], allowed: tuple[str, ...], reader: str) -> None:
    """A CheckpointError unless the file's content is one of `allowed`, saying which reader fits it."""
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
