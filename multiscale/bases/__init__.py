"""Multiscale finite element bases: MsFEM (with oversampling), GMsFEM and LOD on nested meshes.

A coarse simplex mesh (intervals, triangles or tetrahedra; replicated on every rank) over a
distributed fine dolfinx mesh that refines it (:mod:`~multiscale.bases.nested`: structured
pairs, or a gmsh triangulation and its uniform refinement, :func:`unstructured_pair`); the fine
matrices and per-element data from one set of compiled forms (:mod:`~multiscale.bases.fine`);
local problems on elements or
:math:`k`-layer patches read out of the assembled fine matrix and spread over the ranks with
:class:`~multiscale.coupling.pool.MicroPool`; the basis as a prolongation :math:`P` (PETSc AIJ),
the coarse Galerkin system :math:`P^TAP` solved with a PETSc KSP
(:mod:`~multiscale.bases.coarse`).  Methods: :func:`msfem_space` (Hou–Wu, and Hou–Wu–Cai
oversampling), :func:`gmsfem_space` (Efendiev–Galvis–Hou, local spectral problems solved with
SLEPc) and :func:`lod_space` (Målqvist–Peterseim).  Coefficients
(:mod:`~multiscale.bases.coefficients`): any UFL expression of the mesh, high-contrast channel
and inclusion fields, cell-wise fields from images and voxel arrays, log-normal random fields.
"""

from multiscale.bases.coarse import CoarseSolution, CoarseSpace
from multiscale.bases.coefficients import (
    HighContrastField,
    PixelField,
    channel_field,
    hou_wu,
    hou_wu_cell,
    image_field,
    inclusion_field,
    lognormal_field,
    pixel_field,
)
from multiscale.bases.fine import ElementData, FineProblem
from multiscale.bases.gmsfem import (
    GMsFEMBasis,
    GMsFEMParameters,
    gmsfem_basis,
    gmsfem_errors,
    gmsfem_space,
)
from multiscale.bases.lod import LODParameters, lod_space, quasi_interpolation
from multiscale.bases.msfem import MsFEMParameters, msfem_space
from multiscale.bases.nested import (
    NestedMeshes,
    unit_cube_pair,
    unit_interval_pair,
    unit_square_pair,
    unstructured_pair,
)

__all__ = [
    "CoarseSolution",
    "CoarseSpace",
    "ElementData",
    "FineProblem",
    "GMsFEMBasis",
    "GMsFEMParameters",
    "HighContrastField",
    "LODParameters",
    "MsFEMParameters",
    "NestedMeshes",
    "PixelField",
    "channel_field",
    "gmsfem_basis",
    "gmsfem_errors",
    "gmsfem_space",
    "hou_wu",
    "hou_wu_cell",
    "image_field",
    "inclusion_field",
    "lod_space",
    "lognormal_field",
    "msfem_space",
    "pixel_field",
    "quasi_interpolation",
    "unit_cube_pair",
    "unit_interval_pair",
    "unit_square_pair",
    "unstructured_pair",
]
