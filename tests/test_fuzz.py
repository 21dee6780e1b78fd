"""Property-based fuzzing of the public API: any generated call succeeds with finite results or raises a documented
exception (ValueError, TypeError, nnx.CallOrderError, nnx.DivergenceError); anything else fails.

Inputs are generated shapes, dtypes, values (NaN, inf, huge), hyperparameters (floats, ints, NumPy scalars,
strings, None, ...) and backends. Each property also checks the oracle it can: valid input must succeed, invalid
input must be refused (never computed silently), and a refused call leaves the parameters alone.

Profiles: ``nnx-fuzz-default`` (a few dozen cases per test) in normal runs; ``nnx-fuzz`` with NNX_FUZZ=1
(``nox -s fuzz``): at least 10 000 cases in all, counted and printed at the end. They are not named "default" and
"fuzz" on purpose: registering a profile named "default" would change Hypothesis' defaults for every test file.

Where a test knows the one reason an input is wrong (finite data beyond float32's range, an integer beyond the
float range, binary targets outside [0, 1]), it asserts the error nnx documents for it, by type and message; a
regression fails the test.
"""

from __future__ import annotations

import collections
import contextlib
import math
import numbers
import os
import re
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nnx
from tests.helpers import BEYOND_FLOAT32

FUZZ = os.environ.get("NNX_FUZZ") == "1"
HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("nnx-fuzz-default", max_examples=30, deadline=None, suppress_health_check=HEALTH)
settings.register_profile("nnx-fuzz", max_examples=2000, deadline=None, suppress_health_check=HEALTH)
PROFILE = settings.get_profile("nnx-fuzz" if FUZZ else "nnx-fuzz-default")
MINIMUM_CASES = 10_000  # what a NNX_FUZZ=1 run of the whole file must reach

DOCUMENTED = (ValueError, TypeError, nnx.CallOrderError, nnx.DivergenceError)
CASES: collections.Counter = collections.Counter()


def _backends() -> list[str]:
    """numpy and array_api_strict (the CPU backends), narrowed to NNX_TEST_BACKENDS when nox sets it."""
    chosen = os.environ.get("NNX_TEST_BACKENDS")
    names = [name for name in ("numpy", "array_api_strict") if not chosen or name in chosen.split(",")]
    return [name for name in names if name in nnx.backends.available()]


BACKENDS = _backends()
pytestmark = pytest.mark.skipif(not BACKENDS, reason="none of the fuzzed backends is available")


@pytest.fixture(scope="module", autouse=True)
def case_report(request):
    """Print the number of generated cases when the module is done, past output capture."""
    yield
    lines = [
        f"nnx fuzz: {sum(CASES.values())} generated cases "
        f"({', '.join(f'{name} {count}' for name, count in sorted(CASES.items()))})"
    ]
    capture = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        if reporter is not None:
            reporter.ensure_newline()
        for line in lines:
            if reporter is not None:
                reporter.write_line(line)
            else:  # pragma: no cover - without the terminal plugin
                print(line)


def count(test: str) -> None:
    CASES[test] += 1


# Outcomes --------------------------------------------------------------------------------------------------------


class Refusal(NamedTuple):
    """The documented error for an input with one known fault: its class and a regex its message must match."""

    error: type[Exception]
    message: str


BINARY_RANGE = r"BinaryCrossentropy\(\).*expected targets in \[0, 1\], got \d+ values? outside"

FAILED = object()  # what `outcome` returns for a call that raised


def outcome(call, *, valid: bool, refusal: Refusal | None = None):
    """Run `call`: its result, or FAILED when it raised a documented error.

    Valid input must not be refused (a DivergenceError is fine: training may diverge); invalid input must be, with
    `refusal` where the test knows the one fault of the input.
    """
    try:
        result = call()
    except Exception as error:
        if not isinstance(error, DOCUMENTED):
            raise AssertionError(
                f"undocumented exception {type(error).__module__}.{type(error).__name__}: {error}"
            ) from error
        if valid and not isinstance(error, nnx.DivergenceError):
            raise AssertionError(f"valid input was refused: {type(error).__name__}: {error}") from error
        if not valid and refusal is not None:
            assert_refusal(error, refusal)
        return FAILED
    if not valid:
        raise AssertionError(f"invalid input was accepted (result {result!r})")
    return result


