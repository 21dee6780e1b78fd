"""Data that does not fit in memory, read batch by batch: an iterable of (X, y) batches, or a chunked array pair
(Zarr, Dask, HDF5 or any array-like with `shape`, `dtype` and slicing that reads on demand).

Each batch is read, checked as in-memory data are (`nnx.training.data.checked_data`) and copied to the model's
backend once. With `prefetch` batches ahead (`READ_AHEAD` by default on an accelerator), that happens on a
background thread, so that reading overlaps computing; an error there surfaces in the training thread, naming the
batch. On the CPU, where the kernels already spread a large batch over every core, a reader thread would only take
cores from them, so by default each batch is read in the training thread when it is needed (`prefetch=0`).

Shuffling is per epoch, seeded with (seed, epoch): a chunked array's read units in a new order, then its rows
within a window of about `BUFFER_BATCHES` batches. An iterable of batches keeps its own order.

The libraries behind the arrays are never imported here: a Zarr or Dask array is known by its attributes and read
through its own slicing, on the host (with NumPy) before the one copy per batch.
"""

from __future__ import annotations

import contextvars
import numbers
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from nnx import _checks
from nnx.backends._host import SEED_LIMIT, host_array
from nnx.training.data import checked_data, checked_inputs

READ_AHEAD = 2  # batches a reader thread prepares ahead of the one training, with prefetch="auto"
JOIN_SECONDS = 5.0  # how long closing a reader waits for the read in progress
BUFFER_BATCHES = 10  # with shuffling, rows are shuffled within windows of about this many batches
IN_MEMORY_LIBRARIES = ("numpy", "pandas", "polars", "cupy", "torch", "jax", "jaxlib", "array_api_strict")
_END = object()


# What is streamed ----------------------------------------------------------------------------------------------------


def is_chunked_array(x: Any) -> bool:
    """Whether `x` is an array read on demand by slicing (Zarr, Dask, HDF5, ...): it has `shape`, `dtype` and
    `__getitem__`, and is neither host data nor an array of an array library that a backend holds in memory."""
    if isinstance(x, (list, tuple, memoryview, np.ndarray)) or not hasattr(x, "__getitem__"):
        return False
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        return False
    if hasattr(x, "__array_namespace__") or hasattr(x, "__dlpack__"):
        return False
    return type(x).__module__.split(".")[0] not in IN_MEMORY_LIBRARIES


def is_batch_iterable(x: Any, *, lists: bool = True) -> bool:
    """Whether `x` is a source of batches: an iterable that is no array (a generator, an object with `__iter__`,
    with `lists` a list or tuple of batches) or a function that returns one."""
    if hasattr(x, "shape") or isinstance(x, (str, bytes, dict, memoryview)):
        return False
    if isinstance(x, (list, tuple)):
        return lists
    return hasattr(x, "__iter__") or callable(x)


def read_on_demand(x: Any, batch_size: int | None) -> bool:
    """Whether `x` is an array read batch by batch: a chunked array, or with a `batch_size` a memory-mapped NumPy
    array (``np.load(path, mmap_mode="r")``; without one, the whole set is one batch in memory anyway)."""
    return is_chunked_array(x) or (batch_size is not None and isinstance(x, np.memmap))


def is_stream(X: Any, y: Any, *, lists: bool = True, batch_size: int | None = None) -> bool:
    """Whether (X, y) is read batch by batch: an array read on demand, or an iterable of batches with y None."""
    return read_on_demand(X, batch_size) or (y is None and is_batch_iterable(X, lists=lists))


def validation_parts(value: Any) -> tuple[Any, Any]:
    """`Model.train`'s validation_data as (X, y): an (X, y) pair, or an iterable of batches as (batches, None)."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return value[0], value[1]
    if is_batch_iterable(value, lists=False):
        return value, None
    hint = ""
    if isinstance(value, (tuple, list)):
        hint = (
            "; a list or tuple is read as an (X, y) pair: pass a list of batches as a function that returns them "
            "(validation_data=lambda: iter(batches))"
        )
    raise TypeError(
        f"Model.train validation_data must be an (X, y) pair of arrays, or an iterable of (X, y) batches that is "
        f"not a list, got {_checks.describe(value)}{hint}"
    )


def draw_seed() -> int:
    """A shuffling seed from NumPy's global RNG, the one `nnx.seed` seeds."""
    return int(np.random.randint(0, SEED_LIMIT, dtype=np.int64))


