"""A component whose config cannot rebuild it is refused when it is added, set, finalized, saved, copied or pickled,
never found out at load; optimizer state that `STATE_NAMES` does not name is refused at save; and a saved class
reference names one class: nnx's own by bare name, a script's `__main__` class loadable by a program that imports
it, several candidates refused, `components=` to choose."""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import nnx
from nnx import io
from nnx._component import _classes, config_problems, defined_by_nnx
from nnx.errors import CheckpointError
from nnx.io import format as file_format
from nnx.io import mapping

ROOT = Path(__file__).resolve().parent.parent


class NoConfigLeaky(nnx.Component):
    """The issue's layer: an argument, and no CONFIG."""

    def __init__(self, slope=0.01, *, xp=None):
        super().__init__(xp)
        self.slope = slope

    def forward(self, inputs, training=False):
        self.inputs = inputs
        self.output = self.xp.where(inputs > 0, inputs, self.slope * inputs)

    def backward(self, dvalues):
        self.dinputs = self.xp.where(self.inputs > 0, dvalues, self.slope * dvalues)


class RoundTripLeaky(NoConfigLeaky):
    CONFIG = ("slope",)


def tiny_model(backend, middle) -> nnx.Model:
    model = nnx.Model(xp=backend)
    for layer in (nnx.Dense(2, 4, xp=backend), middle, nnx.Dense(4, 3, xp=backend), nnx.Softmax(xp=backend)):
        model.add(layer)
    model.set(
        loss=nnx.CategoricalCrossentropy(xp=backend),
        optimizer=nnx.Adam(learning_rate=0.01, xp=backend),
        accuracy=nnx.metrics.Categorical(xp=backend),
    )
    model.finalize()
    return model


def spiral(n: int = 30):
    X, y = nnx.datasets.spiral_data(samples=n, classes=3)
    return X.astype(np.float32), y


# A constructor argument missing from CONFIG ---------------------------------------------------------------------------


def test_an_argument_missing_from_config_is_refused_at_add(backend):
    model = nnx.Model(xp=backend)
    with pytest.raises(TypeError, match=r"Model\.add\(\) refused NoConfigLeaky\(slope=0\.3\).*add 'slope' to "):
        model.add(NoConfigLeaky(0.3, xp=backend))
    assert model.layers == []


def test_an_argument_missing_from_config_is_refused_at_set(backend):
    class Nesterov(nnx.optimizers.Optimizer):
        STATE_NAMES = ("momentums",)

        def __init__(self, learning_rate=0.1, decay=0.0, momentum=0.9, *, xp=None):
            super().__init__(learning_rate, decay, xp=xp)
            self.momentum = momentum

    model = nnx.Model(xp=backend)
    with pytest.raises(TypeError, match=r"Model\.set\(optimizer=\.\.\.\) refused .*add 'momentum' to Nesterov\.CONFIG"):
        model.set(loss=nnx.CategoricalCrossentropy(xp=backend), optimizer=Nesterov(xp=backend))
    assert model.loss is None and model.optimizer is None


def test_a_layer_slipped_into_the_list_is_refused_at_finalize(backend):
    model = tiny_model(backend, nnx.ReLU(xp=backend))
    model.layers.insert(1, NoConfigLeaky(0.3, xp=backend))
    with pytest.raises(TypeError, match=r"Model\.finalize\(\) refused NoConfigLeaky\(slope=0\.3\)"):
        model.finalize()


def test_save_copy_and_pickle_refuse_before_writing(backend, tmp_path):
    layer = NoConfigLeaky(0.3, xp=backend)
    with pytest.raises(TypeError, match=r"nnx\.save\(\) refused .*add 'slope' to NoConfigLeaky\.CONFIG"):
        nnx.save([layer], tmp_path / "leaky.nnx")
    assert not (tmp_path / "leaky.nnx").exists()
    with pytest.raises(TypeError, match=r"copy\.deepcopy\(\) or pickle refused .*'slope'"):
        copy.deepcopy(layer)
    with pytest.raises(TypeError, match=r"copy\.deepcopy\(\) or pickle refused .*'slope'"):
        pickle.dumps(layer)


