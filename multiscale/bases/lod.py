"""Localized orthogonal decomposition (Målqvist & Peterseim 2014), Galerkin variant with element
correctors (Henning & Peterseim 2013; Engwer, Henning, Målqvist & Peterseim 2019).

*Quasi-interpolation.* :math:`I_H = E_H \\circ \\Pi_H`: :math:`\\Pi_H` the element-wise
:math:`L^2` projection onto :math:`P_1(K)`, :math:`E_H` the averaging at the free coarse vertices,
:math:`(I_H v)(z) = \\frac{1}{\\#\\omega_z}\\sum_{K\\ni z}(\\Pi_K v)(z)` (and 0 on
:math:`\\partial\\Omega`).  Its functionals form the constraint matrix :math:`C` (free vertices
x fine dofs), with :math:`(\\Pi_K v)(z_j) = (M_K^{-1}\\Lambda_K^T M^K v)_j`,
:math:`\\Lambda_K` the coarse basis at the fine dofs of :math:`\\bar K` and
:math:`M_K = \\Lambda_K^T M^K\\Lambda_K`.

*Fine space.* :math:`W_h = \\ker I_H \\cap V_h^0`; on a patch :math:`\\omega = U_k(T)`,
:math:`W_h(\\omega) = \\{w \\in V_h^0(\\omega) : Cw = 0\\}` (constraints of the free vertices of
:math:`\\bar\\omega`, imposed with Lagrange multipliers).

*Correctors.* For each element :math:`T` and vertex :math:`z_j` of :math:`T`:
:math:`q_{T,j} \\in W_h(U_k(T))` with :math:`a(q_{T,j}, w) = a_T(\\lambda_j, w)` for all
:math:`w \\in W_h(U_k(T))`, i.e. the saddle point
:math:`\\begin{pmatrix}A & C^T\\\\ C & 0\\end{pmatrix}\\binom{q}{\\mu} = \\binom{A^T\\lambda}{0}`,
solved by the Schur complement :math:`S = C A^{-1} C^T` (one factorization of the patch
matrix).  :math:`Q_k\\lambda_z = \\sum_{T\\ni z} q_{T,z}`; the basis is
:math:`\\phi_z = \\lambda_z - Q_k\\lambda_z`, the coarse system the Galerkin one,
:math:`P^T A P`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from mpi4py import MPI

from multiscale.bases.coarse import CoarseSpace
from multiscale.bases.fine import FineProblem, extract_blocks
from multiscale.bases.msfem import factorize

__all__ = ["LODParameters", "lod_prolongation", "lod_space", "quasi_interpolation"]


@dataclass(frozen=True, slots=True)
class LODParameters:
    """``layers``: :math:`k`, the coarse layers of the corrector patches :math:`U_k(T)`."""

    layers: int = 2

    def __post_init__(self) -> None:
        if self.layers < 0:
            raise ValueError(f"layers must be >= 0, got {self.layers}")


def quasi_interpolation(fine: FineProblem) -> sp.csr_matrix:
    """:math:`C`: row :math:`z` the functional :math:`v \\mapsto (I_H v)(z)` (all vertices;
    only the rows of free vertices are used)."""
    nm = fine.meshes
    n_at = np.bincount(nm.cells.ravel(), minlength=nm.n_vertices).astype(float)
    rows, cols, vals = [], [], []
    for k, el in enumerate(fine.elements):
        ml = el.mass.T @ el.lam  # M^K Lambda_K
        ell = np.linalg.solve(el.lam.T @ ml, ml.T)  # M_K^{-1} Lambda^T M^K
        verts = nm.cells[k]
        rows.append(np.repeat(verts, len(el.dofs)))
        cols.append(np.tile(el.dofs, len(verts)))
        vals.append((ell / n_at[verts, None]).ravel())
    c = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(nm.n_vertices, nm.n_fine),
    )
    c.sum_duplicates()
    return c


def _constrained_solve(a_ii: sp.spmatrix, c: np.ndarray, r: np.ndarray) -> np.ndarray:
    """:math:`q` with :math:`Aq + C^T\\mu = r`, :math:`Cq = 0`; constraint rows that vanish on
    the patch (vertices on its boundary with no interior dof in their support) are dropped."""
    norms = np.linalg.norm(c, axis=1)
    c = c[norms > 1e-12 * max(norms.max(initial=0.0), 1e-300)]
    lu = factorize(a_ii)
    z = lu.solve(r)
    if len(c) == 0:
        return z
    y = lu.solve(np.ascontiguousarray(c.T))
    mu = sla.cho_solve(sla.cho_factor(c @ y), c @ z)
    return z - y @ mu


def lod_prolongation(fine: FineProblem, params: LODParameters) -> sp.csr_matrix:
    """:math:`P = \\Lambda - Q_k\\Lambda` (fine dofs x all coarse vertices, replicated;
    collective, the patch problems spread over ``fine.pool``)."""
    nm, pool = fine.meshes, fine.pool
    c_full = quasi_interpolation(fine)
    mine = list(pool.own_tasks(nm.n_elements))
    patches = {}
    for k in mine:
        closure, interior = nm.patch_dofs(nm.patch(k, params.layers))
        patches[k] = closure[interior]
    blocks = dict(zip(mine, extract_blocks(fine.A, [patches[k] for k in mine]), strict=True))

    def task(k: int, _comm: MPI.Comm) -> tuple[np.ndarray, np.ndarray]:
        dofs, el = patches[k], fine.elements[k]
        if len(dofs) == 0:
            return dofs, np.zeros((0, nm.cells.shape[1]))
        verts = np.unique(nm.cells[nm.patch(k, params.layers)])
        verts = verts[nm.free[verts]]
        c = c_full[verts][:, dofs].toarray()
        pos = np.searchsorted(dofs, el.dofs).clip(max=len(dofs) - 1)
        hit = dofs[pos] == el.dofs
        r = np.zeros((len(dofs), nm.cells.shape[1]))
        r[pos[hit]] = (el.stiffness @ el.lam)[hit]
        return dofs, _constrained_solve(blocks[k], c, r)

    results = pool.map_tasks(task, nm.n_elements)
    rows = [np.repeat(el.dofs, nm.cells.shape[1]) for el in fine.elements]
    cols = [np.tile(nm.cells[k], len(el.dofs)) for k, el in enumerate(fine.elements)]
    vals = [el.lam.ravel() for el in fine.elements]
    lam = _mean(rows, cols, vals, (nm.n_fine, nm.n_vertices))
    q_rows = [np.repeat(d, nm.cells.shape[1]) for d, _ in results]
    q_cols = [np.tile(nm.cells[k], len(d)) for k, (d, _) in enumerate(results)]
    q = sp.csr_matrix(
        (
            np.concatenate([qk.ravel() for _, qk in results]),
            (np.concatenate(q_rows), np.concatenate(q_cols)),
        ),
        shape=(nm.n_fine, nm.n_vertices),
    )
    q.sum_duplicates()
    return sp.csr_matrix(lam - q)


def _mean(rows, cols, vals, shape) -> sp.csr_matrix:
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    total = sp.csr_matrix((v, (r, c)), shape=shape)
    count = sp.csr_matrix((np.ones_like(v), (r, c)), shape=shape)
    total.sum_duplicates()
    count.sum_duplicates()
    return sp.csr_matrix((total.data / count.data, total.indices, total.indptr), shape=shape)


def lod_space(
    fine: FineProblem,
    params: LODParameters = LODParameters(),
    *,
    petsc_options_prefix: str = "bases_lod_",
    petsc_options: Mapping[str, Any] | None = None,
) -> CoarseSpace:
    """The LOD coarse space :math:`(1 - Q_k)V_H` (conforming; Galerkin :math:`P^T A P`)."""
    return CoarseSpace(
        fine,
        prolongation=lod_prolongation(fine, params),
        petsc_options_prefix=petsc_options_prefix,
        petsc_options=petsc_options,
    )
