"""Prints schedule modules (built-in, IR-SDE tables, user θ(t)) from the schedule derivations.

[`render_builtin_schedules`][derivations.schedule_codegen.render_builtin_schedules] gives the files
under ``mrs_numerics/_generated/``;
[`render_user_schedule`][derivations.schedule_codegen.render_user_schedule] the two files (torch,
numpy) of a user's θ(t), validated first.

Every generated schedule module has the same interface, each function taking keyword-only
parameters with the schedule's defaults (``max_sigma`` always among them)::

    theta(t), Theta(t), alpha(t), sigma(t), lam(t), g(t), dlam_dt(t),
    Theta_of_lam(lam), t_of_Theta(Theta), t_of_lam(lam)
    T_MIN, T_MAX, DEFAULTS, CLOSED_FORM_THETA_INTEGRAL, CLOSED_FORM_INVERSE, THETA_QUADRATURE_BELOW

Torch's functions reject Python floats, so every subexpression that depends on parameters only
is lifted out of the printed array expression and computed first with ``math``.
"""

from __future__ import annotations

import builtins
import keyword
import math
import textwrap
import tokenize
import warnings
from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy import integrate
from sympy.core.function import AppliedUndef
from sympy.parsing.sympy_parser import convert_xor, parse_expr, standard_transformations

from derivations import irsde, schedules
from derivations.emit import function, header
from derivations.printers import PRINTERS, math_code

BACKENDS = ("torch", "numpy")
_SOURCE = "derivations.schedules"


# ---------------------------------------------------------------------------------------------
# Printing expressions with parameter-only parts lifted out
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Printed:
    """Assignment lines for lifted scalar constants, and the array expression's code."""

    lines: tuple[str, ...]
    code: str


def lift_constants(
    expr: sp.Expr, arrays: set[sp.Symbol], first: int = 0
) -> tuple[sp.Expr, list[tuple]]:
    """Replace maximal subexpressions free of ``arrays`` by symbols k{first}, …; return both.

    Bare symbols and numbers stay in place (Python arithmetic mixes them with arrays); sums and
    products contribute their array-free factors as one constant.
    """
    lifted: list[tuple[sp.Symbol, sp.Expr]] = []

    def constant(value: sp.Expr) -> sp.Expr:
        if value.is_Atom:
            return value
        symbol = sp.Symbol(f"k{first + len(lifted)}")
        lifted.append((symbol, value))
        return symbol

    def visit(node: sp.Expr) -> sp.Expr:
        if not node.free_symbols & arrays:
            return constant(node)
        if node.is_Atom:
            return node
        if node.is_Add or node.is_Mul:
            fixed = [a for a in node.args if not a.free_symbols & arrays]
            moving = [visit(a) for a in node.args if a.free_symbols & arrays]
            if fixed:
                moving.insert(0, constant(node.func(*fixed)))
            return node.func(*moving, evaluate=False)
        return node.func(*[visit(a) for a in node.args])

    return visit(expr), lifted


def printed(
    expr: sp.Expr, backend: str, arrays: set[sp.Symbol], like: str, first: int = 0
) -> Printed:
    """Code for ``expr``: lifted constants (``math``) then the array expression (``backend``).

    An expression free of arrays is broadcast to the shape of the array named ``like``; lifted
    constants are numbered from ``first``.
    """
    body, lifted = lift_constants(expr, arrays, first)
    lines = tuple(f"{symbol} = {math_code(value)}" for symbol, value in lifted)
    if not body.free_symbols & arrays:
        return Printed(lines, f"{backend}.full_like({like}, {math_code(body)})")
    return Printed(lines, PRINTERS[backend](body))


def _function(name: str, signature: str, doc: str, lines: list[str], returns: str) -> str:
    return function(name, [signature], doc, lines, returns)


def _as_float64(name: str, backend: str) -> str:
    if backend == "torch":
        return f"{name} = torch.as_tensor({name}, dtype=torch.float64)"
    return f"{name} = numpy.asarray({name}, dtype=numpy.float64)"


def _assemble(top: str, backend: str, body: str) -> str:
    """Banner, the imports ``body`` needs, then ``body`` (isort's blank-line rules)."""
    imports = ("import math\n\n" if "math." in body else "") + f"import {backend}\n"
    gap = "\n\n" if body.startswith("def ") else "\n"
    return top + "\n" + imports + gap + body


# ---------------------------------------------------------------------------------------------
# Schedule modules
# ---------------------------------------------------------------------------------------------

_T = sp.Symbol("t")
_TH = sp.Symbol("Th")
_THETA_T = sp.Symbol("theta_t")
_LAM = sp.Symbol("lam")


