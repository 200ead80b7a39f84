"""The heterogeneous multiscale method (FE-HMM) for :math:`-\\nabla\\cdot a(x, x/\\varepsilon)
\\nabla u = f`, linear and monotone nonlinear.

* :mod:`~multiscale.hmm.coefficients` -- :math:`a(x, y)` as UFL: locally periodic, random
  stationary, monotone nonlinear;
* :mod:`~multiscale.hmm.micro` -- :class:`SamplingProblem`, the sampling-domain problem (one
  compiled form, lifting by the macro gradient with periodic or Dirichlet coupling, restriction
  by flux averaging, tangents; Newton by :class:`~multiscale.nonlinear.NewtonSolver`), and
  :class:`MicroModel`, the micro-solver role (pool, warm starts, commit/rollback);
* :mod:`~multiscale.hmm.macro` -- the P1 macro problem with quadrature-point coefficients, the
  load of the scalar problems and their load-stepped Newton solve (:class:`ScalarProblem`);
* :mod:`~multiscale.hmm.solver` -- :class:`HMMProblem`: one micro computation and one linear
  solve for a linear coefficient, macro Newton with the consistent HMM tangent along load steps
  for a nonlinear one, micro solves distributed with :class:`~multiscale.coupling.MicroPool`;
* :mod:`~multiscale.hmm.coupled` -- :class:`CoupledHMMProblem`: linear multi-field laws
  (piezoelectric, thermoelastic, elastic: :class:`MultiFieldCoefficient`), every field on the
  macro mesh, :math:`\\mathbb M(x_q)` and :math:`p(x_q)` from one sampling problem per point,
  and its fine-scale reference :class:`CoupledDNSProblem`;
* :mod:`~multiscale.hmm.dns` -- :class:`DNSProblem`, the fine-scale reference, and
  :func:`compare`, the error measurement;
* :mod:`~multiscale.hmm.reference` -- :math:`A^{hom}` of two-phase cells from the cell solver.
"""

from .coefficients import (
    Coefficient,
    MonotoneFlux,
    MultiFieldCoefficient,
    RandomStationary,
    checkerboard,
    laminate,
    layered_laws,
    separable,
    smooth_layers,
    smooth_layers_tensor,
    smooth_periodic,
)
from .coupled import CoupledDNSProblem, CoupledHMMProblem, ResolvedLawModel, SampledLinearModel
from .dns import DNSProblem, compare
from .macro import MacroProblem, ScalarLoad, ScalarProblem
from .micro import COUPLINGS, MicroModel, MicroSettings, SamplingProblem, SamplingResponse
from .reference import checkerboard_phase, laminate_phase, two_phase_cell_tensor
from .solver import HMMProblem

__all__ = [
    "COUPLINGS",
    "Coefficient",
    "CoupledDNSProblem",
    "CoupledHMMProblem",
    "DNSProblem",
    "HMMProblem",
    "MacroProblem",
    "MicroModel",
    "MicroSettings",
    "MonotoneFlux",
    "MultiFieldCoefficient",
    "RandomStationary",
    "ResolvedLawModel",
    "SampledLinearModel",
    "SamplingProblem",
    "SamplingResponse",
    "ScalarLoad",
    "ScalarProblem",
    "checkerboard",
    "checkerboard_phase",
    "compare",
    "laminate",
    "laminate_phase",
    "layered_laws",
    "separable",
    "smooth_layers",
    "smooth_layers_tensor",
    "smooth_periodic",
    "two_phase_cell_tensor",
]
