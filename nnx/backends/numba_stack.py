"""The NumPy backend's compiled step for a stack of models (Numba): the `StepProgram` of every model, run for all of
them in one call per batch, the models (and, for fewer models than threads, their rows) split across the cores
(`numba_kernels`).

Each model's parameters and optimizer slots are one row of an (M, size) buffer, laid out as the single-model kernel
lays out its flat buffer; each model has its own hyperparameters, regularization and dropout masks.
"""

from __future__ import annotations

import numpy as np

from nnx.backends.numba_step import NumbaStepKernel
from nnx.backends.step_program import StepProgram


class NumbaStackKernel(NumbaStepKernel):
    """Runs the programs of a stack of models (one structure, each model's own numbers) on NumPy arrays: one
    compiled call per batch for all of them. Data preparation, the buffer layout and the kernel are the
    single-model kernel's, which is this with one model."""

    def __init__(self, programs: tuple[StepProgram, ...]):
        super().__init__(programs[0])
        self.set_programs(tuple(programs))

    def part(self, positions) -> NumbaStackKernel:
        """The kernel of the models at `positions` (prepared data kept)."""
        kernel = NumbaStackKernel(tuple(self.programs[position] for position in positions))
        kernel.X, kernel.y, kernel.prepared = self.X, self.y, self.prepared
        return kernel

    def new_buffers(self) -> list:
        """Zeroed (M, size) buffers for the parameters and each optimizer slot, one row per model."""
        return self.stacked_buffers()

    def stacked_views(self, buffer) -> list[list]:
        """[[weights (M, n_inputs, n_outputs), biases (M, 1, n_outputs)] per Dense] as views of an (M, size)
        buffer."""
        views = []
        for n_inputs, n_outputs, weights_at, biases_at, transposed in self.layers:
            weights = buffer[:, weights_at:biases_at]
            if transposed:
                weights = weights.reshape(self.n_models, n_outputs, n_inputs).transpose(0, 2, 1)
            else:
                weights = weights.reshape(self.n_models, n_inputs, n_outputs)
            views.append([weights, buffer[:, biases_at : biases_at + n_outputs].reshape(self.n_models, 1, n_outputs)])
        return views

    def run_stack(self, X_batch, targets, masks, learning_rates, steps):
        """Train every model on one batch in one compiled call, updating the buffers in place. `masks`: per dropout
        an (M, n_samples, width) array; `learning_rates` and `steps` (from 1): (M,) arrays.

        Returns an (M, 4) array of each model's (sum of sample losses, sum of comparisons, regularization loss,
        finite probe: NaN or inf unless its loss and updated parameters are all finite)."""
        n_models = self.n_models
        self._set_step_numbers(self.hypers, learning_rates, steps)
        if masks:
            self.cached = None
            self.model_constants[:, 0] = X_batch.shape[0]
            self._call(X_batch, targets, np.concatenate([m.reshape(n_models, -1) for m in masks], axis=1))
        else:
            self._cached_call(X_batch, targets)()
        return self.results

    def run_steps(self, X_batch, targets, learning_rates, steps):
        """Train every model for several steps on one batch (the whole set, epoch after epoch, without dropout) in
        one compiled call, updating the buffers in place. `learning_rates` and `steps` (from 1): (S, M) arrays, one
        row per step.

        Returns an (S, M, 4) array: each step's `run_stack` results. A model whose probe is not finite after a
        step stops there, and its later rows are NaN."""
        n_steps = learning_rates.shape[0]
        hypers = np.repeat(self.hypers[None], n_steps, axis=0)
        self._set_step_numbers(hypers, learning_rates, steps)
        results = np.full((n_steps, self.n_models, 4), np.nan)
        self.cached = None
        self.model_constants[:, 0] = X_batch.shape[0]
        self._call(X_batch, targets, self.no_masks, (*self.rest[:-2], hypers, results))
        return results

    def _set_step_numbers(self, hypers, learning_rates, steps) -> None:
        """Write each model's learning rate (negated, then as is) and the rule's per-step numbers into `hypers`
        ((M, n) for one step, (S, M, n) for S), in the model dtype, as the generic update rounds them."""
        hypers[..., 0], hypers[..., 1] = -learning_rates, learning_rates
        if self.rule.step_numbers is not None:
            for offset, numbers in enumerate(self.rule.step_numbers(self.model_rule_constants, steps)):
                hypers[..., self.step_at + offset] = numbers
