"""Concurrent coupling of scales: the machinery FE² and HMM share.

* :mod:`~multiscale.coupling.pool` -- micro solves distributed over ranks (or rank groups) by
  owned macro quadrature points; also independent tasks such as ensemble realizations;
* :mod:`~multiscale.coupling.quadrature` -- macro quantities at quadrature points, and micro
  results back into quadrature spaces;
* :mod:`~multiscale.coupling.probe` -- values of distributed functions at given points;
* :mod:`~multiscale.coupling.solid` -- the macro solid (loaded boundaries, reactions, load
  stepping) that FE² and its DNS share;
* :mod:`~multiscale.coupling.multifield` -- the macro problem in every field of a multi-field
  law (:class:`MultiFieldMacroProblem`, :class:`FieldBC`) that coupled FE² and HMM share.
"""

from .multifield import FieldBC, MultiFieldMacroProblem, macro_parameters
from .pool import MicroFailure, MicroPool, MicroSolveError, PoolStatistics
from .probe import PointProbe, grid_points
from .quadrature import QuadratureRule
from .solid import DisplacementBC, LoadedBoundaries, SolidProblem, SolidResult, Traction

__all__ = [
    "DisplacementBC",
    "FieldBC",
    "LoadedBoundaries",
    "MicroFailure",
    "MicroPool",
    "MicroSolveError",
    "MultiFieldMacroProblem",
    "PointProbe",
    "PoolStatistics",
    "QuadratureRule",
    "SolidProblem",
    "SolidResult",
    "Traction",
    "grid_points",
    "macro_parameters",
]
