"""Coupled Brownian noise: one reverse-time Wiener path per sample, exact at every step size.

Strong-order studies must compare the SAME Brownian path at every number of steps (see [Strong and
weak order](../theory.md#strong-and-weak-order)): a coarse step's Gaussian term has to be the exact
weighted stochastic integral of the fine path, not a fresh normal.
[`CoupledBrownian`][mrs_numerics.solvers.brownian.CoupledBrownian] simulates, once per sample and
fine interval, the integrals every SDE solver of the package needs, and
[`CoupledBrownian.noise_fn`][mrs_numerics.solvers.brownian.CoupledBrownian.noise_fn] turns them into
the z of any interval of a coarser nested grid (a
[`NoiseSource`][mrs_numerics.solvers.protocols.NoiseSource], queried by interval).

**The path.** w̄ is the reverse-time Wiener process of the reverse SDE
dx = [θ(μ − x) − g² s] dt + g dw̄, integrated from s down to t < s; ∫_t^s f dw̄ is Gaussian with
variance ∫_t^s f² dt for a deterministic f (Itô isometry), and such integrals over disjoint
intervals are independent.

**The three stochastic terms.** Over a step s → t, h = λ_t − λ_s > 0. In λ the SDEs carry
√2 σ dB_λ ([`derivations.solutions`][derivations.solutions]); since g² |dt| = 2σ² dλ, the term
√2 σ dB_λ is g dw̄ (same quadratic variation, same path). Variation of constants with the
integrating factor F gives the Gaussian term F_t ∫ (g/F) dw̄:

- data form (``mrs-sde-*-data``; ``posterior``, proved to be the same step), F = σ e^{−λ}:
  σ_t e^{−λ_t} ∫ (g/σ) e^{λ} dw̄, with variance σ_t² e^{−2λ_t} ∫ 2 e^{2λ} dλ = σ_t² (1 − e^{−2h});
- noise form (``mrs-sde-*-noise``), F = α: α_t ∫ (g/α) dw̄, variance α_t² ∫ 2 e^{−2λ} dλ
  = α_t² (e^{−2λ_s} − e^{−2λ_t}) = σ_t² (e^{2h} − 1);
- Euler–Maruyama (``euler-maruyama``): g_s ∫ dw̄ = g_s Δw̄, variance g_s² (s − t).

These are the generated noise coefficients σ_t √(1 − e^{−2h}), σ_t √(e^{2h} − 1) and
Λ √(2 θ_s Δt) of `mrs_numerics._generated` (asserted by ``tests/test_noise.py``).

**Per fine interval** [t_b, t_a] (t_b < t_a, so λ_a = λ(t_a) < λ_b = λ(t_b)) the vector
X = (∫ dw̄, ∫ (g/σ) e^{λ} dw̄, ∫ (g/α) dw̄) — families ``"time"``, ``"data"``, ``"noise"`` — is
jointly Gaussian with covariance (all integrals over the interval, in |dt|)

    Var time  = t_a − t_b,
    Var data  = ∫ (g/σ)² e^{2λ} dt = ∫ 2e^{2λ} dλ = e^{2λ_b} − e^{2λ_a} = 2e^{λ_a + λ_b} sinh Δλ,
    Var noise = ∫ (g/α)² dt = ∫ 2e^{−2λ} dλ = e^{−2λ_a} − e^{−2λ_b} = 2e^{−λ_a − λ_b} sinh Δλ,
    Cov(data, noise) = ∫ g²/(σα) e^{λ} dt = ∫ 2 (σ/α) e^{λ} dλ = 2 Δλ,
    Cov(time, data)  = ∫ g α/σ² dt,      Cov(time, noise) = ∫ g/α dt,

with Δλ = λ_b − λ_a (the sinh forms are the ones computed: no cancellation on short intervals;
they give corr(data, noise) = Δλ / sinh Δλ, on any step). The last two have no closed form for a
general θ(t): they are computed in float64 by composite 10-point Gauss–Legendre quadrature in t,
on panels at most 0.25 wide in λ (the data integrand is singular at σ = 0, like 1/t or t^{−3/2};
on such panels the rule converges to round-off) and split at the integer knots of IR-SDE tables,
where θ jumps. Each 3×3 covariance is factored in float64
through the eigendecomposition of its correlation matrix with the eigenvalues clamped at 0 (it is
nearly singular on short intervals, where the three integrals are almost collinear); the rows
of the root are renormalised so that every family's simulated variance is exactly its closed
form.

**Coupling.** A coarse step over the fine intervals k ∈ K has the Gaussian term prefactor · Σ_k X_k
(additivity of the integral), and z = Σ_k X_k / √(Σ_k Var X_k) is exactly N(0, I): generated std × z
= prefactor × (the path's integral), at every step size. Coarse grids must therefore be subsets of
the fine grid ([`nested_grid`][mrs_numerics.solvers.brownian.nested_grid] builds nested ladders).

**Reproducibility.** The standard normals of sample i on fine interval k come from a generator
seeded with a hash of (seed_i, k): sample i's path depends on its seed only (not on the batch,
nor on which steps are asked for, nor in which order), and draws are regenerated on demand, so
memory stays O(one sample batch) for image-sized states. Draws are memoised while they fit in
``max_cache_bytes`` (this never changes the numbers). The path depends on the draw ``device``:
CPU and CUDA generators differ.

**A step that reaches σ = 0** (λ = ∞: t = 0 of IR-SDE's α₀ = 1 tables). Its last fine interval
carries the time integral only. The data-form term there has prefactor σ_t e^{−λ_t} = σ_t²/α_t = 0
(generated coefficient 0), and its normalised integral tends in law to a standard normal
independent of the rest of the path (the variance concentrates at the σ = 0 end, where the
correlation with ∫ dw̄ vanishes): the ``"data"`` family returns that independent normal, so
posterior sampling down to σ = 0 runs on coupled noise. The ``"noise"`` family is undefined there
(the noise form cannot land on σ = 0) and raises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from mrs_numerics._checks import integer
from mrs_numerics.schedules import grids
from mrs_numerics.schedules.discrete import DiscreteSchedule
from mrs_numerics.schedules.protocol import Schedule
from mrs_numerics.solvers.protocols import NoiseSource
from mrs_numerics.solvers.registry import solver_info

FAMILIES = ("time", "data", "noise")
"""The stochastic integrals simulated per fine interval, in this order."""
SPACINGS = ("lambda", "time")
"""How [`nested_grid`][mrs_numerics.solvers.brownian.nested_grid] subdivides a coarse interval."""
MATCH_RTOL = 1e-12
"""A coarse time is on the fine grid when it is this close, relative to the largest fine time."""
PANEL_MAX_DLAM = 0.25
"""Largest λ-width of a quadrature panel for the time covariances."""
GAUSS_LEGENDRE_NODES = 10
"""Nodes of the Gauss–Legendre rule on each panel."""

_MASK64 = (1 << 64) - 1


def family_for(solver_id: str) -> str | None:
    """The noise family of a solver: ``"data"``, ``"noise"``, ``"time"``, or None for an ODE.

    ``mrs-sde-*-data`` and ``posterior`` (the same step) → data, ``mrs-sde-*-noise`` → noise,
    ``euler-maruyama`` → time; ODE solvers take no noise.
    """
    info = solver_info(solver_id)
    if info.method == "ode":
        return None
    if info.family == "mrs":
        return info.solver_prediction
    return "data" if solver_id == "posterior" else "time"


def nested_grid(schedule, coarse_times, refinement: int, spacing: str = "lambda") -> torch.Tensor:
    """``coarse_times`` with refinement − 1 points inserted in every interval.

    ``spacing="lambda"``: uniform in λ (``"time"``: uniform in t; an interval with an infinite λ
    end, where σ = 0, is always split uniformly in t). The fractions m/refinement are correctly
    rounded, so nested_grid(…, r) ⊂ nested_grid(…, r·q) for every integer q: the ladder r = 1, 2, 4,
    … is nested (up to the round-off of t(λ), far inside
    [`MATCH_RTOL`][mrs_numerics.solvers.brownian.MATCH_RTOL]).
    """
    refinement = integer(refinement, "refinement", least=1)
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; allowed: {', '.join(SPACINGS)}")
    times = grids.explicit(schedule, coarse_times)
    fractions = torch.tensor(
        [m / refinement for m in range(1, refinement)], dtype=torch.float64, device=times.device
    )
    lam = schedule.lam(times)
    pieces = []
    for i in range(times.numel() - 1):
        s, t = times[i], times[i + 1]
        pieces.append(s.reshape(1))
        if spacing == "lambda" and bool(torch.isfinite(lam[i : i + 2]).all()):
            inner = schedule.t_of_lam(lam[i] + fractions * (lam[i + 1] - lam[i]))
        else:
            inner = s + fractions * (t - s)
        pieces.append(inner.reshape(-1))
    pieces.append(times[-1:])
    return grids.explicit(schedule, torch.cat(pieces))


class CoupledBrownian:
    """One reverse-time Wiener path per sample on a fine grid, for every SDE noise family.

    See the module description for the mathematics; coarse grids must be subsets of
    ``fine_times`` ([`nested_grid`][mrs_numerics.solvers.brownian.nested_grid]).

    Args:
        schedule: The sampler's schedule.
        fine_times: The finest grid, strictly decreasing, inside the schedule's time range.
        shape: The state shape ``(batch, ...)``.
        seed: One int (sample i then gets a seed hashed from (seed, i); the per-sample seeds
            are kept as ``seeds``) or one int per sample.
        device: Where the normals are drawn; the path depends on it (CPU and CUDA generators
            differ).
        max_cache_bytes: Memoise the draws while they fit in this many bytes (this never
            changes the numbers).
    """

    def __init__(
        self,
        schedule: Schedule,
        fine_times,
        shape: Sequence[int],
        seed: int | Sequence[int] = 0,
        device: str | torch.device = "cpu",
        max_cache_bytes: int = 1 << 29,
    ):
        self.schedule = schedule
        self.fine_times = grids.explicit(schedule, fine_times).cpu()
        self.shape = _check_shape(shape)
        self.seeds = _sample_seeds(seed, self.shape[0])
        self.device = torch.device(device)
        self.max_cache_bytes = int(max_cache_bytes)
        self._time_scale = float(self.fine_times.abs().max())
        self._covariance = _interval_covariances(schedule, self.fine_times)
        self._weights = _gaussian_roots(self._covariance).to(self.device)
        self._generator = torch.Generator(device=self.device)
        self._cache: dict[int, torch.Tensor] = {}

    def __repr__(self) -> str:
        return (
            f"CoupledBrownian({self.schedule!r}, fine intervals={self.fine_times.numel() - 1}, "
            f"shape={self.shape}, device={str(self.device)!r})"
        )

    def covariance(self, t_from, t_to) -> torch.Tensor:
        """Exact 3×3 covariance of (time, data, noise) integrals over [t_to, t_from] (float64).

        On a span that reaches σ = 0 the data variance is inf and the data/noise entries NaN.
        """
        k0, k1 = self._span(t_from, t_to)
        return self._covariance[k0:k1].sum(0)

    def variance(self, family: str, t_from, t_to) -> float:
        """Variance of one family's integral over [t_to, t_from] (sum of the fine variances)."""
        index = _family_index(family)
        return float(self.covariance(t_from, t_to)[index, index])

    def integral(self, family: str, t_from, t_to) -> torch.Tensor:
        """The path's integral of ``family`` over [t_to, t_from]: float64, ``shape``, on device."""
        index = _family_index(family)
        k0, k1 = self._span(t_from, t_to)
        weights = self._weights[k0:k1, index]
        if not bool(torch.isfinite(weights).all()):
            raise ValueError(
                f"the {family!r} integral over [{t_to}, {t_from}] diverges: it reaches σ = 0"
            )
        return self._weighted_sum(weights, k0)

    def noise_fn(self, family: str, coarse_times=None) -> NoiseSource:
        """A [`NoiseSource`][mrs_numerics.solvers.protocols.NoiseSource] of ``family`` on this path.

        A step over (t_from → t_to) gets z = Σ_k X_k / √(Σ_k Var X_k) over the fine intervals
        between t_to and t_from: exactly N(0, I) and exactly the path's integral. Both times
        must be on the fine grid; ``coarse_times``, if given, are checked to be on it now
        (a clear error before any network call) rather than at the first step.
        """
        index = _family_index(family)
        if coarse_times is not None:
            self._locate(grids.explicit(self.schedule, coarse_times))
        spans: dict[tuple[int, int], torch.Tensor | None] = {}

        def noise(step, t_from, t_to, shape, dtype, device):
            if tuple(shape) != self.shape:
                raise ValueError(
                    f"this coupled noise has shape {self.shape}, the sampler asks for "
                    f"{tuple(shape)}"
                )
            k0, k1 = self._span(t_from, t_to)
            if (k0, k1) not in spans:
                spans[k0, k1] = self._step_weights(index, k0, k1)
            weights = spans[k0, k1]
            if weights is None:
                raise ValueError(
                    f"the {family!r} integral is undefined on step {step} "
                    f"(t = {float(t_from):.6g} → {float(t_to):.6g}): "
                    "it reaches σ = 0, where λ = ∞"
                )
            return self._weighted_sum(weights, k0).to(device=device, dtype=dtype)

        return noise

    def _step_weights(self, index: int, k0: int, k1: int) -> torch.Tensor | None:
        """Weights of the normals of fine intervals k0..k1 − 1 giving z; None where undefined."""
        variance = float(self._covariance[k0:k1, index, index].sum())
        if math.isfinite(variance):
            return self._weights[k0:k1, index] / math.sqrt(variance)
        if FAMILIES[index] == "data" and variance == math.inf:
            # the σ = 0 limit (module docstring): the last interval's unused, independent normal
            weights = torch.zeros(k1 - k0, 3, dtype=torch.float64, device=self.device)
            weights[-1, 1] = 1.0
            return weights
        return None

    def _span(self, t_from, t_to) -> tuple[int, int]:
        k0, k1 = self._locate(torch.tensor([float(t_from), float(t_to)], dtype=torch.float64))
        if not k0 < k1:
            raise ValueError(f"need t_from > t_to, got t_from = {t_from}, t_to = {t_to}")
        return k0, k1

    def _locate(self, times: torch.Tensor) -> list[int]:
        """Fine-grid index of every time; a clear error for a time that is not on the fine grid."""
        indices = []
        tolerance = MATCH_RTOL * self._time_scale
        for i, t in enumerate(times.tolist()):
            distance = (self.fine_times - t).abs()
            k = int(distance.argmin())
            if float(distance[k]) > tolerance:
                raise ValueError(
                    f"coarse time t[{i}] = {t!r} is not on the fine grid (nearest fine time "
                    f"{float(self.fine_times[k])!r}); coarse grids must be subsets of the fine "
                    "grid (build nested ladders with nested_grid)"
                )
            indices.append(k)
        return indices

    def _weighted_sum(self, weights: torch.Tensor, k0: int) -> torch.Tensor:
        """Σ_k weights[k] · ξ_{k0+k}, contracting the 3 standard normals of each fine interval."""
        total = torch.zeros(self.shape, dtype=torch.float64, device=self.device)
        for offset, w in enumerate(weights):
            normals = self._normals(k0 + offset)
            total += torch.tensordot(w, normals, dims=([0], [1]))
        return total

    def _normals(self, k: int) -> torch.Tensor:
        """Standard normals [batch, 3, ...] of fine interval k, one generator seed per sample."""
        cached = self._cache.get(k)
        if cached is not None:
            return cached
        per_sample = (3, *self.shape[1:])
        draws = []
        for seed in self.seeds:
            self._generator.manual_seed(_mix(seed, k))
            draws.append(
                torch.randn(
                    per_sample, generator=self._generator, dtype=torch.float64, device=self.device
                )
            )
        normals = torch.stack(draws)
        size = normals.numel() * normals.element_size()
        if (len(self._cache) + 1) * size <= self.max_cache_bytes:
            self._cache[k] = normals
        return normals


