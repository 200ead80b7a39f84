"""Periodic unit-cell (RVE) meshes: generators, reading and periodicity checks.

* :mod:`~multiscale.mesh.cell`: :class:`CellMesh`, a distributed box mesh with named phases;
* :mod:`~multiscale.mesh.generators`: periodic cells built with gmsh/OpenCASCADE (inclusions,
  laminates, checkerboards, fibres);
* :mod:`~multiscale.mesh.io`: reading a user's ``.msh`` of a box cell;
* :mod:`~multiscale.mesh.periodicity`: checking that a cell is a box with matching opposite faces;
* :mod:`~multiscale.mesh.random`: random microstructures (RSA disks/spheres, level-cut Gaussian
  fields on voxel meshes);
* :mod:`~multiscale.mesh.image`: image-based microstructures (PNG/TIFF images, ``.npy``/HDF5
  voxel arrays whose values label phases) on pixel/voxel meshes;
* :mod:`~multiscale.mesh.descriptors`: realized volume fraction, two-point correlation function;
* :mod:`~multiscale.mesh.macro`: macro meshes with named boundaries (rectangles, boxes, a plate
  with a hole, gmsh files, structured unit meshes);
* :mod:`~multiscale.mesh.refine`: periodic adaptive (Plaza) refinement, Dörfler marking;
* :mod:`~multiscale.mesh.tiled`: domains tiled with copies of a cell (DNS references).
"""

from __future__ import annotations

from multiscale.mesh.cell import CellMesh
from multiscale.mesh.descriptors import (
    TwoPointCorrelation,
    rasterize,
    realized_volume_fraction,
    two_point_correlation,
    two_point_correlation_map,
)
from multiscale.mesh.generators import (
    checkerboard,
    circular_inclusion,
    cylindrical_fibre,
    inclusions_2d,
    inclusions_3d,
    laminate,
    spherical_inclusion,
)
from multiscale.mesh.image import (
    IMAGE_SUFFIXES,
    NonPeriodicImageError,
    PhaseImage,
    image_cell,
    load_phase_image,
    read_image,
    segment_image,
)
from multiscale.mesh.io import gmsh_session, model_to_cell_mesh, read_cell_mesh, write_msh
from multiscale.mesh.macro import MacroMesh, unit_mesh
from multiscale.mesh.periodicity import (
    NonPeriodicMeshError,
    NotABoxError,
    bounding_box,
    check_fills_box,
    check_periodic,
    mesh_volume,
)
from multiscale.mesh.random import (
    InclusionLayout,
    PixelMicrostructure,
    gaussian_random_field,
    label_grid_cell,
    random_inclusion_cell,
    random_sequential_addition,
    thresholded_gaussian_field,
    voxel_cell,
)
from multiscale.mesh.refine import dorfler_mark, refine_periodic
from multiscale.mesh.tiled import TiledMesh, tiled_inclusions

__all__ = [
    "IMAGE_SUFFIXES",
    "CellMesh",
    "InclusionLayout",
    "MacroMesh",
    "NonPeriodicImageError",
    "NonPeriodicMeshError",
    "NotABoxError",
    "PhaseImage",
    "PixelMicrostructure",
    "TiledMesh",
    "TwoPointCorrelation",
    "bounding_box",
    "check_fills_box",
    "check_periodic",
    "checkerboard",
    "circular_inclusion",
    "cylindrical_fibre",
    "dorfler_mark",
    "gaussian_random_field",
    "gmsh_session",
    "image_cell",
    "inclusions_2d",
    "inclusions_3d",
    "label_grid_cell",
    "laminate",
    "load_phase_image",
    "mesh_volume",
    "model_to_cell_mesh",
    "random_inclusion_cell",
    "random_sequential_addition",
    "rasterize",
    "read_cell_mesh",
    "read_image",
    "realized_volume_fraction",
    "refine_periodic",
    "segment_image",
    "spherical_inclusion",
    "thresholded_gaussian_field",
    "tiled_inclusions",
    "two_point_correlation",
    "two_point_correlation_map",
    "unit_mesh",
    "voxel_cell",
    "write_msh",
]
