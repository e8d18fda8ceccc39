"""Exact MR models for Gaussian and Gaussian-mixture data: closed-form score, x̂₀, ε̂ and v̂.

See [Exact oracles](../theory.md#exact-oracles).

Data: x₀ | μ ~ Σ_k w_k N(μ + δ_k, S_k) in dimension d, with component offsets δ_k relative to
the per-sample condition μ and covariances S_k diagonal ([K, d]) or full ([K, d, d], SPD).
Under the MR marginal x_t = μ + α_t(x₀ − μ) + σ_t ε the state is again a mixture,

    p_t(x | μ) = Σ_k w_k N(μ + α_t δ_k, C_k(t)),      C_k(t) = α_t² S_k + σ_t² I,

so with y = x − μ, u_k = y − α δ_k, z_k = C_k⁻¹ u_k and responsibilities r_k ∝ w_k N(u_k; 0, C_k):

- score      ∇ log p_t = −Σ_k r_k z_k,
- data       E[x₀ | x_t] = Σ_k r_k (μ + δ_k + α S_k z_k)        (per-component posterior means),
- noise      ε̂ = −σ · score = (y − α(x̂₀ − μ))/σ,
- velocity   v̂ = Λ α ε̂ − (σ/Λ)(x̂₀ − μ)                         (Λ-normalised MRS convention).

ε̂ is computed as −σ·score, which has no cancellation as σ → 0. All maths is float64 (inputs are
cast; outputs come back in x's dtype); responsibilities use log-sum-exp and full covariances use
Cholesky solves. Shapes: x [..., d]; μ broadcastable to x; t a scalar or broadcastable to
x.shape[:-1] (the samplers pass t as a float64 [batch] tensor).

[`GaussianData`][mrs_numerics.verification.oracles.GaussianData] is the single-Gaussian test
problem (diagonal covariance, per-sample means) with its moments, exact data prediction and
flow map; [`gaussian_flow`][mrs_numerics.verification.oracles.gaussian_flow] is the
closed-form PF-ODE flow map for a single Gaussian, and
[`builtin_problems`][mrs_numerics.verification.oracles.builtin_problems] names a few small
fixed mixture problems for tests and studies.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mrs_numerics import schedules
from mrs_numerics.schedules.protocol import Schedule
from mrs_numerics.solvers import parameterization

_F64 = torch.float64


def _f64(value) -> torch.Tensor:
    return torch.as_tensor(value, dtype=_F64)


def _check_parameters(weights, offsets, covariances):
    weights, offsets, covariances = _f64(weights), _f64(offsets), _f64(covariances)
    if offsets.dim() != 2:
        raise ValueError(f"offsets must have shape [K, d], got {tuple(offsets.shape)}")
    k, d = offsets.shape
    if weights.shape != (k,):
        raise ValueError(f"weights must have shape [{k}] (one per offset), got {weights.shape}")
    if not (torch.isfinite(weights).all() and (weights > 0).all()):
        raise ValueError("weights must be finite and > 0")
    if covariances.shape not in ((k, d), (k, d, d)):
        raise ValueError(
            f"covariances must have shape [{k}, {d}] (diagonal) or [{k}, {d}, {d}] (full), "
            f"got {tuple(covariances.shape)}"
        )
    if covariances.dim() == 2 and not (covariances > 0).all():
        raise ValueError("diagonal covariances must be > 0")
    if covariances.dim() == 3:
        if not torch.allclose(covariances, covariances.mT, rtol=0.0, atol=1e-12):
            raise ValueError("full covariances must be symmetric")
        _, info = torch.linalg.cholesky_ex(covariances)
        if (info != 0).any():
            raise ValueError("full covariances must be positive definite")
    return weights / weights.sum(), offsets, covariances


class GaussianMixtureOracle:
    """The exact MR model of Gaussian-mixture data (see the module description).

    Data x₀ | μ ~ Σ_k w_k N(μ + δ_k, S_k). The parameters are cast to float64 and checked.

    Args:
        schedule: Supplies α(t), σ(t) and Λ (``max_sigma``).
        weights: The mixture weights w_k, ``[K]``, finite and > 0 (normalised here).
        offsets: The component offsets δ_k from the condition μ, ``[K, d]``.
        covariances: The component covariances S_k: ``[K, d]`` (diagonal, > 0) or
            ``[K, d, d]`` (full, symmetric positive definite).

    Raises:
        ValueError: If a shape does not match or a covariance is not positive (definite).
    """

    def __init__(self, schedule, weights, offsets, covariances):
        self.schedule = schedule
        self.weights, self.offsets, self.covariances = _check_parameters(
            weights, offsets, covariances
        )
        self.num_components, self.dim = self.offsets.shape
        self.full = self.covariances.dim() == 3
        self.max_sigma = float(schedule.max_sigma)

    def __repr__(self) -> str:
        kind = "full" if self.full else "diagonal"
        return (
            f"GaussianMixtureOracle(K={self.num_components}, d={self.dim}, {kind} covariances, "
            f"schedule={self.schedule!r})"
        )

    def _inputs(self, x, t, mu):
        x64, mu64 = _f64(x), _f64(mu)
        if x64.shape[-1] != self.dim:
            raise ValueError(f"x must have last dimension d = {self.dim}, got {tuple(x.shape)}")
        x64, mu64 = torch.broadcast_tensors(x64, mu64)
        t64 = torch.broadcast_to(_f64(t).to(x64.device), x64.shape[:-1])
        return x64, mu64, t64

    def _at(self, t64: torch.Tensor):
        alpha, sigma = self.schedule.alpha(t64), self.schedule.sigma(t64)
        return alpha[..., None], sigma[..., None]

    def _components(self, y, alpha, sigma):
        """Per component: log w_k N(u_k; 0, C_k) [..., K] and z_k = C_k⁻¹ u_k [..., K, d]."""
        offsets = self.offsets.to(y.device)
        u = y[..., None, :] - alpha[..., None, :] * offsets
        a2, s2 = (alpha**2)[..., None, :], (sigma**2)[..., None, :]
        if self.full:
            eye = torch.eye(self.dim, dtype=_F64, device=y.device)
            cov = a2[..., None] * self.covariances.to(y.device) + s2[..., None] * eye
            chol = torch.linalg.cholesky(cov)
            w = torch.linalg.solve_triangular(chol, u[..., None], upper=False)
            z = torch.linalg.solve_triangular(chol.mT, w, upper=True)[..., 0]
            mahalanobis = (w[..., 0] ** 2).sum(-1)
            log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        else:
            cov = a2 * self.covariances.to(y.device) + s2
            z = u / cov
            mahalanobis = (u * z).sum(-1)
            log_det = torch.log(cov).sum(-1)
        log_norm = -0.5 * (mahalanobis + log_det + self.dim * math.log(2.0 * math.pi))
        return torch.log(self.weights.to(y.device)) + log_norm, z

    def log_density(self, x, t, mu) -> torch.Tensor:
        """log p_t(x | μ), shape x.shape[:-1] (differentiable in x when x is float64)."""
        x64, mu64, t64 = self._inputs(x, t, mu)
        alpha, sigma = self._at(t64)
        log_joint, _ = self._components(x64 - mu64, alpha, sigma)
        return torch.logsumexp(log_joint, dim=-1).to(x.dtype)

    def _posterior(self, x, t, mu):
        """Float64 (score, x̂₀, μ, α, σ) at (x, t, μ) from one responsibility computation."""
        x64, mu64, t64 = self._inputs(x, t, mu)
        alpha, sigma = self._at(t64)
        log_joint, z = self._components(x64 - mu64, alpha, sigma)
        r = torch.softmax(log_joint, dim=-1)[..., None]
        covariances = self.covariances.to(x64.device)
        s_z = (covariances @ z[..., None])[..., 0] if self.full else covariances * z
        shift = self.offsets.to(x64.device) + alpha[..., None, :] * s_z
        return -(r * z).sum(-2), mu64 + (r * shift).sum(-2), mu64, alpha, sigma

    def score(self, x, t, mu) -> torch.Tensor:
        """∇ₓ log p_t(x | μ) in closed form."""
        return self._posterior(x, t, mu)[0].to(x.dtype)

    def data(self, x, t, mu) -> torch.Tensor:
        """E[x₀ | x_t = x, μ]: responsibilities × per-component posterior means."""
        return self._posterior(x, t, mu)[1].to(x.dtype)

    def noise(self, x, t, mu) -> torch.Tensor:
        """E[ε | x_t = x, μ] = −σ_t · score."""
        score, _, _, _, sigma = self._posterior(x, t, mu)
        return (-sigma * score).to(x.dtype)

    def velocity(self, x, t, mu) -> torch.Tensor:
        """v̂ = Λ α ε̂ − (σ/Λ)(x̂₀ − μ), the Λ-normalised MRS velocity."""
        score, data, mu64, alpha, sigma = self._posterior(x, t, mu)
        scale = self.max_sigma
        velocity = scale * alpha * (-sigma * score) - (sigma / scale) * (data - mu64)
        return velocity.to(x.dtype)

    def predict(self, x, t, mu, prediction: str) -> torch.Tensor:
        """The ``prediction`` ("noise", "data", "velocity" or "score") at (x, t, μ)."""
        parameterization.check_prediction(prediction)
        return getattr(self, prediction)(x, t, mu)

    def model(self, prediction: str = "noise") -> OracleModel:
        """A sampler model ``model(x, t, mu)`` returning the exact ``prediction``."""
        parameterization.check_prediction(prediction)
        return OracleModel(self, prediction)

    def _component_factors(self) -> torch.Tensor:
        if self.full:
            return torch.linalg.cholesky(self.covariances)
        return torch.diag_embed(self.covariances.sqrt())

    def sample_x0(self, mu, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws x₀ | μ for every row of ``mu`` [..., d] (in mu's dtype)."""
        mu64 = _f64(mu)
        batch = mu64.shape[:-1]
        n = math.prod(batch)
        device = mu64.device
        index = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        xi = torch.randn(n, self.dim, 1, generator=generator, dtype=_F64)
        factors = self._component_factors()[index]
        x0 = self.offsets[index] + (factors @ xi)[..., 0]
        return (mu64 + x0.reshape(*batch, self.dim).to(device)).to(mu.dtype)

    def sample_marginal(self, mu, t, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws x_t = μ + α_t(x₀ − μ) + σ_t ε for every row of ``mu`` (in mu's dtype)."""
        mu64 = _f64(mu)
        x0 = _f64(self.sample_x0(mu64, generator))
        t64 = torch.broadcast_to(_f64(t).to(mu64.device), mu64.shape[:-1])
        alpha, sigma = self._at(t64)
        eps = torch.randn(mu64.shape, generator=generator, dtype=_F64).to(mu64.device)
        return (mu64 + alpha * (x0 - mu64) + sigma * eps).to(mu.dtype)


class OracleModel:
    """``model(x, t, mu)`` → the oracle's exact ``prediction``; counts its calls in ``calls``."""

    def __init__(self, oracle: GaussianMixtureOracle, prediction: str):
        self.oracle, self.prediction, self.calls = oracle, prediction, 0

    def __repr__(self) -> str:
        return f"OracleModel({self.prediction!r}, {self.oracle!r})"

    def __call__(self, x, t, mu) -> torch.Tensor:
        self.calls += 1
        return self.oracle.predict(x, t, mu, self.prediction)


def gaussian_flow(schedule, x_s, t_s, t_e, mu, offset, covariance) -> torch.Tensor:
    """Exact PF-ODE flow map from t_s to t_e for single-Gaussian data x₀ ~ N(μ + δ, S).

    With m_t = μ + α_t δ and C_t = α_t² S + σ_t² I the map is
    x_e = m_e + C_e^{1/2} C_s^{−1/2} (x_s − m_s); all C_t share S's eigenvectors, so one
    eigendecomposition S = U diag(s) Uᵀ gives C_e^{1/2} C_s^{−1/2} = U diag(√(c_e/c_s)) Uᵀ with
    c_t = α_t² s + σ_t². ``covariance`` is [d] (diagonal) or [d, d]; ``offset`` [d] (with a
    diagonal covariance: anything broadcastable to x_s, e.g. one offset per sample); t_s, t_e
    scalars or broadcastable to x_s.shape[:-1]. Returns x_e in x_s's dtype.
    """
    x64, mu64 = torch.broadcast_tensors(_f64(x_s), _f64(mu))
    offset, covariance = _f64(offset), _f64(covariance)
    d = x64.shape[-1]
    full = covariance.dim() == 2
    offset_ok = offset.shape == (d,) or (not full and _broadcasts(offset.shape, x64.shape))
    if not offset_ok or covariance.shape not in ((d,), (d, d)):
        raise ValueError(
            f"offset must be [{d}] and covariance [{d}] or [{d}, {d}], got "
            f"{tuple(offset.shape)} and {tuple(covariance.shape)}"
        )
    spectrum, basis = torch.linalg.eigh(covariance) if full else (covariance, None)

    def at(t):
        t64 = torch.broadcast_to(_f64(t), x64.shape[:-1])
        alpha, sigma = schedule.alpha(t64)[..., None], schedule.sigma(t64)[..., None]
        return alpha, alpha**2 * spectrum + sigma**2

    alpha_s, c_s = at(t_s)
    alpha_e, c_e = at(t_e)
    gain = torch.sqrt(c_e / c_s)
    u = x64 - mu64 - alpha_s * offset
    if basis is not None:
        u = (basis.mT @ u[..., None])[..., 0]
        u = (basis @ (gain * u)[..., None])[..., 0]
    else:
        u = gain * u
    return (mu64 + alpha_e * offset + u).to(x_s.dtype)


def _broadcasts(shape, target) -> bool:
    try:
        return torch.broadcast_shapes(shape, target) == tuple(target)
    except RuntimeError:
        return False


@dataclass(frozen=True)
class GaussianData:
    """Gaussian data x₀ | μ ~ N(μ + δ, diag(v)) under an MR schedule: everything closed form.

    The MR marginal is Gaussian, x_t ~ N(μ + α_t δ, diag(α_t² v + σ_t²)), so the exact data
    prediction is affine in x, E[x₀ | x_t] = μ + δ + g_t (x_t − μ − α_t δ) with
    g_t = α_t v / (α_t² v + σ_t²), and the PF-ODE flow map is
    x_e = m_e + √(var_e / var_s)(x_s − m_s) per coordinate.

    Attributes:
        schedule: The MR schedule.
        mu: The conditions μ, ``[..., d]`` (e.g. one per sample).
        offset: δ, broadcastable to ``mu`` (one per sample or shared).
        variance: v, a scalar or ``[d]`` (diagonal).
    """

    schedule: Schedule
    mu: torch.Tensor
    offset: torch.Tensor
    variance: torch.Tensor

    @classmethod
    def random(
        cls, schedule: Schedule, batch=6, dim=3, variance=0.25, seed=0, dtype=_F64
    ) -> GaussianData:
        """μ ~ N(0, I) and δ ~ N(0, 0.25 I) per sample (seeded), variance ``variance``."""
        generator = torch.Generator().manual_seed(seed)
        mu = torch.randn(batch, dim, generator=generator, dtype=dtype)
        offset = 0.5 * torch.randn(batch, dim, generator=generator, dtype=dtype)
        return cls(schedule, mu, offset, torch.as_tensor(variance, dtype=dtype))

    @classmethod
    def weak_problem(cls, schedule: Schedule) -> GaussianData:
        """The weak-order problem: d = 2, μ = (0.3, −0.2), δ = (0.4, −0.5), v = (0.25, 0.04)."""
        return cls(
            schedule,
            torch.tensor([0.3, -0.2], dtype=_F64),
            torch.tensor([0.4, -0.5], dtype=_F64),
            torch.tensor([0.25, 0.04], dtype=_F64),
        )

    @property
    def mean_x0(self) -> torch.Tensor:
        """E[x₀] = μ + δ."""
        return self.mu + self.offset

    def _at(self, t):
        t = torch.as_tensor(t, dtype=_F64)
        return self.schedule.alpha(t), self.schedule.sigma(t)

    def moments(self, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact marginal mean μ + α_t δ and variance α_t² v + σ_t² at t."""
        a, s = self._at(t)
        return self.mu + a * self.offset, a**2 * self.variance + s**2

    def mean(self, t) -> torch.Tensor:
        """Exact marginal mean at t."""
        return self.moments(t)[0]

    def var(self, t) -> torch.Tensor:
        """Exact marginal variance at t (per coordinate)."""
        return self.moments(t)[1]

    def gain(self, alpha, sigma):
        """g = α v / (α² v + σ²): the slope of the exact data prediction in x."""
        return alpha * self.variance / (alpha**2 * self.variance + sigma**2)

    def data(self, x, t, mu) -> torch.Tensor:
        """E[x₀ | x_t = x, μ] in x's dtype (t a ``[batch]`` tensor, as the samplers pass it)."""
        shape = (-1,) + (1,) * (x.dim() - 1)
        a, s = (v.reshape(shape).to(x.dtype) for v in self._at(t))
        offset, mu = self.offset.to(x.dtype), mu.to(x.dtype)
        gain = a * self.variance.to(x.dtype) / (a**2 * self.variance.to(x.dtype) + s**2)
        return mu + offset + gain * (x - mu - a * offset)

    def flow(self, x_s, t_s, t_e) -> torch.Tensor:
        """Exact PF-ODE flow map from t_s to t_e (see `gaussian_flow`)."""
        variance = torch.broadcast_to(self.variance, self.mu.shape[-1:])
        return gaussian_flow(self.schedule, x_s, t_s, t_e, self.mu, self.offset, variance)

    def marginal_sample(self, t, seed=1) -> torch.Tensor:
        """A seeded draw of x_t from the exact marginal (float64)."""
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(self.mu.shape, generator=generator, dtype=_F64)
        mean, var = self.moments(t)
        return mean + var.sqrt() * noise


def single_gaussian(schedule, offset, covariance) -> GaussianMixtureOracle:
    """The K = 1 oracle x₀ ~ N(μ + offset, covariance) (covariance [d] or [d, d])."""
    covariance = _f64(covariance)
    return GaussianMixtureOracle(schedule, [1.0], _f64(offset)[None], covariance[None])


def _default_schedule(schedule):
    return schedule if schedule is not None else schedules.cosine()


def gauss_1d(schedule=None) -> GaussianMixtureOracle:
    """K = 1, d = 1: x₀ ~ N(μ + 0.5, 0.25)."""
    return single_gaussian(_default_schedule(schedule), [0.5], [0.25])


def gmm_2d_diag(schedule=None) -> GaussianMixtureOracle:
    """K = 3, d = 2, diagonal: weights (0.5, 0.3, 0.2), offsets (−0.5, 0), (0.5, 0.3),
    (0, −0.6), variances (0.09, 0.16), (0.16, 0.09), (0.12, 0.12)."""
    return GaussianMixtureOracle(
        _default_schedule(schedule),
        weights=[0.5, 0.3, 0.2],
        offsets=[[-0.5, 0.0], [0.5, 0.3], [0.0, -0.6]],
        covariances=[[0.09, 0.16], [0.16, 0.09], [0.12, 0.12]],
    )


GMM_3D_FULL_COVARIANCES = (
    ((0.16, 0.04, 0.0), (0.04, 0.09, 0.02), (0.0, 0.02, 0.12)),
    ((0.10, -0.03, 0.02), (-0.03, 0.14, 0.0), (0.02, 0.0, 0.08)),
)
"""The two full covariances of "gmm-3d-full" (condition numbers below 3)."""


def gmm_3d_full(schedule=None) -> GaussianMixtureOracle:
    """K = 2, d = 3, full: weights (0.6, 0.4), offsets (0.4, −0.2, 0.1), (−0.4, 0.3, −0.2),
    covariances `GMM_3D_FULL_COVARIANCES`."""
    return GaussianMixtureOracle(
        _default_schedule(schedule),
        weights=[0.6, 0.4],
        offsets=[[0.4, -0.2, 0.1], [-0.4, 0.3, -0.2]],
        covariances=GMM_3D_FULL_COVARIANCES,
    )


def builtin_problems() -> dict[str, Callable[..., GaussianMixtureOracle]]:
    """Name → factory(schedule=None) of a small fixed oracle (default schedule: cosine).

    Offsets are O(0.5) and standard deviations 0.3–0.5 (separations of 2–4 standard deviations),
    so responsibilities change smoothly along the PF-ODE.
    """
    return {"gauss-1d": gauss_1d, "gmm-2d-diag": gmm_2d_diag, "gmm-3d-full": gmm_3d_full}


def builtin_problem(name: str, schedule=None) -> GaussianMixtureOracle:
    """The built-in problem ``name`` (see `builtin_problems`) on ``schedule``."""
    problems = builtin_problems()
    if name not in problems:
        raise ValueError(f"unknown problem {name!r}; allowed: {', '.join(problems)}")
    return problems[name](schedule)
