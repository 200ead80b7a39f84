"""Generalized multiscale finite elements (Efendiev, Galvis & Hou 2013) for high-contrast
:math:`-\\nabla\\cdot(\\kappa\\nabla u) = f`.

*Neighbourhoods and partition of unity.* For every coarse vertex :math:`z_i` (boundary ones
included), :math:`\\omega_i = \\bigcup\\{K : z_i \\in \\bar K\\}`; :math:`\\chi_i` is the
**standard coarse P1 hat function** of :math:`z_i` (not the MsFEM basis), so
:math:`\\sum_i\\chi_i = 1` and :math:`\\operatorname{supp}\\chi_i = \\bar\\omega_i`.

*Snapshot space.* The fine space itself: :math:`V_h(\\omega_i)`, the fine P1 functions on
:math:`\\bar\\omega_i` that vanish on :math:`\\partial\\Omega` (no condition on the rest of
:math:`\\partial\\omega_i`).

*Local spectral problem.* Find :math:`(\\lambda, \\psi) \\in \\mathbb R\\times V_h(\\omega_i)`
with

.. math::
    \\int_{\\omega_i}\\kappa\\nabla\\psi\\cdot\\nabla v
    = \\lambda \\int_{\\omega_i}\\tilde\\kappa\\,\\psi v \\quad\\forall v\\in V_h(\\omega_i),
    \\qquad \\tilde\\kappa = \\kappa\\, H_K^2\\sum_j|\\nabla\\chi_j|^2 \\text{ on } K,

i.e. :math:`A_i\\psi = \\lambda S_i\\psi` with the Neumann matrices :math:`A_i = \\sum_{K\\subset
\\omega_i} A^K`, :math:`S_i = \\sum_{K\\subset\\omega_i} c_K M^K_\\kappa`,
:math:`c_K = H_K^2\\sum_{j}|\\nabla\\lambda^K_j|^2` (:math:`H_K` the diameter of :math:`K`,
so :math:`c_K` depends only on the shape of :math:`K`: 8 on the right-angled triangles of a
uniform square grid; then :math:`\\lambda` has units :math:`1/\\text{length}^2`, the
background modes :math:`\\lambda = O(H^{-2})`).  For an interior :math:`\\omega_i` the constant
gives :math:`\\lambda_1 = 0`; every high-conductivity component in :math:`\\omega_i` that does
not touch :math:`\\partial\\Omega` gives one more eigenvalue :math:`O(1/\\eta)` (a function equal
to 1 on the component and decaying in the background has energy :math:`O(1)` and
:math:`\\tilde\\kappa`-mass :math:`O(\\eta)`); the next one, :math:`\\Lambda^*`, is bounded
independently of :math:`\\eta`.  Solved with SLEPc (GHEP, Krylov–Schur, shift-and-invert with a
MUMPS Cholesky factorization of :math:`A_i - \\sigma S_i`, :math:`\\sigma = s/H_i^2 < 0` since
:math:`A_i` is singular), one neighbourhood per task on ``MPI.COMM_SELF``, the tasks spread
over the ranks with the fine problem's :class:`~multiscale.coupling.pool.MicroPool`.

*Basis.* :math:`\\phi_{i,l} = I_h(\\chi_i\\psi_{i,l})`, :math:`l = 1..L_i` (the eigenvectors of
the :math:`L_i` smallest eigenvalues, each scaled to max-norm 1 and sign fixed by its largest
entry); :math:`V_H = \\operatorname{span}\\{\\phi_{i,l}\\}\\subset V_h^0`, conforming, Galerkin
:math:`P^TAP` (:class:`~multiscale.bases.coarse.CoarseSpace`).  The error bound (EGH 2013,
Thm. 5.2 there, up to the scaling): :math:`\\|u_h - u_H\\|_a \\le C\\,\\|f\\|/\\sqrt{\\Lambda^*}`
with :math:`\\Lambda^* = \\min_i\\lambda_{i, L_i+1}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from mpi4py import MPI
from petsc4py import PETSc
from slepc4py import SLEPc

from multiscale.bases.coarse import CoarseSolution, CoarseSpace
from multiscale.bases.fine import FineProblem
from multiscale.nonlinear import PETScOwner, direct_solver_options
from multiscale.petsc_options import prefixed_options

__all__ = [
    "EIGEN_OPTIONS",
    "GMsFEMBasis",
    "GMsFEMParameters",
    "LocalSpectralProblem",
    "gmsfem_basis",
    "gmsfem_errors",
    "gmsfem_space",
    "kappa_tilde_factor",
]

#: SLEPc options of the local spectral problems.
EIGEN_OPTIONS: dict[str, Any] = {
    "eps_type": "krylovschur",
    "eps_tol": 1.0e-12,
    "eps_max_it": 1000,
    "st_type": "sinvert",
    "st_ksp_type": "preonly",
    "st_pc_type": "cholesky",
    "st_pc_factor_mat_solver_type": "mumps",
}


#: Values below this count as zero in a basis function (they are O(1) otherwise: the
#: eigenvectors are scaled to max-norm 1 and :math:`0 \\le \\chi_i \\le 1`).
_VANISH = 1e-12


@dataclass(frozen=True, slots=True)
class GMsFEMParameters:
    """``n_eigen``: eigenpairs computed per neighbourhood (at least one more than the basis
    functions used, to report :math:`\\Lambda^*`); ``shift``: :math:`s`, the spectral shift is
    :math:`\\sigma = s/H_i^2` (:math:`H_i` the largest element diameter in :math:`\\omega_i`);
    ``options``: overrides of :data:`EIGEN_OPTIONS`."""

    n_eigen: int = 4
    shift: float = -1.0
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.n_eigen < 2:
            raise ValueError(f"n_eigen must be >= 2, got {self.n_eigen}")
        if not self.shift < 0:
            raise ValueError(f"shift must be < 0 (A_i is singular), got {self.shift}")


def kappa_tilde_factor(vertices: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """:math:`c_K = H_K^2\\sum_j|\\nabla\\lambda^K_j|^2` for every simplex (vectorized)."""
    v = vertices[cells]  # (n, d+1, d)
    edges = v[:, 1:] - v[:, :1]  # rows: v_j - v_0
    grads = np.linalg.inv(edges)  # columns: grad lambda_1..d
    g0 = -grads.sum(axis=2)
    sq = (grads**2).sum(axis=(1, 2)) + (g0**2).sum(axis=1)
    return _diameters_squared(vertices, cells) * sq


def _diameters_squared(vertices: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """:math:`H_K^2`, the squared longest edge of every simplex."""
    v = vertices[cells]
    return ((v[:, :, None, :] - v[:, None, :, :]) ** 2).sum(axis=3).max(axis=(1, 2))


def _seq_aij(mat: sp.csr_matrix) -> PETSc.Mat:
    mat = sp.csr_matrix(mat)
    mat.sort_indices()
    out = PETSc.Mat().createAIJ(
        mat.shape,
        csr=(mat.indptr.astype(PETSc.IntType), mat.indices.astype(PETSc.IntType), mat.data),
        comm=PETSc.COMM_SELF,
    )
    out.assemble()
    return out


class LocalSpectralProblem(PETScOwner):
    """:math:`A\\psi = \\lambda S\\psi` (sparse symmetric, :math:`S` positive definite) on
    ``MPI.COMM_SELF``: the ``n_eigen`` smallest eigenpairs by shift-and-invert at
    ``sigma < 0``."""

    def __init__(
        self,
        stiffness: sp.csr_matrix,
        mass: sp.csr_matrix,
        n_eigen: int,
        sigma: float,
        *,
        options: Mapping[str, Any] | None = None,
        prefix: str = "bases_gmsfem_eps_",
    ) -> None:
        n = stiffness.shape[0]
        if not 0 < n_eigen <= n:
            raise ValueError(f"{n_eigen} eigenpairs asked of a problem of size {n}")
        self.n_eigen = n_eigen
        self.A = self._own(_seq_aij(stiffness))
        self.S = self._own(_seq_aij(mass))
        eps = self._own(SLEPc.EPS().create(PETSc.COMM_SELF))
        eps.setOptionsPrefix(prefix)
        eps.setOperators(self.A, self.S)
        eps.setProblemType(SLEPc.EPS.ProblemType.GHEP)
        eps.setDimensions(n_eigen, min(n, max(2 * n_eigen + 10, 20)))
        eps.setTarget(sigma)
        eps.setWhichEigenpairs(SLEPc.EPS.Which.TARGET_MAGNITUDE)
        eps.getST().setShift(sigma)
        with prefixed_options(prefix, {**EIGEN_OPTIONS, **(options or {})}):
            eps.setFromOptions()
        self.eps = eps

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        """The eigenvalues (ascending) and :math:`S`-orthonormal eigenvectors (columns)."""
        self.eps.solve()
        n = self.eps.getConverged()
        if n < self.n_eigen:
            raise RuntimeError(f"local eigenproblem: {n} of {self.n_eigen} eigenpairs converged")
        vec = self.A.createVecRight()
        vals = np.empty(n)
        vecs = np.empty((self.A.getSize()[0], n))
        for j in range(n):
            vals[j] = self.eps.getEigenpair(j, vec).real
            vecs[:, j] = vec.getArray(readonly=True)
        vec.destroy()
        order = np.argsort(vals)[: self.n_eigen]
        return vals[order], vecs[:, order]


@dataclass(frozen=True, slots=True)
class GMsFEMBasis:
    """The spectral basis of every neighbourhood.

    ``eigenvalues`` (n_vertices, n_eigen): :math:`\\lambda_{i,1} \\le \\dots` (``inf``
    beyond the dimension of a small snapshot space, with zero functions);
    ``dofs[i]``: the closure fine dofs of :math:`\\omega_i` (sorted);
    ``functions[i]`` (len(dofs[i]), n_eigen): :math:`I_h(\\chi_i\\psi_{i,l})` on them."""

    eigenvalues: np.ndarray
    dofs: list[np.ndarray]
    functions: list[np.ndarray]

    def counts(self, n_basis: int | Sequence[int] | np.ndarray) -> np.ndarray:
        """:math:`L_i` for every vertex (a number for all, or one per vertex)."""
        n_v, n_e = self.eigenvalues.shape
        counts = np.broadcast_to(np.asarray(n_basis, dtype=np.int64), (n_v,)).copy()
        if counts.min() < 1 or counts.max() >= n_e:
            raise ValueError(f"basis functions per vertex must lie in 1..{n_e - 1}")
        return counts

    def lambda_star(self, n_basis: int | Sequence[int] | np.ndarray) -> np.ndarray:
        """:math:`\\lambda_{i, L_i+1}` (the first eigenvalue left out) of every neighbourhood."""
        counts = self.counts(n_basis)
        return self.eigenvalues[np.arange(len(counts)), counts]

    def prolongation(self, n_basis: int | Sequence[int] | np.ndarray, n_fine: int) -> sp.csr_matrix:
        """:math:`P` (fine dofs x :math:`\\sum_i L_i`), columns ordered by vertex, then
        :math:`l`."""
        counts = self.counts(n_basis)
        first = np.concatenate([[0], np.cumsum(counts)])
        rows = [np.repeat(d, c) for d, c in zip(self.dofs, counts, strict=True)]
        cols = [
            np.tile(np.arange(f, f + c), len(d))
            for d, f, c in zip(self.dofs, first[:-1], counts, strict=True)
        ]
        vals = [f[:, :c].ravel() for f, c in zip(self.functions, counts, strict=True)]
        p = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_fine, int(first[-1])),
        )
        p.eliminate_zeros()
        return p


def _star_matrix(
    blocks: Sequence[sp.csr_matrix], elem_dofs: Sequence[np.ndarray], closure: np.ndarray
) -> sp.csr_matrix:
    """:math:`\\sum_K` of element matrices (on their closure dofs) on the dofs ``closure``."""
    rows, cols, vals = [], [], []
    for mat, dofs in zip(blocks, elem_dofs, strict=True):
        coo = sp.coo_matrix(mat)
        pos = np.searchsorted(closure, dofs)
        rows.append(pos[coo.row])
        cols.append(pos[coo.col])
        vals.append(coo.data)
    n = len(closure)
    out = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    out.sum_duplicates()
    return out


def gmsfem_basis(fine: FineProblem, params: GMsFEMParameters = GMsFEMParameters()) -> GMsFEMBasis:
    """Solve the local spectral problems of all neighbourhoods (collective; one task per
    coarse vertex on ``fine.pool``); every rank gets the whole basis."""
    nm, els = fine.meshes, fine.elements
    m_kappa = fine.coefficient_mass()
    c_k = kappa_tilde_factor(nm.vertices, nm.cells)
    diam2 = _diameters_squared(nm.vertices, nm.cells)
    star = sp.csc_matrix(nm.incidence)
    options = dict(params.options)

    def task(i: int, _comm: MPI.Comm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        elems = star.indices[star.indptr[i] : star.indptr[i + 1]]
        closure = np.unique(np.concatenate([els[k].dofs for k in elems]))
        free = ~nm.on_boundary[closure]
        a_i = _star_matrix([els[k].stiffness for k in elems], [els[k].dofs for k in elems], closure)
        s_i = _star_matrix(
            [c_k[k] * m_kappa[k] for k in elems], [els[k].dofs for k in elems], closure
        )
        hat = np.zeros(len(closure))
        for k in elems:
            j = int(np.flatnonzero(nm.cells[k] == i)[0])
            hat[np.searchsorted(closure, els[k].dofs)] = els[k].lam[:, j]
        hat[np.abs(hat) < _VANISH] = 0.0  # round-off of the barycentric coordinates
        sigma = params.shift / float(diam2[elems].max())
        n_found = min(params.n_eigen, int(free.sum()))
        vals = np.full(params.n_eigen, np.inf)
        psi = np.zeros((len(closure), params.n_eigen))
        if n_found:
            with LocalSpectralProblem(
                a_i[free][:, free], s_i[free][:, free], n_found, sigma, options=options
            ) as problem:
                vals[:n_found], psi[free, :n_found] = problem.solve()
            big = np.argmax(np.abs(psi[:, :n_found]), axis=0)
            psi[:, :n_found] /= psi[big, np.arange(n_found)]
        return vals, closure, hat[:, None] * psi

    results = fine.pool.map_tasks(task, nm.n_vertices)
    return GMsFEMBasis(
        np.array([r[0] for r in results]),
        [r[1] for r in results],
        [r[2] for r in results],
    )


def gmsfem_space(
    fine: FineProblem,
    basis: GMsFEMBasis,
    n_basis: int | Sequence[int] | np.ndarray,
    *,
    petsc_options_prefix: str = "bases_gmsfem_",
    petsc_options: Mapping[str, Any] | None = None,
) -> CoarseSpace:
    """The GMsFEM space with :math:`L_i` = ``n_basis`` functions per vertex (conforming,
    Galerkin :math:`P^TAP`).  Functions that vanish identically (those of a boundary vertex
    whose neighbourhood has no fine dof off :math:`\\partial\\Omega`, e.g. when the coarse
    mesh is the fine mesh) are not unknowns.  The coarse solve is a MUMPS Cholesky
    factorization unless ``petsc_options`` says otherwise (the coarse matrix is about as
    ill-conditioned as the contrast)."""
    p = basis.prolongation(n_basis, fine.meshes.n_fine)
    nonzero = np.asarray(abs(p).max(axis=0).todense()).ravel() > _VANISH
    return CoarseSpace(
        fine,
        prolongation=p,
        free_columns=nonzero,
        petsc_options_prefix=petsc_options_prefix,
        petsc_options={**direct_solver_options(symmetric=True), **(petsc_options or {})},
    )


def gmsfem_errors(space: CoarseSpace, sol: CoarseSolution, u_ref: np.ndarray) -> dict[str, float]:
    """Relative errors against the fine ``u_ref``: energy :math:`\\|e\\|_a/\\|u_h\\|_a`,
    :math:`L^2`, and :math:`\\kappa`-weighted :math:`L^2`,
    :math:`(\\int\\kappa e^2)^{1/2}/(\\int\\kappa u_h^2)^{1/2}`."""
    fine = space.fine
    out = space.errors(sol, u_ref)
    m_kappa = fine.coefficient_mass()
    err = fine.restrict(u_ref - sol.u_fine)
    ref = fine.restrict(u_ref)
    e2 = sum(float(w @ (m @ w)) for w, m in zip(err, m_kappa, strict=True))
    r2 = sum(float(w @ (m @ w)) for w, m in zip(ref, m_kappa, strict=True))
    out["weighted_L2"] = float(np.sqrt(e2 / r2))
    return out
