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
# # 02 · Semi-analytical solutions of the reverse PF-ODE and SDE
#
# With the score $\nabla\log p_t = -\hat\varepsilon/\sigma_t$ the reverse-time equations
# are
#
# $$\text{PF-ODE: }\ \frac{dx}{dt} = \theta(\mu - x) - \tfrac12 g^2\nabla\log p_t,
# \qquad \text{SDE: }\ dx = \big[\theta(\mu - x) - g^2\nabla\log p_t\big]dt
# + g\,d\bar w.$$
#
# `derivations.solutions` rewrites both in $\lambda$ for $y = x - \mu$, in the noise form
# (network output $\hat\varepsilon$) and the data form ($\hat x_0$), solves the four linear
# equations by variation of constants, and reads off the exact step $s \to t$: an analytic
# part (linear in $x_s$ and $\mu$), an exponentially weighted integral of the network
# output, and, for the SDE, a Gaussian term whose variance follows from the Itô isometry.
#
# Run it as is for the full version; the test suite executes every notebook with
# `MRS_NOTEBOOK_SIZE=small` (smaller grids and samples, same statements).

# %%
import itertools

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
import torch
from IPython.display import Markdown, display
from notebook_helpers import PRETTY, SIZE, proved, show, table
from scipy.integrate import quad

from derivations import solutions
from derivations.solutions import alpha_s, alpha_t, sigma_s, sigma_t
from derivations.symbols import Lambda, h, lam, lam_s, mu, u
from mrs_numerics import schedules
from mrs_numerics.verification import oracles

PRETTY.update(
    {
        solutions.x0_hat: sp.Function(r"\hat{x}_{0}"),
        solutions.eps_hat: sp.Function(r"\hat{\varepsilon}"),
    }
)
FORMS = [(m, p) for m in solutions.METHODS for p in solutions.PREDICTIONS]
f64 = torch.float64
torch.set_num_threads(1)  # tiny tensors: thread hand-offs would cost more than they save

# %% [markdown]
# ## 1. The reverse drifts in $t$
#
# As built by `solutions.reverse_drift_in_t` (the score written as
# $-\hat\varepsilon/\sigma$):

# %%
show(r"\frac{dx}{dt}\Big|_{\text{PF-ODE}}", solutions.reverse_drift_in_t("ode"))
show(r"\text{drift}_{\text{SDE}}", solutions.reverse_drift_in_t("sde"))

# %% [markdown]
# ## 2. Linear equations in λ
#
# Dividing by $d\lambda/dt$ (notebook 01) and substituting $x = y + \mu$ gives
# $dy/d\lambda = a(\lambda)\,y + b(\lambda) + \gamma(\lambda)\,\xi(\lambda)$, where $\xi$
# stands for $dB_\lambda/d\lambda$ (absent from the ODE); the data form substitutes
# $\hat\varepsilon = (y - \alpha(\hat x_0 - \mu))/\sigma$. $F = \exp\int a\,d\lambda$ is
# the integrating factor:

# %%
y = sp.Symbol("y", real=True)
for method, prediction in FORMS:
    equation = solutions.linear_equation(method, prediction)
    display(Markdown(f"**{method.upper()}, {prediction} form**"))
    rhs = equation.a * y + equation.b + equation.gamma * solutions.xi(lam)
    show(r"\frac{dy}{d\lambda}", rhs)
    show(r"F(\lambda)", solutions.integrating_factor(method, prediction))
proved(
    [
        (
            f"{m.upper()}, {p} form: the λ-equation stated in the module docstring",
            solutions.check_lam_equation(m, p),
        )
        for m, p in FORMS
    ]
)


# %% [markdown]
# ## 3. Variation of constants
#
# $y(\lambda) = \frac{F(\lambda)}{F(\lambda_s)}\,y_s + F(\lambda)\int_{\lambda_s}^{\lambda}
# \frac{b}{F}\,dv + F(\lambda)\int_{\lambda_s}^{\lambda}\frac{\gamma}{F}\,dB$, as built by
# `solutions.solution` and differentiated back into its equation:


# %%
def is_zero_integral(expr):
    return isinstance(expr, sp.Integral) and expr.function == 0


for method, prediction in FORMS:
    display(Markdown(f"**{method.upper()}, {prediction} form**"))
    solution = solutions.solution(method, prediction)  # the ODE's noise term is ∫ 0
    show(r"y(\lambda)", solution.replace(is_zero_integral, lambda e: sp.S.Zero))
proved(
    [
        (
            rf"{m.upper()}, {p} form: solves the equation, $y(\lambda_s) = y_s$",
            solutions.check_solution_solves_equation(m, p),
        )
        for m, p in FORMS
    ]
)

