"""Memory of a viscoelastic RVE: strain histories, relaxation, Prony fits, complex moduli.

With viscoelastic phases (:class:`~multiscale.physics.viscoelasticity.GeneralizedMaxwell`) the
homogenized stress of a periodic RVE is a hereditary functional of the macro strain,

.. math::
    \\bar\\sigma(t) = \\int_0^t \\bar G(t - s) : \\dot{\\bar\\varepsilon}(s)\\,ds,

whose relaxation tensor :math:`\\bar G` is, for the discretized cell, a finite sum of
exponentials (the poles of :math:`(K(p))^{-1}`) but with relaxation times that are not those of
the phases.  This module

* drives the RVE along a macro strain history with uniform steps of the law's ``dt``
  (:func:`drive_rve`; :func:`ramp_hold_strain`, :func:`harmonic_strain`);
* fits a Prony series with non-negative weights on a fixed grid of relaxation times
  :math:`\\tau_j` (log-spaced) by non-negative least squares (:func:`fit_prony`,
  :func:`fit_generalized_maxwell`).  The data are the response to a *ramp-and-hold*
  :math:`\\varepsilon(t) = \\varepsilon_0\\min(t/t_r, 1)` (a step strain is a ramp over the first
  time step for a stepped solver), and the basis functions are the exact responses of each
  exponential to that history,

  .. math::
      \\phi_\\tau(t) = \\frac{\\tau}{t_r}\\big(e^{-(t - t_r)^+/\\tau} - e^{-t/\\tau}\\big)
      \\quad(t_r > 0), \\qquad \\phi_\\tau(t) = e^{-t/\\tau} \\quad (t_r = 0),

  so that no step-function approximation enters the fit.  The fitted isotropic
  :class:`GeneralizedMaxwell` is the Markovian embedding of the memory: a macro law with one
  strain-like internal variable per retained relaxation time.  Because a piecewise-linear
  strain history with steps :math:`\\Delta t = t_r` is a superposition of unit ramps,
  :math:`\\bar\\sigma(t_n) = \\sum_m \\Delta\\varepsilon_m\\,R(t_n - t_{m-1})` with :math:`R` the
  ramp response, the stress error of the fitted law on *any* such history is bounded by the fit
  residual :math:`\\max_k |R - R_{fit}|(t_k)` times the total variation
  :math:`\\sum_m |\\Delta\\varepsilon_m|`;
* extracts steady harmonic moduli from the response to :math:`\\varepsilon(t) =
  \\varepsilon_0\\sin\\omega t` (:func:`harmonic_modulus`: least squares of the last whole period
  on :math:`\\sin, \\cos`), and the closed-form storage and loss moduli of a Prony series,
  :math:`G^*(\\omega) = g_\\infty + \\sum_j g_j\\,\\frac{i\\omega\\tau_j}{1 + i\\omega\\tau_j}`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from multiscale.physics.viscoelasticity import GeneralizedMaxwell, MaxwellBranch

from .rve import RVEProblem, RVEResponse

__all__ = [
    "PronySeries",
    "RelaxationData",
    "StrainHistoryResponse",
    "composite_relaxation",
    "drive_rve",
    "fit_generalized_maxwell",
    "fit_prony",
    "harmonic_modulus",
    "harmonic_strain",
    "log_grid",
    "prony_basis",
    "ramp_hold_strain",
    "steady_amplitude",
]


@dataclass(slots=True)
class StrainHistoryResponse:
    """The RVE along a strain history: ``times`` (n + 1, from 0), macro ``strain`` and
    homogenized ``stress`` (n + 1, d, d; zero at t = 0), the volume-averaged ``dissipation`` of
    each step (n + 1; 0 at t = 0) and the final packed ``state``."""

    times: np.ndarray
    strain: np.ndarray
    stress: np.ndarray
    dissipation: np.ndarray
    state: np.ndarray


def ramp_hold_strain(
    direction: np.ndarray, amplitude: float, n_steps: int, ramp_steps: int = 1
) -> np.ndarray:
    """:math:`\\varepsilon(t_k) = \\varepsilon_0\\min(k/k_r, 1)\\,T` at :math:`k = 1..n`:
    (n, d, d)."""
    k = np.arange(1, int(n_steps) + 1)
    ramp = np.minimum(k / int(ramp_steps), 1.0)
    return float(amplitude) * ramp[:, None, None] * np.asarray(direction, dtype=float)


def harmonic_strain(
    direction: np.ndarray, amplitude: float, omega: float, dt: float, n_steps: int
) -> np.ndarray:
    """:math:`\\varepsilon(t_k) = \\varepsilon_0\\sin(\\omega k\\Delta t)\\,T`, k = 1..n."""
    t = dt * np.arange(1, int(n_steps) + 1)
    return float(amplitude) * np.sin(omega * t)[:, None, None] * np.asarray(direction, dtype=float)


def drive_rve(
    rve: RVEProblem,
    strains: np.ndarray,
    dt: float,
    *,
    on_step: Callable[[int, RVEResponse, np.ndarray], None] | None = None,
) -> StrainHistoryResponse:
    """Follow the macro strains ``strains`` (n, d, d) at :math:`t_k = k\\,\\Delta t` from a zero
    state (one RVE solve per step, each state committed; the phase laws' ``dt`` must be
    ``dt``).  ``on_step(k, response, state)`` sees every step.  Collective on the RVE's
    communicator."""
    strains = np.asarray(strains, dtype=float)
    n, d = len(strains), rve.dim
    stress = np.zeros((n + 1, d, d))
    dissipation = np.zeros(n + 1)
    state, guess = rve.initial_state(), None
    for k in range(n):
        response, state, guess = rve.solve(strains[k], state, guess, tangent=None)
        stress[k + 1] = response.flux
        dissipation[k + 1] = response.mean_state.get("dissipation", 0.0)
        if on_step is not None:
            on_step(k + 1, response, state)
    return StrainHistoryResponse(
        times=dt * np.arange(n + 1),
        strain=np.concatenate([np.zeros((1, d, d)), strains]),
        stress=stress,
        dissipation=dissipation,
        state=state,
    )


# -- Prony series ---------------------------------------------------------------------------------
def prony_basis(t: np.ndarray, taus: Sequence[float], t_ramp: float = 0.0) -> np.ndarray:
    """Columns: the responses at times ``t`` of the constant and of each :math:`e^{-t/\\tau_j}`
    to the unit ramp-and-hold of duration ``t_ramp`` (a unit step for ``t_ramp = 0``)."""
    t = np.asarray(t, dtype=float)[:, None]
    tau = np.asarray(taus, dtype=float)[None, :]
    if t_ramp == 0.0:
        return np.hstack([np.ones_like(t), np.exp(-t / tau)])
    tr = float(t_ramp)
    ramp = np.minimum(t / tr, 1.0)
    after = np.exp(-np.maximum(t - tr, 0.0) / tau)
    return np.hstack([ramp, tau / tr * (after - np.exp(-t / tau))])


@dataclass(slots=True, frozen=True)
class PronySeries:
    """:math:`G(t) = g_\\infty + \\sum_j g_j e^{-t/\\tau_j}`."""

    g_inf: float
    weights: np.ndarray
    taus: np.ndarray

    def relaxation(self, t: np.ndarray | float) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, dtype=float))
        return prony_basis(t, self.taus) @ np.concatenate([[self.g_inf], self.weights])

    def ramp_response(self, t: np.ndarray, t_ramp: float) -> np.ndarray:
        """Response to the unit strain ramped over ``t_ramp`` and held."""
        coef = np.concatenate([[self.g_inf], self.weights])
        return prony_basis(t, self.taus, t_ramp) @ coef

    def complex_modulus(self, omega: np.ndarray | float) -> np.ndarray:
        """:math:`G^*(\\omega) = G' + iG''` in closed form."""
        w = np.asarray(omega, dtype=float)[..., None]
        iwt = 1j * w * self.taus
        return self.g_inf + np.sum(self.weights * iwt / (1.0 + iwt), axis=-1)


def log_grid(t_min: float, t_max: float, per_decade: int) -> np.ndarray:
    """Relaxation times log-spaced from ``t_min`` to ``t_max``, ``per_decade`` a decade."""
    n = math.ceil(per_decade * math.log10(t_max / t_min)) + 1
    return np.logspace(math.log10(t_min), math.log10(t_max), n)


def fit_prony(
    t: np.ndarray, values: np.ndarray, taus: Sequence[float], t_ramp: float = 0.0
) -> PronySeries:
    """Non-negative least squares :math:`\\min_{g \\ge 0} \\|\\Phi g - y\\|_2` for the samples
    ``values`` of the relaxation function (``t_ramp = 0``) or of the ramp-and-hold response
    (see :func:`prony_basis`) on the fixed relaxation times ``taus``."""
    coef, _ = nnls(prony_basis(t, taus, t_ramp), np.asarray(values, dtype=float), maxiter=10**5)
    return PronySeries(float(coef[0]), coef[1:], np.asarray(taus, dtype=float))


# -- the composite --------------------------------------------------------------------------------
def _units(d: int) -> tuple[np.ndarray, np.ndarray]:
    shear = np.zeros((d, d))
    shear[0, 1] = shear[1, 0] = 0.5
    return shear, np.eye(d)


@dataclass(slots=True)
class RelaxationData:
    """Ramp-and-hold responses of the RVE at ``times`` (k dt, k = 1..n) per unit strain:
    ``shear`` :math:`\\bar\\sigma_{12}/\\gamma` for :math:`\\bar\\varepsilon_{12} =
    \\gamma/2` (an effective :math:`\\mu`), ``dilatation`` :math:`\\mathrm{tr}\\bar\\sigma /
    (d\\,\\mathrm{tr}\\bar\\varepsilon)` for :math:`\\bar\\varepsilon = e\\,I` (an effective
    :math:`\\kappa + \\mu(2/d - 2/3)`: :math:`\\lambda + \\mu` in plane strain, :math:`\\kappa` in
    3D), ``t_ramp`` the ramp duration."""

    times: np.ndarray
    shear: np.ndarray
    dilatation: np.ndarray
    t_ramp: float


def composite_relaxation(
    rve: RVEProblem, dt: float, n_steps: int, *, amplitude: float = 1e-3, ramp_steps: int = 1
) -> RelaxationData:
    """Two ramp-and-hold histories of the RVE (in-plane shear, dilatation); see
    :class:`RelaxationData`."""
    d = rve.dim
    shear_T, dil_T = _units(d)
    shear = drive_rve(rve, ramp_hold_strain(shear_T, amplitude, n_steps, ramp_steps), dt)
    dil = drive_rve(rve, ramp_hold_strain(dil_T, amplitude, n_steps, ramp_steps), dt)
    return RelaxationData(
        times=shear.times[1:],
        shear=shear.stress[1:, 0, 1] / amplitude,
        dilatation=np.trace(dil.stress[1:], axis1=1, axis2=2) / (d * d * amplitude),
        t_ramp=ramp_steps * dt,
    )


def fit_generalized_maxwell(
    data: RelaxationData, taus: Sequence[float], dim: int, dt: float
) -> tuple[GeneralizedMaxwell, dict[str, float]]:
    """The isotropic generalized Maxwell solid whose shear and dilatation ramp responses fit
    ``data`` best, with :math:`\\kappa_j, \\mu_j \\ge 0` on the relaxation times ``taus``: one
    NNLS on the stacked system

    .. math::
        \\begin{pmatrix} 0 & \\Phi \\\\ \\Phi & c\\,\\Phi \\end{pmatrix}
        \\begin{pmatrix} \\kappa \\\\ \\mu \\end{pmatrix}
        \\approx \\begin{pmatrix} R_\\mu \\\\ R_d \\end{pmatrix}, \\qquad c = \\frac2d - \\frac23,

    (:math:`\\Phi` from :func:`prony_basis`; weights ``(inf, tau_1, ...)``).  Only the loadings
    in the span of in-plane shear and dilatation are reproduced by an isotropic law: a cell of
    square symmetry has a third independent modulus.  Returns the law (branches with both
    weights zero dropped) and the maximum absolute residuals ``shear``, ``dilatation``."""
    Phi = prony_basis(data.times, taus, data.t_ramp)
    c = 2.0 / dim - 2.0 / 3.0
    A = np.block([[np.zeros_like(Phi), Phi], [Phi, c * Phi]])
    y = np.concatenate([data.shear, data.dilatation])
    coef, _ = nnls(A, y, maxiter=10**5)
    n = Phi.shape[1]
    kappa, mu = coef[:n], coef[n:]
    branches = tuple(
        MaxwellBranch(k, m, tau)
        for k, m, tau in zip(kappa[1:], mu[1:], taus, strict=True)
        if k > 0.0 or m > 0.0
    )
    law = GeneralizedMaxwell(kappa[0], mu[0], branches, dt)
    residual = A @ coef - y
    m = len(data.times)
    return law, {
        "shear": float(np.max(np.abs(residual[:m]))),
        "dilatation": float(np.max(np.abs(residual[m:]))),
    }


def steady_amplitude(t: np.ndarray, signal: np.ndarray, omega: float) -> complex:
    """:math:`A + iB` of the least-squares fit :math:`A\\sin\\omega t + B\\cos\\omega t` of
    ``signal`` at times ``t`` (the last whole period, say)."""
    M = np.column_stack([np.sin(omega * t), np.cos(omega * t)])
    (a, b), *_ = np.linalg.lstsq(M, signal, rcond=None)
    return complex(a, b)


def harmonic_modulus(
    rve: RVEProblem,
    direction: np.ndarray,
    omega: float,
    steps_per_period: int,
    periods: int,
    *,
    amplitude: float = 1e-3,
) -> np.ndarray:
    """Complex stress amplitude per unit strain amplitude, :math:`S_{ij}` with
    :math:`\\bar\\sigma_{ij} \\to \\mathrm{Im}(S_{ij}\\varepsilon_0 e^{i\\omega t})`, under
    :math:`\\bar\\varepsilon = \\varepsilon_0 \\sin(\\omega t)\\,T` after ``periods - 1`` periods of
    transient (``dt = 2 pi / (omega steps_per_period)`` must be the laws' step).  Exact for
    the piecewise-linear interpolant of the sine the solver follows, whose fundamental is
    :math:`\\mathrm{sinc}^2(\\omega\\Delta t/2)` times the sine's: an
    :math:`O((\\omega\\Delta t)^2)` discretization error."""
    n = int(steps_per_period)
    dt = 2.0 * math.pi / (omega * n)
    run = drive_rve(rve, harmonic_strain(direction, amplitude, omega, dt, periods * n), dt)
    t, s = run.times[-n:], run.stress[-n:]
    d = rve.dim
    S = np.zeros((d, d), dtype=complex)
    for i in range(d):
        for j in range(d):
            S[i, j] = steady_amplitude(t, s[:, i, j], omega) / amplitude
    return S
