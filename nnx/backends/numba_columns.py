"""The compiled forward, loss and backward pass of one model of a stack (Numba), with activations stored feature
by feature: each stage of a tile of rows is a (width, rows) block, so that every inner loop runs along the rows,
long and contiguous, whatever the layer widths. `numba_kernels.train_stack` runs it for every model of a stack.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from nnx.backends.step_program import RELU, SIGMOID_BINARY_CROSSENTROPY, SOFTMAX_CROSSENTROPY

TILE_ELEMENTS = 1 << 15  # rows per tile: this many values of the widest stage, at most MAX_TILE rows
MAX_TILE = 128
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}  # keeps NaN and inf: the divergence checks must see them


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
    scratch = np.empty((2, tile), dtype=X.dtype)
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
                    row = here[i]
                    for index in range(count):
                        row[index] = X[first + index, i]
                    _row_ops(row, slopes[i], ops, masks, mask_columns, n_rows, first, i, width)
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
        loss, hits = _head(head, outputs, labels, targets, first, constants, out_delta.reshape((width, count)), scratch)
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
    output row then gets the stage's element-wise ops."""
    n_inputs, n_outputs, biases_at = layer[0], layer[1], layer[3]
    for j in range(n_outputs):
        out = outputs[j]
        bias = params[biases_at + j]
        i = 0
        while i < n_inputs:
            group = 4 if i + 4 <= n_inputs else 2 if i + 2 <= n_inputs else 1
            _forward_group(inputs, params, layer, out, bias, i, j, group)
            i += group
        _row_ops(out, slopes[j], ops, masks, mask_columns, n_rows, first, j, n_outputs)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _forward_group(inputs, params, layer, out, bias, i, j, group):
    """out += the products of inputs i .. i + group - 1 with their weights to output j (the first group starts from
    the bias)."""
    start = i == 0
    w0 = params[_weight_at(layer, i, j)]
    s0 = inputs[i]
    if group == 4:
        w1, w2, w3 = (
            params[_weight_at(layer, i + 1, j)],
            params[_weight_at(layer, i + 2, j)],
            params[_weight_at(layer, i + 3, j)],
        )
        s1, s2, s3 = inputs[i + 1], inputs[i + 2], inputs[i + 3]
        if start:
            for row in range(out.size):
                out[row] = bias + (w0 * s0[row] + w1 * s1[row] + w2 * s2[row] + w3 * s3[row])
        else:
            for row in range(out.size):
                out[row] += w0 * s0[row] + w1 * s1[row] + w2 * s2[row] + w3 * s3[row]
    elif group == 2:
        w1, s1 = params[_weight_at(layer, i + 1, j)], inputs[i + 1]
        if start:
            for row in range(out.size):
                out[row] = bias + (w0 * s0[row] + w1 * s1[row])
        else:
            for row in range(out.size):
                out[row] += w0 * s0[row] + w1 * s1[row]
    elif start:
        for row in range(out.size):
            out[row] = bias + w0 * s0[row]
    else:
        for row in range(out.size):
            out[row] += w0 * s0[row]


@njit(cache=True, fastmath=FASTMATH)
def _dense_backward(inputs, delta, params, gradient, layer, dinputs, with_dinputs, slopes, with_slopes):
    """Add the weight and bias gradients of a tile; set dinputs, times the element-wise gradients of the inputs'
    stage (`slopes`) when it has ops. Outputs go four, three, two or one at a time, so that each input row is read
    once per group."""
    n_inputs, n_outputs, biases_at = layer[0], layer[1], layer[3]
    count = inputs.shape[1]
    kind = inputs.dtype.type
    for j in range(n_outputs):
        total = kind(0)
        source = delta[j]
        for row in range(count):
            total += source[row]
        gradient[biases_at + j] += total
    for i in range(n_inputs):
        target = dinputs[i]
        j = 0
        while j < n_outputs:
            group = min(4, n_outputs - j)
            _backward_group(inputs[i], target, delta, params, gradient, layer, i, j, group, with_dinputs)
            j += group
        if with_dinputs and with_slopes:
            slope = slopes[i]
            for row in range(count):
                target[row] *= slope[row]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _backward_group(source, target, delta, params, gradient, layer, i, j, group, with_dinputs):
    """Weight gradients of input i for outputs j .. j + group - 1, and their share of dinputs (the first group sets
    the row)."""
    kind = source.dtype.type
    start = j == 0
    t0, t1, t2, t3 = kind(0), kind(0), kind(0), kind(0)
    zero = delta[j]  # stands in for the rows a smaller group does not have; its weight is 0
    d0 = delta[j]
    d1 = delta[j + 1] if group > 1 else zero
    d2 = delta[j + 2] if group > 2 else zero
    d3 = delta[j + 3] if group > 3 else zero
    w0 = params[_weight_at(layer, i, j)]
    w1 = params[_weight_at(layer, i, j + 1)] if group > 1 else kind(0)
    w2 = params[_weight_at(layer, i, j + 2)] if group > 2 else kind(0)
    w3 = params[_weight_at(layer, i, j + 3)] if group > 3 else kind(0)
    count = source.size
    if with_dinputs and start:
        for row in range(count):
            value = source[row]
            t0 += value * d0[row]
            t1 += value * d1[row]
            t2 += value * d2[row]
            t3 += value * d3[row]
            target[row] = w0 * d0[row] + w1 * d1[row] + w2 * d2[row] + w3 * d3[row]
    elif with_dinputs:
        for row in range(count):
            value = source[row]
            t0 += value * d0[row]
            t1 += value * d1[row]
            t2 += value * d2[row]
            t3 += value * d3[row]
            target[row] += w0 * d0[row] + w1 * d1[row] + w2 * d2[row] + w3 * d3[row]
    else:
        for row in range(count):
            value = source[row]
            t0 += value * d0[row]
            t1 += value * d1[row]
            t2 += value * d2[row]
            t3 += value * d3[row]
    gradient[_weight_at(layer, i, j)] += t0
    if group > 1:
        gradient[_weight_at(layer, i, j + 1)] += t1
    if group > 2:
        gradient[_weight_at(layer, i, j + 2)] += t2
    if group > 3:
        gradient[_weight_at(layer, i, j + 3)] += t3


