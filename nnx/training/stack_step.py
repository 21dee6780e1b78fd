"""Where a stack of models trains on any backend: the generic stacked step, written once against `xp`.

Every model's arrays are stacked along a leading axis (weights (M, n_inputs, n_outputs), biases (M, 1, n_outputs),
activations (M, n_samples, width)), and the backend's generic kernels (the reference every fast path is tested
against) run each operation once for all M models: `xp.matmul` on 3-D arrays, one strided-batched GEMM on a GPU.
A compiled stack kernel (`nnx.backends.numba_stack`) runs the same programs and is tested against this.
"""

from __future__ import annotations

from nnx.backends.step_program import SOFTMAX_CROSSENTROPY
from nnx.backends.tables import element_wise_op, head, update_rule
from nnx.optimizers import PARAMETERS
from nnx.training.stack_plan import StackPlan


class Schedule:
    """Each model's learning rate and step count, on the device: lr / (1 + decay * iterations), as the book's
    optimizers compute it before every step (in float64 where the backend has it)."""

    def __init__(self, backend, optimizers: list):
        self.backend, self.xp, wide = backend, backend.xp, backend.wide_float
        self.base = backend.asarray([o.learning_rate for o in optimizers], dtype=wide)
        self.decay = backend.asarray([o.decay for o in optimizers], dtype=wide)
        self.current = backend.asarray([o.current_learning_rate for o in optimizers], dtype=wide)
        self.iterations = backend.asarray([o.iterations for o in optimizers], dtype=wide)
        self.decays = any(o.decay for o in optimizers)

    def next_rates(self):
        """The learning rate of every model for the coming step (its `pre_update_params`)."""
        if self.decays:
            xp = self.xp
            decayed = self.base * (1.0 / (1.0 + self.decay * self.iterations))
            self.current = xp.where(self.decay != 0, decayed, self.current)
        return self.current

    def advance(self, steps: int = 1) -> None:
        self.iterations = self.iterations + steps

    def rates_ahead(self, steps: int) -> tuple:
        """Each model's learning rates and step numbers (from 1) for the coming `steps` steps, as (steps, M) arrays
        (what `next_rates` and `advance` give step after step; `current` becomes the last step's rates)."""
        xp = self.xp
        iterations = self.iterations + xp.reshape(xp.arange(steps, dtype=self.iterations.dtype), (-1, 1))
        decayed = self.base * (1.0 / (1.0 + self.decay * iterations))
        rates = xp.where(self.decay != 0, decayed, self.current)  # (steps, M): a model without decay keeps its rate
        self.current = rates[-1]
        return rates, iterations + 1

    def take(self, positions) -> None:
        for name in ("base", "decay", "current", "iterations"):
            setattr(self, name, _take(self.backend, getattr(self, name), positions))