class _ScheduleWriter:
    """Writes one backend's module for a derived schedule."""

    def __init__(self, derived: schedules.DerivedSchedule, backend: str):
        self.derived = derived
        self.schedule = derived.schedule
        self.backend = backend
        self.renames = {
            schedules.t: _T,
            schedules.THETA_VALUE: _TH,
            schedules.RATE_VALUE: _THETA_T,
            schedules.LAM: _LAM,
        }
        self.renames.update({p.symbol: sp.Symbol(p.name) for p in self.schedule.parameters})
        self.renames.update({s: sp.Symbol(str(s)) for s, _ in self.schedule.constants})

    @property
    def signature_tail(self) -> str:
        return ", ".join(f"{p.name}={float(p.default)!r}" for p in self.schedule.parameters)

    @property
    def forward(self) -> str:
        return ", ".join(f"{p.name}={p.name}" for p in self.schedule.parameters)

    def signature(self, argument: str) -> str:
        return f"{argument}, *, {self.signature_tail}"

    def call(self, function: str, argument: str) -> str:
        return f"{function}({argument}, {self.forward})"

    def _expression(self, expr: sp.Expr, arrays: set[sp.Symbol], like: str) -> Printed:
        used = self._constant_lines(expr)
        result = printed(expr.xreplace(self.renames), self.backend, arrays, like)
        return Printed(tuple(used) + result.lines, result.code)

    def _constant_lines(self, expr: sp.Expr) -> list[str]:
        """Definitions of the schedule constants (e.g. the scale c) that ``expr`` uses."""
        needed = expr.free_symbols
        lines = []
        for symbol, definition in reversed(self.schedule.constants):
            if symbol in needed:
                needed |= definition.free_symbols
        for symbol, definition in self.schedule.constants:
            if symbol in needed:
                lines.append(f"{symbol} = {math_code(definition.xreplace(self.renames))}")
        return lines

    def public(self, name, argument, doc, expr, arrays, prelude=()) -> str:
        result = self._expression(expr, arrays, argument)
        lines = [*prelude, *result.lines]
        return _function(name, self.signature(argument), doc, lines, result.code)

    def theta(self) -> str:
        return self.public(
            "theta",
            "t",
            "θ(t), the mean-reversion rate.",
            self.schedule.theta,
            {_T},
            prelude=[_as_float64("t", self.backend)],
        )

    def Theta(self) -> str:
        derived, b = self.derived, self.backend
        doc = "Θ(t) = ∫₀ᵗ θ(τ) dτ"
        if derived.Theta is None:
            doc += " by composite Gauss–Legendre quadrature (no closed form)."
            return _function(
                "Theta", self.signature("t"), doc, [], self.call("_Theta_quadrature", "t")
            )
        result = self._expression(derived.Theta, {_T}, "t")
        lines = [_as_float64("t", b), *result.lines]
        if derived.quadrature_below == 0:
            return _function(
                "Theta", self.signature("t"), doc + " (closed form).", lines, result.code
            )
        doc += ": closed form for t ≥ THETA_QUADRATURE_BELOW, quadrature below (cancellation)."
        lines.append(f"closed = {result.code}")
        quadrature = self.call("_Theta_quadrature", "t")
        returns = f"{b}.where(t < THETA_QUADRATURE_BELOW, {quadrature}, closed)"
        return _function("Theta", self.signature("t"), doc, lines, returns)

    def Theta_quadrature(self) -> str:
        b = self.backend
        lines = [_as_float64("t", b)]
        if b == "torch":
            lines += [
                "nodes = torch.tensor(_QUAD_NODES, dtype=torch.float64, device=t.device)",
                "weights = torch.tensor(_QUAD_WEIGHTS, dtype=torch.float64, device=t.device)",
            ]
            total = "torch.sum(values * weights, dim=-1)"
        else:
            lines += [
                "nodes = numpy.asarray(_QUAD_NODES)",
                "weights = numpy.asarray(_QUAD_WEIGHTS)",
            ]
            total = "numpy.sum(values * weights, axis=-1)"
        lines.append(f"values = {self.call('theta', 't[..., None] * nodes')}")
        doc = "∫₀ᵗ θ by _PANELS panels of the GAUSS_LEGENDRE_NODES-point Gauss–Legendre rule."
        return _function("_Theta_quadrature", self.signature("t"), doc, lines, f"t * {total}")

    def of_Theta(self, name: str, doc: str, expr: sp.Expr) -> str:
        prelude = [f"Th = {self.call('Theta', 't')}"]
        return self.public(name, "t", doc, expr, {_TH}, prelude)

    def g(self) -> str:
        prelude = [f"theta_t = {self.call('theta', 't')}"]
        doc = "g(t) = sqrt(2 Λ² θ(t)), the diffusion coefficient (MR constraint)."
        return self.public(
            "g", "t", doc, schedules.diffusion(schedules.RATE_VALUE), {_THETA_T}, prelude
        )

    def dlam_dt(self) -> str:
        prelude = [f"theta_t = {self.call('theta', 't')}", f"Th = {self.call('Theta', 't')}"]
        expr = schedules.log_snr_rate(schedules.RATE_VALUE, schedules.THETA_VALUE)
        doc = "dλ/dt = −θ Λ²/σ² = θ / expm1(−2Θ)."
        return self.public("dlam_dt", "t", doc, expr, {_THETA_T, _TH}, prelude)

    def Theta_of_lam(self) -> str:
        doc = "Θ(λ) = ½ log1p(e^{−2λ}/Λ²), the inverse of λ(Θ)."
        prelude = [_as_float64("lam", self.backend)]
        return self.public(
            "Theta_of_lam", "lam", doc, schedules.Theta_of_log_snr(), {_LAM}, prelude
        )

    def t_of_Theta(self) -> str:
        inverse = self.derived.inverse
        if inverse is not None:
            doc = "t(Θ), the inverse of Θ(t) in closed form."
            prelude = [_as_float64("Th", self.backend)]
            return self.public("t_of_Theta", "Th", doc, inverse, {_TH}, prelude)
        return self._numerical_inverse()

    def _numerical_inverse(self) -> str:
        b = self.backend
        clamp = "torch.clamp" if b == "torch" else "numpy.clip"
        stop = "bool(torch.all(done))" if b == "torch" else "numpy.all(done)"
        lines = [
            _as_float64("Th", b),
            f"Theta_end = {self.call('Theta', f'{b}.full_like(Th, T_MAX)')}",
            f"lo = {b}.zeros_like(Th)",
            f"hi = {b}.full_like(Th, T_MAX)",
            f"x = {clamp}(Th / Theta_end, 0.0, 1.0) * T_MAX",
            "outside = (Th <= 0.0) | (Th >= Theta_end)",
            "for _ in range(_INVERSE_MAX_ITER):",
            f"    residual = {self.call('Theta', 'x')} - Th",
            f"    lo = {b}.where(residual <= 0.0, x, lo)",
            f"    hi = {b}.where(residual > 0.0, x, hi)",
            f"    rate = {self.call('theta', 'x')}",
            f"    newton = x - residual / {b}.where(rate > 0.0, rate, 1.0)",
            "    accept = (rate > 0.0) & (newton >= lo) & (newton <= hi)",
            f"    step = {b}.where(accept, newton, 0.5 * (lo + hi)) - x",
            "    x = x + step",
            f"    done = ({b}.abs(step) <= _INVERSE_RTOL * x) | outside",
            f"    if {stop}:",
            "        break",
        ]
        returns = f"{b}.where(Th <= 0.0, 0.0, {b}.where(Th >= Theta_end, T_MAX, x))"
        doc = (
            "t(Θ) by safeguarded Newton iteration on [T_MIN, T_MAX] (no closed form).\n\n"
            "    Newton steps on Θ(x) − Θ = 0 are kept inside a bisection bracket (Θ increases),\n"
            "    and the iteration stops when every step is below _INVERSE_RTOL relative.\n"
            "    Θ outside [0, Θ(T_MAX)] maps to T_MIN or T_MAX.\n    "
        )
        return _function("t_of_Theta", self.signature("Th"), doc, lines, returns)

    def t_of_lam(self) -> str:
        doc = "t(λ) = t(Θ(λ))."
        returns = self.call("t_of_Theta", self.call("Theta_of_lam", "lam"))
        return _function("t_of_lam", self.signature("lam"), doc, [], returns)

    def constants_block(self) -> str:
        derived, schedule = self.derived, self.schedule
        defaults = ", ".join(f'"{p.name}": {float(p.default)!r}' for p in schedule.parameters)
        lines = [
            "T_MIN = 0.0",
            f"T_MAX = {float(schedule.t_max)!r}",
            f"DEFAULTS = {{{defaults}}}",
            f"CLOSED_FORM_THETA_INTEGRAL = {derived.Theta is not None}",
            f"CLOSED_FORM_INVERSE = {derived.inverse is not None}",
            f"THETA_QUADRATURE_BELOW = {derived.quadrature_below!r}",
        ]
        if derived.needs_quadrature:
            xs, ws = schedules.gauss_legendre_rule()
            lines += [
                f"GAUSS_LEGENDRE_NODES = {len(xs)}",
                f"_PANELS = {derived.panels}",
                f"_GL_X = ({', '.join(repr(float(x)) for x in xs)})",
                f"_GL_W = ({', '.join(repr(float(w)) for w in ws)})",
                "_QUAD_NODES = tuple(",
                "    (p + (1.0 + x) / 2.0) / _PANELS for p in range(_PANELS) for x in _GL_X",
                ")",
                "_QUAD_WEIGHTS = tuple(w / (2.0 * _PANELS) for _ in range(_PANELS) for w in _GL_W)",
            ]
        if derived.inverse is None:
            lines += ["_INVERSE_MAX_ITER = 200", "_INVERSE_RTOL = 1e-14"]
        return "\n".join(lines) + "\n"

    def functions(self) -> list[str]:
        derived = self.derived
        theta_symbol = schedules.THETA_VALUE
        parts = [self.theta(), self.Theta()]
        if derived.needs_quadrature:
            parts.append(self.Theta_quadrature())
        parts += [
            self.of_Theta("alpha", "α(t) = exp(−Θ(t)).", schedules.alpha(theta_symbol)),
            self.of_Theta(
                "sigma",
                "σ(t) = Λ sqrt(1 − α²) = Λ sqrt(−expm1(−2Θ)).",
                schedules.sigma(theta_symbol),
            ),
            self.of_Theta(
                "lam",
                "λ(t) = log α − log σ = −Θ − log Λ − ½ log(−expm1(−2Θ)).",
                schedules.log_snr(theta_symbol),
            ),
            self.g(),
            self.dlam_dt(),
            self.Theta_of_lam(),
            self.t_of_Theta(),
            self.t_of_lam(),
        ]
        return parts

    def numerics_note(self) -> str:
        derived = self.derived
        notes = [f"Θ(t): {derived.Theta_note}.", f"t(Θ): {derived.inverse_note}."]
        if derived.needs_quadrature:
            span = "[0, t]" if derived.Theta is None else "[0, t] for t < THETA_QUADRATURE_BELOW"
            notes.append(
                f"Quadrature: Θ(t) = ∫₀ᵗ θ by {derived.panels} equal panel(s) of the "
                f"{schedules.GAUSS_LEGENDRE_NODES}-point Gauss–Legendre rule on {span}, checked"
                " at render time against adaptive quadrature to 1e-15 relative (plus float64"
                " round-off)."
            )
        if derived.quadrature_below:
            notes.append(
                "Below THETA_QUADRATURE_BELOW the closed form cancels (its rounding-error bound,"
                f" at the default parameters, exceeds {schedules.ROUNDING_TOLERANCE:g})."
            )
        if derived.inverse is None:
            notes.append(
                "Inverse: safeguarded Newton on [T_MIN, T_MAX] (vectorised; bisection whenever"
                " a Newton step leaves the bracket), to ~1e-14 relative."
            )
        notes.append("All functions compute in float64 and accept arrays of any shape.")
        return "\n".join(notes)

    def module(self, top: str) -> str:
        parts = [self.constants_block(), *self.functions()]
        body = "\n\n".join(parts)
        return _assemble(top, self.backend, body)


