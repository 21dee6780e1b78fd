"""The checks of a backend plug-in: the Array API functions nnx calls, transfers between host and device, dtypes,
random numbers, errors, and every kernel op against NumPy's generic one."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnx import backends
from nnx.backends import Backend
from nnx.testing.numeric import FLOAT32_RTOL, SEED, difference, dtype_of, kept_rng, rng, seeded
from nnx.testing.report import Check, Unmet

# The Array API functions nnx's layers, losses and generic kernels call on a backend's namespace `xp`.
XP_FUNCTIONS = (
    "abs", "all", "arange", "argmax", "asarray", "astype", "clip", "concat", "exp", "finfo", "isdtype", "isfinite",
    "isnan", "log", "matmul", "matrix_transpose", "max", "maximum", "mean", "min", "reshape", "round", "sign", "sqrt",
    "stack", "std", "sum", "take", "where", "zeros", "zeros_like",
)  # fmt: skip
NAMESPACE_FIX = (
    "give the namespace these Array API functions (array-api-compat wraps most libraries), or override the kernels "
    "that use them"
)
TRANSFER_FIX = "make asarray() copy host data to the device in the dtype asked for, and to_numpy() return a NumPy copy"
DTYPE_FIX = (
    "keep float32 the default float, name each dtype as NumPy does, and raise TypeError for one the device lacks"
)
RNG_FIX = "draw weights on the host (the generic scaled_normal), and seed, save and restore the backend's own RNG"
ERROR_FIX = (
    "describe the device in words (device=), raise TypeError for a value that is not this backend's array and "
    "ValueError for a foreign RNG state"
)
OPS_FIX = "make each kernel op return what the generic Backend op returns on NumPy (or keep the generic one)"


@dataclass(frozen=True)
class DType:
    """A dtype argument of an op, given to each backend as its own dtype object."""

    name: str


def namespace(backend: Backend) -> None:
    """The namespace has every Array API function nnx calls."""
    missing = [name for name in XP_FUNCTIONS if not callable(getattr(backend.xp, name, None))]
    if missing:
        raise Unmet(f"its namespace xp has no {', '.join(missing)}, which nnx's layers and kernels call", NAMESPACE_FIX)


def transfers(backend: Backend) -> None:
    """asarray copies host data to the device in the dtype asked for; to_numpy gives back a NumPy copy."""
    values = np.arange(6, dtype=np.float64).reshape(2, 3)
    on_device = backend.asarray(values, dtype="float32")
    if not backend.owns(on_device):
        raise Unmet(f"asarray() returned a {type(on_device).__name__}, which owns() does not accept", TRANSFER_FIX)
    back = backend.to_numpy(on_device)
    if not isinstance(back, np.ndarray) or back.dtype != np.float32 or not np.array_equal(back, values):
        raise Unmet(f"to_numpy(asarray(x, dtype='float32')) gives {back!r}, not x as float32", TRANSFER_FIX)
    labels = np.array([0, 2, 1], dtype=np.uint8)
    if backend.has_dtype("uint8") and backend.to_numpy(backend.asarray(labels)).dtype != np.uint8:
        raise Unmet(
            "uint8 labels do not come back as uint8: asarray() without a dtype must keep the data's", TRANSFER_FIX
        )
    back[0, 0] = 99
    if backend.to_numpy(on_device)[0, 0] != 0:
        raise Unmet("changing what to_numpy() returned changes the device array", TRANSFER_FIX)
    backend.synchronize()


def dtypes(backend: Backend) -> None:
    """float32 is the default float; float64 is there or refused clearly; other names are refused."""
    if backend.float_dtype() != backend.dtype("float32") or backend.default_float != backend.dtype("float32"):
        raise Unmet(f"its default float is {backend.default_float}, not float32", DTYPE_FIX)
    if dtype_of(backend.asarray(np.ones(2, np.float32))) != "float32":
        raise Unmet("asarray() of float32 host data does not give float32", DTYPE_FIX)
    if backend.has_dtype("float64") and backend.float_dtype("float64") != backend.dtype("float64"):
        raise Unmet("float_dtype('float64') is not its float64 dtype", DTYPE_FIX)
    if not backend.has_dtype("float64"):
        raised(lambda: backend.float_dtype("float64"), TypeError, "float_dtype('float64') without float64", DTYPE_FIX)
    raised(lambda: backend.float_dtype("int32"), ValueError, "float_dtype('int32')", DTYPE_FIX)
    raised(lambda: backend.dtype("no_such_dtype"), TypeError, "dtype('no_such_dtype')", DTYPE_FIX)
    if not backend.xp.isdtype(backend.int_dtype, "signed integer"):
        raise Unmet(f"its int_dtype {backend.int_dtype} is not a signed integer dtype", DTYPE_FIX)


def raised(call: Callable[[], Any], kind: type[Exception], what: str, fix: str) -> None:
    """Unmet unless `call()` raises `kind`."""
    try:
        call()
    except kind:
        return
    except Exception as error:
        raise Unmet(f"{what} raised {type(error).__name__}: {error}, not {kind.__name__}", fix) from None
    raise Unmet(f"{what} raised no error, not {kind.__name__}", fix)


def random_numbers(backend: Backend) -> None:
    """Seeded weights are the book's numbers, dropout masks are 0 or 1/keep and repeat with the seed, and the RNG
    state saves and restores."""
    numpy = backends.get("numpy")
    with kept_rng():
        seeded(SEED)
        weights = backend.to_numpy(backend.scaled_normal((3, 4), 0.01, "float32"))
        seeded(SEED)
        if not np.array_equal(weights, numpy.scaled_normal((3, 4), 0.01, "float32")):
            raise Unmet(
                "seeded scaled_normal() weights differ from NumPy's: the book's numbers must be the same", RNG_FIX
            )
        seeded(SEED)
        mask = mask_of(backend)
        seeded(SEED)
        if not np.array_equal(mask, mask_of(backend)):
            raise Unmet("two dropout masks drawn after the same nnx.seed() differ", RNG_FIX)
        state, host_state = backend.rng_state(), np.random.get_state()
        json.dumps(state)
        first = mask_of(backend)
        backend.set_rng_state(state)
        np.random.set_state(host_state)
        if not np.array_equal(first, mask_of(backend)):
            raise Unmet("set_rng_state(rng_state()) does not draw the same dropout mask again", RNG_FIX)
        streams = [np.random.RandomState(SEED + index) for index in range(2)]
        stacked = backend.to_numpy(backend.stacked_dropout_masks(streams, (4, 3), [0.5, 0.75], "float32"))
        if stacked.shape != (2, 4, 3) or not set(np.unique(stacked)) <= {0.0, 2.0, np.float32(1 / 0.75)}:
            raise Unmet(
                f"stacked_dropout_masks() gives shape {stacked.shape} with values {np.unique(stacked)}", RNG_FIX
            )


def mask_of(backend: Backend, keep: float = 0.75) -> np.ndarray:
    """A (40, 50) dropout mask drawn by `backend`, checked to be 0 or 1/keep with about `keep` of it kept."""
    mask = backend.dropout_mask((40, 50), keep, "float32")
    if not backend.owns(mask) or tuple(mask.shape) != (40, 50) or dtype_of(mask) != "float32":
        raise Unmet(f"dropout_mask((40, 50), 0.75, 'float32') gives {dtype_of(mask)} {tuple(mask.shape)}", RNG_FIX)
    values = backend.to_numpy(mask)
    kept = float(np.mean(values != 0))
    if not set(np.unique(values)) <= {0.0, np.float32(1 / keep)} or abs(kept - keep) > 0.1:
        raise Unmet(f"a dropout mask keeping {keep} holds {np.unique(values)} and keeps {kept:.2f}", RNG_FIX)
    return values


def errors(backend: Backend) -> None:
    """A value that is not its array is refused naming the backend, and so is a foreign RNG state; messages can
    name the backend and its device."""
    if not isinstance(backend.device, str) or not backend.device or backend.name not in repr(backend):
        raise Unmet(f"its device {backend.device!r} or repr {backend!r} does not say where it computes", ERROR_FIX)
    if backend.owns([1.0, 2.0]):
        raise Unmet("owns() accepts a Python list", ERROR_FIX)
    try:
        backend.check([1.0, 2.0], "Dense(2 -> 3) inputs")
    except TypeError as error:
        if backend.name not in str(error):
            raise Unmet(
                f"check() of a list raised TypeError({error}), which does not name the backend", ERROR_FIX
            ) from None
    else:
        raise Unmet("check() accepted a Python list", ERROR_FIX)
    try:
        backend.set_rng_state({"not": "a state"})
    except (TypeError, ValueError):
        return
    raise Unmet("set_rng_state() accepted {'not': 'a state'}", ERROR_FIX)


def op_cases() -> list[tuple[str, str, tuple]]:
    """(label, op, arguments) of each kernel op; host arrays are copied to each backend, DType names its dtype.
    A stack of models (`nnx.train_many`) runs on `reference()`, the generic ops: only they take a leading model axis."""
    g = rng(40)

    def normal(*shape: int) -> np.ndarray:
        return g.standard_normal(shape).astype(np.float32)

    x, w, b, d = normal(5, 4), normal(4, 3), normal(1, 3), normal(5, 3)
    xs, ws, bs, ds = normal(2, 5, 4), normal(2, 4, 3), normal(2, 1, 3), normal(2, 5, 3)
    probabilities = g.uniform(0.2, 1.0, (5, 3)).astype(np.float32)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    labels = g.integers(0, 3, 5)
    targets = g.integers(0, 2, (5, 3)).astype(np.float32)
    cache, strengths = np.abs(normal(4, 3)), np.array([0.1, 0.3], np.float32).reshape(2, 1, 1)
    return [
        ("dense_forward", "dense_forward", (x, w, b)),
        ("dense_forward of a stack", "dense_forward", (xs, ws, bs)),
        ("dense_backward", "dense_backward", (x, w, d)),
        ("dense_backward of a stack", "dense_backward", (xs, ws, ds)),
        ("relu_forward", "relu_forward", (x,)),
        ("relu_backward", "relu_backward", (d, normal(5, 3))),
        ("softmax", "softmax", (x,)),
        ("softmax of a stack", "softmax", (xs,)),
        ("sigmoid", "sigmoid", (x,)),
        ("one_hot", "one_hot", (labels, 3, DType("float32"))),
        ("categorical_crossentropy", "categorical_crossentropy", (probabilities, labels, 1e-7)),
        ("softmax_crossentropy_backward", "softmax_crossentropy_backward", (probabilities, labels)),
        ("binary_crossentropy", "binary_crossentropy", (probabilities, targets, 1e-7)),
        ("binary_crossentropy_backward", "binary_crossentropy_backward", (probabilities, targets, 1e-7)),
        ("squared_error", "squared_error", (d, x[:, :3])),
        ("squared_error_backward", "squared_error_backward", (d, x[:, :3])),
        ("regularization_gradient", "regularization_gradient", (normal(4, 3), w, 0.1, 0.2)),
        ("regularization_penalty", "regularization_penalty", (w, 0.1, 0.2)),
        ("regularization_penalty of a stack", "regularization_penalty", (ws, strengths, strengths)),
        ("sgd_update", "sgd_update", (w, normal(4, 3), 0.1)),
        ("sgd_update with momentum", "sgd_update", (w, normal(4, 3), 0.1, normal(4, 3), 0.9)),
        ("adagrad_update", "adagrad_update", (w, normal(4, 3), cache, 0.1, 1e-7)),
        ("rmsprop_update", "rmsprop_update", (w, normal(4, 3), cache, 0.01, 1e-7, 0.9)),
        ("adam_update", "adam_update", (w, normal(4, 3), normal(4, 3), cache, 0.01, 1e-7, 0.9, 0.999, 3)),
        ("zeros", "zeros", ((2, 3), DType("float32"))),
        ("arange", "arange", (5,)),
    ]


def run_op(backend: Backend, op: str, arguments: tuple) -> list[np.ndarray | None]:
    """The op's results on `backend` as host arrays (a fresh copy of every host argument: ops may update in place)."""
    given = [
        backend.asarray(value.copy())
        if isinstance(value, np.ndarray)
        else backend.dtype(value.name)
        if isinstance(value, DType)
        else value
        for value in arguments
    ]
    result = getattr(backend, op)(*given)
    results = result if isinstance(result, tuple) else (result,)
    return [
        None if value is None else np.asarray(value) if isinstance(value, int) else backend.to_numpy(value)
        for value in results
    ]


