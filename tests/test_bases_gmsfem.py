"""GMsFEM (Efendiev, Galvis & Hou 2013) on high-contrast channel fields, against the fully
resolved fine solution (MUMPS), dense LAPACK eigenvalues of the local problems, and the same
computation on one rank.

The field (:func:`~multiscale.bases.channel_field`): coarse 5x5 mesh of :math:`[0,1]^2`,
``m`` horizontal channels of one fine cell width in the even coarse rows, so that every coarse
neighbourhood (boundary ones included, the number of coarse rows being odd) holds exactly ``m``
channel pieces, none touching :math:`\\partial\\Omega`.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp
from mpi4py import MPI

from multiscale.bases import (
    FineProblem,
    GMsFEMParameters,
    NestedMeshes,
    channel_field,
    gmsfem_basis,
    gmsfem_errors,
    gmsfem_space,
    unit_square_pair,
)
from multiscale.bases.gmsfem import _star_matrix, kappa_tilde_factor
from multiscale.coupling.pool import MicroPool
from multiscale.nonlinear import direct_solver_options

pytestmark = pytest.mark.mpi

N_COARSE, RATIO = 5, 12  # H = 1/5, h = 1/60: channel centres on fine grid lines for m <= 3
CONTRASTS = (1e2, 1e3, 1e4, 1e5, 1e6)


def channel_problem(
    comm, m: int, eta: float, *, n_coarse=N_COARSE, ratio=RATIO, width=None, pool=None
):
    """Channels one fine cell wide (or ``width``), ending two fine cells before the boundary."""
    h = 1.0 / (n_coarse * ratio)
    field = channel_field(n_coarse, m, eta, width=width or h, margin=2 * h)
    meshes = NestedMeshes(*unit_square_pair(comm, n_coarse, ratio))
    return FineProblem(
        meshes, field, 1.0, pool=pool, petsc_options=direct_solver_options(symmetric=True)
    )


def report(*lines: str) -> None:
    if MPI.COMM_WORLD.rank == 0:
        print("\n" + "\n".join(lines))


def solve_errors(fine: FineProblem, basis, n_basis, u_ref) -> dict[str, float]:
    with gmsfem_space(fine, basis, n_basis) as space:
        return gmsfem_errors(space, space.solve(), u_ref)


def away_from_boundary(fine: FineProblem) -> np.ndarray:
    """Coarse vertices whose neighbourhood does not touch :math:`\\partial\\Omega`."""
    nm = fine.meshes
    touches = (nm.incidence.T @ (nm.incidence @ (~nm.free).astype(float))) > 0
    return ~touches


# -- the local spectral problems ------------------------------------------------------------------
@pytest.mark.parametrize("m", [1, 2, 3])
def test_small_eigenvalues_count_channels(comm, m):
    """``m`` channels in every neighbourhood: exactly ``m`` eigenvalues of order
    :math:`1/\\eta` (the constant, :math:`\\lambda_1 = 0`, among them where
    :math:`\\omega_i` does not touch :math:`\\partial\\Omega`), then a gap growing like
    :math:`\\eta` to :math:`\\lambda_{m+1}`, which does not depend on :math:`\\eta`."""
    lam = {}
    for eta in (1e4, 1e6):
        fine = channel_problem(comm, m, eta)
        ev = gmsfem_basis(fine, GMsFEMParameters(n_eigen=m + 2)).eigenvalues
        lam[eta] = ev
        inner = away_from_boundary(fine)
        assert inner.sum() == 4
        assert np.abs(ev[inner, 0]).max() <= 1e-10 * ev[inner, m].min()
    small = {eta: float(ev[:, m - 1].max()) for eta, ev in lam.items()}
    nxt = {eta: float(ev[:, m].min()) for eta, ev in lam.items()}
    gap = {eta: float((ev[:, m] / ev[:, m - 1].clip(min=1e-300)).min()) for eta, ev in lam.items()}
    report(
        f"m = {m}: max_i lambda_m = {small}, min_i lambda_(m+1) = {nxt}, "
        f"min_i lambda_(m+1)/lambda_m = {gap}"
    )
    assert gap[1e4] >= 30 and gap[1e6] >= 1e3
    assert 50 <= gap[1e6] / gap[1e4] <= 150  # the gap grows like eta
    assert 0.5e-2 <= small[1e6] / small[1e4] <= 2e-2  # lambda_m = O(1/eta)
    assert abs(nxt[1e6] / nxt[1e4] - 1) < 0.05  # Lambda* bounded independently of eta


@pytest.mark.serial_only
def test_eigenvalues_against_lapack():
    """SLEPc (shift-and-invert, MUMPS) against dense ``scipy.linalg.eigh`` on the same local
    Neumann/Dirichlet pencils (two neighbourhoods: one not touching the boundary, a corner)."""
    m = 2
    fine = channel_problem(MPI.COMM_SELF, m, 1e6)
    basis = gmsfem_basis(fine, GMsFEMParameters(n_eigen=5))
    nm, els = fine.meshes, fine.elements
    c_k, m_kappa = kappa_tilde_factor(nm.vertices, nm.cells), fine.coefficient_mass()
    star = sp.csc_matrix(nm.incidence)
    centre = int(np.argmin(((nm.vertices - 0.4) ** 2).sum(axis=1)))
    corner = int(np.argmin((nm.vertices**2).sum(axis=1)))
    for i in (centre, corner):
        elems = star.indices[star.indptr[i] : star.indptr[i + 1]]
        closure = basis.dofs[i]
        free = ~nm.on_boundary[closure]
        dofs = [els[k].dofs for k in elems]
        a = _star_matrix([els[k].stiffness for k in elems], dofs, closure)[free][:, free]
        s = _star_matrix([c_k[k] * m_kappa[k] for k in elems], dofs, closure)[free][:, free]
        ref = sla.eigh(a.toarray(), s.toarray(), eigvals_only=True, subset_by_index=[0, 4])
        got = basis.eigenvalues[i]
        report(f"vertex {i}: SLEPc {got}, LAPACK {ref}")
        assert np.abs(got - ref).max() <= 1e-8 * ref[m]
        assert np.abs(got[:m] - ref[:m]).max() <= 1e-6 * max(ref[m - 1], 1e-12)


# -- errors against the fine solution ----------------------------------------------------------
def test_contrast_robust_with_m_functions(comm):
    """With :math:`L = m` functions per vertex the energy error stays within a factor 2 from
    :math:`\\eta = 10^2` to :math:`10^6`; with :math:`L = 1` the coarse solution loses the
    solution (energy error close to 1, weighted :math:`L^2` error up by more than 5x)."""
    m = 2
    rows = []
    for eta in CONTRASTS:
        fine = channel_problem(comm, m, eta)
        u = fine.solve()
        basis = gmsfem_basis(fine, GMsFEMParameters(n_eigen=m + 2))
        errs = [solve_errors(fine, basis, n, u) for n in (1, m, m + 1)]
        rows.append((eta, *errs))
    report(
        "eta      | L=1 energy  wL2    | L=m energy  wL2    | L=m+1 energy  wL2",
        *(
            f"{eta:8.0e} | {a['energy']:.4f} {a['weighted_L2']:.4f}  | "
            f"{b['energy']:.4f} {b['weighted_L2']:.4f}  | {c['energy']:.4f} {c['weighted_L2']:.4f}"
            for eta, a, b, c in rows
        ),
    )
    one = np.array([r[1]["energy"] for r in rows])
    one_w = np.array([r[1]["weighted_L2"] for r in rows])
    rob = np.array([r[2]["energy"] for r in rows])
    rob1 = np.array([r[3]["energy"] for r in rows])
    assert rob.max() / rob.min() <= 2.0
    assert rob1.max() / rob1.min() <= 2.0
    assert one[-1] >= 0.99 and one[-1] / one[0] >= 1.9
    assert one_w[-1] / one_w[0] >= 5.0
    assert np.all(rob <= one * (1 + 1e-9))


def test_error_falls_with_basis_functions(comm):
    """Energy error (nested spaces: non-increasing) and weighted :math:`L^2` error against the
    number of functions per vertex, with :math:`\\Lambda^* = \\min_i\\lambda_{i,L+1}`;
    :math:`\\|e\\|_a\\sqrt{\\Lambda^*}` stays bounded once :math:`L \\ge m`."""
    m, n_max = 2, 5
    fine = channel_problem(comm, m, 1e6)
    u = fine.solve()
    basis = gmsfem_basis(fine, GMsFEMParameters(n_eigen=n_max + 1))
    table = []
    for n in range(1, n_max + 1):
        e = solve_errors(fine, basis, n, u)
        table.append((n, e["energy"], e["weighted_L2"], float(basis.lambda_star(n).min())))
    report(
        "L | energy   weighted L2 | Lambda* = min_i lambda_(L+1) | energy*sqrt(Lambda*)",
        *(
            f"{n} | {a:.4f}   {w:.4f}      | {s:10.4g}                   | {a * s**0.5:.3f}"
            for n, a, w, s in table
        ),
    )
    energy = np.array([t[1] for t in table])
    lam_star = np.array([t[3] for t in table])
    assert np.all(np.diff(energy) <= 1e-9 * energy[:-1])
    assert np.all(energy[1 : m + 2] <= 0.75 * energy[: m + 1])
    assert energy[-1] <= 0.2
    assert np.all(np.diff(lam_star) > 0)
    assert np.all(energy[m - 1 :] * np.sqrt(lam_star[m - 1 :]) <= 1.5)


@pytest.mark.serial_only
def test_coarse_equal_to_fine():
    """Coarse mesh = fine mesh: every neighbourhood is a fine vertex star, so
    :math:`I_h(\\chi_i\\psi_{i,1}) = \\psi_{i,1}(z_i)\\varphi_i` and :math:`L = 1` gives
    :math:`V_h` itself (the functions of boundary vertices vanish and are dropped): the
    GMsFEM solution is the fine one."""
    fine = channel_problem(MPI.COMM_SELF, 1, 1e3, n_coarse=9, ratio=1, width=0.4 / 9)
    u = fine.solve()
    basis = gmsfem_basis(fine, GMsFEMParameters(n_eigen=2))
    with gmsfem_space(fine, basis, 1) as space:
        sol = space.solve()
        assert space.P.getSize()[1] == int(fine.meshes.free.sum())
    diff = float(np.abs(sol.u_fine - u).max() / np.abs(u).max())
    report(f"coarse = fine (9x9): max |u_H - u_h| / max |u_h| = {diff:.2e}")
    assert diff < 1e-10


# -- ranks ----------------------------------------------------------------------------------------
def test_rank_count_independent(comm):
    """Fine mesh distributed and neighbourhoods spread over ``comm``'s ranks vs one rank: the
    same eigenvalues and the same fine representation :math:`Pu_H` (the coefficients
    :math:`u_H` may differ by rotations inside near-degenerate eigenspaces)."""
    m = 2
    pool = MicroPool(comm)
    par = channel_problem(comm, m, 1e4, pool=pool)
    ser = channel_problem(MPI.COMM_SELF, m, 1e4)
    b_par = gmsfem_basis(par, GMsFEMParameters(n_eigen=m + 2))
    b_ser = gmsfem_basis(ser, GMsFEMParameters(n_eigen=m + 2))
    scale = float(b_ser.eigenvalues[:, m].max())
    d_eig = float(np.abs(b_par.eigenvalues - b_ser.eigenvalues).max() / scale)
    with gmsfem_space(par, b_par, m) as sp_par, gmsfem_space(ser, b_ser, m) as sp_ser:
        u_par, u_ser = sp_par.solve().u_fine, sp_ser.solve().u_fine
    # the fine dofs are numbered differently on 1 and on several ranks: match coordinates
    o_par, o_ser = (np.lexsort(np.round(f.meshes.x.T[::-1], 9)) for f in (par, ser))
    assert np.abs(par.meshes.x[o_par] - ser.meshes.x[o_ser]).max() < 1e-12
    d_u = float(np.abs(u_par[o_par] - u_ser[o_ser]).max() / np.abs(u_ser).max())
    mine = len(pool.own_tasks(par.meshes.n_vertices))
    report(f"{comm.size} ranks vs 1: eigenvalues {d_eig:.1e}, P u_H {d_u:.1e}; tasks here {mine}")
    assert d_eig < 1e-9 and d_u < 1e-9
    assert mine > 0
