"""ONNX export: the book's networks, trained on every backend (and by `train_many`), export files that ONNX's checker
accepts and onnxruntime runs to `predict`'s numbers; layers of your own export through `to_onnx`; bad input is refused
before a file is touched."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import nnx
from nnx import cli, metrics
from nnx.errors import CallOrderError, SaveError
from tests.conftest import float64_or_skip

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime (the test extra) is not installed")

RTOL = {"float32": 1e-5, "float64": 1e-12}
integration = pytest.mark.integration


def spiral(backend, dtype, *, l2=0.0, dropout=None):
    """The chapter-10 spiral classifier (with L2 and dropout: chapter 15's), trained for a few epochs."""
    nnx.seed(0)
    X, y = nnx.datasets.spiral_data(samples=60, classes=3)
    layers = [nnx.Dense(2, 32, weight_regularizer_l2=l2, bias_regularizer_l2=l2, xp=backend, dtype=dtype)]
    layers += [nnx.ReLU(xp=backend), *([nnx.Dropout(dropout, xp=backend)] if dropout else [])]
    layers += [nnx.Dense(32, 3, xp=backend, dtype=dtype), nnx.Softmax(xp=backend)]
    model = built(layers, nnx.CategoricalCrossentropy(xp=backend), metrics.Categorical(xp=backend), backend)
    return model, X.astype(dtype), y


def binary(backend, dtype):
    """Chapter 16's binary logistic regression: one sigmoid output on two spiral classes."""
    nnx.seed(0)
    X, y = nnx.datasets.spiral_data(samples=60, classes=2)
    layers = [
        nnx.Dense(2, 16, xp=backend, dtype=dtype),
        nnx.ReLU(xp=backend),
        nnx.Dense(16, 1, xp=backend, dtype=dtype),
    ]
    layers.append(nnx.Sigmoid(xp=backend))
    model = built(layers, nnx.BinaryCrossentropy(xp=backend), metrics.Categorical(binary=True, xp=backend), backend)
    return model, X.astype(dtype), y.reshape(-1, 1).astype(dtype)


def regression(backend, dtype):
    """Chapter 17's sine regression with a linear output."""
    nnx.seed(0)
    X, y = nnx.datasets.sine_data(samples=120)
    layers = [
        nnx.Dense(1, 16, xp=backend, dtype=dtype),
        nnx.ReLU(xp=backend),
        nnx.Dense(16, 16, xp=backend, dtype=dtype),
    ]
    layers += [nnx.ReLU(xp=backend), nnx.Dense(16, 1, xp=backend, dtype=dtype), nnx.Linear(xp=backend)]
    model = built(layers, nnx.MeanSquaredError(xp=backend), metrics.Regression(xp=backend), backend)
    return model, X.astype(dtype), y.astype(dtype)


def dropout_l2(backend, dtype):
    return spiral(backend, dtype, l2=5e-4, dropout=0.1)


def built(layers, loss, accuracy, backend):
    model = nnx.Model(xp=backend)
    for layer in layers:
        model.add(layer)
    model.set(loss=loss, optimizer=nnx.Adam(learning_rate=0.02, xp=backend), accuracy=accuracy)
    model.finalize()
    return model


NETWORKS = {"spiral": spiral, "binary": binary, "regression": regression, "dropout_l2": dropout_l2}


def runtime_outputs(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"inputs": X})[0]


def assert_matches_predict(model, path, X, dtype):
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    expected = model.backend.to_numpy(model.predict(X))
    outputs = runtime_outputs(path, np.ascontiguousarray(X, dtype=dtype))
    assert outputs.dtype == np.dtype(dtype) and outputs.shape == expected.shape
    # relative to each value; a regression's values that cross zero are held to the same tolerance of 1% of the
    # largest output (a value near 0 has no relative precision to keep: both sides round it from larger terms)
    np.testing.assert_allclose(outputs, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * 1e-2 * np.abs(expected).max())


CASES = [
    pytest.param(name, dtype, marks=[] if (name, dtype) == ("spiral", "float32") else [integration])
    for name in NETWORKS
    for dtype in ("float32", "float64")
]


