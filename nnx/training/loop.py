"""The training loop of `Model.train`: a short loop over epochs and batches plus callbacks, the choice of the default
callbacks (the book's lines, progress, validation, divergence checks, checkpoints) and of the step that runs."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from nnx import _checks, _notebook, io
from nnx._component import FilePath
from nnx._paths import input_path
from nnx.callbacks.base import Callback, CallbackList, Run
from nnx.callbacks.book import BookLog, Validation
from nnx.callbacks.checkpoint import Checkpoint
from nnx.callbacks.divergence import DivergenceGuard
from nnx.callbacks.history import History
from nnx.callbacks.progress import LogLines, ProgressBar, lines_every
from nnx.errors import CheckpointError, ConcurrentTrainingError, SaveError
from nnx.io.format import is_count
from nnx.training import streams
from nnx.training.data import batches, checked_data, steps
from nnx.training.steps import GenericStep, PlannedStep, choose_step

CHECK_EVERY = 100  # steps between divergence checks; see benchmarks/divergence_check.py
VERBOSITY = (0, 1, 2)


def train(
    model: Any,
    X: Any,
    y: Any = None,
    *,
    epochs: int = 1,
    batch_size: int | None = None,
    shuffle: bool = False,
    print_every: int | str | None = "auto",
    verbose: int | None = None,
    validation_data: tuple[Any, Any] | None = None,
    callbacks: Sequence[Callback] | None = (),
    on_divergence: str = "raise",
    check_every: int = CHECK_EVERY,
    checkpoint: FilePath | None = None,
    checkpoint_every: int = 1,
    resume: FilePath | None = None,
    prefetch: int | str = "auto",
) -> History:
    """`Model.train`'s body: `model` is the Model, the other arguments are documented there."""
    model._require("loss", "optimizer", "accuracy")
    epochs = _checks.positive_int(epochs, "epochs", "Model.train")
    batch_size = _checks.optional_positive_int(batch_size, "batch_size", "Model.train")
    auto = is_auto(print_every)
    print_every = None if print_every is None or _is_zero(print_every) else 1 if auto else print_every
    print_every = _checks.optional_positive_int(print_every, "print_every", "Model.train")
    checkpoint_every = _checks.positive_int(checkpoint_every, "checkpoint_every", "Model.train")
    verbose = verbosity(verbose)
    shuffle = _checks.boolean(shuffle, "shuffle", "Model.train")
    prefetch = streams.checked_prefetch(prefetch, "Model.train")
    callbacks = _callback_list(callbacks)
    feed = _training_feed(model, X, y, batch_size, shuffle, epochs, prefetch)
    if feed is None:
        X, y = checked_data(model, X, y, "training")
    record: dict[str, Any] = {}  # what checkpoints keep besides the epoch: the shuffling seed
    given = [c for c in callbacks if isinstance(c, History)]
    history = given[0] if given else History()
    book = _book(verbose, print_every)
    validation = [] if validation_data is None else [_validation(model, validation_data, book, epochs, prefetch)]
    hooks = [
        DivergenceGuard(check_every=check_every, action=on_divergence),
        *([BookLog(print_every)] if verbose is None and print_every else []),
        *validation,
        *_progress_callbacks(verbose, lines_every(epochs) if auto else print_every),
        *([] if given else [history]),  # before the checkpoint: the History holds every epoch a checkpoint holds
        *([Checkpoint(checkpoint, every=checkpoint_every, record=record)] if checkpoint is not None else []),
        *callbacks,
    ]
    callback = CallbackList(hooks)
    with only_training(model), contextlib.closing(feed) if feed is not None else contextlib.nullcontext():
        saved = _resume(model, resume, epochs) if resume is not None else {"epoch": 0}
        first_epoch = saved["epoch"] + 1
        seed = _shuffle_seed(shuffle, saved, record)
        if feed is not None:
            feed.source.seed = seed  # an iterable of batches refused shuffle=True already
            X, y = feed.first(first_epoch)  # the step is chosen for the first batch, as for the whole set in memory
            batch_size = feed.source.batch_size or X.shape[0]
        with model.backend.quiet_float_errors():
            model.accuracy.init(y)  # streamed: the first batch's targets (a regression's precision)
        n_steps = (feed.source.length or 0) if feed is not None else steps(X.shape[0], batch_size)
        run = Run(model, epochs=epochs, steps=n_steps, batch_size=batch_size, first_epoch=first_epoch)
        step = training_step(model, X, y)
        run.finite_probe = getattr(step, "finite_probe", None)
        try:
            with _checks.trusted(), model.backend.quiet_float_errors():
                _loop(model, run, callback, _epoch_batches(model, run, X, y, feed, seed), step)
        except BaseException as error:  # Ctrl-C too: the run's History goes with the error as `error.history`
            _keep_history(error, history, run)
            raise
        finally:
            step.close()
    history.final = _result(run)
    if run.save_error is not None:  # a checkpoint could not be written: training stopped after that epoch
        raise _stopped(run.save_error, run, history) from run.save_error
    return history


