"""Saving and loading models, parameters and training checkpoints as safetensors files, never pickle.

`save_model` and `load_model` keep a whole model (what `Model.save` and `Model.load` call); `save_parameters` and
`load_parameters` only its parameters (the book's chapter 21); `save` and `load` a bare list of layers (the book's
layer-by-layer code); `restore_training` resumes from a checkpoint; `export_onnx` writes a model's inference graph
as ONNX for other runtimes (the ``onnx`` extra). Loading never runs code that a file names.
"""

from __future__ import annotations

from nnx.backends._moved import moved_names
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
from nnx.io.onnx_export import OnnxGraph, export_onnx
from nnx.io.resume import restore_training

__all__ = [
    "OnnxGraph",
    "export_onnx",
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


__getattr__ = moved_names(__name__, {"output_path": "nnx._paths"})  # left the public API in 0.2
