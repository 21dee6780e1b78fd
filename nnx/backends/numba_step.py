"""The NumPy backend's compiled training step (Numba, the ``fast`` extra): a `StepProgram` run over packed buffers.

It is the stack kernel (`numba_kernels`) for one model: one call per batch runs the forward pass, the loss and the
backward pass a tile of rows at a time, stored feature by feature (`numba_columns`), then the regularization and
the optimizer update. Large batches split their rows across the threads. It sees arrays, integer codes and scalars
only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import cast

import numba
import numpy as np

from nnx.backends._base import PARALLEL_MIN_ROWS  # fewer rows (all models together) run on the calling thread
from nnx.backends._parallel import parallel_call
from nnx.backends.numba_kernels import train_parallel, train_serial
from nnx.backends.step_program import FLOAT_DTYPES, StepProgram
from nnx.backends.tables import KERNEL_NUMBERS, head, update_rule

MAX_LAYER_SIZE = 65536  # n_inputs * n_outputs above which BLAS (the generic step) beats the kernel
NARROW = 16  # Dense layers with fewer outputs are stored transposed, so that their loops run along the inputs
MIN_CHUNK_ROWS = 256  # a model's rows are split across the threads in runs of at least this many
# Columns of the layer table, one row per Dense layer.
N_INPUTS, N_OUTPUTS, WEIGHTS_AT, BIASES_AT, TRANSPOSED = range(5)


def why_not(program: StepProgram) -> str | None:
    """Why this kernel cannot run `program`, or None when it can."""
    if program.dtype not in FLOAT_DTYPES:
        return f"the compiled step computes in float32 or float64, not {program.dtype}"
    for index, (n_inputs, n_outputs) in enumerate(program.dense):
        if n_inputs * n_outputs > MAX_LAYER_SIZE:
            return (
                f"Dense layer {index} has {n_inputs * n_outputs} weights, more than {MAX_LAYER_SIZE}: there the "
                f"generic step's matrix products are faster"
            )
    return None


class NumbaStepKernel:
    """Runs one `StepProgram` on NumPy arrays: one compiled call per batch, on packed parameter and state buffers.

    The parameters of all Dense layers live in one flat buffer (weights, biases, weights, ...; the weights of narrow
    layers transposed), and each optimizer slot in another laid out the same way; `views` shapes them as the layers'
    own arrays, so a layer's parameters can be views of the buffer.
    """

    def __init__(self, program: StepProgram):
        self.program = program
        self.dtype = np.dtype(program.dtype)
        self.head = program.head
        self.labels = head(program.head).labels  # class labels as int64, else targets shaped like the outputs
        self.update_rule = program.update_rule
        self.rule = update_rule(program.update_rule)
        self.outputs = program.widths[-1]
        self.tables, self.segments, _ = program_tables(program)
        self.layers = self.tables[0]
        self.size = int(self.segments[-1, 1])
        self.rule_constants = rule_constants(program)
        self.step_at = 2 + len(self.rule.kernel_numbers(self.rule_constants))  # where the per-step numbers go
        self.kind = self.dtype.type
        self.nothing = np.zeros(0, dtype=self.dtype)
        self.no_labels = np.zeros(0, dtype=np.int64)
        self.no_targets = np.zeros((0, 0), dtype=self.dtype)
        self.threads = numba.get_num_threads()  # read once: asking costs about a microsecond
        self.X = self.y = self.prepared = None
        self.cached: tuple | None = None  # (inputs, targets, the bound compiled call): see `_cached_call`
        self.set_programs((program,))

    def set_programs(self, programs: tuple[StepProgram, ...]) -> None:
        """Each model's own numbers, one row per model: hyperparameters, regularization, constants (the number of
        samples is set per batch) and update-rule constants."""
        self.programs = tuple(programs)
        self.n_models = len(programs)
        self.hypers = np.stack([fixed_hyperparameters(program, self.dtype) for program in programs])
        self.regularizations = np.stack([program_tables(program)[2] for program in programs])
        self.model_constants = np.array(
            [[0, program.precision, program.clip_epsilon, 1 - program.clip_epsilon] for program in programs]
        )
        constants = [rule_constants(program) for program in programs]
        self.model_rule_constants = {name: np.array([c[name] for c in constants]) for name in self.rule.constants}
        self.results = np.zeros((self.n_models, 4))
        self.no_masks = np.zeros((self.n_models, 0), dtype=self.dtype)

    # Buffers ---------------------------------------------------------------------------------------------------

    def new_buffers(self) -> list:
        """Zeroed flat buffers for the parameters and each optimizer slot: the ones `run` updates. The plan that
        asked for them owns them; `views` shapes them as the layers' arrays."""
        return [buffer.reshape(self.size) for buffer in self.stacked_buffers()]

    def stacked_buffers(self) -> list:
        """Zeroed (M, size) buffers for the parameters and each optimizer slot, one row per model; the kernel
        updates them."""
        buffers = [np.zeros((self.n_models, self.size), dtype=self.dtype) for _ in range(1 + len(self.program.slots))]
        empty = np.zeros((self.n_models, 0), dtype=self.dtype)
        first, second = (*buffers[1:], empty, empty)[:2]
        self.params = buffers[0]
        self.rest = (*self.tables, self.model_constants, first, second, self.segments, self.regularizations)
        self.rest += (self.update_rule, self.hypers[None], self.results[None])  # one step: see `train_parallel`
        self.cached = None
        return buffers

    def views(self, flat) -> list[tuple]:
        """[(weights, biases) per Dense] as views of `flat`, shaped as the layers' own arrays."""
        views = []
        for n_inputs, n_outputs, weights_at, biases_at, transposed in self.layers:
            weights = flat[weights_at:biases_at]
            weights = weights.reshape(n_outputs, n_inputs).T if transposed else weights.reshape(n_inputs, n_outputs)
            views.append((weights, flat[biases_at : biases_at + n_outputs].reshape(1, n_outputs)))
        return views

    def fits(self, array, like) -> bool:
        """Whether `array` can be copied into the view `like`: a NumPy array of its shape and dtype."""
        return type(array) is np.ndarray and array.dtype == self.dtype and array.shape == like.shape

    @staticmethod
    def copy_into(view, values) -> None:
        """Copy `values` (an array of the view's shape, or a number) into a view of a buffer."""
        np.copyto(view, values)

    @staticmethod
    def standalone(view):
        """A C-contiguous copy of `view` that shares no memory with the buffer."""
        return np.array(view, order="C")

    # Data ------------------------------------------------------------------------------------------------------

    @property
    def takes(self) -> str:
        """What data this kernel takes, in words (other data runs the generic step)."""
        targets = "class labels or one-hot rows" if self.labels else f"C-contiguous {self.dtype.name} targets"
        return f"C-contiguous {self.dtype.name} inputs and {targets}"

    def prepare(self, X, y) -> str | None:
        """Prepare the training set once (class labels as int64; one-hot rows converted). Batches that are the
        whole set, or runs of its rows, are then taken without checks.

        Returns:
            None when prepared; else why the kernel cannot take this data (the generic step runs it then).
        """
        self.y, self.prepared = y, _targets(self.labels, self.outputs, self.dtype, y, _rows(y))
        self.X = X if _takes(X, self.dtype, self.program.widths[0]) else None
        if self.X is None:
            return f"the compiled step takes {self.takes}, and the inputs are not ({_describe(X)})"
        if self.prepared is None:
            return f"the compiled step takes {self.takes}, and the targets are not ({_describe(y)})"
        return None

    def batch_targets(self, X_batch, y_batch):
        """The prepared targets of this batch (a slice when `y_batch` is rows of the training targets), or None
        when the kernel cannot take the batch: the generic step runs it then."""
        if X_batch is self.X and y_batch is self.y:
            return self.prepared
        if not _takes(X_batch, self.dtype, self.program.widths[0]) or type(y_batch) is not np.ndarray:
            return None
        start = _row_offset(y_batch, self.y) if self.prepared is not None else None
        if start is not None:
            return self.prepared[start : start + y_batch.shape[0]]
        return _targets(self.labels, self.outputs, self.dtype, y_batch, X_batch.shape[0])

    # One step --------------------------------------------------------------------------------------------------

    def run(self, X_batch, targets, masks, learning_rate: float, step: int):
        """Train on one batch in one compiled call, updating the buffers (parameters, then slots) in place; `step`
        counts from 1 (Adam's bias corrections).

        Returns (accuracy, data_loss, reg_loss, loss_sum, correct, count): the step's metrics, then the sums the
        loss and accuracy add to their epoch (as their generic `calculate` would).
        """
        n_samples = X_batch.shape[0]
        hyper = self.hypers[0]  # in the model's dtype, as the generic update rounds them
        hyper[0] = -learning_rate
        hyper[1] = learning_rate
        if self.rule.step_numbers is not None:
            numbers = self.rule.step_numbers(self.rule_constants, step)
            hyper[self.step_at : self.step_at + len(numbers)] = numbers
        if masks:
            self.cached = None
            self.model_constants[:, 0] = n_samples
            self._call(X_batch, targets, np.concatenate([m.reshape(1, -1) for m in masks], axis=1))
        else:
            self._cached_call(X_batch, targets)()
        loss_sum, correct, reg_loss, _ = self.results[0].tolist()
        count = n_samples if self.labels else n_samples * self.outputs
        kind = self.kind
        correct = np.float32(correct)
        return correct / count, kind(loss_sum / n_samples), kind(reg_loss), kind(loss_sum), correct, count

    def _cached_call(self, X_batch, targets):
        """The compiled call for this batch without dropout masks, its arguments bound once per batch arrays (the
        whole set, batch after batch, is the same arrays)."""
        cached = self.cached
        if cached is not None and cached[0] is X_batch and cached[1] is targets:
            return cached[2]
        self.model_constants[:, 0] = X_batch.shape[0]
        labels, others = (targets, self.no_targets) if self.labels else (self.no_labels, targets)
        kernel, chunks = launcher(self.n_models, X_batch.shape[0], self.threads)
        call = functools.partial(kernel, X_batch, labels, others, self.no_masks, self.params, *self.rest, chunks)
        self.cached = (X_batch, targets, call)
        return call

    def finite_probe(self):
        """The last step's finite probe: its loss plus sum(p * 0) over the updated parameters, NaN or inf unless
        all of them are finite (computed in the kernel, nothing more to reduce)."""
        return self.results[0, 3]

    def _call(self, X_batch, targets, mask, rest: tuple | None = None) -> None:
        """The one compiled call for a batch (every model), its results in `self.results`; `rest`: the kernel's
        other arguments, when not `self.rest` (another step count)."""
        rest = self.rest if rest is None else rest
        if self.labels:
            run_kernel(X_batch, targets, self.no_targets, mask, self.params, rest, self.threads)
        else:
            run_kernel(X_batch, self.no_labels, targets, mask, self.params, rest, self.threads)


