"""Scalar diffusion (heat or electric conduction): :math:`q = K \\nabla u`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import ufl

from .base import Kind, check_positive

__all__ = ["AnisotropicConductivity", "Conductivity"]


@dataclass(slots=True, frozen=True)
class Conductivity:
    """Isotropic conductivity :math:`q = k\\,\\nabla u`, :math:`k > 0`."""

    k: float
    kind: ClassVar[Kind] = "scalar"
    linear: ClassVar[bool] = True
    symmetric: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", check_positive("conductivity k", self.k))

    def flux(self, g: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        return self.k * g

    def tensor(self, dim: int) -> np.ndarray:
        """The conductivity as a ``dim x dim`` matrix."""
        return self.k * np.eye(dim)


@dataclass(slots=True, frozen=True)
class AnisotropicConductivity:
    """Anisotropic conductivity :math:`q = K\\,\\nabla u` with :math:`K` symmetric positive
    definite (``dim x dim``)."""

    K: np.ndarray = field(repr=True)
    kind: ClassVar[Kind] = "scalar"
    linear: ClassVar[bool] = True
    symmetric: ClassVar[bool] = True

    def __post_init__(self) -> None:
        K = np.array(self.K, dtype=float)
        if K.ndim != 2 or K.shape[0] != K.shape[1] or K.shape[0] not in (1, 2, 3):
            raise ValueError(f"conductivity tensor must be square of size 1-3, got {K.shape}")
        if not np.all(np.isfinite(K)):
            raise ValueError("conductivity tensor has non-finite entries")
        if not np.allclose(K, K.T, rtol=1e-12, atol=1e-14 * np.abs(K).max()):
            raise ValueError("conductivity tensor must be symmetric")
        if np.linalg.eigvalsh(K).min() <= 0.0:
            raise ValueError("conductivity tensor must be positive definite")
        K.setflags(write=False)
        object.__setattr__(self, "K", K)

    def flux(self, g: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        return ufl.dot(ufl.as_matrix(self.K.tolist()), g)

    def tensor(self, dim: int) -> np.ndarray:
        if dim != self.K.shape[0]:
            raise ValueError(f"a {self.K.shape[0]}D conductivity used in {dim}D")
        return self.K.copy()