def _wrap(text: str) -> str:
    return "\n".join(textwrap.fill(p, 96) for p in text.split("\n"))


def render_schedule_module(derived: schedules.DerivedSchedule, backend: str, top: str) -> str:
    """Source of one schedule module; ``top`` is its docstring and banner."""
    return _ScheduleWriter(derived, backend).module(top)


def _builtin_top(derived: schedules.DerivedSchedule, backend: str) -> str:
    schedule = derived.schedule
    writer = _ScheduleWriter(derived, backend)
    summary = (
        f"Built-in continuous MR schedule ``{schedule.name}`` on t ∈ [0, 1] ({backend}).\n\n"
        + _wrap(schedule.description)
        + "\n\n"
        + _wrap(writer.numerics_note())
    )
    return header(_SOURCE, summary)


# ---------------------------------------------------------------------------------------------
# IR-SDE tables
# ---------------------------------------------------------------------------------------------

_I = sp.Symbol("i")
_S = sp.Symbol("S")
_DT = sp.Symbol("dt")
_S_LAST = sp.Symbol("S_last")


def _irsde_module(backend: str) -> str:
    b = backend
    renames = {
        irsde.i: _I,
        irsde.T: sp.Symbol("T"),
        schedules.EPS: sp.Symbol("eps"),
        schedules.LAMBDA: sp.Symbol("max_sigma"),
    }
    parts = []
    for kind, maker in irsde.THETA_TABLES.items():
        result = printed(maker().xreplace(renames), b, {_I}, "i")
        doc = f"θ_i of IR-SDE's {kind} schedule, i = 0 … T (see the module docstring)."
        parts.append(_function(f"_theta_{kind}", "i, T", doc, list(result.lines), result.code))
    table = ", ".join(f'"{kind}": _theta_{kind}' for kind in irsde.THETA_TABLES)
    parts.append(f"THETA_TABLES = {{{table}}}\n")

    S, dt = sp.Symbol("S_", positive=True), sp.Symbol("dt_", positive=True)
    quantities = {S: _S, dt: _DT}
    safe = {**renames, S: sp.Symbol("S_safe"), dt: _DT}
    blocks = [
        (irsde.time_step(_S_LAST).xreplace(renames), {_S_LAST}),
        (irsde.table_alpha(S, dt).xreplace({**renames, **quantities}), {_S, _DT}),
        (irsde.table_sigma(S, dt).xreplace({**renames, **quantities}), {_S, _DT}),
        (irsde.table_log_snr(S, dt).xreplace(safe), {sp.Symbol("S_safe"), _DT}),
    ]
    codes = []
    for expr, arrays in blocks:
        codes.append(printed(expr, b, arrays, "S", first=sum(len(c.lines) for c in codes)))
    dt_code, alpha_code, sigma_code, lam_code = codes
    arange = (
        "torch.arange(T + 1, dtype=torch.float64)"
        if b == "torch"
        else "numpy.arange(T + 1, dtype=numpy.float64)"
    )
    cumsum = "torch.cumsum(theta, dim=0)" if b == "torch" else "numpy.cumsum(theta)"
    lines = [
        "if kind not in THETA_TABLES:",
        "    known = sorted(THETA_TABLES)",
        '    raise ValueError(f"unknown IR-SDE schedule {kind!r}; expected one of {known}")',
        "if int(T) != T or T < 1:",
        '    raise ValueError(f"T must be a positive integer, got {T!r}")',
        f"i = {arange}",
        "theta = THETA_TABLES[kind](i, T)",
        f"S = {cumsum}",
        "if theta0_offset:",
        "    S = S - theta[0]",
        "S_last = S[-1]",
        *dt_code.lines,
        f"dt = {dt_code.code}",
        *alpha_code.lines,
        f"alpha = {alpha_code.code}",
        *sigma_code.lines,
        f"sigma = {sigma_code.code}",
        "positive = S > 0.0",
        f"S_safe = {b}.where(positive, S, 1.0)",
        *lam_code.lines,
        f"lam = {b}.where(positive, {lam_code.code}, math.inf)",
    ]
    returns = '{"theta": theta, "S": S, "dt": dt, "alpha": alpha, "sigma": sigma, "lam": lam}'
    doc = (
        "IR-SDE's discrete schedule: float64 arrays of length T + 1 (``dt`` 0-dimensional).\n\n"
        "    Returns a dict with ``theta`` (θ_i), ``S`` (cumulative S_i), ``dt``, ``alpha``,\n"
        "    ``sigma`` and ``lam`` (+inf where σ = 0). ``theta0_offset=True`` is the\n"
        "    IR-SDE/DA-CLIP training convention S_i = Σ_{j≤i} θ_j − θ₀ (α₀ = 1); ``False`` the\n"
        "    official MRS code's S_i = Σ_{j≤i} θ_j (finite λ₀).\n    "
    )
    max_sigma, eps = float(schedules.DEFAULT_MAX_SIGMA), float(schedules.DEFAULT_EPS)
    signature = f'kind="cosine", T=100, max_sigma={max_sigma!r}, eps={eps!r}, theta0_offset=True'
    parts.append(_function("irsde_tables", signature, doc, lines, returns))
    body = "\n\n".join(parts)
    summary = (
        f"IR-SDE's discrete schedule tables (cosine, linear, constant), {backend} backend.\n\n"
        + (irsde.__doc__ or "").split("\n\n", 1)[1].strip()
        + "\n\nThe cosine θ_i is printed in the equivalent form without cancellation near i = 0"
        " (``derivations.irsde.cosine_theta``); the cumulative sum is ``cumsum``."
    )
    top = header("derivations.irsde", summary)
    return _assemble(top, b, body)


