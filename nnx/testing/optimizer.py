"""The checks of an optimizer: one step descends a quadratic, its state is the slots it names in `STATE_NAMES` and
survives a save, its dtype is kept, and every backend takes the same step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from nnx.backends import Backend
from nnx.io import model_bytes, model_from_bytes
from nnx.layers import Dense
from nnx.optimizers import Optimizer
from nnx.testing import config, planned
from nnx.testing.models import data, with_head
from nnx.testing.numeric import BACKEND_FIX, DTYPE_FIX, compare, comparison_backends, dtype_of, host, rng
from nnx.testing.report import Check, Unmet
from nnx.testing.subject import Factory, Subject, bound, subject

SHAPE = (3, 2)  # the quadratic's weights; its biases are (1, 2)
STEP_FIX = "return the updated parameter array from update_array(), shaped and typed like `values`, a step downhill"
STATE_FIX = (
    "name every array kept per parameter in STATE_NAMES and store it in `state` as '<kind>_<name>' (kind: 'weight' "
    "or 'bias'), shaped and typed like the parameter"
)


def centers() -> dict[str, np.ndarray]:
    """The quadratic's minimum, 2 to 4 away from 0 in every coordinate."""
    generator = rng(30)
    shapes = {"weights": SHAPE, "biases": (1, SHAPE[1])}
    return {
        name: generator.choice([-1.0, 1.0], size=shape) * generator.uniform(2.0, 4.0, size=shape)
        for name, shape in shapes.items()
    }


def quadratic_layer(backend: Backend, dtype: str) -> Dense:
    """A Dense layer whose parameters start at 0."""
    layer = Dense(*SHAPE, xp=backend, dtype=dtype, rng=rng(31))
    layer.weights = backend.zeros(SHAPE, layer.dtype)
    layer.biases = backend.zeros((1, SHAPE[1]), layer.dtype)
    return layer


def quadratic(layer: Dense) -> float:
    """0.5 * |parameters - centers|^2, on the host."""
    return sum(
        0.5 * float(np.sum((host(layer.backend, getattr(layer, name)) - center) ** 2))
        for name, center in centers().items()
    )


def one_step(optimizer: Any, layer: Dense) -> None:
    """Set the quadratic's gradients (parameters - centers) and take one optimizer step."""
    backend = layer.backend
    for name, center in centers().items():
        values = getattr(layer, name)
        setattr(layer, f"d{name}", values - backend.asarray(center, dtype=dtype_of(values)))
    optimizer.pre_update_params()
    optimizer.update_params(layer)
    optimizer.post_update_params()


def checked_parameters(layer: Dense, dtype: str) -> None:
    """Unmet unless the layer's parameters are finite arrays of its backend, shaped and typed as before."""
    for name, shape in (("weights", SHAPE), ("biases", (1, SHAPE[1]))):
        value = getattr(layer, name)
        if not layer.backend.owns(value) or tuple(value.shape) != shape:
            got = f"shape {tuple(value.shape)}" if hasattr(value, "shape") else f"{type(value).__name__} {value!r}"
            raise Unmet(f"after one step the {name} are {got}, not a {shape} array of the layer's backend", STEP_FIX)
        if dtype_of(value) != dtype:
            raise Unmet(f"one step turns {dtype} {name} into {dtype_of(value)}", DTYPE_FIX)
        if not np.isfinite(host(layer.backend, value)).all():
            raise Unmet(f"one step from finite {name} and gradients gives NaN or infinity", STEP_FIX)


def step(subject: Subject) -> None:
    """One step on 0.5 * |p - c|^2 from p = 0 gives finite parameters closer to the minimum, and counts itself."""
    optimizer = subject.build()
    layer = quadratic_layer(optimizer.backend, "float32")
    before = quadratic(layer)
    one_step(optimizer, layer)
    checked_parameters(layer, "float32")
    after = quadratic(layer)
    if not after < before:
        raise Unmet(
            f"one step on the quadratic 0.5 * |p - c|^2 from p = 0 (c 2 to 4 away) takes it from {before:.6g} to "
            f"{after:.6g}, not down",
            STEP_FIX,
        )
    if optimizer.iterations != 1:
        raise Unmet(
            f"after one step iterations is {optimizer.iterations}, not 1",
            "call super().__init__() and count steps in post_update_params()",
        )


