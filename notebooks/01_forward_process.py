# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · The Mean-Reverting forward process, its marginal and λ
#
# Mean-Reverting (MR) diffusion (IR-SDE, DA-CLIP) pulls a clean image $x_0$ towards the
# degraded image $\mu$ while adding noise:
#
# $$dx = \theta(t)\,(\mu - x)\,dt + g(t)\,dw, \qquad g(t)^2 = 2\Lambda^2\theta(t),$$
#
# with $\Lambda = \sigma_\infty$ (IR-SDE's `max_sigma`). This notebook shows what
# `derivations.forward` and `derivations.log_snr` derive: the Gaussian marginal of $x_t$,
# and the half log-SNR $\lambda = \log(\alpha/\sigma)$ in which every MR Sampler formula
# is written. Each statement is a SymPy object displayed as the package builds it, and
# each "proved" table calls the package's check functions (a residual must simplify to
# exactly 0). The results are then checked numerically against a simulation and against
# the runtime schedules.
#
# Run it as is for the full version; the test suite executes every notebook with
# `MRS_NOTEBOOK_SIZE=small` (smaller grids and samples, same statements).

# %%
import itertools

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
import torch
from notebook_helpers import SIZE, proved, show, table

from derivations import forward, log_snr
from derivations.symbols import Lambda, lam, mu, x0
from mrs_numerics import schedules

f64 = torch.float64
torch.set_num_threads(1)  # tiny tensors: thread hand-offs would cost more than they save

# %% [markdown]
# ## 1. The forward SDE
#
# The MR constraint ties the diffusion to the drift; $\Theta(t) = \int_0^t\theta$ is the
# accumulated mean reversion, $\alpha = e^{-\Theta}$ the surviving fraction of
# $x_0 - \mu$, and $\sigma$ the marginal standard deviation (stated here, derived in §2):

# %%
show(r"g(t)^2", forward.g_squared())
show(r"\Theta(t)", forward.Theta())
show(r"\alpha(t)", forward.alpha())
show(r"\sigma(t)", forward.sigma())

# %% [markdown]
# ## 2. The marginal, solved rather than asserted
#
# For a linear SDE the conditional mean $m$ and variance $v$ of $x_t \mid x_0$ obey the
# moment equations $m' = \theta(\mu - m)$, $m(0) = x_0$ and $v' = -2\theta v + g^2$,
# $v(0) = 0$. `forward.solve_moment_odes` hands them to `sympy.dsolve` for a general
# $\theta$:

# %%
mean, variance = forward.solve_moment_odes()
show(r"\mathbb{E}[x_t \mid x_0]", mean)
show(r"\operatorname{Var}[x_t \mid x_0]", variance)
proved(
    [
        (
            r"dsolve's mean is $(1-\alpha_t)\mu + \alpha_t x_0$",
            forward.check_solved_mean(),
        ),
        (r"dsolve's variance is $\sigma_t^2$", forward.check_solved_variance()),
        ("the stated mean solves its ODE, starts at $x_0$", forward.check_mean_ode()),
        ("the stated variance solves its ODE, starts at 0", forward.check_variance_ode()),
    ]
)

# %% [markdown]
# Hence $x_t = (1-\alpha_t)\,\mu + \alpha_t x_0 + \sigma_t\,\varepsilon$ with
# $\varepsilon \sim \mathcal N(0, I)$ and $\sigma_t^2 = \Lambda^2(1-\alpha_t^2)$: as
# $\Theta \to \infty$, $x_t \to \mathcal N(\mu, \Lambda^2 I)$, so sampling starts from
# $\mu + \Lambda\xi$. Equivalently $z = x - (1-\alpha_t)\mu$ satisfies
# $z_t = \alpha_t x_0 + \sigma_t\varepsilon$: in the shifted variable the MR process is an
# ordinary Gaussian diffusion with schedule $(\alpha, \sigma)$, which is where every
# $\mu$-term of the samplers comes from.
#
# ### Check by simulation
#
# Euler–Maruyama on the forward SDE itself (the runtime cosine schedule supplies
# $\theta(t)$, $g(t)$ and $\Theta(t)$), from a fixed $x_0$, against the derived mean and
# standard deviation (`sympy.lambdify` of the expressions above, no formula retyped):

# %%
schedule = schedules.cosine()
big_theta = sp.Symbol("Theta", positive=True)
in_big_theta = {forward.Theta(): big_theta}
exact_mean = sp.lambdify((big_theta, x0, mu), forward.marginal_mean().subs(in_big_theta))
exact_std = sp.lambdify((big_theta, Lambda), forward.sigma().subs(in_big_theta))

