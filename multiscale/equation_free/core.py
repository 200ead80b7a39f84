r"""The equation-free core: micro simulator, lifting, restriction, the coarse time-stepper,
coarse projective integration and coarse steady states by matrix-free Newton–Krylov.

**Operators.**  A micro simulator advances a micro state :math:`u` by an inner step
:math:`\delta t` (:class:`MicroSimulator`).  *Lifting* :math:`\mathcal L(U, u_{ref})` makes a
micro state whose restriction is the coarse state :math:`U` (using the fine-scale information of
a reference state where one is given); *restriction* :math:`\mathcal R(u)` returns the coarse
variables (averages, moments).  The coarse time-stepper is

.. math::
    \Phi_T(U) = \mathcal R\big(S_{\delta t}^{\,n}(\mathcal L(U))\big), \qquad T = n\,\delta t .

*Healing* (constrained runs): before the burst, ``healing`` times
:math:`u \leftarrow \mathcal L(U, S_{\delta t}(u))`, one micro step with the coarse variables
reset to :math:`U` after it, so the fast variables relax towards the slow manifold at frozen
:math:`U` without the coarse state moving.

**Projective integration** (Gear and Kevrekidis).  A burst of :math:`k+1` inner steps from
:math:`U_n` gives :math:`U_{n,k}, U_{n,k+1}` and the slope
:math:`D = (U_{n,k+1} - U_{n,k})/\delta t`; projective forward Euler (PFE) extrapolates over
:math:`\Delta = M\,\delta t`:

.. math::
    U_{n+1} = U_{n,k+1} + \Delta\,D, \qquad H = (k+1)\,\delta t + \Delta .

For a linear micro system with inner forward Euler (:math:`s = 1 + \delta t\,\lambda` for an
eigenvalue :math:`\lambda`, identity lifting and restriction) each eigenmode is multiplied by

.. math::
    \sigma_{PFE}(\lambda) = s^k\big((M+1)\,s - M\big).

The second-order projective Runge–Kutta scheme (PRK2, a projective Heun method) takes a second
burst from the PFE predictor :math:`P` for a slope :math:`D_2` and integrates the slope
interpolated linearly between the times of :math:`D` and :math:`D_2` (a distance :math:`H` apart)
over the projective interval:

.. math::
    U_{n+1} = U_{n,k+1} + \Delta\big((1-w)\,D + w\,D_2\big), \quad w = \frac{\Delta + \delta t}{2H},
    \qquad \sigma_{PRK2} = s^{k+1} + M (s-1)\, s^k \big(1 - w + w\,\sigma_{PFE}\big).

With ``anchor="lift"`` (patch dynamics: the burst only estimates the slope, as when the
restriction of the micro state differs from :math:`U` by a lifting artefact) the step starts from
:math:`U_n` itself: :math:`U_{n+1} = U_n + H D` (factor :math:`1 + H\lambda s^k`), and PRK2 uses
:math:`U_n + H((1-w) D + w D_2)` with :math:`w = \tfrac12 - (k+\tfrac12)\,\delta t/H` (factor
:math:`1 + q + w q^2`, :math:`q = H \lambda s^k`).  The fast part of :math:`U_n` is then not
damped (:math:`\sigma \to 1` for :math:`s^k \to 0`): the coarse variables must be slow ones.

**Steady states.**  :class:`CoarseNewtonKrylov` solves :math:`G(U) = \Phi_T(U) - U = 0` with
the package's :class:`~multiscale.nonlinear.NewtonSolver` (PETSc SNES) and a matrix-free shell
Jacobian, :math:`J v \approx (G(U + h v) - G(U))/h` with :math:`h = \sqrt{\epsilon_{mach}}
(1 + \|U\|)/\|v\|`, inverted by unpreconditioned GMRES; the coarse vector is distributed over
``comm`` and gathered for each evaluation of :math:`\Phi_T` (which may itself be collective).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.nonlinear import NewtonOutcome, NewtonSolver, PETScOwner

__all__ = [
    "SCHEMES",
    "CoarseNewtonKrylov",
    "CoarseStepper",
    "Lifting",
    "MicroCoarseStepper",
    "MicroSimulator",
    "NewtonKrylovResult",
    "ProjectiveSettings",
    "Restriction",
    "amplification_factor",
    "projective_integrate",
    "projective_step",
    "simulate",
]

#: Projective schemes: forward Euler and the second-order Runge–Kutta (Heun) variant.
SCHEMES = ("pfe", "prk2")
_ANCHORS = ("burst", "lift")


class MicroSimulator(Protocol):
    """A black-box fine-scale simulator."""

    def advance(self, state: Any, dt: float) -> Any:
        """The state one inner step ``dt`` later."""


#: :math:`\mathcal L(U, u_{ref})`: a micro state with restriction ``U`` (``u_ref`` may be None).
Lifting = Callable[[np.ndarray, Any], Any]
#: :math:`\mathcal R(u)`: the coarse variables of a micro state.
Restriction = Callable[[Any], np.ndarray]


class CoarseStepper(Protocol):
    """What the projective integrators need: restrictions along a short micro burst."""

    dt: float

    def burst(self, U: np.ndarray, steps: int) -> np.ndarray:
        """Restrictions ``(steps + 1, n)`` at ``j dt``, ``j = 0..steps``, from lifted ``U``
        (row 0 after any healing).  Collective where the micro simulator is."""


class MicroCoarseStepper:
    """The coarse time-stepper :math:`\\Phi` of a micro simulator with lifting and restriction
    (see the module docstring); ``healing`` constrained micro steps precede every burst.
    :attr:`micro_steps` counts the inner steps taken (the cost of the method)."""

    def __init__(
        self,
        simulator: MicroSimulator,
        lift: Lifting,
        restrict: Restriction,
        dt: float,
        healing: int = 0,
    ) -> None:
        if not (math.isfinite(dt) and dt > 0) or int(healing) < 0:
            raise ValueError(f"need dt > 0 and healing >= 0, got {dt}, {healing}")
        self.simulator, self.lift, self.restrict = simulator, lift, restrict
        self.dt, self.healing = float(dt), int(healing)
        self.micro_steps = 0

    def heal(self, U: np.ndarray) -> Any:
        """:math:`\\mathcal L(U)` followed by ``healing`` constrained steps."""
        state = self.lift(U, None)
        for _ in range(self.healing):
            state = self.lift(U, self.simulator.advance(state, self.dt))
        self.micro_steps += self.healing
        return state

    def burst(self, U: np.ndarray, steps: int) -> np.ndarray:
        state = self.heal(np.asarray(U, dtype=float))
        out = [np.asarray(self.restrict(state), dtype=float)]
        for _ in range(int(steps)):
            state = self.simulator.advance(state, self.dt)
            out.append(np.asarray(self.restrict(state), dtype=float))
        self.micro_steps += int(steps)
        return np.array(out)

    def __call__(self, U: np.ndarray, steps: int) -> np.ndarray:
        """:math:`\\Phi_T(U)` with :math:`T` = ``steps`` inner steps."""
        return self.burst(U, steps)[-1]


def simulate(simulator: MicroSimulator, state: Any, dt: float, steps: int) -> Any:
    """The micro simulator alone over ``steps`` inner steps (the reference cost)."""
    for _ in range(int(steps)):
        state = simulator.advance(state, dt)
    return state


# -- projective integration -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProjectiveSettings:
    """Coarse projective integration: inner step ``dt``, ``k`` (the burst has ``k + 1`` inner
    steps; the slope comes from the last one), projective step ``Delta`` (:math:`M\\,\\delta t`),
    ``scheme`` (``"pfe"`` or ``"prk2"``) and ``anchor`` (``"burst"``: extrapolate from the end
    of the burst; ``"lift"``: from :math:`U_n`)."""

    dt: float
    k: int
    Delta: float
    scheme: str = "pfe"
    anchor: str = "burst"

    def __post_init__(self) -> None:
        if not (self.dt > 0 and self.Delta >= 0 and int(self.k) >= 0):
            raise ValueError(f"need dt > 0, Delta >= 0, k >= 0: {self}")
        if self.scheme not in SCHEMES or self.anchor not in _ANCHORS:
            raise ValueError(f"scheme in {SCHEMES}, anchor in {_ANCHORS}; got {self}")

    @property
    def H(self) -> float:
        """The coarse step :math:`(k+1)\\,\\delta t + \\Delta`."""
        return (self.k + 1) * self.dt + self.Delta

    @property
    def M(self) -> float:
        return self.Delta / self.dt

    def weight(self) -> float:
        """:math:`w` of PRK2 (module docstring)."""
        if self.anchor == "burst":
            return (self.Delta + self.dt) / (2.0 * self.H)
        return 0.5 - (self.k + 0.5) * self.dt / self.H


def amplification_factor(lam: np.ndarray | complex, s: ProjectiveSettings) -> np.ndarray:
    """:math:`\\sigma(\\lambda)` of one projective step for :math:`u' = \\lambda u` with inner
    forward Euler and identity lifting/restriction (module docstring)."""
    lam = np.asarray(lam)
    z = 1.0 + s.dt * lam
    k, M, w = s.k, s.M, s.weight()
    if s.anchor == "burst":
        pfe = z**k * ((M + 1.0) * z - M)
        if s.scheme == "pfe":
            return pfe
        return z ** (k + 1) + M * (z - 1.0) * z**k * (1.0 - w + w * pfe)
    q = s.H * lam * z**k
    return 1.0 + q if s.scheme == "pfe" else 1.0 + q + w * q**2


def _slope(stepper: CoarseStepper, U: np.ndarray, s: ProjectiveSettings):
    Y = stepper.burst(U, s.k + 1)
    return Y[-1], (Y[-1] - Y[-2]) / s.dt


def projective_step(stepper: CoarseStepper, U: np.ndarray, s: ProjectiveSettings) -> np.ndarray:
    """One coarse step of length :attr:`ProjectiveSettings.H` (collective where the stepper
    is)."""
    U = np.asarray(U, dtype=float)
    end, D = _slope(stepper, U, s)
    base, length = (end, s.Delta) if s.anchor == "burst" else (U, s.H)
    if s.scheme == "pfe":
        return base + length * D
    _, D2 = _slope(stepper, base + length * D, s)
    w = s.weight()
    return base + length * ((1.0 - w) * D + w * D2)


def projective_integrate(
    stepper: CoarseStepper, U0: np.ndarray, s: ProjectiveSettings, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` projective steps from ``U0``: the times ``(steps + 1,)`` and coarse states
    ``(steps + 1, n)``."""
    out = [np.asarray(U0, dtype=float)]
    for _ in range(int(steps)):
        out.append(projective_step(stepper, out[-1], s))
    return s.H * np.arange(int(steps) + 1), np.array(out)


