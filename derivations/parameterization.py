"""Conversions among noise, data, velocity and score predictions of an MR network, with μ.

On the marginal x = μ + α (x₀ − μ) + σ ε ([`derivations.forward`][derivations.forward]):

    data  from noise:     x̂₀ = μ + (x − μ − σ ε̂)/α
    noise from data:      ε̂  = (x − μ − α (x̂₀ − μ))/σ
    velocity (Λ-normalised, the official MRS convention; (α, σ/Λ) is a rotation because
    α² + σ²/Λ² = 1):      v = Λ α ε − (σ/Λ)(x₀ − μ)
    data  from velocity:  x̂₀ = α x − (σ/Λ) v̂ + (1 − α) μ
    noise from velocity:  ε̂  = (α v̂ + (σ/Λ)(x − μ))/Λ
    score:                s = −ε/σ,   ε̂ = −σ ŝ

Each conversion is a function of (x, μ, prediction, α, σ[, Λ]); ``CONVERSIONS`` lists them for the
code generator, and the ``check_*`` functions prove them on the marginal.
"""

from __future__ import annotations

import sympy as sp

from derivations.symbols import Lambda, mu, x0

x, eps, alpha, sigma, out = sp.symbols("x eps alpha sigma out", real=True)
alpha_p, sigma_p = sp.symbols("alpha sigma", positive=True)

PREDICTIONS = ("noise", "data", "velocity", "score")


def velocity_target() -> sp.Expr:
    """v = Λ α ε − (σ/Λ)(x₀ − μ)."""
    return Lambda * alpha_p * eps - sigma_p / Lambda * (x0 - mu)


def _on_marginal() -> dict:
    """x on the marginal, with σ² = Λ²(1 − α²) expressed through α."""
    return {x: mu + alpha_p * (x0 - mu) + sigma_p * eps}


def noise_from(prediction: str) -> sp.Expr:
    """ε̂ as a function of x, μ, the network ``out``, α, σ (and Λ)."""
    if prediction == "noise":
        return out
    if prediction == "data":
        return (x - mu - alpha_p * (out - mu)) / sigma_p
    if prediction == "velocity":
        return (alpha_p * out + sigma_p / Lambda * (x - mu)) / Lambda
    if prediction == "score":
        return -sigma_p * out
    raise ValueError(f"unknown prediction {prediction!r}; allowed: {', '.join(PREDICTIONS)}")


def data_from(prediction: str) -> sp.Expr:
    """x̂₀ as a function of x, μ, the network ``out``, α, σ (and Λ)."""
    if prediction == "data":
        return out
    if prediction == "velocity":
        return alpha_p * x - sigma_p / Lambda * out + (1 - alpha_p) * mu
    return mu + (x - mu - sigma_p * noise_from(prediction)) / alpha_p


def exact_output(prediction: str) -> sp.Expr:
    """The exact target of a network of this prediction type, in terms of x₀ and ε."""
    return {
        "noise": eps,
        "data": x0,
        "velocity": velocity_target(),
        "score": -eps / sigma_p,
    }[prediction]


def _rotation() -> dict:
    """σ = Λ sqrt(1 − α²): the MR constraint between α and σ."""
    return {sigma_p: Lambda * sp.sqrt(1 - alpha_p**2)}


def check_to_noise(prediction: str) -> sp.Expr:
    """ε̂(x, μ, exact target) − ε on the marginal (zero when the conversion is right)."""
    expr = noise_from(prediction).subs(out, exact_output(prediction)).subs(_on_marginal())
    return sp.simplify((expr - eps).subs(_rotation()))


def check_to_data(prediction: str) -> sp.Expr:
    """x̂₀(x, μ, exact target) − x₀ on the marginal (zero when the conversion is right)."""
    expr = data_from(prediction).subs(out, exact_output(prediction)).subs(_on_marginal())
    return sp.simplify((expr - x0).subs(_rotation()))


CONVERSIONS = {
    f"{target}_from_{source}": (data_from if target == "data" else noise_from)(source)
    for target in ("data", "noise")
    for source in PREDICTIONS
    if source != target
}
"""Name → expression in (x, mu, out, alpha, sigma, Lambda) of every generated conversion."""
