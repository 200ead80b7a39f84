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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import dolfinx
import dolfinx.fem.petsc
import dolfinx_mpc
import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.compat import create_space_vector
from multiscale.nonlinear import PETScOwner
from multiscale.petsc_options import pc_failure, prefixed_options

from .constraints import assemble_constrained_vector

__all__ = ["ConstrainedLinearSolver", "compact_aij", "pc_failure"]


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
        2.6-2.9 s on the 204k-dof elasticity cell).  The solver then works on its compact AIJ
        copy (:func:`compact_aij`: the block size kept, the constraint's explicit zeros
        dropped).  For BoomerAMG; not for GAMG (PETSc builds no graph of a BAIJ matrix) nor a
        Cholesky factorization (MUMPS offers none for BAIJ).

    Nothing is assembled before the first :meth:`solve`.  ``timings`` accumulates the seconds
    of ``assembly`` (operator and right-hand sides), ``factorization`` (KSP set-up),
    ``solve`` and ``postprocess`` (residuals asked of :meth:`solve`); ``iterations`` the KSP
    iterations of every solve.
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
        A = self._assemble_matrix(self.a)
        if self._blocked:
            A, block = compact_aij(A), A
            block.destroy()
        A = self._own(A)
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
    def solve(
        self,
        L: dolfinx.fem.Form,
        u: dolfinx.fem.Function,
        *,
        case: str = "",
        residual: PETSc.Vec | None = None,
    ) -> int:
        r"""Solve for the right-hand side ``L`` into ``u`` (on ``mpc.function_space``, slaves
        back-substituted, ghosts updated); return the KSP iterations.  The current values of
        ``u`` are the initial guess of an iterative solver that uses one
        (``ksp_initial_guess_nonzero``).  Raises ``RuntimeError`` naming the solver, the case,
        the KSP reason and a preconditioner failure if the solve did not converge (the KSP's
        reason is the same on every rank, so every rank raises).

        ``residual`` (a vector of ``mpc.function_space``), if given, receives the residual
        :math:`\hat b - \hat A\hat u` of the constrained system at the computed solution
        (one multiplication by the operator, timed as ``postprocess``), whose slave and
        Dirichlet entries are first set to zero (an iterative solve leaves them near zero: an
        algebraic multigrid may couple them to the others through the explicit zeros of the
        matrix).  So the residual is zero on those rows, and :math:`-K^T R` on the others, for
        the residual :math:`R` of the unconstrained form at the back-substituted field."""
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
        self._time("solve", t0)
        if residual is not None:  # before the slaves take their masters' values
            t0 = time.perf_counter()
            x = u.x.petsc_vec
            dolfinx.fem.petsc.set_bc(x, self.bcs)  # the constrained rows exact (zero)
            with x.localForm() as local:
                local.array[self.mpc.slaves] = 0.0
            ksp.getOperators()[0].mult(x, residual)
            residual.aypx(-1.0, self._b)
            self._time("postprocess", t0)
        t0 = time.perf_counter()
        u.x.scatter_forward()
        self.mpc.backsubstitution(u)
        self._time("solve", t0)
        return self.iterations[-1]


def compact_aij(A: PETSc.Mat) -> PETSc.Mat:
    """An AIJ copy of the assembled ``A`` (AIJ or BAIJ; same rows, columns and block size)
    without its explicit zeros.

    The sparsity pattern of a dolfinx_mpc operator keeps the couplings of every cell's dofs, so
    a slave's row and column hold zeros but for the diagonal: 1.7M of the 10.3M entries of the
    204k-dof periodic elasticity cell (20k slaves).  BoomerAMG copies them into its fine level,
    and every smoothing sweep and residual multiplies by them.  Dropped, with the same 68 CG
    iterations and the same tensor, its set-up (the conversion to hypre's format included)
    took 1.6-1.8 s instead of 2.2-2.5 s and a preconditioner application 80 ms instead of
    92 ms; the copy costs 0.15-0.3 s.  A diagonal entry is zero only in a singular operator,
    which no multigrid solves, so every stored diagonal is nonzero and kept.  The copy's
    arrays are made without transparent huge pages (:func:`_small_pages`)."""
    with _small_pages():
        ai, aj, av = A.getValuesCSR()  # owned rows, global columns
        keep = av != 0.0
        counts = np.zeros(len(av) + 1, dtype=ai.dtype)
        np.cumsum(keep, out=counts[1:])
        csr = (counts[ai], aj[keep], av[keep])
        del ai, aj, av, keep, counts
    B = PETSc.Mat().createAIJWithArrays(A.getSizes(), csr, comm=A.getComm())
    B.setBlockSizes(*A.getBlockSizes())  # BoomerAMG's number of functions
    return B


@contextmanager
def _small_pages() -> Iterator[None]:
    """numpy allocates its arrays without asking for transparent huge pages
    (``madvise(MADV_HUGEPAGE)``, numpy's default for large arrays) inside the block.  Where the
    kernel defragments memory for such a request when the page is first touched
    (``/sys/kernel/mm/transparent_hugepage/defrag`` = ``madvise``, as on the 2-core test
    machine), the copy of :func:`compact_aij` took 1.0-1.2 s instead of 0.15-0.3 s."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    setter = getattr(multiarray, "_set_madvise_hugepage", None)
    if setter is None:
        yield
        return
    previous = setter(False)
    try:
        yield
    finally:
        setter(previous)


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
