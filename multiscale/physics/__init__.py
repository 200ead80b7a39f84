"""Constitutive laws as small classes returning UFL expressions (see :mod:`.base`)."""

from .base import (
    HistoryMaterial,
    Kind,
    Material,
    generalized_gradient,
    has_state,
    is_linear,
    is_symmetric,
    kind_of,
)
from .coupled import (
    Field,
    MultiFieldLaw,
    Piezoelectric,
    SingleField,
    ThermoElastic,
    as_multifield,
    fields_of,
)
from .diffusion import AnisotropicConductivity, Conductivity
from .elasticity import AnisotropicElasticity, IsotropicElasticity
from .fluid import NewtonianFluid
from .hyperelasticity import NeoHookean
from .plasticity import J2Plasticity
from .viscoelasticity import GeneralizedMaxwell, MaxwellBranch

__all__ = [
    "AnisotropicConductivity",
    "AnisotropicElasticity",
    "Conductivity",
    "Field",
    "GeneralizedMaxwell",
    "HistoryMaterial",
    "IsotropicElasticity",
    "J2Plasticity",
    "Kind",
    "Material",
    "MaxwellBranch",
    "MultiFieldLaw",
    "NeoHookean",
    "NewtonianFluid",
    "Piezoelectric",
    "SingleField",
    "ThermoElastic",
    "as_multifield",
    "fields_of",
    "generalized_gradient",
    "has_state",
    "is_linear",
    "is_symmetric",
    "kind_of",
]
