"""`nnx.testing`, the kit that checks a user's component: it passes on every built-in layer, activation, loss,
optimizer and available backend, one test per check; and it fails, naming the check, on a wrong backward, a config
that does not round-trip, a lying kernel_spec, a backend missing an op, and the other mistakes it looks for."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import nnx
import nnx.testing
from nnx.backends.numpy import NumpyBackend
from nnx.testing import CheckFailed, CheckSkipped

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "how-to" / "extending.md"


# Components written right, and each with one mistake --------------------------------------------------------------


class LeakyReLU(nnx.Component):
    """max(x, alpha * x), with its input checked as nnx's own layers check theirs."""

    CONFIG = ("alpha",)

    def __init__(self, alpha=0.01, *, xp=None):
        super().__init__(xp)
        self.alpha = float(alpha)

    def __repr__(self):
        return f"{type(self).__name__}({self.alpha:g})"

    def forward(self, inputs, training=False):
        inputs = self._accept_batch(inputs)
        self.inputs = inputs
        self.output = self.xp.where(inputs > 0, inputs, self.alpha * inputs)

    def backward(self, dvalues):
        self._require_forward(dvalues)
        self.dinputs = self.xp.where(self.inputs > 0, dvalues, self.alpha * dvalues)


class WrongBackward(LeakyReLU):
    """Forgets alpha on the negative side of its gradient."""

    def backward(self, dvalues):
        self.dinputs = dvalues


class ForgetfulConfig(LeakyReLU):
    """Does not list alpha in CONFIG: a copy or a loaded file comes back with alpha = 0.01."""

    CONFIG = ()


class LyingReLU(nnx.ReLU):
    """Computes a leaky ReLU but claims ReLU's kernel_spec: the compiled step would run a plain ReLU."""

    CONFIG = ("alpha",)

    def __init__(self, alpha=0.3, *, xp=None):
        super().__init__(xp=xp)
        self.alpha = float(alpha)

    def __repr__(self):
        return f"LyingReLU({self.alpha:g})"

    def kernel_spec(self):
        return nnx.ReLU.kernel_spec(self)

    def forward(self, inputs, training=False):
        inputs = self._accept_batch(inputs)
        self.inputs = inputs
        self.output = self.xp.where(inputs > 0, inputs, self.alpha * inputs)

    def backward(self, dvalues):
        self._require_forward(dvalues)
        self.dinputs = self.xp.where(self.inputs > 0, dvalues, self.alpha * dvalues)


class StrictAlpha(LeakyReLU):
    """Refuses an alpha that is not a Python float: a NumPy scalar from a computation is refused."""

    def __init__(self, alpha=0.01, *, xp=None):
        if type(alpha) is not float:
            raise TypeError(f"StrictAlpha alpha must be a float, got {type(alpha).__name__}")
        super().__init__(alpha, xp=xp)


class Unchecked(LeakyReLU):
    """Takes whatever it is given."""

    def forward(self, inputs, training=False):
        self.inputs = inputs
        self.output = self.xp.where(inputs > 0, inputs, self.alpha * inputs)


class Doubled(LeakyReLU):
    """Gives twice as many columns as it takes, without n_inputs and n_neurons."""

    def forward(self, inputs, training=False):
        inputs = self._accept_batch(inputs)
        self.inputs = inputs
        self.output = self.xp.concat([inputs, inputs], axis=1)

    def backward(self, dvalues):
        width = self.inputs.shape[1]
        self.dinputs = dvalues[:, :width] + dvalues[:, width:]


class BatchMeanError(nnx.losses.Loss):
    """Returns the batch mean from forward(), not one loss per sample."""

    def forward(self, y_pred, y_true):
        return self.xp.mean((y_true - y_pred) ** 2)

    def backward(self, dvalues, y_true):
        self.dinputs = 2 * (dvalues - y_true) / (dvalues.shape[0] * dvalues.shape[1])


class MisnamedState(nnx.optimizers.Optimizer):
    """Keeps its momentum under a name that STATE_NAMES does not list."""

    STATE_NAMES = ("velocity",)

    def update_array(self, values, gradient, state, kind):
        key = f"{kind}_speed"
        state[key] = 0.5 * state.get(key, 0) - self.current_learning_rate * gradient
        return values + state[key]


class Float64Step(nnx.optimizers.Optimizer):
    """Steps with a float64 learning rate array: float32 weights come back float64."""

    def update_array(self, values, gradient, state, kind):
        rate = self.xp.asarray(self.current_learning_rate, dtype=self.xp.float64)
        return values - rate * gradient


class ReturnsNothing(nnx.optimizers.Optimizer):
    """Updates nothing and returns None."""

    def update_array(self, values, gradient, state, kind):
        return None


def without(name: str) -> nnx.backends.Backend:
    """A backend plug-in on NumPy whose namespace lacks the function `name`."""
    namespace = types.ModuleType(f"numpy_without_{name}")
    namespace.__dict__.update({key: value for key, value in vars(np).items() if key != name})
    return NumpyBackend(f"no-{name}", namespace, "CPU (a namespace without one function)", array_type=np.ndarray)


