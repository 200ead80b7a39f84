r"""Direct numerical simulation and error measurement for HMM.

:class:`DNS` solves :math:`-\nabla\cdot q(x, x/\varepsilon, \nabla u^\varepsilon) = f` (linear or
monotone nonlinear) on a structured fine mesh of :math:`[0,1]^d` that resolves
:math:`\varepsilon`, with the same coefficient object, source and boundary value as the HMM.

:func:`compare` measures a coarse P1 solution :math:`u_H` (on the structured mesh of
:func:`~multiscale.hmm.micro.unit_mesh` with ``n_coarse`` cells per side) against a reference
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

import itertools
import logging
import time
from collections.abc import Mapping
from typing import Any

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.coupling import QuadratureRule
from multiscale.petsc_options import prefixed_options

from .macro import Source, as_source, boundary_condition, linear_solver_options
from .micro import unit_mesh
from .solver import default_snes_options

__all__ = ["DNS", "compare"]

log = logging.getLogger(__name__)

_instances = itertools.count()


class DNS:
    """The fine-scale problem on ``unit_mesh(comm, dim, n)``.

    ``n`` should resolve :math:`\\varepsilon` (several cells per period, and for piecewise
    constant coefficients ``n`` a multiple of :math:`2/\\varepsilon` so cells do not straddle
    interfaces).  Collective on ``comm``.
    """

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
        petsc_options: Mapping[str, Any] | None = None,
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
        self.bc = boundary_condition(self.V, float(boundary_value))
        x = ufl.SpatialCoordinate(mesh)
        y = x / dolfinx.fem.Constant(mesh, eps)
        v, w = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)
        dx = ufl.dx(metadata={"quadrature_degree": int(quadrature_degree)})
        fx = as_source(f, mesh)
        if coefficient.linear:
            self._a = dolfinx.fem.form(
                ufl.inner(coefficient.flux(x, y, ufl.grad(w)), ufl.grad(v)) * dx
            )
            self._L = dolfinx.fem.form(fx * v * ufl.dx)
        else:
            F = (
                ufl.inner(coefficient.flux(x, y, ufl.grad(self.u)), ufl.grad(v)) * dx
                - fx * v * ufl.dx
            )
            self._F = dolfinx.fem.form(F)
            self._a = dolfinx.fem.form(ufl.derivative(F, self.u, w))
        self.options = linear_solver_options() if coefficient.linear else default_snes_options()
        self.options.update(petsc_options or {})
        self.prefix = f"multiscale_hmm_dns_{next(_instances)}_"
        self.ndofs = self.V.dofmap.index_map.size_global
        self.iterations = 0
        self.residual_history: list[float] = []
        self.seconds = 0.0

    def _configure(self, obj: PETSc.KSP | PETSc.SNES) -> None:
        obj.setOptionsPrefix(self.prefix)
        with prefixed_options(self.prefix, self.options):
            obj.setFromOptions()

    def solve(self) -> dolfinx.fem.Function:
        t0 = time.perf_counter()
        if self.coefficient.linear:
            self._solve_linear()
        else:
            self._solve_nonlinear()
        self.seconds = self.comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        return self.u

    def _solve_linear(self) -> None:
        A = dolfinx.fem.petsc.assemble_matrix(self._a, bcs=[self.bc])
        A.assemble()
        b = dolfinx.fem.petsc.assemble_vector(self._L)
        dolfinx.fem.petsc.apply_lifting(b, [self._a], [[self.bc]])
        b.ghostUpdate(addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(b, [self.bc])
        ksp = PETSc.KSP().create(self.comm)
        try:
            ksp.setOperators(A)
            self._configure(ksp)
            ksp.solve(b, self.u.x.petsc_vec)
            if ksp.getConvergedReason() < 0:
                raise RuntimeError(f"DNS linear solve failed: reason {ksp.getConvergedReason()}")
            self.u.x.scatter_forward()
            self.iterations = 1
        finally:
            for obj in (ksp, A, b):
                obj.destroy()

    def _solve_nonlinear(self) -> None:
        u = self.u
        u.x.array[:] = 0.0
        self.bc.set(u.x.array)
        u.x.scatter_forward()
        b = u.x.petsc_vec.duplicate()
        A = dolfinx.fem.petsc.create_matrix(self._a)
        x = u.x.petsc_vec.copy()
        snes = PETSc.SNES().create(self.comm)

        def residual(snes, xv, F):
            xv.copy(u.x.petsc_vec)
            u.x.scatter_forward()
            with F.localForm() as f_local:
                f_local.set(0.0)
            dolfinx.fem.petsc.assemble_vector(F, self._F)
            F.ghostUpdate(addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
            dolfinx.fem.petsc.set_bc(F, [self.bc], xv, -1.0)

        def jacobian(snes, xv, J, P):
            J.zeroEntries()
            dolfinx.fem.petsc.assemble_matrix(J, self._a, [self.bc])
            J.assemble()

        try:
            snes.setFunction(residual, b)
            snes.setJacobian(jacobian, A)
            snes.setConvergenceHistory()
            self._configure(snes)
            snes.solve(None, x)
            self.iterations = snes.getIterationNumber()
            self.residual_history = [float(r) for r in snes.getConvergenceHistory()[0]]
            if snes.getConvergedReason() < 0:
                raise RuntimeError(
                    f"DNS Newton did not converge: reason {snes.getConvergedReason()}, "
                    f"residuals {self.residual_history}"
                )
            x.copy(u.x.petsc_vec)
            u.x.scatter_forward()
        finally:
            for obj in (snes, A, b, x):
                obj.destroy()


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
