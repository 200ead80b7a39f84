r"""The macro side of FE-HMM: P1 finite elements on a coarse mesh with fluxes and tangents given
at quadrature points, the load of the scalar problems and their load-stepped solve.

For a linear problem the macro bilinear form of FE-HMM (Abdulle) is

.. math::
    B_H(u_H, v_H) = \sum_{K}\sum_{q} \omega_{K,q}\,A^{HMM}(x_{K,q})\nabla u_H(x_{K,q})\cdot
    \nabla v_H(x_{K,q}),

i.e. the standard stiffness form with the coefficient replaced by the tensor the micro problems
return at the quadrature points.  For a nonlinear one the residual and its Jacobian are

.. math::
    R(u_H; v_H) = \sum_{K,q}\omega_{K,q}\,Q(x_{K,q}, \nabla u_H)\cdot\nabla v_H
    - \lambda (f, v_H),
    \qquad
    J(u_H; w_H, v_H) = \sum_{K,q}\omega_{K,q}\,\frac{\partial Q}{\partial G}\nabla w_H\cdot
    \nabla v_H,

with :math:`u_H = \lambda u_D` (a constant) on the whole boundary of :math:`[0,1]^d` and
:math:`\lambda` the load factor (:class:`ScalarLoad`; 1 unless a load stepper sets it).

:class:`MacroProblem` holds the space, the quadrature rule of those sums (the fields live in its
quadrature spaces) and the compiled forms; it knows nothing of micro problems and has no Newton
iteration, so the same class also solves the homogenized problem with a known :math:`A^{hom}`
(one linear solve, :func:`linear_solve`).

:class:`ScalarProblem` is the :class:`~multiscale.nonlinear.SteppedProblem` of the scalar
problems of the package, the HMM macro problem and the DNS: a linear one is solved once (one
linear solve, at the last load factor), a nonlinear one by the package's
:class:`~multiscale.nonlinear.NewtonSolver` (with :class:`~multiscale.nonlinear.FormAssembly`)
along the load factors of a :class:`~multiscale.nonlinear.LoadStepper`, which halves a failed
step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.coupling import QuadratureRule
from multiscale.nonlinear import (
    FormAssembly,
    LoadStepper,
    NewtonSolver,
    SteppedProblem,
    direct_solver_options,
    unique_prefix,
)
from multiscale.petsc_options import prefixed_options

__all__ = [
    "MacroProblem",
    "ScalarLoad",
    "ScalarProblem",
    "Source",
    "as_source",
    "boundary_condition",
    "default_newton_options",
    "linear_solve",
    "linear_solver_options",
]

log = logging.getLogger(__name__)

#: A source term: a number or ``f(x)`` returning a UFL scalar of the spatial coordinate.
Source = float | Callable[[Any], Any]


def as_source(f: Source, mesh: dolfinx.mesh.Mesh) -> Any:
    """The UFL expression of a source ``f`` (number or callable of the coordinate)."""
    if callable(f):
        return f(ufl.SpatialCoordinate(mesh))
    value = float(f)
    if not np.isfinite(value):
        raise ValueError(f"source must be finite, got {f!r}")
    return dolfinx.fem.Constant(mesh, value)


def linear_solver_options() -> dict[str, Any]:
    """Sparse direct LU (MUMPS) for the macro and DNS linear systems."""
    return direct_solver_options()


def default_newton_options() -> dict[str, Any]:
    """Overrides of :func:`~multiscale.nonlinear.newton_options` for the HMM macro problem and
    the DNS: full Newton steps, ``snes_rtol 1e-10``, ``snes_atol 1e-12``, at most 25
    iterations, MUMPS LU."""
    return {"snes_rtol": 1.0e-10, "snes_atol": 1.0e-12, "snes_max_it": 25}


def boundary_condition(
    V: dolfinx.fem.FunctionSpace, value: float | dolfinx.fem.Constant
) -> dolfinx.fem.DirichletBC:
    """:math:`u = ` ``value`` on the whole boundary."""
    mesh = V.mesh
    fdim = mesh.topology.dim - 1
    mesh.topology.create_connectivity(fdim, mesh.topology.dim)
    facets = dolfinx.mesh.exterior_facet_indices(mesh.topology)
    dofs = dolfinx.fem.locate_dofs_topological(V, fdim, facets)
    if not isinstance(value, dolfinx.fem.Constant):
        value = np.float64(value)
    return dolfinx.fem.dirichletbc(value, dofs, V)


class ScalarLoad:
    """Source :math:`\\lambda f` and boundary value :math:`\\lambda u_D` on the whole boundary
    of the mesh of ``V``, at the load factor :math:`\\lambda` (initially 1).

    ``source`` is the UFL source term to put in a form, ``bc`` the Dirichlet condition."""

    def __init__(
        self, V: dolfinx.fem.FunctionSpace, f: Source = 1.0, boundary_value: float = 0.0
    ) -> None:
        mesh = V.mesh
        self.boundary_value = float(boundary_value)
        if not np.isfinite(self.boundary_value):
            raise ValueError(f"boundary value must be finite, got {boundary_value!r}")
        self.factor = dolfinx.fem.Constant(mesh, 1.0)
        self.source = self.factor * as_source(f, mesh)
        self._value = dolfinx.fem.Constant(mesh, self.boundary_value)
        self.bc = boundary_condition(V, self._value)

    def set_factor(self, factor: float) -> None:
        """Source and boundary value at load factor ``factor``."""
        self.factor.value = float(factor)
        self._value.value = float(factor) * self.boundary_value


def linear_solve(
    a: dolfinx.fem.Form,
    L: dolfinx.fem.Form,
    bcs: Sequence[dolfinx.fem.DirichletBC],
    u: dolfinx.fem.Function,
    *,
    petsc_options_prefix: str,
    petsc_options: Mapping[str, Any],
    what: str = "linear solve",
) -> None:
    """Solve :math:`a(u, v) = L(v)` with the Dirichlet conditions ``bcs`` into ``u``, with a
    KSP made for the call (options under ``petsc_options_prefix``).  Collective; a
    ``RuntimeError`` (on every rank) if the KSP fails."""
    bcs = list(bcs)
    A = dolfinx.fem.petsc.assemble_matrix(a, bcs=bcs)
    A.assemble()
    b = dolfinx.fem.petsc.assemble_vector(L)
    ksp = PETSc.KSP().create(u.function_space.mesh.comm)
    try:
        dolfinx.fem.petsc.apply_lifting(b, [a], bcs=[bcs])
        b.ghostUpdate(addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(b, bcs)
        ksp.setOptionsPrefix(petsc_options_prefix)
        ksp.setOperators(A)
        with prefixed_options(petsc_options_prefix, petsc_options):
            ksp.setFromOptions()
            ksp.setUp()  # a factorization reads its own options here
        ksp.solve(b, u.x.petsc_vec)
        reason = ksp.getConvergedReason()
        if reason < 0:
            raise RuntimeError(f"{what} ({petsc_options_prefix}) failed: KSP reason {reason}")
        u.x.scatter_forward()
    finally:
        for obj in (ksp, A, b):
            obj.destroy()


class MacroProblem:
    """P1 macro problem whose coefficient lives at the points of a quadrature rule.

    Parameters
    ----------
    mesh:
        The macro mesh (distributed on its communicator).
    f:
        Source term.
    quadrature_degree:
        Degree of the rule of the stiffness sums (1: one point per simplex, the FE-HMM choice
        for P1).
    boundary_value:
        Constant Dirichlet value on the boundary.
    petsc_options:
        Overrides of the linear solver options (:func:`linear_solver_options`).
    petsc_options_prefix:
        Default ``multiscale_hmm_macro_<n>_``.

    The forms: :attr:`J` (the stiffness with the tensors :attr:`A_q` at the points), :attr:`L`
    (the load) and :attr:`F` (the residual with the fluxes :attr:`Q_q`); :attr:`load` scales
    source and boundary value.  Collective on ``mesh.comm``.
    """

    def __init__(
        self,
        mesh: dolfinx.mesh.Mesh,
        f: Source = 1.0,
        *,
        quadrature_degree: int = 1,
        boundary_value: float = 0.0,
        petsc_options: Mapping[str, Any] | None = None,
        petsc_options_prefix: str | None = None,
    ) -> None:
        self.mesh = mesh
        self.comm: MPI.Comm = mesh.comm
        d = self.dim = mesh.geometry.dim
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1))
        self.rule = QuadratureRule(mesh, int(quadrature_degree))
        self.load = ScalarLoad(self.V, f, boundary_value)
        self.bc = self.load.bc
        self.boundary_value = self.load.boundary_value
        self.u = dolfinx.fem.Function(self.V, name="u_H")
        self.A_q = self.rule.function((d, d), name="tangent")
        self.Q_q = self.rule.function((d,), name="flux")
        v, w = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)
        dxq = self.rule.dx
        source = self.load.source * v * ufl.dx
        self.J = dolfinx.fem.form(ufl.inner(ufl.dot(self.A_q, ufl.grad(w)), ufl.grad(v)) * dxq)
        self.L = dolfinx.fem.form(source)
        self.F = dolfinx.fem.form(ufl.inner(self.Q_q, ufl.grad(v)) * dxq - source)
        self._grad = self.rule.expression(ufl.grad(self.u))
        self.prefix = petsc_options_prefix or unique_prefix("hmm_macro")
        self.petsc_options = linear_solver_options()
        self.petsc_options.update(petsc_options or {})
        self.points = self.rule.coordinates().reshape(-1, d)
        self.ndofs = self.V.dofmap.index_map.size_global

    # -- point fields -----------------------------------------------------------------------------
    def gradients(self) -> np.ndarray:
        """:math:`\\nabla u_H` at this rank's points, ``(n_local, d)``."""
        return self.rule.evaluate(self._grad).reshape(-1, self.dim)

    def set_tangent(self, values: np.ndarray) -> None:
        self.rule.assign(self.A_q, np.asarray(values).reshape(-1, self.dim, self.dim))

    def set_flux(self, values: np.ndarray) -> None:
        self.rule.assign(self.Q_q, np.asarray(values).reshape(-1, self.dim))

    def set_load(self, factor: float) -> None:
        """Source and boundary value at load factor ``factor``."""
        self.load.set_factor(factor)

    # -- linear solve -----------------------------------------------------------------------------
    def solve_linear(self, tensors: np.ndarray) -> dolfinx.fem.Function:
        """Solve with the tensor field ``tensors`` (``(n_local, d, d)``) at the points, at the
        current load factor.  Returns :attr:`u` (collective)."""
        tensors = np.asarray(tensors, dtype=float).reshape(-1, self.dim, self.dim)
        if tensors.shape[0] != self.rule.n_local:
            raise ValueError(
                f"{tensors.shape[0]} tensors given for {self.rule.n_local} quadrature points"
            )
        self.set_tangent(tensors)
        linear_solve(
            self.J,
            self.L,
            [self.bc],
            self.u,
            petsc_options_prefix=self.prefix,
            petsc_options=self.petsc_options,
            what="macro linear solve",
        )
        return self.u

    def solve_homogenized(self, A_hom: np.ndarray | Callable[[np.ndarray], np.ndarray]):
        """The macro solution with a known :math:`A^{hom}`: a constant ``d x d`` matrix or a
        function of the points ``(n, d) -> (n, d, d)`` (vectorized)."""
        if callable(A_hom):
            tensors = np.asarray(A_hom(self.points), dtype=float)
        else:
            tensors = np.broadcast_to(
                np.asarray(A_hom, dtype=float), (len(self.points), self.dim, self.dim)
            )
        return self.solve_linear(tensors)

    # -- norms ------------------------------------------------------------------------------------
    def errors_against(self, exact: Callable[[Any], Any], degree: int = 6) -> dict[str, float]:
        """:math:`L^2` and :math:`H^1`-seminorm errors of :attr:`u` against ``exact(x)`` (UFL),
        reduced over ranks."""
        x = ufl.SpatialCoordinate(self.mesh)
        e = self.u - exact(x)
        dx = ufl.dx(metadata={"quadrature_degree": degree})
        l2 = dolfinx.fem.assemble_scalar(dolfinx.fem.form(e * e * dx))
        h1 = dolfinx.fem.assemble_scalar(dolfinx.fem.form(ufl.inner(ufl.grad(e), ufl.grad(e)) * dx))
        l2, h1 = self.comm.allreduce(np.array([l2, h1]), op=MPI.SUM)
        return {"L2": float(np.sqrt(l2)), "H1": float(np.sqrt(h1))}


