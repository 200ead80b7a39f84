"""Cell problems on a unit cell: effective tensors under periodic, KUBC and SUBC conditions, and
Floquet–Bloch waves (:mod:`multiscale.cell.bloch`)."""

from typing import Any

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

_BLOCH = ("BlochSolver", "Dispersion", "WavePhase", "dispersion")


def __getattr__(name: str) -> Any:
    """The Bloch-wave names, imported on first use: :mod:`multiscale.cell.bloch` needs SLEPc,
    which nothing else of the cell problems does."""
    if name in _BLOCH:
        from . import bloch

        return getattr(bloch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
