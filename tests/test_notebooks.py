"""The notebooks: text sources paired with stored notebooks without outputs, and executable.

Each notebook is a jupytext percent-format ``notebooks/NN_name.py`` (the reviewed source, linted
by ruff like all code) paired with ``notebooks/NN_name.ipynb`` by ``notebooks/jupytext.toml``;
what they share lives in ``notebooks/notebook_helpers.py``. Execution uses
``MRS_NOTEBOOK_SIZE=small`` (smaller grids, samples and the ``quick`` verification level); every
statement a notebook proves or checks is asserted inside the notebook, so a failing proof or
check fails its execution here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.config import load_jupytext_config
from jupytext.paired_paths import paired_paths
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
HELPERS = NOTEBOOK_DIR / "notebook_helpers.py"
SOURCES = sorted(path for path in NOTEBOOK_DIR.glob("*.py") if path != HELPERS)
"""The notebooks as text: every ``.py`` file of the folder except the shared helpers."""
STORED = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
RESULTS_NOTEBOOKS = ("04", "05")
"""Notebooks of measured results (not derivations): no SymPy import or typeset equations needed."""
SHARED = ("tex", "show", "proved", "table")
"""Helpers every notebook imports from ``notebook_helpers`` rather than defining its own."""
CELL_TIMEOUT = 600
"""Seconds one cell may take (the small size takes seconds; the margin is for a loaded CI)."""


def _cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def _code(path: Path) -> str:
    notebook = nbformat.read(path, as_version=4)
    return "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")


def test_the_stored_notebooks_are_exactly_the_text_notebooks():
    assert SOURCES, "no text notebooks"
    assert HELPERS.is_file()
    assert [path.stem for path in STORED] == [path.stem for path in SOURCES]


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.stem)
def test_text_notebook_is_percent_format_paired_with_its_ipynb(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# ---\n# jupyter:\n"), "no jupytext header"
    assert re.search(r"^# %%$", text, flags=re.MULTILINE)
    metadata = jupytext.read(path).metadata
    assert metadata["jupytext"]["text_representation"]["format_name"] == "percent"
    assert metadata["kernelspec"]["name"] == "python3"
    # The pairing `jupytext --sync` and Jupyter use: declared once, in notebooks/jupytext.toml.
    formats = load_jupytext_config(str(path)).default_formats(str(path))
    assert formats, "notebooks/jupytext.toml declares no pairing for this file"
    paired = {
        Path(other): fmt.get("format_name")
        for other, fmt in paired_paths(str(path), "py:percent", formats)
    }
    assert paired == {path: "percent", path.with_suffix(".ipynb"): None}


@pytest.mark.parametrize("path", STORED, ids=lambda path: path.stem)
def test_stored_notebook_has_no_outputs_or_execution_counts(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code_cells
    for cell in code_cells:
        assert cell["outputs"] == []
        assert cell["execution_count"] is None


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.stem)
def test_stored_notebook_is_in_sync_with_its_text(path):
    """Cell by cell, type and text, as jupytext reads the .py (run `jupytext --sync` if not)."""
    text = jupytext.read(path)
    stored = nbformat.read(path.with_suffix(".ipynb"), as_version=4)
    assert _cells(stored) == _cells(text), f"out of sync: jupytext --sync {path.name}"
    assert stored.metadata["kernelspec"] == text.metadata["kernelspec"]


@pytest.mark.parametrize("path", STORED, ids=lambda path: path.stem)
def test_notebook_uses_the_package_instead_of_restating_it(path):
    code = _code(path)
    assert re.search(r"^from mrs_numerics\b", code, flags=re.MULTILINE)
    if not path.name.startswith(RESULTS_NOTEBOOKS):
        assert re.search(r"^from derivations\b", code, flags=re.MULTILINE)
    assert re.search(r"^from notebook_helpers import ", code, flags=re.MULTILINE)
    restated = re.findall(rf"^def ({'|'.join(SHARED)})\b", code, flags=re.MULTILINE)
    assert not restated, f"defines {restated} instead of importing it from notebook_helpers"


@pytest.mark.parametrize("path", STORED, ids=lambda path: path.stem)
def test_notebook_executes_at_small_size_with_equations_and_figures(path, monkeypatch):
    monkeypatch.setenv("MRS_NOTEBOOK_SIZE", "small")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()
    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    assert not [output for output in outputs if output.output_type == "error"]
    shown = {mime for output in outputs for mime in output.get("data", {})}
    assert "image/png" in shown
    assert "text/markdown" in shown
    if not path.name.startswith(RESULTS_NOTEBOOKS):
        assert "text/latex" in shown
