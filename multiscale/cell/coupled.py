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

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dolfinx
import dolfinx.fem.petsc
import dolfinx_mpc
import numpy as np
import ufl
from mpi4py import MPI

from multiscale.mesh.cell import CellMesh
from multiscale.mesh.periodicity import check_fills_box, check_periodic
from multiscale.nonlinear import PETScOwner, direct_solver_options, unique_prefix
from multiscale.physics.coupled import Field, MultiFieldLaw, as_multifield, fields_of

from .constraints import build_constraint, pin
from .linear import ConstrainedLinearSolver

__all__ = ["COUPLED_BCS", "CoupledCellProblem", "CoupledResult", "homogenize_coupled"]

#: The boundary conditions of multi-field cell problems (a string for all fields).
COUPLED_BCS = ("periodic", "kubc", "subc")
#: The uniform conditions a field may take in a mixed condition (one per field).
FIELD_BCS = ("kubc", "subc")


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


def _gradient_shape(f: Field, dim: int) -> tuple[int, ...]:
    return (dim,) if f.shape == "scalar" else (dim, dim)


def _field_conditions(bc: Any, fields: tuple[Field, ...]) -> dict[str, str]:
    """The condition of every field: ``bc`` for all (a name of :data:`COUPLED_BCS`) or a mapping
    of every field name to ``"kubc"`` or ``"subc"``; a one-line ``ValueError`` otherwise."""
    names = [f.name for f in fields]
    if isinstance(bc, str):
        if bc not in COUPLED_BCS:
            raise ValueError(
                f"coupled cell problems take bc {', '.join(map(repr, COUPLED_BCS))} or a mapping "
                f"of each field to {' or '.join(map(repr, FIELD_BCS))}, got {bc!r}"
            )
        return dict.fromkeys(names, bc)
    if not isinstance(bc, Mapping):
        raise ValueError(f"bc must be a string or a mapping of field names, got {bc!r}")
    if set(bc) != set(names):
        raise ValueError(f"a mixed bc names every field once: fields {names}, got {list(bc)}")
    bad = {k: v for k, v in bc.items() if v not in FIELD_BCS}
    if bad:
        raise ValueError(
            f"a field's uniform condition is {' or '.join(map(repr, FIELD_BCS))} (periodic "
            f"conditions apply to all fields), got {bad}"
        )
    return {name: bc[name] for name in names}


def _components(fields: tuple[Field, ...], dim: int) -> dict[str, list[int]]:
    """The components of every field in the blocked space."""
    out, k = {}, 0
    for f in fields:
        out[f.name] = list(range(k, k + f.value_size(dim)))
        k += f.value_size(dim)
    return out


