"""Multiscale finite elements (Hou & Wu 1997) with and without oversampling (Hou, Wu & Cai 1999).

On each coarse element :math:`K` with vertices :math:`z_1..z_{d+1}` and P1 basis
:math:`\\lambda^K_j` (extended affinely), let :math:`S = U_\\ell(K)` be its :math:`\\ell`-layer
patch (:math:`\\ell = 0`: :math:`S = K`).  The local problems are the discrete
:math:`a`-harmonic extensions

.. math::
    \\psi_j \\in V_h(S):\\quad a(\\psi_j, v) = 0 \\;\\forall v \\in V_h^0(S), \\qquad
    \\psi_j = \\lambda^K_j \\text{ at the dofs of } \\partial S
    \\text{ (and of } S\\cap\\partial\\Omega),

solved from the block :math:`A[\\bar S, \\bar S]` of the global fine matrix (the rows of dofs
interior to :math:`S` only see cells of :math:`S`).  The element basis is
:math:`\\phi_i|_K = \\sum_j \\psi_j|_K (N^{-1})_{ji}` with :math:`N_{kj} = \\psi_j(z_k)`, so
:math:`\\phi_i(z_k) = \\delta_{ik}`.  Without oversampling :math:`N = I` and the
:math:`\\phi_i` are the conforming MsFEM basis (Galerkin with :math:`P^T A P`); with oversampling
they are discontinuous across coarse edges and the method is the *Galerkin method on the
non-conforming space* (element-by-element :math:`a_K(\\phi_j, \\phi_i)`, broken energy norm).
Homogeneous Dirichlet data hold exactly on the boundary edges of :math:`K`: there
:math:`\\phi_i` of an interior vertex is affine with zero end values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from mpi4py import MPI

from multiscale.bases.coarse import CoarseSpace
from multiscale.bases.fine import FineProblem, extract_blocks

__all__ = ["MsFEMParameters", "factorize", "harmonic_extension", "msfem_basis", "msfem_space"]


@dataclass(frozen=True, slots=True)
class MsFEMParameters:
    """``oversampling``: layers :math:`\\ell` of coarse elements around :math:`K` in the
    oversampling domain (0: plain MsFEM)."""

    oversampling: int = 0

    def __post_init__(self) -> None:
        if self.oversampling < 0:
            raise ValueError(f"oversampling must be >= 0, got {self.oversampling}")


def factorize(mat: sp.spmatrix) -> spla.SuperLU:
    """Sparse LU of a symmetric positive definite local matrix (symmetric ordering)."""
    return spla.splu(
        sp.csc_matrix(mat), permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True}
    )


def harmonic_extension(a_ss: sp.csr_matrix, interior: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Values on :math:`\\bar S` of the discrete harmonic functions with boundary values
    ``data`` (one column per function): :math:`\\psi_I = -A_{II}^{-1}A_{IB}g`."""
    out = np.zeros((len(interior), data.shape[1]))
    bnd = ~interior
    out[bnd] = data
    if interior.any():
        a_ii = a_ss[interior][:, interior]
        out[interior] = factorize(a_ii).solve(-(a_ss[interior][:, bnd] @ data))
    return out


def msfem_basis(fine: FineProblem, params: MsFEMParameters) -> list[np.ndarray]:
    """:math:`\\Phi_K` (closure dofs of K x its vertices) for every element (collective;
    the local problems are spread over ``fine.pool``)."""
    nm, pool = fine.meshes, fine.pool
    mine = list(pool.own_tasks(nm.n_elements))
    patches = {k: nm.patch_dofs(nm.patch(k, params.oversampling)) for k in mine}
    blocks = dict(zip(mine, extract_blocks(fine.A, [patches[k][0] for k in mine]), strict=True))

    def task(k: int, _comm: MPI.Comm) -> np.ndarray:
        closure, interior = patches[k]
        el = fine.elements[k]
        data = nm.element_barycentric(k, closure[~interior])
        psi = harmonic_extension(blocks[k], interior, data)
        psi_k = psi[np.searchsorted(closure, el.dofs)]
        n = psi_k[nm.vertex_dof_positions(k, el.lam)]
        return psi_k @ np.linalg.inv(n) if params.oversampling else psi_k

    return pool.map_tasks(task, nm.n_elements)


def msfem_space(
    fine: FineProblem,
    params: MsFEMParameters = MsFEMParameters(),
    *,
    petsc_options_prefix: str = "bases_msfem_",
    petsc_options: Mapping[str, Any] | None = None,
) -> CoarseSpace:
    """The MsFEM coarse space (conforming without oversampling, non-conforming with)."""
    return CoarseSpace(
        fine,
        element_bases=msfem_basis(fine, params),
        conforming=params.oversampling == 0,
        petsc_options_prefix=petsc_options_prefix,
        petsc_options=petsc_options,
    )