# -- Newton–Krylov on the coarse time-stepper ------------------------------------------------
def _gather(comm: MPI.Comm, v: PETSc.Vec) -> np.ndarray:
    local = np.array(v.array_r, dtype=float)
    return local if comm.size == 1 else np.concatenate(comm.allgather(local))


class _FixedPointAssembly:
    """:math:`G(U) = \\Phi(U) - U` as an :class:`~multiscale.nonlinear.Assembly` whose matrix
    is a matrix-free shell (finite-difference directional derivatives of :math:`G`)."""

    def __init__(self, phi: Callable[[np.ndarray], np.ndarray], n: int, comm: MPI.Comm) -> None:
        self.phi, self.n, self.comm = phi, int(n), comm
        self.evaluations = 0
        self._U = np.zeros(self.n)
        self._base: tuple[np.ndarray, np.ndarray] | None = None  # (U, G(U)) of the last residual
        self._lin: tuple[np.ndarray, np.ndarray] | None = None  # the Jacobian's base point

    def create_vector(self) -> PETSc.Vec:
        return PETSc.Vec().createMPI((PETSc.DECIDE, self.n), comm=self.comm)

    def create_matrix(self) -> PETSc.Mat:
        x = self.create_vector()
        nloc = x.getLocalSize()
        x.destroy()
        A = PETSc.Mat().createPython(((nloc, self.n), (nloc, self.n)), self, comm=self.comm)
        A.setUp()
        return A

    def G(self, U: np.ndarray) -> np.ndarray:
        self.evaluations += 1
        return np.asarray(self.phi(U), dtype=float) - U

    def set_iterate(self, x: PETSc.Vec) -> None:
        self._U = _gather(self.comm, x)

    def _local(self, v: PETSc.Vec) -> slice:
        lo, hi = v.getOwnershipRange()
        return slice(lo, hi)

    def residual(self, x: PETSc.Vec, b: PETSc.Vec) -> None:
        g = self.G(self._U)
        self._base = (self._U.copy(), g)
        b.array[:] = g[self._local(b)]

    def jacobian(self, A: PETSc.Mat) -> None:
        if self._base is None or not np.array_equal(self._base[0], self._U):
            self._base = (self._U.copy(), self.G(self._U))
        self._lin = self._base
        A.assemble()

    # the shell's multiplication (petsc4py calls mult(mat, x, y) on the context)
    def mult(self, mat: PETSc.Mat, x: PETSc.Vec, y: PETSc.Vec) -> None:
        assert self._lin is not None, "the Jacobian was not set up"
        U, g = self._lin
        v = _gather(self.comm, x)
        nv = float(np.linalg.norm(v))
        if nv == 0.0:
            y.set(0.0)
            return
        h = math.sqrt(np.finfo(float).eps) * (1.0 + float(np.linalg.norm(U))) / nv
        y.array[:] = ((self.G(U + h * v) - g) / h)[self._local(y)]