def assert_refusal(error: BaseException, refusal: Refusal) -> None:
    if not isinstance(error, refusal.error) or not re.search(refusal.message, str(error)):
        raise AssertionError(
            f"expected {refusal.error.__name__} matching {refusal.message!r}, got {type(error).__name__}: {error}"
        ) from error


# Strategies --------------------------------------------------------------------------------------------------------

backend_names = st.sampled_from(BACKENDS or ["numpy"])

hyper_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 1),
    st.floats(1e-8, 10),
    st.integers(-3, 10),
    st.sampled_from([0, 1, -1, 1.0, 0.9, 0.999, 1e-7, 1e308, -0.0, math.inf, -math.inf, math.nan, 2**62, 10**400]),
    st.integers(-3, 10).map(np.int64),
    st.floats(-10, 10, width=32).map(np.float32),
    st.floats(allow_nan=True, allow_infinity=True).map(np.float64),
    st.integers(0, 10).map(np.uint8),
    st.sampled_from(["0.1", "", "nan", None, True, False, np.bool_(True), 1 + 0j, [0.1], (), b"1"]),
)


def is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def judge(value, kind: str):
    """The exception class a check of `kind` must raise for `value` (None: accepted)."""
    if kind == "positive_int":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            return TypeError
        return None if isinstance(value, numbers.Integral) and value >= 1 else ValueError
    if not is_real(value):
        return TypeError
    try:
        number = float(value)
    except OverflowError:
        return ValueError
    low_open, high = {"positive": (True, None), "non_negative": (False, None), "fraction": (False, 1.0)}[kind]
    inside = math.isfinite(number) and (number > 0 if low_open else number >= 0) and (high is None or number < high)
    return None if inside else ValueError


def verdicts(values: dict, kinds: dict) -> set:
    return {judge(value, kinds[name]) for name, value in values.items()} - {None}


def check_refusal(error_kinds: set, call, component: str) -> None:
    """`call()` must raise one of `error_kinds` (a ValueError when every bad value is a bad number, ...), with a
    message that names `component`."""
    try:
        call()
    except Exception as error:
        if not isinstance(error, tuple(error_kinds)) or component not in str(error):
            raise AssertionError(
                f"expected {' or '.join(sorted(k.__name__ for k in error_kinds))} naming {component}, "
                f"got {type(error).__name__}: {error}"
            ) from error
        return
    raise AssertionError(f"bad hyperparameters were accepted (expected {sorted(k.__name__ for k in error_kinds)})")


def floats_for(dtype) -> st.SearchStrategy:
    """Values of `dtype`: mostly ordinary numbers, with NaN, infinities and the extremes."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return st.one_of(st.integers(-3 if dtype.kind == "i" else 0, 5), st.integers(info.min, info.max))
    if dtype.kind == "c":
        return st.complex_numbers(max_magnitude=10)
    width = dtype.itemsize * 8
    big = float(np.finfo(dtype).max)
    return st.one_of(
        st.floats(-5, 5, width=width),
        st.floats(allow_nan=True, allow_infinity=True, width=width),
        st.sampled_from([0.0, -0.0, big, -big, 1e30 if width == 32 else 1e300, math.inf, -math.inf, math.nan]),
    )


INPUT_DTYPES = [np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_]


@st.composite
def batches(draw, features: int, *, dtypes=INPUT_DTYPES, rows=(0, 5), valid_bias: float = 0.7):
    """(host array, is_valid_batch): mostly 2-d (n, features) real finite batches, some of any shape and dtype."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    if draw(st.floats(0, 1)) < valid_bias:
        columns = features if features is not None else draw(st.integers(1, 4))
        shape = (draw(st.integers(max(rows[0], 1), rows[1])), columns)
    else:
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
    plain = draw(st.booleans())
    elements = st.floats(-5, 5, width=dtype.itemsize * 8) if plain and dtype.kind == "f" else floats_for(dtype)
    array = draw(hnp.arrays(dtype, shape, elements=elements))
    return array, is_batch(array, features)


