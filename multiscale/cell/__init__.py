"""Cell problems on a unit cell: effective tensors under periodic, KUBC and SUBC conditions, and
Floquet–Bloch waves (:mod:`multiscale.cell.bloch`)."""

from .bloch import BlochSolver, Dispersion, WavePhase, dispersion
from .constraints import BCS, build_constraint
from .result import HomogenizationResult
from .solver import CellProblem, default_petsc_options, homogenize, unit_loads

__all__ = [
    "BCS",
    "BlochSolver",
    "CellProblem",
    "Dispersion",
    "HomogenizationResult",
    "WavePhase",
    "build_constraint",
    "default_petsc_options",
    "dispersion",
    "homogenize",
    "unit_loads",
]
