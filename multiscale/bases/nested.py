"""Nested coarse/fine simplex meshes and the coarse-to-fine maps of the multiscale bases.

The coarse mesh :math:`\\mathcal T_H` (intervals, triangles or tetrahedra) is held on every rank
(``MPI.COMM_SELF``); the fine mesh :math:`\\mathcal T_h` is a distributed dolfinx mesh that
*refines* it: every fine cell lies in exactly one coarse element :math:`K` (checked at
construction by locating each fine cell's midpoint and vertices with barycentric coordinates).
:func:`unit_square_pair` makes such a pair as two structured meshes of :math:`[0,1]^2` with the
same diagonal direction, ``m`` fine cells per coarse cell per side, so each coarse triangle is a
block of :math:`m^2` fine triangles; :func:`unit_interval_pair` does the same in 1D and
:func:`unit_cube_pair` in 3D (each coarse tetrahedron a block of :math:`m^3` fine ones).  Any pair
that nests is accepted: :func:`unstructured_pair` makes an unstructured one, a gmsh
Frontal-Delaunay triangulation of the unit square (or of any simple polygon) as the coarse mesh
and its uniform refinement (``dolfinx.mesh.refine``, every edge halved, applied ``k`` times to
the distributed copy of the coarse mesh) as the fine mesh, so that
:math:`h = H/2^k` on every element.

The fine P1 degrees of freedom are tabulated once, replicated on every rank (global dof number,
coordinates, the coarse elements whose closure holds the dof, whether it lies on
:math:`\\partial\\Omega`).  From that table come, for a set :math:`S` of coarse elements
(an element, a vertex star, the :math:`k`-layer patch :math:`U_k(K)`, defined by
:math:`U_0(K) = K`,
:math:`U_{k+1}(K) = \\bigcup\\{T : \\bar T \\cap \\overline{U_k(K)} \\ne \\emptyset\\}`),
the fine dofs of :math:`\\bar S` and those interior to :math:`S` (all their coarse elements in
:math:`S`, not on :math:`\\partial\\Omega`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import basix.ufl
import dolfinx
import dolfinx.geometry
import numpy as np
import scipy.sparse as sp
import ufl
from mpi4py import MPI

from multiscale.compat import create_mesh_on_ranks, geometry_dofmap, model_to_mesh, refine_mesh

__all__ = [
    "NestedMeshes",
    "barycentric",
    "unit_cube_pair",
    "unit_interval_pair",
    "unit_square_pair",
    "unstructured_pair",
]

_TOL = 1e-10


def unit_interval_pair(
    comm: MPI.Comm, n_coarse: int, m: int
) -> tuple[dolfinx.mesh.Mesh, dolfinx.mesh.Mesh]:
    """Coarse :math:`[0,1]` with ``n_coarse`` cells (on ``COMM_SELF``), fine with ``n_coarse*m``
    (on ``comm``)."""
    return (
        dolfinx.mesh.create_unit_interval(MPI.COMM_SELF, n_coarse),
        dolfinx.mesh.create_unit_interval(comm, n_coarse * m),
    )


def unit_square_pair(
    comm: MPI.Comm, n_coarse: int, m: int
) -> tuple[dolfinx.mesh.Mesh, dolfinx.mesh.Mesh]:
    """Coarse triangles of :math:`[0,1]^2` (``n_coarse`` per side, ``COMM_SELF``) and the fine
    mesh with ``n_coarse*m`` per side (``comm``), same diagonal direction, hence nested."""
    diag = dolfinx.mesh.DiagonalType.right
    tri = dolfinx.mesh.CellType.triangle
    return (
        dolfinx.mesh.create_unit_square(MPI.COMM_SELF, n_coarse, n_coarse, tri, diagonal=diag),
        dolfinx.mesh.create_unit_square(comm, n_coarse * m, n_coarse * m, tri, diagonal=diag),
    )


def unit_cube_pair(
    comm: MPI.Comm, n_coarse: int, m: int
) -> tuple[dolfinx.mesh.Mesh, dolfinx.mesh.Mesh]:
    """Coarse tetrahedra of :math:`[0,1]^3` (``n_coarse`` cubes per side, ``COMM_SELF``) and the
    fine mesh with ``n_coarse*m`` cubes per side (``comm``).

    dolfinx cuts every cube into the six tetrahedra around its diagonal from :math:`(0,0,0)` to
    :math:`(1,1,1)` (the Kuhn–Freudenthal triangulation), whose faces lie on the planes
    :math:`x_i = c` and :math:`x_i - x_j = c` with :math:`c \\in H\\mathbb Z`.  The fine
    planes (:math:`c \\in h\\mathbb Z`, :math:`h = H/m`) include the coarse ones, so every fine
    tetrahedron lies in one coarse tetrahedron (checked by :class:`NestedMeshes`)."""
    tet = dolfinx.mesh.CellType.tetrahedron
    return (
        dolfinx.mesh.create_unit_cube(MPI.COMM_SELF, n_coarse, n_coarse, n_coarse, tet),
        dolfinx.mesh.create_unit_cube(comm, n_coarse * m, n_coarse * m, n_coarse * m, tet),
    )


#: The unit square, counter-clockwise: the default polygon of :func:`unstructured_pair`.
UNIT_SQUARE: tuple[tuple[float, float], ...] = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))


def _polygon_model(polygon: np.ndarray, size: float) -> None:
    """The plane surface bounded by ``polygon`` (the current gmsh model, this rank), meshed
    with triangles of size ``size`` (physical group 1 for the surface)."""
    import gmsh

    geo = gmsh.model.geo
    points = [geo.addPoint(float(x), float(y), 0.0, size) for x, y in polygon]
    lines = [geo.addLine(points[i], points[(i + 1) % len(points)]) for i in range(len(points))]
    surface = geo.addPlaneSurface([geo.addCurveLoop(lines)])
    geo.synchronize()
    gmsh.model.addPhysicalGroup(2, [surface], 1)
    gmsh.model.mesh.generate(2)


def _triangles() -> tuple[np.ndarray, np.ndarray]:
    """The nodes (n, 2) and triangles (global node rows) of the current gmsh model's mesh."""
    import gmsh

    tags, coords, _ = gmsh.model.mesh.getNodes()
    _, elem_nodes = gmsh.model.mesh.getElementsByType(2)  # 3-node triangles
    order = np.argsort(tags)
    cells = order[np.searchsorted(tags[order], elem_nodes)].reshape(-1, 3)
    used, cells = np.unique(cells, return_inverse=True)
    return coords.reshape(-1, 3)[used, :2].copy(), cells.reshape(-1, 3).astype(np.int64)


