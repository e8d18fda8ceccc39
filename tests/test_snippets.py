"""Every Python code block of README.md and docs/ runs, so the examples are complete.

The pages are found by glob (README.md and every ``docs/**/*.md``), so a page added later is
covered without editing this file. In each page the fenced blocks tagged ``python``/``py``
(also ``python3`` and ``pycon``) are executed in page order, in one namespace per page (a later
block may use the names of an earlier one) and in a temporary working directory of the page;
``bash``, ``console``, plain and other blocks are not. A block whose first line starts with
``>>>`` is run as a doctest, so the outputs it shows are checked too.

One test per block, with the id ``path:line`` of its opening fence. Under pytest-xdist a
block may land on another worker than the blocks before it: the earlier blocks of its page are
then replayed there first. If an earlier block fails, the later ones of the page are skipped
(the failing block's own test reports the error).
"""

from __future__ import annotations

import doctest
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXECUTED_LANGUAGES = frozenset({"python", "py", "python3", "pycon"})
"""Fence languages that are run; every other block (bash, console, text, ...) is shown only."""
SCHEDULE_DIR_VARIABLE = "MRS_NUMERICS_SCHEDULE_DIR"
"""User schedules a snippet generates go to the page's temporary folder, not ~/.cache."""
MIN_README_BLOCKS = 1
MIN_DOCS_BLOCKS = 8

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    path: Path
    line: int
    """1-based line of the opening fence (the code starts on the next line)."""
    language: str
    source: str

    @property
    def id(self) -> str:
        try:
            name = self.path.relative_to(ROOT).as_posix()
        except ValueError:
            name = self.path.name
        return f"{name}:{self.line}"

    @property
    def executed(self) -> bool:
        return self.language in EXECUTED_LANGUAGES

    @property
    def is_doctest(self) -> bool:
        lines = [line for line in self.source.splitlines() if line.strip()]
        return bool(lines) and lines[0].lstrip().startswith(">>>")


def fence_language(info: str) -> str:
    """The language of a fence's info string: ``python``, ``py title="x"``, ``{.python}``."""
    words = info.strip().lstrip("{").split()
    return words[0].lstrip(".").rstrip("}").lower() if words else ""


def code_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path`` (also indented ones, e.g. inside an admonition).

    Raises:
        ValueError: If a fence is never closed.
    """
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    opening = None
    body: list[str] = []
    for number, line in enumerate(lines, 1):
        if opening is None:
            match = _FENCE.match(line)
            if match and not (match["fence"][0] == "`" and "`" in match["info"]):
                opening, body = (number, match), []
            continue
        start, match = opening
        fence = match["fence"]
        stripped = line.strip()
        if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
            source = textwrap.dedent("\n".join(body)) + "\n"
            blocks.append(Block(path, start, fence_language(match["info"]), source))
            opening = None
        else:
            body.append(line)
    if opening is not None:
        raise ValueError(f"{path}:{opening[0]}: the code fence is never closed")
    return blocks


def python_blocks(path: Path) -> list[Block]:
    """The blocks of ``path`` that are executed, in page order."""
    return [block for block in code_blocks(path) if block.executed]


def markdown_pages(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page under docs/ (sorted)."""
    readme = root / "README.md"
    pages = sorted((root / "docs").rglob("*.md"))
    return [readme, *pages] if readme.is_file() else pages


def run_block(block: Block, namespace: dict) -> None:
    """Execute ``block`` in ``namespace``; tracebacks and doctest reports name the page's lines.

    Raises:
        AssertionError: If a doctest example's output differs from the one shown (or raises).
        Exception: Whatever a plain block raises.
    """
    if block.is_doctest:
        # DocTest copies the globals: run on the copy, then keep the names it defined
        test = doctest.DocTestParser().get_doctest(
            block.source, namespace, block.id, str(block.path), block.line
        )
        report: list[str] = []
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.FAIL_FAST)
        result = runner.run(test, out=report.append, clear_globs=False)
        namespace.update(test.globs)
        if result.failed:
            raise AssertionError(f"doctest {block.id} failed:\n" + "".join(report))
        return
    # blank lines in front make the line numbers of a traceback those of the Markdown file
    code = compile("\n" * block.line + block.source, str(block.path), "exec")
    exec(code, namespace)


@dataclass
class PageRun:
    """One page's shared namespace and working directory, and how far its blocks have run."""

    workdir: Path
    namespace: dict = field(default_factory=lambda: {"__name__": "__snippet__"})
    done: int = 0
    failed: Block | None = None


_RUNS: dict[Path, PageRun] = {}


def _collect() -> list[Block]:
    return [block for page in markdown_pages() for block in python_blocks(page)]


BLOCKS = _collect()


