"""Multiscale bases (MsFEM, MsFEM with oversampling, LOD) against independent references.

References: closed-form solutions of 1D problems (piecewise-constant random coefficient;
:math:`A = (2-\\cos 2\\pi x/\\varepsilon)^{-1}`), the fully resolved fine solution, and the same
computation on one rank.
"""

from __future__ import annotations

import dolfinx
import numpy as np
import pytest
import ufl
from mpi4py import MPI

from multiscale.bases import (
    FineProblem,
    LODParameters,
    MsFEMParameters,
    NestedMeshes,
    hou_wu,
    lod_space,
    msfem_space,
    quasi_interpolation,
    unit_interval_pair,
    unit_square_pair,
)
from multiscale.bases.lod import lod_prolongation
from multiscale.coupling.pool import MicroPool

pytestmark = pytest.mark.mpi


def cellwise(values: np.ndarray):
    """A DG0 coefficient on the unit interval: ``values[i]`` on ``(i/n, (i+1)/n)``."""

    def a(mesh: dolfinx.mesh.Mesh):
        space = dolfinx.fem.functionspace(mesh, ("DG", 0))
        w = dolfinx.fem.Function(space)
        imap = mesh.topology.index_map(1)
        cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
        mid = dolfinx.mesh.compute_midpoints(mesh, 1, cells)[:, 0]
        w.x.array[space.dofmap.list[:, 0]] = values[np.floor(mid * len(values)).astype(int)]
        return w

    return a


def fine_problem(comm, pair, n_coarse, m, coefficient, pool=None) -> FineProblem:
    return FineProblem(NestedMeshes(*pair(comm, n_coarse, m)), coefficient, 1.0, pool=pool)


def report(*lines: str) -> None:
    if MPI.COMM_WORLD.rank == 0:
        print("\n" + "\n".join(lines))