class GenericStack:
    """The models of a `StackPlan` as stacked arrays, trained one batch at a time by the backend's generic kernels.

    `step` returns each model's (sum of sample losses, correct comparisons, regularization loss) as (M,) device
    arrays; `take` keeps only some models (the others stop: a diverged model, frozen); `state` and `export` read
    a model's arrays back.
    """

    def __init__(self, plan: StackPlan):
        backend = plan.backend
        self.backend, self.xp = backend, backend.xp
        self.ops = backend.reference()
        self.program = plan.program
        self.dtype = plan.plans[0].dense[0].weights.dtype
        self.parameters, self.slots = _stacked_state(self.xp, plan)
        self.numbers = _per_model_numbers(backend, plan, self.dtype)
        self.schedule = Schedule(backend, [model.optimizer for model in plan.models])

    @property
    def arrays(self) -> list:
        """Every stacked array of the state, parameters first."""
        return [array for pair in self.parameters for array in pair] + [
            array for pairs in self.slots.values() for pair in pairs for array in pair
        ]

    def step(self, X, y, masks):
        """Train every model on one batch (`masks`: per dropout, (M, n_samples, width) or None)."""
        xp = self.xp
        outputs, inputs, stages = self.forward(X, masks)
        losses, hits, delta = self.head(outputs, y, backward=True)
        reg_loss = self.penalties()
        rates = self.schedule.next_rates()
        self.backward_and_update(delta, inputs, stages, xp.astype(rates, self.dtype))
        self.schedule.advance()
        return xp.sum(losses, axis=-1), count_hits(xp, hits), reg_loss

    def forward(self, X, masks=None):
        """(outputs (M, n, width), each Dense layer's inputs, each stage's element-wise record) of the stack."""
        ops = self.ops
        values, saved = _element_wise(ops, self.program.chains[0], X, masks)
        stages, inputs = [saved], []
        for (weights, biases), chain in zip(self.parameters, self.program.chains[1:], strict=True):
            inputs.append(values)
            values, saved = _element_wise(ops, chain, ops.dense_forward(values, weights, biases), masks)
            stages.append(saved)
        return values, inputs, stages

    def head(self, outputs, y, *, backward: bool = False):
        """Per-sample losses (M, n), the accuracy's comparisons and, if asked, the loss gradient at `outputs`."""
        program = self.program
        generic = head(program.head).generic
        return generic(self.ops, outputs, y, program.clip_epsilon, self.numbers["precision"], backward)

    def penalties(self):
        """Each model's L1/L2 penalty of its current parameters, (M,)."""
        penalty = self.ops.regularization_penalty
        total = self.backend.zeros((self.parameters[0][0].shape[0],), self.dtype)
        for (weights, biases), strengths in zip(self.parameters, self.numbers["penalties"], strict=True):
            weight_l1, weight_l2, bias_l1, bias_l2 = strengths
            total = total + penalty(weights, weight_l1, weight_l2) + penalty(biases, bias_l1, bias_l2)
        return total

    def backward_and_update(self, delta, inputs, stages, rates) -> None:
        ops, numbers, xp = self.ops, self.numbers, self.xp
        learning_rate = xp.reshape(rates, (-1, 1, 1))
        rule = update_rule(self.program.update_rule)
        step = None
        if rule.counts_steps:
            step = xp.reshape(xp.astype(self.schedule.iterations + 1, self.dtype), (-1, 1, 1))
        for layer in range(len(self.parameters) - 1, -1, -1):
            delta = _element_wise_backward(ops, stages[layer + 1], delta)
            weights, biases = self.parameters[layer]
            dweights, dbiases, dinputs = ops.dense_backward(inputs[layer], weights, delta)
            weight_l1, weight_l2, bias_l1, bias_l2 = numbers["gradients"][layer]
            gradients = (
                ops.regularization_gradient(dweights, weights, weight_l1, weight_l2),
                ops.regularization_gradient(dbiases, biases, bias_l1, bias_l2),
            )
            for position, gradient in enumerate(gradients):
                self._update(rule, layer, position, gradient, learning_rate, step)
            delta = dinputs

    def _update(self, rule, layer: int, position: int, gradient, learning_rate, step) -> None:
        """One step of the update rule (an entry of the table) on parameter `position` (0 weights, 1 biases) of
        Dense `layer`, for every model."""
        slot = {name: pairs[layer][position] for name, pairs in self.slots.items()}
        values = rule.generic(
            self.ops, self.parameters[layer][position], gradient, slot, learning_rate, self.numbers, step
        )
        self.parameters[layer][position] = values
        for name, array in slot.items():
            self.slots[name][layer][position] = array

    def finite_probe(self, losses):
        """`losses` (M,) plus each model's sum(p * 0) over its parameters: NaN or inf where a model is not finite."""
        xp = self.xp
        probe = losses
        for weights, biases in self.parameters:
            probe = probe + xp.sum(weights * 0, axis=(-2, -1)) + xp.sum(biases * 0, axis=(-2, -1))
        return probe

    def state(self) -> dict:
        """The current arrays and schedule (the generic step replaces arrays, never writes into them: no copy)."""
        return {"arrays": self.arrays, "rates": self.schedule.current, "iterations": self.schedule.iterations}

    def take(self, positions) -> None:
        """Keep only the models at `positions` (in this order)."""
        backend = self.backend
        self.parameters = [[_take(backend, array, positions) for array in pair] for pair in self.parameters]
        self.slots = {
            name: [[_take(backend, array, positions) for array in pair] for pair in pairs]
            for name, pairs in self.slots.items()
        }
        self.numbers = _taken_numbers(backend, self.numbers, positions)
        self.schedule.take(positions)