# ---------------------------------------------------------------------------------------------
# Built-in files
# ---------------------------------------------------------------------------------------------


def _package_init(backend: str) -> str:
    names = list(schedules.BUILTIN_SCHEDULES)
    summary = (
        f"Built-in continuous MR schedules, {backend} backend: ``SCHEDULES[name]`` is the module."
    )
    entries = ", ".join(f'"{name}": {name}' for name in names)
    return (
        header(_SOURCE, summary)
        + f"\nfrom . import {', '.join(sorted(names))}\n\n"
        + f"SCHEDULES = {{{entries}}}\n"
    )


def render_builtin_schedules() -> dict[str, str]:
    """``{path relative to mrs_numerics/_generated/: source}`` of the built-in schedule modules."""
    files = {}
    for backend in BACKENDS:
        files[f"schedules_{backend}/__init__.py"] = _package_init(backend)
        for name, make in schedules.BUILTIN_SCHEDULES.items():
            derived = schedules.derive_cached(make())
            top = _builtin_top(derived, backend)
            files[f"schedules_{backend}/{name}.py"] = render_schedule_module(derived, backend, top)
        files[f"irsde_{backend}.py"] = _irsde_module(backend)
    return files


# ---------------------------------------------------------------------------------------------
# User schedules
# ---------------------------------------------------------------------------------------------

