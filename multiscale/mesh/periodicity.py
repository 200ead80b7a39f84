r"""Checks that a cell mesh is a box and that opposite faces of the box carry matching nodes.

A mesh of the box :math:`Y = \prod_i [a_i, b_i]` is *periodic* when, for every direction
:math:`i`, translation by :math:`\ell_i e_i` (:math:`\ell_i = b_i - a_i`) maps the set of mesh
nodes on the face :math:`x_i = a_i` onto the set of mesh nodes on the face :math:`x_i = b_i`:

.. math::

    \{x \in \mathcal{N} : x_i = a_i\} + \ell_i e_i = \{x \in \mathcal{N} : x_i = b_i\}.

That is what periodic boundary conditions (``dolfinx_mpc`` periodic constraints, periodic
function spaces) need to tie each node to exactly one partner.  All functions here are collective
on the mesh's communicator and every rank returns (or raises) the same.
"""

from __future__ import annotations

import logging

import dolfinx
import numpy as np
import ufl
from mpi4py import MPI
from scipy.spatial import cKDTree

from multiscale.mesh.cell import CellMesh

__all__ = [
    "NonPeriodicMeshError",
    "NotABoxError",
    "bounding_box",
    "check_fills_box",
    "check_periodic",
    "mesh_volume",
]

_log = logging.getLogger(__name__)

_AXES = "xyz"


class NonPeriodicMeshError(ValueError):
    """The nodes on opposite faces of a cell do not match after translation."""


class NotABoxError(ValueError):
    """The mesh does not fill its bounding box (it is not a box-shaped cell)."""


def bounding_box(mesh: dolfinx.mesh.Mesh, comm: MPI.Comm) -> np.ndarray:
    """The global axis-aligned bounding box of the mesh geometry.

    Returns the array ``[[min_i x_i], [max_i x_i]]`` of shape ``(2, gdim)``, the minimum and
    maximum over all geometry nodes on all ranks of ``comm`` (collective).

    Raises
    ------
    ValueError
        The mesh has no nodes on any rank.
    """
    gdim = mesh.geometry.dim
    x = mesh.geometry.x[:, :gdim]
    lo = x.min(axis=0) if x.shape[0] else np.full(gdim, np.inf)
    hi = x.max(axis=0) if x.shape[0] else np.full(gdim, -np.inf)
    glo = np.empty(gdim)
    ghi = np.empty(gdim)
    comm.Allreduce(np.ascontiguousarray(lo, dtype=np.float64), glo, op=MPI.MIN)
    comm.Allreduce(np.ascontiguousarray(hi, dtype=np.float64), ghi, op=MPI.MAX)
    if not np.all(np.isfinite(glo)):
        raise ValueError("the mesh has no geometry nodes on any rank: no bounding box")
    return np.stack([glo, ghi])


def mesh_volume(mesh: dolfinx.mesh.Mesh) -> float:
    r""":math:`\int_\Omega 1\,dx` over the whole mesh, summed over ranks (collective)."""
    one = dolfinx.fem.Constant(mesh, dolfinx.default_scalar_type(1.0))
    local = dolfinx.fem.assemble_scalar(dolfinx.fem.form(one * ufl.dx(domain=mesh)))
    return float(mesh.comm.allreduce(float(np.real(local)), op=MPI.SUM))


def check_fills_box(cell: CellMesh, tol: float = 1e-8) -> None:
    r"""Check that ``cell.box`` is the mesh's bounding box and that the mesh fills it.

    With :math:`\ell = b - a` the box edge lengths, the corners must agree with the global
    bounding box of the geometry to :math:`\mathrm{tol}\,\max_i \ell_i`, and the mesh volume must
    equal :math:`|Y| = \prod_i \ell_i` to :math:`\mathrm{tol}\,|Y|` (a mesh with a hole, or of a
    non-rectangular domain, fails the second test).  Collective.

    Raises
    ------
    NotABoxError
        Either test fails; the message gives both numbers.
    """
    box = np.asarray(cell.box, dtype=np.float64)
    gdim = cell.mesh.geometry.dim
    if box.shape != (2, gdim):
        raise NotABoxError(f"cell.box has shape {box.shape}, expected (2, {gdim})")
    lengths = box[1] - box[0]
    if np.any(lengths <= 0):
        raise NotABoxError(f"cell.box {box.tolist()} has a non-positive edge length")
    bbox = bounding_box(cell.mesh, cell.mesh.comm)
    scale = float(lengths.max())
    if np.max(np.abs(bbox - box)) > tol * scale:
        raise NotABoxError(
            f"cell.box {box.tolist()} differs from the bounding box {bbox.tolist()} of the mesh"
        )
    box_volume = float(np.prod(lengths))
    volume = mesh_volume(cell.mesh)
    if abs(volume - box_volume) > tol * box_volume:
        raise NotABoxError(
            f"the mesh does not fill its bounding box {bbox.tolist()}: mesh volume {volume:.12g} "
            f"!= box volume {box_volume:.12g} (relative difference "
            f"{abs(volume - box_volume) / box_volume:.3g} > tol {tol:g}); a cell must be a "
            "box without holes"
        )