def _validation(model: Any, validation_data: Any, verbose: bool, epochs: int, prefetch: int | str) -> Validation:
    """The validation pass on `validation_data`: an (X, y) pair checked and copied to the model's backend, or
    streamed data (checked batch by batch at each pass)."""
    X_val, y_val = streams.validation_parts(validation_data)
    if not streams.is_stream(X_val, y_val):
        return Validation(*checked_data(model, X_val, y_val, "validation"), verbose=verbose)
    one_shot = getattr(X_val, "__next__", None) is not None
    if one_shot and epochs > 1:
        raise ValueError(_one_shot("validation_data", epochs))
    return Validation(X_val, y_val, verbose=verbose, prefetch=prefetch)


def _training_feed(model: Any, X: Any, y: Any, batch_size: Any, shuffle: bool, epochs: int, prefetch: Any) -> Any:
    """The `streams.Feed` of streamed training data, or None for arrays in memory (then y is required)."""
    if y is not None and streams.is_batch_iterable(X, lists=False):
        raise TypeError(
            f"Model.train got an iterable of batches as X ({_checks.describe(X)}) and targets y; its batches carry "
            f"their own targets: leave y out, as in train(batches)"
        )
    if not streams.is_stream(X, y, batch_size=batch_size):
        if y is None:
            raise TypeError(
                f"Model.train got inputs X ({_checks.describe(X)}) without targets y; pass train(X, y), or an "
                f"iterable of (X, y) batches as X"
            )
        return None
    if streams.is_chunked_array(X) and batch_size is None:
        example = (streams.chunk_sizes(X, int(X.shape[0])) or [10_000])[0]
        raise ValueError(
            f"Model.train: X is a chunked array ({_checks.describe(X)}), which trains batch by batch, and batch_size "
            f"is None; pass batch_size (e.g. {example}), or load the arrays into memory to train on the whole set "
            f"at each step"
        )
    source = streams.source(X, y, batch_size, owner="Model.train", shuffle=shuffle)
    if source.one_shot and epochs > 1:
        raise ValueError(_one_shot("X", epochs))
    return streams.Feed(model, source, "training", prefetch)


def _one_shot(name: str, epochs: int) -> str:
    return (
        f"Model.train(epochs={epochs}): {name} is a one-shot iterator (a generator), which can feed one epoch only; "
        f"pass a re-iterable instead: a function that returns a new generator, or an object whose __iter__ makes "
        f"one (a list of batches, a class)"
    )


def _shuffle_seed(shuffle: bool, saved: dict[str, Any], record: dict[str, Any]) -> int | None:
    """The run's shuffling seed, kept in `record` for checkpoints: a resumed run's own, else one drawn from NumPy's
    global RNG (which `nnx.seed` seeds); None without shuffling."""
    if not shuffle:
        return None
    seed = saved.get("shuffle_seed")
    record["shuffle_seed"] = seed = streams.draw_seed() if not isinstance(seed, int) else seed
    return seed


def _epoch_batches(model: Any, run: Run, X: Any, y: Any, feed: Any, seed: int | None) -> Any:
    """A function of the epoch giving its (X, y) batches: streamed, shuffled in memory, or slices in order."""
    if feed is not None:
        return lambda epoch: feed.batches(epoch, run)
    if seed is not None:
        return lambda epoch: _in_memory(*streams.permuted(model, X, y, seed, epoch), run.batch_size)
    return lambda epoch: _in_memory(X, y, run.batch_size)