def _check_shape(shape) -> tuple[int, ...]:
    shape = tuple(int(n) for n in shape)
    if len(shape) < 1 or shape[0] < 1 or any(n < 1 for n in shape):
        raise ValueError(f"shape must be (batch, ...) with positive sizes, got {shape}")
    return shape


def _sample_seeds(seed, batch: int) -> tuple[int, ...]:
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return tuple(_mix(int(seed), i) for i in range(batch))
    seeds = tuple(int(s) for s in seed)
    if len(seeds) != batch:
        raise ValueError(f"got {len(seeds)} per-sample seeds for a batch of {batch}")
    return seeds


def _family_index(family) -> int:
    if family not in FAMILIES:
        raise ValueError(
            f"unknown noise family {family!r}; allowed: {', '.join(FAMILIES)} "
            "(family_for(solver_id) gives a solver's family)"
        )
    return FAMILIES.index(family)


def _splitmix(x: int) -> int:
    """The SplitMix64 finaliser: a bijective 64-bit integer hash (exact Python integers)."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _mix(seed: int, counter: int) -> int:
    """A 64-bit generator seed for (seed, counter), well mixed in both."""
    return _splitmix((_splitmix(seed & _MASK64) + (counter + 1) * 0x9E3779B97F4A7C15) & _MASK64)


def _interval_covariances(schedule, times: torch.Tensor) -> torch.Tensor:
    """[K, 3, 3] exact covariances of (time, data, noise) per fine interval (module docstring)."""
    lam = schedule.lam(times)
    lam_a, lam_b = lam[:-1], lam[1:]
    finite = torch.isfinite(lam_a) & torch.isfinite(lam_b)
    dlam = torch.where(finite, lam_b - lam_a, torch.nan)
    growth = 2.0 * torch.sinh(dlam)
    dt = times[:-1] - times[1:]
    var_data = torch.where(lam_b == math.inf, math.inf, torch.exp(lam_a + lam_b) * growth)
    var_noise = torch.exp(-(lam_a + lam_b)) * growth
    cov_data, cov_noise = _time_covariances(schedule, times, lam, finite)
    rows = [
        torch.stack([dt, cov_data, cov_noise], -1),
        torch.stack([cov_data, var_data, 2.0 * dlam], -1),
        torch.stack([cov_noise, 2.0 * dlam, var_noise], -1),
    ]
    return torch.stack(rows, -2)


def _time_covariances(schedule, times, lam, finite) -> tuple[torch.Tensor, torch.Tensor]:
    """∫ g α/σ² dt and ∫ g/α dt per fine interval, by composite Gauss–Legendre (NaN if λ = ∞)."""
    left, right, owner = _panels(schedule, times, lam, finite)
    nodes, weights = (
        torch.tensor(v, dtype=torch.float64)
        for v in np.polynomial.legendre.leggauss(GAUSS_LEGENDRE_NODES)
    )
    half = (right - left)[:, None] / 2.0
    t = (left + right)[:, None] / 2.0 + half * nodes
    w = (half * weights).reshape(-1)
    t = t.reshape(-1)
    g, alpha, sigma = schedule.g(t), schedule.alpha(t), schedule.sigma(t)
    index = owner.repeat_interleave(GAUSS_LEGENDRE_NODES)
    count = times.numel() - 1
    cov_data = torch.zeros(count, dtype=torch.float64).index_add_(
        0, index, w * g * alpha / sigma**2
    )
    cov_noise = torch.zeros(count, dtype=torch.float64).index_add_(0, index, w * g / alpha)
    nan = torch.tensor(torch.nan, dtype=torch.float64)
    return torch.where(finite, cov_data, nan), torch.where(finite, cov_noise, nan)


def _panels(schedule, times, lam, finite):
    """Panels (left, right, interval): at most PANEL_MAX_DLAM wide in λ, split at θ's knots."""
    lams = lam.tolist()
    counts = [
        max(1, math.ceil((lams[k + 1] - lams[k]) / PANEL_MAX_DLAM)) if ok else 0
        for k, ok in enumerate(finite.tolist())
    ]
    inner_lam = [
        lams[k] + (j / n) * (lams[k + 1] - lams[k])
        for k, n in enumerate(counts)
        for j in range(1, n)
    ]
    inner_t = schedule.t_of_lam(torch.tensor(inner_lam, dtype=torch.float64)).tolist()
    left, right, owner = [], [], []
    position = 0
    for k, n in enumerate(counts):
        if n == 0:
            continue
        hi, lo = float(times[k]), float(times[k + 1])
        interior = [t for t in inner_t[position : position + n - 1] if lo < t < hi]
        position += n - 1
        points = sorted({hi, lo, *interior, *_knots(schedule, lo, hi)}, reverse=True)
        left.extend(points[1:])
        right.extend(points[:-1])
        owner.extend([k] * (len(points) - 1))
    return (
        torch.tensor(left, dtype=torch.float64),
        torch.tensor(right, dtype=torch.float64),
        torch.tensor(owner, dtype=torch.long),
    )