_ALLOWED = "only the symbol t, numbers, SymPy constants (pi, E) and functions (exp, sin, sqrt, …)"


def parse_theta(source: str) -> sp.Expr:
    """θ(t) from a string, with ``t`` the only free symbol (ValueError otherwise)."""
    namespace = {name: getattr(sp, name) for name in dir(sp) if not name.startswith("_")}
    namespace["__builtins__"] = {}
    try:
        expr = parse_expr(
            source,
            local_dict={"t": schedules.t},
            global_dict=namespace,
            transformations=(*standard_transformations, convert_xor),
        )
    except (
        SyntaxError,
        tokenize.TokenError,
        TypeError,
        NameError,
        AttributeError,
        ValueError,
        sp.SympifyError,
    ) as error:
        raise ValueError(f"cannot parse θ(t) = {source!r}: {error}. Use {_ALLOWED}.") from None
    if not isinstance(expr, sp.Expr):
        raise ValueError(f"θ(t) = {source!r} is not an expression (got {type(expr).__name__})")
    unknown_functions = sorted({str(f.func) for f in expr.atoms(AppliedUndef)})
    if unknown_functions:
        raise ValueError(
            f"unknown function(s) {', '.join(unknown_functions)} in θ(t) = {source!r}:"
            f" use {_ALLOWED}"
        )
    unknown = sorted(str(s) for s in expr.free_symbols - {schedules.t})
    if unknown:
        raise ValueError(
            f"unknown symbol(s) {', '.join(unknown)} in θ(t) = {source!r}: use {_ALLOWED}"
        )
    return expr


