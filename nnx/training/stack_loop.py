"""`train_many`: train many models of one architecture on the same data as one stacked computation.

The loop runs over epochs and batches once for the whole stack; each model keeps its own hyperparameters, dropout
stream, metrics and `History`, and a model that diverges is frozen at its last finite epoch while the others go on.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from nnx import _checks
from nnx._component import FilePath
from nnx.backends import _host
from nnx.backends._host import SEED_LIMIT, checked_seed
from nnx.backends.step_program import SOFTMAX_CROSSENTROPY
from nnx.callbacks.divergence import DIVERGENCE_ACTIONS
from nnx.callbacks.history import History
from nnx.callbacks.progress import StackProgress, lines_every
from nnx.callbacks.tensorboard import runs_folder, write_models
from nnx.training.data import batches, checked_data, pair, steps
from nnx.training.loop import is_auto, only_training, verbosity
from nnx.training.stack_plan import OWNER, StackPlan, plan_stack
from nnx.training.stack_records import Completed, StackRecords
from nnx.training.stack_spans import spans_for
from nnx.training.stack_step import (
    GenericStack,
    comparisons_per_sample,
    count_hits,
    epoch_rows,
    host_rows,
    stack_step,
    write_back,
)
from nnx.training.stack_stops import StopModels, asked_stops, checked_hook, live_metrics
from nnx.training.streams import draw_seed, permuted

MEMORY_BUDGET = 1 << 30  # bytes a stack may use by default; larger stacks run in chunks, one after another


def train_many(
    models: Sequence[Any],
    X: Any,
    y: Any,
    *,
    epochs: int = 1,
    batch_size: int | None = None,
    validation_data: tuple[Any, Any] | None = None,
    print_every: int | str | None = "auto",
    verbose: int | None = None,
    on_divergence: str = "stop",
    seed: int | Sequence[int] | None = None,
    shuffle: bool = False,
    memory_budget: int | None = None,
    tensorboard: FilePath | None = None,
    stop_models: StopModels | None = None,
    stop_every: int = 1,
) -> list[History]:
    """Train many models of one architecture on the same data as one stacked computation.

    Each model may have its own optimizer hyperparameters (one optimizer class), L1/L2 strengths, dropout rates and
    initial weights, and ends as if it had been trained alone with ``model.train(X, y, epochs=..., batch_size=...,
    validation_data=...)``: parameters, optimizer state, step count and `epochs_trained`. A model whose loss or
    parameters stop being finite is frozen at its last finite epoch, and the others go on unchanged. On the NumPy
    backend with the ``fast`` extra one compiled call per batch trains every model; elsewhere the generic stacked
    step runs (`nnx.training.explain_stack` says which). Everything is checked before anything changes.

    Ctrl-C (KeyboardInterrupt) or any error while training stops it as `Model.train` stops: every model holds its
    last completed epoch (a chunk not started: its models untouched), and the exception carries every model's
    History, up to that epoch, as `histories`.

    Args:
        models: finalized Models of one architecture on one backend (see `nnx.training.plan_stack`), distinct and
            built from their own layer objects.
        X: the training inputs, shared by every model: host data or an array of the models' backend.
        y: the targets, as `Model.train` takes them.
        epochs: epochs to train, an integer >= 1.
        batch_size: samples per step; None trains on the whole set at each step.
        validation_data: an (X_val, y_val) pair evaluated after every epoch with `batch_size`, else once at the
            end; None for none.
        print_every: epochs between progress lines (one line per stack, with the best and median loss and how many
            models diverged); "auto" makes at most about 100 lines; None or 0 prints nothing.
        verbose: None for the lines of `print_every`; 0 silent, 1 a progress bar (on a terminal or in a notebook),
            2 lines.
        on_divergence: "stop" (the default) freezes a diverged model while the others go on, "warn" also warns,
            "raise" stops the whole stack with a DivergenceError whose `histories` hold every model's History (every
            model then holds its last finite state). `Model.train` defaults to "raise" because its one model has
            nothing left to train; here one diverged setting of many (a high learning rate in a search) is a result,
            not a reason to stop the rest.
        seed: model i draws its dropout masks from a NumPy stream seeded ``seed + i``: the masks a solo
            ``nnx.seed(seed + i); model.train(...)`` draws on the NumPy backends. A list gives each model its own
            seed. None draws the seed from NumPy's global RNG (so `nnx.seed` makes runs repeatable).
        shuffle: whether each epoch takes the rows in a new order, the same for every model: the order
            ``model.train(shuffle=True)`` takes, from one seed drawn from NumPy's global RNG (after the dropout
            seed, when that is drawn too).
        memory_budget: bytes a stack may use, an integer >= 1; larger stacks train in chunks, one after another.
            None is 1 GiB.
        tensorboard: a folder that gets one TensorBoard run per model after training (also when an error or Ctrl-C
            stops it, for the epochs trained), named by its index and the hyperparameters that differ between the
            models ("model0,learning_rate=0.05"); None for none.
        stop_models: a function ``stop_models(epoch, metrics)`` called after every epoch with one dict per model
            still training: "model" (its index in `models`), "loss", "data_loss", "reg_loss", "accuracy", "lr" and,
            when validated that epoch, "val_loss" and "val_accuracy" (host floats, no extra transfer). It returns
            the indices of the models to stop (an empty list for none): each leaves the stack at once, holding
            that epoch, the way a diverged model is frozen, and the others go on with unchanged numbers (a search
            pruning its bad trials). None for none.
        stop_every: epochs between calls of `stop_models`, an integer >= 1: it is called after every
            `stop_every`-th epoch and after the last. Where a stack trains several epochs in one kernel call, they
            run between those calls.

    Returns:
        One `History` per model, in order. A diverged model's `final` is {"diverged": True, "epoch", "step",
        "loss"}, with its last finite loss; a model that `stop_models` stopped has its last epoch's metrics and
        {"stopped": True, "epoch": E}.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: an argument has a wrong value, the models cannot stack (two share a layer, ...), or a model's
            parameters are not finite before training.
        DivergenceError: a model diverged and `on_divergence` is "raise".
        KeyboardInterrupt: Ctrl-C while training; like any error raised while training, it carries `histories`
            and each model holds its last completed epoch.
    """
    plan = plan_stack(models)
    epochs = _checks.positive_int(epochs, "epochs", OWNER)
    batch_size = _checks.optional_positive_int(batch_size, "batch_size", OWNER)
    action = _checks.choice(on_divergence, "on_divergence", OWNER, DIVERGENCE_ACTIONS)
    verbose = verbosity(verbose, OWNER)
    stop_models = checked_hook(stop_models)
    every_stop = _checks.positive_int(stop_every, "stop_every", OWNER)
    every = _print_every(print_every, epochs)
    budget = MEMORY_BUDGET if memory_budget is None else _checks.positive_int(memory_budget, "memory_budget", OWNER)
    first = plan.models[0]
    X, y = _data(first, X, y, "training")
    validation = None if validation_data is None else _validation(first, validation_data)
    seeds = _model_seeds(seed, plan)
    order = draw_seed() if _checks.boolean(shuffle, "shuffle", OWNER) else None
    runs = None if tensorboard is None else runs_folder(tensorboard, f"{OWNER} tensorboard")
    _check_finite_start(plan)
    with contextlib.ExitStack() as locks:
        for model in plan.models:
            locks.enter_context(only_training(model))
        with first.backend.quiet_float_errors():
            for model in plan.models:
                model.accuracy.init(y)
        if plan.program.head != SOFTMAX_CROSSENTROPY:
            plan = plan_stack(plan.models)  # again: the regression accuracy's precision is known now
        progress = StackProgress(verbose, every)
        run = _Settings(epochs, batch_size, validation, action, seeds, progress, stop_models, every_stop)
        run.order, run.steps = order, steps(X.shape[0], batch_size)
        chunks = _chunks(
            len(plan.models), _bytes_per_model(plan, X.shape[0] if batch_size is None else batch_size), budget
        )
        histories: list = []
        stopped = _Stopped()
        try:
            with first.backend.quiet_float_errors():  # a diverging model is frozen and reported, not warned about
                for number, chunk in enumerate(chunks, start=1):
                    run.progress.start(number, len(chunks), len(chunk), epochs)
                    histories += _train_stack(plan.part(chunk), chunk, X, y, run, stopped)
        except BaseException as error:  # Ctrl-C too: every model keeps its last completed epoch
            _explain_stop(error, histories, stopped, chunks, epochs)
            _log_runs(runs, plan.models, error.histories, epochs, batch_size, error)  # type: ignore[attr-defined]
            raise
        finally:
            run.progress.close()  # also when a DivergenceError ("raise") or Ctrl-C ends the run
    _log_runs(runs, plan.models, histories, epochs, batch_size)
    return histories


def _log_runs(folder, models: list, histories: list, epochs: int, batch_size, stopped_by=None) -> None:
    """One TensorBoard run per model in `folder` (None: none); `stopped_by`: the error that stopped training."""
    if folder is not None:
        write_models(folder, models, histories, epochs=epochs, batch_size=batch_size, stopped_by=stopped_by)


@dataclass
class _Stopped:
    """What the stack that an error stopped kept: its models' Histories and its last completed epoch."""

    histories: list[History] = field(default_factory=list)
    epoch: int = 0


