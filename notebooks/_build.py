"""Write the notebooks of this folder from the readable cell lists below (outputs stripped).

    python notebooks/_build.py            # rewrite every notebook
    python notebooks/_build.py --check    # exit 1 if a stored notebook differs from its source

The stored ``.ipynb`` files are the deliverable; this script is their source, so the notebooks
stay reviewable as plain Python and carry no outputs or execution counts. The notebooks display
the SymPy objects that ``derivations`` builds and call ``mrs_numerics``: no formula is typed twice.
``MRS_NOTEBOOK_SIZE=small`` (what the test suite sets) shrinks grids, Monte Carlo sizes and the
verification level; the default ``full`` is the complete version.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

SETUP = '''
import os

import sympy as sp
from IPython.display import Markdown, Math, display

SIZE = os.environ.get("MRS_NOTEBOOK_SIZE", "full")
if SIZE not in ("small", "full"):
    raise ValueError(f"MRS_NOTEBOOK_SIZE must be 'small' or 'full', got {SIZE!r}")

PRETTY = {}
"""Typesetting only: SymPy functions of the derivations -> the names printed in LaTeX."""


def tex(expr) -> str:
    """LaTeX of a SymPy object, with the functions in PRETTY renamed."""
    expr = sp.sympify(expr)
    for old, new in PRETTY.items():
        expr = expr.replace(old, new)
    return sp.latex(expr)


def show(lhs, rhs) -> None:
    """Display the equation lhs = rhs (lhs: LaTeX text or a SymPy object)."""
    left = lhs if isinstance(lhs, str) else tex(lhs)
    display(Math(f"{left} = {tex(rhs)}"))


def proved(rows) -> None:
    """Show (statement, residual) rows as a table; every residual must be exactly 0."""
    lines = ["| statement | residual |", "|---|---|"]
    lines += [f"| {statement} | ${tex(residual)}$ |" for statement, residual in rows]
    display(Markdown("\\n".join(lines)))
    failed = [statement for statement, residual in rows if sp.sympify(residual) != 0]
    assert not failed, f"not proved: {failed}"


def table(header, rows) -> None:
    """Display a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    display(Markdown("\\n".join(lines)))
