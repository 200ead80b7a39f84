r"""FE-HMM of multi-field laws: a macro problem in every field, sampled micro problems.

The coefficient is a :class:`~multiscale.hmm.coefficients.MultiFieldCoefficient`: linear
multi-field laws (piezoelectricity, thermoelasticity, elasticity, a user's law) weighted by
functions of the slow and fast variables :math:`(x, y)`.  At every macro quadrature point
:math:`x_q` the sampling-domain problem (:class:`~multiscale.hmm.micro.SamplingProblem`, on one
space holding all fields, periodic or Dirichlet coupling) gives, with one factorization,

.. math::
    \mathbb M(x_q)_{:j} = \big\langle q\big(x_q, y, e_j + \bar g(\chi_j), 0\big)
    \big\rangle_{Y_{in}},
    \qquad p(x_q)_{:k} = \big\langle q\big(x_q, y, \bar g(\chi^\theta_k), e_k\big)
    \big\rangle_{Y_{in}},

the :math:`m` correctors :math:`\chi_j` of the unit packed gradients and the :math:`p`
correctors :math:`\chi^\theta_k` of the unit parameters.  The law is linear, so these are
computed once per point (distributed by a :class:`~multiscale.coupling.MicroPool`), and the
macro problem (:class:`~multiscale.coupling.multifield.MultiFieldMacroProblem`) takes
:math:`\bar q = \mathbb M(x_q)\bar g + p(x_q)\theta` at every point, vectorized.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import ufl
from mpi4py import MPI

from multiscale.coupling import MicroPool, QuadratureRule
from multiscale.coupling.multifield import FieldBC, MultiFieldMacroProblem, ParameterSpec
from multiscale.coupling.solid import Traction
from multiscale.mesh.macro import MacroMesh
from multiscale.nonlinear import CollectiveError, PETScOwner, agree

from .micro import MicroModel, MicroSettings

__all__ = [
    "CoupledDNSProblem",
    "CoupledHMMProblem",
    "PointwiseLinearModel",
    "ResolvedLawModel",
    "SampledLinearModel",
]

log = logging.getLogger(__name__)


class PointwiseLinearModel:
    """A linear micro model given by its tensors at the owned macro points: :attr:`tensors`
    :math:`\\mathbb M(x_q)` ``(n, m, m)`` and :attr:`parameter_tensors` :math:`p(x_q)`
    ``(n, m, p)``, set by a subclass's ``bind``."""

    def __init__(self, coefficient: Any) -> None:
        if getattr(coefficient, "fields", None) is None or not coefficient.linear:
            raise ValueError(
                "a multi-field HMM problem needs a linear MultiFieldCoefficient "
                f"(got {type(coefficient).__name__})"
            )
        self.coefficient = coefficient
        self.fields, self.parameters = coefficient.fields, coefficient.parameters
        self.dim, self.size = coefficient.dim, coefficient.size
        self.tensors = np.zeros((0, self.size, self.size))
        self.parameter_tensors = np.zeros((0, self.size, len(self.parameters)))

    def evaluate(self, g: np.ndarray, parameters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fluxes ``(n, m)`` and tangents ``(n, m, m)`` at the bound points for the packed
        gradients ``g`` ``(n, m)`` and parameter values ``(n, p)``."""
        flux = np.einsum("nij,nj->ni", self.tensors, g)
        flux += np.einsum("nik,nk->ni", self.parameter_tensors, parameters)
        return flux, self.tensors


class SampledLinearModel(PointwiseLinearModel, PETScOwner):
    """The micro model of HMM for a linear multi-field coefficient: :math:`\\mathbb M(x_q)`
    and :math:`p(x_q)` from the sampling-domain problem at every owned macro point, computed
    once.

    Parameters
    ----------
    comm:
        The macro communicator.
    coefficient:
        A linear :class:`~multiscale.hmm.coefficients.MultiFieldCoefficient`.
    settings:
        :class:`~multiscale.hmm.micro.MicroSettings` of the sampling domains.
    group_size:
        Ranks per micro problem of the :class:`~multiscale.coupling.MicroPool`.
    petsc_options_prefix:
        Of the :class:`~multiscale.hmm.micro.SamplingProblem`.
    """

    def __init__(
        self,
        comm: MPI.Comm,
        coefficient: Any,
        settings: MicroSettings,
        *,
        group_size: int = 1,
        petsc_options_prefix: str | None = None,
    ) -> None:
        super().__init__(coefficient)
        self.comm, self.settings = comm, settings
        self._prefix = petsc_options_prefix
        self.pool = self._own(MicroPool(comm, group_size))
        self.model: MicroModel | None = None
        self.seconds = 0.0

    def bind(self, rule: QuadratureRule) -> None:
        """The tensors at the owned points of the macro ``rule`` (:meth:`sample`)."""
        self.sample(rule.coordinates().reshape(-1, rule.mesh.geometry.dim)[:, : self.dim])

    def sample(self, points: np.ndarray) -> None:
        """:math:`\\mathbb M` and :math:`p` at this rank's ``points`` ``(n, d)``: one
        sampling problem per point, in the pool (collective; a
        :class:`~multiscale.nonlinear.CollectiveError` naming the first failure on every rank
        if one failed)."""
        t0 = time.perf_counter()
        if self.model is None:
            self.model = self._own(
                MicroModel(
                    self.pool, self.coefficient, self.settings, 0, petsc_options_prefix=self._prefix
                )
            )
        tensors, parameter_tensors, failures = self.model.tensors(points)
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        message = agree(self.comm, f"{failures[0]}{more}" if failures else None)
        if message is not None:
            raise CollectiveError(f"HMM micro problems failed: {message}")
        self.tensors, self.parameter_tensors = tensors, parameter_tensors
        self.seconds += time.perf_counter() - t0

    def info(self) -> dict[str, Any]:
        """The sampling domains, the micro size and the micro solves (collective)."""
        solves = self.model.solves if self.model is not None else 0
        mine = solves if self.pool.micro_comm.rank == 0 else 0
        return {
            "micro": self.settings.to_dict(),
            "micro_dofs": self.model.problem.ndofs if self.model is not None else 0,
            "micro_solves": int(self.comm.allreduce(mine, op=MPI.SUM)),
            "micro_seconds": self.comm.allreduce(self.seconds, op=MPI.MAX),
        }


class ResolvedLawModel(PointwiseLinearModel):
    """The reference (DNS) role's constitutive model: the coefficient itself,
    :math:`\\mathbb M(x, x/\\varepsilon)` and :math:`p(x, x/\\varepsilon)`, at the quadrature
    points of a macro mesh that resolves :math:`\\varepsilon` (no homogenization)."""

    def __init__(self, coefficient: Any, eps: float) -> None:
        super().__init__(coefficient)
        eps = float(eps)
        if not np.isfinite(eps) or eps <= 0.0:
            raise ValueError(f"eps must be a finite positive number, got {eps!r}")
        self.eps = eps

    def bind(self, rule: QuadratureRule) -> None:
        """Evaluate the law's columns at the owned points of ``rule`` (one compiled
        expression each for :math:`\\mathbb M` and :math:`p`; collective)."""
        m, p = self.size, len(self.parameters)
        x = ufl.SpatialCoordinate(rule.mesh)
        y, zero = x / self.eps, ufl.as_vector([0.0] * m)

        def columns(fluxes: list[Any]) -> Any:
            return ufl.as_matrix([[q[i] for q in fluxes] for i in range(m)])

        unit = np.eye(max(m, p))
        M = columns([self.coefficient.flux(x, y, ufl.as_vector(unit[j, :m])) for j in range(m)])
        self.tensors = rule.evaluate(M).reshape(-1, m, m)
        if p:
            P = columns(
                [self.coefficient.flux(x, y, zero, ufl.as_vector(unit[k, :p])) for k in range(p)]
            )
            self.parameter_tensors = rule.evaluate(P).reshape(-1, m, p)
        else:
            self.parameter_tensors = np.zeros((len(self.tensors), m, 0))

    def info(self) -> dict[str, Any]:
        return {"eps": self.eps}


class CoupledHMMProblem(MultiFieldMacroProblem):
    """FE-HMM of a linear multi-field coefficient on a macro mesh (see the module).

    Parameters
    ----------
    macro:
        The macro mesh with named boundaries.
    coefficient:
        A :class:`~multiscale.hmm.coefficients.MultiFieldCoefficient` (linear multi-field laws
        weighted by functions of :math:`(x, y)`, e.g. :func:`~multiscale.hmm.coefficients.
        layered_laws`).
    micro:
        :class:`~multiscale.hmm.micro.MicroSettings` of the sampling domains.
    bcs, tractions, degree, quadrature_degree, parameters:
        Of :class:`~multiscale.coupling.multifield.MultiFieldMacroProblem`: :class:`FieldBC`
        conditions by field name, generalized tractions, the macro parameters (a number or a
        function of the coordinates per name).
    group_size:
        Ranks per sampling problem.
    petsc_options_prefix, petsc_options, max_cuts:
        Of the macro Newton solver.

    Reactions are recorded per condition, labelled ``"<boundary>:<field>"`` (the charge of an
    electrode for a potential).  Collective on ``macro.mesh.comm``; frees its PETSc objects (the
    sampling problems' too) in :meth:`destroy`.
    """

    role = "hmm_coupled"

    def __init__(
        self,
        macro: MacroMesh,
        coefficient: Any,
        micro: MicroSettings,
        *,
        bcs: Sequence[FieldBC],
        tractions: Sequence[Traction] = (),
        degree: int = 1,
        quadrature_degree: int | None = None,
        parameters: Mapping[str, ParameterSpec] | None = None,
        group_size: int = 1,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
        max_cuts: int = 6,
    ) -> None:
        model = SampledLinearModel(macro.mesh.comm, coefficient, micro, group_size=group_size)
        super().__init__(
            macro,
            model,
            bcs=bcs,
            tractions=tractions,
            degree=degree,
            quadrature_degree=quadrature_degree,
            parameters=parameters,
            petsc_options_prefix=petsc_options_prefix,
            petsc_options=petsc_options,
            max_cuts=max_cuts,
        )

    @property
    def tensors(self) -> np.ndarray:
        """:math:`\\mathbb M(x_q)` at this rank's points, ``(n, m, m)``."""
        return self.micro.tensors

    @property
    def parameter_tensors(self) -> np.ndarray:
        """:math:`p(x_q)` at this rank's points, ``(n, m, p)``."""
        return self.micro.parameter_tensors


class CoupledDNSProblem(MultiFieldMacroProblem):
    """The fine-scale reference of :class:`CoupledHMMProblem`: the same macro problem with the
    coefficient :math:`q(x, x/\\varepsilon, \\cdot)` itself at the quadrature points
    (:class:`ResolvedLawModel`), on a mesh that resolves :math:`\\varepsilon`.

    Parameters are those of :class:`CoupledHMMProblem`, with ``eps`` in place of the sampling
    settings; ``quadrature_degree`` (default 2) should integrate the coefficient on the mesh
    (one point a cell is exact for piecewise-constant phases that the cells resolve).
    """

    role = "hmm_coupled_dns"

    def __init__(
        self,
        macro: MacroMesh,
        coefficient: Any,
        eps: float,
        *,
        bcs: Sequence[FieldBC],
        tractions: Sequence[Traction] = (),
        degree: int = 1,
        quadrature_degree: int = 2,
        parameters: Mapping[str, ParameterSpec] | None = None,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            macro,
            ResolvedLawModel(coefficient, eps),
            bcs=bcs,
            tractions=tractions,
            degree=degree,
            quadrature_degree=quadrature_degree,
            parameters=parameters,
            petsc_options_prefix=petsc_options_prefix,
            petsc_options=petsc_options,
        )
