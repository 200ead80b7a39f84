"""Concurrent coupling of scales: the machinery FE² and HMM share.

* :mod:`~multiscale.coupling.pool` -- micro solves distributed over ranks (or rank groups) by
  owned macro quadrature points; also independent tasks such as ensemble realizations;
* :mod:`~multiscale.coupling.quadrature` -- macro quantities at quadrature points, and micro
  results back into quadrature spaces;
* :mod:`~multiscale.coupling.probe` -- values of distributed functions at given points.
"""

from .pool import MicroPool, MicroSolveError, PoolStatistics
from .probe import PointProbe, grid_points
from .quadrature import QuadratureRule

__all__ = [
    "MicroPool",
    "MicroSolveError",
    "PointProbe",
    "PoolStatistics",
    "QuadratureRule",
    "grid_points",
]
