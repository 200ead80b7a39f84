"""Coarse spaces given by their fine representation, and the coarse solve.

A conforming multiscale space :math:`V_H^{ms} = \\operatorname{span}\\{\\phi_z\\}` is kept as the
prolongation :math:`P` (fine dofs x free coarse vertices, a distributed PETSc AIJ) with
:math:`\\phi_z = \\sum_d P_{dz}\\varphi_d`; the Galerkin system is
:math:`P^T A P\\, u_H = P^T b` (``MatPtAP``), solved with a PETSc KSP, and the fine solution is
:math:`P u_H`.  A non-conforming space (MsFEM with oversampling) is given element by element,
:math:`\\phi_z|_K = \\sum_d (\\Phi_K)_{dz}\\varphi_d` on the dofs of :math:`\\bar K`; its Galerkin
matrix is assembled from :math:`\\Phi_K^T A^K \\Phi_K`, the load from :math:`\\Phi_K^T b^K`, and
:math:`P` (the mean over the elements sharing a dof) only serves to plot it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.bases.fine import FineProblem, gather_vec
from multiscale.nonlinear import PETScOwner
from multiscale.petsc_options import prefixed_options

__all__ = ["COARSE_OPTIONS", "CoarseSolution", "CoarseSpace", "ownership", "petsc_aij"]

COARSE_OPTIONS: dict[str, Any] = {"ksp_type": "cg", "pc_type": "hypre", "ksp_rtol": 1e-12}


def ownership(n: int, comm: MPI.Comm) -> tuple[int, int]:
    """PETSc's default split of ``n`` rows: this rank's ``(start, stop)``."""
    sizes = [n // comm.size + (r < n % comm.size) for r in range(comm.size)]
    start = sum(sizes[: comm.rank])
    return start, start + sizes[comm.rank]


def petsc_aij(
    mat: sp.spmatrix, rows: tuple[int, int], cols: tuple[int, int], comm: MPI.Comm
) -> PETSc.Mat:
    """The distributed AIJ of a matrix known on every rank, ``rows``/``cols`` this rank's
    ownership ranges (only the owned rows are read)."""
    own = sp.csr_matrix(mat)[rows[0] : rows[1]]
    own.sum_duplicates()
    own.sort_indices()
    out = PETSc.Mat().createAIJ(
        ((rows[1] - rows[0], mat.shape[0]), (cols[1] - cols[0], mat.shape[1])),
        csr=(own.indptr.astype(PETSc.IntType), own.indices.astype(PETSc.IntType), own.data),
        comm=comm,
    )
    out.assemble()
    return out


@dataclass(frozen=True, slots=True)
class CoarseSolution:
    """``u_H`` (the coefficients of all columns of :math:`P`: the values at all coarse
    vertices, zero on the boundary, for MsFEM and LOD), the fine function on each
    element's closure dofs (``pieces``, broken for non-conforming spaces), its continuous
    representative ``u_fine`` (:math:`P u_H`), the KSP ``iterations``."""

    u_H: np.ndarray
    pieces: list[np.ndarray]
    u_fine: np.ndarray
    iterations: int


class CoarseSpace(PETScOwner):
    """A multiscale coarse space over a :class:`~multiscale.bases.fine.FineProblem`.

    Parameters
    ----------
    fine:
        The fine problem.
    element_bases:
        :math:`\\Phi_K` for every element (closure dofs x the element's vertices), or ``None``
        when ``prolongation`` is given.
    prolongation:
        :math:`P` (fine dofs x all coarse vertices, SciPy, replicated) of a conforming space.
    conforming:
        Galerkin with :math:`P^T A P` (true) or element by element (false).
    free_columns:
        With ``prolongation``: the mask of its columns that are unknowns (default: the free
        coarse vertices; GMsFEM, whose columns are its basis functions, passes all of them).
    petsc_options_prefix, petsc_options:
        Prefix and overrides of the coarse KSP (default CG + BoomerAMG, ``rtol = 1e-12``).
    """

    def __init__(
        self,
        fine: FineProblem,
        *,
        element_bases: Sequence[np.ndarray] | None = None,
        prolongation: sp.spmatrix | None = None,
        conforming: bool = True,
        free_columns: np.ndarray | None = None,
        petsc_options_prefix: str = "bases_coarse_",
        petsc_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.fine, self.comm = fine, fine.comm
        nm = fine.meshes
        self.prefix = petsc_options_prefix
        self.options = {**COARSE_OPTIONS, **(petsc_options or {})}
        self.element_bases = list(element_bases) if element_bases is not None else None
        if prolongation is None:
            if self.element_bases is None:
                raise ValueError("give element_bases or prolongation")
            prolongation = self._mean_prolongation()
        if free_columns is not None and element_bases is not None:
            raise ValueError("free_columns goes with a prolongation, not with element_bases")
        keep = sp.diags((~nm.on_boundary).astype(float))
        full = sp.csr_matrix(keep @ prolongation)
        self.P_full = full
        self.free = nm.free if free_columns is None else np.asarray(free_columns, dtype=bool)
        if self.free.shape != (full.shape[1],):
            raise ValueError(f"free_columns: {self.free.shape} for {full.shape[1]} columns")
        self.cols = ownership(int(self.free.sum()), self.comm)
        self.P = self._own(
            petsc_aij(full[:, self.free], fine.meshes.owned_range, self.cols, self.comm)
        )
        self.A_H = self._own(fine.A.PtAP(self.P) if conforming else self._element_matrix())
        self.b_H = self._own(self._load(conforming))
        self.ksp = self._own(PETSc.KSP().create(self.comm))
        self.ksp.setOperators(self.A_H)
        self.ksp.setOptionsPrefix(self.prefix)
        with prefixed_options(self.prefix, self.options):
            self.ksp.setFromOptions()
            self.ksp.setUp()  # a factorization reads its own options here

    def _mean_prolongation(self) -> sp.csr_matrix:
        nm, els = self.fine.meshes, self.fine.elements
        rows = np.concatenate([np.repeat(e.dofs, nm.cells.shape[1]) for e in els])
        cols = np.concatenate([np.tile(nm.cells[k], len(e.dofs)) for k, e in enumerate(els)])
        vals = np.concatenate([phi.ravel() for phi in self.element_bases])
        shape = (nm.n_fine, nm.n_vertices)
        total = sp.csr_matrix((vals, (rows, cols)), shape=shape)
        count = sp.csr_matrix((np.ones_like(vals), (rows, cols)), shape=shape)
        total.sum_duplicates()
        count.sum_duplicates()
        return sp.csr_matrix((total.data / count.data, total.indices, total.indptr), shape=shape)

    def _element_matrix(self) -> PETSc.Mat:
        """:math:`\\sum_K L_K^T \\Phi_K^T A^K \\Phi_K L_K` over the free vertices."""
        nm, els = self.fine.meshes, self.fine.elements
        rows, cols, vals = [], [], []
        for k, (e, phi) in enumerate(zip(els, self.element_bases, strict=True)):
            dof = nm.coarse_dof[nm.cells[k]]
            ok = dof >= 0
            local = (phi.T @ (e.stiffness @ phi))[np.ix_(ok, ok)]
            rows.append(np.repeat(dof[ok], ok.sum()))
            cols.append(np.tile(dof[ok], ok.sum()))
            vals.append(local.ravel())
        n = nm.n_coarse
        a_h = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )
        return petsc_aij(a_h, self.cols, self.cols, self.comm)

    def _load(self, conforming: bool) -> PETSc.Vec:
        nm = self.fine.meshes
        b_h = self.P.createVecRight()
        if conforming:
            self.P.multTranspose(self.fine.b, b_h)
            return b_h
        full = np.zeros(nm.n_vertices)
        for k, (e, phi) in enumerate(zip(self.fine.elements, self.element_bases, strict=True)):
            np.add.at(full, nm.cells[k], phi.T @ e.load)
        b_h.setArray(full[nm.free][self.cols[0] : self.cols[1]])
        return b_h

    def solve(self) -> CoarseSolution:
        """Solve the coarse system; every rank gets the whole result."""
        nm = self.fine.meshes
        x = self.b_H.duplicate()
        self.ksp.solve(self.b_H, x)
        reason = self.ksp.getConvergedReason()
        if reason <= 0:
            raise RuntimeError(f"coarse solve failed: reason {reason}")
        u_h = np.zeros(len(self.free))
        u_h[self.free] = gather_vec(x, self.comm)
        x.destroy()
        u_fine = self.P_full @ u_h
        if self.element_bases is None:
            pieces = self.fine.restrict(u_fine)
        else:
            pieces = [phi @ u_h[nm.cells[k]] for k, phi in enumerate(self.element_bases)]
        return CoarseSolution(u_h, pieces, u_fine, self.ksp.getIterationNumber())

    def errors(self, sol: CoarseSolution, u_ref: np.ndarray) -> dict[str, float]:
        """Relative (broken) energy and L2 errors of ``sol`` against the fine ``u_ref``."""
        ref = self.fine.restrict(u_ref)
        e_a, e_m = self.fine.broken_norms([r - w for r, w in zip(ref, sol.pieces, strict=True)])
        n_a, n_m = self.fine.broken_norms(ref)
        return {"energy": e_a / n_a, "L2": e_m / n_m}
