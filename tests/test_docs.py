"""The documentation site: builds with warnings as errors and stays in step with the code."""

from __future__ import annotations

import ast
import html
import importlib
import importlib.util
import inspect
import os
import pkgutil
import posixpath
import re
import subprocess
import sys
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

import mrs_numerics
from mrs_numerics._moved import MOVED
from mrs_numerics.solvers import SOLVERS
from tests.helpers import SUBPACKAGES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
"""The runtime subpackages, one API page each (``docs/api/<name>.md``)."""
PUBLIC_MODULES = (
    "mrs_numerics",
    "mrs_numerics.schedules",
    "mrs_numerics.schedules.continuous",
    "mrs_numerics.schedules.discrete",
    "mrs_numerics.schedules.user",
    "mrs_numerics.schedules.grids",
    "mrs_numerics.schedules.identity",
    "mrs_numerics.schedules.protocol",
    "mrs_numerics.solvers",
    "mrs_numerics.solvers.registry",
    "mrs_numerics.solvers.factory",
    "mrs_numerics.solvers.configuration",
    "mrs_numerics.solvers.mr_sampler",
    "mrs_numerics.solvers.baselines",
    "mrs_numerics.solvers.base",
    "mrs_numerics.solvers.options",
    "mrs_numerics.solvers.engine",
    "mrs_numerics.solvers.kernels",
    "mrs_numerics.solvers.parameterization",
    "mrs_numerics.solvers.randomness",
    "mrs_numerics.solvers.brownian",
    "mrs_numerics.solvers.adapters",
    "mrs_numerics.solvers.presets",
    "mrs_numerics.solvers.kdiffusion",
    "mrs_numerics.solvers.diffusers_scheduler",
    "mrs_numerics.solvers.diffusers_config",
    "mrs_numerics.solvers.protocols",
    "mrs_numerics.solvers.instability",
    "mrs_numerics.imaging",
    "mrs_numerics.imaging.photos",
    "mrs_numerics.imaging.files",
    "mrs_numerics.imaging.padding",
    "mrs_numerics.imaging.metrics",
    "mrs_numerics.imaging.degradations",
    "mrs_numerics.models",
    "mrs_numerics.models.unet",
    "mrs_numerics.models.registry",
    "mrs_numerics.models.training",
    "mrs_numerics.models.tuned_grids",
    "mrs_numerics.models.grid_binding",
    "mrs_numerics.models.network_identity",
    "mrs_numerics.models.irsde_blocks",
    "mrs_numerics.models.irsde_backbone",
    "mrs_numerics.models.irsde_unet",
    "mrs_numerics.models.daclip_attention",
    "mrs_numerics.models.daclip_unet",
    "mrs_numerics.models.checkpoints",
    "mrs_numerics.models.irsde_options",
    "mrs_numerics.models.input_files",
    "mrs_numerics.verification",
    "mrs_numerics.verification.oracles",
    "mrs_numerics.verification.references",
    "mrs_numerics.verification.studies",
    "mrs_numerics.verification.real_network",
    "mrs_numerics.verification.driver",
    "mrs_numerics.verification.report",
    "mrs_numerics.restoration",
    "mrs_numerics.restoration.restore",
    "mrs_numerics.restoration.tiling",
    "mrs_numerics.restoration.paths",
    "mrs_numerics.restoration.folders",
    "mrs_numerics.restoration.manifest",
    "mrs_numerics.restoration.checkpoint",
    "mrs_numerics.restoration.processes",
    "mrs_numerics.restoration.quality",
    "mrs_numerics.restoration.quality.options",
    "mrs_numerics.restoration.quality.run",
    "mrs_numerics.restoration.quality.report",
    "mrs_numerics.tuning",
    "mrs_numerics.tuning.fit",
    "mrs_numerics.tuning.teacher",
    "mrs_numerics.tuning.calibration",
    "mrs_numerics.tuning.shipped",
    "mrs_numerics.tuning.request",
    "mrs_numerics.tuning.output",
    "mrs_numerics.cli",
    "mrs_numerics._generated.registry",
    "mrs_numerics._generated.baselines_registry",
    "mrs_numerics._generated.types",
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
    "derivations.schedule_codegen",
    "derivations.codegen",
    "derivations.emit",
    "derivations.printers",
    "derivations.symbols",
)
"""Modules whose API must have a reference page: every runtime module but the command line's
internals, the generated kernels and the deprecated 0.1 paths; every derivation."""
NOT_PUBLIC = ("mrs_numerics.cli.", "mrs_numerics._generated", "mrs_numerics.models.weights")
"""Runtime modules (prefixes) without a reference page of their own."""
NOT_PUBLIC_MODULES = (
    "mrs_numerics.__main__",
    "mrs_numerics._moved",
    "mrs_numerics._warn",
    "mrs_numerics._checks",
    "mrs_numerics._errors",
    "mrs_numerics._files",
    "mrs_numerics._interrupts",
    "mrs_numerics._launch",
)
"""Runtime modules without a reference page (the architecture page shows ``_moved.MOVED``;
``_warn``, ``_checks``, ``_errors``, ``_files`` and ``_interrupts`` are private helpers of every
layer)."""

