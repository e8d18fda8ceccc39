"""``--threads`` of every subcommand: accepted, applied, a fixed default, one-line errors."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mrs_numerics.cli import SUBCOMMANDS, build_parser, main
from mrs_numerics.cli.common import DEFAULT_THREADS, thread_count, torch_threads

ROOT = Path(__file__).resolve().parents[1]


def _leaves(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(command words, parser) of every parser without subcommands of its own."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield prefix, parser
    for group in groups:
        for name, subparser in group.choices.items():
            yield from _leaves(subparser, (*prefix, name))


def _minimal_argv(words: tuple[str, ...], parser: argparse.ArgumentParser) -> list[str]:
    """The command words and a placeholder for every required argument (the run is faked)."""
    argv = list(words)
    one_of = [
        group._group_actions[0] for group in parser._mutually_exclusive_groups if group.required
    ]
    for action in parser._actions:
        value = str(next(iter(action.choices))) if action.choices else "1"
        if not action.option_strings and action.nargs not in ("?", "*"):
            argv.append(value)
        elif action.required or action in one_of:
            argv += [action.option_strings[-1], value]
    return argv


COMMANDS = [words for words, _ in _leaves(build_parser())]


@pytest.fixture
def seen(monkeypatch) -> list[int]:
    """Every subcommand's ``run`` replaced by one that records torch's thread count."""
    counts: list[int] = []

    def fake_run(args: argparse.Namespace) -> int:
        counts.append(torch.get_num_threads())
        return 0

    for module in SUBCOMMANDS:
        monkeypatch.setattr(module, "run", fake_run)
    return counts


@pytest.fixture
def ambient() -> Iterator[int]:
    """Torch set to a count that is neither the default nor the one asked for (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(before)


def _argv(words: tuple[str, ...]) -> list[str]:
    parser = dict(_leaves(build_parser()))[words]
    return _minimal_argv(words, parser)


def test_every_subcommand_is_covered():
    """One leaf per subcommand module (``benchmark`` through ``benchmark quality``)."""
    assert {words[0] for words in COMMANDS} == {m.__name__.rsplit(".", 1)[1] for m in SUBCOMMANDS}
    assert ("benchmark", "quality") in COMMANDS


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_threads_is_accepted_and_applied_in_the_run(words, seen, ambient):
    assert main([*_argv(words), "--threads", "3"]) == 0
    assert seen == [3]
    assert torch.get_num_threads() == ambient  # restored after the run


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_the_default_is_the_fixed_constant(words, seen, ambient):
    assert main(_argv(words)) == 0
    assert seen == [DEFAULT_THREADS] == [1]
    assert torch.get_num_threads() == ambient


def test_the_default_ignores_cores_load_and_omp_num_threads(seen, ambient, monkeypatch):
    """Not the core count, the free cores, the load average or OMP_NUM_THREADS."""
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "getloadavg", lambda: (63.0, 63.0, 63.0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert thread_count(None) == DEFAULT_THREADS
    assert main(["models"]) == 0
    assert seen == [DEFAULT_THREADS]


def test_the_default_under_a_busy_process(tmp_path):
    """A fresh command run while another process keeps a core busy still gets the default."""
    script = textwrap.dedent(
        """
        import torch
        from mrs_numerics.cli import main, models
        models.run = lambda args: print("threads", torch.get_num_threads()) or 0
        raise SystemExit(main(["models"]))
        """
    )
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        busy.kill()
        busy.wait()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["threads", str(DEFAULT_THREADS)]


@pytest.mark.parametrize("value", ["0", "-1", "-8", "1.5", "two", "", " "])
@pytest.mark.parametrize("words", [("models",), ("benchmark", "quality")], ids=" ".join)
def test_bad_thread_counts_are_one_line_errors(words, value, seen, capsys):
    assert main([*_argv(words), f"--threads={value}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err == (
        f"mrs-numerics {words[0]}: error: --threads must be a positive integer, got {value!r}\n"
    )
    assert seen == []  # the run never started


def test_thread_count_accepts_positive_integers():
    assert thread_count("1") == 1
    assert thread_count("16") == 16
    assert thread_count(" 4 ") == 4
    assert thread_count(None) == DEFAULT_THREADS


def test_torch_threads_restores_the_count_after_an_error(ambient):
    with pytest.raises(RuntimeError, match="inside"), torch_threads(3):
        assert torch.get_num_threads() == 3
        raise RuntimeError("inside")
    assert torch.get_num_threads() == ambient


def test_threads_appears_in_every_subcommand_help(capsys):
    for words in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([*words, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert "--threads N" in out and f"(default {DEFAULT_THREADS}" in " ".join(out.split())


def test_parsing_threads_loads_no_torch():
    """The --threads helpers parse without torch (``common.py`` loaded on its own)."""
    script = textwrap.dedent(
        f"""
        import argparse, importlib.util, sys
        spec = importlib.util.spec_from_file_location(
            "common", {str(ROOT / "mrs_numerics" / "cli" / "common.py")!r}
        )
        common = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(common)
        parser = argparse.ArgumentParser(prog="p")
        sub = parser.add_subparsers(dest="command", required=True)
        sub.add_parser("one")
        nested = sub.add_parser("two").add_subparsers(dest="what", required=True)
        nested.add_parser("deep")
        common.add_threads_option(parser)
        args = parser.parse_args(["two", "deep", "--threads", "5"])
        assert common.thread_count(args.threads) == 5
        assert common.thread_count(parser.parse_args(["one"]).threads) == common.DEFAULT_THREADS
        try:
            parser.parse_args(["two", "--threads", "5"])
        except SystemExit:
            pass
        else:
            raise AssertionError("--threads on a parser with subcommands")
        print("torch" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
