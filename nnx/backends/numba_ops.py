"""The ops of the compiled training-step kernels (Numba), one branch per entry of the tables
(`nnx.backends.tables`): the element-wise ops and the heads, for tiles stored feature by feature (`numba_columns`),
and the update rules. A code no branch knows raises ValueError.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from nnx.backends.tables import (
    ADAGRAD,
    ADAM,
    LINEAR_SQUARED_ERROR,
    MOMENTUM_SGD,
    PLAIN_SGD,
    RELU,
    RMSPROP,
    SIGMOID_BINARY_CROSSENTROPY,
    SOFTMAX_CROSSENTROPY,
)

# Fast math that keeps NaN and inf: the divergence guard must still see them.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


# Element-wise ops ---------------------------------------------------------------------------------------------------


@njit(cache=True, fastmath=FASTMATH, inline="always")
def element_wise_columns(values, slopes, feature, ops, masks, mask_columns, n_rows, first, count):
    """ReLUs and dropout masks in order, in place on row `feature` of a (width, rows) block whose first `count` rows
    are data (the others padding); the same row of `slopes` gets the product of their local gradients (left as it
    is without ops). Masks are laid out (n_rows, width) per dropout; padding rows get 0 from a dropout."""
    zero, one = values.dtype.type(0), values.dtype.type(1)
    width, lanes = values.shape
    for position in range(ops.size):
        op = ops[position]
        if op == RELU and position == 0:
            for row in range(lanes):
                value = values[feature, row]
                slopes[feature, row] = one if value > zero else zero
                values[feature, row] = zero if value <= zero else value
        elif op == RELU:
            for row in range(lanes):
                value = values[feature, row]
                slopes[feature, row] = slopes[feature, row] if value > zero else zero
                values[feature, row] = zero if value <= zero else value
        elif op >= 0:  # a dropout mask's index
            mask_at = n_rows * mask_columns[op] + first * width + feature
            for row in range(count):
                scale = masks[mask_at + row * width]
                values[feature, row] *= scale
                slopes[feature, row] = scale if position == 0 else slopes[feature, row] * scale
            for row in range(count, lanes):
                values[feature, row] = zero
                slopes[feature, row] = zero
        else:
            raise ValueError("unknown element-wise op code")


# Heads, on tiles stored feature by feature ----------------------------------------------------------------------


@njit(cache=True, fastmath=FASTMATH)
def head_columns(head, outputs, labels, targets, first, constants, delta, scratch, count):
    """The output activation, the loss and comparisons of the first `count` rows of a tile, and the loss gradient at
    the head's inputs (the rows past `count` are left as they are)."""
    if head == SOFTMAX_CROSSENTROPY:
        return _softmax_columns(outputs, labels, first, constants, delta, scratch, count)
    if head == SIGMOID_BINARY_CROSSENTROPY:
        return _sigmoid_columns(outputs, targets, first, constants, delta, count)
    if head == LINEAR_SQUARED_ERROR:
        return _squared_error_columns(outputs, targets, first, constants, delta, count)
    raise ValueError("unknown head code")


@njit(cache=True, inline="always")
def clip_value(value, low, high):
    """`value` clipped to [low, high]; NaN stays NaN, as with NumPy's clip."""
    if value < low:
        return low
    return high if value > high else value


@njit(cache=True, fastmath=FASTMATH)
def _softmax_columns(outputs, labels, first, constants, delta, scratch, count):
    """Each row's softmax, -log of its true class's (clipped) probability and whether its argmax is that class; the
    rows of `delta` get (softmax - one-hot) / n_samples."""
    kind = outputs.dtype.type
    n_samples, low, high = kind(constants[0]), kind(constants[2]), kind(constants[3])
    width = outputs.shape[0]
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
    correct = _argmax_hits(delta, labels, first, scratch[0, :count], scratch[1, :count])
    loss_sum = 0.0
    product = 1.0  # the clipped confidences multiplied in float64, a log taken only before it could underflow
    for row in range(count):
        label = labels[first + row]
        product *= np.float64(clip_value(delta[label, row], low, high))
        if product < TINY_PRODUCT:
            loss_sum -= np.log(product)
            product = 1.0
        delta[label, row] -= kind(1)
    loss_sum -= np.log(product)
    for j in range(width):
        for row in range(count):
            delta[j, row] = delta[j, row] / n_samples
    return loss_sum, correct


