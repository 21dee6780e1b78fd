"""Element-wise kernels for the CPU (Numba, the ``fast`` extra): one pass over the data with no temporaries, split
across the cores for large arrays (the ``parallel`` ones) or on the calling thread for mid-sized ones (the
``serial`` ones: there BLAS's threads, still spinning after a product, would fight the kernels' threads for the
cores). `FastNumpyBackend` chooses by size."""

from __future__ import annotations

import threading

import numba
import numpy as np
from numba import njit, prange

NARROW_INPUTS = 4  # a Dense layer with at most this many inputs is computed here, bias included, in one pass


def takes(*arrays) -> bool:
    """Whether these arrays suit the kernels: 2-d, C-contiguous, one float dtype."""
    first = arrays[0]
    return first.dtype in (np.float32, np.float64) and all(
        a.ndim == 2 and a.flags.c_contiguous and a.dtype == first.dtype for a in arrays
    )


def parallel_call(kernel, *args):
    """`kernel(*args)` for a parallel Numba kernel, one thread at a time when Numba runs on its fallback threading
    layer (workqueue), which aborts the process on parallel calls from two threads at once."""
    if _layer_is_thread_safe():
        return kernel(*args)
    with _WORKQUEUE:
        return kernel(*args)


_WORKQUEUE = threading.Lock()
_thread_safe: list[bool] = []  # filled once Numba has chosen its threading layer (at the first parallel call)


def _layer_is_thread_safe() -> bool:
    if not _thread_safe:
        try:
            _thread_safe.append(numba.threading_layer() != "workqueue")
        except ValueError:  # no parallel call yet: Numba has not chosen one
            return False
    return _thread_safe[0]


def relu_forward(inputs):
    output = np.empty_like(inputs)
    parallel_call(_relu_forward, inputs, output)
    return output


def relu_backward(dvalues, inputs):
    dinputs = np.empty_like(dvalues)
    parallel_call(_relu_backward, dvalues, inputs, dinputs)
    return dinputs


def relu_forward_serial(inputs):
    output = np.empty_like(inputs)
    _relu_forward_flat(inputs.reshape(-1), output.reshape(-1))
    return output


def relu_backward_serial(dvalues, inputs):
    dinputs = np.empty_like(dvalues)
    _relu_backward_flat(dvalues.reshape(-1), inputs.reshape(-1), dinputs.reshape(-1))
    return dinputs


def narrow_dense_forward(inputs, weights, biases):
    """inputs @ weights + biases for a layer with few inputs, in one pass over the (n, n_neurons) output."""
    output = np.empty((inputs.shape[0], weights.shape[1]), dtype=inputs.dtype)
    parallel_call(_narrow_dense_forward, inputs, weights, biases, output)
    return output


def add_row(values, row) -> None:
    """values += row (one row broadcast over every row of `values`), in place."""
    parallel_call(_add_row, values, row)


@njit(cache=True, parallel=True)
def _relu_forward(inputs, output):
    zero = inputs.dtype.type(0)
    for i in prange(inputs.shape[0]):
        for j in range(inputs.shape[1]):
            value = inputs[i, j]
            output[i, j] = zero if value <= zero else value  # NaN stays NaN, as with np.maximum


@njit(cache=True, parallel=True)
def _relu_backward(dvalues, inputs, dinputs):
    zero, one = dvalues.dtype.type(0), dvalues.dtype.type(1)
    for i in prange(dvalues.shape[0]):
        for j in range(dvalues.shape[1]):
            dinputs[i, j] = dvalues[i, j] * (one if inputs[i, j] > zero else zero)  # a multiply: NaN * 0 stays NaN


@njit(cache=True)
def _relu_forward_flat(inputs, output):
    zero = inputs.dtype.type(0)
    for index in range(inputs.size):
        value = inputs[index]
        output[index] = zero if value <= zero else value  # NaN stays NaN, as with np.maximum


@njit(cache=True)
def _relu_backward_flat(dvalues, inputs, dinputs):
    zero, one = dvalues.dtype.type(0), dvalues.dtype.type(1)
    for index in range(dvalues.size):
        dinputs[index] = dvalues[index] * (one if inputs[index] > zero else zero)  # NaN * 0 stays NaN


@njit(cache=True, parallel=True)
def _narrow_dense_forward(inputs, weights, biases, output):
    for i in prange(inputs.shape[0]):
        for j in range(output.shape[1]):
            output[i, j] = biases[0, j]
        for k in range(inputs.shape[1]):
            value = inputs[i, k]
            for j in range(output.shape[1]):
                output[i, j] += value * weights[k, j]


@njit(cache=True, parallel=True)
def _add_row(values, row):
    for i in prange(values.shape[0]):
        for j in range(values.shape[1]):
            values[i, j] += row[0, j]