def write_back(plan: StackPlan, members: dict, state: dict, epochs_done: int) -> None:
    """Give each model `members[position]` its arrays at stack `position` of `state`, its optimizer progress and
    `epochs_done` more epochs trained (one host copy of the step counts and learning rates for all of them).

    Args:
        plan: the stack's plan.
        members: {stack position: position of the model in `plan`}.
        state: a stack's `state()`.
        epochs_done: the epochs the models trained since they were last written back.
    """
    schedule = host_rows(plan.backend, [state["iterations"], state["rates"]])
    for position, member in members.items():
        model, dense = plan.models[member], plan.plans[member].dense
        parameters, slots = export(model.xp, state, position, len(dense), plan.program.slots)
        for layer, (weights, biases) in zip(dense, parameters, strict=True):
            layer.weights, layer.biases = weights, biases
        own = model.optimizer.STATE_NAMES
        kept = {
            index: {f"{prefix}_{name}": slots[name][index][k] for name in own for k, prefix in enumerate(PARAMETERS)}
            for index in range(len(dense))
        }
        iterations, rate = schedule[position]
        progress = {"iterations": int(iterations), "current_learning_rate": rate, "slots": kept}
        model.optimizer.load_state_dict(progress, dense, copy=False)
        model.epochs_trained += epochs_done


def host_rows(backend, values: list) -> list[list[float]]:
    """The per-model values (each (M,) on the device) as host floats, one row per model: one transfer.

    Args:
        backend: the models' backend.
        values: (M,) arrays on the device.
    """
    return host_block(backend, values).tolist()


def host_block(backend, values: list):
    """The per-model values (each (M,) on the device, or each (S, M)) as one (M, len(values)) host array (or
    (S, M, len(values))): one transfer.

    Args:
        backend: the models' backend.
        values: arrays of one shape on the device.
    """
    xp = backend.xp
    wide = backend.wide_float
    return backend.to_numpy(xp.stack([xp.astype(value, wide) for value in values], axis=-1))


def comparisons_per_sample(stack: GenericStack) -> int:
    """How many comparisons the accuracy makes per sample: one for class labels, one per output otherwise.

    Args:
        stack: the stack.
    """
    return 1 if stack.program.head == SOFTMAX_CROSSENTROPY else stack.program.widths[-1]


def epoch_rows(stack: GenericStack, sums: tuple, rates, n_samples: int, probes=None):
    """The host rows of an epoch, as `StackRecords.add` takes them: each model's accuracy, data loss,
    regularization loss, learning rate and finite probe, from its sums over the epoch (one transfer).

    Args:
        stack: the stack.
        sums: (sum of sample losses, correct comparisons, regularization loss): (M,) arrays, or (S, M) for a span
            of S epochs.
        rates: the learning rates, shaped as the sums.
        n_samples: the rows of an epoch.
        probes: the kernel's finite probes of a span, shaped as the sums; None asks the stack (`finite_probe`).

    Returns:
        An (M, 5) host array, or (S, M, 5).
    """
    loss_sum, correct, reg_loss = sums
    data_loss = loss_sum / n_samples
    accuracy = correct / (n_samples * comparisons_per_sample(stack))
    probe = stack.finite_probe(data_loss + reg_loss) if probes is None else (data_loss + reg_loss) + probes * 0
    return host_block(stack.backend, [accuracy, data_loss, reg_loss, rates, probe])


def export(xp, state: dict, position: int, n_dense: int, slot_names) -> tuple[list, dict]:
    """Model `position`'s arrays in `state`: [(weights, biases)] per Dense and {slot: [(weights, biases)]}, as
    standalone copies."""
    copy = state.get("copy") or (lambda array: xp.asarray(array, copy=True))
    arrays = state.get("arrays") or [
        array for buffer in state["buffers"] for pair in state["views"](buffer) for array in pair
    ]
    arrays = [copy(array[position, ...]) for array in arrays]
    parameters = [tuple(arrays[2 * layer : 2 * layer + 2]) for layer in range(n_dense)]
    slots, start = {}, 2 * n_dense
    for name in slot_names:
        slots[name] = [tuple(arrays[start + 2 * layer : start + 2 * layer + 2]) for layer in range(n_dense)]
        start += 2 * n_dense
    return parameters, slots


