"""Measured orders: every registered solver shows its declared order (read from the registry).

A new solver gets its tests by declaring its orders in ``mrs_numerics.solvers.SOLVERS``.
Quick ladders on the built-in ``gmm-2d-diag`` problem (global, strong) and Gaussian data (weak).
"""

import json

import pytest

from mrs_numerics import schedules
from mrs_numerics.cli import main
from mrs_numerics.solvers import SOLVERS
from mrs_numerics.verification import studies as convergence
from mrs_numerics.verification.driver import LEVELS, strong_results, weak_results
from mrs_numerics.verification.oracles import GaussianData

SCHEDULE = schedules.cosine()
QUICK = LEVELS["quick"]
ODE = [s for s, info in SOLVERS.items() if info.method == "ode"]
SDE = [s for s, info in SOLVERS.items() if info.method == "sde"]


def _assert_declared(results):
    assert results
    for r in results:
        assert r.passed, (
            r.solver,
            r.order_kind,
            r.run,
            r.declared_order,
            r.observed_order,
            r.errors,
        )


@pytest.mark.parametrize("solver", ODE)
def test_ode_solver_shows_its_declared_global_order(solver):
    from mrs_numerics.verification.driver import ode_results

    results = ode_results("gmm-2d-diag", SCHEDULE, QUICK, solvers=[solver])
    assert {r.run for r in results} == (
        {"full", "kernel"} if solver.startswith("mrs") else {"full"}
    )
    _assert_declared(results)


@pytest.mark.parametrize("solver", SDE)
def test_sde_solver_shows_its_declared_strong_order(solver):
    _assert_declared(strong_results("gmm-2d-diag", SCHEDULE, QUICK, solvers=[solver]))


@pytest.mark.parametrize("solver", SDE)
def test_sde_solver_shows_its_declared_weak_order(solver):
    _assert_declared(weak_results(SCHEDULE, QUICK, solvers=[solver]))


def test_weak_study_mean_is_exact_for_the_mr_sampler():
    problem = GaussianData.weak_problem(SCHEDULE)
    _, _, mean_errors, _ = convergence.weak_study("mrs-sde-2-data", problem, [8, 16], (-1.0, 3.0))
    assert max(mean_errors) < 1e-13


def test_fit_order_uses_the_asymptotic_window_and_handles_sign_changes():
    h = [0.4, 0.2, 0.1, 0.05, 0.025]
    errors = [-1e-2, 3e-3, 8e-4, 2e-4, 5e-5]  # a sign change before the asymptotic regime
    slope, window = convergence.fit_order(h, errors)
    assert window == [2, 3, 4] and slope == pytest.approx(2.0, abs=0.05)
    assert convergence.fit_order(h, [1e-13] * 5)[0] != convergence.fit_order(h, [1e-13] * 5)[0]
    assert not convergence.verdict(float("nan"), 1.0)


def test_verify_command_writes_json_report_and_plots(tmp_path):
    out, path = tmp_path / "report", tmp_path / "orders.json"
    status = main(
        [
            "verify",
            "--quick",
            "--no-progress",
            "--out",
            str(out),
            "--json",
            str(path),
            "--solver",
            "mrs-ode-2-data",
            "--solver",
            "mrs-sde-1-data",
        ]
    )
    assert status == 0
    document = json.loads(path.read_text())
    keys = {
        "solver",
        "problem",
        "schedule",
        "method",
        "declared_order",
        "order_kind",
        "run",
        "solver_prediction",
        "model_prediction",
        "observed_order",
        "passed",
        "verdict",
    }
    assert document["results"] and all(set(row) == keys for row in document["results"])
    assert all(row["verdict"] in ("pass", "faster than declared") for row in document["results"])
    assert {row["order_kind"] for row in document["results"]} == {"global", "strong", "weak"}
    assert (out / "orders.json").exists() and (out / "report.md").exists()
    assert (out / "orders_global.png").stat().st_size > 10_000


def test_verify_command_rejects_unknown_names(capsys):
    assert main(["verify", "--quick", "--problem", "banana"]) == 2
    assert "unknown problem 'banana'" in capsys.readouterr().err
    assert main(["verify", "--quick", "--solver", "dpm"]) == 2
    assert "unknown solver 'dpm'" in capsys.readouterr().err