def _explain_stop(error: BaseException, finished: list, stopped: _Stopped, chunks: list, epochs: int) -> None:
    """Give `error` every model's History as `error.histories` (an empty one for a model that never started) and,
    where Python takes notes, a note saying which models finished, stopped or never started."""
    done = len(finished)
    current: list = next((chunk for chunk in chunks if chunk[0] == done), [])
    untouched = sum(len(chunk) for chunk in chunks) - done - len(current)
    stopped_histories = stopped.histories or [History() for _ in current]
    _attach_histories(error, [*finished, *stopped_histories, *(History() for _ in range(untouched))])
    parts = [f"models {_span(0, done)} finished all {epochs} epochs"] if done else []
    if current and stopped.epoch:
        parts.append(
            f"models {_span(done, len(current))} hold their last completed epoch ({stopped.epoch} of {epochs})"
        )
    elif current:
        parts.append(f"models {_span(done, len(current))} were not trained (stopped before their first epoch ended)")
    if untouched:
        parts.append(f"models {_span(done + len(current), untouched)} were not trained (their chunk never started)")
    note = getattr(error, "add_note", None)
    if note is not None:
        note(f"{OWNER} stopped: {'; '.join(parts)}. error.histories holds every model's History")


def _span(start: int, count: int) -> str:
    return f"[{start}]" if count == 1 else f"[{start}:{start + count}]"


