"""Equation-free core: projective integration against closed-form amplification factors and
the exact solution of linear fast–slow systems, healing, and coarse Newton–Krylov against a
manufactured steady state.  The coarse Newton–Krylov runs on COMM_WORLD (distributed coarse
vector); everything else is replicated and runs on any number of ranks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from mpi4py import MPI

from multiscale.equation_free import (
    CoarseNewtonKrylov,
    FastSlowReaction,
    LinearSystem,
    MicroCoarseStepper,
    ProjectiveSettings,
    amplification_factor,
    projective_integrate,
    projective_step,
)

EPS = 1e-3


def _sigma(lam, dt, k, Delta, scheme, anchor):
    """The amplification factors derived by hand (independent of the package's function).

    Burst: U_k = s^k U, U_{k+1} = s^{k+1} U (s = 1 + dt lam), slope D = s^k lam U.
    PFE/burst: s^{k+1} + Delta s^k lam.  PRK2/burst: predictor P = that, D2 = s^k lam P,
    U + ... = s^{k+1} + Delta s^k lam ((1 - w) + w P/U), w = (Delta + dt)/(2H).
    Lift anchor: 1 + H D/U (PFE), 1 + q + w q^2 with q = H lam s^k, w = 1/2 - (k + 1/2) dt/H.
    """
    s = 1.0 + dt * lam
    H = (k + 1) * dt + Delta
    if anchor == "burst":
        pfe = s ** (k + 1) + Delta * s**k * lam
        if scheme == "pfe":
            return pfe
        w = (Delta + dt) / (2 * H)
        return s ** (k + 1) + Delta * s**k * lam * ((1 - w) + w * pfe)
    q = H * lam * s**k
    if scheme == "pfe":
        return 1 + q
    return 1 + q + (0.5 - (k + 0.5) * dt / H) * q**2


def _fast_slow_matrix(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A non-normal 4x4 system with a slow cluster {-1, -0.5} and a fast one {-1/eps, -0.8/eps}."""
    lam = np.array([-1.0, -0.5, -1.0 / EPS, -0.8 / EPS])
    rng = np.random.default_rng(seed)
    V = np.eye(4) + 0.3 * rng.standard_normal((4, 4))
    return V @ np.diag(lam) @ np.linalg.inv(V), V, lam


@pytest.mark.parametrize("scheme", ["pfe", "prk2"])
@pytest.mark.parametrize("anchor", ["burst", "lift"])
def test_amplification_factor_per_eigenmode(scheme: str, anchor: str):
    """One projective step maps every eigenvector v to sigma(lambda) v, to round-off."""
    A, V, lam = _fast_slow_matrix()
    sys = LinearSystem(A)
    dt, k, Delta = EPS, 5, 0.05  # Delta = 25 times the explicit limit 2 eps
    s = ProjectiveSettings(dt=dt, k=k, Delta=Delta, scheme=scheme, anchor=anchor)
    stepper = MicroCoarseStepper(sys, sys.lift, sys.restrict, dt)
    for j in range(4):
        v = V[:, j]
        out = projective_step(stepper, v, s)
        sigma = _sigma(lam[j], dt, k, Delta, scheme, anchor)
        assert np.allclose(out, sigma * v, rtol=0, atol=1e-12 * max(1.0, abs(sigma))), (j, sigma)
        assert abs(amplification_factor(lam[j], s) - sigma) <= 1e-14 * max(1.0, abs(sigma))
    # slow modes close to exp(lam H); fast ones damped from the end of the burst, while the
    # lift anchor keeps the fast part of U_n (|sigma| <= 1: its coarse variables must be slow)
    sig = np.array([_sigma(m, dt, k, Delta, scheme, anchor) for m in lam])
    assert np.all(np.abs(sig[2:]) < (0.02 if anchor == "burst" else 1.0 + 1e-12))
    assert np.all(np.abs(sig[:2] - np.exp(lam[:2] * s.H)) < 0.02)


def test_projective_stable_where_forward_euler_explodes():
    """x' = -x, y' = -(y - x)/eps: PFE with Delta = 0.05 (25 x the limit 2 eps of explicit
    Euler) follows exp(tA) with a bounded O(Delta) error; forward Euler with step Delta
    multiplies the fast mode by |1 - Delta/eps| = 49 per step."""
    A = np.array([[-1.0, 0.0], [1.0 / EPS, -1.0 / EPS]])
    sys = LinearSystem(A)
    s = ProjectiveSettings(dt=0.9 * EPS, k=3, Delta=0.05)
    stepper = MicroCoarseStepper(sys, sys.lift, sys.restrict, s.dt)
    u0 = np.array([1.0, 0.0])
    steps = 40
    t, U = projective_integrate(stepper, u0, s, steps)
    exact = np.array([scipy.linalg.expm(ti * A) @ u0 for ti in t])
    err = np.abs(U - exact).max(axis=1)
    # closed form of the slow mode, (sigma(-1))^n against exp(-t); the fast mode is multiplied
    # by sigma(-1/eps) = 0.1^3 (0.1 (M + 1) - M) = -0.0499 per step (M = Delta/dt = 55.6)
    assert abs(amplification_factor(-1.0 / EPS, s) + 0.0499) < 1e-12
    # u0 = v_s - v_f / (1 - eps) with v_s = (1, 1/(1 - eps)), v_f = (0, 1): the error is at most
    # |sigma_s^n - e^-t| |v_s| + |sigma_f|^n |v_f| / (1 - eps) (the exact fast part is e^-50n)
    n = np.arange(steps + 1)
    slow = np.abs(amplification_factor(-1.0, s) ** n - np.exp(-t))
    bound = slow * np.hypot(1.0, 1.0 / (1 - EPS)) + 0.0499**n / (1 - EPS)
    assert np.all(err[1:] <= bound[1:] + 1e-12), (err, bound)
    assert err[2:].max() < 0.01  # O(Delta): max |sigma_s^n - e^-t| = 0.0091 at t ~ 1
    fe = u0.copy()
    for _ in range(steps):
        fe = fe + s.Delta * (A @ fe)
    assert np.abs(fe).max() > 1e30


@pytest.mark.parametrize(("scheme", "order"), [("pfe", 1.0), ("prk2", 2.0)])
def test_projective_convergence_order(scheme: str, order: float):
    """Slow-mode error at t = 2 against exp(-t) for H = 0.2, 0.1, 0.05 (dt = eps, so the
    fast mode vanishes in one inner step and inner-step errors are O(eps) = 1e-5): observed
    orders 1 (PFE: 1.023, 1.012) and 2 (PRK2: 2.12, 2.07)."""
    eps = 1e-5
    A = np.array([[-1.0, 0.0], [1.0 / eps, -1.0 / eps]])
    sys = LinearSystem(A)
    errors = []
    for Delta in (0.2, 0.1, 0.05):
        s = ProjectiveSettings(dt=eps, k=1, Delta=Delta - 2 * eps, scheme=scheme)
        stepper = MicroCoarseStepper(sys, sys.lift, sys.restrict, s.dt)
        n = round(2.0 / s.H)
        t, U = projective_integrate(stepper, np.array([1.0, 1.0]), s, n)
        errors.append(abs(U[-1, 0] - np.exp(-t[-1])))
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(rates - order) < 0.15), (errors, rates)


