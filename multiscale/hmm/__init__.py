"""The heterogeneous multiscale method (FE-HMM) for :math:`-\\nabla\\cdot a(x, x/\\varepsilon)
\\nabla u = f`, linear and monotone nonlinear.

* :mod:`~multiscale.hmm.coefficients` -- :math:`a(x, y)` as UFL: locally periodic, random
  stationary, monotone nonlinear;
* :mod:`~multiscale.hmm.micro` -- the sampling-domain problem (one compiled form, lifting by the
  macro gradient with periodic or Dirichlet coupling, restriction by flux averaging, tangents);
* :mod:`~multiscale.hmm.macro` -- the P1 macro problem with quadrature-point coefficients;
* :mod:`~multiscale.hmm.solver` -- :class:`HMM`, linear and Newton (SNES) couplers, micro solves
  distributed with :class:`~multiscale.coupling.MicroPool`;
* :mod:`~multiscale.hmm.dns` -- the fine-scale reference and error measurement;
* :mod:`~multiscale.hmm.reference` -- :math:`A^{hom}` of two-phase cells from the cell solver.
"""

from .coefficients import (
    Coefficient,
    MonotoneFlux,
    RandomStationary,
    checkerboard,
    laminate,
    separable,
    smooth_layers,
    smooth_layers_tensor,
    smooth_periodic,
)
from .dns import DNS, compare
from .macro import MacroProblem
from .micro import COUPLINGS, MicroProblem, MicroSettings, unit_mesh
from .reference import checkerboard_phase, laminate_phase, two_phase_cell_tensor
from .solver import HMM, default_snes_options

__all__ = [
    "COUPLINGS",
    "DNS",
    "HMM",
    "Coefficient",
    "MacroProblem",
    "MicroProblem",
    "MicroSettings",
    "MonotoneFlux",
    "RandomStationary",
    "checkerboard",
    "checkerboard_phase",
    "compare",
    "default_snes_options",
    "laminate",
    "laminate_phase",
    "separable",
    "smooth_layers",
    "smooth_layers_tensor",
    "smooth_periodic",
    "two_phase_cell_tensor",
    "unit_mesh",
]
