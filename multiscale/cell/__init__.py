"""Cell problems on a unit cell: effective tensors under periodic, KUBC and SUBC conditions."""

from .constraints import BCS, build_constraint
from .result import HomogenizationResult
from .solver import CellProblem, default_petsc_options, homogenize, unit_loads

__all__ = [
    "BCS",
    "CellProblem",
    "HomogenizationResult",
    "build_constraint",
    "default_petsc_options",
    "homogenize",
    "unit_loads",
]
