"""The `nnx` command: `nnx info` (what a bug report needs) and the command dispatch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import nnx
from nnx import cli


def run_module(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "NNX_BACKEND"}
    return subprocess.run(
        [sys.executable, "-m", "nnx", *args],
        capture_output=True,
        text=True,
        env={**environment, **(env or {})},
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_info_names_versions_every_backend_and_the_active_one(monkeypatch):
    monkeypatch.delenv("NNX_BACKEND", raising=False)
    lines = cli.info_lines()
    text = "\n".join(lines)
    assert lines[0] == f"nnx {nnx.__version__}"
    assert lines[1].startswith("Python 3.")
    for label in ("NumPy:", "array-api-compat:", "CuPy:"):
        assert any(line.strip().startswith(label) for line in lines), label
    for name in nnx.backends.registered():
        assert any(line.strip().split()[0] == name for line in lines if line.startswith("  ")), name
    assert "numpy              available" in text
    assert lines[-1] == "active backend: numpy on CPU (chosen by default)"


def test_info_explains_why_cupy_is_unavailable():
    if "cupy" in nnx.backends.available():
        pytest.skip("cupy is available here: see test_info_without_cupy_installed")
    line = next(line for line in cli.info_lines() if line.strip().startswith("cupy "))
    assert "unavailable: " in line and "pip install" in line


def test_info_without_cupy_installed(tmp_path):
    """On a machine without CuPy (simulated by a module that refuses to import) the report still works."""
    (tmp_path / "cupy.py").write_text("raise ImportError(\"No module named 'cupy'\")\n")
    result = run_module("info", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("cupy "))
    assert "unavailable: CuPy could not be imported (No module named 'cupy')" in line
    assert 'pip install "nnx-nnfs[cuda12]"' in line


def test_info_says_where_the_backend_was_chosen(monkeypatch):
    monkeypatch.setenv("NNX_BACKEND", "array_api_strict")
    if "array_api_strict" not in nnx.backends.available():
        pytest.skip("array_api_strict is not installed")
    assert cli.info_lines()[-1].endswith("(chosen by NNX_BACKEND=array_api_strict)")
    with nnx.backends.use("numpy"):
        assert cli.info_lines()[-1] == "active backend: numpy on CPU (chosen by nnx.backends.use())"
    monkeypatch.setenv("NNX_BACKEND", "no_such_backend")
    assert cli.info_lines()[-1].startswith("active backend: none usable (NNX_BACKEND=no_such_backend): unknown backend")


def test_info_survives_a_broken_plug_in():
    def broken():
        raise RuntimeError("the plug-in exploded")

    nnx.backends.register("broken_for_info", broken)
    try:
        line = next(line for line in cli.info_lines() if "broken_for_info" in line)
        available = nnx.backends.available()
    finally:
        nnx.backends._loaders.pop("broken_for_info")
        nnx.backends._failures.pop("broken_for_info", None)
    assert "unavailable: its loader failed (RuntimeError: the plug-in exploded)" in line
    assert "broken_for_info" not in available and "numpy" in available


def test_numpy_device_says_whether_the_compiled_step_is_on(monkeypatch):
    backend = nnx.backends.get("numpy")
    monkeypatch.setattr(backend, "compile", False)
    device = backend.device_info()[0]
    assert device["name"] == "CPU" and device["cores"] == os.cpu_count()
    assert device["compiled step"].startswith("off")


def test_python_dash_m_nnx_info():
    result = run_module("info")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"nnx {nnx.__version__}\n")
    assert "backends:" in result.stdout and "active backend: numpy" in result.stdout


def test_console_script():
    script = shutil.which("nnx")
    if script is None:
        pytest.skip("the nnx console script is not on PATH (install the package with pip install -e .)")
    result = subprocess.run([script, "info"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("nnx ")


def test_usage_version_and_unknown_commands(capsys):
    assert cli.main([]) == 2
    assert "usage: nnx <command>" in capsys.readouterr().out
    assert cli.main(["--help"]) == 0
    assert "info " in capsys.readouterr().out
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"nnx {nnx.__version__}\n"
    assert cli.main(["infoo"]) == 2
    assert "nnx: unknown command 'infoo'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["info", "--bogus"])
    assert exit_info.value.code == 2