def ops(backend: Backend) -> None:
    """Every kernel op gives what NumPy's generic op gives (float32 rounding allowed), in the same float dtype; the
    generic ops (`reference()`) also take stacks of models."""
    reference = backends.get("numpy").reference()
    problems = []
    for label, op, arguments in op_cases():
        expected = run_op(reference, op, arguments)
        tested = backend.reference() if "stack" in label else backend  # stacks run on the generic ops
        try:
            got = run_op(tested, op, arguments)
        except Exception as error:
            problems.append(f"{label} raised {type(error).__name__}: {error}")
            continue
        problem = op_problem(label, got, expected)
        if problem:
            problems.append(problem)
    if problems:
        raise Unmet(f"{len(problems)} kernel op(s) fail: " + "; ".join(problems), OPS_FIX)


def op_problem(label: str, got: list, expected: list) -> str | None:
    """What differs between an op's results and NumPy's, or None."""
    if len(got) != len(expected):
        return f"{label} returns {len(got)} result(s), not {len(expected)}"
    for index, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        what = label if len(got) == 1 else f"{label} result {index}"
        if (mine is None) != (theirs is None):
            return f"{what} is {mine!r}, not {theirs!r}"
        if theirs is None:
            continue
        if theirs.dtype.kind == "f" and mine.dtype != theirs.dtype:
            return f"{what} is {mine.dtype}, not {theirs.dtype}"
        scale = float(np.max(np.abs(theirs))) if theirs.size else 0.0
        problem = difference(what, mine, theirs, FLOAT32_RTOL, FLOAT32_RTOL * scale, "NumPy's")
        if problem:
            return problem
    return None


def backend_checks(backend: str | Backend) -> list[Check]:
    """The checks of a backend, one by one: each is a `Check` to call (see `check_backend`).

    Args:
        backend: The backend: a registered name ('numpy', 'mlx', ...) or a `nnx.backends.Backend`.

    Returns:
        The checks namespace, transfers, dtypes, rng, errors and ops.

    Raises:
        BackendUnavailableError: the backend cannot run here; the message says why.
        ValueError: no backend is registered under that name.
    """
    chosen = backends.get(backend)
    checks: list[tuple[str, Callable[[Backend], None], str]] = [
        ("namespace", namespace, NAMESPACE_FIX),
        ("transfers", transfers, TRANSFER_FIX),
        ("dtypes", dtypes, DTYPE_FIX),
        ("rng", random_numbers, RNG_FIX),
        ("errors", errors, ERROR_FIX),
        ("ops", ops, OPS_FIX),
    ]
    return [Check(name, chosen.name, bound_backend(run, chosen), fix) for name, run, fix in checks]


def bound_backend(run: Callable[[Backend], None], backend: Backend) -> Callable[[], None]:
    return lambda: run(backend)
