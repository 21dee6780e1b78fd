"""Training, evaluation and prediction from data read batch by batch: iterables of batches, Zarr and Dask arrays and
any array-like read by slicing (`nnx.training.streams`)."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import threading

import numpy as np
import pytest

import nnx
from nnx.callbacks import Callback, ProgressBar
from nnx.training import streams
from tests.conftest import float64_or_skip
from tests.helpers import spiral_classifier

BATCH = 64
ROWS = 300  # not a multiple of BATCH: the last batch is shorter


def data(rows: int = ROWS, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, 2)), rng.integers(0, 3, size=rows)


def model(backend="numpy"):
    nnx.seed(0)
    return spiral_classifier(backend, dtype="float64")


class Batches:
    """A re-iterable of (X, y) batches, with a length."""

    def __init__(self, X, y, size=BATCH):
        self.X, self.y, self.size = X, y, size

    def __iter__(self):
        for start in range(0, len(self.X), self.size):
            yield self.X[start : start + self.size], self.y[start : start + self.size]

    def __len__(self):
        return -(-len(self.X) // self.size)


class DiskArray:
    """An array-like read by slicing (shape, dtype, __getitem__), like a file-backed dataset; it counts reads."""

    def __init__(self, values):
        self.values, self.shape, self.dtype, self.reads = values, values.shape, values.dtype, 0

    def __getitem__(self, key):
        self.reads += 1
        return self.values[key].copy()


class Recorder(Callback):
    """The first input row of every batch, and the parameters after every step."""

    def __init__(self):
        self.rows, self.parameters = [], []

    def on_step_end(self, run):
        self.rows.append(run.model.backend.to_numpy(run.batch[0][0]).tolist())
        self.parameters.append([[run.model.backend.to_numpy(a) for a in pair] for pair in run.model.get_parameters()])


def assert_same_history(a, b, tolerance=1e-12):
    """Every epoch's values and the final ones agree to `tolerance`."""
    assert a.columns() == b.columns() and a.epoch == b.epoch and list(a) == list(b)
    for name in a.columns():
        np.testing.assert_allclose(a.history[name], b.history[name], rtol=0, atol=tolerance, err_msg=name)
    np.testing.assert_allclose(list(a.values()), list(b.values()), rtol=0, atol=tolerance)


def quiet(**options):
    return {"print_every": None, "verbose": 0, **options}


def trained(X, y=None, epochs=3, backend="numpy", **options):
    net = model(backend)
    history = net.train(X, y, epochs=epochs, **quiet(**options))
    return net, history


# The same History as the same batches in memory ---------------------------------------------------------------------


def test_a_generator_gives_the_in_memory_history():
    X, y = data()
    _, expected = trained(X, y, epochs=1, batch_size=BATCH)
    _, history = trained(iter(Batches(X, y)), epochs=1)
    assert_same_history(history, expected)


def test_a_reiterable_and_a_function_give_the_in_memory_history(backend):
    float64_or_skip(backend)
    X, y = data()
    _, expected = trained(X, y, batch_size=BATCH, backend=backend.name)
    _, from_class = trained(Batches(X, y), backend=backend.name)
    _, from_function = trained(lambda: iter(Batches(X, y)), backend=backend.name)
    _, from_list = trained(list(Batches(X, y)), backend=backend.name)
    for history in (from_class, from_function, from_list):
        assert_same_history(history, expected)


def test_a_zarr_array_gives_the_in_memory_history():
    zarr = pytest.importorskip("zarr")
    X, y = data()
    zX = zarr.zeros(shape=X.shape, chunks=(90, 2), dtype="float64")
    zy = zarr.zeros(shape=y.shape, chunks=(70,), dtype=y.dtype)
    zX[:], zy[:] = X, y
    net_expected, expected = trained(X, y, batch_size=BATCH)
    net, history = trained(zX, zy, batch_size=BATCH)
    assert_same_history(history, expected)
    assert net.last_step == net_expected.last_step  # the step that in-memory batches take: compiled with Numba
    assert net.last_step.startswith("compiled step" if importlib.util.find_spec("numba") else "generic step")


def test_a_dask_array_gives_the_in_memory_history():
    da = pytest.importorskip("dask.array")
    X, y = data()
    _, expected = trained(X, y, batch_size=BATCH)
    _, history = trained(da.from_array(X, chunks=(50, 2)), da.from_array(y, chunks=110), batch_size=BATCH)
    assert_same_history(history, expected)


