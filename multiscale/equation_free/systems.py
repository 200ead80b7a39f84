r"""Model micro simulators with fast and slow time scales (inner forward Euler steps), for tests,
demos and the benchmark.

* :class:`LinearSystem` -- :math:`u' = A u`; with identity lifting and restriction each eigenmode
  of a projective step is multiplied by the closed-form factor of
  :func:`~multiscale.equation_free.core.amplification_factor`.
* :class:`FastSlowReaction` -- slow :math:`x \in \mathbb R^n`, fast :math:`y \in \mathbb R^n`:

  .. math::
      x' = b - B x - x^3 + c\,(y - x^2), \qquad y' = (x^2 - y)/\varepsilon,

  :math:`B = I + \beta\,\mathrm{tridiag}(-1, 2, -1)` (SPD) and :math:`b = B x^* + x^{*3}`, so the
  steady state is :math:`(x^*, x^{*2})` with :math:`x^*_i = 1 + \tfrac12\sin(\pi i/(n+1))`,
  :math:`i = 1..n` (unique: :math:`B + 3\,\mathrm{diag}(x^2)` is positive definite).  The coarse
  variables are :math:`x`; lifting sets :math:`y` from a reference state (or 0), so healing steps
  relax :math:`y` towards :math:`x^2` at frozen :math:`x`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["FastSlowReaction", "LinearSystem"]


@dataclass(frozen=True)
class LinearSystem:
    """:math:`u' = A u`, inner forward Euler; states may be batched along leading axes."""

    A: np.ndarray

    def advance(self, state: np.ndarray, dt: float) -> np.ndarray:
        return state + dt * (state @ self.A.T)

    @staticmethod
    def lift(U: np.ndarray, reference: object = None) -> np.ndarray:
        return np.array(U, dtype=float)

    @staticmethod
    def restrict(state: np.ndarray) -> np.ndarray:
        return np.array(state, dtype=float)


@dataclass(frozen=True)
class FastSlowReaction:
    """The nonlinear fast–slow system of the module docstring (state ``[x, y]``, length 2n)."""

    n: int = 8
    eps: float = 1e-3
    beta: float = 1.0
    c: float = 1.0
    x_star: np.ndarray = field(init=False)
    b: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        i = np.arange(1, self.n + 1)
        x = 1.0 + 0.5 * np.sin(np.pi * i / (self.n + 1))
        object.__setattr__(self, "x_star", x)
        object.__setattr__(self, "b", self.apply_B(x) + x**3)

    def apply_B(self, x: np.ndarray) -> np.ndarray:
        """:math:`B x` (vectorized, last axis)."""
        Lx = 2.0 * x
        Lx[..., 1:] -= x[..., :-1]
        Lx[..., :-1] -= x[..., 1:]
        return x + self.beta * Lx

    def rhs(self, state: np.ndarray) -> np.ndarray:
        x, y = state[..., : self.n], state[..., self.n :]
        fx = self.b - self.apply_B(x) - x**3 + self.c * (y - x**2)
        return np.concatenate([fx, (x**2 - y) / self.eps], axis=-1)

    def advance(self, state: np.ndarray, dt: float) -> np.ndarray:
        return state + dt * self.rhs(state)

    def lift(self, U: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        y = np.zeros_like(U) if reference is None else reference[..., self.n :]
        return np.concatenate([U, y], axis=-1)

    def restrict(self, state: np.ndarray) -> np.ndarray:
        return np.array(state[..., : self.n])
