"""The compiled kernels of the NumPy backend's training step (Numba): forward, loss, backward, regularization and
update of a batch over packed buffers, a tile of rows at a time; `numba_step` prepares their arguments."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from nnx.backends.numba_columns import columns_into
from nnx.backends.numba_ops import FASTMATH, element_wise_rows, head_rows, update_rule_step

TILE = 64  # rows that go through each layer together


# Many models -------------------------------------------------------------------------------------------------------


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def train_stack(
    X, labels, targets, masks, params, layers, widths, chain_ops, chain_starts, mask_columns, head, constants,
    first, second, segments, regularization, update_rule, hyper, results,
):  # fmt: skip
    """One batch for every model of a stack, the models split across the threads: row m of `params`, `first`,
    `second`, `masks`, `constants`, `regularization` and `hyper` is model m's (as `train_serial` takes them);
    `results[m]` gets its (sum of sample losses, sum of comparisons, regularization loss)."""
    for model in prange(params.shape[0]):
        weights = params[model]
        gradient = np.zeros(weights.size, dtype=weights.dtype)
        loss_sum, correct = columns_into(
            gradient, X, labels, targets, masks[model], weights, layers, widths, chain_ops, chain_starts,
            mask_columns, head, constants[model],
        )  # fmt: skip
        reg_loss = _update(
            weights, gradient, first[model], second[model], segments, regularization[model], update_rule, hyper[model]
        )
        results[model, 0] = loss_sum
        results[model, 1] = correct
        results[model, 2] = reg_loss


# One batch --------------------------------------------------------------------------------------------------------


@njit(cache=True, fastmath=FASTMATH)
def train_serial(
    X, labels, targets, masks, params, layers, widths, chain_ops, chain_starts, mask_columns, head, constants,
    first, second, segments, regularization, update_rule, hyper,
):  # fmt: skip
    """One batch on one thread: (sum of sample losses, sum of comparisons, regularization loss). Every argument is
    an array or a number, so that calling it costs little."""
    gradient = np.zeros(params.size, dtype=params.dtype)
    loss_sum, correct = _rows_into(
        gradient, 0, X.shape[0], X, labels, targets, masks, params, layers, widths, chain_ops, chain_starts,
        mask_columns, head, constants,
    )  # fmt: skip
    reg_loss = _update(params, gradient, first, second, segments, regularization, update_rule, hyper)
    return loss_sum, correct, reg_loss


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def train_parallel(
    X, labels, targets, masks, params, layers, widths, chain_ops, chain_starts, mask_columns, head, constants,
    first, second, segments, regularization, update_rule, hyper, chunks,
):  # fmt: skip
    """`train_serial` with the rows split into `chunks` run in parallel, their gradients summed."""
    n_samples = X.shape[0]
    gradients = _zeros(chunks, params.size, params)
    sums = _zeros(chunks, 2, constants)
    for chunk in prange(chunks):
        start = chunk * n_samples // chunks
        stop = (chunk + 1) * n_samples // chunks
        loss_sum, correct = _rows_into(
            gradients[chunk], start, stop, X, labels, targets, masks, params, layers, widths, chain_ops,
            chain_starts, mask_columns, head, constants,
        )  # fmt: skip
        sums[chunk, 0] = loss_sum
        sums[chunk, 1] = correct
    gradient = _sum_rows(gradients)
    reg_loss = _update(params, gradient, first, second, segments, regularization, update_rule, hyper)
    totals = _sum_rows(sums)
    return totals[0], totals[1], reg_loss


@njit(cache=True)
def _zeros(rows, columns, like):
    return np.zeros((rows, columns), dtype=like.dtype)


@njit(cache=True, fastmath=FASTMATH)
def _sum_rows(values):
    total = values[0].copy()
    for row in range(1, values.shape[0]):
        for index in range(values.shape[1]):
            total[index] += values[row, index]
    return total


@njit(cache=True, fastmath=FASTMATH)
def _rows_into(
    gradient, start, stop, X, labels, targets, masks, params, layers, widths, chain_ops, chain_starts, mask_columns,
    head, constants,
):  # fmt: skip
    """Forward, loss and backward of rows [start, stop), adding their gradients into `gradient` (laid out as
    `params`); returns (sum of the rows' losses, sum of their comparisons).

    The rows go through in tiles of TILE rows: each layer runs over the whole tile at once, on (rows, width) views of
    scratch buffers made once per tile, so that no view is made per row and the inner loops run along the widths."""
    n_layers = layers.shape[0]
    n_rows = X.shape[0]
    stage_at = np.zeros(n_layers + 2, dtype=np.int64)  # where each stage lives in `values` and `derivatives`
    for stage in range(n_layers + 1):
        stage_at[stage + 1] = stage_at[stage] + widths[stage] * TILE
    values = np.empty(stage_at[-1], dtype=X.dtype)  # each stage's values, after its element-wise ops
    derivatives = np.empty(stage_at[-1], dtype=X.dtype)  # the gradients of those element-wise ops
    delta = np.empty(widths.max() * TILE, dtype=X.dtype)  # the loss gradient at the current stage
    previous = np.empty(widths.max() * TILE, dtype=X.dtype)
    features = X.reshape(n_rows * widths[0])
    loss_sum = 0.0
    correct = 0.0
    for first in range(start, stop, TILE):
        count = min(TILE, stop - first)
        for stage in range(n_layers + 1):
            width = widths[stage]
            here = values[stage_at[stage] : stage_at[stage] + count * width]
            if stage == 0:
                here[:] = features[first * width : (first + count) * width]
            else:
                n_inputs = widths[stage - 1]
                inputs = values[stage_at[stage - 1] : stage_at[stage - 1] + count * n_inputs]
                _dense_forward(
                    inputs.reshape((count, n_inputs)), params, layers[stage - 1], here.reshape((count, width))
                )
            ops = chain_ops[chain_starts[stage] : chain_starts[stage + 1]]
            stage_derivatives = derivatives[stage_at[stage] : stage_at[stage] + count * width]
            element_wise_rows(here, stage_derivatives, ops, masks, mask_columns, n_rows, first, width)
        width = widths[n_layers]
        outputs = values[stage_at[n_layers] : stage_at[n_layers] + count * width].reshape((count, width))
        loss, hits = head_rows(
            head, outputs, labels, targets, first, constants, delta[: count * width].reshape((count, width))
        )
        loss_sum += loss
        correct += hits
        for layer in range(n_layers - 1, -1, -1):
            n_inputs, n_outputs = widths[layer], widths[layer + 1]
            out_delta = delta[: count * n_outputs]
            if chain_starts[layer + 2] > chain_starts[layer + 1]:  # no element-wise ops: their gradient is 1
                _scale(out_delta, derivatives[stage_at[layer + 1] : stage_at[layer + 1] + count * n_outputs])
            inputs = values[stage_at[layer] : stage_at[layer] + count * n_inputs].reshape((count, n_inputs))
            dinputs = previous[: count * n_inputs].reshape((count, n_inputs))
            _dense_backward(
                inputs, out_delta.reshape((count, n_outputs)), params, gradient, layers[layer], dinputs, layer > 0
            )
            delta, previous = previous, delta
    return loss_sum, correct


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _dense_forward(inputs, params, layer, outputs):
    """outputs = inputs @ weights + biases for a tile of rows."""
    n_inputs, n_outputs, weights_at, biases_at, transposed = layer[0], layer[1], layer[2], layer[3], layer[4]
    biases = params[biases_at : biases_at + n_outputs]
    n_rows = inputs.shape[0]
    if transposed:
        weights = params[weights_at:biases_at].reshape((n_outputs, n_inputs))
        for row in range(n_rows):
            for j in range(n_outputs):
                total = outputs.dtype.type(0)
                for i in range(n_inputs):
                    total += inputs[row, i] * weights[j, i]
                outputs[row, j] = total + biases[j]
        return
    weights = params[weights_at:biases_at].reshape((n_inputs, n_outputs))
    for row in range(n_rows):
        for j in range(n_outputs):
            outputs[row, j] = biases[j]
        for i in range(n_inputs):
            value = inputs[row, i]
            if value != 0:
                for j in range(n_outputs):
                    outputs[row, j] += value * weights[i, j]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _dense_backward(inputs, delta, params, gradient, layer, dinputs, with_dinputs):
    """Add the layer's weight and bias gradients for a tile of rows; set dinputs (before the element-wise
    gradients)."""
    n_inputs, n_outputs, weights_at, biases_at, transposed = layer[0], layer[1], layer[2], layer[3], layer[4]
    n_rows = inputs.shape[0]
    bias_gradient = gradient[biases_at : biases_at + n_outputs]
    for row in range(n_rows):
        for j in range(n_outputs):
            bias_gradient[j] += delta[row, j]
    if transposed:
        weights = params[weights_at:biases_at].reshape((n_outputs, n_inputs))
        weight_gradient = gradient[weights_at:biases_at].reshape((n_outputs, n_inputs))
        for row in range(n_rows):
            if with_dinputs:
                for i in range(n_inputs):
                    dinputs[row, i] = 0
            for j in range(n_outputs):
                d = delta[row, j]
                for i in range(n_inputs):
                    weight_gradient[j, i] += d * inputs[row, i]
                if with_dinputs:
                    for i in range(n_inputs):
                        dinputs[row, i] += d * weights[j, i]
        return
    weights = params[weights_at:biases_at].reshape((n_inputs, n_outputs))
    weight_gradient = gradient[weights_at:biases_at].reshape((n_inputs, n_outputs))
    for row in range(n_rows):
        for i in range(n_inputs):
            value = inputs[row, i]
            if value != 0:
                for j in range(n_outputs):
                    weight_gradient[i, j] += value * delta[row, j]
    if with_dinputs:
        for row in range(n_rows):
            for i in range(n_inputs):
                total = inputs.dtype.type(0)
                for j in range(n_outputs):
                    total += weights[i, j] * delta[row, j]
                dinputs[row, i] = total


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _scale(delta, derivatives):
    for index in range(delta.size):
        delta[index] *= derivatives[index]


@njit(cache=True, fastmath=FASTMATH)
def _update(params, gradient, first, second, segments, regularization, optimizer, hyper):
    """Add the regularization gradients and apply the optimizer to every parameter array, in place in the packed
    arrays; returns the regularization loss of the parameters before the update."""
    reg_loss = 0.0
    for segment in range(segments.shape[0]):
        start, stop = segments[segment, 0], segments[segment, 1]
        reg_loss += _regularize(params, gradient, start, stop, regularization[segment])
    update_rule_step(params, gradient, first, second, optimizer, hyper)
    return reg_loss


@njit(cache=True, fastmath=FASTMATH)
def _regularize(params, gradient, start, stop, strengths):
    """Add the L1/L2 gradients of params[start:stop] to `gradient`; returns their L1/L2 penalty."""
    l1, l2, two_l2 = strengths[0], strengths[1], strengths[2]
    absolute = 0.0
    squares = 0.0
    if l1 > 0:
        for index in range(start, stop):
            absolute += abs(params[index])
            gradient[index] += -l1 if params[index] < 0 else l1
    if l2 > 0:
        for index in range(start, stop):
            squares += params[index] * params[index]
            gradient[index] += two_l2 * params[index]
    return l1 * absolute + l2 * squares
