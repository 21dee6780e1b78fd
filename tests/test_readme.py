"""The README's Python examples run as printed (the Model one with fewer epochs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


def run_block(index: int, namespace: dict) -> None:
    source = BLOCKS[index].replace("epochs=10001", "epochs=11").replace("epochs=20001", "epochs=21")
    source = source.replace("print_every=100", "print_every=5")
    source = source.replace('xp="cupy"', 'xp="numpy"')
    exec(compile(source, f"README.md block {index}", "exec"), namespace)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, capsys, tmp_path, monkeypatch):
    """Later blocks continue the first two (the layers and the Model), in a scratch folder for their files."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for earlier in range(min(index, 2)):
        run_block(earlier, namespace)
    capsys.readouterr()
    run_block(index, namespace)
    out = capsys.readouterr().out
    if index == 0:
        assert out.strip().startswith("1.098")
    elif index == 1:
        assert "validation, acc: " in out
        assert set(namespace["metrics"]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    elif "nnx.train_many(" in BLOCKS[index]:
        histories = namespace["histories"]
        assert len(histories) == 6 and all(len(history.epoch) == 11 for history in histories)
        assert "stack 1/1 (6 models) epoch 11/11 - best loss: " in out
    elif "model.summary()" in BLOCKS[index]:
        assert "Total parameters: " in out and "Trained: " in out
    else:
        assert list(tmp_path.iterdir()), "the block should have written its files"