def is_batch(array: np.ndarray, features: int | None) -> bool:
    return (
        array.ndim == 2
        and array.shape[0] > 0
        and array.shape[1] > 0
        and (features is None or array.shape[1] == features)
        and array.dtype.kind in "fiu"
        and bool(np.isfinite(array).all())
    )


def fits(array: np.ndarray, dtype) -> bool:
    """Whether every value stays finite when cast to `dtype` (nnx casts inputs to the layer's dtype first)."""
    if array.dtype.kind not in "fiu" or array.size == 0:
        return True
    return bool((np.abs(array.astype(np.float64)) <= np.finfo(dtype).max).all())


def in_unit_interval(y: np.ndarray, dtype) -> bool:
    """Whether every target is in [0, 1] once cast to `dtype`."""
    seen = y.astype(dtype)
    return bool(((seen >= 0) & (seen <= 1)).all())


def host(backend, x):
    return backend.to_numpy(x)


def finite(backend, x) -> bool:
    return bool(np.isfinite(host(backend, x)).all())


# Constructors ------------------------------------------------------------------------------------------------------

OPTIMIZERS = {
    nnx.SGD: {"learning_rate": "positive", "decay": "non_negative", "momentum": "fraction"},
    nnx.Adagrad: {"learning_rate": "positive", "decay": "non_negative", "epsilon": "positive"},
    nnx.RMSprop: {"learning_rate": "positive", "decay": "non_negative", "epsilon": "positive", "rho": "fraction"},
    nnx.Adam: {
        "learning_rate": "positive",
        "decay": "non_negative",
        "epsilon": "positive",
        "beta_1": "fraction",
        "beta_2": "fraction",
    },
}


@PROFILE
@given(data=st.data(), name=backend_names, cls=st.sampled_from(list(OPTIMIZERS)))
def test_optimizer_constructors(data, name, cls):
    count("optimizer constructors")
    kinds = OPTIMIZERS[cls]
    values = data.draw(st.fixed_dictionaries({}, optional=dict.fromkeys(kinds, hyper_values)))
    bad = verdicts(values, kinds)
    backend = nnx.backends.get(name)
    if bad:
        check_refusal(bad, lambda: cls(**values, xp=backend), cls.__name__)
        return
    optimizer = outcome(lambda: cls(**values, xp=backend), valid=True)
    if optimizer is FAILED:
        return
    for parameter, kind in kinds.items():
        stored = getattr(optimizer, parameter)
        assert type(stored) is float and math.isfinite(stored), (parameter, stored)
        assert judge(stored, kind) is None, (parameter, stored)
        if parameter in values:
            assert stored == float(values[parameter])
    assert optimizer.iterations == 0 and optimizer.state == {} and optimizer.backend is backend


positive_ints = st.one_of(
    st.integers(-2, 6),
    st.integers(1, 6).map(np.int64),
    st.sampled_from([0, 1.0, 2.5, "3", None, True, np.bool_(True), np.float64(2.0), math.nan, math.inf]),
)