@functools.lru_cache(maxsize=64)
def program_tables(program: StepProgram) -> tuple:
    """The kernel's integer tables for `program`, its parameter segments and their regularization: made once per
    program (the kernel only reads them)."""
    layers, segments, regularization = _layout(program)
    chains = program.chains
    tables = (
        layers,
        np.array(program.widths, dtype=np.int64),
        np.array([op for chain in chains for op in chain], dtype=np.int64),
        np.cumsum([0, *(len(chain) for chain in chains)]).astype(np.int64),
        np.cumsum([0, *program.dropout_widths()])[:-1].astype(np.int64),
        program.head,
    )
    return tables, np.array(segments, dtype=np.int64), np.array(regularization, dtype=program.dtype)


def _layout(program: StepProgram):
    """The layer table (see the column names), each parameter array's [start, stop) in the flat buffer, and its
    (l1, l2, 2 * l2)."""
    layers: list[tuple[int, int, int, int, bool]] = []
    segments: list[tuple[int, int]] = []
    regularization: list[tuple[float, float, float]] = []
    for (n_inputs, n_outputs), (weight_l1, weight_l2, bias_l1, bias_l2) in zip(
        program.dense, program.regularization, strict=True
    ):
        weights_at = segments[-1][1] if segments else 0
        biases_at = weights_at + n_inputs * n_outputs
        layers.append((n_inputs, n_outputs, weights_at, biases_at, n_outputs < NARROW))
        segments += [(weights_at, biases_at), (biases_at, biases_at + n_outputs)]
        regularization += [(weight_l1, weight_l2, 2 * weight_l2), (bias_l1, bias_l2, 2 * bias_l2)]
    return np.array(layers, dtype=np.int64), segments, regularization


