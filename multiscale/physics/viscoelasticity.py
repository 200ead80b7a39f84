"""Small-strain linear viscoelasticity: the generalized Maxwell (Prony) solid.

An equilibrium spring :math:`\\mathbb C_\\infty` in parallel with :math:`N` Maxwell branches
(spring :math:`\\mathbb C_i` in series with a dashpot of relaxation time :math:`\\tau_i`), all
isotropic and given by bulk and shear moduli :math:`(\\kappa, \\mu)`:

.. math::
    \\mathbb C : e = \\kappa\\,\\mathrm{tr}(e)\\,I + 2\\mu\\,\\mathrm{dev}(e), \\qquad
    G(t) = \\mathbb C_\\infty + \\sum_i \\mathbb C_i\\,e^{-t/\\tau_i}
    \\quad\\text{(relaxation tensor)},

so :math:`\\sigma(t) = \\int_0^t G(t-s) : \\dot\\varepsilon(s)\\,ds`.  Branch :math:`i` carries
the elastic strain :math:`e_i = \\varepsilon - \\varepsilon^v_i` of its spring, its stress is
:math:`\\mathbb C_i : e_i`, and its dashpot flows as :math:`\\dot\\varepsilon^v_i = e_i/\\tau_i`, so

.. math::
    \\dot e_i = \\dot\\varepsilon - e_i/\\tau_i, \\qquad
    \\sigma = \\mathbb C_\\infty : \\varepsilon + \\sum_i \\mathbb C_i : e_i .

**Exact update.**  Over a step of length :math:`\\Delta t` in which the strain varies linearly,
:math:`\\dot\\varepsilon = \\Delta\\varepsilon/\\Delta t` with :math:`\\Delta\\varepsilon =
\\varepsilon_{n+1} - \\varepsilon_n`, the linear ODE integrates in closed form; with
:math:`x_i = \\Delta t/\\tau_i` and the dimensionless time :math:`\\theta = s/\\tau_i \\in
[0, x_i]` inside the step,

.. math::
    e_i(\\theta) = e_{i,n}\\,e^{-\\theta} + \\Delta\\varepsilon\\,\\frac{1 - e^{-\\theta}}{x_i},
    \\qquad
    e_{i,n+1} = a_i\\,e_{i,n} + b_i\\,\\Delta\\varepsilon, \\quad
    a_i = e^{-x_i}, \\quad b_i = \\frac{1 - e^{-x_i}}{x_i},

which is the recursive convolution :math:`h_{n+1} = e^{-\\Delta t/\\tau}h_n +
\\tfrac{\\tau}{\\Delta t}(1 - e^{-\\Delta t/\\tau})\\,\\mathbb C_i:\\Delta\\varepsilon` for the
branch stress :math:`h = \\mathbb C_i : e_i`: exact (no time-discretization error) for
piecewise-linear strain histories.  The algorithmic tangent
:math:`\\partial\\sigma_{n+1}/\\partial\\varepsilon_{n+1} = \\mathbb C_\\infty + \\sum_i b_i
\\mathbb C_i` is constant for a given :math:`\\Delta t` and symmetric (UFL derives it).

**Dissipation.**  The dashpots dissipate :math:`\\mathbb C_i:e_i : \\dot\\varepsilon^v_i =
e_i:\\mathbb C_i:e_i/\\tau_i \\ge 0`; over the step, with the exact :math:`e_i(\\theta)`,

.. math::
    \\mathcal D_{n+1} = \\sum_i \\int_0^{x_i} e_i:\\mathbb C_i:e_i\\,d\\theta
    = \\sum_i m_{00}\\,Q_i\\Big(e_{i,n} + \\tfrac{m_{01}}{m_{00}}\\Delta\\varepsilon\\Big)
      + \\Big(m_{11} - \\tfrac{m_{01}^2}{m_{00}}\\Big)\\,Q_i(\\Delta\\varepsilon),

with :math:`Q_i(e) = e:\\mathbb C_i:e = \\kappa_i\\,\\mathrm{tr}(e)^2 + 2\\mu_i\\,
\\mathrm{dev}(e):\\mathrm{dev}(e)` and the Gram integrals of :math:`\\phi_0 = e^{-\\theta}`,
:math:`\\phi_1 = (1 - e^{-\\theta})/x`:

.. math::
    m_{00} = \\frac{1 - e^{-2x}}{2}, \\quad m_{01} = \\frac{(1 - e^{-x})^2}{2x}, \\quad
    m_{11} = \\frac{x - 2(1 - e^{-x}) + (1 - e^{-2x})/2}{x^2}.

The Schur complement :math:`m_{11} - m_{01}^2/m_{00} \\ge 0` (Cauchy–Schwarz), so the formula is
a sum of non-negative terms: :math:`\\mathcal D \\ge 0` holds to the last bit (second law), not
only up to round-off.  Reversible limits: :math:`\\tau_i = \\infty` (an elastic branch,
:math:`x = 0`: all :math:`m = 0`) and :math:`\\tau_i = 0` (a branch that never carries stress)
dissipate exactly nothing.  :math:`\\mathcal D_{n+1}` is stored as the scalar internal variable
``"dissipation"`` (energy per unit volume dissipated in the step that led to the state), so the
RVE reports its volume average in :attr:`RVEResponse.mean_state
<multiscale.cell.rve.RVEResponse>`.

**Time.**  The law carries its time step ``dt`` (a float field, like the moduli): the solver
advances one step of ``dt`` per solve (RVE) or per load step (FE², its DNS), so a history must
be followed with uniform steps of that length; use :meth:`GeneralizedMaxwell.with_dt` for
another step, and ``max_cuts=0`` in load-stepped solvers (a cut step would not be ``dt`` long).

**Plane strain** (2D): the strain is the in-plane part of a plane-strain state; since
:math:`\\varepsilon_{33} = 0` at all times, :math:`e_{i,33} = 0` too, and the in-plane stress is
:math:`(\\kappa - \\tfrac23\\mu)\\,\\mathrm{tr}(e)\\,I + 2\\mu\\,e` with the 2D trace, the 3D
:math:`\\mathrm{dev}` acting on the embedded tensor.

Internal variables (zero initially): ``visco_eps`` (the strain of the committed step, d x d),
``visco_e<i>`` (branch elastic strains, d x d) and ``dissipation`` (scalar).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import ufl

from .base import Kind, check_positive

__all__ = ["GeneralizedMaxwell", "MaxwellBranch", "step_coefficients"]


def _nonneg(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v < 0.0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return v


@dataclass(slots=True, frozen=True)
class MaxwellBranch:
    """One Maxwell branch: bulk ``kappa`` and shear ``mu`` moduli (>= 0) of its spring and the
    relaxation time ``tau`` of its dashpot (>= 0; ``math.inf`` is an elastic branch)."""

    kappa: float
    mu: float
    tau: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "kappa", _nonneg("branch bulk modulus kappa", self.kappa))
        object.__setattr__(self, "mu", _nonneg("branch shear modulus mu", self.mu))
        tau = float(self.tau)
        if math.isnan(tau) or tau < 0.0:
            raise ValueError(f"relaxation time tau must be >= 0 (inf allowed), got {self.tau!r}")
        object.__setattr__(self, "tau", tau)

    @classmethod
    def from_young(cls, E: float, nu: float, tau: float) -> MaxwellBranch:
        """Spring from Young's modulus and Poisson's ratio: :math:`\\kappa = E/(3(1-2\\nu))`,
        :math:`\\mu = E/(2(1+\\nu))`."""
        E = check_positive("branch Young's modulus E", E)
        if not -1.0 < float(nu) < 0.5:
            raise ValueError(f"Poisson's ratio nu must lie in (-1, 0.5), got {nu!r}")
        return cls(E / (3.0 * (1.0 - 2.0 * nu)), E / (2.0 * (1.0 + nu)), tau)


def _m11(x: float) -> float:
    """:math:`(x - 2(1 - e^{-x}) + (1 - e^{-2x})/2)/x^2`, by its Taylor series for small x
    (:math:`\\sum_{n\\ge3} (-1)^n (2 - 2^{n-1}) x^{n-2}/n!`, no cancellation)."""
    if x < 0.1:
        return sum(
            (-1) ** n * (2.0 - 2.0 ** (n - 1)) * x ** (n - 2) / math.factorial(n)
            for n in range(3, 22)
        )
    return (x + 2.0 * math.expm1(-x) - 0.5 * math.expm1(-2.0 * x)) / (x * x)


def step_coefficients(dt: float, tau: float) -> tuple[float, float, float, float, float]:
    """For :math:`x = \\Delta t/\\tau`: the update coefficients :math:`a = e^{-x}`,
    :math:`b = (1 - e^{-x})/x` and the dissipation coefficients :math:`m_{00}`,
    :math:`c = m_{01}/m_{00}` and :math:`s = m_{11} - m_{01}^2/m_{00}` (see the module);
    the limits :math:`\\tau = \\infty` (``(1, 1, 0, 0, 0)``) and :math:`\\tau = 0`
    (``(0, 0, 1/2, 0, 0)``) exactly."""
    if math.isinf(tau):
        return 1.0, 1.0, 0.0, 0.0, 0.0
    x = dt / tau if tau > 0.0 else math.inf
    if math.isinf(x):
        return 0.0, 0.0, 0.5, 0.0, 0.0
    a = math.exp(-x)
    b = -math.expm1(-x) / x
    m00 = -0.5 * math.expm1(-2.0 * x)
    m01 = 0.5 * math.expm1(-x) ** 2 / x
    s = max(_m11(x) - m01 * m01 / m00, 0.0)
    return a, b, m00, m01 / m00, s


def _embed3(e: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
    if e.ufl_shape[0] == 3:
        return e
    return ufl.as_matrix([[e[0, 0], e[0, 1], 0], [e[1, 0], e[1, 1], 0], [0, 0, 0]])


def _stress(kappa: float, mu: float, e: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
    """:math:`\\mathbb C : e` in dimension d (plane strain in 2D)."""
    d = e.ufl_shape[0]
    return (kappa - 2.0 * mu / 3.0) * ufl.tr(e) * ufl.Identity(d) + 2.0 * mu * e


def _energy(kappa: float, mu: float, e: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
    """:math:`Q(e) = \\kappa\\,\\mathrm{tr}(e)^2 + 2\\mu\\,\\mathrm{dev}(e):\\mathrm{dev}(e)`,
    a sum of non-negative terms."""
    e3 = _embed3(e)
    dev = ufl.dev(e3)
    return kappa * ufl.tr(e3) ** 2 + 2.0 * mu * ufl.inner(dev, dev)


@dataclass(slots=True, frozen=True)
class GeneralizedMaxwell:
    """Generalized Maxwell solid: equilibrium bulk ``kappa`` and shear ``mu`` moduli (>= 0),
    Maxwell ``branches`` (:class:`MaxwellBranch` or ``(kappa_i, mu_i, tau_i)`` triples) and the
    time step ``dt`` (> 0) of the histories it follows.  The instantaneous moduli
    :math:`\\kappa_0 = \\kappa + \\sum\\kappa_i`, :math:`\\mu_0 = \\mu + \\sum\\mu_i` must be
    positive.  No branches: linear elasticity (with internal variables that stay zero)."""

    kappa: float
    mu: float
    branches: tuple[MaxwellBranch, ...] = ()
    dt: float = 1.0
    kind: ClassVar[Kind] = "strain"
    #: the algorithmic tangent C_inf + sum b_i C_i is symmetric (and constant for a given dt)
    symmetric: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "kappa", _nonneg("equilibrium bulk modulus kappa", self.kappa))
        object.__setattr__(self, "mu", _nonneg("equilibrium shear modulus mu", self.mu))
        branches = tuple(
            b if isinstance(b, MaxwellBranch) else MaxwellBranch(*b) for b in self.branches
        )
        object.__setattr__(self, "branches", branches)
        object.__setattr__(self, "dt", check_positive("time step dt", self.dt))
        k0, m0 = self.instantaneous
        if k0 <= 0.0 or m0 <= 0.0:
            raise ValueError(
                f"instantaneous bulk and shear moduli must be positive, got {k0!r}, {m0!r}"
            )

    @classmethod
    def standard_linear_solid(
        cls, kappa: float, mu: float, kappa1: float, mu1: float, tau: float, dt: float
    ) -> GeneralizedMaxwell:
        """The one-branch case (Zener model)."""
        return cls(kappa, mu, (MaxwellBranch(kappa1, mu1, tau),), dt)

    def with_dt(self, dt: float) -> GeneralizedMaxwell:
        """The same solid followed with time step ``dt``."""
        return replace(self, dt=dt)

    @property
    def instantaneous(self) -> tuple[float, float]:
        """:math:`(\\kappa_0, \\mu_0)`: the moduli of a sudden strain."""
        return (
            self.kappa + sum(b.kappa for b in self.branches),
            self.mu + sum(b.mu for b in self.branches),
        )

    # -- closed forms (numpy) ---------------------------------------------------------------------
    def relaxation(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """:math:`\\kappa(t) = \\kappa + \\sum_i \\kappa_i e^{-t/\\tau_i}` and :math:`\\mu(t)`."""
        t = np.asarray(t, dtype=float)
        k, m = np.full_like(t, self.kappa), np.full_like(t, self.mu)
        for b in self.branches:
            decay = np.exp(-t / b.tau) if b.tau > 0.0 else (t <= 0.0).astype(float)
            k, m = k + b.kappa * decay, m + b.mu * decay
        return k, m

    def complex_moduli(self, omega: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Steady harmonic moduli :math:`\\kappa^*(\\omega) = \\kappa + \\sum_i \\kappa_i\\,
        \\frac{i\\omega\\tau_i}{1 + i\\omega\\tau_i}` and :math:`\\mu^*(\\omega)` (storage =
        real part, loss = imaginary part; strain :math:`\\mathrm{Im}(\\varepsilon_0
        e^{i\\omega t})`)."""
        w = np.asarray(omega, dtype=float)
        k, m = np.full(w.shape, self.kappa, complex), np.full(w.shape, self.mu, complex)
        for b in self.branches:
            r = 1.0 if math.isinf(b.tau) else 1j * w * b.tau / (1.0 + 1j * w * b.tau)
            k, m = k + b.kappa * r, m + b.mu * r
        return k, m

    # -- the HistoryMaterial interface -------------------------------------------------------------
    def state_shapes(self, dim: int) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {"visco_eps": (dim, dim)}
        shapes.update({f"visco_e{i}": (dim, dim) for i in range(len(self.branches))})
        shapes["dissipation"] = ()
        return shapes

    def _branch_strains(self, eps: ufl.core.expr.Expr, state: dict) -> Iterable[tuple]:
        """``(branch, coefficients, e_n, e_{n+1})`` of every branch."""
        deps = eps - state["visco_eps"]
        for i, b in enumerate(self.branches):
            coef = step_coefficients(self.dt, b.tau)
            e_n = state[f"visco_e{i}"]
            a, bb = coef[:2]
            # tau = 0: an exact zero the form compiler keeps (UFL folds 0 * e_n to a Zero,
            # which has no domain to compile on)
            yield b, coef, e_n, (e_n - e_n) if a == bb == 0.0 else a * e_n + bb * deps

    def flux(self, eps: ufl.core.expr.Expr, state: dict) -> ufl.core.expr.Expr:
        sigma = _stress(self.kappa, self.mu, eps)
        for b, _, _, e_new in self._branch_strains(eps, state):
            sigma = sigma + _stress(b.kappa, b.mu, e_new)
        return sigma

    def updated_state(self, eps: ufl.core.expr.Expr, state: dict) -> dict[str, ufl.core.expr.Expr]:
        deps = eps - state["visco_eps"]
        new: dict[str, ufl.core.expr.Expr] = {"visco_eps": eps}
        dissipation = state["dissipation"] - state["dissipation"]  # an exact 0, kept by UFL
        for i, (b, coef, e_n, e_new) in enumerate(self._branch_strains(eps, state)):
            new[f"visco_e{i}"] = e_new
            _, _, m00, c, s = coef
            if m00 > 0.0:
                dissipation = dissipation + m00 * _energy(b.kappa, b.mu, e_n + c * deps)
            if s > 0.0:
                dissipation = dissipation + s * _energy(b.kappa, b.mu, deps)
        new["dissipation"] = dissipation
        return new