def _in_memory(X: Any, y: Any, batch_size: int | None) -> Iterator[tuple[Any, Any]]:
    if batch_size is None:
        yield X, y  # without batch_size every step takes the whole set
    else:
        yield from batches(X, y, batch_size)


@contextlib.contextmanager
def only_training(model: Any) -> Iterator[None]:
    """Hold the model's training lock: a second `train` of the same model (another thread, or a callback of its own
    training) is refused, as it would corrupt both runs."""
    lock = model.__dict__.setdefault("_training", threading.Lock())
    if not lock.acquire(blocking=False):
        raise ConcurrentTrainingError(
            "Model.train: this model is already training (in another thread, or in a callback of its own "
            "training); wait for that run to end, or train a copy: copy.deepcopy(model)"
        )
    try:
        yield
    finally:
        lock.release()


def _keep_history(error: BaseException, history: History, run: Run) -> None:
    """Give `error` the run's History: the epochs recorded so far, when their metrics can still be read."""
    with contextlib.suppress(Exception):
        history.on_train_end(run)
        history.final = _result(run)
    _attach(error, history)


def _attach(error: BaseException, history: History) -> None:
    """Give `error` the run's History as `error.history`."""
    error.history = history  # type: ignore[attr-defined]


def _stopped(error: SaveError, run: Run, history: History) -> SaveError:
    """A failed checkpoint write, saying where training stopped and where its History is."""
    stopped = SaveError(
        error.path,
        f"{error.problem}. Training stopped at epoch {run.epoch}; the model holds its state, and this error's "
        f".history holds the run's History",
        errno=error.errno,
    )
    _attach(stopped, history)
    return stopped


def training_step(model: Any, X: Any, y: Any) -> GenericStep | PlannedStep:
    """The step `Model.train` runs on checked (X, y): the plan on the backend's kernel when it has one and it takes
    the data, else the generic step. The choice's sentence (what `explain_step(X, y)` says) is kept as
    `model.last_step`."""
    choice = choose_step(model, X, y)
    model.last_step = choice.sentence
    return PlannedStep(model, choice.plan, choice.kernel) if choice.compiled else GenericStep(model)


def explain_step(model: Any, X: Any = None, y: Any = None) -> str:
    """Which step `Model.train` runs for `model` on its backend, and why, in one sentence: for the data (X, y),
    checked as `train` checks them, or without data for the usual data, naming what data would change it."""
    if (X is None) != (y is None):
        raise TypeError(
            "Model.explain_step takes both X and y (the data train would get), or neither; got only "
            f"{'X' if y is None else 'y'}"
        )
    if X is not None:
        X, y = checked_data(model, X, y, "training")
    return choose_step(model, X, y).sentence


def _loop(model: Any, run: Run, callback: CallbackList, epoch_batches: Any, train_step: Any) -> None:
    callback.on_train_begin(run)
    loss, accuracy = model.loss, model.accuracy
    for epoch in range(run.first_epoch, run.epochs + 1):
        if run.stop:  # a callback stopped training in on_train_begin: no step runs
            break
        run.epoch = epoch
        loss.new_pass()
        accuracy.new_pass()
        callback.on_epoch_begin(run)
        if run.stop:  # stopped in on_epoch_begin: this epoch does not start
            run.epoch = epoch - 1
            break
        with contextlib.closing(epoch_batches(epoch)) as epoch_data:  # a stream's reader thread stops with it
            for step, (X_batch, y_batch) in enumerate(epoch_data):
                run.step, run.batch = step, (X_batch, y_batch)
                run.set_metrics(*train_step(X_batch, y_batch))
                run.global_step += 1
                callback.on_step_end(run)
                if run.stop:
                    break
        if run.stop:
            break
        if run.batch_size is not None:
            data_loss, regularization_loss = loss.calculate_accumulated(include_regularization=True)
            run.set_metrics(accuracy.calculate_accumulated(), data_loss, regularization_loss)
        callback.on_epoch_end(run)
        run.completed_epoch = run.epoch
        model.epochs_trained += 1
        if run.stop:
            break
    callback.on_train_end(run)