def check_periodic(cell: CellMesh, tol: float = 1e-8) -> None:
    r"""Raise unless the mesh is a box whose opposite faces carry matching nodes.

    For each direction :math:`i` the geometry nodes within :math:`\delta = \mathrm{tol}
    \max_j \ell_j` of the face :math:`x_i = a_i` are gathered from all ranks, as are those near
    :math:`x_i = b_i` shifted by :math:`-\ell_i e_i`; each node of either set must have a node of
    the other within :math:`\delta`.  :func:`check_fills_box` runs first.  Collective: every rank
    must call it and all ranks raise the same error.

    Parameters
    ----------
    cell:
        The cell to check.
    tol:
        Tolerance relative to the longest box edge.

    Raises
    ------
    NotABoxError
        The mesh is not a box filling ``cell.box``.
    NonPeriodicMeshError
        Some node has no partner; the message names the direction and the worst node.
    """
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol!r}")
    check_fills_box(cell, tol)
    comm = cell.mesh.comm
    box = np.asarray(cell.box, dtype=np.float64)
    lengths = box[1] - box[0]
    delta = tol * float(lengths.max())
    gdim = cell.mesh.geometry.dim
    x = cell.mesh.geometry.x[:, :gdim]

    message = None
    for i in range(gdim):
        lo_local = x[np.abs(x[:, i] - box[0, i]) <= delta]
        hi_local = x[np.abs(x[:, i] - box[1, i]) <= delta]
        lo_all = comm.gather(lo_local, root=0)
        hi_all = comm.gather(hi_local, root=0)
        if comm.rank == 0 and message is None:
            lo = np.unique(np.concatenate(lo_all).reshape(-1, gdim), axis=0)
            hi = np.unique(np.concatenate(hi_all).reshape(-1, gdim), axis=0)
            message = _match_faces(lo, hi, i, box, delta)
    message = comm.bcast(message, root=0)
    if message is not None:
        raise NonPeriodicMeshError(message)
    _log.debug("cell mesh is periodic in all %d directions (tol %g)", gdim, delta)


def _match_faces(
    lo: np.ndarray, hi: np.ndarray, i: int, box: np.ndarray, delta: float
) -> str | None:
    """Compare the node sets of the faces ``x_i = a_i`` and ``x_i = b_i``; a message or None."""
    name = f"direction {i} ({_AXES[i]})"
    if lo.shape[0] == 0 or hi.shape[0] == 0:
        empty = box[0, i] if lo.shape[0] == 0 else box[1, i]
        return f"mesh is not periodic in {name}: no nodes on the face {_AXES[i]} = {empty:g}"
    shift = np.zeros(box.shape[1])
    shift[i] = box[1, i] - box[0, i]
    for points, partners, face, other in (
        (hi - shift, lo, box[1, i], box[0, i]),
        (lo, hi - shift, box[0, i], box[1, i]),
    ):
        dist, _ = cKDTree(partners).query(points)
        worst = int(np.argmax(dist))
        if dist[worst] > delta:
            point = points[worst] + (shift if face == box[1, i] else 0.0)
            return (
                f"mesh is not periodic in {name}: the node {_fmt(point)} on the face "
                f"{_AXES[i]} = {face:g} has no partner on the face {_AXES[i]} = {other:g} "
                f"within {delta:.3g} (nearest is {dist[worst]:.3g} away; "
                f"{int(np.sum(dist > delta))} unmatched nodes, {len(lo)} vs {len(hi)} nodes on "
                "the two faces)"
            )
    return None


def _fmt(point: np.ndarray) -> str:
    return "(" + ", ".join(f"{c:.6g}" for c in point) + ")"
