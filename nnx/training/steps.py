"""Where a training step runs: the generic step (every layer's forward and backward, then the optimizer) and the
planned step (one backend kernel call per batch over packed buffers that are the parameters' own storage).

Both are called as ``step(X_batch, y_batch)`` and return the step's (accuracy, data_loss, reg_loss) on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from nnx.backends.step_program import StepProgram
from nnx.optimizers import PARAMETERS
from nnx.training import handoff
from nnx.training.plan import StepPlan, plan_step


@dataclass(frozen=True)
class StepChoice:
    """Which step `Model.train` runs, decided once: `choose_step` makes it, `training_step` runs it and
    `explain_step` says it.

    Attributes:
        plan: the model's step plan.
        kernel: the backend's kernel for the plan (prepared when data were given), or None.
        reason: why the generic step runs, or None for the compiled step.
        backend: the backend's name.
        with_data: whether the choice saw the training data.
    """

    plan: StepPlan
    kernel: Any
    reason: str | None
    backend: str
    with_data: bool

    @property
    def compiled(self) -> bool:
        """Whether the backend's kernel runs the step."""
        return self.reason is None

    @property
    def sentence(self) -> str:
        """The choice and its reason, in one sentence."""
        if self.reason is not None:
            return f"generic step (layer by layer, on backend {self.backend!r}): {self.reason}"
        sentence = (
            f"compiled step: backend {self.backend!r} runs the whole training step (forward, loss, backward, "
            f"update) as one kernel call per batch"
        )
        takes = getattr(self.kernel, "takes", None)
        if self.with_data or takes is None:
            return sentence
        return f"{sentence}, for {takes} (other data runs the generic step; explain_step(X, y) checks yours)"


def choose_step(model: Any, X: Any = None, y: Any = None) -> StepChoice:
    """The step `Model.train` runs for `model` on checked data (X, y), or on the usual data when X is None: the one
    decision that `training_step` follows and `explain_step` reports."""
    plan = plan_step(model)
    backend = model.backend
    reason = plan.reason or backend.why_no_step_kernel(plan.program)
    kernel = None
    if reason is None:
        kernel = backend.step_kernel(plan.program)
        if X is not None:
            reason = kernel.prepare(X, y)
    return StepChoice(plan, kernel, reason, backend.name, X is not None)


class GenericStep:
    """One step layer by layer: the reference every kernel is tested against, and the path for any model."""

    def __init__(self, model: Any):
        self.model = model

    def __call__(self, X: Any, y: Any) -> tuple[Any, Any, Any]:
        model = self.model
        output = model.forward(X, training=True)
        data_loss, regularization_loss = model.loss.calculate(output, y, include_regularization=True)
        accuracy = model.accuracy.calculate(handoff.predictions(model, output, y), y)  # checked for yours
        model.backward(output, y)
        optimizer = model.optimizer
        optimizer.pre_update_params()
        for layer in model.trainable_layers:
            optimizer.update_params(layer)
        optimizer.post_update_params()
        return accuracy, data_loss, regularization_loss

    def close(self) -> None:
        """Nothing to give back: the generic step keeps no arrays of its own."""


