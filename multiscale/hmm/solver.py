r"""FE-HMM: the macro problem coupled with the micro problems at its quadrature points.

Linear coefficients: one micro computation per macro quadrature point gives
:math:`A^{HMM}(x_q)` (:math:`d` corrector solves with one factorization); the macro system is
assembled from it and solved once (:meth:`MacroProblem.solve_linear
<multiscale.hmm.macro.MacroProblem.solve_linear>`), at the last load factor.

Nonlinear coefficients :math:`-\nabla\cdot q(x, x/\varepsilon, \nabla u) = \lambda f`,
:math:`u = \lambda u_D` on the boundary: :class:`HMMProblem` is a
:class:`~multiscale.nonlinear.Steppable` that a :class:`~multiscale.nonlinear.LoadStepper` drives
over the load factors :math:`\lambda`; each step is solved by the package's
:class:`~multiscale.nonlinear.NewtonSolver` on the macro residual.  At every Newton iterate its
``on_iterate`` hook runs the micro Newton iterations at :math:`G_q = \nabla u_H(x_q)` through
the :class:`~multiscale.coupling.MicroPool` and returns the averaged fluxes and the HMM tangents
:math:`\partial Q/\partial G` of the linearized micro problems, which make the macro Jacobian
consistent (quadratic convergence).  A micro failure on any rank (Newton, a NaN or not positive
definite coefficient) fails the iterate on every rank, in the Newton solver's one agreement,
and the load stepper rolls back and halves the step; after ``max_cuts`` cuts a
:class:`~multiscale.nonlinear.LoadStepError` naming the failing point is raised on every rank.

Each micro Newton starts from the point's last fluctuation (committed with the macro step,
dropped when it is cut), and the first iterate of a load step, the committed solution, reuses
the micro responses of the last iterate of the previous step instead of solving them again.
The micro problem is built once on the pool's micro communicator
(:class:`~multiscale.hmm.micro.MicroModel`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import dolfinx
import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.coupling import MicroFailure, MicroPool, MicroSolveError
from multiscale.coupling.concurrent import ConcurrentCoupling
from multiscale.nonlinear import CollectiveError, StepRecord, agree

from .macro import MacroProblem, ScalarProblem, Source
from .micro import MicroModel, MicroSettings

__all__ = ["HMMProblem"]

log = logging.getLogger(__name__)


def _first(failures: list[MicroFailure]) -> str | None:
    """The first failure of a group (and how many more), or ``None``."""
    if not failures:
        return None
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return f"{failures[0]}{more}"


class HMMProblem(ConcurrentCoupling, ScalarProblem):
    """The finite element heterogeneous multiscale method on a macro mesh.

    Parameters
    ----------
    mesh:
        Macro mesh of :math:`[0,1]^d` (any simplex mesh works; the DNS comparison helpers
        assume the structured unit meshes of :func:`~multiscale.mesh.unit_mesh`).
    coefficient:
        Linear coefficient or nonlinear flux law.
    micro:
        :class:`~multiscale.hmm.micro.MicroSettings` of the sampling domains.
    f, boundary_value, quadrature_degree:
        Macro source and constant Dirichlet value (at load factor 1) and degree of the macro
        rule.
    pool:
        The :class:`MicroPool` to use (default: one of ``group_size`` ranks per micro problem,
        freed by :meth:`destroy`).
    petsc_options_prefix, petsc_options:
        Prefix and overrides of the macro solver options: the linear solver's
        (:func:`~multiscale.hmm.macro.linear_solver_options`) for a linear coefficient, the
        Newton solver's (:func:`~multiscale.hmm.macro.default_newton_options`) otherwise.
    max_cuts, regrow_after:
        Of the :class:`~multiscale.nonlinear.LoadStepper` (nonlinear coefficients).

    :meth:`solve` returns the macro solution :attr:`u`; :attr:`tensors` holds
    :math:`A^{HMM}` at this rank's points (linear coefficients), :attr:`stepper` the load steps
    (nonlinear ones) and :meth:`statistics` the counts and timings.  Collective on
    ``mesh.comm``.  Frees its PETSc objects in :meth:`destroy` (also on leaving a ``with``
    block).
    """

    role = "hmm"
    newton_name = "macro Newton"

    def __init__(
        self,
        mesh: dolfinx.mesh.Mesh,
        coefficient: Any,
        micro: MicroSettings,
        *,
        f: Source = 1.0,
        boundary_value: float = 0.0,
        quadrature_degree: int = 1,
        pool: MicroPool | None = None,
        group_size: int = 1,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
        max_cuts: int = 6,
        regrow_after: int = 2,
    ) -> None:
        if mesh.geometry.dim != coefficient.dim:
            raise ValueError(f"{coefficient.dim}D coefficient on a {mesh.geometry.dim}D macro mesh")
        self.comm: MPI.Comm = mesh.comm
        self.coefficient = coefficient
        self.settings = micro
        self.linear = bool(coefficient.linear)
        linear_options = (petsc_options_prefix, petsc_options) if self.linear else (None, None)
        self._init_macro(mesh, f, boundary_value, quadrature_degree, *linear_options)
        self._init_micro(pool, group_size)
        #: :math:`A^{HMM}` at this rank's points (linear coefficients, after :meth:`solve`)
        self.tensors: np.ndarray | None = None
        self._linear_seconds = 0.0
        self._init_coupling()
        self._solves_recorded = 0
        if not self.linear:
            self._init_newton(
                self.macro.F,
                self.macro.J,
                petsc_options_prefix=petsc_options_prefix,
                petsc_options=petsc_options,
                max_cuts=max_cuts,
                regrow_after=regrow_after,
            )
        solver = self.macro if self.newton is None else self.newton
        self.prefix, self.petsc_options = solver.prefix, solver.petsc_options

    # -- construction, in steps -------------------------------------------------------------------
    def _init_macro(
        self,
        mesh: dolfinx.mesh.Mesh,
        f: Source,
        boundary_value: float,
        quadrature_degree: int,
        prefix: str | None,
        petsc_options: Mapping[str, Any] | None,
    ) -> None:
        self.macro = MacroProblem(
            mesh,
            f,
            quadrature_degree=quadrature_degree,
            boundary_value=boundary_value,
            petsc_options=petsc_options,
            petsc_options_prefix=prefix,
        )
        self.dim = self.macro.dim
        self.u = self.macro.u
        self.load = self.macro.load

    def _init_micro(self, pool: MicroPool | None, group_size: int) -> None:
        self.pool = pool if pool is not None else self._own(MicroPool(self.comm, group_size))
        self.micro = self._own(
            MicroModel(self.pool, self.coefficient, self.settings, self.macro.rule.n_local)
        )

    # -- micro computations -----------------------------------------------------------------------
    def effective_tensors(self) -> np.ndarray:
        """:math:`A^{HMM}(x_q)` at this rank's points, ``(n_local, d, d)``, of a linear
        coefficient: one micro computation per point, the first time (collective; a
        :class:`~multiscale.nonlinear.CollectiveError` on every rank if a micro problem
        failed)."""
        if not self.linear:
            raise ValueError("effective tensors are defined for linear coefficients only")
        if self.tensors is None:
            _, tensors, failures = self.micro.evaluate(self.macro.points)
            message = agree(self.comm, _first(failures))
            if message is not None:
                raise CollectiveError(f"HMM micro problems failed: {message}")
            self.tensors = tensors
        return self.tensors

    def _solve_linear(self) -> None:
        tensors = self.effective_tensors()
        t0 = time.perf_counter()
        self.macro.solve_linear(tensors)
        self._linear_seconds += time.perf_counter() - t0

    def on_iterate(self, x: PETSc.Vec) -> None:
        """Solve the micro problems at the iterate's gradients (or reuse the committed
        responses at the first iterate of a step) and fill fluxes and tangents; raises on a
        failure of any of this rank's points (the Newton solver makes it every rank's
        failure)."""
        if self._reuse_committed():
            return
        # a non-finite gradient fails its point inside the micro solve (the micro group's
        # collectives are reached by all its ranks); assigning updates ghosts, a collective
        # that every rank must reach: only then may this rank's failure be raised (the Newton
        # solver agrees on it)
        Q, T, failures = self.micro.evaluate(self.macro.points, self.macro.gradients())
        self._assign_responses((Q, T))
        message = _first(failures)
        if message is not None:
            raise MicroSolveError(message)

    def _assign_responses(self, responses: tuple[np.ndarray, np.ndarray]) -> None:
        Q, T = responses
        self.macro.set_flux(Q)
        self.macro.set_tangent(T)
        self._last = (Q, T)

    # -- the Steppable protocol -------------------------------------------------------------------
    def record(self, step: StepRecord) -> None:
        total = self._micro_total("solves")
        step.quantities = {"micro_solves": float(total - self._solves_recorded)}
        self._solves_recorded = total
        log.info(
            "HMM step: factor %.4g, %d macro Newton its (residual %.2e), %d micro solves, %.2f s",
            step.factor,
            step.iterations,
            step.residuals[-1] if step.residuals else 0.0,
            step.quantities["micro_solves"],
            step.seconds,
        )

    # -- reports ----------------------------------------------------------------------------------
    def _micro_total(self, name: str) -> int:
        """A counter of :class:`MicroModel` summed over the groups (collective)."""
        mine = getattr(self.micro, name) if self.pool.micro_comm.rank == 0 else 0
        return int(self.comm.allreduce(mine, op=MPI.SUM))

    def statistics(self) -> dict[str, Any]:
        """Micro-solve counts and times (reduced over ranks), macro iterations and residuals,
        and timings: ``micro`` (micro evaluations), ``macro`` (macro assembly and solves) and
        ``failure_agreement``, maxima over ranks (collective)."""
        if self.newton is None:
            macro, agreement = self._linear_seconds, 0.0
        else:
            t = self.newton.timings
            macro, agreement = t["solve"] - t["evaluate"] - t["agree"], t["agree"]
        local = {"micro": self.micro.seconds, "macro": macro, "failure_agreement": agreement}
        steps = self.stepper.steps if self.stepper is not None else []
        return {
            "pool": self.pool.statistics().to_dict(),
            "micro_newton_iterations": self._micro_total("newton_iterations"),
            "macro_iterations": self.iterations,
            "residual_history": self.residual_history,
            "load_factors": [s.factor for s in steps],
            "failed_attempts": len(self.stepper.failed_attempts) if self.stepper else 0,
            "timings_s": {k: self.comm.allreduce(v, op=MPI.MAX) for k, v in local.items()},
            "macro_dofs": self.macro.ndofs,
            "micro_dofs": self.micro.problem.ndofs,
            "quadrature_points": self.comm.allreduce(len(self.macro.points), op=MPI.SUM),
        }