def test_healing_relaxes_fast_variables():
    """Constrained healing steps at frozen x: y_n - x^2 = (1 - dt/eps)^n (y_0 - x^2)."""
    sys = FastSlowReaction(n=5, eps=EPS)
    dt, n = 0.4 * EPS, 12
    stepper = MicroCoarseStepper(sys, sys.lift, sys.restrict, dt, healing=n)
    U = sys.x_star * 0.9
    healed = stepper.heal(U)
    expected = U**2 * (1.0 - (1.0 - dt / EPS) ** n)
    assert np.array_equal(healed[: sys.n], U)
    assert np.allclose(healed[sys.n :], expected, rtol=1e-13, atol=0)


@pytest.mark.mpi
def test_newton_krylov_coarse_steady_state(comm: MPI.Comm):
    """Jacobian-free Newton–GMRES on Phi_T(U) - U finds x* of the manufactured fast–slow
    system.  With 60 healing steps (dt = eps/2) the lifted y equals x^2 up to 2^-60, so x* is a
    fixed point of Phi_T to round-off and the solution error is bounded by the residual
    tolerance over T |lambda_min| (~1e-12 / (0.01 * 1)); without healing (y lifted to 0) the
    transient drags x for a time ~eps and the coarse fixed point is off by O(c eps / T)."""
    sys = FastSlowReaction(n=8, eps=EPS, beta=1.0, c=1.0)
    opts = {"snes_rtol": 1e-14, "snes_atol": 1e-13, "snes_max_it": 12}
    for healing, check in ((60, "exact"), (0, "off")):
        stepper = MicroCoarseStepper(sys, sys.lift, sys.restrict, 0.5 * EPS, healing=healing)
        phi = lambda U, stepper=stepper: stepper(U, 20)  # noqa: E731
        with CoarseNewtonKrylov(phi, sys.n, comm, petsc_options=opts) as nk:
            res = nk.solve(np.ones(sys.n))
        assert res.outcome.converged, res.outcome.cause
        err = np.abs(res.U - sys.x_star).max()
        if check == "exact":
            assert err < 1e-9, err
            assert res.outcome.iterations <= 8
        else:
            assert err > 1e-2, err
