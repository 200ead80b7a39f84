"""Temporal multiscale methods: equation-free projective integration, gap-tooth and patch
dynamics, and memory from eliminated variables (Mori–Zwanzig).

* :mod:`~multiscale.equation_free.core` -- micro simulator, lifting, restriction, the coarse
  time-stepper, projective forward Euler and projective Runge–Kutta 2, coarse steady states by
  matrix-free Newton–Krylov (PETSc SNES with a shell Jacobian);
* :mod:`~multiscale.equation_free.systems` -- model fast–slow micro simulators;
* :mod:`~multiscale.equation_free.gaptooth` -- the gap-tooth scheme with buffers on dolfinx
  patch meshes and patch dynamics;
* :mod:`~multiscale.equation_free.particles` -- a stochastic micro simulator: random walkers
  whose density obeys a drift–diffusion equation, lifting by inverse-CDF sampling, restriction by
  a cloud-in-cell kernel, common random numbers and rank-independent seeding;
* :mod:`~multiscale.equation_free.mori_zwanzig` -- the generalized Langevin equation of a
  linear system with an eliminated variable, against the full system and the Markovian
  approximation.
"""

from .continuation import ContinuationResult, ContinuationSettings, continue_steady_states
from .core import (
    SCHEMES,
    CoarseNewtonKrylov,
    CoarseStepper,
    MicroCoarseStepper,
    MicroSimulator,
    NewtonKrylovResult,
    ProjectiveSettings,
    amplification_factor,
    projective_integrate,
    projective_step,
    simulate,
)
from .gaptooth import GapTooth, GapToothSettings, sine_coefficient, sine_homogenized
from .mori_zwanzig import LinearBath, solve_gle
from .particles import RandomWalkers, WalkerSettings, WalkerState
from .systems import FastSlowReaction, LinearSystem

__all__ = [
    "SCHEMES",
    "CoarseNewtonKrylov",
    "CoarseStepper",
    "ContinuationResult",
    "ContinuationSettings",
    "FastSlowReaction",
    "GapTooth",
    "GapToothSettings",
    "LinearBath",
    "LinearSystem",
    "MicroCoarseStepper",
    "MicroSimulator",
    "NewtonKrylovResult",
    "ProjectiveSettings",
    "RandomWalkers",
    "WalkerSettings",
    "WalkerState",
    "amplification_factor",
    "continue_steady_states",
    "projective_integrate",
    "projective_step",
    "simulate",
    "sine_coefficient",
    "sine_homogenized",
    "solve_gle",
]
