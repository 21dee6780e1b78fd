"""The compiled forward, loss and backward pass of one model of a stack (Numba), with activations stored feature
by feature: each stage of a tile of rows is a (width, rows) block, so that every inner loop runs along the rows,
long and contiguous, whatever the layer widths. `numba_kernels` runs it for every model of a stack (one model for
`Model.train`), on a run of the rows.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from nnx.backends.numba_ops import FASTMATH, element_wise_columns, head_columns
from nnx.backends.tables import RELU

TILE_ELEMENTS = 1 << 17  # rows per tile: this many values of the widest stage, at most MAX_TILE rows
MAX_TILE = 512
LANES = 16  # rows are computed in runs of this many (a 512-bit vector of float32): a tile's last run is padded


@njit(cache=True, fastmath=FASTMATH)
def columns_into(
    gradient, start, stop, X, labels, targets, masks, params, layers, widths, chain_ops, chain_starts, mask_columns,
    head, constants,
):  # fmt: skip
    """Forward, loss and backward of rows [start, stop) of `X`, adding their gradients into `gradient` (laid out as
    `params`); returns (sum of the rows' losses, sum of their comparisons).

    Each feature row of a stage gets its element-wise ops (ReLU, dropout) as soon as it is computed, and each row of
    input gradients its element-wise gradients, while the row is still in cache."""
    n_layers = layers.shape[0]
    n_rows = X.shape[0]
    tile = max(1, min(stop - start, MAX_TILE, TILE_ELEMENTS // widths.max()))
    padded = -(-tile // LANES) * LANES
    stage_at = np.zeros(n_layers + 2, dtype=np.int64)
    for stage in range(n_layers + 1):
        stage_at[stage + 1] = stage_at[stage] + widths[stage] * padded
    values = _aligned(stage_at[-1], X)  # each stage's values, after its element-wise ops
    derivatives = _aligned(stage_at[-1], X)  # the gradients of those element-wise ops
    delta = _aligned(widths.max() * padded, X)
    previous = _aligned(widths.max() * padded, X)
    scratch = np.empty((3, tile), dtype=X.dtype)
    grid, grid_at = _padded_weights(params, layers)
    blocks = _aligned(4 * padded, X)  # four rows of sums: a block of outputs, or of input gradients
    sums = np.empty(16)
    loss_sum = 0.0
    correct = 0.0
    for first in range(start, stop, tile):
        count = min(tile, stop - first)
        lanes = -(-count // LANES) * LANES  # the rows past `count` hold zeros in, finite values through, 0 gradients
        block = blocks[: 4 * lanes].reshape((4, lanes))  # C-contiguous: the loops over its rows vectorize
        for stage in range(n_layers + 1):
            width = widths[stage]
            here = values[stage_at[stage] : stage_at[stage] + width * lanes].reshape((width, lanes))
            slopes = derivatives[stage_at[stage] : stage_at[stage] + width * lanes].reshape((width, lanes))
            ops = chain_ops[chain_starts[stage] : chain_starts[stage + 1]]
            if stage == 0:
                for i in range(width):
                    for index in range(count):
                        here[i, index] = X[first + index, i]
                    for index in range(count, lanes):
                        here[i, index] = 0
                    element_wise_columns(here, slopes, i, ops, masks, mask_columns, n_rows, first, count)
            else:
                n_inputs = widths[stage - 1]
                inputs = values[stage_at[stage - 1] : stage_at[stage - 1] + n_inputs * lanes]
                _dense_forward(
                    inputs.reshape((n_inputs, lanes)), params, layers[stage - 1], grid[grid_at[stage - 1] :], here,
                    slopes, ops, masks, mask_columns, n_rows, first, count, block,
                )  # fmt: skip
        width = widths[n_layers]
        outputs = values[stage_at[n_layers] : stage_at[n_layers] + width * lanes].reshape((width, lanes))
        out_delta = delta[: width * lanes].reshape((width, lanes))
        loss, hits = head_columns(head, outputs, labels, targets, first, constants, out_delta, scratch, count)
        for j in range(width):
            for index in range(count, lanes):
                out_delta[j, index] = 0  # padding rows add nothing to any gradient
        loss_sum += loss
        correct += hits
        if chain_starts[n_layers + 1] > chain_starts[n_layers]:
            slopes = derivatives[stage_at[n_layers] : stage_at[n_layers] + width * lanes]
            flat = delta[: width * lanes]
            for index in range(flat.size):
                flat[index] *= slopes[index]
        for layer in range(n_layers - 1, -1, -1):
            n_inputs, n_outputs = widths[layer], widths[layer + 1]
            out_delta = delta[: n_outputs * lanes].reshape((n_outputs, lanes))
            inputs = values[stage_at[layer] : stage_at[layer] + n_inputs * lanes].reshape((n_inputs, lanes))
            dinputs = previous[: n_inputs * lanes].reshape((n_inputs, lanes))
            slopes = derivatives[stage_at[layer] : stage_at[layer] + n_inputs * lanes].reshape((n_inputs, lanes))
            with_slopes = chain_starts[layer + 1] > chain_starts[layer]
            _dense_backward(
                inputs, out_delta, grid[grid_at[layer] :], gradient, layers[layer], dinputs, layer > 0, slopes,
                with_slopes, block, sums,
            )  # fmt: skip
            delta, previous = previous, delta
    return loss_sum, correct


@njit(cache=True)
def _aligned(size, like):
    """An uninitialised 1-d array of `size` values of `like`'s dtype that starts on a 64-byte boundary (a cache line):
    every row of LANES values then does, and no vector load straddles two lines, wherever the allocator put it."""
    raw = np.empty(size + 64 // like.itemsize, dtype=like.dtype)
    skip = (-raw.ctypes.data % 64) // like.itemsize
    return raw[skip : skip + size]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _weight_at(layer, i, j):
    """Where weight (input i, output j) of a Dense layer lives in the packed parameters."""
    if layer[4]:
        return layer[2] + j * layer[0] + i
    return layer[2] + i * layer[1] + j


@njit(cache=True, fastmath=FASTMATH)
def _padded_weights(params, layers):
    """Every Dense layer's weights as an (inputs, outputs) grid padded with zeros to multiples of four, one after
    another, and where each starts: a block of four by four reads its weights without checks or transposes."""
    grid_at = np.zeros(layers.shape[0] + 1, dtype=np.int64)
    for index in range(layers.shape[0]):
        grid_at[index + 1] = grid_at[index] + _padded(layers[index, 0]) * _padded(layers[index, 1])
    grid = np.zeros(grid_at[-1], dtype=params.dtype)
    for index in range(layers.shape[0]):
        layer = layers[index]
        stride = _padded(layer[1])
        for i in range(layer[0]):
            for j in range(layer[1]):
                grid[grid_at[index] + i * stride + j] = params[_weight_at(layer, i, j)]
    return grid, grid_at


@njit(cache=True, inline="always")
def _padded(width):
    return (width + 3) // 4 * 4


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _weights(grid, layer, i, j):
    """Weights (input i, outputs j .. j + 3) from a layer's padded grid (0 past the layer)."""
    at = i * _padded(layer[1]) + j
    return grid[at], grid[at + 1], grid[at + 2], grid[at + 3]


@njit(cache=True, fastmath=FASTMATH)
def _dense_forward(
    inputs, params, layer, grid, outputs, slopes, ops, masks, mask_columns, n_rows, first, count, block
):  # fmt: skip
    """outputs = weights^T inputs + biases for (width, rows) blocks, summed in `block` four outputs at a time, four
    inputs per pass over the rows (16 products for 8 rows read); each output row then gets the stage's element-wise
    ops as it is copied out (`count`: the rows that are data). A partial block repeats its last row with weight 0."""
    n_inputs, n_outputs, biases_at = layer[0], layer[1], layer[3]
    lanes = inputs.shape[1]
    for j in range(0, n_outputs, 4):
        j1, j2, j3 = min(j + 1, n_outputs - 1), min(j + 2, n_outputs - 1), min(j + 3, n_outputs - 1)
        c0, c1, c2, c3 = params[biases_at + j], params[biases_at + j1], params[biases_at + j2], params[biases_at + j3]
        only_relu = ops.size == 1 and ops[0] == RELU  # the usual chain: ReLU fused into the copy
        if only_relu and n_inputs <= 4 and j + 4 <= n_outputs:  # one pass, straight into the outputs
            if n_inputs == 2:  # a 2-d dataset (the book's spiral): half the products of four inputs
                _two_inputs_to_relu(inputs, grid, layer, outputs, slopes, j, c0, c1, c2, c3)
            else:
                _inputs_to_relu(inputs, grid, layer, outputs, slopes, j, c0, c1, c2, c3)
            continue
        three = n_outputs - j == 3  # the book's three classes: a quarter fewer products than a block of four
        for i in range(0, n_inputs, 4):
            if three:
                _forward_block3(inputs, grid, layer, block, i, j, c0, c1, c2)
            else:
                _forward_block(inputs, grid, layer, block, i, j, c0, c1, c2, c3)
        for b in range(min(4, n_outputs - j)):
            if only_relu:
                _relu_out(block, b, outputs, slopes, j + b)
                continue
            for row in range(lanes):
                outputs[j + b, row] = block[b, row]
            element_wise_columns(outputs, slopes, j + b, ops, masks, mask_columns, n_rows, first, count)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _two_inputs_to_relu(inputs, grid, layer, outputs, slopes, j, c0, c1, c2, c3):
    """`_inputs_to_relu` for a layer with two inputs."""
    w00, w01, w02, w03 = _weights(grid, layer, 0, j)
    w10, w11, w12, w13 = _weights(grid, layer, 1, j)
    zero, one = outputs.dtype.type(0), outputs.dtype.type(1)
    for row in range(outputs.shape[1]):
        a0, a1 = inputs[0, row], inputs[1, row]
        v0 = c0 + (w00 * a0 + w10 * a1)
        v1 = c1 + (w01 * a0 + w11 * a1)
        v2 = c2 + (w02 * a0 + w12 * a1)
        v3 = c3 + (w03 * a0 + w13 * a1)
        slopes[j, row] = one if v0 > zero else zero
        slopes[j + 1, row] = one if v1 > zero else zero
        slopes[j + 2, row] = one if v2 > zero else zero
        slopes[j + 3, row] = one if v3 > zero else zero
        outputs[j, row] = zero if v0 <= zero else v0
        outputs[j + 1, row] = zero if v1 <= zero else v1
        outputs[j + 2, row] = zero if v2 <= zero else v2
        outputs[j + 3, row] = zero if v3 <= zero else v3


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _inputs_to_relu(inputs, grid, layer, outputs, slopes, j, c0, c1, c2, c3):
    """Output rows j .. j + 3 of a layer with at most four inputs, ReLU and its gradient applied, in one pass over
    the rows (no block in between)."""
    n_inputs = layer[0]
    i1, i2, i3 = min(1, n_inputs - 1), min(2, n_inputs - 1), min(3, n_inputs - 1)
    w00, w01, w02, w03 = _weights(grid, layer, 0, j)
    w10, w11, w12, w13 = _weights(grid, layer, 1, j)
    w20, w21, w22, w23 = _weights(grid, layer, 2, j)
    w30, w31, w32, w33 = _weights(grid, layer, 3, j)
    zero, one = outputs.dtype.type(0), outputs.dtype.type(1)
    for row in range(outputs.shape[1]):
        a0, a1, a2, a3 = inputs[0, row], inputs[i1, row], inputs[i2, row], inputs[i3, row]
        v0 = c0 + (w00 * a0 + w10 * a1 + w20 * a2 + w30 * a3)
        v1 = c1 + (w01 * a0 + w11 * a1 + w21 * a2 + w31 * a3)
        v2 = c2 + (w02 * a0 + w12 * a1 + w22 * a2 + w32 * a3)
        v3 = c3 + (w03 * a0 + w13 * a1 + w23 * a2 + w33 * a3)
        slopes[j, row] = one if v0 > zero else zero
        slopes[j + 1, row] = one if v1 > zero else zero
        slopes[j + 2, row] = one if v2 > zero else zero
        slopes[j + 3, row] = one if v3 > zero else zero
        outputs[j, row] = zero if v0 <= zero else v0
        outputs[j + 1, row] = zero if v1 <= zero else v1
        outputs[j + 2, row] = zero if v2 <= zero else v2
        outputs[j + 3, row] = zero if v3 <= zero else v3


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _relu_out(block, b, outputs, slopes, feature):
    """Row `feature` of `outputs` = ReLU of row b of `block`, and of `slopes` its gradient (NaN stays NaN)."""
    zero, one = block.dtype.type(0), block.dtype.type(1)
    for row in range(block.shape[1]):
        value = block[b, row]
        slopes[feature, row] = one if value > zero else zero
        outputs[feature, row] = zero if value <= zero else value


@njit(cache=True, fastmath=FASTMATH)
def _forward_block(inputs, grid, layer, block, i, j, c0, c1, c2, c3):
    """block[b] += sum over a of weight (i + a, j + b) * input row i + a, for a, b in 0..3; the first inputs (i = 0)
    start from the biases c0..c3 instead of the block's contents (a select, not a product: nothing read)."""
    n_inputs = layer[0]
    i1, i2, i3 = min(i + 1, n_inputs - 1), min(i + 2, n_inputs - 1), min(i + 3, n_inputs - 1)
    w00, w01, w02, w03 = _weights(grid, layer, i, j)
    w10, w11, w12, w13 = _weights(grid, layer, i + 1, j)
    w20, w21, w22, w23 = _weights(grid, layer, i + 2, j)
    w30, w31, w32, w33 = _weights(grid, layer, i + 3, j)
    fresh = i == 0
    for row in range(block.shape[1]):
        a0, a1, a2, a3 = inputs[i, row], inputs[i1, row], inputs[i2, row], inputs[i3, row]
        block[0, row] = (c0 if fresh else block[0, row]) + (w00 * a0 + w10 * a1 + w20 * a2 + w30 * a3)
        block[1, row] = (c1 if fresh else block[1, row]) + (w01 * a0 + w11 * a1 + w21 * a2 + w31 * a3)
        block[2, row] = (c2 if fresh else block[2, row]) + (w02 * a0 + w12 * a1 + w22 * a2 + w32 * a3)
        block[3, row] = (c3 if fresh else block[3, row]) + (w03 * a0 + w13 * a1 + w23 * a2 + w33 * a3)


@njit(cache=True, fastmath=FASTMATH)
def _dense_backward(inputs, delta, grid, gradient, layer, dinputs, with_dinputs, slopes, with_slopes, block, sums):
    """Add the weight and bias gradients of a tile; set dinputs, times the element-wise gradients of the inputs'
    stage (`slopes`) when it has ops. Blocks of four inputs by four outputs: 16 weight-gradient sums per pass over
    the rows, then four rows of input gradients summed in `block`, 16 products for 8 rows read."""
    n_inputs, n_outputs, biases_at = layer[0], layer[1], layer[3]
    count = inputs.shape[1]
    for j in range(0, n_outputs, 4):
        _bias_block(delta, gradient, biases_at, n_outputs, j)
    for i in range(0, n_inputs, 4):
        for j in range(0, n_outputs, 4):
            if n_inputs - i <= 2:  # the last one or two inputs (a 2-d dataset's): half the products
                _gradient_pair(inputs, delta, layer, sums, i, j)
            else:
                _gradient_block(inputs, delta, layer, sums, i, j)
            for a in range(min(4, n_inputs - i)):
                for b in range(min(4, n_outputs - j)):
                    gradient[_weight_at(layer, i + a, j + b)] += sums[4 * a + b]
        if not with_dinputs:
            continue
        for j in range(0, n_outputs, 4):
            _input_gradient_block(delta, grid, layer, block, i, j)
        for a in range(min(4, n_inputs - i)):
            if with_slopes:
                for row in range(count):
                    dinputs[i + a, row] = block[a, row] * slopes[i + a, row]
            else:
                for row in range(count):
                    dinputs[i + a, row] = block[a, row]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _bias_block(delta, gradient, biases_at, n_outputs, j):
    """Add the sums of delta rows j .. j + 3 (those that exist) to their bias gradients, in one pass."""
    j1, j2, j3 = min(j + 1, n_outputs - 1), min(j + 2, n_outputs - 1), min(j + 3, n_outputs - 1)
    kind = delta.dtype.type
    t0 = t1 = t2 = t3 = kind(0)
    for row in range(delta.shape[1]):
        t0 += delta[j, row]
        t1 += delta[j1, row]
        t2 += delta[j2, row]
        t3 += delta[j3, row]
    gradient[biases_at + j] += t0
    if j + 1 < n_outputs:
        gradient[biases_at + j1] += t1
    if j + 2 < n_outputs:
        gradient[biases_at + j2] += t2
    if j + 3 < n_outputs:
        gradient[biases_at + j3] += t3


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _input_gradient_block(delta, grid, layer, block, i, j):
    """block[a] += sum over b of weight (i + a, j + b) * delta row j + b, for a, b in 0..3; the first outputs
    (j = 0) start from 0 instead of the block's contents (a select: nothing read)."""
    n_outputs = layer[1]
    j1, j2, j3 = min(j + 1, n_outputs - 1), min(j + 2, n_outputs - 1), min(j + 3, n_outputs - 1)
    w00, w01, w02, w03 = _weights(grid, layer, i, j)
    w10, w11, w12, w13 = _weights(grid, layer, i + 1, j)
    w20, w21, w22, w23 = _weights(grid, layer, i + 2, j)
    w30, w31, w32, w33 = _weights(grid, layer, i + 3, j)
    zero = delta.dtype.type(0)
    fresh = j == 0
    for row in range(block.shape[1]):
        d0, d1, d2, d3 = delta[j, row], delta[j1, row], delta[j2, row], delta[j3, row]
        block[0, row] = (zero if fresh else block[0, row]) + (w00 * d0 + w01 * d1 + w02 * d2 + w03 * d3)
        block[1, row] = (zero if fresh else block[1, row]) + (w10 * d0 + w11 * d1 + w12 * d2 + w13 * d3)
        block[2, row] = (zero if fresh else block[2, row]) + (w20 * d0 + w21 * d1 + w22 * d2 + w23 * d3)
        block[3, row] = (zero if fresh else block[3, row]) + (w30 * d0 + w31 * d1 + w32 * d2 + w33 * d3)


@njit(cache=True, fastmath=FASTMATH)
def _forward_block3(inputs, grid, layer, block, i, j, c0, c1, c2):
    """`_forward_block` for the last three outputs: block rows 0 to 2."""
    n_inputs = layer[0]
    i1, i2, i3 = min(i + 1, n_inputs - 1), min(i + 2, n_inputs - 1), min(i + 3, n_inputs - 1)
    w00, w01, w02, _ = _weights(grid, layer, i, j)
    w10, w11, w12, _ = _weights(grid, layer, i + 1, j)
    w20, w21, w22, _ = _weights(grid, layer, i + 2, j)
    w30, w31, w32, _ = _weights(grid, layer, i + 3, j)
    fresh = i == 0
    for row in range(block.shape[1]):
        a0, a1, a2, a3 = inputs[i, row], inputs[i1, row], inputs[i2, row], inputs[i3, row]
        block[0, row] = (c0 if fresh else block[0, row]) + (w00 * a0 + w10 * a1 + w20 * a2 + w30 * a3)
        block[1, row] = (c1 if fresh else block[1, row]) + (w01 * a0 + w11 * a1 + w21 * a2 + w31 * a3)
        block[2, row] = (c2 if fresh else block[2, row]) + (w02 * a0 + w12 * a1 + w22 * a2 + w32 * a3)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _gradient_pair(inputs, delta, layer, sums, i, j):
    """`_gradient_block` for the last one or two inputs: sums[0..7] (the others are not used)."""
    n_inputs, n_outputs = layer[0], layer[1]
    i1 = min(i + 1, n_inputs - 1)
    j1, j2, j3 = min(j + 1, n_outputs - 1), min(j + 2, n_outputs - 1), min(j + 3, n_outputs - 1)
    kind = inputs.dtype.type
    t00 = t01 = t02 = t03 = t10 = t11 = t12 = t13 = kind(0)
    for row in range(inputs.shape[1]):
        a0, a1 = inputs[i, row], inputs[i1, row]
        d0, d1, d2, d3 = delta[j, row], delta[j1, row], delta[j2, row], delta[j3, row]
        t00 += a0 * d0
        t01 += a0 * d1
        t02 += a0 * d2
        t03 += a0 * d3
        t10 += a1 * d0
        t11 += a1 * d1
        t12 += a1 * d2
        t13 += a1 * d3
    sums[0], sums[1], sums[2], sums[3] = t00, t01, t02, t03
    sums[4], sums[5], sums[6], sums[7] = t10, t11, t12, t13


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _gradient_block(inputs, delta, layer, sums, i, j):
    """sums[4a + b] = sum over the rows of input row i + a times delta row j + b, for a, b in 0..3 (a partial block
    repeats its last row; those sums are not used)."""
    n_inputs, n_outputs = layer[0], layer[1]
    i1, i2, i3 = min(i + 1, n_inputs - 1), min(i + 2, n_inputs - 1), min(i + 3, n_inputs - 1)
    j1, j2, j3 = min(j + 1, n_outputs - 1), min(j + 2, n_outputs - 1), min(j + 3, n_outputs - 1)
    kind = inputs.dtype.type
    t00 = t01 = t02 = t03 = t10 = t11 = t12 = t13 = kind(0)
    t20 = t21 = t22 = t23 = t30 = t31 = t32 = t33 = kind(0)
    for row in range(inputs.shape[1]):
        a0, a1, a2, a3 = inputs[i, row], inputs[i1, row], inputs[i2, row], inputs[i3, row]
        d0, d1, d2, d3 = delta[j, row], delta[j1, row], delta[j2, row], delta[j3, row]
        t00 += a0 * d0
        t01 += a0 * d1
        t02 += a0 * d2
        t03 += a0 * d3
        t10 += a1 * d0
        t11 += a1 * d1
        t12 += a1 * d2
        t13 += a1 * d3
        t20 += a2 * d0
        t21 += a2 * d1
        t22 += a2 * d2
        t23 += a2 * d3
        t30 += a3 * d0
        t31 += a3 * d1
        t32 += a3 * d2
        t33 += a3 * d3
    _store_sums(sums, t00, t01, t02, t03, t10, t11, t12, t13, t20, t21, t22, t23, t30, t31, t32, t33)


@njit(cache=True, inline="always")
def _store_sums(sums, t00, t01, t02, t03, t10, t11, t12, t13, t20, t21, t22, t23, t30, t31, t32, t33):
    sums[0], sums[1], sums[2], sums[3] = t00, t01, t02, t03
    sums[4], sums[5], sums[6], sums[7] = t10, t11, t12, t13
    sums[8], sums[9], sums[10], sums[11] = t20, t21, t22, t23
    sums[12], sums[13], sums[14], sums[15] = t30, t31, t32, t33
