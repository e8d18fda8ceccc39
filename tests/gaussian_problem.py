"""A smooth exact test problem: Gaussian data x₀ ~ N(m, v I) under an MR schedule.

The MR marginal is Gaussian, x_t ~ N(μ + α_t(m − μ), (α_t² v + σ_t²) I), so the data prediction
E[x₀ | x_t] and the PF-ODE flow map are closed form (an affine map per coordinate):
x_t − mean_t = sqrt(var_t / var_s) (x_s − mean_s).
"""

from dataclasses import dataclass

import torch


@dataclass
class GaussianProblem:
    schedule: object
    mu: torch.Tensor
    m: torch.Tensor
    v: float

    @classmethod
    def make(cls, schedule, batch=6, dim=3, v=0.25, seed=0, dtype=torch.float64):
        gen = torch.Generator().manual_seed(seed)
        mu = torch.randn(batch, dim, generator=gen, dtype=dtype)
        m = mu + 0.5 * torch.randn(batch, dim, generator=gen, dtype=dtype)
        return cls(schedule, mu, m, v)

    def _at(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        return self.schedule.alpha(t), self.schedule.sigma(t)

    def mean(self, t):
        a, _ = self._at(t)
        return self.mu + a * (self.m - self.mu)

    def var(self, t):
        a, s = self._at(t)
        return a**2 * self.v + s**2

    def data_model(self, x, t, mu):
        """E[x₀ | x_t]: the exact data prediction (t is a [batch] float64 tensor)."""
        shape = (-1,) + (1,) * (x.dim() - 1)
        a, s = (v.reshape(shape).to(x.dtype) for v in self._at(t))
        m, mu_ = self.m.to(x.dtype), self.mu.to(x.dtype)
        gain = a * self.v / (a**2 * self.v + s**2)
        return m + gain * (x - mu_ - a * (m - mu_))

    def flow(self, x_s, t_s, t_e):
        """Exact PF-ODE flow map from t_s to t_e."""
        return self.mean(t_e) + torch.sqrt(self.var(t_e) / self.var(t_s)) * (x_s - self.mean(t_s))

    def prior(self, t, seed=1):
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(self.mu.shape, generator=gen, dtype=torch.float64)
        return self.mean(t) + self.var(t).sqrt() * noise
