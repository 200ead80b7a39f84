r"""The macro side of FE-HMM: P1 finite elements on a coarse mesh with fluxes and tangents given
at quadrature points.

For a linear problem the macro bilinear form of FE-HMM (Abdulle) is

.. math::
    B_H(u_H, v_H) = \sum_{K}\sum_{q} \omega_{K,q}\,A^{HMM}(x_{K,q})\nabla u_H(x_{K,q})\cdot
    \nabla v_H(x_{K,q}),

i.e. the standard stiffness form with the coefficient replaced by the tensor the micro problems
return at the quadrature points.  For a nonlinear one the residual and its Jacobian are

.. math::
    R(u_H; v_H) = \sum_{K,q}\omega_{K,q}\,Q(x_{K,q}, \nabla u_H)\cdot\nabla v_H - (f, v_H),
    \qquad
    J(u_H; w_H, v_H) = \sum_{K,q}\omega_{K,q}\,\frac{\partial Q}{\partial G}\nabla w_H\cdot
    \nabla v_H.

:class:`MacroProblem` holds the space, the quadrature rule of those sums (the fields live in its
quadrature spaces) and the compiled forms; it knows nothing of micro problems, so the same class
also solves the homogenized problem with a known :math:`A^{hom}`.  Dirichlet data
:math:`u = u_D` (a constant) on the whole boundary of :math:`[0,1]^d`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from typing import Any

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.coupling import QuadratureRule
from multiscale.petsc_options import prefixed_options

__all__ = ["MacroProblem", "Source", "as_source", "linear_solver_options"]

log = logging.getLogger(__name__)

_instances = itertools.count()

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
    return {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}


def boundary_condition(V: dolfinx.fem.FunctionSpace, value: float) -> dolfinx.fem.DirichletBC:
    """:math:`u = ` ``value`` on the whole boundary."""
    mesh = V.mesh
    fdim = mesh.topology.dim - 1
    mesh.topology.create_connectivity(fdim, mesh.topology.dim)
    facets = dolfinx.mesh.exterior_facet_indices(mesh.topology)
    dofs = dolfinx.fem.locate_dofs_topological(V, fdim, facets)
    return dolfinx.fem.dirichletbc(np.float64(value), dofs, V)


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
    options_prefix:
        Default ``multiscale_hmm_macro_<n>_``.
    """

    def __init__(
        self,
        mesh: dolfinx.mesh.Mesh,
        f: Source = 1.0,
        *,
        quadrature_degree: int = 1,
        boundary_value: float = 0.0,
        petsc_options: Mapping[str, Any] | None = None,
        options_prefix: str | None = None,
    ) -> None:
        self.mesh = mesh
        self.comm: MPI.Comm = mesh.comm
        d = self.dim = mesh.geometry.dim
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1))
        self.rule = QuadratureRule(mesh, int(quadrature_degree))
        self.bc = boundary_condition(self.V, float(boundary_value))
        self.boundary_value = float(boundary_value)
        self.u = dolfinx.fem.Function(self.V, name="u_H")
        self.A_q = self.rule.function((d, d), name="tangent")
        self.Q_q = self.rule.function((d,), name="flux")
        v, w = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)
        self.f = as_source(f, mesh)
        dxq = self.rule.dx
        self._a = dolfinx.fem.form(ufl.inner(ufl.dot(self.A_q, ufl.grad(w)), ufl.grad(v)) * dxq)
        self._L = dolfinx.fem.form(self.f * v * ufl.dx)
        self._R = dolfinx.fem.form(ufl.inner(self.Q_q, ufl.grad(v)) * dxq - self.f * v * ufl.dx)
        self._grad = self.rule.expression(ufl.grad(self.u))
        self.prefix = options_prefix or f"multiscale_hmm_macro_{next(_instances)}_"
        self.petsc_options = linear_solver_options()
        self.petsc_options.update(petsc_options or {})
        self.points = self.rule.coordinates().reshape(-1, d)
        self.ndofs = self.V.dofmap.index_map.size_global

    # -- helpers ----------------------------------------------------------------------------------
    def gradients(self) -> np.ndarray:
        """:math:`\\nabla u_H` at this rank's points, ``(n_local, d)``."""
        return self.rule.evaluate(self._grad).reshape(-1, self.dim)

    def set_tangent(self, values: np.ndarray) -> None:
        self.rule.assign(self.A_q, np.asarray(values).reshape(-1, self.dim, self.dim))

    def set_flux(self, values: np.ndarray) -> None:
        self.rule.assign(self.Q_q, np.asarray(values).reshape(-1, self.dim))

    def assemble_jacobian(self, A: PETSc.Mat) -> None:
        A.zeroEntries()
        dolfinx.fem.petsc.assemble_matrix(A, self._a, [self.bc])
        A.assemble()

    def assemble_residual(self, x: PETSc.Vec, b: PETSc.Vec) -> None:
        """:math:`R(u_H)` into ``b`` (zero rows at boundary dofs when ``x`` satisfies the
        boundary condition)."""
        with b.localForm() as b_local:
            b_local.set(0.0)
        dolfinx.fem.petsc.assemble_vector(b, self._R)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(b, [self.bc], x, -1.0)

    # -- linear solve -----------------------------------------------------------------------------
    def solve_linear(self, tensors: np.ndarray) -> dolfinx.fem.Function:
        """Solve with the tensor field ``tensors`` (``(n_local, d, d)``) at the points.

        Returns :attr:`u` (collective)."""
        tensors = np.asarray(tensors, dtype=float).reshape(-1, self.dim, self.dim)
        if tensors.shape[0] != self.rule.n_local:
            raise ValueError(
                f"{tensors.shape[0]} tensors given for {self.rule.n_local} quadrature points"
            )
        self.set_tangent(tensors)
        A = dolfinx.fem.petsc.create_matrix(self._a)
        b = dolfinx.fem.petsc.assemble_vector(self._L)
        ksp = PETSc.KSP().create(self.comm)
        try:
            self.assemble_jacobian(A)
            dolfinx.fem.petsc.apply_lifting(b, [self._a], [[self.bc]])
            b.ghostUpdate(addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
            dolfinx.fem.petsc.set_bc(b, [self.bc])
            ksp.setOptionsPrefix(self.prefix)
            ksp.setOperators(A)
            with prefixed_options(self.prefix, self.petsc_options):
                ksp.setFromOptions()
            ksp.solve(b, self.u.x.petsc_vec)
            reason = ksp.getConvergedReason()
            if reason < 0:
                raise RuntimeError(
                    f"macro linear solve {self.prefix!r} failed: KSP reason {reason}"
                )
            self.u.x.scatter_forward()
        finally:
            for obj in (ksp, A, b):
                obj.destroy()
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
