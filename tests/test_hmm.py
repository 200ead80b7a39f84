"""FE-HMM: homogenized limit, error decomposition, nonlinear Newton, MPI, errors.

References: the harmonic mean (1D), the periodic cell solver (2D two-phase cells), exact
homogenized tensors of layered media, manufactured homogenized solutions, and DNS on fine meshes.
Micro failures on one rank cut the macro load step on every rank.
"""

from __future__ import annotations

import gc
import math

import dolfinx
import numpy as np
import pytest
import ufl
from mpi4py import MPI
from newton_rates import assert_quadratic

from multiscale.coupling import MicroSolveError, PointProbe, grid_points
from multiscale.hmm import (
    Coefficient,
    DNSProblem,
    HMMProblem,
    MacroProblem,
    MicroSettings,
    MonotoneFlux,
    RandomStationary,
    SamplingProblem,
    checkerboard,
    checkerboard_phase,
    compare,
    laminate,
    separable,
    smooth_layers,
    smooth_layers_tensor,
    smooth_periodic,
    two_phase_cell_tensor,
)
from multiscale.mesh import unit_mesh
from multiscale.nonlinear import CollectiveError, LoadStepError

SELF = MPI.COMM_SELF


def _rates(h, e):
    h, e = np.asarray(h, float), np.asarray(e, float)
    return np.log(e[1:] / e[:-1]) / np.log(h[1:] / h[:-1])


def _solve_hmm(comm, coefficient, H, settings, **kw):
    hmm = HMMProblem(unit_mesh(comm, coefficient.dim, H), coefficient, settings, **kw)
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
            m = SamplingProblem(SELF, smooth_layers(dim), MicroSettings(0.1, 0.1, n=n))
            A = m.effective_tensor(np.full(dim, 0.37))
            errors.append(np.abs(A - smooth_layers_tensor(dim)).max())
            m.destroy()
        assert np.all(_rates(1.0 / np.array(ns), errors) > 1.9), (dim, errors)


