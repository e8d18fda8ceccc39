"""Misuse of the runtime: launcher environments that cannot work, processes that fail, commands
that are not sharded, and solvers run where the benchmarks measured them to fail.

Each test holds rows of ``docs/misuse/runtime.md``. The torchrun test costs ~15 s (two
processes start torch); the rest run in one process.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from mrs_numerics import schedules
from mrs_numerics._launch import (
    SHARDED_COMMANDS,
    LauncherError,
    RendezvousTimeoutError,
    single_process,
)
from mrs_numerics.cli import SUBCOMMANDS, main
from mrs_numerics.imaging.files import write_image
from mrs_numerics.restoration.processes import processes
from mrs_numerics.solvers import SOLVERS, make_sampler
from mrs_numerics.solvers.instability import (
    INSTABILITIES,
    InstabilityWarning,
    NoiseFormCorrectorWarning,
    NoiseFormSDEWarning,
    StiffBaselineWarning,
    instability,
    plan_calls,
)
from mrs_numerics.verification.oracles import GaussianData

ROOT = Path(__file__).resolve().parents[1]
SCHEDULE = schedules.cosine(max_sigma=0.5)
LAUNCHER_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def clean_launcher(monkeypatch):
    """No launcher variables from the test's own environment."""
    for name in (*LAUNCHER_VARIABLES, "MRS_NUMERICS_RENDEZVOUS_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stale(monkeypatch, rank: int, timeout: str = "1") -> None:
    """The environment an earlier two-process launch leaves behind, with no peer running."""
    for name, value in (("WORLD_SIZE", "2"), ("RANK", str(rank)), ("LOCAL_RANK", str(rank))):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setenv("MRS_NUMERICS_RENDEZVOUS_TIMEOUT", timeout)


# ---------------------------------------------------------------------------------------------
# A. every launcher path ends
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [0, 1], ids=["the process that hosts the store", "a client"])
def test_a_stale_launcher_environment_fails_within_the_rendezvous_timeout(clean_launcher, rank):
    _stale(clean_launcher, rank)
    started = time.monotonic()
    with pytest.raises(RendezvousTimeoutError) as caught, processes(torch.device("cpu")):
        pytest.fail("the body must not run without the peer")
    assert time.monotonic() - started < 15  # torch's default was 30 minutes
    message = str(caught.value)
    assert "\n" not in message
    assert f"process {rank} of 2 waited 1 s for the other processes" in message
    assert "unset WORLD_SIZE" in message and "torchrun --nproc-per-node 2" in message
    assert "MRS_NUMERICS_RENDEZVOUS_TIMEOUT" in message
    assert isinstance(caught.value, TimeoutError) and caught.value.status == 2


