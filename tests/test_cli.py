"""The ``mrs-numerics`` command line, end to end, and loading user schedules by name."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import derivations
import mrs_numerics
from mrs_numerics.cli import main
from mrs_numerics.schedules.user import (
    available_user_schedules,
    load_user_schedule,
    user_schedule_dir,
)


@pytest.fixture
def schedule_dir(tmp_path, monkeypatch):
    folder = tmp_path / "schedules"
    monkeypatch.setenv("MRS_NUMERICS_SCHEDULE_DIR", str(folder))
    return folder


def test_codegen_writes_a_user_schedule_that_loads_by_name(schedule_dir, capsys):
    assert main(["codegen", "--theta", "1 + t", "--name", "ramp", "--t-max", "2"]) == 0
    out = capsys.readouterr().out
    assert str(schedule_dir / "torch" / "ramp.py") in out
    assert str(schedule_dir / "numpy" / "ramp.py") in out
    assert "closed-form Θ(t): yes" in out and "closed-form t(λ): yes" in out
    assert 'load_user_schedule("ramp")' in out
    assert available_user_schedules() == ["ramp"]

    schedule = load_user_schedule("ramp")
    times = torch.tensor([0.25, 1.0, 2.0], dtype=torch.float64)
    Theta = times + times**2 / 2
    torch.testing.assert_close(schedule.alpha(times), torch.exp(-Theta), rtol=1e-15, atol=0)
    torch.testing.assert_close(schedule.t_of_lam(schedule.lam(times)), times, rtol=1e-12, atol=0)
    assert schedule.T_MAX == 2.0

    numpy_schedule = load_user_schedule("ramp", backend="numpy")
    sigma = numpy_schedule.sigma(np.array([0.5]))
    np.testing.assert_allclose(sigma, 50 / 255 * np.sqrt(1 - np.exp(-2 * 0.625)), rtol=1e-14)


def test_codegen_reports_numerical_fallbacks(schedule_dir, capsys):
    assert main(["codegen", "--theta", "exp(sin(t))", "--name", "wavy"]) == 0
    out = capsys.readouterr().out
    assert "closed-form Θ(t): no" in out and "closed-form t(λ): no" in out
    schedule = load_user_schedule("wavy", backend="numpy")
    assert schedule.CLOSED_FORM_THETA_INTEGRAL is False


def test_codegen_out_folder_and_how_to_load_from_it(schedule_dir, tmp_path, capsys, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    assert main(["codegen", "--theta", "2", "--name", "flat", "--out", str(elsewhere)]) == 0
    out = capsys.readouterr().out
    assert f"export MRS_NUMERICS_SCHEDULE_DIR={elsewhere}" in out
    assert available_user_schedules() == []
    monkeypatch.setenv("MRS_NUMERICS_SCHEDULE_DIR", str(elsewhere))
    assert math.isclose(float(load_user_schedule("flat").Theta(0.75)), 1.5, rel_tol=1e-15)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--theta", "t +* 1", "--name", "x"], "cannot parse"),
        (["--theta", "a*t", "--name", "x"], "unknown symbol(s) a"),
        (["--theta", "1 - t", "--name", "x"], "≤ 0 for t in [1, 1]"),
        (["--theta", "1 + t", "--name", "lambda"], "Python keyword"),
        (["--theta", "1 + t", "--name", "x", "--t-max", "-1"], "t_max must be a finite number"),
        (["--theta", "1 + t"], "--theta needs --name NAME"),
        (["--name", "x"], "--name only apply together with --theta"),
    ],
)
def test_codegen_errors_exit_2_with_a_message_and_no_traceback(schedule_dir, capsys, argv, message):
    assert main(["codegen", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.err.startswith("mrs-numerics codegen: error:")
    assert "Traceback" not in captured.err
    assert not schedule_dir.exists()


def test_codegen_refuses_to_write_into_the_package(capsys):
    package = Path(mrs_numerics.__file__).parent / "_generated"
    assert main(["codegen", "--theta", "1", "--name", "x", "--out", str(package)]) == 2
    assert "refusing to write" in capsys.readouterr().err
    assert not (package / "torch").exists()


def test_codegen_without_theta_regenerates_through_derivations_codegen(monkeypatch):
    calls = []
    fake = types.ModuleType("derivations.codegen")
    fake.main = lambda argv: calls.append(list(argv)) or 0
    monkeypatch.setitem(sys.modules, "derivations.codegen", fake)
    monkeypatch.setattr(derivations, "codegen", fake, raising=False)
    assert main(["codegen"]) == 0
    assert calls == [[]]


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as missing_command:
        main([])
    with pytest.raises(SystemExit) as bad_number:
        main(["codegen", "--theta", "1", "--name", "x", "--t-max", "one"])
    assert missing_command.value.code == bad_number.value.code == 2


def test_loading_a_missing_schedule_lists_the_available_ones(schedule_dir):
    assert main(["codegen", "--theta", "1 + t**2", "--name", "bowl"]) == 0
    with pytest.raises(FileNotFoundError, match=r"no user schedule 'cup'.*available: bowl"):
        load_user_schedule("cup")
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        load_user_schedule("bowl", backend="jax")
    with pytest.raises(ValueError, match="Python identifier"):
        load_user_schedule("../bowl")


def test_user_schedule_dir_honours_the_variable_then_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MRS_NUMERICS_SCHEDULE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_schedule_dir() == tmp_path / "a"
    monkeypatch.delenv("MRS_NUMERICS_SCHEDULE_DIR")
    assert user_schedule_dir() == tmp_path / "xdg" / "mrs-numerics" / "schedules"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_schedule_dir() == tmp_path / "home" / ".cache" / "mrs-numerics" / "schedules"
