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
    PoledPiezoelectric,
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
from .registry import Physics
from .registry import get as get_physics
from .registry import names as physics_names
from .registry import register as register_physics
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
    "Physics",
    "Piezoelectric",
    "PoledPiezoelectric",
    "SingleField",
    "ThermoElastic",
    "as_multifield",
    "fields_of",
    "generalized_gradient",
    "get_physics",
    "has_state",
    "is_linear",
    "is_symmetric",
    "kind_of",
    "physics_names",
    "register_physics",
]
