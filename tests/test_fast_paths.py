"""Every backend fast path against the generic `xp` kernel it replaces: same numbers to float32 rounding, and
no argument the caller can still hold is changed (only the documented in-place optimizer state)."""

from __future__ import annotations

import numpy as np
import pytest

import nnx
from nnx.backends import numpy as numpy_backends
from nnx.backends._base import Backend
from nnx.datasets import spiral_data
from nnx.recipes import book_layers, train_book_loop
from tests.conftest import BACKEND_PARAMS, backend_or_skip

RTOL = {"float32": 2e-6, "float64": 1e-13}
ATOL = {"float32": 1e-7, "float64": 1e-15}


@pytest.fixture(autouse=True)
def threads_from_small_sizes(monkeypatch):
    """The multi-threaded kernels (with Numba) from 100 000 elements on, so the 20 000-row cases reach them."""
    monkeypatch.setattr(numpy_backends, "PARALLEL_MIN_ELEMENTS", 100_000)


@pytest.fixture(params=BACKEND_PARAMS)
def fast(request):
    """Each selected backend that has fast paths (skipped for the others)."""
    backend = backend_or_skip(request.param)
    if backend.reference() is backend:
        pytest.skip(f"{backend.name}: no fast paths (its kernels are the generic ones)")
    return backend


def _arrays(backend, dtype, *shapes, seed=0, positive=False):
    rng = np.random.default_rng(seed)
    host = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    if positive:
        host = [np.abs(values) + np.asarray(0.1, dtype) for values in host]
    return [backend.asarray(values) for values in host]


def _host(backend, values):
    if values is None:
        return None
    if isinstance(values, tuple):
        return tuple(_host(backend, each) for each in values)
    return backend.to_numpy(values)


def _assert_same(fast, expected, actual, dtype, terms=1):
    """Equal to rounding; `terms`: how many values a result may add up (sums in another order round apart)."""
    expected, actual = _host(fast, expected), _host(fast, actual)
    if isinstance(expected, tuple):
        assert len(expected) == len(actual)
        for each_expected, each_actual in zip(expected, actual, strict=True):
            _assert_same(fast, each_expected, each_actual, dtype, terms)
        return
    if expected is None:
        assert actual is None
        return
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=ATOL[dtype] * terms)


def _copies(backend, arrays):
    return [backend.xp.asarray(values, copy=True) for values in arrays]


def _labels(backend, n, classes, dtype="int64", seed=1):
    return backend.asarray(np.random.default_rng(seed).integers(0, classes, n).astype(dtype))


READ_ONLY_KERNELS = {
    "dense_forward": lambda b, dtype, n: (_arrays(b, dtype, (n, 5), (5, 7), (1, 7)), {}),
    "dense_forward narrow": lambda b, dtype, n: (_arrays(b, dtype, (n, 2), (2, 7), (1, 7)), {}),
    "dense_backward": lambda b, dtype, n: (_arrays(b, dtype, (n, 5), (5, 7), (n, 7)), {}),
    "relu_forward": lambda b, dtype, n: (_arrays(b, dtype, (n, 7)), {}),
    "relu_backward": lambda b, dtype, n: (_arrays(b, dtype, (n, 7), (n, 7)), {}),
    "softmax": lambda b, dtype, n: ([b.xp.asarray(_arrays(b, dtype, (n, 4))[0] * 30)], {}),
    "categorical_crossentropy": lambda b, dtype, n: (
        [b.softmax(_arrays(b, dtype, (n, 4))[0]), _labels(b, n, 4)],
        {"epsilon": 1e-7},
    ),
    "softmax_crossentropy_backward": lambda b, dtype, n: (
        [b.softmax(_arrays(b, dtype, (n, 4))[0]), _labels(b, n, 4)],
        {},
    ),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 37, 5000, 20_000])  # 5000 rows: the BLAS column sum; 20 000: threads (Numba)
