"""The checks of a layer or activation: its shapes and the width the next layer sees, its gradients against finite
differences, its dtype, its errors on bad input, and the same numbers on every backend."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nnx.backends import Backend
from nnx.testing import config, planned
from nnx.testing.numeric import (
    BACKEND_FIX,
    DTYPE_FIX,
    SAMPLES,
    SEED,
    away_from_zero,
    compare,
    comparison_backends,
    dtype_of,
    gradient_problem,
    host,
    inputs,
    is_float,
    kept_rng,
    numeric_gradient,
    rng,
    seeded,
)
from nnx.testing.report import Check, Unmet
from nnx.testing.subject import Factory, Subject, bound, subject, width_of

GRADIENT_FIX = "make backward() set dinputs (and d<name> for each parameter in ARRAYS) to the derivative of forward()"
INPUT_FIX = (
    "check the inputs at the top of forward() and raise a TypeError or ValueError that names the layer (its repr), "
    "before changing any attribute; nnx's own layers call self._accept_batch(inputs)"
)


def output_of(layer: Any, x: Any, training: bool = True) -> Any:
    """`layer.forward(x, training)`'s output, checked to be set and to be an array of the layer's backend."""
    returned = layer.forward(x, training)
    output = getattr(layer, "output", None)
    if output is None:
        got = f" (it returned {type(returned).__name__})" if returned is not None else ""
        raise Unmet(f"forward() did not set self.output{got}", "set self.output in forward(): the Model reads it")
    if not layer.backend.owns(output):
        raise Unmet(
            f"forward() set output to a {type(output).__name__}, not an array of backend {layer.backend.name!r}",
            BACKEND_FIX,
        )
    return output


def dinputs_of(layer: Any, upstream: Any) -> Any:
    """`layer.backward(upstream)`'s dinputs, checked to be set."""
    layer.backward(upstream)
    dinputs = getattr(layer, "dinputs", None)
    if dinputs is None:
        raise Unmet(
            "backward() did not set self.dinputs", "set self.dinputs in backward(): the previous layer reads it"
        )
    return dinputs


def parameter_gradients(layer: Any) -> dict[str, Any]:
    """{name: gradient} for each array in ARRAYS whose gradient backward() set as d<name> (weights: dweights)."""
    names = getattr(layer, "ARRAYS", ())
    return {name: getattr(layer, f"d{name}") for name in names if getattr(layer, f"d{name}", None) is not None}


def widened(layer: Any, backend: Backend) -> None:
    """Give `layer` random float64 parameters (away from 0, where L1 has a kink) and a float64 `dtype`."""
    for index, name in enumerate(getattr(layer, "ARRAYS", ())):
        value: Any = getattr(layer, name, None)
        if is_float(backend, value):
            values = away_from_zero(rng(10 + index).standard_normal(tuple(value.shape)) * 0.5)
            setattr(layer, name, backend.asarray(values, dtype="float64"))
    if getattr(layer, "dtype", None) in (backend.dtype("float32"), backend.dtype("float64")):
        layer.dtype = backend.dtype("float64")


def penalty(layer: Any, backend: Backend) -> float:
    """The L1 and L2 penalty of a layer with the Dense regularizer attributes, as `Loss.regularization_loss` adds."""
    total = 0.0
    for kind, name in (("weight", "weights"), ("bias", "biases")):
        l1, l2 = (getattr(layer, f"{kind}_regularizer_{p}", 0) for p in ("l1", "l2"))
        if (l1 or l2) and hasattr(layer, name):
            values = host(backend, getattr(layer, name))
            total += l1 * float(np.sum(np.abs(values))) + l2 * float(np.sum(values * values))
    return total


def gradients(subject: Subject) -> None:
    """dinputs and each parameter's gradient against central finite differences of sum(output * upstream) (plus
    the regularization penalty), in float64."""
    layer = subject.build()
    backend = layer.backend
    widened(layer, backend)
    x = inputs(width_of(subject, layer), "float64")
    with kept_rng():
        seeded(SEED)
        output = output_of(layer, backend.asarray(x))
        if dtype_of(output) != "float64":
            raise Unmet(
                f"with float64 inputs and parameters forward() gives {dtype_of(output)}, so finite differences in "
                f"float64 cannot check it",
                DTYPE_FIX,
            )
        upstream = rng(1).standard_normal(tuple(output.shape))
        dinputs = host(backend, dinputs_of(layer, backend.asarray(upstream)))
        analytic = {f"d{name}": host(backend, value) for name, value in parameter_gradients(layer).items()}

        def objective(inputs_now: np.ndarray) -> float:
            seeded(SEED)
            values = host(backend, output_of(layer, backend.asarray(inputs_now)))
            return float(np.sum(values * upstream)) + penalty(layer, backend)

        problems = [gradient_problem("dinputs", dinputs, numeric_gradient(objective, x))]
        for name in analytic:
            problems.append(gradient_problem(name, analytic[name], parameter_numeric(layer, name[1:], objective, x)))
    found = [problem for problem in problems if problem]
    if found:
        raise Unmet("; ".join(found), GRADIENT_FIX)


