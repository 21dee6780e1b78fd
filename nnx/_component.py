"""The base every layer, activation, loss and optimizer shares: its backend, resolved once from `xp=`."""

from __future__ import annotations

import json
import math
import os
import types
from typing import TYPE_CHECKING, Any, TypeAlias

import safetensors.numpy

from nnx import _checks, backends
from nnx.backends import Backend, _host
from nnx.errors import CallOrderError

if TYPE_CHECKING:
    from typing_extensions import Self

Array: TypeAlias = Any  # an array of a component's backend: a NumPy or CuPy ndarray, a torch tensor, ...
BackendSpec: TypeAlias = str | types.ModuleType | Backend | None  # what `xp=` accepts: see `nnx.backends.get`
FilePath: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]  # a file to read or write; `~` is expanded

_classes: dict[str, type[Component]] = {}


def component_class(name: str) -> type[Component] | None:
    """The Component subclass saved under `name` (see `Component.kind`), or None: files never name code to run."""
    return _classes.get(name)


class Component:
    """The base of every layer, activation, loss, optimizer and accuracy: one backend, resolved at construction.

    Subclass it to write your own layer (with `forward` and `backward`): compute with `self.xp`, the array namespace
    of its backend, and it runs on every backend. `ARRAYS` names the attributes that hold state worth keeping
    (parameters): `to()` moves them, and files and copies store them. `CONFIG` names the constructor arguments
    that `get_config()` returns, so that a saved file can rebuild the component.

    Args:
        xp: The backend to compute on: a backend name ('numpy', 'cupy', 'torch', ...), an array module, an
            `nnx.backends.Backend`, or None for the current one (`nnx.backends.current()`).

    Attributes:
        backend: The `nnx.backends.Backend` this component computes on.
        xp: The array namespace of that backend.
    """

    ARRAYS: tuple[str, ...] = ()
    CONFIG: tuple[str, ...] = ()
    position: int | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _classes[cls.kind()] = cls

    @classmethod
    def kind(cls) -> str:
        """The name a saved file records for this class.

        Returns:
            The bare class name for nnx's own classes ('Dense'), `module.QualName` for any other.
        """
        return cls.__name__ if cls.__module__.startswith("nnx.") else f"{cls.__module__}.{cls.__qualname__}"

    def __init__(self, xp: BackendSpec = None) -> None:
        self.backend: Backend = backends.get(xp)
        self.xp: Any = self.backend.xp

    def kernel_spec(self) -> dict[str, Any] | None:
        """What a compiled training step needs to know about this component.

        Only the class that defines it is trusted, so a subclass inherits none (it may compute something else):
        define it again to opt in.

        Returns:
            Plain numbers and names (e.g. ``{"op": "relu"}``), or None when no kernel computes this component:
            `Model.train` then runs the generic, layer-by-layer step.
        """
        return None

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this component.

        Returns:
            {name: value} for each name in `CONFIG`: JSON-friendly, with no arrays and no backend.
        """
        return {name: getattr(self, name) for name in self.CONFIG}

    @classmethod
    def config_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[Any, ...]] | None:
        """The shapes of the arrays that `from_config(config)` would allocate.

        Loading checks a file's record against its tensors with them, before anything is allocated.

        Args:
            config: A dictionary as `get_config()` returns it.

        Returns:
            {array name: shape}, or None when the class cannot say (the default).
        """
        return None

    @classmethod
    def from_config(cls, config: dict[str, Any], xp: BackendSpec = None) -> Self:
        """Build a new component from `get_config()`'s dictionary.

        Args:
            config: The constructor arguments, as `get_config()` returns them.
            xp: The backend of the new component (see the class's `xp`); None is the current one.

        Returns:
            The new component, with freshly initialised arrays.
        """
        return cls(**config, xp=xp)

    @property
    def label(self) -> str:
        """How error messages name this component: its repr, and its place in a model once it has one."""
        return repr(self) if self.position is None else f"{self!r} at layer {self.position}"

    def to(self, spec: BackendSpec) -> Self:
        """Move this component's state (its `ARRAYS`) to another backend, through the host, and compute there.

        Each array keeps its dtype: a backend without that dtype says so rather than rounding.

        Args:
            spec: The target backend, as the class's `xp` accepts it.

        Returns:
            This component, moved.
        """
        target = backends.get(spec)
        for name in self.ARRAYS:
            value = getattr(self, name, None)
            if value is not None and not isinstance(value, (int, float)):
                setattr(self, name, copied_between(self.backend, target, value))
        self.backend, self.xp = target, target.xp
        return self

    def _accept(self, x: Array, what: str = "inputs") -> Array:
        """`x` itself if it lives on this component's backend, else a TypeError that says how to move it."""
        return x if self.backend.owns(x) else self.backend.check(x, f"{self.label} {what}")

    def _accept_batch(self, x: Array, what: str = "inputs", features: int | None = None, dtype: Any = None) -> Array:
        """`x` as a float batch: a non-empty 2-d array of real numbers on this backend, cast to `dtype` (integers
        to the default float) before its values are checked (once per array)."""
        self._accept(x, what)
        _checks.batch(x, self, what=what, features=features)
        _checks.real_dtype(self.xp, x, self, what)
        if dtype is None and not _checks.is_kind(self.xp, x.dtype, "real floating"):
            dtype = self.backend.default_float
        return _checks.as_finite(self.backend, x, dtype, self, what)

    def _require_forward(self, dvalues: Array, attribute: str = "output") -> None:
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

    def saved_config(self) -> dict[str, Any]:
        """`get_config()` as a file records it.

        Returns:
            The config, with a dtype written as its canonical name ('float32') whatever the backend calls it.
        """
        config = self.get_config()
        dtype = getattr(self, "dtype", None)
        if "dtype" in config and dtype is not None:
            config["dtype"] = _host.dtype_name(dtype)
        return config

    def host_arrays(self) -> dict[str, Any]:
        """Host copies of the arrays this component keeps, as files and copies store them.

        Returns:
            {name: NumPy array} for each of its `ARRAYS` that holds an array (NumPy scalars included).
        """
        arrays = {}
        for name in self.ARRAYS:
            value = getattr(self, name, None)
            if value is not None and hasattr(value, "shape") and hasattr(value, "dtype"):
                arrays[name] = self.backend.to_numpy(value)
        return arrays

    def __reduce__(self) -> tuple[Any, ...]:
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
    """A component that averages per-sample values over all the batches of a pass (an epoch), on the device.

    The base of `nnx.losses.Loss` and `nnx.metrics.Accuracy`: their `calculate` adds each batch to the sums,
    `new_pass()` starts again.

    Args:
        xp: The backend to compute on: a backend name, an array module, an `nnx.backends.Backend`, or None for
            the current one.
    """

    def __init__(self, *, xp: BackendSpec = None) -> None:
        super().__init__(xp)
        self.new_pass()

    def new_pass(self) -> None:
        """Reset the running sums, at the start of an epoch (the book's `new_pass`)."""
        self.accumulated_sum: Any = 0
        self.accumulated_count = 0

    def _accumulate(self, values: Array) -> None:
        self.add_to_pass(self.xp.sum(values), math.prod(values.shape))

    def add_to_pass(self, total: Array, count: int) -> None:
        """Add a batch's precomputed sum to the epoch's sums (what a compiled training step does).

        Args:
            total: The sum of the batch's per-sample values: a 0-d array on this backend, or a number.
            count: How many values `total` adds up.
        """
        self.accumulated_sum = self.accumulated_sum + total
        self.accumulated_count += count

    def _accumulated_mean(self) -> Array:
        if self.accumulated_count == 0:
            raise RuntimeError(f"{self!r} has no batches to average: call calculate() after new_pass()")
        return self.accumulated_sum / self.accumulated_count

    def to(self, spec: BackendSpec) -> Self:
        """Move to another backend, starting a new pass (the running sums are dropped).

        Args:
            spec: The target backend: a backend name, an array module, an `nnx.backends.Backend`, or None.

        Returns:
            This component, moved.
        """
        self.new_pass()
        return super().to(spec)


def copied_between(source: Backend, target: Backend, value: Array) -> Array:
    """`value` copied from backend `source` to `target` through the host, in its own dtype (a backend without that
    dtype says so rather than rounding float64 to float32)."""
    host = source.to_numpy(value)
    return target.asarray(host, dtype=host.dtype)