@pytest.mark.parametrize(("network", "dtype"), CASES)
def test_a_trained_book_network_runs_in_onnxruntime_as_predict(backend, network, dtype, tmp_path):
    if dtype == "float64":
        float64_or_skip(backend)
    model, X, y = NETWORKS[network](backend, dtype)
    model.train(X, y, epochs=30, print_every=None)
    path = model.export_onnx(tmp_path / "model.onnx")
    assert path == tmp_path / "model.onnx"
    assert_matches_predict(model, path, X, dtype)


@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=integration)])
def test_models_trained_by_train_many_export(backend, dtype, tmp_path):
    if dtype == "float64":
        float64_or_skip(backend)
    models = []
    for rate in (0.01, 0.05, 0.1):
        model, X, y = spiral(backend, dtype, l2=5e-4, dropout=0.1)
        model.optimizer.learning_rate = rate
        models.append(model)
    nnx.train_many(models, X, y, epochs=20, print_every=None, seed=0)
    for index, model in enumerate(models):
        path = model.export_onnx(tmp_path / f"model{index}.onnx")
        assert_matches_predict(model, path, X, dtype)


def test_the_file_is_the_same_from_every_backend(backend, tmp_path):
    on_numpy, _, _ = spiral("numpy", "float32")
    moved, _, _ = spiral("numpy", "float32")
    moved.to(backend)
    first = onnx.load(str(on_numpy.export_onnx(tmp_path / "numpy.onnx")))
    second = onnx.load(str(moved.export_onnx(tmp_path / "moved.onnx")))
    assert first.graph == second.graph
    assert [init.name for init in first.graph.initializer] == [
        "layer0.weights",
        "layer0.biases",
        "layer2.weights",
        "layer2.biases",
    ]


def test_the_file_names_its_input_and_output_and_carries_metadata(tmp_path):
    model, X, y = spiral("numpy", "float32", dropout=0.1)
    model.train(X, y, epochs=3, print_every=None)
    proto = onnx.load(str(model.export_onnx(tmp_path / "model.onnx")))
    (given,), (produced,) = proto.graph.input, proto.graph.output
    assert (given.name, produced.name) == ("inputs", "outputs")
    assert [d.dim_param or d.dim_value for d in given.type.tensor_type.shape.dim] == ["batch", 2]
    assert [d.dim_param or d.dim_value for d in produced.type.tensor_type.shape.dim] == ["batch", 3]
    assert given.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [(opset.domain, opset.version) for opset in proto.opset_import] == [("", 17)]
    assert [node.op_type for node in proto.graph.node] == ["Gemm", "Relu", "Gemm", "Softmax"]  # no Dropout node
    props = {prop.key: prop.value for prop in proto.metadata_props}
    assert props["nnx_version"] == nnx.__version__
    assert props["classes"] == "3" and props["dtype"] == "float32" and props["epochs_trained"] == "3"
    assert "Dense(2 -> 32)" in props["summary"] and "Trained: 3 epochs" in props["summary"]
    assert proto.producer_name == "nnx"


def test_the_batch_size_is_dynamic(tmp_path):
    model, X, _ = regression("numpy", "float64")
    path = model.export_onnx(tmp_path / "model.onnx")
    for rows in (1, 7, 120):
        np.testing.assert_allclose(runtime_outputs(path, X[:rows]), model.predict(X[:rows]), rtol=1e-12, atol=0)
    props = {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}
    assert props["output"] == "values (regression)" and "classes" not in props


# Layers of your own ----------------------------------------------------------------------------------------------


class LeakyReLU(nnx.Component):
    """A layer of the user's: max(x, alpha * x)."""

    CONFIG = ("alpha",)

    def __init__(self, alpha=0.1, *, xp=None):
        super().__init__(xp)
        self.alpha = alpha

    def forward(self, inputs, training=False):
        self.inputs = inputs
        self.output = self.xp.where(inputs > 0, inputs, inputs * self.alpha)

    def backward(self, dvalues):
        self.dinputs = self.xp.where(self.inputs > 0, dvalues, dvalues * self.alpha)


class ExportedLeakyReLU(LeakyReLU):
    def to_onnx(self, graph, inputs):
        return graph.node("LeakyRelu", [inputs], alpha=self.alpha)


