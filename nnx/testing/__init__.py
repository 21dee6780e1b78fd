"""A kit that checks your own layer, loss, optimizer or backend the way nnx checks its own.

`check_layer`, `check_loss` and `check_optimizer` take a factory, called as ``factory(xp=backend)``, so that the kit
can build the component on every backend: ``nnx.testing.check_layer(lambda xp: LeakyReLU(0.3, xp=xp))``.
`check_backend` takes a backend. Each runs every check and raises one `CheckFailed` that names each failed check,
the component, the problem and the fix. `layer_checks` (and its siblings) give the checks one by one, and
`parametrize_with_checks` makes one pytest test per check.

A component's checks: gradients against central finite differences in float64 (inputs and parameters), the same
numbers on every available backend as on NumPy, shapes and the width the next layer sees, config round trips
(`from_config`, `copy.deepcopy`, pickle, and a file loaded by a fresh process), NumPy scalars in the config, the dtype
kept, errors on bad input, and, for a component with a `kernel_spec()`, the compiled step against the generic one.

The kit is an edge, like data loading and plots: its references (finite differences, the numbers to compare) are
computed with NumPy on the host from explicit `to_numpy` copies, never inside a training step.
"""

from __future__ import annotations

from collections.abc import Sequence

from nnx.backends import Backend
from nnx.testing.backend import XP_FUNCTIONS, backend_checks
from nnx.testing.layer import layer_checks
from nnx.testing.loss import loss_checks
from nnx.testing.optimizer import optimizer_checks
from nnx.testing.parametrize import parametrize_with_checks
from nnx.testing.report import Check, CheckFailed, CheckSkipped, Failure, run_checks
from nnx.testing.subject import Factory

__all__ = [
    "XP_FUNCTIONS",
    "Check",
    "CheckFailed",
    "CheckSkipped",
    "Failure",
    "backend_checks",
    "check_backend",
    "check_layer",
    "check_loss",
    "check_optimizer",
    "layer_checks",
    "loss_checks",
    "optimizer_checks",
    "parametrize_with_checks",
]


def check_layer(
    factory: Factory, *, input_width: int | None = None, backends: Sequence[str] | None = None
) -> dict[str, str]:
    """Run every check of a layer or activation: shapes, gradients, dtype, bad_input, backends, config,
    numpy_scalars, copy, save_load and kernel_spec.

    Args:
        factory: Builds the layer on a backend, called as ``factory(xp=backend)``: e.g.
            ``lambda xp: LeakyReLU(0.3, xp=xp)``, or the class itself when it needs no other argument.
        input_width: The number of input features to feed it; None: its `n_inputs`, else 4.
        backends: The backends to compare with NumPy; None: every available one (`nnx.backends.available()`).

    Returns:
        {check name: "passed" or "skipped: <reason>"}.

    Raises:
        CheckFailed: one or more checks failed; its message lists each with the problem and the fix.
        TypeError: `factory` is not callable, is a component rather than a factory, or builds a loss or optimizer.
    """
    return run_checks(layer_checks(factory, input_width=input_width, backends=backends))


def check_loss(factory: Factory, *, backends: Sequence[str] | None = None) -> dict[str, str]:
    """Run every check of a loss: gradients, reduction, targets, dtype, backends, config, numpy_scalars, copy,
    save_load and kernel_spec.

    Args:
        factory: Builds the loss on a backend, called as ``factory(xp=backend)``: e.g. the class itself.
        backends: The backends to compare with NumPy; None: every available one.

    Returns:
        {check name: "passed" or "skipped: <reason>"}.

    Raises:
        CheckFailed: one or more checks failed; its message lists each with the problem and the fix.
        TypeError: `factory` is not callable, is a component rather than a factory, or builds no loss.
    """
    return run_checks(loss_checks(factory, backends=backends))


def check_optimizer(factory: Factory, *, backends: Sequence[str] | None = None) -> dict[str, str]:
    """Run every check of an optimizer: step, state, dtype, backends, config, numpy_scalars, copy, save_load and
    kernel_spec.

    Args:
        factory: Builds the optimizer on a backend, called as ``factory(xp=backend)``: e.g.
            ``lambda xp: SignSGD(learning_rate=0.01, xp=xp)``.
        backends: The backends to compare with NumPy; None: every available one.

    Returns:
        {check name: "passed" or "skipped: <reason>"}.

    Raises:
        CheckFailed: one or more checks failed; its message lists each with the problem and the fix.
        TypeError: `factory` is not callable, is a component rather than a factory, or builds no optimizer.
    """
    return run_checks(optimizer_checks(factory, backends=backends))


def check_backend(backend: str | Backend) -> dict[str, str]:
    """Run every check of a backend plug-in: namespace, transfers, dtypes, rng, errors and ops (each kernel op against
    NumPy's generic one).

    Args:
        backend: A registered name ('numpy', 'mlx', ...) or a `nnx.backends.Backend`.

    Returns:
        {check name: "passed" or "skipped: <reason>"}.

    Raises:
        CheckFailed: one or more checks failed; its message lists each with the problem and the fix.
        BackendUnavailableError: the backend cannot run here; the message says why.
    """
    return run_checks(backend_checks(backend))