def check_name(name: str) -> str:
    """A user schedule name: an identifier, not a keyword, Python built-in or built-in schedule."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"schedule name {name!r} must be a Python identifier (letters, digits, _)")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise ValueError(f"schedule name {name!r} is a Python keyword; choose another")
    if hasattr(builtins, name):
        raise ValueError(f"schedule name {name!r} would shadow a Python built-in; choose another")
    if name in schedules.BUILTIN_SCHEDULES:
        raise ValueError(f"schedule name {name!r} is a built-in schedule; choose another")
    if name.startswith("_"):
        raise ValueError(f"schedule name {name!r} must not start with an underscore")
    return name


def check_t_max(t_max: float) -> float:
    """t_max as a float; ValueError unless finite and positive."""
    value = float(t_max)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"t_max must be a finite number > 0, got {t_max!r}")
    return value


def check_positive(theta: sp.Expr, t_max: float, source: str) -> None:
    """θ > 0 on (0, t_max] and θ(0) ≥ 0: symbolically where SymPy decides, then on a grid.

    θ(0) = 0 is allowed (the built-in cosine has it): Θ still increases strictly.
    """
    where = f"θ(t) = {source!r}"
    if theta.is_nonpositive:
        raise ValueError(f"{where} is ≤ 0 for every t > 0; θ must be > 0 on (0, t_max]")
    at_zero = theta.subs(schedules.t, 0)
    if not at_zero.is_finite:
        try:
            at_zero = sp.limit(theta, schedules.t, 0, "+")
        except (NotImplementedError, ValueError):
            at_zero = sp.nan
    if at_zero.is_negative:
        raise ValueError(f"{where} is negative at t = 0 (θ(0) = {at_zero}); θ must be ≥ 0 there")
    if at_zero.is_finite is False or at_zero.has(sp.I):
        raise ValueError(f"{where} is not a finite real number at t = 0 (θ(0) = {at_zero})")
    grid = np.unique(
        np.concatenate(
            [t_max * 10.0 ** -np.arange(12.0, 0.0, -1.0), np.linspace(0.0, t_max, 10001)[1:]]
        )
    )
    function = sp.lambdify(schedules.t, theta, modules="numpy")
    with np.errstate(all="ignore"):
        values = np.broadcast_to(np.asarray(function(grid)), grid.shape)
    if np.iscomplexobj(values):
        imaginary = np.abs(values.imag) > 0
        if imaginary.any():
            point = grid[np.argmax(imaginary)]
            raise ValueError(
                f"{where} is not real at t = {point:.6g}; θ must be real on [0, t_max]"
            )
        values = values.real
    values = values.astype(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        point = grid[np.argmax(bad)]
        raise ValueError(
            f"{where} is not a finite real number at t = {point:.6g}; θ must be finite and real"
            " on [0, t_max]"
        )
    bad = values <= 0
    if bad.any():
        first, last = grid[bad][0], grid[bad][-1]
        worst = int(np.argmin(values))
        raise ValueError(
            f"{where} is ≤ 0 for t in [{first:.6g}, {last:.6g}] (θ({grid[worst]:.6g}) ="
            f" {values[worst]:.6g}); θ must be > 0 on (0, t_max] = (0, {t_max:g}]"
        )
    reason = schedules.unprintable_reason(theta)
    if reason:
        raise ValueError(f"{where} cannot be turned into torch/numpy code: {reason}")


PRIOR_ALPHA_WARN = 0.02
"""A user schedule whose α(t_max) exceeds this warns: the samplers start from the prior
μ + σ(t_max)ξ, which leaves out the α(t_max)(x₀ − μ) the true marginal at t_max still holds."""
THETA_REACH_MAX = 50.0
"""Θ(t_max) above this is refused: α(t_max) = e^{−Θ} < 2e-22, the process is stationary long
before t_max, and λ(t_max) ≈ −Θ leaves float64's reach for t(λ) (Θ = 1e6 gives α = 0)."""
SIGMA_REACH_MIN = 0.01
"""σ(t_max)/Λ = sqrt(1 − α(t_max)²) at or below this is refused: the process hardly moves, and
the default grid (which ends where σ/Λ = 2e-3) has no room (θ = 1e-6 on [0, 1] gives 1.4e-3)."""


