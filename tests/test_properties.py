"""Properties that must hold for any input, explored with hypothesis on every backend."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import nnx

logits = arrays(
    np.float64,
    st.tuples(st.integers(1, 6), st.integers(2, 5)),
    elements=st.floats(-50, 50, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=logits, shift=st.floats(-100, 100))
def test_softmax_rows_are_distributions_and_shift_invariant(backend, x, shift):
    softmax = nnx.Softmax(xp=backend)
    softmax.forward(backend.asarray(x))
    probabilities = backend.to_numpy(softmax.output)
    exact = probabilities.dtype == np.float64  # float32 where the backend has no float64 (JAX without x64)
    assert np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12 if exact else 1e-6)
    softmax.forward(backend.asarray(x + shift))
    np.testing.assert_allclose(backend.to_numpy(softmax.output), probabilities, atol=1e-9 if exact else 1e-4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=logits, data=st.data())
def test_combined_gradient_rows_sum_to_zero(backend, x, data):
    labels = np.array(data.draw(st.lists(st.integers(0, x.shape[1] - 1), min_size=x.shape[0], max_size=x.shape[0])))
    head = nnx.SoftmaxCategoricalCrossentropy(xp=backend)
    y = backend.asarray(labels)
    loss = float(backend.to_numpy(head.forward(backend.asarray(x), y)))
    head.backward(head.output, y)
    assert 0 <= loss <= -np.log(1e-7) + 1e-9
    gradient = backend.to_numpy(head.dinputs)
    np.testing.assert_allclose(gradient.sum(axis=1), 0.0, atol=1e-12 if gradient.dtype == np.float64 else 1e-6)
