"""The Backend interface: one array namespace on one device, with explicit host <-> device transfers."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from nnx.backends import _host
from nnx.backends._kernels import Array, Kernels

if TYPE_CHECKING:
    from nnx.backends.step_program import StepProgram

PARALLEL_MIN_ROWS = 512  # from this many rows, host kernels split a batch across the cores (fewer: one thread)


class BackendUnavailableError(RuntimeError):
    """A registered backend cannot be used here; the message says why and how to fix it."""


class Backend(Kernels):
    """One array library on one device: its namespace `xp` and the only ways data crosses to the host.

    A backend plug-in subclasses it: it must override `to_numpy`, and overrides `synchronize`, `seed`,
    `rng_state`, `set_rng_state` and `dropout_mask` where its device needs them. The kernel methods (Dense, ReLU,
    softmax, the losses, the optimizer updates) have generic `xp` versions; a backend overrides those it can do
    faster, and `reference()` gives the generic ones back for tests.

    Args:
        name: the registered name, e.g. "numpy"; errors and `repr` show it.
        xp: the array namespace, Array API compatible (NumPy 2, array-api-compat's cupy or torch, jax.numpy, ...).
        device: the device in words, for messages and `nnx info`, e.g. "CPU" or "NVIDIA H100 (cuda:0)".
        array_type: the class of this library's arrays; `owns` tests against it.
        array_device: the device object new arrays go to (the `device=` of `xp.asarray`); None is the library's
            default.
    """

    def __init__(self, name: str, xp: Any, device: str, *, array_type: type, array_device: Any = None):
        self.name = name
        self.xp = xp
        self.device = device
        self.array_type: type[Any] = array_type
        self.array_device = array_device
        self._dtypes = _available_dtypes(xp, array_device)
        self.copy_host: bool | None = None  # True where the library would otherwise share a host array's memory
        self.default_float = self.dtype("float32")

    def __repr__(self) -> str:
        return f"<nnx backend {self.name!r} on {self.device}>"

    # Dtypes -------------------------------------------------------------------------------------------------------

    def has_dtype(self, name: str) -> bool:
        """Whether arrays of a dtype can be made here.

        Args:
            name: the dtype's name: "float32", "float64", "int64", ...

        Returns:
            True when the namespace has it and, where it can say, supports it on this device.
        """
        if not hasattr(self.xp, name):
            return False
        return self._dtypes is None or name not in _host.STANDARD_NAMES or name in self._dtypes

    def dtype(self, name: str) -> Any:
        """The namespace's dtype of a name.

        Args:
            name: the dtype's name: "float32", "float64", "int64", ...

        Returns:
            The dtype object, e.g. ``xp.float32``.

        Raises:
            TypeError: this backend has no such dtype; the message says what to do (`missing_dtype_hint`).
        """
        if self.has_dtype(name):
            return getattr(self.xp, name)
        raise TypeError(f"backend {self.name!r} has no {name} dtype; {self.missing_dtype_hint(name)}")

    def missing_dtype_hint(self, name: str) -> str:
        """The fix `dtype()` suggests for a dtype this backend lacks (JAX: turn on 64-bit types).

        Args:
            name: the missing dtype's name.

        Returns:
            A sentence without a final full stop.
        """
        return "cast the array on the host first, e.g. x.astype('float32'), or pick another backend"

    @property
    def int_dtype(self) -> Any:
        """The largest signed integer dtype here (int64, or int32 where there is none): labels and counts."""
        return self.dtype("int64" if self.has_dtype("int64") else "int32")

    @property
    def wide_float(self) -> Any:
        """float64 where there is one, else float32: for exact sums of small integers (label checks)."""
        return self.dtype("float64" if self.has_dtype("float64") else "float32")

    def fills_host_cores(self, rows: int) -> bool:
        """Whether computing on a batch of `rows` keeps every host core busy, so that a thread reading the next
        batch beside it would only take cores from it: on the CPU, batches the kernels split across the cores.

        Args:
            rows: the batch's rows.

        Returns:
            True on a CPU device with several cores for `rows` of at least `PARALLEL_MIN_ROWS`; False on an
            accelerator, whose host thread mostly waits.
        """
        on_cpu = self.device.upper().startswith("CPU")
        return on_cpu and rows >= PARALLEL_MIN_ROWS and _host.host_cores() > 1

    def float_dtype(self, spec: Any = None) -> Any:
        """The namespace's float dtype of a name or dtype.

        Args:
            spec: "float32" or "float64", a NumPy dtype or a namespace dtype; None is float32, nnx's default.

        Returns:
            The namespace's dtype.

        Raises:
            ValueError: `spec` is not float32 or float64.
            TypeError: this backend has no such dtype.
        """
        if spec is None:
            return self.default_float
        return self.dtype(_host.float_name(spec))

    # Host <-> device ----------------------------------------------------------------------------------------------

    def asarray(self, host_array: Any, dtype: Any = None) -> Array:
        """Copy host data to this backend's device: the explicit host -> device transfer.

        Where this backend lacks a 64-bit type (JAX without x64), integers become 32-bit if they fit, and host data
        of no requested dtype becomes 32-bit, as JAX itself does.

        Args:
            host_array: a NumPy array, a list or a scalar.
            dtype: the dtype, as a name, NumPy dtype or namespace dtype; None keeps the data's own.

        Returns:
            A new array on this backend's device.

        Raises:
            TypeError: `dtype` is one this backend lacks, such as float64 on JAX without x64.
            ValueError: integers do not fit the 32-bit type that replaces a missing 64-bit one.
        """
        host_dtype = getattr(host_array, "dtype", None)
        name = _host.dtype_name(dtype) if dtype is not None else getattr(host_dtype, "name", None)
        if name is not None and not self.has_dtype(name) and (dtype is None or _host.is_integer_name(name)):
            host_array, name = self._narrowed(host_array, name)
        dtype = None if name is None else self.dtype(name)
        return self.xp.asarray(host_array, dtype=dtype, device=self.array_device, copy=self.copy_host)

    def _narrowed(self, host_array: Any, name: str) -> tuple[np.ndarray, str]:
        """(`host_array`, `name`) as the 32-bit type this backend has instead of 64-bit `name`, checked on the host."""
        narrower = _host.NARROWER.get(name)
        if narrower is None or not self.has_dtype(narrower):
            self.dtype(name)  # the TypeError that says what is missing
        narrower = cast(str, narrower)  # dtype() raised otherwise
        return _host.narrowed(host_array, narrower, self.name), narrower

    def host_floats(self, values: list) -> list[float]:
        """Python floats of many 0-d arrays of this backend (a run's per-epoch metrics): one transfer for all.

        Args:
            values: 0-d arrays of this backend, at least one.

        Returns:
            Their values, in order.
        """
        xp = self.xp
        stacked = xp.stack([xp.asarray(value) for value in values])
        return [float(value) for value in self.to_numpy(stacked).tolist()]

    def to_numpy(self, x: Array) -> np.ndarray:
        """Copy an array to the host: the explicit device -> host transfer. Every backend overrides it.

        Args:
            x: an array of this backend.

        Returns:
            A NumPy array in C order that shares no memory with `x`.
        """
        raise NotImplementedError

    def plain(self, x: Array, what: str = "inputs") -> Array:
        """An array of this backend as a plain one: no autograd history (PyTorch's requires_grad), no array
        subclass that computes differently (NumPy's matrix and masked arrays).

        Args:
            x: an array of this backend.
            what: what `x` is, for error messages.

        Returns:
            `x` itself when it is plain already, else its values as a plain array.

        Raises:
            TypeError: `x` cannot be read as plain values (a NumPy masked array with masked values).
        """
        return x

    def quiet_float_errors(self) -> AbstractContextManager[Any]:
        """A context in which the array library does not warn about overflow or NaN: the divergence checks report
        those.

        Returns:
            The context manager.
        """
        return _host.quiet_float_errors()

    def device_info(self) -> list[dict]:
        """The devices this backend computes on, for `nnx info`.

        Returns:
            One dict per device with at least a "name"; other keys (memory, cores, ...) are shown as they are.
        """
        return [{"name": self.device}]

    def synchronize(self) -> None:
        """Wait until queued device work is done (for timing); a no-op on synchronous backends."""

    # Random numbers -----------------------------------------------------------------------------------------------

    def seed(self, value: int) -> None:
        """Seed this backend's own RNG, where it has one (CuPy's dropout masks); `nnx.seed` calls it.

        Host-drawn backends have none: they share NumPy's global RNG, which `nnx.seed` seeds itself.

        Args:
            value: an integer in [0, 2**32).
        """

    def rng_state(self) -> Any:
        """This backend's own RNG state, for checkpoints.

        Returns:
            JSON-friendly data that `set_rng_state` restores, or None for host-drawn backends (NumPy's global RNG is
            saved separately).
        """
        return None

    def set_rng_state(self, state: Any) -> None:
        """Restore what `rng_state()` returned.

        Args:
            state: that data; None changes nothing.

        Raises:
            ValueError: `state` is not a state of this backend's RNG (here: anything but None).
        """
        if state is not None:
            raise ValueError(f"backend {self.name!r} has no RNG of its own, so it cannot restore {state!r}")

    def scaled_normal(self, shape: tuple[int, ...], scale: float, dtype: Any, rng: Any = None) -> Array:
        """Initial weights: `scale` times standard normal numbers, drawn on the host with NumPy (the book's numbers
        on every backend), then moved here.

        Args:
            shape: the array's shape, e.g. (n_inputs, n_outputs).
            scale: the factor, the book's 0.01.
            dtype: float32 or float64, as a name or dtype.
            rng: a `numpy.random.Generator`, or None for NumPy's global RNG (as the book draws).

        Returns:
            The array on this backend's device.

        Raises:
            TypeError: `rng` is neither None nor a Generator.
            ValueError: the scaled numbers overflow `dtype`.
        """
        name = _host.float_name(dtype)
        return self.asarray(_host.scaled_normal(shape, scale, name, rng), dtype=name)

    def dropout_mask(self, shape: tuple[int, ...], keep: float, dtype: Any) -> Array:
        """An inverted-dropout mask: 1 / keep where a unit is kept, 0 where it is dropped.

        The generic version draws from NumPy's global RNG on the host, as the book does, and copies the mask here;
        a backend with its own RNG (CuPy) draws on the device.

        Args:
            shape: the mask's shape, that of the layer's inputs.
            keep: the fraction of units kept, in (0, 1].
            dtype: float32 or float64, as a name or dtype.

        Returns:
            The mask on this backend's device.
        """
        name = _host.float_name(dtype)
        return self.asarray(_host.bernoulli_mask(shape, keep, name), dtype=name)

    def stacked_dropout_masks(
        self, streams: Sequence[np.random.RandomState], shape: tuple[int, ...], keeps: Sequence[float], dtype: Any
    ) -> Array:
        """The dropout masks of a stack of models (`nnx.train_many`), each model's from its own stream.

        Args:
            streams: one NumPy RandomState per model; model i's mask is what its stream draws.
            shape: one model's mask shape, (n_samples, width).
            keeps: each model's keep fraction.
            dtype: float32 or float64, as a name or dtype.

        Returns:
            (len(streams), *shape) masks on this backend's device, copied in one transfer.
        """
        name = _host.float_name(dtype)
        masks = [_host.bernoulli_mask(shape, keep, name, stream) for stream, keep in zip(streams, keeps, strict=True)]
        return self.asarray(_host.stacked(masks, shape, name), dtype=name)

    # Arrays of this backend ---------------------------------------------------------------------------------------

    def owns(self, x: Any) -> bool:
        """Whether a value is an array of this backend, on its device.

        Args:
            x: any value.

        Returns:
            True for this backend's arrays.
        """
        return isinstance(x, self.array_type)

    def check(self, x: Any, what: str) -> Array:
        """A value, checked to be an array of this backend.

        Args:
            x: any value.
            what: what `x` is, for the error message, e.g. "Dense.forward inputs".

        Returns:
            `x` itself.

        Raises:
            TypeError: `x` is not an array of this backend; the message says how to move it here.
        """
        if self.owns(x):
            return x
        raise TypeError(
            f"{what} must be an array of backend {self.name!r} ({self.device}), got {describe_array(x)}; "
            f"move it there with nnx.backends.get({self.name!r}).asarray(x), or build the layer with that "
            f"array's backend"
        )

    # Fast paths ---------------------------------------------------------------------------------------------------

    def reference(self) -> Backend:
        """The same arrays and device with only the generic `xp` kernels, which fast paths are tested against.

        Returns:
            A backend without fast paths: this one itself when it has none.
        """
        return self

    def why_no_step_kernel(self, program: StepProgram) -> str | None:
        """Why this backend cannot run a training step as one compiled kernel call per batch.

        Args:
            program: the model's step, as `nnx.training.plan` planned it.

        Returns:
            The reason in words, or None when `step_kernel(program)` can run it. With a reason, `Model.train` runs
            its generic, layer-by-layer step.
        """
        return f"backend {self.name!r} has no compiled step kernel"

    def step_kernel(self, program: StepProgram) -> Any:
        """A kernel that runs a training step over packed buffers, one call per batch.

        Only called when `why_no_step_kernel(program)` is None. See `nnx.backends.numba_step.NumbaStepKernel` for
        the interface (`prepare`, `new_buffers`, `views`, `fits`, `copy_into`, `standalone`, `batch_targets`,
        `run`).

        Args:
            program: the model's step.

        Returns:
            The kernel.

        Raises:
            NotImplementedError: this backend has no step kernel (the generic backend).
        """
        raise NotImplementedError(self.why_no_step_kernel(program))

    def why_no_stack_kernel(self, program: StepProgram) -> str | None:
        """Why this backend cannot run a stack of models as one compiled call per batch (`nnx.train_many`).

        Args:
            program: the step of the stack's first model; the others share its structure.

        Returns:
            The reason in words, or None when `stack_kernel` can run the stack. With a reason, `nnx.train_many`
            runs the generic stacked step.
        """
        return f"backend {self.name!r} has no compiled stack kernel"

    def stack_kernel(self, programs: Sequence[StepProgram]) -> Any:
        """A kernel that runs the steps of a stack of models over (M, size) buffers, one call per batch.

        Only called when `why_no_stack_kernel(programs[0])` is None. See
        `nnx.backends.numba_stack.NumbaStackKernel` for the interface.

        Args:
            programs: one step program per model, all of one structure.

        Returns:
            The kernel.

        Raises:
            NotImplementedError: this backend has no stack kernel (the generic backend).
        """
        raise NotImplementedError(self.why_no_stack_kernel(programs[0]))


def _available_dtypes(xp: Any, device: Any) -> frozenset | None:
    """Names of the dtypes `xp` supports on `device` (its inspection API), or None when it cannot say."""
    info = getattr(xp, "__array_namespace_info__", None)
    if info is None:
        return None
    try:
        return frozenset(info().dtypes(device=device))
    except (TypeError, ValueError):
        return frozenset(info().dtypes())


def describe_array(x: Any) -> str:
    kind = f"{type(x).__module__}.{type(x).__qualname__}"
    device = getattr(x, "device", None)
    return f"{kind} on {device}" if device is not None and not callable(device) else kind