def state(subject: Subject) -> None:
    """After two steps the state holds exactly the slots of STATE_NAMES, like the parameters, and a model trained with
    the optimizer saves and loads with the same state."""
    optimizer = subject.build()
    layer = quadratic_layer(optimizer.backend, "float32")
    one_step(optimizer, layer)
    one_step(optimizer, layer)
    slots = optimizer.state.get(layer, {})
    expected = sorted(optimizer.slot_names())
    if sorted(slots) != expected:
        raise Unmet(
            f"its state for a layer holds {sorted(slots)}, but STATE_NAMES = {tuple(optimizer.STATE_NAMES)!r} names "
            f"{expected}: a file saved with this state does not load",
            STATE_FIX,
        )
    for name, value in slots.items():
        like = layer.weights if name.startswith("weight_") else layer.biases
        if (
            not layer.backend.owns(value)
            or tuple(value.shape) != tuple(like.shape)
            or dtype_of(value) != dtype_of(like)
        ):
            raise Unmet(
                f"its slot {name} is {describe_array(value)}, not like the parameter {describe_array(like)}", STATE_FIX
            )
    saved_state(subject)


def describe_array(value: Any) -> str:
    return f"{dtype_of(value)} {tuple(value.shape)}" if hasattr(value, "shape") else type(value).__name__


def saved_state(subject: Subject) -> None:
    """A model trained two epochs with the optimizer comes back from its bytes with the same optimizer state."""
    backend = subject.build().backend
    model = with_head(backend, "softmax", "float32", optimizer=subject.build())
    X, y = data(backend, "softmax", "float32")
    model.train(X, y, epochs=2, print_every=None)
    try:
        twin = model_from_bytes(model_bytes(model), xp=backend)
    except Exception as error:
        raise Unmet(f"a model trained with it saves, but does not load: {error}", STATE_FIX) from None
    ours, theirs = cast(Optimizer, model.optimizer).state_dict(), cast(Optimizer, twin.optimizer).state_dict()
    if (ours["iterations"], ours["current_learning_rate"]) != (theirs["iterations"], theirs["current_learning_rate"]):
        raise Unmet(
            f"a saved and loaded model's optimizer is at {theirs['iterations']} steps, not {ours['iterations']}",
            STATE_FIX,
        )
    for index, slots in ours["slots"].items():
        for name, value in slots.items():
            other = theirs["slots"].get(index, {}).get(name)
            if other is None or not np.array_equal(host(backend, value), host(backend, other)):
                raise Unmet(
                    f"a saved and loaded model's optimizer lost or changed its slot {name} of layer {index}", STATE_FIX
                )


def dtypes(subject: Subject) -> None:
    """A step keeps float32 parameters and slots float32, and float64 ones float64."""
    backend = subject.build().backend
    for name in ["float32", "float64"] if backend.has_dtype("float64") else ["float32"]:
        optimizer = subject.build()
        layer = quadratic_layer(backend, name)
        one_step(optimizer, layer)
        checked_parameters(layer, name)
        wrong = {
            slot: dtype_of(value) for slot, value in optimizer.state.get(layer, {}).items() if dtype_of(value) != name
        }
        if wrong:
            raise Unmet(f"a step on {name} parameters leaves the slots {wrong}", DTYPE_FIX)


def stepped(optimizer: Any) -> dict[str, np.ndarray]:
    """Host copies of the parameters and slots after two steps on the quadratic (float32)."""
    layer = quadratic_layer(optimizer.backend, "float32")
    one_step(optimizer, layer)
    one_step(optimizer, layer)
    backend = layer.backend
    found = {name: host(backend, getattr(layer, name)) for name in ("weights", "biases")}
    found.update({name: host(backend, value) for name, value in optimizer.state.get(layer, {}).items()})
    return found


def same_numbers(subject: Subject) -> None:
    """The same two steps, parameters and slots, on every available backend as on NumPy."""
    expected = stepped(subject.build())
    for backend in comparison_backends(subject.backends):
        compare(expected, stepped(subject.build(backend)), backend.name)


def optimizer_checks(factory: Factory, *, backends: Sequence[str] | None = None) -> list[Check]:
    """The checks of an optimizer, one by one: each is a `Check` to call (see `check_optimizer`).

    Args:
        factory: Builds the optimizer on a backend, called as ``factory(xp=backend)``: e.g.
            ``lambda xp: SignSGD(learning_rate=0.01, xp=xp)``.
        backends: The backends to compare with NumPy; None: every available one (`nnx.backends.available()`).

    Returns:
        The checks step, state, dtype, backends, config, numpy_scalars, copy, save_load and kernel_spec.

    Raises:
        TypeError: `factory` is not callable, is a component rather than a factory, or builds no optimizer.
    """
    checked = subject(factory, "optimizer", "nnx.testing.optimizer_checks", backends=backends)
    checks = [
        ("step", step, STEP_FIX),
        ("state", state, STATE_FIX),
        ("dtype", dtypes, DTYPE_FIX),
        ("backends", same_numbers, BACKEND_FIX),
        *config.checks(),
        ("kernel_spec", planned.optimizer_kernel, planned.KERNEL_FIX),
    ]
    return [Check(name, checked.label, bound(run, checked), fix) for name, run, fix in checks]
