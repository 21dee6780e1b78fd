"""Saving and loading models, parameters and training checkpoints as safetensors files, never pickle.

`nnx.io.format` is the file (record, checksum, atomic write, validation); `nnx.io.mapping` turns objects into
records and back.
"""

from nnx.io.mapping import load, load_model, load_parameters, restore_training, save, save_model, save_parameters

__all__ = ["load", "load_model", "load_parameters", "restore_training", "save", "save_model", "save_parameters"]
