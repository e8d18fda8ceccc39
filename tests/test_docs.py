"""The documentation site: builds with warnings as errors and stays in step with the code."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mrs_numerics.solvers import SOLVERS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PUBLIC_MODULES = (
    "mrs_numerics.schedules",
    "mrs_numerics.solvers",
    "mrs_numerics.samplers",
    "mrs_numerics.restoration",
    "mrs_numerics.noise",
    "mrs_numerics.references",
    "mrs_numerics.oracles",
    "mrs_numerics.convergence",
    "mrs_numerics.verify",
    "derivations.forward",
    "derivations.log_snr",
    "derivations.solutions",
    "derivations.phi",
    "derivations.updates",
    "derivations.order_proofs",
    "derivations.parameterization",
    "derivations.baselines",
    "derivations.schedules",
    "derivations.irsde",
)
"""Modules whose API must have a reference page."""

pytestmark = pytest.mark.xdist_group("docs")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)]
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def _nav_pages(entries) -> list[str]:
    pages = []
    for entry in entries:
        if isinstance(entry, str):
            pages.append(entry)
        else:
            for value in entry.values():
                pages += [value] if isinstance(value, str) else _nav_pages(value)
    return pages


def _built_page(site: Path, page: str) -> Path:
    stem = page.removesuffix(".md")
    if stem == "index" or stem.endswith("/index"):
        return site / f"{stem}.html"
    return site / stem / "index.html"


def _documented_modules() -> set[str]:
    found = set()
    for page in DOCS.rglob("*.md"):
        found |= set(re.findall(r"^::: ([\w.]+)\s*$", page.read_text(), flags=re.MULTILINE))
    return found


def _public_docstring_names(module: str) -> list[str]:
    """Top-level functions and classes with a docstring (what mkdocstrings renders)."""
    path = Path(importlib.util.find_spec(module).origin)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    kinds = (ast.FunctionDef, ast.ClassDef)
    return [
        node.name
        for node in tree.body
        if isinstance(node, kinds) and not node.name.startswith("_") and ast.get_docstring(node)
    ]


def test_every_page_of_the_navigation_is_built(site):
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    pages = _nav_pages(nav)
    assert "index.md" in pages
    for page in pages:
        assert (DOCS / page).is_file(), page
        assert _built_page(site, page).is_file(), page


def test_the_public_modules_have_reference_pages():
    assert set(PUBLIC_MODULES) <= _documented_modules()


@pytest.mark.parametrize("module", sorted(_documented_modules()))
def test_reference_page_documents_every_public_function_and_class(site, module):
    pages = [
        p
        for p in DOCS.rglob("*.md")
        if re.search(rf"^::: {re.escape(module)}\s*$", p.read_text(), flags=re.MULTILINE)
    ]
    html = "".join(_built_page(site, str(p.relative_to(DOCS))).read_text() for p in pages)
    assert f'id="{module}"' in html
    for name in _public_docstring_names(module):
        assert f'id="{module}.{name}"' in html, name


def test_every_solver_is_described_in_concepts_and_verification():
    for page in ("concepts.md", "verification.md"):
        text = (DOCS / page).read_text()
        missing = [solver for solver in SOLVERS if f"`{solver}`" not in text]
        assert not missing, (page, missing)


def test_which_solver_section_is_present_in_concepts():
    assert "## Which solver for which network and NFE" in (DOCS / "concepts.md").read_text()


def test_images_used_by_the_readme_and_the_docs_exist():
    readme = ROOT / "README.md"
    sources = [readme, *DOCS.rglob("*.md")]
    for source in sources:
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", source.read_text()):
            if "://" not in target:
                assert (source.parent / target).is_file(), (source.name, target)