def test_any_array_read_by_slicing_streams_one_unit_at_a_time():
    X, y = data()
    _, expected = trained(X, y, batch_size=BATCH)
    disk = DiskArray(X)
    assert streams.is_chunked_array(disk) and not streams.is_chunked_array(X)
    _, history = trained(disk, y, batch_size=BATCH)
    assert_same_history(history, expected)
    assert disk.reads == 3 * -(-ROWS // BATCH)  # one slice per batch: no chunks to align to


def test_the_book_lines_and_validation_match_in_memory(capsys):
    zarr = pytest.importorskip("zarr")
    X, y = data()
    X_val, y_val = data(100, seed=4)
    zX = zarr.zeros(shape=X_val.shape, chunks=(30, 2), dtype="float64")
    zX[:] = X_val
    model().train(X, y, epochs=2, batch_size=BATCH, print_every=2, validation_data=(X_val, y_val))
    expected = capsys.readouterr().out
    generator = model().train(
        Batches(X, y), epochs=2, print_every=2, validation_data=Batches(X_val, y_val, 30)
    )  # no __len__ needed: a class without one is below
    assert capsys.readouterr().out == expected
    chunked = model().train(X, y, epochs=2, batch_size=BATCH, print_every=2, validation_data=(zX, y_val))
    assert capsys.readouterr().out == expected
    assert generator["val_loss"] == pytest.approx(chunked["val_loss"], abs=1e-12)


def test_a_stream_without_length_finds_each_epochs_last_step(capsys):
    X, y = data()

    class NoLength:
        def __iter__(self):
            return iter(Batches(X, y))

    model().train(X, y, epochs=2, batch_size=BATCH, print_every=3)
    expected = capsys.readouterr().out
    model().train(NoLength(), epochs=2, print_every=3)
    assert capsys.readouterr().out == expected
    assert "step: 4," in expected


def test_the_progress_bar_has_a_total_when_the_length_is_known_and_counts_otherwise():
    X, y = data()
    known, unknown = io.StringIO(), io.StringIO()
    trained(Batches(X, y), epochs=2, callbacks=[ProgressBar(file=known)])
    trained(lambda: iter(Batches(X, y)), epochs=2, callbacks=[ProgressBar(file=unknown)])
    assert "10/10" in known.getvalue()
    assert "10step" in unknown.getvalue().replace(" ", "") and "/10" not in unknown.getvalue()


def memory_mapped(folder, X, y):
    """X and y saved as .npy files and opened as ``np.load(path, mmap_mode="r")`` opens them."""
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    return np.load(folder / "X.npy", mmap_mode="r"), np.load(folder / "y.npy", mmap_mode="r")


def test_a_memory_mapped_array_with_a_batch_size_streams_and_gives_the_in_memory_history(tmp_path, monkeypatch):
    X, y = data()
    mX, my = memory_mapped(tmp_path, X, y)
    assert streams.read_on_demand(mX, BATCH) and not streams.read_on_demand(mX, None)
    assert not streams.read_on_demand(X, BATCH)
    sources = []
    original = streams.ArraySource.__init__

    def recorded(self, *args, **kwargs):
        sources.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(streams.ArraySource, "__init__", recorded)
    net_expected, expected = trained(X, y, batch_size=BATCH)
    net, history = trained(mX, my, batch_size=BATCH)
    assert len(sources) == 1  # read batch by batch, not loaded whole
    assert_same_history(history, expected)
    for ours, theirs in zip(net.get_parameters(), net_expected.get_parameters(), strict=True):
        np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)
    assert net.evaluate(mX, my, batch_size=BATCH, verbose=False) == pytest.approx(
        net.evaluate(X, y, verbose=False), abs=1e-12
    )
    np.testing.assert_allclose(net.predict(mX, batch_size=BATCH), net.predict(X), rtol=0, atol=1e-12)
    assert len(sources) == 3


def test_a_memory_mapped_array_without_a_batch_size_trains_in_memory(tmp_path):
    X, y = data()
    mX, my = memory_mapped(tmp_path, X, y)
    _, expected = trained(X, y, epochs=2)
    _, history = trained(mX, my, epochs=2)
    assert_same_history(history, expected)


