r"""Multi-field (coupled) linear cell problems: thermoelastic and piezoelectric homogenization.

The phases carry one :class:`~multiscale.physics.coupled.MultiFieldLaw` each (all with the same
fields :math:`u_f` and parameters :math:`\theta_p`).  For macro gradients :math:`G_f` and
parameters :math:`\theta` the cell problem seeks periodic fluctuations :math:`\tilde u_f` with

.. math::
    \sum_f \int_Y q_f\big(G + g(\tilde u), \theta\big) \cdot g_f(v_f)\,dy = 0
    \quad \forall v \text{ periodic},

:math:`g_f` the gradient or symmetric gradient of field :math:`f`.  All fields share one
Lagrange space of :math:`\sum_f n_f` components (a blocked space: :math:`u_1..u_d, \phi` for
piezoelectricity), so one :func:`~multiscale.cell.constraints.build_constraint` makes every
component periodic and pins one interior node (removing the constant of every field).  The
operator is assembled and factorized (MUMPS LU: the piezoelectric operator is symmetric
indefinite) once; the load cases are the unit macro gradient components of every field (Voigt
order with engineering shears, :mod:`multiscale.tensors`) and then each unit parameter, and only
change :class:`dolfinx.fem.Constant` values.

With ``bc="kubc"`` the fluctuations vanish on :math:`\partial Y` instead (kinematic uniform
boundary conditions): the apparent tensors, stiffer than the periodic ones in the energy sense.
Levin's uniform-field argument holds for them too (a uniform strain field satisfies affine
boundary data), so his relation links the KUBC thermal stress to the KUBC stiffness.  Static
(flux) conditions are not offered for multi-field laws.

The result is the generalized effective matrix :math:`\mathbb M^*` (column :math:`j`: the mean
fluxes :math:`\langle q\rangle`, concatenated over the fields in Voigt form, of unit load
:math:`j`) in blocks by field pair, and the mean fluxes of each unit parameter at zero macro
gradient, :math:`p^*`, so that :math:`\langle q\rangle = \mathbb M^* G + p^*\theta`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import ufl
from mpi4py import MPI

from multiscale.mesh.cell import CellMesh
from multiscale.mesh.periodicity import check_fills_box, check_periodic
from multiscale.nonlinear import PETScOwner, unique_prefix
from multiscale.physics.coupled import Field, MultiFieldLaw, as_multifield, fields_of

from .constraints import build_constraint
from .linear import ConstrainedLinearSolver

__all__ = ["COUPLED_BCS", "CoupledCellProblem", "CoupledResult", "homogenize_coupled"]

#: The boundary conditions of multi-field cell problems.
COUPLED_BCS = ("periodic", "kubc")


@dataclass(slots=True, frozen=True)
class CoupledResult:
    """Effective (periodic) or apparent (KUBC) generalized tensor of a multi-field cell.

    Attributes
    ----------
    fields, sizes, parameters:
        Field names in order, their numbers of gradient components (Voigt size for strains,
        ``d`` for scalar gradients) and the parameter names.
    tensor:
        :math:`\\mathbb M^*` (``n x n``, :math:`n = \\sum` sizes): column :math:`j` holds the
        mean fluxes of the unit gradient component :math:`j` (Voigt stresses without factors,
        engineering shear strains).
    parameter_tensor:
        :math:`p^*` (``n x len(parameters)``): mean fluxes of each unit parameter at zero macro
        gradient.
    mean_gradient:
        ``n x (n + len(parameters))``: :math:`\\langle g\\rangle` of each load case (the identity,
        then zeros, for periodic conditions).
    hill_mandel:
        Per load case :math:`|\\langle q\\cdot g\\rangle - \\sum_f\\langle q_f\\rangle\\cdot
        \\langle g_f\\rangle| / (\\langle q\\cdot q\\rangle\\langle g\\cdot g\\rangle)^{1/2}`
        (normalized by its Cauchy–Schwarz bound, so also meaningful for the parameter cases,
        whose macro work vanishes).
    """

    fields: tuple[str, ...]
    sizes: tuple[int, ...]
    parameters: tuple[str, ...]
    dim: int
    ndofs: int
    tensor: np.ndarray
    parameter_tensor: np.ndarray
    mean_gradient: np.ndarray
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
            "timings_s": dict(self.timings),
            "solver": dict(self.solver),
        }


def _default_options() -> dict[str, Any]:
    return {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}


def _gradient_shape(f: Field, dim: int) -> tuple[int, ...]:
    return (dim,) if f.shape == "scalar" else (dim, dim)


class CoupledCellProblem(PETScOwner):
    """Linear cell problems of one microstructure with multi-field phase laws.

    Parameters
    ----------
    cell:
        The periodic cell mesh with its phase tags.
    materials:
        Phase name or tag -> :class:`~multiscale.physics.coupled.MultiFieldLaw`; all laws must
        declare the same fields and parameters.
    degree:
        Lagrange degree of every field.
    bc:
        ``"periodic"`` (the effective tensors) or ``"kubc"`` (apparent: zero fluctuations on
        the boundary).
    petsc_options_prefix, petsc_options:
        PETSc options prefix (default ``multiscale_coupled_cell_<n>_``) and overrides of the
        MUMPS LU default, applied under it.

    The constraint, the forms, the matrix and its factorization are made once; every method is
    collective on ``cell.mesh.comm``.  Free the PETSc objects with :meth:`destroy` or ``with``.
    """

    def __init__(
        self,
        cell: CellMesh,
        materials: Mapping[str | int, MultiFieldLaw],
        *,
        degree: int = 1,
        bc: str = "periodic",
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(degree, bool) or not isinstance(degree, int | np.integer) or degree < 1:
            raise ValueError(f"degree must be a positive integer, got {degree!r}")
        if bc not in COUPLED_BCS:
            raise ValueError(
                f"coupled cell problems take bc {' or '.join(map(repr, COUPLED_BCS))}, got {bc!r}"
            )
        self.bc = bc
        self.cell, mesh = cell, cell.mesh
        self.comm: MPI.Comm = mesh.comm
        self.dim = mesh.geometry.dim
        materials = {k: as_multifield(m) for k, m in materials.items()}
        self.fields, self.parameters = fields_of(materials)
        self.materials: dict[int, MultiFieldLaw] = cell.by_tag(materials)
        cell.check_tagged()
        check_fills_box(cell)
        if bc == "periodic":
            check_periodic(cell)
        self.prefix = petsc_options_prefix or unique_prefix("coupled_cell")
        self.options = _default_options() | dict(petsc_options or {})
        self.timings: dict[str, float] = {}
        ncomp = sum(f.value_size(self.dim) for f in self.fields)
        shape = () if ncomp == 1 else (ncomp,)  # one scalar field: a plain scalar space
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", degree, shape))
        self.ndofs = self.V.dofmap.index_map.size_global * self.V.dofmap.index_map_bs
        t0 = time.perf_counter()
        self.mpc, self.bcs = build_constraint(self.V, cell.box, bc)
        self.timings["constraint"] = time.perf_counter() - t0
        self.u = dolfinx.fem.Function(self.mpc.function_space)
        self._make_constants()
        t0 = time.perf_counter()
        self._compile_forms()
        self.timings["compile"] = time.perf_counter() - t0
        self.linear = self._own(
            ConstrainedLinearSolver(
                self._a,
                self.mpc,
                self.bcs,
                petsc_options_prefix=self.prefix,
                petsc_options=self.options,
                name="coupled cell solver",
            )
        )

    # -- forms ---------------------------------------------------------------------------------
    def _make_constants(self) -> None:
        mesh, d = self.cell.mesh, self.dim
        zeros = {f.name: np.zeros(_gradient_shape(f, d)) for f in self.fields}
        self._G = {n: dolfinx.fem.Constant(mesh, z) for n, z in zeros.items()}
        self._T = {n: dolfinx.fem.Constant(mesh, z.copy()) for n, z in zeros.items()}
        self._P = {p: dolfinx.fem.Constant(mesh, 0.0) for p in self.parameters}

    def _split(self, w: Any) -> dict[str, Any]:
        """The fields of the blocked unknown ``w`` (a trial, test or solution function)."""
        if len(w.ufl_shape) == 0:  # the one scalar field of a scalar space
            return {self.fields[0].name: w}
        out, k = {}, 0
        for f in self.fields:
            if f.shape == "scalar":
                out[f.name], k = w[k], k + 1
            else:
                out[f.name], k = ufl.as_vector([w[k + i] for i in range(self.dim)]), k + self.dim
        return out

    def _gradients(self, w: Any) -> dict[str, Any]:
        parts = self._split(w)
        return {f.name: f.gradient_of(parts[f.name]) for f in self.fields}

    def _compile_forms(self) -> None:
        dx = ufl.Measure("dx", domain=self.cell.mesh, subdomain_data=self.cell.cell_tags)
        w, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        gw, gv = self._gradients(w), self._gradients(v)
        no_params = {p: 0.0 for p in self.parameters}

        def pair(q: dict, g: dict) -> Any:
            return sum(ufl.inner(q[n], g[n]) for n in q)

        laws = self.materials.items()
        self._a = dolfinx.fem.form(sum(pair(m.fluxes(gw, no_params), gv) * dx(t) for t, m in laws))
        self._L = dolfinx.fem.form(
            -sum(pair(m.fluxes(dict(self._G), dict(self._P)), gv) * dx(t) for t, m in laws)
        )
        g = {n: self._G[n] + gu for n, gu in self._gradients(self.u).items()}
        q = [(t, m.fluxes(g, dict(self._P))) for t, m in laws]
        self._q_T = dolfinx.fem.form(sum(pair(qt, self._T) * dx(t) for t, qt in q))
        self._g_T = dolfinx.fem.form(pair(g, self._T) * dx)
        self._q_g = dolfinx.fem.form(sum(pair(qt, g) * dx(t) for t, qt in q))
        self._q_q = dolfinx.fem.form(sum(pair(qt, qt) * dx(t) for t, qt in q))
        self._g_g = dolfinx.fem.form(pair(g, g) * dx)

    # -- load cases ----------------------------------------------------------------------------
    def _load_cases(self) -> list[tuple[str, str, Any]]:
        """``(kind, name, value)``: the unit gradients of every field, then unit parameters."""
        cases = [("g", f.name, G) for f in self.fields for G in f.unit_gradients(self.dim)]
        return cases + [("p", p, 1.0) for p in self.parameters]

    def _set_load(self, kind: str, name: str, value: Any) -> None:
        for c in self._G.values():
            c.value[...] = 0.0
        for c in self._P.values():
            c.value[...] = 0.0
        (self._G if kind == "g" else self._P)[name].value[...] = value

    def _averages(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """:math:`\\langle q\\rangle`, :math:`\\langle g\\rangle` (concatenated Voigt vectors),
        the Hill–Mandel defect and its Cauchy–Schwarz scale, reduced over ranks."""
        picks = [(f.name, T, S) for f in self.fields for T, S in self._picks(f)]
        n = len(picks)
        vals = np.zeros(2 * n + 3)
        for k, (name, T, S) in enumerate(picks):
            for c in self._T.values():
                c.value[...] = 0.0
            self._T[name].value[...] = T
            vals[k] = dolfinx.fem.assemble_scalar(self._q_T)
            self._T[name].value[...] = S
            vals[n + k] = dolfinx.fem.assemble_scalar(self._g_T)
        for i, form in enumerate((self._q_g, self._q_q, self._g_g)):
            vals[2 * n + i] = dolfinx.fem.assemble_scalar(form)
        vals = self.comm.allreduce(vals, op=MPI.SUM) / self.cell.volume
        mq, mg = vals[:n], vals[n : 2 * n]
        defect = abs(vals[2 * n] - float(mq @ mg))
        return mq, mg, defect, float(np.sqrt(vals[2 * n + 1] * vals[2 * n + 2]))

    def _picks(self, f: Field) -> list[tuple[np.ndarray, np.ndarray]]:
        return list(zip(f.unit_gradients(self.dim), f.unit_fluxes(self.dim), strict=True))

    def solve(self) -> CoupledResult:
        """Effective (periodic) or apparent (KUBC) generalized tensor and parameter
        responses."""
        cases = self._load_cases()
        n = sum(f.gradient_size(self.dim) for f in self.fields)
        mean_q, mean_g = np.zeros((n, len(cases))), np.zeros((n, len(cases)))
        hill = np.zeros(len(cases))
        for j, case in enumerate(cases):
            self._set_load(*case)
            self.linear.solve(self._L, self.u, case=f"load case {j}")
            mean_q[:, j], mean_g[:, j], defect, scale = self._averages()
            hill[j] = defect / scale
        timings = dict(self.timings, **self.linear.timings)
        timings = {k: self.comm.allreduce(v, op=MPI.MAX) for k, v in timings.items()}
        return CoupledResult(
            fields=tuple(f.name for f in self.fields),
            sizes=tuple(f.gradient_size(self.dim) for f in self.fields),
            parameters=tuple(self.parameters),
            dim=self.dim,
            ndofs=self.ndofs,
            tensor=mean_q[:, :n],
            parameter_tensor=mean_q[:, n:],
            mean_gradient=mean_g,
            hill_mandel=hill,
            volume_fractions=dict(self.cell.volume_fractions()),
            timings=timings,
            solver={
                "prefix": self.prefix,
                "options": dict(self.options),
                "iterations": list(self.linear.iterations[-len(cases) :]),
            },
            bc=self.bc,
        )


def homogenize_coupled(
    cell: CellMesh, materials: Mapping[str | int, MultiFieldLaw], **kwargs: Any
) -> CoupledResult:
    """Effective coupled tensor of ``cell`` (see :class:`CoupledCellProblem`); frees the solver."""
    with CoupledCellProblem(cell, materials, **kwargs) as problem:
        return problem.solve()
