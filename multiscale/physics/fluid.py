"""Incompressible Newtonian fluid for Stokes flow: :math:`\\sigma = 2\\mu\\,\\varepsilon(v) - pI`.

For an incompressible velocity (:math:`\\nabla\\cdot v = 0`) the momentum balance
:math:`-\\nabla\\cdot(2\\mu\\,\\varepsilon(v)) + \\nabla p = f` equals
:math:`-\\mu\\Delta v + \\nabla p = f`, so the cell problems use the viscous flux
:math:`\\mu\\nabla v` (the "Laplacian" form, symmetric and coercive on :math:`H^1_0`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import ufl

from .base import check_positive

__all__ = ["NewtonianFluid"]


@dataclass(slots=True, frozen=True)
class NewtonianFluid:
    """Newtonian fluid of dynamic viscosity :math:`\\mu > 0`."""

    mu: float
    linear: ClassVar[bool] = True
    symmetric: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "mu", check_positive("viscosity mu", self.mu))

    def flux(self, grad_v: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        """The viscous flux :math:`\\mu\\nabla v` of the Laplacian form of Stokes flow."""
        return self.mu * grad_v

    def stress(self, grad_v: ufl.core.expr.Expr, p: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        """The Cauchy stress :math:`\\mu(\\nabla v + \\nabla v^T) - pI`."""
        dim = ufl.shape(grad_v)[0]
        return self.mu * (grad_v + grad_v.T) - p * ufl.Identity(dim)
