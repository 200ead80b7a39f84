"""Linear cell problems: effective tensors of a unit cell, one solver for every linear physics.

:class:`CellProblem` solves the cell problems of single-field laws (conductivity, small-strain
elasticity) and of multi-field laws (:class:`~multiscale.physics.coupled.MultiFieldLaw`:
thermoelasticity, piezoelectricity, any law that declares its fields, parameters and fluxes)
with the same forms, constraints, load cases and averages: a single-field law is the
multi-field law of one field (:class:`~multiscale.physics.coupled.SingleField`).  The
multi-field statements (kinematic, static and mixed uniform conditions, parameters) are those of
:mod:`multiscale.cell.coupled`; below, the single-field case.

For a macroscopic gradient :math:`G` (conductivity) or strain :math:`E` (elasticity) the
cell problem seeks :math:`u = G\\cdot y + \\tilde u` with

.. math::
    \\int_Y q\\big(G + g(\\tilde u)\\big) \\cdot g(v)\\,dy = 0 \\quad \\forall v,

where :math:`g` is the gradient or the symmetric gradient, :math:`q` the phase law, and
:math:`\\tilde u` periodic (``periodic``) or zero on :math:`\\partial Y` (``kubc``).  The effective
tensor maps :math:`G` to the mean flux: column :math:`j` of :math:`A^{hom}` (or :math:`C^{hom}` in
Voigt form) is :math:`\\langle q\\rangle` for the unit load :math:`G = e_j`.

For ``subc`` the macro *flux* :math:`\\Sigma` is imposed instead:

.. math::
    \\int_Y q(g(u))\\cdot g(v)\\,dy = \\int_{\\partial Y} (\\Sigma n)\\cdot v\\,ds,

the mean gradient :math:`\\langle g(u)\\rangle` of each unit :math:`\\Sigma = e_j` is a column of
the apparent compliance :math:`S`, and :math:`C^{SUBC} = S^{-1}`.

The operator is assembled once per boundary condition and its factorization (or its algebraic
multigrid hierarchy) is reused for all :math:`d` (conductivity) or :math:`3`/:math:`6` (elasticity)
right-hand sides.  Every form is compiled once per :class:`CellProblem`; a load case only changes
the values of :class:`dolfinx.fem.Constant` objects.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.mesh.cell import CellMesh
from multiscale.mesh.periodicity import check_fills_box, check_periodic
from multiscale.nonlinear import direct_solver_options, unique_prefix
from multiscale.physics.base import Material, kind_of
from multiscale.physics.coupled import (
    Field,
    MultiFieldLaw,
    as_multifield,
    fields_of,
    split_fields,
)
from multiscale.tensors import voigt_size, voigt_to_strain

from .constraints import BCS, build_constraint, field_conditions, uniform_constraint
from .linear import ConstrainedLinearSolver
from .result import HomogenizationResult

__all__ = ["CellProblem", "default_petsc_options", "homogenize", "unit_loads"]

log = logging.getLogger(__name__)


def default_petsc_options(
    dim: int, ndofs: int, kind: str, tensor_rtol: float | None = None
) -> dict[str, Any]:
    """The solver chosen by measurement (see ``benchmarks/cell.py``).

    Sparse direct LU (MUMPS) for 2D cells and small 3D ones; conjugate gradients with algebraic
    multigrid for 3D cells above 30k dofs, where fill-in makes LU slow and memory hungry.  The
    multigrid hierarchy is built once and reused for every right-hand side.

    The multigrid is hypre's BoomerAMG where PETSc has hypre (else GAMG, smoothed aggregation
    with the rigid-body or constant near-null space, two Chebyshev sweeps per level, threshold
    0): HMIS coarsening with strength threshold 0.25, aggressive coarsening on the first level
    along two paths (``agg_num_paths`` 2), extended+i interpolation truncated to 6 entries per
    row, one Chebyshev sweep down and up.  Its set-up costs about a fifth of GAMG's, whose
    Galerkin products (``MatPtAP`` of the smoothed prolongator) dominate.  Measured on the
    204k-dof sphere cell (1 rank, one BLAS thread, six load cases at ``tensor_rtol`` 1e-8, CPU
    seconds on a shared 2-core machine): set-up 1.4-1.5 s against 7.1-8.2 s for GAMG; with
    strength 0.5 and one path 87 CG iterations in 9.3-9.7 s, with strength 0.25 and two paths
    72 in 7.2-7.4 s (three paths: 62, but slower ones, 7.8 s; PMIS, ``agg_pmax``, truncation
    or ext+i-mm interpolation: no better).  Not better either: symmetric Gauss-Seidel or
    l1-Jacobi smoothing, no aggressive coarsening (set-up 3.9 s), nodal coarsening, the
    rigid-body modes as interpolation vectors (iterations twice as slow), OpenMP threads in
    hypre on the shared machine (twice as slow); for GAMG, unsmoothed aggregation (126-224
    iterations), one Chebyshev sweep, MIS-2 instead of the squared graph, no aggressive
    coarsening (set-up 25 s).  BoomerAMG does not use the near-null space here.

    BoomerAMG gets the operator without the explicit zeros of the constraint's sparsity pattern
    (:func:`~multiscale.cell.linear.compact_aij`: 1.7M of 10.3M entries on that cell): the same
    68 iterations and tensor, set-up (conversion included) 1.6-1.8 s instead of 2.2-2.5 s, a
    preconditioner application 80 ms instead of 92 ms.  With it (and the constraint and the
    energy-form residuals of :class:`CellProblem` built faster), alternating runs of
    ``benchmarks/cell.py`` on the shared machine under a load of 2.3-3.3 gave 10.6-13.5 s
    (``cell_problem_s``; CPU 10.5-12.9 s) against 13.1-15.2 s (CPU 12.9-14.8 s) before.  No
    better either: ``max_row_sum`` 1 (the same iterations), no C/F ordering of the Chebyshev
    sweeps (the same), strength threshold 0.3 or 0.35 (67 and 64 iterations, no faster), a
    coarse grid of 500 rows relaxed by Chebyshev (87 iterations), two sweeps per level (63
    iterations at twice the cost); block CG over the six load cases (a prototype with the same
    preconditioner: 11 block iterations, so 72 applications against 68; PETSc here has no
    HPDDM for ``KSPHPDDM``), and a Fischer initial guess (68 iterations).

    The relative residual of CG is tied to the accuracy wanted.  A tensor read from mean fluxes
    is off by about 1e-2 times the relative residual (the default 1e-9 when ``tensor_rtol`` is
    not given).  The energy form of :class:`CellProblem` is off by the square of the algebraic
    error (see :meth:`CellProblem._energy_tensor`): measured on the 204k-dof sphere cell against
    a 1e-12 solve, the tensor error is :math:`c\\,r^2` for a relative residual :math:`r`, with
    :math:`c` between 0.9 and 1.7 (GAMG: :math:`r` = 1e-3, 1e-4, 3e-5, 1e-5 give 1.1e-6, 5.0e-9,
    7.6e-10, 3.7e-11; BoomerAMG as above: 3.2e-5, 1e-4 give 1.7e-9, 1.4e-8).  So for a relative
    tensor accuracy :math:`t` (``tensor_rtol``) CG stops at :math:`r = \\sqrt{t/3}`, an error
    of at most about :math:`0.6\\,t`: :math:`t` = 1e-8 and 1e-6 give 4.5e-9 and 4.3e-7 in 68
    and 45 iterations for the six load cases.
    """
    rtol = 1.0e-9 if tensor_rtol is None else float(np.sqrt(tensor_rtol / 3.0))
    if dim == 3 and ndofs > 30_000:
        krylov = {"ksp_type": "cg", "ksp_rtol": rtol, "ksp_atol": 1.0e-50, "ksp_max_it": 2000}
        if PETSc.Sys.hasExternalPackage("hypre"):
            return krylov | {
                "pc_type": "hypre",
                "pc_hypre_type": "boomeramg",
                "pc_hypre_boomeramg_coarsen_type": "HMIS",
                "pc_hypre_boomeramg_strong_threshold": 0.25,
                "pc_hypre_boomeramg_agg_nl": 1,
                "pc_hypre_boomeramg_agg_num_paths": 2,
                "pc_hypre_boomeramg_interp_type": "ext+i",
                "pc_hypre_boomeramg_P_max": 6,
                "pc_hypre_boomeramg_relax_type_all": "Chebyshev",
            }
        return krylov | {
            "pc_type": "gamg",
            "pc_gamg_type": "agg",
            "pc_gamg_threshold": 0.0,
            "pc_gamg_square_graph": 1,
            "mg_levels_ksp_type": "chebyshev",
            "mg_levels_pc_type": "jacobi",
            "mg_levels_ksp_max_it": 2,
        }
    return direct_solver_options()  # MUMPS LU with 100 % workspace headroom


def unit_loads(kind: str, dim: int) -> list[np.ndarray]:
    """Unit macro loads: the vectors :math:`e_j` (scalar) or the strain tensors of the unit Voigt
    vectors with engineering shears (:math:`E_{ij} = E_{ji} = 1/2` for the shear columns)."""
    if kind == "scalar":
        return [np.eye(dim)[j] for j in range(dim)]
    return [voigt_to_strain(e) for e in np.eye(voigt_size(dim))]


def _gradient_shape(f: Field, dim: int) -> tuple[int, ...]:
    return (dim,) if f.shape == "scalar" else (dim, dim)


def _pair(q: dict[str, Any], g: dict[str, Any]) -> Any:
    r""":math:`\sum_f q_f : g_f` over the fields."""
    return sum(ufl.inner(q[n], g[n]) for n in q)


def _literal(a: np.ndarray) -> Any:
    """A constant vector or matrix as a UFL literal (compiled into the form)."""
    return ufl.as_vector(a.tolist()) if a.ndim == 1 else ufl.as_matrix(a.tolist())


class _Timer:
    def __init__(self, timings: dict[str, float], key: str) -> None:
        self.timings, self.key = timings, key

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.key] = self.timings.get(self.key, 0.0) + time.perf_counter() - self.t0


def _owned(x: Any) -> np.ndarray:
    """The owned entries of a dolfinx vector or function (block size included)."""
    vec = x.x if isinstance(x, dolfinx.fem.Function) else x
    return vec.array[: vec.index_map.size_local * vec.block_size]


@dataclass(slots=True)
class _Setup:
    """What one boundary condition's solves share."""

    bc: str
    mpc: Any
    bcs: list
    u: dolfinx.fem.Function
    averages: dolfinx.fem.Form
    energy: bool  # the tensor in energy form (False when the flux is imposed: SUBC)
    options: dict[str, Any]
    prefix: str
    loads: list[tuple[str, str, Any]]
    L: dolfinx.fem.Form