def test_resonance_error():
    """Dirichlet coupling: |A_D - A_hom| falls like eps/delta (rate 1 +- 0.15); periodic coupling
    with delta = k eps reproduces delta = eps to round-off (same h/eps)."""
    eps, xq = 0.1, np.array([0.43, 0.61])
    coef = smooth_periodic(2, 0.5)
    ref = SamplingProblem(SELF, coef, MicroSettings(eps, eps, n=8, snap=True))
    A_ref = ref.effective_tensor(xq)
    ref.destroy()
    ks, dirichlet = [1, 2, 4], []
    for k in ks:
        for coupling in ("periodic", "dirichlet"):
            m = SamplingProblem(
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
    B = SamplingProblem(SELF, fast, MicroSettings(eps, eps, n=8)).effective_tensor(xq)
    ks, errs = [2, 4, 8], []
    for k in ks:
        frozen = SamplingProblem(SELF, coef, MicroSettings(k * eps, eps, n=8 * k, freeze_x=True))
        assert np.abs(frozen.effective_tensor(xq) - 1.5 * B).max() < 1e-11
        free = SamplingProblem(SELF, coef, MicroSettings(k * eps, eps, n=8 * k, freeze_x=False))
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
        dns = DNSProblem(comm, smooth_layers(2), eps, round(8 / eps))
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
    m = SamplingProblem(SELF, coef, MicroSettings(0.2, 0.1, n=16, coupling=coupling, inner=inner))
    xq, G, h = np.array([0.3, 0.6]), np.array([0.7, -0.4]), 1e-5
    T = m.solve(xq, G).tangent
    fd = np.column_stack(
        [(m.solve(xq, G + h * e).flux - m.solve(xq, G - h * e).flux) / (2 * h) for e in np.eye(2)]
    )
    assert np.abs(T - fd).max() < 1e-6 * np.abs(T).max()
    m.destroy()


def test_nonlinear_hmm_quadratic_and_dns(comm):
    """Macro and DNS Newton converge quadratically (normalized quadratic constants <= 10 in the
    asymptotic range) and the nonlinear HMM matches the nonlinear DNS within O(eps + H^2)."""
    eps = 1 / 8
    coef = MonotoneFlux(smooth_layers(2), 1.0)
    hmm = _solve_hmm(comm, coef, 8, MicroSettings(eps, eps, n=8), f=4.0)
    r = hmm.residual_history
    assert r[-1] < 1e-10 * r[0], r
    assert_quadratic(r)
    stats = hmm.statistics()
    assert stats["load_factors"] == [1.0] and stats["failed_attempts"] == 0
    # warm starts: fewer micro Newton iterations than solves times the iterations from zero
    assert stats["micro_newton_iterations"] < 4 * stats["pool"]["solves_total"], stats
    dns = DNSProblem(comm, coef, eps, 64, f=4.0)
    err = compare(hmm.u, 8, dns.solve())
    assert dns.residual_history[-1] < 1e-10 * dns.residual_history[0]
    assert_quadratic(dns.residual_history)
    assert err["L2"] / err["L2_ref"] < eps / 2, err
    hmm.destroy()
    dns.destroy()


# -- MPI, random media, errors ---------------------------------------------------------------------
@pytest.mark.mpi
def test_ranks_agree(comm):
    """The HMM solution on all ranks equals the one every rank computes alone, at a grid of
    points (to 1e-12 relative)."""
    coef = separable(lambda x: 1 + 0.5 * ufl.sin(2 * math.pi * x[1]), smooth_periodic(2, 0.5))
    settings = MicroSettings(0.125, 0.125, n=8)
    points = grid_points([0.0, 0.0], [1.0, 1.0], 13)
    values = []
    for c in (comm, SELF):
        hmm = _solve_hmm(c, coef, 8, settings)
        values.append(PointProbe(hmm.u.function_space.mesh, points).eval(hmm.u).ravel())
        assert hmm.statistics()["pool"]["solves_total"] == 128
        hmm.destroy()
    scale = np.abs(values[1]).max()
    assert scale > 0.0
    assert np.abs(values[0] - values[1]).max() <= 1e-12 * scale


def test_random_stationary_reproducible():
    """A seeded random field gives the same tensor twice, another seed another one; the
    Dirichlet tensor is positive definite and lies below the arithmetic mean (Voigt)."""
    xq = np.array([0.4, 0.4])
    s = MicroSettings(0.4, 0.1, n=16, coupling="dirichlet")
    tensors = []
    for seed in (1, 1, 2):
        m = SamplingProblem(SELF, RandomStationary(2, seed=seed), s)
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
    with pytest.raises(ValueError, match="1D coefficient on a 2D macro mesh"):
        HMMProblem(unit_mesh(comm, 2, 2), laminate(1.0, 2.0, 1), MicroSettings(0.1, 0.1))
    with pytest.raises(ValueError, match="load factors"):
        HMMProblem(unit_mesh(comm, 2, 2), laminate(1.0, 2.0, 2), MicroSettings(0.1, 0.1)).solve([])
    negative = Coefficient(lambda x, y: ufl.sin(2 * math.pi * y[0]), 2, x_dependent=False)
    hmm = HMMProblem(unit_mesh(comm, 2, 2), negative, MicroSettings(0.1, 0.1, n=4))
    with pytest.raises(CollectiveError, match=r"micro problems failed: .*not positive definite"):
        hmm.solve()
    hmm.destroy()
    nan = Coefficient(lambda x, y: ufl.sqrt(-1.0 - y[0] ** 2), 2, x_dependent=False)
    hmm = HMMProblem(unit_mesh(comm, 2, 2), nan, MicroSettings(0.1, 0.1, n=4))
    with pytest.raises(CollectiveError, match=r"micro problems failed: .*NaN"):
        hmm.solve()
    hmm.destroy()
    m = SamplingProblem(SELF, MonotoneFlux(smooth_layers(2), 1.0), MicroSettings(0.1, 0.1, n=4))
    with pytest.raises(MicroSolveError, match="non-finite micro input"):
        m.solve(np.array([0.5, 0.5]), np.array([np.nan, 0.0]))
    m.destroy()


def _point_of_one_rank(comm, mesh):
    """A macro quadrature point (one-point rule: the centroid) near the middle, owned by the
    last rank, and that rank, the same on every rank."""
    tdim = mesh.topology.dim
    owned = np.arange(mesh.topology.index_map(tdim).size_local, dtype=np.int32)
    mid = dolfinx.mesh.compute_midpoints(mesh, tdim, owned)[:, :2]
    owner = comm.size - 1
    x = None
    if comm.rank == owner:
        x = mid[np.argmin(np.linalg.norm(mid - 0.5, axis=1))]
    return comm.bcast(x, root=owner), owner


@pytest.mark.mpi
@pytest.mark.parametrize("injected", ["coefficient", "micro_solve"])
def test_micro_failure_on_one_rank_cuts_every_rank(comm, monkeypatch, injected):
    """A micro failure at one macro point, owned by one rank only, fails the macro Newton
    iterate on every rank: the load step is rolled back and cut on every rank, and after the
    allowed cuts every rank raises the same LoadStepError.  Either the coefficient is NaN
    around that point (the micro check fails at the first iterate), or the micro solve there
    raises as soon as the macro gradient is non-zero (at the second iterate)."""
    mesh = unit_mesh(comm, 2, 4)
    x_bad, owner = _point_of_one_rank(comm, mesh)
    fast = smooth_periodic(2, 0.5)

    def c(x):
        near = ufl.lt((x[0] - x_bad[0]) ** 2 + (x[1] - x_bad[1]) ** 2, 0.02**2)
        if injected == "coefficient":
            return ufl.conditional(near, ufl.sqrt(-1.0 - x[0] ** 2), 1.0)
        return 1.0 + 0.0 * x[0]

    coef = MonotoneFlux(separable(c, fast), 1.0)
    hmm = HMMProblem(mesh, coef, MicroSettings(0.25, 0.25, n=8), f=4.0, max_cuts=2)
    near = np.linalg.norm(hmm.macro.points - x_bad, axis=1) < 0.02
    assert comm.allgather(int(near.sum())) == [int(r == owner) for r in range(comm.size)]
    if injected == "micro_solve":
        solve = SamplingProblem.solve

        def failing(self, xq, G=None, guess=None):
            if comm.rank == owner and np.allclose(xq, x_bad) and np.any(G):
                raise MicroSolveError(f"injected failure at x_q = {np.round(xq, 6).tolist()}")
            return solve(self, xq, G, guess)

        monkeypatch.setattr(SamplingProblem, "solve", failing)
    with pytest.raises(LoadStepError) as info:
        hmm.solve()
    message = str(info.value)
    assert comm.allgather(message) == [message] * comm.size
    assert "failed after 2 cuts" in message, message
    assert comm.size == 1 or f"rank {owner}: " in message, message
    assert ("NaN" if injected == "coefficient" else "injected failure") in message, message
    attempts = hmm.stepper.failed_attempts
    assert [a["to"] for a in attempts] == [1.0, 0.5, 0.25]
    assert not hmm.stepper.steps
    # rolled back: no solution, no warm start
    assert not np.any(hmm.u.x.array)
    assert not np.any(hmm.micro.trial) and not np.any(hmm.micro.committed)
    # the failing rank's exception (caught inside the Newton solver) holds the frames of the
    # SNES callback, and with them a reference to the SNES, in a reference cycle: collect it on
    # every rank before the collective destruction
    gc.collect()
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
        assert summary["statistics"]["pool"]["solves_total"] == 128
        assert 0 < summary["error_vs_dns"]["L2_relative"] < 0.25  # O(eps), eps = 1/4
        assert 0 < summary["error_vs_homogenized"]["L2_relative"] < 0.06
        assert np.allclose(summary["mean_effective_tensor"], np.diag([1.6, 2.5]), rtol=1e-12)
    assert main(["-q", "hmm", f"{base}/missing.yaml"]) == 2