TINY_PRODUCT = 1e-250  # times a clipped confidence (>= about 1e-38) stays a normal float64


@njit(cache=True, fastmath=FASTMATH)
def _argmax_hits(probabilities, labels, first, best_value, best):
    """How many rows (columns of `probabilities`, a (classes, rows) block) have their largest value (the first, on
    a tie) at their label; one vectorized pass per class."""
    count = best.size
    for row in range(count):
        best_value[row] = probabilities[0, row]
        best[row] = 0
    for j in range(1, probabilities.shape[0]):
        for row in range(count):
            value = probabilities[j, row]
            better = value > best_value[row]
            best_value[row] = value if better else best_value[row]
            best[row] = j if better else best[row]
    hits = 0.0
    for row in range(count):
        hits += 1.0 if best[row] == labels[first + row] else 0.0
    return hits


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
def _sigmoid_columns(outputs, targets, first, constants, delta, count):
    """Each row's mean binary cross-entropy of its sigmoids and its correct outputs; `delta` gets the gradient."""
    kind = outputs.dtype.type
    n_samples, low, high = kind(constants[0]), kind(constants[2]), kind(constants[3])
    width = outputs.shape[0]
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
def _squared_error_columns(outputs, targets, first, constants, delta, count):
    """Each row's mean squared error and its outputs within the precision; `delta` gets the gradient."""
    kind = outputs.dtype.type
    n_samples, precision = kind(constants[0]), constants[1]
    width = outputs.shape[0]
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


# Update rules ----------------------------------------------------------------------------------------------------


@njit(cache=True, fastmath=FASTMATH)
def update_rule_step(params, gradient, first, second, rule, hyper):
    """One update of every parameter in place, with the optimizer's packed slots `first` and `second` (its
    STATE_NAMES, in order). `hyper` holds -learning rate, learning rate, then the numbers of the rule's entry in the
    table (its `kernel_numbers`, then its `step_numbers`), in that order."""
    negative_lr, lr = hyper[0], hyper[1]
    if rule == PLAIN_SGD:
        for index in range(params.size):
            params[index] += negative_lr * gradient[index]
    elif rule == MOMENTUM_SGD:
        momentum = hyper[2]
        for index in range(params.size):
            first[index] = momentum * first[index] - lr * gradient[index]
            params[index] += first[index]
    elif rule == ADAGRAD:
        epsilon = hyper[2]
        for index in range(params.size):
            g = gradient[index]
            first[index] = first[index] + g * g
            params[index] += negative_lr * g / (np.sqrt(first[index]) + epsilon)
    elif rule == RMSPROP:
        epsilon, rho, keep_rho = hyper[2], hyper[3], hyper[4]
        for index in range(params.size):
            g = gradient[index]
            first[index] = rho * first[index] + keep_rho * (g * g)
            params[index] += negative_lr * g / (np.sqrt(first[index]) + epsilon)
    elif rule == ADAM:
        epsilon, beta_1, keep_beta_1, beta_2, keep_beta_2 = hyper[2], hyper[3], hyper[4], hyper[5], hyper[6]
        correction_1, correction_2 = hyper[7], hyper[8]
        for index in range(params.size):
            g = gradient[index]
            first[index] = beta_1 * first[index] + keep_beta_1 * g
            second[index] = beta_2 * second[index] + keep_beta_2 * (g * g)
            corrected = first[index] / correction_1
            params[index] += negative_lr * corrected / (np.sqrt(second[index] / correction_2) + epsilon)
    else:
        raise ValueError("unknown update rule code")
