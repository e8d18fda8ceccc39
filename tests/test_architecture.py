"""The package's layout: layers that import downwards only, no cycles, and the 0.1 paths kept.

The layer contracts live in ``pyproject.toml`` (``[tool.importlinter]``) and are checked by
import-linter here and in ``make lint``; a copy of the package with one upward import shows the
contract is not vacuous.
"""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import grimp
import pytest

import mrs_numerics
from mrs_numerics._moved import MOVED
from tests.helpers import SUBPACKAGES

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mrs_numerics"


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )


def test_import_contracts_are_kept():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(ROOT / "pyproject.toml", copy)
    shutil.copytree(ROOT / "derivations", copy / "derivations")
    shutil.copytree(PACKAGE, copy / "mrs_numerics", ignore=shutil.ignore_patterns("weights"))
    grids = copy / "mrs_numerics" / "schedules" / "grids.py"
    grids.write_text(grids.read_text() + "\nfrom mrs_numerics.solvers import registry  # up\n")
    result = _lint_imports(copy)
    assert result.returncode != 0
    assert "Runtime layers: imports point down BROKEN" in result.stdout


def test_no_module_imports_one_that_imports_it_back():
    graph = grimp.build_graph("mrs_numerics")
    cycles = [
        (module, imported)
        for module in sorted(graph.modules)
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(importer=imported, imported=module)
    ]
    assert not cycles


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_every_subpackage_says_its_job_in_one_line(name):
    module = importlib.import_module(f"mrs_numerics.{name}")
    summary = (module.__doc__ or "").strip().splitlines()
    assert summary and summary[0].endswith(".") and len(summary[0]) <= 100


def _function_level_imports(path: Path) -> list[tuple[str, str]]:
    """(function, the line above its first import) for every function of ``path`` that imports."""
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            imports = [
                inner.lineno
                for inner in ast.walk(node)
                if isinstance(inner, ast.Import | ast.ImportFrom)
            ]
            if imports:
                found.append((node.name, lines[min(imports) - 2].strip()))
    return found


def test_function_level_imports_only_in_the_cli_each_with_a_reason():
    """Only the command defers imports (start-up time), and says why above each group."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if "_generated" in path.parts:
            continue
        imports = _function_level_imports(path)
        if path.parent.name != "cli":
            assert not imports, (path, imports)
        for function, above in imports:
            assert above.startswith("# imported here"), (path, function, above)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_moved_module_path_still_works_and_names_its_new_home(old):
    module = importlib.import_module(old)
    targets = [importlib.import_module(target) for target in MOVED[old]]
    public = [
        name
        for target in targets
        for name in getattr(target, "__all__", dir(target))
        if not name.startswith("_")
    ]
    assert public
    name = public[0]
    home = next(t for t in targets if hasattr(t, name))
    with pytest.warns(DeprecationWarning, match=rf"{old}.*{home.__name__}"):
        value = getattr(module, name)
    assert value is getattr(home, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for other in public:
            assert getattr(module, other) is getattr(
                next(t for t in targets if hasattr(t, other)), other
            )


def test_the_paths_the_docs_have_always_used_keep_working():
    from mrs_numerics import MRSampler, schedules
    from mrs_numerics.restoration import restore_shipped
    from mrs_numerics.solvers import SOLVERS, make_sampler

    assert callable(make_sampler) and SOLVERS and callable(restore_shipped)
    assert MRSampler is mrs_numerics.solvers.mr_sampler.MRSampler
    assert callable(schedules.cosine)
    with pytest.warns(DeprecationWarning, match="mrs_numerics.verification.driver"):
        from mrs_numerics import verify

        assert verify.run_verification is mrs_numerics.verification.run_verification


def test_the_version_is_0_2():
    assert mrs_numerics.__version__ == "0.2.0"


def test_no_test_module_imports_another():
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        imported = [
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        ]
        assert not [m for m in imported if m.startswith("tests.test_")], path
