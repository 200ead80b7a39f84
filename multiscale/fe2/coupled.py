r"""FE² of multi-field laws: a macro problem in every field of the micro law.

The macro problem (:class:`~multiscale.coupling.multifield.MultiFieldMacroProblem`) seeks all
fields of the law (a displacement and a potential, say) on the macro mesh, with the packed
fluxes :math:`\bar q = \mathbb M^*\bar g + p^*\theta` and the tangent :math:`\mathbb M^*` at
every quadrature point.  The laws of :mod:`multiscale.physics.coupled` are linear, so the micro
model is the cell problem, solved once on the RVE (:class:`~multiscale.cell.CellProblem`,
periodic): :class:`LinearCellModel`, vectorized over the points, the same shortcut as
:class:`~multiscale.fe2.FE2Problem` takes for linear phases.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from mpi4py import MPI

from multiscale.cell.solver import CellProblem
from multiscale.coupling import QuadratureRule
from multiscale.coupling.multifield import FieldBC, MultiFieldMacroProblem
from multiscale.mesh.macro import MacroMesh
from multiscale.physics.coupled import as_multifield, fields_of

from .micro import CellSource, as_cell_mesh

__all__ = ["CoupledFE2Problem", "FieldBC", "LinearCellModel"]  # FieldBC: of the shared base


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
        self.size = self.tensor.shape[0]

    def bind(self, rule: QuadratureRule) -> None:
        """The same tensors at every point: nothing to do."""

    def info(self) -> dict[str, Any]:
        return {"rve_dofs": self.result.ndofs, "effective_tensor": self.tensor.tolist()}

    def evaluate(self, g: np.ndarray, parameters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fluxes ``(n, m)`` and tangents ``(n, m, m)`` at ``n`` points of generalized
        gradients ``g`` ``(n, m)`` and parameter values ``(n, p)``."""
        flux = g @ self.tensor.T + parameters @ self.parameter_tensor.T
        return flux, np.broadcast_to(self.tensor, (len(g), *self.tensor.shape))


class CoupledFE2Problem(MultiFieldMacroProblem):
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
    cell_options:
        Keyword arguments of :class:`~multiscale.cell.CellProblem` (``degree``, ...).
    bcs, tractions, degree, quadrature_degree, parameters, petsc_options_prefix, \
    petsc_options, max_cuts:
        Of :class:`~multiscale.coupling.multifield.MultiFieldMacroProblem`: :class:`FieldBC`
        conditions, generalized tractions, the macro parameters (a number or a function of
        the coordinates per name), the Newton options (:func:`~multiscale.fe2.solver.
        default_macro_options` by default).

    Reactions are recorded per condition, labelled ``"<boundary>:<field>"``, with one entry per
    component of the unknown (zero where the condition does not act): for a potential the
    charge on the electrode, :math:`\\int_\\Gamma D\\cdot n\\,ds`.  Collective on
    ``macro.mesh.comm``; frees its PETSc objects in :meth:`destroy`.
    """

    role = "fe2_coupled"

    def __init__(
        self,
        macro: MacroMesh,
        cell: CellSource,
        materials: Mapping[str | int, Any],
        *,
        cell_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        micro = LinearCellModel(cell, materials, macro.mesh.comm, cell_options)
        super().__init__(macro, micro, **kwargs)