def test_a_shuffled_memory_mapped_array_is_reproducible(tmp_path):
    X, y = data()
    mX, my = memory_mapped(tmp_path, X, y)
    runs = [trained(mX, my, batch_size=BATCH, shuffle=True)[1] for _ in range(2)]
    assert_same_history(runs[0], runs[1], 0)


def test_evaluate_and_predict_take_streams():
    zarr = pytest.importorskip("zarr")
    X, y = data()
    net, _ = trained(X, y, batch_size=BATCH)
    zX = zarr.zeros(shape=X.shape, chunks=(80, 2), dtype="float64")
    zX[:] = X
    expected = net.evaluate(X, y, verbose=False)
    for streamed in (net.evaluate(Batches(X, y), verbose=False), net.evaluate(zX, y, verbose=False)):
        assert streamed == pytest.approx(expected, abs=1e-12)
    outputs = net.predict(X)
    for X_stream in (zX, (batch[0] for batch in Batches(X, y)), iter(Batches(X, y))):
        np.testing.assert_allclose(net.predict(X_stream), outputs, rtol=0, atol=1e-12)


# Shuffling ----------------------------------------------------------------------------------------------------------


def test_shuffled_runs_with_one_seed_are_identical_and_differ_from_the_book_order():
    X, y = data()
    disk = DiskArray(X)
    runs = []
    for _ in range(2):
        recorder = Recorder()
        _, history = trained(disk, y, batch_size=BATCH, shuffle=True, callbacks=[recorder])
        runs.append((history, recorder.rows))
    assert_same_history(runs[0][0], runs[1][0], 0)
    assert runs[0][1] == runs[1][1]
    ordered = Recorder()
    trained(X, y, batch_size=BATCH, callbacks=[ordered])
    assert runs[0][1] != ordered.rows
    epoch_rows = {tuple(row) for row in runs[0][1][:5]}, {tuple(row) for row in runs[0][1][5:10]}
    assert epoch_rows[0] != epoch_rows[1]  # each epoch has its own order


def test_shuffling_in_memory_permutes_rows_per_epoch_and_keeps_every_row(backend):
    float64_or_skip(backend)
    X, y = data()
    seen = []

    class Rows(Callback):
        def on_step_end(self, run):
            seen.append(run.model.backend.to_numpy(run.batch[0]))

    first, _ = trained(X, y, epochs=2, batch_size=BATCH, shuffle=True, callbacks=[Rows()], backend=backend.name)
    epoch_one = np.concatenate(seen[:5])
    assert not np.array_equal(epoch_one, X)
    np.testing.assert_array_equal(np.sort(epoch_one, axis=0), np.sort(X, axis=0))
    again, _ = trained(X, y, epochs=2, batch_size=BATCH, shuffle=True, backend=backend.name)
    for first_pair, again_pair in zip(first.get_parameters(), again.get_parameters(), strict=True):
        for a, b in zip(first_pair, again_pair, strict=True):
            assert np.array_equal(backend.to_numpy(a), backend.to_numpy(b))


def test_shuffle_is_refused_for_an_iterable_of_batches():
    X, y = data()
    net = model()
    with pytest.raises(ValueError, match="shuffle=True was given with an iterable of batches"):
        net.train(Batches(X, y), epochs=2, shuffle=True)
    assert net.optimizer.iterations == 0


def test_a_resumed_shuffled_stream_sees_the_same_batches_in_the_same_order(tmp_path):
    X, y = data()
    straight = Recorder()
    net, history = trained(DiskArray(X), y, epochs=4, batch_size=BATCH, shuffle=True, callbacks=[straight])
    path = tmp_path / "run.nnx"
    first = Recorder()
    trained(DiskArray(X), y, epochs=2, batch_size=BATCH, shuffle=True, checkpoint=path, callbacks=[first])
    nnx.seed(123)  # the resumed run takes the checkpoint's seed, not a new one
    resumed_net = spiral_classifier("numpy", dtype="float64")
    second = Recorder()
    resumed = resumed_net.train(
        DiskArray(X), y, epochs=4, batch_size=BATCH, shuffle=True, resume=path, callbacks=[second], **quiet()
    )
    assert first.rows + second.rows == straight.rows
    for (w1, b1), (w2, b2) in zip(net.get_parameters(), resumed_net.get_parameters(), strict=True):
        assert np.array_equal(w1, w2) and np.array_equal(b1, b2)
    assert resumed.history["loss"] == history.history["loss"][2:]


