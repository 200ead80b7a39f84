"""FE-HMM: homogenized limit, error decomposition, nonlinear Newton, MPI, errors.

References: the harmonic mean (1D), the periodic cell solver (2D two-phase cells), exact
homogenized tensors of layered media, manufactured homogenized solutions, and DNS on fine meshes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import ufl
from mpi4py import MPI

from multiscale.hmm import (
    DNS,
    HMM,
    Coefficient,
    MacroProblem,
    MicroProblem,
    MicroSettings,
    MonotoneFlux,
    RandomStationary,
    checkerboard,
    checkerboard_phase,
    compare,
    laminate,
    separable,
    smooth_layers,
    smooth_layers_tensor,
    smooth_periodic,
    two_phase_cell_tensor,
    unit_mesh,
)

SELF = MPI.COMM_SELF


def _rates(h, e):
    h, e = np.asarray(h, float), np.asarray(e, float)
    return np.log(e[1:] / e[:-1]) / np.log(h[1:] / h[:-1])


def _solve_hmm(comm, coefficient, H, settings, **kw):
    hmm = HMM(unit_mesh(comm, coefficient.dim, H), coefficient, settings, **kw)
    hmm.solve()
    return hmm


# -- homogenized limit -----------------------------------------------------------------------------
def test_1d_harmonic_mean(comm):
    """1D, periodic coupling, delta = eps: A_HMM is the harmonic mean and u_H the homogenized
    macro solution, to solver tolerance."""
    k1, k2, eps = 1.0, 10.0, 1 / 8
    hmm = _solve_hmm(comm, laminate(k1, k2, 1), 16, MicroSettings(eps, eps, n=8, snap=True))
    harmonic = 2 * k1 * k2 / (k1 + k2)
    assert np.allclose(hmm.tensors, harmonic, rtol=1e-12, atol=0)
    u_hmm = hmm.u.x.array.copy()
    u_hom = hmm.macro.solve_homogenized(np.array([[harmonic]])).x.array
    assert np.abs(u_hmm - u_hom).max() <= 1e-11 * np.abs(u_hom).max()
    hmm.destroy()


def test_2d_reproduces_cell_solver(comm):
    """2D checkerboard, periodic coupling, delta = eps and delta = 2 eps: every A_HMM(x_q) equals
    A_hom of the cell solver on the same mesh and u_H the homogenized solution, to 1e-10."""
    k1, k2, eps, n = 1.0, 10.0, 1 / 4, 16
    A_cell = two_phase_cell_tensor(SELF, 2, n, checkerboard_phase(), k1, k2)
    # between the Reuss and Voigt bounds (Dykhne's sqrt(k1 k2) is approached slowly: corners)
    assert 2 * k1 * k2 / (k1 + k2) < A_cell[0, 0] < 0.5 * (k1 + k2)
    for periods in (1, 2):
        settings = MicroSettings(periods * eps, eps, n=periods * n, snap=True)
        hmm = _solve_hmm(comm, checkerboard(k1, k2), 8, settings)
        assert np.abs(hmm.tensors - A_cell).max() <= 1e-10 * np.abs(A_cell).max()
        u_hmm = hmm.u.x.array.copy()
        u_hom = hmm.macro.solve_homogenized(A_cell).x.array
        assert np.abs(u_hmm - u_hom).max() <= 1e-10 * np.abs(u_hom).max()
        hmm.destroy()


# -- error decomposition ---------------------------------------------------------------------------
def test_macro_error_p1_rates(comm):
    """Exact micro (laminate, P1-exact cell solutions): the error against the manufactured
    homogenized solution u0 = sin(pi x) sin(pi y) falls like H in H1 and H^2 in L2."""
    k1, k2, eps = 1.0, 10.0, 1 / 8
    A = np.diag([2 * k1 * k2 / (k1 + k2), 0.5 * (k1 + k2)])

    def u0(x):
        return ufl.sin(math.pi * x[0]) * ufl.sin(math.pi * x[1])

    def f(x):
        return math.pi**2 * (A[0, 0] + A[1, 1]) * u0(x)

    Hs, l2, h1 = [4, 8, 16], [], []
    for H in Hs:
        hmm = _solve_hmm(comm, laminate(k1, k2, 2), H, MicroSettings(eps, eps, n=8, snap=True), f=f)
        assert np.allclose(hmm.tensors, A, rtol=1e-12, atol=1e-12)
        err = hmm.macro.errors_against(u0)
        l2.append(err["L2"])
        h1.append(err["H1"])
        hmm.destroy()
    h = 1.0 / np.array(Hs)
    assert np.all(_rates(h, h1) > 0.95), h1
    assert np.all(_rates(h, l2) > 1.9), l2


def test_micro_error_rate():
    """The micro discretization error of A_HMM falls like (h/eps)^2 (exact A_hom of smooth
    layers, 1D and 2D)."""
    for dim in (1, 2):
        errors, ns = [], [4, 8, 16]
        for n in ns:
            m = MicroProblem(SELF, smooth_layers(dim), MicroSettings(0.1, 0.1, n=n))
            A = m.effective_tensor(np.full(dim, 0.37))
            errors.append(np.abs(A - smooth_layers_tensor(dim)).max())
            m.destroy()
        assert np.all(_rates(1.0 / np.array(ns), errors) > 1.9), (dim, errors)


def test_resonance_error():
    """Dirichlet coupling: |A_D - A_hom| falls like eps/delta (rate 1 +- 0.15); periodic coupling
    with delta = k eps reproduces delta = eps to round-off (same h/eps)."""
    eps, xq = 0.1, np.array([0.43, 0.61])
    coef = smooth_periodic(2, 0.5)
    ref = MicroProblem(SELF, coef, MicroSettings(eps, eps, n=8, snap=True))
    A_ref = ref.effective_tensor(xq)
    ref.destroy()
    ks, dirichlet = [1, 2, 4], []
    for k in ks:
        for coupling in ("periodic", "dirichlet"):
            m = MicroProblem(
                SELF, coef, MicroSettings(k * eps, eps, n=8 * k, coupling=coupling, snap=True)
            )
            err = np.linalg.norm(m.effective_tensor(xq) - A_ref)
            m.destroy()
            if coupling == "periodic":
                assert err < 1e-11, (k, err)
            else:
                dirichlet.append(err)
    rates = _rates(1.0 / np.array(ks), dirichlet)
    assert np.all(np.abs(rates - 1.0) < 0.15), (dirichlet, rates)


def test_x_dependence_error_grows_with_delta():
    """a = (1 + x1) b(y): the collocated (frozen-x) micro problem gives c(x_q) B_hom for every
    delta = k eps; sampling the true x over K_delta adds an error that grows like delta^2."""
    eps, xq = 0.02, np.array([0.5, 0.5])
    fast = smooth_periodic(2, 0.5)
    coef = separable(lambda x: 1 + x[0], fast)
    B = MicroProblem(SELF, fast, MicroSettings(eps, eps, n=8)).effective_tensor(xq)
    ks, errs = [2, 4, 8], []
    for k in ks:
        frozen = MicroProblem(SELF, coef, MicroSettings(k * eps, eps, n=8 * k, freeze_x=True))
        assert np.abs(frozen.effective_tensor(xq) - 1.5 * B).max() < 1e-11
        free = MicroProblem(SELF, coef, MicroSettings(k * eps, eps, n=8 * k, freeze_x=False))
        errs.append(np.linalg.norm(free.effective_tensor(xq) - 1.5 * B))
        frozen.destroy()
        free.destroy()
    rates = _rates(np.array(ks, float), errs)
    assert np.all(rates > 1.8), (errs, rates)


def test_against_dns(comm):
    """Smooth layers (x-independent, exact A_hom): the DNS converges to the homogenized solution
    at rate ~1 in eps, and the HMM error against the DNS falls with eps (H = 16, delta = eps)."""
    A = smooth_layers_tensor(2)
    epss, to_hom, to_dns = [1 / 4, 1 / 8, 1 / 16], [], []
    for eps in epss:
        dns = DNS(comm, smooth_layers(2), eps, round(8 / eps))
        u_eps = dns.solve()
        fine = MacroProblem(unit_mesh(comm, 2, dns.n))
        u0 = fine.solve_homogenized(A)
        to_hom.append(compare(u0, dns.n, u_eps)["L2"])
        hmm = _solve_hmm(comm, smooth_layers(2), 16, MicroSettings(eps, eps, n=16))
        err = compare(hmm.u, 16, u_eps)
        to_dns.append(err["L2"] / err["L2_ref"])
        hmm.destroy()
    rates = _rates(epss, to_hom)
    assert np.all((rates > 0.8) & (rates < 1.3)), (to_hom, rates)
    assert to_dns[0] > to_dns[1] > to_dns[2], to_dns
    assert to_dns[-1] < 0.05, to_dns


# -- nonlinear -------------------------------------------------------------------------------------
@pytest.mark.parametrize("coupling,inner", [("periodic", 1.0), ("dirichlet", 0.5)])
def test_nonlinear_tangent_matches_finite_differences(coupling, inner):
    """dQ/dG from the linearized micro problems equals central differences of Q (rel 1e-6)."""
    coef = MonotoneFlux(separable(lambda x: 1 + x[0], smooth_periodic(2, 0.5)), 1.0)
    m = MicroProblem(SELF, coef, MicroSettings(0.2, 0.1, n=16, coupling=coupling, inner=inner))
    xq, G, h = np.array([0.3, 0.6]), np.array([0.7, -0.4]), 1e-5
    _, T = m.solve(xq, G)
    fd = np.column_stack(
        [(m.solve(xq, G + h * e)[0] - m.solve(xq, G - h * e)[0]) / (2 * h) for e in np.eye(2)]
    )
    assert np.abs(T - fd).max() < 1e-6 * np.abs(T).max()
    m.destroy()


def test_nonlinear_hmm_quadratic_and_dns(comm):
    """Macro Newton converges quadratically (observed order >= 1.8 in the residual history) and
    the nonlinear HMM matches the nonlinear DNS within O(eps + H^2)."""
    eps = 1 / 8
    coef = MonotoneFlux(smooth_layers(2), 1.0)
    hmm = _solve_hmm(comm, coef, 8, MicroSettings(eps, eps, n=8), f=4.0)
    r = np.array(hmm.residual_history)
    assert r[-1] < 1e-10 * r[0]
    k = np.nonzero((r[1:-1] < 1e-2 * r[0]) & (r[2:] > 1e-14 * r[0]))[0] + 1
    orders = np.log(r[k + 1] / r[k]) / np.log(r[k] / r[k - 1])
    assert orders.size and orders.max() > 1.8, (r, orders)
    dns = DNS(comm, coef, eps, 64, f=4.0)
    err = compare(hmm.u, 8, dns.solve())
    assert dns.residual_history[-1] < 1e-10 * dns.residual_history[0]
    assert err["L2"] / err["L2_ref"] < eps / 2, err
    hmm.destroy()


# -- MPI, random media, errors ---------------------------------------------------------------------
@pytest.mark.mpi
def test_ranks_agree(comm):
    """The HMM solution on all ranks equals the one every rank computes alone."""
    coef = separable(lambda x: 1 + 0.5 * ufl.sin(2 * math.pi * x[1]), smooth_periodic(2, 0.5))
    settings = MicroSettings(0.125, 0.125, n=8)
    norms = []
    for c in (comm, SELF):
        hmm = _solve_hmm(c, coef, 8, settings)
        fine = MacroProblem(unit_mesh(c, 2, 16))
        fine.u.x.array[:] = 0.0
        norms.append(compare(hmm.u, 8, fine.u)["L2"])
        stats = hmm.statistics()
        assert stats["pool"]["total_solves"] == 128
        hmm.destroy()
    assert abs(norms[0] - norms[1]) < 1e-12 * norms[1]


def test_random_stationary_reproducible():
    """A seeded random field gives the same tensor twice, another seed another one; the
    Dirichlet tensor is positive definite and lies below the arithmetic mean (Voigt)."""
    xq = np.array([0.4, 0.4])
    s = MicroSettings(0.4, 0.1, n=16, coupling="dirichlet")
    tensors = []
    for seed in (1, 1, 2):
        m = MicroProblem(SELF, RandomStationary(2, seed=seed), s)
        tensors.append(m.effective_tensor(xq))
        m.destroy()
    assert np.array_equal(tensors[0], tensors[1])
    assert np.abs(tensors[0] - tensors[2]).max() > 1e-3
    assert np.linalg.eigvalsh(0.5 * (tensors[0] + tensors[0].T)).min() > 0


def test_bad_input_raises_clearly(comm):
    with pytest.raises(ValueError, match="delta >= eps"):
        MicroSettings(0.05, 0.1)
    with pytest.raises(ValueError, match="coupling"):
        MicroSettings(0.1, 0.1, coupling="neumann")
    with pytest.raises(ValueError, match="positive"):
        laminate(-1.0, 1.0, 2)
    negative = Coefficient(lambda x, y: ufl.sin(2 * math.pi * y[0]), 2, x_dependent=False)
    hmm = HMM(unit_mesh(comm, 2, 2), negative, MicroSettings(0.1, 0.1, n=4))
    with pytest.raises(RuntimeError, match="not positive definite"):
        hmm.solve()
    hmm.destroy()
    nan = Coefficient(lambda x, y: ufl.sqrt(-1.0 - y[0] ** 2), 2, x_dependent=False)
    hmm = HMM(unit_mesh(comm, 2, 2), nan, MicroSettings(0.1, 0.1, n=4))
    with pytest.raises(RuntimeError, match="NaN"):
        hmm.solve()
    hmm.destroy()


def test_cli_writes_summary(comm, tmp_path):
    """``multiscale hmm CONFIG`` (TOML) solves, compares with DNS and the homogenized solution
    and writes the JSON summary atomically on rank 0."""
    import json

    from multiscale.cli import main

    base = comm.bcast(str(tmp_path) if comm.rank == 0 else None, root=0)
    cfg, out = f"{base}/hmm.toml", f"{base}/out/hmm.json"
    if comm.rank == 0:
        with open(cfg, "w") as fh:
            fh.write(
                "dim = 2\neps = 0.25\n"
                '[coefficient]\ntype = "laminate"\nk1 = 1.0\nk2 = 4.0\n'
                "[macro]\nn = 8\n"
                '[micro]\nn = 8\ncoupling = "periodic"\nsnap = true\n'
                "[dns]\nn = 32\n[homogenized]\nn = 32\n"
            )
    comm.Barrier()
    assert main(["-q", "hmm", cfg, "--json", out]) == 0
    if comm.rank == 0:
        with open(out) as fh:
            summary = json.load(fh)
        assert summary["statistics"]["pool"]["total_solves"] == 128
        assert 0 < summary["error_vs_dns"]["L2_relative"] < 0.25  # O(eps), eps = 1/4
        assert 0 < summary["error_vs_homogenized"]["L2_relative"] < 0.06
        assert np.allclose(summary["mean_effective_tensor"], np.diag([1.6, 2.5]), rtol=1e-12)
    assert main(["-q", "hmm", f"{base}/missing.yaml"]) == 2