def _result(run: Run) -> dict:
    if run.divergence is not None:
        error = run.divergence
        return {"diverged": True, "epoch": error.epoch, "step": error.step, "loss": error.last_finite_loss}
    if not run.metrics:
        return dict(run.logs)
    values = run.host_metrics()
    result = {name: values[name] for name in ("accuracy", "loss", "data_loss", "reg_loss", "lr")}
    return {**result, **run.logs}


def _resume(model: Any, path: Any, epochs: int) -> dict[str, Any]:
    """Load a checkpoint into `model`, all or nothing (parameters, optimizer and RNG state); its training record
    (the last epoch it completed, the shuffling seed). A checkpoint that has done more than `epochs` epochs is
    refused before anything changes."""
    iterations = model.optimizer.iterations
    before = _parameters(model) if iterations else []  # restoring replaces these arrays; it never writes into them
    path = input_path(path, "Model.train resume")

    def check(training: dict) -> None:
        done = training.get("epoch")
        if not is_count(done):
            raise CheckpointError(
                path, f"its training state has no epoch count (got {done!r}); write it with model.train(checkpoint=...)"
            )
        if done > epochs:
            raise ValueError(
                f"Model.train(epochs={epochs}, resume={str(path)!r}): the checkpoint has already trained {done} "
                f"epochs; pass epochs greater than {done} to train on from it (epochs counts from the start of the run)"
            )

    training = io.restore_training(model, path, check=check)
    if iterations and (iterations != model.optimizer.iterations or not _same(model, before, _parameters(model))):
        _checks.warn(
            f"Model.train(resume={str(path)!r}) replaced this model's own progress ({iterations} optimizer steps) "
            f"with the checkpoint's (epoch {training['epoch']}, {model.optimizer.iterations} steps)"
        )
    if training["epoch"] == epochs:
        _checks.warn(
            f"Model.train(epochs={epochs}, resume={str(path)!r}): the checkpoint has already trained all {epochs} "
            f"epochs, so there is nothing left to train; pass a larger epochs to train on"
        )
    model.epochs_trained = training["epoch"]
    return training


def _parameters(model: Any) -> list:
    return [array for layer in model.trainable_layers for array in (layer.weights, layer.biases)]


def _same(model: Any, arrays: list, others: list) -> bool:
    """Whether two lists of parameters hold the same values (one reduction and host copy each, at resume only)."""
    xp = model.xp
    return all(bool(model.backend.to_numpy(xp.all(a == b))) for a, b in zip(arrays, others, strict=True))


def _callback_list(callbacks: Any) -> tuple:
    if callbacks is None:
        return ()
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(
            f"Model.train callbacks must be a list of nnx.callbacks.Callback, got {_checks.describe(callbacks)}; "
            f"pass e.g. callbacks=[MyCallback()]"
        )
    return tuple(callbacks)


def _progress_callbacks(verbose: int | None, print_every: int | None) -> list:
    """What `Model.train` shows besides the book's lines: a bar on a terminal or in a notebook (verbose=1), else
    plain lines."""
    if not verbose:
        return []
    if verbose == 1 and (sys.stderr.isatty() or _notebook.in_notebook()):
        return [ProgressBar()]
    return [LogLines(print_every or 1)]


def verbosity(verbose: Any, owner: str = "Model.train") -> int | None:
    if verbose is None or (isinstance(verbose, int) and not isinstance(verbose, bool) and verbose in VERBOSITY):
        return verbose
    hint = "; use 1 for True and 0 for False" if isinstance(verbose, bool) else ""
    raise ValueError(
        f"{owner} verbose must be None (the book's lines), 0 (silent), 1 (progress bar) or 2 (a line every "
        f"print_every epochs), got {verbose!r}{hint}"
    )


def _book(verbose: int | None, print_every: int | None) -> bool:
    """Whether the validation pass prints the book's line."""
    return verbose is None and bool(print_every)


def is_auto(print_every: Any, owner: str = "Model.train") -> bool:
    """Whether `print_every` is "auto"; any other string is a TypeError naming the choices."""
    if not isinstance(print_every, str):
        return False
    if print_every == "auto":
        return True
    raise TypeError(
        f'{owner} print_every must be a positive integer, "auto" or None, got {print_every!r}; pass e.g. '
        f"print_every=100"
    )


def _is_zero(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == 0