def failures(run) -> dict[str, nnx.testing.Failure]:
    """{check name: failure} of the CheckFailed that `run()` raises."""
    with pytest.raises(CheckFailed) as info:
        run()
    return {failure.check: failure for failure in info.value.failures}


def only(checks, name: str) -> nnx.testing.Check:
    return next(check for check in checks if check.name == name)


# Every built-in component and backend passes, one test per check --------------------------------------------------

LAYERS = [
    lambda xp: nnx.Dense(4, 3, xp=xp),
    lambda xp: nnx.Dense(3, 5, 0.01, 0.02, 0.03, 0.04, xp=xp),
    lambda xp: nnx.Dropout(0.25, xp=xp),
    nnx.ReLU,
    nnx.Softmax,
    nnx.Sigmoid,
    nnx.Linear,
]
LOSSES = [nnx.CategoricalCrossentropy, nnx.BinaryCrossentropy, nnx.MeanSquaredError, nnx.MeanAbsoluteError]
OPTIMIZERS = [
    lambda xp: nnx.SGD(0.5, xp=xp),
    lambda xp: nnx.SGD(0.5, decay=1e-2, momentum=0.9, xp=xp),
    nnx.Adagrad,
    nnx.RMSprop,
    nnx.Adam,
]
CHOSEN = [name for name in os.environ.get("NNX_TEST_BACKENDS", "").split(",") if name] or nnx.backends.registered()
BACKENDS = [name for name in CHOSEN if name in nnx.backends.available()]


@nnx.testing.parametrize_with_checks([*LAYERS, *LOSSES, *OPTIMIZERS, *BACKENDS])
def test_every_built_in_component_and_backend_passes(check):
    """Each check raises CheckFailed (naming the check, the component and the fix) where it is not met."""
    assert check() is None


def test_the_kit_covers_every_built_in_component():
    checked = {type(factory(xp="numpy")).__name__ for factory in (*LAYERS, *LOSSES, *OPTIMIZERS)}
    built_in = {*nnx.layers.__all__, *nnx.activations.__all__, *nnx.losses.__all__, *nnx.optimizers.__all__}
    not_components = {"Input", "Loss", "Optimizer"}  # the first layer of a Model, and the two base classes
    fused = {"SoftmaxCategoricalCrossentropy"}  # the book's layer-level class: tests/test_ops.py checks it
    assert checked == built_in - not_components - fused


# The four failures of the acceptance: each names its check ---------------------------------------------------------


def test_a_right_layer_passes_every_check():
    outcomes = nnx.testing.check_layer(lambda xp: LeakyReLU(0.3, xp=xp))
    assert outcomes["kernel_spec"].startswith("skipped: LeakyReLU(0.3) gives no kernel_spec()")
    assert {name for name, outcome in outcomes.items() if outcome == "passed"} == {
        "shapes", "gradients", "dtype", "bad_input", "backends", "config", "numpy_scalars", "copy", "save_load"
    } - ({"backends"} if len(nnx.backends.available()) == 1 else set())  # fmt: skip


def test_a_wrong_backward_fails_the_gradient_check():
    failed = failures(lambda: nnx.testing.check_layer(lambda xp: WrongBackward(0.3, xp=xp)))
    assert set(failed) == {"gradients"}
    message = str(failed["gradients"])
    assert message.startswith("WrongBackward(0.3) failed check 'gradients': dinputs differs from central finite")
    assert "Fix: make backward() set dinputs" in message


def test_a_config_that_does_not_round_trip_fails_the_config_checks():
    failed = failures(lambda: nnx.testing.check_layer(lambda xp: ForgetfulConfig(0.3, xp=xp)))
    assert set(failed) == {"config", "copy", "save_load"}
    assert re.search(r"argument\(s\) alpha are missing from get_config\(\) \(CONFIG = \(\)\)", failed["config"].problem)
    assert "add 'alpha' to CONFIG" in failed["config"].fix
    assert "ForgetfulConfig" in failed["copy"].problem and "ForgetfulConfig" in failed["save_load"].problem


def test_a_lying_kernel_spec_fails_the_kernel_spec_check():
    pytest.importorskip("numba", reason="the kernel_spec check compares the compiled step: it needs the 'fast' extra")
    failed = failures(lambda: nnx.testing.check_layer(lambda xp: LyingReLU(0.3, xp=xp)))
    assert set(failed) == {"kernel_spec"}
    problem = failed["kernel_spec"].problem
    assert problem.startswith("as a hidden layer, the compiled step planned from kernel_spec()")
    assert "disagrees with the generic step after 1 step(s)" in problem


def test_a_backend_missing_an_op_fails_the_namespace_and_ops_checks():
    failed = failures(lambda: nnx.testing.check_backend(without("clip")))
    assert set(failed) == {"namespace", "ops"}
    assert failed["namespace"].problem == "its namespace xp has no clip, which nnx's layers and kernels call"
    assert "categorical_crossentropy raised AttributeError" in failed["ops"].problem
    assert str(failed["ops"]).startswith("no-clip failed check 'ops': ")