# %% [markdown]
# ## 4. The exact step $s \to t$
#
# With $h = \lambda_t - \lambda_s > 0$ and $\lambda = \lambda_s + u$, each solution becomes
#
# $$x_t - \mu = c_x\,(x_s - \mu) + \text{scale}\int_0^h e^{\kappa(h-u)}\,m(\lambda_s + u)
# \,du + \text{std}\cdot z,\qquad z \sim \mathcal N(0, I),$$
#
# with $m = \hat\varepsilon$ (noise form) or $\hat x_0 - \mu$ (data form).
# `solutions.step_solution` states the four cases; the checks derive each coefficient
# from the integrating factor and the variance from the Itô isometry
# $F_t^2\int\gamma^2/F^2\,d\lambda$:

# %%
x_s, z = sp.symbols("x_s z", real=True)
for method, prediction in FORMS:
    step = solutions.step_solution(method, prediction)
    output = solutions.network_output(prediction, lam_s + u)
    integral = sp.Integral(sp.exp(step.kappa * (h - u)) * output, (u, 0, h))
    std = sp.sympify(step.noise_std).rewrite(sp.exp)
    display(Markdown(f"**{method.upper()}, {prediction} form**"))
    show(r"x_t - \mu", step.x_coefficient * (x_s - mu) + step.scale * integral + std * z)
for prediction in solutions.PREDICTIONS:
    label = rf"\operatorname{{Var}}_{{\text{{Itô}}}}\ (\text{{SDE, {prediction} form}})"
    show(label, solutions.ito_variance("sde", prediction))
rows = []
for m, p in FORMS:
    rows.append(
        (
            rf"{m.upper()}, {p}: $c_x = F(\lambda_t)/F(\lambda_s)$",
            solutions.check_step_x_coefficient(m, p),
        )
    )
    rows.append(
        (
            rf"{m.upper()}, {p}: kernel = scale $\cdot\, e^{{\kappa(h-u)}}$",
            solutions.check_step_kernel(m, p),
        )
    )
    if m == "sde":
        rows.append(
            (
                f"{m.upper()}, {p}: std² is the Itô variance",
                solutions.check_noise_variance(m, p),
            )
        )
proved(rows)

# %% [markdown]
# ### Why the data form is preferred
#
# The data form's kernel $e^{-(h-u)}$ (ODE) or $e^{-2(h-u)}$ (SDE) is bounded by 1, the
# noise form's $e^{h-u}$ grows with the step; for the SDE the noise form also injects
# $\sigma_t\sqrt{e^{2h}-1}\,z$ where the data form injects $\sigma_t\sqrt{1-e^{-2h}}\,z$.
# Few-NFE sampling takes exactly such large steps, which is why the noise-form SDE blows up
# at 3–5 NFE even with an exact model. Both panels are lambdified from `step_solution`:

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
step_size = 2.0
u_axis = np.linspace(0, step_size, 200)
for method, prediction in FORMS:
    step = solutions.step_solution(method, prediction)
    kernel = sp.lambdify(u, sp.exp(step.kappa * (h - u)).subs(h, step_size))
    style = "-" if method == "ode" else "--"
    left.plot(u_axis, kernel(u_axis), style, label=f"{method.upper()}, {prediction}")
title = rf"kernel $e^{{\kappa(h-u)}}$ over one step, h = {step_size}"
left.set(xlabel="u", yscale="log", title=title)
left.legend()
h_axis = np.linspace(0.01, 3, 200)
for prediction in solutions.PREDICTIONS:
    std = solutions.step_solution("sde", prediction).noise_std
    relative = sp.lambdify(h, (std / sigma_t).rewrite(sp.exp))
    right.plot(h_axis, relative(h_axis), label=f"SDE, {prediction} form")
right.set(xlabel="h", yscale="log", title=r"injected noise std / $\sigma_t$")
right.legend()
fig.tight_layout()

# %% [markdown]
# ## 5. Numerical check: one large exact step
#
# For a single Gaussian $x_0 \sim \mathcal N(\mu + \delta, S)$ the PF-ODE flow map is known in
# closed form (`mrs_numerics.verification.oracles.gaussian_flow`) and the exact model is the oracle.
# Feeding the exact network output along the exact path into the step formula (integral by adaptive
# quadrature, coefficients lambdified from `step_solution`) must land on the flow map for any step
# size $h$: the semi-analytical solution is exact, and a sampler only approximates the integral.

# %%
schedule = schedules.cosine()
oracle = oracles.gauss_1d(schedule)
mu_value = torch.tensor([[0.2]], dtype=f64)
lam_start = -2.0
generator = torch.Generator().manual_seed(0)
t_s = schedule.t_of_lam(torch.tensor(lam_start, dtype=f64))
x_start = oracle.sample_marginal(mu_value, t_s, generator=generator)
ends = (alpha_s, sigma_s, alpha_t, sigma_t, h)


