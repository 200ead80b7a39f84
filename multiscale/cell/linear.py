"""One linear solver for every constrained cell problem.

A linear cell problem (conductivity, elasticity, Stokes, a coupled multi-field problem) is an
operator :math:`A` on the space constrained by a :class:`dolfinx_mpc.MultiPointConstraint`
(periodicity, or none for KUBC/SUBC), with homogeneous Dirichlet conditions (pins, KUBC), and a
handful of right-hand sides (one per unit macro load).  :class:`ConstrainedLinearSolver`
assembles :math:`A` once, factorizes it or builds its preconditioner once, and then for each load
reassembles only the right-hand side, solves, checks the solve, and recovers the slave values:

.. math::
    K^T A K\\,\\hat u = K^T b, \\qquad u = K \\hat u,

where :math:`K` is the constraint's prolongation (``mpc.backsubstitution``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dolfinx
import dolfinx_mpc
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.compat import create_space_vector
from multiscale.nonlinear import PETScOwner
from multiscale.petsc_options import pc_failure, prefixed_options

from .constraints import assemble_constrained_vector

__all__ = ["ConstrainedLinearSolver", "pc_failure"]


class ConstrainedLinearSolver(PETScOwner):
    """:math:`A u = b` on the constrained space of ``mpc``, one operator, many right-hand sides.

    Parameters
    ----------
    a:
        The bilinear form (compiled once by the caller).
    mpc, bcs:
        The constraint and the homogeneous Dirichlet conditions.
    petsc_options_prefix, petsc_options:
        The KSP's options prefix and its options, set under the prefix while the KSP is set up
        (a factorization reads its own options there) and removed afterwards.
    preconditioner:
        A bilinear form assembled as the preconditioning matrix (a block preconditioner's
        operator), or ``None`` to precondition with ``A``.
    near_nullspace:
        Called with the constrained function space when the preconditioner is algebraic
        multigrid that uses one (``gamg``, ``ml``, or BoomerAMG with interpolation vectors,
        ``pc_hypre_boomeramg_vec_interp_variant``): the near-null space it attaches to ``A``.
    configure:
        Called with the KSP after ``setFromOptions`` and before ``setUp`` (to give a
        fieldsplit its index sets, say).
    name:
        How errors name the solver (``"cell solver"``, ``"Stokes cell solver"``).
    blocked:
        Assemble the operator as a block (BAIJ) matrix, for a vector unknown: its insertion of
        each cell's blocks is cheaper than the scalar rows of an AIJ matrix (1.5 s against
        2.6-2.9 s on the 204k-dof elasticity cell).  For BoomerAMG, which converts it in its
        set-up; not for GAMG (PETSc builds no graph of a BAIJ matrix) nor a Cholesky
        factorization (MUMPS offers none for BAIJ).

    Nothing is assembled before the first :meth:`solve`.  ``timings`` accumulates the seconds
    of ``assembly`` (operator and right-hand sides), ``factorization`` (KSP set-up) and
    ``solve``; ``iterations`` the KSP iterations of every solve.
    """

    def __init__(
        self,
        a: dolfinx.fem.Form,
        mpc: dolfinx_mpc.MultiPointConstraint,
        bcs: Sequence[dolfinx.fem.DirichletBC] = (),
        *,
        petsc_options_prefix: str,
        petsc_options: Mapping[str, Any],
        preconditioner: dolfinx.fem.Form | None = None,
        near_nullspace: Callable[[Any], PETSc.NullSpace] | None = None,
        configure: Callable[[PETSc.KSP], None] | None = None,
        name: str = "cell solver",
        blocked: bool = False,
    ) -> None:
        self.a, self.mpc, self.bcs = a, mpc, list(bcs)
        self._blocked = bool(blocked) and mpc.function_space.dofmap.index_map_bs > 1
        self.comm: MPI.Comm = mpc.function_space.mesh.comm
        self.prefix = petsc_options_prefix
        self.options = dict(petsc_options)
        self._preconditioner = preconditioner
        self._near_nullspace = near_nullspace
        self._configure = configure
        self.name = name
        self.timings: dict[str, float] = {}
        self.iterations: list[int] = []
        self._ksp: PETSc.KSP | None = None
        self._b: PETSc.Vec | None = None

    # -- set-up --------------------------------------------------------------------------------
    def _time(self, key: str, t0: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - t0

    def _assemble_operators(self) -> tuple[PETSc.Mat, PETSc.Mat]:
        t0 = time.perf_counter()
        A = self._own(self._assemble_matrix(self.a))
        P = A
        if self._preconditioner is not None:
            P = self._own(self._assemble_matrix(self._preconditioner))
        if self._near_nullspace is not None and uses_near_nullspace(self.options):
            P.setNearNullSpace(self._near_nullspace(self.mpc.function_space))
        self._time("assembly", t0)
        return A, P

    def _assemble_matrix(self, form: dolfinx.fem.Form) -> PETSc.Mat:
        """``form`` on the constrained space, AIJ or (``blocked``) BAIJ."""
        A = None
        if self._blocked:
            pattern = dolfinx_mpc.create_sparsity_pattern(form, self.mpc)
            pattern.finalize()
            A = dolfinx.cpp.la.petsc.create_matrix(self.comm, pattern, "baij")
        return dolfinx_mpc.assemble_matrix(form, self.mpc, bcs=self.bcs, A=A)

    @property
    def ksp(self) -> PETSc.KSP:
        """The KSP, its operator assembled and factorized (or preconditioner built) on first
        use."""
        if self._ksp is None:
            A, P = self._assemble_operators()
            t0 = time.perf_counter()
            ksp = self._own(PETSc.KSP().create(self.comm))
            ksp.setOptionsPrefix(self.prefix)
            ksp.setOperators(A, P)
            with prefixed_options(self.prefix, self.options):
                ksp.setFromOptions()
                A.setOptionsPrefix(self.prefix)
                A.setFromOptions()
                if self._configure is not None:
                    self._configure(ksp)
                ksp.setUp()
                ksp.setUpOnBlocks()  # a fieldsplit builds its blocks' preconditioners here
            self._time("factorization", t0)
            self._ksp = ksp
        return self._ksp

    # -- solve ---------------------------------------------------------------------------------
    def solve(self, L: dolfinx.fem.Form, u: dolfinx.fem.Function, *, case: str = "") -> int:
        """Solve for the right-hand side ``L`` into ``u`` (on ``mpc.function_space``, slaves
        back-substituted, ghosts updated); return the KSP iterations.  The current values of
        ``u`` are the initial guess of an iterative solver that uses one
        (``ksp_initial_guess_nonzero``).  Raises ``RuntimeError`` naming the solver, the case,
        the KSP reason and a preconditioner failure if the solve did not converge (the KSP's
        reason is the same on every rank, so every rank raises)."""
        ksp = self.ksp
        t0 = time.perf_counter()
        if self._b is None:
            self._b = self._own(create_space_vector(self.mpc.function_space))
        assemble_constrained_vector(L, self.mpc, self.bcs, self._b)
        self._time("assembly", t0)
        t0 = time.perf_counter()
        ksp.solve(self._b, u.x.petsc_vec)
        reason = ksp.getConvergedReason()
        if reason < 0:
            raise RuntimeError(
                f"{self.name} {self.prefix!r}{f' ({case})' if case else ''} did not converge: "
                f"KSP reason {reason} after {ksp.getIterationNumber()} iterations"
                f"{pc_failure(ksp)}"
            )
        self.iterations.append(ksp.getIterationNumber())
        u.x.scatter_forward()
        self.mpc.backsubstitution(u)
        self._time("solve", t0)
        return self.iterations[-1]


#: The preconditioners that take a near-null space.
AMG = ("gamg", "ml", "hypre")


def uses_near_nullspace(options: Mapping[str, Any]) -> bool:
    """Whether the preconditioner of ``options`` reads the near-null space: GAMG and ML do;
    BoomerAMG only with interpolation vectors (building the rigid-body modes of a 204k-dof cell
    for it otherwise costs 0.5 s for nothing)."""
    pc = options.get("pc_type")
    if pc == "hypre":
        return "pc_hypre_boomeramg_vec_interp_variant" in options
    return pc in AMG
