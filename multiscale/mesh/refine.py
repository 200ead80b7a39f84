r"""Adaptive refinement of periodic cell meshes and Dörfler marking.

:func:`refine_periodic` refines a simplicial :class:`~multiscale.mesh.cell.CellMesh` by Plaza's
algorithm (``dolfinx.mesh.refine`` with marked edges) so that it stays periodic.  Plaza closes a
marking by the rule

.. math::

    e \in \mathcal{M},\ e \subset F \ \Longrightarrow\ \mathrm{longest}(F) \in \mathcal{M}
    \quad \text{for every triangle } F,

which may mark an edge on the face :math:`x_i = b_i` of the box without its periodic image on
:math:`x_i = a_i`.  The closure is therefore computed here, as the smallest set :math:`\mathcal{M}`
that contains the edges of the marked cells and is closed under the Plaza rule (with Plaza's own
tie-breaking), under the periodic images :math:`e \mapsto e \pm \ell_i e_i` of boundary edges and
under sharing between ranks.  Plaza then splits exactly :math:`\mathcal{M}` (checked: the refined
mesh has :math:`|\mathcal{M}|` new vertices), every refined cell inherits its parent's phase tag,
and :func:`~multiscale.mesh.periodicity.check_periodic` runs on the result.

:func:`dorfler_mark` is Dörfler's bulk criterion: the smallest set :math:`\mathcal{K}` of cells
with :math:`\sum_{K\in\mathcal{K}} \eta_K^2 \ge \theta \sum_K \eta_K^2`.
"""

from __future__ import annotations

import logging

import dolfinx
import dolfinx.la
import numpy as np
from mpi4py import MPI
from scipy.spatial import cKDTree

from multiscale.compat import geometry_dofmap, refine_mesh
from multiscale.mesh.cell import CellMesh
from multiscale.mesh.periodicity import check_periodic

__all__ = ["dorfler_mark", "refine_periodic"]

_log = logging.getLogger(__name__)

#: Relative tolerance (to the longest box edge) for "on a face" and for matching midpoints.
_TOL = 1e-8


def refine_periodic(cell: CellMesh, marked: np.ndarray) -> CellMesh:
    r"""Refine the owned cells ``marked`` (local indices) of ``cell`` and keep it periodic.

    All edges of the marked cells are split, plus the closure described in the module docstring;
    the returned cell has the same phases and box, and each child cell the phase tag of its
    parent.  Collective on ``cell.comm`` (``marked`` may be empty on some ranks).  Triangles
    only: in 3D Plaza splits a boundary triangle with two or three marked edges according to its
    longest edge, ties broken by global vertex numbers, which differ between a face and its
    periodic image on meshes with exact ties (structured face meshes); the nodes would match but
    not the facets.

    Raises
    ------
    ValueError
        ``marked`` is not a 1D array of owned local cell indices, or the mesh is not made of
        triangles.
    RuntimeError
        Plaza split more edges than the closure (a tie-breaking mismatch).
    NonPeriodicMeshError
        The refined mesh is not periodic (from :func:`check_periodic`).
    """
    mesh = cell.mesh
    tdim = mesh.topology.dim
    if mesh.topology.cell_name() != "triangle":
        raise ValueError(
            f"refine_periodic refines triangle meshes, got {mesh.topology.cell_name()}s (in 3D "
            "Plaza splits a boundary triangle by a tie-break on global vertex numbers, which "
            "differ between a face and its periodic image; use a graded generator instead)"
        )
    cells = _check_marked(marked, mesh.topology.index_map(tdim).size_local, mesh.comm)
    for d0, d1 in ((tdim, 1), (2, 1), (2, 0), (1, 0)):
        mesh.topology.create_connectivity(d0, d1)
    edges = _periodic_closure(cell, cells)
    num_split = mesh.comm.allreduce(int(edges[: mesh.topology.index_map(1).size_local].sum()))
    new_mesh, parent = refine_mesh(mesh, np.flatnonzero(edges).astype(np.int32))
    vertices = (mesh.topology.index_map(0).size_global, new_mesh.topology.index_map(0).size_global)
    if vertices[1] != vertices[0] + num_split:
        raise RuntimeError(
            f"Plaza refinement added {vertices[1] - vertices[0]} vertices for {num_split} edges "
            "of the periodic closure: the closure does not match Plaza's marking rule"
        )
    new = CellMesh(
        new_mesh, _child_tags(cell, new_mesh, parent), dict(cell.phases), cell.box.copy()
    )
    check_periodic(new)
    _log.debug("refine_periodic: split %d edges, %d -> %d vertices", num_split, *vertices)
    return new


