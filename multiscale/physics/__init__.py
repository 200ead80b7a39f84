"""Constitutive laws as small classes returning UFL expressions (see :mod:`.base`)."""

from .base import Kind, Material, generalized_gradient, kind_of
from .diffusion import AnisotropicConductivity, Conductivity
from .elasticity import AnisotropicElasticity, IsotropicElasticity

__all__ = [
    "AnisotropicConductivity",
    "AnisotropicElasticity",
    "Conductivity",
    "IsotropicElasticity",
    "Kind",
    "Material",
    "generalized_gradient",
    "kind_of",
]
