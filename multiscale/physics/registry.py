r"""One interface for the linear cell physics that the CLI and the ensembles run.

A :class:`Physics` declares everything a consumer needs to homogenize it without knowing it:

* the **material keys** of one phase (alternative complete key sets, e.g. ``E, nu`` or
  ``lambda, mu``, plus optional keys) and the constructor of the phase law, which validates the
  values (an unphysical modulus is a ``ValueError`` naming the key);
* the **cell solver**: ``cell_problem(cell, materials, **kw)`` returns an object with
  ``solve(bc)`` for every boundary condition in :attr:`Physics.bcs`
  (the one :class:`~multiscale.cell.CellProblem` for conductivity, elasticity and the
  multi-field laws alike, :class:`~multiscale.cell.StokesCellProblem` for the permeability);
* the **macro quantities**: ``effective(result)`` maps a result to named arrays, the main tensor
  under ``"effective_tensor"`` (the key the CLI's JSON uses), and, for ensembles, a scalar
  property :math:`Z` of those (its name, its value for one homogeneous phase).

The registry (:func:`register`, :func:`get`, :func:`names`) holds conductivity, elasticity,
stokes, thermoelastic and piezoelectric; ``multiscale homogenize --physics NAME`` and
:class:`~multiscale.ensemble.PhaseLaw` consult it only, so a new linear physics is one
:func:`register` call.

**Scalar properties.**  Conductivity: :math:`Z = \operatorname{tr}A^*/d`.  Elasticity: the bulk
modulus :math:`\kappa^* = \mathbb C^*_{iijj}/d^2` of the isotropic projection (2D: the area bulk
modulus, :func:`~multiscale.tensors.bulk_shear_from_stiffness`).  Thermoelasticity: the mean
apparent expansion coefficient :math:`Z = \operatorname{tr}\alpha^*/d`, :math:`\alpha^* =
(\mathbb C^*)^{-1}\beta^*` (in 2D the plane-strain in-plane expansion, :math:`(1+\nu)\alpha` for
one isotropic phase).  The expansion is what thermoelasticity adds to the elastic problem (the
bulk modulus of the same microstructure is the elasticity ensemble's property), and by Levin's
exact relation for two isotropic phases it is an affine function of the apparent bulk
compliance :math:`\mathbf 1\cdot(\mathbb C^*)^{-1}\mathbf 1`,

.. math::
    \operatorname{tr}\alpha^*/d = c + \big(\langle b\rangle - \langle\kappa\rangle
    \tfrac{b_1 - b_2}{\kappa_1 - \kappa_2}\big)\,\tfrac1d\,\mathbf 1\cdot(\mathbb C^*)^{-1}
    \mathbf 1, \qquad c = \frac{b_1 - b_2}{d(\kappa_1 - \kappa_2)},

(:math:`\beta_k = b_k I`, :math:`\kappa_k` the phase bulk moduli in the sense above), so its
window-size statistics measure the same convergence as the bulk modulus, while being the
quantity a thermal design needs.

**Piezoelectricity** takes a poled (transversely isotropic) phase by its ten constants
(:class:`~multiscale.physics.coupled.PoledPiezoelectric`) or an isotropic dielectric by
``E, nu, kappa``; the law is made for the cell's dimension when the cell problem is built.  Its
main tensor is the generalized matrix :math:`[[C^*, e^{*T}], [e^*, -\kappa^*]]` mapping
:math:`(\{\varepsilon\}, \nabla\phi)` to :math:`(\{\sigma\}, D)`, its blocks
:math:`C^*`, :math:`e^*` and :math:`\kappa^*` the other macro quantities; it has no ensemble
property.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from multiscale.bounds import hashin_shtrikman_conductivity
from multiscale.tensors import bulk_shear_from_stiffness

from .coupled import Piezoelectric, PoledPiezoelectric, ThermoElastic
from .diffusion import Conductivity
from .elasticity import IsotropicElasticity
from .fluid import NewtonianFluid

__all__ = [
    "CellSolver",
    "Physics",
    "get",
    "main_tensor",
    "names",
    "register",
    "registered",
    "unregister",
]


class CellSolver(Protocol):
    """What :attr:`Physics.cell_problem` returns: the cell problems of one microstructure."""

    def solve(self, bc: str = "periodic") -> Any: ...


def main_tensor(result: Any) -> dict[str, np.ndarray]:
    """``{"effective_tensor": result.tensor}``: the macro quantities of a single-field result."""
    return {"effective_tensor": np.asarray(result.tensor, dtype=float)}


@dataclass(frozen=True, slots=True)
class Physics:
    """A linear cell physics as the consumers (CLI, ensembles) see it.

    Attributes
    ----------
    name, description:
        Registry key and one line on what is homogenized.
    keys:
        The accepted complete sets of material keys of one phase (each one alternative, e.g.
        ``(("E", "nu"), ("lambda", "mu"))``); a phase gives exactly one set plus any of
        ``optional``.
    make:
        ``make(values) -> law``: the phase law of validated key values (floats); the law's
        constructor rejects unphysical values with a ``ValueError`` naming the key.
    cell_problem:
        ``cell_problem(cell, materials, degree=..., petsc_options_prefix=...)``: a
        :class:`CellSolver` of one microstructure (phase name or tag -> law).
    bcs:
        The boundary conditions ``solve`` accepts.
    effective:
        ``effective(result) -> {name: array}``, the main tensor under ``"effective_tensor"``.
    property_name, property_label, property_of, phase_property:
        The scalar property of ensembles: its short name (a JSON key), a label for plots,
        ``property_of(effective, dim)`` and ``phase_property(law, dim)`` (its value for a
        homogeneous cell of ``law``).  ``None`` where the physics has no ensemble property.
    degree, min_degree:
        Default and smallest Lagrange degree of the cell solver.
    certify:
        Whether :func:`multiscale.cell.certify` / :func:`~multiscale.cell.adapt` estimate the
        periodic error of this physics.
    estimate_auto_dims:
        Dimensions where an ensemble's ``error_estimate="auto"`` certifies the periodic solves
        (the estimate costs one solve of the same size and is a guaranteed bound).
    enrich:
        Whether :func:`multiscale.cell.certify` can enrich its spaces with the singular
        functions of phase junctions (``enrich=``; 2D isotropic conductivity).
    one_phase:
        If set, the materials name one phase only and this says which (e.g. the fluid, every
        other phase being solid).
    hashin_shtrikman:
        ``hashin_shtrikman(fractions, phase_values, dim) -> (lower, upper)``: the
        Hashin-Shtrikman bounds of the scalar property of an isotropic two-phase medium from
        the phases' property values, where they depend on these alone (conductivity).
    """

    name: str
    description: str
    keys: tuple[tuple[str, ...], ...]
    make: Callable[[dict[str, float]], Any]
    cell_problem: Callable[..., CellSolver]
    bcs: tuple[str, ...] = ("periodic", "kubc", "subc")
    optional: tuple[str, ...] = ()
    effective: Callable[[Any], dict[str, np.ndarray]] = main_tensor
    property_name: str | None = None
    property_label: str | None = None
    property_of: Callable[[Mapping[str, np.ndarray], int], float] | None = None
    phase_property: Callable[[Any, int], float] | None = None
    degree: int = 1
    min_degree: int = 1
    certify: bool = False
    estimate_auto_dims: tuple[int, ...] = ()
    enrich: bool = False
    one_phase: str | None = None
    hashin_shtrikman: Callable[[tuple[float, float], tuple[float, float], int], tuple] | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"physics name must be a word, got {self.name!r}")
        if not self.keys or any(not ks for ks in self.keys):
            raise ValueError(f"physics {self.name!r}: give at least one non-empty key set")
        object.__setattr__(self, "keys", tuple(tuple(ks) for ks in self.keys))
        object.__setattr__(self, "optional", tuple(self.optional))
        object.__setattr__(self, "bcs", tuple(self.bcs))
        given = (self.property_name, self.property_of, self.phase_property)
        if any(g is not None for g in given) and any(g is None for g in given):
            raise ValueError(
                f"physics {self.name!r}: property_name, property_of and phase_property go together"
            )
        if not 1 <= self.min_degree <= self.degree:
            raise ValueError(f"physics {self.name!r}: need 1 <= min_degree <= degree")

    # -- materials -----------------------------------------------------------------------------
    def keys_text(self) -> str:
        """The accepted keys as text: ``"E,nu or lambda,mu"`` (optional ones in brackets)."""
        text = " or ".join(",".join(ks) for ks in self.keys)
        if self.optional:
            text += f" [optional: {','.join(self.optional)}]"
        return text

    def law(self, params: Mapping[str, Any]) -> Any:
        """The phase law of ``params`` (key -> number); ``ValueError`` on missing, unknown or
        non-numeric keys and (from the law) on unphysical values, naming the key."""
        values: dict[str, float] = {}
        for key, value in dict(params).items():
            try:
                x = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{self.name}: {key}={value!r} is not a number") from None
            if not math.isfinite(x):
                raise ValueError(f"{self.name}: {key}={value!r} is not finite")
            values[str(key)] = x
        required = set(values) - set(self.optional)
        if not any(required == set(ks) for ks in self.keys):
            raise ValueError(
                f"{self.name}: the phase keys must be {self.keys_text()}, got "
                f"{','.join(sorted(values)) or 'none'}"
            )
        return self.make(values)

    def materials(self, phases: Mapping[Any, Mapping[str, Any]]) -> dict[Any, Any]:
        """``{phase: law}`` of ``{phase: params}``; errors name the phase."""
        out = {}
        for phase, params in phases.items():
            try:
                out[phase] = self.law(params)
            except ValueError as err:
                raise ValueError(f"phase {phase!r}: {err}") from None
        return out

    def check_phase_count(self, count: int, what: str = "material") -> None:
        """``ValueError`` if :attr:`one_phase` is set and ``count != 1``."""
        if self.one_phase is not None and count != 1:
            raise ValueError(f"{self.name} takes one {what}, {self.one_phase}")

    # -- macro quantities ----------------------------------------------------------------------
    @property
    def has_property(self) -> bool:
        """Whether the physics has a scalar property (ensembles need one)."""
        return self.property_of is not None

    def _need_property(self) -> None:
        if not self.has_property:
            raise ValueError(f"physics {self.name!r} has no scalar property for ensembles")

    def scalar_property(self, x: Any, dim: int) -> float:
        """The scalar property of a result, of its ``effective`` mapping, or of the main
        tensor alone (an array; only where the property depends on it alone)."""
        self._need_property()
        if isinstance(x, np.ndarray | list):
            eff: Mapping[str, np.ndarray] = {"effective_tensor": np.asarray(x, dtype=float)}
        elif isinstance(x, Mapping):
            eff = x
        else:
            eff = self.effective(x)
        try:
            return float(self.property_of(eff, int(dim)))  # type: ignore[misc]
        except KeyError as err:
            raise ValueError(
                f"{self.name}: the property {self.property_name} needs {err.args[0]!r}; pass the "
                "result or its effective quantities, not the tensor alone"
            ) from None

    def phase_value(self, law: Any, dim: int) -> float:
        """The scalar property of a homogeneous cell of ``law`` (a law or its params)."""
        self._need_property()
        if isinstance(law, Mapping):
            law = self.law(law)
        return float(self.phase_property(law, int(dim)))  # type: ignore[misc]


# -- registry ---------------------------------------------------------------------------------
_REGISTRY: dict[str, Physics] = {}


def register(physics: Physics, *, replace: bool = False) -> Physics:
    """Add ``physics`` under its name (``ValueError`` if taken, unless ``replace``)."""
    if not isinstance(physics, Physics):
        raise TypeError(f"register takes a Physics, got {type(physics).__name__}")
    if physics.name in _REGISTRY and not replace:
        raise ValueError(f"a physics named {physics.name!r} is already registered")
    _REGISTRY[physics.name] = physics
    return physics


def unregister(name: str) -> None:
    """Remove a registered physics (tests, plug-ins); ``ValueError`` if unknown."""
    get(name)
    del _REGISTRY[name]


@contextmanager
def registered(physics: Physics) -> Iterator[Physics]:
    """Register ``physics`` for the ``with`` block and remove it after (tests, scripts)."""
    register(physics)
    try:
        yield physics
    finally:
        unregister(physics.name)


def get(name: str | Physics) -> Physics:
    """The physics registered as ``name``; a one-line ``ValueError`` listing the known ones."""
    if isinstance(name, Physics):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown physics {name!r}; known: {', '.join(names())}") from None


def names() -> tuple[str, ...]:
    """The registered names, in registration order."""
    return tuple(_REGISTRY)


# -- cell solvers -----------------------------------------------------------------------------
def _cell_problem(cell: Any, materials: Mapping[Any, Any], **kw: Any) -> CellSolver:
    from multiscale.cell import CellProblem

    return CellProblem(cell, materials, **kw)


class _StokesCell:
    """The periodic Stokes cell problem of the one fluid phase of ``materials``."""

    bcs = ("periodic",)

    def __init__(self, cell: Any, materials: Mapping[Any, Any], **kw: Any) -> None:
        if len(materials) != 1:
            raise ValueError(f"stokes takes one material, {_STOKES_PHASE}")
        ((self.fluid, self.law),) = materials.items()
        self.cell, self.kw = cell, kw

    def solve(self, bc: str = "periodic") -> Any:
        from multiscale.cell import StokesCellProblem

        if bc != "periodic":
            raise ValueError("stokes solves the periodic cell problem only")
        with StokesCellProblem(self.cell, self.fluid, self.law, **self.kw) as problem:
            return problem.solve()


# -- the built-in physics ---------------------------------------------------------------------
def _mean_trace(eff: Mapping[str, np.ndarray], dim: int) -> float:
    return float(np.trace(np.asarray(eff["effective_tensor"]))) / dim


def _bulk(eff: Mapping[str, np.ndarray], dim: int) -> float:
    return float(bulk_shear_from_stiffness(eff["effective_tensor"], dim)[0])


def _elastic(values: dict[str, float]) -> IsotropicElasticity:
    if "E" in values:
        return IsotropicElasticity.from_young(values["E"], values["nu"])
    return IsotropicElasticity(values["lambda"], values["mu"])


def _thermoelastic(values: dict[str, float]) -> ThermoElastic:
    elastic = _elastic(values)
    return ThermoElastic(elastic.lmbda, elastic.mu, values["alpha"])


def _thermoelastic_effective(result: Any) -> dict[str, np.ndarray]:
    eff = ThermoElastic.effective(result)
    return {"effective_tensor": eff["C"], **eff}


def _mean_expansion(eff: Mapping[str, np.ndarray], dim: int) -> float:
    return float(np.sum(np.asarray(eff["alpha"])[:dim])) / dim


def _phase_expansion(law: ThermoElastic, dim: int) -> float:
    alpha = np.linalg.solve(law.stiffness(dim), law.beta_voigt(dim))
    return float(np.sum(alpha[:dim])) / dim


def _piezoelectric(values: dict[str, float]) -> PoledPiezoelectric:
    if "E" in values:
        return PoledPiezoelectric.isotropic(values["E"], values["nu"], values["kappa"])
    return PoledPiezoelectric(**values)


def _piezoelectric_cell(cell: Any, materials: Mapping[Any, Any], **kw: Any) -> CellSolver:
    """The cell problem of the phases' laws made in the cell's dimension."""
    dim = cell.mesh.geometry.dim
    return _cell_problem(cell, {phase: m.law(dim) for phase, m in materials.items()}, **kw)


def _piezoelectric_effective(result: Any) -> dict[str, np.ndarray]:
    r"""The generalized matrix :math:`[[C^*, e^{*T}], [e^*, -\kappa^*]]` and its blocks."""
    return {"effective_tensor": np.asarray(result.tensor), **Piezoelectric.effective(result)}


_PIEZO_KEYS = ("c11", "c12", "c13", "c33", "c44", "e31", "e33", "e15", "kappa11", "kappa33")
_STOKES_PHASE = "the fluid phase (TAG:mu=...); every other phase is solid"

register(
    Physics(
        name="conductivity",
        description="effective conductivity tensor A* (heat, electric, diffusion)",
        keys=(("k",),),
        make=lambda v: Conductivity(v["k"]),
        cell_problem=_cell_problem,
        property_name="k",
        property_label="mean conductivity tr(A)/d",
        property_of=_mean_trace,
        phase_property=lambda law, dim: float(np.trace(law.tensor(dim))) / dim,
        certify=True,
        estimate_auto_dims=(2,),
        enrich=True,
        hashin_shtrikman=hashin_shtrikman_conductivity,
    )
)
register(
    Physics(
        name="elasticity",
        description="effective small-strain stiffness C* (Voigt, plane strain in 2D)",
        keys=(("E", "nu"), ("lambda", "mu")),
        make=_elastic,
        cell_problem=_cell_problem,
        property_name="bulk",
        property_label="bulk modulus",
        property_of=_bulk,
        phase_property=lambda law, dim: float(bulk_shear_from_stiffness(law.tensor(dim), dim)[0]),
        certify=True,
    )
)
register(
    Physics(
        name="stokes",
        description="permeability K of the pore space (Stokes flow, Taylor-Hood)",
        keys=(("mu",),),
        make=lambda v: NewtonianFluid(v["mu"]),
        cell_problem=_StokesCell,
        bcs=_StokesCell.bcs,
        degree=2,
        min_degree=2,
        one_phase=_STOKES_PHASE,
    )
)
register(
    Physics(
        name="thermoelastic",
        description="thermoelastic stiffness C*, thermal stress beta* and expansion alpha*",
        keys=(("E", "nu", "alpha"), ("lambda", "mu", "alpha")),
        make=_thermoelastic,
        cell_problem=_cell_problem,
        effective=_thermoelastic_effective,
        property_name="alpha",
        property_label="mean expansion coefficient tr(alpha*)/d",
        property_of=_mean_expansion,
        phase_property=_phase_expansion,
    )
)
register(
    Physics(
        name="piezoelectric",
        description="piezoelectric stiffness C*, coupling e* and permittivity kappa*",
        keys=(_PIEZO_KEYS, ("E", "nu", "kappa")),
        make=_piezoelectric,
        cell_problem=_piezoelectric_cell,
        effective=_piezoelectric_effective,
    )
)
