"""SymPy code printers that emit torch and numpy expressions for the generated kernels.

SymPy's `TorchPrinter` has no ``expm1`` (nor ``log1p``); both
are needed for the cancellation-free forms of the φ-functions and of the schedules, so they are
added here. The exponential-integrator function φ_k(z) ([`derivations.phi`][derivations.phi])
prints as a call ``phi_k(z)`` to the generated φ module. Floats print with 17 significant
digits so that a float64 constant survives the round trip through source code.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import PythonCodePrinter
from sympy.printing.pytorch import TorchPrinter

_SETTINGS = {"fully_qualified_modules": True, "strict": True}


class _PhiMixin:
    """Prints φ_k(z) as ``phi_k(z)`` and exact rationals as correctly rounded float literals."""

    def _print_Phi(self, expr):
        k, z = expr.args
        return f"phi_{int(k)}({self._print(z)})"

    def _print_Rational(self, expr):
        return repr(float(expr))

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Integer(self, expr):
        return f"{float(expr)!r}"


class TorchCodePrinter(_PhiMixin, TorchPrinter):
    """Torch printer with ``expm1``, ``log1p`` and φ_k."""

    def __init__(self, settings=None):
        super().__init__({**_SETTINGS, **(settings or {})})

    def _print_Pow(self, expr):
        """Integer powers with Python's ``**``: it works for tensors and plain floats alike
        (``torch.pow(float, float)`` does not, and conversions receive float α, σ)."""
        base, exponent = expr.args
        if exponent.is_Integer:
            return f"{self.parenthesize(base, 1000)}**{int(exponent)}"
        return super()._print_Pow(expr)

    def _print_expm1(self, expr):
        return f"torch.expm1({self._print(expr.args[0])})"

    def _print_log1p(self, expr):
        return f"torch.log1p({self._print(expr.args[0])})"

    def _print_Pi(self, expr):
        return "math.pi"


class NumpyCodePrinter(_PhiMixin, NumPyPrinter):
    """NumPy printer with φ_k (``expm1`` and ``log1p`` are native there)."""

    def __init__(self, settings=None):
        super().__init__({**_SETTINGS, **(settings or {})})

    def _print_Pi(self, expr):
        return "math.pi"


class MathCodePrinter(_PhiMixin, PythonCodePrinter):
    """Printer for scalar (parameter-only) expressions, evaluated with the ``math`` module.

    Torch functions reject Python floats, so subexpressions that depend only on parameters
    (e.g. ``log(eps)``) are computed once per call with ``math`` and passed on as floats.
    """

    def __init__(self, settings=None):
        super().__init__({**_SETTINGS, **(settings or {})})


def torch_code(expr: sp.Expr) -> str:
    """Return torch source code for ``expr``."""
    return TorchCodePrinter().doprint(expr)


def numpy_code(expr: sp.Expr) -> str:
    """Return numpy source code for ``expr``."""
    return NumpyCodePrinter().doprint(expr)


def math_code(expr: sp.Expr) -> str:
    """Return ``math``-module source code for a scalar ``expr``."""
    return MathCodePrinter().doprint(expr)


PRINTERS = {"torch": torch_code, "numpy": numpy_code}
"""Code printer per backend name; generated modules are emitted once per backend."""
