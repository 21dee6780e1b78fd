"""Data sets: the book's spiral, vertical and sine data (from the nnfs package), as NumPy arrays on the host."""

from __future__ import annotations

from nnfs.datasets import sine_data, spiral_data, vertical_data

__all__ = ["sine_data", "spiral_data", "vertical_data"]
