"""The compiled forward, loss and backward pass of one model of a stack (Numba), with activations stored feature
by feature: each stage of a tile of rows is a (width, rows) block, so that every inner loop runs along the rows,
long and contiguous, whatever the layer widths. `numba_kernels.train_stack` runs it for every model of a stack.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from nnx.backends.numba_ops import FASTMATH, element_wise_columns, head_columns

TILE_ELEMENTS = 1 << 15  # rows per tile: this many values of the widest stage, at most MAX_TILE rows
MAX_TILE = 256


@njit(cache=True, fastmath=FASTMATH)
def columns_into(
    gradient, X, labels, targets, masks, params, layers, widths, chain_ops, chain_starts, mask_columns, head, constants
):  # fmt: skip
    """Forward, loss and backward of every row of `X`, adding the gradients into `gradient` (laid out as `params`);
    returns (sum of the rows' losses, sum of their comparisons).

    Each feature row of a stage gets its element-wise ops (ReLU, dropout) as soon as it is computed, and each row of
    input gradients its element-wise gradients, while the row is still in cache."""
    n_layers = layers.shape[0]
    n_rows = X.shape[0]
    tile = max(1, min(n_rows, MAX_TILE, TILE_ELEMENTS // widths.max()))
    stage_at = np.zeros(n_layers + 2, dtype=np.int64)
    for stage in range(n_layers + 1):
        stage_at[stage + 1] = stage_at[stage] + widths[stage] * tile
    values = np.empty(stage_at[-1], dtype=X.dtype)  # each stage's values, after its element-wise ops
    derivatives = np.empty(stage_at[-1], dtype=X.dtype)  # the gradients of those element-wise ops
    delta = np.empty(widths.max() * tile, dtype=X.dtype)
    previous = np.empty(widths.max() * tile, dtype=X.dtype)
    scratch = np.empty((3, tile), dtype=X.dtype)
    loss_sum = 0.0
    correct = 0.0
    for first in range(0, n_rows, tile):
        count = min(tile, n_rows - first)
        for stage in range(n_layers + 1):
            width = widths[stage]
            here = values[stage_at[stage] : stage_at[stage] + width * count].reshape((width, count))
            slopes = derivatives[stage_at[stage] : stage_at[stage] + width * count].reshape((width, count))
            ops = chain_ops[chain_starts[stage] : chain_starts[stage + 1]]
            if stage == 0:
                for i in range(width):
                    for index in range(count):
                        here[i, index] = X[first + index, i]
                    element_wise_columns(here, slopes, i, ops, masks, mask_columns, n_rows, first)
            else:
                n_inputs = widths[stage - 1]
                inputs = values[stage_at[stage - 1] : stage_at[stage - 1] + n_inputs * count]
                layer = layers[stage - 1]
                _dense_forward(
                    inputs.reshape((n_inputs, count)),
                    params,
                    layer,
                    here,
                    slopes,
                    ops,
                    masks,
                    mask_columns,
                    n_rows,
                    first,
                )
        width = widths[n_layers]
        outputs = values[stage_at[n_layers] : stage_at[n_layers] + width * count].reshape((width, count))
        out_delta = delta[: width * count]
        loss, hits = head_columns(
            head, outputs, labels, targets, first, constants, out_delta.reshape((width, count)), scratch
        )
        loss_sum += loss
        correct += hits
        if chain_starts[n_layers + 1] > chain_starts[n_layers]:
            slopes = derivatives[stage_at[n_layers] : stage_at[n_layers] + width * count]
            for index in range(out_delta.size):
                out_delta[index] *= slopes[index]
        for layer in range(n_layers - 1, -1, -1):
            n_inputs, n_outputs = widths[layer], widths[layer + 1]
            out_delta = delta[: n_outputs * count].reshape((n_outputs, count))
            inputs = values[stage_at[layer] : stage_at[layer] + n_inputs * count].reshape((n_inputs, count))
            dinputs = previous[: n_inputs * count].reshape((n_inputs, count))
            slopes = derivatives[stage_at[layer] : stage_at[layer] + n_inputs * count].reshape((n_inputs, count))
            with_slopes = chain_starts[layer + 1] > chain_starts[layer]
            _dense_backward(inputs, out_delta, params, gradient, layers[layer], dinputs, layer > 0, slopes, with_slopes)
            delta, previous = previous, delta
    return loss_sum, correct


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _weight_at(layer, i, j):
    """Where weight (input i, output j) of a Dense layer lives in the packed parameters."""
    if layer[4]:
        return layer[2] + j * layer[0] + i
    return layer[2] + i * layer[1] + j


@njit(cache=True, fastmath=FASTMATH)
def _dense_forward(inputs, params, layer, outputs, slopes, ops, masks, mask_columns, n_rows, first):
    """outputs = weights^T inputs + biases for (width, rows) blocks, four inputs per pass over an output row; each
    output row then gets the stage's element-wise ops. Rows are indexed in place (no views: no reference counting
    in the loops)."""
    n_inputs, n_outputs, biases_at = layer[0], layer[1], layer[3]
    for j in range(n_outputs):
        bias = params[biases_at + j]
        i = 0
        while i < n_inputs:
            group = min(4, n_inputs - i)
            _forward_group(inputs, params, layer, outputs, bias, i, j, group)
            i += group
        element_wise_columns(outputs, slopes, j, ops, masks, mask_columns, n_rows, first)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _forward_group(inputs, params, layer, outputs, bias, i, j, group):
    """Row j of `outputs` += the products of input rows i .. i + group - 1 with their weights (the first group
    starts from the bias); a smaller group repeats row i with weight 0."""
    kind = outputs.dtype.type
    start = bias if i == 0 else kind(0)
    i1, i2, i3 = (i + 1 if group > 1 else i), (i + 2 if group > 2 else i), (i + 3 if group > 3 else i)
    w0 = params[_weight_at(layer, i, j)]
    w1 = params[_weight_at(layer, i1, j)] if group > 1 else kind(0)
    w2 = params[_weight_at(layer, i2, j)] if group > 2 else kind(0)
    w3 = params[_weight_at(layer, i3, j)] if group > 3 else kind(0)
    if i == 0:
        for row in range(outputs.shape[1]):
            outputs[j, row] = start + (
                w0 * inputs[i, row] + w1 * inputs[i1, row] + w2 * inputs[i2, row] + w3 * inputs[i3, row]
            )
    else:
        for row in range(outputs.shape[1]):
            outputs[j, row] += w0 * inputs[i, row] + w1 * inputs[i1, row] + w2 * inputs[i2, row] + w3 * inputs[i3, row]


@njit(cache=True, fastmath=FASTMATH)
def _dense_backward(inputs, delta, params, gradient, layer, dinputs, with_dinputs, slopes, with_slopes):
    """Add the weight and bias gradients of a tile; set dinputs, times the element-wise gradients of the inputs'
    stage (`slopes`) when it has ops. Outputs go four at a time, so that each input row is read once per group."""
    n_inputs, n_outputs, biases_at = layer[0], layer[1], layer[3]
    count = inputs.shape[1]
    kind = inputs.dtype.type
    for j in range(n_outputs):
        total = kind(0)
        for row in range(count):
            total += delta[j, row]
        gradient[biases_at + j] += total
    for i in range(n_inputs):
        j = 0
        while j < n_outputs:
            group = min(4, n_outputs - j)
            _backward_group(inputs, dinputs, delta, params, gradient, layer, i, j, group, with_dinputs)
            j += group
        if with_dinputs and with_slopes:
            for row in range(count):
                dinputs[i, row] *= slopes[i, row]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _backward_group(inputs, dinputs, delta, params, gradient, layer, i, j, group, with_dinputs):
    """Weight gradients of input i for outputs j .. j + group - 1, and their share of row i of dinputs (the first
    group sets it); a smaller group repeats output j with weight 0."""
    kind = inputs.dtype.type
    j1, j2, j3 = (j + 1 if group > 1 else j), (j + 2 if group > 2 else j), (j + 3 if group > 3 else j)
    w0 = params[_weight_at(layer, i, j)]
    w1 = params[_weight_at(layer, i, j1)] if group > 1 else kind(0)
    w2 = params[_weight_at(layer, i, j2)] if group > 2 else kind(0)
    w3 = params[_weight_at(layer, i, j3)] if group > 3 else kind(0)
    t0, t1, t2, t3 = kind(0), kind(0), kind(0), kind(0)
    count = inputs.shape[1]
    if with_dinputs:
        first_group = j == 0  # the row's earlier contents are not read (a select, not a product: no NaN from them)
        for row in range(count):
            value = inputs[i, row]
            d0, d1, d2, d3 = delta[j, row], delta[j1, row], delta[j2, row], delta[j3, row]
            t0 += value * d0
            t1 += value * d1
            t2 += value * d2
            t3 += value * d3
            earlier = kind(0) if first_group else dinputs[i, row]
            dinputs[i, row] = earlier + (w0 * d0 + w1 * d1 + w2 * d2 + w3 * d3)
    else:
        for row in range(count):
            value = inputs[i, row]
            t0 += value * delta[j, row]
            t1 += value * delta[j1, row]
            t2 += value * delta[j2, row]
            t3 += value * delta[j3, row]
    gradient[_weight_at(layer, i, j)] += t0
    if group > 1:
        gradient[_weight_at(layer, i, j1)] += t1
    if group > 2:
        gradient[_weight_at(layer, i, j2)] += t2
    if group > 3:
        gradient[_weight_at(layer, i, j3)] += t3
