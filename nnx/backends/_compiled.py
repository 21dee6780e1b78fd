"""A compiled training step for `Model.train` on the CPU: one pass over the rows, a tile of rows at a time, runs the
forward pass, the loss and the backward pass of each tile while it is in cache, then the regularization and the
optimizer update, in one call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from nnx.activations import Linear, ReLU, Sigmoid, Softmax
from nnx.layers import Dense, Dropout
from nnx.losses import EPSILON, BinaryCrossentropy, CategoricalCrossentropy, MeanSquaredError
from nnx.metrics import Categorical, Regression
from nnx.optimizers import SGD, Adagrad, Adam, RMSprop

MAX_LAYER_SIZE = 65536  # n_inputs * n_neurons above which BLAS (the generic step) beats a row-wise kernel
NARROW = 16  # Dense layers with fewer outputs are stored transposed, so that their loops run along the inputs
PARALLEL_MIN_ROWS = 768  # smaller batches run on one thread: starting the threads costs more than they save
ROWS_PER_THREAD = 384
TILE = 64  # rows that go through each layer together

# Fast math that keeps NaN and inf: the divergence guard must still see them.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

SOFTMAX, SIGMOID, LINEAR = 0, 1, 2
PLAIN_SGD, MOMENTUM_SGD, ADAGRAD, RMSPROP, ADAM = 0, 1, 2, 3, 4
RELU_OP = -1  # in a chain of element-wise ops; an op >= 0 is the index of a dropout mask

HEADS = {
    Softmax: (SOFTMAX, CategoricalCrossentropy, Categorical),
    Sigmoid: (SIGMOID, BinaryCrossentropy, Categorical),
    Linear: (LINEAR, MeanSquaredError, Regression),
}
STATE_NAMES = {
    PLAIN_SGD: (),
    MOMENTUM_SGD: ("momentums",),
    ADAGRAD: ("cache",),
    RMSPROP: ("cache",),
    ADAM: ("momentums", "cache"),
}
OPTIMIZER_CODES = {Adagrad: ADAGRAD, RMSprop: RMSPROP, Adam: ADAM}

# Columns of Network.layers, one row per Dense layer.
N_INPUTS, N_OUTPUTS, WEIGHTS_AT, BIASES_AT, TRANSPOSED = range(5)


# What fits, and how it is laid out: once per Model.train call ----------------------------------------------------


@dataclass
class Network:
    """A model that fits the kernel, as the kernel sees it; fixed for one `Model.train` call.

    The parameters of all Dense layers are packed into one flat array (weights, biases, weights, ...; the weights of
    narrow layers transposed), and so is the optimizer's state; the kernel works on those copies.
    """

    dtype: np.dtype
    dense: list
    layers: np.ndarray  # per Dense: n_inputs, n_outputs, where its weights and biases start, transposed or not
    widths: np.ndarray  # of each stage: the inputs, then each Dense's outputs
    chain_ops: np.ndarray  # the element-wise ops before each Dense and before the head, stage after stage
    chain_starts: np.ndarray
    dropouts: list  # (layer, width of its inputs), in forward order
    mask_columns: np.ndarray  # per dropout: the sum of the widths of the masks before it
    head: int
    segments: np.ndarray  # per parameter array (weights, biases, weights, ...): start and stop in the packed array
    regularization: np.ndarray  # per parameter array: l1, l2, 2 * l2


def compile_step(model, X, y):
    """A compiled `step(X_batch, y_batch)` that does what `model._train_step` does on batches of (X, y), or None when
    the model, its optimizer, accuracy or data do not fit the kernel (the generic step is used then)."""
    network = _network(model, X)
    if network is None:
        return None
    labels = _labels(network, y, X.shape[0])
    if labels is None:
        return None
    return CompiledStep(model, network, y, labels)


def _network(model, X) -> Network | None:
    if not model.finalized or type(X) is not np.ndarray or X.ndim != 2 or not X.flags.c_contiguous:
        return None
    head = _head_code(model)
    if head is None or _optimizer_code(model.optimizer) is None:
        return None
    body = model.layers[:-1]
    if any(type(layer) not in (Dense, ReLU, Dropout) for layer in body):
        return None
    dense = [layer for layer in body if type(layer) is Dense]
    if not dense or dense != list(model.trainable_layers) or dense != list(model.loss.trainable_layers):
        return None
    dtype = np.dtype(dense[0].dtype)
    if dtype not in (np.float32, np.float64) or X.dtype != dtype or X.shape[1] != dense[0].n_inputs:
        return None
    if any(np.dtype(layer.dtype) != dtype or layer.n_inputs * layer.n_neurons > MAX_LAYER_SIZE for layer in dense):
        return None
    return _describe(body, dense, dtype, head)


def _head_code(model) -> int | None:
    """The code of the output activation if the loss and the accuracy are the ones the kernel computes with it."""
    entry = HEADS.get(type(model.layers[-1]))
    if entry is None:
        return None
    head, loss_type, accuracy_type = entry
    if type(model.loss) is not loss_type or type(model.accuracy) is not accuracy_type:
        return None
    if head == SOFTMAX and model.softmax_classifier_output is None:
        return None
    return head


def _optimizer_code(optimizer) -> int | None:
    if type(optimizer) is SGD:
        return MOMENTUM_SGD if optimizer.momentum else PLAIN_SGD
    return OPTIMIZER_CODES.get(type(optimizer))


def _describe(body, dense, dtype, head) -> Network:
    widths = [dense[0].n_inputs] + [layer.n_neurons for layer in dense]
    chains: list[list[int]] = [[]]
    dropouts = []
    for layer in body:
        if type(layer) is Dense:
            chains.append([])
        elif type(layer) is ReLU:
            chains[-1].append(RELU_OP)
        else:
            chains[-1].append(len(dropouts))
            dropouts.append((layer, widths[len(chains) - 1]))
    layers, segments, regularization = [], [], []
    for layer in dense:
        weights_at = segments[-1][1] if segments else 0
        biases_at = weights_at + layer.n_inputs * layer.n_neurons
        layers.append((layer.n_inputs, layer.n_neurons, weights_at, biases_at, layer.n_neurons < NARROW))
        segments += [(weights_at, biases_at), (biases_at, biases_at + layer.n_neurons)]
        regularization += [
            (layer.weight_regularizer_l1, layer.weight_regularizer_l2, 2 * layer.weight_regularizer_l2),
            (layer.bias_regularizer_l1, layer.bias_regularizer_l2, 2 * layer.bias_regularizer_l2),
        ]
    mask_widths = [width for _, width in dropouts]
    return Network(
        dtype=dtype,
        dense=dense,
        layers=np.array(layers, dtype=np.int64),
        widths=np.array(widths, dtype=np.int64),
        chain_ops=np.array([op for chain in chains for op in chain], dtype=np.int64),
        chain_starts=np.cumsum([0, *(len(chain) for chain in chains)]).astype(np.int64),
        dropouts=dropouts,
        mask_columns=np.cumsum([0, *mask_widths])[:-1].astype(np.int64),
        head=head,
        segments=np.array(segments, dtype=np.int64),
        regularization=np.array(regularization, dtype=dtype),
    )


def _labels(network, y, n_samples: int):
    """For a softmax head, class labels as contiguous int64 (one-hot rows converted here, once); for the others the
    targets themselves, which must already be (n_samples, outputs) in the model's dtype."""
    if type(y) is not np.ndarray or y.shape[:1] != (n_samples,):
        return None
    outputs = int(network.widths[-1])
    if network.head != SOFTMAX:
        fits = y.shape == (n_samples, outputs) and y.dtype == network.dtype and y.flags.c_contiguous
        return y if fits else None
    if y.ndim == 2 and y.shape[1] == outputs:
        return np.argmax(y, axis=1)
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        return np.ascontiguousarray(y, dtype=np.int64)
    return None


