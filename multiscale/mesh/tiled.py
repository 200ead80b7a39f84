"""Domains tiled with copies of a periodic cell: the fine meshes of direct numerical simulations.

:func:`tiled_inclusions` tiles :math:`[0, L]^2` with :math:`n \\times n` copies of the fibre
cell of size :math:`\\varepsilon = L/n` (a disk of area fraction :math:`\\phi` centred in each
copy), each meshed with the relative resolution of the RVE
:func:`circular_inclusion(phi, h=h_cell) <multiscale.mesh.generators.circular_inclusion>`, so a
DNS and the RVEs of FE² see the same discrete microstructure.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import dolfinx
import numpy as np
from mpi4py import MPI

from multiscale.mesh.cell import CellMesh
from multiscale.mesh.generators import inclusions_2d
from multiscale.mesh.macro import MacroMesh, tag_box_sides

__all__ = ["TiledMesh", "tiled_inclusions"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TiledMesh:
    """A domain tiled with ``n x n`` cells: the mesh with its phases (``cell``, whose box is
    the whole domain) and the same mesh with named sides ``left``/``right``/``bottom``/``top``
    (``macro``)."""

    cell: CellMesh
    macro: MacroMesh
    n: int

    def __post_init__(self) -> None:
        if self.cell.mesh is not self.macro.mesh:
            raise ValueError("the phases and the named boundaries must be on the same mesh")
        if int(self.n) < 1:
            raise ValueError(f"the number of cells per side must be >= 1, got {self.n!r}")

    @property
    def mesh(self) -> dolfinx.mesh.Mesh:
        return self.cell.mesh

    @property
    def period(self) -> float:
        """Cell size :math:`\\varepsilon = L/n`."""
        return float(self.cell.lengths[0]) / self.n


def tiled_inclusions(
    comm: MPI.Comm,
    n: int,
    volume_fraction: float,
    *,
    length: float = 1.0,
    h_cell: float = 0.1,
    shift: float = 0.5,
    path: str | os.PathLike | None = None,
    verbose: bool = False,
) -> TiledMesh:
    """The square :math:`[0, L]^2` tiled with ``n x n`` cells of size :math:`\\varepsilon = L/n`,
    each with a disk of area fraction :math:`\\phi` (radius
    :math:`\\varepsilon\\sqrt{\\phi/\\pi}`), meshed with :math:`h = h_{cell}\\,\\varepsilon`.
    The disks sit at :math:`(i + s, j + s)\\,\\varepsilon` with the ``shift`` :math:`s` (default
    1/2: centred), each inside its own period; an off-centre shift makes the domain's edges cut
    the periods where the cell correctors do not vanish (a boundary layer, see
    :mod:`multiscale.cell.reconstruction`).

    Phases ``"matrix"`` (1) and ``"inclusion"`` (2), as in
    :func:`~multiscale.mesh.generators.circular_inclusion` (the matching RVE is
    ``circular_inclusion(comm, phi, h=h_cell)``).  Built with the gmsh helpers of
    :mod:`multiscale.mesh.generators` on rank 0 and distributed on ``comm``.  Collective.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n (cells per side) must be a positive integer, got {n!r}")
    phi = float(volume_fraction)
    if not 0.0 < phi < math.pi / 4:
        raise ValueError(
            f"volume fraction of a disk in its cell must lie in (0, pi/4), got {volume_fraction!r}"
        )
    length = float(length)
    if not math.isfinite(length) or length <= 0.0:
        raise ValueError(f"length must be a finite positive number, got {length!r}")
    if not math.isfinite(h_cell) or not 0.0 < h_cell <= 0.5:
        raise ValueError(f"h_cell (element size / cell size) must lie in (0, 0.5], got {h_cell!r}")
    eps = length / n
    radius = eps * math.sqrt(phi / math.pi)
    r = radius / eps
    if not math.isfinite(shift) or not r < shift < 1.0 - r:
        raise ValueError(
            f"shift {shift!r} would cut a disk of radius {r:.3g} periods by the domain's edge; "
            f"it must lie in ({r:.3g}, {1.0 - r:.3g})"
        )
    centres = [((i + shift) * eps, (j + shift) * eps) for i in range(n) for j in range(n)]
    cell = inclusions_2d(
        comm, centres, radius, size=(length, length), h=h_cell * eps, path=path, verbose=verbose
    )
    macro = tag_box_sides(cell.mesh, cell.box[0], cell.box[1])
    cells = cell.mesh.topology.index_map(2).size_global
    log.info("tiled %dx%d cells (phi=%g): %d triangles at h=%.4g", n, n, phi, cells, h_cell * eps)
    return TiledMesh(cell=cell, macro=macro, n=int(n))