@PROFILE
@given(data=st.data(), name=backend_names)
def test_dense_constructor(data, name):
    count("Dense/Dropout constructors")
    kinds = {"n_inputs": "positive_int", "n_neurons": "positive_int"}
    kinds |= dict.fromkeys(
        (
            "weight_regularizer_l1",
            "weight_regularizer_l2",
            "bias_regularizer_l1",
            "bias_regularizer_l2",
            "weight_scale",
        ),
        "non_negative",
    )
    values = {
        "n_inputs": data.draw(positive_ints, "n_inputs"),
        "n_neurons": data.draw(positive_ints, "n_neurons"),
        **data.draw(st.fixed_dictionaries({}, optional=dict.fromkeys(list(kinds)[2:], hyper_values)), "floats"),
    }
    dtype = data.draw(st.sampled_from([None, "float32", "float64", np.float64, "float16", "int32", "bool"]), "dtype")
    backend = nnx.backends.get(name)
    bad = verdicts(values, kinds)
    component = "Dense" if bad else "dtype must be one of float32, float64"  # the dtype error names no layer
    if dtype in ("float16", "int32", "bool"):
        bad.add(ValueError)
    if not bad and float(values.get("weight_scale", 0.01)) > 1e30:
        return  # weights of weight_scale * N(0, 1) may overflow the dtype: refused (tested elsewhere) or not
    positional = (values.pop("n_inputs"), values.pop("n_neurons"))
    build = lambda: nnx.Dense(*positional, **values, dtype=dtype, xp=backend)  # noqa: E731
    if bad:
        check_refusal(bad, build, component)
        return
    layer = outcome(build, valid=True)
    if layer is FAILED:
        return
    assert tuple(layer.weights.shape) == (int(positional[0]), int(positional[1]))
    assert tuple(layer.biases.shape) == (1, int(positional[1]))
    assert finite(backend, layer.weights) and not host(backend, layer.biases).any()


@PROFILE
@given(rate=hyper_values, name=backend_names)
def test_dropout_constructor(rate, name):
    count("Dense/Dropout constructors")
    backend = nnx.backends.get(name)
    error = judge(rate, "fraction")
    if error is not None:
        check_refusal({error}, lambda: nnx.Dropout(rate, xp=backend), "Dropout")
        return
    layer = outcome(lambda: nnx.Dropout(rate, xp=backend), valid=True)
    if layer is not FAILED:
        assert 0 < layer.rate <= 1 and layer.get_config() == {"rate": pytest.approx(float(rate))}


# Layers ------------------------------------------------------------------------------------------------------------


@PROFILE
@given(data=st.data(), name=backend_names, features=st.integers(1, 3), neurons=st.integers(1, 3))
def test_dense_forward(data, name, features, neurons):
    count("Dense.forward")
    backend = nnx.backends.get(name)
    layer = nnx.Dense(features, neurons, xp=backend, dtype=data.draw(st.sampled_from(["float32", "float64"])))
    weights = host(backend, layer.weights)
    x, batch = data.draw(batches(features))
    in_range = fits(x, host(backend, layer.weights).dtype)
    refusal = None if in_range else Refusal(ValueError, re.escape(repr(layer)) + " inputs .*" + BEYOND_FLOAT32)
    try:
        inputs = backend.asarray(x)
    except TypeError:  # a dtype this backend does not have: documented
        return
    ran = outcome(lambda: layer.forward(inputs), valid=batch and in_range, refusal=refusal if batch else None)
    ran = ran is not FAILED
    np.testing.assert_array_equal(host(backend, layer.weights), weights)
    assert (layer.output is not None) == ran
    if ran:
        assert tuple(layer.output.shape) == (x.shape[0], neurons)
        assert finite(backend, layer.output)


ACTIVATIONS = {
    "ReLU": lambda b: nnx.ReLU(xp=b),
    "Softmax": lambda b: nnx.Softmax(xp=b),
    "Sigmoid": lambda b: nnx.Sigmoid(xp=b),
    "Linear": lambda b: nnx.Linear(xp=b),
    "Dropout": lambda b: nnx.Dropout(0.25, xp=b),
}