# The other mistakes it finds ---------------------------------------------------------------------------------------


def test_a_layer_that_refuses_numpy_scalars_fails():
    check = only(nnx.testing.layer_checks(lambda xp: StrictAlpha(0.3, xp=xp)), "numpy_scalars")
    with pytest.raises(CheckFailed, match=r"refuses NumPy scalars \(alpha=np\.float32\(0\.3\)\): StrictAlpha alpha"):
        check()


def test_a_layer_that_takes_any_input_fails_the_bad_input_check():
    check = only(nnx.testing.layer_checks(lambda xp: Unchecked(0.3, xp=xp)), "bad_input")
    with pytest.raises(CheckFailed, match=r"forward\(\) accepted a 1-d array without an error\. Fix: check the"):
        check()


def test_a_width_the_next_layer_cannot_know_fails_the_shapes_check():
    check = only(nnx.testing.layer_checks(lambda xp: Doubled(0.3, xp=xp)), "shapes")
    with pytest.raises(CheckFailed, match=r"turns 4 features into 8 without n_inputs and n_neurons"):
        check()


def test_a_loss_that_returns_a_batch_mean_undeclared_fails_the_reduction_check():
    check = only(nnx.testing.loss_checks(BatchMeanError), "reduction")
    with pytest.raises(
        CheckFailed, match=r"returned a single number \(a batch mean\), but REDUCTION = 'none' promises one loss per"
    ):
        check()


@pytest.mark.parametrize(
    ("optimizer", "name", "message"),
    [
        (MisnamedState, "state", r"holds \['bias_speed', 'bias_velocity', 'weight_speed', 'weight_velocity'\]"),
        (Float64Step, "dtype", r"turns float32 weights into float64|update_array returned float64 \(3, 2\)"),
        (ReturnsNothing, "step", r"the weights are NoneType None|update_array returned None"),
    ],
)
def test_optimizer_mistakes_fail_their_check(optimizer, name, message):
    check = only(nnx.testing.optimizer_checks(lambda xp: optimizer(0.1, xp=xp)), name)
    with pytest.raises(CheckFailed, match=message):
        check()


def test_an_error_from_inside_the_component_names_where_it_came_from():
    class Crashing(LeakyReLU):
        def backward(self, dvalues):
            self.dinputs = self.missing * dvalues

    check = only(nnx.testing.layer_checks(lambda xp: Crashing(0.3, xp=xp)), "gradients")
    with pytest.raises(CheckFailed, match=r"it raised AttributeError: .*missing.* \(in backward, test_testing_kit\.py"):
        check()


# How it is called ----------------------------------------------------------------------------------------------------


def test_a_class_defined_in_main_skips_the_fresh_process_check():
    main_class = type("MainLeaky", (LeakyReLU,), {"__module__": "__main__"})
    check = only(nnx.testing.layer_checks(lambda xp: main_class(0.3, xp=xp)), "save_load")
    with pytest.raises(CheckSkipped, match=r"MainLeaky is defined in __main__, which a fresh process cannot import"):
        check()


def test_parametrize_with_checks_makes_one_test_per_check():
    mark = nnx.testing.parametrize_with_checks([lambda xp: LeakyReLU(0.3, xp=xp), "numpy"])
    assert mark.args[0] == "check"
    ids = mark.kwargs["ids"]
    assert "LeakyReLU(0.3)-gradients" in ids and "numpy-ops" in ids
    assert len(ids) == len(set(ids)) == 16


def test_the_kit_refuses_what_it_cannot_check():
    with pytest.raises(TypeError, match=r"expected a factory that builds the component on a backend, got LeakyReLU"):
        nnx.testing.check_layer(LeakyReLU(0.3))
    with pytest.raises(TypeError, match=r"built Adam\(.*\), which is an optimizer; use nnx.testing.check_optimizer"):
        nnx.testing.check_layer(nnx.Adam)


def test_importing_nnx_and_the_kit_does_not_import_pytest():
    code = "import sys, nnx, nnx.testing; assert 'pytest' not in sys.modules, 'pytest imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_namespace_check_lists_every_function_nnx_calls():
    called = set()
    for path in (ROOT / "nnx").rglob("*.py"):
        called |= set(re.findall(r"\bxp\.([a-z_]+)\(", path.read_text()))
    assert called <= set(nnx.testing.XP_FUNCTIONS), called - set(nnx.testing.XP_FUNCTIONS)


def test_the_guide_s_check_your_component_example_runs_on_every_backend(backend, capsys):
    section = GUIDE.read_text().split("## Check your component", 1)[1]
    block = re.findall(r"```python[^\n]*\n(.*?)```", section, flags=re.DOTALL)[0]
    with nnx.backends.use(backend):
        exec(compile(block, "docs/how-to/extending.md: Check your component", "exec"), {"__name__": "guide_block"})
    out = capsys.readouterr().out
    assert "gradients: passed" in out and "save_load: skipped: LeakyReLU is defined in guide_block" in out
    assert "3 check(s) failed (gradients, config, copy):" in out
    assert "- Careless(0.3) failed check 'gradients': dinputs differs from central finite differences" in out