paths, steps = (4000, 1000) if SIZE == "small" else (40000, 4000)
x0_value, mu_value = 0.8, -0.3
generator = torch.Generator().manual_seed(0)
times = torch.linspace(0.0, 1.0, steps + 1, dtype=f64)
x = torch.full((paths,), x0_value, dtype=f64)
trajectory = [x]
for t_from, t_to in itertools.pairwise(times):
    dt = t_to - t_from
    dw = dt.sqrt() * torch.randn(paths, generator=generator, dtype=f64)
    x = x + schedule.theta(t_from) * (mu_value - x) * dt + schedule.g(t_from) * dw
    trajectory.append(x)
trajectory = torch.stack(trajectory)

accumulated = schedule.Theta(times).numpy()
mean_t = exact_mean(accumulated, x0_value, mu_value)
std_t = exact_std(accumulated, schedule.max_sigma)
simulated_mean, simulated_std = trajectory.mean(1).numpy(), trajectory.std(1).numpy()
standard_error = std_t[-1] / np.sqrt(paths)
table(
    ["at t = 1", "derived", "simulated", "Monte Carlo standard error"],
    [
        ["mean", f"{mean_t[-1]:.4f}", f"{simulated_mean[-1]:.4f}", f"{standard_error:.1e}"],
        ["std", f"{std_t[-1]:.4f}", f"{simulated_std[-1]:.4f}", "—"],
    ],
)

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
t_np = times.numpy()
left.plot(t_np, trajectory[:, :12].numpy(), lw=0.6, alpha=0.6)
left.plot(t_np, mean_t, "k", lw=2, label="derived mean")
band = (mean_t - 2 * std_t, mean_t + 2 * std_t)
left.fill_between(t_np, *band, color="k", alpha=0.12, label=r"$\pm 2\sigma_t$")
left.axhline(mu_value, color="C3", ls=":", label=r"$\mu$")
left.set(xlabel="t", ylabel="x", title="forward paths from a fixed $x_0$")
left.legend(loc="upper right")
right.plot(t_np, simulated_mean - mean_t, label="mean: simulated − derived")
right.plot(t_np, simulated_std - std_t, label="std: simulated − derived")
right.axhline(0, color="k", lw=0.5)
right.set(xlabel="t", title=f"Euler–Maruyama, {paths} paths, {steps} steps")
right.legend()
fig.tight_layout()

# %% [markdown]
# ## 3. The schedules
#
# Built-in continuous schedules live on $t \in [0, 1]$ with $\theta$ scaled so that
# $\alpha(1) = 0.005$ (IR-SDE's "dt trick"); their closed forms are derived from
# $\theta(t)$ in `derivations.schedules` and printed into `mrs_numerics._generated`. The
# dots are IR-SDE's discrete cosine table ($T = 100$, time = index, drawn at $t = i/T$,
# with its $\theta$ per unit index multiplied by $T$). At index 0 the IR-SDE convention has
# $\alpha = 1$, $\sigma = 0$ and $\lambda = +\infty$.

# %%
t_plot = torch.linspace(0.0, 1.0, 400, dtype=f64)[1:]
discrete = schedules.irsde("cosine", T=100)
index = torch.arange(1, 101, dtype=f64)
panels = [
    (r"$\theta(t)$", "theta", discrete.T),
    (r"$\alpha(t)$", "alpha", 1.0),
    (r"$\sigma(t)/\Lambda$", "sigma", 1.0 / discrete.max_sigma),
    (r"$\lambda(t)$", "lam", 1.0),
]
fig, axes = plt.subplots(1, 4, figsize=(14, 3.3))
for ax, (title, quantity, discrete_scale) in zip(axes, panels, strict=True):
    for name, make in schedules.BUILTIN.items():
        s = make()
        scale = 1.0 / s.max_sigma if quantity == "sigma" else 1.0
        ax.plot(t_plot, scale * getattr(s, quantity)(t_plot), label=name)
    dots = discrete_scale * getattr(discrete, quantity)(index)
    ax.plot(index / discrete.T, dots, ".", ms=3, color="k", label="IR-SDE cosine, T=100")
    ax.set(title=title, xlabel="t")