@PROFILE
@given(data=st.data(), name=backend_names, kind=st.sampled_from(list(ACTIVATIONS)), training=st.booleans())
def test_activation_forward_and_backward(data, name, kind, training):
    count("activations")
    backend = nnx.backends.get(name)
    layer = ACTIVATIONS[kind](backend)
    x, valid = data.draw(batches(None))
    try:
        inputs = backend.asarray(x)
    except TypeError:
        return
    if x.ndim == 2 and x.shape[0] > 0 and x.shape[1] == 0 and x.dtype.kind in "fiu":
        with pytest.raises(ValueError, match="at least one feature"):
            layer.forward(inputs, training=training)
        return
    if outcome(lambda: layer.forward(inputs, training=training), valid=valid) is FAILED:
        return
    output = host(backend, layer.output)
    with np.errstate(over="ignore"):  # Dropout divides the kept inputs by 1 - rate: inf beyond the dtype's range
        scaled_beyond = kind == "Dropout" and training and np.abs(x / 0.75).max(initial=0) > np.finfo(output.dtype).max
    assert output.shape == x.shape and (np.isfinite(output).all() or scaled_beyond)
    if kind in ("Softmax", "Sigmoid"):
        assert ((output >= 0) & (output <= 1)).all()
    if kind == "Softmax":
        np.testing.assert_allclose(output.sum(axis=1), 1.0, rtol=1e-5)
    gradient = backend.asarray(np.ones(x.shape), dtype=output.dtype.name)
    if outcome(lambda: layer.backward(gradient), valid=True) is not FAILED:
        assert tuple(layer.dinputs.shape) == x.shape and finite(backend, layer.dinputs)


# Losses ------------------------------------------------------------------------------------------------------------

LOSSES = {
    "CategoricalCrossentropy": nnx.CategoricalCrossentropy,
    "BinaryCrossentropy": nnx.BinaryCrossentropy,
    "MeanSquaredError": nnx.MeanSquaredError,
    "MeanAbsoluteError": nnx.MeanAbsoluteError,
}


def labels_ok(y: np.ndarray, n: int, classes: int) -> bool:
    """Whether `y` holds integer labels in [0, classes) or one-hot rows for n > 0 samples (what nnx must accept)."""
    if y.dtype.kind not in "iuf" or n == 0:
        return False
    with np.errstate(all="ignore"):
        if y.shape == (n,):
            return bool((np.isfinite(y) & (y == np.round(y)) & (y >= 0) & (y < classes)).all())
        if y.shape == (n, classes):
            return bool((np.isin(y, (0, 1)).all(axis=1) & (y.sum(axis=1) == 1)).all())
    return False


@st.composite
def class_targets(draw, n: int, classes: int):
    """(targets, valid): integer labels or one-hot rows, sometimes out of range, fractional, NaN, bool or misshapen."""
    form = draw(st.sampled_from(["labels", "labels", "float-labels", "one-hot", "bool", "any"]))
    length = n if draw(st.floats(0, 1)) < 0.9 else draw(st.integers(0, n + 2))
    if form == "labels":
        y = np.array(draw(st.lists(st.integers(-1, classes), min_size=length, max_size=length)), dtype=np.int64)
    elif form == "float-labels":
        values = st.one_of(st.integers(0, classes - 1).map(float), st.floats(allow_nan=True, allow_infinity=True))
        y = np.array(draw(st.lists(values, min_size=length, max_size=length)), dtype=np.float64)
    elif form == "one-hot":
        width = classes if draw(st.floats(0, 1)) < 0.9 else draw(st.integers(1, classes + 1))
        dtype = draw(st.sampled_from([np.float32, np.float64, np.int64]))
        y = np.eye(width, dtype=dtype)[draw(st.lists(st.integers(0, width - 1), min_size=length, max_size=length))]
        y = y.reshape(length, width)
        if draw(st.booleans()) and length:
            y[draw(st.integers(0, length - 1))] = draw(hnp.arrays(dtype, width, elements=floats_for(dtype)))
    elif form == "bool":
        y = np.zeros(length, dtype=bool)
    else:
        dtype = draw(st.sampled_from(INPUT_DTYPES))
        y = draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4), elements=floats_for(dtype)))
    return y, labels_ok(y, n, classes)