@pytest.mark.parametrize("kernel", sorted(READ_ONLY_KERNELS))
def test_kernel_matches_the_generic_one_and_leaves_its_arguments_alone(fast, kernel, n, dtype):
    arguments, options = READ_ONLY_KERNELS[kernel](fast, dtype, n)
    before = _copies(fast, arguments)
    name = kernel.split()[0]
    expected = getattr(Backend, name)(fast.reference(), *before, **options)
    actual = getattr(fast, name)(*arguments, **options)
    _assert_same(fast, expected, actual, dtype, terms=n)
    for original, argument in zip(before, arguments, strict=True):
        np.testing.assert_array_equal(_host(fast, argument), _host(fast, original))


@pytest.mark.parametrize("n", [37, 20_000])
@pytest.mark.parametrize("kernel", ["relu_forward", "relu_backward", "dense_forward"])
def test_kernels_keep_nan_and_inf_where_the_generic_ones_do(fast, kernel, n):
    host = np.random.default_rng(3).standard_normal((n, 7)).astype("float32")
    host[::5, 1], host[::7, 2], host[::11, 3] = np.nan, np.inf, -np.inf
    values = fast.asarray(host)
    arguments = {
        "relu_forward": (values,),
        "relu_backward": (values, fast.asarray(host[:, ::-1].copy())),
        "dense_forward": (values, *_arrays(fast, "float32", (7, 3), (1, 3))),
    }[kernel]
    with fast.quiet_float_errors():
        expected = getattr(Backend, kernel)(fast.reference(), *arguments)
        actual = getattr(fast, kernel)(*arguments)
    np.testing.assert_array_equal(np.isnan(_host(fast, actual)), np.isnan(_host(fast, expected)))
    np.testing.assert_array_equal(np.isinf(_host(fast, actual)), np.isinf(_host(fast, expected)))


@pytest.mark.parametrize("labels_dtype", ["int32", "uint8", "float32"])
def test_crossentropy_kernels_accept_every_label_dtype_the_losses_accept(fast, labels_dtype):
    probabilities = fast.softmax(_arrays(fast, "float32", (9, 3))[0])
    labels = _labels(fast, 9, 3, labels_dtype)
    for kernel, options in (("categorical_crossentropy", {"epsilon": 1e-7}), ("softmax_crossentropy_backward", {})):
        expected = getattr(Backend, kernel)(fast.reference(), probabilities, labels, **options)
        _assert_same(fast, expected, getattr(fast, kernel)(probabilities, labels, **options), "float32")


OPTIMIZER_KERNELS = {
    "sgd_update": (0, {"learning_rate": 0.5}),
    "sgd_update with momentum": (1, {"learning_rate": 0.5, "momentum": 0.9}),
    "adagrad_update": (1, {"learning_rate": 0.5, "epsilon": 1e-7}),
    "rmsprop_update": (1, {"learning_rate": 0.02, "epsilon": 1e-7, "rho": 0.999}),
    "adam_update": (2, {"learning_rate": 0.05, "epsilon": 1e-7, "beta_1": 0.9, "beta_2": 0.999, "step": 3}),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(OPTIMIZER_KERNELS))
def test_optimizer_update_matches_the_generic_one(fast, name, dtype):
    kernel = name.split()[0]
    n_state, options = OPTIMIZER_KERNELS[name]
    values, gradient = _arrays(fast, dtype, (6, 4), (6, 4))
    state = _arrays(fast, dtype, *[(6, 4)] * n_state, seed=2, positive=True)
    if kernel == "sgd_update" and n_state:
        options = {**options, "momentums": state[0]}
        state = []
    else:
        options = dict(options)
    reference_options = {key: fast.xp.asarray(v, copy=True) if key == "momentums" else v for key, v in options.items()}
    expected = getattr(Backend, kernel)(
        fast.reference(), *_copies(fast, [values, gradient, *state]), **reference_options
    )
    gradient_before = _copies(fast, [gradient])[0]
    actual = getattr(fast, kernel)(values, gradient, *state, **options)
    _assert_same(fast, expected, actual, dtype)
    np.testing.assert_array_equal(_host(fast, gradient), _host(fast, gradient_before))