def parameter_numeric(layer: Any, name: str, objective: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
    """Finite differences of the objective in one parameter array, which is put back afterwards."""
    backend = layer.backend
    original = getattr(layer, name)

    def varied(values: np.ndarray) -> float:
        setattr(layer, name, backend.asarray(values, dtype="float64"))
        return objective(x)

    try:
        return numeric_gradient(varied, host(backend, original))
    finally:
        setattr(layer, name, original)


def shapes(subject: Subject) -> None:
    """One output row per sample, a width the next layer can rely on, and gradients shaped like what they are of."""
    layer = subject.build()
    backend, width = layer.backend, width_of(subject, layer)
    x = inputs(width)
    with kept_rng():
        seeded(SEED)
        shape = tuple(output_of(layer, backend.asarray(x)).shape)
        if len(shape) != 2 or shape[0] != SAMPLES:
            raise Unmet(
                f"forward() of a batch shaped {x.shape} gives output shaped {shape}, not ({SAMPLES}, width)",
                "keep one output row per sample: (samples, features)",
            )
        width_problem(layer, width, shape[1])
        dinputs = dinputs_of(layer, backend.asarray(np.ones(shape, np.float32)))
    if tuple(dinputs.shape) != x.shape:
        raise Unmet(
            f"backward() sets dinputs shaped {tuple(dinputs.shape)}, not like the inputs {x.shape}", GRADIENT_FIX
        )
    for name, gradient in parameter_gradients(layer).items():
        expected = tuple(getattr(layer, name).shape)
        if tuple(gradient.shape) != expected:
            raise Unmet(
                f"backward() sets d{name} shaped {tuple(gradient.shape)}, not like {name} {expected}", GRADIENT_FIX
            )


def width_problem(layer: Any, width: int, out_width: int) -> None:
    """Unmet when a Model could not know the width the layer gives the next one."""
    declared = getattr(layer, "n_neurons", None)
    if declared is not None and out_width != declared:
        raise Unmet(
            f"its output has {out_width} columns but n_neurons is {declared}: a Model checks the next layer's "
            f"n_inputs against n_neurons",
            "set n_neurons to the number of output columns",
        )
    if declared is None and out_width != width:
        raise Unmet(
            f"it turns {width} features into {out_width} without n_inputs and n_neurons, so a Model cannot check "
            f"the width the next layer sees",
            "set self.n_inputs and self.n_neurons to the input and output widths",
        )


def dtypes(subject: Subject) -> None:
    """float32 in, float32 out (float64 too): output, dinputs and parameter gradients keep the dtype."""
    layer = subject.build()
    backend, width = layer.backend, width_of(subject, layer)
    parameters = {
        dtype_of(getattr(layer, name))
        for name in getattr(layer, "ARRAYS", ())
        if is_float(backend, getattr(layer, name, None))
    }
    names = ["float32", "float64"] if backend.has_dtype("float64") else ["float32"]
    with kept_rng():
        for name in names:
            expected = next(iter(parameters)) if len(parameters) == 1 else name
            seeded(SEED)
            output = output_of(layer, backend.asarray(inputs(width, name)))
            dinputs = dinputs_of(layer, backend.asarray(np.ones(tuple(output.shape), dtype_of(output))))
            got = {"output": dtype_of(output), "dinputs": dtype_of(dinputs)}
            for each, gradient in parameter_gradients(layer).items():
                got[f"d{each}"] = dtype_of(gradient)
            wrong = {key: value for key, value in got.items() if value != expected}
            if wrong:
                shown = ", ".join(f"{key} {value}" for key, value in wrong.items())
                raise Unmet(f"with {name} inputs it gives {shown}, not {expected}", DTYPE_FIX)


def bad_input(subject: Subject) -> None:
    """forward() refuses bad inputs with a TypeError or ValueError that names the layer, before changing state."""
    layer = subject.build()
    backend, width = layer.backend, width_of(subject, layer)
    x = inputs(width)
    label = repr(layer)
    with kept_rng():
        seeded(SEED)
        before = output_of(layer, backend.asarray(x))
        for what, bad in bad_inputs(layer, backend, x):
            refused(layer, what, bad, label)
            if getattr(layer, "output", None) is not before:
                raise Unmet(f"given {what}, forward() changed self.output before raising", INPUT_FIX)


def bad_inputs(layer: Any, backend: Backend, x: np.ndarray) -> list[tuple[str, Any]]:
    """(what, value) of each bad input forward() must refuse."""
    with_nan = x.copy()
    with_nan[1, 0] = np.nan
    cases = [
        ("a 1-d array", backend.asarray(x[0])),
        ("a 3-d array", backend.asarray(x[None, ...])),
        ("an empty batch", backend.asarray(x[:0])),
        ("inputs holding NaN", backend.asarray(with_nan)),
        ("a list of lists", x.tolist()),
    ]
    if hasattr(layer, "n_inputs"):
        cases.append(
            (f"a batch of {x.shape[1] + 1} features", backend.asarray(np.ones((SAMPLES, x.shape[1] + 1), x.dtype)))
        )
    return cases


def refused(layer: Any, what: str, bad: Any, label: str) -> None:
    """Unmet unless forward(bad) raises a TypeError or ValueError naming the layer."""
    try:
        seeded(SEED)
        layer.forward(bad, True)
    except (TypeError, ValueError) as error:
        if label not in str(error):
            raise Unmet(
                f"given {what}, forward() raised {type(error).__name__}({error}), which does not name {label}",
                INPUT_FIX,
            ) from None
        return
    except Exception as error:
        raise Unmet(
            f"given {what}, forward() failed from deep inside with {type(error).__name__}: {error}", INPUT_FIX
        ) from None
    raise Unmet(f"forward() accepted {what} without an error", INPUT_FIX)


def run_on(layer: Any, x: np.ndarray, upstream: np.ndarray) -> dict[str, np.ndarray]:
    """Host copies of output, dinputs and parameter gradients after an inference forward and a backward."""
    backend = layer.backend
    results = {"output": output_of(layer, backend.asarray(x), False)}
    results["dinputs"] = dinputs_of(layer, backend.asarray(upstream))
    results.update({f"d{name}": value for name, value in parameter_gradients(layer).items()})
    return {name: host(backend, value) for name, value in results.items()}


def same_numbers(subject: Subject) -> None:
    """The same output and gradients on every available backend as on NumPy (float32, same parameters)."""
    reference = subject.build()
    x = inputs(width_of(subject, reference))
    output = output_of(reference, reference.backend.asarray(x), False)
    upstream = rng(2).standard_normal(tuple(output.shape)).astype(np.float32)
    expected = run_on(reference, x, upstream)
    for backend in comparison_backends(subject.backends):
        other = subject.build(backend)
        for name in getattr(reference, "ARRAYS", ()):
            value = getattr(reference, name, None)
            if hasattr(value, "shape"):
                values = host(reference.backend, value)
                setattr(other, name, backend.asarray(values, dtype=values.dtype))
        compare(expected, run_on(other, x, upstream), backend.name)


def layer_checks(
    factory: Factory, *, input_width: int | None = None, backends: Sequence[str] | None = None
) -> list[Check]:
    """The checks of a layer or activation, one by one: each is a `Check` to call (see `check_layer`).

    Args:
        factory: Builds the layer on a backend, called as ``factory(xp=backend)``: e.g.
            ``lambda xp: LeakyReLU(0.3, xp=xp)``, or the class itself when it needs no other argument.
        input_width: The number of input features to feed it; None: its `n_inputs`, else 4.
        backends: The backends to compare with NumPy; None: every available one (`nnx.backends.available()`).

    Returns:
        The checks shapes, gradients, dtype, bad_input, backends, config, numpy_scalars, copy, save_load and
        kernel_spec.

    Raises:
        TypeError: `factory` is not callable, is a component rather than a factory, or builds a loss or optimizer.
    """
    checked = subject(factory, "layer", "nnx.testing.layer_checks", backends=backends, input_width=input_width)
    checks: list[tuple[str, Callable[[Subject], None], str]] = [
        ("shapes", shapes, "keep one output row per sample and declare n_inputs and n_neurons when the width changes"),
        ("gradients", gradients, GRADIENT_FIX),
        ("dtype", dtypes, DTYPE_FIX),
        ("bad_input", bad_input, INPUT_FIX),
        ("backends", same_numbers, BACKEND_FIX),
        *config.checks(),
        ("kernel_spec", planned.layer_kernel, planned.KERNEL_FIX),
    ]
    return [Check(name, checked.label, bound(run, checked), fix) for name, run, fix in checks]
