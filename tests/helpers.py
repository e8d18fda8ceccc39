"""Helpers shared by the test modules (no test module imports another)."""

from __future__ import annotations

import types

import numpy as np
import torch
from scipy.integrate import solve_ivp

from mrs_numerics._generated import registry, updates_numpy
from mrs_numerics.models import registry as model_registry

UPDATES = registry.UPDATES

SUBPACKAGES = (
    "schedules",
    "solvers",
    "imaging",
    "models",
    "verification",
    "restoration",
    "restoration.quality",
    "tuning",
    "cli",
)
"""The runtime's subpackages (each has its own API page and a one-line docstring)."""


def draw(noise, times, step: int, shape, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """The z a noise source gives step ``step`` of the grid ``times`` (t_from → t_to)."""
    t_from, t_to = float(times[step]), float(times[step + 1])
    return noise(step, t_from, t_to, tuple(shape), dtype, torch.device(device))


# ---- exactness of the generated updates on polynomial models (numerical, float64) ----


def _sigma(lam, big_lambda):
    return big_lambda / np.sqrt(1.0 + big_lambda**2 * np.exp(2.0 * lam))


def _alpha(lam, big_lambda):
    return np.exp(lam) * _sigma(lam, big_lambda)


def _drift(method, prediction, big_lambda, model, mu):
    """The λ-equation in y = x − μ, from the t-form (not from the solutions)."""
    factor = 1.0 if method == "ode" else 2.0

    def rhs(lam, y):
        s, a = _sigma(lam, big_lambda), _alpha(lam, big_lambda)
        if prediction == "noise":
            return (s**2 / big_lambda**2) * y - factor * s * model(lam)
        eps = (y - a * (model(lam) + mu - mu)) / s
        return (s**2 / big_lambda**2) * y - factor * s * eps

    return rhs


def _reference(method, prediction, big_lambda, model, mu, y_s, lam_s, lam_e):
    rhs = _drift(method, prediction, big_lambda, model, mu)
    mean = solve_ivp(rhs, (lam_s, lam_e), [y_s], method="DOP853", rtol=1e-13, atol=1e-15).y[0, -1]
    if method == "ode":
        return mean, 0.0

    def variance_rhs(lam, v):
        s = _sigma(lam, big_lambda)
        a = s**2 / big_lambda**2 - (2.0 if prediction == "data" else 0.0)
        return 2.0 * a * v + 2.0 * s**2

    var = solve_ivp(variance_rhs, (lam_s, lam_e), [0.0], method="DOP853", rtol=1e-13, atol=1e-18).y[
        0, -1
    ]
    return mean, var


def _eval_end(expression, params):
    return float(eval(expression, {}, dict(params)))


def stage_errors(name, seed, module=updates_numpy):
    """Per stage of update ``name``: (function, |x_e − exact|, |noise² − exact variance|).

    Random Λ, λ_s, h and ratios; a polynomial model of degree (stage nodes − 1) in λ, which the
    stage must integrate exactly; the exact value from the λ-equation by DOP853.
    """
    info = UPDATES[name]
    rng = np.random.default_rng(seed)
    big_lambda = rng.uniform(0.1, 1.0)
    lam_s = rng.uniform(-2.0, 2.0)
    h = rng.uniform(0.05, 0.8)
    params = {
        p: rng.uniform(0.3, 0.9) if info.scheme == "singlestep" else rng.uniform(0.5, 2.0)
        for p in info.parameters
    }
    coeffs_poly = rng.normal(size=info.order)
    mu = 0.3
    y_s = rng.normal()
    ratios = [params[p] for p in info.parameters]
    nodes = {"m0": lam_s}
    if info.scheme in ("multistep", "corrector"):
        for j, ratio in enumerate(ratios, start=1):
            nodes[f"m{j}"] = nodes[f"m{j - 1}"] - ratio * h
    a_s, s_s = _alpha(lam_s, big_lambda), _sigma(lam_s, big_lambda)
    errors = []
    for function_name, end, labels in info.stages:
        # a stage through n nodes is exact for polynomials of degree n - 1 (its own order)
        stage_coeffs = coeffs_poly[: len(labels)]

        def model(lam, stage_coeffs=stage_coeffs):
            return sum(c * (lam - lam_s) ** n for n, c in enumerate(stage_coeffs))

        lam_e = lam_s + _eval_end(end, params) * h
        a_e, s_e = _alpha(lam_e, big_lambda), _sigma(lam_e, big_lambda)
        args = (h, *ratios, a_s, s_s, a_e, s_e)
        c = getattr(module, function_name)(*args)
        shift = 0.0 if info.prediction == "noise" else mu
        m = [model(nodes[label]) + shift for label in labels]
        x_e = c.x * (y_s + mu) + c.mu * mu + sum(w * v for w, v in zip(c.outputs, m, strict=True))
        mean, var = _reference(
            info.method, info.prediction, big_lambda, model, mu, y_s, lam_s, lam_e
        )
        noise_error = None if c.noise is None else abs(c.noise**2 - var) / var
        errors.append((function_name, abs(x_e - mu - mean) / max(abs(mean), 1.0), noise_error))
        nodes[function_name.rsplit("_", 1)[-1]] = lam_e
    return errors


def patch_shipped_registry(monkeypatch, network):
    """The registry's loader patched to hand out ``network()`` as 'tiny-denoise' (data)."""
    info = types.SimpleNamespace(
        task="denoise", prediction="data", schedule="cosine", max_sigma=50 / 255
    )

    def load_model(name, device="cpu"):
        if name != "tiny-denoise":
            raise ValueError(f"unknown model {name!r}; shipped: tiny-denoise")
        return network(), info

    def model_for_task(task, prediction=None):
        if task != "denoise":
            raise ValueError(f"no shipped network for task {task!r}")
        return "tiny-denoise"

    monkeypatch.setattr(model_registry, "load_model", load_model)
    monkeypatch.setattr(model_registry, "model_for_task", model_for_task)
    return info
