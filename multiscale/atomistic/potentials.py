r"""Pair potentials :math:`\phi(r)` for Cauchy–Born laws and lattice stability.

A pair potential is a small frozen dataclass, validated in ``__post_init__``, with

* ``phi(r)``: the energy of a pair at distance :math:`r`, written with operations that work on
  NumPy arrays (real or complex, for complex-step derivatives) *and* on UFL expressions:
  arithmetic, powers and the helpers :func:`exp` and :func:`where` of this module, which
  dispatch on the argument's type;
* ``dphi(r)``, ``d2phi(r)``: :math:`\phi'(r)` and :math:`\phi''(r)` for NumPy arrays;
* ``r_eq``: the separation of least pair energy (a length scale: where the search for the
  relaxed lattice constant starts).

A user adds a potential the way a material law is added: a new small class with these four
members (no registration, no solver changes), e.g. the Buckingham-like
``phi = A * exp(-r / rho) - C * r**-6``.  :class:`Shifted` wraps any of them with the
energy-and-force-shifted cut-off

.. math::
    \phi_c(r) = \phi(r) - \phi(r_c) - (r - r_c)\,\phi'(r_c) \quad (r < r_c), \qquad
    \phi_c(r) = 0 \quad (r \ge r_c),

continuous with its first derivative at :math:`r_c` (:math:`\phi_c'' = \phi''` inside).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import ufl

__all__ = [
    "Harmonic",
    "LennardJones",
    "Morse",
    "PairPotential",
    "Shifted",
    "exp",
    "where",
]


def _is_ufl(x: Any) -> bool:
    return isinstance(x, ufl.core.expr.Expr)


def exp(x: Any) -> Any:
    """:math:`e^x` of a NumPy array or a UFL expression."""
    return ufl.exp(x) if _is_ufl(x) else np.exp(x)


def where(r: Any, below: float, inside: Any, outside: float = 0.0) -> Any:
    """``inside`` where ``r < below``, else ``outside`` (NumPy: on the real part; UFL:
    ``ufl.conditional``)."""
    if _is_ufl(r):
        return ufl.conditional(ufl.lt(r, below), inside, outside)
    return np.where(np.real(r) < below, inside, outside)


@runtime_checkable
class PairPotential(Protocol):
    """What a pair potential provides (see the module docstring)."""

    @property
    def r_eq(self) -> float: ...

    def phi(self, r: Any) -> Any: ...

    def dphi(self, r: np.ndarray) -> np.ndarray: ...

    def d2phi(self, r: np.ndarray) -> np.ndarray: ...


def _positive(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return v


def _validate(obj: object, *names: str) -> None:
    for name in names:
        object.__setattr__(obj, name, _positive(name, getattr(obj, name)))


@dataclass(frozen=True, slots=True)
class LennardJones:
    """:math:`\\phi(r) = 4\\epsilon\\,[(\\sigma/r)^{12} - (\\sigma/r)^6]`; minimum
    :math:`-\\epsilon` at :math:`r = 2^{1/6}\\sigma`, inflection at
    :math:`(26/7)^{1/6}\\sigma`."""

    epsilon: float = 1.0
    sigma: float = 1.0

    def __post_init__(self) -> None:
        _validate(self, "epsilon", "sigma")

    @property
    def r_eq(self) -> float:
        return 2.0 ** (1.0 / 6.0) * self.sigma

    def phi(self, r: Any) -> Any:
        s6 = (self.sigma / r) ** 6
        return 4.0 * self.epsilon * (s6 * s6 - s6)

    def dphi(self, r: np.ndarray) -> np.ndarray:
        s6 = (self.sigma / r) ** 6
        return 4.0 * self.epsilon * (6.0 * s6 - 12.0 * s6 * s6) / r

    def d2phi(self, r: np.ndarray) -> np.ndarray:
        s6 = (self.sigma / r) ** 6
        return 4.0 * self.epsilon * (156.0 * s6 * s6 - 42.0 * s6) / r**2


@dataclass(frozen=True, slots=True)
class Morse:
    """:math:`\\phi(r) = D\\,[e^{-2\\alpha(r - r_0)} - 2e^{-\\alpha(r - r_0)}]`; minimum
    :math:`-D` at :math:`r_0`."""

    D: float = 1.0
    alpha: float = 1.0
    r0: float = 1.0

    def __post_init__(self) -> None:
        _validate(self, "D", "alpha", "r0")

    @property
    def r_eq(self) -> float:
        return self.r0

    def phi(self, r: Any) -> Any:
        e = exp(-self.alpha * (r - self.r0))
        return self.D * (e * e - 2.0 * e)

    def dphi(self, r: np.ndarray) -> np.ndarray:
        e = np.exp(-self.alpha * (r - self.r0))
        return 2.0 * self.D * self.alpha * (e - e * e)

    def d2phi(self, r: np.ndarray) -> np.ndarray:
        e = np.exp(-self.alpha * (r - self.r0))
        return 2.0 * self.D * self.alpha**2 * (2.0 * e * e - e)


@dataclass(frozen=True, slots=True)
class Harmonic:
    """A linear spring :math:`\\phi(r) = \\tfrac k2 (r - r_0)^2`."""

    k: float = 1.0
    r0: float = 1.0

    def __post_init__(self) -> None:
        _validate(self, "k", "r0")

    @property
    def r_eq(self) -> float:
        return self.r0

    def phi(self, r: Any) -> Any:
        return 0.5 * self.k * (r - self.r0) ** 2

    def dphi(self, r: np.ndarray) -> np.ndarray:
        return self.k * (r - self.r0)

    def d2phi(self, r: np.ndarray) -> np.ndarray:
        return self.k * np.ones_like(r)


@dataclass(frozen=True, slots=True)
class Shifted:
    """``potential`` with the energy-and-force-shifted cut-off at ``cutoff`` (see the module
    docstring); zero beyond it."""

    potential: PairPotential
    cutoff: float

    def __post_init__(self) -> None:
        _validate(self, "cutoff")
        if not isinstance(self.potential, PairPotential):
            raise ValueError(f"potential: expected a pair potential, got {self.potential!r}")

    @property
    def r_eq(self) -> float:
        return self.potential.r_eq

    def _tail(self) -> tuple[float, float]:
        rc = np.array([self.cutoff])
        return float(self.potential.phi(rc)[0]), float(self.potential.dphi(rc)[0])

    def phi(self, r: Any) -> Any:
        v, dv = self._tail()
        return where(r, self.cutoff, self.potential.phi(r) - v - (r - self.cutoff) * dv)

    def dphi(self, r: np.ndarray) -> np.ndarray:
        return where(r, self.cutoff, self.potential.dphi(r) - self._tail()[1])

    def d2phi(self, r: np.ndarray) -> np.ndarray:
        return where(r, self.cutoff, self.potential.d2phi(r))
