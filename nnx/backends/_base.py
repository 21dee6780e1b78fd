"""The Backend interface: one array namespace on one device, with explicit host <-> device transfers."""

from __future__ import annotations

from nnx.backends import _host


class BackendUnavailableError(RuntimeError):
    """A registered backend cannot be used here; the message says why and how to fix it."""


class Backend:
    """One array library on one device: its namespace `xp` and the only ways data crosses to the host.

    Subclasses override `to_numpy`, and `synchronize`, `seed`, `dropout_mask` where the device needs it.
    """

    def __init__(self, name: str, xp, device: str, *, array_type: type, array_device=None):
        self.name = name
        self.xp = xp
        self.device = device
        self.array_type = array_type
        self.array_device = array_device
        self._dtypes = _available_dtypes(xp, array_device)
        self.copy_host = None  # True where the library would otherwise share a host array's memory (PyTorch)
        self.default_float = self.dtype("float32")

    def __repr__(self) -> str:
        return f"<nnx backend {self.name!r} on {self.device}>"

    def has_dtype(self, name: str) -> bool:
        """Whether arrays of the dtype called `name` ('float64', 'int64', ...) can be made here."""
        standard = self._dtypes is None or name not in _host.STANDARD_NAMES
        return hasattr(self.xp, name) and (standard or name in self._dtypes)

    def dtype(self, name: str):
        """The namespace's dtype called `name`, or a TypeError saying this backend has none and what to do."""
        if self.has_dtype(name):
            return getattr(self.xp, name)
        raise TypeError(f"backend {self.name!r} has no {name} dtype; {self.missing_dtype_hint(name)}")

    def missing_dtype_hint(self, name: str) -> str:
        """The fix `dtype()` suggests for a dtype this backend lacks."""
        return "cast the array on the host first, e.g. x.astype('float32'), or pick another backend"

    @property
    def int_dtype(self):
        """The largest signed integer dtype here (int64, or int32 where there is none): labels and counts."""
        return self.dtype("int64" if self.has_dtype("int64") else "int32")

    @property
    def wide_float(self):
        """float64 where there is one, else float32: for exact sums of small integers (label checks)."""
        return self.dtype("float64" if self.has_dtype("float64") else "float32")

    def float_dtype(self, spec=None):
        """The namespace's float dtype for `spec` (a name, NumPy dtype or namespace dtype); None is float32."""
        if spec is None:
            return self.default_float
        return self.dtype(_host.float_name(spec))

    def asarray(self, host_array, dtype=None):
        """Copy `host_array` (NumPy array, list or scalar) to this backend's device, as `dtype` if given.

        Where this backend lacks a 64-bit type (JAX without x64), integers become 32-bit if they fit, and host data
        of no requested dtype becomes 32-bit, as JAX itself does; asking for float64 explicitly is a TypeError."""
        host_dtype = getattr(host_array, "dtype", None)
        name = _host.dtype_name(dtype) if dtype is not None else getattr(host_dtype, "name", None)
        if name is not None and not self.has_dtype(name) and (dtype is None or _host.is_integer_name(name)):
            host_array, name = self._narrowed(host_array, name)
        dtype = None if name is None else self.dtype(name)
        return self.xp.asarray(host_array, dtype=dtype, device=self.array_device, copy=self.copy_host)

    def _narrowed(self, host_array, name: str):
        """(`host_array`, `name`) as the 32-bit type this backend has instead of 64-bit `name`, checked on the host."""
        narrower = _host.NARROWER.get(name)
        if narrower is None or not self.has_dtype(narrower):
            self.dtype(name)  # the TypeError that says what is missing
        return _host.narrowed(host_array, narrower, self.name), narrower

    def to_numpy(self, x):
        """Copy `x` to the host as a NumPy array: the explicit device -> host transfer."""
        raise NotImplementedError

    def plain(self, x, what: str = "inputs"):
        """`x`, an array of this backend, as a plain one: no autograd history (PyTorch's requires_grad), no array
        subclass that computes differently (NumPy's matrix and masked arrays); `what` names it in errors."""
        return x

    def quiet_float_errors(self):
        """A context that silences the array library's overflow/NaN warnings (divergence checks report them)."""
        return _host.quiet_float_errors()

    def device_info(self) -> list[dict]:
        """The devices this backend computes on, for `nnx info`: each a dict with at least a ``name``."""
        return [{"name": self.device}]

    def synchronize(self) -> None:
        """Wait until queued device work is done (for timing); a no-op on synchronous backends."""

    def seed(self, value: int) -> None:
        """Seed this backend's own RNG; host-drawn backends share NumPy's global RNG seeded by nnx.seed."""

    def rng_state(self):
        """This backend's own RNG state as JSON-friendly data, or None: host-drawn backends have none of their own
        (NumPy's global RNG, saved separately)."""
        return None

    def set_rng_state(self, state) -> None:
        """Restore what `rng_state()` returned; None changes nothing."""
        if state is not None:
            raise ValueError(f"backend {self.name!r} has no RNG of its own, so it cannot restore {state!r}")

    # Kernels: the generic `xp` versions below are the reference; a backend overrides those it can do faster
    # (tests compare each override with these). Results are new arrays unless an argument is documented as
    # updated in place by a faster backend; callers always use the returned arrays. The generic versions also take
    # a stack of models: arrays with a leading model axis (M, n_samples, width), parameters (M, n_inputs, n_outputs)
    # and per-model hyperparameters as (M, 1, 1) arrays (`nnx.train_many`).

    def dense_forward(self, inputs, weights, biases):
        """inputs @ weights + biases."""
        return self.xp.matmul(inputs, weights) + biases

    def dense_backward(self, inputs, weights, dvalues):
        """(dweights, dbiases, dinputs) of a Dense layer for the output gradient `dvalues`."""
        xp = self.xp
        dweights = xp.matmul(xp.matrix_transpose(inputs), dvalues)
        dbiases = xp.sum(dvalues, axis=-2, keepdims=True)
        return dweights, dbiases, xp.matmul(dvalues, xp.matrix_transpose(weights))

    def relu_forward(self, inputs):
        """max(0, inputs), element-wise."""
        return self.xp.maximum(inputs, 0)

    def relu_backward(self, dvalues, inputs):
        """`dvalues` where `inputs` > 0, else 0 (a multiply by the 0/1 mask: faster than `where`)."""
        return dvalues * self.xp.astype(inputs > 0, dvalues.dtype)

    def softmax(self, inputs):
        """Row-wise softmax, stable: each row's maximum is subtracted first."""
        xp = self.xp
        exponentials = xp.exp(inputs - xp.max(inputs, axis=-1, keepdims=True))
        return exponentials / xp.sum(exponentials, axis=-1, keepdims=True)

    def one_hot(self, labels, n_classes: int, dtype):
        """Rows of `n_classes` zeros with a one at each integer label, built by comparison (no scatter)."""
        classes = self.arange(n_classes, dtype=labels.dtype)
        return self.xp.astype(labels[:, None] == classes, dtype)

    def categorical_crossentropy(self, probabilities, labels, epsilon: float):
        """Per-sample -log(p of the true class), p clipped to [epsilon, 1 - epsilon]; `labels` are integers."""
        xp = self.xp
        clipped = xp.clip(probabilities, epsilon, 1 - epsilon)
        one_hot = self.one_hot(labels, probabilities.shape[-1], probabilities.dtype)
        return -xp.log(xp.sum(clipped * one_hot, axis=-1))

    def softmax_crossentropy_backward(self, probabilities, labels):
        """(softmax outputs - one-hot of `labels`) / n_samples: the fused softmax + cross-entropy gradient."""
        one_hot = self.one_hot(labels, probabilities.shape[-1], probabilities.dtype)
        return (probabilities - one_hot) / probabilities.shape[-2]

    def sigmoid(self, inputs):
        """1 / (1 + exp(-inputs)), element-wise."""
        return 1 / (1 + self.xp.exp(-inputs))

    def binary_crossentropy(self, probabilities, targets, epsilon: float):
        """Per-sample mean over the outputs of -(y log p + (1 - y) log(1 - p)), p clipped to [epsilon, 1 - epsilon]."""
        xp = self.xp
        clipped = xp.clip(probabilities, epsilon, 1 - epsilon)
        return xp.mean(-(targets * xp.log(clipped) + (1 - targets) * xp.log(1 - clipped)), axis=-1)

    def binary_crossentropy_backward(self, probabilities, targets, epsilon: float):
        """The gradient of the mean binary cross-entropy over the batch with respect to the probabilities."""
        clipped = self.xp.clip(probabilities, epsilon, 1 - epsilon)
        gradient = -(targets / clipped - (1 - targets) / (1 - clipped)) / probabilities.shape[-1]
        return gradient / probabilities.shape[-2]

    def squared_error(self, outputs, targets):
        """Per-sample mean over the outputs of (y - p)^2."""
        return self.xp.mean((targets - outputs) ** 2, axis=-1)

    def squared_error_backward(self, outputs, targets):
        """The gradient of the mean squared error over the batch with respect to the outputs."""
        gradient = -2 * (targets - outputs) / outputs.shape[-1]
        return gradient / outputs.shape[-2]

    def regularization_gradient(self, gradient, values, l1, l2):
        """`gradient` plus the L1 and L2 penalties' gradients, l1 * sign(values) and 2 * l2 * values (a zero strength
        adds nothing; strengths may be per-model arrays)."""
        if _active(l1):
            gradient = gradient + l1 * (1 - 2 * self.xp.astype(values < 0, values.dtype))
        if _active(l2):
            gradient = gradient + 2 * l2 * values
        return gradient

    def regularization_penalty(self, values, l1, l2):
        """l1 * sum(|values|) + l2 * sum(values^2) over the last two axes (each model of a stack: its own)."""
        xp = self.xp
        total = 0
        if _active(l1):
            total = total + l1 * xp.sum(xp.abs(values), axis=(-2, -1))
        if _active(l2):
            total = total + l2 * xp.sum(values * values, axis=(-2, -1))
        return total

    def sgd_update(self, values, gradient, learning_rate: float, momentums=None, momentum: float = 0.0):
        """(values, momentums) after one SGD step; `momentums` is None without momentum. Updated in place by
        faster backends."""
        if momentums is None:
            return values - learning_rate * gradient, None
        momentums = momentum * momentums - learning_rate * gradient
        return values + momentums, momentums

    def adagrad_update(self, values, gradient, cache, learning_rate: float, epsilon: float):
        """(values, cache) after one Adagrad step (cache: the sum of squared gradients)."""
        cache = cache + gradient**2
        return values - learning_rate * gradient / (self.xp.sqrt(cache) + epsilon), cache

    def rmsprop_update(self, values, gradient, cache, learning_rate: float, epsilon: float, rho: float):
        """(values, cache) after one RMSprop step (cache: the moving average of squared gradients)."""
        cache = rho * cache + (1 - rho) * gradient**2
        return values - learning_rate * gradient / (self.xp.sqrt(cache) + epsilon), cache

    def adam_update(self, values, gradient, momentums, cache, learning_rate, epsilon, beta_1, beta_2, step: int):
        """(values, momentums, cache) after Adam's step number `step` (from 1), both moments bias-corrected."""
        momentums = beta_1 * momentums + (1 - beta_1) * gradient
        cache = beta_2 * cache + (1 - beta_2) * gradient**2
        corrected_momentums = momentums / (1 - beta_1**step)
        corrected_cache = cache / (1 - beta_2**step)
        return (
            values - learning_rate * corrected_momentums / (self.xp.sqrt(corrected_cache) + epsilon),
            momentums,
            cache,
        )

    def reference(self) -> Backend:
        """The same arrays and device without any fast path: the generic `xp` code that fast paths are tested
        against (this backend itself when it has none)."""
        return self

    def why_no_step_kernel(self, program) -> str | None:
        """Why this backend cannot run `program` (a `StepProgram`) as one compiled step, or None when it can;
        `Model.train` then runs its generic, layer-by-layer step."""
        return f"backend {self.name!r} has no compiled step kernel"

    def step_kernel(self, program):
        """A kernel that runs `program` over packed buffers (see `nnx.backends.numba_step.NumbaStepKernel` for the
        interface); only when `why_no_step_kernel(program)` is None."""
        raise NotImplementedError(self.why_no_step_kernel(program))

    def why_no_stack_kernel(self, program) -> str | None:
        """Why this backend cannot run a stack of models of `program`'s structure as one compiled call per batch, or
        None when it can; `nnx.train_many` then runs the generic stacked step."""
        return f"backend {self.name!r} has no compiled stack kernel"

    def stack_kernel(self, programs):
        """A kernel that runs `programs` (one per model, one structure) over (M, size) buffers (see
        `nnx.backends.numba_stack.NumbaStackKernel`); only when `why_no_stack_kernel(programs[0])` is None."""
        raise NotImplementedError(self.why_no_stack_kernel(programs[0]))

    def owns(self, x) -> bool:
        """Whether `x` is an array of this backend, on its device."""
        return isinstance(x, self.array_type)

    def check(self, x, what: str):
        """Return `x` if it is an array of this backend, else raise a TypeError naming `what` and the fix."""
        if self.owns(x):
            return x
        raise TypeError(
            f"{what} must be an array of backend {self.name!r} ({self.device}), got {_describe(x)}; "
            f"move it there with nnx.backends.get({self.name!r}).asarray(x), or build the layer with that "
            f"array's backend"
        )

    def zeros(self, shape: tuple[int, ...], dtype):
        """A new array of zeros on this backend's device."""
        return self.xp.zeros(shape, dtype=dtype, device=self.array_device)

    def arange(self, stop: int, dtype=None):
        """0, 1, ..., stop - 1 on this backend's device."""
        return self.xp.arange(stop, dtype=dtype, device=self.array_device)

    def scaled_normal(self, shape: tuple[int, ...], scale: float, dtype, rng=None):
        """`scale` * standard normal numbers drawn on the host with NumPy (book-identical), then moved here."""
        name = _host.float_name(dtype)
        return self.asarray(_host.scaled_normal(shape, scale, name, rng), dtype=name)

    def stacked_dropout_masks(self, streams, shape: tuple[int, ...], keeps, dtype):
        """(len(streams), *shape) inverted-dropout masks: model i's drawn on the host from its own NumPy stream
        `streams[i]` (see `_host.seeded_streams`) with keep fraction `keeps[i]`, then copied here in one transfer."""
        name = _host.float_name(dtype)
        masks = [_host.bernoulli_mask(shape, keep, name, stream) for stream, keep in zip(streams, keeps, strict=True)]
        return self.asarray(_host.stacked(masks, shape, name), dtype=name)

    def dropout_mask(self, shape: tuple[int, ...], keep: float, dtype):
        """Inverted-dropout mask (1/keep or 0) in `dtype`; drawn from NumPy's global RNG unless overridden."""
        name = _host.float_name(dtype)
        return self.asarray(_host.bernoulli_mask(shape, keep, name), dtype=name)


def _active(strength) -> bool:
    """Whether a regularization strength adds anything: a number > 0, or an array (per-model strengths)."""
    return strength > 0 if isinstance(strength, (int, float)) else True


def _available_dtypes(xp, device) -> frozenset | None:
    """Names of the dtypes `xp` supports on `device` (its inspection API), or None when it cannot say."""
    info = getattr(xp, "__array_namespace_info__", None)
    if info is None:
        return None
    try:
        return frozenset(info().dtypes(device=device))
    except (TypeError, ValueError):
        return frozenset(info().dtypes())


def _describe(x) -> str:
    kind = f"{type(x).__module__}.{type(x).__qualname__}"
    device = getattr(x, "device", None)
    return f"{kind} on {device}" if device is not None and not callable(device) else kind