def permuted(model: Any, X: Any, y: Any, seed: int, epoch: int) -> tuple[Any, Any]:
    """In-memory (X, y) with their rows in the epoch's order: a permutation drawn from (seed, epoch) on the host,
    copied once, and taken on the device."""
    order = np.random.default_rng([seed, epoch]).permutation(X.shape[0])
    index = model.backend.asarray(order)
    xp = model.xp
    return xp.take(X, index, axis=0), xp.take(y, index, axis=0)


# Sources: raw host batches per epoch ----------------------------------------------------------------------------------


class BatchSource:
    """The batches of an iterable: a fresh iterator per epoch from a re-iterable object or a function; a one-shot
    iterator (a generator) gives one pass."""

    seed = None  # an iterable keeps its own order
    batch_size = None  # and makes its own batches

    def __init__(self, batches: Any):
        self.batches = batches
        self.one_shot = hasattr(batches, "__next__")  # an iterator: a generator, iter(...), a file
        self.length = len(batches) if hasattr(batches, "__len__") else None

    def raw(self, epoch: int) -> Iterator[Any]:
        """The epoch's items, as the iterable gives them, with host NumPy arrays copied: a generator may reuse
        its arrays for the next batch while this one is still to train."""
        function = callable(self.batches) and not hasattr(self.batches, "__iter__")
        return (_own_copy(item) for item in (self.batches() if function else self.batches))


def _own_copy(item: Any) -> Any:
    """`item` (an array, or an (X, y) pair) with its host NumPy arrays copied."""
    if isinstance(item, np.ndarray):
        return item.copy()
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return tuple(part.copy() if isinstance(part, np.ndarray) else part for part in item)
    return item