@pytest.fixture
def isolated(monkeypatch):
    """Snippets leave torch's RNG and default dtype as they found them; plots go nowhere."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    dtype = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]):
        yield monkeypatch
    torch.set_default_dtype(dtype)


def _page_blocks(path: Path) -> list[Block]:
    """The executed blocks of ``path`` as collected (read afresh for a page made by a test)."""
    return [block for block in BLOCKS if block.path == path] or python_blocks(path)


def _run_in_page(block: Block, factory, monkeypatch) -> None:
    """Run ``block`` after the blocks before it on its page (replaying those not run here)."""
    blocks = _page_blocks(block.path)
    index = blocks.index(block)
    page = _RUNS.get(block.path)
    if page is None or page.done > index:  # the page's first block in this process, or a rerun
        page = _RUNS[block.path] = PageRun(factory.mktemp(block.path.stem))
    monkeypatch.chdir(page.workdir)
    monkeypatch.setenv(SCHEDULE_DIR_VARIABLE, str(page.workdir / "schedules"))
    for current in blocks[page.done : index + 1]:
        if page.failed is not None:
            pytest.skip(f"an earlier block of the page failed: {page.failed.id}")
        try:
            run_block(current, page.namespace)
        except BaseException:
            page.failed = current
            raise
        page.done += 1


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_snippet_runs(block, tmp_path_factory, isolated):
    _run_in_page(block, tmp_path_factory, isolated)


# ----------------------------------------------------------------------------- the collector


def test_readme_and_docs_have_python_blocks():
    readme = python_blocks(ROOT / "README.md")
    docs = [block for block in BLOCKS if block.path != ROOT / "README.md"]
    assert len(readme) >= MIN_README_BLOCKS
    assert any("MRSampler" in block.source for block in readme)
    assert len(docs) >= MIN_DOCS_BLOCKS, [block.id for block in docs]
    assert all(block.path.parent.is_relative_to(ROOT / "docs") for block in docs)


def test_every_page_is_found_by_glob_including_new_subfolders(tmp_path):
    (tmp_path / "docs" / "guide" / "deep").mkdir(parents=True)
    (tmp_path / "README.md").write_text("# r\n")
    (tmp_path / "docs" / "a.md").write_text("# a\n")
    (tmp_path / "docs" / "guide" / "deep" / "new.md").write_text("# new\n")
    found = [page.relative_to(tmp_path).as_posix() for page in markdown_pages(tmp_path)]
    assert found == ["README.md", "docs/a.md", "docs/guide/deep/new.md"]


PAGE = """\
# A page

```python
x = 20
```

```bash
echo this is not python
```

```console
$ also not python
```

```
plain text, not python
```

!!! note
    Inside an admonition:

    ```py title="indented.py"
    x += 1
    ```

~~~python
assert x == 21
~~~

````python
text = '''
```
'''
undefined_name + x
````
"""


@pytest.fixture
def page(tmp_path):
    path = tmp_path / "page.md"
    path.write_text(PAGE, encoding="utf-8")
    return path


def test_only_python_blocks_are_collected_in_order(page):
    blocks = code_blocks(page)
    languages = [block.language for block in blocks]
    assert languages == ["python", "bash", "console", "", "py", "python", "python"]
    executed = python_blocks(page)
    assert [b.line for b in executed] == [3, 22, 26, 30]
    assert executed[1].source == "x += 1\n"
    assert executed[3].source.startswith("text = '''\n```\n'''\n")


def test_a_broken_snippet_fails_and_the_namespace_is_shared(page):
    first, indented, check, broken = python_blocks(page)
    namespace: dict = {}
    for block in (first, indented, check):
        run_block(block, namespace)
    assert namespace["x"] == 21
    with pytest.raises(NameError, match="undefined_name") as failure:
        run_block(broken, namespace)
    frame = failure.tb
    while frame.tb_next is not None:
        frame = frame.tb_next
    assert frame.tb_frame.f_code.co_filename == str(page)
    assert frame.tb_lineno == PAGE.splitlines().index("undefined_name + x") + 1


def test_a_failing_block_skips_the_rest_of_its_page(page, tmp_path_factory, isolated):
    blocks = python_blocks(page)
    broken = Block(page, blocks[0].line, "python", "raise RuntimeError('first block')\n")
    _RUNS[page] = PageRun(tmp_path_factory.mktemp("page"))
    try:
        with pytest.raises(RuntimeError, match="first block"):
            run_block(broken, _RUNS[page].namespace)
        _RUNS[page].failed = broken
        with pytest.raises(pytest.skip.Exception, match="earlier block"):
            _run_in_page(blocks[2], tmp_path_factory, isolated)
    finally:
        del _RUNS[page]


def test_doctest_blocks_check_their_output(tmp_path):
    path = tmp_path / "doctest.md"
    path.write_text(
        "```python\n>>> y = 2 + 2\n>>> y\n4\n```\n\n```python\n>>> y * 10\n41\n```\n",
        encoding="utf-8",
    )
    good, wrong = python_blocks(path)
    assert good.is_doctest and wrong.is_doctest
    namespace: dict = {}
    run_block(good, namespace)
    assert namespace["y"] == 4
    with pytest.raises(AssertionError, match=r"Expected:\s+41\s+Got:\s+40"):
        run_block(wrong, namespace)


def test_an_unclosed_fence_is_an_error(tmp_path):
    path = tmp_path / "unclosed.md"
    path.write_text("text\n\n```python\nx = 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="never closed"):
        code_blocks(path)


def test_pages_run_in_a_temporary_directory(tmp_path, tmp_path_factory, isolated):
    path = tmp_path / "files.md"
    path.write_text(
        "```python\nfrom pathlib import Path\nPath('out.txt').write_text('hi')\n```\n\n"
        "```python\nhere = Path.cwd()\nassert Path('out.txt').read_text() == 'hi'\n```\n",
        encoding="utf-8",
    )
    _, read = python_blocks(path)
    try:
        _run_in_page(read, tmp_path_factory, isolated)  # replays the first block
        run = _RUNS[path]
        assert run.done == 2
        assert run.namespace["here"] == run.workdir != ROOT
        assert not (ROOT / "out.txt").exists()
    finally:
        _RUNS.pop(path, None)
