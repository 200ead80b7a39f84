"""The nonlinear core every method of the package stands on: one Newton solver, one load stepper,
and failures that every rank sees.

**Newton.**  :class:`NewtonSolver` drives PETSc SNES on a residual :math:`R(x) = 0` whose
assembly an :class:`Assembly` provides (compiled dolfinx forms with Dirichlet lifting, or the same
on a dolfinx_mpc constrained space).  It owns its matrix, vectors and SNES and frees them in
:meth:`~NewtonSolver.destroy` (idempotent, also after a half-finished ``__init__``), on leaving a
``with`` block and when garbage collected, as :class:`dolfinx.fem.petsc.LinearProblem` does; it
takes ``petsc_options_prefix`` and ``petsc_options`` as dolfinx does, on top of
:func:`newton_options` (the defaults live there and nowhere else).  An iteration :math:`k`
converges when the residual *and* the step are small:

.. math::
    \\|R(x_k)\\| \\le \\max(\\tau_a,\\ \\tau_r\\,\\rho), \\qquad
    \\|x_k - x_{k-1}\\| \\le \\tau_s\\,(\\|x_k\\| + s),

with :math:`\\tau_a, \\tau_r, \\tau_s` the SNES tolerances ``snes_atol``, ``snes_rtol`` and
``snes_stol`` (a zero :math:`\\tau_s` switches the step test off), :math:`\\rho` the reference
residual (the initial one unless :meth:`~NewtonSolver.residual_reference` says otherwise) and
:math:`s` a problem's scale of the solution (:meth:`~NewtonSolver.step_scale`).  Solvers whose
last factorization must be that of the solution (the RVE's consistent tangent) also ask for
``min_iterations = 1``.

**Hooks.**  Before each residual, :meth:`NewtonSolver.evaluate` brings the problem to the iterate;
problems do their pointwise work there (the micro problems of FE² and HMM, a check of
:math:`\\det F`).  Whatever it raises, on any rank, is agreed on by all ranks in one collective
(:func:`agree`) and makes the residual NaN everywhere, so SNES stops on every rank in the same
iteration (or a backtracking line search backs off, on every rank) and :class:`NewtonOutcome`
names the cause.  No rank is left waiting in a collective the others never reach.

**Load stepping.**  :class:`LoadStepper` follows a list of load factors for a
:class:`Steppable` problem (``set_load``, ``attempt``, ``commit``, ``rollback``, ``record``): a
failed trial of any kind is rolled back and the step halved, up to ``max_cuts`` times, after
which a :class:`LoadStepError` naming the load factors and the cause is raised on every rank;
after ``regrow_after`` converged sub-steps the step doubles again.  Each converged step gives one
:class:`StepRecord`, the same on every rank and for every method.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import dolfinx
import dolfinx.fem.petsc
import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.compat import create_vector
from multiscale.errors import CollectiveError
from multiscale.petsc_options import factor_options, mumps_error, pc_failure, prefixed_options

__all__ = [
    "Assembly",
    "CollectiveError",
    "FormAssembly",
    "LoadStepError",
    "LoadStepper",
    "NewtonOutcome",
    "NewtonSolver",
    "PETScOwner",
    "StepRecord",
    "Steppable",
    "agree",
    "direct_solver_options",
    "free_garbage",
    "newton_options",
    "unique_prefix",
]

log = logging.getLogger(__name__)

_prefix_counts: dict[str, int] = {}

#: MUMPS's INFOG(1) for a workspace too small for the factorization (ICNTL(14) enlarges it)
MUMPS_WORKSPACE = (-8, -9)
#: how often :meth:`NewtonSolver.solve` repeats a solve with four times the workspace headroom
WORKSPACE_RETRIES = 2


def unique_prefix(role: str) -> str:
    """``multiscale_<role>_<n>_``, ``n`` counting the solvers of that role made on this rank.

    Identical on the ranks of a communicator as long as its solvers are built collectively (in
    the same order on every rank), which every constructor of the package is."""
    n = _prefix_counts.get(role, 0)
    _prefix_counts[role] = n + 1
    return f"multiscale_{role}_{n}_"


# -- options ------------------------------------------------------------------------------------
def direct_solver_options(symmetric: bool = False) -> dict[str, Any]:
    """A sparse direct solve with MUMPS: Cholesky (:math:`LDL^T`) for a symmetric matrix, LU
    otherwise, with 100 % workspace headroom (``ICNTL(14)``).

    MUMPS sizes its workspace from the analysis and fails (``INFOG(1) = -9``) when numerical
    pivoting delays more pivots than predicted, which varies with the parallel partition (and
    dolfinx 0.11 partitions differently from run to run): MUMPS's own default is 20 %."""
    return {
        "ksp_type": "preonly",
        "pc_type": "cholesky" if symmetric else "lu",
        "pc_factor_mat_solver_type": "mumps",
        "mat_mumps_icntl_14": 100,
    }


