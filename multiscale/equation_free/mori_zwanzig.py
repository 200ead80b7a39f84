r"""Memory from an eliminated variable: the Mori–Zwanzig form of a linear system.

The full system

.. math::
    x' = -a\,x + b\,y, \qquad y' = c\,x - g\,y

is solved for :math:`y` by variation of constants,
:math:`y(t) = e^{-gt} y_0 + c\int_0^t e^{-g(t-s)} x(s)\,ds`, so the resolved variable obeys the
generalized Langevin equation (GLE)

.. math::
    x'(t) = -a\,x(t) + \int_0^t K(t-s)\,x(s)\,ds + F(t), \qquad
    K(t) = b\,c\,e^{-gt}, \quad F(t) = b\,e^{-gt} y_0,

exactly: an instantaneous term, a memory kernel and a "noise" fixed by the unresolved initial
state.  Replacing the kernel by its integral (:math:`\int_0^\infty K = bc/g`, memory shorter than
the resolved time scale) gives the Markovian approximation

.. math::
    x' = \big(-a + bc/g\big)\,x + F(t),

which is accurate when :math:`g \gg a` and fails when the time scales are comparable.

:func:`solve_gle` integrates a GLE by convolution quadrature: the trapezoidal rule both for the
time derivative and for the memory integral on the same grid, implicit in the new value, so the
scheme is second order for smooth kernels (cost :math:`O(n^2)` for :math:`n` steps, one dot
product per step).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["LinearBath", "solve_gle"]


@dataclass(frozen=True, slots=True)
class LinearBath:
    """The linear system of the module docstring with rates ``a``, ``b``, ``c``, ``g``."""

    a: float
    b: float
    c: float
    g: float

    def kernel(self, t: np.ndarray) -> np.ndarray:
        """:math:`K(t) = b\\,c\\,e^{-gt}`."""
        return self.b * self.c * np.exp(-self.g * np.asarray(t))

    def forcing(self, t: np.ndarray, y0: float) -> np.ndarray:
        """:math:`F(t) = b\\,e^{-gt} y_0`."""
        return self.b * y0 * np.exp(-self.g * np.asarray(t))

    @property
    def markov_rate(self) -> float:
        """:math:`\\mu = -a + bc/g`."""
        return -self.a + self.b * self.c / self.g

    def markovian(self, t: np.ndarray, x0: float, y0: float) -> np.ndarray:
        """Closed-form solution of :math:`x' = \\mu x + F(t)`:
        :math:`x = e^{\\mu t}x_0 + b y_0 (e^{-gt} - e^{\\mu t})/(\\mu + g)`."""
        t = np.asarray(t, dtype=float)
        mu = self.markov_rate
        if math.isclose(mu, -self.g):
            return np.exp(mu * t) * (x0 + self.b * y0 * t)
        return np.exp(mu * t) * x0 + self.b * y0 * (np.exp(-self.g * t) - np.exp(mu * t)) / (
            mu + self.g
        )

    def gle(self, t_end: float, steps: int, x0: float, y0: float) -> tuple[np.ndarray, np.ndarray]:
        """The GLE with the exact kernel and forcing by :func:`solve_gle`."""
        return solve_gle(self.a, self.kernel, lambda t: self.forcing(t, y0), x0, t_end, steps)


def solve_gle(
    a: float,
    kernel: Callable[[np.ndarray], np.ndarray],
    forcing: Callable[[np.ndarray], np.ndarray],
    x0: float,
    t_end: float,
    steps: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Trapezoidal convolution quadrature for :math:`x' = -a x + \\int_0^t K(t-s)x(s)ds + F(t)`
    on ``steps`` uniform steps of :math:`[0, t_{end}]`: the times and :math:`x` there.

    With :math:`I_m \\approx \\int_0^{t_m} K(t_m - s)x(s)ds` by the trapezoidal rule on the grid,
    :math:`x_{m+1} = x_m + \\tfrac{\\delta t}{2}(f_m + f_{m+1})`,
    :math:`f_m = -a x_m + I_m + F(t_m)`, solved for :math:`x_{m+1}` (it enters :math:`I_{m+1}`
    with weight :math:`\\delta t\\,K(0)/2`).
    """
    n = int(steps)
    dt = float(t_end) / n
    t = dt * np.arange(n + 1)
    K = np.asarray(kernel(t), dtype=float)
    F = np.asarray(forcing(t), dtype=float)
    x = np.zeros(n + 1)
    x[0] = x0
    f = -a * x0 + F[0]
    denominator = 1.0 + 0.5 * dt * (a - 0.5 * dt * K[0])
    for m in range(n):
        # memory integral at t_{m+1} without the unknown's own term
        partial = dt * (0.5 * K[m + 1] * x[0] + np.dot(K[m:0:-1], x[1 : m + 1]))
        x[m + 1] = (x[m] + 0.5 * dt * (f + partial + F[m + 1])) / denominator
        f = -a * x[m + 1] + partial + 0.5 * dt * K[0] * x[m + 1] + F[m + 1]
    return t, x
