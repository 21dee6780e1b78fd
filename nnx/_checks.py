"""Validation at the public edges: hyperparameters, input batches and targets, checked once before any state changes.

Every error names the component, what was expected, what was received and the fix. Value checks (NaN, label
ranges) on device arrays cost one reduction and one host copy, so they run once per array object (identity is
remembered), and not at all inside ``trusted()`` blocks, where the Model has already checked its data. A host
NumPy array is remembered with a fingerprint (its shape and sum: one pass over its memory, no copy), so a value
written into it in place after a check is checked at its next use; a NaN or infinity anywhere makes the sum
differ from any earlier one.
"""

from __future__ import annotations

import cmath
import contextlib
import contextvars
import importlib
import math
import numbers
import os
import sys
import warnings
import weakref
from types import FrameType, ModuleType

import array_api_compat

from nnx.backends._base import describe_array
from nnx.backends._host import dtype_name, quiet_float_errors

_TRUSTED = contextvars.ContextVar("nnx_trusted_values", default=False)
_seen: dict[tuple, tuple[weakref.ref, tuple | None]] = {}  # (id, check) -> (the array, its fingerprint or None)


# Scalars ------------------------------------------------------------------------------------------------------------


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def number(value, name: str, owner: str, *, low=None, high=None, low_open=False, high_open=False) -> float:
    """`value` as a float if it is a finite real number inside the interval, else a ValueError/TypeError."""
    domain = _interval(low, high, low_open, high_open)
    if not _is_real(value):
        raise TypeError(
            f"{_name(owner)} {name} must be a real number {domain}, got {describe(value)}; pass e.g. "
            f"{name.split(' (')[0]}=0.1"
        )
    try:
        value = float(value)
    except OverflowError:
        value = math.inf
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or below or above:
        raise ValueError(
            f"{_name(owner)} {name} must be a finite number {domain}, got {value!r}; {_fix(name, low, high)}"
        )
    return value


def positive(value, name: str, owner: str) -> float:
    """A finite number > 0 (learning rates, epsilons, divisors)."""
    return number(value, name, owner, low=0, low_open=True)


def non_negative(value, name: str, owner: str) -> float:
    """A finite number >= 0 (decay, regularization strengths, scales)."""
    return number(value, name, owner, low=0)


def fraction(value, name: str, owner: str) -> float:
    """A number in [0, 1) (momentum, betas, rho, dropout rate)."""
    return number(value, name, owner, low=0, high=1, high_open=True)