def rule_constants(program: StepProgram) -> dict[str, float]:
    """The program's update-rule constants by name (0 for one it lacks: plain SGD stacked as momentum SGD)."""
    return {name: program.constant(name) for name in update_rule(program.update_rule).constants}


def fixed_hyperparameters(program: StepProgram, dtype):
    """The KERNEL_NUMBERS numbers `numba_ops.update_rule_step` reads: the learning rate (negated, then as is) and
    the step-dependent numbers of the rule are left to fill per step (1 until then), the rule's fixed numbers
    (from the table) are set."""
    rule = update_rule(program.update_rule)
    fixed = rule.kernel_numbers(rule_constants(program))
    values = [0.0, 0.0, *fixed]
    values += [1.0] * (KERNEL_NUMBERS - len(values))
    return np.array(values, dtype=dtype)


def _rows(y) -> int:
    return y.shape[0] if type(y) is np.ndarray and y.ndim else -1


def _describe(x) -> str:
    if type(x) is not np.ndarray:
        return f"got {type(x).__name__}"
    order = "C-contiguous" if x.flags.c_contiguous else "not C-contiguous"
    return f"got {x.dtype} {x.shape}, {order}"


def _targets(labels: bool, outputs: int, dtype, y, n_samples: int):
    """For a head of class labels, the labels as contiguous int64 (one-hot rows converted); for the others the
    targets themselves, which must already be (n_samples, outputs) in the model's dtype; None when they are
    neither."""
    if type(y) is not np.ndarray or y.shape[:1] != (n_samples,):
        return None
    if not labels:
        fits = y.shape == (n_samples, outputs) and y.dtype == dtype and y.flags.c_contiguous
        return y if fits else None
    if y.ndim == 2 and y.shape[1] == outputs:
        return np.argmax(y, axis=1)
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        return np.ascontiguousarray(y, dtype=np.int64)
    return None


