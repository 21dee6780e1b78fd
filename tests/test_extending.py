"""The "Write a layer, loss or optimizer" guide's examples (a user-written layer, loss and optimizer) train, save,
load and predict on every CPU backend as printed, and `explain_step` names the generic step and the component without
a kernel."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import nnx

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "how-to" / "extending.md"
BLOCKS = re.findall(r"```python[^\n]*\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
EXAMPLES = {"layer": ("LeakyReLU", 0), "loss": ("HalfSquaredError", 1), "optimizer": ("SignSGD", 2)}


def test_the_section_has_a_layer_a_loss_and_an_optimizer():
    assert len(BLOCKS) >= 3  # then the guide's later sections (checking a component, ...)
    for name, index in EXAMPLES.values():
        assert f"class {name}(" in BLOCKS[index]


def run_example(index: int, backend, tmp_path, monkeypatch) -> dict:
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_extending_{index}"}
    with nnx.backends.use(backend):
        exec(compile(BLOCKS[index], f"docs/how-to/extending.md block {index}", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_readme_extension_trains_saves_loads_and_predicts(example, backend, tmp_path, monkeypatch, capsys):
    name, index = EXAMPLES[example]
    namespace = run_example(index, backend, tmp_path, monkeypatch)
    out = capsys.readouterr().out
    model, loaded = namespace["model"], namespace["loaded"]
    assert out.splitlines()[0].startswith("generic step") and name in out.splitlines()[0]
    assert "epoch: 200, acc: " in out
    assert model.backend is backend and loaded.backend is backend
    assert model.optimizer.iterations == loaded.optimizer.iterations == 201
    mine = [type(part).__name__ for part in (*loaded.layers, loaded.loss, loaded.optimizer)]
    assert name in mine
    if example == "layer":
        assert loaded.layers[1].alpha == 0.05
    for ours, theirs in zip(model.get_parameters(), loaded.get_parameters(), strict=True):
        for mine_array, their_array in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(backend.to_numpy(mine_array), backend.to_numpy(their_array))
    expected = backend.to_numpy(model.predict(namespace["X"]))
    np.testing.assert_array_equal(backend.to_numpy(namespace["predictions"]), expected)
    assert np.isfinite(expected).all()


def test_the_custom_layer_backward_matches_finite_differences(tmp_path, monkeypatch):
    namespace = run_example(0, nnx.backends.get("numpy"), tmp_path, monkeypatch)
    layer = namespace["LeakyReLU"](0.1, xp="numpy")
    x = np.array([[-2.0, -0.5, 0.5, 3.0]])
    layer.forward(x)
    layer.backward(np.ones_like(x))
    step = 1e-6
    numeric = []
    for column in range(x.shape[1]):
        shifted = [x.copy(), x.copy()]
        shifted[0][0, column] += step
        shifted[1][0, column] -= step
        outputs = []
        for value in shifted:
            layer.forward(value)
            outputs.append(layer.output.sum())
        numeric.append((outputs[0] - outputs[1]) / (2 * step))
    np.testing.assert_allclose(layer.dinputs[0], numeric, rtol=1e-6)


ONNX_BLOCK = next(index for index, block in enumerate(BLOCKS) if "def to_onnx" in block)


def test_the_guides_layer_exports_to_onnx_as_it_predicts(backend, tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime", reason="onnxruntime (the test extra) is not installed")
    namespace = run_example(ONNX_BLOCK, backend, tmp_path, monkeypatch)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "['Gemm', 'LeakyRelu', 'Gemm', 'Softmax']"
    assert float(lines[1].rsplit(" ", 1)[1]) < 1e-5
    assert namespace["model"].backend is backend and (tmp_path / "leaky.onnx").is_file()