class ScaledByConstant(LeakyReLU):
    """Exports through a stored array: inputs * alpha, in any layer's dtype."""

    def forward(self, inputs, training=False):
        self.output = inputs * self.alpha

    def to_onnx(self, graph, inputs):
        return graph.node("Mul", [inputs, graph.constant(self.alpha, name="alpha")])


class TemperatureSoftmax(nnx.Softmax):
    def forward(self, inputs, training=False):
        super().forward(inputs / 2.0, training)


def with_layer(layer, backend="numpy", dtype="float32"):
    layers = [nnx.Dense(2, 8, xp=backend, dtype=dtype), layer, nnx.Dense(8, 3, xp=backend, dtype=dtype)]
    model = built([*layers, nnx.Softmax(xp=backend)], nnx.CategoricalCrossentropy(xp=backend), None, backend)
    return model


def test_a_layer_without_an_export_is_named_with_how_to_add_one(tmp_path):
    model = with_layer(LeakyReLU())
    with pytest.raises(
        TypeError, match=r"layer 1, LeakyReLU\(alpha=0.1\), has no ONNX export; give its class a method to_onnx"
    ):
        model.export_onnx(tmp_path / "model.onnx")
    assert not list(tmp_path.iterdir())


def test_a_layer_with_to_onnx_exports(backend, tmp_path):
    nnx.seed(1)
    model = with_layer(ExportedLeakyReLU(0.2, xp=backend), backend)
    X = np.random.default_rng(0).standard_normal((50, 2)).astype("float32")
    path = model.export_onnx(tmp_path / "model.onnx")
    assert "LeakyRelu" in [node.op_type for node in onnx.load(str(path)).graph.node]
    assert_matches_predict(model, path, X, "float32")


def test_a_stored_constant_takes_the_models_dtype(backend, tmp_path):
    float64_or_skip(backend)
    model = with_layer(ScaledByConstant(0.5, xp=backend), backend, dtype="float64")
    X = np.random.default_rng(0).standard_normal((20, 2))
    path = model.export_onnx(tmp_path / "model.onnx")
    assert_matches_predict(model, path, X, "float64")


def test_a_subclass_that_computes_its_own_forward_does_not_export_as_its_parent(tmp_path):
    model = with_layer(nnx.ReLU())
    model.layers[-1] = TemperatureSoftmax()
    with pytest.raises(
        TypeError, match=r"computes its own forward but would export as Softmax; give TemperatureSoftmax"
    ):
        model.export_onnx(tmp_path / "model.onnx")


@pytest.mark.parametrize(
    ("to_onnx", "error", "match"),
    [
        (lambda self, graph, inputs: None, TypeError, r"to_onnx returned None, not the name of a value"),
        (lambda self, graph, inputs: "elsewhere", TypeError, r"to_onnx returned 'elsewhere'"),
        (lambda self, graph, inputs: graph.node("Relu", ["missing"]), ValueError, r"'missing' is not a value"),
        (lambda self, graph, inputs: graph.node(3, [inputs]), TypeError, r"op_type must be an operator name"),
        (lambda self, graph, inputs: graph.node("NoSuchOp", [inputs]), ValueError, r"the graph is not valid ONNX"),
        (
            lambda self, graph, inputs: graph.node("MatMul", [inputs, graph.constant(np.ones((5, 5)))]),
            ValueError,
            r"the graph is not valid ONNX \(\[ShapeInferenceError\]",
        ),
    ],
    ids=["none", "unknown-name", "unknown-input", "op-not-a-string", "unknown-op", "shapes-that-do-not-chain"],
)
def test_a_broken_to_onnx_is_refused_and_nothing_is_written(to_onnx, error, match, tmp_path):
    broken = type("Broken", (LeakyReLU,), {"to_onnx": to_onnx})
    with pytest.raises(error, match=match):
        with_layer(broken()).export_onnx(tmp_path / "model.onnx")
    assert not list(tmp_path.iterdir())


# Bad input, refused before a file is touched ------------------------------------------------------------------------


def test_an_unfinalized_model_is_refused(tmp_path):
    model = nnx.Model()
    model.add(nnx.Dense(2, 3))
    with pytest.raises(CallOrderError, match="finalize"):
        model.export_onnx(tmp_path / "model.onnx")
    assert not list(tmp_path.iterdir())


