r"""Phenomenological ionic models of cardiac cells: two variables, a transmembrane potential
:math:`v` and a recovery (gating) variable :math:`w`.

A model gives the ionic current :math:`I_{ion}(v, w)` and the recovery rate :math:`g(v, w)` of

.. math::
    C_m\,\frac{dv}{dt} = -I_{ion}(v, w) + I_{stim}, \qquad \frac{dw}{dt} = g(v, w),

in the model's own (mostly nondimensional) units, with :math:`C_m = 1` in those units.  Both
functions are vectorised: they take NumPy arrays (the degrees of freedom of a finite element
potential, say) and return arrays of the same shape, so the reaction step of a monodomain solver
is one call per time step (see :class:`multiscale.tissue.MonodomainSolver`).

* :class:`AlievPanfilov` (Aliev & Panfilov 1996): the cubic (Nagumo) excitation of FitzHugh type
  with a recovery rate that makes the restitution realistic;
* :class:`MitchellSchaeffer` (Mitchell & Schaeffer 2003): an inward and an outward current with
  one gate, whose parameters are time constants in milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .base import check_positive

__all__ = ["AlievPanfilov", "IonicModel", "MitchellSchaeffer"]


@runtime_checkable
class IonicModel(Protocol):
    """What a monodomain solver needs of an ionic model."""

    def current(self, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The ionic current :math:`I_{ion}(v, w)` (outward positive)."""
        ...

    def rate(self, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The recovery rate :math:`g(v, w) = dw/dt`."""
        ...

    @property
    def rest(self) -> tuple[float, float]:
        """The resting state :math:`(v_r, w_r)`: :math:`I_{ion} = g = 0` there."""
        ...

    @property
    def threshold(self) -> float:
        """A potential crossed once by every upstroke, for activation times (mid-upstroke)."""
        ...


@dataclass(slots=True, frozen=True)
class AlievPanfilov:
    r"""The Aliev–Panfilov model (R. R. Aliev, A. V. Panfilov, *A simple two-variable model of
    cardiac excitation*, Chaos, Solitons & Fractals 7 (1996) 293–301), nondimensional:

    .. math::
        I_{ion}(v, w) = k\,v\,(v - a)(v - 1) + v\,w, \qquad
        g(v, w) = \Big(\varepsilon_0 + \frac{\mu_1 w}{v + \mu_2}\Big)
                  \big(-w - k\,v\,(v - a - 1)\big).

    Defaults are the published ones: :math:`k = 8`, :math:`a = 0.15`,
    :math:`\varepsilon_0 = 0.002`, :math:`\mu_1 = 0.2`, :math:`\mu_2 = 0.3`.  The paper's units:
    time :math:`t[\mathrm{ms}] = 12.9\,t`, potential :math:`V[\mathrm{mV}] = 100\,v - 80`.
    Rest is :math:`(0, 0)`.

    Ahead of a front :math:`w = 0` and :math:`w` grows at the slow rate :math:`\varepsilon_0`
    through the upstroke, so the front is nearly that of Nagumo's equation
    :math:`v_t = D v_{xx} - k v (v - a)(v - 1)`, whose travelling front has the closed-form speed
    :meth:`nagumo_speed` :math:`c = \sqrt{kD/2}\,(1 - 2a)`.
    """

    k: float = 8.0
    a: float = 0.15
    epsilon0: float = 0.002
    mu1: float = 0.2
    mu2: float = 0.3

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", check_positive("Aliev-Panfilov k", self.k))
        a = float(self.a)
        if not 0.0 < a < 0.5:
            raise ValueError(
                f"Aliev-Panfilov excitation threshold a must lie in (0, 0.5), got {a!r}"
            )
        object.__setattr__(self, "a", a)
        object.__setattr__(
            self, "epsilon0", check_positive("Aliev-Panfilov epsilon0", self.epsilon0)
        )
        mu1 = float(self.mu1)
        if not (math.isfinite(mu1) and mu1 >= 0.0):
            raise ValueError(f"Aliev-Panfilov mu1 must be finite and >= 0, got {self.mu1!r}")
        object.__setattr__(self, "mu1", mu1)
        object.__setattr__(self, "mu2", check_positive("Aliev-Panfilov mu2", self.mu2))

    def current(self, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        return self.k * v * (v - self.a) * (v - 1.0) + v * w

    def rate(self, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        eps = self.epsilon0 + self.mu1 * w / (v + self.mu2)
        return eps * (-w - self.k * v * (v - self.a - 1.0))

    @property
    def rest(self) -> tuple[float, float]:
        return 0.0, 0.0

    @property
    def threshold(self) -> float:
        return 0.5

    def nagumo_speed(self, diffusivity: float) -> float:
        r"""Speed :math:`\sqrt{kD/2}\,(1 - 2a)` of the front of :math:`v_t = D v_{xx} - k v (v -
        a)(v - 1)` (the model with :math:`w \equiv 0`), :math:`D = \sigma/(\chi C_m)`: the plane
        wave speed of the model up to the slow recovery during the upstroke."""
        d = check_positive("diffusivity", diffusivity)
        return math.sqrt(self.k * d / 2.0) * (1.0 - 2.0 * self.a)


@dataclass(slots=True, frozen=True)
class MitchellSchaeffer:
    r"""The Mitchell–Schaeffer model (C. C. Mitchell, D. G. Schaeffer, *A two-current model for
    the dynamics of cardiac membrane*, Bull. Math. Biol. 65 (2003) 767–793), potential
    normalised to :math:`[0, 1]`, time in milliseconds:

    .. math::
        I_{ion}(v, w) = -\frac{w\,v^2 (1 - v)}{\tau_{in}} + \frac{v}{\tau_{out}}, \qquad
        g(v, w) = \begin{cases} (1 - w)/\tau_{open} & v < v_{gate} \\
                                -w/\tau_{close} & v \ge v_{gate} \end{cases}

    Defaults are the published ones: :math:`\tau_{in} = 0.3`, :math:`\tau_{out} = 6`,
    :math:`\tau_{open} = 120`, :math:`\tau_{close} = 150` ms, :math:`v_{gate} = 0.13`.  Rest is
    :math:`(0, 1)`.
    """

    tau_in: float = 0.3
    tau_out: float = 6.0
    tau_open: float = 120.0
    tau_close: float = 150.0
    v_gate: float = 0.13

    def __post_init__(self) -> None:
        for name in ("tau_in", "tau_out", "tau_open", "tau_close"):
            object.__setattr__(
                self, name, check_positive(f"Mitchell-Schaeffer {name}", getattr(self, name))
            )
        if self.tau_in >= self.tau_out:
            raise ValueError(
                f"Mitchell-Schaeffer needs tau_in < tau_out (the cell must be excitable), got "
                f"tau_in={self.tau_in!r}, tau_out={self.tau_out!r}"
            )
        v_gate = float(self.v_gate)
        if not 0.0 < v_gate < 1.0:
            raise ValueError(f"Mitchell-Schaeffer v_gate must lie in (0, 1), got {self.v_gate!r}")
        object.__setattr__(self, "v_gate", v_gate)

    def current(self, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        return -w * v * v * (1.0 - v) / self.tau_in + v / self.tau_out

    def rate(self, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        return np.where(v < self.v_gate, (1.0 - w) / self.tau_open, -w / self.tau_close)

    @property
    def rest(self) -> tuple[float, float]:
        return 0.0, 1.0

    @property
    def threshold(self) -> float:
        return 0.5
