"""The interface between a constitutive law and the cell and RVE solvers.

A *material* is the law of one phase.  It says which kind of field it acts on and returns the flux
as a UFL expression of the field's generalized gradient:

================  ===========================  ===================================
``kind``          generalized gradient ``g``    flux
================  ===========================  ===================================
``"scalar"``      :math:`\\nabla u`             heat / electric flux :math:`q(g)`
``"strain"``      :math:`\\varepsilon(u)`        Cauchy stress :math:`\\sigma(\\varepsilon)`
================  ===========================  ===================================

The solvers only ever call :meth:`Material.flux` (and, for the SUBC and tangent computations, let
UFL differentiate it), so a new law is a new small class: no solver changes.  Sign convention:
the flux enters the weak form as :math:`\\int_Y q(g(u)) \\cdot g(v)\\,dx`, i.e. ``flux`` is the
*positive* conductivity times gradient (Fourier's law with the minus sign moved into the balance).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal, Protocol, runtime_checkable

import ufl

__all__ = ["Kind", "Material", "check_positive", "generalized_gradient", "kind_of"]

Kind = Literal["scalar", "strain"]


@runtime_checkable
class Material(Protocol):
    """The law of one phase: ``flux(g)`` returns a UFL expression.

    ``g`` is a rank-1 UFL expression (``kind == "scalar"``) or a symmetric rank-2 one
    (``kind == "strain"``) of geometric dimension ``d``; the result has the same shape.
    """

    kind: ClassVar[Kind]

    def flux(self, g: ufl.core.expr.Expr) -> ufl.core.expr.Expr: ...


def generalized_gradient(kind: Kind, u: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
    """:math:`\\nabla u` for ``"scalar"``, :math:`\\varepsilon(u) = \\mathrm{sym}\\,\\nabla u` for
    ``"strain"``."""
    if kind == "scalar":
        return ufl.grad(u)
    if kind == "strain":
        return ufl.sym(ufl.grad(u))
    raise ValueError(f"unknown material kind {kind!r}; expected 'scalar' or 'strain'")


def kind_of(materials: dict) -> Kind:
    """The common ``kind`` of all materials of a cell; a clear error when they differ."""
    if not materials:
        raise ValueError("no materials given: map each phase tag or name to a material")
    kinds = {getattr(m, "kind", None) for m in materials.values()}
    if None in kinds:
        bad = [k for k, m in materials.items() if getattr(m, "kind", None) is None]
        raise TypeError(f"phase(s) {bad} have no material law (an object with .kind and .flux)")
    if len(kinds) != 1:
        raise ValueError(f"all phases of a cell must share one kind of law, got {sorted(kinds)}")
    return kinds.pop()


def check_positive(name: str, value: float) -> float:
    """Return ``float(value)``; ``ValueError`` naming ``name`` unless finite and > 0."""
    v = float(value)
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return v