@dataclass(slots=True)
class NewtonKrylovResult:
    """A coarse steady state ``U``, the Newton ``outcome`` and the number of evaluations of
    :math:`\\Phi_T` (residuals and Jacobian-vector products)."""

    U: np.ndarray
    outcome: NewtonOutcome
    evaluations: int


class CoarseNewtonKrylov(PETScOwner):
    """Coarse steady states :math:`\\Phi_T(U) = U` by Jacobian-free Newton–GMRES.

    Parameters
    ----------
    phi:
        :math:`U \\mapsto \\Phi_T(U)` on the full coarse vector (called on every rank together:
        it may be collective on ``comm``).
    n:
        Number of coarse unknowns.
    comm:
        Communicator of the SNES (the coarse vector is distributed over it).
    petsc_options_prefix, petsc_options:
        As for dolfinx's solvers; the defaults are :func:`~multiscale.nonlinear.newton_options`
        with GMRES, no preconditioner (``pc_type none``) and ``ksp_rtol 1e-10``.

    Use as a context manager, or call :meth:`destroy`.
    """

    def __init__(
        self,
        phi: Callable[[np.ndarray], np.ndarray],
        n: int,
        comm: MPI.Comm = MPI.COMM_WORLD,
        *,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.comm = comm
        self.assembly = _FixedPointAssembly(phi, n, comm)
        self.newton = self._own(
            NewtonSolver(
                self.assembly,
                petsc_options_prefix=petsc_options_prefix,
                petsc_options=petsc_options,
                defaults={
                    "ksp_type": "gmres",
                    "pc_type": "none",
                    "ksp_rtol": 1e-10,
                    "ksp_gmres_restart": 100,
                    "ksp_max_it": 200,
                },
                role="newton_krylov",
                name="coarse Newton–Krylov",
            )
        )
        self.prefix = self.newton.prefix

    def solve(self, U0: np.ndarray) -> NewtonKrylovResult:
        """Newton–Krylov from ``U0`` (collective); never raises for a failure to converge."""
        x = self.newton.x
        x.array[:] = np.asarray(U0, dtype=float)[self.assembly._local(x)]
        before = self.assembly.evaluations
        outcome = self.newton.solve()
        return NewtonKrylovResult(
            _gather(self.comm, x), outcome, self.assembly.evaluations - before
        )
