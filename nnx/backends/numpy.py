"""The NumPy backend: the CPU, NumPy's own namespace (Array API compatible since NumPy 2).

`NumpyBackend` is the generic reference; `FastNumpyBackend`, registered as ``numpy``, adds the CPU fast paths
(and, with the ``fast`` extra, a compiled step kernel for the training-step plans of `Model.train`).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Any

import numpy as np

from nnx.backends._base import Backend

COMPILE_ENV_VAR = "NNX_COMPILE"
COLUMN_SUM_BY_PRODUCT = 4096  # rows from which a product with ones beats NumPy's column sum
NARROW_ROWS = 7  # rows of at most this many values are reduced column by column (from 8 on NumPy sums in pairs)
# Arrays from this size on go to the multi-threaded kernels (with Numba). Below it they lose: BLAS's threads still
# spin for a few milliseconds after each product, and fight the kernels' threads for the cores.
PARALLEL_MIN_ELEMENTS = 1 << 23
FUSED_MIN_ELEMENTS = 1 << 15  # from here on the element-wise Numba kernels (one pass, no temporary) pay for the call


class NumpyBackend(Backend):
    """NumPy on the CPU with only the generic code; `to_numpy` still copies, so the result never aliases a live
    parameter."""

    def to_numpy(self, x):
        return np.array(x, copy=True, order="C")  # C order: a compiled step's transposed views come back as rows

    def host_floats(self, values: list) -> list[float]:
        return np.asarray(values).tolist()  # NumPy scalars and 0-d arrays are on the host already: no stacking

    def plain(self, x, what: str = "inputs"):
        if type(x) is np.ndarray or not isinstance(x, np.ndarray):
            return x
        if isinstance(x, np.ma.MaskedArray) and np.ma.count_masked(x):
            raise TypeError(
                f"{what} are a masked array with {np.ma.count_masked(x)} masked values, which nnx cannot leave out; "
                f"fill them (x.filled(value)) or drop those rows (x[~x.mask.any(axis=1)]) first"
            )
        return np.asarray(x)  # np.matrix, an unmasked masked array, ...: their values as a plain array


class FastNumpyBackend(NumpyBackend):
    """NumPy on the CPU with fast paths: in-place, fused NumPy kernels; with Numba (``pip install "nnx-nnfs[fast]"``)
    also multi-threaded element-wise kernels for large arrays and a compiled `Model.train` step (``NNX_COMPILE=0``
    or ``compile = False`` turns the Numba paths off)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.compile = os.environ.get(COMPILE_ENV_VAR, "1") != "0"
        self._reference = NumpyBackend("numpy", np, "CPU", array_type=np.ndarray)
        self._row_indices: dict[int, np.ndarray] = {}
        self._ones: dict[tuple, np.ndarray] = {}

    def reference(self) -> Backend:
        return self._reference

    def device_info(self) -> list[dict]:
        if not _numba_installed():
            compiled = 'off (Numba not installed: pip install "nnx-nnfs[fast]")'
        else:
            compiled = "on (Numba)" if self.compile else f"off ({COMPILE_ENV_VAR}=0 or compile = False)"
        return [{"name": "CPU", "cores": os.cpu_count(), "compiled step": compiled}]

    # In-place arithmetic on arrays this call just created, BLAS for column sums, gathers instead of one-hot
    # rows; each matches the generic kernel to float32 rounding (most of them bit for bit).

    def dense_forward(self, inputs, weights, biases):
        parallel = self._parallel(inputs.shape[0] * weights.shape[1])
        if parallel and inputs.shape[1] <= parallel.NARROW_INPUTS and parallel.takes(inputs, weights, biases):
            return parallel.narrow_dense_forward(inputs, weights, biases)
        output = np.matmul(inputs, weights)
        if parallel and parallel.takes(output, biases):
            parallel.add_row(output, biases)
        else:
            output += biases
        return output

    def dense_backward(self, inputs, weights, dvalues):
        return inputs.T @ dvalues, self._column_sums(dvalues), dvalues @ weights.T

    def relu_forward(self, inputs):
        kernels = self._fused(inputs.size)
        if kernels is None or not kernels.takes(inputs):
            return np.maximum(inputs, 0)
        if inputs.size >= PARALLEL_MIN_ELEMENTS:
            return kernels.relu_forward(inputs)
        return kernels.relu_forward_serial(inputs)

    def relu_backward(self, dvalues, inputs):
        kernels = self._fused(dvalues.size)
        if kernels is None or not kernels.takes(dvalues, inputs):
            return np.multiply(dvalues, inputs > 0)
        if dvalues.size >= PARALLEL_MIN_ELEMENTS:
            return kernels.relu_backward(dvalues, inputs)
        return kernels.relu_backward_serial(dvalues, inputs)

    def softmax(self, inputs):
        exponentials = inputs - _row_reduce(np.maximum, inputs)
        np.exp(exponentials, out=exponentials)
        exponentials /= _row_reduce(np.add, exponentials)
        return exponentials

    def categorical_crossentropy(self, probabilities, labels, epsilon: float):
        if labels.dtype.kind not in "iu":  # integer-valued float labels: the generic comparison handles them
            return super().categorical_crossentropy(probabilities, labels, epsilon)
        confidences = probabilities[self._rows(labels.shape[0]), labels]
        np.clip(confidences, epsilon, 1 - epsilon, out=confidences)
        np.log(confidences, out=confidences)
        return np.negative(confidences, out=confidences)

    def softmax_crossentropy_backward(self, probabilities, labels):
        if labels.dtype.kind not in "iu":
            return super().softmax_crossentropy_backward(probabilities, labels)
        gradient = probabilities.copy()
        gradient[self._rows(labels.shape[0]), labels] -= 1
        gradient /= probabilities.shape[0]
        return gradient

    def sgd_update(self, values, gradient, learning_rate, momentums=None, momentum=0.0):
        if momentums is None:
            values -= learning_rate * gradient
            return values, None
        momentums *= momentum
        momentums -= learning_rate * gradient
        values += momentums
        return values, momentums

    def adagrad_update(self, values, gradient, cache, learning_rate, epsilon):
        cache += np.square(gradient)
        values -= _scaled_step(gradient, cache, learning_rate, epsilon)
        return values, cache

    def rmsprop_update(self, values, gradient, cache, learning_rate, epsilon, rho):
        cache *= rho
        cache += (1 - rho) * np.square(gradient)
        values -= _scaled_step(gradient, cache, learning_rate, epsilon)
        return values, cache

    def adam_update(self, values, gradient, momentums, cache, learning_rate, epsilon, beta_1, beta_2, step):
        momentums *= beta_1
        momentums += (1 - beta_1) * gradient
        cache *= beta_2
        cache += (1 - beta_2) * np.square(gradient)
        denominator = cache / (1 - beta_2**step)
        np.sqrt(denominator, out=denominator)
        denominator += epsilon
        update = momentums / (1 - beta_1**step)
        update *= learning_rate
        update /= denominator
        values -= update
        return values, momentums, cache

    def _parallel(self, elements: int):
        """The multi-threaded Numba kernels for arrays of this many elements, or None (small arrays, no Numba, or
        `compile` off)."""
        return self._fused(elements) if elements >= PARALLEL_MIN_ELEMENTS else None

    def _fused(self, elements: int):
        """The Numba element-wise kernels for arrays of this many elements, or None (small arrays, no Numba, or
        `compile` off)."""
        if elements < FUSED_MIN_ELEMENTS or not self.compile or not _numba_installed():
            return None
        return _kernels("_parallel")

    def _rows(self, n: int):
        """0, 1, ..., n - 1 (int64), kept for the last few batch sizes: the row index of a gather."""
        rows = self._row_indices.get(n)
        if rows is None:
            if len(self._row_indices) > 8:
                self._row_indices.clear()
            rows = self._row_indices[n] = np.arange(n)
        return rows

    def _column_sums(self, values):
        """values.sum(axis=0, keepdims=True) as a product with a row of ones: BLAS reads the rows once, in
        parallel, instead of a strided reduction."""
        if values.shape[0] < COLUMN_SUM_BY_PRODUCT:
            return values.sum(axis=0, keepdims=True)
        key = (values.shape[0], values.dtype)
        ones = self._ones.get(key)
        if ones is None:
            if len(self._ones) > 8:
                self._ones.clear()
            ones = self._ones[key] = np.ones((1, values.shape[0]), values.dtype)
        return ones @ values

    def why_no_step_kernel(self, program) -> str | None:
        if not _numba_installed():
            return 'the compiled step needs Numba: pip install "nnx-nnfs[fast]"'
        if not self.compile:
            return f"the compiled step is off ({COMPILE_ENV_VAR}=0 or compile = False)"
        return _kernels("numba_step").why_not(program)

    def step_kernel(self, program):
        return _kernels("numba_step").NumbaStepKernel(program)

    def why_no_stack_kernel(self, program) -> str | None:
        return self.why_no_step_kernel(program)

    def stack_kernel(self, programs):
        return _kernels("numba_stack").NumbaStackKernel(tuple(programs))


@functools.cache
def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


@functools.cache
def _kernels(name: str):
    """This backend's Numba kernel module `name`, loaded on first use: Numba is an optional extra."""
    return importlib.import_module(f"nnx.backends.{name}")


def _row_reduce(ufunc, values):
    """`ufunc` (np.maximum or np.add) reduced along each row, kept as a column: for few columns (a classifier's
    outputs) one vectorized pass per column, which NumPy's reduction along a short axis is many times slower than.
    The columns are combined left to right, as NumPy's reduction of a short row does: the same bits."""
    if values.ndim != 2 or values.shape[1] > NARROW_ROWS or values.shape[1] < 2:
        return ufunc.reduce(values, axis=-1, keepdims=True)
    result = values[:, 0].copy()
    for column in range(1, values.shape[1]):
        ufunc(result, values[:, column], out=result)
    return result[:, None]


def _scaled_step(gradient, cache, learning_rate: float, epsilon: float):
    """learning_rate * gradient / (sqrt(cache) + epsilon), with one temporary."""
    denominator = np.sqrt(cache)
    denominator += epsilon
    step = learning_rate * gradient
    step /= denominator
    return step


def load() -> Backend:
    return FastNumpyBackend("numpy", np, "CPU", array_type=np.ndarray)