def unstructured_pair(
    comm: MPI.Comm,
    size: float,
    refinements: int,
    *,
    polygon: np.ndarray | None = None,
) -> tuple[dolfinx.mesh.Mesh, dolfinx.mesh.Mesh]:
    """An unstructured coarse triangulation (on ``COMM_SELF``) and its uniform refinement
    (distributed on ``comm``).

    Rank 0 meshes the polygon (default the unit square; vertices counter-clockwise or not,
    a simple polygon) with gmsh (Frontal-Delaunay, target size ``size``).  The coarse mesh is
    built on every rank from the same nodes and triangles; the fine one is the distributed copy
    (graph partitioner) refined ``refinements`` times with ``dolfinx.mesh.refine`` marking every
    edge, which halves the edges of each triangle (its four children are similar to it), so each
    coarse triangle holds :math:`4^k` fine ones and :math:`h = H/2^k` element by element.  With
    ``refinements = 0`` the two meshes are the same triangulation.  Collective on ``comm``.
    """
    import gmsh

    from multiscale.mesh.io import gmsh_session

    if not size > 0.0 or int(refinements) < 0:
        raise ValueError(f"need size > 0 and refinements >= 0, got {size}, {refinements}")
    poly = np.asarray(UNIT_SQUARE if polygon is None else polygon, dtype=float)
    if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3:
        raise ValueError(f"polygon: expected (n >= 3, 2) vertices, got shape {poly.shape}")
    error, fine, nodes, cells = None, None, None, None
    with contextlib.ExitStack() as stack:
        if comm.rank == 0:
            try:
                stack.enter_context(gmsh_session(options={"Mesh.Algorithm": 6}))
                _polygon_model(poly, float(size))
                nodes, cells = _triangles()
            except Exception as err:  # every rank must learn of it before the collectives
                error = f"unstructured_pair: gmsh failed: {type(err).__name__}: {err}"
        error = comm.bcast(error, root=0)
        if error is not None:
            raise RuntimeError(error)
        fine = model_to_mesh(gmsh.model, comm, 0, 2)[0]
    nodes, cells = comm.bcast((nodes, cells), root=0)
    domain = ufl.Mesh(basix.ufl.element("Lagrange", "triangle", 1, shape=(2,)))
    coarse = create_mesh_on_ranks(
        MPI.COMM_SELF, cells, nodes, domain, np.zeros(len(cells), dtype=np.int32)
    )
    for _ in range(int(refinements)):
        fine.topology.create_entities(1)  # refine reads the edges
        fine, _parent = refine_mesh(fine, None)
    return coarse, fine