def _uniform_constraint(
    V: dolfinx.fem.FunctionSpace,
    box: np.ndarray,
    fields: tuple[Field, ...],
    conditions: dict[str, str],
) -> tuple[dolfinx_mpc.MultiPointConstraint, list[dolfinx.fem.DirichletBC]]:
    """An empty constraint and the homogeneous Dirichlet conditions of uniform conditions, field
    by field: a kinematic field vanishes on :math:`\\partial Y` (its fluctuation), a static one
    is pinned at box corners just enough to remove its null space: the constant of a scalar
    field or of each component of a vector field with a full gradient, the rigid modes of a
    vector field with a symmetric gradient (all components at :math:`a`, components
    :math:`2..d` at :math:`a + L_1e_1` and, in 3D, component 3 at :math:`a + L_2e_2`).
    Collective."""
    mesh = V.mesh
    dim = mesh.geometry.dim
    lo, hi = np.asarray(box[0], dtype=float), np.asarray(box[1], dtype=float)
    L = hi - lo
    tol = 1e-8 * float(L.max())
    scalar_space = V.num_sub_spaces == 0
    fdim = dim - 1
    mesh.topology.create_connectivity(fdim, dim)
    facets = dolfinx.mesh.exterior_facet_indices(mesh.topology)
    bcs: list[dolfinx.fem.DirichletBC] = []
    for f in fields:
        comps = _components(fields, dim)[f.name]
        if conditions[f.name] == "kubc":
            for c in [None] if scalar_space else comps:
                Vc = V if c is None else V.sub(c)
                dofs = dolfinx.fem.locate_dofs_topological(Vc, fdim, facets)
                bcs.append(dolfinx.fem.dirichletbc(np.float64(0.0), dofs, Vc))
            continue
        bcs += pin(V, lo, None if scalar_space else comps, tol)
        if f.gradient == "sym_grad":  # the rotations
            e = np.eye(dim)
            bcs += pin(V, lo + L[0] * e[0], comps[1:], tol)
            if dim == 3:
                bcs += pin(V, lo + L[1] * e[1], comps[2:], tol)
    mpc = dolfinx_mpc.MultiPointConstraint(V)
    mpc.finalize()
    return mpc, bcs


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
        ``"periodic"`` (the effective tensors), ``"kubc"`` (apparent: zero fluctuations on the
        boundary), ``"subc"`` (apparent: uniform boundary fluxes of every field), or a mapping
        of every field name to ``"kubc"`` or ``"subc"`` (mixed uniform conditions, e.g.
        ``{"u": "kubc", "phi": "subc"}``).
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
        bc: str | Mapping[str, str] = "periodic",
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(degree, bool) or not isinstance(degree, int | np.integer) or degree < 1:
            raise ValueError(f"degree must be a positive integer, got {degree!r}")
        if isinstance(bc, str):
            _field_conditions(bc, ())  # an unknown name fails before any work
        self.cell, mesh = cell, cell.mesh
        self.comm: MPI.Comm = mesh.comm
        self.dim = mesh.geometry.dim
        materials = {k: as_multifield(m) for k, m in materials.items()}
        self.fields, self.parameters = fields_of(materials)
        #: The condition of every field (``"periodic"`` for all, or ``"kubc"``/``"subc"`` each).
        self.conditions = _field_conditions(bc, self.fields)
        kinds = set(self.conditions.values())
        self.bc = (
            kinds.pop()
            if len(kinds) == 1
            else ",".join(f"{n}:{c}" for n, c in self.conditions.items())
        )
        self.materials: dict[int, MultiFieldLaw] = cell.by_tag(materials)
        cell.check_tagged()
        check_fills_box(cell)
        if self.bc == "periodic":
            check_periodic(cell)
        self.prefix = petsc_options_prefix or unique_prefix("coupled_cell")
        self.options = direct_solver_options() | dict(petsc_options or {})
        self.timings: dict[str, float] = {}
        ncomp = sum(f.value_size(self.dim) for f in self.fields)
        shape = () if ncomp == 1 else (ncomp,)  # one scalar field: a plain scalar space
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", degree, shape))
        self.ndofs = self.V.dofmap.index_map.size_global * self.V.dofmap.index_map_bs
        t0 = time.perf_counter()
        if self.bc in ("periodic", "kubc"):
            self.mpc, self.bcs = build_constraint(self.V, cell.box, self.bc)
        else:
            self.mpc, self.bcs = _uniform_constraint(self.V, cell.box, self.fields, self.conditions)
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

    def _static(self, f: Field) -> bool:
        """Whether the macro flux of ``f`` is imposed (SUBC) rather than its macro gradient."""
        return self.conditions[f.name] == "subc"

    # -- forms ---------------------------------------------------------------------------------
    def _make_constants(self) -> None:
        mesh, d = self.cell.mesh, self.dim
        zeros = {f.name: np.zeros(_gradient_shape(f, d)) for f in self.fields}
        self._G = {n: dolfinx.fem.Constant(mesh, z) for n, z in zeros.items()}
        self._Q = {n: dolfinx.fem.Constant(mesh, z.copy()) for n, z in zeros.items()}
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
        mesh = self.cell.mesh
        dx = ufl.Measure("dx", domain=mesh, subdomain_data=self.cell.cell_tags)
        w, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        gw, gv = self._gradients(w), self._gradients(v)
        no_params = {p: 0.0 for p in self.parameters}

        def pair(q: dict, g: dict) -> Any:
            return sum(ufl.inner(q[n], g[n]) for n in q)

        laws = self.materials.items()
        self._a = dolfinx.fem.form(sum(pair(m.fluxes(gw, no_params), gv) * dx(t) for t, m in laws))
        L = -sum(pair(m.fluxes(dict(self._G), dict(self._P)), gv) * dx(t) for t, m in laws)
        normal, vs = ufl.FacetNormal(mesh), self._split(v)
        for f in filter(self._static, self.fields):  # the uniform boundary flux Q_f n
            L += ufl.inner(ufl.dot(self._Q[f.name], normal), vs[f.name]) * ufl.ds
        self._L = dolfinx.fem.form(L)
        g = {n: self._G[n] + gu for n, gu in self._gradients(self.u).items()}
        q = [(t, m.fluxes(g, dict(self._P))) for t, m in laws]
        self._q_T = dolfinx.fem.form(sum(pair(qt, self._T) * dx(t) for t, qt in q))
        self._g_T = dolfinx.fem.form(pair(g, self._T) * dx)
        self._q_g = dolfinx.fem.form(sum(pair(qt, g) * dx(t) for t, qt in q))
        self._q_q = dolfinx.fem.form(sum(pair(qt, qt) * dx(t) for t, qt in q))
        self._g_g = dolfinx.fem.form(pair(g, g) * dx)

    # -- load cases ----------------------------------------------------------------------------
    def _load_cases(self) -> list[tuple[str, str, Any]]:
        """``(kind, name, value)``: the unit loads of every field (gradients ``"g"`` of a
        kinematic field, the fluxes ``"q"`` of the unit Voigt flux vectors of a static one),
        then the unit parameters ``"p"``."""
        cases = []
        for f in self.fields:
            if self._static(f):
                cases += [("q", f.name, Q) for Q in f.unit_fluxes(self.dim)]
            else:
                cases += [("g", f.name, G) for G in f.unit_gradients(self.dim)]
        return cases + [("p", p, 1.0) for p in self.parameters]

    def _set_load(self, kind: str, name: str, value: Any) -> None:
        for constants in (self._G, self._Q, self._P):
            for c in constants.values():
                c.value[...] = 0.0
        {"g": self._G, "q": self._Q, "p": self._P}[kind][name].value[...] = value

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
        """Effective (periodic) or apparent (KUBC, SUBC, mixed) generalized tensor and
        parameter responses: :math:`\\mathbb M^* = [\\langle q\\rangle_j][\\langle g\\rangle_j]
        ^{-1}` over the unit cases, :math:`p^* = \\langle q\\rangle_\\theta - \\mathbb M^*
        \\langle g\\rangle_\\theta` (module docstring)."""
        cases = self._load_cases()
        n = sum(f.gradient_size(self.dim) for f in self.fields)
        mean_q, mean_g = np.zeros((n, len(cases))), np.zeros((n, len(cases)))
        hill = np.zeros(len(cases))
        for j, case in enumerate(cases):
            self._set_load(*case)
            self.linear.solve(self._L, self.u, case=f"load case {j}")
            mean_q[:, j], mean_g[:, j], defect, scale = self._averages()
            hill[j] = defect / scale
        # M* G = Q over the unit cases: M* = Q G^{-1}, read as the solve G^T M*^T = Q^T
        tensor = np.linalg.solve(mean_g[:, :n].T, mean_q[:, :n].T).T
        parameter_tensor = mean_q[:, n:] - tensor @ mean_g[:, n:]
        timings = dict(self.timings, **self.linear.timings)
        timings = {k: self.comm.allreduce(v, op=MPI.MAX) for k, v in timings.items()}
        return CoupledResult(
            fields=tuple(f.name for f in self.fields),
            sizes=tuple(f.gradient_size(self.dim) for f in self.fields),
            parameters=tuple(self.parameters),
            dim=self.dim,
            ndofs=self.ndofs,
            tensor=tensor,
            parameter_tensor=parameter_tensor,
            mean_gradient=mean_g,
            mean_flux=mean_q,
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
