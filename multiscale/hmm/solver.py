r"""FE-HMM: the macro solver coupled with the micro problems at its quadrature points.

Linear problems: one micro computation per macro quadrature point gives
:math:`A^{HMM}(x_q)` from :math:`d` corrector solves with one factorization; the macro system is
assembled from it and solved once.

Nonlinear problems :math:`-\nabla\cdot q(x, x/\varepsilon, \nabla u) = f`: PETSc SNES (Newton
with a backtracking line search) on the macro residual; every residual evaluation runs the micro
Newton iterations at :math:`G_q = \nabla u_H(x_q)` and returns the averaged fluxes and the HMM
tangents :math:`\partial Q/\partial G` of the linearized micro problems, which make the macro
Jacobian consistent (quadratic convergence).  A micro failure on any rank makes the residual NaN,
so the line search cuts the step; if SNES still fails, a :class:`RuntimeError` says why.

Micro solves are distributed with :class:`~multiscale.coupling.MicroPool` by owned quadrature
points; the micro problem is built once on the pool's micro communicator.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Mapping
from typing import Any

import dolfinx
import dolfinx.fem.petsc
import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.coupling import MicroPool
from multiscale.petsc_options import prefixed_options

from .macro import MacroProblem, Source
from .micro import MicroProblem, MicroSettings

__all__ = ["HMM", "default_snes_options"]

log = logging.getLogger(__name__)

_instances = itertools.count()


def default_snes_options() -> dict[str, Any]:
    """Newton with backtracking (step cuts) and MUMPS for the linearized macro systems."""
    return {
        "snes_type": "newtonls",
        "snes_linesearch_type": "bt",
        "snes_rtol": 1e-10,
        "snes_atol": 1e-12,
        "snes_stol": 0.0,
        "snes_max_it": 25,
        "ksp_type": "preonly",
        "pc_type": "lu",
        "pc_factor_mat_solver_type": "mumps",
    }


class HMM:
    """The finite element heterogeneous multiscale method on a macro mesh.

    Parameters
    ----------
    mesh:
        Macro mesh of :math:`[0,1]^d` (any simplex mesh works; the DNS comparison helpers
        assume the structured unit meshes of :func:`~multiscale.hmm.micro.unit_mesh`).
    coefficient:
        Linear coefficient or nonlinear flux law.
    micro:
        :class:`MicroSettings` of the sampling domains.
    f, boundary_value, quadrature_degree:
        Macro source, constant Dirichlet value and degree of the macro rule.
    pool:
        The :class:`MicroPool` to use (created, and destroyed by :meth:`destroy`, if omitted).
    petsc_options, snes_options:
        Overrides of the macro linear and nonlinear solver options.

    Collective on ``mesh.comm``.
    """

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
        petsc_options: Mapping[str, Any] | None = None,
        snes_options: Mapping[str, Any] | None = None,
    ) -> None:
        if mesh.geometry.dim != coefficient.dim:
            raise ValueError(f"{coefficient.dim}D coefficient on a {mesh.geometry.dim}D macro mesh")
        self.comm: MPI.Comm = mesh.comm
        self.coefficient = coefficient
        self.settings = micro
        self._own_pool = pool is None
        self.pool = pool if pool is not None else MicroPool(self.comm)
        self.macro = MacroProblem(
            mesh,
            f,
            quadrature_degree=quadrature_degree,
            boundary_value=boundary_value,
            petsc_options=petsc_options,
        )
        self.micro = MicroProblem(self.pool.micro_comm, coefficient, micro)
        self.dim = self.macro.dim
        self.prefix = f"multiscale_hmm_snes_{next(_instances)}_"
        self.snes_options = default_snes_options()
        self.snes_options.update(snes_options or {})
        self.timings: dict[str, float] = {"micro": 0.0, "macro": 0.0}
        self.residual_history: list[float] = []
        self.macro_iterations = 0
        self.tensors: np.ndarray | None = None

    @property
    def u(self) -> dolfinx.fem.Function:
        return self.macro.u

    # -- micro computations -----------------------------------------------------------------------
    def _micro(self, gradients: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Fluxes ``(n_local, d)`` and tangents ``(n_local, d, d)`` at this rank's points;
        a :class:`RuntimeError` on every rank if any micro solve failed (collective)."""
        d = self.dim
        pts = self.macro.points
        inputs = pts if gradients is None else np.hstack([pts, gradients])

        def solve(key: int, row: np.ndarray) -> np.ndarray:
            G = None if gradients is None else row[d:]
            Q, T = self.micro.solve(row[:d], G, key=key)
            return np.concatenate([Q, T.ravel()])

        t0 = time.perf_counter()
        out, failures = self.pool.run(solve, inputs)
        self.timings["micro"] += time.perf_counter() - t0
        all_failures = [m for part in self.comm.allgather(failures) for m in part]
        if all_failures:
            raise RuntimeError(
                f"{len(all_failures)} micro problem(s) failed; first: {all_failures[0]}"
            )
        out = out.reshape(len(pts), d + d * d)
        return out[:, :d], out[:, d:].reshape(-1, d, d)

    def effective_tensors(self) -> np.ndarray:
        """:math:`A^{HMM}(x_q)` at this rank's points, ``(n_local, d, d)`` (linear coefficient)."""
        if not self.coefficient.linear:
            raise ValueError("effective tensors are defined for linear coefficients only")
        self.tensors = self._micro(None)[1]
        return self.tensors

    # -- solves -----------------------------------------------------------------------------------
    def solve(self) -> dolfinx.fem.Function:
        """The HMM solution :math:`u_H` (collective)."""
        if self.coefficient.linear:
            tensors = self.effective_tensors()
            t0 = time.perf_counter()
            u = self.macro.solve_linear(tensors)
            self.timings["macro"] += time.perf_counter() - t0
            self.macro_iterations = 1
            return u
        return self._solve_nonlinear()

    def _solve_nonlinear(self) -> dolfinx.fem.Function:
        macro = self.macro
        u = macro.u
        u.x.array[:] = 0.0
        macro.bc.set(u.x.array)  # initial guess satisfying the boundary condition
        u.x.scatter_forward()
        b = u.x.petsc_vec.duplicate()
        A = dolfinx.fem.petsc.create_matrix(macro._a)
        x = u.x.petsc_vec.copy()
        snes = PETSc.SNES().create(self.comm)
        last = x.duplicate()  # the state whose tangents are in macro.A_q
        state: dict[str, Any] = {"valid": False, "failed": None}

        def residual(snes: PETSc.SNES, xv: PETSc.Vec, F: PETSc.Vec) -> None:
            xv.copy(u.x.petsc_vec)
            u.x.scatter_forward()
            try:
                Q, T = self._micro(macro.gradients())
            except RuntimeError as err:  # collective: every rank sees the same failure
                state["failed"] = str(err)
                F.set(np.nan)
                return
            t0 = time.perf_counter()
            macro.set_flux(Q)
            macro.set_tangent(T)
            xv.copy(last)
            state["valid"] = True
            macro.assemble_residual(xv, F)
            self.timings["macro"] += time.perf_counter() - t0

        def jacobian(snes: PETSc.SNES, xv: PETSc.Vec, J: PETSc.Mat, P: PETSc.Mat) -> None:
            stale = not (state["valid"] and np.array_equal(last.array_r, xv.array_r))
            if self.comm.allreduce(stale, op=MPI.LOR):  # tangents of this state (rarely needed)
                scratch = b.duplicate()
                residual(snes, xv, scratch)
                scratch.destroy()
            t0 = time.perf_counter()
            macro.assemble_jacobian(J)
            self.timings["macro"] += time.perf_counter() - t0

        try:
            snes.setOptionsPrefix(self.prefix)
            snes.setFunction(residual, b)
            snes.setJacobian(jacobian, A)
            snes.setConvergenceHistory()
            with prefixed_options(self.prefix, self.snes_options):
                snes.setFromOptions()
            snes.solve(None, x)
            reason = snes.getConvergedReason()
            self.macro_iterations = snes.getIterationNumber()
            self.residual_history = [float(r) for r in snes.getConvergenceHistory()[0]]
            if reason < 0:
                detail = f"; last micro failure: {state['failed']}" if state["failed"] else ""
                raise RuntimeError(
                    f"macro Newton (SNES {self.prefix!r}) did not converge: reason {reason} after "
                    f"{self.macro_iterations} iterations, residuals {self.residual_history}{detail}"
                )
            x.copy(u.x.petsc_vec)
            u.x.scatter_forward()
        finally:
            for obj in (snes, A, b, x, last):
                obj.destroy()
        return u

    # -- reports ----------------------------------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        """Micro-solve counts and times (reduced over ranks), macro iterations and timings."""
        stats = self.pool.statistics()
        timings = {k: self.comm.allreduce(v, op=MPI.MAX) for k, v in self.timings.items()}
        return {
            "pool": stats.to_dict(),
            "macro_iterations": self.macro_iterations,
            "residual_history": list(self.residual_history),
            "timings_s": timings,
            "macro_dofs": self.macro.ndofs,
            "micro_dofs": self.micro.ndofs,
            "quadrature_points": self.comm.allreduce(len(self.macro.points), op=MPI.SUM),
        }

    def destroy(self) -> None:
        self.micro.destroy()
        if self._own_pool:
            self.pool.destroy()
