r"""The macro problem of multi-field laws that FE² and HMM share: every field of the micro law
on the macro mesh.

A multi-field law (:mod:`multiscale.physics.coupled`: piezoelectricity with a displacement
:math:`u` and a potential :math:`\phi`, thermoelasticity with a macro temperature change
:math:`\theta`, a user's law) declares its fields; the macro problem seeks all of them, one
Lagrange space holding them one after the other (:math:`u_1, \dots, u_d, \phi`), with

.. math::
    \int_\Omega \bar q\big(x, \bar g(w), \lambda\theta\big)\cdot\hat g(v)\,dx
    = \lambda\int_{\Gamma_N} \bar t\cdot v\,ds \quad\forall v,
    \qquad w_c = \lambda\,\bar w_c \text{ on } \Gamma_{D,c},

where :math:`\bar g` packs the generalized gradients of all fields
(:func:`~multiscale.physics.coupled.packed_gradient`: strains in Voigt order with engineering
shears, gradients by components), :math:`\bar q` the fluxes alike (stresses, electric
displacements) and :math:`\bar t` the generalized tractions (forces and surface charges).

The micro side is a *linear micro model*: at the macro quadrature points it gives
:math:`\bar q = \mathbb M(x_q)\,\bar g + p(x_q)\,\theta` and the tangent :math:`\mathbb M(x_q)`.
FE² takes them from one periodic cell problem, the same at every point
(:class:`~multiscale.fe2.coupled.LinearCellModel`); HMM from a sampling-domain problem at each
point (:class:`~multiscale.hmm.coupled.SampledLinearModel`).  A micro model has ``fields``,
``parameters``, ``dim``, ``size`` (:math:`m`, the packed gradient size), ``bind(rule)``
(called once with the macro :class:`~multiscale.coupling.QuadratureRule`: the place for
per-point micro work at its owned points),
``evaluate(g, parameters)`` (fluxes ``(n, m)`` and tangents ``(n, m, m)``) and ``info()``.

Fields and boundary conditions are named by the law's field names (:class:`FieldBC`); the
problem follows load factors with the package's Newton solver and load stepper
(:class:`~multiscale.coupling.solid.SolidProblem`), converging in one iteration.  Reactions are
recorded per condition, labelled ``"<boundary>:<field>"``; for a potential, the charge on the
electrode, :math:`\int_\Gamma D\cdot n\,ds`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dolfinx
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.mesh.macro import MacroMesh
from multiscale.physics.coupled import Field, packed_gradient

from .quadrature import QuadratureRule
from .solid import ComponentsBC, SolidProblem, Traction, default_macro_options

__all__ = ["FieldBC", "MultiFieldMacroProblem", "macro_parameters"]

log = logging.getLogger(__name__)

ParameterSpec = float | Callable[[np.ndarray], np.ndarray]


@dataclass(slots=True, frozen=True)
class FieldBC:
    """``field`` (component ``component`` of a vector field, or all) equals the load factor
    times ``value`` on the boundary named ``boundary``: a displacement, an electrode's
    potential."""

    field: str
    boundary: str
    value: float | tuple[float, ...] = 0.0
    component: int | None = None

    def __post_init__(self) -> None:
        for key in ("field", "boundary"):
            if not isinstance(getattr(self, key), str):
                raise TypeError(f"FieldBC {key} must be a name, got {getattr(self, key)!r}")
        c = self.component
        if c is not None and (isinstance(c, bool) or not isinstance(c, int | np.integer) or c < 0):
            raise ValueError(f"component of {self.field} on {self.boundary!r} must be an index")
        try:
            value = np.asarray(self.value, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(
                f"{self.field} on {self.boundary!r} is not a number: {self.value!r}"
            ) from None
        if value.ndim > 1 or not np.all(np.isfinite(value)):
            raise ValueError(f"{self.field} on {self.boundary!r} is not finite: {self.value!r}")


def macro_parameters(
    rule: QuadratureRule, names: Sequence[str], specs: Mapping[str, ParameterSpec]
) -> np.ndarray:
    """The values of the laws' macro parameters ``names`` at the owned points of ``rule``,
    ``(n, len(names))``, from ``specs`` (a number or a function of the coordinates, shape
    ``(d, n)``, per name; absent ones are zero).  One-line ``ValueError`` for an unknown name
    or a non-finite value."""
    unknown = sorted(set(specs) - set(names))
    if unknown:
        raise ValueError(f"unknown macro parameter(s) {unknown}; the micro laws take {list(names)}")
    x = rule.coordinates().reshape(-1, rule.mesh.geometry.dim).T
    values = np.zeros((x.shape[1], len(names)))
    for k, name in enumerate(names):
        spec = specs.get(name, 0.0)
        column = spec(x) if callable(spec) else spec
        values[:, k] = np.broadcast_to(np.asarray(column, dtype=float), (x.shape[1],))
    if not np.all(np.isfinite(values)):
        raise ValueError(f"macro parameter(s) {list(names)} have non-finite values")
    return values


class MultiFieldMacroProblem(SolidProblem):
    """The macro problem in every field of a linear micro model (see the module).

    Parameters
    ----------
    macro:
        The macro mesh with named boundaries.
    micro:
        The linear micro model (its :meth:`bind` runs here, once; if it owns PETSc objects,
        this problem frees them).
    bcs:
        :class:`FieldBC` conditions at load factor 1 (at least one).
    tractions:
        Generalized tractions at load factor 1 (:class:`~multiscale.coupling.solid.Traction`
        with one value per component of the unknown: forces, then surface charges).
    degree, quadrature_degree:
        Macro Lagrange degree of every field and quadrature degree (default
        ``max(1, 2 (degree - 1))``).
    parameters:
        Macro values of the laws' parameters at load factor 1, scaled with it: a number or a
        function of the coordinates ``x`` (shape ``(d, n)``) per name; absent ones are zero.
    petsc_options_prefix, petsc_options, defaults, max_cuts:
        Of :class:`~multiscale.coupling.solid.SolidProblem` (``defaults``: the Newton options,
        :func:`~multiscale.coupling.solid.default_macro_options` if ``None``).

    Collective on ``macro.mesh.comm``; frees its PETSc objects in :meth:`destroy`.
    """

    role = "multifield"
    newton_name = "macro Newton"

    def __init__(
        self,
        macro: MacroMesh,
        micro: Any,
        *,
        bcs: Sequence[FieldBC],
        tractions: Sequence[Traction] = (),
        degree: int = 1,
        quadrature_degree: int | None = None,
        parameters: Mapping[str, ParameterSpec] | None = None,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
        defaults: Mapping[str, Any] | None = None,
        max_cuts: int = 6,
    ) -> None:
        defaults = default_macro_options() if defaults is None else defaults
        self.micro = micro
        if hasattr(micro, "destroy"):
            self._own(micro)
        self._parameter_specs = dict(parameters or {})
        self._qdeg = quadrature_degree if quadrature_degree is not None else max(1, 2 * degree - 2)
        super().__init__(
            macro,
            bcs=list(bcs),  # FieldBC: on the components of their fields in _init_loads
            tractions=tractions,
            degree=degree,
            petsc_options_prefix=petsc_options_prefix,
            petsc_options=dict(petsc_options or {}),
            defaults=dict(defaults or {}),
            max_cuts=max_cuts,
        )
        self.result.info = self._info()

    # -- construction, in steps -------------------------------------------------------------------
    @property
    def fields(self) -> tuple[Field, ...]:
        return tuple(self.micro.fields)

    def _init_space(self) -> None:
        """One Lagrange space for all fields, and the components each field takes."""
        if self.micro.dim != self.dim:
            raise ValueError(
                f"a {self.micro.dim}D micro model cannot serve a {self.dim}D macro problem"
            )
        self.components: dict[str, tuple[int, ...]] = {}
        k = 0
        for f in self.fields:
            n = f.value_size(self.dim)
            self.components[f.name] = tuple(range(k, k + n))
            k += n
        if k < 2:
            raise ValueError("a multi-field macro problem needs two or more components in all")
        mesh = self.macro.mesh
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", self.degree, (k,)))
        self.u = dolfinx.fem.Function(self.V, name="fields")
        self.v = ufl.TestFunction(self.V)
        self.du = ufl.TrialFunction(self.V)

    def _init_loads(self, bcs: Sequence[Any], tractions: Sequence[Traction]) -> None:
        super()._init_loads([self._components_bc(b) for b in bcs], tractions)

    def _components_bc(self, bc: FieldBC) -> ComponentsBC:
        """A :class:`FieldBC` on the components of its field."""
        if bc.field not in self.components:
            raise ValueError(f"unknown field {bc.field!r}; the laws have {list(self.components)}")
        comps = self.components[bc.field]
        if bc.component is not None:
            if not 0 <= bc.component < len(comps):
                raise ValueError(
                    f"component {bc.component} of field {bc.field!r} on {bc.boundary!r} is out "
                    f"of range ({len(comps)} components)"
                )
            comps = (comps[bc.component],)
        value = np.broadcast_to(np.asarray(bc.value, dtype=float), (len(comps),))
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{bc.field} on {bc.boundary!r} is not finite: {bc.value!r}")
        label = f"{bc.boundary}:{bc.field}" + (
            f"[{bc.component}]" if bc.component is not None else ""
        )
        return ComponentsBC(bc.boundary, tuple(value.tolist()), comps, label)

    def _init_constitutive(self) -> tuple[ufl.Form, ufl.Form]:
        """Flux and tangent in quadrature spaces, the packed gradient's expression, the
        parameters at the points, the micro model bound to the points; the internal-force
        form and its Jacobian."""
        m = self.micro.size
        self.rule = QuadratureRule(self.macro.mesh, self._qdeg)
        self.flux = self.rule.function((m,), "flux")
        self.tangent_q = self.rule.function((m, m), "tangent")
        self._g_expr = self.rule.expression(packed_gradient(self.u, self.fields, self.dim))
        self._parameters = macro_parameters(self.rule, self.micro.parameters, self._parameter_specs)
        self.micro.bind(self.rule)
        gv = packed_gradient(self.v, self.fields, self.dim)
        gdu = packed_gradient(self.du, self.fields, self.dim)
        dx = self.rule.dx
        return ufl.dot(self.flux, gv) * dx, ufl.dot(ufl.dot(self.tangent_q, gdu), gv) * dx

    def _info(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "fields": [f.name for f in self.fields],
            "parameters": list(self.micro.parameters),
            "macro_degree": self.degree,
            "quadrature_degree": self._qdeg,
            "macro_gauss_points": self.comm.allreduce(self.rule.n_local, op=MPI.SUM),
            "macro_dofs": self.V.dofmap.index_map.size_global * self.V.dofmap.index_map_bs,
            "ranks": self.comm.size,
            **self.micro.info(),
        }

    # -- the macro iteration ----------------------------------------------------------------------
    def on_iterate(self, x: PETSc.Vec) -> None:
        """Fluxes and tangents at the owned points of the iterate."""
        g = self.rule.evaluate(self._g_expr).reshape(-1, self.micro.size)
        flux, tangent = self.micro.evaluate(g, self.factor * self._parameters)
        self.rule.assign(self.flux, flux)
        self.rule.assign(self.tangent_q, np.ascontiguousarray(tangent))

    def field(self, name: str) -> Any:
        """The macro field ``name`` of the current state as UFL (a component or a vector)."""
        comps = self.components[name]
        if len(comps) == 1:
            return self.u[comps[0]]
        return ufl.as_vector([self.u[c] for c in comps])
