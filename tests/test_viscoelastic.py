"""Viscoelastic phases, the memory of a viscoelastic RVE and thermodynamic consistency.

References, all independent of the code under test:

* homogeneous cell: the Maxwell ODEs :math:`\\dot e_i = \\dot\\varepsilon - e_i/\\tau_i` (with
  the dissipation rate :math:`e_i:\\mathbb C_i:e_i/\\tau_i`) integrated by ``solve_ivp``
  (DOP853, rtol 1e-13) segment by segment of the piecewise-linear strain; the hereditary integral
  :math:`\\int G(t - s)\\,\\dot\\varepsilon(s)\\,ds` by ``scipy.integrate.quad``;
* laminate (layers normal to :math:`x_1`, plane strain): by the correspondence principle the
  closed-form elastic laminate formulas hold for the complex moduli :math:`\\kappa^*(\\omega),
  \\mu^*(\\omega)`: shear across the layers gives the harmonic mean
  :math:`\\mu^*_{eff} = \\langle 1/\\mu^*\\rangle^{-1}`, normal strain along the layers
  (:math:`\\bar\\varepsilon_{22}`) the Backus formula :math:`\\bar\\sigma_{22} =
  [\\langle M - \\lambda^2/M\\rangle + \\langle\\lambda/M\\rangle^2/\\langle 1/M\\rangle]
  \\,\\bar\\varepsilon_{22}`,
  :math:`\\bar\\sigma_{11} = \\langle\\lambda/M\\rangle/\\langle 1/M\\rangle\\,
  \\bar\\varepsilon_{22}` with :math:`M = \\lambda + 2\\mu` (its first term is the arithmetic mean
  of the plane-stress-like modulus, the second the harmonic-mean coupling);
* dissipation: non-negative at every micro point and step; exactly zero and work-conserving in
  the reversible limits;
* Prony fit: a known series on the grid recovered; the composite's curve fitted with a stated
  error; FE² against the fitted macro law within the bound that error implies.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from mpi4py import MPI
from scipy.integrate import quad, solve_ivp

from multiscale.cell.relaxation import (
    composite_relaxation,
    drive_rve,
    fit_generalized_maxwell,
    fit_prony,
    harmonic_modulus,
    log_grid,
    prony_basis,
)
from multiscale.cell.rve import RVEProblem
from multiscale.fe2 import DisplacementBC, DNSProblem, FE2Problem, tiled_inclusions
from multiscale.mesh import circular_inclusion, laminate
from multiscale.mesh.macro import rectangle
from multiscale.physics import GeneralizedMaxwell, IsotropicElasticity, MaxwellBranch

# (kappa, mu, ((kappa_i, mu_i, tau_i), ...))
HOMOGENEOUS = (1.2, 0.4, ((2.0, 1.0, 0.3), (0.5, 0.8, 2.0)))
LAYER_A = (1.0, 0.3, ((1.0, 1.0, 0.15),))
LAYER_B = (5.0, 2.0, ((1.0, 3.0, 0.03), (0.0, 1.0, 0.2)))
FRACTIONS = (0.4, 0.6)
MATRIX = (1.0, 0.2, ((0.5, 0.6, 0.1), (0.2, 0.4, 1.0)))
FIBRE = IsotropicElasticity.from_young(10.0, 0.25)
AMP = 1e-3


def law(params, dt: float) -> GeneralizedMaxwell:
    return GeneralizedMaxwell(params[0], params[1], params[2], dt)


def rve_of(cell, materials) -> RVEProblem:
    return RVEProblem(cell, materials)


@pytest.fixture(scope="module")
def layers():
    return laminate(MPI.COMM_WORLD, 2, FRACTIONS, h=0.25)


@pytest.fixture(scope="module")
def disk():
    return circular_inclusion(MPI.COMM_WORLD, 0.3, h=0.1)


# -- independent references -----------------------------------------------------------------------
def lame(kappa: float, mu: float) -> tuple[float, float]:
    return kappa - 2.0 * mu / 3.0, mu


def hooke(kappa: float, mu: float, e: np.ndarray) -> np.ndarray:
    """Plane-strain in-plane stress of the strains ``e`` (..., 2, 2)."""
    lam, m = lame(kappa, mu)
    tr = np.trace(e, axis1=-2, axis2=-1)[..., None, None]
    return lam * tr * np.eye(2) + 2.0 * m * e


def ode_reference(params, strains: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Stress history and per-step dissipation of the Maxwell ODEs under the piecewise-linear
    interpolant of ``strains`` (n + 1, 2, 2), by solve_ivp on each segment."""
    kappa, mu, branches = params
    nb = len(branches)

    def rhs(_t, y, rate):
        e = y[: 4 * nb].reshape(nb, 2, 2)
        out = np.empty_like(y)
        D = 0.0
        for i, (k, m, tau) in enumerate(branches):
            out[4 * i : 4 * i + 4] = (rate - e[i] / tau).ravel()
            lam, mm = lame(k, m)
            D += (lam * np.trace(e[i]) ** 2 + 2.0 * mm * np.sum(e[i] * e[i])) / tau
        out[-1] = D
        return out

    y = np.zeros(4 * nb + 1)
    stress = np.zeros_like(strains)
    dissipation = np.zeros(len(strains))
    for n in range(1, len(strains)):
        rate = (strains[n] - strains[n - 1]) / dt
        y[-1] = 0.0
        sol = solve_ivp(rhs, (0.0, dt), y, args=(rate,), method="DOP853", rtol=1e-13, atol=1e-22)
        y = sol.y[:, -1]
        e = y[: 4 * nb].reshape(nb, 2, 2)
        stress[n] = hooke(kappa, mu, strains[n]) + sum(
            hooke(k, m, e[i]) for i, (k, m, _) in enumerate(branches)
        )
        dissipation[n] = y[-1]
    return stress, dissipation


