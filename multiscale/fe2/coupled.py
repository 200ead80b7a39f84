r"""FE² of multi-field laws: a macro problem in every field of the micro law.

A multi-field law (:mod:`multiscale.physics.coupled`: piezoelectricity with a displacement
:math:`u` and a potential :math:`\phi`, thermoelasticity with a macro temperature change
:math:`\theta`, a user's law) declares its fields; the macro problem seeks all of them on the
macro mesh, one Lagrange space holding them one after the other (:math:`u_1, \dots, u_d, \phi`),
with

.. math::
    \int_\Omega \bar q\big(\bar g(w), \lambda\theta\big)\cdot\hat g(v)\,dx
    = \lambda\int_{\Gamma_N} \bar t\cdot v\,ds \quad\forall v,
    \qquad w_c = \lambda\,\bar w_c \text{ on } \Gamma_{D,c},

where :math:`\bar g` packs the generalized gradients of all fields (strains in Voigt order with
engineering shears, gradients by components), :math:`\bar q` the fluxes alike (stresses, electric
displacements) and :math:`\bar t` the generalized tractions (forces and surface charges).  At
every macro quadrature point :math:`\bar q` and its tangent come from the micro model.  The laws
of :mod:`multiscale.physics.coupled` are linear, so the micro model is the cell problem, solved
once on the RVE (:class:`~multiscale.cell.CellProblem`, periodic):
:math:`\bar q = \mathbb M^*\bar g + p^*\theta` at every point, vectorized, the same shortcut
as :class:`~multiscale.fe2.FE2Problem` takes for linear phases.  Fields and boundary conditions
are named by the law's field names, and the macro problem follows load factors with the
package's Newton solver and load stepper (:class:`~multiscale.coupling.solid.SolidProblem`),
converging in one iteration.
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

from multiscale.cell.solver import CellProblem
from multiscale.coupling.quadrature import QuadratureRule
from multiscale.coupling.solid import ComponentsBC, SolidProblem, Traction
from multiscale.mesh.macro import MacroMesh
from multiscale.physics.coupled import Field, as_multifield, fields_of, packed_gradient

from .micro import CellSource, as_cell_mesh
from .solver import default_macro_options, macro_parameters

__all__ = ["CoupledFE2Problem", "FieldBC", "LinearCellModel"]

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class FieldBC:
    """``field`` (component ``component`` of a vector field, or all) equals the load factor
    times ``value`` on the boundary named ``boundary``: a displacement, an electrode's
    potential."""

    field: str
    boundary: str
    value: float | tuple[float, ...] = 0.0
    component: int | None = None


class LinearCellModel:
    """The micro model of linear multi-field phases: :math:`\\mathbb M^*` and :math:`p^*` of
    the periodic cell problem (:class:`~multiscale.cell.coupled.CoupledResult`), solved once on
    ``comm`` (all ranks together)."""

    def __init__(
        self,
        cell: CellSource,
        materials: Mapping[str | int, Any],
        comm: MPI.Comm,
        cell_options: Mapping[str, Any] | None = None,
    ) -> None:
        laws = {k: as_multifield(m) for k, m in materials.items()}
        self.fields, self.parameters = fields_of(laws)
        mesh = as_cell_mesh(cell, comm)
        self.dim = mesh.dim
        self.result = CellProblem(mesh, laws, **dict(cell_options or {})).solve("periodic")
        self.tensor = self.result.tensor
        self.parameter_tensor = self.result.parameter_tensor

    def evaluate(self, g: np.ndarray, parameters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fluxes ``(n, m)`` and tangents ``(n, m, m)`` at ``n`` points of generalized
        gradients ``g`` ``(n, m)`` and parameter values ``(n, p)``."""
        flux = g @ self.tensor.T + parameters @ self.parameter_tensor.T
        return flux, np.broadcast_to(self.tensor, (len(g), *self.tensor.shape))


