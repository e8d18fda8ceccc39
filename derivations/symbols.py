"""Symbols shared by the derivations (one name per idea, as in the design vocabulary)."""

from __future__ import annotations

import sympy as sp

t = sp.Symbol("t", nonnegative=True)
"""Diffusion time (T noisy → 0 clean)."""
tau = sp.Symbol("tau", nonnegative=True)
"""Integration variable in time."""
lam = sp.Symbol("lambda", real=True)
"""Half log-SNR λ = log α − log σ."""
lam_s = sp.Symbol("lambda_s", real=True)
"""λ at the start s of a step (noisier end)."""
lam_t = sp.Symbol("lambda_t", real=True)
"""λ at the end t of a step (cleaner end)."""
Lambda = sp.Symbol("Lambda", positive=True)
"""Λ = σ∞ = IR-SDE ``max_sigma``."""
mu = sp.Symbol("mu", real=True)
"""The condition μ (degraded image), one coordinate."""
x0 = sp.Symbol("x_0", real=True)
"""Clean data, one coordinate."""
h = sp.Symbol("h", positive=True)
"""Step size in λ: h = λ_t − λ_s > 0."""
u = sp.Symbol("u", real=True)
"""Local λ offset inside a step: λ = λ_s + u."""
theta = sp.Function("theta", positive=True)
"""θ(t) > 0, the mean-reversion rate."""
