"""Stokes cell problem: the permeability of a periodic pore space (Sanchez-Palencia, Tartar).

The cell :math:`Y` is split into the fluid :math:`Y_f` (the cells of one phase) and the solid
(every other phase).  For each unit body force :math:`f = e_j` (the negative mean pressure
gradient driving the flow) find the periodic velocity :math:`v^j` and pressure :math:`p^j` on
:math:`Y_f` with :math:`v^j = 0` on the fluid-solid interface :math:`\\Gamma` and

.. math::
    \\mu(\\nabla v^j, \\nabla w)_{Y_f} - (p^j, \\nabla\\cdot w)_{Y_f}
    - (q, \\nabla\\cdot v^j)_{Y_f} = (e_j, w)_{Y_f} \\quad \\forall (w, q),

with :math:`p^j` fixed up to its constant by pinning one value (LU) or, with the block
preconditioner, determined up to it (the constant pressure is the operator's null space).
Darcy's law :math:`\\langle v\\rangle = -\\frac{1}{\\mu} K \\nabla \\bar p` follows with
the permeability

.. math::
    K_{ij} = \\frac{\\mu}{|Y|}\\int_{Y_f} v^j_i\\,dy,

the mean being over the *whole* cell (the Darcy or seepage velocity).  :math:`K` is symmetric
positive semidefinite; its null space holds the directions in which the fluid does not connect
across the cell.  Testing with :math:`(w, q) = (v^j, p^j)` gives the energy identity (exact for
the discrete solution, since Taylor–Hood pairs test the continuity equation with all of
:math:`Q_h`)

.. math::
    \\mu\\langle\\nabla v^j : \\nabla v^j\\rangle = \\langle v^j\\rangle\\cdot e_j
    = K_{jj}/\\mu,

whose residual :math:`|\\mu\\langle\\nabla v^j : \\nabla v^j\\rangle - \\langle v^j\\rangle\\cdot
e_j|`, relative to :math:`\\max_j \\langle v^j\\rangle\\cdot e_j`, is reported as ``hill_mandel``
(a direction in which the fluid does not connect has zero flow and zero work; an isolated pore
has :math:`K = 0`: the residual is taken relative to at least
:math:`\\sqrt{\\epsilon}\\,\\ell^2/\\mu`, :math:`\\ell` the longest cell edge, :math:`\\epsilon`
the machine precision).

Discretization: Taylor–Hood :math:`P_k/P_{k-1}` (``degree`` :math:`k \\ge 2`) on a submesh of the
fluid cells; periodicity of velocity and pressure through one dolfinx_mpc constraint on the mixed
space.  The operator is assembled and factorized (or its block preconditioner built) once; the
:math:`d` load cases only change a :class:`dolfinx.fem.Constant`.

Walls are the fluid-solid interface facets inside the box and the fluid facets on a box face
whose periodic image is solid.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import basix.ufl
import dolfinx
import dolfinx.fem.petsc
import dolfinx_mpc
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc
from scipy.spatial import cKDTree

from multiscale.mesh.cell import CellMesh
from multiscale.mesh.periodicity import check_periodic
from multiscale.nonlinear import PETScOwner, unique_prefix
from multiscale.physics.fluid import NewtonianFluid

from .constraints import interior_point_near_centre, periodic_map, pin
from .linear import ConstrainedLinearSolver
from .result import HomogenizationResult

__all__ = [
    "StokesCellProblem",
    "block_preconditioner_options",
    "default_stokes_options",
    "fluid_submesh",
]

log = logging.getLogger(__name__)


def block_preconditioner_options(amg: str | None = None) -> dict[str, Any]:
    """MINRES with the block-diagonal preconditioner :math:`\\mathrm{diag}(\\tilde A_h^{-1},
    \\mu\\tilde M_h^{-1})`, both blocks fixed symmetric positive definite linear operators (as
    MINRES requires): one algebraic-multigrid V-cycle on the viscous block :math:`A_h` (BoomerAMG
    where PETSc has hypre, else GAMG with three Chebyshev sweeps; the periodic vector Laplacian
    does not couple the components, so scalar AMG on it is the componentwise AMG) and four
    Jacobi-preconditioned Chebyshev steps on the pressure mass matrix :math:`M_h/\\mu`
    (spectrally equivalent to the Schur complement :math:`B A^{-1} B^T`, uniformly in :math:`h`
    for an inf-sup stable pair).

    Measured on the sphere pore space (``benchmarks/stokes.py``, 6.8k, 17.6k and 46k dofs,
    MINRES iterations per load case): 54, 61, 63 with these options; 67, 78, 90 with the GAMG
    fallback; 113, 141, 172 with the former GAMG V-cycle, Jacobi on :math:`M_h` and the pinned
    pressure.  Jacobi alone on :math:`M_h` costs 50-70 % more iterations even with an exact
    velocity solve (61 and 73 against 39 and 43 with the exact mass matrix, 6.8k and 17.6k
    dofs); pinning one pressure value (as LU needs) leaves a preconditioned eigenvalue of order
    :math:`h^3` and costs another 20-25 %, so with a Krylov solver :class:`StokesCellProblem`
    removes the pressure constant as the operator's null space instead.

    ``amg`` chooses the velocity AMG, ``"hypre"`` or ``"gamg"`` (default: hypre where PETSc has
    it); GAMG needs less memory (0.46 against 0.64 GB at 46k dofs)."""
    if amg is None:
        amg = "hypre" if PETSc.Sys.hasExternalPackage("hypre") else "gamg"
    if amg not in ("hypre", "gamg"):
        raise ValueError(f"amg must be 'hypre' or 'gamg', got {amg!r}")
    if amg == "hypre":
        velocity: dict[str, Any] = {
            "fieldsplit_u_pc_type": "hypre",
            "fieldsplit_u_pc_hypre_type": "boomeramg",
            # the 3D settings: the default threshold 0.25 coarsens P2 stiffness matrices slowly
            # (a V-cycle cost 100 matrix products at 17k dofs, against 15 with these)
            "fieldsplit_u_pc_hypre_boomeramg_strong_threshold": 0.5,
            "fieldsplit_u_pc_hypre_boomeramg_coarsen_type": "HMIS",
            "fieldsplit_u_pc_hypre_boomeramg_interp_type": "ext+i",
            "fieldsplit_u_pc_hypre_boomeramg_P_max": 4,
        }
    else:
        velocity = {
            "fieldsplit_u_pc_type": "gamg",
            "fieldsplit_u_pc_gamg_threshold": 0.02,
            "fieldsplit_u_mg_levels_ksp_type": "chebyshev",
            "fieldsplit_u_mg_levels_ksp_max_it": 3,
            "fieldsplit_u_mg_levels_pc_type": "jacobi",
        }
    return {
        "ksp_type": "minres",
        "ksp_rtol": 1.0e-12,
        "ksp_atol": 1.0e-50,
        "ksp_max_it": 5000,
        "pc_type": "fieldsplit",
        "pc_fieldsplit_type": "additive",
        "fieldsplit_u_ksp_type": "preonly",
        **velocity,
        "fieldsplit_p_ksp_type": "chebyshev",
        "fieldsplit_p_ksp_max_it": 4,
        "fieldsplit_p_ksp_norm_type": "none",  # a fixed polynomial: no convergence test
        "fieldsplit_p_pc_type": "jacobi",
    }


def default_stokes_options(dim: int, ndofs: int) -> dict[str, Any]:
    """MUMPS LU for 2D cells and 3D cells up to 50k dofs, :func:`block_preconditioner_options`
    above, with GAMG on the velocity above 500k dofs (see the benchmark table in the README:
    LU's memory and factorization time grow much faster than the block preconditioner's, whose
    iterations stay nearly constant; at 1.1M dofs BoomerAMG's set-up passed 13 GB where GAMG's
    whole run took 8.2 GB)."""
    if dim == 3 and ndofs > 500_000:
        return block_preconditioner_options("gamg")
    if dim == 3 and ndofs > 50_000:
        return block_preconditioner_options()
    return {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}


def fluid_submesh(mesh: dolfinx.mesh.Mesh, cells: np.ndarray) -> dolfinx.mesh.Mesh:
    """The submesh of the (owned and ghost) ``cells``; ``create_submesh`` returns the maps as
    arrays in dolfinx 0.9 and as ``EntityMap`` objects from 0.10 on, the mesh first in both."""
    return dolfinx.mesh.create_submesh(mesh, mesh.topology.dim, cells)[0]


def _wall_facets(mesh: dolfinx.mesh.Mesh, box: np.ndarray, tol: float) -> np.ndarray:
    """Boundary facets of the fluid submesh that are walls: those inside the box (the
    fluid-solid interface) and those on a box face whose periodic image is no fluid facet (fluid
    meeting solid across the periodic boundary).  Collective (the box-face midpoints of all
    ranks are gathered)."""
    fdim, gdim = mesh.topology.dim - 1, mesh.geometry.dim
    mesh.topology.create_connectivity(fdim, fdim + 1)
    facets = dolfinx.mesh.exterior_facet_indices(mesh.topology)
    mid = dolfinx.mesh.compute_midpoints(mesh, fdim, facets)[:, :gdim]
    lower, upper = np.abs(mid - box[0]) < tol, np.abs(mid - box[1]) < tol
    on_face = np.any(lower | upper, axis=1)
    image = mid + (lower.astype(float) - upper.astype(float)) * (box[1] - box[0])
    face_mids = np.concatenate(mesh.comm.allgather(mid[on_face])).reshape(-1, gdim)
    wall = ~on_face
    if len(face_mids) and on_face.any():
        dist, _ = cKDTree(face_mids).query(image[on_face])
        wall[np.flatnonzero(on_face)[dist > tol]] = True
    return facets[wall].astype(np.int32)


def _owned_count(comm: MPI.Comm, indices: np.ndarray, nowned: int) -> int:
    return comm.allreduce(int(np.count_nonzero(indices < nowned)), op=MPI.SUM)


class StokesCellProblem(PETScOwner):
    """Permeability of the periodic pore space ``fluid`` of ``cell``.

    Parameters
    ----------
    cell:
        The periodic cell mesh; the phase ``fluid`` is the pore space, all others are solid.
    fluid:
        Name or tag of the fluid phase.
    law:
        The fluid's :class:`~multiscale.physics.fluid.NewtonianFluid`.
    degree:
        Velocity degree :math:`k \\ge 2` of the Taylor–Hood pair :math:`P_k/P_{k-1}`.
    petsc_options_prefix, petsc_options:
        Options prefix (default ``multiscale_stokes_<n>_``) and overrides of
        :func:`default_stokes_options` (e.g. :func:`block_preconditioner_options`).

    Collective on ``cell.mesh.comm``; owns its matrices and solver (:meth:`destroy`).
    """

    def __init__(
        self,
        cell: CellMesh,
        fluid: str | int,
        law: NewtonianFluid,
        *,
        degree: int = 2,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(law, NewtonianFluid):
            raise ValueError(f"the fluid law must be a NewtonianFluid, got {type(law).__name__}")
        if isinstance(degree, bool) or not isinstance(degree, int) or degree < 2:
            raise ValueError(f"Taylor-Hood needs a velocity degree >= 2, got {degree!r}")
        self.cell, self.law, self.degree = cell, law, degree
        self.comm: MPI.Comm = cell.mesh.comm
        self.dim = cell.dim
        self.tag = cell.tag(fluid)
        self.prefix = petsc_options_prefix or unique_prefix("stokes")
        self._user_options = dict(petsc_options or {})
        self._linear: ConstrainedLinearSolver | None = None
        self._krylov = False
        self.options: dict[str, Any] = {}
        box = np.asarray(cell.box, dtype=float)
        self._tol = 1e-8 * float((box[1] - box[0]).max())
        check_periodic(self.cell)  # a clear error before the constraints, never a wrong answer
        self.mesh = self._submesh()
        walls = _wall_facets(self.mesh, box, self._tol)
        nowned = self.mesh.topology.index_map(self.dim - 1).size_local
        if _owned_count(self.comm, walls, nowned) == 0:
            raise ValueError(
                f"the fluid phase {fluid!r} has no wall inside the cell (no fluid-solid "
                "interface): not a porous medium, its permeability is unbounded"
            )
        self._build_spaces(walls)
        self._build_forms()

    # -- set-up ------------------------------------------------------------------------------
    def _submesh(self) -> dolfinx.mesh.Mesh:
        mesh, tags = self.cell.mesh, self.cell.cell_tags
        nowned = mesh.topology.index_map(self.dim).size_local
        cells = np.sort(tags.find(self.tag)).astype(np.int32)
        nfluid = _owned_count(self.comm, cells, nowned)
        ntotal = mesh.topology.index_map(self.dim).size_global
        if nfluid == 0:
            raise ValueError(f"the fluid phase (tag {self.tag}) has no cells")
        if nfluid == ntotal:
            raise ValueError(
                f"the cell is all fluid (phase tag {self.tag}): no solid, so not a porous medium"
            )
        return fluid_submesh(mesh, cells)

    def _build_spaces(self, walls: np.ndarray) -> None:
        mesh, dim, k = self.mesh, self.dim, self.degree
        cellname = mesh.basix_cell()
        Pv = basix.ufl.element("Lagrange", cellname, k, shape=(dim,))
        Pp = basix.ufl.element("Lagrange", cellname, k - 1)
        W = dolfinx.fem.functionspace(mesh, basix.ufl.mixed_element([Pv, Pp]))
        V0, _ = W.sub(0).collapse()
        Q0, _ = W.sub(1).collapse()
        wall_dofs = dolfinx.fem.locate_dofs_topological((W.sub(0), V0), dim - 1, walls)
        zero = dolfinx.fem.Function(V0)
        box = np.asarray(self.cell.box, dtype=float)
        lo, hi = box
        self._walls = [dolfinx.fem.dirichletbc(zero, wall_dofs, W.sub(0))]
        # the pressure constant: pin the P_{k-1} node nearest the centre, off the box faces (a
        # Krylov solver leaves the pin out and removes the constant as the null space instead)
        self.bcs = self._walls + pin(
            W, interior_point_near_centre(Q0, lo, hi, self._tol), [1], self._tol
        )
        on_upper, to_lower = periodic_map(box, self._tol)

        # component by component: the geometrical constraint on the blocked velocity subspace
        # of a mixed space misses most slaves (dolfinx_mpc 0.9)
        mpc = dolfinx_mpc.MultiPointConstraint(W)
        for sub in [W.sub(0).sub(i) for i in range(dim)] + [W.sub(1)]:
            mpc.create_periodic_constraint_geometrical(sub, on_upper, to_lower, self.bcs)
        mpc.finalize()
        self.W, self.mpc = W, mpc
        imap = W.dofmap.index_map
        self.ndofs = imap.size_global * W.dofmap.index_map_bs
        self.volume = self.cell.volume
        self.volume_fractions = self.cell.volume_fractions()

    def _build_forms(self) -> None:
        mu, dim = self.law.mu, self.dim
        v, p = ufl.TrialFunctions(self.W)
        w, q = ufl.TestFunctions(self.W)
        self._f = dolfinx.fem.Constant(self.mesh, np.zeros(dim))
        self._T = dolfinx.fem.Constant(self.mesh, np.zeros(dim))
        viscous = ufl.inner(self.law.flux(ufl.grad(v)), ufl.grad(w)) * ufl.dx
        self._a = dolfinx.fem.form(viscous - p * ufl.div(w) * ufl.dx - q * ufl.div(v) * ufl.dx)
        self._p = dolfinx.fem.form(viscous + (1.0 / mu) * p * q * ufl.dx)
        self._L = dolfinx.fem.form(ufl.inner(self._f, w) * ufl.dx)
        self.solution = dolfinx.fem.Function(self.mpc.function_space)
        vh = ufl.split(self.solution)[0]
        self._mean_v = dolfinx.fem.form(ufl.inner(vh, self._T) * ufl.dx)
        self._energy = dolfinx.fem.form(
            ufl.inner(self.law.flux(ufl.grad(vh)), ufl.grad(vh)) * ufl.dx
        )

    def _field_sets(self) -> list[tuple[str, PETSc.IS]]:
        """Global indices of the owned velocity and pressure dofs (the fieldsplit blocks)."""
        imap = self.mpc.function_space.dofmap.index_map
        start, nowned = imap.local_range[0], imap.size_local
        out = []
        for name, i in (("u", 0), ("p", 1)):
            local = np.asarray(self.W.sub(i).collapse()[1], dtype=np.int32)
            owned = np.sort(local[local < nowned]) + start
            index_set = self._own(PETSc.IS().createGeneral(owned, comm=self.comm))
            if i == 0 and self._node_blocks(owned):  # AMG on velocity nodes, not single dofs
                index_set.setBlockSize(self.dim)
            out.append((name, index_set))
        return out

    def _node_blocks(self, owned: np.ndarray) -> bool:
        """Whether the velocity components of every node are consecutive dofs (on all ranks)."""
        d = self.dim
        ok = len(owned) % d == 0
        if ok and len(owned):
            blocks = owned.reshape(-1, d)
            ok = bool(np.all(np.diff(blocks, axis=1) == 1))
        return self.comm.allreduce(ok, op=MPI.LAND)

    def _pressure_constant(self, A: PETSc.Mat) -> PETSc.NullSpace:
        """The null space of the unpinned operator: the constant pressure (1 on the owned
        pressure dofs that are not periodic slaves, 0 on the velocity and the slaves, whose rows
        are the identity), normalized."""
        nowned = self.mpc.function_space.dofmap.index_map.size_local
        local = np.asarray(self.W.sub(1).collapse()[1], dtype=np.int32)
        slaves = np.asarray(self.mpc.slaves, dtype=np.int32)
        masters = np.setdiff1d(local[local < nowned], slaves[slaves < nowned])
        constant = self._own(A.createVecRight())
        constant.set(0.0)
        constant.array[masters] = 1.0
        constant.normalize()
        return self._own(PETSc.NullSpace().create(vectors=[constant], comm=self.comm))

    def _setup(self) -> ConstrainedLinearSolver:
        """The linear solver: LU, or MINRES with the block preconditioner (assembled from
        ``self._p``), set up on the first solve and reused.  A Krylov solver with the block
        preconditioner (which factorizes no matrix with a zero block) takes the pressure
        constant as the operator's null space instead of the pin."""
        if self._linear is None:
            options = default_stokes_options(self.dim, self.ndofs)
            options.update(self._user_options)
            self.options = options
            block = options.get("pc_type") == "fieldsplit"
            self._krylov = block and options.get("ksp_type", "gmres") != "preonly"
            self._linear = self._own(
                ConstrainedLinearSolver(
                    self._a,
                    self.mpc,
                    self._walls if self._krylov else self.bcs,
                    petsc_options_prefix=self.prefix,
                    petsc_options=options,
                    preconditioner=self._p if block else None,
                    configure=self._configure,
                    name="Stokes cell solver",
                )
            )
        return self._linear

    def _configure(self, ksp: PETSc.KSP) -> None:
        if self._krylov:
            A = ksp.getOperators()[0]
            A.setNullSpace(self._pressure_constant(A))
        pc = ksp.getPC()
        if pc.getType() == "fieldsplit":
            pc.setFieldSplitIS(*self._field_sets())

    # -- solve -------------------------------------------------------------------------------
    def solve(self) -> HomogenizationResult:
        """The permeability :math:`K` (``tensor``), the Darcy velocities :math:`\\langle
        v^j\\rangle` (columns of ``mean_flux``) of the unit forces :math:`e_j`
        (``mean_gradient``, the identity) and the energy residuals (``hill_mandel``)."""
        linear, u = self._setup(), self.solution
        dim, forces = self.dim, np.eye(self.dim)
        mean_v = np.zeros((dim, dim))
        energy, work = np.zeros(dim), np.zeros(dim)
        for j in range(dim):
            self._f.value[...] = forces[j]
            linear.solve(self._L, u, case=f"load case {j}")
            mean_v[:, j] = self._mean_velocity()
            work[j] = mean_v[:, j] @ forces[j]
            energy[j] = self._assemble(self._energy) / self.volume
        timings = dict(linear.timings)
        # relative to the largest case (a direction without flow has work 0), floored at
        # sqrt(eps) l^2/mu, below which K is round-off (isolated pores: K = 0)
        floor = np.sqrt(np.finfo(float).eps) * float(self.cell.lengths.max()) ** 2 / self.law.mu
        energy_residual = np.abs(energy - work) / max(float(np.abs(work).max()), floor)
        timings = {key: self.comm.allreduce(val, op=MPI.MAX) for key, val in timings.items()}
        return HomogenizationResult(
            tensor=self.law.mu * mean_v,
            notation="matrix",
            bc="periodic",
            physics="permeability",
            dim=dim,
            ndofs=self.ndofs,
            volume_fractions=dict(self.volume_fractions),
            mean_flux=mean_v,
            mean_gradient=forces,
            hill_mandel=energy_residual,
            timings=timings,
            solver={
                "prefix": self.prefix,
                "options": self.options,
                "iterations": list(linear.iterations[-dim:]),
            },
        )

    def _assemble(self, form: dolfinx.fem.Form) -> float:
        return self.comm.allreduce(dolfinx.fem.assemble_scalar(form), op=MPI.SUM)

    def _mean_velocity(self) -> np.ndarray:
        out = np.zeros(self.dim)
        for i in range(self.dim):
            self._T.value[...] = np.eye(self.dim)[i]
            out[i] = self._assemble(self._mean_v) / self.volume
        return out