def test_a_folder_an_existing_file_and_a_wrong_suffix_are_refused(tmp_path):
    model, _, _ = spiral("numpy", "float32")
    with pytest.raises(ValueError, match="needs a file name, got the folder"):
        model.export_onnx(tmp_path)
    with pytest.raises(ValueError, match=r"ending in \.onnx"):
        model.export_onnx(tmp_path / "model.nnx")
    existing = tmp_path / "model.onnx"
    existing.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="pass overwrite=True to replace it"):
        model.export_onnx(existing)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(TypeError, match="overwrite must be True or False"):
        model.export_onnx(existing, overwrite="yes")
    model.export_onnx(existing, overwrite=True)
    onnx.checker.check_model(onnx.load(str(existing)))


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    model, _, _ = spiral("numpy", "float32")
    existing = tmp_path / "model.onnx"
    existing.write_bytes(b"old")

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(SaveError, match="the previous file there is intact"):
        model.export_onnx(existing, overwrite=True)
    assert existing.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_without_the_extra_the_error_says_what_to_install(tmp_path, monkeypatch):
    model, _, _ = spiral("numpy", "float32")
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "nnx-nnfs\[onnx\]"'):
        model.export_onnx(tmp_path / "model.onnx")
    assert not list(tmp_path.iterdir())


def test_import_nnx_does_not_import_onnx():
    code = "import sys, nnx; nnx.Model; print(sorted(m for m in ('onnx', 'onnxruntime') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# nnx export ------------------------------------------------------------------------------------------------------


def test_nnx_export_writes_the_file_of_a_saved_model(tmp_path, capsys):
    model, X, y = spiral("numpy", "float32")
    model.train(X, y, epochs=5, print_every=None)
    model.save(tmp_path / "model.nnx")
    target = tmp_path / "model.onnx"
    assert cli.main(["export", str(tmp_path / "model.nnx"), str(target)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert_matches_predict(model, target, X, "float32")
    assert cli.main(["export", str(tmp_path / "model.nnx"), str(target)]) == 1
    assert "on the command line: --overwrite" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path / "model.nnx"), str(target), "--overwrite"]) == 0


def test_nnx_export_imports_the_modules_that_define_your_layers(tmp_path):
    (tmp_path / "my_layers.py").write_text(
        "import nnx\n\n"
        "class Doubled(nnx.Component):\n"
        "    def forward(self, inputs, training=False):\n"
        "        self.output = inputs * 2\n\n"
        "    def backward(self, dvalues):\n"
        "        self.dinputs = dvalues * 2\n\n"
        "    def to_onnx(self, graph, inputs):\n"
        "        return graph.node('Add', [inputs, inputs])\n"
    )
    save = (
        "import my_layers, nnx; from tests.test_onnx import with_layer; with_layer(my_layers.Doubled()).save('m.nnx')"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    subprocess.run([sys.executable, "-c", save], cwd=tmp_path, env=environment, check=True)
    command = [sys.executable, "-m", "nnx", "export", "m.nnx", "m.onnx"]
    plain = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    refused = subprocess.run(command, cwd=tmp_path, env=plain, capture_output=True, text=True)
    assert (
        refused.returncode == 1
        and "--import MODULE, the module" in refused.stderr
        and not (tmp_path / "m.onnx").exists()
    )
    subprocess.run([*command, "--import", "my_layers"], cwd=tmp_path, env=plain, check=True, capture_output=True)
    assert "Add" in [node.op_type for node in onnx.load(str(tmp_path / "m.onnx")).graph.node]


def test_nnx_export_names_a_missing_model_file(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path / "none.nnx"), str(tmp_path / "model.onnx")]) == 1
    assert "none.nnx" in capsys.readouterr().err
    assert not (tmp_path / "model.onnx").exists()


def test_nnx_export_says_when_it_is_given_an_onnx_file(tmp_path, capsys):
    model, _, _ = spiral("numpy", "float32")
    exported = model.export_onnx(tmp_path / "model.onnx")
    assert cli.main(["export", str(exported), str(tmp_path / "again.onnx")]) == 1
    assert "It is an ONNX file: nnx export reads a model file written by Model.save" in capsys.readouterr().err
