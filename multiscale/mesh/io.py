"""Reading cell meshes from gmsh files, and the gmsh plumbing shared with the generators.

A gmsh model of a cell is built (or read) on one rank only and then distributed by dolfinx.  The
model must be meshed with cells of its top dimension :math:`d`, and every such cell must belong
to exactly one physical group of dimension :math:`d`: the *phases*.  The physical group's name is
the phase name (``"matrix"``, ``"inclusion"``, ...) and its number the cell tag.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import gmsh
import numpy as np
from mpi4py import MPI

from multiscale.compat import model_to_mesh
from multiscale.mesh.cell import CellMesh
from multiscale.mesh.periodicity import NotABoxError, bounding_box, check_fills_box

__all__ = ["gmsh_session", "model_to_cell_mesh", "read_cell_mesh", "write_msh"]

_log = logging.getLogger(__name__)
_model_ids = itertools.count()

#: Exceptions that cross from the building rank to the others with their type kept.
_FORWARDED: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "FileNotFoundError": FileNotFoundError,
    "RuntimeError": RuntimeError,
}


@contextlib.contextmanager
def gmsh_session(
    verbose: bool = False, options: Mapping[str, float] | None = None
) -> Iterator[str]:
    """Work in a fresh gmsh model on *this rank*; yields the model's name.

    gmsh is initialized (without reading the user's configuration files) only if it is not
    already, and then finalized on exit.  If a caller had initialized it, its current model and
    the numeric options changed here (``General.Terminal``, set to 0 unless ``verbose``, and
    ``options``) are restored on exit and the temporary model is removed.  Not collective: call
    it on the rank that builds the model.
    """
    owns = not gmsh.isInitialized()
    if owns:
        gmsh.initialize(readConfigFiles=False, interruptible=False)
        previous_model = None
    else:
        previous_model = gmsh.model.getCurrent()
    wanted = {"General.Terminal": 1.0 if verbose else 0.0, **dict(options or {})}
    saved: dict[str, float] = {}
    name = f"multiscale_{os.getpid()}_{next(_model_ids)}"
    try:
        for key, value in wanted.items():
            if not owns:
                saved[key] = gmsh.option.getNumber(key)
            gmsh.option.setNumber(key, float(value))
        gmsh.model.add(name)
        yield name
    finally:
        if owns:
            gmsh.finalize()
        else:
            with contextlib.suppress(Exception):
                gmsh.model.setCurrent(name)
                gmsh.model.remove()
            if previous_model is not None:
                with contextlib.suppress(Exception):
                    gmsh.model.setCurrent(previous_model)
            for key, value in saved.items():
                gmsh.option.setNumber(key, value)


def write_msh(path: str | os.PathLike) -> Path:
    """Write the current gmsh model's mesh as text MSH 4.1 to ``path`` (parents created).

    Call on the building rank inside :func:`gmsh_session` (which restores the options).
    """
    path = Path(path)
    if path.suffix != ".msh":
        raise ValueError(f"a gmsh mesh file must end in .msh, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
    gmsh.option.setNumber("Mesh.Binary", 0)
    gmsh.write(str(path))
    _log.info("wrote %s", path)
    return path


def _phase_groups(source: str) -> tuple[dict[str, int], int]:
    """Phases (name -> tag) and top dimension of the current gmsh model, checked.

    Every mesh cell of the top dimension must lie in exactly one physical group of that
    dimension.  Unnamed groups are called ``"tag<N>"``.
    """
    dim = gmsh.model.getDimension()
    if dim not in (2, 3):
        raise ValueError(f"{source}: a cell mesh must be 2D or 3D, this model has dimension {dim}")
    num_cells = 0
    cells_in: dict[int, int] = {}
    for _, entity in gmsh.model.getEntities(dim):
        _, element_tags, _ = gmsh.model.mesh.getElements(dim, entity)
        cells_in[entity] = sum(len(t) for t in element_tags)
        num_cells += cells_in[entity]
    if num_cells == 0:
        raise ValueError(f"{source}: no mesh cells of dimension {dim} (was the model meshed?)")
    groups = sorted(gmsh.model.getPhysicalGroups(dim), key=lambda g: g[1])
    if not groups:
        raise ValueError(
            f"missing phase tag: {source} has no physical group of dimension {dim}; tag each "
            f"phase with a physical {'surface' if dim == 2 else 'volume'} named for it "
            "(e.g. 'matrix', 'inclusion')"
        )
    phases: dict[str, int] = {}
    owner: dict[int, int] = {}
    for _, tag in groups:
        name = gmsh.model.getPhysicalName(dim, tag) or f"tag{tag}"
        if name in phases:
            raise ValueError(
                f"{source}: two physical groups of dimension {dim} are named {name!r} "
                f"(tags {phases[name]} and {tag}); phase names must be unique"
            )
        phases[name] = int(tag)
        for entity in gmsh.model.getEntitiesForPhysicalGroup(dim, tag):
            entity = int(entity)
            if entity in owner:
                raise ValueError(
                    f"{source}: entity {entity} of dimension {dim} belongs to the physical "
                    f"groups {owner[entity]} and {tag}; phases must not overlap"
                )
            owner[entity] = int(tag)
    uncovered = {e: n for e, n in cells_in.items() if n and e not in owner}
    if uncovered:
        raise ValueError(
            f"{source}: {sum(uncovered.values())} of {num_cells} cells of dimension {dim} "
            f"(entities {sorted(uncovered)}) belong to no physical group; every cell must be in "
            f"exactly one phase (phases: {phases})"
        )
    return phases, dim


def _drop_unused_nodes(dim: int, phases: dict[str, int], source: str) -> int:
    """Remove the nodes that no cell of the phases uses (gmsh can leave one behind, and dolfinx's
    gmsh reader may then fail to distribute the mesh): the phases' cells are re-added to one
    discrete entity each, with only the nodes they use.  Returns how many nodes were dropped
    (0: the model is left as it is)."""
    node_tags, coords, _ = gmsh.model.mesh.getNodes()
    blocks: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for name, tag in phases.items():
        blocks[name] = []
        for entity in gmsh.model.getEntitiesForPhysicalGroup(dim, tag):
            types, elements, nodes = gmsh.model.mesh.getElements(dim, int(entity))
            blocks[name] += list(zip(types, elements, nodes, strict=True))
    used = np.unique(np.concatenate([n for b in blocks.values() for _, _, n in b]))
    dropped = int(np.unique(node_tags).size - used.size)
    if dropped <= 0:
        return 0
    order = np.argsort(node_tags)
    x = coords.reshape(-1, 3)[order][np.searchsorted(node_tags[order], used)]
    gmsh.model.mesh.clear()
    gmsh.model.removePhysicalGroups()
    for k, (name, tag) in enumerate(phases.items()):
        entity = gmsh.model.addDiscreteEntity(dim)
        if k == 0:
            gmsh.model.mesh.addNodes(dim, entity, used, x.ravel())
        for etype, elements, nodes in blocks[name]:
            gmsh.model.mesh.addElementsByType(entity, int(etype), elements, nodes)
        gmsh.model.addPhysicalGroup(dim, [entity], tag, name)
    _log.warning("%s: dropped %d node(s) that no cell uses", source, dropped)
    return dropped


def model_to_cell_mesh(
    comm: MPI.Comm,
    build: Callable[[], None],
    *,
    gdim: int | None = None,
    box: np.ndarray | None = None,
    verbose: bool = False,
    options: Mapping[str, float] | None = None,
    source: str = "gmsh model",
) -> CellMesh:
    """Run ``build`` on rank 0 of ``comm`` in a fresh gmsh model, then distribute its mesh.

    ``build()`` must leave a meshed model whose top-dimensional physical groups are the phases
    (checked: every cell in exactly one group); nodes that no cell uses are dropped (with a
    warning) before the mesh reaches dolfinx.  Errors raised on rank 0 (by ``build`` or by the
    checks) are raised on every rank, as ``ValueError``, ``FileNotFoundError`` or
    ``RuntimeError``.  Collective.

    Parameters
    ----------
    comm:
        Communicator to distribute the mesh on.
    build:
        Called on rank 0 only, inside :func:`gmsh_session`.
    gdim:
        Geometric dimension of the dolfinx mesh, checked to equal the model's top dimension
        (the default) if given.
    box:
        Lower and upper corner of the cell, shape ``(2, gdim)``; default the global bounding box
        of the distributed mesh.
    verbose, options:
        Passed to :func:`gmsh_session`.
    source:
        Describes the model in error messages.
    """
    root = 0
    if comm.rank == root:
        with gmsh_session(verbose, options):
            try:
                build()
                phases, dim = _phase_groups(source)
                _drop_unused_nodes(dim, phases, source)
                payload: tuple = (None, (phases, dim))
            except Exception as err:
                kind = type(err).__name__ if type(err).__name__ in _FORWARDED else "RuntimeError"
                text = str(err) if kind != "RuntimeError" else f"gmsh failed on {source}: {err}"
                payload = (kind, text)
                comm.bcast(payload, root=root)
                if isinstance(err, tuple(_FORWARDED.values())):
                    raise
                raise RuntimeError(text) from err
            comm.bcast(payload, root=root)
            gdim = _check_gdim(gdim, dim)
            mesh, cell_tags, _ = model_to_mesh(gmsh.model, comm, root, gdim)
    else:
        kind, data = comm.bcast(None, root=root)
        if kind is not None:
            raise _FORWARDED[kind](data)
        phases, dim = data
        gdim = _check_gdim(gdim, dim)
        mesh, cell_tags, _ = model_to_mesh(gmsh.model, comm, root, gdim)
    if box is None:
        box = bounding_box(mesh, comm)
    box = np.array(box, dtype=np.float64).reshape(2, gdim)
    num_cells = mesh.topology.index_map(mesh.topology.dim).size_global
    _log.debug("%s: %d cells, phases %s, box %s", source, num_cells, phases, box.tolist())
    return CellMesh(mesh=mesh, cell_tags=cell_tags, phases=phases, box=box)


def _check_gdim(gdim: int | None, dim: int) -> int:
    if gdim is None:
        return dim
    if gdim != dim:
        raise ValueError(
            f"a cell mesh of dimension {dim} fills a box in R^{dim}, so gdim must be {dim} "
            f"(got gdim={gdim})"
        )
    return int(gdim)


def read_cell_mesh(
    path: str | os.PathLike,
    comm: MPI.Comm,
    *,
    gdim: int | None = None,
    check: bool = True,
    verbose: bool = False,
) -> CellMesh:
    """Read a gmsh ``.msh`` file of a box cell whose phases are physical groups.

    Rank 0 opens the file with gmsh, learns the top dimension :math:`d` and the physical groups
    of dimension :math:`d` (name -> tag), and the mesh is distributed on ``comm``.  The box is the
    global bounding box of the nodes.  Collective.

    Parameters
    ----------
    path:
        The ``.msh`` file (read on rank 0 only).
    comm:
        Communicator to distribute the mesh on.
    gdim:
        Geometric dimension, checked to equal :math:`d` if given (a cell is a full box).
    check:
        Also check that the mesh fills its bounding box (:func:`check_fills_box`); periodicity is
        checked separately with :func:`~multiscale.mesh.periodicity.check_periodic`.
    verbose:
        Let gmsh print.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        No physical group of dimension :math:`d` ("missing phase tag"), cells outside every
        physical group or in two, no cells, or (with ``check``) a mesh that is not a full box.
    """
    path = Path(path)
    source = str(path)

    def build() -> None:
        if not path.is_file():
            raise FileNotFoundError(f"no gmsh mesh file {source!r}")
        try:
            gmsh.merge(source)
        except Exception as err:
            raise ValueError(f"gmsh could not read {source!r}: {err}") from err

    cell = model_to_cell_mesh(comm, build, gdim=gdim, verbose=verbose, source=source)
    if check:
        try:
            check_fills_box(cell)
        except NotABoxError as err:
            raise NotABoxError(
                f"{source}: {err} (note: gmsh saves only the cells of physical groups unless "
                "Mesh.SaveAll is set, so untagged regions come out as holes)"
            ) from None
    num_cells = cell.mesh.topology.index_map(cell.mesh.topology.dim).size_global
    _log.info("read %s: %d cells, phases %s", source, num_cells, cell.phases)
    return cell
