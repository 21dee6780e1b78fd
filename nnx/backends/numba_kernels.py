"""The compiled training step of the NumPy backend (Numba), one kernel family for one model and for many: forward,
loss, backward, regularization and update of a batch over packed buffers, for M models at once (M = 1 for
`Model.train`). The work is M x chunks pieces, each one model on a run of the rows (`numba_columns.columns_into`);
then each model sums its chunks' gradients and updates. `train_parallel` runs the pieces and then the models across
the threads, `train_serial` on the calling thread; `numba_step` chooses and prepares their arguments."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from nnx.backends.numba_columns import columns_into
from nnx.backends.numba_ops import FASTMATH, update_rule_step


@njit(cache=True, fastmath=FASTMATH, parallel=True, nogil=True)  # nogil: a reader thread runs while it trains
def train_parallel(
    X, labels, targets, masks, params, layers, widths, chain_ops, chain_starts, mask_columns, head, constants,
    first, second, segments, regularization, update_rule, hyper, results, chunks,
):  # fmt: skip
    """Steps on one batch for every model, its rows split into `chunks` runs, the pieces split across the threads.
    Row m of `params`, `first`, `second`, `masks`, `constants` and `regularization` is model m's; `hyper[s, m]` holds
    model m's numbers for step s (one step per row of `hyper`), and `results[s, m]` gets its (sum of sample losses,
    sum of comparisons, regularization loss, finite probe) of that step: see `train_serial`. With one piece per
    model, each model runs all its steps on one thread and stops after a step whose probe is not finite (its later
    rows of `results` are left as they were)."""
    n_steps, n_models = hyper.shape[0], params.shape[0]
    gradients = np.zeros((n_models, chunks, params.shape[1]), dtype=params.dtype)
    sums = np.zeros((n_models, chunks, 2))
    if chunks == 1:  # one piece per model: its steps and updates follow one another on one thread
        for model in prange(n_models):
            for step in range(n_steps):
                if step:
                    gradients[model, 0, :] = 0
                _piece(
                    model, 1, X, labels, targets, masks, params, layers, widths, chain_ops, chain_starts,
                    mask_columns, head, constants, gradients, sums,
                )  # fmt: skip
                _finish(
                    model, params, gradients, sums, first, second, segments, regularization, update_rule,
                    hyper[step], results[step],
                )  # fmt: skip
                if not np.isfinite(results[step, model, 3]):
                    break
        return
    for step in range(n_steps):
        if step:
            gradients[:] = 0
        for piece in prange(n_models * chunks):
            _piece(
                piece, chunks, X, labels, targets, masks, params, layers, widths, chain_ops, chain_starts,
                mask_columns, head, constants, gradients, sums,
            )  # fmt: skip
        for model in prange(n_models):
            _finish(
                model, params, gradients, sums, first, second, segments, regularization, update_rule, hyper[step],
                results[step],
            )  # fmt: skip


@njit(cache=True, fastmath=FASTMATH, nogil=True)
def train_serial(
    X, labels, targets, masks, params, layers, widths, chain_ops, chain_starts, mask_columns, head, constants,
    first, second, segments, regularization, update_rule, hyper, results, chunks,
):  # fmt: skip
    """`train_parallel` on the calling thread (no threads to wake: for small batches). `results[s, m]` gets model
    m's sum of sample losses, sum of comparisons, regularization loss (of the parameters before the update) and
    finite probe of step s: its loss plus the sum of p * 0 over its updated parameters, NaN or inf unless all of
    them are finite. Each model stops after a step whose probe is not finite."""
    n_steps, n_models = hyper.shape[0], params.shape[0]
    gradients = np.zeros((n_models, chunks, params.shape[1]), dtype=params.dtype)
    sums = np.zeros((n_models, chunks, 2))
    for model in range(n_models):
        for step in range(n_steps):
            if step:
                gradients[model, :, :] = 0
            for chunk in range(chunks):
                _piece(
                    model * chunks + chunk, chunks, X, labels, targets, masks, params, layers, widths, chain_ops,
                    chain_starts, mask_columns, head, constants, gradients, sums,
                )  # fmt: skip
            _finish(
                model, params, gradients, sums, first, second, segments, regularization, update_rule, hyper[step],
                results[step],
            )  # fmt: skip
            if not np.isfinite(results[step, model, 3]):
                break


@njit(cache=True, fastmath=FASTMATH)
def _piece(
    piece, chunks, X, labels, targets, masks, params, layers, widths, chain_ops, chain_starts, mask_columns, head,
    constants, gradients, sums,
):  # fmt: skip
    """Forward, loss and backward of one model on one run of the rows: its gradient into gradients[model, chunk],
    its (loss sum, comparisons) into sums[model, chunk]."""
    model, chunk = piece // chunks, piece % chunks
    n_rows = X.shape[0]
    loss_sum, correct = columns_into(
        gradients[model, chunk], chunk * n_rows // chunks, (chunk + 1) * n_rows // chunks, X, labels, targets,
        masks[model], params[model], layers, widths, chain_ops, chain_starts, mask_columns, head, constants[model],
    )  # fmt: skip
    sums[model, chunk, 0] = loss_sum
    sums[model, chunk, 1] = correct


@njit(cache=True, fastmath=FASTMATH)
def _finish(model, params, gradients, sums, first, second, segments, regularization, update_rule, hyper, results):
    """Sum model `model`'s chunks, regularize, update, and write its results (see `train_serial`)."""
    gradient = gradients[model, 0]
    loss_sum, correct = sums[model, 0, 0], sums[model, 0, 1]
    for chunk in range(1, gradients.shape[1]):
        more = gradients[model, chunk]
        for index in range(gradient.size):
            gradient[index] += more[index]
        loss_sum += sums[model, chunk, 0]
        correct += sums[model, chunk, 1]
    weights = params[model]
    reg_loss = _update(
        weights, gradient, first[model], second[model], segments, regularization[model], update_rule, hyper[model]
    )
    probe = loss_sum + reg_loss
    for index in range(weights.size):
        probe += weights[index] * 0  # NaN or inf stays: fast math here keeps them
    results[model, 0] = loss_sum
    results[model, 1] = correct
    results[model, 2] = reg_loss
    results[model, 3] = probe


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