def test_a_config_changed_after_add_is_refused_at_save(backend, tmp_path):
    leaky = RoundTripLeaky(0.3, xp=backend)
    model = tiny_model(backend, leaky)
    leaky.slope = {0.3}  # a set: no file can hold it
    with pytest.raises(
        TypeError, match=r"refused RoundTripLeaky.*Its config slope is \{0\.3\} \(set\), which a file cannot"
    ):
        model.save(tmp_path / "m.nnx")
    with pytest.raises(TypeError, match=r"copy\.deepcopy\(\) or pickle refused"):
        copy.deepcopy(model)
    assert not (tmp_path / "m.nnx").exists()


def test_a_layer_with_config_keeps_its_value_through_files_copies_and_pickles(backend, tmp_path):
    model = tiny_model(backend, RoundTripLeaky(0.3, xp=backend))
    model.save(tmp_path / "m.nnx")
    nnx.save([RoundTripLeaky(0.3, xp=backend)], tmp_path / "l.nnx")
    copies = [
        nnx.Model.load(tmp_path / "m.nnx", xp=backend).layers[1],
        nnx.load(tmp_path / "l.nnx", xp=backend)[0],
        copy.deepcopy(model).layers[1],
        pickle.loads(pickle.dumps(model)).layers[1],
        copy.deepcopy(RoundTripLeaky(0.3, xp=backend)),
    ]
    assert [(type(layer), layer.slope) for layer in copies] == [(RoundTripLeaky, 0.3)] * 5


# NumPy scalars and values a file cannot hold ----------------------------------------------------------------------


def test_numpy_scalars_in_a_config_are_saved_as_python_numbers(backend, tmp_path):
    layer = RoundTripLeaky(np.float32(0.3), xp=backend)
    model = tiny_model(backend, layer)
    model.save(tmp_path / "m.nnx")
    record, _ = file_format.read(tmp_path / "m.nnx")
    saved = record["layers"][1]["config"]["slope"]
    assert type(saved) is float and saved == float(np.float32(0.3))
    assert nnx.Model.load(tmp_path / "m.nnx", xp=backend).layers[1].slope == saved
    assert copy.deepcopy(layer).slope == saved and type(copy.deepcopy(layer).slope) is float
    assert pickle.loads(pickle.dumps(layer)).slope == saved


@pytest.mark.parametrize("scalar", [np.float64(0.3), np.float32(0.3), np.int64(2)], ids=["float64", "float32", "int64"])
def test_a_numpy_scalar_hyperparameter_trains_in_float32_and_copies_as_a_number(backend, scalar):
    """np.float64(0.3) * a float32 array is float64 in NumPy: at add() it becomes the Python number it holds."""
    layer = RoundTripLeaky(scalar, xp=backend)
    model = tiny_model(backend, layer)
    assert type(layer.slope) is type(scalar.item())
    X, y = spiral()
    model.train(X, y, epochs=3, print_every=None)
    assert all(str(layer.weights.dtype).endswith("float32") for layer in model.trainable_layers)
    twin = copy.deepcopy(model)
    assert twin.layers[1].slope == scalar.item()
    assert pickle.loads(pickle.dumps(model)).layers[1].slope == scalar.item()


@pytest.mark.parametrize(
    "value",
    [np.int64(3), np.float64(0.5), np.bool_(True), (np.float32(1.5), 2)],
    ids=["int64", "float64", "bool_", "tuple"],
)
def test_numpy_values_of_every_kind_round_trip_as_plain_values(value):
    layer = RoundTripLeaky(value, xp="numpy")
    assert config_problems(layer) == []
    plain = json.loads(json.dumps(layer.saved_config()))["slope"]
    assert copy.deepcopy(layer).slope == plain


