"""Data sets on the host as NumPy arrays: the book's spiral, vertical and sine data (from the nnfs package) and
a Fashion-MNIST loader for a local copy (the book's PNG folders or the standard gzipped IDX files).

Nothing here downloads.
"""

from __future__ import annotations

import gzip
import numbers
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from nnfs import datasets as nnfs_datasets

from nnx import _checks
from nnx._component import FilePath
from nnx._paths import input_path
from nnx.backends._host import checked_seed

__all__ = ["fashion_mnist", "read_idx", "sine_data", "spiral_data", "vertical_data"]

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_DTYPES: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_NAMES = ", ".join(f"{name}.gz" for pair in IDX_FILES.values() for name in pair)


def spiral_data(samples: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The book's spiral data: `classes` interleaved arms of `samples` points each (from the nnfs package).

    The points are drawn with NumPy's global RNG, as nnfs draws them: seed it first with `nnx.seed`.

    Args:
        samples: The number of points per class, >= 1.
        classes: The number of classes (arms), >= 1.

    Returns:
        (X, y): X, float64 points shaped (samples * classes, 2); y, uint8 labels shaped (samples * classes,).
    """
    samples = _checks.positive_int(samples, "samples", "spiral_data")
    return nnfs_datasets.spiral_data(samples, _checks.positive_int(classes, "classes", "spiral_data"))


def vertical_data(samples: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The book's vertical data: `classes` clusters of `samples` points each (from the nnfs package).

    The points are drawn with NumPy's global RNG: seed it first with `nnx.seed`.

    Args:
        samples: The number of points per class, >= 1.
        classes: The number of classes (clusters), >= 1.

    Returns:
        (X, y): X, float64 points shaped (samples * classes, 2); y, uint8 labels shaped (samples * classes,).
    """
    samples = _checks.positive_int(samples, "samples", "vertical_data")
    return nnfs_datasets.vertical_data(samples, _checks.positive_int(classes, "classes", "vertical_data"))


def sine_data(samples: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The book's sine data: `samples` points of sin(2 pi x) for x evenly spaced on [0, 1), for regression.

    Args:
        samples: The number of points, >= 1: 1000, as in the book.

    Returns:
        (X, y): two float64 columns shaped (samples, 1), x and sin(2 pi x).
    """
    return nnfs_datasets.sine_data(_checks.positive_int(samples, "samples", "sine_data"))


def fashion_mnist(
    path: FilePath,
    *,
    shuffle: bool = True,
    scale: bool = True,
    flatten: bool = True,
    rng: np.random.Generator | np.random.RandomState | int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A local copy of Fashion-MNIST, prepared as in the book (chapter 19). Nothing is downloaded.

    Args:
        path: The folder that holds either the book's ``train/<label>/*.png`` and ``test/<label>/*.png``
            folders (reading them needs Pillow), or the four IDX files (``train-images-idx3-ubyte.gz``, ...,
            gzipped or not).
        shuffle: Whether to shuffle the training set (True, the default).
        scale: Whether to scale the pixels from [0, 255] to [-1, 1] as float32 (True, the default); False keeps
            uint8.
        flatten: Whether to flatten each 28x28 image into a row of 784 (True, the default).
        rng: What shuffles: None for NumPy's global RNG (the book's; seed it with `nnx.seed`), a
            `numpy.random.Generator` or `RandomState`, or an int seed for a new Generator.

    Returns:
        (X, y, X_test, y_test): the images, shaped (60000, 784) when flattened, and their integer labels 0-9.

    Raises:
        FileNotFoundError: if the folder holds neither layout.
        ValueError: if a file is corrupted or the images differ in size.
    """
    root = input_path(path, "fashion_mnist")
    shuffle, scale, flatten = (
        _checks.boolean(value, name, "fashion_mnist")
        for name, value in (("shuffle", shuffle), ("scale", scale), ("flatten", flatten))
    )
    shuffler = _shuffler(rng)
    if _has_png_folders(root):
        (X, y), (X_test, y_test) = _read_png_split(root / "train"), _read_png_split(root / "test")
    elif _idx_path(root, IDX_FILES["train"][0]) is not None:
        (X, y), (X_test, y_test) = _read_idx_split(root, "train"), _read_idx_split(root, "test")
    else:
        raise FileNotFoundError(
            f"fashion_mnist: no Fashion-MNIST data in {str(root)!r}: expected the folders train/<label>/*.png and "
            f"test/<label>/*.png, or the files {IDX_NAMES} (gzipped or not); download them once and pass their folder"
        )
    if shuffle:
        keys = np.arange(X.shape[0])
        shuffler(keys)
        X, y = X[keys], y[keys]
    return _prepare(X, scale, flatten), y, _prepare(X_test, scale, flatten), y_test


def _shuffler(rng: Any) -> Callable[[np.ndarray], None]:
    """The shuffle function `rng` stands for: NumPy's global one (the book's) for None, a new Generator's for a seed."""
    if rng is None:
        return np.random.shuffle
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng.shuffle
    if isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_)):
        return np.random.default_rng(checked_seed(rng, "fashion_mnist rng")).shuffle
    raise TypeError(
        f"fashion_mnist rng must be None, an int seed or a numpy.random.Generator, got {_checks.describe(rng)}; "
        f"pass e.g. rng=np.random.default_rng(0) or rng=0"
    )