def dorfler_mark(indicators: np.ndarray, theta: float, comm: MPI.Comm) -> np.ndarray:
    r"""Local indices of the smallest set of cells carrying a fraction :math:`\theta` of the
    estimate (Dörfler marking).

    With :math:`\eta_K^2` the ``indicators`` of the owned cells of every rank, the cells are
    sorted by decreasing :math:`\eta_K^2` over all ranks (ties by rank, then local index) and the
    first :math:`m` are marked, :math:`m` the least with
    :math:`\sum_{k \le m} \eta_{K_k}^2 \ge \theta \sum_K \eta_K^2`.  The values are gathered on
    every rank (one float per cell).  Collective; returns sorted ``int32`` local indices.

    Raises
    ------
    ValueError
        ``theta`` not in :math:`(0, 1]`, or indicators not a 1D array of finite non-negative
        numbers.
    """
    if not (isinstance(theta, int | float | np.floating) and 0.0 < theta <= 1.0):
        raise ValueError(f"dorfler_mark: theta must lie in (0, 1], got {theta!r}")
    eta = np.asarray(indicators, dtype=np.float64)
    bad = eta.ndim != 1 or not np.all(np.isfinite(eta)) or bool(np.any(eta < 0))
    if comm.allreduce(bad, op=MPI.LOR):
        raise ValueError("dorfler_mark: indicators must be 1D arrays of finite numbers >= 0")
    parts = comm.allgather(eta)
    offset = sum(p.size for p in parts[: comm.rank])
    values = np.concatenate(parts)
    order = np.lexsort((np.arange(values.size), -values))
    cumulative = np.cumsum(values[order])
    if values.size == 0 or cumulative[-1] == 0.0:
        return np.zeros(0, dtype=np.int32)
    count = int(np.searchsorted(cumulative, theta * cumulative[-1], side="left")) + 1
    chosen = order[: min(count, values.size)] - offset
    return np.sort(chosen[(chosen >= 0) & (chosen < eta.size)]).astype(np.int32)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _check_marked(marked: np.ndarray, num_owned: int, comm: MPI.Comm) -> np.ndarray:
    """``marked`` as ``int32`` owned local cell indices; a ``ValueError`` on every rank if any
    rank's marking is bad (so that no rank is left waiting in a collective)."""
    cells = np.asarray(marked)
    problem = None
    if cells.size and (cells.ndim != 1 or not np.issubdtype(cells.dtype, np.integer)):
        problem = f"marked must be a 1D integer array of cell indices, got {cells.dtype}"
    elif cells.size and (cells.min() < 0 or cells.max() >= num_owned):
        problem = f"marked cells must be owned local indices in [0, {num_owned}) on each rank"
    problems = [p for p in comm.allgather(problem) if p is not None]
    if problems:
        raise ValueError(problems[0])
    return cells.astype(np.int32).reshape(-1)


def _vertex_coordinates(mesh: dolfinx.mesh.Mesh) -> np.ndarray:
    """Coordinates of every local vertex (first-order geometry: vertices are nodes)."""
    tdim = mesh.topology.dim
    c_to_v = mesh.topology.connectivity(tdim, 0).array.reshape(-1, tdim + 1)
    nodes = np.asarray(geometry_dofmap(mesh))[: c_to_v.shape[0], : tdim + 1]
    x = np.zeros((mesh.topology.index_map(0).size_local + mesh.topology.index_map(0).num_ghosts, 3))
    x[c_to_v.reshape(-1)] = mesh.geometry.x[nodes.reshape(-1)]
    return x


