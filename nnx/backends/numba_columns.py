"""The compiled forward, loss and backward pass of one model of a stack (Numba), with activations stored feature
by feature: each stage of a tile of rows is a (width, rows) block, so that every inner loop runs along the rows,
long and contiguous, whatever the layer widths. `numba_kernels.train_stack` runs it for every model of a stack.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from nnx.backends.step_program import RELU, SIGMOID_BINARY_CROSSENTROPY, SOFTMAX_CROSSENTROPY

TILE_ELEMENTS = 1 << 15  # rows per tile: this many values of the widest stage, at most MAX_TILE rows
MAX_TILE = 256
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
                    _row_ops(here, slopes, i, ops, masks, mask_columns, n_rows, first)
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
        _row_ops(outputs, slopes, j, ops, masks, mask_columns, n_rows, first)


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


@njit(cache=True, fastmath=FASTMATH)
def _row_ops(values, slopes, feature, ops, masks, mask_columns, n_rows, first):
    """ReLUs and dropout masks in order, in place on row `feature` of a (width, rows) block; the same row of
    `slopes` gets the product of their local gradients (left as it is without ops). Masks are laid out
    (n_rows, width) per dropout."""
    zero, one = values.dtype.type(0), values.dtype.type(1)
    width, count = values.shape
    for position in range(ops.size):
        op = ops[position]
        if op == RELU and position == 0:
            for row in range(count):
                value = values[feature, row]
                slopes[feature, row] = one if value > zero else zero
                values[feature, row] = zero if value <= zero else value
        elif op == RELU:
            for row in range(count):
                value = values[feature, row]
                slopes[feature, row] = slopes[feature, row] if value > zero else zero
                values[feature, row] = zero if value <= zero else value
        else:
            mask_at = n_rows * mask_columns[op] + first * width + feature
            for row in range(count):
                scale = masks[mask_at + row * width]
                values[feature, row] *= scale
                slopes[feature, row] = scale if position == 0 else slopes[feature, row] * scale


@njit(cache=True, fastmath=FASTMATH)
def _head(head, outputs, labels, targets, first, constants, delta, scratch):
    """The output activation, the tile's loss and comparisons, and the loss gradient at the head's inputs."""
    if head == SOFTMAX_CROSSENTROPY:
        return _softmax_cross_entropy(outputs, labels, first, constants, delta, scratch)
    if head == SIGMOID_BINARY_CROSSENTROPY:
        return _sigmoid_binary_cross_entropy(outputs, targets, first, constants, delta)
    return _linear_squared_error(outputs, targets, first, constants, delta)


@njit(cache=True, inline="always")
def clip_value(value, low, high):
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
    floats = scratch[2, :count]
    for j in range(width):
        for row in range(count):
            delta[j, row] = outputs[j, row] - largest[row]
        if outputs.itemsize == 4:
            _exp_row(delta, j, floats, floats.view(np.int32), EXP_FLOAT32)
        else:
            _exp_row(delta, j, floats, floats.view(np.int64), EXP_FLOAT64)
        for row in range(count):
            total[row] += delta[j, row]
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
        loss_sum += -np.log(clip_value(delta[label, row], low, high))
        correct += 1.0 if best == label else 0.0
        delta[label, row] -= kind(1)
    for j in range(width):
        for row in range(count):
            delta[j, row] = delta[j, row] / n_samples
    return loss_sum, correct


# exp(x) for x <= 0, vectorized: x = n ln2 + r with |r| <= ln2 / 2, exp(r) by its Taylor polynomial of degree 13
# (below half an ulp of float64), 2^n built in the exponent bits. Below the smallest normal it gives
# that (about 1e-38 or 1e-308) instead of a subnormal or 0: nothing a probability can tell apart. NaN stays NaN.
LOG2E, LN2_HIGH, LN2_LOW = 1.4426950408889634, 0.693145751953125, 1.4286068203094173e-06


# (magic: 1.5 * 2^mantissa bits, an integer added to it lands in its low bits; lowest argument; what turns those
# bits into the exponent bits of 2^n; mantissa bits)
EXP_FLOAT32 = (12582912.0, -87.0, 127 - (1 << 22), 23)
EXP_FLOAT64 = (6755399441055744.0, -708.0, 1023 - (1 << 51), 52)
RECIPROCAL_FACTORIALS = tuple(1 / math.factorial(n) for n in range(13, 1, -1))  # 1/13! .. 1/2!


@njit(cache=True, fastmath=FASTMATH)
def _exp_row(block, feature, scratch, bits, constants):
    """Row `feature` of `block` = its exp, in place, for values <= 0; `scratch` (the block's dtype, one per row) and
    `bits` (the same memory as integers of its width) hold 2^n; `constants`: EXP_FLOAT32 or EXP_FLOAT64."""
    kind = block.dtype.type
    magic, low, bias, mantissa = kind(constants[0]), kind(constants[1]), constants[2], constants[3]
    for row in range(scratch.size):
        x = block[feature, row]
        x = low if x < low else x
        n = np.floor(x * kind(LOG2E) + kind(0.5))
        r = (x - n * kind(LN2_HIGH)) - n * kind(LN2_LOW)
        p = kind(0)
        for factor in RECIPROCAL_FACTORIALS:
            p = p * r + kind(factor)
        block[feature, row] = (p * r + kind(1)) * r + kind(1)
        scratch[row] = n + magic  # exact: n is an integer, now in the low bits
    for row in range(scratch.size):
        bits[row] = (bits[row] + bias) << mantissa
    for row in range(scratch.size):
        block[feature, row] *= scratch[row]


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
            clipped = clip_value(p, low, high)
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