# -- 1D: nodal exactness --------------------------------------------------------------------
def piecewise_exact(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """:math:`-(a u')' = 1`, :math:`u(0) = u(1) = 0`, :math:`a` = ``values`` on ``n`` equal
    cells: :math:`u' = (C - x)/a`, integrated exactly cell by cell."""
    n = len(values)
    t = np.linspace(0.0, 1.0, n + 1)
    h, q = np.diff(t), np.diff(t**2) / 2
    c = np.sum(q / values) / np.sum(h / values)
    nodes = np.concatenate([[0.0], np.cumsum((c * h - q) / values)])
    i = np.minimum((x * n).astype(int), n - 1)
    return nodes[i] + (c * (x - t[i]) - (x**2 - t[i] ** 2) / 2) / values[i]


@pytest.mark.parametrize("oversampling", [0, 1, 2])
def test_msfem_1d_nodally_exact(comm, oversampling):
    """MsFEM (and MsFEM with oversampling, whose restricted space is again the space of
    discrete a-harmonic functions on each element) is exact at the coarse nodes for a random
    log-normal cell-wise coefficient of contrast ~1e4."""
    values = np.exp(1.5 * np.random.default_rng(3).standard_normal(1024))
    fine = fine_problem(comm, unit_interval_pair, 16, 64, cellwise(values))
    sol = msfem_space(fine, MsFEMParameters(oversampling)).solve()
    exact = piecewise_exact(values, fine.meshes.vertices[:, 0])
    err = np.abs(sol.u_H - exact).max() / np.abs(exact).max()
    report(
        f"1D MsFEM (oversampling {oversampling}): nodal error {err:.2e}, contrast "
        f"{values.max() / values.min():.1e}"
    )
    assert err < 1e-10


# -- coarse mesh = fine mesh ------------------------------------------------------------------
@pytest.mark.parametrize(
    "method",
    [
        lambda f: msfem_space(f),
        lambda f: msfem_space(f, MsFEMParameters(1)),
        lambda f: lod_space(f, LODParameters(2)),
    ],
    ids=["msfem", "msfem-oversampling", "lod"],
)
def test_coarse_equal_to_fine(comm, method):
    fine = fine_problem(comm, unit_square_pair, 16, 1, hou_wu(1 / 4))
    u = fine.solve()
    space = method(fine)
    sol = space.solve()
    err = np.abs(sol.u_fine - u).max() / np.abs(u).max()
    report(f"coarse = fine: max difference {err:.2e}, energy {space.errors(sol, u)['energy']:.2e}")
    assert err < 1e-9
    assert space.errors(sol, u)["energy"] < 1e-9


# -- MsFEM resonance --------------------------------------------------------------------------
def test_msfem_resonance_and_oversampling(comm):
    """Fixed H = 1/8, eps = H/r, fine h = eps/8: without oversampling the energy error grows as
    H/eps -> 1 (resonance); with one layer of oversampling it is smaller and nearly flat."""
    rows = []
    for r in (2.0, 1.5, 1.0):
        eps = 1 / (8 * r)
        fine = fine_problem(comm, unit_square_pair, 8, round(8 * r), hou_wu(eps))
        u = fine.solve()
        errs = []
        for layers in (0, 1):
            space = msfem_space(fine, MsFEMParameters(layers))
            errs.append(space.errors(space.solve(), u)["energy"])
        rows.append((r, *errs))
    plain = np.array([e for _, e, _ in rows])
    over = np.array([e for _, _, e in rows])
    excess = np.sqrt(plain**2 - over**2)
    rate = np.polyfit(np.log([r for r, _, _ in rows]), np.log(excess), 1)[0]
    report(
        "H/eps | MsFEM energy error | with oversampling (1 layer)",
        *(f"{r:5.2f} | {a:.4f} | {b:.4f}" for r, a, b in rows),
        f"excess sqrt(plain^2 - over^2) ~ (H/eps)^{rate:.2f}",
    )
    assert plain[0] < plain[1] < plain[2]  # grows as H approaches eps
    assert plain[2] > 1.1 * plain[0]
    assert np.all(over < 0.8 * plain)
    assert over[2] < 0.7 * plain[2]
    assert over.max() < 1.1 * over.min()  # no resonance left


# -- LOD ----------------------------------------------------------------------------------------
def test_lod_basis_in_kernel_complement(comm):
    """:math:`I_H` is a projection onto :math:`V_H` (:math:`I_H\\lambda_z = \\lambda_z`) and the
    localized correctors lie in :math:`\\ker I_H`, so :math:`I_H\\phi_z = \\lambda_z` for every
    :math:`k`."""
    fine = fine_problem(comm, unit_square_pair, 4, 4, hou_wu(1 / 4))
    nm = fine.meshes
    c = quasi_interpolation(fine)[nm.free]
    identity = np.eye(nm.n_coarse)
    for layers in (0, 1):
        p = lod_prolongation(fine, LODParameters(layers))[:, nm.free].toarray()
        p[nm.on_boundary] = 0.0
        assert np.abs(c @ p - identity).max() < 1e-10


def oscillating_1d(eps: float):
    """:math:`A(x) = (2 - \\cos 2\\pi x/\\varepsilon)^{-1}`."""

    def a(mesh: dolfinx.mesh.Mesh):
        return 1 / (2 - ufl.cos(2 * np.pi / eps * ufl.SpatialCoordinate(mesh)[0]))

    return a


def energy_error_closed_form(eps: float, x: np.ndarray, w: np.ndarray) -> float:
    """Relative :math:`\\|A^{1/2}(u - w)'\\|` for the piecewise linear ``w`` (nodal values at
    ``x``), :math:`u' = (C - x)(2 - \\cos\\omega x)`, :math:`\\omega = 2\\pi/\\varepsilon`, with
    :math:`C` from :math:`u(1) = 0`:
    :math:`u(1) = 2C - 1 - C\\sin\\omega/\\omega + \\sin\\omega/\\omega
    + (\\cos\\omega-1)/\\omega^2`.
    Gauss quadrature (8 points per fine cell, the cells far below eps)."""
    om = 2 * np.pi / eps
    s, c = np.sin(om) / om, (np.cos(om) - 1) / om**2
    big_c = (1 - s - c) / (2 - s)
    order = np.argsort(x)
    x, w = x[order], w[order]
    gx, gw = np.polynomial.legendre.leggauss(8)
    half = np.diff(x)[:, None] / 2
    xq = (x[1:] + x[:-1])[:, None] / 2 + half * gx
    du = (big_c - xq) * (2 - np.cos(om * xq))
    slope = (np.diff(w) / np.diff(x))[:, None]
    inv_a = 1 / (2 - np.cos(om * xq))
    err = np.sum(half * gw * (du - slope) ** 2 * inv_a)
    return float(np.sqrt(err / np.sum(half * gw * du**2 * inv_a)))


def test_lod_1d_rate_closed_form(comm):
    """Energy error of LOD (k = 3) against the closed-form solution, eps = 1/64, h = eps/256."""
    eps, n = 1 / 64, 16384
    hs, errs = [], []
    for n_coarse in (4, 8, 16, 32):
        fine = fine_problem(comm, unit_interval_pair, n_coarse, n // n_coarse, oscillating_1d(eps))
        sol = lod_space(fine, LODParameters(3)).solve()
        hs.append(1 / n_coarse)
        errs.append(energy_error_closed_form(eps, fine.meshes.x[:, 0], sol.u_fine))
    floor = energy_error_closed_form(eps, fine.meshes.x[:, 0], fine.solve())
    rates = np.diff(np.log(errs)) / np.diff(np.log(hs))
    report(
        "1D LOD (k=3) vs closed form: H, relative energy error",
        *(f"1/{round(1 / h)}  {e:.4e}" for h, e in zip(hs, errs, strict=True)),
        f"rates {np.round(rates, 2)}, fine-scale FE error {floor:.2e}",
    )
    assert np.all(rates >= 0.9)
    assert floor < 0.5 * errs[-1]


def test_lod_1d_exponential_decay(comm):
    """Localization error :math:`\\|u_k - u_{ideal}\\|_a` (ideal: patches = whole domain)."""
    fine = fine_problem(comm, unit_interval_pair, 16, 256, oscillating_1d(1 / 64))
    ideal = lod_space(fine, LODParameters(16)).solve()
    norm = fine.broken_norms(fine.restrict(ideal.u_fine))[0]
    errs = []
    for k in (1, 2, 3, 4):
        sol = lod_space(fine, LODParameters(k)).solve()
        errs.append(fine.broken_norms(fine.restrict(sol.u_fine - ideal.u_fine))[0] / norm)
    factors = np.array(errs[:-1]) / np.array(errs[1:])
    report(
        "1D LOD localization error vs k (H = 1/16): "
        + ", ".join(f"k={k}: {e:.2e}" for k, e in zip((1, 2, 3, 4), errs, strict=True)),
        f"decay factor per layer {np.round(factors, 1)}",
    )
    assert np.all(factors >= 4.0)


def test_lod_2d_against_fine(comm):
    """Hou–Wu coefficient, eps = 1/16, h = eps/4, k = 2: O(H) with no resonance; MsFEM at the
    same H for comparison."""
    rows = []
    for n_coarse in (4, 8, 16):
        fine = fine_problem(comm, unit_square_pair, n_coarse, 64 // n_coarse, hou_wu(1 / 16))
        u = fine.solve()
        lod, ms = lod_space(fine, LODParameters(2)), msfem_space(fine)
        rows.append(
            (n_coarse, lod.errors(lod.solve(), u)["energy"], ms.errors(ms.solve(), u)["energy"])
        )
    lod_err = np.array([r[1] for r in rows])
    rates = -np.diff(np.log(lod_err)) / np.log(2.0)
    report(
        "2D, eps = 1/16: H | LOD (k=2) energy error | MsFEM energy error",
        *(f"1/{n} | {a:.4f} | {b:.4f}" for n, a, b in rows),
        f"LOD rates {np.round(rates, 2)}",
    )
    assert np.all(rates >= 0.9)
    assert all(a < 0.5 * b for _, a, b in rows[1:])


def test_not_nested_rejected(comm):
    coarse = dolfinx.mesh.create_unit_square(MPI.COMM_SELF, 4, 4)
    with pytest.raises(ValueError, match="does not refine"):
        NestedMeshes(coarse, dolfinx.mesh.create_unit_square(comm, 6, 6))


# -- ranks ----------------------------------------------------------------------------------------
def test_rank_count_independent(comm):
    """The coarse solutions on ``comm`` (mesh and local problems distributed) equal those of the
    same problem on one rank."""
    pool = MicroPool(comm)
    par = fine_problem(comm, unit_square_pair, 4, 4, hou_wu(1 / 4), pool=pool)
    ser = fine_problem(MPI.COMM_SELF, unit_square_pair, 4, 4, hou_wu(1 / 4))
    methods = {
        "msfem": lambda f: msfem_space(f),
        "oversampling": lambda f: msfem_space(f, MsFEMParameters(1)),
        "lod": lambda f: lod_space(f, LODParameters(1)),
    }
    diffs = {}
    for name, make in methods.items():
        a, b = make(par).solve().u_H, make(ser).solve().u_H
        diffs[name] = float(np.abs(a - b).max() / np.abs(b).max())
    solves = pool.statistics().solves
    report(f"{comm.size} ranks vs 1: {diffs}; local problems per rank {solves}")
    assert max(diffs.values()) < 1e-9
    assert min(solves) > 0