def positive_int(value, name: str, owner: str) -> int:
    """`value` as an int if it is an integer >= 1 (Python or NumPy), else a TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{_name(owner)} {name} must be a positive integer, got {describe(value)}; pass e.g. {name}=10")
    if not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{_name(owner)} {name} must be a positive integer, got {value!r}; pass e.g. {name}=10")
    return int(value)


def optional_positive_int(value, name: str, owner: str) -> int | None:
    return None if value is None else positive_int(value, name, owner)


def choice(value, name: str, owner: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"{_name(owner)} {name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def boolean(value, name: str, owner: str) -> bool:
    numpy_bool = type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")
    if not isinstance(value, bool) and not numpy_bool:
        raise TypeError(f"{_name(owner)} {name} must be True or False, got {describe(value)}")
    return bool(value)


def _interval(low, high, low_open, high_open) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    return "" if high is None else f"{'<' if high_open else '<='} {high:g}"


def _fix(name: str, low, high) -> str:
    name = name.split(" (")[0]  # "rate (the fraction of inputs to drop)" is passed as rate=...
    if low is not None and high is not None:
        example = (low + high) / 2 if high - low > 1 else 0.1 if name == "rate" else 0.999 if name == "beta_2" else 0.9
        return f"pass a value such as {name}={example:g}"
    if "learning_rate" in name:
        return f"pass a finite value > 0 such as {name}=0.01"
    return f"pass a finite value such as {name}={'1e-7' if 'epsilon' in name else '0.1'}"


def text_stream(file, owner: str):
    """`file` if it is None or has a write method (sys.stdout, an open file, io.StringIO), else a TypeError."""
    if file is None or callable(getattr(file, "write", None)):
        return file
    raise TypeError(
        f"{owner} file must be an open text stream (sys.stdout, open(path, 'w'), io.StringIO()) or None, got "
        f"{describe(file)}; open the file first"
    )


def describe(value) -> str:
    """How a message shows a received value: its repr and type, or what kind of array or container it is."""
    if isinstance(value, (tuple, list, dict)):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"{value!r} ({type(value).__name__})" if _is_scalar_like(value) else describe_array(value)


def _is_scalar_like(value) -> bool:
    return value is None or isinstance(value, (numbers.Number, str, bool)) or type(value).__name__ == "bool_"


# Arrays -------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def trusted():
    """Skip value checks inside the block: the Model has checked its whole data once before its loop."""
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def already_checked(x, key) -> bool:
    """Whether `x` (this very object, with the values it had then) passed the value check `key`, or values are
    trusted right now. A host NumPy array whose fingerprint changed since (a value written in place) has not."""
    if _TRUSTED.get():
        return True
    seen = _seen.get((id(x), key))
    if seen is None or seen[0]() is not x:
        return False
    return seen[1] is None or _same_fingerprint(seen[1], fingerprint(x))


def remember(x, key, *, watch: bool = True, known: tuple | None = None) -> None:
    """Record that `x` passed the value check `key`; forgotten when `x` is freed.

    `watch`: keep a fingerprint of a host NumPy array, so that a value written into it in place is checked at its
    next use; False for an array nnx made itself (a layer's output), known by identity alone. `known`: that
    fingerprint, when the check computed it already."""
    entry = (id(x), key)
    if watch and known is None:
        known = fingerprint(x)

    def forget(_ref: object) -> None:
        _seen.pop(entry, None)

    with contextlib.suppress(TypeError):  # an array type without weak references is simply checked again
        _seen[entry] = (weakref.ref(x, forget), known if watch else None)


def fingerprint(x) -> tuple | None:
    """A host NumPy array's shape and sum (one pass, no copy: a NaN or infinity written anywhere changes it), or
    None for any other array: a device array is known by identity (reading it back would cost a device sync)."""
    if not array_api_compat.is_numpy_array(x):
        return None
    with quiet_float_errors():  # finite values near the dtype's maximum may sum to inf: a fingerprint all the same
        return (x.shape, x.sum())


def _same_fingerprint(before: tuple, now: tuple | None) -> bool:
    """Equal shapes and sums (a NaN sum is never equal: such an array is checked at every use)."""
    return now is not None and before[0] == now[0] and bool(before[1] == now[1])


def shape_of(x) -> tuple:
    return tuple(x.shape)


def batch(x, owner: object, *, what: str = "inputs", features: int | None = None) -> None:
    """A non-empty 2-d batch of real numbers with `features` columns (structure only: no device sync)."""
    ndim = len(x.shape)
    if ndim != 2:
        example = f"(n_samples, {features})" if features else "(n_samples, n_features)"
        fix = "; reshape it, e.g. x.reshape(-1, 1) for one feature" if ndim < 2 else "; reshape it to 2-d"
        raise ValueError(
            f"{_name(owner)} expected {what} of shape {example}, got a {ndim}-d array of shape {shape_of(x)}{fix}"
        )
    if x.shape[0] == 0:
        raise ValueError(
            f"{_name(owner)} expected at least one sample in {what}, got an empty batch of shape {shape_of(x)}; "
            f"pass at least one row"
        )
    if x.shape[1] == 0:
        raise ValueError(
            f"{_name(owner)} expected {what} with at least one feature, got shape {shape_of(x)}; "
            "pass one column per feature"
        )
    if features is not None and x.shape[1] != features:
        raise ValueError(
            f"{_name(owner)} expected {what} with {features} features, got shape {shape_of(x)}; "
            f"give the layer n_inputs={x.shape[1]} or pass data with {features} columns"
        )


_dtype_kinds: dict = {}


def is_kind(xp, dtype, kind) -> bool:
    """`xp.isdtype(dtype, kind)`, remembered per dtype (it is slow next to a layer's arithmetic)."""
    key = (id(xp), dtype, kind)
    try:
        return _dtype_kinds[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable dtype object
        return _isdtype(xp, dtype, kind)
    _dtype_kinds[key] = result = _isdtype(xp, dtype, kind)
    return result


def _isdtype(xp, dtype, kind) -> bool:
    try:
        return bool(xp.isdtype(dtype, kind))
    except (TypeError, ValueError):
        return False


REAL = ("real floating", "signed integer", "unsigned integer")


def real_dtype(xp, x, owner: object, what: str = "inputs") -> None:
    """A TypeError unless `x` holds real numbers (floats or integers; not bool, complex or objects)."""
    if not is_kind(xp, x.dtype, REAL):
        raise TypeError(
            f"{_name(owner)} expected {what} of real numbers, got dtype {x.dtype}; convert with x.astype('float32')"
        )


def finite(backend, x, owner: object, what: str = "inputs") -> None:
    """A ValueError if `x` holds NaN or infinity: one reduction and one host copy, once per array object (and its
    values, for a host NumPy array)."""
    if already_checked(x, "finite"):
        return
    print_ = fingerprint(x)  # a host NumPy array's sum: finite only if every value is, so it is the check too
    if print_ is None or not cmath.isfinite(print_[1]):
        _check_finite(backend, x, owner, what)
    remember(x, "finite", known=print_)


def _count_not_finite(backend, x) -> int:
    """How many values of `x` are NaN or infinite. The sum is finite only if every value is, so one pass answers
    the common case; the count runs only when the sum is not finite (a bad value, or finite values whose sum
    overflows)."""
    xp = backend.xp
    if not is_kind(xp, x.dtype, "real floating"):
        return 0
    with backend.quiet_float_errors():
        if math.isfinite(float(backend.to_numpy(xp.sum(x)))):
            return 0
    return int(backend.to_numpy(xp.sum(xp.astype(~xp.isfinite(x), backend.int_dtype))))


def _check_finite(backend, x, owner: object, what: str) -> None:
    bad = _count_not_finite(backend, x)
    if bad:
        fix = "clean the data (drop or impute those samples) before training"
        if "inputs" not in what and "targets" not in what:  # parameters and other values, not data
            fix = "pass finite values (a NaN weight often comes from a diverged run: reload a saved one)"
        raise ValueError(f"{_name(owner)} {what} contain {bad} NaN or infinite value{'s' if bad > 1 else ''}; {fix}")


def as_finite(backend, x, dtype, owner, what: str = "inputs"):
    """`x` cast to `dtype` (None: as it is), after checking that its values, so cast, are finite: a finite value
    too large for `dtype` becomes inf and is refused as such. Checked once per original array object (and its
    values, for a host NumPy array)."""
    xp = backend.xp
    if dtype is not None and x.dtype != dtype:
        key = ("finite as", str(dtype))
        checked = already_checked(x, key)
        with backend.quiet_float_errors():
            cast = xp.astype(x, dtype)
        if not checked:
            if _count_not_finite(backend, cast):
                _check_finite(backend, x, owner, what)  # NaN or inf in `x` itself
                _too_large(backend, x, dtype, owner, what)
            remember(x, key)
            remember(cast, "finite", watch=False)
        return cast
    finite(backend, x, owner, what)
    return x


def _too_large(backend, x, dtype, owner: object, what: str) -> None:
    """The ValueError for finite values of `x` that `dtype` cannot hold: the largest one and the dtype's limit."""
    xp = backend.xp
    largest = float(backend.to_numpy(xp.max(xp.abs(xp.astype(x, backend.wide_float)))))
    limit = float(xp.finfo(dtype).max)
    name = dtype_name(dtype)
    raise ValueError(
        f"{_name(owner)} {what} hold finite values too large for {name}: the largest magnitude is {largest:.6g} "
        f"and {name} holds at most {limit:.6g}; scale the data (e.g. divide it by its largest value) or build "
        f"the model in float64 (dtype='float64' on its layers)"
    )


def within(backend, y, low: float, high: float, owner, what: str = "targets") -> None:
    """A ValueError unless every value of `y` lies in [low, high]: one reduction, once per array object."""
    key = ("within", low, high)
    if already_checked(y, key):
        return
    xp = backend.xp
    outside = int(backend.to_numpy(xp.sum(xp.astype((y < low) | (y > high), backend.int_dtype))))
    if outside:
        raise ValueError(
            f"{_name(owner)} expected {what} in [{low:g}, {high:g}], got {outside} value{'s' if outside > 1 else ''} "
            f"outside; pass probabilities or 0/1 labels"
        )
    remember(y, key)


def produced(x):
    """Mark `x` as an output made by an nnx layer, and return it: its values are the network's business (a
    divergence check catches NaN there), not the user's data, so the next layer does not check them again."""
    if not _TRUSTED.get():
        remember(x, "finite", watch=False)
    return x


def same_samples(n_expected: int, y, owner: object, what: str = "targets") -> None:
    if len(y.shape) == 0 or y.shape[0] != n_expected:
        raise ValueError(
            f"{_name(owner)} expected {what} for {n_expected} samples, got shape {shape_of(y)}; "
            f"pass one target per row of the inputs"
        )


# Targets ------------------------------------------------------------------------------------------------------------


def class_targets(backend, y, n_classes: int, owner: object):
    """Integer labels (n,) or one-hot rows (n, n_classes), checked once per object; returns them unchanged.

    Labels must be integers in [0, n_classes) (integer-valued floats are accepted); one-hot rows hold 0/1 with
    one 1 each. Bool labels are a TypeError.
    """
    xp = backend.xp
    if len(y.shape) not in (1, 2) or (len(y.shape) == 2 and y.shape[1] != n_classes):
        raise ValueError(
            f"{_name(owner)} expected class labels of shape (n_samples,) or one-hot rows of shape "
            f"(n_samples, {n_classes}), got shape {shape_of(y)}; pass one label per sample"
        )
    if is_kind(xp, y.dtype, "bool") or not is_kind(xp, y.dtype, ("integral", "real floating")):
        raise TypeError(
            f"{_name(owner)} expected class labels as integers (or one-hot rows), got dtype {y.dtype}; "
            f"convert with y.astype('int64')"
        )
    key = ("classes", n_classes)
    if y.shape[0] == 0 or already_checked(y, key):
        return y
    with backend.quiet_float_errors():  # inf in one-hot rows makes NaN sums: counted as bad rows
        summary = backend.to_numpy(_label_summary(backend, y, n_classes))
    _raise_for_labels(summary, n_classes, owner, one_hot=len(y.shape) == 2)
    remember(y, key)
    return y


def _label_summary(backend, y, n_classes: int):
    """One small array, copied once: [rows bad, min, max] of what can go wrong with these targets."""
    xp = backend.xp
    if len(y.shape) == 1 and is_kind(xp, y.dtype, "integral"):  # integers are whole and never NaN: two reductions
        low, high = xp.min(y), xp.max(y)
        return xp.stack([xp.astype(value, backend.wide_float) for value in (low - low, low, high)])
    values = xp.astype(y, backend.wide_float)
    if len(y.shape) == 2:
        not_binary = xp.sum(xp.astype((values != 0) & (values != 1), values.dtype), axis=1)
        row_sums = xp.sum(values, axis=1)
        bad_rows = xp.sum(xp.astype((not_binary > 0) | (row_sums != 1), values.dtype))
        return xp.stack([bad_rows, xp.min(row_sums), xp.max(row_sums)])
    non_integer = xp.sum(xp.astype(xp.isnan(values) | (values != xp.round(values)), values.dtype))
    finite_values = xp.where(xp.isnan(values), xp.zeros_like(values), values)
    return xp.stack([non_integer, xp.min(finite_values), xp.max(finite_values)])


def _raise_for_labels(summary, n_classes: int, owner: object, *, one_hot: bool) -> None:
    bad, low, high = (float(v) for v in summary)
    if one_hot and bad:
        raise ValueError(
            f"{_name(owner)} expected one-hot rows (zeros and a single 1 per row), got {int(bad)} rows that are not; "
            f"pass integer labels instead, or fix those rows"
        )
    if one_hot:
        return
    if bad:
        raise ValueError(
            f"{_name(owner)} expected integer class labels in [0, {n_classes}), got {int(bad)} non-integer or NaN "
            f"values; "
            f"round or clean the labels and convert with y.astype('int64')"
        )
    if low < 0 or high >= n_classes:
        raise ValueError(
            f"{_name(owner)} expected class labels in [0, {n_classes}) for {n_classes} outputs, got values from "
            f"{low:g} to "
            f"{high:g}; relabel the data or give the last Dense layer more neurons"
        )


def value_targets(xp, y, n_samples: int, n_outputs: int, owner: object):
    """Regression or binary targets shaped like the outputs; (n,) is reshaped once for a single output."""
    shape = shape_of(y)
    if shape == (n_samples, n_outputs):
        return y
    if shape == (n_samples,) and n_outputs == 1:
        return xp.reshape(y, (n_samples, 1))
    hint = "; reshape them with y.reshape(-1, 1)" if n_outputs == 1 else f"; pass {n_outputs} targets per sample"
    raise ValueError(
        f"{_name(owner)} expected targets of shape ({n_samples}, {n_outputs}) like the outputs, got {shape}{hint}"
    )


def _name(owner: object) -> str:
    """How a message names its component: a string as is, a component by its label (built only on error)."""
    return owner if isinstance(owner, str) else getattr(owner, "label", repr(owner))


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn, pointing at the user's line: the first caller outside the nnx package."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame: FrameType | None = sys._getframe(1)
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def extra_module(name: str, problem: str) -> ModuleType:
    """The optional package `name`, imported now, or an ImportError saying `problem` (what needs it and what to
    install): how nnx loads the packages of its extras, only when a feature needs one."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(problem) from error