def check_reach(theta: sp.Expr, t_max: float, source: str) -> float:
    """Θ(t_max) = ∫₀^t_max θ, refused unless the schedule can be sampled (returns α(t_max)).

    Raises ValueError when Θ(t_max) > ``THETA_REACH_MAX`` or σ(t_max)/Λ ≤ ``SIGMA_REACH_MIN``;
    warns (``UserWarning``) when α(t_max) > ``PRIOR_ALPHA_WARN``, saying what it means for the
    prior.
    """
    where = f"θ(t) = {source!r} on [0, {t_max:g}]"
    function = sp.lambdify(schedules.t, theta, modules="numpy")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        reach = float(integrate.quad(lambda u: float(function(u)), 0.0, t_max, limit=400)[0])
    alpha_end = math.exp(-reach)
    if reach > THETA_REACH_MAX:
        raise ValueError(
            f"{where} gives Θ(t_max) = {reach:.6g}, so α(t_max) = e^(−Θ) = {alpha_end:.3g}: the "
            f"process is stationary long before t_max and t(λ) leaves float64's range. Keep "
            f"Θ(t_max) ≤ {THETA_REACH_MAX:g}: divide θ by {reach / 5:.3g} (Θ(t_max) = 5, "
            f"α(t_max) = 0.0067) or shorten t_max"
        )
    sigma_ratio = math.sqrt(max(0.0, -math.expm1(-2.0 * reach)))
    if sigma_ratio <= SIGMA_REACH_MIN:
        raise ValueError(
            f"{where} gives Θ(t_max) = {reach:.3g}: α(t_max) = {alpha_end:.6g} and σ(t_max)/Λ "
            f"= {sigma_ratio:.3g} ≤ {SIGMA_REACH_MIN:g}, the process hardly moves from the clean "
            f"image and no sampling grid fits. Scale θ up so that Θ(t_max) ≈ 5 (multiply θ by "
            f"{5 / max(reach, 1e-300):.3g})"
        )
    if alpha_end > PRIOR_ALPHA_WARN:
        warnings.warn(
            f"{where} gives α(t_max) = {alpha_end:.3g} (Θ(t_max) = {reach:.3g}): the marginal "
            f"at t_max still holds {100 * alpha_end:.3g}% of the clean image, but the samplers "
            f"start from the prior μ + σ(t_max)ξ, which leaves it out, so every sample is "
            f"biased by about α(t_max)(x₀ − μ). Scale θ so that α(t_max) ≤ {PRIOR_ALPHA_WARN:g} "
            f"(Θ(t_max) ≥ {-math.log(PRIOR_ALPHA_WARN):.2g}; the built-in schedules have "
            "α(t_max) = 0.005)",
            UserWarning,
            stacklevel=3,
        )
    return alpha_end


