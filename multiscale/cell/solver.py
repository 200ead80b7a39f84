"""Linear cell problems: effective conductivity and stiffness tensors of a unit cell.

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
from typing import Any

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.mesh.cell import CellMesh
from multiscale.mesh.periodicity import check_fills_box, check_periodic
from multiscale.nonlinear import unique_prefix
from multiscale.physics.base import Material, generalized_gradient, kind_of
from multiscale.tensors import voigt_size, voigt_to_strain, voigt_to_stress

from .constraints import BCS, build_constraint
from .linear import ConstrainedLinearSolver
from .result import HomogenizationResult

__all__ = ["CellProblem", "default_petsc_options", "homogenize", "unit_loads"]

log = logging.getLogger(__name__)


def default_petsc_options(dim: int, ndofs: int, kind: str) -> dict[str, Any]:
    """The solver chosen by measurement (see ``benchmarks/cell.py``).

    Sparse direct LU (MUMPS) for 2D cells and small 3D ones; conjugate gradients with smoothed
    aggregation AMG (GAMG, with the rigid-body or constant near-null space attached) for 3D cells
    above 30k dofs, where fill-in makes LU slow and memory hungry.  The AMG hierarchy is built once
    and reused for every right-hand side.  Measured on the 204k-dof sphere cell: a relative
    residual of 1e-9 leaves the tensor within 3e-11 of a 1e-12 solve (the tensor error is about
    1e-2 times the relative residual) and the Hill–Mandel residuals below 1e-13;
    two Chebyshev sweeps per level and no dropping in the aggregation graph (threshold 0) cost
    28 % less CPU time than three sweeps, threshold 0.02 and a relative residual of 1e-12.
    """
    if dim == 3 and ndofs > 30_000:
        return {
            "ksp_type": "cg",
            "ksp_rtol": 1.0e-9,
            "ksp_atol": 1.0e-50,
            "ksp_max_it": 2000,
            "pc_type": "gamg",
            "pc_gamg_type": "agg",
            "pc_gamg_threshold": 0.0,
            "pc_gamg_square_graph": 1,
            "mg_levels_ksp_type": "chebyshev",
            "mg_levels_pc_type": "jacobi",
            "mg_levels_ksp_max_it": 2,
        }
    # MUMPS sizes its workspace from the analysis and fails (INFOG(1) = -9) when numerical
    # pivoting delays more pivots than predicted, which varies between parallel runs: 100 %
    # headroom instead of MUMPS's 20 %.
    return {
        "ksp_type": "preonly",
        "pc_type": "lu",
        "pc_factor_mat_solver_type": "mumps",
        "mat_mumps_icntl_14": 100,
    }


def unit_loads(kind: str, dim: int) -> list[np.ndarray]:
    """Unit macro loads: the vectors :math:`e_j` (scalar) or the strain tensors of the unit Voigt
    vectors with engineering shears (:math:`E_{ij} = E_{ji} = 1/2` for the shear columns)."""
    if kind == "scalar":
        return [np.eye(dim)[j] for j in range(dim)]
    return [voigt_to_strain(e) for e in np.eye(voigt_size(dim))]


def _unit_fluxes(kind: str, dim: int) -> list[np.ndarray]:
    """Unit macro fluxes (stress tensors of the unit Voigt stress vectors)."""
    if kind == "scalar":
        return [np.eye(dim)[j] for j in range(dim)]
    return [voigt_to_stress(e) for e in np.eye(voigt_size(dim))]


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


class CellProblem:
    """Linear cell problems of one microstructure with one set of phase laws.

    Parameters
    ----------
    cell:
        The periodic cell mesh with its phase tags.
    materials:
        Phase name or tag -> material law (all of one kind: conductivity or elasticity).  Every
        phase of the mesh needs a law.
    degree:
        Lagrange degree of the unknown.
    petsc_options_prefix, petsc_options:
        PETSc options prefix (default ``multiscale_cell_<n>_``, see
        :func:`~multiscale.nonlinear.unique_prefix`) and overrides of
        :func:`default_petsc_options`, applied under it (each solve adds the boundary condition
        to the prefix: ``<prefix>periodic_``).

    Every method is collective on ``cell.mesh.comm``.
    """

    def __init__(
        self,
        cell: CellMesh,
        materials: Mapping[str | int, Material],
        *,
        degree: int = 1,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.cell = cell
        mesh = cell.mesh
        self.comm: MPI.Comm = mesh.comm
        self.dim = mesh.geometry.dim
        self.kind = kind_of(dict(materials))
        self.physics = "conductivity" if self.kind == "scalar" else "elasticity"
        self.materials: dict[int, Material] = cell.by_tag(materials)
        cell.check_tagged()
        check_fills_box(cell)
        self._periodic_checked = False
        self.prefix = petsc_options_prefix or unique_prefix("cell")
        self._user_options = dict(petsc_options or {})

        shape = () if self.kind == "scalar" else (self.dim,)
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", degree, shape))
        imap = self.V.dofmap.index_map
        self.ndofs = imap.size_global * self.V.dofmap.index_map_bs
        self.volume = cell.volume

        self._dx = ufl.Measure("dx", domain=mesh, subdomain_data=cell.cell_tags)
        gshape = (self.dim,) if self.kind == "scalar" else (self.dim, self.dim)
        # Macro load (gradient/strain) and macro flux (SUBC).
        self._G = dolfinx.fem.Constant(mesh, np.zeros(gshape))
        self._Q = dolfinx.fem.Constant(mesh, np.zeros(gshape))
        w, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        self._a = dolfinx.fem.form(self._energy_density(w, v))
        g_v = generalized_gradient(self.kind, v)
        self._L_affine = dolfinx.fem.form(
            -sum(
                ufl.inner(law.flux(self._G), g_v) * self._dx(t) for t, law in self.materials.items()
            )
        )
        n = ufl.FacetNormal(mesh)
        Qn = ufl.dot(self._Q, n)
        self._L_subc = dolfinx.fem.form(ufl.inner(Qn, v) * ufl.ds)
        self.volume_fractions = cell.volume_fractions()

    # -- forms -------------------------------------------------------------------------------
    def _energy_density(self, w: Any, v: Any) -> ufl.Form:
        gw, gv = generalized_gradient(self.kind, w), generalized_gradient(self.kind, v)
        return sum(ufl.inner(law.flux(gw), gv) * self._dx(t) for t, law in self.materials.items())

    def _average_form(self, u: dolfinx.fem.Function) -> dolfinx.fem.Form:
        r"""One vector form on a cell-wise constant space with :math:`2n + 1` components whose
        owned entries, summed, are :math:`\int q\cdot T_a`, :math:`\int g\cdot S_a`
        (:math:`a < n`) and :math:`\int q\cdot g`, for the total gradient :math:`g = G + g(u)`,
        :math:`T_a` the unit loads and :math:`S_a` the unit fluxes: every average of a load
        case in one assembly.  Compiled once per function space."""
        flux_dirs = unit_loads(self.kind, self.dim)
        grad_dirs = _unit_fluxes(self.kind, self.dim)
        n = len(flux_dirs)
        W = dolfinx.fem.functionspace(self.cell.mesh, ("DG", 0, (2 * n + 1,)))
        w = ufl.TestFunction(W)
        g = self._G + generalized_gradient(self.kind, u)

        def picks(x: Any, dirs: list[np.ndarray], offset: int) -> Any:
            return sum(w[offset + a] * ufl.inner(x, _literal(d)) for a, d in enumerate(dirs))

        form = picks(g, grad_dirs, n) * self._dx
        for t, law in self.materials.items():
            q = law.flux(g)
            form += (picks(q, flux_dirs, 0) + w[2 * n] * ufl.inner(q, g)) * self._dx(t)
        return dolfinx.fem.form(form)

    # -- solve -------------------------------------------------------------------------------
    def solve(self, bc: str = "periodic") -> HomogenizationResult:
        """Effective (``periodic``) or apparent (``kubc``, ``subc``) tensor of the cell."""
        return self._solve(bc, keep=False)[0]

    def correctors(self) -> tuple[HomogenizationResult, list[dolfinx.fem.Function]]:
        """The periodic solve and its correctors: for each unit load :math:`e_j` (a unit
        gradient; for elasticity the unit strains of :func:`unit_loads`) the periodic
        fluctuation :math:`\\chi_j` with :math:`\\langle\\chi_j\\rangle = 0`, so that the total
        gradient in the cell is :math:`e_j + \\nabla\\chi_j`."""
        return self._solve("periodic", keep=True)

    def _solve(
        self, bc: str, keep: bool
    ) -> tuple[HomogenizationResult, list[dolfinx.fem.Function]]:
        if bc not in BCS:
            raise ValueError(f"unknown boundary condition {bc!r}; expected one of {BCS}")
        timings: dict[str, float] = {}
        if bc == "periodic" and not self._periodic_checked:
            check_periodic(self.cell)  # a clear error before any solve, never a wrong answer
            self._periodic_checked = True
        with _Timer(timings, "constraint"):
            mpc, bcs = build_constraint(self.V, self.cell.box, bc)
        W = mpc.function_space
        u = dolfinx.fem.Function(W)
        with _Timer(timings, "compile"):
            averages = self._average_form(u)
        options = default_petsc_options(self.dim, self.ndofs, self.kind)
        options.update(self._user_options)
        prefix = f"{self.prefix}{bc}_"
        subc = bc == "subc"
        loads = _unit_fluxes(self.kind, self.dim) if subc else unit_loads(self.kind, self.dim)
        L = self._L_subc if subc else self._L_affine
        ncase = len(loads)
        mean_q = np.zeros((ncase, ncase))
        mean_g = np.zeros((ncase, ncase))
        hill = np.zeros(ncase)
        fields: list[dolfinx.fem.Function] = []
        with ConstrainedLinearSolver(
            self._a,
            mpc,
            bcs,
            petsc_options_prefix=prefix,
            petsc_options=options,
            near_nullspace=self._near_nullspace,
        ) as linear:
            for j, load in enumerate(loads):
                self._G.value[...] = 0.0 if subc else load
                self._Q.value[...] = load if subc else 0.0
                linear.solve(L, u, case=f"{bc}, load case {j}")
                if keep:
                    fields.append(u.copy())
                with _Timer(timings, "postprocess"):
                    mq, mg, energy = self._averages(averages, ncase)
                mean_q[:, j], mean_g[:, j] = mq, mg
                work = float(mq @ mg)  # <q>.<g> with Voigt engineering shears
                hill[j] = abs(energy - work) / abs(work)
            iterations = list(linear.iterations)
            for key, seconds in linear.timings.items():
                timings[key] = timings.get(key, 0.0) + seconds
        tensor = np.linalg.inv(mean_g) if subc else mean_q
        timings = {k: self.comm.allreduce(v, op=MPI.MAX) for k, v in timings.items()}
        log.debug(
            "%s %s cell, %d dofs: %s in %.2f s",
            bc,
            self.physics,
            self.ndofs,
            options.get("pc_type"),
            sum(timings.values()),
        )
        result = HomogenizationResult(
            tensor=tensor,
            notation="matrix" if self.kind == "scalar" else "voigt",
            bc=bc,
            physics=self.physics,
            dim=self.dim,
            ndofs=self.ndofs,
            volume_fractions=dict(self.volume_fractions),
            mean_flux=mean_q,
            mean_gradient=mean_g,
            hill_mandel=hill,
            timings=timings,
            solver={"prefix": prefix, "options": options, "iterations": iterations},
        )
        return result, self._zero_mean(fields)

    def _zero_mean(self, fields: list[dolfinx.fem.Function]) -> list[dolfinx.fem.Function]:
        """Subtract from each field its cell average, component by component.  The average is
        :math:`\\frac{1}{|Y|}\\sum_i u_i\\int_Y\\phi_i`, with the integrals of the basis functions
        assembled once (one form for all fields)."""
        if not fields:
            return fields
        W = fields[0].function_space
        v = ufl.TestFunction(W)
        ones = v if self.kind == "scalar" else ufl.inner(ufl.as_vector([1.0] * self.dim), v)
        weights = dolfinx.fem.assemble_vector(dolfinx.fem.form(ones * ufl.dx))
        weights.scatter_reverse(dolfinx.la.InsertMode.add)
        bs = W.dofmap.index_map_bs
        owned = W.dofmap.index_map.size_local * bs
        w = weights.array[:owned].reshape(-1, bs)
        for f in fields:
            values = f.x.array.reshape(-1, bs)
            integral = (w * values[: len(w)]).sum(axis=0)
            values -= self.comm.allreduce(integral, op=MPI.SUM) / self.volume
        return fields

    def _averages(self, form: dolfinx.fem.Form, n: int) -> tuple[np.ndarray, np.ndarray, float]:
        r""":math:`\langle q\rangle`, :math:`\langle g\rangle` (Voigt, engineering shears: q : T
        picks the Voigt stress for :math:`T` a unit load, with :math:`E_{ij} = E_{ji} = 1/2` on
        shears; g : S the engineering strain for :math:`S` a unit flux) and
        :math:`\langle q\cdot g\rangle`, reduced over ranks."""
        values = dolfinx.fem.assemble_vector(form)
        W = form.function_spaces[0]
        owned = values.array[: W.dofmap.index_map.size_local * (2 * n + 1)]
        vals = self.comm.allreduce(owned.reshape(-1, 2 * n + 1).sum(axis=0), op=MPI.SUM)
        vals /= self.volume
        return vals[:n], vals[n : 2 * n], float(vals[-1])

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
