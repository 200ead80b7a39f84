r"""Micro problems on the sampling domains :math:`K_\delta(x_q) = x_q + \delta Y` of FE-HMM.

Lifting.  At a macro quadrature point :math:`x_q` with macro gradient :math:`G` the micro
problem seeks :math:`u^\delta = G\cdot(z - x_q) + \tilde u` on :math:`K_\delta` with

.. math::
    \int_{K_\delta} q\big(x, z/\varepsilon, G + \nabla\tilde u\big)\cdot\nabla v\,dz = 0
    \quad\forall v,

where :math:`\tilde u` is :math:`K_\delta`-periodic (``periodic`` coupling) or zero on
:math:`\partial K_\delta` (``dirichlet``: affine Dirichlet data :math:`G\cdot(z - x_q)` for the
full field), and :math:`x = x_q` (``freeze_x``, the collocated coefficient) or :math:`x = z`.

All sampling domains share one mesh of the unit cell :math:`Y = [0,1]^d`: with
:math:`z = x_q + \delta(\xi - \tfrac12)` and :math:`\tilde u = \delta w(\xi)` the gradients are
:math:`\nabla_z\tilde u = \nabla_\xi w`, so the problem on :math:`Y` is

.. math::
    \int_Y q\big(x, (x_q + \delta(\xi - \tfrac12))/\varepsilon, G + \nabla_\xi w\big)\cdot
    \nabla_\xi v\,d\xi = 0,

and :math:`x_q`, :math:`\delta`, :math:`\varepsilon`, :math:`G` (and the unit direction
:math:`T` of the tangent below) are :class:`dolfinx.fem.Constant` objects of **one** set of
compiled forms, updated per point.

Restriction.  The macro flux is the micro flux averaged over :math:`K_\delta`, or over an inner
box of relative size ``inner`` (oversampling):
:math:`Q(x_q, G) = |Y_{in}|^{-1}\int_{Y_{in}} q\,d\xi`, a weighted sum over the micro quadrature
points of the inner cells.

Newton.  :class:`SamplingProblem` solves for :math:`w` with the package's
:class:`~multiscale.nonlinear.NewtonSolver` on the constrained space
(:class:`~multiscale.cell.constraints.ConstrainedAssembly`): full Newton steps, converged when
the residual is below ``newton_atol`` and ``newton_rtol`` of its reference *and* the last
correction below ``snes_stol`` :math:`= 10^{-8}` of :math:`\|w\| + |G|\sqrt N` (:math:`N` micro
dofs).  At least one Newton step is taken (``min_iterations = 1``), so the Jacobian factorized
last is that at the solution to that accuracy, while the solution itself, one quadratically
convergent step further, is accurate to round-off.  Before every residual the linearized
coefficient :math:`D = \partial q/\partial g` is evaluated at the micro quadrature points and
checked (the solver's ``on_iterate`` hook): a NaN, or a :math:`D` whose symmetric part is not
positive definite, fails the solve with :class:`~multiscale.coupling.MicroSolveError` on every
rank of the micro problem.

Tangent.  :math:`\partial Q/\partial G` is obtained from the linearized micro problems: with
:math:`D` at the converged state, :math:`\chi_j` solves
:math:`\int_Y D(e_j + \nabla\chi_j)\cdot\nabla v = 0` and column :math:`j` of the tangent is
:math:`\langle D(e_j + \nabla\chi_j)\rangle_{Y_{in}}`.  The :math:`d` right-hand sides reuse the
factorization of the Newton solver's last Jacobian (the KSP of its SNES).  A linear coefficient
needs no Newton iteration: at :math:`G = 0`, :math:`w = 0` the coefficient is checked, its
stiffness assembled into the solver's matrix and factorized by the same KSP; the tangent *is*
the effective tensor :math:`A^{HMM}(x_q)` and :math:`Q = A^{HMM} G`.

Multi-field laws.  For a :class:`~multiscale.hmm.coefficients.MultiFieldCoefficient` the unknown
holds every field of the law in one Lagrange space, :math:`\nabla` above is the packed
generalized gradient (:func:`~multiscale.physics.coupled.packed_gradient`: Voigt strains,
gradients by components) and :math:`G`, :math:`T` are packed alike; the law is linear, so one
factorization serves the :math:`m` correctors of the unit gradients and one corrector per macro
parameter :math:`\theta_k` (right-hand side :math:`-\int_Y q(x, y, 0, e_k)\cdot\bar g(v)`),
whose averaged flux is the column :math:`p_k(x_q)` of :math:`Q = \mathbb M G + p\,\theta`.
Such laws need not be definite (a piezoelectric enthalpy is not): only NaNs are refused.

Micro-solver role.  :class:`MicroModel` (the name of FE²'s counterpart) holds the
:class:`~multiscale.coupling.MicroPool`, one :class:`SamplingProblem` on its micro communicator
and, for a nonlinear coefficient, the fluctuation of every point of the group: the trial one
(the warm start of the next solve at the point) and the committed one (of the last converged
macro load step), with :meth:`MicroModel.commit` and :meth:`MicroModel.rollback`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import dolfinx
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.cell.constraints import ConstrainedAssembly, build_constraint
from multiscale.coupling import MicroFailure, MicroPool, MicroSolveError, QuadratureRule
from multiscale.mesh import unit_mesh
from multiscale.nonlinear import (
    NewtonOutcome,
    NewtonSolver,
    PETScOwner,
    agree,
    newton_options,
)
from multiscale.physics.coupled import Field, packed_gradient

__all__ = [
    "COUPLINGS",
    "MicroModel",
    "MicroSettings",
    "SamplingProblem",
    "SamplingResponse",
    "default_micro_options",
]

log = logging.getLogger(__name__)

#: Coupling conditions of the sampling-domain problem.
COUPLINGS = ("periodic", "dirichlet")


@dataclass(slots=True)
class MicroSettings:
    r"""Sampling domains and their discretization.

    Attributes
    ----------
    delta, eps:
        Size :math:`\delta` of :math:`K_\delta` and the period/correlation scale
        :math:`\varepsilon`.
    n:
        Cells per side of the micro mesh of :math:`K_\delta` (so :math:`h/\varepsilon =
        \delta/(n\varepsilon)`).
    coupling:
        ``"periodic"`` or ``"dirichlet"``.
    freeze_x:
        Evaluate the slow variable at :math:`x_q` (collocated coefficient) instead of :math:`z`.
    inner:
        Relative side of the box over which the flux is averaged (1: all of :math:`K_\delta`).
    snap:
        Move the lower corner of :math:`K_\delta` to the nearest point of the period lattice
        :math:`\varepsilon\mathbb Z^d` (a shift of at most :math:`\varepsilon/2` per axis), so
        that a structured micro mesh with :math:`n\varepsilon/\delta` cells per period resolves
        the interfaces of a piecewise-constant periodic coefficient exactly.
    degree, quadrature_degree:
        Lagrange degree of the micro unknown and degree of the micro quadrature.
    newton_rtol, newton_atol, newton_max_it:
        The micro Newton's ``snes_rtol``, ``snes_atol`` and ``snes_max_it`` (see
        :func:`default_micro_options`).
    petsc_options:
        Overrides of the micro Newton and linear solver options (any ``snes_*``, ``ksp_*`` or
        ``pc_*`` key, on top of :func:`default_micro_options`).
    """

    delta: float
    eps: float
    n: int = 16
    coupling: str = "periodic"
    freeze_x: bool = True
    inner: float = 1.0
    snap: bool = False
    degree: int = 1
    quadrature_degree: int = 4
    newton_rtol: float = 1e-10
    newton_atol: float = 1e-13
    newton_max_it: int = 25
    petsc_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("delta", "eps"):
            v = float(getattr(self, key))
            if not math.isfinite(v) or v <= 0.0:
                raise ValueError(f"{key} must be a finite positive number, got {v!r}")
            setattr(self, key, v)
        if self.coupling not in COUPLINGS:
            raise ValueError(f"unknown coupling {self.coupling!r}; expected one of {COUPLINGS}")
        if self.coupling == "periodic" and self.delta < self.eps * (1.0 - 1e-12):
            raise ValueError(
                f"periodic coupling needs delta >= eps (a sampling domain of at least one period), "
                f"got delta = {self.delta:g} < eps = {self.eps:g}"
            )
        self.n = int(self.n)
        if self.n < 2:
            raise ValueError(f"the micro mesh needs n >= 2 cells per side, got {self.n}")
        self.inner = float(self.inner)
        if not 0.0 < self.inner <= 1.0:
            raise ValueError(f"inner must lie in (0, 1], got {self.inner!r}")
        if self.inner < 1.0 and abs(self.inner * self.n - round(self.inner * self.n)) > 1e-9:
            raise ValueError(
                f"inner * n must be an integer so the averaging box is a union of micro cells "
                f"(inner = {self.inner}, n = {self.n})"
            )
        if int(self.degree) < 1 or int(self.quadrature_degree) < 0:
            raise ValueError("need degree >= 1 and quadrature_degree >= 0")
        if self.newton_max_it < 1 or self.newton_rtol <= 0 or self.newton_atol < 0:
            raise ValueError("invalid micro Newton tolerances")
        self.petsc_options = dict(self.petsc_options or {})

    @property
    def periods(self) -> float:
        r""":math:`\delta/\varepsilon`, periods per side of the sampling domain."""
        return self.delta / self.eps

    def to_dict(self) -> dict[str, Any]:
        return {
            "delta": self.delta,
            "eps": self.eps,
            "n": self.n,
            "coupling": self.coupling,
            "freeze_x": self.freeze_x,
            "inner": self.inner,
            "snap": self.snap,
            "h_over_eps": self.delta / (self.n * self.eps),
        }


def default_micro_options(settings: MicroSettings, serial: bool) -> dict[str, Any]:
    """:func:`~multiscale.nonlinear.newton_options` (full Newton steps) with the tolerances of
    ``settings``, the step test ``snes_stol 1e-8`` and LU: PETSc's own for a micro problem on
    one rank (``serial``; the problems are small), MUMPS otherwise."""
    options = newton_options(
        snes_rtol=settings.newton_rtol,
        snes_atol=settings.newton_atol,
        snes_stol=1.0e-8,
        snes_max_it=settings.newton_max_it,
    )
    if serial:
        options["pc_factor_mat_solver_type"] = "petsc"
    return options


@dataclass(slots=True)
class SamplingResponse:
    """One sampling-domain solve: the averaged ``flux`` :math:`Q` (m: d for a scalar problem,
    the packed generalized gradient size of a multi-field one), the ``tangent``
    :math:`\\partial Q/\\partial G` (m x m), the owned part of the converged ``fluctuation``
    (the warm start of the next solve at the point), the Newton ``iterations`` and the
    ``parameter_fluxes`` :math:`\\partial Q/\\partial\\theta` (m x p, a linear law's
    macro parameters)."""

    flux: np.ndarray
    tangent: np.ndarray
    fluctuation: np.ndarray
    iterations: int
    parameter_fluxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


class SamplingProblem(PETScOwner):
    """The sampling-domain problem of one coefficient, built once and solved at every point.

    Parameters
    ----------
    comm:
        Communicator of the micro mesh (:attr:`MicroPool.micro_comm
        <multiscale.coupling.MicroPool.micro_comm>`).
    coefficient:
        A linear coefficient or a nonlinear flux law (see :mod:`multiscale.hmm.coefficients`).
    settings:
        :class:`MicroSettings`.
    petsc_options_prefix:
        Options prefix of the micro Newton solver (default ``multiscale_hmm_micro_<n>_``,
        identical on all ranks).

    Collective on ``comm``.  Frees its PETSc objects in :meth:`destroy` (also on leaving a
    ``with`` block).
    """

    def __init__(
        self,
        comm: MPI.Comm,
        coefficient: Any,
        settings: MicroSettings,
        *,
        petsc_options_prefix: str | None = None,
    ) -> None:
        self.comm = comm
        self.coefficient = coefficient
        self.settings = settings
        self.linear = bool(coefficient.linear)
        self.dim = int(coefficient.dim)
        self._init_fields()
        self._init_space()
        self._init_constants()
        self._init_forms()
        self._init_solver(petsc_options_prefix)

    # -- construction, in steps -------------------------------------------------------------------
    def _init_fields(self) -> None:
        """The fields and parameters of the coefficient: one scalar field for a scalar
        coefficient, those a :class:`~multiscale.hmm.coefficients.MultiFieldCoefficient`
        declares otherwise; :attr:`size` packed gradient components."""
        fields = getattr(self.coefficient, "fields", None)
        #: whether the coefficient is a multi-field law (packed gradients, no definiteness)
        self.multifield = fields is not None
        self.fields: tuple[Field, ...] = (
            tuple(fields) if self.multifield else (Field("u", "scalar", "grad"),)
        )
        self.parameters: tuple[str, ...] = tuple(getattr(self.coefficient, "parameters", ()))
        if self.parameters and not self.linear:
            raise ValueError("macro parameters need a linear coefficient")
        self.size = sum(f.gradient_size(self.dim) for f in self.fields)

    def _init_space(self) -> None:
        """Unit-cell mesh, constrained space of all fields, the averaging cells and their
        weights."""
        s, d = self.settings, self.dim
        if s.coupling == "periodic" and not math.isclose(
            s.periods, round(s.periods), rel_tol=0, abs_tol=1e-9
        ):
            log.info("periodic coupling with delta/eps = %.4g not an integer", s.periods)
        self.mesh = mesh = unit_mesh(self.comm, d, s.n)
        ncomp = sum(f.value_size(d) for f in self.fields)
        shape = () if ncomp == 1 else (ncomp,)
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", int(s.degree), shape))
        self.ndofs = self.V.dofmap.index_map.size_global * ncomp
        box = np.array([np.zeros(d), np.ones(d)])
        self.mpc, bcs = build_constraint(
            self.V, box, "periodic" if s.coupling == "periodic" else "kubc"
        )
        W = self.mpc.function_space
        # The conditions of build_constraint live on V; dolfinx_mpc assembles on the constrained
        # space W and silently skips conditions of another space, so restate them on W (same
        # local dof numbering; the conditions act on whole blocks, whose unrolled indices
        # dof_indices gives).
        zero = np.zeros(ncomp) if ncomp > 1 else 0.0
        self.bcs = [
            dolfinx.fem.dirichletbc(zero, np.unique(bc.dof_indices()[0] // ncomp), W) for bc in bcs
        ]
        self.w = dolfinx.fem.Function(W, name="fluctuation")
        self.chi = dolfinx.fem.Function(W, name="corrector")
        self.rule = QuadratureRule(mesh, int(s.quadrature_degree))
        mid = dolfinx.mesh.compute_midpoints(mesh, mesh.topology.dim, self.rule.cells)[:, :d]
        inside = np.all(np.abs(mid - 0.5) < 0.5 * s.inner, axis=1)
        self._inner = np.flatnonzero(inside)  # rows of the rule's (owned) cells
        self._inner_cells = self.rule.cells[self._inner]
        self._weights = self.rule.jacobian_weights(self._inner_cells)
        volume = float(self._weights.sum())
        self.inner_volume = _comm_sum(self.comm, np.array([volume]))[0]

    def _init_constants(self) -> None:
        mesh, d, s = self.mesh, self.dim, self.settings
        self.xq = dolfinx.fem.Constant(mesh, np.zeros(d))
        self.corner = dolfinx.fem.Constant(mesh, np.zeros(d))
        self.delta = dolfinx.fem.Constant(mesh, s.delta)
        self.eps = dolfinx.fem.Constant(mesh, s.eps)
        m, p = self.size, len(self.parameters)
        self.G = dolfinx.fem.Constant(mesh, np.zeros(m))  # the macro (packed) gradient
        self.T = dolfinx.fem.Constant(mesh, np.zeros(m))  # a unit load of the tangent ...
        self.S = dolfinx.fem.Constant(mesh, np.zeros(max(p, 1)))  # ... or of a parameter

    def _init_forms(self) -> None:
        """Residual, Jacobian, corrector right-hand side and point expressions, compiled
        once."""
        m, d = self.size, self.dim
        xi = ufl.SpatialCoordinate(self.mesh)
        z = self.corner + self.delta * xi
        y = z / self.eps
        x_slow = self.xq if self.settings.freeze_x else z
        W = self.mpc.function_space
        v, du = ufl.TestFunction(W), ufl.TrialFunction(W)

        def grad(u: Any) -> Any:  # the packed generalized gradient (the gradient of a scalar)
            return packed_gradient(u, self.fields, d) if self.multifield else ufl.grad(u)

        g = ufl.variable(self.G + grad(self.w))
        q = self.coefficient.flux(x_slow, y, g)
        if ufl.shape(q) != (m,):
            raise ValueError(f"the flux must be a vector of length {m}, got shape {ufl.shape(q)}")
        D = ufl.diff(q, g)
        load = ufl.dot(D, self.T)
        if self.parameters:  # the fluxes of the parameters S at zero gradient (linear laws)
            S = ufl.as_vector([self.S[k] for k in range(len(self.parameters))])
            q_S = self.coefficient.flux(x_slow, y, ufl.as_vector([0.0] * m), S)
            load += q_S
            self._S_flux = self.rule.expression(q_S)
        dx = self.rule.dx
        self._F = dolfinx.fem.form(ufl.inner(q, grad(v)) * dx)
        self._J = dolfinx.fem.form(ufl.inner(ufl.dot(D, grad(du)), grad(v)) * dx)
        self._L_T = dolfinx.fem.form(-ufl.inner(load, grad(v)) * dx)
        self._q_expr = self.rule.expression(q)
        self._D_expr = self.rule.expression(D)
        self._grad_chi = self.rule.expression(grad(self.chi))

    def _init_solver(self, prefix: str | None) -> None:
        self.assembly = ConstrainedAssembly(self._F, self._J, self.w, self.mpc, self.bcs)
        self.newton = self._own(
            NewtonSolver(
                self.assembly,
                petsc_options_prefix=prefix,
                petsc_options=self.settings.petsc_options,
                defaults=default_micro_options(self.settings, self.comm.size == 1),
                min_iterations=1,
                role="hmm_micro",
                name="sampling-domain Newton",
                on_iterate=self._check_coefficient,
                step_scale=self._step_scale,
                residual_reference=self._residual_reference,
            )
        )
        self.prefix = self.newton.prefix
        self.petsc_options = self.newton.petsc_options
        self._rhs = self._own(self.newton.b.duplicate())
        self._D_points: np.ndarray | None = None  # D at the last iterate (owned cells)
        self._scale = math.sqrt(self.ndofs)

    # -- Newton hooks -----------------------------------------------------------------------------
    def _check_coefficient(self, x: PETSc.Vec) -> None:
        """Evaluate :math:`D` at the iterate (kept for the tangent) and raise on a NaN or, for
        a scalar coefficient, a symmetric part that is not positive definite (Sylvester's
        criterion: positive leading principal minors; a multi-field law need not be
        definite)."""
        self._D_points = D = self.rule.evaluate(self._D_expr)
        if not D.size:
            return
        D = D.reshape(-1, self.size, self.size)
        if not np.all(np.isfinite(D)):
            raise MicroSolveError("the coefficient is NaN or infinite on the sampling domain")
        if self.multifield:
            return
        S = 0.5 * (D + np.transpose(D, (0, 2, 1)))
        minors = [S[:, 0, 0]]
        if self.dim > 1:
            minors.append(S[:, 0, 0] * S[:, 1, 1] - S[:, 0, 1] * S[:, 1, 0])
        if self.dim > 2:
            minors.append(
                S[:, 0, 0] * (S[:, 1, 1] * S[:, 2, 2] - S[:, 1, 2] * S[:, 2, 1])
                - S[:, 0, 1] * (S[:, 1, 0] * S[:, 2, 2] - S[:, 1, 2] * S[:, 2, 0])
                + S[:, 0, 2] * (S[:, 1, 0] * S[:, 2, 1] - S[:, 1, 1] * S[:, 2, 0])
            )
        if min(float(m.min()) for m in minors) <= 0.0:
            raise MicroSolveError("the coefficient is not positive definite on the sampling domain")

    def _step_scale(self) -> float:
        # |G| sqrt(N): the size of the affine part over the unit cell; or, where that vanishes
        # (G = 0 from a non-zero warm start), the first correction, so round-off is not chased
        return max(float(np.linalg.norm(self.G.value)) * self._scale, self.newton.first_step)

    def _residual_reference(self, f0: float) -> float:
        # the nodal fluxes of the affine part, ||A|| |G| sqrt(N): the load of the cell problem,
        # not round-off where a warm start is already (nearly) the solution
        norm = self.newton.A.norm(PETSc.NormType.INFINITY)
        return max(f0, norm * self._step_scale())

    # -- the micro solve --------------------------------------------------------------------------
    @property
    def fluctuation_size(self) -> int:
        """Length of the owned part of a fluctuation vector."""
        return self.newton.x.getLocalSize()

    def _set_point(self, xq: np.ndarray, G: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        d, s = self.dim, self.settings
        xq = np.asarray(xq, dtype=float)[:d]
        G = np.zeros(self.size) if G is None else np.asarray(G, dtype=float).ravel()[: self.size]
        if len(G) != self.size:
            raise MicroSolveError(f"the macro gradient needs {self.size} components, got {len(G)}")
        if not (np.all(np.isfinite(xq)) and np.all(np.isfinite(G))):
            raise MicroSolveError(f"non-finite micro input: x_q = {xq.tolist()}, G = {G.tolist()}")
        corner = xq - 0.5 * s.delta
        if s.snap:
            corner = s.eps * np.round(corner / s.eps)
        self.xq.value[...] = xq
        self.corner.value[...] = corner
        self.G.value[...] = 0.0 if self.linear else G
        return xq, G

    def _newton(self, guess: np.ndarray | None) -> NewtonOutcome:
        """Newton from ``guess`` (``None``: zero); on success the last Jacobian, factorized by
        the solver's KSP, is that at the solution (to ``snes_stol``)."""
        x = self.newton.x
        if guess is None:
            x.set(0.0)
        else:
            x.getArray()[:] = guess
        x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        return self.newton.solve()

    def _factorize(self) -> NewtonOutcome:
        """A linear coefficient, at :math:`G = 0` and :math:`w = 0`: the coefficient check and
        the stiffness, assembled into the Newton solver's matrix and set on its KSP, which
        factorizes it at the first corrector solve.  No Newton iteration (collective)."""
        x = self.newton.x
        x.set(0.0)
        error: str | None = None
        try:
            self.newton.evaluate(x)
        except Exception as err:  # agreed on below, so every rank of the micro problem raises
            error = str(err) or type(err).__name__  # the message only: no frames kept alive
        message = agree(self.comm, error)
        if message is not None:
            return NewtonOutcome(False, 0, 0, [], message)
        self.assembly.jacobian(self.newton.A)
        self.newton.snes.getKSP().setOperators(self.newton.A)
        return NewtonOutcome(True, 0, 0, [])

    def solve(
        self, xq: np.ndarray, G: np.ndarray | None = None, guess: np.ndarray | None = None
    ) -> SamplingResponse:
        r"""Averaged flux :math:`Q(x_q, G)` and tangent :math:`\partial Q/\partial G` at the
        point ``xq`` (``G`` ``None``: zero), Newton starting from ``guess`` (the owned part of a
        fluctuation; ``None``: zero).

        For a linear coefficient the tangent is :math:`A^{HMM}(x_q)` and :math:`Q = A^{HMM} G`
        (no Newton iteration, ``guess`` unused).  Collective on the micro communicator; raises
        :class:`MicroSolveError` (on all its ranks) when the coefficient check or Newton fails.
        """
        xq, G = self._set_point(xq, G)
        self._D_points = None
        outcome = self._factorize() if self.linear else self._newton(guess)
        if not outcome.converged:
            raise MicroSolveError(
                f"{outcome.cause}; sampling domain at x_q = {np.round(xq, 8).tolist()}, "
                f"G = {np.round(G, 8).tolist()}"
            )
        flux, tangent, parameter_fluxes = self._averages()
        if self.linear:
            flux = tangent @ G
        if not all(np.all(np.isfinite(a)) for a in (flux, tangent, parameter_fluxes)):
            raise MicroSolveError(f"non-finite micro result at x_q = {xq.tolist()}")
        x = self.newton.x.getArray().copy()
        return SamplingResponse(flux, tangent, x, outcome.iterations, parameter_fluxes)

    def _averages(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:math:`Q`, the tangent and the parameter fluxes at the converged state: the
        :math:`m` correctors (unit loads :math:`T = e_j`) and :math:`p` parameter solves
        (:math:`S = e_k`) with the factorization of the last Jacobian, then weighted sums over
        the inner cells."""
        m, p, w = self.size, len(self.parameters), self._weights
        assert self._D_points is not None, "the coefficient was not evaluated at the solution"
        wD = w[:, :, None, None] * self._D_points[self._inner].reshape(*w.shape, m, m)
        local = np.zeros((m, m + p + 1))
        if not self.linear:  # a linear coefficient's flux is the tangent times G
            q = self.rule.evaluate(self._q_expr, self._inner_cells)
            local[:, m + p] = w.ravel() @ q.reshape(-1, m)
        grads = np.empty((*w.shape, m, m + p))  # T + g(chi) at the points, the load last
        for j in range(m + p):
            self._unit_load(j)
            grads[..., j] = self._corrector_gradient(j)
        grads[..., :m] += np.eye(m)
        # sum over the points of w D (T + g(chi)): one matrix product; plus a parameter's flux
        local[:, : m + p] = np.moveaxis(wD, 2, 0).reshape(m, -1) @ grads.reshape(-1, m + p)
        for k in range(p):
            self._unit_load(m + k)
            q_S = self.rule.evaluate(self._S_flux, self._inner_cells)
            local[:, m + k] += w.ravel() @ q_S.reshape(-1, m)
        total = _comm_sum(self.comm, local) / self.inner_volume
        return total[:, m + p], total[:, :m], total[:, m : m + p]

    def _unit_load(self, j: int) -> None:
        """Load ``j``: the unit gradient :math:`T = e_j` (:math:`j < m`), else the unit
        parameter :math:`S = e_{j - m}`."""
        m = self.size
        self.T.value[...] = np.eye(m)[j] if j < m else 0.0
        self.S.value[...] = 0.0
        if j >= m:
            self.S.value[j - m] = 1.0

    def _corrector_gradient(self, j: int) -> np.ndarray:
        """Solve the corrector of the current unit load with the factorized Jacobian; its
        packed gradient at the inner points."""
        ksp = self.newton.snes.getKSP()
        self.assembly.assemble_vector(self._L_T, self._rhs)
        ksp.solve(self._rhs, self.chi.x.petsc_vec)
        if ksp.getConvergedReason() < 0:
            raise MicroSolveError(
                f"micro corrector solve {j} ({self.prefix}) failed: KSP reason "
                f"{ksp.getConvergedReason()}"
            )
        self.chi.x.scatter_forward()
        self.mpc.backsubstitution(self.chi)
        return self.rule.evaluate(self._grad_chi, self._inner_cells).reshape(
            *self._weights.shape, self.size
        )

    def effective_tensor(self, xq: np.ndarray) -> np.ndarray:
        """:math:`A^{HMM}(x_q)` of a linear coefficient (the tangent at :math:`G = 0`)."""
        return self.solve(xq).tangent

    def set_scales(self, delta: float | None = None, eps: float | None = None) -> None:
        """Change :math:`\\delta` and/or :math:`\\varepsilon` without recompiling (a
        :class:`MicroModel`'s warm starts then belong to the old scales)."""
        if delta is not None:
            self.delta.value = float(delta)
            self.settings.delta = float(delta)
        if eps is not None:
            self.eps.value = float(eps)
            self.settings.eps = float(eps)
        self.settings.__post_init__()


def _comm_sum(comm: MPI.Comm, values: np.ndarray) -> np.ndarray:
    """``values`` summed over ``comm`` (no communication on one rank)."""
    return comm.allreduce(values, op=MPI.SUM) if comm.size > 1 else values


class MicroModel(PETScOwner):
    """The sampling domains of the macro quadrature points of this rank (or rank group).

    Parameters
    ----------
    pool:
        The distribution of micro solves (its ``micro_comm`` carries the sampling problem).
    coefficient, settings:
        Of the :class:`SamplingProblem`.
    n_points:
        Number of macro quadrature points this rank owns.
    petsc_options_prefix:
        Of the :class:`SamplingProblem`.

    :attr:`solves`, :attr:`newton_iterations` and :attr:`seconds` count this rank's micro
    solves (as a member of its group), their Newton iterations and the wall time of
    :meth:`evaluate`.
    """

    def __init__(
        self,
        pool: MicroPool,
        coefficient: Any,
        settings: MicroSettings,
        n_points: int,
        *,
        petsc_options_prefix: str | None = None,
    ) -> None:
        self.pool = pool
        self.problem = self._own(
            SamplingProblem(
                pool.micro_comm, coefficient, settings, petsc_options_prefix=petsc_options_prefix
            )
        )
        self.dim, self.linear = self.problem.dim, self.problem.linear
        self.size, self.parameters = self.problem.size, self.problem.parameters
        self.n_local = int(n_points)
        mc = pool.micro_comm
        self.n_group = int(sum(mc.allgather(self.n_local))) if mc.size > 1 else self.n_local
        n, nw = (0, 0) if self.linear else (self.n_group, self.problem.fluctuation_size)
        self.committed = np.zeros((n, nw))
        self.trial = np.zeros((n, nw))
        self.solves = 0
        self.newton_iterations = 0
        self.seconds = 0.0

    def evaluate(
        self, points: np.ndarray, gradients: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, list[MicroFailure]]:
        """Fluxes ``(n, m)`` and tangents ``(n, m, m)`` at this rank's ``points`` ``(n, d)``
        for the macro ``gradients`` ``(n, m)`` (``None``: zero, for the effective tensors of a
        linear coefficient), and the failures of the group (their rows are NaN); ``m`` is the
        dimension for a scalar problem, the packed gradient size of a multi-field one.

        Each nonlinear solve starts from the point's trial fluctuation and replaces it.  Not
        collective on the macro communicator (only on the micro one): the caller agrees on the
        failures."""
        m = self.size
        out, failures = self._run(points, gradients, parameters=False)
        return out[:, :m], out[:, m:].reshape(-1, m, m), failures

    def tensors(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[MicroFailure]]:
        """A linear coefficient's tangents :math:`\\mathbb M(x_q)` ``(n, m, m)`` and parameter
        fluxes :math:`p(x_q)` ``(n, m, p)`` at this rank's ``points``, so that
        :math:`Q = \\mathbb M G + p\\theta`, and the failures of the group (as
        :meth:`evaluate`)."""
        if not self.linear:
            raise ValueError("effective tensors are defined for linear coefficients only")
        m, p = self.size, len(self.parameters)
        out, failures = self._run(points, None, parameters=True)
        n = len(out)
        return (
            out[:, m : m + m * m].reshape(n, m, m),
            out[:, m + m * m :].reshape(n, m, p),
            failures,
        )

    def _run(
        self, points: np.ndarray, gradients: np.ndarray | None, parameters: bool
    ) -> tuple[np.ndarray, list[MicroFailure]]:
        """The rows ``[Q, tangent, (parameter fluxes)]`` of every point, solved in the pool."""
        d, m = self.dim, self.size
        n = len(points)
        width = m + m * m + (m * len(self.parameters) if parameters else 0)
        points = np.asarray(points, dtype=float).reshape(n, d)
        inputs = points if gradients is None else np.hstack([points, np.reshape(gradients, (n, m))])
        trial = self.trial

        def solve(key: int, row: np.ndarray) -> np.ndarray:
            G = None if gradients is None else row[d:]
            response = self.problem.solve(row[:d], G, None if self.linear else trial[key])
            if not self.linear:
                trial[key] = response.fluctuation
            self.solves += 1
            self.newton_iterations += response.iterations
            parts = [response.flux, response.tangent.ravel()]
            if parameters:
                parts.append(response.parameter_fluxes.ravel())
            return np.concatenate(parts)

        t0 = time.perf_counter()
        out, failures = self.pool.run(solve, inputs)
        self.seconds += time.perf_counter() - t0
        if out.shape[1] == 0:  # no point solved in the group (all empty, or the first failed)
            out = np.full((n, width), np.nan)
        return out, failures

    def commit(self) -> None:
        """The trial fluctuations become the committed ones (a converged macro step)."""
        np.copyto(self.committed, self.trial)

    def rollback(self) -> None:
        """Back to the committed fluctuations (a failed macro step)."""
        np.copyto(self.trial, self.committed)
