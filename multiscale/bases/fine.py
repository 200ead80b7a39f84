"""The fine-scale problem :math:`-\\nabla\\cdot(a\\nabla u) = f`, :math:`u = 0` on
:math:`\\partial\\Omega`, on the fine mesh of a :class:`~multiscale.bases.nested.NestedMeshes`.

Three forms are compiled once, each weighted by a piecewise-constant indicator
:math:`\\chi` (a DG0 function):

.. math::
    a_\\chi(u, v) = \\int_\\Omega \\chi\\, a\\nabla u\\cdot\\nabla v, \\quad
    m_\\chi(u, v) = \\int_\\Omega \\chi\\, u v, \\quad \\ell_\\chi(v) = \\int_\\Omega \\chi f v .

With :math:`\\chi = 1` they give the global (Neumann) fine matrix :math:`A`, and with
:math:`\\chi` the indicator of the coarse elements of one colour (a colouring in which no two
elements of a colour share a vertex) the *element* matrices :math:`A^K`, :math:`M^K` and loads
:math:`b^K` of all elements of that colour at once: the closures of such elements are disjoint,
so :math:`A_\\chi[\\bar K, \\bar K] = A^K`.  The local problems read their blocks out of these
distributed PETSc matrices with ``MatCreateSubMatrices`` (:func:`extract_blocks`); nothing is
compiled per patch.  The element data are computed by the ranks that own the element's task
(:meth:`multiscale.coupling.pool.MicroPool.map_tasks`) and are then known on every rank.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import scipy.sparse as sp
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.bases.nested import NestedMeshes
from multiscale.coupling.pool import MicroPool
from multiscale.nonlinear import PETScOwner
from multiscale.petsc_options import prefixed_options

__all__ = [
    "Coefficient",
    "ElementData",
    "FineProblem",
    "extract_blocks",
    "gather_vec",
    "greedy_colouring",
]

#: A coefficient or source: a function of the fine mesh returning a UFL expression (of
#: ``ufl.SpatialCoordinate(mesh)``, or a dolfinx Function for cell-wise / random fields).
Coefficient = Callable[[dolfinx.mesh.Mesh], Any]

FINE_OPTIONS: dict[str, Any] = {"ksp_type": "cg", "pc_type": "hypre", "ksp_rtol": 1e-12}


@dataclass(frozen=True, slots=True)
class ElementData:
    """One coarse element :math:`K`: its closure fine dofs (sorted), :math:`A^K`, :math:`M^K`
    (CSR on those dofs), :math:`b^K`, and the coarse basis :math:`\\lambda^K_j` at the dofs."""

    dofs: np.ndarray
    stiffness: sp.csr_matrix
    mass: sp.csr_matrix
    load: np.ndarray
    lam: np.ndarray


def extract_blocks(mat: PETSc.Mat, index_sets: Sequence[np.ndarray]) -> list[sp.csr_matrix]:
    """``mat[I, I]`` for each sorted global index array ``I`` of this rank, as SciPy CSR.

    Collective on ``mat``'s communicator; the number of blocks may differ between ranks."""
    iss = [
        PETSc.IS().createGeneral(np.asarray(i, dtype=PETSc.IntType), comm=PETSc.COMM_SELF)
        for i in index_sets
    ]
    subs = mat.createSubMatrices(iss, iss)
    out = []
    for s in subs:
        ai, aj, av = s.getValuesCSR()
        out.append(sp.csr_matrix((av.copy(), aj.copy(), ai.copy()), shape=s.getSize()))
        s.destroy()
    for i in iss:
        i.destroy()
    return out


def gather_vec(vec: PETSc.Vec, comm: MPI.Comm) -> np.ndarray:
    """The whole of a distributed vector on every rank (global order)."""
    return np.concatenate(comm.allgather(vec.getArray(readonly=True).copy()))


def greedy_colouring(adjacency: sp.csr_matrix) -> np.ndarray:
    """Colours of the coarse elements, no two vertex-neighbours alike (greedy, in order)."""
    colour = np.full(adjacency.shape[0], -1, dtype=np.int64)
    for k in range(adjacency.shape[0]):
        used = colour[adjacency.indices[adjacency.indptr[k] : adjacency.indptr[k + 1]]]
        free = np.setdiff1d(np.arange(len(used) + 1), used)
        colour[k] = free[0]
    return colour