class ScalarProblem(SteppedProblem):
    """A scalar problem :math:`R(u; v) = 0` whose source and boundary value a
    :class:`ScalarLoad` scales, solved along load factors: the shared
    :class:`~multiscale.nonlinear.SteppedProblem` shell of the HMM macro problem and the DNS.

    A subclass sets ``comm``, ``u`` and ``load``; a nonlinear one calls :meth:`_init_newton`
    with its residual and Jacobian forms and may override :meth:`on_iterate` (pointwise work at
    each Newton iterate), :meth:`commit`, :meth:`rollback` and :meth:`record`; a linear one
    defines :meth:`_solve_linear`.  :attr:`seconds` is the wall time of the last
    :meth:`solve`.
    """

    role = "scalar"
    load: ScalarLoad
    newton: NewtonSolver | None = None
    stepper: LoadStepper | None = None
    seconds = 0.0

    def _init_newton(
        self,
        F: dolfinx.fem.Form,
        J: dolfinx.fem.Form,
        *,
        petsc_options_prefix: str | None,
        petsc_options: Mapping[str, Any] | None,
        max_cuts: int,
        regrow_after: int,
    ) -> None:
        """The Newton solver (options: :func:`default_newton_options`, then
        ``petsc_options``), the committed state and the load stepper."""
        self._init_stepping(
            FormAssembly(F, J, self.u, [self.load.bc]),
            petsc_options_prefix=petsc_options_prefix,
            petsc_options=petsc_options,
            defaults=default_newton_options(),
            max_cuts=max_cuts,
            regrow_after=regrow_after,
        )

    def set_load(self, factor: float) -> None:
        """Source and boundary value at load factor ``factor``."""
        self.load.set_factor(factor)

    # -- solve ------------------------------------------------------------------------------------
    def _solve_linear(self) -> None:
        raise NotImplementedError

    def solve(self, factors: Sequence[float] = (1.0,)) -> dolfinx.fem.Function:
        """The solution :attr:`u` at the last of the load factors ``factors`` (collective).

        A linear problem is solved once, at the last factor (its solution is linear in the
        load); a nonlinear one follows the factors from the last one reached (0 at first),
        halving a failed step up to ``max_cuts`` times, and raises
        :class:`~multiscale.nonlinear.LoadStepError` on every rank when a step cannot be
        completed (``u`` then holds the last converged step)."""
        targets = [float(f) for f in factors]
        if not targets or not np.all(np.isfinite(targets)):
            raise ValueError(f"load factors must be a non-empty list of finite numbers: {factors}")
        t0 = time.perf_counter()
        try:
            if self.stepper is None:
                self.set_load(targets[-1])
                self._solve_linear()
            else:
                self.stepper.run(targets)
        finally:
            self.seconds = self.comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        return self.u

    @property
    def iterations(self) -> int:
        """Newton iterations of all solves so far (1 for a linear problem: one solve)."""
        return 1 if self.newton is None else self.newton.counts["jacobians"]

    @property
    def residual_history(self) -> list[float]:
        """Newton residual norms of the last converged load step (empty for a linear
        problem)."""
        if self.stepper is None or not self.stepper.steps:
            return []
        return list(self.stepper.steps[-1].residuals)
