"""Training many models of one architecture as one stack: `train_many`, and `plan_stack` and `explain_stack`, which
check such a stack and say whether it runs as one compiled call per batch.

`Model.train` lives here too, as machinery: where a step is planned (`plan`), where it runs (`steps`) and the loop
around it (`loop`), and the data it takes (`data`); a stack is planned in `stack_plan`, stepped in `stack_step` and
looped over in `stack_loop`.
"""

from __future__ import annotations

from nnx.backends._moved import moved_names
from nnx.backends.specs import AccuracySpec, ActivationSpec, DenseSpec, DropoutSpec, LossSpec, OptimizerSpec
from nnx.training.stack_loop import train_many
from nnx.training.stack_plan import StackPlan, plan_stack
from nnx.training.stack_step import explain_stack

__all__ = [
    "AccuracySpec",
    "ActivationSpec",
    "DenseSpec",
    "DropoutSpec",
    "LossSpec",
    "OptimizerSpec",
    "StackPlan",
    "explain_stack",
    "plan_stack",
    "train_many",
]

# Names that left the public API in 0.2, kept for one release: name -> the module that holds it now.
_MOVED = {
    "CHECK_EVERY": "nnx.training.loop",
    "GenericStep": "nnx.training.steps",
    "PlannedStep": "nnx.training.steps",
    "StepPlan": "nnx.training.plan",
    "explain_step": "nnx.training.loop",
    "plan_step": "nnx.training.plan",
    "train": "nnx.training.loop",
    "training_step": "nnx.training.loop",
}


__getattr__ = moved_names(__name__, _MOVED)