'''

SIZE_NOTE = (
    "Run it as is for the full version; the test suite executes every notebook with "
    "`MRS_NOTEBOOK_SIZE=small` (smaller grids and samples, same statements)."
)


def md(text: str) -> tuple[str, str]:
    return "markdown", textwrap.dedent(text).strip()


def code(text: str) -> tuple[str, str]:
    return "code", textwrap.dedent(text).strip()


# ---------------------------------------------------------------------------------------------
# 01: the forward process, its marginal and λ
# ---------------------------------------------------------------------------------------------

NB01 = [
    md(
        rf"""
        # 01 · The Mean-Reverting forward process, its marginal and λ

        Mean-Reverting (MR) diffusion (IR-SDE, DA-CLIP) pulls a clean image $x_0$ towards the
        degraded image $\mu$ while adding noise:

        $$dx = \theta(t)\,(\mu - x)\,dt + g(t)\,dw, \qquad g(t)^2 = 2\Lambda^2\theta(t),$$

        with $\Lambda = \sigma_\infty$ (IR-SDE's `max_sigma`). This notebook shows what
        `derivations.forward` and `derivations.log_snr` derive: the Gaussian marginal of $x_t$,
        and the half log-SNR $\lambda = \log(\alpha/\sigma)$ in which every MR Sampler formula
        is written. Each statement is a SymPy object displayed as the package builds it, and
        each "proved" table calls the package's check functions (a residual must simplify to
        exactly 0). The results are then checked numerically against a simulation and against
        the runtime schedules.

        {SIZE_NOTE}
        """
    ),
    code(SETUP),
    code(
        """
        import itertools

        import matplotlib.pyplot as plt
        import numpy as np
        import torch

        from derivations import forward, log_snr
        from derivations.symbols import Lambda, lam, mu, x0
        from mrs_numerics import schedules

        f64 = torch.float64
        torch.set_num_threads(1)  # tiny tensors: thread hand-offs would cost more than they save
        """
    ),
    md(
        r"""
        ## 1. The forward SDE

        The MR constraint ties the diffusion to the drift; $\Theta(t) = \int_0^t\theta$ is the
        accumulated mean reversion, $\alpha = e^{-\Theta}$ the surviving fraction of
        $x_0 - \mu$, and $\sigma$ the marginal standard deviation (stated here, derived in §2):
        """
    ),
    code(
        r"""
        show(r"g(t)^2", forward.g_squared())
        show(r"\Theta(t)", forward.Theta())
        show(r"\alpha(t)", forward.alpha())
        show(r"\sigma(t)", forward.sigma())
        """
    ),
    md(
        r"""
        ## 2. The marginal, solved rather than asserted

        For a linear SDE the conditional mean $m$ and variance $v$ of $x_t \mid x_0$ obey the
        moment equations $m' = \theta(\mu - m)$, $m(0) = x_0$ and $v' = -2\theta v + g^2$,
        $v(0) = 0$. `forward.solve_moment_odes` hands them to `sympy.dsolve` for a general
        $\theta$:
        """
    ),
    code(
        r"""
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
        """
    ),
    md(
        r"""
        Hence $x_t = (1-\alpha_t)\,\mu + \alpha_t x_0 + \sigma_t\,\varepsilon$ with
        $\varepsilon \sim \mathcal N(0, I)$ and $\sigma_t^2 = \Lambda^2(1-\alpha_t^2)$: as
        $\Theta \to \infty$, $x_t \to \mathcal N(\mu, \Lambda^2 I)$, so sampling starts from
        $\mu + \Lambda\xi$. Equivalently $z = x - (1-\alpha_t)\mu$ satisfies
        $z_t = \alpha_t x_0 + \sigma_t\varepsilon$: in the shifted variable the MR process is an
        ordinary Gaussian diffusion with schedule $(\alpha, \sigma)$, which is where every
        $\mu$-term of the samplers comes from.

        ### Check by simulation

        Euler–Maruyama on the forward SDE itself (the runtime cosine schedule supplies
        $\theta(t)$, $g(t)$ and $\Theta(t)$), from a fixed $x_0$, against the derived mean and
        standard deviation (`sympy.lambdify` of the expressions above, no formula retyped):
        """
    ),
    code(
        r"""
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
        """
    ),
    md(
        r"""
        ## 3. The schedules

        Built-in continuous schedules live on $t \in [0, 1]$ with $\theta$ scaled so that
        $\alpha(1) = 0.005$ (IR-SDE's "dt trick"); their closed forms are derived from
        $\theta(t)$ in `derivations.schedules` and printed into `mrs_numerics._generated`. The
        dots are IR-SDE's discrete cosine table ($T = 100$, time = index, drawn at $t = i/T$,
        with its $\theta$ per unit index multiplied by $T$). At index 0 the IR-SDE convention has
        $\alpha = 1$, $\sigma = 0$ and $\lambda = +\infty$.
        """
    ),
    code(
        r"""
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
        """
    ),
    md(
        r"""
        ## 4. The half log-SNR λ and the change of variables

        $\lambda(t) = \log\alpha(t) - \log\sigma(t)$ decreases in $t$ (from $+\infty$ at the
        clean end). Solving $e^{2\lambda} = (1-\sigma^2/\Lambda^2)/\sigma^2$ for $\sigma$ inverts
        it, and the chain rule gives the rate $d\lambda/dt$ and the identity
        $g^2\,dt = -2\sigma^2\,d\lambda$ that turns the reverse equations into linear equations
        in $\lambda$ with bounded coefficients (notebook 02):
        """
    ),
    code(
        r"""
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
        """
    ),
    md(
        r"""
        ### The runtime schedules agree with the derivation

        The derived $\sigma(\lambda)$ and $\alpha(\lambda)$ (lambdified) against each runtime
        schedule evaluated at $t(\lambda)$, and the round trip $t(\lambda(t)) - t$, for the three
        built-in schedules ($\sigma$ relative to $\Lambda$):
        """
    ),
    code(
        r"""
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
        """
    ),
    md(
        r"""
        **Next:** notebook 02 writes the reverse-time PF-ODE and SDE in $\lambda$ and solves
        them semi-analytically.
        """
    ),
]


# ---------------------------------------------------------------------------------------------
# 02: the semi-analytical solutions
# ---------------------------------------------------------------------------------------------

NB02 = [
    md(
        rf"""
        # 02 · Semi-analytical solutions of the reverse PF-ODE and SDE

        With the score $\nabla\log p_t = -\hat\varepsilon/\sigma_t$ the reverse-time equations
        are

        $$\text{{PF-ODE: }}\ \frac{{dx}}{{dt}} = \theta(\mu - x) - \tfrac12 g^2\nabla\log p_t,
        \qquad \text{{SDE: }}\ dx = \big[\theta(\mu - x) - g^2\nabla\log p_t\big]dt
        + g\,d\bar w.$$

        `derivations.solutions` rewrites both in $\lambda$ for $y = x - \mu$, in the noise form
        (network output $\hat\varepsilon$) and the data form ($\hat x_0$), solves the four linear
        equations by variation of constants, and reads off the exact step $s \to t$: an analytic
        part (linear in $x_s$ and $\mu$), an exponentially weighted integral of the network
        output, and, for the SDE, a Gaussian term whose variance follows from the Itô isometry.

        {SIZE_NOTE}
        """
    ),
    code(SETUP),
    code(
        r"""
        import itertools

        import matplotlib.pyplot as plt
        import numpy as np
        import torch
        from scipy.integrate import quad

        from derivations import solutions
        from derivations.solutions import alpha_s, alpha_t, sigma_s, sigma_t
        from derivations.symbols import Lambda, h, lam, lam_s, mu, u
        from mrs_numerics import oracles, schedules

        PRETTY.update(
            {
                solutions.x0_hat: sp.Function(r"\hat{x}_{0}"),
                solutions.eps_hat: sp.Function(r"\hat{\varepsilon}"),
            }
        )
        FORMS = [(m, p) for m in solutions.METHODS for p in solutions.PREDICTIONS]
        f64 = torch.float64
        torch.set_num_threads(1)  # tiny tensors: thread hand-offs would cost more than they save
        """
    ),
    md(
        r"""
        ## 1. The reverse drifts in $t$

        As built by `solutions.reverse_drift_in_t` (the score written as
        $-\hat\varepsilon/\sigma$):
        """
    ),
    code(
        r"""
        show(r"\frac{dx}{dt}\Big|_{\text{PF-ODE}}", solutions.reverse_drift_in_t("ode"))
        show(r"\text{drift}_{\text{SDE}}", solutions.reverse_drift_in_t("sde"))
        """
    ),
    md(
        r"""
        ## 2. Linear equations in λ

        Dividing by $d\lambda/dt$ (notebook 01) and substituting $x = y + \mu$ gives
        $dy/d\lambda = a(\lambda)\,y + b(\lambda) + \gamma(\lambda)\,\xi(\lambda)$, where $\xi$
        stands for $dB_\lambda/d\lambda$ (absent from the ODE); the data form substitutes
        $\hat\varepsilon = (y - \alpha(\hat x_0 - \mu))/\sigma$. $F = \exp\int a\,d\lambda$ is
        the integrating factor:
        """
    ),
    code(
        r"""
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
        """
    ),
    md(
        r"""
        ## 3. Variation of constants

        $y(\lambda) = \frac{F(\lambda)}{F(\lambda_s)}\,y_s + F(\lambda)\int_{\lambda_s}^{\lambda}
        \frac{b}{F}\,dv + F(\lambda)\int_{\lambda_s}^{\lambda}\frac{\gamma}{F}\,dB$, as built by
        `solutions.solution` and differentiated back into its equation:
        """
    ),
    code(
        r"""
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
        """
    ),
    md(
        r"""
        ## 4. The exact step $s \to t$

        With $h = \lambda_t - \lambda_s > 0$ and $\lambda = \lambda_s + u$, each solution becomes

        $$x_t - \mu = c_x\,(x_s - \mu) + \text{scale}\int_0^h e^{\kappa(h-u)}\,m(\lambda_s + u)
        \,du + \text{std}\cdot z,\qquad z \sim \mathcal N(0, I),$$

        with $m = \hat\varepsilon$ (noise form) or $\hat x_0 - \mu$ (data form).
        `solutions.step_solution` states the four cases; the checks derive each coefficient
        from the integrating factor and the variance from the Itô isometry
        $F_t^2\int\gamma^2/F^2\,d\lambda$:
        """
    ),
    code(
        r"""
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
        """
    ),
    md(
        r"""
        ### Why the data form is preferred

        The data form's kernel $e^{-(h-u)}$ (ODE) or $e^{-2(h-u)}$ (SDE) is bounded by 1, the
        noise form's $e^{h-u}$ grows with the step; for the SDE the noise form also injects
        $\sigma_t\sqrt{e^{2h}-1}\,z$ where the data form injects $\sigma_t\sqrt{1-e^{-2h}}\,z$.
        Few-NFE sampling takes exactly such large steps, which is why the noise-form SDE blows up
        at 3–5 NFE even with an exact model. Both panels are lambdified from `step_solution`:
        """
    ),
    code(
        r"""
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
        """
    ),
    md(
        r"""
        ## 5. Numerical check: one large exact step

        For a single Gaussian $x_0 \sim \mathcal N(\mu + \delta, S)$ the PF-ODE flow map is
        known in closed form (`mrs_numerics.oracles.gaussian_flow`) and the exact model is the
        oracle. Feeding the exact network output along the exact path into the step formula
        (integral by adaptive quadrature, coefficients lambdified from `step_solution`) must land
        on the flow map for any step size $h$: the semi-analytical solution is exact, and a
        sampler only approximates the integral.
        """
    ),
    code(
        r"""
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
        """
    ),
    md(
        r"""
        ## 6. Numerical check: the SDE's Gaussian term

        Hold the network output constant ($\hat x_0 - \mu \equiv c$ or $\hat\varepsilon \equiv
        c$): the exact step then has mean $c_x y_s + \text{scale}\cdot c\int_0^h
        e^{\kappa(h-u)}du$ and standard deviation std. A fine Euler–Maruyama simulation of the
        derived λ-equation ($a$, $b$, $\gamma$ lambdified from `linear_equation`) must agree up
        to Monte Carlo and discretisation error:
        """
    ),
    code(
        r"""
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
        """
    ),
    md(
        r"""
        **Next:** notebook 03 approximates the remaining integral by Taylor-expanding the network
        output in $\lambda$, which produces the $\varphi$-function weights, and proves the order
        of every resulting update.
        """
    ),
]


# ---------------------------------------------------------------------------------------------
# 03: φ-functions, coefficients, order proofs, stable evaluation
# ---------------------------------------------------------------------------------------------

NB03 = [
    md(
        rf"""
        # 03 · Exponential-integrator coefficients, order proofs and stable φ

        The exact step of notebook 02 leaves one integral,
        $\text{{scale}}\int_0^h e^{{\kappa(h-u)}} m(\lambda_s + u)\,du$. Replacing $m$ by the
        polynomial through the available network outputs and integrating term by term gives
        weights made of the exponential-integrator functions $\varphi_k$. This notebook shows
        the $\varphi_k$ identities (`derivations.phi`), the coefficients of the updates
        (`derivations.updates`), the symbolic order proofs of every update
        (`derivations.order_proofs`), and how accurately the generated code evaluates
        $\varphi_k$ in float64 and float32 against mpmath.

        {SIZE_NOTE}
        """
    ),
    code(SETUP),
    code(
        r"""
        import inspect

        import matplotlib.pyplot as plt
        import mpmath
        import numpy as np
        import torch

        from derivations import order_proofs, phi, updates
        from mrs_numerics._generated import phi_numpy, phi_torch, registry, updates_torch

        z = sp.Symbol("z")
        ORDERS = range(1, phi.MAX_ORDER + 1)
        torch.set_num_threads(1)  # tiny tensors: thread hand-offs would cost more than they save
        """
    ),
    md(
        r"""
        ## 1. The φ-functions

        $\varphi_k(z) = \int_0^1 e^{(1-\tau)z}\,\frac{\tau^{k-1}}{(k-1)!}\,d\tau$, in closed
        form $\big(e^z - \sum_{j<k} z^j/j!\big)/z^k$, with $\varphi_k(0) = 1/k!$. They are
        exactly the integrals of polynomial terms under an exponential kernel
        (`phi.kernel_moment`):
        """
    ),
    code(
        r"""
        for k in ORDERS:
            definition, closed = phi.phi_integral_form(k, z), phi.phi_closed_form(k, z)
            display(Math(rf"\varphi_{k}(z) = {tex(definition)} = {tex(closed)}"))
        a, end = sp.symbols("a E")
        for n in range(phi.MAX_ORDER):
            lhs = rf"\int_0^E e^{{a(E-u)}}\frac{{u^{n}}}{{{n}!}}\,du"
            show(lhs, phi.kernel_moment(a, end, n))
        rows = []
        for k in ORDERS:
            definition = phi.check_closed_form_matches_definition(k)
            rows.append((rf"$\varphi_{k}$: closed form = definition", definition))
            recurrence = rf"$\varphi_{{{k + 1}}}(z) = (\varphi_{k}(z) - 1/{k}!)/z$"
            rows.append((recurrence, phi.check_recurrence(k)))
            rows.append((f"kernel moment, n = {k - 1}", phi.check_kernel_moment(k - 1)))
        proved(rows)
        """
    ),
    md(
        r"""
        ## 2. From the Taylor expansion to update coefficients

        Expanding $m(\lambda_s + u) = \sum_n m^{(n)}(\lambda_s)\,u^n/n!$ turns the integral into
        $\sum_n \text{scale}\,h^{n+1}\varphi_{n+1}(\kappa h)\,m^{(n)}$ (here the ODE in data
        form, to third order):
        """
    ),
    code(
        r"""
        lhs = r"\alpha_t\int_0^h e^{-(h-u)}\,m(\lambda_s+u)\,du \approx"
        display(Math(f"{lhs} {tex(updates.taylor_expansion('ode', 'data', 3))}"))
        """
    ),
    md(
        r"""
        The derivatives are replaced by divided differences of earlier outputs $m_j$ at
        $\lambda_s - (r_1 + \dots + r_j)h$ (multistep: one network call per step; the step
        ratios $r_i$ stay symbolic, so non-uniform grids are covered) or of intermediate stage
        outputs (singlestep). Every stage is linear in its inputs,
        $x_e = c_x x_s + c_\mu\mu + \sum_j c_j m_j\ (+\,c_z z)$, and these coefficients, as
        `updates.stage_coefficients` builds them, are what the code generator prints:
        """
    ),
    code(
        r"""
        def show_update(update):
            calls = update.model_calls
            display(Markdown(f"**`{update.name}`** ({calls} network call(s) per step)"))
            for stage in update.stages:
                c = updates.stage_coefficients(update, stage)
                terms = [rf"c_x = {tex(c.x)}", rf"c_\mu = {tex(c.mu)}"]
                for label, weight in zip(stage.node_labels, c.outputs, strict=True):
                    terms.append(rf"c_{{\mathrm{{{label}}}}} = {tex(weight)}")
                if c.noise != 0:
                    terms.append(rf"c_z = {tex(sp.sympify(c.noise).rewrite(sp.exp))}")
                head = rf"\text{{{stage.name}}}\ (\text{{end}} = {tex(stage.end)}\,h):\quad "
                display(Math(head + r",\quad ".join(terms)))


        for update in (
            updates.multistep("ode", "data", 2),
            updates.multistep("ode", "noise", 2),
            updates.multistep("sde", "data", 2),
            updates.singlestep("ode", "data", 3),
        ):
            show_update(update)
        """
    ),
    md(
        r"""
        The generated torch function of the second-order data-form ODE step (from
        `mrs_numerics._generated`, never edited by hand):
        """
    ),
    code(
        r"""
        ((function_name, _, _),) = registry.UPDATES["ode_data_multistep_2"]["stages"]
        source = inspect.getsource(getattr(updates_torch, function_name))
        display(Markdown(f"```python\n{source}\n```"))
        """
    ),
    md(
        r"""
        ## 3. The order proofs

        For every update `derivations.order_proofs` proves, with the step ratios symbolic:

        1. **exactness**: every stage integrates model outputs that are polynomials of its
           degree exactly (residual 0, with the integral done by SymPy, not by the $\varphi$
           identity);
        2. **local order**: for a general smooth output along the path the residual's series in
           $h$ starts at $h^{k+1}$ (local error $O(h^{k+1})$, global order $k$); the leading
           coefficient is shown with the derivatives $d_n = m^{(n)}(\lambda_s)$;
        3. **state-dependent order** (singlestep): with a generic model $m(v, u)$ evaluated at
           the approximate stage states, no residual up to $h^k$.
        """
    ),
    code(
        r"""
        chosen = [u for u in updates.all_updates() if SIZE == "full" or u.prediction == "data"]
        if SIZE == "small":
            display(Markdown("*small size: the data-form updates (the full size proves both)*"))
        rows = []
        for update in chosen:
            residuals = [order_proofs.exactness_residual(update, s) for s in update.stages]
            exact = all(residual == 0 for residual in residuals)
            power, coefficient = order_proofs.local_error(update)
            assert exact and power == update.order + 1, update.name
            state_dependent = "—"
            if update.scheme == "singlestep":
                fixed = order_proofs.singlestep_fixed_parameters(update)
                state_power, _ = order_proofs.state_dependent_local_error(update, fixed)
                assert state_power == update.order + 1, update.name
                state_dependent = f"$h^{{{state_power}}}$"
            rows.append(
                [
                    f"`{update.name}`",
                    update.order,
                    "yes" if exact else "**no**",
                    f"$h^{{{power}}}$",
                    f"${tex(coefficient)}$",
                    state_dependent,
                ]
            )
        header = ["update", "order k", "exact for degree k−1", "local error starts at"]
        table([*header, "leading coefficient", "state-dependent"], rows)
        """
    ),
    md(
        r"""
        ### Where $r_2 = 2/3$ comes from

        The third-order singlestep update has two free stage positions $r_1, r_2$. With a
        state-dependent model its residual has an $h^3$ term unless $r_2 = 2/3$ (for every
        $r_1$ and every model), so this value is derived, not chosen:
        """
    ),
    code(
        r"""
        third = updates.singlestep("ode", "data", 3)
        power, coefficient = order_proofs.state_dependent_local_error(third)
        lhs = rf"\text{{residual with }} r_1, r_2 \text{{ free}} \sim h^{{{power}}}\ \times"
        display(Math(f"{lhs} {tex(sp.factor(coefficient))}"))
        roots = order_proofs.third_order_singlestep_condition(third)
        show(r"r_2", roots[0] if len(roots) == 1 else roots)
        assert roots == [updates.SINGLESTEP_THIRD_ORDER_R2]
        """
    ),
    md(
        r"""
        ### Landing on σ = 0

        In IR-SDE's convention $\sigma(0) = 0$ ($\lambda = +\infty$); only a first-order
        data-form step can land there, as its limit $h \to \infty$ (`updates.clean_limit`): the
        coefficients of $x_s$ and $\mu$ vanish and the step returns the data prediction.
        """
    ),
    code(
        r"""
        for method in ("ode", "sde"):
            limit = updates.clean_limit(method)
            terms = [
                rf"c_x = {tex(limit.x)}",
                rf"c_\mu = {tex(limit.mu)}",
                rf"c_{{\mathrm{{m0}}}} = {tex(limit.outputs[0])}",
                rf"c_z = {tex(limit.noise)}",
            ]
            display(Math(rf"\text{{{method.upper()}}}:\quad " + r",\quad ".join(terms)))
        """
    ),
    md(
        r"""
        ## 4. Evaluating φ stably

        The closed form cancels catastrophically for small $|z|$ ($\varphi_3(10^{-8})$ loses
        every digit in float64), and a sampler meets small $|z| = |\kappa h|$ whenever it takes
        many steps. The generated code uses a truncated Taylor series $\sum_j z^j/(j+k)!$ for
        $|z|$ below `phi.SERIES_RADIUS` (the number of terms is chosen by `phi.series_terms` so
        that the dropped tail is below float64 round-off) and the closed form with `expm1`
        elsewhere. Reference: the closed form evaluated by mpmath at 50 digits (lambdified from
        the same SymPy expression); float32 is compared at the float32-rounded points.
        """
    ),
    code(
        r"""
        table(
            ["k", "series terms", "series radius"],
            [[k, phi.series_terms(k), phi.SERIES_RADIUS] for k in ORDERS],
        )

        mpmath.mp.dps = 50
        magnitudes = np.geomspace(1e-8, 30.0, 60 if SIZE == "small" else 400)
        points = np.concatenate([-magnitudes[::-1], magnitudes])
        points32 = points.astype(np.float32)


        def reference(k, values):
            exact = sp.lambdify(z, phi.phi_closed_form(k, z), "mpmath")
            return np.array([float(exact(mpmath.mpf(float(v)))) for v in values])


        def relative_error(values, exact):
            return np.abs(np.asarray(values, dtype=np.float64) - exact) / np.abs(exact)


        def generated(k):
            return getattr(phi_numpy, f"phi_{k}"), getattr(phi_torch, f"phi_{k}")


        errors, rows = {}, []
        for k in ORDERS:
            exact64, exact32 = reference(k, points), reference(k, points32.astype(np.float64))
            naive = sp.lambdify(z, phi.phi_closed_form(k, z), "numpy")
            numpy_phi, torch_phi = generated(k)
            with np.errstate(all="ignore"):
                errors[k] = {
                    "closed form, float64": relative_error(naive(points), exact64),
                    "numpy, float64": relative_error(numpy_phi(points), exact64),
                    "torch, float64": relative_error(torch_phi(torch.from_numpy(points)), exact64),
                    "numpy, float32": relative_error(numpy_phi(points32), exact32),
                    "torch, float32": relative_error(torch_phi(torch.tensor(points32)), exact32),
                }
            rows.append([k, *(f"{np.nanmax(e):.1e}" for e in errors[k].values())])
        table(["k", *(f"max rel. error: {name}" for name in errors[1])], rows)
        for k in ORDERS:
            for name, e in errors[k].items():
                if not name.startswith("closed"):
                    assert e.max() <= (1e-14 if name.endswith("float64") else 1e-6), (k, name)
        """
    ),
    md(
        r"""
        The README's claim is checked above: the generated code's relative error is at most
        $10^{-14}$ in float64 and $10^{-6}$ in float32 on $10^{-8} \le |z| \le 30$, both signs,
        while the naive closed form loses everything near 0. The plot shows the worst of $\pm z$
        at each $|z|$ (errors of exactly 0 are drawn at $10^{-17}$); the dotted line is
        `phi.SERIES_RADIUS`, the dashed lines the two bounds.
        """
    ),
    code(
        r"""
        fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), sharey=True)
        half = len(magnitudes)
        styles = {
            "closed form, float64": {"color": "C3", "lw": 1.2},
            "numpy, float64": {"color": "C0", "lw": 1.2},
            "torch, float64": {"color": "C0", "lw": 0.8, "ls": "--"},
            "numpy, float32": {"color": "C2", "lw": 1.2},
            "torch, float32": {"color": "C2", "lw": 0.8, "ls": "--"},
        }
        for ax, k in zip(axes, ORDERS, strict=True):
            for name, e in errors[k].items():
                worst = np.fmax(e[:half][::-1], e[half:])
                worst = np.clip(np.nan_to_num(worst, nan=1.0, posinf=1.0), 1e-17, None)
                ax.loglog(magnitudes, worst, label=name, **styles[name])
            ax.axvline(phi.SERIES_RADIUS, color="k", lw=0.5, ls=":")
            for bound in (1e-14, 1e-6):
                ax.axhline(bound, color="0.6", lw=0.6, ls="--")
            ax.set(xlabel="|z|", title=rf"$\varphi_{k}$: relative error vs mpmath")
        axes[0].set_ylabel("relative error (worst of ±z)")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        """
    ),
    md(
        r"""
        **Next:** notebook 04 measures the global, strong and weak orders that these local
        proofs predict, on exact Gaussian-mixture models.
        """
    ),
]


# ---------------------------------------------------------------------------------------------
# 04: convergence orders on the exact oracles
# ---------------------------------------------------------------------------------------------

NB04 = [
    md(
        rf"""
        # 04 · Convergence orders on exact oracles

        For Gaussian-mixture data the MR marginal is again a Gaussian mixture, so the score,
        $\hat x_0$, $\hat\varepsilon$ and $\hat v$ are known in closed form
        (`mrs_numerics.oracles`): a sampler run on such an oracle has no model error, and its
        error against a high-precision reference is pure discretisation error.
        `mrs_numerics.verify` measures, on step ladders of smooth non-uniform $\lambda$ grids in
        float64:

        - **ODE, global order**: error at the last time against a scipy DOP853 solution of the
          PF-ODE in $\lambda$ (`mrs_numerics.references`), for the full sampler (start
          procedure included) and for the multistep kernels alone from an exact warm start;
        - **SDE, strong order**: RMS pathwise error against the second-order data SDE on a 16×
          finer nested grid driven by the *same* Brownian path
          (`mrs_numerics.noise.CoupledBrownian`);
        - **SDE, weak order**: on Gaussian data every step is affine, so the exact mean and
          variance of $x_N$ are propagated through `sample` itself (no Monte Carlo).

        The observed order is the least-squares slope of $\log$ error against
        $\log h_{{\max}}$ over the three finest rungs; a solver passes when it is within 0.2 of
        its declared order.

        {SIZE_NOTE} The small size runs the `quick` level, whose short ladders may be
        pre-asymptotic; the full size runs the `default` level, the one `make verify` runs.
        """
    ),
    code(SETUP),
    code(
        r"""
        import matplotlib.pyplot as plt
        import numpy as np
        import torch
        from matplotlib.ticker import NullFormatter

        from mrs_numerics import convergence, oracles, references, schedules, verify
        from mrs_numerics.samplers import MRSampler
        from mrs_numerics.solvers import SOLVERS

        f64 = torch.float64
        torch.set_num_threads(1)  # tiny tensors: thread hand-offs would cost more than they save
        schedule = schedules.cosine()
        LEVEL = "quick" if SIZE == "small" else "default"
        """
    ),
    md(
        r"""
        ## 1. The problem

        `gmm-2d-diag`: a three-component mixture in 2-D. The second-order MR Sampler (ODE, data
        form) with the exact data oracle at 5 and 10 network calls, against the reference PF-ODE
        trajectories from the same starting points:
        """
    ),
    code(
        r"""
        oracle = oracles.builtin_problem("gmm-2d-diag", schedule)
        generator = torch.Generator().manual_seed(0)
        starts = 12
        mu = torch.zeros(starts, oracle.dim, dtype=f64)
        lam_first, lam_last = -2.5, 3.0
        t_first = float(schedule.t_of_lam(torch.tensor(lam_first, dtype=f64)))
        t_last = float(schedule.t_of_lam(torch.tensor(lam_last, dtype=f64)))
        x_start = oracle.sample_marginal(mu, t_first, generator=generator)

        fig, ax = plt.subplots(figsize=(6.5, 6))
        clean = oracle.sample_x0(torch.zeros(2000, oracle.dim, dtype=f64), generator=generator)
        ax.scatter(*clean.T, s=2, color="0.75", label="$x_0$ samples")
        times = schedule.t_of_lam(torch.linspace(lam_first, lam_last, 80, dtype=f64))
        path = references.pf_ode_reference_times(
            oracle, schedule, x_start, mu, t_first, times[1:], dense=True
        )
        path = torch.cat([x_start[None], path.xs])
        for i in range(starts):
            label = "reference PF-ODE" if i == 0 else None
            ax.plot(path[:, i, 0], path[:, i, 1], color="k", lw=0.8, label=label)
        for steps, color in ((5, "C3"), (10, "C0")):
            sampler = MRSampler(schedule, "ode", 2, "data", "data", t_start=t_first, t_end=t_last)
            result = sampler.sample(
                oracle.model("data"), mu, steps=steps, x_T=x_start, return_trajectory=True
            )
            trajectory = torch.stack(result.trajectory)
            for i in range(starts):
                label = f"mrs-ode-2-data, {result.nfe} NFE" if i == 0 else None
                ax.plot(*trajectory[:, i].T, "o-", color=color, ms=3, lw=0.6, label=label)
        title = rf"PF-ODE from $\lambda = {lam_first}$ to ${lam_last}$ ($\mu = 0$)"
        ax.set(title=title, aspect="equal")
        ax.legend(fontsize=8)
        fig.tight_layout()
        """
    ),
    md(
        r"""
        The reference is checked first: on a single Gaussian the PF-ODE flow map is closed form
        (`oracles.gaussian_flow`), and the scipy reference must agree with it far below any
        sampler error measured here.
        """
    ),
    code(
        r"""
        single = oracles.gauss_1d(schedule)
        mu_single = torch.zeros(8, 1, dtype=f64)
        x_single = single.sample_marginal(mu_single, t_first, generator=generator)
        offset, covariance = single.offsets[0], single.covariances[0]
        ends = (t_first, t_last)
        closed = oracles.gaussian_flow(schedule, x_single, *ends, mu_single, offset, covariance)
        scipy_end = references.pf_ode_reference(single, schedule, x_single, mu_single, *ends).x
        reference_error = float((scipy_end - closed).abs().max())
        display(Markdown(f"max |scipy reference − closed-form flow| = {reference_error:.1e}"))
        assert reference_error <= references.REFERENCE_TOLERANCE
        """
    ),
    md(
        r"""
        ## 2. The verification

        `verify.run_verification` is what `mrs-numerics verify` runs (cosine schedule,
        `gmm-2d-diag`):
        """
    ),
    code(
        r"""
        results, conversions = verify.run_verification(LEVEL)
        rows = []
        for r in results:
            rows.append(
                [
                    f"`{r.solver}`",
                    r.order_kind,
                    r.run,
                    f"{r.declared_order:g}",
                    f"{r.observed_order:.2f}",
                    "pass" if r.passed else "**FAIL**",
                    f"{min(r.nfe)}–{max(r.nfe)}",
                ]
            )
        table(["solver", "order", "run", "declared", "observed", "verdict", "NFE"], rows)
        failed = [f"{r.solver} {r.order_kind} {r.run}" for r in results if not r.passed]
        summary = f"level `{LEVEL}`: {len(results) - len(failed)} of {len(results)} orders pass"
        display(Markdown(summary + (f"; failing: {', '.join(failed)}" if failed else "")))
        if LEVEL != "quick":
            assert not failed, failed
        """
    ),
    md(
        r"""
        The same results with one line per solver: declared order (observed order).
        """
    ),
    code(
        r"""
        columns = [("global", "full"), ("global", "kernel"), ("strong", "full"), ("weak", "full")]
        by_key = {(r.solver, r.order_kind, r.run): r for r in results}
        rows = []
        for solver_id, info in SOLVERS.items():
            cells = []
            for kind, run in columns:
                r = by_key.get((solver_id, kind, run))
                if r is None:
                    cells.append("—")
                else:
                    cells.append(f"{r.declared_order:g} ({r.observed_order:.2f})")
            rows.append([f"`{solver_id}`", info.nfe_per_step, *cells])
        header = ["solver", "calls / step", "ODE global (full)", "ODE global (kernel)"]
        table([*header, "SDE strong", "SDE weak"], rows)
        """
    ),
    md(
        r"""
        ## 3. Log-log plots

        Error against the largest $\lambda$-step; dotted lines have the declared slope through
        each solver's coarsest point, and filled markers are the points of the fit window.
        """
    ),
    code(
        r"""
        families = [
            ("global", "ODE global error"),
            ("strong", "SDE strong error"),
            ("weak", "SDE weak error"),
        ]
        fig, axes = plt.subplots(1, 3, figsize=(16, 5))
        for ax, (kind, title) in zip(axes, families, strict=True):
            ax.set_prop_cycle(color=plt.cm.tab20.colors)
            for r in (r for r in results if r.order_kind == kind):
                h_max, errors = np.array(r.h_max), np.abs(np.array(r.errors))
                style = "-" if r.run == "full" else "--"
                label = f"{r.solver} [{r.run}] {r.observed_order:.2f}"
                (line,) = ax.loglog(h_max, errors, style, lw=1, label=label)
                ax.loglog(h_max[r.window], errors[r.window], "o", ms=4, color=line.get_color())
                slope = convergence.log_slope_reference(h_max, errors[0], r.declared_order)
                ax.loglog(h_max, slope, ":", lw=0.8, color=line.get_color())
            ax.set(xlabel=r"largest $\lambda$-step $h_{\max}$", ylabel="error", title=title)
            ax.grid(True, which="both", alpha=0.3)
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.legend(fontsize=6.5, ncol=2 if kind == "global" else 1)
        fig.tight_layout()
        """
    ),
    md(
        r"""
        ## 4. What a network call buys

        The same ODE errors against the number of network calls (NFE includes the start
        procedure's extra call of the third-order sampler):
        """
    ),
    code(
        r"""
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.set_prop_cycle(color=plt.cm.tab10.colors)
        for r in results:
            if r.order_kind == "global" and r.run == "full":
                ax.loglog(r.nfe, np.abs(r.errors), "o-", ms=3, lw=1, label=r.solver)
        ax.set(xlabel="NFE", ylabel="global error", title="ODE solvers: error vs network calls")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        """
    ),
    md(
        r"""
        ## 5. Model parameterisations

        Every solver fed a noise, velocity or score oracle must reproduce its data-oracle run to
        round-off: the conversions with $\mu$ (notebook 01's shift) are exact.
        """
    ),
    code(
        r"""
        worst = {}
        for row in conversions:
            key = row["model_prediction"]
            worst[key] = max(worst.get(key, 0.0), row["max_difference"])
        tolerance = f"{verify.CONVERSION_TOLERANCE:g}"
        table(
            ["model prediction", "largest difference from the data-oracle run", "tolerance"],
            [[key, f"{value:.1e}", tolerance] for key, value in worst.items()],
        )
        assert all(row["passed"] for row in conversions)
        """
    ),
]


NB05 = [
    md(
        rf"""
        # 05 · Real models: few-step restoration, quality and fidelity against NFE

        The package ships small MR restoration networks (`mrs-numerics models`), trained by
        `mrs-numerics train` on photos bundled with scikit-image and matplotlib; the photos
        `coffee` and `grace_hopper` are held out. This notebook restores held-out crops with the
        MR Sampler and the baselines at a few network evaluations (NFE), measures quality and
        **solver fidelity** against NFE with `mrs_numerics.quality` (what
        `mrs-numerics benchmark quality` runs), and measures the ODE orders on the PF-ODE that a
        real network drives (`mrs-numerics verify --problem real`).

        {SIZE_NOTE}
        """
    ),
    code(SETUP),
    code(
        r"""
        import tempfile
        from pathlib import Path

        import matplotlib.pyplot as plt
        import torch
        from IPython.display import Image

        from mrs_numerics import quality, verify
        from mrs_numerics.degradations import degrade
        from mrs_numerics.images import HELDOUT_PHOTOS, center_crop, load_photo, psnr
        from mrs_numerics.models.registry import available_models
        from mrs_numerics.restoration import nfe_for_steps, restore_shipped, steps_for_nfe

        torch.set_num_threads(1)
        CROP = 32 if SIZE == "small" else 128
        OUT = Path(tempfile.mkdtemp(prefix="mrs-notebook-05-"))

        models = available_models()
        rows = []
        for name, info in sorted(models.items()):
            images = info.heldout["images"].values()
            before = sum(r["input_psnr"] for r in images) / len(images)
            after = sum(r["restored_psnr"] for r in images) / len(images)
            scale = info.config.get("time_scale", 1000.0)
            rows.append(
                [
                    f"`{name}`",
                    info.task,
                    info.prediction,
                    f"{scale:g}",
                    info.iterations,
                    info.device,
                    f"{before:.1f} → {after:.1f}",
                ]
            )
        header = ["network", "task", "prediction", "time scale", "iterations", "device"]
        table([*header, "held-out PSNR, 100-NFE posterior (dB)"], rows)
        assert models, "no shipped networks"
        """
    ),
    md(
        r"""
        ## 1. Few-step restorations side by side

        One held-out crop per task, degraded once; each column restores it with the task's
        shipped network (`restore_shipped`: data-prediction networks first) at the NFE in its
        title: the second-order MR Sampler ODE and SDE (data form) at 5, 10 and 20 NFE, and the
        IR-SDE posterior sampler at 20 and 100 NFE. PSNR to the ground truth in each title.
        """
    ),
    code(
        r"""
        COLUMNS = [
            ("mrs-ode-2-data", 5),
            ("mrs-ode-2-data", 10),
            ("mrs-ode-2-data", 20),
            ("mrs-sde-2-data", 10),
            ("mrs-sde-2-data", 20),
            ("posterior", 20),
            ("posterior", 100),
        ]
        tasks = sorted({info.task for info in models.values()})
        size = (2.0 * (len(COLUMNS) + 2), 2.6 * len(tasks))
        fig, axes = plt.subplots(len(tasks), len(COLUMNS) + 2, figsize=size, squeeze=False)
        for row, task in enumerate(tasks):
            clean = center_crop(load_photo(HELDOUT_PHOTOS[row % 2]), CROP)
            degraded = degrade(task, clean, torch.Generator().manual_seed(row))
            panels = [("degraded", degraded.clamp(0, 1))]
            for sampler, nfe in COLUMNS:
                restored = restore_shipped(degraded, task=task, sampler=sampler, nfe=nfe, seed=0)
                used = nfe_for_steps(sampler, steps_for_nfe(sampler, nfe))
                panels.append((f"{sampler}\n{used} NFE", restored))
            panels.append(("ground truth", clean))
            for col, (title, image) in enumerate(panels):
                ax = axes[row, col]
                ax.imshow(image.permute(1, 2, 0).numpy())
                score = "" if title == "ground truth" else f"\n{psnr(image, clean):.1f} dB"
                ax.set_title(title + score, fontsize=7)
                ax.set_xticks([]), ax.set_yticks([])
            axes[row, 0].set_ylabel(task)
        fig.tight_layout()
        """
    ),
    md(
        r"""
        ## 2. Quality and fidelity against NFE

        PSNR to the ground truth is not a fair judge of few-step sampling: a smoother few-step
        output can score higher than the converged one. **Solver fidelity** asks how well a
        sampler solves its own equation: the PSNR between its N-step output and the converged
        solution from the same start x_T, and for SDE samplers the same Brownian path
        (`mrs_numerics.noise.CoupledBrownian`). One PF-ODE reference serves every ODE sampler,
        one fine coupled SDE solution every SDE sampler (see the `mrs_numerics.quality` module
        docstring for the method and the references' own accuracy).
        """
    ),
    code(
        r"""
        from mrs_numerics import schedules
        from mrs_numerics.models.registry import load_model

        MODEL = "denoise-data"
        if SIZE == "small":
            options = quality.QualityOptions(
                samplers=("mrs-ode-2-data", "mrs-ode-3-data", "mrs-sde-2-data", "posterior"),
                nfes=(3, 5, 10, 20),
                seeds=1,
                crop=24,
                photos=HELDOUT_PHOTOS[:1],
                reference_steps=200,
            )
        else:
            options = quality.QualityOptions.quick()
        net, info = load_model(MODEL)
        schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
        result = quality.run_quality(net, info.prediction, schedule, options, model_name=MODEL)
        display(Markdown(quality.markdown_table(result)))
        quality.plot_quality(result, OUT / "quality.png")
        display(Image(filename=str(OUT / "quality.png")))
        """
    ),
    md(
        r"""
        The fewest NFE at which each sampler reaches 40 dB fidelity (— : not within the budgets
        run). Fidelity must rise with NFE for every sampler that did not blow up:
        """
    ),
    code(
        r"""
        reached = [[f"`{s}`", n or "—"] for s, n in result.nfe_to_fidelity.items()]
        table(["sampler", "NFE to 40 dB"], reached)
        for sampler in options.samplers:
            ok = [r for r in result.rows if r.sampler == sampler and r.status == "ok"]
            values = [r.fidelity_db for r in ok]
            assert values and values[-1] > values[0], (sampler, values)
        """
    ),
    md(
        r"""
        ## 3. Convergence orders on a real network

        The PF-ODE driven by the shipped `denoise-data` network, in float64 on a 16² held-out
        crop, against one scipy DOP853 reference: the global error of every MR Sampler ODE
        solver against the largest λ-step (`mrs_numerics.real_network`). The network embeds
        time over [0, 10], so the right-hand side is smooth in t and the declared orders show.
        """
    ),
    code(
        r"""
        def _verdict(result):
            return "pass" if result.passed else "**FAIL**"


        LEVEL = "quick" if SIZE == "small" else "default"
        chosen = ["mrs-ode-1-data", "mrs-ode-2-data", "mrs-ode-3-data"] if SIZE == "small" else None
        results, _ = verify.run_verification(LEVEL, problems=("real",), solvers=chosen)
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for r in results:
            label = f"{r.solver}: {r.observed_order:.2f}"
            (line,) = ax.loglog(r.h_max, r.errors, "o-", ms=3, label=label)
            slope = [r.errors[0] * (h / r.h_max[0]) ** r.declared_order for h in r.h_max]
            ax.loglog(r.h_max, slope, ":", color=line.get_color(), lw=0.8)
        ax.set(
            xlabel=r"largest $\lambda$-step",
            ylabel="max error at the end",
            title=f"{results[0].problem} (dotted: declared order)",
        )
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        verdicts = [
            [f"`{r.solver}`", f"{r.declared_order:g}", f"{r.observed_order:.2f}", _verdict(r)]
            for r in results
        ]
        table(["solver", "declared", "observed", "verdict"], verdicts)
        assert all(r.passed for r in results)
        """
    ),
]


NOTEBOOKS = {
    "01_forward_process.ipynb": NB01,
    "02_semi_analytical_solutions.ipynb": NB02,
    "03_phi_coefficients_and_order_proofs.ipynb": NB03,
    "04_convergence_orders.ipynb": NB04,
    "05_real_models.ipynb": NB05,
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A notebook with the given cells, deterministic cell ids and no outputs."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for number, (kind, source) in enumerate(cells):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = make(source)
        cell.id = f"cell-{number:02d}"
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    return notebook


def render(cells: list[tuple[str, str]]) -> str:
    """The stored text of a notebook."""
    return nbformat.writes(build(cells)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = HERE / name
        text = render(cells)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        sys.stderr.write(f"out of date (run python notebooks/_build.py): {', '.join(stale)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
