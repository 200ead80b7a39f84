"""Small-strain J2 (von Mises) plasticity with linear isotropic hardening.

Internal variables per quadrature point: the plastic strain :math:`\\varepsilon^p` (always a
3x3 tensor, so that plane strain keeps its out-of-plane plastic component) and the accumulated
equivalent plastic strain :math:`p`.  One step of the backward-Euler *radial return* from the
committed :math:`(\\varepsilon^p_n, p_n)`:

.. math::
    s^{tr} = 2\\mu\\,\\mathrm{dev}(\\varepsilon - \\varepsilon^p_n), \\quad
    q^{tr} = \\sqrt{\\tfrac32 s^{tr}:s^{tr}}, \\quad
    f^{tr} = q^{tr} - (\\sigma_y + H p_n),

.. math::
    \\Delta p = \\frac{\\langle f^{tr}\\rangle_+}{3\\mu + H}, \\quad
    \\sigma = K\\,\\mathrm{tr}(\\varepsilon)\\,I
    + \\Big(1 - \\frac{3\\mu\\Delta p}{q^{tr}}\\Big) s^{tr},
    \\quad
    \\varepsilon^p = \\varepsilon^p_n + \\tfrac32 \\Delta p\\,\\frac{s^{tr}}{q^{tr}}, \\quad
    p = p_n + \\Delta p,

with the bulk modulus :math:`K = \\lambda + 2\\mu/3` (the plastic flow is isochoric).  The
whole update is a UFL expression, so the Jacobian UFL derives from it is the algorithmic
(consistent) tangent of the return map and the micro Newton converges quadratically.  In 2D the
strain is the in-plane part of a plane-strain state (:math:`\\varepsilon_{i3} = 0`).

**Dissipation** (second law).  The free energy is the elastic energy plus the stored hardening
energy :math:`\\psi_p(p) = \\tfrac12 H p^2`.  The updated deviator
:math:`s = (1 - 3\\mu\\Delta p/q^{tr})\\,s^{tr}` is parallel to :math:`s^{tr}` with
:math:`\\sqrt{\\tfrac32 s:s} = q^{tr} - 3\\mu\\Delta p = \\sigma_y + H p_{n+1}` (the yield surface),
and :math:`\\Delta\\varepsilon^p = \\tfrac32\\Delta p\\,s^{tr}/q^{tr}` is deviatoric, so

.. math::
    \\sigma:\\Delta\\varepsilon^p = \\tfrac32\\Delta p\\,\\frac{s:s^{tr}}{q^{tr}}
    = (\\sigma_y + H p_{n+1})\\,\\Delta p, \\qquad
    \\Delta\\psi_p = H\\,\\Delta p\\,(p_n + \\tfrac12\\Delta p),

and the energy per unit volume dissipated in the step is

.. math::
    \\mathcal D = \\sigma:\\Delta\\varepsilon^p - \\Delta\\psi_p
    = \\sigma_y\\,\\Delta p + \\tfrac12 H\\,\\Delta p^2 \\ge 0,

a sum of non-negative terms (:math:`\\Delta p \\ge 0`, :math:`\\sigma_y > 0`,
:math:`H \\ge 0`), exactly 0 in an elastic step.  As for
:class:`~multiscale.physics.viscoelasticity.GeneralizedMaxwell` it is stored as the scalar
internal variable ``"dissipation"`` (the last step's, not accumulated), so the RVE reports its
volume average in :attr:`RVEResponse.mean_state <multiscale.cell.rve.RVEResponse>`.

Internal variables (zero initially): ``eps_p`` (3x3), ``p`` and ``dissipation`` (scalars).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import ufl

from .base import Kind, check_lame, check_positive, lame_from_young

__all__ = ["J2Plasticity"]


def _embed3(eps: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
    """A 2x2 strain as the 3x3 plane-strain tensor; 3x3 unchanged."""
    d = eps.ufl_shape[0]
    if d == 3:
        return eps
    return ufl.as_matrix([[eps[0, 0], eps[0, 1], 0], [eps[1, 0], eps[1, 1], 0], [0, 0, 0]])


@dataclass(slots=True, frozen=True)
class J2Plasticity:
    """Von Mises plasticity: Lamé constants ``lmbda``, ``mu``, initial yield stress ``sigma_y``
    (> 0) and linear isotropic hardening modulus ``H`` (>= 0; 0 is perfect plasticity)."""

    lmbda: float
    mu: float
    sigma_y: float
    H: float = 0.0
    kind: ClassVar[Kind] = "strain"
    #: the algorithmic tangent of the radial return with linear hardening is symmetric
    symmetric: ClassVar[bool] = True

    def __post_init__(self) -> None:
        lmbda, mu = check_lame(self.lmbda, self.mu)
        sy = check_positive("yield stress sigma_y", self.sigma_y)
        H = float(self.H)
        if not math.isfinite(H) or H < 0.0:
            raise ValueError(f"hardening modulus H must be finite and >= 0, got {self.H!r}")
        for name, value in (("lmbda", lmbda), ("mu", mu), ("sigma_y", sy), ("H", H)):
            object.__setattr__(self, name, value)

    @classmethod
    def from_young(cls, E: float, nu: float, sigma_y: float, H: float = 0.0) -> J2Plasticity:
        return cls(*lame_from_young(E, nu), sigma_y, H)

    @property
    def bulk(self) -> float:
        return self.lmbda + 2.0 * self.mu / 3.0

    def state_shapes(self, dim: int) -> dict[str, tuple[int, ...]]:
        return {"eps_p": (3, 3), "p": (), "dissipation": ()}

    def _return_map(self, eps: ufl.core.expr.Expr, state: dict) -> tuple:
        eps3 = _embed3(eps)
        s_tr = 2.0 * self.mu * ufl.dev(eps3 - state["eps_p"])
        q_tr = ufl.sqrt(1.5 * ufl.inner(s_tr, s_tr))
        f_tr = q_tr - (self.sigma_y + self.H * state["p"])
        plastic = ufl.gt(f_tr, 0.0)
        dp = ufl.conditional(plastic, f_tr / (3.0 * self.mu + self.H), 0.0)
        # q_tr > sigma_y > 0 wherever the plastic branch is taken
        ratio = ufl.conditional(plastic, dp / q_tr, 0.0)
        return eps3, s_tr, dp, ratio

    def flux(self, eps: ufl.core.expr.Expr, state: dict) -> ufl.core.expr.Expr:
        d = eps.ufl_shape[0]
        eps3, s_tr, _, ratio = self._return_map(eps, state)
        sigma3 = self.bulk * ufl.tr(eps3) * ufl.Identity(3) + (1.0 - 3.0 * self.mu * ratio) * s_tr
        if d == 3:
            return sigma3
        return ufl.as_matrix([[sigma3[i, j] for j in range(d)] for i in range(d)])

    def updated_state(self, eps: ufl.core.expr.Expr, state: dict) -> dict[str, ufl.core.expr.Expr]:
        _, s_tr, dp, ratio = self._return_map(eps, state)
        return {
            "eps_p": state["eps_p"] + 1.5 * ratio * s_tr,
            "p": state["p"] + dp,
            "dissipation": self.sigma_y * dp + 0.5 * self.H * dp**2,
        }