def test_an_array_in_a_config_is_refused_naming_the_value(backend):
    with pytest.raises(
        TypeError, match=r"Its config slope is .*rray.* on .*, which a file cannot hold; keep RoundTripLeaky's slope"
    ):
        nnx.Model(xp=backend).add(RoundTripLeaky(backend.asarray(np.ones(2)), xp=backend))


def test_nnx_components_accept_numpy_scalars_and_keep_plain_configs(tmp_path):
    layers = [
        nnx.Dense(np.int64(2), np.int64(3), weight_regularizer_l2=np.float32(1e-4), weight_scale=np.float64(0.1)),
        nnx.Dropout(np.float32(0.25)),
    ]
    optimizer = nnx.SGD(np.float32(0.5), decay=np.float64(1e-3), momentum=np.float32(0.9))
    for component in (*layers, optimizer):
        assert config_problems(component) == []
        for value in component.saved_config().values():
            assert type(value) in (int, float, bool, str), (component, value)
    nnx.save(layers, tmp_path / "l.nnx")
    assert [layer.get_config() for layer in nnx.load(tmp_path / "l.nnx")] == [layer.get_config() for layer in layers]


# Configs that cannot rebuild the component ------------------------------------------------------------------------


def test_config_naming_what_init_does_not_take_is_refused():
    class Misnamed(NoConfigLeaky):
        CONFIG = ("slope", "alpha")
        alpha = 0.5

    problems = config_problems(Misnamed(0.3, xp="numpy"))
    assert len(problems) == 1 and "config names 'alpha', which Misnamed.__init__ does not take" in problems[0]


def test_init_without_xp_is_refused():
    class NoXp(nnx.Component):
        CONFIG = ("slope",)

        def __init__(self, slope=0.01):
            super().__init__()
            self.slope = slope

    (problem,) = config_problems(NoXp(0.3))
    assert "takes no xp=, which load() and copies pass; add `*, xp=None` to NoXp.__init__" in problem


def test_config_naming_a_missing_attribute_is_refused():
    class Renamed(NoConfigLeaky):
        CONFIG = ("leak",)

        def __init__(self, leak=0.01, *, xp=None):
            super().__init__(leak, xp=xp)

    with pytest.raises(TypeError, match=r"Renamed\.get_config\(\) raised AttributeError.*attribute of the same name"):
        copy.deepcopy(Renamed(0.3, xp="numpy"))


def test_an_own_get_config_that_loses_the_value_is_refused():
    class Doubled(NoConfigLeaky):
        def get_config(self):
            return {"slope": self.slope * 2}

    problems = config_problems(Doubled(0.25, xp="numpy"))
    assert len(problems) == 1 and "rebuilds it with another config (slope 0.5 -> 1.0)" in problems[0]


def test_an_own_get_config_and_from_config_that_agree_pass(tmp_path):
    class Stored(NoConfigLeaky):
        def __init__(self, slope=0.01, *, xp=None):
            super().__init__(slope, xp=xp)
            self.leak = slope

        def get_config(self):
            return {"leak": self.leak}

        @classmethod
        def from_config(cls, config, xp=None):
            return cls(config["leak"], xp=xp)

    layer = Stored(0.3, xp="numpy")
    assert config_problems(layer) == []
    assert copy.deepcopy(layer).slope == 0.3


def test_a_dense_subclass_must_record_its_own_arguments(tmp_path):
    class Scaled(nnx.Dense):
        def __init__(self, n_inputs, n_neurons, *args, gain=1.0, **kwargs):
            super().__init__(n_inputs, n_neurons, *args, **kwargs)
            self.gain = gain

    with pytest.raises(TypeError, match=r"Its __init__ takes 'gain'.*add 'gain' to Scaled\.CONFIG"):
        nnx.Model().add(Scaled(2, 3, gain=2.0))

    class Recorded(Scaled):
        CONFIG = (*nnx.Dense.CONFIG, "gain")

    layer = Recorded(2, 3, gain=2.0, weight_regularizer_l2=1e-3)
    state = np.random.get_state()[1].copy()
    assert config_problems(layer) == []
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # the rebuild that checks it drew nothing
    nnx.save([layer], tmp_path / "d.nnx")
    (loaded,) = nnx.load(tmp_path / "d.nnx")
    assert loaded.gain == 2.0 and loaded.weight_regularizer_l2 == 1e-3
    np.testing.assert_array_equal(loaded.weights, layer.weights)