# One step: Python gathers and packs the live arrays, one compiled call does the rest -----------------------------


class CompiledStep:
    """`Model._train_step` for one model on batches of one training set, as one compiled call per batch.

    Parameters and optimizer state are read afresh on every call (a divergence restore or a load replaces them) and
    written back in place; a batch or an array the kernel cannot take goes through the generic step instead.
    """

    def __init__(self, model, network: Network, y, labels):
        self.model = model
        self.network = network
        self.y = y
        self.labels = labels
        self.optimizer_code = _optimizer_code(model.optimizer)
        self.nothing = np.zeros(0, dtype=network.dtype)
        self.no_labels = np.zeros(0, dtype=np.int64)
        self.no_targets = np.zeros((0, 0), dtype=network.dtype)
        size = int(network.segments[-1, 1])
        self.packed = [np.empty(size, dtype=network.dtype) for _ in range(1 + len(STATE_NAMES[self.optimizer_code]))]
        self.views = [self._views(flat) for flat in self.packed]

    def __call__(self, X_batch, y_batch):
        model, network = self.model, self.network
        batch_labels = self._batch_labels(y_batch)
        arrays = self._live_arrays()
        if batch_labels is None or arrays is None or not _takes(X_batch, network.dtype, network.widths[0]):
            return model._train_step(X_batch, y_batch)
        n_samples = X_batch.shape[0]
        masks = self._masks(n_samples)
        for pairs, views in zip(arrays, self.views, strict=True):
            _copy_pairs(views, pairs)
        optimizer = model.optimizer
        optimizer.pre_update_params()
        loss_sum, correct, reg_loss = _run_kernel(
            X_batch,
            *self._targets(batch_labels),
            masks,
            self.packed,
            network,
            np.array([n_samples, self._precision(), EPSILON, 1 - EPSILON]),
            self.optimizer_code,
            _hyperparameters(optimizer, network.dtype),
        )
        for pairs, views in zip(arrays, self.views, strict=True):
            _copy_pairs(pairs, views)
        optimizer.post_update_params()
        return self._metrics(loss_sum, correct, reg_loss, n_samples)

    def _batch_labels(self, y_batch):
        """The labels (or targets) of this batch: a slice of those prepared once when `y_batch` is rows of y."""
        if type(y_batch) is not np.ndarray:
            return None
        start = _row_offset(y_batch, self.y)
        if start is not None:
            return self.labels[start : start + y_batch.shape[0]]
        return _labels(self.network, y_batch, y_batch.shape[0])

    def _targets(self, batch_labels):
        if self.network.head == SOFTMAX:
            return batch_labels, self.no_targets
        return self.no_labels, batch_labels

    def _live_arrays(self):
        """[(weights, biases) per Dense] for the parameters, then the same for each of the optimizer's arrays (its
        'momentums', 'cache'), or None if one is missing or not of the layer's shape and dtype."""
        optimizer = self.model.optimizer
        if _optimizer_code(optimizer) != self.optimizer_code:
            return None
        groups = [[(layer.weights, layer.biases) for layer in self.network.dense]]
        for name in STATE_NAMES[self.optimizer_code]:
            states = [optimizer.layer_state(layer) for layer in self.network.dense]
            groups.append([(state.get(f"weight_{name}"), state.get(f"bias_{name}")) for state in states])
        dtype = self.network.dtype
        for layer, *pairs in zip(self.network.dense, *groups, strict=True):
            shapes = ((layer.n_inputs, layer.n_neurons), (1, layer.n_neurons))
            for pair in pairs:
                if not all(_usable(array, shape, dtype) for array, shape in zip(pair, shapes, strict=True)):
                    return None
        return groups

    def _views(self, flat):
        """[(weights, biases) per Dense] as views of a packed array, shaped as the layers' own arrays: packing and
        unpacking are then one copy per array."""
        views = []
        for n_inputs, n_outputs, weights_at, biases_at, transposed in self.network.layers:
            weights = flat[weights_at:biases_at]
            weights = weights.reshape(n_outputs, n_inputs).T if transposed else weights.reshape(n_inputs, n_outputs)
            views.append((weights, flat[biases_at : biases_at + n_outputs].reshape(1, n_outputs)))
        return views

    def _masks(self, n_samples: int):
        """The dropout masks of this batch, drawn in forward order as the generic step draws them, packed flat."""
        network = self.network
        masks = [
            layer.backend.dropout_mask((n_samples, width), layer.rate, network.dtype).reshape(-1)
            for layer, width in network.dropouts
        ]
        return np.concatenate(masks) if masks else self.nothing

    def _precision(self) -> float:
        return float(self.model.accuracy.precision) if self.network.head == LINEAR else 0.0

    def _metrics(self, loss_sum, correct, reg_loss, n_samples: int):
        """Add the batch to the epoch's sums, as the generic `calculate` would; the step's three metrics."""
        model = self.model
        dtype = self.network.dtype.type
        count = n_samples if self.network.head == SOFTMAX else n_samples * int(self.network.widths[-1])
        model.loss.add_to_pass(dtype(loss_sum), n_samples)
        model.accuracy.add_to_pass(np.float32(correct), count)
        accuracy = np.asarray(np.float32(correct) / count)
        return accuracy, np.asarray(dtype(loss_sum / n_samples)), np.asarray(dtype(reg_loss))


