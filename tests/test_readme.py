"""The README: one screen or two, the two set-up commands at its top, and its Python examples run as printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.DOTALL)
MAX_LINES = 150


def test_readme_fits_on_a_screen_or_two():
    assert len(TEXT.splitlines()) <= MAX_LINES


def test_the_two_commands_open_the_readme():
    first_block = re.search(r"```bash\n(.*?)```", TEXT, flags=re.DOTALL)
    assert first_block is not None and TEXT.index(first_block.group(0)) < TEXT.index("\n## ")
    commands = [line for line in first_block.group(1).splitlines() if line and not line.startswith("#")]
    assert commands == [
        "python -m pip install -e . && python examples/spiral.py",
        "python -m pip install nox && python -m nox",
    ]


def test_readme_links_point_at_files():
    for target in re.findall(r"\]\(((?!https?:)[^)#]+)\)", TEXT):
        assert (README.parent / target).exists(), target


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs_as_printed(index, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {})
    out = capsys.readouterr().out
    if index == 0:
        assert out.strip().startswith("1.098")
    else:
        assert out.startswith("epoch: 50, acc: ") and "\nepoch: 100, acc: " in out
        assert (tmp_path / "spiral.nnx").is_file()


def test_readme_has_both_examples():
    assert len(BLOCKS) == 2