BUILT_IN = {
    "Dense": lambda: nnx.Dense(2, 3, 1e-4, 2e-4, 3e-4, 4e-4, weight_scale=0.1, dtype="float64"),
    "Dropout": lambda: nnx.Dropout(0.25),
    "ReLU": nnx.ReLU,
    "Softmax": nnx.Softmax,
    "Sigmoid": nnx.Sigmoid,
    "Linear": nnx.Linear,
    "Loss": nnx.losses.Loss,
    "CategoricalCrossentropy": nnx.CategoricalCrossentropy,
    "BinaryCrossentropy": nnx.BinaryCrossentropy,
    "MeanSquaredError": nnx.MeanSquaredError,
    "MeanAbsoluteError": nnx.MeanAbsoluteError,
    "SoftmaxCategoricalCrossentropy": nnx.losses.SoftmaxCategoricalCrossentropy,
    "Optimizer": lambda: nnx.optimizers.Optimizer(0.5, 1e-3),
    "SGD": lambda: nnx.SGD(0.5, 1e-3, 0.9),
    "Adagrad": lambda: nnx.Adagrad(0.5, 1e-3, 1e-6),
    "RMSprop": lambda: nnx.RMSprop(0.5, 1e-3, 1e-6, 0.8),
    "Adam": lambda: nnx.Adam(0.5, 1e-3, 1e-6, 0.8, 0.9),
    "Accuracy": nnx.metrics.Accuracy,
    "Categorical": lambda: nnx.metrics.Categorical(binary=True),
    "Regression": lambda: nnx.metrics.Regression(precision_divisor=100),
    "RunningMean": lambda: nnx._component.RunningMean(),
    "Model": nnx.Model,
}


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_every_built_in_component_round_trips(name):
    component = BUILT_IN[name]()
    assert type(component).__name__ == name and type(component).kind() == name
    assert config_problems(component) == []
    config = json.loads(json.dumps(component.saved_config()))
    assert type(component).from_config(config).saved_config() == config


def test_the_built_in_table_lists_every_nnx_component():
    registered = {kind for kind, cls in _classes.items() if defined_by_nnx(cls)}
    assert registered <= set(BUILT_IN), f"add {sorted(registered - set(BUILT_IN))} to BUILT_IN"


# Optimizer state that STATE_NAMES does not name -------------------------------------------------------------------


class Velocity(nnx.optimizers.Optimizer):
    """Momentum SGD that keeps its velocity under a name its STATE_NAMES does not declare."""

    def update_array(self, values, gradient, state, kind):
        velocity = state.get(f"{kind}_velocity", self.xp.zeros_like(values))
        state[f"{kind}_velocity"] = 0.9 * velocity - self.current_learning_rate * gradient
        return values + state[f"{kind}_velocity"]


class DeclaredVelocity(Velocity):
    STATE_NAMES = ("velocity",)


def optimizer_model(backend, optimizer) -> nnx.Model:
    model = nnx.Model(xp=backend)
    for layer in (nnx.Dense(2, 4, xp=backend), nnx.ReLU(xp=backend), nnx.Dense(4, 3, xp=backend)):
        model.add(layer)
    model.add(nnx.Softmax(xp=backend))
    model.set(
        loss=nnx.CategoricalCrossentropy(xp=backend), optimizer=optimizer, accuracy=nnx.metrics.Categorical(xp=backend)
    )
    model.finalize()
    model.train(*spiral(), epochs=2, print_every=None)
    return model


