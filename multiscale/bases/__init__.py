"""Multiscale finite element bases: MsFEM (with oversampling), GMsFEM and LOD on nested meshes.

A coarse simplex mesh (replicated on every rank) over a distributed fine dolfinx mesh that
refines it (:mod:`~multiscale.bases.nested`); the fine matrices and per-element data from one
set of compiled forms (:mod:`~multiscale.bases.fine`); local problems on elements or
:math:`k`-layer patches read out of the assembled fine matrix and spread over the ranks with
:class:`~multiscale.coupling.pool.MicroPool`; the basis as a prolongation :math:`P` (PETSc AIJ),
the coarse Galerkin system :math:`P^TAP` solved with a PETSc KSP
(:mod:`~multiscale.bases.coarse`).  Methods: :func:`msfem_space` (Hou–Wu, and Hou–Wu–Cai
oversampling), :func:`gmsfem_space` (Efendiev–Galvis–Hou, local spectral problems solved with
SLEPc; high-contrast fields from :mod:`~multiscale.bases.coefficients`) and :func:`lod_space`
(Målqvist–Peterseim).
"""

from multiscale.bases.coarse import CoarseSolution, CoarseSpace
from multiscale.bases.coefficients import (
    HighContrastField,
    channel_field,
    hou_wu,
    inclusion_field,
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
from multiscale.bases.nested import NestedMeshes, unit_interval_pair, unit_square_pair

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
    "channel_field",
    "gmsfem_basis",
    "gmsfem_errors",
    "gmsfem_space",
    "hou_wu",
    "inclusion_field",
    "lod_space",
    "msfem_space",
    "quasi_interpolation",
    "unit_interval_pair",
    "unit_square_pair",
]
