"""Build hooks for the documentation site.

- A code block's printed output shows under it whether the block prints or nnx does (the book's lines, summaries):
  while a block runs, what goes to standard output lands in the block's output, in order.
- A page whose front matter says ``scratch: true`` runs its code blocks in a new empty folder, so the files its
  examples write (models, checkpoints, CSVs) never land in the repository.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from markdown_exec._internal.formatters import python as python_blocks

_folders_left: list[str] = []
_run_block = python_blocks.exec_python


class _IntoBlockOutput:
    """A text stream that writes through a code block's own `print`, so its output keeps its order."""

    def __init__(self, block_print):
        self.block_print = block_print

    def write(self, text: str) -> int:
        self.block_print(text, end="")
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _run_block_with_stdout(code: str, filename: str, exec_globals: dict) -> None:
    with contextlib.redirect_stdout(_IntoBlockOutput(exec_globals["print"])):
        _run_block(code, filename, exec_globals)


def on_config(config):
    """Send standard output into the running code block's output."""
    python_blocks.exec_python = _run_block_with_stdout
    return config


def on_page_markdown(markdown, page, config, files):
    """Enter a new empty folder before the page's code blocks run."""
    if page.meta.get("scratch"):
        _folders_left.append(os.getcwd())
        os.chdir(tempfile.mkdtemp(prefix="nnx-docs-"))
    return markdown


def on_page_content(html, page, config, files):
    """Go back to the folder the build runs in once the page is rendered."""
    if page.meta.get("scratch") and _folders_left:
        os.chdir(_folders_left.pop())
    return html
