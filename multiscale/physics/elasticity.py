"""Small-strain linear elasticity.

In 2D the strain is the in-plane part of a plane-strain state, so the 3D Lamé constants are used
unchanged: :math:`\\sigma = \\lambda\\,\\mathrm{tr}(\\varepsilon) I + 2\\mu\\varepsilon`.  Voigt
notation follows the package convention (:mod:`multiscale.tensors`): order 11, 22, 12 (2D) and
11, 22, 33, 23, 13, 12 (3D), engineering shear strains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import ufl

from multiscale.tensors import isotropic_stiffness, voigt_index

from .base import Kind, check_lame, lame_from_young

__all__ = ["AnisotropicElasticity", "IsotropicElasticity"]


@dataclass(slots=True, frozen=True)
class IsotropicElasticity:
    """Isotropic Hooke's law from Lamé constants :math:`\\lambda, \\mu`.

    Construct with :meth:`from_young` (``E``, ``nu``) or directly with ``lmbda`` and ``mu``.
    Requires :math:`\\mu > 0` and a positive bulk modulus :math:`3\\lambda + 2\\mu > 0`.
    """

    lmbda: float
    mu: float
    kind: ClassVar[Kind] = "strain"
    linear: ClassVar[bool] = True
    symmetric: ClassVar[bool] = True

    def __post_init__(self) -> None:
        lmbda, mu = check_lame(self.lmbda, self.mu)
        object.__setattr__(self, "lmbda", lmbda)
        object.__setattr__(self, "mu", mu)

    @classmethod
    def from_young(cls, E: float, nu: float) -> IsotropicElasticity:
        """:math:`\\lambda = E\\nu/((1+\\nu)(1-2\\nu))`, :math:`\\mu = E/(2(1+\\nu))`."""
        return cls(*lame_from_young(E, nu))

    @property
    def E(self) -> float:
        return self.mu * (3.0 * self.lmbda + 2.0 * self.mu) / (self.lmbda + self.mu)

    @property
    def nu(self) -> float:
        return self.lmbda / (2.0 * (self.lmbda + self.mu))

    def flux(self, g: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        return self.lmbda * ufl.tr(g) * ufl.Identity(g.ufl_shape[0]) + 2.0 * self.mu * g

    def tensor(self, dim: int) -> np.ndarray:
        """Voigt stiffness matrix (plane strain in 2D)."""
        return isotropic_stiffness(dim, lmbda=self.lmbda, mu=self.mu)


@dataclass(slots=True, frozen=True)
class AnisotropicElasticity:
    """General Hooke's law :math:`\\{\\sigma\\} = C\\{\\varepsilon\\}` from a symmetric positive
    definite Voigt matrix ``C`` (3x3 in 2D, 6x6 in 3D; engineering shear strains)."""

    C: np.ndarray = field(repr=True)
    kind: ClassVar[Kind] = "strain"
    linear: ClassVar[bool] = True
    symmetric: ClassVar[bool] = True

    def __post_init__(self) -> None:
        C = np.array(self.C, dtype=float)
        if C.shape not in ((3, 3), (6, 6)):
            raise ValueError(f"Voigt stiffness must be 3x3 (2D) or 6x6 (3D), got {C.shape}")
        if not np.all(np.isfinite(C)):
            raise ValueError("stiffness matrix has non-finite entries")
        if not np.allclose(C, C.T, rtol=1e-12, atol=1e-14 * np.abs(C).max()):
            raise ValueError("stiffness matrix must be symmetric")
        if np.linalg.eigvalsh(C).min() <= 0.0:
            raise ValueError("stiffness matrix must be positive definite")
        C.setflags(write=False)
        object.__setattr__(self, "C", C)

    @property
    def dim(self) -> int:
        return 2 if self.C.shape[0] == 3 else 3

    def flux(self, g: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        pairs = voigt_index(self.dim)
        # strain in Voigt form with engineering shears
        e = [g[i, j] if i == j else 2 * g[i, j] for i, j in pairs]
        s = [sum(float(self.C[a, b]) * e[b] for b in range(len(pairs))) for a in range(len(pairs))]
        S = [[None] * self.dim for _ in range(self.dim)]
        for a, (i, j) in enumerate(pairs):
            S[i][j] = S[j][i] = s[a]
        return ufl.as_matrix(S)

    def tensor(self, dim: int) -> np.ndarray:
        if dim != self.dim:
            raise ValueError(f"a {self.dim}D stiffness used in {dim}D")
        return self.C.copy()