def test_state_under_undeclared_names_is_refused_at_save(backend, tmp_path):
    model = optimizer_model(backend, Velocity(0.1, xp=backend))
    fix = r"STATE_NAMES \(\) make the slots \[\].*STATE_NAMES = \('velocity',\)"
    with pytest.raises(ValueError, match=r"cannot save Velocity\(learning_rate=0\.1.*'weight_velocity'.*" + fix):
        model.save(tmp_path / "m.nnx")
    assert not (tmp_path / "m.nnx").exists()
    with pytest.raises(ValueError, match=fix):
        copy.deepcopy(model)


def test_declared_state_saves_and_loads(backend, tmp_path):
    model = optimizer_model(backend, DeclaredVelocity(0.1, xp=backend))
    model.save(tmp_path / "m.nnx")
    loaded = nnx.Model.load(tmp_path / "m.nnx", xp=backend)
    ours, theirs = model.optimizer.state_dict()["slots"], loaded.optimizer.state_dict()["slots"]
    assert sorted(ours) == sorted(theirs) == [0, 1]
    for position, slots in ours.items():
        for name, value in slots.items():
            np.testing.assert_array_equal(backend.to_numpy(value), backend.to_numpy(theirs[position][name]))


def test_state_of_another_dtype_is_refused_at_save(tmp_path):
    class Wide(DeclaredVelocity):
        def update_array(self, values, gradient, state, kind):
            step = -self.current_learning_rate * gradient
            state[f"{kind}_velocity"] = self.xp.astype(step, self.xp.float64)  # kept wider than the parameters
            return values + step

    model = optimizer_model(nnx.backends.get("numpy"), Wide(0.1))
    with pytest.raises(ValueError, match=r"'weight_velocity' for Dense.* is float64 \(2, 4\).*\(float32 \(2, 4\)\)"):
        model.save(tmp_path / "m.nnx")


# Saved class references ----------------------------------------------------------------------------------------


def relabelled(path: Path, old: str, new: str) -> Path:
    """The file at `path` with every kind `old` recorded as `new` (a checksum written afresh)."""
    record, tensors = file_format.read(path)
    for entry in [*record["layers"], record["loss"], record["optimizer"], record["accuracy"]]:
        if entry is not None and entry["kind"] == old:
            entry["kind"] = new
    del record["checksum"]
    file_format.write(path, tensors, record)
    return path


def module_with(name: str, source: str) -> dict:
    """The namespace of `source` run as if it were a module called `name` (not imported, not in sys.modules)."""
    namespace = {"__name__": name}
    exec(textwrap.dedent(source), namespace)
    return namespace


LEAKY_SOURCE = """
    import nnx

    class CfgLeaky(nnx.Component):
        CONFIG = ("slope",)

        def __init__(self, slope=0.01, *, xp=None):
            super().__init__(xp)
            self.slope = slope

        def forward(self, inputs, training=False):
            self.output = inputs

        def backward(self, dvalues):
            self.dinputs = dvalues
"""


def test_nnx_names_cannot_be_shadowed(tmp_path):
    fake = module_with("nnx.fake_plugin", "import nnx\nclass ReLU(nnx.Component):\n    pass\n")["ReLU"]
    assert not defined_by_nnx(fake) and fake.kind() == "nnx.fake_plugin.ReLU"
    assert defined_by_nnx(nnx.ReLU) and nnx.ReLU.kind() == "ReLU"
    nnx.save([nnx.ReLU()], tmp_path / "r.nnx")
    assert type(nnx.load(tmp_path / "r.nnx")[0]) is nnx.ReLU
    assert type(nnx.load(tmp_path / "r.nnx", components={"ReLU": fake})[0]) is nnx.ReLU


def test_a_main_kind_loads_as_the_one_class_of_that_name(tmp_path):
    mine = module_with("cfg_layers_one", LEAKY_SOURCE.replace("CfgLeaky", "CfgLeakyOne"))["CfgLeakyOne"]
    nnx.save([mine(0.3)], tmp_path / "l.nnx")
    relabelled(tmp_path / "l.nnx", "cfg_layers_one.CfgLeakyOne", "__main__.CfgLeakyOne")
    (loaded,) = nnx.load(tmp_path / "l.nnx")
    assert type(loaded) is mine and loaded.slope == 0.3


