"""Jupyter awareness: whether code runs in a notebook kernel, and a text stream shown there as one line in place.

Nothing here imports IPython unless the process already has: outside a notebook these are plain checks.
"""

from __future__ import annotations

import sys


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (a notebook, JupyterLab, VS Code, Colab), not a terminal IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def has_widgets() -> bool:
    """Whether ipywidgets is installed, so tqdm can draw its notebook bar."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class LineInPlace:
    """A write-only text stream shown in a notebook as one output line, replaced at each write (tqdm's bar
    without ipywidgets: the cell keeps a single line instead of one per update)."""

    encoding = "utf-8"

    def __init__(self) -> None:
        from IPython.display import display

        self.text = ""
        self._handle = display({"text/plain": ""}, raw=True, display_id=True)

    def write(self, text: str) -> int:
        line = next((part for part in reversed(text.replace("\n", "\r").split("\r")) if part.strip()), "")
        if line and line != self.text:
            self.text = line
            self._handle.update({"text/plain": line}, raw=True)
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered: every write is shown at once."""
