"""Finite-strain hyperelasticity.

The compressible Neo-Hookean solid with stored energy

.. math::
    W(F) = \\frac{\\mu}{2}\\,(I_1 - 3) - \\mu \\ln J + \\frac{\\lambda}{2} (\\ln J)^2,
    \\qquad I_1 = \\mathrm{tr}(F^T F),\\; J = \\det F,

and first Piola–Kirchhoff stress

.. math::
    P = \\frac{\\partial W}{\\partial F} = \\mu F + (\\lambda \\ln J - \\mu) F^{-T}.

In 2D the deformation is plane (:math:`F_{33} = 1`), so :math:`I_1 = \\mathrm{tr}(F^TF) + 1` and the
in-plane block of :math:`P` is the same formula.  For small strains it reduces to Hooke's law with
the Lamé constants :math:`\\lambda, \\mu`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import ufl

from .base import Kind, check_lame, lame_from_young

__all__ = ["NeoHookean"]


@dataclass(slots=True, frozen=True)
class NeoHookean:
    """Compressible Neo-Hookean law (``kind = "deformation"``: ``flux(F)`` is :math:`P(F)`).

    Construct with :meth:`from_young` or directly with Lamé constants ``lmbda`` and ``mu``
    (:math:`\\mu > 0`, :math:`3\\lambda + 2\\mu > 0`).
    """

    lmbda: float
    mu: float
    kind: ClassVar[Kind] = "deformation"
    #: hyperelastic: the tangent dP/dF has major symmetry
    symmetric: ClassVar[bool] = True

    def __post_init__(self) -> None:
        lmbda, mu = check_lame(self.lmbda, self.mu)
        object.__setattr__(self, "lmbda", lmbda)
        object.__setattr__(self, "mu", mu)

    @classmethod
    def from_young(cls, E: float, nu: float) -> NeoHookean:
        """Lamé constants of the small-strain limit from ``E`` and ``nu``."""
        return cls(*lame_from_young(E, nu))

    def energy(self, F: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        """Stored energy density :math:`W(F)`."""
        d = F.ufl_shape[0]
        J = ufl.det(F)
        I1 = ufl.tr(F.T * F) + (3 - d)
        return 0.5 * self.mu * (I1 - 3) - self.mu * ufl.ln(J) + 0.5 * self.lmbda * ufl.ln(J) ** 2

    def flux(self, F: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        """First Piola–Kirchhoff stress :math:`P = \\mu F + (\\lambda\\ln J - \\mu)F^{-T}`."""
        J = ufl.det(F)
        return self.mu * F + (self.lmbda * ufl.ln(J) - self.mu) * ufl.inv(F).T
