"""Cell problems on a unit cell: effective tensors under periodic, KUBC and SUBC conditions, and
Floquet–Bloch waves (:mod:`multiscale.cell.bloch`)."""

from typing import Any

from .adapt import AdaptiveResult, adapt
from .certify import CertifiedResult, certify
from .constraints import BCS, build_constraint
from .coupled import CoupledCellProblem, CoupledResult, homogenize_coupled
from .result import HomogenizationResult
from .second_order import (
    SecondOrderCellProblem,
    SecondOrderResponse,
    SecondOrderResult,
    SecondOrderRVE,
)
from .solver import CellProblem, default_petsc_options, homogenize, unit_loads
from .stokes import StokesCellProblem
from .voxel import VoxelCellProblem

__all__ = [
    "BCS",
    "AdaptiveResult",
    "BlochSolver",
    "CellProblem",
    "CertifiedResult",
    "CoupledCellProblem",
    "CoupledResult",
    "Dispersion",
    "HomogenizationResult",
    "SecondOrderCellProblem",
    "SecondOrderRVE",
    "SecondOrderResponse",
    "SecondOrderResult",
    "StokesCellProblem",
    "VoxelCellProblem",
    "WavePhase",
    "adapt",
    "build_constraint",
    "certify",
    "default_petsc_options",
    "dispersion",
    "homogenize",
    "homogenize_coupled",
    "unit_loads",
]

_BLOCH = ("BlochSolver", "Dispersion", "WavePhase", "dispersion")


def __getattr__(name: str) -> Any:
    """The Bloch-wave names, imported on first use: :mod:`multiscale.cell.bloch` needs SLEPc,
    which nothing else of the cell problems does."""
    if name in _BLOCH:
        from . import bloch

        return getattr(bloch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