def _validation(model: Any, validation_data: Any) -> tuple:
    """The checked validation pair, an (X, y) pair as `_data` makes it."""
    X_val, y_val = pair(validation_data, f"{OWNER} validation_data")
    return _data(model, X_val, y_val, "validation")


@dataclass
class _Settings:
    """What every stack of one `train_many` call shares."""

    epochs: int
    batch_size: int | None
    validation: tuple | None
    action: str
    seeds: list[int] | None  # each model's dropout seed, None without dropout
    progress: StackProgress
    stop_models: StopModels | None = None
    stop_every: int = 1  # epochs between calls of stop_models (and the last epoch)
    order: int | None = None  # the shuffling seed, None without shuffling
    steps: int = 1  # steps per epoch


def _data(model: Any, X: Any, y: Any, what: str) -> tuple:
    """Checked (inputs, targets) on the models' backend, the inputs in the models' dtype (cast once, as each
    Dense layer would cast them per batch)."""
    X, y = checked_data(model, X, y, what)
    dtype = model.trainable_layers[0].dtype
    return (X if X.dtype == dtype else model.xp.astype(X, dtype)), y


def _print_every(print_every: Any, epochs: int) -> int | None:
    if is_auto(print_every, OWNER):
        return lines_every(epochs)
    if print_every is None or print_every == 0:
        return None
    return _checks.positive_int(print_every, "print_every", OWNER)


