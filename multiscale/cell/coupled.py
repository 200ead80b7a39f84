r"""Multi-field (coupled) linear cell problems: thermoelastic and piezoelectric homogenization.

The phases carry one :class:`~multiscale.physics.coupled.MultiFieldLaw` each (all with the same
fields :math:`u_f` and parameters :math:`\theta_p`), with fluxes
:math:`q_f = \sum_h \mathbb M_{fh} g_h + p_f\theta` linear in the generalized gradients
:math:`g_f` (the gradient or symmetric gradient of field :math:`f`).  All fields share one
Lagrange space of :math:`\sum_f n_f` components (a blocked space: :math:`u_1..u_d, \phi` for
piezoelectricity).  The operator is assembled and factorized (MUMPS LU: the piezoelectric
operator is symmetric indefinite) once; a load case only changes :class:`dolfinx.fem.Constant`
values.  Voigt order with engineering shears throughout (:mod:`multiscale.tensors`).

**Kinematic conditions.**  For macro gradients :math:`G_f` and parameters :math:`\theta` the
cell problem seeks fluctuations :math:`\tilde u_f` with

.. math::
    \sum_f \int_Y q_f\big(G + g(\tilde u), \theta\big) \cdot g_f(v_f)\,dy = 0 \quad \forall v,

:math:`\tilde u` periodic (``bc="periodic"``: one
:func:`~multiscale.cell.constraints.build_constraint` makes every component periodic and pins
one interior node) or zero on :math:`\partial Y` (``"kubc"``, kinematic uniform conditions).
The load cases are the unit gradient components of every field, then each unit parameter.

**Static conditions** (``bc="subc"``).  The macro generalized fluxes :math:`Q_f` (stress,
electric displacement, heat flux) are imposed as uniform boundary fluxes and the whole field is
the unknown:

.. math::
    \sum_f \int_Y q_f\big(g(u), \theta\big) \cdot g_f(v_f)\,dy
    = \sum_f \int_{\partial Y} (Q_f n)\cdot v_f\,ds \quad \forall v ,

with the null space of every field pinned at box corners (the rigid modes of a displacement,
the constant of a potential); the data are self-equilibrated, so the pins carry no reaction.
The divergence theorem gives :math:`\langle q_f\rangle = Q_f` exactly, and the mean gradients
are affine in the loads,

.. math::
    \langle g\rangle = \mathbb S\,Q + a\,\theta, \qquad
    \mathbb M^{SUBC} = \mathbb S^{-1}, \qquad p^{SUBC} = -\mathbb M^{SUBC} a ,

:math:`\mathbb S` the apparent generalized compliance (column :math:`j`: :math:`\langle g\rangle`
of the unit flux :math:`Q = e_j` at :math:`\theta = 0`) and :math:`a` the mean gradients of the
unit parameter at zero boundary flux (an eigen-gradient).  For thermoelasticity
:math:`\mathbb S = (C^*)^{-1}` and :math:`a = \alpha^*` is the mean strain of the traction-free
cell at :math:`\theta = 1`, so :math:`\beta^* = C^*\alpha^*` and
:math:`\Sigma = C^*(E - \alpha^*\theta)`; for piezoelectricity the imposed pair
:math:`(\Sigma, \bar D)` gives the whole :math:`(\sigma, D) \mapsto (\varepsilon, \nabla\phi)`
matrix, the inverse of :math:`[[C^*, e^{*T}], [e^*, -\kappa^*]]`.

**Mixed uniform conditions** (``bc={"u": "kubc", "phi": "subc"}``, say): each field kinematic
or static.  Every case then imposes :math:`G_f` on the kinematic and :math:`Q_f` on the static
fields, and all conditions share one reading of the averages: with the columns
:math:`(\langle g\rangle_j, \langle q\rangle_j)` of the :math:`n` unit cases and
:math:`(\langle g\rangle_\theta, \langle q\rangle_\theta)` of a unit parameter,

.. math::
    \mathbb M^* = [\langle q\rangle_j]\,[\langle g\rangle_j]^{-1}, \qquad
    p^* = \langle q\rangle_\theta - \mathbb M^*\langle g\rangle_\theta

(:math:`[\langle g\rangle_j] = I`, :math:`\langle g\rangle_\theta = 0` for kinematic
conditions; :math:`[\langle q\rangle_j] = I`, :math:`\langle q\rangle_\theta = 0` for static
ones).  Every case satisfies Hill–Mandel, :math:`\langle q\cdot g\rangle = \langle q\rangle
\cdot\langle g\rangle`, since on each field either the fluctuation vanishes on
:math:`\partial Y` or the flux is uniform there.

**Ordering.**  For a law with a convex energy (conduction, elasticity; thermoelasticity's
:math:`C^*`) the minimum principles order the apparent tensors as quadratic forms:
:math:`\mathbb M^{SUBC} \le \mathbb M^{per} \le \mathbb M^{KUBC}`.  The piezoelectric enthalpy
is convex in :math:`\varepsilon` and concave in :math:`\nabla\phi`, and the pure conditions are
not ordered.  Its partial Legendre transform, the internal energy
:math:`U(\varepsilon, D) = \tfrac12\varepsilon C\varepsilon
+ \tfrac12(e\varepsilon - D)\kappa^{-1}(e\varepsilon - D)`, is jointly convex and is minimized
over displacements (kinematic) and divergence-free :math:`D` (for which a uniform normal
:math:`D\cdot n` is the restricted set), so

.. math::
    U[u\text{ static}, \phi\text{ kinematic}] \le U[\text{periodic}]
    \le U[u\text{ kinematic}, \phi\text{ static}]

as quadratic forms of :math:`(E, \bar D)`, :math:`U^*` the partial inverse of
:math:`\mathbb M^*` in the potential's block with the sign of its :math:`\nabla\phi` rows
reversed.

The result is the generalized effective or apparent matrix :math:`\mathbb M^*` in blocks by
field pair, and :math:`p^*`, so that :math:`\langle q\rangle = \mathbb M^*\langle g\rangle +
p^*\theta`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from multiscale.mesh.cell import CellMesh
from multiscale.nonlinear import PETScOwner, unique_prefix
from multiscale.physics.coupled import MultiFieldLaw, as_multifield

from .constraints import COUPLED_BCS, field_conditions
from .solver import CellProblem

__all__ = ["COUPLED_BCS", "CoupledCellProblem", "CoupledResult", "homogenize_coupled"]


@dataclass(slots=True, frozen=True)
class CoupledResult:
    """Effective (periodic) or apparent (KUBC, SUBC, mixed) generalized tensor of a
    multi-field cell.

    Attributes
    ----------
    fields, sizes, parameters:
        Field names in order, their numbers of gradient components (Voigt size for strains,
        ``d`` for scalar gradients) and the parameter names.
    tensor:
        :math:`\\mathbb M^*` (``n x n``, :math:`n = \\sum` sizes), so that
        :math:`\\langle q\\rangle = \\mathbb M^*\\langle g\\rangle + p^*\\theta` (Voigt
        stresses without factors, engineering shear strains): for kinematic conditions column
        :math:`j` is the mean flux of the unit gradient component :math:`j`; in general
        :math:`[\\langle q\\rangle_j][\\langle g\\rangle_j]^{-1}` (for SUBC the inverse of the
        apparent compliance).
    parameter_tensor:
        :math:`p^*` (``n x len(parameters)``): the mean fluxes of each unit parameter at zero
        mean gradient, :math:`\\langle q\\rangle_\\theta - \\mathbb M^*\\langle g\\rangle_\\theta`.
    mean_gradient, mean_flux:
        ``n x (n + len(parameters))``: :math:`\\langle g\\rangle` and :math:`\\langle q\\rangle`
        of each load case (the unit loads of every field, then the unit parameters).  Kinematic
        conditions: ``mean_gradient`` is the identity, then zeros; static ones: ``mean_flux``
        is, and ``mean_gradient`` holds the apparent compliance, then the eigen-gradients.
    hill_mandel:
        Per load case :math:`|\\langle q\\cdot g\\rangle - \\sum_f\\langle q_f\\rangle\\cdot
        \\langle g_f\\rangle| / (\\langle q\\cdot q\\rangle\\langle g\\cdot g\\rangle)^{1/2}`
        (normalized by its Cauchy–Schwarz bound, so also meaningful for the parameter cases,
        whose macro work vanishes).
    bc:
        ``"periodic"``, ``"kubc"``, ``"subc"``, or the mixed conditions as
        ``"<field>:<bc>,..."`` (``"u:kubc,phi:subc"``).
    """

    fields: tuple[str, ...]
    sizes: tuple[int, ...]
    parameters: tuple[str, ...]
    dim: int
    ndofs: int
    tensor: np.ndarray
    parameter_tensor: np.ndarray
    mean_gradient: np.ndarray
    mean_flux: np.ndarray
    hill_mandel: np.ndarray
    volume_fractions: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)
    solver: dict[str, Any] = field(default_factory=dict)
    bc: str = "periodic"

    def _slice(self, name: str) -> slice:
        if name not in self.fields:
            raise ValueError(f"no field {name!r} in this result; fields are {list(self.fields)}")
        k = self.fields.index(name)
        start = sum(self.sizes[:k])
        return slice(start, start + self.sizes[k])

    def block(self, flux_of: str, gradient_of: str) -> np.ndarray:
        """:math:`\\partial\\langle q_f\\rangle / \\partial G_h` for ``f = flux_of``,
        ``h = gradient_of``."""
        return self.tensor[self._slice(flux_of), self._slice(gradient_of)].copy()

    def parameter_flux(self, parameter: str, flux_of: str) -> np.ndarray:
        """:math:`\\langle q_f\\rangle` of the unit ``parameter`` at zero macro gradient."""
        if parameter not in self.parameters:
            raise ValueError(f"no parameter {parameter!r}; parameters are {list(self.parameters)}")
        return self.parameter_tensor[self._slice(flux_of), self.parameters.index(parameter)].copy()

    @property
    def hill_mandel_residual(self) -> float:
        """The largest Hill–Mandel residual over the load cases."""
        return float(np.max(self.hill_mandel))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable summary, blocks keyed ``"<flux field>,<gradient field>"``."""
        return {
            "fields": list(self.fields),
            "sizes": list(self.sizes),
            "parameters": list(self.parameters),
            "dim": self.dim,
            "bc": self.bc,
            "ndofs": self.ndofs,
            "effective_tensor": self.tensor.tolist(),
            "blocks": {
                f"{f},{h}": self.block(f, h).tolist() for f in self.fields for h in self.fields
            },
            "parameter_fluxes": {
                p: {f: self.parameter_flux(p, f).tolist() for f in self.fields}
                for p in self.parameters
            },
            "notation": "voigt (11, 22, [33, 23, 13,] 12), engineering shear strains",
            "volume_fractions": dict(self.volume_fractions),
            "hill_mandel_residual": self.hill_mandel_residual,
            "hill_mandel_per_load_case": self.hill_mandel.tolist(),
            "mean_gradient": self.mean_gradient.tolist(),
            "mean_flux": self.mean_flux.tolist(),
            "timings_s": dict(self.timings),
            "solver": dict(self.solver),
        }


