r"""Direct numerical simulation and error measurement for HMM.

:class:`DNSProblem` solves :math:`-\nabla\cdot q(x, x/\varepsilon, \nabla u^\varepsilon) =
\lambda f`, :math:`u^\varepsilon = \lambda u_D` on the boundary (linear or monotone nonlinear)
on a structured fine mesh of :math:`[0,1]^d` that resolves :math:`\varepsilon`, with the same
coefficient object, source and boundary value as the HMM.  A linear problem is one linear solve;
a nonlinear one is solved by the package's :class:`~multiscale.nonlinear.NewtonSolver` (UFL
Jacobian, :class:`~multiscale.nonlinear.FormAssembly`) along the load factors :math:`\lambda`
of a :class:`~multiscale.nonlinear.LoadStepper` (by default the single factor 1), as the HMM
macro problem (:class:`~multiscale.hmm.macro.ScalarProblem`).

:func:`compare` measures a coarse P1 solution :math:`u_H` (on the structured mesh of
:func:`~multiscale.mesh.unit_mesh` with ``n_coarse`` cells per side) against a reference
:math:`u_{ref}` on any fine mesh:

.. math::
    \|u_{ref} - u_H\|_{L^2}, \qquad |u_{ref} - u_H|_{H^1},

integrated with a quadrature rule on the *fine* mesh.  The coarse solution is small, so each
rank builds a serial copy of the coarse mesh (same generator, same cells), receives all coarse
nodal values (matched by lattice coordinates) and evaluates :math:`u_H` and :math:`\nabla u_H`
at its own fine quadrature points by a bounding-box search: no interpolation between
non-matching distributed meshes, and the same code on dolfinx 0.9 and 0.11.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import dolfinx
import numpy as np
import ufl
from mpi4py import MPI

from multiscale.coupling import QuadratureRule
from multiscale.mesh import unit_mesh
from multiscale.nonlinear import unique_prefix

from .macro import ScalarLoad, ScalarProblem, Source, linear_solve, linear_solver_options

__all__ = ["DNSProblem", "compare"]

log = logging.getLogger(__name__)


class DNSProblem(ScalarProblem):
    """The fine-scale problem on ``unit_mesh(comm, dim, n)``.

    ``n`` should resolve :math:`\\varepsilon` (several cells per period, and for piecewise
    constant coefficients ``n`` a multiple of :math:`2/\\varepsilon` so cells do not straddle
    interfaces).  ``petsc_options_prefix`` and ``petsc_options`` are the prefix and overrides of
    the linear solver (:func:`~multiscale.hmm.macro.linear_solver_options`) or, for a nonlinear
    coefficient, of the Newton solver (:func:`~multiscale.hmm.macro.default_newton_options`);
    ``max_cuts`` and ``regrow_after`` those of its load stepper.  :meth:`solve` returns
    :attr:`u`.  Collective on ``comm``.
    """

    role = "hmm_dns"
    newton_name = "DNS Newton"

    def __init__(
        self,
        comm: MPI.Comm,
        coefficient: Any,
        eps: float,
        n: int,
        *,
        f: Source = 1.0,
        boundary_value: float = 0.0,
        quadrature_degree: int = 4,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
        max_cuts: int = 6,
        regrow_after: int = 2,
    ) -> None:
        eps = float(eps)
        if not np.isfinite(eps) or eps <= 0.0:
            raise ValueError(f"eps must be a finite positive number, got {eps!r}")
        self.comm = comm
        self.coefficient = coefficient
        self.eps = eps
        self.n = int(n)
        if self.n * eps < 2.0 - 1e-12:
            log.warning("DNS with %d cells per side hardly resolves eps = %g", self.n, eps)
        self.mesh = mesh = unit_mesh(comm, coefficient.dim, self.n)
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1))
        self.u = dolfinx.fem.Function(self.V, name="u_eps")
        self.load = ScalarLoad(self.V, f, boundary_value)
        self.ndofs = self.V.dofmap.index_map.size_global
        self._init_forms(int(quadrature_degree))
        if coefficient.linear:
            self.prefix = petsc_options_prefix or unique_prefix(self.role)
            self.petsc_options = {**linear_solver_options(), **(petsc_options or {})}
        else:
            self._init_newton(
                self._F,
                self._J,
                petsc_options_prefix=petsc_options_prefix,
                petsc_options=petsc_options,
                max_cuts=max_cuts,
                regrow_after=regrow_after,
            )
            assert self.newton is not None
            self.prefix, self.petsc_options = self.newton.prefix, self.newton.petsc_options

    def _init_forms(self, quadrature_degree: int) -> None:
        """The bilinear and linear forms (linear coefficient) or the residual and its UFL
        Jacobian, compiled once."""
        mesh = self.mesh
        x = ufl.SpatialCoordinate(mesh)
        y = x / dolfinx.fem.Constant(mesh, self.eps)
        v, w = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)
        dx = ufl.dx(metadata={"quadrature_degree": quadrature_degree})
        source = self.load.source * v * ufl.dx
        if self.coefficient.linear:
            flux = self.coefficient.flux(x, y, ufl.grad(w))
            self._J = dolfinx.fem.form(ufl.inner(flux, ufl.grad(v)) * dx)
            self._L = dolfinx.fem.form(source)
        else:
            flux = self.coefficient.flux(x, y, ufl.grad(self.u))
            F = ufl.inner(flux, ufl.grad(v)) * dx - source
            self._F = dolfinx.fem.form(F)
            self._J = dolfinx.fem.form(ufl.derivative(F, self.u, w))

    def _solve_linear(self) -> None:
        linear_solve(
            self._J,
            self._L,
            [self.load.bc],
            self.u,
            petsc_options_prefix=self.prefix,
            petsc_options=self.petsc_options,
            what="DNS linear solve",
        )


def _lattice_keys(X: np.ndarray, n: int) -> np.ndarray:
    """Integer keys of points of the lattice :math:`\\{0, 1/n, \\ldots, 1\\}^d`."""
    idx = np.rint(X * n).astype(np.int64)
    key = np.zeros(len(X), dtype=np.int64)
    for i in range(X.shape[1]):
        key = key * (n + 1) + idx[:, i]
    return key


def _serial_copy(u: dolfinx.fem.Function, n: int) -> dolfinx.fem.Function:
    """``u`` (P1 on ``unit_mesh(comm, d, n)``) on every rank's own serial copy of the mesh."""
    V = u.function_space
    comm = V.mesh.comm
    d = V.mesh.geometry.dim
    nown = V.dofmap.index_map.size_local
    X = V.tabulate_dof_coordinates()[:nown, :d]
    keys = np.concatenate(comm.allgather(_lattice_keys(X, n)))
    vals = np.concatenate(comm.allgather(u.x.array[:nown].copy()))
    mesh_s = unit_mesh(MPI.COMM_SELF, d, n)
    V_s = dolfinx.fem.functionspace(mesh_s, ("Lagrange", 1))
    keys_s = _lattice_keys(V_s.tabulate_dof_coordinates()[:, :d], n)
    order = np.argsort(keys)
    pos = np.searchsorted(keys[order], keys_s)
    if len(keys) != len(keys_s) or not np.array_equal(keys[order][pos], keys_s):
        raise ValueError("compare: the coarse solution is not P1 on unit_mesh(d, n_coarse)")
    u_s = dolfinx.fem.Function(V_s)
    u_s.x.array[:] = vals[order][pos]
    return u_s