def hereditary_reference(params, strains: np.ndarray, dt: float) -> np.ndarray:
    """:math:`\\sigma(t_n) = \\int_0^{t_n} [\\lambda(t_n - s)\\,\\mathrm{tr}\\dot\\varepsilon I +
    2\\mu(t_n - s)\\dot\\varepsilon]\\,ds` with the relaxation functions written out here and
    each segment's integral by adaptive quadrature."""
    kappa, mu, branches = params

    def lam_t(t):
        return lame(kappa, mu)[0] + sum(
            lame(k, m)[0] * math.exp(-t / tau) for k, m, tau in branches
        )

    def mu_t(t):
        return mu + sum(m * math.exp(-t / tau) for _, m, tau in branches)

    stress = np.zeros_like(strains)
    rates = np.diff(strains, axis=0) / dt
    for n in range(1, len(strains)):
        tn = n * dt
        for m in range(n):
            a, b = m * dt, (m + 1) * dt
            L = quad(lambda s, tn=tn: lam_t(tn - s), a, b, epsabs=0.0, epsrel=1e-13)[0]
            M = quad(lambda s, tn=tn: mu_t(tn - s), a, b, epsabs=0.0, epsrel=1e-13)[0]
            stress[n] += L * np.trace(rates[m]) * np.eye(2) + 2.0 * M * rates[m]
    return stress


def waypoints(points, steps_per_leg: int) -> np.ndarray:
    """Piecewise-linear (E11, E22, E12) path through ``points`` from zero: (n, 2, 2)."""
    path = [np.zeros(3)]
    for p in points:
        start = path[-1]
        for k in range(1, steps_per_leg + 1):
            path.append(start + (np.asarray(p, float) - start) * k / steps_per_leg)
    v = AMP * np.array(path[1:])
    E = np.zeros((len(v), 2, 2))
    E[:, 0, 0], E[:, 1, 1] = v[:, 0], v[:, 1]
    E[:, 0, 1] = E[:, 1, 0] = v[:, 2]
    return E


def with_zero(strains: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((1, 2, 2)), strains])


