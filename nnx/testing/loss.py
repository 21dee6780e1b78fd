"""The checks of a loss: its gradient against finite differences of the mean loss, one loss per sample, the targets it
declares (`TARGETS`), its dtype, and the same numbers on every backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nnx.losses import REDUCTIONS, TARGET_KINDS
from nnx.testing import config, planned
from nnx.testing.numeric import (
    BACKEND_FIX,
    DTYPE_FIX,
    SAMPLES,
    compare,
    comparison_backends,
    difference,
    dtype_of,
    gradient_problem,
    host,
    numeric_gradient,
    rng,
)
from nnx.testing.report import Check, Unmet
from nnx.testing.subject import Factory, Subject, bound, subject

OUTPUTS = 3  # the width of the predictions the checks feed
GRADIENT_FIX = "make backward() set dinputs to the derivative of the batch's mean loss (divide by the samples)"
SAMPLE_FIX = (
    "return one loss per sample from forward(), shaped (samples,), and let calculate() take the mean; or declare "
    "REDUCTION = 'mean' and return the batch's mean"
)
TARGETS_FIX = "declare what the targets are with TARGETS ('values', 'probabilities' or 'classes') and accept them"


def declared(loss: Any) -> str:
    """What the loss says its targets are: 'values' (the default), 'probabilities' or 'classes'."""
    return getattr(loss, "TARGETS", "values")


def batch(loss: Any, dtype: str, offset: int = 0, one_hot: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Host (predictions, targets) of the kind the loss declares: probabilities and labels, 0/1 targets or values
    (away from the predictions, where an absolute error has a kink)."""
    generator = rng(20 + offset)
    shape = (SAMPLES, OUTPUTS)
    kind = declared(loss)
    if kind == "classes":
        predictions = generator.uniform(0.2, 1.0, size=shape)
        predictions /= predictions.sum(axis=1, keepdims=True)
        labels = generator.integers(0, OUTPUTS, size=SAMPLES)
        return predictions.astype(dtype), np.eye(OUTPUTS, dtype=dtype)[labels] if one_hot else labels
    if kind == "probabilities":
        targets = generator.integers(0, 2, size=shape)
        return generator.uniform(0.1, 0.9, size=shape).astype(dtype), targets.astype(dtype)
    predictions = generator.standard_normal(shape)
    offsets = generator.choice([-1.0, 1.0], size=shape) * generator.uniform(0.5, 1.5, size=shape)
    return predictions.astype(dtype), (predictions + offsets).astype(dtype)


def dinputs_of(loss: Any, predictions: Any, targets: Any) -> Any:
    """`loss.backward(predictions, targets)`'s dinputs, checked to be set."""
    loss.backward(predictions, targets)
    dinputs = getattr(loss, "dinputs", None)
    if dinputs is None:
        raise Unmet("backward() did not set self.dinputs", GRADIENT_FIX)
    return dinputs


def mean_loss(loss: Any, predictions: Any, targets: Any) -> float:
    """calculate()'s mean loss as a host number."""
    value = host(loss.backend, loss.calculate(predictions, targets))
    if value.shape != ():
        raise Unmet(f"calculate() returned shape {value.shape}, not a single number", SAMPLE_FIX)
    return float(value)


def gradients(subject: Subject) -> None:
    """dinputs against central finite differences of calculate() (the batch's mean loss), in float64."""
    loss = subject.build()
    backend = loss.backend
    predictions, targets = batch(loss, "float64")
    device_targets = backend.asarray(targets)
    analytic = host(backend, dinputs_of(loss, backend.asarray(predictions), device_targets))
    numeric = numeric_gradient(lambda p: mean_loss(loss, backend.asarray(p), device_targets), predictions)
    loss.new_pass()
    problem = gradient_problem("dinputs", analytic, numeric)
    if problem:
        raise Unmet(problem, GRADIENT_FIX)


def reduction(subject: Subject) -> None:
    """forward() returns what REDUCTION declares: one loss per sample, shaped (samples,) ("none", the default), or
    the batch's mean, a single number ("mean")."""
    loss = subject.build()
    backend = loss.backend
    declared_reduction = getattr(loss, "REDUCTION", "none")
    if declared_reduction not in REDUCTIONS:
        raise Unmet(f"REDUCTION is {declared_reduction!r}, not one of {', '.join(REDUCTIONS)}", SAMPLE_FIX)
    predictions, labels = batch(loss, "float32")
    values = loss.forward(backend.asarray(predictions), backend.asarray(labels))
    shape = tuple(getattr(values, "shape", (None,)))
    expected = () if declared_reduction == "mean" else (SAMPLES,)
    if shape == expected and (shape == () or backend.owns(values)):
        return
    if shape == ():
        raise Unmet(
            f"forward() of {SAMPLES} samples returned a single number (a batch mean), but REDUCTION = 'none' "
            f"promises one loss per sample",
            SAMPLE_FIX,
        )
    got = f"shape {shape}" if hasattr(values, "shape") else type(values).__name__
    raise Unmet(
        f"forward() of {SAMPLES} samples returned {got}, but REDUCTION = {declared_reduction!r} promises an array of "
        f"backend {backend.name!r} shaped {expected}",
        SAMPLE_FIX,
    )


