"""Cardiac tissue: the monodomain model with phenomenological ionic models
(:mod:`multiscale.physics.ionic`), on a homogenized or a resolved conductivity."""

from multiscale.tissue.monodomain import (
    ActivationTimes,
    MonodomainSolver,
    Stimulus,
    conduction_velocity,
    default_petsc_options,
)

__all__ = [
    "ActivationTimes",
    "MonodomainSolver",
    "Stimulus",
    "conduction_velocity",
    "default_petsc_options",
]
