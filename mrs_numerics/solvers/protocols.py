"""The interfaces a sampler calls: the model and the noise source."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Model(Protocol):
    """A network (or exact oracle) as the samplers call it: ``model(x, t, mu) -> Tensor``.

    ``x`` is the state ``[batch, ...]`` in the input dtype, ``t`` a float64 tensor ``[batch]``
    of times in the schedule's unit, ``mu`` the condition (the degraded image), shaped like
    ``x``. The output has exactly ``x``'s shape and is the prediction the sampler was told
    (``model_prediction``: noise, data, velocity or score; see
    [Parameterisations](../theory.md#parameterisations)).
    """

    def __call__(self, x: torch.Tensor, t: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """The model's prediction at (x, t, μ)."""
        ...


@runtime_checkable
class NoiseSource(Protocol):
    """Standard normal noise for the stochastic steps of a run, queried by interval.

    A sampler calls ``noise(step, t_from, t_to, shape, dtype, device)`` once per stochastic
    step (every SDE solver of the package draws once per step): ``step`` is the step index,
    ``(t_from, t_to)`` the interval the step integrates over (t_from > t_to: from noisy to
    clean), and the result is a tensor of exactly ``shape``, ``dtype`` and ``device``. Telling
    the source the interval (as diffrax's ``evaluate(t0, t1)`` and torchsde's
    ``BrownianInterval(ta, tb)`` are told) lets a source serve any grid from one Brownian path,
    like [`CoupledBrownian`][mrs_numerics.solvers.brownian.CoupledBrownian] on nested grids.

    **Which Gaussian a draw is.** Each draw z is the step's Gaussian term divided by its
    standard deviation: z = I/√Var I, where I is a stochastic integral over the step's interval
    of the reverse-time Wiener process w̄ of the reverse SDE dx = [θ(μ − x) − g²∇log p] dt + g dw̄
    (in λ: g dw̄ = √2 σ dB_λ). With s = ``t_from``, t = ``t_to``, λ_s < λ_t and h = λ_t − λ_s
    ([Strong and weak order](../theory.md#strong-and-weak-order)):

    - **data-form MR SDE** (``mrs-sde-1-data``, ``mrs-sde-2-data``) and **posterior sampling**
      (``posterior``, the same step): I = ∫ (g/σ) e^{λ} dw̄ = ∫ √2 e^{λ} dB_λ, Var I =
      e^{2λ_t} − e^{2λ_s}; the step adds σ_t √(1 − e^{−2h}) z. I is the increment of a Brownian
      motion W in u = e^{2λ} = α²/σ² (= 1/σ_e², the EDM noise level σ_e = σ/α), so
      z = (W(u_t) − W(u_s))/√(u_t − u_s).
    - **noise-form MR SDE** (``mrs-sde-1-noise``, ``mrs-sde-2-noise``): I = ∫ (g/α) dw̄ =
      ∫ √2 e^{−λ} dB_λ, Var I = e^{−2λ_s} − e^{−2λ_t}; the step adds σ_t √(e^{2h} − 1) z. I is
      the increment of a Brownian motion W in v = e^{−2λ} = σ²/α² = σ_e², so
      z = (W(v_s) − W(v_t))/√(v_s − v_t).
    - **Euler–Maruyama** (``euler-maruyama``): I = ∫ dw̄, the increment of w̄ over the time
      interval, Var I = s − t; the step adds g(s) √(s − t) z, so z = (W(s) − W(t))/√(s − t) for
      a Brownian motion W in the schedule's time t (the unit of ``t_from``; IR-SDE tables: the
      index).
    - ODE solvers draw nothing.

    Every draw is N(0, I) and draws on disjoint intervals are independent, which is all that
    sampling needs: any standard normals give the right distribution. For the *same* path at
    every step size (strong-order studies), z must be the normalised integral of one w̄ for the
    solver's family ([`family_for`][mrs_numerics.solvers.brownian.family_for]): e.g. a torchsde
    ``BrownianInterval`` in u = 1/σ_e² for a data-form run, queried as
    ``path(u_s, u_t) / sqrt(u_t - u_s)``. The three families of one w̄ are correlated (data and
    noise by Δλ/sinh Δλ on a step), so one path serves several families only through their
    joint law, as ``CoupledBrownian`` simulates it. On a step that reaches σ = 0 (λ_t = ∞) the
    data-form coefficient is 0 and any standard normal will do; the noise form cannot step there.
    Through [`sample_mrs`][mrs_numerics.solvers.kdiffusion.sample_mrs], k-diffusion's
    ``noise_sampler(sigma, sigma_next)`` is this source with the interval given in σ_e.
    """

    def __call__(
        self,
        step: int,
        t_from: float,
        t_to: float,
        shape: tuple[int, ...],
        dtype: torch.dtype,
        device: torch.device,
    ) -> torch.Tensor:
        """Standard normals of ``shape`` for step ``step`` over (t_from → t_to)."""
        ...