def _longest_edges(mesh: dolfinx.mesh.Mesh, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plaza's longest edge of every local triangle (``face_long_edge`` in ``plaza.h``): lengths
    :math:`\\sqrt{(\\delta_0^2 + \\delta_1^2) + \\delta_2^2}` as there, the first maximum wins."""
    f_to_e = mesh.topology.connectivity(2, 1).array.reshape(-1, 3)
    e_to_v = mesh.topology.connectivity(1, 0).array.reshape(-1, 2)
    d = x[e_to_v[:, 0]] - x[e_to_v[:, 1]]
    length = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2])
    imax = np.argmax(length[f_to_e], axis=1)
    return f_to_e, f_to_e[np.arange(f_to_e.shape[0]), imax]


def _canonical_midpoints(cell: CellMesh, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boundary edges and their midpoints with every coordinate :math:`b_j` replaced by
    :math:`a_j`: an edge and its periodic images share this point."""
    mesh = cell.mesh
    e_to_v = mesh.topology.connectivity(1, 0).array.reshape(-1, 2)
    gdim = cell.dim
    box = np.asarray(cell.box, dtype=np.float64)
    delta = _TOL * float(cell.lengths.max())
    mid = 0.5 * (x[e_to_v[:, 0], :gdim] + x[e_to_v[:, 1], :gdim])
    at_lo = np.abs(mid - box[0]) <= delta
    at_hi = np.abs(mid - box[1]) <= delta
    boundary = np.flatnonzero(np.any(at_lo | at_hi, axis=1))
    key = mid[boundary]
    key[at_hi[boundary]] = np.broadcast_to(box[0], key.shape)[at_hi[boundary]]
    return boundary, key


def _periodic_closure(cell: CellMesh, cells: np.ndarray) -> np.ndarray:
    """Marker (local edges) of the smallest edge set containing the edges of ``cells`` and
    closed under the Plaza rule, periodic images and sharing between ranks."""
    mesh, comm = cell.mesh, cell.comm
    tdim = mesh.topology.dim
    emap = mesh.topology.index_map(1)
    num_edges = emap.size_local + emap.num_ghosts
    gid = emap.local_to_global(np.arange(num_edges, dtype=np.int32))
    x = _vertex_coordinates(mesh)
    f_to_e, longest = _longest_edges(mesh, x)
    boundary, key = _canonical_midpoints(cell, x)
    delta = _TOL * float(cell.lengths.max())

    c_to_e = mesh.topology.connectivity(tdim, 1).array.reshape(-1, tdim * (tdim + 1) // 2)
    marked = np.zeros(num_edges, dtype=bool)
    marked[c_to_e[cells].reshape(-1)] = True
    sent = np.zeros(num_edges, dtype=bool)
    for _ in range(10_000):
        _close_locally(marked, f_to_e, longest)
        fresh = marked & ~sent
        if comm.allreduce(int(fresh.sum()), op=MPI.SUM) == 0:
            return marked
        sent |= fresh
        fresh_key = key[fresh[boundary]]
        gids = np.concatenate(comm.allgather(gid[fresh]))
        keys = np.concatenate(comm.allgather(fresh_key)).reshape(-1, cell.dim)
        marked[np.isin(gid, gids)] = True
        if keys.shape[0] and boundary.size:
            dist, _ = cKDTree(keys).query(key, distance_upper_bound=delta)
            marked[boundary[np.isfinite(dist)]] = True
    raise RuntimeError("periodic refinement closure did not converge")  # pragma: no cover


def _close_locally(marked: np.ndarray, f_to_e: np.ndarray, longest: np.ndarray) -> None:
    """Mark the longest edge of every triangle with a marked edge, until nothing changes."""
    while True:
        todo = longest[marked[f_to_e].any(axis=1)]
        if marked[todo].all():
            return
        marked[todo] = True


def _child_tags(
    cell: CellMesh, new_mesh: dolfinx.mesh.Mesh, parent: np.ndarray
) -> dolfinx.mesh.MeshTags:
    """Phase tags of the refined cells: the tag of the parent cell.

    ``parent`` is in Plaza's order of the children created on this rank; ``create_mesh``
    reorders them, and ``original_cell_index`` (global position in that order) undoes it.
    Owned children stay on their parent's rank; ghost children get their tag by a forward
    scatter.
    """
    tdim = cell.mesh.topology.dim
    pmap = cell.mesh.topology.index_map(tdim)
    tag_of = np.full(pmap.size_local + pmap.num_ghosts, -1, dtype=np.int32)
    tag_of[cell.cell_tags.indices] = cell.cell_tags.values
    parent_tag = tag_of[np.asarray(parent)]
    offset = cell.comm.exscan(len(parent))
    offset = 0 if cell.comm.rank == 0 else int(offset)
    cmap = new_mesh.topology.index_map(tdim)
    origin = np.asarray(new_mesh.topology.original_cell_index)[: cmap.size_local] - offset
    stray = bool(np.any(origin < 0) or np.any(origin >= len(parent)))
    if cell.comm.allreduce(stray, op=MPI.LOR):  # on every rank, before the scatter
        raise RuntimeError("a refined cell is owned by another rank than its parent")
    tags = dolfinx.la.vector(cmap, 1, dtype=np.float64)
    tags.array[: cmap.size_local] = parent_tag[origin]
    tags.scatter_forward()
    values = np.rint(tags.array).astype(np.int32)
    if cell.comm.allreduce(bool(np.any(values < 0)), op=MPI.LOR):
        raise RuntimeError("a refined cell has an untagged parent")
    indices = np.arange(values.size, dtype=np.int32)
    return dolfinx.mesh.meshtags(new_mesh, tdim, indices, values)