@st.composite
def value_targets(draw, n: int, outputs: int):
    """(targets, valid): targets shaped like the outputs, (n,) for one output, or misshapen."""
    shapes = [(n, outputs), (n, outputs)] + ([(n,)] if outputs == 1 else []) + [(n * outputs,), (n, outputs + 1), ()]
    shape = draw(st.sampled_from(shapes))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.float64, np.int64, np.bool_]))
    plain = draw(st.booleans())
    plain = plain and np.dtype(dtype).kind == "f"
    elements = st.floats(-2, 2, width=np.dtype(dtype).itemsize * 8) if plain else floats_for(dtype)
    array = draw(hnp.arrays(dtype, shape, elements=elements))
    good_shape = shape == (n, outputs) or (outputs == 1 and shape == (n,))
    return array, good_shape and n > 0 and dtype != np.bool_ and bool(np.isfinite(array).all())


@PROFILE
@given(
    data=st.data(),
    name=backend_names,
    loss_name=st.sampled_from(list(LOSSES)),
    n=st.integers(1, 5),
    k=st.integers(1, 4),
    dtype=st.sampled_from([np.float32, np.float64, np.int64]),
)
def test_loss_calculate(data, name, loss_name, n, k, dtype):
    count("losses")
    backend = nnx.backends.get(name)
    loss = LOSSES[loss_name](xp=backend)
    categorical = loss_name == "CategoricalCrossentropy"
    if data.draw(st.booleans(), "probabilities"):
        predictions = data.draw(
            hnp.arrays(dtype, (n, k), elements=st.floats(0, 1, width=32) if dtype != np.int64 else st.integers(0, 1))
        )
    else:
        predictions = data.draw(hnp.arrays(dtype, (n, k), elements=floats_for(dtype)))
    predictions_ok = bool(np.isfinite(predictions).all())
    refusal = None
    if categorical:
        y, targets_ok = data.draw(class_targets(n, k))
    else:
        y, well_formed = data.draw(value_targets(n, k))
        seen_as = predictions.dtype if predictions.dtype.kind == "f" else np.dtype(np.float32)
        in_range = fits(y, seen_as)
        in_unit = loss_name != "BinaryCrossentropy" or in_unit_interval(y, y.dtype)  # checked in their own dtype
        targets_ok = well_formed and in_range and in_unit
        if predictions_ok and well_formed and not in_range:
            refusal = Refusal(ValueError, re.escape(repr(loss)) + " targets .*" + BEYOND_FLOAT32)
        elif predictions_ok and well_formed and not in_unit:
            refusal = Refusal(ValueError, BINARY_RANGE)
    valid = predictions_ok and targets_ok
    result = outcome(
        lambda: loss.calculate(backend.asarray(predictions), backend.asarray(y)), valid=valid, refusal=refusal
    )
    if result is FAILED:
        assert loss.accumulated_count == 0
        return
    value = float(host(backend, result))
    huge = max(np.abs(a.astype(np.float64)).max(initial=0) for a in (predictions, y)) > 1e15  # squares overflow
    assert math.isfinite(value) or huge, value
    if categorical or loss_name == "BinaryCrossentropy":
        assert 0 <= value <= -math.log(1e-7) + 1e-4


# The Model ---------------------------------------------------------------------------------------------------------

KINDS = ("classifier", "regression", "binary")