@dataclass(slots=True)
class _Cases:
    """The averages of every load case, and (displacement-driven conditions) the residual of
    the unconstrained form and the fluctuation of each, owned entries only."""

    mean_q: np.ndarray
    mean_g: np.ndarray
    hill: np.ndarray
    fields: list[dolfinx.fem.Function] = field(default_factory=list)
    residuals: list[np.ndarray] = field(default_factory=list)
    fluctuations: list[np.ndarray] = field(default_factory=list)


class CellProblem:
    """Linear cell problems of one microstructure with one set of phase laws.

    Parameters
    ----------
    cell:
        The periodic cell mesh with its phase tags.
    materials:
        Phase name or tag -> law.  Either single-field laws of one kind (conductivity or
        small-strain elasticity: a :class:`~multiscale.physics.base.Material`), whose result is
        a :class:`~multiscale.cell.result.HomogenizationResult`, or laws of the multi-field
        interface (:class:`~multiscale.physics.coupled.MultiFieldLaw`: thermoelasticity,
        piezoelectricity, any law declaring its fields and parameters), all with the same
        fields and parameters, whose result is a
        :class:`~multiscale.cell.coupled.CoupledResult`.  A single-field law is itself an
        instance of the interface (:class:`~multiscale.physics.coupled.SingleField`): both run
        through the same forms, constraints, load cases and averages.
    degree:
        Lagrange degree of every field.
    tensor_rtol:
        The relative accuracy wanted of the tensor from an iterative solver: it sets the
        solver's relative residual (:func:`default_petsc_options`); direct solvers are exact.
    petsc_options_prefix, petsc_options:
        PETSc options prefix (default ``multiscale_cell_<n>_``, see
        :func:`~multiscale.nonlinear.unique_prefix`) and overrides of
        :func:`default_petsc_options` (single-field laws) or of MUMPS LU (multi-field laws,
        whose operator may be indefinite), applied under it (each solve adds the boundary
        condition to the prefix: ``<prefix>periodic_``).

    Every method is collective on ``cell.mesh.comm``.
    """

    def __init__(
        self,
        cell: CellMesh,
        materials: Mapping[str | int, Any],
        *,
        degree: int = 1,
        tensor_rtol: float = 1.0e-8,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not 0.0 < tensor_rtol < 1.0:
            raise ValueError(f"tensor_rtol must lie in (0, 1), got {tensor_rtol}")
        if isinstance(degree, bool) or not isinstance(degree, int | np.integer) or degree < 1:
            raise ValueError(f"degree must be a positive integer, got {degree!r}")
        self.tensor_rtol = tensor_rtol
        self.prefix = petsc_options_prefix or unique_prefix("cell")
        self._user_options = dict(petsc_options or {})
        self._init_laws(cell, materials)
        self._init_space(int(degree))
        self._init_forms()

    # -- construction, in steps ------------------------------------------------------------------
    def _init_laws(self, cell: CellMesh, materials: Mapping[str | int, Any]) -> None:
        """The phase laws, their fields and parameters; the cell's checks."""
        self.cell = cell
        self.comm: MPI.Comm = cell.mesh.comm
        self.dim = cell.mesh.geometry.dim
        #: whether the laws came through the multi-field interface (result: CoupledResult)
        self.multifield = any(isinstance(m, MultiFieldLaw) for m in dict(materials).values())
        if not self.multifield:
            kind_of(dict(materials))  # one kind of single-field law, or a clear error
        views = {k: as_multifield(m) for k, m in dict(materials).items()}
        self.fields, self.parameters = fields_of(views)
        if self.multifield:
            self.kind, self.physics = "multifield", "multi-field"
        else:
            self.kind = kind_of(dict(materials))
            self.physics = "conductivity" if self.kind == "scalar" else "elasticity"
        self.materials: dict[int, Any] = cell.by_tag(materials)
        self._laws: dict[int, Any] = cell.by_tag(views)
        cell.check_tagged()
        check_fills_box(cell)
        self._periodic_checked = False
        self.volume = cell.volume
        self.volume_fractions = cell.volume_fractions()

    def _init_space(self, degree: int) -> None:
        """One Lagrange space for all fields (a scalar space for one scalar field)."""
        ncomp = sum(f.value_size(self.dim) for f in self.fields)
        shape = () if ncomp == 1 else (ncomp,)
        self.V = dolfinx.fem.functionspace(self.cell.mesh, ("Lagrange", degree, shape))
        imap = self.V.dofmap.index_map
        self.ndofs = imap.size_global * self.V.dofmap.index_map_bs
        #: the number of generalized gradient components of all fields
        self.n_gradients = sum(f.gradient_size(self.dim) for f in self.fields)

    def _init_forms(self) -> None:
        """The operator and the kinematic load, compiled once; the macro loads are constants."""
        mesh = self.cell.mesh
        self._dx = ufl.Measure("dx", domain=mesh, subdomain_data=self.cell.cell_tags)
        zeros = {f.name: np.zeros(_gradient_shape(f, self.dim)) for f in self.fields}
        self._G = {n: dolfinx.fem.Constant(mesh, z) for n, z in zeros.items()}  # macro gradients
        self._Q = {n: dolfinx.fem.Constant(mesh, z.copy()) for n, z in zeros.items()}  # fluxes
        self._P = {p: dolfinx.fem.Constant(mesh, 0.0) for p in self.parameters}
        w, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        self._a = dolfinx.fem.form(self._energy_density(w, v))
        self._L: dict[tuple[str, ...], dolfinx.fem.Form] = {}

    # -- forms -------------------------------------------------------------------------------
    def _split(self, w: Any) -> dict[str, Any]:
        """The fields of the unknown ``w`` (a trial, test or solution function)."""
        return split_fields(w, self.fields, self.dim)

    def _gradients(self, w: Any) -> dict[str, Any]:
        parts = self._split(w)
        return {f.name: f.gradient_of(parts[f.name]) for f in self.fields}

    def _energy_density(self, w: Any, v: Any) -> ufl.Form:
        gw, gv = self._gradients(w), self._gradients(v)
        no_params = dict.fromkeys(self.parameters, 0.0)
        return sum(
            _pair(law.fluxes(gw, no_params), gv) * self._dx(t) for t, law in self._laws.items()
        )

    def _load(self, static: tuple[str, ...]) -> dolfinx.fem.Form:
        """The right-hand side: the macro gradients and parameters through the phase laws,
        and the uniform boundary fluxes :math:`Q_f n` of the ``static`` fields (compiled once
        per set of static fields)."""
        if static not in self._L:
            v = ufl.TestFunction(self.V)
            gv, parts, n = self._gradients(v), self._split(v), ufl.FacetNormal(self.cell.mesh)
            L = -sum(
                _pair(law.fluxes(dict(self._G), dict(self._P)), gv) * self._dx(t)
                for t, law in self._laws.items()
            )
            for f in static:
                L += ufl.inner(ufl.dot(self._Q[f], n), parts[f]) * ufl.ds
            self._L[static] = dolfinx.fem.form(L)
        return self._L[static]

    def _total_gradients(self, u: dolfinx.fem.Function) -> dict[str, Any]:
        """:math:`g_f = G_f + g_f(u)`."""
        return {n: self._G[n] + g for n, g in self._gradients(u).items()}

    def _average_form(self, u: dolfinx.fem.Function) -> dolfinx.fem.Form:
        r"""One vector form on a cell-wise constant space with :math:`2n + 3` components whose
        owned entries, summed, are :math:`\int q\cdot T_a`, :math:`\int g\cdot S_a`
        (:math:`a < n`, over the fields' unit gradients :math:`T_a` and unit fluxes
        :math:`S_a`), :math:`\int q\cdot g`, :math:`\int q\cdot q` and :math:`\int g\cdot g`,
        for the total gradients :math:`g = G + g(u)`: every average of a load case in one
        assembly.  One integral per phase (every cell carries a phase, the energy form relies
        on it too), so one kernel call per cell: two, with the gradient terms integrated over
        all cells apart, took 1.6 times as long.  Compiled once per function space."""
        n = self.n_gradients
        W = dolfinx.fem.functionspace(self.cell.mesh, ("DG", 0, (2 * n + 3,)))
        w = ufl.TestFunction(W)
        g = self._total_gradients(u)

        def picks(x: dict[str, Any], which: str, offset: int) -> Any:
            out, a = 0, offset
            for f in self.fields:
                dirs = f.unit_gradients(self.dim) if which == "q" else f.unit_fluxes(self.dim)
                for d in dirs:
                    out += w[a] * ufl.inner(x[f.name], _literal(d))
                    a += 1
            return out

        gradients = picks(g, "g", n) + w[2 * n + 2] * _pair(g, g)
        form = 0
        for t, law in self._laws.items():
            q = law.fluxes(g, dict(self._P))
            form += (
                gradients + picks(q, "q", 0) + w[2 * n] * _pair(q, g) + w[2 * n + 1] * _pair(q, q)
            ) * self._dx(t)
        return dolfinx.fem.form(form)

    # -- solve -------------------------------------------------------------------------------
    def solve(self, bc: str | Mapping[str, str] = "periodic") -> Any:
        """Effective (``periodic``) or apparent (``kubc``, ``subc``, or a mapping of every field
        to ``kubc``/``subc``) tensor of the cell: a
        :class:`~multiscale.cell.result.HomogenizationResult` for single-field laws, a
        :class:`~multiscale.cell.coupled.CoupledResult` for multi-field ones."""
        return self._solve(bc, keep=False)[0]

    def correctors(self) -> tuple[Any, list[dolfinx.fem.Function]]:
        """The periodic solve and its correctors: for each load case (for single-field laws
        the unit loads :math:`e_j`: a unit gradient, for elasticity the unit strains of
        :func:`unit_loads`) the periodic fluctuation :math:`\\chi_j` with
        :math:`\\langle\\chi_j\\rangle = 0`, so that the total gradient in the cell is
        :math:`e_j + \\nabla\\chi_j`."""
        return self._solve("periodic", keep=True)

    def _solve(self, bc: str | Mapping[str, str], keep: bool) -> tuple[Any, list]:
        timings: dict[str, float] = {}
        setup = self._setup(bc, timings)
        with self._linear_solver(setup) as linear:
            cases = self._load_cases(setup, linear, timings, keep)
            iterations = list(linear.iterations)
            for key, seconds in linear.timings.items():
                timings[key] = timings.get(key, 0.0) + seconds
        return self._result(setup, cases, iterations, timings), self._zero_mean(cases.fields)

    def _linear_solver(self, setup: _Setup) -> ConstrainedLinearSolver:
        """The operator's solver for the constraint and options of ``setup`` (a BAIJ operator
        for BoomerAMG)."""
        return ConstrainedLinearSolver(
            self._a,
            setup.mpc,
            setup.bcs,
            petsc_options_prefix=setup.prefix,
            petsc_options=setup.options,
            near_nullspace=None if self.multifield else self._near_nullspace,
            blocked=setup.options.get("pc_type") == "hypre",
        )

    def _conditions(self, bc: str | Mapping[str, str]) -> dict[str, str]:
        """The condition of every field; a one-line ``ValueError`` for an unknown one."""
        if not self.multifield:
            if bc not in BCS:
                raise ValueError(f"unknown boundary condition {bc!r}; expected one of {BCS}")
            return {self.fields[0].name: str(bc)}
        return field_conditions(bc, self.fields)

    def _setup(self, bc: str | Mapping[str, str], timings: dict[str, float]) -> _Setup:
        """The constraint, the unknown, the post-processing forms and the solver options of one
        boundary condition (the periodicity of the mesh is checked before the first periodic
        solve: a clear error, never a wrong answer)."""
        conditions = self._conditions(bc)
        kinds = set(conditions.values())
        name = (
            kinds.pop() if len(kinds) == 1 else ",".join(f"{n}:{c}" for n, c in conditions.items())
        )
        if name == "periodic" and not self._periodic_checked:
            check_periodic(self.cell)
            self._periodic_checked = True
        with _Timer(timings, "constraint"):
            if name in ("periodic", "kubc") or (name == "subc" and not self.multifield):
                mpc, bcs = build_constraint(self.V, self.cell.box, name)
            else:
                mpc, bcs = uniform_constraint(self.V, self.cell.box, self.fields, conditions)
        u = dolfinx.fem.Function(mpc.function_space)
        static = tuple(f.name for f in self.fields if conditions[f.name] == "subc")
        with _Timer(timings, "compile"):
            averages = self._average_form(u)
            L = self._load(static)
        if self.multifield:
            options = direct_solver_options()
        else:
            options = default_petsc_options(self.dim, self.ndofs, self.kind, self.tensor_rtol)
        options.update(self._user_options)
        return _Setup(
            bc=name,
            mpc=mpc,
            bcs=bcs,
            u=u,
            averages=averages,
            energy=not static,
            options=options,
            prefix=f"{self.prefix}{name.replace(':', '_').replace(',', '_')}_",
            loads=self._cases(static),
            L=L,
        )

    def _cases(self, static: tuple[str, ...]) -> list[tuple[str, str, Any]]:
        """``(kind, name, value)`` of every load case: the unit gradients ``"g"`` of each
        kinematic field, the unit fluxes ``"q"`` of each static one, then the unit parameters
        ``"p"``."""
        cases = []
        for f in self.fields:
            if f.name in static:
                cases += [("q", f.name, Q) for Q in f.unit_fluxes(self.dim)]
            else:
                cases += [("g", f.name, G) for G in f.unit_gradients(self.dim)]
        return cases + [("p", p, 1.0) for p in self.parameters]

    def _set_load(self, kind: str, name: str, value: Any) -> None:
        for constants in (self._G, self._Q, self._P):
            for c in constants.values():
                c.value[...] = 0.0
        {"g": self._G, "q": self._Q, "p": self._P}[kind][name].value[...] = value

    def _load_cases(
        self,
        setup: _Setup,
        linear: ConstrainedLinearSolver,
        timings: dict[str, float],
        keep: bool,
    ) -> _Cases:
        r"""Solve every load case with the one operator; record the averages of each, and for
        displacement-driven conditions the residual and the fluctuation of each (owned entries)
        for the energy form of the tensor.  The residual :math:`R_a` of the unconstrained form
        enters the tensor only through :math:`R_a\cdot w_b` (:meth:`_energy_tensor`), and every
        fluctuation is :math:`w_b = K\hat w_b` for the prolongation :math:`K` of the
        constraint, so :math:`R_a\cdot w_b = (K^T R_a)\cdot\hat w_b = -\hat r_a\cdot\hat
        w_b` with :math:`\hat r_a = \hat b_a - \hat A\hat w_a` the residual of the
        constrained system: the solver's, one multiplication by the operator (11 ms a load case
        on the 204k-dof elasticity cell, where assembling the residual form took 58 ms).  Its
        slave and Dirichlet rows are zero, so :math:`-\hat r_a` is stored for :math:`R_a`."""
        n, m = self.n_gradients, len(setup.loads)
        cases = _Cases(mean_q=np.zeros((n, m)), mean_g=np.zeros((n, m)), hill=np.zeros(m))
        u = setup.u
        residual = u.x.petsc_vec.duplicate() if setup.energy else None
        for j, load in enumerate(setup.loads):
            self._set_load(*load)
            linear.solve(setup.L, u, case=f"{setup.bc}, load case {j}", residual=residual)
            if keep:
                cases.fields.append(u.copy())
            with _Timer(timings, "postprocess"):
                mq, mg, hill = self._averages(setup.averages, n)
                if residual is not None:
                    cases.residuals.append(-residual.getArray(readonly=True).copy())
                    cases.fluctuations.append(_owned(u).copy())
            cases.mean_q[:, j], cases.mean_g[:, j], cases.hill[j] = mq, mg, hill
        return cases

    def _averages(self, form: dolfinx.fem.Form, n: int) -> tuple[np.ndarray, np.ndarray, float]:
        r""":math:`\langle q\rangle`, :math:`\langle g\rangle` (Voigt, engineering shears) and the
        Hill–Mandel residual :math:`|\langle q\cdot g\rangle - \langle q\rangle\cdot\langle
        g\rangle|`, relative to the macro work :math:`|\langle q\rangle\cdot\langle g\rangle|`
        (single-field laws) or to its Cauchy–Schwarz bound :math:`(\langle q\cdot q\rangle
        \langle g\cdot g\rangle)^{1/2}` (multi-field laws, whose parameter cases do no macro
        work), reduced over ranks."""
        values = dolfinx.fem.assemble_vector(form)
        W = form.function_spaces[0]
        owned = values.array[: W.dofmap.index_map.size_local * (2 * n + 3)]
        vals = self.comm.allreduce(owned.reshape(-1, 2 * n + 3).sum(axis=0), op=MPI.SUM)
        vals /= self.volume
        mq, mg = vals[:n], vals[n : 2 * n]
        work = float(mq @ mg)
        scale = float(np.sqrt(vals[2 * n + 1] * vals[2 * n + 2])) if self.multifield else abs(work)
        defect = abs(float(vals[2 * n]) - work)
        return mq, mg, defect / scale if scale > 0.0 else defect  # q = 0 or g = 0: no defect

    def _result(
        self,
        setup: _Setup,
        cases: _Cases,
        iterations: list[int],
        timings: dict[str, float],
    ) -> Any:
        timings = {k: self.comm.allreduce(v, op=MPI.MAX) for k, v in timings.items()}
        log.debug(
            "%s %s cell, %d dofs: %s in %.2f s",
            setup.bc,
            self.physics,
            self.ndofs,
            setup.options.get("pc_type"),
            sum(timings.values()),
        )
        solver = {"prefix": setup.prefix, "options": setup.options, "iterations": iterations}
        if self.multifield:
            return self._coupled_result(setup, cases, timings, solver)
        if not setup.energy:
            tensor = np.linalg.inv(cases.mean_g)
        else:
            tensor = self._energy_tensor(cases)
        return HomogenizationResult(
            tensor=tensor,
            notation="matrix" if self.kind == "scalar" else "voigt",
            bc=setup.bc,
            physics=self.physics,
            dim=self.dim,
            ndofs=self.ndofs,
            volume_fractions=dict(self.volume_fractions),
            mean_flux=cases.mean_q,
            mean_gradient=cases.mean_g,
            hill_mandel=cases.hill,
            timings=timings,
            solver=solver,
        )

    def _coupled_result(self, setup: _Setup, cases: _Cases, timings: dict, solver: dict) -> Any:
        """:math:`\\mathbb M^* = [\\langle q\\rangle_j][\\langle g\\rangle_j]^{-1}` over the
        unit cases and :math:`p^* = \\langle q\\rangle_\\theta - \\mathbb M^*\\langle
        g\\rangle_\\theta` (see :mod:`multiscale.cell.coupled`)."""
        from .coupled import CoupledResult

        n = self.n_gradients
        mean_g, mean_q = cases.mean_g, cases.mean_q
        # M* G = Q over the unit cases: M* = Q G^{-1}, read as the solve G^T M*^T = Q^T
        tensor = np.linalg.solve(mean_g[:, :n].T, mean_q[:, :n].T).T
        return CoupledResult(
            fields=tuple(f.name for f in self.fields),
            sizes=tuple(f.gradient_size(self.dim) for f in self.fields),
            parameters=tuple(self.parameters),
            dim=self.dim,
            ndofs=self.ndofs,
            tensor=tensor,
            parameter_tensor=mean_q[:, n:] - tensor @ mean_g[:, n:],
            mean_gradient=mean_g,
            mean_flux=mean_q,
            hill_mandel=cases.hill,
            volume_fractions=dict(self.volume_fractions),
            timings=timings,
            solver=solver,
            bc=setup.bc,
        )

    # -- the energy form of the tensor ---------------------------------------------------------
    def _energy_tensor(self, cases: _Cases) -> np.ndarray:
        r"""The tensor in energy form, :math:`A_{ab} = a(u_a, u_b)/|Y|` with :math:`u_a = T_a\cdot
        y + w_a` the computed field of unit load :math:`a`:

        .. math::
            a(u_a, u_b) = a(u_a, T_b\cdot y) + a(u_a, w_b)
            = |Y|\,\langle q_a\rangle : T_b + R_a\cdot w_b .

        For the exact discrete solution the last term vanishes (Galerkin orthogonality: every
        :math:`w_b` is an admissible fluctuation), so this equals the mean-flux tensor; for an
        inexact (iterative) solve with algebraic errors :math:`\delta_a` the mean-flux tensor is
        off by terms linear in :math:`\delta`, the energy form only by
        :math:`a(\delta_a, \delta_b)/|Y|`, quadratic.  So an iterative solver can stop at
        :math:`\sqrt{}` of the accuracy wanted for the tensor (:func:`default_petsc_options`).
        Symmetric by construction (the average of :math:`A` and :math:`A^T` removes round-off).
        """
        R = np.array(cases.residuals)
        W = np.array(cases.fluctuations)
        coupling = self.comm.allreduce(R @ W.T, op=MPI.SUM) / self.volume  # [a, b] = R_a . w_b
        energy = cases.mean_q + coupling.T  # [b, a] = <q_a>:T_b + R_a . w_b / |Y|
        return 0.5 * (energy + energy.T)

    def _zero_mean(self, fields: list[dolfinx.fem.Function]) -> list[dolfinx.fem.Function]:
        """Subtract from each field its cell average, component by component.  The average is
        :math:`\\frac{1}{|Y|}\\sum_i u_i\\int_Y\\phi_i`, with the integrals of the basis functions
        assembled once (one form for all fields)."""
        if not fields:
            return fields
        W = fields[0].function_space
        v = ufl.TestFunction(W)
        bs = W.dofmap.index_map_bs
        ones = v if len(v.ufl_shape) == 0 else ufl.inner(ufl.as_vector([1.0] * bs), v)
        weights = dolfinx.fem.assemble_vector(dolfinx.fem.form(ones * ufl.dx))
        weights.scatter_reverse(dolfinx.la.InsertMode.add)
        owned = W.dofmap.index_map.size_local * bs
        w = weights.array[:owned].reshape(-1, bs)
        for f in fields:
            values = f.x.array.reshape(-1, bs)
            integral = (w * values[: len(w)]).sum(axis=0)
            values -= self.comm.allreduce(integral, op=MPI.SUM) / self.volume
        return fields

    def _near_nullspace(self, W) -> PETSc.NullSpace:
        """Constants (scalar) or rigid-body modes (elasticity), orthonormalized."""
        dim = self.dim
        if self.kind == "scalar":
            modes = [lambda x: np.ones(x.shape[1])]
        else:
            modes = [
                lambda x, i=i: np.vstack([np.full(x.shape[1], float(i == k)) for k in range(dim)])
                for i in range(dim)
            ]
            rot = [(0, 1)] if dim == 2 else [(0, 1), (1, 2), (0, 2)]
            for i, k in rot:

                def mode(x, i=i, k=k):
                    out = np.zeros((dim, x.shape[1]))
                    out[i], out[k] = -x[k], x[i]
                    return out

                modes.append(mode)
        funcs = []
        for m in modes:
            f = dolfinx.fem.Function(W)
            f.interpolate(m)
            funcs.append(f)
        dolfinx.la.orthonormalize([f.x for f in funcs])
        return PETSc.NullSpace().create(vectors=[f.x.petsc_vec for f in funcs], comm=self.comm)


def homogenize(
    cell: CellMesh,
    materials: Mapping[str | int, Material],
    bc: str = "periodic",
    **kwargs: Any,
) -> HomogenizationResult:
    """Effective tensor of ``cell`` with ``materials`` under ``bc`` (see :class:`CellProblem`)."""
    return CellProblem(cell, materials, **kwargs).solve(bc)