def _model_seeds(seed: Any, plan: StackPlan) -> list[int] | None:
    """Each model's dropout seed (a list's, else seed + i), or None when no model has dropout."""
    count = len(plan.models)
    if isinstance(seed, (list, tuple)):
        if len(seed) != count:
            raise ValueError(f"{OWNER} got {len(seed)} seeds for {count} models; pass one seed per model, or one int")
        seeds = [checked_seed(value, f"{OWNER} seed[{index}]") for index, value in enumerate(seed)]
        return seeds if plan.program.dropout_keep else None
    if seed is not None:
        seed = checked_seed(seed, f"{OWNER} seed")
        if seed + count > SEED_LIMIT:
            raise ValueError(
                f"{OWNER} seed must leave room for one seed per model below 2**32, got {seed} for {count} models; "
                f"pass a smaller seed"
            )
    if not plan.program.dropout_keep:
        return None
    first = _host.drawn_seed(SEED_LIMIT - count) if seed is None else seed
    return [first + index for index in range(count)]


def _chunks(n_models: int, bytes_per_model: int, budget: int) -> list[list[int]]:
    """The models' positions cut into consecutive chunks that fit `budget` bytes (at least one model each)."""
    size = max(1, budget // max(1, bytes_per_model))
    return [list(range(start, min(start + size, n_models))) for start in range(0, n_models, size)]


def _bytes_per_model(plan: StackPlan, rows: int) -> int:
    """About how many bytes one model of the stack uses: its parameters and optimizer slots (with a snapshot and
    the gradients) and its activations for a batch of `rows`."""
    program = plan.program
    parameters = sum(n_inputs * n_outputs + n_outputs for n_inputs, n_outputs in program.dense)
    itemsize = 8 if program.dtype == "float64" else 4
    activations = rows * (sum(program.widths) * 4 + sum(program.dropout_widths()))
    return itemsize * (parameters * (3 + 2 * len(program.slots)) + activations)


def _train_stack(plan: StackPlan, chunk: list[int], X, y, run: _Settings, stopped: _Stopped) -> list[History]:
    """Train one stack for every epoch; returns its models' Histories (each model is written back as it stops:
    a diverged one at its last finite epoch, the others at the end). On any error (Ctrl-C too) every model not yet
    written back gets its last completed epoch, and `stopped` the Histories up to it."""
    records = StackRecords(chunk, run.validation is not None)
    try:
        targets = _head_targets(plan, y)
        stack = stack_step(plan, X, targets)
        records.completed = Completed(stack.state(), list(range(len(plan.models))), 0)
        _epochs(plan, stack, records, X, targets, run)
    except BaseException:
        _keep_completed(plan, records, stopped)
        raise
    done = records.completed
    write_back(plan, done.members, done.state, done.epoch)
    return records.histories()


def _epochs(plan: StackPlan, stack: GenericStack, records: StackRecords, X, targets, run: _Settings) -> None:
    """Run the epochs, each completed one kept as `records.completed` (replaced in one step: an error between
    two steps finds the last completed epoch whole); spans of epochs with nothing between them train in one call."""
    members = list(range(len(plan.models)))  # stack positions -> positions in `plan`
    streams = None if run.seeds is None else _host.seeded_streams([run.seeds[index] for index in records.chunk])
    every = None if run.stop_models is None else run.stop_every
    same_steps = run.batch_size is None and streams is None and run.order is None  # each epoch: one step, same data
    spans = spans_for(stack, X, targets, run.epochs, every) if same_steps else None
    epoch = 1
    while epoch <= run.epochs and members:
        span = None if spans is None else spans.run(epoch, records)
        for host in [] if span is None else span[:-1]:  # the epochs inside a span: recorded, nothing else to do
            records.add_finite(epoch, members, host)
            run.progress.epoch(epoch, records.losses, records.n_diverged)
            epoch += 1
        host = _one_epoch(plan, stack, members, streams, X, targets, run, epoch) if span is None else span[-1]
        members, streams = _end_epoch(plan, stack, records, run, epoch, host, (members, streams))
        epoch += 1
    run.progress.close()


def _one_epoch(plan: StackPlan, stack: GenericStack, members: list, streams, X, targets, run: _Settings, epoch: int):
    """Train one epoch batch by batch; returns its host rows (see `StackRecords.add`)."""
    n_samples = X.shape[0]
    loss_sum = correct = reg_loss = 0
    ordered = (X, targets) if run.order is None else permuted(plan.models[0], X, targets, run.order, epoch)
    for X_batch, y_batch in _batches(*ordered, run.batch_size):
        masks = _masks(stack, plan, members, streams, X_batch.shape[0])
        step_loss, step_correct, reg_loss = stack.step(X_batch, y_batch, masks)
        loss_sum, correct = loss_sum + step_loss, correct + step_correct
    if run.batch_size is not None:
        reg_loss = stack.penalties()
    return epoch_rows(stack, (loss_sum, correct, reg_loss), stack.schedule.current, n_samples)


def _end_epoch(
    plan: StackPlan, stack: GenericStack, records: StackRecords, run: _Settings, epoch: int, host, live: tuple
) -> tuple:
    """Record an epoch's host rows (validating when due), freeze the models that diverged in it, keep it as the
    last completed epoch and ask the stop_models hook; returns the (members, dropout streams) that go on."""
    members, streams = live
    validation = _validate(stack, plan, run) if run.batch_size is not None or epoch == run.epochs else None
    diverged = records.add(epoch, members, host, validation)
    asked = run.stop_models is not None and (epoch % run.stop_every == 0 or epoch == run.epochs)
    metrics = live_metrics(records.chunk, members, host, validation, diverged) if asked else None
    if diverged:
        _freeze(plan, members, diverged, records, epoch, run.steps, run)
        keep = [position for position in range(len(members)) if position not in diverged]
        if run.action == "raise":  # every other model stops here too, at this (finite) epoch
            others = {position: members[position] for position in keep}
            records.completed = Completed(stack.state(), others, epoch)
            raise records.raised(members[diverged[0]], epoch)
        members = [members[position] for position in keep]
        streams = None if streams is None else [streams[position] for position in keep]
        if members:
            stack.take(keep)
    records.completed = Completed(stack.state(), members, epoch)
    if metrics:
        positions = asked_stops(run.stop_models, epoch, metrics)  # type: ignore[arg-type]
        members, streams = _stop(plan, stack, records, (members, streams), positions)
    run.progress.epoch(epoch, records.losses, records.n_diverged)
    return members, streams


def _stop(plan: StackPlan, stack: GenericStack, records: StackRecords, live: tuple, positions: list[int]) -> tuple:
    """Write back the models at stack `positions` at the epoch just completed and take them out of the stack;
    returns the (members, dropout streams) that go on."""
    members, streams = live
    if not positions:
        return members, streams
    done = cast(Completed, records.completed)  # set before the hook runs
    write_back(plan, {position: members[position] for position in positions}, done.state, done.epoch)
    for position in positions:
        records.stopped(members[position], done.epoch)
    keep = [position for position in range(len(members)) if position not in positions]
    members = [members[position] for position in keep]
    streams = None if streams is None else [streams[position] for position in keep]
    if members:
        stack.take(keep)
    records.completed = Completed(stack.state() if members else done.state, members, done.epoch)
    return members, streams


def _keep_completed(plan: StackPlan, records: StackRecords, stopped: _Stopped) -> None:
    """After an error: write back every model not yet written back at the last completed epoch (none completed:
    left untouched), and keep the Histories up to that epoch in `stopped`."""
    done = records.completed
    if done is not None:
        pending = {position: member for position, member in done.members.items() if records.final[member] is None}
        if done.epoch and pending:
            write_back(plan, pending, done.state, done.epoch)
        records.drop_after(done.epoch)
    stopped.histories, stopped.epoch = records.histories(), 0 if done is None else done.epoch


def _head_targets(plan: StackPlan, y):
    """Class labels for a softmax head (one-hot rows become labels), else the targets in the model dtype."""
    xp = plan.backend.xp
    if plan.program.head == SOFTMAX_CROSSENTROPY:
        return xp.argmax(y, axis=1) if y.ndim == 2 else y
    return xp.astype(y, plan.plans[0].dense[0].weights.dtype)


def _batches(X, y, batch_size):
    return ((X, y),) if batch_size is None else batches(X, y, batch_size)


def _masks(stack: GenericStack, plan: StackPlan, members: list, streams, n_samples: int):
    """Each dropout's (M, n_samples, width) masks, each model's from its own stream; None without dropout."""
    if streams is None:
        return None
    widths = stack.program.dropout_widths()
    return [
        stack.backend.stacked_dropout_masks(
            streams, (n_samples, width), [plan.programs[m].dropout_keep[index] for m in members], stack.dtype
        )
        for index, width in enumerate(widths)
    ]


def _validate(stack: GenericStack, plan: StackPlan, run: _Settings):
    """Each model's (validation loss, validation accuracy) as host rows, batch by batch as `Model.evaluate`."""
    if run.validation is None:
        return None
    X_val, y_val = run.validation
    targets = _head_targets(plan, y_val)
    loss_sum = correct = 0
    for X_batch, y_batch in _batches(X_val, targets, run.batch_size):
        outputs = stack.forward(X_batch)[0]
        losses, hits, _ = stack.head(outputs, y_batch)
        loss_sum = loss_sum + stack.xp.sum(losses, axis=-1)
        correct = correct + count_hits(stack.xp, hits)
    n_samples = X_val.shape[0]
    return host_rows(stack.backend, [loss_sum / n_samples, correct / (n_samples * comparisons_per_sample(stack))])


def _check_finite_start(plan: StackPlan) -> None:
    """A ValueError naming the first model whose parameters are not finite (one host copy for all of them)."""
    xp = plan.backend.xp
    with plan.backend.quiet_float_errors():
        probes = [
            sum(xp.sum(array * 0) for layer in model.trainable_layers for array in (layer.weights, layer.biases))
            for model in plan.models
        ]
        host = host_rows(plan.backend, [xp.stack(probes)])
    for index, (value,) in enumerate(host):
        if not math.isfinite(value):
            raise ValueError(
                f"{OWNER} models[{index}] has NaN or infinite parameters before training; reload them with "
                f"model.load_parameters() or rebuild the model"
            )


def _freeze(plan, members, diverged, records, epoch, n_steps, run) -> None:
    """Write the diverged models back at their last finite epoch (the last completed one), and warn if asked."""
    errors = [(members[position], records.diverged(members[position], epoch, n_steps - 1)) for position in diverged]
    done = records.completed
    write_back(plan, {position: members[position] for position in diverged}, done.state, done.epoch)
    if run.action == "warn":
        for member, error in errors:
            warnings.warn(f"{records.name(member)}: {error}", RuntimeWarning, stacklevel=5)


def _attach_histories(error: BaseException, histories: list[History]) -> None:
    """Give `error` every model's History as `error.histories`."""
    error.histories = histories  # type: ignore[attr-defined]
