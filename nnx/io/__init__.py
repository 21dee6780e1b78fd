"""Saving and loading models, parameters and training checkpoints as safetensors files, never pickle.

`save_model` and `load_model` keep a whole model (what `Model.save` and `Model.load` call); `save_parameters` and
`load_parameters` only its parameters (the book's chapter 21); `save` and `load` a bare list of layers (the book's
layer-by-layer code); `restore_training` resumes from a checkpoint. Loading never runs code that a file names.
"""

from __future__ import annotations

import warnings
from typing import Any

from nnx import _paths
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
    "restore_training",
    "save",
    "save_model",
    "save_parameters",
]


def __getattr__(name: str) -> Any:
    """Names that left `nnx.io`, for one release, with a DeprecationWarning."""
    if name == "output_path":
        warnings.warn(
            "nnx.io.output_path is private since 0.2 and will be removed: it is nnx's internal check of a path "
            "before writing (nnx._paths.output_path); check your own paths with pathlib",
            DeprecationWarning,
            stacklevel=2,
        )
        return _paths.output_path
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
