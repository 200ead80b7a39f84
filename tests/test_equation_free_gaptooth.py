"""Gap-tooth and patch dynamics for u_t = (a(x/eps) u_x)_x, a(y) = 1.1 + sin 2 pi y, against
the homogenized closed form a* = sqrt(1.1^2 - 1) and its P1 counterpart a*_h.

For P1 elements the periodic cell problem is solved exactly by a flux that is constant per
cell, so the fine grid's effective coefficient is the harmonic mean of the cell means of a:
a*_h = (mean_e 1/abar_e)^-1 with abar_e = 1.1 + (cos 2 pi y_e - cos 2 pi y_{e+1})/(2 pi dy),
a closed form that isolates the error of the teeth (buffers, healing) from that of the fine
grid (a*_h - a* = 3.5e-3 for 32 cells per period).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from mpi4py import MPI

from multiscale.equation_free import (
    GapTooth,
    GapToothSettings,
    ProjectiveSettings,
    projective_integrate,
)

EPS = 0.005
CPE = 32
A_STAR = math.sqrt(1.1**2 - 1.0)
STEPS = 8  # 7 healing micro steps and the one the slope is taken from


def _a_star_h(cells: int) -> float:
    y = np.arange(cells + 1) / cells
    abar = 1.1 + (np.cos(2 * np.pi * y[:-1]) - np.cos(2 * np.pi * y[1:])) * cells / (2 * np.pi)
    return float(1.0 / np.mean(1.0 / abar))


A_STAR_H = _a_star_h(CPE)


def _settings(buffer: float, n_teeth: int = 20, tooth: float = 2 * EPS) -> GapToothSettings:
    return GapToothSettings(n_teeth=n_teeth, eps=EPS, tooth=tooth, buffer=buffer, cells_per_eps=CPE)


def test_fine_grid_harmonic_mean():
    """a*_h -> a* at second order in the cell size (the reference's own error)."""
    errors = [_a_star_h(n) - A_STAR for n in (32, 64, 128)]
    assert abs(errors[0] - 3.488e-3) < 1e-6
    assert np.allclose(np.log2(np.array(errors[:-1]) / errors[1:]), 2.0, atol=0.01)


def test_lifting_is_consistent(comm: MPI.Comm):
    """R(L(U)) = U to round-off, and the interpolant of box averages of a quadratic
    reproduces its curvature and slope (interior teeth)."""
    with GapTooth(comm, _settings(4 * EPS)) as gt:
        X = gt.settings.centres
        U = np.random.default_rng(1).standard_normal(len(X))
        R0 = gt.burst(U, 0)[0]
        assert np.abs(R0 - U).max() < 1e-13
        q = lambda x: 3.0 * x**2 - x + 0.5  # noqa: E731
        c = gt.interpolation(gt.box_average(q))[1:-1]
        assert np.allclose(c[:, 2], 6.0, rtol=1e-9) and np.allclose(c[:, 1], 6 * X[1:-1] - 1)


@pytest.mark.parametrize(
    ("buffer", "high"),
    # |a_GT - a*_h| measured: 0.46 (no buffer: a_GT = 0.009), 0.12, 0.014, 3.5e-5, 8e-10
    [(0, np.inf), (2, 0.2), (4, 0.02), (8, 5e-5), (16, 1e-8)],
)
def test_effective_coefficient_converges_with_buffer(comm: MPI.Comm, buffer: int, high: float):
    """The coefficient the teeth realize (slope of the inner average for z^2/2 data after 7
    healing steps of eps^2/2) converges to a*_h as the buffer grows (the boundary layer from
    the held Dirichlet data spreads ~ sqrt(a t) = 1.4 eps in the burst); with no buffer the
    Dirichlet data sit on the inner region and a_GT is wrong by more than 90%."""
    with GapTooth(comm, _settings(buffer * EPS, n_teeth=3)) as gt:
        a_gt = gt.effective_coefficient(STEPS)
        drift = gt.tooth_slope(np.array([0.0, 1.0, 0.0]), STEPS)
    err = abs(a_gt - A_STAR_H)
    if buffer == 0:
        assert err > 0.9 * A_STAR, a_gt
    else:
        assert err < high, err
    if buffer == 16:
        # linear data: no spurious transport, and the total error is the fine grid's
        assert abs(drift) < 1e-6, drift
        assert abs(a_gt - A_STAR) < abs(A_STAR_H - A_STAR) + 1e-8


@pytest.mark.mpi
@pytest.mark.slow
def test_patch_dynamics_decays_like_homogenized_solution(comm: MPI.Comm):
    """Patch dynamics (PFE, lift anchor, coarse step 1e-3) for u0 = sin 2 pi x on [0, 1)
    periodic, 20 teeth, buffers 16 eps, up to t = 0.05.  The scheme is explicit Euler on the
    three-point stencil with a_GT, so

    * against the closed-form coarse solution with a*_h, U_n = g^n U_0,
      g = 1 - 4 H_c a*_h sin^2(pi H)/H^2, the error is (2 pi)^2 t |a_GT - a*_h| < 1e-7;
    * against exp(-a* (2 pi)^2 t) U_0 it is the coarse discretization error (closed form
      |g*^n - e^{-lambda t}| with a*) plus the fine grid's (2 pi)^2 t |a*_h - a*| e^{-lambda t}.
    """
    s = _settings(16 * EPS)
    with GapTooth(comm, s) as gt:
        U0 = gt.box_average(lambda x: np.sin(2 * np.pi * x))
        ps = ProjectiveSettings(dt=gt.dt, k=STEPS - 1, Delta=1e-3 - STEPS * gt.dt, anchor="lift")
        t, U = projective_integrate(gt, U0, ps, 50)
    n = np.arange(len(t))[:, None]
    shape = 4 * math.sin(math.pi * s.H) ** 2 / s.H**2
    discrete = (1 - ps.H * A_STAR_H * shape) ** n * U0
    assert np.abs(U - discrete).max() < 1e-7, np.abs(U - discrete).max()
    lam = A_STAR * (2 * np.pi) ** 2
    exact = np.exp(-lam * t)[:, None] * U0
    coarse = np.abs((1 - ps.H * A_STAR * shape) ** n[:, 0] - np.exp(-lam * t))
    fine = (2 * np.pi) ** 2 * t * (A_STAR_H - A_STAR) * np.exp(-lam * t) * 1.01
    err = np.abs(U - exact).max(axis=1)
    assert np.all(err <= coarse * np.abs(U0).max() + fine + 1e-7), (err, coarse, fine)
    assert err[-1] < 0.01


@pytest.mark.mpi
def test_teeth_distributed_over_ranks_agree_with_one_rank(comm: MPI.Comm):
    """Teeth spread over COMM_WORLD by the micro pool give the numbers of a COMM_SELF run."""
    s = _settings(4 * EPS, n_teeth=7)
    U0 = np.cos(2 * np.pi * s.centres) + 0.3 * np.sin(4 * np.pi * s.centres)
    ps = ProjectiveSettings(dt=s.inner_dt, k=3, Delta=2e-4, anchor="lift", scheme="prk2")
    runs = []
    # one rank per tooth on comm, on COMM_SELF, and (even rank counts) two ranks per tooth
    layouts = [(comm, 1), (MPI.COMM_SELF, 1)] + ([(comm, 2)] if comm.size % 2 == 0 else [])
    for c, group in layouts:
        with GapTooth(c, s, group_size=group) as gt:
            runs.append(projective_integrate(gt, U0, ps, 3)[1])
    assert np.abs(runs[0] - runs[1]).max() <= 1e-14
    if len(runs) > 2:  # a tooth distributed over two ranks (MUMPS): the same to round-off
        assert np.abs(runs[2] - runs[1]).max() <= 1e-11
    assert np.abs(runs[0] - U0).max() > 1e-3  # it did move