def test_a_main_kind_with_several_candidates_is_refused_until_components_says(tmp_path):
    first = module_with("cfg_layers_a", LEAKY_SOURCE)["CfgLeaky"]
    second = module_with("cfg_layers_b", LEAKY_SOURCE)["CfgLeaky"]
    nnx.save([first(0.3)], tmp_path / "l.nnx")
    relabelled(tmp_path / "l.nnx", "cfg_layers_a.CfgLeaky", "__main__.CfgLeaky")
    listed = r"cfg_layers_a\.CfgLeaky, cfg_layers_b\.CfgLeaky.*components=\[CfgLeaky\]"
    with pytest.raises(
        CheckpointError, match=r"layer 0 is of kind '__main__\.CfgLeaky': it could be any of.*" + listed
    ):
        nnx.load(tmp_path / "l.nnx")
    assert type(nnx.load(tmp_path / "l.nnx", components=[second])[0]) is second
    assert type(nnx.load(tmp_path / "l.nnx", components={"__main__.CfgLeaky": first})[0]) is first
    with pytest.raises(CheckpointError, match="could be any of the 2 classes components= gives"):
        nnx.load(tmp_path / "l.nnx", components={"CfgLeaky": first, "__main__.CfgLeaky": second})


def test_a_main_kind_nobody_defines_says_what_to_do(tmp_path):
    nnx.save([RoundTripLeaky(0.3)], tmp_path / "l.nnx")
    relabelled(tmp_path / "l.nnx", RoundTripLeaky.kind(), "__main__.NobodyDefinesThis")
    with pytest.raises(CheckpointError, match=r"define or import the class NobodyDefinesThis.*components=\["):
        nnx.Model.load(tmp_path / "l.nnx")


def test_components_must_be_classes(tmp_path):
    nnx.save([nnx.ReLU()], tmp_path / "r.nnx")
    with pytest.raises(TypeError, match=r"components= expected a list of classes.*got 'RoundTripLeaky'"):
        nnx.load(tmp_path / "r.nnx", components="RoundTripLeaky")
    with pytest.raises(TypeError, match=r"components= expected nnx Component subclasses.*got <class 'int'> for 'int'"):
        nnx.Model.load(tmp_path / "r.nnx", components=[int])


def test_a_file_in_the_0_2_form_still_loads(tmp_path):
    """Bare names for nnx's classes, `module.QualName` for others: what nnx 0.2.0 wrote."""
    layers = [
        {"kind": "Dense", "config": {"n_inputs": 2, "n_neurons": 3, "weight_regularizer_l1": 0.0,
                                     "weight_regularizer_l2": 0.0, "bias_regularizer_l1": 0.0,
                                     "bias_regularizer_l2": 0.0, "weight_scale": 0.01, "dtype": "float32"},
         "shapes": {"weights": [2, 3], "biases": [1, 3]}},
        {"kind": f"{__name__}.RoundTripLeaky", "config": {"slope": 0.3}},
    ]  # fmt: skip
    tensors = {"layers.0.weights": np.ones((2, 3), np.float32), "layers.0.biases": np.zeros((1, 3), np.float32)}
    file_format.write(tmp_path / "old.nnx", tensors, mapping._new_record("layers", layers, tensors))
    dense, leaky = nnx.load(tmp_path / "old.nnx")
    assert isinstance(dense, nnx.Dense) and type(leaky) is RoundTripLeaky and leaky.slope == 0.3


def test_redefining_a_class_replaces_it(tmp_path):
    source = LEAKY_SOURCE.replace("CfgLeaky", "CfgLeakyCell")
    old = module_with("cfg_notebook", source)["CfgLeakyCell"]
    nnx.save([old(0.3)], tmp_path / "l.nnx")
    new = module_with("cfg_notebook", source)["CfgLeakyCell"]
    assert new is not old and new.kind() == old.kind()
    assert type(nnx.load(tmp_path / "l.nnx")[0]) is new
    assert type(copy.deepcopy(new(0.2))) is new