def _prepare(images: np.ndarray, scale: bool, flatten: bool) -> np.ndarray:
    if flatten:
        images = images.reshape(images.shape[0], -1)
    if scale:
        images = (images.astype(np.float32) - 127.5) / 127.5
    return images


def _has_png_folders(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "test").is_dir()


def _read_png_split(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(
            'reading the PNG folders needs Pillow: pip install "nnx-nnfs[images]" (or use the IDX files)'
        ) from error
    labels = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name))
    if not labels or not all(p.name.isdigit() for p in labels):
        raise ValueError(f"fashion_mnist: {str(folder)!r} must hold one folder per class; name them 0, 1, 2, ...")
    images: list[np.ndarray] = []
    targets: list[int] = []
    for label in labels:
        for file in sorted(label.glob("*.png")):
            with Image.open(file) as image:
                images.append(np.asarray(image.convert("L"), dtype=np.uint8))
            targets.append(int(label.name))
    if not images:
        raise ValueError(f"fashion_mnist: no PNG images under {str(folder)!r}; put each class's images in its folder")
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise ValueError(
            f"fashion_mnist: images under {str(folder)!r} differ in size: {sorted(shapes)}; resize them to one size"
        )
    return np.stack(images), np.array(targets, dtype=np.uint8)


def _idx_path(root: Path, name: str) -> Path | None:
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.is_file():
            return candidate
    return None


def _read_idx_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for name in IDX_FILES[split]:
        file = _idx_path(root, name)
        if file is None:
            raise FileNotFoundError(
                f"fashion_mnist: missing {name}.gz (or {name}) in {str(root)!r}; download it into that folder"
            )
        arrays.append(read_idx(file))
    images, labels = arrays
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"fashion_mnist: {split} images and labels disagree in count: {images.shape[0]} and {labels.shape[0]}; "
            f"download both files again"
        )
    return images, labels


def read_idx(path: FilePath) -> np.ndarray:
    """Read one IDX file, the format of the original MNIST and Fashion-MNIST files.

    Args:
        path: The file; gzipped if its name ends in .gz.

    Returns:
        A NumPy array of the type and shape its header declares, in native byte order.

    Raises:
        FileNotFoundError: if there is no such file.
        ValueError: if it is not an IDX file, or is truncated, padded or a broken gzip.
    """
    path = input_path(path, "read_idx")
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise ValueError(
            f"read_idx: {str(path)!r} is not an IDX file (bad magic number); pass one of the files {IDX_NAMES}"
        )
    dtype, ndim = np.dtype(IDX_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"read_idx: {str(path)!r} is truncated or padded: {len(data)} bytes, its header says {expected}; "
            f"download it again"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, unzipped if its name ends in .gz; a missing or corrupt file is an error naming it."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as stream:
            return stream.read()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"read_idx: there is no file {str(path)!r}; check the path (the Fashion-MNIST files are {IDX_NAMES})"
        ) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(
            f"read_idx: {str(path)!r} is not a gzip-compressed IDX file ({error}); download it again, or drop the "
            f".gz from the name of an uncompressed file"
        ) from None