class CoupledFE2Problem(SolidProblem):
    """FE² of linear multi-field phase laws on a macro mesh (see the module).

    Parameters
    ----------
    macro:
        The macro mesh with named boundaries.
    cell:
        The RVE: a :class:`~multiscale.mesh.cell.CellMesh`, a ``.msh`` path or a callable
        ``comm -> CellMesh``; built on the macro communicator.
    materials:
        Phase name or tag -> multi-field law (all with the same fields and parameters).
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
    cell_options:
        Keyword arguments of :class:`~multiscale.cell.CellProblem` (``degree``, ...).
    petsc_options_prefix, petsc_options, max_cuts:
        As for :class:`~multiscale.fe2.FE2Problem`.

    Reactions are recorded per condition, labelled ``"<boundary>:<field>"``, with one entry per
    component of the unknown (zero where the condition does not act): for a potential the
    charge on the electrode, :math:`\\int_\\Gamma D\\cdot n\\,ds`.  Collective on
    ``macro.mesh.comm``; frees its PETSc objects in :meth:`destroy`.
    """

    role = "fe2_coupled"
    newton_name = "macro Newton"

    def __init__(
        self,
        macro: MacroMesh,
        cell: CellSource,
        materials: Mapping[str | int, Any],
        *,
        bcs: Sequence[FieldBC],
        tractions: Sequence[Traction] = (),
        degree: int = 1,
        quadrature_degree: int | None = None,
        parameters: Mapping[str, float | Callable[[np.ndarray], np.ndarray]] | None = None,
        cell_options: Mapping[str, Any] | None = None,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
        max_cuts: int = 6,
    ) -> None:
        self.micro = LinearCellModel(cell, materials, macro.mesh.comm, cell_options)
        self._parameter_specs = dict(parameters or {})
        self._qdeg = quadrature_degree if quadrature_degree is not None else max(1, 2 * degree - 2)
        super().__init__(
            macro,
            bcs=list(bcs),  # FieldBC: on the components of their fields in _init_loads
            tractions=tractions,
            degree=degree,
            petsc_options_prefix=petsc_options_prefix,
            petsc_options=dict(petsc_options or {}),
            defaults=default_macro_options(),
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
            raise ValueError(f"a {self.micro.dim}D RVE cannot serve a {self.dim}D macro problem")
        self.components: dict[str, tuple[int, ...]] = {}
        k = 0
        for f in self.fields:
            n = f.value_size(self.dim)
            self.components[f.name] = tuple(range(k, k + n))
            k += n
        if k < 2:
            raise ValueError("CoupledFE2Problem needs fields of two or more components in all")
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
        parameters at the points; the internal-force form and its Jacobian."""
        m = self.micro.tensor.shape[0]
        self.rule = QuadratureRule(self.macro.mesh, self._qdeg)
        self.flux = self.rule.function((m,), "flux")
        self.tangent_q = self.rule.function((m, m), "tangent")
        self._g_expr = self.rule.expression(packed_gradient(self.u, self.fields, self.dim))
        self._parameters = macro_parameters(self.rule, self.micro.parameters, self._parameter_specs)
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
            "rve_dofs": self.micro.result.ndofs,
            "effective_tensor": self.micro.tensor.tolist(),
            "ranks": self.comm.size,
        }

    # -- the macro iteration ----------------------------------------------------------------------
    def on_iterate(self, x: PETSc.Vec) -> None:
        """Fluxes and tangents at the owned points of the iterate."""
        m = self.micro.tensor.shape[0]
        g = self.rule.evaluate(self._g_expr).reshape(-1, m)
        flux, tangent = self.micro.evaluate(g, self.factor * self._parameters)
        self.rule.assign(self.flux, flux)
        self.rule.assign(self.tangent_q, np.ascontiguousarray(tangent))

    def field(self, name: str) -> Any:
        """The macro field ``name`` of the current state as UFL (a component or a vector)."""
        comps = self.components[name]
        if len(comps) == 1:
            return self.u[comps[0]]
        return ufl.as_vector([self.u[c] for c in comps])