def targets(subject: Subject) -> None:
    """TARGETS is a known kind, and a loss of class labels takes labels and one-hot rows alike."""
    loss = subject.build()
    kind = declared(loss)
    if kind not in TARGET_KINDS:
        raise Unmet(f"TARGETS is {kind!r}, not one of {', '.join(TARGET_KINDS)}", TARGETS_FIX)
    backend = loss.backend
    predictions, labels = batch(loss, "float32")
    value = mean_loss(loss, backend.asarray(predictions), backend.asarray(labels))
    if not np.isfinite(value):
        raise Unmet(f"it declares TARGETS = {kind!r}, but such targets give the loss {value}", TARGETS_FIX)
    if kind != "classes":
        return
    one_hot = batch(loss, "float32", one_hot=True)[1]
    by_labels, by_rows = results(loss, predictions, labels), results(loss, predictions, one_hot)
    for name, values in by_labels.items():
        problem = difference(f"its {name} for one-hot rows", by_rows[name], values, 1e-6, 1e-7, "those for labels")
        if problem:
            raise Unmet(
                f"it declares TARGETS = 'classes', but {problem}", "accept integer labels and one-hot rows alike"
            )


def dtypes(subject: Subject) -> None:
    """float32 predictions give float32 losses and dinputs (float64: float64)."""
    loss = subject.build()
    backend = loss.backend
    for name in ["float32", "float64"] if backend.has_dtype("float64") else ["float32"]:
        predictions, labels = batch(loss, name)
        P, Y = backend.asarray(predictions), backend.asarray(labels)
        got = {
            "forward()": dtype_of(loss.forward(P, Y)),
            "calculate()": dtype_of(loss.calculate(P, Y)),
            "dinputs": dtype_of(dinputs_of(loss, P, Y)),
        }
        wrong = {key: value for key, value in got.items() if value != name}
        if wrong:
            shown = ", ".join(f"{key} {value}" for key, value in wrong.items())
            raise Unmet(f"with {name} predictions it gives {shown}", DTYPE_FIX)


def results(loss: Any, predictions: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Host copies of the per-sample losses and dinputs of a batch."""
    backend = loss.backend
    P, Y = backend.asarray(predictions), backend.asarray(labels)
    return {"losses": host(backend, loss.forward(P, Y)), "dinputs": host(backend, dinputs_of(loss, P, Y))}


def same_numbers(subject: Subject) -> None:
    """The same per-sample losses and dinputs on every available backend as on NumPy (float32)."""
    reference = subject.build()
    predictions, labels = batch(reference, "float32")
    expected = results(reference, predictions, labels)
    for backend in comparison_backends(subject.backends):
        compare(expected, results(subject.build(backend), predictions, labels), backend.name)


def loss_checks(factory: Factory, *, backends: Sequence[str] | None = None) -> list[Check]:
    """The checks of a loss, one by one: each is a `Check` to call (see `check_loss`).

    Args:
        factory: Builds the loss on a backend, called as ``factory(xp=backend)``: e.g. ``lambda xp: MyLoss(xp=xp)``,
            or the class itself.
        backends: The backends to compare with NumPy; None: every available one (`nnx.backends.available()`).

    Returns:
        The checks gradients, reduction, targets, dtype, backends, config, numpy_scalars, copy, save_load and
        kernel_spec.

    Raises:
        TypeError: `factory` is not callable, is a component rather than a factory, or builds no loss.
    """
    checked = subject(factory, "loss", "nnx.testing.loss_checks", backends=backends)
    checks = [
        ("gradients", gradients, GRADIENT_FIX),
        ("reduction", reduction, SAMPLE_FIX),
        ("targets", targets, TARGETS_FIX),
        ("dtype", dtypes, DTYPE_FIX),
        ("backends", same_numbers, BACKEND_FIX),
        *config.checks(),
        ("kernel_spec", planned.loss_kernel, planned.KERNEL_FIX),
    ]
    return [Check(name, checked.label, bound(run, checked), fix) for name, run, fix in checks]
