"""The data sets: the book's generators, and the Fashion-MNIST loader on small files made here."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from nnfs import datasets as nnfs_datasets

import nnx
from nnx.datasets import fashion_mnist, read_idx


def write_idx(path, array: np.ndarray, *, compress: bool = True) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    with (gzip.open if compress else open)(path, "wb") as stream:
        stream.write(data)


def fake_images(rng, labels: np.ndarray) -> np.ndarray:
    """28x28 noise images in which each label lights its own two rows."""
    images = rng.integers(0, 30, size=(labels.shape[0], 28, 28)).astype(np.uint8)
    for image, label in zip(images, labels, strict=True):
        image[2 * label : 2 * label + 2] = 255
    return images


def write_idx_dataset(folder, rng, n_train: int = 30, n_test: int = 10, compress: bool = True) -> dict:
    suffix = ".gz" if compress else ""
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        labels = np.arange(n) % 10
        images = fake_images(rng, labels)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, compress=compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress=compress)
        out[split] = (images, labels)
    return out


def write_png_dataset(folder, rng, per_class: int = 2) -> dict:
    from PIL import Image

    out = {}
    for split in ("train", "test"):
        images, labels = [], []
        for label in range(10):
            (folder / split / str(label)).mkdir(parents=True)
            for index in range(per_class):
                image = fake_images(rng, np.array([label]))[0]
                Image.fromarray(image).save(folder / split / str(label) / f"{index:04d}.png")
                images.append(image)
                labels.append(label)
        out[split] = (np.stack(images), np.array(labels))
    return out


@pytest.mark.parametrize("compress", [True, False])
def test_idx_files(tmp_path, compress):
    written = write_idx_dataset(tmp_path, np.random.default_rng(0), compress=compress)
    X, y, X_test, y_test = fashion_mnist(tmp_path, shuffle=False)
    images, labels = written["train"]
    assert X.shape == (30, 784) and X.dtype == np.float32
    np.testing.assert_allclose(X, (images.reshape(30, -1) - 127.5) / 127.5)
    np.testing.assert_array_equal(y, labels)
    assert X_test.shape == (10, 784) and y_test.shape == (10,)
    assert X.min() >= -1 and X.max() <= 1


def test_png_folders(tmp_path):
    pytest.importorskip("PIL")
    written = write_png_dataset(tmp_path, np.random.default_rng(0))
    X, y, X_test, _ = fashion_mnist(tmp_path, shuffle=False, scale=False, flatten=False)
    images, labels = written["train"]
    np.testing.assert_array_equal(X, images)
    np.testing.assert_array_equal(y, labels)
    assert X_test.shape == (20, 28, 28)


def test_shuffle_uses_the_global_rng_like_the_book(tmp_path):
    write_idx_dataset(tmp_path, np.random.default_rng(0))
    unshuffled, labels, *_ = fashion_mnist(tmp_path, shuffle=False)
    nnx.seed(5)
    X, y, *_ = fashion_mnist(tmp_path)
    nnx.seed(5)
    keys = np.arange(30)
    np.random.shuffle(keys)
    np.testing.assert_array_equal(X, unshuffled[keys])
    np.testing.assert_array_equal(y, labels[keys])


def test_missing_data_says_what_to_put_there(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train/<label>/\*\.png.*train-images-idx3-ubyte\.gz"):
        fashion_mnist(tmp_path)


def test_corrupt_idx_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short.gz", np.zeros((2, 3)))
    with gzip.open(tmp_path / "short.gz") as stream:
        data = stream.read()[:-1]
    (tmp_path / "short").write_bytes(data)
    with pytest.raises(ValueError, match="truncated or padded"):
        read_idx(tmp_path / "short")


def test_book_generators_are_reexported():
    nnx.seed(0)
    X, y = nnx.datasets.spiral_data(samples=10, classes=3)
    assert X.shape == (30, 2) and y.shape == (30,)
    X, y = nnx.datasets.vertical_data(samples=10, classes=2)
    assert X.shape == (20, 2)
    X, y = nnx.datasets.sine_data(samples=50)
    assert X.shape == y.shape == (50, 1)


# Bad input is refused up front, naming the function and argument ---------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: nnx.datasets.spiral_data(samples=-1, classes=3), ValueError, "spiral_data samples must be a positive"),
        (lambda: nnx.datasets.spiral_data(samples=2.5, classes=3), ValueError, "spiral_data samples must be a"),
        (lambda: nnx.datasets.spiral_data(samples="100", classes=3), TypeError, "spiral_data samples must be"),
        (lambda: nnx.datasets.spiral_data(samples=10, classes=0), ValueError, "spiral_data classes must be a positive"),
        (lambda: nnx.datasets.vertical_data(samples=-5, classes=3), ValueError, "vertical_data samples must be"),
        (lambda: nnx.datasets.vertical_data(samples=5, classes=True), TypeError, "vertical_data classes must be"),
        (lambda: nnx.datasets.sine_data(samples=-1), ValueError, "sine_data samples must be a positive integer"),
        (lambda: nnx.datasets.sine_data(samples=0), ValueError, "sine_data samples must be a positive integer"),
    ],
)
def test_book_generators_refuse_bad_sizes(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_book_generators_keep_the_books_numbers():
    for ours, theirs, args in (
        (nnx.datasets.spiral_data, nnfs_datasets.spiral_data, (100, 3)),
        (nnx.datasets.vertical_data, nnfs_datasets.vertical_data, (np.int64(20), 2)),
        (nnx.datasets.sine_data, nnfs_datasets.sine_data, (50,)),
    ):
        nnx.seed(0)
        expected = theirs(*(int(arg) for arg in args))
        nnx.seed(0)
        for got, want in zip(ours(*args), expected, strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"shuffle": "no"}, TypeError, "fashion_mnist shuffle must be True or False, got 'no'"),
        ({"scale": 1}, TypeError, "fashion_mnist scale must be True or False"),
        ({"flatten": None}, TypeError, "fashion_mnist flatten must be True or False"),
        ({"rng": "x"}, TypeError, r"fashion_mnist rng must be None, an int seed or a numpy.random.Generator.*rng=0"),
        ({"rng": 1.5}, TypeError, "fashion_mnist rng must be None"),
        ({"rng": True}, TypeError, "fashion_mnist rng must be None"),
        ({"rng": -1}, ValueError, "fashion_mnist rng expects an integer in"),
    ],
)
def test_fashion_mnist_refuses_bad_options_before_reading(tmp_path, options, error, message):
    with pytest.raises(error, match=message):
        fashion_mnist(tmp_path, **options)  # an empty folder: the option is refused before the data is looked for


def test_fashion_mnist_names_its_path_argument():
    with pytest.raises(TypeError, match=r"fashion_mnist: the path must be a str, bytes or os\.PathLike.*got NoneType"):
        fashion_mnist(None)


def test_fashion_mnist_expands_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_idx_dataset(tmp_path, np.random.default_rng(0))
    X, *_ = fashion_mnist("~", shuffle=False)
    assert X.shape == (30, 784)


def test_fashion_mnist_shuffles_with_an_int_seed_or_a_generator(tmp_path):
    write_idx_dataset(tmp_path, np.random.default_rng(0))
    unshuffled, labels, *_ = fashion_mnist(tmp_path, shuffle=False)
    keys = np.arange(30)
    np.random.default_rng(42).shuffle(keys)
    for rng in (42, np.int64(42), np.random.default_rng(42)):
        X, y, *_ = fashion_mnist(tmp_path, rng=rng)
        np.testing.assert_array_equal(X, unshuffled[keys])
        np.testing.assert_array_equal(y, labels[keys])


def test_read_idx_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"read_idx: there is no file .*missing-idx1-ubyte'; check the path"):
        read_idx(tmp_path / "missing-idx1-ubyte")


def test_read_idx_names_a_corrupt_gzip_file(tmp_path):
    (tmp_path / "x.gz").write_bytes(b"\x00\x00\x08\x01 not gzip")
    with pytest.raises(ValueError, match=r"read_idx: .*x\.gz' is not a gzip-compressed IDX file .*download it again"):
        read_idx(tmp_path / "x.gz")
    write_idx(tmp_path / "cut.gz", np.zeros((50, 50)))
    (tmp_path / "cut.gz").write_bytes((tmp_path / "cut.gz").read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"read_idx: .*cut\.gz' is not a gzip-compressed IDX file"):
        read_idx(tmp_path / "cut.gz")


def test_fashion_mnist_names_a_corrupt_file_in_its_folder(tmp_path):
    write_idx_dataset(tmp_path, np.random.default_rng(0))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"damaged")
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz' is not a gzip-compressed IDX file"):
        fashion_mnist(tmp_path)
