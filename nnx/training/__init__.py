"""Training: where a step is planned (`plan`), where it runs (`steps`) and the loop around it (`loop`); many models
of one architecture as one stack (`stack`, `stacked`, `many`: `train_many`)."""

from nnx.training.loop import CHECK_EVERY, explain_step, train, training_step
from nnx.training.many import train_many
from nnx.training.plan import StepPlan, plan_step
from nnx.training.steps import GenericStep, PlannedStep

__all__ = [
    "CHECK_EVERY",
    "GenericStep",
    "PlannedStep",
    "StepPlan",
    "explain_step",
    "plan_step",
    "train",
    "train_many",
    "training_step",
]