def test_a_stale_launcher_environment_is_one_line_on_the_command_line(
    clean_launcher, tmp_path, capsys
):
    source = tmp_path / "in"
    source.mkdir()
    write_image(source / "a.png", torch.full((3, 8, 8), 0.5))
    _stale(clean_launcher, 0)
    argv = ["restore", str(source), "-o", str(tmp_path / "out"), "--task", "denoise", "-q"]
    assert main([*argv, "--nfe", "3"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mrs-numerics restore: failed: process 0 of 2")
    assert not (tmp_path / "out" / "a.png").exists()


@pytest.mark.parametrize(
    ("environment", "match"),
    [
        ({"WORLD_SIZE": "2"}, r"RANK/LOCAL_RANK are missing"),
        ({"WORLD_SIZE": "two"}, r"WORLD_SIZE is not an integer"),
        ({"WORLD_SIZE": "2", "RANK": "5"}, r"RANK=5 is outside 0 … WORLD_SIZE − 1 = 1"),
        ({"WORLD_SIZE": "2", "RANK": "0"}, r"WORLD_SIZE=2 asks for 2 processes but .*MASTER_ADDR"),
        (
            {"WORLD_SIZE": "2", "RANK": "0", "MRS_NUMERICS_RENDEZVOUS_TIMEOUT": "soon"},
            r"MRS_NUMERICS_RENDEZVOUS_TIMEOUT='soon' must be a positive number of seconds",
        ),
        (
            {"WORLD_SIZE": "2", "RANK": "0", "MRS_NUMERICS_RENDEZVOUS_TIMEOUT": "-1"},
            r"must be a positive number",
        ),
    ],
    ids=[
        "no RANK",
        "WORLD_SIZE not a number",
        "RANK out of range",
        "no MASTER_ADDR",
        "bad wait",
        "negative wait",
    ],
)
def test_a_malformed_launcher_environment_is_refused_at_once(clean_launcher, environment, match):
    for name, value in environment.items():
        clean_launcher.setenv(name, value)
    started = time.monotonic()
    with pytest.raises(ValueError, match=match), processes(torch.device("cpu")):
        pytest.fail("the body must not run")
    assert time.monotonic() - started < 5


NOT_SHARDED = {
    "tune": ["tune", "--model", "denoise-data", "--variant", "ms3", "--nfe", "3", "-o", "g.json"],
    "degrade": ["degrade", "in.png", "-o", "out.png", "--task", "denoise"],
    "train": ["train", "--task", "denoise"],
    "verify": ["verify", "--quick"],
    "codegen": ["codegen"],
    "models": ["models"],
}


@pytest.mark.parametrize("command", list(NOT_SHARDED))
def test_a_command_that_is_not_sharded_runs_on_process_0_only(
    clean_launcher, command, tmp_path, capsys
):
    """Process 1 of a torchrun job exits 0 at once with one line; process 0 would run it."""
    clean_launcher.chdir(tmp_path)
    _stale(clean_launcher, 1)
    started = time.monotonic()
    assert main(NOT_SHARDED[command]) == 0
    assert time.monotonic() - started < 2
    captured = capsys.readouterr()
    assert captured.out == "" and not list(tmp_path.iterdir())
    assert captured.err == (
        f"mrs-numerics {command}: {command} is not sharded: it runs once, on process 0 of 2; "
        "process 1 exits without running it\n"
    )


def test_process_0_runs_a_command_that_is_not_sharded_without_waiting(clean_launcher, capsys):
    _stale(clean_launcher, 0, timeout="30")  # a process group would wait 30 s here
    started = time.monotonic()
    assert main(["models"]) == 0
    assert time.monotonic() - started < 10
    assert "denoise-data" in capsys.readouterr().out


def test_only_restore_and_benchmark_are_sharded(clean_launcher):
    clean_launcher.setenv("WORLD_SIZE", "2")
    clean_launcher.setenv("RANK", "1")
    names = {module.__name__.rsplit(".", 1)[1] for module in SUBCOMMANDS}
    assert SHARDED_COMMANDS == {"restore", "benchmark"} <= names
    for name in names:
        assert (single_process(name) is None) == (name in SHARDED_COMMANDS), name


def test_a_failure_on_one_process_is_reported_once_and_the_others_finish(tmp_path):
    """b.png (a cut PNG) fails on process 1, which owns it; process 0 writes a and c."""
    source = tmp_path / "in"
    source.mkdir()
    for name in ("a.png", "c.png"):
        write_image(source / name, torch.full((3, 16, 16), 0.5))
    # a PNG whose header reads but whose data is cut: it passes the check before the run and
    # fails when its process decodes it
    (source / "b.png").write_bytes((source / "a.png").read_bytes()[:60])
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
    command += ["2", "-m", "mrs_numerics", "restore", str(source), "-o", str(tmp_path / "out")]
    command += ["--task", "denoise", "--nfe", "3", "-q", "--threads", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.startswith("mrs-numerics")]
    assert len(ours) == 1 and "b.png" in ours[0], result.stderr[-3000:]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["a.png", "c.png", "mrs-numerics-manifest.json"]
    # torchrun's own report of the exit statuses may follow; no frame of ours, no gloo error
    assert "mrs_numerics/" not in result.stderr.replace(str(source), "")
    assert "gloo" not in result.stderr.lower() and "DistBackendError" not in result.stderr


def test_launcher_errors_print_one_line_with_their_status(clean_launcher, capsys):
    class LostError(LauncherError):
        pass

    def run(args):
        raise LostError("process 1 of 2 ended without sending its results")

    import mrs_numerics.cli.models as models

    clean_launcher.setattr(models, "run", run)
    assert main(["models"]) == 1
    assert capsys.readouterr().err == (
        "mrs-numerics models: failed: process 1 of 2 ended without sending its results\n"
    )


# ---------------------------------------------------------------------------------------------
# B. measured instabilities warn
# ---------------------------------------------------------------------------------------------


def _steps_with_calls(sampler, below: bool, bound: int) -> int:
    """The most steps whose run makes fewer than ``bound`` calls, or the least with ≥ bound."""
    steps = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InstabilityWarning)
        while plan_calls(sampler.plan(steps + 1, dtype=torch.float64)) < bound:
            steps += 1
        return steps if below else steps + 1


ROWS = [(row, solver) for row in INSTABILITIES for solver in row.solvers]


@pytest.mark.parametrize(("row", "solver"), ROWS, ids=[solver for _, solver in ROWS])
def test_a_measured_instability_warns_below_its_bound_and_not_at_it(row, solver):
    sampler = make_sampler(solver, SCHEDULE, "data")
    few = _steps_with_calls(sampler, True, row.below)
    with pytest.warns(row.category, match=rf"^{solver} with \d+ network calls \(< {row.below}\)"):
        sampler.plan(few, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InstabilityWarning)
        sampler.plan(_steps_with_calls(sampler, False, row.below), dtype=torch.float64)


@pytest.mark.parametrize(
    ("solver", "nfe", "category"),
    [
        ("mrs-ode-2-noise-unic", 3, NoiseFormCorrectorWarning),  # the example
        ("mrs-ode-2-noise-unic", 5, NoiseFormCorrectorWarning),
        ("mrs-sde-2-noise", 19, NoiseFormSDEWarning),
        ("heun-ode", 50, StiffBaselineWarning),
        ("euler-maruyama", 10, StiffBaselineWarning),
    ],
)
def test_the_measured_cases_fall_in_their_rows(solver, nfe, category):
    row = instability(solver, nfe)
    assert row is not None and row.category is category
    assert issubclass(category, InstabilityWarning) and issubclass(category, RuntimeWarning)
    assert instability(solver, row.below) is None
    assert (
        instability("mrs-ode-2-data", 3) is None and instability("mrs-ode-2-data-unic", 3) is None
    )


def test_every_row_cites_a_committed_measurement():
    results = ROOT / "benchmarks" / "results"
    for row in INSTABILITIES:
        assert set(row.solvers) <= set(SOLVERS), row.solvers
        files = re.findall(r"[\w{},-]+\.md", row.source)
        assert files, row.source
        for name in files:
            expanded = re.sub(r"\{([^}]*)\}", lambda m: m.group(1).split(",")[0], name)
            assert (results / expanded).is_file(), name


def test_plan_calls_are_the_calls_a_run_makes():
    for solver in SOLVERS:
        mrs = SOLVERS[solver].family == "mrs"
        sampler = make_sampler(solver, SCHEDULE, "data", **({"denoise_last": True} if mrs else {}))
        for steps in (1, 2, 3, 5):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", InstabilityWarning)
                plan = sampler.plan(steps, dtype=torch.float64)
            assert plan_calls(plan) + mrs == sampler.calls(steps), (solver, steps)


def test_a_plan_warns_once_and_the_warning_changes_nothing():
    torch.manual_seed(0)
    problem = GaussianData.random(SCHEDULE)
    sampler = make_sampler("euler-maruyama", SCHEDULE, "data")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = sampler.sample(problem.data, problem.mu, steps=4, generator=torch.Generator())
        again = sampler.sample(problem.data, problem.mu, steps=4, generator=torch.Generator())
    assert [w.category for w in caught] == [StiffBaselineWarning]
    assert caught[0].filename == __file__  # attributed to the caller's line
    quiet = make_sampler("euler-maruyama", SCHEDULE, "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InstabilityWarning)
        silent = quiet.sample(problem.data, problem.mu, steps=4, generator=torch.Generator())
    assert torch.equal(first.x, silent.x) and torch.equal(first.x, again.x)


def test_no_warning_filter_matches_message_text():
    """Filters name the class: a message may change without breaking a filter."""
    by_text = re.compile(r"filterwarnings\([^)]*message=|filterwarnings\(\s*[\"']ignore:[^:]")
    offenders = []
    for folder in ("mrs_numerics", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name != Path(__file__).name and by_text.search(path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert not re.search(r"[\"']ignore:[^:]", pyproject)
    assert offenders == []


def test_the_docs_show_the_table():
    for page in ("errors.md", "few-step.md"):
        text = (ROOT / "docs" / page).read_text()
        for row in INSTABILITIES:
            rows = [line for line in text.splitlines() if line.startswith("|")]
            line = next(
                (
                    line
                    for line in rows
                    if row.category.__name__ in line
                    and all(f"`{solver}`" in line for solver in row.solvers)
                ),
                "",
            )
            assert f"< {row.below}" in line, (page, row.solvers)