class PlannedStep:
    """A step plan run by a backend kernel for one `Model.train` call.

    The plan's packed buffers are the storage of the Dense layers' weights and biases and of the optimizer's
    slots while it runs: layers and optimizer hold views of them, so anything that reads them sees the live values.
    Whatever replaces them (a divergence restore, `set_parameters`, a load, a generic step) is noticed before the
    next kernel call and copied in. `close()` gives layers and optimizer standalone arrays again.
    """

    def __init__(self, model: Any, plan: StepPlan, kernel: Any):
        self.plan = plan
        self.program = cast(StepProgram, plan.program)  # a planned step has one
        self.kernel = kernel
        self.optimizer, self.loss, self.accuracy = model.optimizer, model.loss, model.accuracy
        self.generic = GenericStep(model)
        self.buffers = kernel.new_buffers()
        self.views = [kernel.views(flat) for flat in self.buffers]
        self.dropouts = list(zip(plan.dropouts, self.program.dropout_widths(), strict=True))
        self.bound: tuple = ()
        self.state_version: Any = None
        self.usable = False  # bound on the first step, so that nothing changes before training starts
        self.kernel_ran = False

    def __call__(self, X_batch: Any, y_batch: Any) -> tuple[Any, Any, Any]:
        if not (self.usable and self._current()) and not self._bind():
            return self._generic(X_batch, y_batch)
        targets = self.kernel.batch_targets(X_batch, y_batch)
        if targets is None:
            return self._generic(X_batch, y_batch)
        n_samples = X_batch.shape[0]
        dtype = X_batch.dtype
        masks = [layer.backend.dropout_mask((n_samples, width), layer.rate, dtype) for layer, width in self.dropouts]
        optimizer = self.optimizer
        optimizer.pre_update_params()
        metrics = self.kernel.run(X_batch, targets, masks, optimizer.current_learning_rate, optimizer.iterations + 1)
        optimizer.post_update_params()
        self.kernel_ran = True
        self.loss.add_to_pass(metrics[3], n_samples)
        self.accuracy.add_to_pass(metrics[4], metrics[5])
        return metrics[:3]

    def _generic(self, X_batch: Any, y_batch: Any) -> tuple[Any, Any, Any]:
        """A batch or state the kernel cannot take: the generic step, on the live arrays (the views, or whatever
        replaced them); they are read again before the next kernel call."""
        result = self.generic(X_batch, y_batch)
        self.state_version = None
        self.kernel_ran = False
        return result

    def finite_probe(self) -> Any:
        """The kernel's finite probe of the last step (NaN or inf unless its loss and updated parameters are all
        finite), or None: the last step was not the kernel's, something replaced the parameters since, or the
        kernel computes none."""
        probe = getattr(self.kernel, "finite_probe", None)
        if probe is None or not (self.kernel_ran and self.usable and self._current()):
            return None
        return probe()

    def _current(self) -> bool:
        """Whether the layers and the optimizer still hold this step's views (nothing replaced them)."""
        if self.optimizer.state_version != self.state_version:
            return False
        for layer, weights, biases in self.bound:
            if layer.weights is not weights or layer.biases is not biases:
                return False
        return True

    def _bind(self) -> bool:
        """Copy the live parameters and optimizer slots into the buffers and hand the layers and the optimizer
        views of them; False (the generic step runs this batch) when an array does not fit."""
        dense, kernel = self.plan.dense, self.kernel
        parameters = [(layer.weights, layer.biases) for layer in dense]
        state = self.optimizer.state_dict(dense)
        slots = [self._slot_arrays(state["slots"], name) for name in self.program.slots]
        groups = [parameters, *slots]
        if not all(self._fits(group, views) for group, views in zip(groups, self.views, strict=True)):
            self.bound, self.usable = (), False
            return False
        for group, views in zip(groups, self.views, strict=True):
            for pair, view_pair in zip(group, views, strict=True):
                for array, view in zip(pair, view_pair, strict=True):
                    if array is not view:
                        kernel.copy_into(view, 0 if array is None else array)  # no slot yet: zeros
        self._install(self.views)
        self.usable = True
        return True

    def _slot_arrays(self, slots: dict, name: str) -> list:
        """(weights slot, biases slot) per Dense for slot `name`; None where the optimizer has none yet (zeros)."""
        return [
            tuple(slots.get(index, {}).get(f"{prefix}_{name}") for prefix in PARAMETERS)
            for index in range(len(self.plan.dense))
        ]

    def _fits(self, group: list, views: list) -> bool:
        fits = self.kernel.fits
        return all(
            array is None or fits(array, view)
            for pair, view_pair in zip(group, views, strict=True)
            for array, view in zip(pair, view_pair, strict=True)
        )

    def _install(self, views: list) -> None:
        """Make `views` ([parameter pairs, then each slot's pairs]) the layers' and the optimizer's arrays."""
        dense, names = self.plan.dense, self.program.slots
        for layer, (weights, biases) in zip(dense, views[0], strict=True):
            layer.weights, layer.biases = weights, biases
        self.bound = tuple((layer, layer.weights, layer.biases) for layer in dense)
        slots = {
            index: {
                f"{prefix}_{name}": pairs[index][position]
                for name, pairs in zip(names, views[1:], strict=True)
                for position, prefix in enumerate(PARAMETERS)
            }
            for index in range(len(dense))
        }
        optimizer = self.optimizer
        optimizer.load_state_dict({**optimizer.state_dict(dense), "slots": slots}, dense, copy=False)
        self.state_version = optimizer.state_version

    def close(self) -> None:
        """Give the layers and the optimizer standalone copies of whatever views of the buffers they still hold
        (nothing else changes: what replaced a view stays)."""
        standalone = self.kernel.standalone
        for layer, weights, biases in self.bound:
            if layer.weights is weights:
                layer.weights = standalone(weights)
            if layer.biases is biases:
                layer.biases = standalone(biases)
        optimizer, dense = self.optimizer, self.plan.dense
        if self.bound and optimizer.state_version == self.state_version:
            state = optimizer.state_dict(dense)
            slots = {
                index: {name: standalone(array) for name, array in arrays.items()}
                for index, arrays in state["slots"].items()
            }
            optimizer.load_state_dict({**state, "slots": slots}, dense, copy=False)
        self.bound = ()