def build_model(backend, kind: str, optimizer, outputs: int) -> nnx.Model:
    with nnx.backends.use(backend):
        model = nnx.Model()
        model.add(nnx.Dense(2, 3, weight_scale=0.5))
        model.add(nnx.ReLU())
        model.add(nnx.Dense(3, outputs, weight_scale=0.5))
        model.add({"classifier": nnx.Softmax, "regression": nnx.Linear, "binary": nnx.Sigmoid}[kind]())
        loss = {"classifier": nnx.CategoricalCrossentropy, "regression": nnx.MeanSquaredError}.get(
            kind, nnx.BinaryCrossentropy
        )()
        accuracy = {"classifier": nnx.metrics.Categorical(), "regression": nnx.metrics.Regression()}.get(
            kind, nnx.metrics.Categorical(binary=True)
        )
        model.set(loss=loss, optimizer=optimizer, accuracy=accuracy)
        model.finalize()
    return model


def parameters(model) -> list[np.ndarray]:
    return [host(model.backend, array) for layer in model.trainable_layers for array in (layer.weights, layer.biases)]


MODEL_INPUTS_BEYOND_FLOAT32 = Refusal(ValueError, r"Dense\(2 -> 3\) at layer 0 .*inputs .*" + BEYOND_FLOAT32)


@st.composite
def model_targets(draw, kind: str, n: int, outputs: int):
    """(targets, valid, refusal) for a model of `kind`: the refusal where well-formed targets have one fault."""
    if kind == "classifier":
        return *draw(class_targets(n, outputs)), None
    if kind == "binary" and draw(st.booleans()):
        shape = draw(st.sampled_from([(n, outputs)] + ([(n,)] if outputs == 1 else [])))
        return draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 1))), n > 0, None
    y, well_formed = draw(value_targets(n, outputs))
    loss = "MeanSquaredError" if kind == "regression" else "BinaryCrossentropy"
    if well_formed and not fits(y, np.float32):
        return y, False, Refusal(ValueError, loss + r"\(\).*targets .*" + BEYOND_FLOAT32)
    if well_formed and kind == "binary" and not in_unit_interval(y, np.float32):  # checked in the model's dtype
        return y, False, Refusal(ValueError, BINARY_RANGE)
    return y, well_formed, None


epochs_values = st.one_of(st.integers(1, 3), st.sampled_from([0, -1, 1.5, "2", None, True, np.int64(2)]))
batch_values = st.one_of(st.none(), st.integers(1, 6), st.sampled_from([0, -2, 2.0, "2", True, np.int32(3)]))
learning_rates = st.one_of(st.floats(1e-4, 1.0), st.sampled_from([1e3, 1e30, 1e300]), hyper_values)


@PROFILE
@given(
    data=st.data(),
    name=backend_names,
    kind=st.sampled_from(KINDS),
    optimizer=st.sampled_from(list(OPTIMIZERS)),
    learning_rate=learning_rates,
    epochs=epochs_values,
    batch_size=batch_values,
)
def test_model_train(data, name, kind, optimizer, learning_rate, epochs, batch_size):
    count("Model.train")
    backend = nnx.backends.get(name)
    error = judge(learning_rate, "positive")
    if error is not None:
        check_refusal({error}, lambda: optimizer(learning_rate=learning_rate, xp=backend), optimizer.__name__)
        return
    outputs = 3 if kind == "classifier" else data.draw(st.integers(1, 2), "outputs")
    model = build_model(backend, kind, optimizer(learning_rate=learning_rate, xp=backend), outputs)
    X, batch = data.draw(batches(2, rows=(1, 6), dtypes=[np.float64, np.float32, np.int64, np.bool_]), "X")
    X_ok = batch and fits(X, np.float32)
    n = X.shape[0] if X.ndim else 0
    y, y_ok, targets_refusal = data.draw(model_targets(kind, n, outputs), "y")
    form = data.draw(st.sampled_from(["host", "list", "backend"]), "form")
    if form == "list":
        X, y = X.tolist(), y.tolist()
    elif form == "backend":
        try:
            X, y = backend.asarray(X), backend.asarray(y)
        except TypeError:
            return
    arguments_ok = judge(epochs, "positive_int") is None and (
        batch_size is None or judge(batch_size, "positive_int") is None
    )
    valid = X_ok and y_ok and arguments_ok
    refusal = None
    if arguments_ok and batch and not X_ok and y_ok:
        refusal = MODEL_INPUTS_BEYOND_FLOAT32
    elif arguments_ok and X_ok:
        refusal = targets_refusal
    before = parameters(model)
    result = outcome(
        lambda: model.train(X, y, epochs=epochs, batch_size=batch_size, print_every=None, on_divergence="raise"),
        valid=valid,
        refusal=refusal,
    )
    after = parameters(model)
    assert all(np.isfinite(array).all() for array in after), "non-finite parameters after train()"
    if result is FAILED:
        if not valid:
            for old, new in zip(before, after, strict=True):
                np.testing.assert_array_equal(new, old)
        return
    assert math.isfinite(result["loss"]) and math.isfinite(result["data_loss"]) and 0 <= result["accuracy"] <= 1