_UNSUPPORTED = (sp.Piecewise, sp.Heaviside, sp.Min, sp.Max, sp.Abs, sp.sign, sp.floor, sp.ceiling)


def check_smooth(theta: sp.Expr, source: str) -> None:
    """Refuse piecewise or non-smooth θ: the closed forms and kernels assume a smooth θ."""
    used = sorted(
        {
            type(node).__name__
            for node in sp.preorder_traversal(theta)
            if isinstance(node, _UNSUPPORTED)
        }
    )
    if used:
        raise ValueError(
            f"θ(t) = {source!r} uses {', '.join(used)}: piecewise and non-smooth θ are not "
            "supported (Θ, t(λ) and the solvers' order assume a smooth θ). Approximate a switch "
            "from a to b at t0 smoothly, e.g. a + (b - a)/(1 + exp(-50*(t - t0)))"
        )


def user_schedule(theta_source: str, name: str, t_max: float = 1.0) -> schedules.Schedule:
    """The validated [`Schedule`][derivations.schedules.Schedule] of a user's θ(t).

    Checks: the name, t_max, θ parses, is smooth, is > 0 on (0, t_max], and its schedule can
    be sampled (``check_reach``: refused when Θ(t_max) is too large or too small, a warning when
    α(t_max) is not close to 0).
    """
    check_name(name)
    t_max = check_t_max(t_max)
    if "piecewise" in theta_source.lower():
        raise ValueError(
            f"θ(t) = {theta_source!r}: piecewise θ is not supported (Θ, t(λ) and the solvers' "
            "order assume a smooth θ). Approximate a switch from a to b at t0 smoothly, e.g. "
            "a + (b - a)/(1 + exp(-50*(t - t0)))"
        )
    theta = parse_theta(theta_source)
    check_smooth(theta, theta_source)
    check_positive(theta, t_max, theta_source)
    check_reach(theta, t_max, theta_source)
    return schedules.Schedule(
        name=name,
        theta=theta,
        parameters=(schedules.MAX_SIGMA_PARAMETER,),
        t_max=sp.Float(t_max),
        description=f"θ(t) = {theta} on [0, {t_max!r}], taken as given (not rescaled).",
    )


def derive_user_schedule(
    theta_source: str, name: str, t_max: float = 1.0
) -> schedules.DerivedSchedule:
    """Validate a user's θ(t) and derive its closed forms and evaluation plan."""
    return schedules.derive(user_schedule(theta_source, name, t_max))


def _user_top(derived: schedules.DerivedSchedule, backend: str) -> str:
    schedule = derived.schedule
    summary = (
        f"User MR schedule ``{schedule.name}`` ({backend}).\n\n"
        + _wrap(schedule.description)
        + "\n\n"
        + _wrap(_ScheduleWriter(derived, backend).numerics_note())
    )
    return (
        f'"""{summary}\n\n'
        "Generated by ``derivations.schedule_codegen`` through\n"
        f"``mrs-numerics codegen --theta '{schedule.theta}' --name {schedule.name}"
        f" --t-max {float(schedule.t_max)!r}``.\nDo not edit by hand: regenerate instead.\n"
        '"""\n\n'
        "# fmt: off\n"
    )


def user_schedule_files(derived: schedules.DerivedSchedule) -> dict[str, str]:
    """``{"torch/NAME.py": source, "numpy/NAME.py": source}`` for a derived user schedule."""
    name = derived.schedule.name
    return {
        f"{backend}/{name}.py": render_schedule_module(
            derived, backend, _user_top(derived, backend)
        )
        for backend in BACKENDS
    }


def render_user_schedule(theta_source: str, name: str, t_max: float = 1.0) -> dict[str, str]:
    """Files of a user's θ(t) schedule, relative to the user schedule folder (validated first)."""
    return user_schedule_files(derive_user_schedule(theta_source, name, t_max))