@njit(cache=True, fastmath=FASTMATH)
def _row_ops(values, slopes, ops, masks, mask_columns, n_rows, first, feature, width):
    """ReLUs and dropout masks in order, in place on feature `feature`'s row of a tile; `slopes` gets the product of
    their local gradients (left as it is without ops). Masks are laid out (n_rows, width) per dropout."""
    zero, one = values.dtype.type(0), values.dtype.type(1)
    for position in range(ops.size):
        op = ops[position]
        if op == RELU and position == 0:
            for row in range(values.size):
                value = values[row]
                slopes[row] = one if value > zero else zero
                values[row] = zero if value <= zero else value
        elif op == RELU:
            for row in range(values.size):
                value = values[row]
                slopes[row] = slopes[row] if value > zero else zero
                values[row] = zero if value <= zero else value
        else:
            mask_at = n_rows * mask_columns[op] + first * width + feature
            for row in range(values.size):
                scale = masks[mask_at + row * width]
                values[row] *= scale
                slopes[row] = scale if position == 0 else slopes[row] * scale


@njit(cache=True, fastmath=FASTMATH)
def _head(head, outputs, labels, targets, first, constants, delta, scratch):
    """The output activation, the tile's loss and comparisons, and the loss gradient at the head's inputs."""
    if head == SOFTMAX_CROSSENTROPY:
        return _softmax_cross_entropy(outputs, labels, first, constants, delta, scratch)
    if head == SIGMOID_BINARY_CROSSENTROPY:
        return _sigmoid_binary_cross_entropy(outputs, targets, first, constants, delta)
    return _linear_squared_error(outputs, targets, first, constants, delta)


@njit(cache=True, inline="always")
def _clip(value, low, high):
    """`value` clipped to [low, high]; NaN stays NaN, as with NumPy's clip."""
    if value < low:
        return low
    return high if value > high else value


@njit(cache=True, fastmath=FASTMATH)
def _softmax_cross_entropy(outputs, labels, first, constants, delta, scratch):
    """Each row's softmax, -log of its true class's (clipped) probability and whether its argmax is that class; the
    rows of `delta` get (softmax - one-hot) / n_samples."""
    kind = outputs.dtype.type
    n_samples, low, high = kind(constants[0]), kind(constants[2]), kind(constants[3])
    width, count = outputs.shape
    largest, total = scratch[0, :count], scratch[1, :count]
    for row in range(count):
        largest[row] = outputs[0, row]
        total[row] = 0
    for j in range(1, width):
        for row in range(count):
            largest[row] = max(largest[row], outputs[j, row])
    for j in range(width):
        for row in range(count):
            value = np.exp(outputs[j, row] - largest[row])
            delta[j, row] = value
            total[row] += value
    for j in range(width):
        for row in range(count):
            delta[j, row] = delta[j, row] / total[row]
    loss_sum = 0.0
    correct = 0.0
    for row in range(count):
        label = labels[first + row]
        best = 0
        for j in range(1, width):
            if delta[j, row] > delta[best, row]:
                best = j
        loss_sum += -np.log(_clip(delta[label, row], low, high))
        correct += 1.0 if best == label else 0.0
        delta[label, row] -= kind(1)
    for j in range(width):
        for row in range(count):
            delta[j, row] = delta[j, row] / n_samples
    return loss_sum, correct


@njit(cache=True, fastmath=FASTMATH)
def _sigmoid_binary_cross_entropy(outputs, targets, first, constants, delta):
    """Each row's mean binary cross-entropy of its sigmoids and its correct outputs; `delta` gets the gradient."""
    kind = outputs.dtype.type
    n_samples, low, high = kind(constants[0]), kind(constants[2]), kind(constants[3])
    width, count = outputs.shape
    zero, one, half, outputs_count = kind(0), kind(1), kind(0.5), kind(width)
    loss_sum = 0.0
    correct = 0.0
    for j in range(width):
        for row in range(count):
            p = one / (one + np.exp(-outputs[j, row]))
            y = targets[first + row, j]
            clipped = _clip(p, low, high)
            loss_sum += -(y * np.log(clipped) + (one - y) * np.log(one - clipped)) / outputs_count
            correct += 1.0 if (one if p > half else zero) == y else 0.0
            gradient = -(y / clipped - (one - y) / (one - clipped)) / outputs_count / n_samples
            delta[j, row] = gradient * (one - p) * p
    return loss_sum, correct


@njit(cache=True, fastmath=FASTMATH)
def _linear_squared_error(outputs, targets, first, constants, delta):
    """Each row's mean squared error and its outputs within the precision; `delta` gets the gradient."""
    kind = outputs.dtype.type
    n_samples, precision = kind(constants[0]), constants[1]
    width, count = outputs.shape
    outputs_count, two = kind(width), kind(2)
    loss_sum = 0.0
    correct = 0.0
    for j in range(width):
        for row in range(count):
            output, target = outputs[j, row], targets[first + row, j]
            error = target - output
            loss_sum += error * error / outputs_count
            correct += 1.0 if abs(output - target) < precision else 0.0
            delta[j, row] = -two * error / outputs_count / n_samples
    return loss_sum, correct