# Errors -------------------------------------------------------------------------------------------------------------


def test_a_generator_for_several_epochs_is_refused_before_training():
    X, y = data()
    net = model()
    before = net.get_parameters()
    with pytest.raises(ValueError, match=r"one-shot iterator .* pass a re-iterable"):
        net.train(iter(Batches(X, y)), epochs=2)
    with pytest.raises(ValueError, match="validation_data is a one-shot iterator"):
        net.train(X, y, epochs=2, batch_size=BATCH, validation_data=iter(Batches(X, y)))
    assert net.optimizer.iterations == 0
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(before, net.get_parameters(), strict=True))


def test_a_used_generator_is_an_error_naming_the_fix():
    X, y = data()
    batches = iter(Batches(X, y))
    trained(batches, epochs=1)
    with pytest.raises(ValueError, match=r"generator was used already .* a function that returns a new generator"):
        model().evaluate(batches)


@pytest.mark.parametrize("prefetch", [0, 2])
def test_a_bad_batch_in_epoch_two_names_it_and_keeps_the_last_good_step(prefetch):
    X, y = data()

    class Poisoned(Batches):
        epoch = 0

        def __iter__(self):
            self.epoch += 1
            for index, (X_batch, y_batch) in enumerate(super().__iter__()):
                if self.epoch == 2 and index == 3:
                    X_batch = X_batch.copy()
                    X_batch[5, 1] = np.nan
                yield X_batch, y_batch

    recorder = Recorder()
    net = model()
    with pytest.raises(ValueError, match="training batch 3 of epoch 2 inputs") as error:
        net.train(Poisoned(X, y), epochs=3, callbacks=[recorder], prefetch=prefetch, **quiet())
    assert len(recorder.parameters) == 5 + 3
    for (weights, biases), (good_weights, good_biases) in zip(
        net.get_parameters(), recorder.parameters[-1], strict=True
    ):
        assert np.array_equal(weights, good_weights) and np.array_equal(biases, good_biases)
    assert error.value.history.epoch == [1]  # the History of the epoch that ended