def _stacked_state(xp, plan: StackPlan) -> tuple[list, dict]:
    """[[weights (M, ...), biases (M, ...)] per Dense] and {slot: the same} from every model (zeros for a slot a
    model has not made yet)."""
    dense = [plan.dense for plan in plan.plans]
    parameters = [
        [xp.stack([layers[layer].weights for layers in dense]), xp.stack([layers[layer].biases for layers in dense])]
        for layer in range(len(dense[0]))
    ]
    slots = {}
    for name in plan.program.slots:
        pairs = []
        for layer in range(len(dense[0])):
            pair = []
            for prefix, attribute in PARAMETERS.items():
                arrays = [
                    _slot(xp, model.optimizer, layers[layer], f"{prefix}_{name}", getattr(layers[layer], attribute))
                    for model, layers in zip(plan.models, dense, strict=True)
                ]
                pair.append(xp.stack(arrays))
            pairs.append(pair)
        slots[name] = pairs
    return parameters, slots


def _slot(xp, optimizer, layer, key: str, like):
    """The optimizer's `key` array for `layer`, or zeros shaped like `like` before its first update."""
    array = optimizer.state.get(layer, {}).get(key)
    return xp.zeros_like(like) if array is None else array


def _per_model_numbers(backend, plan: StackPlan, dtype) -> dict:
    """Each model's hyperparameters as (M, 1, 1) arrays in the model dtype (per-model L1/L2 strengths as (M,) for
    the penalties; a strength zero for every model as the number 0, so that it costs nothing)."""
    programs = plan.programs

    def column(values, shape):
        values = list(values)
        if not any(values):
            return 0.0
        return backend.xp.reshape(backend.asarray(values, dtype=dtype), shape)

    constants = update_rule(plan.program.update_rule).constants
    numbers = {name: column((p.constant(name) for p in programs), (-1, 1, 1)) for name in constants}
    numbers["precision"] = column((p.precision for p in programs), (-1, 1, 1))
    numbers["gradients"] = [
        [column((p.regularization[layer][k] for p in programs), (-1, 1, 1)) for k in range(4)]
        for layer in range(len(plan.program.dense))
    ]
    numbers["penalties"] = [
        [column((p.regularization[layer][k] for p in programs), (-1,)) for k in range(4)]
        for layer in range(len(plan.program.dense))
    ]
    return numbers


def _taken_numbers(backend, numbers, positions):
    """`numbers` with only the models at `positions`."""
    if isinstance(numbers, dict):
        return {name: _taken_numbers(backend, value, positions) for name, value in numbers.items()}
    if isinstance(numbers, list):
        return [_taken_numbers(backend, value, positions) for value in numbers]
    return numbers if isinstance(numbers, float) else _take(backend, numbers, positions)


def _take(backend, array, positions):
    """The rows of `array` at `positions` (a list of ints), along its leading (model) axis."""
    return backend.xp.take(array, backend.asarray(list(positions), dtype="int64"), axis=0)


def count_hits(xp, hits):
    """Correct comparisons per model, (M,), as float32 sums (as the accuracy adds them up)."""
    hits = xp.astype(hits, xp.float32)
    return xp.sum(xp.reshape(hits, (hits.shape[0], -1)), axis=-1)


def _element_wise(ops, chain, values, masks):
    """`values` after a stage's ReLUs and dropouts, and what their backward needs (no masks: dropout is off)."""
    saved = []
    for op in chain:
        if op < 0:
            values, kept = element_wise_op(op).forward(ops, values)
            saved.append((op, kept))
        elif masks is not None:  # a dropout mask's index
            saved.append((op, masks[op]))
            values = values * masks[op]
    return values, saved


def _element_wise_backward(ops, saved, delta):
    for op, kept in reversed(saved):
        delta = element_wise_op(op).backward(ops, delta, kept) if op < 0 else delta * kept
    return delta