def test_resume_and_load_parameters_accept_a_main_kind_for_the_same_class(tmp_path):
    class Gain(nnx.Dense):
        pass

    X, y = spiral()
    model = optimizer_model(nnx.backends.get("numpy"), DeclaredVelocity(0.1))
    model.layers[0].__class__ = Gain  # the same layer, now of a user class
    model.save(tmp_path / "c.nnx", training={"epoch": 2})
    relabelled(tmp_path / "c.nnx", Gain.kind(), f"__main__.{Gain.__qualname__}")
    relabelled(tmp_path / "c.nnx", DeclaredVelocity.kind(), "__main__.DeclaredVelocity")
    assert io.restore_training(model, tmp_path / "c.nnx") == {"epoch": 2}
    model.load_parameters(tmp_path / "c.nnx")
    model.train(X, y, epochs=1, print_every=None)


# Across programs: a script's __main__ classes ---------------------------------------------------------------------

LAYER_MODULE = LEAKY_SOURCE.replace("CfgLeaky", "LeakyReLU")
SAVER = """
    import nnx
    {layer}
    nnx.seed(0)
    model = nnx.Model()
    for layer in (nnx.Dense(2, 4), LeakyReLU(0.3), nnx.Dense(4, 3), nnx.Softmax()):
        model.add(layer)
    model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam())
    model.finalize()
    model.save("saved.nnx")
    print(type(model.layers[1]).kind())
"""


def run(folder: Path, source: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(folder)])}
    command = [sys.executable, *args] if args else [sys.executable, "-c", textwrap.dedent(source)]
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_script_s_class_loads_in_a_program_that_imports_it(tmp_path):
    (tmp_path / "mylayers.py").write_text(textwrap.dedent(LAYER_MODULE))
    (tmp_path / "train.py").write_text(textwrap.dedent(SAVER.replace("{layer}", "")).replace(
        "import nnx\n", "import nnx\n" + textwrap.dedent(LAYER_MODULE), 1))  # fmt: skip
    assert run(tmp_path, "", "train.py") == "__main__.LeakyReLU"
    loads = (
        "import nnx, mylayers\nm = nnx.Model.load('saved.nnx')\nprint(type(m.layers[1]).__module__, m.layers[1].slope)"
    )
    assert run(tmp_path, loads) == "mylayers 0.3"
    nobody = "import nnx\ntry:\n    nnx.Model.load('saved.nnx')\nexcept nnx.CheckpointError as e:\n    print(e)"
    assert "define or import the class LeakyReLU before loading, or pass components=[LeakyReLU]" in run(
        tmp_path, nobody
    )
    both = textwrap.dedent(LAYER_MODULE) + textwrap.dedent("""
        import mylayers
        try:
            nnx.Model.load('saved.nnx')
        except nnx.CheckpointError as error:
            print(error)
        print(type(nnx.Model.load('saved.nnx', components=[mylayers.LeakyReLU]).layers[1]).__module__)
        import copy, pickle
        model = nnx.Model()
        model.add(LeakyReLU(0.2))
        copies = [copy.deepcopy(model).layers[0], pickle.loads(pickle.dumps(LeakyReLU(0.2)))]
        print(*[type(layer).__module__ for layer in copies])  # within one program, its own class
    """)
    out = run(tmp_path, both)
    assert "__main__.LeakyReLU, mylayers.LeakyReLU" in out and out.endswith("\nmylayers\n__main__ __main__")


def test_a_module_run_with_dash_m_records_its_name(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(textwrap.dedent(SAVER.replace("{layer}", "")).replace(
        "import nnx\n", "import nnx\n" + textwrap.dedent(LAYER_MODULE), 1))  # fmt: skip
    assert run(tmp_path, "", "-m", "pkg.train") == "pkg.train.LeakyReLU"
    loads = "import nnx, pkg.train\nprint(nnx.Model.load('saved.nnx').layers[1].slope)"
    assert run(tmp_path, loads).splitlines()[-1] == "0.3"