def compare(
    u_coarse: dolfinx.fem.Function,
    n_coarse: int,
    u_ref: dolfinx.fem.Function,
    *,
    degree: int = 2,
) -> dict[str, float]:
    """Errors of ``u_coarse`` against ``u_ref`` on the fine mesh of ``u_ref`` (collective).

    Returns ``L2``, ``H1`` (seminorm) and the reference norms ``L2_ref``, ``H1_ref``, all
    reduced over ranks.  Both meshes must live on the same communicator.
    """
    u_s = _serial_copy(u_coarse, int(n_coarse))
    mesh_s = u_s.function_space.mesh
    fine = u_ref.function_space.mesh
    d = fine.geometry.dim
    rule = QuadratureRule(fine, int(degree))
    pts = rule.coordinates().reshape(-1, d)
    ref = rule.evaluate(u_ref).reshape(-1)
    ref_grad = rule.evaluate(ufl.grad(u_ref)).reshape(-1, d)
    w = rule.jacobian_weights().reshape(-1)
    points = np.zeros((len(pts), 3))
    points[:, :d] = pts
    tdim = mesh_s.topology.dim
    tree = dolfinx.geometry.bb_tree(mesh_s, tdim)
    candidates = dolfinx.geometry.compute_collisions_points(tree, points)
    colliding = dolfinx.geometry.compute_colliding_cells(mesh_s, candidates, points)
    offsets = np.asarray(colliding.offsets)
    if len(points) and np.any(np.diff(offsets) == 0):
        raise ValueError("compare: some fine points lie outside the coarse mesh")
    cells = np.asarray(colliding.array)[offsets[:-1]].astype(np.int32)
    vals = np.asarray(u_s.eval(points, cells)).reshape(-1) if len(points) else np.zeros(0)
    grad_cells = QuadratureRule(mesh_s, 0).evaluate(ufl.grad(u_s)).reshape(-1, d)
    grads = grad_cells[cells]
    sums = np.array(
        [
            np.sum(w * (ref - vals) ** 2),
            np.sum(w * np.sum((ref_grad - grads) ** 2, axis=1)),
            np.sum(w * ref**2),
            np.sum(w * np.sum(ref_grad**2, axis=1)),
        ]
    )
    sums = fine.comm.allreduce(sums, op=MPI.SUM)
    return dict(zip(("L2", "H1", "L2_ref", "H1_ref"), np.sqrt(sums).tolist(), strict=True))