class FineProblem(PETScOwner):
    """Fine matrices, element data and the fully resolved reference solution.

    Parameters
    ----------
    meshes:
        The nested meshes.
    coefficient, source:
        :math:`a` and :math:`f` (see :data:`Coefficient`; ``source`` may be a number).
    pool:
        Distributes the element extractions (default: groups of one rank).
    petsc_options_prefix, petsc_options:
        Prefix and overrides of the reference solve's KSP (default CG + BoomerAMG,
        ``rtol = 1e-12``).
    """

    def __init__(
        self,
        meshes: NestedMeshes,
        coefficient: Coefficient,
        source: Coefficient | float = 1.0,
        *,
        pool: MicroPool | None = None,
        petsc_options_prefix: str = "bases_fine_",
        petsc_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.meshes = meshes
        self.comm = meshes.comm
        self.pool = pool if pool is not None else MicroPool(self.comm)
        self.prefix = petsc_options_prefix
        self.options = {**FINE_OPTIONS, **(petsc_options or {})}
        mesh, v_space = meshes.fine, meshes.space
        self._chi = dolfinx.fem.Function(dolfinx.fem.functionspace(mesh, ("DG", 0)))
        a = coefficient(mesh)
        f = source(mesh) if callable(source) else dolfinx.fem.Constant(mesh, float(source))
        u, v = ufl.TrialFunction(v_space), ufl.TestFunction(v_space)
        chi = self._chi
        #: the coefficient :math:`a` as a UFL expression on the fine mesh
        self.coefficient = a
        self._a = dolfinx.fem.form(chi * ufl.inner(a * ufl.grad(u), ufl.grad(v)) * ufl.dx)
        self._m = dolfinx.fem.form(chi * u * v * ufl.dx)
        self._l = dolfinx.fem.form(chi * f * v * ufl.dx)
        self._set_chi(np.ones(len(meshes.cell_elem)))
        start = time.perf_counter()
        self.A = self._own(self._matrix(self._a))
        self.b = self._own(self._vector())
        assembled = time.perf_counter()
        self.elements = self._element_data()
        #: wall seconds on this rank: ``system``, the fine matrix :math:`A` and load :math:`b`;
        #: ``elements``, every :math:`A^K, M^K, b^K` (both after the forms are compiled)
        self.timings: dict[str, float] = {
            "system": assembled - start,
            "elements": time.perf_counter() - assembled,
        }
        self._coefficient_mass: list[sp.csr_matrix] | None = None

    # -- assembly --------------------------------------------------------------------------
    def _set_chi(self, cell_values: np.ndarray) -> None:
        dofs = self._chi.function_space.dofmap.list[:, 0]
        self._chi.x.array[dofs] = cell_values
        self._chi.x.scatter_forward()

    def _matrix(self, form: dolfinx.fem.Form) -> PETSc.Mat:
        mat = dolfinx.fem.petsc.assemble_matrix(form)
        mat.assemble()
        return mat

    def _vector(self) -> PETSc.Vec:
        vec = dolfinx.fem.petsc.assemble_vector(self._l)
        vec.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        return vec

    def _element_data(self) -> list[ElementData]:
        """:math:`A^K, M^K, b^K` of every element, by colour (collective)."""
        nm = self.meshes
        colour = greedy_colouring(nm.adjacency)
        mine = np.array(list(self.pool.own_tasks(nm.n_elements)), dtype=np.int64)
        blocks: dict[int, tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]] = {}
        for c in range(int(colour.max()) + 1):
            self._set_chi((colour[nm.cell_elem] == c).astype(float))
            ks = mine[colour[mine] == c]
            dofs = [nm.element_dofs(int(k)) for k in ks]
            a_c, m_c, b_c = self._matrix(self._a), self._matrix(self._m), self._vector()
            b_all = gather_vec(b_c, self.comm)
            for k, d, ak, mk in zip(
                ks, dofs, extract_blocks(a_c, dofs), extract_blocks(m_c, dofs), strict=True
            ):
                blocks[int(k)] = (ak, mk, b_all[d])
            for obj in (a_c, m_c, b_c):
                obj.destroy()
        self._set_chi(np.ones(len(nm.cell_elem)))

        def task(k: int, _comm: MPI.Comm) -> ElementData:
            d = nm.element_dofs(k)
            return ElementData(d, *blocks[k], nm.element_barycentric(k, d))

        return self.pool.map_tasks(task, nm.n_elements)

    def coefficient_mass(self) -> list[sp.csr_matrix]:
        """:math:`M_a^K = (\\int_K a\\,\\varphi_j\\varphi_i)_{ij}` on the closure dofs of every
        element (CSR; one more compiled form, assembled by colour like :math:`A^K`; computed on
        the first call, collective, then cached)."""
        if self._coefficient_mass is not None:
            return self._coefficient_mass
        nm, v_space = self.meshes, self.meshes.space
        u, v = ufl.TrialFunction(v_space), ufl.TestFunction(v_space)
        form = dolfinx.fem.form(self._chi * self.coefficient * u * v * ufl.dx)
        colour = greedy_colouring(nm.adjacency)
        mine = np.array(list(self.pool.own_tasks(nm.n_elements)), dtype=np.int64)
        blocks: dict[int, sp.csr_matrix] = {}
        for c in range(int(colour.max()) + 1):
            self._set_chi((colour[nm.cell_elem] == c).astype(float))
            ks = mine[colour[mine] == c]
            mat = self._matrix(form)
            found = extract_blocks(mat, [nm.element_dofs(int(k)) for k in ks])
            blocks.update(zip(ks.tolist(), found, strict=True))
            mat.destroy()
        self._set_chi(np.ones(len(nm.cell_elem)))
        self._coefficient_mass = self.pool.map_tasks(lambda k, _c: blocks[k], nm.n_elements)
        return self._coefficient_mass

    # -- reference -------------------------------------------------------------------------
    def interior_is(self) -> PETSc.IS:
        """The owned fine dofs not on :math:`\\partial\\Omega` (global numbers)."""
        r0, r1 = self.meshes.owned_range
        idx = np.arange(r0, r1)[~self.meshes.on_boundary[r0:r1]]
        return PETSc.IS().createGeneral(idx.astype(PETSc.IntType), comm=self.comm)

    def solve(self) -> np.ndarray:
        """The fine solution :math:`u_h \\in V_h^0` on every rank (global dof order)."""
        iset = self.interior_is()
        a_ii = self.A.createSubMatrix(iset, iset)
        b_i = self.b.getSubVector(iset)
        x_i = b_i.duplicate()
        ksp = PETSc.KSP().create(self.comm)
        ksp.setOperators(a_ii)
        ksp.setOptionsPrefix(self.prefix)
        try:
            with prefixed_options(self.prefix, self.options):
                ksp.setFromOptions()
                ksp.setUp()  # a factorization reads its own options here
            ksp.solve(b_i, x_i)
            reason = ksp.getConvergedReason()
            if reason <= 0:
                raise RuntimeError(f"fine solve failed: reason {reason}")
            u = np.zeros(self.meshes.n_fine)
            idx = np.concatenate(self.comm.allgather(iset.getIndices().copy()))
            u[idx] = gather_vec(x_i, self.comm)
        finally:
            self.b.restoreSubVector(iset, b_i)
            for obj in (ksp, x_i, a_ii, iset):
                obj.destroy()
        return u

    # -- norms -----------------------------------------------------------------------------
    def broken_norms(self, pieces: Sequence[np.ndarray]) -> tuple[float, float]:
        """:math:`(\\sum_K a_K(w_K, w_K))^{1/2}` and :math:`(\\sum_K \\|w_K\\|^2_{L^2(K)})^{1/2}`
        of a function given on each element's closure dofs (broken energy and L2 norms; the
        usual ones for conforming functions)."""
        e = sum(float(w @ (el.stiffness @ w)) for w, el in zip(pieces, self.elements, strict=True))
        m = sum(float(w @ (el.mass @ w)) for w, el in zip(pieces, self.elements, strict=True))
        return float(np.sqrt(e)), float(np.sqrt(m))

    def restrict(self, w: np.ndarray) -> list[np.ndarray]:
        """A fine function (global dof vector) on each element's closure dofs."""
        return [w[el.dofs] for el in self.elements]
