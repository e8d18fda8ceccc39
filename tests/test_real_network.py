"""ODE orders on a real network: the PF-ODE driven by a shipped restoration network.

Every MR Sampler ODE solver must show its declared global order (read from the registry) on the
float64 PF-ODE of the shipped data-prediction denoiser, against a DOP853 reference, on the quick
ladders; a noise-prediction network drives the same study through the prediction conversions.
"""

import json

import pytest

from mrs_numerics.cli import main
from mrs_numerics.models.registry import available_models
from mrs_numerics.solvers import SOLVERS
from mrs_numerics.verification.driver import LEVELS, real_results, run_verification
from mrs_numerics.verification.real_network import DEFAULT_MODEL, PROBLEM, real_start

QUICK = LEVELS["quick"]
MRS_ODE = [s for s, info in SOLVERS.items() if info.method == "ode" and info.family == "mrs"]
SMOOTH_NOISE_NETWORKS = sorted(
    name
    for name, info in available_models().items()
    if info.prediction == "noise" and info.config.get("time_scale", 1000.0) <= 100
)


@pytest.fixture(scope="module")
def data_network_results():
    return {r.solver: r for r in real_results(QUICK, DEFAULT_MODEL, solvers=MRS_ODE)}


@pytest.mark.xdist_group("real-data-network")
@pytest.mark.parametrize("solver", MRS_ODE)
def test_mr_sampler_ode_shows_its_declared_order_on_a_real_network(data_network_results, solver):
    result = data_network_results[solver]
    assert result.problem == f"{PROBLEM}:{DEFAULT_MODEL}"
    assert result.declared_order == SOLVERS[solver].order
    assert result.passed, (result.observed_order, result.errors)
    assert result.errors[-1] < result.errors[0]


@pytest.mark.xdist_group("real-noise-network")
def test_a_noise_prediction_network_drives_both_solver_forms_at_their_orders():
    assert SMOOTH_NOISE_NETWORKS, "a noise-prediction network smooth in t must ship"
    chosen = ["mrs-ode-3-data", "mrs-ode-2-noise"]
    results = real_results(QUICK, SMOOTH_NOISE_NETWORKS[0], solvers=chosen)
    assert sorted(r.solver for r in results) == sorted(chosen)
    for r in results:
        assert r.model_prediction == "noise"
        assert r.passed, (r.solver, r.observed_order, r.errors)


def test_the_start_is_the_mr_marginal_of_a_held_out_crop_in_float64():
    start = real_start(DEFAULT_MODEL, crop=8)
    assert start.x_start.dtype == start.mu.dtype == start.x_start.new_zeros(()).double().dtype
    assert start.x_start.shape == start.mu.shape == (1, 3, 8, 8)
    assert float(start.t_start) > float(start.t_end)
    # the start is noisy: σ at λ = −1 is Λ/sqrt(1 + e^{−2}) of the schedule, visible in x − μ
    residual = (start.x_start - start.mu).std()
    assert 0.3 * start.schedule.max_sigma < float(residual) < 3 * start.schedule.max_sigma


def test_bad_real_study_input_is_refused():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        real_start("nope")
    with pytest.raises(ValueError, match="multiple of 4"):
        real_start(DEFAULT_MODEL, crop=6)
    with pytest.raises(ValueError, match="only applies to the problem 'real'"):
        run_verification("quick", problems=("gmm-2d-diag",), model=DEFAULT_MODEL)


def test_verify_problem_real_writes_its_results(tmp_path, capsys):
    out = tmp_path / "report"
    code = main(
        [
            "verify",
            "--problem",
            "real",
            "--quick",
            "--solver",
            "mrs-ode-1-data",
            "--out",
            str(out),
            "--json",
            str(tmp_path / "r.json"),
            "--no-progress",
        ]
    )
    assert code == 0
    rows = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [(r["solver"], r["problem"]) for r in rows] == [
        ("mrs-ode-1-data", f"real:{DEFAULT_MODEL}")
    ]
    assert (out / "report.md").exists()
    assert "real:" in capsys.readouterr().out


def test_verify_model_needs_the_real_problem(capsys):
    assert main(["verify", "--quick", "--model", DEFAULT_MODEL]) == 2
    assert "--model applies to --problem real only" in capsys.readouterr().err
