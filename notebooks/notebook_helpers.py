"""What every notebook of this folder shares: the size switch and the display helpers.

Imported at the top of each notebook (``from notebook_helpers import ...``; a kernel started in
``notebooks/`` finds it). ``MRS_NOTEBOOK_SIZE=small`` (what the test suite sets) shrinks grids,
Monte Carlo sizes and the verification level; the default ``full`` is the complete version.
"""

from __future__ import annotations

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
    display(Markdown("\n".join(lines)))
    failed = [statement for statement, residual in rows if sp.sympify(residual) != 0]
    assert not failed, f"not proved: {failed}"


def table(header, rows) -> None:
    """Display a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    display(Markdown("\n".join(lines)))