def barycentric(vertices: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Barycentric coordinates :math:`\\lambda_j(x)` of the points ``x`` (n, d) w.r.t. the
    simplex ``vertices`` (d+1, d): :math:`x = \\sum_j \\lambda_j v_j`, :math:`\\sum_j\\lambda_j=1`.
    They are the coarse P1 basis functions of the element, extended affinely."""
    t = (vertices[1:] - vertices[0]).T
    rest = np.linalg.solve(t, (x - vertices[0]).T).T
    return np.column_stack([1.0 - rest.sum(axis=1), rest])


def _barycentric_pairs(
    verts: np.ndarray, cells: np.ndarray, x: np.ndarray, elems: np.ndarray, pts: np.ndarray
) -> np.ndarray:
    """Barycentric coordinates of ``x[pts[i]]`` in element ``elems[i]`` (vectorized)."""
    v = verts[cells[elems]]  # (n, d+1, d)
    t = np.transpose(v[:, 1:] - v[:, :1], (0, 2, 1))
    rest = np.linalg.solve(t, (x[pts] - v[:, 0])[..., None])[..., 0]
    return np.column_stack([1.0 - rest.sum(axis=1), rest])


@dataclass(frozen=True, slots=True)
class _Located:
    point: np.ndarray
    elem: np.ndarray
    lam: np.ndarray


def _locate(coarse: dolfinx.mesh.Mesh, verts, cells, x: np.ndarray, tol: float) -> _Located:
    """All (point, coarse element) pairs with the point in the closed element."""
    tdim = coarse.topology.dim
    tree = dolfinx.geometry.bb_tree(coarse, tdim)
    x3 = np.zeros((len(x), 3))
    x3[:, : x.shape[1]] = x
    cand = dolfinx.geometry.compute_collisions_points(tree, x3)
    counts = np.diff(cand.offsets)
    pts = np.repeat(np.arange(len(x)), counts)
    elems = np.asarray(cand.array, dtype=np.int64)
    lam = _barycentric_pairs(verts, cells, x, elems, pts)
    keep = lam.min(axis=1) >= -tol
    return _Located(pts[keep], elems[keep], lam[keep])


class NestedMeshes:
    """A coarse simplex mesh (replicated), a nested fine dolfinx mesh and the maps between them.

    Attributes (all replicated on every rank, numbered globally):

    ``vertices`` (n_v, d), ``cells`` (n_K, d+1):
        coarse vertex coordinates and element vertices;
    ``free``:
        coarse vertices not on :math:`\\partial\\Omega` (the coarse unknowns, numbered by
        ``coarse_dof``: vertex -> unknown or -1);
    ``x`` (N, d), ``on_boundary`` (N,):
        fine P1 dof coordinates and the dofs on :math:`\\partial\\Omega`;
    ``dof_elems``:
        (N, n_K) sparse 0/1: fine dof in the closure of coarse element;
    ``cell_elem``:
        the coarse element of each local (owned and ghost) fine cell.
    """

    def __init__(self, coarse: dolfinx.mesh.Mesh, fine: dolfinx.mesh.Mesh) -> None:
        if coarse.comm.size != 1:
            raise ValueError("the coarse mesh must live on MPI.COMM_SELF (it is replicated)")
        tdim = coarse.topology.dim
        if fine.topology.dim != tdim:
            raise ValueError("coarse and fine meshes differ in dimension")
        self.comm: MPI.Comm = fine.comm
        self.coarse, self.fine, self.dim = coarse, fine, tdim
        self.vertices = np.ascontiguousarray(coarse.geometry.x[:, :tdim])
        self.cells = np.asarray(geometry_dofmap(coarse), dtype=np.int64).reshape(-1, tdim + 1)
        self.n_elements, self.n_vertices = len(self.cells), len(self.vertices)
        self._coarse_boundary()
        self.space = dolfinx.fem.functionspace(fine, ("Lagrange", 1))
        self._fine_cells()
        self._dof_table()
        inc = sp.csr_matrix(
            (
                np.ones(self.cells.size),
                self.cells.ravel(),
                np.arange(0, self.cells.size + 1, tdim + 1),
            ),
            shape=(self.n_elements, self.n_vertices),
        )
        self.incidence = inc
        self.adjacency = ((inc @ inc.T) > 0).astype(np.int64).tocsr()
        self._patch_cache: dict[int, sp.csr_matrix] = {
            0: sp.identity(self.n_elements, format="csr")
        }

    # -- set-up ----------------------------------------------------------------------------
    def _coarse_boundary(self) -> None:
        """Facets of one element only are exterior; ``exterior_facet[K, j]``: the facet of K
        opposite its vertex j lies on :math:`\\partial\\Omega`."""
        nv = self.cells.shape[1]
        facets = np.stack([np.delete(self.cells, j, axis=1) for j in range(nv)], axis=1)
        keys = np.sort(facets.reshape(-1, nv - 1), axis=1)
        _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        ext = counts[inverse.ravel()] == 1
        self.exterior_facet = ext.reshape(self.n_elements, nv)
        bnd = np.zeros(self.n_vertices, dtype=bool)
        bnd[keys[ext].ravel()] = True
        self.free = ~bnd
        self.coarse_dof = np.full(self.n_vertices, -1, dtype=np.int64)
        self.coarse_dof[self.free] = np.arange(int(self.free.sum()))
        self.n_coarse = int(self.free.sum())

    def _fine_cells(self) -> None:
        fine, tdim = self.fine, self.dim
        imap = fine.topology.index_map(tdim)
        n = imap.size_local + imap.num_ghosts
        mid = dolfinx.mesh.compute_midpoints(fine, tdim, np.arange(n, dtype=np.int32))[:, :tdim]
        loc = _locate(self.coarse, self.vertices, self.cells, mid, -_TOL)
        if len(loc.point) != n or np.any(np.bincount(loc.point, minlength=n) != 1):
            raise ValueError("the fine mesh does not refine the coarse mesh (cell midpoints)")
        elem = np.empty(n, dtype=np.int64)
        elem[loc.point] = loc.elem
        geo = fine.geometry
        gdofs = np.asarray(geometry_dofmap(fine)).reshape(n, -1)
        xv = geo.x[gdofs.ravel(), :tdim]
        lam = _barycentric_pairs(
            self.vertices, self.cells, xv, np.repeat(elem, gdofs.shape[1]), np.arange(len(xv))
        )
        if lam.min() < -_TOL:
            raise ValueError("the fine mesh does not refine the coarse mesh (cell vertices)")
        self.cell_elem = elem

    def _dof_table(self) -> None:
        imap = self.space.dofmap.index_map
        n_own, start = imap.size_local, imap.local_range[0]
        x_own = self.space.tabulate_dof_coordinates()[:n_own, : self.dim]
        loc = _locate(self.coarse, self.vertices, self.cells, x_own, _TOL)
        # on the boundary: zero barycentric coordinate opposite an exterior facet
        if np.unique(loc.point).size != n_own:
            raise ValueError("fine dofs outside the coarse mesh")
        on_face = (np.abs(loc.lam) < _TOL) & self.exterior_facet[loc.elem]
        bnd_own = np.zeros(n_own, dtype=bool)
        bnd_own[loc.point[on_face.any(axis=1)]] = True
        parts = self.comm.allgather((start, x_own, bnd_own, loc.point + start, loc.elem))
        self.n_fine = imap.size_global
        self.x = np.empty((self.n_fine, self.dim))
        self.on_boundary = np.empty(self.n_fine, dtype=bool)
        for s, xo, bo, _, _ in parts:
            self.x[s : s + len(xo)] = xo
            self.on_boundary[s : s + len(bo)] = bo
        rows = np.concatenate([p[3] for p in parts])
        cols = np.concatenate([p[4] for p in parts])
        self.dof_elems = sp.csr_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(self.n_fine, self.n_elements)
        )
        self.dof_elems.sum_duplicates()
        csc = self.dof_elems.tocsc()
        self._elem_dofs = [
            np.asarray(csc.indices[csc.indptr[k] : csc.indptr[k + 1]], dtype=np.int64)
            for k in range(self.n_elements)
        ]
        for d in self._elem_dofs:
            d.sort()
        self.owned_range = (start, start + n_own)

    # -- queries ---------------------------------------------------------------------------
    def element_dofs(self, k: int) -> np.ndarray:
        """Sorted global fine dofs in the closure of coarse element ``k``."""
        return self._elem_dofs[k]

    def element_barycentric(self, k: int, dofs: np.ndarray) -> np.ndarray:
        """:math:`\\lambda^K_j(x_d)` for the fine dofs ``dofs`` (the coarse basis of ``k``,
        extended affinely)."""
        return barycentric(self.vertices[self.cells[k]], self.x[dofs])

    def patch(self, k: int, layers: int) -> np.ndarray:
        """The coarse elements of :math:`U_{layers}(K_k)` (sorted)."""
        if layers not in self._patch_cache:
            prev = self.patch_matrix(layers - 1)
            self._patch_cache[layers] = ((prev @ self.adjacency) > 0).astype(np.int64).tocsr()
        r = self._patch_cache[layers]
        return np.asarray(r.indices[r.indptr[k] : r.indptr[k + 1]], dtype=np.int64)

    def patch_matrix(self, layers: int) -> sp.csr_matrix:
        if layers not in self._patch_cache:
            self.patch(0, layers)
        return self._patch_cache[layers]

    def patch_dofs(self, elems: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(closure, interior)``: the sorted fine dofs of :math:`\\bar S` for the element set
        ``elems`` and the mask of those interior to :math:`S` (every coarse element holding the
        dof in ``elems``, not on :math:`\\partial\\Omega`)."""
        closure = np.unique(np.concatenate([self._elem_dofs[k] for k in elems]))
        in_s = np.zeros(self.n_elements)
        in_s[elems] = 1.0
        sub = self.dof_elems[closure]
        inside = (sub @ in_s) == np.diff(sub.indptr)
        return closure, inside & ~self.on_boundary[closure]

    def vertex_dof_positions(self, k: int, lam: np.ndarray) -> np.ndarray:
        """Rows of ``lam`` (the element's barycentrics at its closure dofs) at its vertices."""
        pos = np.argmax(lam, axis=0)
        if np.abs(lam[pos, np.arange(lam.shape[1])] - 1.0).max() > 1e-8:
            raise ValueError(f"coarse element {k}: its vertices are not fine dofs")
        return pos