def _copy_pairs(destinations, sources) -> None:
    for (weights, biases), (source_weights, source_biases) in zip(destinations, sources, strict=True):
        np.copyto(weights, source_weights)
        np.copyto(biases, source_biases)


def _usable(array, shape, dtype) -> bool:
    return type(array) is np.ndarray and array.dtype == dtype and array.shape == shape


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
    if batch is full:
        return 0
    if batch.dtype != full.dtype or batch.shape[1:] != full.shape[1:] or batch.strides != full.strides:
        return None
    distance = batch.__array_interface__["data"][0] - full.__array_interface__["data"][0]
    stride = full.strides[0] if full.ndim else 0
    if stride <= 0 or distance % stride:
        return None
    start = distance // stride
    return start if start >= 0 and start + batch.shape[0] <= full.shape[0] else None


def _hyperparameters(optimizer, dtype):
    """The optimizer's numbers for this step, in the model's dtype as the generic update rounds them."""
    lr = optimizer.current_learning_rate
    beta_1 = getattr(optimizer, "beta_1", 0.0)
    beta_2 = getattr(optimizer, "beta_2", 0.0)
    rho = getattr(optimizer, "rho", 0.0)
    step = optimizer.iterations + 1
    values = (
        -lr,
        lr,
        getattr(optimizer, "momentum", 0.0),
        getattr(optimizer, "epsilon", 0.0),
        rho,
        1 - rho,
        beta_1,
        1 - beta_1,
        beta_2,
        1 - beta_2,
        1 - beta_1**step,
        1 - beta_2**step,
    )
    return np.array(values, dtype=dtype)


