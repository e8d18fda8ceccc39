"""How we know: exact oracles, high-precision references, order studies and the verify driver.

- [`oracles`][mrs_numerics.verification.oracles]: exact MR models of Gaussian and
  Gaussian-mixture data
  ([`GaussianData`][mrs_numerics.verification.oracles.GaussianData],
  [`GaussianMixtureOracle`][mrs_numerics.verification.oracles.GaussianMixtureOracle]);
- [`references`][mrs_numerics.verification.references]: scipy DOP853 references of the
  PF-ODE, integrated in λ;
- [`studies`][mrs_numerics.verification.studies]: step ladders, slope fits and verdicts (ODE
  global, SDE strong and weak);
- [`real_network`][mrs_numerics.verification.real_network]: the ODE order study on a shipped
  network's PF-ODE;
- [`driver`][mrs_numerics.verification.driver]:
  [`run_verification`][mrs_numerics.verification.driver.run_verification], what
  ``mrs-numerics verify`` runs; [`report`][mrs_numerics.verification.report]: its JSON,
  Markdown and plots.
"""

from __future__ import annotations

from mrs_numerics.verification.driver import LEVELS, conversion_checks, run_verification
from mrs_numerics.verification.oracles import (
    GaussianData,
    GaussianMixtureOracle,
    builtin_problem,
    builtin_problems,
    gaussian_flow,
    single_gaussian,
)
from mrs_numerics.verification.references import pf_ode_reference, pf_ode_reference_times
from mrs_numerics.verification.report import write_report
from mrs_numerics.verification.studies import OrderResult, fit_order, lam_range

__all__ = [
    "LEVELS",
    "GaussianData",
    "GaussianMixtureOracle",
    "OrderResult",
    "builtin_problem",
    "builtin_problems",
    "conversion_checks",
    "fit_order",
    "gaussian_flow",
    "lam_range",
    "pf_ode_reference",
    "pf_ode_reference_times",
    "run_verification",
    "single_gaussian",
    "write_report",
]
