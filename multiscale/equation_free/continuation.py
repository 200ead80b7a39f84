r"""Pseudo-arclength continuation of coarse steady states (Keller), matrix-free.

The coarse steady states of a parameter-dependent coarse time-stepper :math:`\Phi_T(U;\mu)`
form curves :math:`G(U, \mu) = \Phi_T(U;\mu) - U = 0` that may turn back in :math:`\mu` (folds,
where a continuation in :math:`\mu` alone breaks down).  Pseudo-arclength continuation adds
:math:`\mu` to the unknowns, :math:`z = (U, \mu)`, and closes the system with a step of length
:math:`\Delta s` along the secant :math:`t_k = (z_k - z_{k-1})/|z_k - z_{k-1}|`:

.. math::
    G(U, \mu) = 0, \qquad (z - z_k)\cdot t_k - \Delta s = 0,

from the predictor :math:`z_k + \Delta s\,t_k`.  Written as the fixed point
:math:`\Phi^{aug}(z) = \bigl(\Phi_T(U;\mu),\ \mu - [(z - z_k)\cdot t_k - \Delta s]\bigr) = z`, it
is solved by the package's Jacobian-free Newton–Krylov
(:class:`~multiscale.equation_free.core.CoarseNewtonKrylov`): the augmented Jacobian is regular
at a simple fold, so the curve is followed through it.  A corrector that fails is retried with
half the step (at most ``max_cuts`` times); the step grows back by 1.5 after each success, up to
its initial value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mpi4py import MPI

from .core import CoarseNewtonKrylov

__all__ = ["ContinuationResult", "ContinuationSettings", "continue_steady_states"]


@dataclass(frozen=True)
class ContinuationSettings:
    """``ds``: arclength step in :math:`(U, \\mu)`; ``steps``: points after the first two;
    ``mu_step``: the parameter step of the second point (its sign sets the direction);
    ``max_cuts``: halvings of a failed step."""

    ds: float
    steps: int
    mu_step: float
    max_cuts: int = 4

    def __post_init__(self) -> None:
        if not (self.ds > 0 and math.isfinite(self.ds)):
            raise ValueError(f"ds must be a positive number, got {self.ds}")
        if int(self.steps) < 1 or int(self.max_cuts) < 0:
            raise ValueError("need steps >= 1 and max_cuts >= 0")
        if not (self.mu_step != 0 and math.isfinite(self.mu_step)):
            raise ValueError(f"mu_step must be a non-zero number, got {self.mu_step}")


@dataclass(slots=True)
class ContinuationResult:
    """The points ``U`` (rows) and parameters ``mu`` of the branch, the Newton iterations of
    each, and ``folds``: the parameter values where :math:`\\mu` turned back."""

    U: np.ndarray
    mu: np.ndarray
    iterations: list[int] = field(default_factory=list)

    @property
    def folds(self) -> np.ndarray:
        """:math:`\\mu` at each turn: the extremum of the parabola :math:`\\mu(s)` through the
        three points around it (:math:`s` the chord length along the branch), exact to
        :math:`O(\\Delta s^3)`."""
        d = np.diff(self.mu)
        turns = np.flatnonzero(np.sign(d[1:]) * np.sign(d[:-1]) < 0) + 1
        z = np.column_stack([self.U, self.mu])
        s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(z, axis=0), axis=1))])
        out = []
        for k in turns:
            a, b, c = np.polyfit(s[k - 1 : k + 2] - s[k], self.mu[k - 1 : k + 2], 2)
            out.append(c - b * b / (4 * a))
        return np.array(out)


class _Augmented:
    """:math:`\\Phi^{aug}` around the current point and secant."""

    def __init__(self, phi: Callable[[np.ndarray, float], np.ndarray], n: int) -> None:
        self.phi, self.n = phi, n
        self.z = np.zeros(n + 1)
        self.t = np.zeros(n + 1)
        self.ds = 0.0

    def __call__(self, z: np.ndarray) -> np.ndarray:
        U, mu = z[: self.n], float(z[self.n])
        arclength = float((z - self.z) @ self.t) - self.ds
        return np.append(self.phi(U, mu), mu - arclength)


def _fixed_parameter(phi, U0, mu, comm, options) -> tuple[np.ndarray, int]:
    with CoarseNewtonKrylov(lambda U: phi(U, mu), len(U0), comm, petsc_options=options) as nk:
        res = nk.solve(U0)
    if not res.outcome.converged:
        raise RuntimeError(f"no steady state at mu = {mu:.6g}: {res.outcome.cause}")
    return res.U, res.outcome.iterations


def continue_steady_states(
    phi: Callable[[np.ndarray, float], np.ndarray],
    U0: np.ndarray,
    mu0: float,
    settings: ContinuationSettings,
    comm: MPI.Comm = MPI.COMM_WORLD,
    *,
    petsc_options: Mapping[str, Any] | None = None,
) -> ContinuationResult:
    """The branch of steady states :math:`\\Phi_T(U;\\mu) = U` through the one near ``U0`` at
    ``mu0``: two points at fixed :math:`\\mu` (``mu0`` and ``mu0 + mu_step``), then
    ``settings.steps`` pseudo-arclength steps (collective; ``phi`` is called on every rank
    together).  A step that fails after ``max_cuts`` halvings ends the branch early."""
    U0 = np.asarray(U0, dtype=float)
    n = len(U0)
    U_a, it_a = _fixed_parameter(phi, U0, mu0, comm, petsc_options)
    mu_b = mu0 + settings.mu_step
    U_b, it_b = _fixed_parameter(phi, U_a, mu_b, comm, petsc_options)
    points = [np.append(U_a, mu0), np.append(U_b, mu_b)]
    result = ContinuationResult(np.empty((0, n)), np.empty(0), [it_a, it_b])
    aug = _Augmented(phi, n)
    ds = settings.ds
    with CoarseNewtonKrylov(aug, n + 1, comm, petsc_options=petsc_options) as nk:
        for _ in range(int(settings.steps)):
            secant = points[-1] - points[-2]
            aug.z, aug.t = points[-1], secant / np.linalg.norm(secant)
            z, its, ds = _corrector(nk, aug, ds, settings)
            if z is None:
                break
            points.append(z)
            result.iterations.append(its)
            ds = min(settings.ds, 1.5 * ds)
    Z = np.array(points)
    result.U, result.mu = Z[:, :n], Z[:, n]
    return result


def _corrector(nk: CoarseNewtonKrylov, aug: _Augmented, ds: float, settings):
    """Newton–Krylov from the predictor, halving ``ds`` on failure: (point, iterations, ds)
    or ``(None, 0, ds)``."""
    for _ in range(int(settings.max_cuts) + 1):
        aug.ds = ds
        res = nk.solve(aug.z + ds * aug.t)
        if res.outcome.converged:
            return res.U, res.outcome.iterations, ds
        ds *= 0.5
    return None, 0, ds
