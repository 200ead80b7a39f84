"""The one place where dolfinx 0.9 and dolfinx 0.11 differ for this package.

Everything else imports these names instead of testing versions itself.  Supported:

* dolfinx 0.9 (Debian trixie): ``dolfinx.io.gmshio``, ``LinearProblem`` without an options prefix,
  Newton through ``dolfinx.nls.petsc.NewtonSolver``;
* dolfinx 0.10/0.11 (Debian sid): ``dolfinx.io.gmsh`` returning ``MeshData``, a mandatory
  ``petsc_options_prefix``, SNES-based ``NonlinearProblem``, ``create_mesh(comm, cells, e, x)``
  (0.9: ``create_mesh(comm, cells, x, e)``) whose partitioners must return the C++ adjacency list.
"""

from __future__ import annotations

from typing import Any

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

__all__ = [
    "DOLFINX_VERSION",
    "create_mesh_on_ranks",
    "create_space_vector",
    "create_vector",
    "geometry_dofmap",
    "model_to_mesh",
    "refine_mesh",
]

#: (major, minor) of the running dolfinx.
DOLFINX_VERSION: tuple[int, int] = tuple(int(p) for p in dolfinx.__version__.split(".")[:2])  # type: ignore[assignment]

if DOLFINX_VERSION >= (0, 10):
    from dolfinx.io import gmsh as _gmshio
else:  # pragma: no cover - exercised on the trixie flavour
    from dolfinx.io import gmshio as _gmshio


def model_to_mesh(
    model: Any, comm: MPI.Comm, rank: int, gdim: int
) -> tuple[dolfinx.mesh.Mesh, dolfinx.mesh.MeshTags, dolfinx.mesh.MeshTags]:
    """Distribute the gmsh ``model`` held on ``rank`` of ``comm``.

    Returns ``(mesh, cell_tags, facet_tags)`` on every dolfinx version; the tags are the
    physical-group numbers of the model.
    """
    out = _gmshio.model_to_mesh(model, comm, rank, gdim=gdim)
    if DOLFINX_VERSION >= (0, 10):
        return out.mesh, out.cell_tags, out.facet_tags
    return out[0], out[1], out[2]


def create_vector(form: dolfinx.fem.Form) -> PETSc.Vec:
    """A ghosted PETSc vector for the linear form ``form`` (0.9 takes the form, 0.10+ its
    space)."""
    if DOLFINX_VERSION >= (0, 10):
        return dolfinx.fem.petsc.create_vector(form.function_spaces[0])
    return dolfinx.fem.petsc.create_vector(form)


def create_space_vector(V: dolfinx.fem.FunctionSpace) -> PETSc.Vec:
    """A ghosted PETSc vector on the dofs of ``V`` (a constrained space of dolfinx_mpc, say)."""
    imap, bs = V.dofmap.index_map, V.dofmap.index_map_bs
    if DOLFINX_VERSION >= (0, 10):
        from dolfinx.la.petsc import create_vector as _create

        return _create([(imap, bs)])
    return dolfinx.la.create_petsc_vector(imap, bs)  # pragma: no cover - trixie flavour


def geometry_dofmap(mesh: dolfinx.mesh.Mesh) -> Any:
    """The geometry dofmap of a single-cell-type mesh (``(num_cells, nodes)``): ``dofmap`` in
    0.9, ``dofmaps[0]`` from 0.10 on (where ``dofmap`` is kept only for single cell types)."""
    dofmaps = getattr(mesh.geometry, "dofmaps", None)
    return dofmaps[0] if isinstance(dofmaps, list) else mesh.geometry.dofmap


def refine_mesh(mesh: dolfinx.mesh.Mesh, edges: Any) -> tuple[dolfinx.mesh.Mesh, Any]:
    """Plaza refinement of ``mesh`` splitting the local ``edges`` (owned and ghost indices),
    refined cells staying on the rank of their parent.

    Returns ``(refined mesh, parent cell)``: the local index in ``mesh`` of the parent of each
    local cell of the refined mesh.  0.9 keeps the cells in place with ``partitioner=None``,
    0.10+ with its default identity partitioner.
    """
    option = dolfinx.mesh.RefinementOption.parent_cell
    if DOLFINX_VERSION >= (0, 10):
        new, parent, _ = dolfinx.mesh.refine(mesh, edges, option=option)
    else:  # pragma: no cover - exercised on the trixie flavour
        new, parent, _ = dolfinx.mesh.refine(mesh, edges, partitioner=None, option=option)
    return new, parent


def create_mesh_on_ranks(
    comm: MPI.Comm, cells: np.ndarray, x: np.ndarray, domain: ufl.Mesh, owners: np.ndarray
) -> dolfinx.mesh.Mesh:
    """A mesh whose cells go to the ranks ``owners`` names instead of a graph partitioner's.

    ``cells`` (global input node numbers, one row per cell), ``x`` (the input nodes) and
    ``owners`` (the rank that owns each row of ``cells``) are given on any ranks, typically all
    on rank 0 and empty elsewhere.  No ghost cells (the default of dolfinx's ``create_mesh``).
    Collective; ``owners`` is checked on every rank before the mesh is built, so that a bad
    one raises everywhere instead of inside the partitioner of one rank.  0.9 takes ``(comm,
    cells, x, e, partitioner)``, 0.10+ ``(comm, cells, e, x, partitioner)`` and only the C++
    adjacency list as the partitioner's result.
    """
    cells = np.asarray(cells, dtype=np.int64)
    dest = np.ascontiguousarray(owners, dtype=np.int32).ravel()
    bad = len(dest) != len(cells) or bool(np.any((dest < 0) | (dest >= comm.size)))
    if comm.allreduce(bad, op=MPI.LOR):
        raise ValueError(f"owners must give one rank in [0, {comm.size}) per cell on every rank")

    def partitioner(*_args: Any) -> Any:  # the cells of this rank, in the order given
        return dolfinx.cpp.graph.AdjacencyList_int32(dest)

    if DOLFINX_VERSION >= (0, 10):
        return dolfinx.mesh.create_mesh(comm, cells, domain, x, partitioner)
    return dolfinx.mesh.create_mesh(comm, cells, x, domain, partitioner)  # pragma: no cover