def newton_options(symmetric: bool = False, **overrides: Any) -> dict[str, Any]:
    """Full Newton steps (``snes_linesearch_type basic``), residual tolerances
    ``snes_rtol 1e-9``, ``snes_atol 1e-12``, no step test (``snes_stol 0``), at most 25
    iterations, and :func:`direct_solver_options`; ``overrides`` replace entries."""
    options: dict[str, Any] = {
        "snes_type": "newtonls",
        "snes_linesearch_type": "basic",
        "snes_rtol": 1.0e-9,
        "snes_atol": 1.0e-12,
        "snes_stol": 0.0,
        "snes_max_it": 25,
        **direct_solver_options(symmetric),
    }
    options.update(overrides)
    return options


# -- collective failure -------------------------------------------------------------------------
def agree(comm: MPI.Comm, error: BaseException | str | None) -> str | None:
    """The error of the lowest failing rank (a message naming it, and how many others failed),
    or ``None`` when no rank failed.  Collective on ``comm``; the result is the same on every
    rank."""
    if isinstance(error, BaseException):
        error = f"{type(error).__name__}: {error}" if not str(error) else str(error)
    if comm.size == 1:
        return error
    messages = comm.allgather(error)
    failed = [(rank, m) for rank, m in enumerate(messages) if m]
    if not failed:
        return None
    rank, message = failed[0]
    more = f" (and {len(failed) - 1} more rank(s))" if len(failed) > 1 else ""
    return f"rank {rank}: {message}{more}"


# -- assembly ---------------------------------------------------------------------------------
class Assembly(Protocol):
    """What :class:`NewtonSolver` needs to know of a discrete problem."""

    comm: MPI.Comm

    def create_matrix(self) -> PETSc.Mat: ...

    def create_vector(self) -> PETSc.Vec: ...

    def set_iterate(self, x: PETSc.Vec) -> None:
        """Copy the iterate ``x`` into the problem's unknown (ghosts and slaves updated)."""

    def residual(self, x: PETSc.Vec, b: PETSc.Vec) -> None:
        """:math:`R(x)` into ``b`` (the unknown already holds ``x``)."""

    def jacobian(self, A: PETSc.Mat) -> None:
        """:math:`\\partial R/\\partial x` into ``A`` at the unknown's current value."""