axes[0].legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## 4. The half log-SNR λ and the change of variables
#
# $\lambda(t) = \log\alpha(t) - \log\sigma(t)$ decreases in $t$ (from $+\infty$ at the
# clean end). Solving $e^{2\lambda} = (1-\sigma^2/\Lambda^2)/\sigma^2$ for $\sigma$ inverts
# it, and the chain rule gives the rate $d\lambda/dt$ and the identity
# $g^2\,dt = -2\sigma^2\,d\lambda$ that turns the reverse equations into linear equations
# in $\lambda$ with bounded coefficients (notebook 02):

# %%
show(r"\lambda(t)", log_snr.lam_of_t())
show(r"\sigma(\lambda)", log_snr.sigma_of_lam())
show(r"\alpha(\lambda)", log_snr.alpha_of_lam())
show(r"\frac{d\lambda}{dt}", log_snr.dlam_dt())
show(r"\frac{d\log\alpha}{d\lambda}", log_snr.dlog_alpha_dlam())
show(r"\frac{d\log\sigma}{d\lambda}", log_snr.dlog_sigma_dlam())
proved(
    [
        (
            r"$\sigma(\lambda) = \Lambda/\sqrt{1 + \Lambda^2 e^{2\lambda}}$",
            log_snr.check_sigma_of_lam(),
        ),
        (
            r"$\sigma(\lambda(t)) = \sigma(t)$ and $\alpha(\lambda(t)) = \alpha(t)$",
            log_snr.check_inverse(),
        ),
        (r"$d\lambda/dt = -\theta\Lambda^2/\sigma^2$", log_snr.check_dlam_dt()),
        (r"$g^2\,dt = -2\sigma^2\,d\lambda$", log_snr.check_g2_dt_identity()),
        (
            r"$d\log\alpha/d\lambda = \sigma^2/\Lambda^2$, "
            r"$d\log\sigma/d\lambda = \sigma^2/\Lambda^2 - 1$",
            log_snr.check_log_derivatives(),
        ),
    ]
)

# %% [markdown]
# ### The runtime schedules agree with the derivation
#
# The derived $\sigma(\lambda)$ and $\alpha(\lambda)$ (lambdified) against each runtime
# schedule evaluated at $t(\lambda)$, and the round trip $t(\lambda(t)) - t$, for the three
# built-in schedules ($\sigma$ relative to $\Lambda$):

# %%
sigma_of_lam = sp.lambdify((lam, Lambda), log_snr.sigma_of_lam())
alpha_of_lam = sp.lambdify((lam, Lambda), log_snr.alpha_of_lam())
t_check = torch.linspace(0.02, 1.0, 50 if SIZE == "small" else 500, dtype=f64)
rows = []
for name, make in schedules.BUILTIN.items():
    s = make()
    lams = s.lam(t_check)
    t_back = s.t_of_lam(lams)
    d_sigma = sigma_of_lam(lams.numpy(), s.max_sigma) - s.sigma(t_back).numpy()
    d_alpha = alpha_of_lam(lams.numpy(), s.max_sigma) - s.alpha(t_back).numpy()
    d_t = float((t_back - t_check).abs().max())
    rows.append(
        [
            name,
            f"{np.abs(d_sigma).max() / s.max_sigma:.1e}",
            f"{np.abs(d_alpha).max():.1e}",
            f"{d_t:.1e}",
        ]
    )
header = ["schedule", r"max $\Delta\sigma/\Lambda$", r"max $\Delta\alpha$"]
table([*header, r"max $\Delta t$"], rows)

lam_axis = np.linspace(-5, 6, 300)
max_sigma = schedule.max_sigma
fig, ax = plt.subplots(figsize=(6, 3.5))
derived_sigma = sigma_of_lam(lam_axis, max_sigma) / max_sigma
derived_alpha = alpha_of_lam(lam_axis, max_sigma)
ax.plot(lam_axis, derived_sigma, label=r"$\sigma(\lambda)/\Lambda$ (derived)")
ax.plot(lam_axis, derived_alpha, label=r"$\alpha(\lambda)$ (derived)")
lams = schedule.lam(t_check)
ax.plot(lams, schedule.sigma(t_check) / max_sigma, "k.", ms=3, label="cosine schedule")
ax.plot(lams, schedule.alpha(t_check), "k.", ms=3)
ax.set(xlabel=r"$\lambda$", title=r"$\alpha$ and $\sigma/\Lambda$ along $\lambda$")
ax.legend()
fig.tight_layout()

# %% [markdown]
# **Next:** notebook 02 writes the reverse-time PF-ODE and SDE in $\lambda$ and solves
# them semi-analytically.
