"""The base every layer, activation, loss and optimizer shares: its backend, resolved once from `xp=`."""

from __future__ import annotations

import json
import math

import safetensors.numpy

from nnx import _checks, backends
from nnx.backends import _host
from nnx.errors import CallOrderError

_classes: dict[str, type] = {}


def component_class(name: str) -> type | None:
    """The Component subclass saved under `name` (see `Component.kind`), or None: files never name code to run."""
    return _classes.get(name)


class Component:
    """Resolves `xp` (a module, a backend name, a Backend, or None for the current one) at construction.

    `ARRAYS` names the attributes that hold state worth keeping (parameters); `to()` carries them across.
    """

    ARRAYS: tuple[str, ...] = ()
    CONFIG: tuple[str, ...] = ()
    position: int | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _classes[cls.kind()] = cls

    @classmethod
    def kind(cls) -> str:
        """The name a saved file uses for this class: the bare name for nnx's own, module.name for others."""
        return cls.__name__ if cls.__module__.startswith("nnx.") else f"{cls.__module__}.{cls.__qualname__}"

    def __init__(self, xp=None):
        self.backend = backends.get(xp)
        self.xp = self.backend.xp

    def kernel_spec(self) -> dict | None:
        """What a compiled training step needs to know about this component (plain numbers and names), or None
        when no kernel computes it: `Model.train` then runs the generic step. Only the class that defines it is
        trusted, so a subclass inherits none (it may compute something else): define it again to opt in."""
        return None

    def get_config(self) -> dict:
        """The constructor arguments that rebuild this component (JSON-friendly; no arrays, no backend)."""
        return {name: getattr(self, name) for name in self.CONFIG}

    @classmethod
    def config_shapes(cls, config: dict) -> dict | None:
        """The shapes of the arrays that `from_config(config)` would allocate, by name, or None when it cannot say:
        a file's record is checked against its tensors with them before anything is allocated."""
        return None

    @classmethod
    def from_config(cls, config: dict, xp=None):
        """A new component built from `get_config()`'s dictionary, on backend `xp`."""
        return cls(**config, xp=xp)

    @property
    def label(self) -> str:
        """How errors name this component: its repr, and its place in a model once it has one."""
        return repr(self) if self.position is None else f"{self!r} at layer {self.position}"

    def to(self, spec):
        """Move this component's state to another backend (through the host) and compute there from now on."""
        target = backends.get(spec)
        for name in self.ARRAYS:
            value = getattr(self, name, None)
            if value is not None and not isinstance(value, (int, float)):
                setattr(self, name, _moved(self.backend, target, value))
        self.backend, self.xp = target, target.xp
        return self

    def _accept(self, x, what: str = "inputs"):
        """`x` itself if it lives on this component's backend, else a TypeError that says how to move it."""
        return x if self.backend.owns(x) else self.backend.check(x, f"{self.label} {what}")

    def _accept_batch(self, x, what: str = "inputs", features: int | None = None, dtype=None):
        """`x` as a float batch: a non-empty 2-d array of real numbers on this backend, cast to `dtype` (integers
        to the default float) before its values are checked (once per array)."""
        self._accept(x, what)
        _checks.batch(x, self, what=what, features=features)
        _checks.real_dtype(self.xp, x, self, what)
        if dtype is None and not _checks.is_kind(self.xp, x.dtype, "real floating"):
            dtype = self.backend.default_float
        return _checks.as_finite(self.backend, x, dtype, self, what)

    def _require_forward(self, dvalues, attribute: str = "output") -> None:
        """A CallOrderError unless `forward` ran, and a ValueError unless `dvalues` is shaped like its output."""
        output = getattr(self, attribute, None)
        if output is None:
            raise CallOrderError(f"{self.label}.backward() was called before forward(); call forward(inputs) first")
        self._accept(dvalues, "gradient")
        if tuple(dvalues.shape) != tuple(output.shape):
            raise ValueError(
                f"{self.label}.backward() expected a gradient shaped like its last output {tuple(output.shape)}, "
                f"got {tuple(dvalues.shape)}; pass the next layer's dinputs from the same batch"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def saved_config(self) -> dict:
        """`get_config()` as it is saved: a dtype written as its canonical name ('float32') whatever the backend
        calls it."""
        config = self.get_config()
        if "dtype" in config and getattr(self, "dtype", None) is not None:
            config["dtype"] = _host.dtype_name(self.dtype)
        return config

    def host_arrays(self) -> dict:
        """Host copies of the arrays this component keeps (its `ARRAYS` that hold an array, NumPy scalars included),
        as files and copies store them."""
        arrays = {}
        for name in self.ARRAYS:
            value = getattr(self, name, None)
            if value is not None and hasattr(value, "shape") and hasattr(value, "dtype"):
                arrays[name] = self.backend.to_numpy(value)
        return arrays

    def __reduce__(self):
        """`pickle` and `copy.deepcopy` go through what a file holds: the kind, the config as JSON and the arrays
        as safetensors bytes, rebuilt on the same backend; never a pickled module or class."""
        arrays = safetensors.numpy.save(self.host_arrays())
        state = (self.kind(), json.dumps(self.saved_config()), self.backend.name, arrays)
        return (rebuilt, state)


def rebuilt(kind: str, config: str, backend: str, arrays: bytes) -> Component:
    """The component `Component.__reduce__` described (the class registered under `kind`, from its config)."""
    cls = component_class(kind)
    if cls is None:
        raise TypeError(
            f"cannot rebuild an nnx component of kind {kind!r}: this program does not define it; import the module "
            f"that defines it first"
        )
    target = backends.get(backend)
    with _host.numpy_rng_kept():
        component = cls.from_config(json.loads(config), xp=target)
    for name, value in safetensors.numpy.load(arrays).items():
        setattr(component, name, target.asarray(value, dtype=value.dtype.name))
    return component


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
        self.add_to_pass(self.xp.sum(values), math.prod(values.shape))

    def add_to_pass(self, total, count: int) -> None:
        """Add a batch's precomputed sum of `count` per-sample values (a compiled step's) to the epoch's sums."""
        self.accumulated_sum = self.accumulated_sum + total
        self.accumulated_count += count

    def _accumulated_mean(self):
        if self.accumulated_count == 0:
            raise RuntimeError(f"{self!r} has no batches to average: call calculate() after new_pass()")
        return self.accumulated_sum / self.accumulated_count

    def to(self, spec):
        self.new_pass()
        return super().to(spec)


def _moved(source, target, value):
    """`value` copied from backend `source` to `target` through the host, in its own dtype (a backend without that
    dtype says so rather than rounding float64 to float32)."""
    host = source.to_numpy(value)
    return target.asarray(host, dtype=host.dtype)