def rel_max(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# -- the law on a homogeneous cell ----------------------------------------------------------------
RAMP_HOLD = waypoints([(1.0, -0.4, 0.6)], 5)
RAMP_HOLD = np.concatenate([RAMP_HOLD, np.repeat(RAMP_HOLD[-1:], 25, axis=0)])
DT_HOM = 0.1
HARMONIC = (
    AMP
    * np.sin(2.0 * np.pi * DT_HOM * np.arange(1, 41) / 1.37)[:, None, None]
    * np.array([[1.0, 0.5], [0.5, -0.3]])
)


@pytest.mark.mpi
@pytest.mark.parametrize("history", ["ramp_hold", "harmonic"])
def test_homogeneous_cell_matches_maxwell_odes(layers, history):
    """Stress and per-step dissipation of the RVE of one phase equal the ODE solution for the
    piecewise-linear strain to 1e-8 (the update is exact there)."""
    strains = RAMP_HOLD if history == "ramp_hold" else HARMONIC
    g = law(HOMOGENEOUS, DT_HOM)
    run = drive_rve(rve_of(layers, {"phase0": g, "phase1": g}), strains, DT_HOM)
    ref_s, ref_d = ode_reference(HOMOGENEOUS, with_zero(strains), DT_HOM)
    err_s, err_d = rel_max(run.stress, ref_s), rel_max(run.dissipation, ref_d)
    print(f"{history}: stress rel. error {err_s:.2e}, dissipation rel. error {err_d:.2e}")
    assert err_s < 1e-8
    assert err_d < 1e-8


@pytest.mark.mpi
def test_convolution_and_internal_variables_agree(layers):
    """The hereditary integral (quadrature) and the internal-variable update of the RVE give
    the same stress history to 1e-8 on a non-proportional load-unload path."""
    # (ends short of zero: at exactly zero macro strain a homogeneous cell is solved by the
    # guess to round-off, which the RVE's relative Newton test cannot improve on)
    strains = waypoints([(1.0, 0.0, 0.0), (1.0, 0.5, 0.8), (-0.5, 0.5, 0.8), (0.1, -0.1, 0.1)], 4)
    g = law(HOMOGENEOUS, DT_HOM)
    run = drive_rve(rve_of(layers, {"phase0": g, "phase1": g}), strains, DT_HOM)
    err = rel_max(run.stress, hereditary_reference(HOMOGENEOUS, with_zero(strains), DT_HOM))
    print(f"convolution vs internal variables: rel. error {err:.2e}")
    assert err < 1e-8


# -- laminate: correspondence principle -----------------------------------------------------------
OMEGA = 2.0 * np.pi


def complex_lame(params, omega: float) -> tuple[complex, complex]:
    kappa, mu, branches = params
    k, m = complex(kappa), complex(mu)
    for kb, mb, tau in branches:
        r = 1j * omega * tau / (1.0 + 1j * omega * tau)
        k, m = k + kb * r, m + mb * r
    return k - 2.0 * m / 3.0, m


def laminate_moduli(omega: float) -> dict[str, complex]:
    f = np.array(FRACTIONS)
    lm = np.array([complex_lame(LAYER_A, omega), complex_lame(LAYER_B, omega)])
    lam, mu = lm[:, 0], lm[:, 1]
    M = lam + 2.0 * mu

    def avg(x):
        return complex(np.sum(f * x))

    return {
        "mu_across": 1.0 / avg(1.0 / mu),
        "s22": avg(M - lam**2 / M) + avg(lam / M) ** 2 / avg(1.0 / M),
        "s11": avg(lam / M) / avg(1.0 / M),
    }


def laminate_rve(cell, steps: int) -> RVEProblem:
    dt = 2.0 * np.pi / (OMEGA * steps)
    return rve_of(cell, {"phase0": law(LAYER_A, dt), "phase1": law(LAYER_B, dt)})


@pytest.mark.mpi
def test_laminate_complex_moduli(layers):
    """Steady harmonic response of the viscoelastic laminate against the complex laminate
    formulas (amplitude and phase): error below :math:`(\\omega\\Delta t)^2/4` with 64 steps a
    period, and second order in :math:`\\Delta t` (32 -> 64 steps: ratio about 4);
    transients decay as :math:`e^{-2T/\\tau_{max}} < 10^{-4}` over the two periods skipped."""
    ref = laminate_moduli(OMEGA)
    shear = np.array([[0.0, 0.5], [0.5, 0.0]])
    normal = np.array([[0.0, 0.0], [0.0, 1.0]])
    errs = {}
    for steps in (32, 64):
        S = harmonic_modulus(laminate_rve(layers, steps), shear, OMEGA, steps, 3)
        errs[steps] = abs(S[0, 1] - ref["mu_across"]) / abs(ref["mu_across"])
    S = harmonic_modulus(laminate_rve(layers, 64), normal, OMEGA, 64, 3)
    e22 = abs(S[1, 1] - ref["s22"]) / abs(ref["s22"])
    e11 = abs(S[0, 0] - ref["s11"]) / abs(ref["s11"])
    tol = (OMEGA * 2.0 * np.pi / (OMEGA * 64)) ** 2 / 4.0
    print(
        f"mu* across {ref['mu_across']:.6f}: errors {errs[32]:.2e} (32), {errs[64]:.2e} (64); "
        f"Backus s22 {e22:.2e}, s11 {e11:.2e}; tol {tol:.2e}"
    )
    assert max(errs[64], e22, e11) < tol
    assert 3.0 < errs[32] / errs[64] < 5.0
    # the loss modulus is resolved, not just the storage one
    assert abs(ref["mu_across"].imag) > 0.2 * abs(ref["mu_across"])


# -- thermodynamic consistency --------------------------------------------------------------------
LOAD_UNLOAD = waypoints([(1.0, 0.0, 0.0), (1.0, 0.5, 0.8), (-0.5, 0.5, 0.8), (0.0, 0.0, 0.0)], 5)


def point_dissipation(rve: RVEProblem, state: np.ndarray) -> np.ndarray:
    rve.load_state(state)
    return rve.state["dissipation"].x.array.copy()


@pytest.mark.mpi
def test_dissipation_non_negative_everywhere(disk):
    """Non-proportional loading and unloading of a viscoelastic-matrix / elastic-fibre cell:
    the dissipation of every step is >= 0 at every micro quadrature point (exactly: the update
    is a sum of non-negative terms), > 0 somewhere, and its mean equals the cell average."""
    dt = 0.05
    rve = rve_of(disk, {"matrix": law(MATRIX, dt), "inclusion": FIBRE})
    worst, best = [np.inf], [0.0]

    def check(_k, _response, state):
        d = point_dissipation(rve, state)
        worst[0] = min(worst[0], float(d.min()))
        best[0] = max(best[0], float(d.max()))

    run = drive_rve(rve, LOAD_UNLOAD, dt, on_step=check)
    worst_all = MPI.COMM_WORLD.allreduce(worst[0], op=MPI.MIN)
    best_all = MPI.COMM_WORLD.allreduce(best[0], op=MPI.MAX)
    print(f"point dissipation per step in [{worst_all:.3e}, {best_all:.3e}]")
    assert worst_all >= 0.0
    assert best_all > 0.0
    assert np.all(run.dissipation[1:] > 0.0)


@pytest.mark.mpi
@pytest.mark.parametrize("tau", [math.inf, 0.0])
def test_reversible_limit_conserves_energy(layers, tau):
    """All branches elastic (tau = inf) or instantly relaxed (tau = 0): no dissipation at
    all (exactly 0 at every point), the homogenized law is elastic and the work over the
    closed load-unload cycle vanishes to round-off; the stress is that of the instantaneous
    (inf) or equilibrium (0) moduli of a laminate, in closed form."""
    dt = 0.05
    A = GeneralizedMaxwell(1.0, 0.3, (MaxwellBranch(1.0, 1.0, tau),), dt)
    B = GeneralizedMaxwell(5.0, 2.0, (MaxwellBranch(1.0, 3.0, tau),), dt)
    rve = rve_of(layers, {"phase0": A, "phase1": B})
    dissipated = [0.0]

    def check(_k, _response, state):
        dissipated[0] = max(dissipated[0], float(np.max(np.abs(point_dissipation(rve, state)))))

    run = drive_rve(rve, LOAD_UNLOAD, dt, on_step=check)
    assert MPI.COMM_WORLD.allreduce(dissipated[0], op=MPI.MAX) == 0.0
    assert np.all(run.dissipation == 0.0)
    mid = 0.5 * (run.stress[1:] + run.stress[:-1])
    increments = np.einsum("nij,nij->n", mid, np.diff(run.strain, axis=0))
    work = abs(increments.sum()) / np.abs(increments).sum()
    print(f"tau={tau}: cycle work / gross work {work:.1e}")
    assert work < 1e-12
    # shear across the layers: harmonic mean of the (instantaneous or equilibrium) moduli
    mus = (1.3, 5.0) if math.isinf(tau) else (0.3, 2.0)
    mu_eff = 1.0 / (FRACTIONS[0] / mus[0] + FRACTIONS[1] / mus[1])
    k = int(np.argmax(np.abs(run.strain[:, 0, 1])))
    assert abs(run.stress[k, 0, 1] - 2.0 * mu_eff * run.strain[k, 0, 1]) < 1e-10 * mu_eff * AMP


# -- Prony fit ------------------------------------------------------------------------------------
@pytest.mark.parametrize("t_ramp", [0.0, 0.01])
def test_prony_fit_recovers_known_series(t_ramp):
    """Weights on the grid (and g_inf) recovered to 1e-8 from the sampled relaxation function
    (t_ramp = 0) or ramp-and-hold response, the samples written out here."""
    taus = log_grid(1e-2, 1e2, 2)
    weights = np.zeros(len(taus))
    weights[[1, 4, 6]] = (0.7, 1.3, 0.4)
    t = np.logspace(-3, 3, 300)
    tau = taus[None, :]
    if t_ramp == 0.0:
        y = 0.25 + np.exp(-t[:, None] / tau) @ weights
    else:
        r = np.minimum(t / t_ramp, 1.0)
        after = np.exp(-np.maximum(t[:, None] - t_ramp, 0.0) / tau)
        y = 0.25 * r + (tau / t_ramp * (after - np.exp(-t[:, None] / tau))) @ weights
    fit = fit_prony(t, y, taus, t_ramp)
    assert abs(fit.g_inf - 0.25) < 1e-8
    assert np.max(np.abs(fit.weights - weights)) < 1e-8
    # storage/loss moduli of the fit in closed form: Kramers-Kronig-consistent limits
    assert abs(fit.complex_modulus(0.0) - 0.25) < 1e-8
    assert abs(fit.complex_modulus(1e12) - (0.25 + weights.sum())) < 1e-8


DT_FIT = 0.02
N_FIT = 150  # 3 s: beyond three times the slowest phase relaxation
# dense, up to the observed window: NNLS keeps a few (the composite's poles are not on any grid;
# 4 a decade leaves ~1 % residuals, 20 a decade ~1e-4)
FIT_TAUS = log_grid(5e-3, DT_FIT * N_FIT, 20)
FIT_TOL = 1e-4  # stated bound of the composite fit: max residual / min response


@pytest.fixture(scope="module")
def composite_fit(disk):
    rve = rve_of(disk, {"matrix": law(MATRIX, DT_FIT), "inclusion": FIBRE})
    data = composite_relaxation(rve, DT_FIT, N_FIT, amplitude=AMP)
    fitted, residual = fit_generalized_maxwell(data, FIT_TAUS, 2, DT_FIT)
    return data, fitted, residual


@pytest.mark.mpi
def test_prony_fit_of_the_composite(composite_fit):
    """The composite's shear and dilatation relaxation (ramp responses of the fibre cell) fitted
    by one isotropic generalized Maxwell solid with non-negative moduli: max residual below
    FIT_TOL of the smallest response value."""
    data, fitted, residual = composite_fit
    rel_s = residual["shear"] / data.shear.min()
    rel_d = residual["dilatation"] / data.dilatation.min()
    print(
        f"composite fit: {len(fitted.branches)} branches, rel. residual shear {rel_s:.2e}, "
        f"dilatation {rel_d:.2e}; relaxation {data.shear[0]:.4f} -> {data.shear[-1]:.4f}"
    )
    assert max(rel_s, rel_d) < FIT_TOL
    assert all(b.kappa >= 0.0 and b.mu >= 0.0 for b in fitted.branches)
    # the composite relaxes: memory is real (more than 20 % drop of the shear response)
    assert data.shear[-1] < 0.8 * data.shear[0]
    # the fitted law's shear ramp response, from its relaxation function in closed form
    _, mu_t = fitted.relaxation(np.array([0.0]))
    assert mu_t[0] == pytest.approx(fitted.instantaneous[1])
    basis = prony_basis(data.times, [b.tau for b in fitted.branches], data.t_ramp)
    mu_fit = basis @ np.array([fitted.mu] + [b.mu for b in fitted.branches])
    assert np.max(np.abs(mu_fit - data.shear)) == pytest.approx(residual["shear"], rel=1e-6)


# -- FE² against the fitted macro law -------------------------------------------------------------
FE2_FACTORS = np.concatenate([np.linspace(0.25, 1.0, 4), np.linspace(0.95, 0.6, 8)])


def dilatation_bcs(a: float) -> list[DisplacementBC]:
    return [
        DisplacementBC("right", a, component=0),
        DisplacementBC("left", 0.0, component=0),
        DisplacementBC("bottom", 0.0, component=1),
        DisplacementBC("top", a, component=1),
    ]


@pytest.mark.mpi
def test_fe2_against_fitted_prony_law(composite_fit):
    """Macro unit square under the time-dependent dilatation u = a(t) x (rollers), followed
    with steps of DT_FIT (a ramp, then unloading): FE² with the viscoelastic fibre cell against
    the macro solid with the fitted law.  The reactions sum to :math:`4\\,a\\,K_d` in both, so
    their difference is bounded by :math:`4\\,r_d \\sum_m|\\Delta a_m|` with :math:`r_d` the max
    dilatation residual of the fit (superposition of unit ramps), plus the Newton tolerances."""
    _, fitted, residual = composite_fit
    comm = MPI.COMM_WORLD
    a = AMP
    bcs = dilatation_bcs(a)
    with FE2Problem(
        rectangle(comm, (1.0, 1.0), (1, 1)),
        lambda c: circular_inclusion(c, 0.3, h=0.1),
        {"matrix": law(MATRIX, DT_FIT), "inclusion": FIBRE},
        bcs=bcs,
        max_cuts=0,
    ) as fe2:
        steps = fe2.solve(FE2_FACTORS).steps
        r_fe2 = np.array([s.reactions["right"][0] + s.reactions["top"][1] for s in steps])
    domain = tiled_inclusions(comm, 1, 0.3, h_cell=0.25)
    with DNSProblem(domain, {"matrix": fitted, "inclusion": fitted}, bcs=bcs, max_cuts=0) as macro:
        steps = macro.solve(FE2_FACTORS).steps
        r_fit = np.array([s.reactions["right"][0] + s.reactions["top"][1] for s in steps])
    variation = a * np.sum(np.abs(np.diff(np.concatenate([[0.0], FE2_FACTORS]))))
    bound = 4.0 * residual["dilatation"] * variation
    err = float(np.max(np.abs(r_fe2 - r_fit)))
    print(
        f"FE2 vs Prony law: max |dR| {err:.3e}, bound {bound:.3e}, "
        f"max |R| {np.max(np.abs(r_fe2)):.3e}"
    )
    assert err <= bound + 1e-8 * np.max(np.abs(r_fe2))
    # the history matters: on unloading the reaction falls faster than the strain
    assert r_fe2[-1] / r_fe2[3] < FE2_FACTORS[-1] / FE2_FACTORS[3]
