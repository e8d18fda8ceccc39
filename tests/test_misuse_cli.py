"""The command line's own share of the misuse rules: warnings are one line naming their class,
and a failed run's advice names the command's flag, never a Python argument."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mrs_numerics.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "irsde"


def _image(path, side=16):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((side, side, 3)) * 255).astype("uint8")).save(path)
    return path


def test_a_measured_instability_warns_in_one_line_naming_its_class(tmp_path):
    # the noise-form corrector at 3 NFE lands near the input (docs/few-step.md): it must warn;
    # a subprocess, because pytest records warnings instead of printing them
    source = _image(tmp_path / "a.png")
    argv = ["restore", str(source), "-o", str(tmp_path / "b.png"), "--task", "denoise"]
    argv += ["--sampler", "mrs-ode-2-noise-unic", "--nfe", "3"]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "mrs_numerics", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    warnings = [line for line in result.stderr.splitlines() if ": warning: " in line]
    assert result.returncode == 0, result.stderr
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith("mrs-numerics restore: warning: mrs-ode-2-noise-unic")
    assert warnings[0].endswith("[NoiseFormCorrectorWarning]")
    assert "Traceback" not in result.stderr and ".py:" not in result.stderr


def test_a_diverged_run_advises_the_flag_not_the_python_argument(tmp_path, capsys):
    fixture = torch.load(FIXTURES / "irsde_conditional_unet_small.pt", weights_only=True)
    weights = tmp_path / "net.pth"
    torch.save(fixture["state_dict"], weights)
    source = _image(tmp_path / "a.png")
    argv = ["restore", str(source), "-o", str(tmp_path / "b.png"), "--checkpoint", str(weights)]
    argv += ["--config", str(FIXTURES / "irsde-options.yml"), "--nfe", "3"]
    status = main([*argv, "--sampler", "mrs-ode-1-data"])
    err = capsys.readouterr().err
    assert status == 1
    assert "the sampler diverged" in err
    assert "pass --allow-divergence to keep the diverged result anyway" in err
    assert "allow_divergence=True" not in err
    assert not (tmp_path / "b.png").exists()


def test_the_library_keeps_python_advice_for_a_diverged_run():
    from mrs_numerics import schedules
    from mrs_numerics.solvers import make_sampler
    from mrs_numerics.solvers.engine import DivergenceError

    sampler = make_sampler("mrs-ode-1-data", schedules.cosine(), "data")
    mu = torch.zeros(1, 3, 4, 4)
    with pytest.raises(DivergenceError, match=r"pass allow_divergence=True to keep"):
        sampler.sample(lambda x, t, mu: x * 0 + 1e3, mu, steps=2)


def test_a_failed_runs_instability_warning_is_not_dropped(tmp_path, capsys):
    from mrs_numerics.solvers.instability import NoiseFormSDEWarning

    source = _image(tmp_path / "a.png")
    argv = ["restore", str(source), "-o", str(tmp_path / "b.png"), "--task", "denoise"]
    with pytest.warns(NoiseFormSDEWarning):
        status = main([*argv, "--sampler", "mrs-sde-1-noise", "--nfe", "3"])
    failed = [line for line in capsys.readouterr().err.splitlines() if ": failed: " in line]
    assert status == 1 and len(failed) == 1
