"""The base every layer, activation, loss and optimizer shares: its backend, resolved once from `xp=`."""

from __future__ import annotations

import math

from nnx import backends


class Component:
    """Resolves `xp` (a module, a backend name, a Backend, or None for the current one) at construction.

    `ARRAYS` names the attributes that hold state worth keeping (parameters); `to()` carries them across.
    """

    ARRAYS: tuple[str, ...] = ()

    def __init__(self, xp=None):
        self.backend = backends.get(xp)
        self.xp = self.backend.xp

    def to(self, spec):
        """Move this component's state to another backend (through the host) and compute there from now on."""
        target = backends.get(spec)
        for name in self.ARRAYS:
            value = getattr(self, name, None)
            if value is not None and not isinstance(value, (int, float)):
                setattr(self, name, target.asarray(self.backend.to_numpy(value)))
        self.backend, self.xp = target, target.xp
        return self

    def _accept(self, x, what: str = "inputs"):
        """`x` itself if it lives on this component's backend, else a TypeError that says how to move it."""
        return x if self.backend.owns(x) else self.backend.check(x, f"{self!r} {what}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RunningMean(Component):
    """A component that averages per-sample values over all the batches of a pass (an epoch), on the device."""

    def __init__(self, *, xp=None):
        super().__init__(xp)
        self.new_pass()

    def new_pass(self) -> None:
        """Reset the running sums at the start of an epoch."""
        self.accumulated_sum = 0
        self.accumulated_count = 0

    def _accumulate(self, values) -> None:
        self.accumulated_sum = self.accumulated_sum + self.xp.sum(values)
        self.accumulated_count += math.prod(values.shape)

    def _accumulated_mean(self):
        if self.accumulated_count == 0:
            raise RuntimeError(f"{self!r} has no batches to average: call calculate() after new_pass()")
        return self.accumulated_sum / self.accumulated_count

    def to(self, spec):
        self.new_pass()
        return super().to(spec)


def check_positive_int(value, name: str) -> int:
    """`value` if it is a positive int, else a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_non_negative(value, name: str) -> float:
    """`value` as a float if it is a number >= 0, else a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)