@PROFILE
@given(data=st.data(), name=backend_names, kind=st.sampled_from(KINDS), trained=st.booleans())
def test_model_predict_and_evaluate(data, name, kind, trained):
    count("Model.predict/evaluate")
    backend = nnx.backends.get(name)
    outputs = 3 if kind == "classifier" else 1
    model = build_model(backend, kind, nnx.Adam(learning_rate=0.01, xp=backend), outputs)
    if trained:
        y = np.array([0.0, 1.0]) if kind == "regression" else np.array([0, 1])
        model.train(np.array([[0.1, 0.2], [0.5, -0.3]]), y, epochs=2, print_every=None)
    X, batch = data.draw(batches(2, rows=(1, 6), dtypes=[np.float64, np.float32, np.int64, np.uint8, np.bool_]), "X")
    X_ok = batch and fits(X, np.float32)
    batch_size = data.draw(st.one_of(st.none(), st.integers(1, 4)), "batch_size")
    before = parameters(model)
    refusal = MODEL_INPUTS_BEYOND_FLOAT32 if batch else None
    predictions = outcome(lambda: model.predict(X, batch_size=batch_size), valid=X_ok, refusal=refusal)
    if predictions is not FAILED:
        values = host(backend, predictions)
        moderate = np.abs(X.astype(np.float64)).max() < 1e30  # larger inputs may overflow float32 arithmetic
        assert values.shape == (X.shape[0], outputs) and (np.isfinite(values).all() or not moderate)
        if kind != "regression" and moderate:
            assert ((values >= 0) & (values <= 1)).all()
    if X_ok:
        n = X.shape[0]
        y, y_ok, refusal = data.draw(model_targets(kind, n, outputs), "y")
        result = outcome(
            lambda: model.evaluate(X, y, batch_size=batch_size, verbose=False), valid=y_ok, refusal=refusal
        )
        if result is not FAILED:
            loss, accuracy = result
            extremes = max(np.abs(a.astype(np.float64)).max(initial=0) for a in (X, y))
            huge = extremes > 1e15  # float32 arithmetic on such values may overflow: inf is the right answer
            assert (math.isfinite(loss) or huge) and 0 <= accuracy <= 1
    for old, new in zip(before, parameters(model), strict=True):
        np.testing.assert_array_equal(new, old)


def test_fuzz_case_count():
    """With NNX_FUZZ=1 the whole file must have generated at least MINIMUM_CASES cases."""
    fuzz_tests = {
        "optimizer constructors",
        "Dense/Dropout constructors",
        "Dense.forward",
        "activations",
        "losses",
        "Model.train",
        "Model.predict/evaluate",
    }
    if not FUZZ or set(CASES) != fuzz_tests:
        pytest.skip("counts are checked in a full NNX_FUZZ=1 run of this file")
    assert sum(CASES.values()) >= MINIMUM_CASES, dict(CASES)