def _takes(X_batch, dtype, features) -> bool:
    return (
        type(X_batch) is np.ndarray
        and X_batch.ndim == 2
        and X_batch.shape[0] > 0
        and X_batch.shape[1] == features
        and X_batch.dtype == dtype
        and X_batch.flags.c_contiguous
    )


def _row_offset(batch, full) -> int | None:
    """The index of `batch`'s first row in `full` when `batch` is a run of whole rows of it, else None."""
    if type(full) is not np.ndarray or full.ndim == 0:
        return None
    if batch.dtype != full.dtype or batch.shape[1:] != full.shape[1:] or batch.strides != full.strides:
        return None
    distance = batch.__array_interface__["data"][0] - full.__array_interface__["data"][0]
    stride = full.strides[0]
    if stride <= 0 or distance % stride:
        return None
    start = distance // stride
    return start if start >= 0 and start + batch.shape[0] <= full.shape[0] else None


def run_kernel(X, labels, targets, masks, params, rest, threads: int) -> None:
    """Train every model (row of `params`) on one batch in one compiled call, its results in the last array of
    `rest`, which holds the program's tables, the constants, the optimizer slots, the segments and their
    regularization, the update rule, its numbers and the results (`train_serial`'s other arguments, in order)."""
    kernel, chunks = launcher(params.shape[0], X.shape[0], threads)
    kernel(X, labels, targets, masks, params, *rest, chunks)


def launcher(n_models: int, n_rows: int, threads: int) -> tuple[Callable[..., None], int]:
    """The compiled function that trains `n_models` models on a batch of `n_rows` (on the threads, or on the
    calling thread), and into how many runs each model's rows split (see `work_split`)."""
    parallel, chunks = work_split(n_models, n_rows, threads)
    kernel = functools.partial(parallel_call, train_parallel) if parallel else train_serial
    return cast(Callable[..., None], kernel), chunks


def work_split(n_models: int, n_rows: int, threads: int) -> tuple[bool, int]:
    """(whether to run on the threads, into how many runs each model's rows split): the models across the threads,
    and each model's rows too when there are fewer models than threads, so that the pieces divide evenly."""
    if threads < 2 or n_models * n_rows < PARALLEL_MIN_ROWS:
        return False, 1
    chunks = threads // math.gcd(n_models, threads)
    return True, max(1, min(chunks, n_rows // MIN_CHUNK_ROWS))