def _knots(schedule, lo: float, hi: float) -> list[float]:
    """Times strictly inside (lo, hi) where θ(t) is not smooth: IR-SDE's integer indices."""
    if not isinstance(schedule, DiscreteSchedule):
        return []
    return [float(i) for i in range(math.floor(lo) + 1, math.ceil(hi))]


def _gaussian_roots(covariance: torch.Tensor) -> torch.Tensor:
    """[K, 3, 3] roots L with L Lᵀ = covariance, rows scaled to the exact variances.

    Eigendecomposition of the correlation matrix, eigenvalues clamped at 0. Intervals with an
    infinite λ end keep only the time row, on the first normal (the others are NaN).
    """
    std = covariance.diagonal(dim1=-2, dim2=-1).sqrt()
    roots = torch.full_like(covariance, torch.nan)
    roots[:, 0] = 0.0
    roots[:, 0, 0] = std[:, 0]
    full = torch.isfinite(covariance).all(-1).all(-1)
    if bool(full.any()):
        s = std[full]
        correlation = covariance[full] / (s[:, :, None] * s[:, None, :])
        eigenvalues, eigenvectors = torch.linalg.eigh(correlation)
        root = eigenvectors * eigenvalues.clamp(min=0.0).sqrt()[:, None, :]
        root = root / root.norm(dim=-1, keepdim=True)
        roots[full] = s[:, :, None] * root
    return roots
