"""Saving and loading models, parameters and training checkpoints as safetensors files, never pickle.

`nnx.io.format` is the file (record, checksum, atomic write, validation); `nnx.io.mapping` turns objects into
records and back; `nnx.io.resume` restores a training run from a checkpoint.
"""

from nnx._paths import output_path
from nnx.io.mapping import (
    load,
    load_model,
    load_parameters,
    model_bytes,
    model_from_bytes,
    save,
    save_model,
    save_parameters,
)
from nnx.io.resume import restore_training

__all__ = [
    "load",
    "load_model",
    "load_parameters",
    "model_bytes",
    "model_from_bytes",
    "output_path",
    "restore_training",
    "save",
    "save_model",
    "save_parameters",
]