def test_a_bad_validation_batch_says_after_which_epoch_it_was_read():
    X, y = data()
    X_val = X.copy()
    X_val[150, 0] = np.nan  # in the validation batch of index 2 (64 rows each)

    def validation():
        return iter(Batches(X_val, y))

    net = model()
    with pytest.raises(ValueError, match="evaluation batch 2 inputs contain 1 NaN") as error:
        net.train(X, y, epochs=3, batch_size=BATCH, validation_data=validation, **quiet())
    assert net.optimizer.iterations == -(-ROWS // BATCH)  # epoch 1's steps, and no more
    if sys.version_info >= (3, 11):  # exception notes came with Python 3.11
        assert any("while validating after epoch 1" in note for note in error.value.__notes__)


@pytest.mark.parametrize("prefetch", [0, 2])
def test_a_reader_error_surfaces_in_the_training_thread_naming_the_batch(prefetch):
    X, y = data()

    def failing():
        yield X[:BATCH], y[:BATCH]
        yield X[BATCH:], y[BATCH:]
        raise OSError("the disk went away")

    with pytest.raises(OSError, match="the disk went away") as error:
        model().train(failing(), epochs=1, prefetch=prefetch, **quiet())
    if sys.version_info >= (3, 11):  # exception notes came with Python 3.11
        assert any("training batch 2 of epoch 1" in note for note in error.value.__notes__)


@pytest.mark.parametrize(
    ("item", "error", "message"),
    [
        ("not a pair", TypeError, "training batch 0 of epoch 1 must be an \\(X, y\\) pair"),
        ((np.zeros((4, 3)), np.zeros(4, dtype=int)), ValueError, "training batch 0 of epoch 1 inputs with 2 features"),
        ((np.zeros((4, 2)), np.full(4, 7)), ValueError, "training batch 0 of epoch 1 targets"),
    ],
)
def test_every_batch_is_checked_as_in_memory_data_are(item, error, message):
    with pytest.raises(error, match=message):
        model().train([item], epochs=1, **quiet())


def test_wrong_arguments_for_streams_are_errors():
    X, y = data()
    with pytest.raises(ValueError, match="batch_size=10 was given with an iterable of batches"):
        model().train(Batches(X, y), batch_size=10)
    with pytest.raises(TypeError, match="without targets y"):
        model().train(X)
    with pytest.raises(TypeError, match="without targets"):
        model().evaluate(X)
    with pytest.raises(ValueError, match="an array without chunks is read batch by batch, and batch_size is None"):
        model().evaluate(DiskArray(X), y)
    with pytest.raises(ValueError, match=r"Model.train: X is a chunked array .* and batch_size is None; pass"):
        model().train(DiskArray(X), y)
    with pytest.raises(ValueError, match="the targets have 10 rows and the inputs 300"):
        model().train(DiskArray(X), y[:10], batch_size=BATCH)
    with pytest.raises(ValueError, match="iterable of batches gave no batches in epoch 1"):
        model().train([], epochs=1)
    with pytest.raises(TypeError, match="validation_data must be an \\(X, y\\) pair of arrays, or an iterable"):
        model().train(X, y, validation_data=X)


# Reading ahead on a thread, or in line ------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["chunked", "iterable"])
def test_every_prefetch_gives_the_same_history(source):
    X, y = data()
    streamed = (DiskArray(X), DiskArray(y)) if source == "chunked" else (Batches(X, y), None)
    options = quiet(epochs=3, validation_data=streamed, **({"batch_size": BATCH} if source == "chunked" else {}))
    expected = model().train(X, y, **{**options, "batch_size": BATCH, "validation_data": (X, y)})
    for prefetch in (0, 1, 2, 5, "auto"):
        assert_same_history(model().train(*streamed, prefetch=prefetch, **options), expected, tolerance=0)


@pytest.mark.parametrize(("prefetch", "in_line"), [(0, True), (2, False)])
def test_prefetch_zero_reads_in_the_training_thread_and_more_on_a_reader_thread(prefetch, in_line):
    X, y = data()
    readers = []

    def batches():
        for X_batch, y_batch in Batches(X, y):
            readers.append(threading.current_thread())
            yield X_batch, y_batch

    net = model()
    net.train(batches, epochs=2, prefetch=prefetch, **quiet())
    net.evaluate(batches, prefetch=prefetch, verbose=False)
    net.predict(batches, prefetch=prefetch)
    assert len(readers) == 4 * len(Batches(X, y))
    assert all((thread is threading.main_thread()) == in_line for thread in readers)


def test_auto_reads_in_line_where_the_cpu_kernels_fill_the_cores(monkeypatch):
    X, y = data(rows=4096)
    net = model()
    monkeypatch.setattr(nnx.backends._host, "host_cores", lambda: 2)
    assert net.backend.fills_host_cores(512) and not net.backend.fills_host_cores(511)
    assert streams.Feed(net, streams.source(DiskArray(X), y, 1024, owner="test"), "training").read_ahead == 0
    assert streams.Feed(net, streams.source(DiskArray(X), y, 64, owner="test"), "training").read_ahead == 2
    assert streams.Feed(net, streams.source(Batches(X, y), None, None, owner="test"), "training").read_ahead == 2
    monkeypatch.setattr(nnx.backends._host, "host_cores", lambda: 1)
    assert not net.backend.fills_host_cores(10**6)


def test_checks_run_on_batches_read_in_line_inside_the_loop():
    X, y = data()
    bad = X.copy()
    bad[BATCH + 3, 0] = np.inf
    with pytest.raises(ValueError, match="training batch 1 of epoch 1 inputs contain 1 NaN or infinite value"):
        model().train(Batches(bad, y), epochs=1, prefetch=0, **quiet())


@pytest.mark.parametrize("value", [-1, 1.5, True, "fast", None])
@pytest.mark.parametrize("call", ["train", "evaluate", "predict"])
def test_a_wrong_prefetch_is_refused_before_anything_changes(call, value):
    X, y = data()
    net = model()
    before = [np.copy(array) for pair in net.get_parameters() for array in pair]
    run = {
        "train": lambda: net.train(Batches(X, y), prefetch=value, **quiet()),
        "evaluate": lambda: net.evaluate(Batches(X, y), prefetch=value, verbose=False),
        "predict": lambda: net.predict(Batches(X, y), prefetch=value),
    }[call]
    error = ValueError if value == -1 else TypeError  # a wrong type is a TypeError, as for the other arguments
    with pytest.raises(error, match=rf"Model.{call} prefetch must be 'auto' or a number of batches read ahead"):
        run()
    after = [array for pair in net.get_parameters() for array in pair]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_import_nnx_imports_neither_zarr_nor_dask():
    code = "import sys, nnx; print([name for name in ('zarr', 'dask') if name in sys.modules])"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


# Early stops, reused buffers and misplaced arguments ------------------------------------------------------------


def no_reader_left() -> bool:
    """Whether every reader thread has ended by the time the call returned (closing a reader waits for it)."""
    return not any(thread.name == "nnx-batches" for thread in threading.enumerate())


class StopAtStart(Callback):
    def on_train_begin(self, run):
        run.stop = True


class FailAtStart(Callback):
    def on_train_begin(self, run):
        raise RuntimeError("a callback failed")


@pytest.mark.parametrize("case", ["stop at start", "callback error", "nothing left to resume", "interrupted"])
def test_no_reader_thread_is_left_when_training_ends_before_its_batches(tmp_path, case):
    X, y = data()
    chunked = (DiskArray(X), DiskArray(y))
    options = quiet(batch_size=BATCH, prefetch=2)
    if case == "stop at start":
        model().train(*chunked, callbacks=[StopAtStart()], **options)
    elif case == "callback error":
        with pytest.raises(RuntimeError, match="a callback failed"):
            model().train(*chunked, callbacks=[FailAtStart()], **options)
    elif case == "nothing left to resume":
        net = model()
        net.train(X, y, epochs=2, checkpoint=tmp_path / "run.nnx", **quiet(batch_size=BATCH))
        with pytest.warns(UserWarning, match="nothing left to train"):
            net.train(*chunked, epochs=2, resume=tmp_path / "run.nnx", **options)
    else:

        def interrupted():
            raise KeyboardInterrupt
            yield  # a generator

        for call in (lambda net: net.train(interrupted, **quiet(prefetch=2)), lambda net: net.predict(interrupted)):
            with pytest.raises(KeyboardInterrupt):
                call(model())
    assert no_reader_left()


@pytest.mark.parametrize("prefetch", [0, 1, 2])
def test_a_generator_that_reuses_its_arrays_trains_as_in_memory(prefetch):
    X, y = data()

    def reusing():
        X_batch, y_batch = np.empty((BATCH, 2)), np.empty(BATCH, dtype=np.int64)
        for start in range(0, ROWS - ROWS % BATCH, BATCH):
            X_batch[:], y_batch[:] = X[start : start + BATCH], y[start : start + BATCH]
            yield X_batch, y_batch

    rows = ROWS - ROWS % BATCH
    expected = model().train(X[:rows], y[:rows], **quiet(epochs=2, batch_size=BATCH))
    net = model()
    assert_same_history(net.train(reusing, prefetch=prefetch, **quiet(epochs=2)), expected, tolerance=0)
    assert net.evaluate(reusing, prefetch=prefetch, verbose=False) == net.evaluate(X[:rows], y[:rows], verbose=False)
    np.testing.assert_array_equal(net.predict(reusing, prefetch=prefetch), net.predict(X[:rows]))


def test_an_iterable_empty_in_a_later_epoch_is_an_error_naming_it():
    X, y = data()
    batches = iter(Batches(X, y))

    class SameIterator:
        def __iter__(self):
            return batches  # exhausted after the first epoch

    with pytest.raises(ValueError, match=r"the iterable of batches gave no batches in epoch 2; .* a new iterator"):
        model().train(SameIterator(), epochs=2, **quiet())


def test_misplaced_stream_arguments_say_what_to_do():
    X, y = data()
    with pytest.raises(TypeError, match=r"Model.train got a chunked array X .* without targets y"):
        model().train(DiskArray(X), batch_size=BATCH)
    with pytest.raises(TypeError, match=r"Model.evaluate got a chunked array X .* without targets y"):
        model().evaluate(DiskArray(X), batch_size=BATCH)
    with pytest.raises(TypeError, match=r"an iterable of batches as X .* leave y out"):
        model().train(Batches(X, y), y)
    with pytest.raises(TypeError, match=r"a list or tuple is read as an \(X, y\) pair: pass a list of batches as"):
        model().train(X, y, validation_data=list(Batches(X, y)), **quiet())
    assert model().train(Batches(X, y), prefetch=np.int64(1), **quiet()).epoch == [1]
