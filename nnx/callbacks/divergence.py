"""Divergence checks: stop at the first NaN or inf, with the last finite parameters restored."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Any

from nnx import _checks, backends
from nnx._component import defined_by_nnx
from nnx.callbacks.base import Callback, Run, host_float
from nnx.errors import DivergenceError

DIVERGENCE_ACTIONS = ("raise", "stop", "warn")


class DivergenceGuard(Callback):
    """Stops training when the loss or a parameter stops being finite, and restores the last finite state.

    `Model.train` always adds one (its `on_divergence` and `check_every`). It checks every `check_every` steps (one
    reduction, one host copy) and whenever metrics reach the host anyway; after each good check it keeps a
    device-side copy of the parameters and the optimizer state, which a divergence puts back. The run's
    `divergence` then holds the DivergenceError.

    Args:
        check_every: steps between checks, an integer >= 1 (`Model.train`'s default: 100).
        action: "raise" (raise the DivergenceError), "stop" (end training quietly) or "warn" (a RuntimeWarning,
            then stop).

    Raises:
        ValueError: `check_every` < 1, or `action` is none of the three.
    """

    def __init__(self, *, check_every: int, action: str = "raise"):
        self.check_every = _checks.positive_int(check_every, "check_every", "Model.train")
        self.action = _checks.choice(action, "on_divergence", "Model.train", DIVERGENCE_ACTIONS)

    def on_train_begin(self, run: Run) -> None:
        """Watch the metrics' host copies, and check that the parameters are finite before anything trains.

        Args:
            run: the training run.

        Raises:
            ValueError: a parameter is NaN or infinite already.
        """
        run.host_watchers.append(self._watch)
        self.last_loss: float | None = None
        self.snapshot: dict[str, Any] | None = None
        if not self._finite(run, None):
            raise ValueError(
                f"{run.model!r} has NaN or infinite parameters before training; reload them with "
                f"model.load_parameters() or rebuild the model"
            )

    def on_step_end(self, run: Run) -> None:
        """Check every `check_every` steps.

        Args:
            run: the training run.

        Raises:
            DivergenceError: training diverged and `action` is "raise".
        """
        if not run.stop and not run.global_step % self.check_every:
            self._check(run)

    def on_train_end(self, run: Run) -> None:
        """Check once more at the end (unless training stopped).

        Args:
            run: the training run.

        Raises:
            DivergenceError: training diverged and `action` is "raise".
        """
        if not run.stop:
            self._check(run)

    def _check(self, run: Run) -> None:
        loss = _loss_of(run) if run.metrics else None
        if self._finite(run, loss):
            return
        self._diverged(run, "a parameter" if loss is None else "the loss or a parameter")

    def _finite(self, run: Run, loss: Any) -> bool:
        """Whether the loss and every parameter are finite: the step's own probe when it has one (the compiled step
        computes it in the kernel), else one reduction over the parameters (x * 0 keeps NaN/inf); one host copy."""
        model = run.model
        step_probe = run.finite_probe() if run.finite_probe is not None and loss is not None else None
        probe = _finite_probe(loss, model.trainable_layers) if step_probe is None else loss + step_probe * 0
        value = host_float(model.backend, probe)
        if not math.isfinite(value):
            return False
        if loss is not None:
            self.last_loss = value
        self.snapshot = _snapshot(model)
        return True

    def _watch(self, run: Run, values: dict) -> None:
        if not math.isfinite(values["loss"]) or not math.isfinite(values["accuracy"]):
            self._diverged(run, "the loss")

    def _diverged(self, run: Run, what: str) -> None:
        _restore(run.model, self.snapshot)
        where = f"epoch {run.epoch}" + (f", step {run.step}" if run.batch_size is not None else "")
        last = "none was finite" if self.last_loss is None else f"{self.last_loss:.6g}"
        error = DivergenceError(
            f"training diverged at {where}: {what} became NaN or infinite (last finite loss: {last}). The parameters "
            f"are restored to the last finite check; {_what_to_do(run.model)}",
            epoch=run.epoch,
            step=run.step,
            last_finite_loss=self.last_loss,
        )
        run.divergence, run.stop = error, True
        if self.action == "raise":
            raise error
        if self.action == "warn":
            warnings.warn(str(error), RuntimeWarning, stacklevel=2)


def _what_to_do(model: Any) -> str:
    """The fix for a divergence, naming the component it points to: the first layer whose output for the last batch
    holds NaN or inf with the restored parameters, else a loss or optimizer of your own, besides the learning rate.
    Runs the last batch forward once more and copies one number per layer to the host (only after a divergence)."""
    lr = f"lower the learning rate (now {model.optimizer.learning_rate:g})"
    layer = _first_non_finite(model)
    if layer is not None:
        label = getattr(layer, "label", repr(layer))
        if defined_by_nnx(type(layer)):
            return f"with them, {label} already outputs NaN or inf for the last batch; {lr} or add decay"
        return (
            f"with them, {label} is the first layer whose output for the last batch holds NaN or inf (from finite "
            f"inputs): check its forward for values outside its domain (a log, a square root, a division), or {lr}"
        )
    yours = [
        f"{part!r}.{method}"
        for part, method in ((model.loss, "forward"), (model.optimizer, "update_array"))
        if part is not None and not defined_by_nnx(type(part))
    ]
    return f"{lr} or add decay" + "".join(f", or check {each}" for each in yours)


def _first_non_finite(model: Any) -> Any:
    """The first layer whose output holds NaN or inf when the last batch (`model.input_layer.output`) runs forward
    again with the current parameters, or None: all finite, no batch yet, or the pass itself fails."""
    inputs = getattr(getattr(model, "input_layer", None), "output", None)
    backend = model.backend
    if inputs is None or not backend.owns(inputs):
        return None
    try:
        with _checks.trusted(), backend.quiet_float_errors():
            model.forward(inputs, training=False)
    except Exception:  # whatever a layer raises here, the DivergenceError goes out, with its general fix
        return None
    for layer in model.layers:
        output: Any = getattr(layer, "output", None)
        if backend.owns(output) and not math.isfinite(host_float(backend, model.xp.sum(output * 0))):
            return layer
    return None


def _finite_probe(loss: Any, layers: Iterable[Any]) -> Any:
    """`loss` (or 0) plus sum(p * 0) over every parameter: one value, NaN or inf unless all of them are finite."""
    probe = 0 if loss is None else loss
    for layer in layers:
        if hasattr(layer, "weights"):
            probe = probe + layer.xp.sum(layer.weights * 0) + layer.xp.sum(layer.biases * 0)
    return probe


def _loss_of(run: Run) -> Any:
    metrics = run.metrics
    return metrics["data_loss"] + metrics["reg_loss"]


def _snapshot(model: Any) -> dict[str, Any]:
    """Device-side copies of every parameter, and the optimizer's progress (`state_dict()`) with copied slots."""
    xp = model.xp
    state = model.optimizer.state_dict(model.trainable_layers)
    slots = {
        position: {name: xp.asarray(value, copy=True) for name, value in arrays.items()}
        for position, arrays in state["slots"].items()
    }
    return {
        "parameters": [
            (xp.asarray(layer.weights, copy=True), xp.asarray(layer.biases, copy=True))
            for layer in model.trainable_layers
        ],
        "optimizer": {**state, "slots": slots},
    }