ENTRY_POINTS = (
    "mrs_numerics.schedules.get",
    "mrs_numerics.schedules.continuous.cosine",
    "mrs_numerics.schedules.discrete.irsde",
    "mrs_numerics.solvers.factory.make_sampler",
    "mrs_numerics.solvers.base.SamplerBase.sample",
    "mrs_numerics.solvers.mr_sampler.MRSampler",
    "mrs_numerics.solvers.baselines.BaselineSampler",
    "mrs_numerics.solvers.brownian.CoupledBrownian",
    "mrs_numerics.solvers.adapters.IRSDEAdapter",
    "mrs_numerics.solvers.presets.official_mrs",
    "mrs_numerics.restoration.restore.restore",
    "mrs_numerics.restoration.restore.restore_shipped",
    "mrs_numerics.restoration.quality.options.QualityOptions",
    "mrs_numerics.verification.driver.run_verification",
    "mrs_numerics.verification.references.pf_ode_reference",
    "mrs_numerics.verification.oracles.GaussianMixtureOracle",
    "mrs_numerics.models.unet.ConditionalUNet",
    "mrs_numerics.models.training.TrainConfig",
)
"""The main entry points: every argument is documented in their docstrings."""

ARGUMENT_SECTIONS = ("Args", "Arguments", "Parameters", "Attributes")
"""Google sections whose entries document a constructor's arguments."""
RST_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|data|meth|attr|exc|obj|const):`?")
"""A reStructuredText cross-reference role (mkdocstrings shows them as literal text)."""
AUTOREF = re.compile(r"\]\[([A-Za-z_][\w.]*\.[\w.]*)\]")
"""The target of an autoref ``[`name`][full.dotted.path]``."""

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


def _source_files() -> list[Path]:
    """The Python sources whose docstrings the reference pages render."""
    return sorted([*(ROOT / "mrs_numerics").rglob("*.py"), *(ROOT / "derivations").rglob("*.py")])


def _html_pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def _text(page: Path) -> str:
    """A built page's text: tags removed, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def _resolve(dotted: str):
    """The object at a dotted path (the longest importable module prefix, then attributes)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def _documented_arguments(docstring: str) -> set[str]:
    """Names listed in the Args/Arguments/Parameters/Attributes sections of a docstring."""
    names: set[str] = set()
    in_section = False
    for line in inspect.cleandoc(docstring).splitlines():
        header = re.fullmatch(r"(\w+):\s*", line)
        if header:
            in_section = header.group(1) in ARGUMENT_SECTIONS
            continue
        if line.strip() and not line.startswith(" "):
            in_section = False
        entry = re.match(r" {4}(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:", line)
        if in_section and entry:
            names.add(entry.group(1).lstrip("*"))
    return names


def _constructor_owner(cls: type) -> type:
    return next(klass for klass in cls.__mro__ if "__init__" in vars(klass))


def _public_classes() -> dict[str, type]:
    """Every class the runtime subpackages export (``__all__``), by its defining path."""
    classes = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for package in SUBPACKAGES:
            module = importlib.import_module(f"mrs_numerics.{package}")
            for name in module.__all__:
                obj = getattr(module, name)
                if inspect.isclass(obj) and obj.__module__.startswith("mrs_numerics."):
                    classes[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return classes


def _arguments(obj) -> list[str]:
    """The parameters of a function, or of a class's constructor, without ``self``."""
    parameters = inspect.signature(obj).parameters.values()
    return [p.name for p in parameters if p.name != "self"]


def _undocumented(obj) -> list[str]:
    documented = _documented_arguments(inspect.getdoc(obj) or "")
    return [name for name in _arguments(obj) if name not in documented]


def test_every_page_of_the_navigation_is_built(site):
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    pages = _nav_pages(nav)
    assert "index.md" in pages
    for page in pages:
        assert (DOCS / page).is_file(), page
        assert _built_page(site, page).is_file(), page


def test_the_public_modules_have_reference_pages():
    assert set(PUBLIC_MODULES) <= _documented_modules()


def test_the_public_module_list_names_every_runtime_module():
    found = {
        module.name
        for module in pkgutil.walk_packages(mrs_numerics.__path__, "mrs_numerics.")
        if not module.name.startswith(NOT_PUBLIC) and module.name not in NOT_PUBLIC_MODULES
    }
    runtime = {module for module in PUBLIC_MODULES if module.startswith("mrs_numerics.")}
    runtime -= {module for module in runtime if module.startswith("mrs_numerics._generated")}
    assert found == runtime


@pytest.mark.parametrize("package", [p for p in SUBPACKAGES if "." not in p])
def test_each_subpackage_has_one_page_with_its_modules(package):
    page = (DOCS / "api" / f"{package}.md").read_text()
    blocks = re.findall(r"^::: ([\w.]+)\s*$", page, flags=re.MULTILINE)
    assert blocks[0] == f"mrs_numerics.{package}"
    expected = {
        module for module in PUBLIC_MODULES if module.startswith(f"mrs_numerics.{package}.")
    }
    if package == "cli":
        import mrs_numerics.cli as cli

        expected = {f"mrs_numerics.cli.{m.name}" for m in pkgutil.iter_modules(cli.__path__)}
    assert expected <= set(blocks[1:])


@pytest.mark.parametrize("module", sorted(_documented_modules() - set(NOT_PUBLIC_MODULES)))
def test_reference_page_documents_every_public_function_and_class(site, module):
    pages = [
        p
        for p in DOCS.rglob("*.md")
        if re.search(rf"^::: {re.escape(module)}\s*$", p.read_text(), flags=re.MULTILINE)
    ]
    html_text = "".join(_built_page(site, str(p.relative_to(DOCS))).read_text() for p in pages)
    assert f'id="{module}"' in html_text
    for name in _public_docstring_names(module):
        assert f'id="{module}.{name}"' in html_text, name


def test_no_restructuredtext_roles_in_docstrings_or_pages(site):
    """Cross-references are autorefs; a role such as :func: would render as literal text."""
    in_sources = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _source_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if RST_ROLE.search(line)
    ]
    assert not in_sources
    on_pages = [
        str(page.relative_to(site)) for page in _html_pages(site) if RST_ROLE.search(_text(page))
    ]
    assert not on_pages


def test_every_autoref_in_the_docstrings_has_a_target(site):
    """Also those in modules no page renders (the build checks the rendered ones only)."""
    anchors = set()
    for page in _html_pages(site):
        anchors |= set(re.findall(r'id="([\w.]+)"', page.read_text(encoding="utf-8")))
    missing = [
        f"{path.relative_to(ROOT)}: {target}"
        for path in _source_files()
        for target in AUTOREF.findall(path.read_text(encoding="utf-8"))
        if target not in anchors
    ]
    assert not missing


def test_every_link_with_an_anchor_reaches_it(site):
    """Relative links, in pages and rendered docstrings alike (e.g. ``../theory.md#…``)."""
    ids: dict[Path, set[str]] = {}
    broken = []
    for page in _html_pages(site):
        text = page.read_text(encoding="utf-8")
        for href in re.findall(r'href="([^"]+)"', text):
            parts = urlsplit(html.unescape(href))
            if parts.scheme or parts.netloc or not parts.fragment or not parts.path:
                continue
            target = Path(posixpath.normpath(posixpath.join(str(page.parent), parts.path)))
            if target.is_dir():
                target = target / "index.html"
            if target not in ids:
                content = target.read_text(encoding="utf-8") if target.is_file() else ""
                ids[target] = set(re.findall(r'id="([^"]+)"', content))
            if parts.fragment not in ids[target]:
                broken.append(f"{page.relative_to(site)}: {href}")
    assert not broken


def test_docstrings_cite_the_theory_by_section():
    stale = re.compile(r"theory(?:\.md)?\s*§|\.\./shared")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in [*_source_files(), *DOCS.rglob("*.md"), ROOT / "README.md"]
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if stale.search(line)
    ]
    assert not found


def test_docs_and_readme_use_the_new_import_paths():
    old = re.compile(rf"(?:{'|'.join(re.escape(path) for path in MOVED)})\b(?!\.md)")
    pages = [ROOT / "README.md", *(p for p in DOCS.rglob("*.md") if p.name != "architecture.md")]
    found = [
        f"{page.relative_to(ROOT)}:{number}: {match.group(0)}"
        for page in pages
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        for match in old.finditer(line)
    ]
    assert not found


def _constructed_here(cls) -> bool:
    """Not a protocol (never constructed) and not a constructor from outside the package."""
    return not getattr(cls, "_is_protocol", False) and _constructor_owner(
        cls
    ).__module__.startswith("mrs_numerics.")


@pytest.mark.parametrize(
    "path", sorted(path for path, cls in _public_classes().items() if _constructed_here(cls))
)
def test_public_classes_document_every_constructor_argument(path):
    """Args (or, for dataclasses, Attributes) name every parameter of ``__init__``."""
    assert not _undocumented(_public_classes()[path])


@pytest.mark.parametrize("path", ENTRY_POINTS)
def test_entry_points_document_every_argument(path):
    assert not _undocumented(_resolve(path))


def test_argument_check_sees_a_missing_name():
    docstring = """Summary.

    Args:
        first: One.
        **rest (Any): The rest.

    Returns:
        second: Not an argument.
    """
    assert _documented_arguments(docstring) == {"first", "rest"}


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


def _cited_tests(text: str) -> list[tuple[str, str]]:
    """(file, test) of every ``file.py::test_name`` in ``text``; ``::name`` continues the file."""
    cited, current = [], ""
    for file, name in re.findall(r"`(?:([\w/]+\.py))?::(test_\w+)", text):
        current = file or current
        cited.append((current, name))
    return cited


def test_the_tests_a_docs_page_cites_exist():
    tests = Path(__file__).resolve().parent
    cited = _cited_tests((ROOT / "docs" / "datasets.md").read_text())
    assert len(cited) >= 10
    for file, name in cited:
        source = (tests / file).read_text()
        assert re.search(rf"^def {name}\(", source, re.M), f"docs/datasets.md cites {file}::{name}"


def _misuse_rows() -> list[list[str]]:
    """The cells of every case row of ``docs/misuse.md`` (header and rule rows left out)."""
    rows = []
    for line in (ROOT / "docs" / "misuse.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 4 and cells[0] not in ("#", "---"):
            rows.append(cells)
    return rows


def test_the_misuse_table_holds_at_least_120_cases_each_held_by_a_test_that_exists():
    rows = _misuse_rows()
    assert len(rows) >= 120
    tests = Path(__file__).resolve().parent
    for number, _, outcome, test in rows:
        cited = _cited_tests(test)
        assert outcome and cited, f"misuse row {number} names no outcome or no test"
        for file, name in cited:
            source = (tests / Path(file).name).read_text()
            assert re.search(rf"^(async )?def {name}\(", source, re.M), (
                f"docs/misuse.md row {number} cites {file}::{name}, which does not exist"
            )
