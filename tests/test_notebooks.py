"""The notebooks: stored without outputs, generated from their source, and executable.

Execution uses ``MRS_NOTEBOOK_SIZE=small`` (smaller grids, samples and the ``quick``
verification level); every statement a notebook proves or checks is asserted inside the
notebook, so a failing proof or check fails its execution here.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
STORED = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
RESULTS_NOTEBOOKS = ("04", "05")
"""Notebooks of measured results (not derivations): no SymPy import or typeset equations needed."""
CELL_TIMEOUT = 600
"""Seconds one cell may take (the small size takes seconds; the margin is for a loaded CI)."""


def _builder():
    spec = importlib.util.spec_from_file_location("notebook_build", NOTEBOOK_DIR / "_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code(path: Path) -> str:
    notebook = nbformat.read(path, as_version=4)
    return "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")


def test_the_stored_notebooks_are_exactly_those_of_the_source():
    assert STORED, "no notebooks stored"
    assert {path.name for path in STORED} == set(_builder().NOTEBOOKS)


@pytest.mark.parametrize("path", STORED, ids=lambda path: path.stem)
def test_stored_notebook_has_no_outputs_or_execution_counts(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code_cells
    for cell in code_cells:
        assert cell["outputs"] == []
        assert cell["execution_count"] is None


@pytest.mark.parametrize("path", STORED, ids=lambda path: path.stem)
def test_stored_notebook_is_generated_from_its_source(path):
    builder = _builder()
    assert path.read_text(encoding="utf-8") == builder.render(builder.NOTEBOOKS[path.name])


@pytest.mark.parametrize("path", STORED, ids=lambda path: path.stem)
def test_notebook_uses_the_package_instead_of_restating_it(path):
    code = _code(path)
    assert re.search(r"^from mrs_numerics\b", code, flags=re.MULTILINE)
    if not path.name.startswith(RESULTS_NOTEBOOKS):
        assert re.search(r"^from derivations\b", code, flags=re.MULTILINE)


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