def _spiral_training(backend, optimizer, steps=30):
    """The chapter-10 layer loop for `steps` steps: the losses and the final parameters, on the host."""
    nnx.seed(0)
    X, y = spiral_data(samples=100, classes=3)
    X, y = backend.asarray(X, dtype="float32"), backend.asarray(y)
    with nnx.backends.use(backend):
        network = book_layers(optimizer=optimizer())
    losses = []
    train_book_loop(network, X, y, steps, on_step=lambda epoch, loss: losses.append(loss))
    dense1, dense2 = network.dense1, network.dense2
    parameters = [dense1.weights, dense1.biases, dense2.weights, dense2.biases]
    return [float(backend.to_numpy(loss)) for loss in losses], [backend.to_numpy(p) for p in parameters]


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: nnx.SGD(decay=1e-3, momentum=0.9),
        lambda: nnx.Adagrad(decay=1e-4),
        lambda: nnx.RMSprop(learning_rate=0.02, decay=1e-5, rho=0.999),
        lambda: nnx.Adam(learning_rate=0.05, decay=5e-7),
    ],
    ids=["sgd", "adagrad", "rmsprop", "adam"],
)
def test_book_loop_on_fast_paths_tracks_the_generic_path(fast, optimizer):
    expected_losses, expected_parameters = _spiral_training(fast.reference(), optimizer)
    losses, parameters = _spiral_training(fast, optimizer)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5)
    for actual, expected in zip(parameters, expected_parameters, strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-6)


def test_layer_outputs_stay_valid_until_the_next_call_on_that_layer(fast):
    X = _arrays(fast, "float32", (50, 2))[0]
    y = _labels(fast, 50, 3)
    with nnx.backends.use(fast):
        dense, head = nnx.Dense(2, 3), nnx.SoftmaxCategoricalCrossentropy()
    dense.forward(X)
    head.forward(dense.output, y)
    probabilities = _host(fast, head.output)
    head.backward(head.output, y)
    dense.backward(head.dinputs)
    np.testing.assert_array_equal(_host(fast, head.output), probabilities)
    kept = [_host(fast, array) for array in (dense.output, dense.dweights, dense.dinputs)]
    nnx.SGD(xp=fast).update_params(dense)
    for before, array in zip(kept, (dense.output, dense.dweights, dense.dinputs), strict=True):
        np.testing.assert_array_equal(_host(fast, array), before)


def test_compile_false_turns_the_numba_kernels_off(fast, monkeypatch):
    if not hasattr(fast, "compile"):
        pytest.skip(f"{fast.name}: no Numba kernels")
    calls = []
    monkeypatch.setattr(fast, "_fused", lambda elements: calls.append(elements))
    values = _arrays(fast, "float32", (20_000, 7))[0]
    np.testing.assert_array_equal(fast.relu_forward(values), np.maximum(values, 0))
    assert calls == [140_000]
    monkeypatch.undo()
    fast.compile = False
    try:
        assert fast._parallel(10**9) is None
        assert fast._fused(10**9) is None
    finally:
        fast.compile = True


@pytest.mark.parametrize("columns", [1, 2, 3, 7, 8, 33])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_row_reductions_give_numpys_bits(columns, dtype):
    rng = np.random.default_rng(columns)
    values = (rng.standard_normal((5003, columns)) * 10 ** rng.uniform(-4, 4, (5003, columns))).astype(dtype)
    for ufunc in (np.add, np.maximum):
        expected = ufunc.reduce(values, axis=1, keepdims=True)
        np.testing.assert_array_equal(numpy_backends._row_reduce(ufunc, values), expected)


def test_reference_backend_has_no_fast_path_and_shares_the_arrays(fast):
    reference = fast.reference()
    assert reference.reference() is reference
    assert type(reference).dense_forward is Backend.dense_forward
    assert reference.owns(fast.asarray([1.0])) and reference.name == fast.name