def _restore(model: Any, snapshot: dict[str, Any] | None) -> None:
    if snapshot is None:
        return
    for layer, (weights, biases) in zip(model.trainable_layers, snapshot["parameters"], strict=True):
        layer.weights, layer.biases = weights, biases
    model.optimizer.load_state_dict(snapshot["optimizer"], model.trainable_layers, copy=False)


def check_finite(loss: Any, layers: Iterable[Any] = (), *, epoch: int | None = None) -> float:
    """For hand-written loops: check that the loss and every layer's parameters are finite.

    One reduction and one host copy: call it when you print, not every step.

    Args:
        loss: the loss, a real number or a 0-d array as a loss function's `calculate` returns it.
        layers: the layers whose parameters (`weights` and `biases`) to check; layers without them are skipped.
            Their backend copies the result to the host (without layers: the current backend).
        epoch: the epoch, named in the error when given.

    Returns:
        The loss as a Python float.

    Raises:
        TypeError: `loss` is not a real number or a 0-d array.
        DivergenceError: the loss or a parameter is NaN or infinite.
    """
    if not (_checks._is_real(loss) or getattr(loss, "shape", None) == ()):
        raise TypeError(
            f"check_finite loss must be a real number or a 0-d array, got {_checks.describe(loss)}; pass the loss "
            f"as the loss function returns it, e.g. check_finite(loss_function.calculate(output, y), layers)"
        )
    layers = list(layers)
    backend = layers[0].backend if layers else backends.current()
    if not math.isfinite(host_float(backend, _finite_probe(loss, layers))):
        where = f" at epoch {epoch}" if epoch is not None else ""
        raise DivergenceError(
            f"training diverged{where}: the loss or a parameter is NaN or infinite. Lower the learning rate or add "
            f"decay, and start again from saved or freshly initialised parameters",
            epoch=epoch,
        )
    return host_float(backend, loss)