class CoupledCellProblem(PETScOwner):
    """The cell problems of one microstructure with multi-field phase laws under one boundary
    condition: a face of :class:`~multiscale.cell.solver.CellProblem`, the package's one cell
    solver, for laws given through the multi-field interface.

    Parameters
    ----------
    cell:
        The periodic cell mesh with its phase tags.
    materials:
        Phase name or tag -> :class:`~multiscale.physics.coupled.MultiFieldLaw`; all laws must
        declare the same fields and parameters (a single-field law is taken as its
        :class:`~multiscale.physics.coupled.SingleField`).
    degree:
        Lagrange degree of every field.
    bc:
        ``"periodic"`` (the effective tensors), ``"kubc"`` (apparent: zero fluctuations on the
        boundary), ``"subc"`` (apparent: uniform boundary fluxes of every field), or a mapping
        of every field name to ``"kubc"`` or ``"subc"`` (mixed uniform conditions, e.g.
        ``{"u": "kubc", "phi": "subc"}``).
    petsc_options_prefix, petsc_options:
        PETSc options prefix (default ``multiscale_coupled_cell_<n>_``) and overrides of the
        MUMPS LU default, applied under it.

    Every method is collective on ``cell.mesh.comm``.
    """

    def __init__(
        self,
        cell: CellMesh,
        materials: Mapping[str | int, MultiFieldLaw],
        *,
        degree: int = 1,
        bc: str | Mapping[str, str] = "periodic",
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(bc, str):
            field_conditions(bc, ())  # an unknown name fails before any work
        self.problem = CellProblem(
            cell,
            {k: as_multifield(m) for k, m in materials.items()},
            degree=degree,
            petsc_options_prefix=petsc_options_prefix or unique_prefix("coupled_cell"),
            petsc_options=petsc_options,
        )
        self.fields, self.parameters = self.problem.fields, self.problem.parameters
        #: The condition of every field (``"periodic"`` for all, or ``"kubc"``/``"subc"`` each).
        self.conditions = field_conditions(bc, self.fields)
        self._bc = bc
        self.ndofs = self.problem.ndofs

    def solve(self) -> CoupledResult:
        """Effective (periodic) or apparent (KUBC, SUBC, mixed) generalized tensor and
        parameter responses: :math:`\\mathbb M^* = [\\langle q\rangle_j][\\langle g\rangle_j]
        ^{-1}` over the unit cases, :math:`p^* = \\langle q\rangle_\theta - \\mathbb M^*
        \\langle g\rangle_\theta` (module docstring)."""
        return self.problem.solve(self._bc)


def homogenize_coupled(
    cell: CellMesh, materials: Mapping[str | int, MultiFieldLaw], **kwargs: Any
) -> CoupledResult:
    """Effective coupled tensor of ``cell`` (see :class:`CoupledCellProblem`); frees the solver."""
    with CoupledCellProblem(cell, materials, **kwargs) as problem:
        return problem.solve()
