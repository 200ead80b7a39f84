"""Macroscopic meshes with named boundaries: generated boxes, a plate with a hole, gmsh files.

A :class:`MacroMesh` is a distributed dolfinx mesh with facet tags and a map from boundary
names to tags, so that boundary conditions of the macro problem are given by name (``"left"``,
``"top"``, ``"hole"``, or a physical-group name of a gmsh file).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import basix.ufl
import dolfinx
import gmsh
import numpy as np
import ufl
from mpi4py import MPI

from multiscale.compat import create_mesh_on_ranks, model_to_mesh
from multiscale.mesh.io import gmsh_session

__all__ = [
    "MacroMesh",
    "box",
    "plate_with_hole",
    "read_macro_mesh",
    "rectangle",
    "rectangle_on_ranks",
    "tag_box_sides",
    "unit_mesh",
]

log = logging.getLogger(__name__)

_SIDES = ("left", "right", "bottom", "top", "back", "front")


@dataclass(slots=True)
class MacroMesh:
    """A macro mesh with named boundary facets (``boundaries[name]`` is a tag of
    ``facet_tags``)."""

    mesh: dolfinx.mesh.Mesh
    facet_tags: dolfinx.mesh.MeshTags
    boundaries: dict[str, int] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return self.mesh.geometry.dim

    def facets(self, name: str) -> np.ndarray:
        """Local facet indices of the boundary ``name``; a clear error for an unknown name."""
        if name not in self.boundaries:
            raise ValueError(f"unknown boundary {name!r}; the mesh has {sorted(self.boundaries)}")
        return self.facet_tags.find(self.boundaries[name])


def tag_box_sides(
    mesh: dolfinx.mesh.Mesh,
    lo: np.ndarray,
    hi: np.ndarray,
    extra: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
) -> MacroMesh:
    """The mesh with its boundary facets on the faces of the box ``[lo, hi]`` named ``left``,
    ``right`` (x), ``bottom``, ``top`` (y), ``back``, ``front`` (z), plus ``extra`` markers."""
    d = mesh.geometry.dim
    tol = 1e-8 * float(np.max(hi - lo))
    markers: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for axis in range(d):
        for side, value in ((0, lo[axis]), (1, hi[axis])):
            markers[_SIDES[2 * axis + side]] = lambda x, a=axis, v=value: np.abs(x[a] - v) < tol
    markers.update(extra or {})
    fdim = d - 1
    mesh.topology.create_connectivity(fdim, d)
    indices, values, boundaries = [], [], {}
    for tag, (name, marker) in enumerate(markers.items(), start=1):
        facets = dolfinx.mesh.locate_entities_boundary(mesh, fdim, marker)
        indices.append(facets)
        values.append(np.full(len(facets), tag, dtype=np.int32))
        boundaries[name] = tag
    idx = np.concatenate(indices).astype(np.int32)
    val = np.concatenate(values)
    order = np.argsort(idx, kind="stable")
    idx, val = idx[order], val[order]
    # a facet on two faces (edges in 3D are not facets; corners do not occur) keeps its first tag
    keep = np.ones(len(idx), dtype=bool)
    keep[1:] = idx[1:] != idx[:-1]
    tags = dolfinx.mesh.meshtags(mesh, fdim, idx[keep], val[keep])
    return MacroMesh(mesh, tags, boundaries)


def rectangle(
    comm: MPI.Comm,
    lengths: Sequence[float] = (1.0, 1.0),
    n: Sequence[int] = (8, 8),
    *,
    origin: Sequence[float] = (0.0, 0.0),
    diagonal: str = "crossed",
) -> MacroMesh:
    """Triangulated rectangle ``origin + [0, L1] x [0, L2]`` with ``n`` cells per side;
    boundaries ``left``, ``right``, ``bottom``, ``top``."""
    lo = np.asarray(origin, dtype=float)
    hi = lo + np.asarray(lengths, dtype=float)
    if np.any(hi <= lo) or min(n) < 1:
        raise ValueError(f"rectangle needs positive lengths and cell counts, got {lengths}, {n}")
    diag = {
        "crossed": dolfinx.mesh.DiagonalType.crossed,
        "right": dolfinx.mesh.DiagonalType.right,
        "left": dolfinx.mesh.DiagonalType.left,
    }[diagonal]
    mesh = dolfinx.mesh.create_rectangle(
        comm, [lo, hi], [int(n[0]), int(n[1])], dolfinx.mesh.CellType.triangle, diagonal=diag
    )
    return tag_box_sides(mesh, lo, hi)


def rectangle_on_ranks(
    comm: MPI.Comm,
    lengths: Sequence[float],
    n: Sequence[int],
    rank_of: Callable[[np.ndarray], np.ndarray],
    *,
    origin: Sequence[float] = (0.0, 0.0),
) -> MacroMesh:
    """The crossed triangulation of :func:`rectangle` (four triangles per grid square, meeting
    at its centre) with a partition chosen by the caller instead of the graph partitioner's.

    ``rank_of(centroids)`` maps the centroids of all cells, shape ``(n_cells, 2)``, to the
    rank that owns each (called on rank 0): e.g. to give one rank the part of a domain where
    the material will yield, the case dynamic load balancing is for
    (:class:`~multiscale.coupling.pool.MicroPool`).  No ghost cells.  Boundaries ``left``,
    ``right``, ``bottom``, ``top``.  Collective; an error in ``rank_of`` raises on every rank.
    """
    lo = np.asarray(origin, dtype=float)
    hi = lo + np.asarray(lengths, dtype=float)
    nx, ny = int(n[0]), int(n[1])
    if np.any(hi <= lo) or min(nx, ny) < 1:
        raise ValueError(f"rectangle needs positive lengths and cell counts, got {lengths}, {n}")
    cells, x = np.zeros((0, 3), np.int64), np.zeros((0, 2))
    if comm.rank == 0:
        # grid nodes (i, j) -> i + (nx + 1) j, then the square centres (i, j) -> base + i + nx j
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], nx + 1), np.linspace(lo[1], hi[1], ny + 1))
        cx, cy = np.meshgrid(
            lo[0] + (np.arange(nx) + 0.5) * (hi[0] - lo[0]) / nx,
            lo[1] + (np.arange(ny) + 0.5) * (hi[1] - lo[1]) / ny,
        )
        x = np.vstack(
            [np.column_stack([gx.ravel(), gy.ravel()]), np.column_stack([cx.ravel(), cy.ravel()])]
        )
        i, j = (a.ravel() for a in np.meshgrid(np.arange(nx), np.arange(ny)))
        corners = [
            i + (nx + 1) * j,
            i + 1 + (nx + 1) * j,
            i + 1 + (nx + 1) * (j + 1),
            i + (nx + 1) * (j + 1),
        ]
        centre = (nx + 1) * (ny + 1) + i + nx * j
        # four counter-clockwise triangles per square, square by square
        cells = np.stack(
            [np.column_stack([corners[k], corners[(k + 1) % 4], centre]) for k in range(4)], axis=1
        ).reshape(-1, 3)
    return tag_box_sides(_triangles_on_ranks(comm, cells, x, rank_of), lo, hi)


def _triangles_on_ranks(
    comm: MPI.Comm, cells: np.ndarray, x: np.ndarray, rank_of: Callable[[np.ndarray], np.ndarray]
) -> dolfinx.mesh.Mesh:
    """The triangles ``cells`` of the nodes ``x`` (given on rank 0, empty elsewhere) on the
    ranks ``rank_of`` names for their centroids; an error in ``rank_of`` raises on every rank."""
    owners, error = np.zeros(0, np.int32), None
    if comm.rank == 0:
        try:
            owners = np.asarray(rank_of(x[cells].mean(axis=1)), dtype=np.int32).ravel()
        except Exception as err:
            error = f"rank_of failed: {type(err).__name__}: {err}"
    error = comm.bcast(error, root=0)
    if error is not None:
        raise ValueError(error)
    domain = ufl.Mesh(basix.ufl.element("Lagrange", "triangle", 1, shape=(2,)))
    return create_mesh_on_ranks(comm, cells, x, domain, owners)


def box(
    comm: MPI.Comm,
    lengths: Sequence[float] = (1.0, 1.0, 1.0),
    n: Sequence[int] = (4, 4, 4),
    *,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
) -> MacroMesh:
    """Tetrahedral box; boundaries ``left``/``right`` (x), ``bottom``/``top`` (y),
    ``back``/``front`` (z)."""
    lo = np.asarray(origin, dtype=float)
    hi = lo + np.asarray(lengths, dtype=float)
    if np.any(hi <= lo) or min(n) < 1:
        raise ValueError(f"box needs positive lengths and cell counts, got {lengths}, {n}")
    mesh = dolfinx.mesh.create_box(
        comm, [lo, hi], [int(k) for k in n], dolfinx.mesh.CellType.tetrahedron
    )
    return tag_box_sides(mesh, lo, hi)


def plate_with_hole(
    comm: MPI.Comm,
    *,
    width: float = 1.0,
    height: float = 1.0,
    radius: float = 0.3,
    h: float = 0.1,
    h_hole: float | None = None,
    rank_of: Callable[[np.ndarray], np.ndarray] | None = None,
) -> MacroMesh:
    """Quarter of a plate with a central circular hole (symmetry planes ``left`` at x = 0 and
    ``bottom`` at y = 0), the hole's arc named ``hole``; ``h_hole`` refines at the hole.

    The gmsh model is built on rank 0 and distributed over ``comm`` by the graph partitioner,
    or, with ``rank_of``, by the caller: ``rank_of(centroids)`` maps the centroids of all
    triangles, shape ``(n_cells, 2)``, to their ranks (as for :func:`rectangle_on_ranks`; no
    ghost cells).
    """
    if not (0.0 < radius < min(width, height)):
        raise ValueError(
            f"hole radius must lie in (0, min(width, height)) = (0, {min(width, height)}), "
            f"got {radius}"
        )
    if h <= 0.0:
        raise ValueError(f"mesh size h must be positive, got {h}")
    h_hole = h if h_hole is None else h_hole
    error = None
    if comm.rank == 0:
        with gmsh_session():
            try:
                occ = gmsh.model.occ
                rect = occ.addRectangle(0.0, 0.0, 0.0, width, height)
                disk = occ.addDisk(0.0, 0.0, 0.0, radius, radius)
                occ.cut([(2, rect)], [(2, disk)])
                occ.synchronize()
                surfaces = gmsh.model.getEntities(2)
                gmsh.model.addPhysicalGroup(2, [s for _, s in surfaces], 1, "plate")
                gmsh.option.setNumber("Mesh.MeshSizeMax", h)
                gmsh.option.setNumber("Mesh.MeshSizeMin", min(h, h_hole))
                points = gmsh.model.getEntities(0)
                near = [
                    p
                    for p in points
                    if np.linalg.norm(gmsh.model.getValue(0, p[1], [])[:2]) < radius * 1.01
                ]
                gmsh.model.mesh.setSize(near, h_hole)
                gmsh.model.mesh.generate(2)
            except Exception as err:
                error = f"gmsh failed to mesh the plate with a hole: {err}"
            comm.bcast(error, root=0)
            if error is None:
                mesh = _distribute(comm, rank_of, gmsh.model)
    else:
        error = comm.bcast(None, root=0)
        if error is None:
            mesh = _distribute(comm, rank_of, gmsh.model)
    if error is not None:
        raise RuntimeError(error)
    lo, hi = np.zeros(2), np.array([width, height])
    tol = 1e-6 * radius

    def on_hole(x: np.ndarray) -> np.ndarray:
        return np.abs(np.hypot(x[0], x[1]) - radius) < max(tol, 1e-3 * h_hole)

    return tag_box_sides(mesh, lo, hi, {"hole": on_hole})


def _distribute(
    comm: MPI.Comm, rank_of: Callable[[np.ndarray], np.ndarray] | None, model: object
) -> dolfinx.mesh.Mesh:
    """The triangles of the gmsh ``model`` (read on rank 0) as a dolfinx mesh, partitioned by
    the graph partitioner or by ``rank_of`` of their centroids.  Collective."""
    if rank_of is None:
        mesh, _, _ = model_to_mesh(model, comm, 0, 2)
        return mesh
    cells, x = np.zeros((0, 3), np.int64), np.zeros((0, 2))
    if comm.rank == 0:
        tags, coords, _ = model.mesh.getNodes()  # type: ignore[attr-defined]
        order = np.argsort(tags)
        x = coords.reshape(-1, 3)[order, :2]
        _, _, nodes = model.mesh.getElements(2, -1)  # type: ignore[attr-defined]
        cells = np.searchsorted(tags[order], nodes[0]).reshape(-1, 3).astype(np.int64)
    return _triangles_on_ranks(comm, cells, x, rank_of)


def read_macro_mesh(path: str | os.PathLike, comm: MPI.Comm, *, gdim: int = 2) -> MacroMesh:
    """Read a gmsh ``.msh`` macro mesh; its named physical groups of dimension ``gdim - 1``
    become the boundaries (facets of the bounding-box faces are also named ``left``, ...
    unless a physical group already uses that name)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"macro mesh file {str(path)!r} does not exist")
    error, names = None, {}
    if comm.rank == 0:
        with gmsh_session():
            try:
                gmsh.merge(str(path))
                for dim, tag in gmsh.model.getPhysicalGroups(gdim - 1):
                    names[gmsh.model.getPhysicalName(dim, tag) or f"group{tag}"] = tag
            except Exception as err:
                error = f"could not read macro mesh {str(path)!r}: {err}"
            comm.bcast((error, names), root=0)
            if error is None:
                mesh, _, facet_tags = model_to_mesh(gmsh.model, comm, 0, gdim)
    else:
        error, names = comm.bcast(None, root=0)
        if error is None:
            mesh, _, facet_tags = model_to_mesh(gmsh.model, comm, 0, gdim)
    if error is not None:
        raise ValueError(error)
    x = mesh.geometry.x[:, :gdim]
    lo = comm.allreduce(x.min(axis=0), op=MPI.MIN)
    hi = comm.allreduce(x.max(axis=0), op=MPI.MAX)
    sides = tag_box_sides(mesh, lo, hi)
    if not names:
        return sides
    # physical groups first; box faces added under their names where free
    offset = max(names.values()) + 1
    idx = [facet_tags.indices]
    val = [facet_tags.values]
    boundaries = dict(names)
    for name, tag in sides.boundaries.items():
        if name in boundaries:
            continue
        f = sides.facet_tags.find(tag)
        f = f[~np.isin(f, facet_tags.indices)]
        idx.append(f)
        val.append(np.full(len(f), offset, dtype=np.int32))
        boundaries[name] = offset
        offset += 1
    i = np.concatenate(idx).astype(np.int32)
    v = np.concatenate(val).astype(np.int32)
    order = np.argsort(i, kind="stable")
    tags = dolfinx.mesh.meshtags(mesh, gdim - 1, i[order], v[order])
    log.info("macro mesh %s: boundaries %s", path, sorted(boundaries))
    return MacroMesh(mesh, tags, boundaries)


def unit_mesh(comm: MPI.Comm, dim: int, n: int) -> dolfinx.mesh.Mesh:
    """The structured simplex mesh of :math:`[0,1]^d` with ``n`` cells per side."""
    n = int(n)
    if n < 1:
        raise ValueError(f"number of cells per side must be >= 1, got {n}")
    if dim == 1:
        return dolfinx.mesh.create_unit_interval(comm, n)
    if dim == 2:
        return dolfinx.mesh.create_unit_square(comm, n, n)
    if dim == 3:
        return dolfinx.mesh.create_unit_cube(comm, n, n, n)
    raise ValueError(f"dimension must be 1, 2 or 3, got {dim!r}")
