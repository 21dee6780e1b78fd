"""The NumPy backend's compiled training step (Numba, the ``fast`` extra): a `StepProgram` run over packed buffers.

One pass over the rows (`numba_kernels`), a tile of rows at a time, runs the forward pass, the loss and the backward
pass of each tile while it is in cache, then the regularization and the optimizer update, in one call. It sees
arrays, integer codes and scalars only.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from nnx.backends._parallel import parallel_call
from nnx.backends.numba_kernels import train_parallel, train_serial
from nnx.backends.step_program import FLOAT_DTYPES, StepProgram
from nnx.backends.tables import KERNEL_NUMBERS, head, update_rule

MAX_LAYER_SIZE = 65536  # n_inputs * n_outputs above which BLAS (the generic step) beats a row-wise kernel
NARROW = 16  # Dense layers with fewer outputs are stored transposed, so that their loops run along the inputs
PARALLEL_MIN_ROWS = 128  # smaller batches run on one thread: waking the threads costs about what they save
ROWS_PER_THREAD = 64
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
        self.tables, self.segments, self.regularization = program_tables(program)
        self.layers = self.tables[0]
        self.size = int(self.segments[-1, 1])
        self.hyper = fixed_hyperparameters(program, self.dtype)
        self.rule_constants = rule_constants(program)
        self.step_at = 2 + len(self.rule.kernel_numbers(self.rule_constants))  # where the per-step numbers go
        self.kind = self.dtype.type
        self.nothing = np.zeros(0, dtype=self.dtype)
        self.no_labels = np.zeros(0, dtype=np.int64)
        self.no_targets = np.zeros((0, 0), dtype=self.dtype)
        self.no_slots = (self.nothing, self.nothing)
        epsilon = program.clip_epsilon
        self.constants = np.array([0, program.precision, epsilon, 1 - epsilon])  # n_samples is set per batch
        self.X = self.y = self.prepared = None

    # Buffers ---------------------------------------------------------------------------------------------------

    def new_buffers(self) -> list:
        """Zeroed flat buffers for the parameters and each optimizer slot: the ones `run` updates. The plan that
        asked for them owns them; `views` shapes them as the layers' arrays."""
        buffers = [np.zeros(self.size, dtype=self.dtype) for _ in range(1 + len(self.program.slots))]
        first, second = (*buffers[1:], self.nothing, self.nothing)[:2]
        self.params = buffers[0]
        self.rest = (*self.tables, self.constants, first, second, self.segments, self.regularization)
        self.rest += (self.update_rule, self.hyper)
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
        self.constants[0] = n_samples
        hyper = self.hyper  # in the model's dtype, as the generic update rounds them
        hyper[0], hyper[1] = -learning_rate, learning_rate
        if self.rule.step_numbers is not None:
            numbers = self.rule.step_numbers(self.rule_constants, step)
            hyper[self.step_at : self.step_at + len(numbers)] = numbers
        mask = np.concatenate([m.reshape(-1) for m in masks]) if masks else self.nothing
        if self.labels:
            loss_sum, correct, reg_loss = run_kernel(X_batch, targets, self.no_targets, mask, self.params, self.rest)
            count = n_samples
        else:
            loss_sum, correct, reg_loss = run_kernel(X_batch, self.no_labels, targets, mask, self.params, self.rest)
            count = n_samples * self.outputs
        kind = self.kind
        correct = np.float32(correct)
        return correct / count, kind(loss_sum / n_samples), kind(reg_loss), kind(loss_sum), correct, count


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


def run_kernel(X, labels, targets, masks, params, rest):
    """Train on one batch in one compiled call: (sum of sample losses, sum of comparisons, regularization loss).
    `rest` holds the program's tables, the constants, the optimizer slots, the segments and their regularization,
    the update rule and its numbers (`train_serial`'s other arguments, in order)."""
    n_samples = X.shape[0]
    if n_samples >= PARALLEL_MIN_ROWS:  # asking Numba for its thread count costs more than a small step
        threads = min(numba.get_num_threads(), n_samples // ROWS_PER_THREAD)
        if threads > 1:
            return parallel_call(train_parallel, X, labels, targets, masks, params, *rest, threads)
    return train_serial(X, labels, targets, masks, params, *rest)