class KernelStack(GenericStack):
    """The stack on the backend's compiled stack kernel: parameters and slots are views of its (M, size) buffers,
    which one kernel call per batch updates in place for every model. Forward passes (validation), penalties and
    checks read the same views with the generic kernels; a batch the kernel cannot take runs the generic step."""

    def __init__(self, plan: StackPlan, kernel):
        super().__init__(plan)
        self._bind(kernel)

    def _bind(self, kernel) -> None:
        """Copy the current arrays into `kernel`'s new buffers and make their views the stack's arrays."""
        self.kernel = kernel
        self.probes = None  # the kernel's finite probes of its last step, while nothing else has run since
        self.buffers = kernel.new_buffers()
        views = [kernel.stacked_views(buffer) for buffer in self.buffers]
        for group, view_group in zip([self.parameters, *self.slots.values()], views, strict=True):
            for pair, view_pair in zip(group, view_group, strict=True):
                for array, view in zip(pair, view_pair, strict=True):
                    if array is not view:
                        kernel.copy_into(view, array)
        self.parameters = views[0]
        self.slots = dict(zip(self.slots, views[1:], strict=True))

    def step(self, X, y, masks):
        targets = self.kernel.batch_targets(X, y)
        if targets is None:
            result = super().step(X, y, masks)
            self._bind(self.kernel)
            return result
        rates = self.schedule.next_rates()
        results = self.kernel.run_stack(X, targets, masks, rates, self.schedule.iterations + 1)
        self.schedule.advance()
        xp = self.xp
        losses, hits, penalties, self.probes = (results[:, column] for column in range(4))
        return xp.astype(losses, self.dtype), xp.astype(hits, xp.float32), xp.astype(penalties, self.dtype)

    def can_run_epochs(self, X, y) -> bool:
        """Whether `run_epochs` can train on (X, y): the kernel trains several steps in one call, and takes them."""
        return hasattr(self.kernel, "run_steps") and self.kernel.batch_targets(X, y) is not None

    def run_epochs(self, X, y, epochs: int) -> tuple:
        """Train every model for `epochs` epochs of one step on the whole set (X, y), without dropout, in one
        kernel call.

        Returns:
            (losses, hits, penalties, probes, rates), each an (epochs, M) array: each epoch's sum of sample losses
            (model dtype), correct comparisons (float32), regularization loss (model dtype), the kernel's finite
            probe and the learning rate. A model whose probe is not finite stops at that epoch; its later rows are
            NaN and its arrays are not usable (`restore` a state).
        """
        xp = self.xp
        rates, steps = self.schedule.rates_ahead(epochs)
        results = self.kernel.run_steps(X, self.kernel.batch_targets(X, y), rates, steps)
        self.schedule.advance(epochs)
        self.probes = results[-1, :, 3]
        losses, hits, penalties, probes = (results[:, :, column] for column in range(4))
        dtype = self.dtype
        return xp.astype(losses, dtype), xp.astype(hits, xp.float32), xp.astype(penalties, dtype), probes, rates

    def restore(self, state: dict) -> None:
        """Go back to `state` (from `state()`, with the same models): the buffers and the schedule."""
        for buffer, saved in zip(self.buffers, state["buffers"], strict=True):
            self.kernel.copy_into(buffer, saved)
        self.schedule.current, self.schedule.iterations = state["rates"], state["iterations"]
        self.probes = None

    def finite_probe(self, losses):
        """`losses` plus the probe the kernel computed in its last step (its loss and sum(p * 0) over the updated
        parameters), or plus each model's sum(p * 0) over its row of the parameter buffer when none is current."""
        if self.probes is None:
            return losses + self.xp.sum(self.buffers[0] * 0, axis=1)
        return losses + self.probes * 0

    def state(self) -> dict:
        """Copies of the buffers (the kernel writes into the buffers themselves), how to view them as the stacked
        arrays, and the schedule."""
        return {
            "buffers": [buffer.copy() for buffer in self.buffers],
            "views": self.kernel.stacked_views,
            "rates": self.schedule.current,
            "iterations": self.schedule.iterations,
            "copy": self.kernel.standalone,
        }

    def take(self, positions) -> None:
        super().take(positions)
        self._bind(self.kernel.part(positions))


def stack_step(plan: StackPlan, X, targets) -> GenericStack:
    """The compiled stack when the backend has a kernel for the plan and it takes (X, targets), else the generic
    stacked step."""
    backend = plan.backend
    if backend.why_no_stack_kernel(plan.program) is None:
        kernel = backend.stack_kernel(plan.programs)
        if kernel.prepare(X, targets) is None:
            return KernelStack(plan, kernel)
    return GenericStack(plan)


def explain_stack(plan: StackPlan) -> str:
    """Which stacked step `nnx.train_many` runs for a stack's models, and why.

    Args:
        plan: the stack's plan, from `plan_stack(models)`.

    Returns:
        One sentence: "compiled stack: ..." when the backend has a kernel for the stack (NumPy with the ``fast``
        extra), else "generic stacked step (...): " and the reason.
    """
    reason = plan.backend.why_no_stack_kernel(plan.program)
    if reason is None:
        return f"compiled stack: backend {plan.backend.name!r} runs every model's step in one kernel call per batch"
    return f"generic stacked step (xp.matmul on stacked arrays, backend {plan.backend.name!r}): {reason}"