class FormAssembly:
    """Residual and Jacobian of compiled forms ``F(u; v)`` and ``J = dF/du`` with Dirichlet
    conditions ``bcs``.

    The residual at the iterate :math:`x` carries :math:`x - g` on the constrained rows and the
    lifting of :math:`J (g - x)` elsewhere (as dolfinx's ``NonlinearProblem`` does), so the first
    Newton step moves the boundary to new values :math:`g` and later steps keep it there.
    """

    def __init__(
        self,
        F: dolfinx.fem.Form,
        J: dolfinx.fem.Form,
        u: dolfinx.fem.Function,
        bcs: Sequence[dolfinx.fem.DirichletBC] = (),
    ) -> None:
        self.F, self.J, self.u = F, J, u
        self.bcs = list(bcs)
        self.comm: MPI.Comm = u.function_space.mesh.comm

    def create_matrix(self) -> PETSc.Mat:
        return dolfinx.fem.petsc.create_matrix(self.J)

    def create_vector(self) -> PETSc.Vec:
        return create_vector(self.F)

    def set_iterate(self, x: PETSc.Vec) -> None:
        x.copy(self.u.x.petsc_vec)
        self.u.x.scatter_forward()

    def residual(self, x: PETSc.Vec, b: PETSc.Vec) -> None:
        with b.localForm() as b_local:
            b_local.set(0.0)
        dolfinx.fem.petsc.assemble_vector(b, self.F)
        dolfinx.fem.petsc.apply_lifting(
            b, [self.J], bcs=[self.bcs], x0=[self.u.x.petsc_vec], alpha=-1.0
        )
        b.ghostUpdate(addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(b, self.bcs, x, -1.0)

    def jacobian(self, A: PETSc.Mat) -> None:
        A.zeroEntries()
        dolfinx.fem.petsc.assemble_matrix(A, self.J, bcs=self.bcs)
        A.assemble()


# -- ownership ----------------------------------------------------------------------------------
class PETScOwner:
    """Frees what it owns (PETSc objects, or other owners) in :meth:`destroy`, which is
    idempotent and safe after a half-finished ``__init__``, and on leaving a ``with`` block.

    :meth:`destroy` is collective for parallel objects (a MUMPS factor, say, is freed by all
    its ranks together), so garbage collection never calls it: the collector reaches a
    reference cycle (a solver and the SNES whose callbacks it holds) at a moment of its own on
    each rank, and a collective call there would pair with some other collective on another
    rank and hang the job.  Instead ``__del__`` frees the serial objects at once and lets go of
    the rest: petsc4py hands parallel objects to PETSc's garbage list, which
    :func:`free_garbage` (and :meth:`destroy`) empty collectively."""

    def _own(self, obj: Any) -> Any:
        """Register ``obj`` (anything with ``destroy()``) and return it."""
        self.__dict__.setdefault("_owned", []).append(obj)
        return obj

    def destroy(self) -> None:
        """Free everything owned, last made first (collective; safe to call twice)."""
        owned = self.__dict__.get("_owned", [])
        while owned:
            owned.pop().destroy()
        comm = self.__dict__.get("comm")
        if isinstance(comm, MPI.Comm) and comm != MPI.COMM_NULL and comm.size > 1:
            PETSc.garbage_cleanup(comm)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def __del__(self) -> None:
        owned = self.__dict__.pop("_owned", [])
        while owned:
            obj = owned.pop()
            if isinstance(obj, PETSc.Object) and obj.handle and obj.getComm().getSize() == 1:
                obj.destroy()


def free_garbage(comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """Collect Python garbage, then free collectively the parallel PETSc objects it released
    on ``comm`` (see :class:`PETScOwner`).  Collective on ``comm``."""
    gc.collect()
    PETSc.garbage_cleanup(comm)


# -- Newton -------------------------------------------------------------------------------------
_REASONS = {
    int(v): k
    for k, v in vars(PETSc.SNES.ConvergedReason).items()
    if k.isupper() and k != "ITERATING"
}


@dataclass(slots=True)
class NewtonOutcome:
    """How a Newton solve ended (identical on all ranks): ``converged``, the SNES ``reason``,
    ``iterations``, the residual norms (initial one first) and, for a failure, its ``cause``."""

    converged: bool
    reason: int
    iterations: int
    residuals: list[float] = field(default_factory=list)
    cause: str | None = None


class NewtonSolver(PETScOwner):
    """Newton's method (PETSc SNES) on the residual an :class:`Assembly` provides.

    Parameters
    ----------
    assembly:
        The residual and Jacobian.
    petsc_options_prefix:
        Options prefix of the SNES and its KSP/PC (default :func:`unique_prefix` of ``role``).
    petsc_options:
        Overrides of ``defaults`` (themselves on top of :func:`newton_options`), set under the
        prefix for ``setFromOptions`` only (see :func:`~multiscale.petsc_options.prefixed_options`),
        except those a direct solver reads when it factorizes (``mat_mumps_*``, see
        :func:`~multiscale.petsc_options.factor_options`): SNES factorizes inside :meth:`solve`,
        so these stay in the database under the solver's own prefix until :meth:`destroy`.
    defaults:
        The solver's own defaults.
    min_iterations:
        Newton steps always taken (1: the last factorized Jacobian is that of the solution).
    symmetric:
        The Jacobian is symmetric (marked so for a Cholesky factorization).
    role:
        Name of the default prefix.
    name:
        What the solver is called in failure messages (``"macro Newton"``, ...).
    on_iterate:
        Called by :meth:`evaluate` with each iterate after it is copied into the unknown: the
        problem's pointwise work (micro solves, checks), which may raise on any rank.
    step_scale, residual_reference:
        Replace the methods of those names (the problem's scales, see the module docstring).

    Collective on ``assembly.comm``.  Use as a context manager, or call :meth:`destroy`.
    """

    def __init__(
        self,
        assembly: Assembly,
        *,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
        defaults: Mapping[str, Any] | None = None,
        min_iterations: int = 0,
        symmetric: bool = False,
        role: str = "newton",
        name: str = "Newton",
        on_iterate: Callable[[PETSc.Vec], None] | None = None,
        step_scale: Callable[[], float] | None = None,
        residual_reference: Callable[[float], float] | None = None,
    ) -> None:
        self._snes: PETSc.SNES | None = None
        self._kept: list[str] = []  # factorization options left in the database
        self._start: PETSc.Vec | None = None  # the initial iterate, for a repeated solve
        self.name = name
        self._on_iterate = on_iterate
        if step_scale is not None:
            self.step_scale = step_scale  # type: ignore[method-assign]
        if residual_reference is not None:
            self.residual_reference = residual_reference  # type: ignore[method-assign]
        self.assembly = assembly
        self.comm: MPI.Comm = assembly.comm
        self.min_iterations = int(min_iterations)
        self.prefix = petsc_options_prefix or unique_prefix(role)
        options = newton_options(symmetric)
        options.update(defaults or {})
        options.update(petsc_options or {})
        self.petsc_options = options
        self.A: PETSc.Mat = self._own(assembly.create_matrix())
        if symmetric:
            self.A.setOption(PETSc.Mat.Option.SYMMETRIC, True)
            self.A.setOption(PETSc.Mat.Option.SYMMETRY_ETERNAL, True)
        self.b: PETSc.Vec = self._own(assembly.create_vector())
        self.x: PETSc.Vec = self._own(self.b.duplicate())
        self._at: PETSc.Vec = self._own(self.b.duplicate())  # the iterate evaluate() last saw
        self._at_valid = False
        self._residuals: list[float] = []
        #: accumulated wall seconds: ``evaluate`` (the hook), ``agree`` (the failure
        #: agreement), ``residual`` and ``jacobian`` (assembly) and ``solve`` (all of SNES)
        self.timings = dict.fromkeys(("evaluate", "agree", "residual", "jacobian", "solve"), 0.0)
        #: residual and Jacobian assemblies so far (the latter: Newton iterations)
        self.counts = {"residuals": 0, "jacobians": 0}
        self._failure: str | None = None
        self._f0 = 0.0
        #: norm of the first Newton step of the current solve
        self.first_step = 0.0
        snes = self._snes = self._own(PETSc.SNES().create(self.comm))
        snes.setOptionsPrefix(self.prefix)
        snes.setFunction(self._snes_residual, self.b)
        snes.setJacobian(self._snes_jacobian, self.A)
        snes.setConvergenceTest(self._snes_converged)
        snes.setMonitor(self._snes_monitor)
        self.set_options({})

    @property
    def snes(self) -> PETSc.SNES:
        assert self._snes is not None, "the solver was destroyed"
        return self._snes

    def set_options(self, overrides: Mapping[str, Any]) -> None:
        """Re-apply the options with ``overrides`` on top (e.g. a line search for a retry);
        ``set_options({})`` restores :attr:`petsc_options`."""
        options = {**self.petsc_options, **overrides}
        with prefixed_options(self.prefix, options):
            self.snes.setFromOptions()
            self.snes.getKSP().setFromOptions()
        self._forget_factor_options()
        for key, value in factor_options(options).items():
            self._keep(key, value)

    def _keep(self, key: str, value: Any) -> None:
        """Put a factorization option in the database under the prefix until :meth:`destroy`
        (a factorization reads it inside ``SNESSolve``, after ``setFromOptions``)."""
        name = f"{self.prefix}{key}"
        PETSc.Options()[name] = value
        if name not in self._kept:
            self._kept.append(name)

    def _forget_factor_options(self) -> None:
        kept = self.__dict__.get("_kept", [])
        db = PETSc.Options()
        while kept:
            db.delValue(kept.pop())

    # -- hooks ------------------------------------------------------------------------------------
    def evaluate(self, x: PETSc.Vec) -> None:
        """Bring the problem to the iterate ``x``: copy it into the unknown, then call
        ``on_iterate`` (pointwise work that may fail on some ranks only; see the module
        docstring)."""
        self.assembly.set_iterate(x)
        if self._on_iterate is not None:
            self._on_iterate(x)

    def step_scale(self) -> float:
        """:math:`s` of the step test (0: relative to :math:`\\|x\\|` alone)."""
        return 0.0

    def residual_reference(self, f0: float) -> float:
        """:math:`\\rho` of the residual test, given the initial residual ``f0``; only asked for
        when the residual is not yet below :math:`\\tau_r f_0`."""
        return f0

    # -- SNES callbacks ---------------------------------------------------------------------------
    def _evaluate_collectively(self, x: PETSc.Vec) -> bool:
        # only the message is kept: the exception's traceback would hold the callback's PETSc
        # objects alive on this rank past destroy(), whose collective frees then hang
        error: str | None = None
        t0 = time.perf_counter()
        try:
            self.evaluate(x)
        except Exception as err:
            error = f"{type(err).__name__}: {err}" if not str(err) else str(err)
            log.debug("evaluation failed on this rank", exc_info=True)
        t1 = time.perf_counter()
        message = agree(self.comm, error)
        self.timings["evaluate"] += t1 - t0
        self.timings["agree"] += time.perf_counter() - t1
        # the latest failure is the cause if SNES stops; a line search that backs off to an
        # admissible iterate clears it
        self._failure = message
        if message is not None:
            self._at_valid = False
            return False
        x.copy(self._at)
        self._at_valid = True
        return True

    def _snes_residual(self, snes: PETSc.SNES, x: PETSc.Vec, b: PETSc.Vec) -> None:
        if not self._evaluate_collectively(x):
            b.set(np.nan)  # a failed iterate: SNES stops, or a line search backs off
            return
        t0 = time.perf_counter()
        self.assembly.residual(x, b)
        self.timings["residual"] += time.perf_counter() - t0
        self.counts["residuals"] += 1

    def _is_current(self, x: PETSc.Vec) -> bool:
        stale = not self._at_valid or not np.array_equal(self._at.array_r, x.array_r)
        if self.comm.size > 1:
            stale = self.comm.allreduce(stale, op=MPI.LOR)
        return not stale

    def _snes_jacobian(self, snes: PETSc.SNES, x: PETSc.Vec, A: PETSc.Mat, P: PETSc.Mat) -> None:
        # newtonls asks for the Jacobian where it evaluated the residual last; a line search
        # may have moved on, and then the problem is brought back to x first
        if not self._is_current(x) and not self._evaluate_collectively(x):
            return  # the next residual is NaN: SNES stops
        t0 = time.perf_counter()
        self.assembly.jacobian(A)
        self.timings["jacobian"] += time.perf_counter() - t0
        self.counts["jacobians"] += 1

    def _snes_monitor(self, snes: PETSc.SNES, it: int, fnorm: float) -> None:
        self._residuals.append(float(fnorm))

    def _snes_converged(self, snes: PETSc.SNES, it: int, norms: tuple[float, float, float]) -> int:
        xnorm, snorm, fnorm = norms
        reasons = PETSc.SNES.ConvergedReason
        if not np.isfinite(fnorm):
            return reasons.DIVERGED_FNORM_NAN
        if it == 0:
            self._f0 = fnorm
        elif it == 1:
            self.first_step = snorm
        rtol, atol, stol, max_it = snes.getTolerances()
        if it >= self.min_iterations:
            small = fnorm <= max(atol, rtol * self._f0)
            if not small and it > 0:
                small = fnorm <= rtol * self.residual_reference(self._f0)
            if small and it == 0:
                return reasons.CONVERGED_FNORM_ABS
            if small and (stol <= 0.0 or snorm <= stol * (xnorm + self.step_scale())):
                return reasons.CONVERGED_FNORM_RELATIVE
        if it >= max_it:
            return reasons.DIVERGED_MAX_IT
        return reasons.ITERATING

    # -- solve ------------------------------------------------------------------------------------
    def solve(self) -> NewtonOutcome:
        """Newton from the current content of :attr:`x`, which holds the result.  Collective;
        never raises for a failure to converge (see :class:`NewtonOutcome`).  On success the
        problem has been evaluated at the solution.

        A MUMPS factorization whose workspace proved too small (``INFOG(1)`` -8 or -9, which
        depends on the parallel partition) is not a failure of Newton: the solve is repeated
        from the same start with four times the headroom (``ICNTL(14)``, at least 100 %), twice at
        most."""
        if self._start is None:
            self._start = self._own(self.x.duplicate())
        self.x.copy(self._start)
        for attempt in range(1 + WORKSPACE_RETRIES):
            outcome, mumps = self._solve_once()
            if outcome.converged or mumps not in MUMPS_WORKSPACE or attempt == WORKSPACE_RETRIES:
                return outcome
            headroom = max(4 * int(self.petsc_options.get("mat_mumps_icntl_14", 20)), 100)
            self.petsc_options["mat_mumps_icntl_14"] = headroom
            self._keep("mat_mumps_icntl_14", headroom)
            log.info(
                "%s: MUMPS workspace too small (INFOG(1) = %d); ICNTL(14) = %d and again",
                self.name,
                mumps,
                headroom,
            )
            self._start.copy(self.x)
        raise AssertionError("unreachable")

    def _solve_once(self) -> tuple[NewtonOutcome, int | None]:
        """One SNES solve: the outcome, and MUMPS's INFOG(1) if its factorization failed."""
        self._residuals = []
        self._failure = None
        self._at_valid = False
        self.first_step = 0.0
        petsc_error = None
        t0 = time.perf_counter()
        try:
            self.snes.solve(None, self.x)
        except PETSc.Error as err:  # from a callback or a factorization: every rank sees it
            petsc_error = f"PETSc error {err.ierr} in the Newton solve"
        self.timings["solve"] += time.perf_counter() - t0
        petsc_error = agree(self.comm, petsc_error)
        reason = int(self.snes.getConvergedReason())
        linear, mumps = "", None
        if petsc_error is not None or reason == PETSc.SNES.ConvergedReason.DIVERGED_LINEAR_SOLVE:
            linear = pc_failure(self.snes.getKSP())
            info = mumps_error(self.snes.getKSP())
            mumps = self.comm.allreduce(info[0] if info else 0, op=MPI.MIN) or None
            # a failed factorization leaves the factor in an error state that PETSc would hit
            # again in the next solve, even with a good matrix: drop it (collective)
            self.snes.getKSP().reset()
        its = int(self.snes.getIterationNumber())
        converged = reason > 0 and petsc_error is None and self._failure is None
        if converged and not self._is_current(self.x):
            converged = self._evaluate_collectively(self.x)
        cause = None
        if not converged:
            cause = self._failure or petsc_error or self._describe(reason, its)
            cause += linear
        return NewtonOutcome(converged, reason, its, list(self._residuals), cause), mumps

    def _describe(self, reason: int, its: int) -> str:
        name = _REASONS.get(reason, str(reason))
        last = f", residual {self._residuals[-1]:.3e}" if self._residuals else ""
        first = f" (initial {self._residuals[0]:.3e})" if len(self._residuals) > 1 else ""
        return (
            f"{self.name} ({self.prefix}) did not converge: {name} after {its} iterations"
            f"{last}{first}"
        )

    def destroy(self) -> None:
        super().destroy()
        self._snes = None
        self._forget_factor_options()

    def __del__(self) -> None:
        super().__del__()
        self._forget_factor_options()  # the options database is per process: no collective


# -- load stepping ------------------------------------------------------------------------------
@dataclass(slots=True)
class StepRecord:
    """One converged load step, the same on every rank: the load ``factor``, Newton
    ``iterations`` and ``residuals``, the ``cuts`` it took to reach its target, wall
    ``seconds``, the reaction force on each named boundary and method-specific scalar
    ``quantities`` (RVE solves, Hill–Mandel residual, maximum plastic strain, ...)."""

    factor: float
    iterations: int
    residuals: list[float]
    cuts: int
    seconds: float
    reactions: dict[str, list[float]] = field(default_factory=dict)
    quantities: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LoadStepError(CollectiveError):
    """A load step failed after all allowed cuts (raised on every rank)."""

    def __init__(self, start: float, target: float, step: float, cuts: int, cause: str) -> None:
        self.start, self.target, self.step, self.cuts, self.cause = start, target, step, cuts, cause
        super().__init__(
            f"load step from factor {start:.6g} towards {target:.6g} failed after {cuts} cuts "
            f"(last step {step:.3g}): {cause}"
        )


class Steppable(Protocol):
    """A problem the :class:`LoadStepper` can drive (every method is collective)."""

    comm: MPI.Comm

    def set_load(self, factor: float) -> None:
        """Boundary values, tractions or sources at load factor ``factor``."""

    def attempt(self) -> NewtonOutcome:
        """Solve at the current load from the committed state."""

    def commit(self) -> None:
        """Accept the solution of the last attempt (fields and internal variables)."""

    def rollback(self) -> None:
        """Return to the committed state after a failed attempt."""

    def record(self, step: StepRecord) -> None:
        """Fill ``step.reactions`` and ``step.quantities`` of the committed state."""


class LoadStepper:
    """Follows load factors with step cutting, regrowth, commit and rollback.

    Parameters
    ----------
    problem:
        The :class:`Steppable` problem.
    max_cuts:
        How often the step towards one target factor may be halved before
        :class:`LoadStepError`.
    regrow_after:
        After a cut, the step doubles again (up to the remaining distance) after this many
        converged sub-steps in a row.
    on_step:
        Called with each :class:`StepRecord` after the commit (output, progress).
    label:
        Name of the problem in the log.

    :attr:`steps` and :attr:`failed_attempts` grow with every call of :meth:`run`.
    :meth:`export_state` and :meth:`import_state` suspend a run after a converged step and
    resume it in another process (a checkpoint and restart), on the same path of step sizes.
    """

    def __init__(
        self,
        problem: Steppable,
        *,
        max_cuts: int = 6,
        regrow_after: int = 2,
        on_step: Callable[[StepRecord], None] | None = None,
        label: str = "",
    ) -> None:
        if int(max_cuts) < 0 or int(regrow_after) < 1:
            raise ValueError(
                f"need max_cuts >= 0 and regrow_after >= 1, got {max_cuts}, {regrow_after}"
            )
        self.problem = problem
        self.max_cuts = int(max_cuts)
        self.regrow_after = int(regrow_after)
        self.on_step = on_step
        self.label = label
        self.factor = 0.0
        self.steps: list[StepRecord] = []
        self.failed_attempts: list[dict[str, Any]] = []
        self._targets: list[float] = []  # of the run in progress
        self._index = 0  # the target being reached
        self._progress: dict[str, float] = {}  # step size, cuts and streak towards it
        self._resume: dict[str, Any] | None = None  # from import_state, for the next run

    def run(self, factors: Sequence[float]) -> list[StepRecord]:
        """Reach every factor of ``factors`` in turn (collective); returns :attr:`steps`.
        After :meth:`import_state`, ``factors`` must be those of the exported run, which
        continues where it was."""
        targets = [float(f) for f in factors]
        if not targets or not np.all(np.isfinite(targets)):
            raise ValueError(f"load factors must be a non-empty list of finite numbers: {factors}")
        first, progress = self._resume_point(targets)
        self._targets = targets
        for i in range(first, len(targets)):
            self._index = i
            self._reach(targets[i], progress if i == first else None)
        self._index = len(targets)
        return self.steps

    # -- resuming ---------------------------------------------------------------------------------
    def export_state(self) -> dict[str, Any]:
        """Everything :meth:`import_state` needs to continue the run in progress (JSON-able;
        the same on every rank): the committed ``factor``, the run's ``targets``, the ``index``
        of the one being reached and the ``progress`` towards it (current step size, cuts,
        converged sub-steps since the last cut), and the :attr:`steps` and
        :attr:`failed_attempts` records.  Exported from ``on_step``, it describes the state
        right after that step's commit."""
        return {
            "factor": self.factor,
            "targets": list(self._targets),
            "index": self._index,
            "progress": dict(self._progress),
            "steps": [s.to_dict() for s in self.steps],
            "failed_attempts": [dict(a) for a in self.failed_attempts],
        }

    def import_state(self, state: Mapping[str, Any]) -> None:
        """Take over an :meth:`export_state`: the records (the lists are updated in place, so
        whoever holds them sees the restored ones), the factor, and where the next :meth:`run`
        continues.  The problem's own committed state is restored by the caller."""
        self.factor = float(state["factor"])
        self.steps[:] = [StepRecord(**s) for s in state["steps"]]
        self.failed_attempts[:] = [dict(a) for a in state["failed_attempts"]]
        self._resume = {
            "targets": [float(t) for t in state["targets"]],
            "index": int(state["index"]),
            "progress": dict(state["progress"]),
        }

    def _resume_point(self, targets: list[float]) -> tuple[int, dict[str, float] | None]:
        """The first target to reach and the progress towards it (after
        :meth:`import_state`; else 0 and none)."""
        resume, self._resume = self._resume, None
        if resume is None:
            return 0, None
        saved = resume["targets"]
        if len(saved) != len(targets) or not np.allclose(saved, targets, rtol=0.0, atol=1e-12):
            raise ValueError(
                f"the load factors {targets} are not those of the resumed run ({saved})"
            )
        return resume["index"], resume["progress"] or None

    def _reach(self, target: float, progress: Mapping[str, float] | None = None) -> None:
        start = self.factor
        step = target - start
        tol = 1e-12 * max(1.0, abs(target))
        cuts = streak = 0
        if progress:
            step, cuts, streak = (
                float(progress["step"]),
                int(progress["cuts"]),
                int(progress["streak"]),
            )
        self._progress = {"step": step, "cuts": cuts, "streak": streak}
        while abs(target - start) > tol:
            remaining = target - start
            step_now = step if abs(step) < abs(remaining) else remaining
            trial = start + step_now
            t0 = time.perf_counter()
            self.problem.set_load(trial)
            outcome = self.problem.attempt()
            if outcome.converged:
                self.problem.commit()
                self.factor = start = trial
                streak += 1
                if cuts and streak % self.regrow_after == 0:
                    step *= 2.0
                self._progress = {"step": step, "cuts": cuts, "streak": streak}
                self._record(trial, outcome, cuts, time.perf_counter() - t0)
                continue
            cause = outcome.cause or "Newton did not converge"
            self.failed_attempts.append(
                {"from": start, "to": trial, "cause": cause, "residuals": outcome.residuals}
            )
            self.problem.rollback()
            self.problem.set_load(start)
            cuts += 1
            streak = 0
            if cuts > self.max_cuts:
                raise LoadStepError(start, target, step_now, self.max_cuts, cause)
            step = 0.5 * step_now
            log.warning(
                "%sstep to factor %.4g failed (%s); retrying with step %.4g",
                f"{self.label}: " if self.label else "",
                trial,
                cause,
                step,
            )

    def _record(self, factor: float, outcome: NewtonOutcome, cuts: int, seconds: float) -> None:
        comm = self.problem.comm
        record = StepRecord(
            factor=factor,
            iterations=outcome.iterations,
            residuals=outcome.residuals,
            cuts=cuts,
            seconds=float(comm.allreduce(seconds, op=MPI.MAX)),
        )
        self.problem.record(record)
        self.steps.append(record)
        if self.on_step is not None:
            self.on_step(record)


class SteppedProblem(PETScOwner):
    """The :class:`Steppable` shell of a problem whose unknown ``u`` follows load factors: the
    Newton solver, the committed copy of ``u``, ``attempt``/``commit``/``rollback`` and the
    :class:`LoadStepper`; every load-stepped method of the package (the FE² macro problem and
    its DNS, the HMM macro problem and its DNS) is one.

    A subclass sets ``comm`` and ``u``, calls :meth:`_init_stepping` with its assembly, and
    defines :meth:`set_load`; it may extend :meth:`on_iterate` (pointwise work at each iterate;
    it may raise, after reaching every collective the other ranks reach), :meth:`commit`,
    :meth:`rollback` (its own history, after calling these) and :meth:`record` (what a
    :class:`StepRecord` should carry).  ``role`` names the default options prefix and
    ``newton_name`` the solver in failure messages.
    """

    role = "problem"
    newton_name = "Newton"
    comm: MPI.Comm
    u: dolfinx.fem.Function

    def _init_stepping(
        self,
        assembly: Assembly,
        *,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
        defaults: Mapping[str, Any] | None = None,
        symmetric: bool = False,
        max_cuts: int = 6,
        regrow_after: int = 2,
        on_step: Callable[[StepRecord], None] | None = None,
    ) -> None:
        """The Newton solver, the committed state and the load stepper."""
        self.newton = self._own(
            NewtonSolver(
                assembly,
                petsc_options_prefix=petsc_options_prefix,
                petsc_options=petsc_options,
                defaults=defaults,
                symmetric=symmetric,
                role=self.role,
                name=self.newton_name,
                on_iterate=self.on_iterate,
            )
        )
        self.prefix = self.newton.prefix
        self.petsc_options = self.newton.petsc_options
        self._committed = self._own(self.u.x.petsc_vec.copy())
        self.stepper = LoadStepper(
            self, max_cuts=max_cuts, regrow_after=regrow_after, on_step=on_step, label=self.role
        )

    def set_load(self, factor: float) -> None:
        """Boundary values, tractions or sources at load factor ``factor``."""
        raise NotImplementedError

    def on_iterate(self, x: PETSc.Vec) -> None:
        """Pointwise work at each Newton iterate (after ``u`` holds it); may raise."""

    def attempt(self) -> NewtonOutcome:
        """Newton at the current load from the committed ``u``."""
        self._committed.copy(self.newton.x)
        return self.newton.solve()

    def commit(self) -> None:
        """Accept the last attempt: ``u`` (already at the solution) becomes the committed one."""
        self.u.x.petsc_vec.copy(self._committed)

    def rollback(self) -> None:
        """Back to the committed ``u``."""
        self._committed.copy(self.u.x.petsc_vec)
        self.u.x.scatter_forward()

    def record(self, step: StepRecord) -> None:
        """Fill what a converged step records beyond the Newton history (nothing here)."""
