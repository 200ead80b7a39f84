"""FE²: concurrent two-scale finite elements with an RVE at every macro quadrature point.

* :mod:`~multiscale.fe2.boundary` -- displacement and traction conditions following a load factor;
* :mod:`~multiscale.fe2.micro` -- the RVEs of this rank's points, their history, commit/rollback;
* :mod:`~multiscale.fe2.solver` -- the macro problem, SNES Newton, load stepping with cuts;
* :mod:`~multiscale.fe2.output` -- XDMF fields, RVE snapshots at chosen points, JSON summary;
* :mod:`~multiscale.fe2.config` -- the ``multiscale fe2 CONFIG`` file;
* :mod:`~multiscale.fe2.dns` -- the direct numerical simulation of tiled cells (the reference).
"""

from .boundary import DisplacementBC, Traction
from .dns import DNSProblem, TiledMesh, displacement_error, tiled_inclusions
from .micro import MicroEvaluation, MicroModel
from .solver import FE2Problem, FE2Result, StepRecord

__all__ = [
    "DNSProblem",
    "DisplacementBC",
    "FE2Problem",
    "FE2Result",
    "MicroEvaluation",
    "MicroModel",
    "StepRecord",
    "TiledMesh",
    "Traction",
    "displacement_error",
    "tiled_inclusions",
]