class ArraySource:
    """Batches of `batch_size` rows sliced from chunked arrays, read a chunk-aligned unit at a time; with a seed,
    units in a new order per epoch and rows shuffled within windows of about `BUFFER_BATCHES` batches."""

    one_shot = False

    def __init__(self, X: Any, y: Any, batch_size: int | None, seed: int | None = None):
        self.X, self.y, self.seed = X, y, seed
        self.rows = int(X.shape[0])
        if y is not None and len(y.shape) and int(y.shape[0]) != self.rows:
            raise ValueError(
                f"the targets have {int(y.shape[0])} rows and the inputs {self.rows}; pass one target per sample"
            )
        self.units = read_units(X, self.rows, batch_size)
        self.batch_size = batch_size or max(stop - start for start, stop in self.units)
        self.length = -(-self.rows // self.batch_size)

    def raw(self, epoch: int) -> Iterator[Any]:
        """The epoch's (X, y) host batches (X alone without targets)."""
        units = list(self.units)
        if self.seed is None:
            return _rebatched((self._read(*unit) for unit in units), self.batch_size)
        rng = np.random.default_rng([self.seed, epoch])
        units = [units[i] for i in rng.permutation(len(units))]
        return _rebatched(self._windows(units, rng), self.batch_size)

    def _windows(self, units: list[tuple[int, int]], rng: Any) -> Iterator[tuple[Any, Any]]:
        """The units' rows in windows of at least `BUFFER_BATCHES` batches, each shuffled by `rng`."""
        pending: list[tuple[Any, Any]] = []
        held = 0
        for index, (start, stop) in enumerate(units):
            pending.append(self._read(start, stop))
            held += stop - start
            if held >= self.batch_size * BUFFER_BATCHES or index == len(units) - 1:
                X = np.concatenate([part[0] for part in pending])
                order = rng.permutation(X.shape[0])
                y = None if self.y is None else np.concatenate([part[1] for part in pending])[order]
                yield X[order], y
                pending, held = [], 0

    def _read(self, start: int, stop: int) -> tuple[Any, Any]:
        X = host_array(self.X[start:stop])
        return X, None if self.y is None else host_array(self.y[start:stop])


def _rebatched(parts: Iterator[tuple[Any, Any]], batch_size: int) -> Iterator[Any]:
    """Batches of exactly `batch_size` rows (the last one shorter) cut from consecutive (X, y) parts: views of a
    part, except a batch that straddles two parts, which is joined."""
    carry: tuple[Any, Any] | None = None
    for X, y in parts:
        if carry is not None:
            need = batch_size - carry[0].shape[0]
            X_head, y_head = _joined(carry, (X[:need], None if y is None else y[:need]))
            X, y = X[need:], None if y is None else y[need:]
            if X_head.shape[0] < batch_size:
                carry = (X_head, y_head)
                continue
            yield _batch(X_head, y_head)
        full = X.shape[0] - X.shape[0] % batch_size
        for start in range(0, full, batch_size):
            yield _batch(X[start : start + batch_size], None if y is None else y[start : start + batch_size])
        carry = (X[full:], None if y is None else y[full:]) if full < X.shape[0] else None
    if carry is not None:
        yield _batch(*carry)


def _joined(first: tuple[Any, Any], second: tuple[Any, Any]) -> tuple[Any, Any]:
    X = np.concatenate([first[0], second[0]])
    return X, None if first[1] is None else np.concatenate([first[1], second[1]])


def _batch(X: Any, y: Any) -> Any:
    return X if y is None else (X, y)


def chunk_sizes(X: Any, rows: int) -> list[int] | None:
    """The rows of each chunk of a chunked array along its first axis, or None for an array without chunks."""
    chunks = getattr(X, "chunks", None)
    first = chunks[0] if isinstance(chunks, tuple) and chunks else None
    if isinstance(first, tuple):  # Dask: the size of every chunk
        return [int(size) for size in first]
    if isinstance(first, int) and first > 0:  # Zarr, HDF5: one chunk size
        return [first] * -(-rows // first)
    return None


def read_units(X: Any, rows: int, batch_size: int | None) -> list[tuple[int, int]]:
    """(start, stop) of each read: whole chunks along the rows, merged until a unit holds a batch; without chunks,
    one batch each."""
    sizes = chunk_sizes(X, rows)
    if sizes is None:
        if batch_size is None:
            raise ValueError(
                "an array without chunks is read batch by batch, and batch_size is None; pass batch_size (e.g. 10_000)"
            )
        sizes = [batch_size] * -(-rows // batch_size)
    units, start, stop = [], 0, 0
    for size in sizes:
        stop = min(stop + size, rows)
        if stop - start >= (batch_size or 1) or stop == rows:
            units.append((start, stop))
            start = stop
    return [unit for unit in units if unit[1] > unit[0]]


def source(X: Any, y: Any, batch_size: int | None, *, owner: str, shuffle: bool = False, targets: bool = True) -> Any:
    """The source of a streamed (X, y): chunked arrays, or an iterable of batches (then y is None, and neither
    batch_size nor shuffle is given: the iterable decides its batches and their order). A shuffled source takes
    its seed as `source.seed` before the first epoch. `targets`: whether a chunked X needs its y."""
    if read_on_demand(X, batch_size):
        if targets and y is None:
            raise TypeError(
                f"{owner} got a chunked array X ({_checks.describe(X)}) without targets y; pass y as an array of the "
                f"same rows (a chunked array, or a NumPy array)"
            )
        if y is not None and not hasattr(y, "shape"):
            raise TypeError(
                f"{owner}: X is a chunked array and y is {_checks.describe(y)}; pass y as an array of the same rows "
                f"(a chunked array, or a NumPy array)"
            )
        return ArraySource(X, y, batch_size)
    if batch_size is not None:
        raise ValueError(
            f"{owner}: batch_size={batch_size} was given with an iterable of batches, which makes its own batches; "
            f"leave batch_size out, or pass arrays"
        )
    if shuffle:
        raise ValueError(
            f"{owner}: shuffle=True was given with an iterable of batches, which gives them in its own order; "
            f"shuffle inside it, or pass arrays (a chunked array is shuffled by chunks and within a buffer)"
        )
    return BatchSource(X)


# Readers: a background thread, or the training thread ------------------------------------------------------------


def checked_prefetch(value: Any, owner: str) -> int | str:
    """`prefetch` as given: "auto", or how many batches a reader thread prepares ahead (0: none, no thread)."""
    if isinstance(value, str) and value == "auto":
        return value
    expected = (
        f"{owner} prefetch must be 'auto' or a number of batches read ahead on a background thread (0 reads each "
        f"batch in the training thread)"
    )
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{expected}, got {_checks.describe(value)}; pass e.g. prefetch=2")
    if value < 0:
        raise ValueError(f"{expected}, got {value!r}; pass e.g. prefetch=2")
    return int(value)


def _noted(error: BaseException, text: str) -> BaseException:
    note = getattr(error, "add_note", None)  # Python 3.11+: the traceback also names the batch
    if note is not None:
        note(text)
    return error


class InlineReader:
    """Reads and prepares each item in the consumer's thread when the consumer asks for it (`prefetch=0`).

    `prepare(index, item)` and the reading run in a fresh context, as on a new thread: the value checks run even
    inside the training loop's trusted block. An error names the item, as `Prefetcher`'s do.
    """

    def __init__(self, items: Callable[[], Iterator[Any]], prepare: Callable[[int, Any], Any], name: Callable):
        self.items, self.prepare, self.name = items, prepare, name
        self.iterator: Iterator[Any] | None = None

    def __iter__(self) -> Iterator[Any]:
        context = contextvars.Context()
        self.iterator = context.run(self.items)
        index = 0
        while True:
            try:
                item = context.run(next, self.iterator, _END)
                if item is _END:
                    return
                prepared = context.run(self.prepare, index, item)
            except Exception as error:
                raise _noted(error, f"(raised while reading or checking {self.name(index)})")  # noqa: B904
            yield prepared
            index += 1

    def close(self) -> None:
        """Close the source's iterator (a generator's `finally` runs; a chunk it held is freed)."""
        close = getattr(self.iterator, "close", None)
        if close is not None:
            close()


class Prefetcher:
    """Reads and prepares items on a background thread, up to `depth` ahead of the consumer.

    `prepare(index, item)` runs on that thread (checks and the copy to the backend). An error in reading or
    preparing item `index` is raised in the consumer's thread when it reaches that item, with a note naming it.
    """

    def __init__(self, items: Callable[[], Iterator[Any]], prepare: Callable[[int, Any], Any], name: Callable, depth=2):
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stopped = threading.Event()
        self.name = name
        self.thread = threading.Thread(target=self._read, args=(items, prepare), daemon=True, name="nnx-batches")
        self.thread.start()

    def _read(self, items: Callable[[], Iterator[Any]], prepare: Callable[[int, Any], Any]) -> None:
        index = 0  # the item being read, named if it fails
        try:
            for item in items():
                if not self._put(("batch", prepare(index, item))):
                    return
                index += 1
            self._put(("end", None))
        except BaseException as error:  # raised in the consumer's thread, naming the batch
            self._put(("error", (index, error)))

    def _put(self, entry: tuple) -> bool:
        while not self.stopped.is_set():
            try:
                self.queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Any]:
        while True:
            kind, value = self.queue.get()
            if kind == "end":
                return
            if kind == "error":
                index, error = value
                raise _noted(error, f"(raised while reading or checking {self.name(index)}, on the reader thread)")
            yield value

    def close(self) -> None:
        """Stop the thread after its current item and wait for it (at most `JOIN_SECONDS`: a read that hangs is
        left to its daemon thread); what it read is dropped."""
        self.stopped.set()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=JOIN_SECONDS)


class Feed:
    """The checked batches of a streamed (X, y) for one `Model.train`, `evaluate` or `predict` call.

    Args:
        model: the Model.
        source: a `BatchSource` or an `ArraySource`.
        what: "training", "validation", "evaluation" or "prediction": the checks' wording.
        prefetch: how many batches a background thread reads ahead (0: each is read in the training thread when
            needed); "auto": `READ_AHEAD`, or 0 where the model's backend keeps every host core busy on batches of
            this source's size (`Backend.fills_host_cores`).
    """

    def __init__(self, model: Any, source: Any, what: str, prefetch: int | str = "auto"):
        self.model, self.source, self.what = model, source, what
        self.read_ahead = self._read_ahead(prefetch)
        self.ahead: tuple[int | None, Iterator[Any], Any] | None = None

    def _read_ahead(self, prefetch: int | str) -> int:
        if prefetch != "auto":
            return int(prefetch)
        rows = self.source.batch_size  # None: an iterable of batches, whose size is known only once read
        return 0 if rows is not None and self.model.backend.fills_host_cores(rows) else READ_AHEAD

    def name(self, epoch: int | None) -> Callable[[int], str]:
        """The batch's name in errors: "training batch 3 of epoch 2" (batches count from 0, as steps do)."""
        return lambda index: f"{self.what} batch {index}" + ("" if epoch is None else f" of epoch {epoch}")

    def first(self, epoch: int | None = None) -> tuple[Any, Any]:
        """The first checked batch of `epoch`, read ahead: `batches(epoch)` starts with it."""
        reader = self._open(epoch)
        iterator = iter(reader)
        try:
            item = next(iterator, _END)
        except BaseException:  # Ctrl-C while waiting, or an error in the first batch: the reader stops too
            reader.close()
            raise
        if item is _END:
            reader.close()
            self._raise_empty(epoch)
        self.ahead = (epoch, _chain(item, iterator), reader)
        return item  # type: ignore[return-value]  # a checked (X, y) pair

    def _raise_empty(self, epoch: int | None) -> None:
        if self.source.one_shot:
            problem = "the generator was used already (a generator feeds one pass)"
        else:
            problem = "the iterable of batches gave no batches" + ("" if epoch is None else f" in epoch {epoch}")
        raise ValueError(
            f"{self.what} data: {problem}; pass a re-iterable: an object whose __iter__ makes a new iterator each "
            f"time, or a function that returns a new generator"
        )

    def close(self) -> None:
        """Stop the reader of a batch read ahead by `first` that no epoch took (training stopped before it)."""
        if self.ahead is not None:
            self.ahead[2].close()
            self.ahead = None

    def batches(self, epoch: int | None = None, run: Any = None) -> Iterator[Any]:
        """The epoch's checked batches; with `run`, `run.steps` says whether each is the epoch's last."""
        if self.ahead is not None and self.ahead[0] == epoch:
            _, iterator, reader = self.ahead
            self.ahead = None
        else:
            reader = self._open(epoch)
            iterator = iter(reader)
        length = self.source.length
        step = -1
        try:
            for step, (item, last) in enumerate(_with_last(iterator)):
                if run is not None:
                    run.steps = step + 1 if last else max(length or 0, step + 2)
                yield item
        finally:
            reader.close()
        if step < 0:
            self._raise_empty(epoch)

    def _open(self, epoch: int | None) -> Any:
        name = self.name(epoch)
        items = lambda: self.source.raw(epoch or 1)  # noqa: E731
        prepare = lambda i, item: self._checked(name(i), item)  # noqa: E731
        if self.read_ahead == 0:
            return InlineReader(items, prepare, name)
        return Prefetcher(items, prepare, name, depth=self.read_ahead)

    def _checked(self, name: str, item: Any) -> Any:
        if self.what == "prediction":
            return checked_inputs(self.model, _inputs(item), name)
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"{name} must be an (X, y) pair, got {_checks.describe(item)}; yield (X_batch, y_batch)")
        return checked_data(self.model, item[0], item[1], name)


def _inputs(item: Any) -> Any:
    """A prediction batch: X, or the X of an (X, y) tuple."""
    return item[0] if isinstance(item, tuple) and len(item) == 2 else item


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _with_last(iterator: Iterator[Any]) -> Iterator[tuple[Any, bool]]:
    """(item, whether it is the last), one item ahead; an error in reading the next item is raised after the
    current one is used."""
    current = next(iterator, _END)
    while current is not _END:
        try:
            following = next(iterator, _END)
        except Exception as error:
            yield current, False
            raise error
        yield current, following is _END
        current = following