def time_at(lam_value):
    return schedule.t_of_lam(torch.tensor(lam_value, dtype=f64))


def flow(lam_value):
    offset, covariance = oracle.offsets[0], oracle.covariances[0]
    t_value = time_at(lam_value)
    x = oracles.gaussian_flow(schedule, x_start, t_s, t_value, mu_value, offset, covariance)
    return x, t_value


def network(prediction, lam_value):
    x, t_value = flow(lam_value)
    if prediction == "noise":
        return float(oracle.noise(x, t_value, mu_value))
    return float(oracle.data(x, t_value, mu_value) - mu_value)


def schedule_values(step_size):
    t_t = time_at(lam_start + step_size)
    values = (schedule.alpha(t_s), schedule.sigma(t_s))
    values += (schedule.alpha(t_t), schedule.sigma(t_t))
    return [float(v) for v in values] + [step_size]


def exact_step(method, prediction, step_size):
    step = solutions.step_solution(method, prediction)
    values = schedule_values(step_size)
    x_coefficient = sp.lambdify(ends, step.x_coefficient)(*values)
    scale = sp.lambdify(ends, step.scale)(*values)
    kappa = int(step.kappa)

    def integrand(w):
        return np.exp(kappa * (step_size - w)) * network(prediction, lam_start + w)

    integral, _ = quad(integrand, 0.0, step_size, epsabs=1e-14, epsrel=1e-13, limit=200)
    y_s = float(x_start - mu_value)
    return float(mu_value) + x_coefficient * y_s + scale * integral


rows, worst = [], 0.0
for step_size in (0.5, 2.0, 5.0):
    target = float(flow(lam_start + step_size)[0])
    errors = [abs(exact_step("ode", p, step_size) - target) for p in solutions.PREDICTIONS]
    worst = max(worst, *errors)
    rows.append([step_size, f"{target:.6f}", *(f"{e:.1e}" for e in errors)])
table(["h", "flow map $x_t$", "error, noise form", "error, data form"], rows)
assert worst < 1e-9, worst

# %% [markdown]
# ## 6. Numerical check: the SDE's Gaussian term
#
# Hold the network output constant ($\hat x_0 - \mu \equiv c$ or $\hat\varepsilon \equiv
# c$): the exact step then has mean $c_x y_s + \text{scale}\cdot c\int_0^h
# e^{\kappa(h-u)}du$ and standard deviation std. A fine Euler–Maruyama simulation of the
# derived λ-equation ($a$, $b$, $\gamma$ lambdified from `linear_equation`) must agree up
# to Monte Carlo and discretisation error:

# %%
paths, fine_steps = (20000, 400) if SIZE == "small" else (200000, 2000)
step_size, y_start, constant = 1.0, 0.3, 0.25
values = dict(zip(ends, schedule_values(step_size), strict=True))
lams = torch.linspace(lam_start, lam_start + step_size, fine_steps + 1, dtype=f64).tolist()
generator = torch.Generator().manual_seed(1)
rows = []
for prediction in solutions.PREDICTIONS:
    equation = solutions.linear_equation("sde", prediction)
    output = solutions.network_output(prediction)
    coefficients = (equation.a, equation.b.subs(output, constant), equation.gamma)
    a_of, b_of, gamma_of = (sp.lambdify((lam, Lambda), c) for c in coefficients)
    y = torch.full((paths,), y_start, dtype=f64)
    for l0, l1 in itertools.pairwise(lams):
        increment = np.sqrt(l1 - l0) * torch.randn(paths, generator=generator, dtype=f64)
        a0, b0 = a_of(l0, schedule.max_sigma), b_of(l0, schedule.max_sigma)
        y = y + (a0 * y + b0) * (l1 - l0) + gamma_of(l0, schedule.max_sigma) * increment

    step = solutions.step_solution("sde", prediction)
    kernel_integral = sp.integrate(sp.exp(step.kappa * (h - u)), (u, 0, h))
    mean = step.x_coefficient * y_start + step.scale * constant * kernel_integral
    mean = float(mean.subs(values))
    std = float(sp.sympify(step.noise_std).rewrite(sp.exp).subs(values))
    z_score = (float(y.mean()) - mean) / (std / np.sqrt(paths))
    rows.append(
        [
            prediction,
            f"{mean:.5f}",
            f"{float(y.mean()):.5f}",
            f"{std:.5f}",
            f"{float(y.std()):.5f}",
            f"{z_score:+.1f}",
        ]
    )
header = ["SDE form", "exact mean", "simulated mean", "exact std", "simulated std"]
table([*header, "mean error / standard error"], rows)

# %% [markdown]
# **Next:** notebook 03 approximates the remaining integral by Taylor-expanding the network
# output in $\lambda$, which produces the $\varphi$-function weights, and proves the order
# of every resulting update.
