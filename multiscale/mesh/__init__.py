"""Periodic unit-cell (RVE) meshes: generators, reading and periodicity checks.

* :mod:`~multiscale.mesh.cell`: :class:`CellMesh`, a distributed box mesh with named phases;
* :mod:`~multiscale.mesh.generators`: periodic cells built with gmsh/OpenCASCADE (inclusions,
  laminates, checkerboards, fibres);
* :mod:`~multiscale.mesh.io`: reading a user's ``.msh`` of a box cell;
* :mod:`~multiscale.mesh.periodicity`: checking that a cell is a box with matching opposite faces.
"""

from __future__ import annotations

from multiscale.mesh.cell import CellMesh
from multiscale.mesh.generators import (
    checkerboard,
    circular_inclusion,
    cylindrical_fibre,
    inclusions_2d,
    inclusions_3d,
    laminate,
    spherical_inclusion,
)
from multiscale.mesh.io import gmsh_session, model_to_cell_mesh, read_cell_mesh, write_msh
from multiscale.mesh.periodicity import (
    NonPeriodicMeshError,
    NotABoxError,
    bounding_box,
    check_fills_box,
    check_periodic,
    mesh_volume,
)

__all__ = [
    "CellMesh",
    "NonPeriodicMeshError",
    "NotABoxError",
    "bounding_box",
    "check_fills_box",
    "check_periodic",
    "checkerboard",
    "circular_inclusion",
    "cylindrical_fibre",
    "gmsh_session",
    "inclusions_2d",
    "inclusions_3d",
    "laminate",
    "mesh_volume",
    "model_to_cell_mesh",
    "read_cell_mesh",
    "spherical_inclusion",
    "write_msh",
]