def _run_kernel(X, labels, targets, masks, packed, network, constants, optimizer, hyper):
    """Train on one batch in one compiled call: (sum of sample losses, sum of comparisons, regularization loss)."""
    params, first, second = (*packed, *[np.zeros(0, dtype=network.dtype)] * (3 - len(packed)))[:3]
    n_samples = X.shape[0]
    rows = (X, labels, targets, masks, params, network.layers, network.widths, network.chain_ops)
    rows += (network.chain_starts, network.mask_columns, network.head, constants)
    update = (first, second, network.segments, network.regularization, optimizer, hyper)
    if n_samples >= PARALLEL_MIN_ROWS:  # asking Numba for its thread count costs more than a small step
        threads = min(numba.get_num_threads(), n_samples // ROWS_PER_THREAD)
        if threads > 1:
            return _train_parallel(rows, update, threads)
    return _train_serial(rows, update)


# The kernel --------------------------------------------------------------------------------------------------------


@njit(cache=True, fastmath=FASTMATH)
def _train_serial(rows, update):
    params = rows[4]
    gradient = np.zeros(params.size, dtype=params.dtype)
    loss_sum, correct = _rows_into(gradient, 0, rows[0].shape[0], *rows)
    reg_loss = _update(params, gradient, *update)
    return loss_sum, correct, reg_loss


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _train_parallel(rows, update, chunks):
    params = rows[4]
    n_samples = rows[0].shape[0]
    gradients = _zeros(chunks, params.size, params)
    sums = _zeros(chunks, 2, rows[11])
    for chunk in prange(chunks):
        start = chunk * n_samples // chunks
        stop = (chunk + 1) * n_samples // chunks
        loss_sum, correct = _rows_into(gradients[chunk], start, stop, *rows)
        sums[chunk, 0] = loss_sum
        sums[chunk, 1] = correct
    gradient = _sum_rows(gradients)
    reg_loss = _update(params, gradient, *update)
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
            _element_wise(here, stage_derivatives, ops, masks, mask_columns, n_rows, first, width)
        width = widths[n_layers]
        outputs = values[stage_at[n_layers] : stage_at[n_layers] + count * width].reshape((count, width))
        loss, hits = _head(
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


@njit(cache=True, fastmath=FASTMATH)
def _element_wise(values, derivatives, ops, masks, mask_columns, n_rows, first, width):
    """ReLUs and dropout masks in order, in place on a tile's `values` (rows of `width`, from row `first`);
    `derivatives` gets the product of their local gradients (the generic backward multiplies by the same 0/1 and
    mask values); without ops it is left as it is, and not used."""
    zero, one = values.dtype.type(0), values.dtype.type(1)
    size = values.size
    for position in range(ops.size):
        op = ops[position]
        if op == RELU_OP:
            if position == 0:
                for index in range(size):
                    value = values[index]
                    derivatives[index] = one if value > zero else zero
                    values[index] = zero if value <= zero else value
            else:
                for index in range(size):
                    value = values[index]
                    derivatives[index] = derivatives[index] if value > zero else zero
                    values[index] = zero if value <= zero else value
        else:
            mask_at = n_rows * mask_columns[op] + first * width
            mask = masks[mask_at : mask_at + size]
            if position == 0:
                for index in range(size):
                    values[index] *= mask[index]
                    derivatives[index] = mask[index]
            else:
                for index in range(size):
                    values[index] *= mask[index]
                    derivatives[index] *= mask[index]


@njit(cache=True, fastmath=FASTMATH)
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


@njit(cache=True, fastmath=FASTMATH)
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


@njit(cache=True, fastmath=FASTMATH)
def _scale(delta, derivatives):
    for index in range(delta.size):
        delta[index] *= derivatives[index]


@njit(cache=True, fastmath=FASTMATH)
def _head(head, outputs, labels, targets, first, constants, delta):
    """The output activation, the tile's loss and comparisons, and the loss gradient at the head's inputs."""
    loss_sum = 0.0
    correct = 0.0
    for row in range(outputs.shape[0]):
        if head == SOFTMAX:
            loss, hits = _softmax_cross_entropy(outputs, row, labels[first + row], constants, delta)
        elif head == SIGMOID:
            loss, hits = _sigmoid_binary_cross_entropy(outputs, row, targets, first + row, constants, delta)
        else:
            loss, hits = _linear_squared_error(outputs, row, targets, first + row, constants, delta)
        loss_sum += loss
        correct += hits
    return loss_sum, correct


@njit(cache=True)
def _clip(value, low, high):
    """`value` clipped to [low, high]; NaN stays NaN, as with NumPy's clip."""
    if value < low:
        return low
    return high if value > high else value


@njit(cache=True, fastmath=FASTMATH)
def _softmax_cross_entropy(outputs, row, label, constants, delta):
    kind = outputs.dtype.type
    n_samples, low, high = kind(constants[0]), kind(constants[2]), kind(constants[3])
    width = outputs.shape[1]
    largest = outputs[row, 0]
    for j in range(width):
        largest = max(largest, outputs[row, j])
    total = kind(0)
    for j in range(width):
        delta[row, j] = np.exp(outputs[row, j] - largest)
        total += delta[row, j]
    best = 0
    for j in range(width):
        delta[row, j] = delta[row, j] / total
        if delta[row, j] > delta[row, best]:
            best = j
    confidence = _clip(delta[row, label], low, high)
    delta[row, label] -= kind(1)
    for j in range(width):
        delta[row, j] = delta[row, j] / n_samples
    return -np.log(confidence), 1.0 if best == label else 0.0


@njit(cache=True, fastmath=FASTMATH)
def _sigmoid_binary_cross_entropy(outputs, row, targets, target_row, constants, delta):
    kind = outputs.dtype.type
    n_samples, low, high = kind(constants[0]), kind(constants[2]), kind(constants[3])
    zero, one, half, width = kind(0), kind(1), kind(0.5), kind(outputs.shape[1])
    loss = zero
    hits = 0.0
    for j in range(outputs.shape[1]):
        p = one / (one + np.exp(-outputs[row, j]))
        y = targets[target_row, j]
        clipped = _clip(p, low, high)
        loss += -(y * np.log(clipped) + (one - y) * np.log(one - clipped))
        hits += 1.0 if (one if p > half else zero) == y else 0.0
        gradient = -(y / clipped - (one - y) / (one - clipped)) / width / n_samples
        delta[row, j] = gradient * (one - p) * p
    return loss / width, hits


@njit(cache=True, fastmath=FASTMATH)
def _linear_squared_error(outputs, row, targets, target_row, constants, delta):
    kind = outputs.dtype.type
    n_samples, precision = kind(constants[0]), constants[1]
    width, two = kind(outputs.shape[1]), kind(2)
    loss = kind(0)
    hits = 0.0
    for j in range(outputs.shape[1]):
        output, target = outputs[row, j], targets[target_row, j]
        error = target - output
        loss += error * error
        hits += 1.0 if abs(output - target) < precision else 0.0
        delta[row, j] = -two * error / width / n_samples
    return loss / width, hits


@njit(cache=True, fastmath=FASTMATH)
def _update(params, gradient, first, second, segments, regularization, optimizer, hyper):
    """Add the regularization gradients and apply the optimizer to every parameter array, in place in the packed
    arrays; returns the regularization loss of the parameters before the update."""
    reg_loss = 0.0
    for segment in range(segments.shape[0]):
        start, stop = segments[segment, 0], segments[segment, 1]
        reg_loss += _regularize(params, gradient, start, stop, regularization[segment])
    _optimizer_step(params, gradient, first, second, optimizer, hyper)
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


@njit(cache=True, fastmath=FASTMATH)
def _optimizer_step(params, gradient, first, second, optimizer, hyper):
    """One update of every parameter in place, with the optimizer's packed arrays (see STATE_NAMES)."""
    negative_lr, lr, momentum, epsilon = hyper[0], hyper[1], hyper[2], hyper[3]
    rho, keep_rho, beta_1, keep_beta_1 = hyper[4], hyper[5], hyper[6], hyper[7]
    beta_2, keep_beta_2, correction_1, correction_2 = hyper[8], hyper[9], hyper[10], hyper[11]
    if optimizer == PLAIN_SGD:
        for index in range(params.size):
            params[index] += negative_lr * gradient[index]
    elif optimizer == MOMENTUM_SGD:
        for index in range(params.size):
            first[index] = momentum * first[index] - lr * gradient[index]
            params[index] += first[index]
    elif optimizer == ADAGRAD:
        for index in range(params.size):
            g = gradient[index]
            first[index] = first[index] + g * g
            params[index] += negative_lr * g / (np.sqrt(first[index]) + epsilon)
    elif optimizer == RMSPROP:
        for index in range(params.size):
            g = gradient[index]
            first[index] = rho * first[index] + keep_rho * (g * g)
            params[index] += negative_lr * g / (np.sqrt(first[index]) + epsilon)
    else:
        for index in range(params.size):
            g = gradient[index]
            first[index] = beta_1 * first[index] + keep_beta_1 * g
            second[index] = beta_2 * second[index] + keep_beta_2 * (g * g)
            corrected = first[index] / correction_1
            params[index] += negative_lr * corrected / (np.sqrt(second[index] / correction_2) + epsilon)
