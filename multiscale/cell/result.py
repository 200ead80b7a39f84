"""The result of a cell homogenization, reduced over ranks and ready for JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["HomogenizationResult"]


@dataclass(slots=True, frozen=True)
class HomogenizationResult:
    """Effective tensor of one cell under one boundary condition.

    Attributes
    ----------
    tensor:
        Effective (apparent, for KUBC/SUBC) tensor: the conductivity matrix ``d x d``, or the
        Voigt stiffness (2D order 11, 22, 12; 3D 11, 22, 33, 23, 13, 12; engineering shears).
    notation:
        ``"matrix"`` (conductivity) or ``"voigt"`` (stiffness).
    bc, physics, dim, ndofs:
        Boundary condition, ``"conductivity"`` or ``"elasticity"``, dimension, global dofs.
    volume_fractions:
        Phase name -> volume fraction (sums to 1).
    mean_flux, mean_gradient:
        Column ``j`` holds :math:`\\langle q\\rangle` / :math:`\\langle g\\rangle` of load case
        ``j`` (Voigt for elasticity, engineering shear strains).
    hill_mandel:
        Per load case the Hill–Mandel residual
        :math:`|\\langle q\\cdot g\\rangle - \\langle q\\rangle\\cdot\\langle g\\rangle|
        / |\\langle q\\rangle\\cdot\\langle g\\rangle|`.
    timings:
        Wall seconds of the phases of the computation (max over ranks).
    """

    tensor: np.ndarray
    notation: str
    bc: str
    physics: str
    dim: int
    ndofs: int
    volume_fractions: dict[str, float]
    mean_flux: np.ndarray
    mean_gradient: np.ndarray
    hill_mandel: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    solver: dict[str, Any] = field(default_factory=dict)

    @property
    def hill_mandel_residual(self) -> float:
        """The largest Hill–Mandel residual over the load cases."""
        return float(np.max(self.hill_mandel))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable summary (the ``--json`` output of ``multiscale homogenize``)."""
        return {
            "effective_tensor": self.tensor.tolist(),
            "notation": self.notation,
            "bc": self.bc,
            "physics": self.physics,
            "dim": self.dim,
            "ndofs": self.ndofs,
            "volume_fractions": dict(self.volume_fractions),
            "hill_mandel_residual": self.hill_mandel_residual,
            "hill_mandel_per_load_case": self.hill_mandel.tolist(),
            "mean_flux": self.mean_flux.tolist(),
            "mean_gradient": self.mean_gradient.tolist(),
            "wall_time_s": float(sum(self.timings.values())),
            "timings_s": dict(self.timings),
            "solver": dict(self.solver),
        }
