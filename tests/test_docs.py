"""The documentation site: every code block runs when the site is built (`nox -s docs`, with --strict), pages that
write files run in a scratch folder, and every page is in the navigation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
FENCE = re.compile(r"^```(\S*)([^\n]*)\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)
RUNS = re.compile(r'\bexec="(on|1|true)"')
NOT_CODE = {"text", "toml", "mermaid"}  # shown, not run: output, configuration
# Shell lines that the build cannot run, and why: CI runs the README's two commands itself, and the others need a GPU.
NOT_RUN_HERE = {
    "python -m pip install -e . && python examples/spiral.py": "the README's first command: CI runs it",
    "python -m pip install nox && python -m nox": "the README's second command: CI runs it",
    'python -m pip install -e ".[cuda12]"    # CUDA 12 drivers; ".[cuda13]" for CUDA 13': "needs an NVIDIA GPU",
    "NNX_BACKEND=cupy python examples/spiral.py": "needs an NVIDIA GPU",
}
WRITES_FILES = re.compile(r"\.save\(|\.save_parameters\(|savefig\(|\.to_csv\(|\.to_json\(|checkpoint=|--csv")


def blocks(page: Path) -> list[tuple[str, str, str]]:
    """(language, options, code) of each fenced block on `page`."""
    return FENCE.findall(page.read_text())


def test_the_site_has_its_sections():
    names = {page.relative_to(DOCS).parts[0] for page in PAGES}
    assert {"tutorials", "how-to", "explanation", "reference", "index.md", "performance.md", "development.md"} <= names
    assert (DOCS / "tutorials" / "chapter10.ipynb").resolve() == ROOT / "examples" / "notebooks" / "chapter10.ipynb"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(DOCS)))
def test_every_code_block_runs_in_the_build(page):
    for language, options, code in blocks(page):
        if language in NOT_CODE:
            continue
        if RUNS.search(options):
            continue
        assert language in ("bash", "sh", "console"), f"{page.name}: a {language or 'plain'} block that does not run"
        for line in code.splitlines():
            assert not line.strip() or line.startswith("#") or line in NOT_RUN_HERE, (
                f'{page.name}: the shell line {line!r} does not run in the build; add exec="on"'
            )


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(DOCS)))
def test_pages_that_write_files_run_in_a_scratch_folder(page):
    text = page.read_text()
    runs_code = [code for language, options, code in blocks(page) if RUNS.search(options)]
    if any(WRITES_FILES.search(code) for code in runs_code):
        assert text.startswith("---\nscratch: true\n"), f"{page.name} writes files: give it `scratch: true`"


def test_every_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s+([\w/.-]+\.(?:md|ipynb))\s*$", nav, flags=re.MULTILINE))
    pages = {str(page.relative_to(DOCS)) for page in PAGES} | {"tutorials/chapter10.ipynb"}
    assert pages == listed


def test_docs_have_no_substituted_code():
    """Examples that would take long take a size by design; no test rewrites documented code before running it."""
    for test in (ROOT / "tests").glob("test_*.py"):
        assert "replace(" + '"epochs=' not in test.read_text(), test.name
