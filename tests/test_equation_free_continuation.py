"""Pseudo-arclength continuation of coarse steady states through folds.

The micro simulator (written here) is the fast–slow system

.. math::
    x' = \\mu + x - x^3/3 + c\\,(y - x^2), \\qquad y' = (x^2 - y)/\\varepsilon,

whose steady states are :math:`y = x^2` and :math:`\\mu = x^3/3 - x` (closed form): an S-curve
with folds at :math:`x = \\mp 1`, :math:`\\mu = \\pm 2/3`, and an unstable middle branch.  The
coarse variable is :math:`x`; lifting sets :math:`y = 0` and healing relaxes it at frozen
:math:`x`.  Continuation in :math:`\\mu` alone cannot pass the folds; the pseudo-arclength
branch must follow the whole S, every point on the closed-form curve.
"""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from multiscale.equation_free import (
    CoarseNewtonKrylov,
    ContinuationSettings,
    MicroCoarseStepper,
    continue_steady_states,
)

EPS, C = 1e-3, 1.0


class Cubic:
    """The micro simulator of the module docstring at the parameter :attr:`mu`."""

    mu = 0.0

    def advance(self, state: np.ndarray, dt: float) -> np.ndarray:
        x, y = state[:1], state[1:]
        fx = self.mu + x - x**3 / 3 + C * (y - x**2)
        return np.concatenate([x + dt * fx, y + dt * (x**2 - y) / EPS])

    @staticmethod
    def lift(U: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        y = np.zeros(1) if reference is None else reference[1:]
        return np.concatenate([np.asarray(U, dtype=float), y])

    @staticmethod
    def restrict(state: np.ndarray) -> np.ndarray:
        return state[:1].copy()


def coarse_stepper():
    sim = Cubic()
    stepper = MicroCoarseStepper(sim, sim.lift, sim.restrict, 0.5 * EPS, healing=60)

    def phi(U: np.ndarray, mu: float) -> np.ndarray:
        sim.mu = mu
        return stepper(U, 200)  # T = 0.1

    return phi


OPTIONS = {"snes_rtol": 1e-12, "snes_atol": 1e-13}


@pytest.mark.mpi
def test_arclength_follows_the_s_curve_through_both_folds():
    comm = MPI.COMM_WORLD
    settings = ContinuationSettings(ds=0.1, steps=110, mu_step=0.02)
    branch = continue_steady_states(
        coarse_stepper(), np.array([-2.2]), -1.5, settings, comm, petsc_options=OPTIONS
    )
    x, mu = branch.U[:, 0], branch.mu
    # every point on the closed-form curve mu = x^3/3 - x
    assert np.max(np.abs(mu - (x**3 / 3 - x))) < 1e-8
    # the branch runs from the lower to the upper branch through the unstable middle one
    assert x[0] < -2.0 and x[-1] > 2.0
    assert np.all(np.diff(x) > 0)  # x grows along this S: the arclength never turns back in x
    # mu turns back exactly twice, at the folds +2/3 (x = -1) and -2/3 (x = 1); the fold values
    # from the parabola through the samples around each turn are exact to O(ds^3) = 1e-3
    # (observed 4e-7 and 1.9e-4)
    folds = branch.folds
    assert len(folds) == 2, folds
    np.testing.assert_allclose(folds, [2 / 3, -2 / 3], atol=1e-3)
    assert max(branch.iterations) <= 8


@pytest.mark.serial_only
def test_parameter_continuation_alone_cannot_pass_the_fold():
    """Newton at fixed mu just beyond the fold (mu = 0.7 > 2/3) from the lower-branch state
    at its fold does not stay on the lower branch: no steady state with x < -0.5 exists
    there, it jumps to the upper branch (x > 2) or fails."""
    phi = coarse_stepper()
    with CoarseNewtonKrylov(lambda U: phi(U, 0.7), 1, MPI.COMM_SELF, petsc_options=OPTIONS) as nk:
        res = nk.solve(np.array([-1.0]))
    assert not res.outcome.converged or res.U[0] > 2.0, res
