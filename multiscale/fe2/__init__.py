"""FE²: concurrent two-scale finite elements with an RVE at every macro quadrature point.

* :mod:`~multiscale.fe2.micro` -- the RVEs of this rank's points, their history, commit/rollback
  (the micro model);
* :mod:`~multiscale.fe2.solver` -- the macro problem on the shared solid and Newton core
  (:mod:`multiscale.coupling.solid`, :mod:`multiscale.nonlinear`);
* :mod:`~multiscale.fe2.surrogate` -- hierarchical FE²: an offline database of RVE responses,
  a hyperelastic surrogate with consistent tangent, online error control and enrichment;
* :mod:`~multiscale.fe2.dns` -- the direct numerical simulation of tiled cells (the reference);
* :mod:`~multiscale.fe2.output` -- XDMF fields, RVE snapshots at chosen points;
* :mod:`~multiscale.fe2.config` -- the ``multiscale fe2 CONFIG`` file and its driver.
"""

from multiscale.coupling.solid import DisplacementBC, SolidResult, Traction
from multiscale.mesh.tiled import TiledMesh, tiled_inclusions
from multiscale.nonlinear import StepRecord

from .dns import DNSProblem, displacement_error
from .micro import MicroEvaluation, MicroModel
from .solver import FE2Problem, FE2Result
from .surrogate import RVEDatabase, SurrogateMicroModel, SurrogateOptions

__all__ = [
    "DNSProblem",
    "DisplacementBC",
    "FE2Problem",
    "FE2Result",
    "MicroEvaluation",
    "MicroModel",
    "RVEDatabase",
    "SolidResult",
    "StepRecord",
    "SurrogateMicroModel",
    "SurrogateOptions",
    "TiledMesh",
    "Traction",
    "displacement_error",
    "tiled_inclusions",
]
