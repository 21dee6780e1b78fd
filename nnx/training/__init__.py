"""Training: where a step is planned (`plan`), where it runs (`steps`) and the loop around it (`loop`); many models
of one architecture as one stack (`stack`, `stacked`, `many`: `train_many`)."""

from nnx.training.loop import CHECK_EVERY, explain_step, train, training_step
from nnx.training.many import train_many
from nnx.training.plan import StepPlan, plan_step
from nnx.training.stack import StackPlan, plan_stack
from nnx.training.stacked import explain_stack
from nnx.training.steps import GenericStep, PlannedStep

__all__ = [
    "CHECK_EVERY",
    "GenericStep",
    "PlannedStep",
    "StackPlan",
    "StepPlan",
    "explain_stack",
    "explain_step",
    "plan_stack",
    "plan_step",
    "train",
    "train_many",
    "training_step",
]
