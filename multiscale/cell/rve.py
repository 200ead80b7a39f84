"""Nonlinear periodic RVE problems: homogenized stress and consistent tangent.

For a macro strain :math:`E` (``kind = "strain"``, small strain) or deformation gradient
:math:`\\bar F` (``kind = "deformation"``, finite strain) the RVE displacement is
:math:`u = E\\,y + \\tilde u` or :math:`u = (\\bar F - I)\\,y + \\tilde u` with a periodic
fluctuation :math:`\\tilde u`, and solves the micro balance

.. math::
    R(\\tilde u; \\bar G)[v]
    = \\int_Y q\\big(g(\\tilde u; \\bar G), \\alpha_n\\big) : \\nabla v\\,dy = 0
    \\quad \\forall v \\text{ periodic},

with :math:`g = E + \\varepsilon(\\tilde u)` or :math:`g = \\bar F + \\nabla \\tilde u`,
:math:`q` the
phase law (Cauchy or first Piola stress) and :math:`\\alpha_n` the committed internal variables.
It is solved by PETSc SNES (Newton, options under the problem's prefix) on the constrained
(dolfinx_mpc) space.  The homogenized flux is :math:`\\bar q = \\langle q\\rangle` and the
**consistent tangent** follows from differentiating the converged equilibrium:

.. math::
    K\\,\\delta\\tilde u_{kl} = -\\int_Y (\\mathbb C : T_{kl}) : \\nabla v\\,dy, \\qquad
    \\frac{\\partial \\bar q}{\\partial \\bar G} : T_{kl}
    = \\big\\langle \\mathbb C : (T_{kl} + g(\\delta\\tilde u_{kl}))\\big\\rangle,

where :math:`K` is the micro Jacobian, :math:`\\mathbb C = \\partial q/\\partial g` the
algorithmic tangent of the phase law (derived by UFL) and :math:`T_{kl}` the unit macro
directions: 3 (2D) or 6 (3D) symmetric ones for small strain, 4 or 9 for finite strain.  These
right-hand sides are solved with the factorization of the converged Jacobian: the Newton loop
stops only once the last correction is below ``step_tolerance`` relative to the solution, so the
Jacobian it factorized last is the one at the solution to that accuracy (and exactly so for linear
phases).  The Taylor (Voigt) tangent :math:`\\langle\\mathbb C\\rangle` is available for
comparison (``tangent="taylor"``): it ignores the fluctuation and is not consistent.

Averages are weighted sums over the micro quadrature points (one compiled
:class:`dolfinx.fem.Expression` per phase and quantity, no per-point Python).  Internal variables
live in quadrature spaces; :meth:`RVEProblem.solve` never changes the committed state it is given
and returns the updated one, so the caller commits it when the macro step converges and drops it
when the step is cut.
"""

from __future__ import annotations

import itertools
import logging
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
from petsc4py import PETSc

from multiscale.coupling.pool import MicroSolveError
from multiscale.coupling.quadrature import QuadratureRule
from multiscale.mesh.cell import CellMesh
from multiscale.mesh.periodicity import check_fills_box, check_periodic
from multiscale.petsc_options import prefixed_options
from multiscale.physics.base import Material, has_state, is_linear, kind_of

from .constraints import build_constraint

__all__ = ["RVEProblem", "RVEResponse", "default_rve_options", "macro_directions"]

log = logging.getLogger(__name__)

_instances = itertools.count()

TANGENTS = ("consistent", "taylor")


def default_rve_options(dim: int, ndofs: int) -> dict[str, Any]:
    """Newton with full steps (a failed solve is retried once with a backtracking line search,
    see :meth:`RVEProblem.solve`) and a sparse direct solver (MUMPS): the factorization of the
    converged Jacobian is what makes the tangent cheap.  For 3D RVEs above 60k dofs, CG with
    smoothed-aggregation AMG instead (the tangent then costs iterative solves)."""
    opts: dict[str, Any] = {
        "snes_type": "newtonls",
        "snes_linesearch_type": "basic",
        "snes_max_it": 30,
    }
    if dim == 3 and ndofs > 60_000:
        opts.update(
            {
                "ksp_type": "cg",
                "ksp_rtol": 1.0e-12,
                "ksp_atol": 1.0e-50,
                "pc_type": "gamg",
                "pc_gamg_threshold": 0.02,
            }
        )
    else:
        opts.update({"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"})
    return opts


def macro_directions(kind: str, dim: int) -> list[tuple[np.ndarray, list[tuple[int, int]]]]:
    """Unit macro directions :math:`T_{kl}` and the tangent slots each fills.

    Small strain: the symmetric units :math:`(e_k\\otimes e_l + e_l\\otimes e_k)/2`, filling
    :math:`D_{ijkl}` and :math:`D_{ijlk}` (minor symmetry); finite strain: all
    :math:`e_k\\otimes e_l`.
    """
    out = []
    for k in range(dim):
        for m in range(k if kind == "strain" else 0, dim):
            T = np.zeros((dim, dim))
            if kind == "strain":
                T[k, m] = T[m, k] = 1.0 if k == m else 0.5
                slots = [(k, m)] if k == m else [(k, m), (m, k)]
            else:
                T[k, m] = 1.0
                slots = [(k, m)]
            out.append((T, slots))
    return out


@dataclass(slots=True)
class RVEResponse:
    """What one RVE solve returns (reduced over the RVE's communicator).

    ``flux``: :math:`\\langle\\sigma\\rangle` or :math:`\\langle P\\rangle` (d x d);
    ``tangent``: :math:`\\partial\\bar q/\\partial\\bar G` as a (d, d, d, d) array, consistent or
    Taylor (``None`` when not asked for); ``hill_mandel``:
    :math:`|\\langle q:g\\rangle - \\bar q:\\bar g| / |\\bar q:\\bar g|`; ``iterations``: micro
    Newton iterations; ``mean_state``: volume averages of the scalar internal variables (for
    example the equivalent plastic strain ``p``); ``seconds``: wall time of the Newton solve and
    of the tangent.
    """

    flux: np.ndarray
    tangent: np.ndarray | None
    hill_mandel: float
    iterations: int
    mean_state: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


class RVEProblem:
    """A periodic RVE with (possibly nonlinear, history-dependent) phase laws.

    Parameters
    ----------
    cell:
        Periodic cell mesh with its phases (checked for periodicity).
    materials:
        Phase name or tag -> law, all of kind ``"strain"`` or all of kind ``"deformation"``.
    degree:
        Lagrange degree of the fluctuation.
    quadrature_degree:
        Degree of the micro quadrature rule (internal variables live at its points); default
        ``max(1, 2 (degree - 1))``, exact for the stress of P1 elements.
    tangent:
        ``"consistent"`` (default) or ``"taylor"``.
    step_tolerance:
        Newton stops when :math:`\\|\\delta\\tilde u\\| \\le` ``step_tolerance``
        :math:`\\max(\\|\\tilde u\\| + \\|\\bar G\\|\\,\\ell\\sqrt{n},\\ \\|\\delta\\tilde u_1\\|)`,
        :math:`\\ell` the cell size, :math:`n` the number of dofs, :math:`\\delta\\tilde u_1` the
        first Newton step and :math:`\\bar G` the macro strain or, for finite strain, the
        deformation gradient :math:`\\bar F` itself (so that a zero fluctuation, e.g. at
        :math:`\\bar F = I` from a non-zero guess, is recognised instead of iterating on
        round-off); at least one Newton step is always taken.
    petsc_options, options_prefix:
        Overrides of :func:`default_rve_options` under the prefix (default
        ``multiscale_rve_<n>_``, identical on all ranks when construction is collective).

    Collective on ``cell.mesh.comm`` (``MPI.COMM_SELF`` for one RVE per rank in FE²).
    :meth:`destroy` frees the PETSc objects.
    """

    def __init__(
        self,
        cell: CellMesh,
        materials: Mapping[str | int, Material],
        *,
        degree: int = 1,
        quadrature_degree: int | None = None,
        tangent: str = "consistent",
        step_tolerance: float = 1.0e-10,
        petsc_options: Mapping[str, Any] | None = None,
        options_prefix: str | None = None,
        check: bool = True,
    ) -> None:
        if tangent not in TANGENTS:
            raise ValueError(f"unknown tangent {tangent!r}; expected one of {TANGENTS}")
        self.kind = kind_of(dict(materials))
        if self.kind not in ("strain", "deformation"):
            raise ValueError(
                f"RVEProblem solves mechanics (laws of kind 'strain' or 'deformation'), got "
                f"{self.kind!r} laws; use CellProblem for conductivity"
            )
        self.cell = cell
        mesh = cell.mesh
        self.comm: MPI.Comm = mesh.comm
        self.dim = d = mesh.geometry.dim
        self.tangent_kind = tangent
        self.step_tolerance = float(step_tolerance)
        self.materials: dict[int, Material] = cell.by_tag(materials)
        if check:
            check_fills_box(cell)
            check_periodic(cell)
        self.linear = all(is_linear(law) for law in self.materials.values())
        self.volume = cell.volume
        self.prefix = options_prefix or f"multiscale_rve_{next(_instances)}_"

        qdeg = quadrature_degree if quadrature_degree is not None else max(1, 2 * (degree - 1))
        self.rule = QuadratureRule(mesh, qdeg)
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", degree, (d,)))
        self.ndofs = self.V.dofmap.index_map.size_global * self.V.dofmap.index_map_bs
        self.mpc, self.bcs = build_constraint(self.V, cell.box, "periodic")
        W = self.mpc.function_space
        self.u = dolfinx.fem.Function(W, name="fluctuation")
        self.w = dolfinx.fem.Function(W)
        self._G = dolfinx.fem.Constant(mesh, np.zeros((d, d)))
        self._T = dolfinx.fem.Constant(mesh, np.zeros((d, d)))
        self._scale = float(np.linalg.norm(cell.lengths)) * np.sqrt(self.ndofs)

        # internal variables: one quadrature function per name, shared by the phases using it
        shapes: dict[str, tuple[int, ...]] = {}
        for law in self.materials.values():
            if has_state(law):
                for name, shape in law.state_shapes(d).items():
                    if shapes.setdefault(name, tuple(shape)) != tuple(shape):
                        raise ValueError(f"internal variable {name!r} declared with two shapes")
        self.state = {name: self.rule.function(shape, name) for name, shape in shapes.items()}
        self.state_shapes = shapes

        # phase cells (owned) and their quadrature weights
        tags = cell.cell_tags
        nowned = mesh.topology.index_map(d).size_local
        self._cells: dict[int, np.ndarray] = {}
        self._weights: dict[int, np.ndarray] = {}
        for tag in self.materials:
            cells = tags.find(tag)
            cells = np.sort(cells[cells < nowned]).astype(np.int32)
            self._cells[tag] = cells
            self._weights[tag] = self.rule.jacobian_weights(cells)

        # forms and expressions, compiled once
        v = ufl.TestFunction(self.V)
        du = ufl.TrialFunction(self.V)
        if self.kind == "strain":
            g = self._G + ufl.sym(ufl.grad(self.u))
            g_w = ufl.sym(ufl.grad(self.w))
        else:
            g = ufl.Identity(d) + self._G + ufl.grad(self.u)
            g_w = ufl.grad(self.w)
        gvar = ufl.variable(g)
        dx = ufl.Measure(
            "dx",
            domain=mesh,
            subdomain_data=tags,
            metadata={"quadrature_degree": qdeg, "quadrature_rule": "default"},
        )
        i, j, k, m = ufl.indices(4)
        residual = 0
        rhs_T = 0
        self._q_expr, self._C_expr, self._update_expr = {}, {}, {}
        for tag, law in self.materials.items():
            q = law.flux(gvar, self.state) if has_state(law) else law.flux(gvar)
            C = ufl.diff(q, gvar)
            residual += ufl.inner(q, ufl.grad(v)) * dx(tag)
            rhs_T += -ufl.inner(
                ufl.as_tensor(C[i, j, k, m] * self._T[k, m], (i, j)), ufl.grad(v)
            ) * dx(tag)
            self._q_expr[tag] = self.rule.expression(q)
            self._C_expr[tag] = self.rule.expression(C)
            if has_state(law):
                upd = law.updated_state(g, self.state)
                self._update_expr[tag] = {n: self.rule.expression(e) for n, e in upd.items()}
        self._F = dolfinx.fem.form(residual)
        self._J = dolfinx.fem.form(ufl.derivative(residual, self.u, du))
        self._L_T = dolfinx.fem.form(rhs_T)
        self._g_expr = self.rule.expression(g)
        self._gw_expr = self.rule.expression(g_w)

        # PETSc objects
        options = default_rve_options(d, self.ndofs)
        options.update(dict(petsc_options or {}))
        self.petsc_options = options
        self._A = dolfinx_mpc.assemble_matrix(self._J, self.mpc, bcs=self.bcs)
        self._b = dolfinx_mpc.assemble_vector(self._F, self.mpc)
        self._x = self._b.duplicate()
        self._rhs = self._b.duplicate()
        self.snes = PETSc.SNES().create(self.comm)
        self.snes.setOptionsPrefix(self.prefix)
        self.snes.setFunction(self._residual, self._b)
        self.snes.setJacobian(self._jacobian, self._A)
        self.snes.setConvergenceTest(self._converged)
        with prefixed_options(self.prefix, options):
            self.snes.setFromOptions()
            self.snes.getKSP().setFromOptions()
        self._xscale = 0.0
        self._snorm1 = 0.0
        self._directions = macro_directions(self.kind, d)
        self._nowned = nowned

    def _set_linesearch(self, kind: str) -> None:
        with prefixed_options(self.prefix, {"snes_linesearch_type": kind}):
            self.snes.setFromOptions()

    # -- state packing ----------------------------------------------------------------------------
    @property
    def state_size(self) -> int:
        """Length of the packed state array of one point (this rank's part)."""
        return sum(f.x.array.size for f in self.state.values())

    def initial_state(self) -> np.ndarray:
        """Packed zero state (every internal variable starts at zero)."""
        return np.zeros(self.state_size)

    def _unpack(self, state: np.ndarray | None) -> None:
        offset = 0
        for f in self.state.values():
            n = f.x.array.size
            f.x.array[:] = 0.0 if state is None else state[offset : offset + n]
            f.x.scatter_forward()
            offset += n

    # -- SNES callbacks ---------------------------------------------------------------------------
    def _update_u(self, x: PETSc.Vec) -> None:
        x.copy(self.u.x.petsc_vec)
        self.u.x.scatter_forward()
        self.mpc.backsubstitution(self.u)

    def _residual(self, snes: PETSc.SNES, x: PETSc.Vec, b: PETSc.Vec) -> None:
        self._update_u(x)
        with b.localForm() as b_local:
            b_local.set(0.0)
        dolfinx_mpc.assemble_vector(self._F, self.mpc, b)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(b, self.bcs, x, -1.0)

    def _jacobian(self, snes: PETSc.SNES, x: PETSc.Vec, A: PETSc.Mat, P: PETSc.Mat) -> None:
        dolfinx_mpc.assemble_matrix(self._J, self.mpc, bcs=self.bcs, A=A)

    def _converged(self, snes: PETSc.SNES, it: int, norms: tuple[float, float, float]) -> int:
        xnorm, snorm, fnorm = norms
        if not np.isfinite(fnorm):
            return PETSc.SNES.ConvergedReason.DIVERGED_FNORM_NAN
        if it == 0:
            return 0  # always take one Newton step: the last factorized Jacobian is then current
        if it == 1:
            self._snorm1 = snorm
        # relative to the solution, or to the first correction where the solution is zero (a
        # zero macro load from a non-zero guess: xnorm and xscale vanish, snorm stays round-off)
        if snorm <= self.step_tolerance * max(xnorm + self._xscale, self._snorm1):
            return PETSc.SNES.ConvergedReason.CONVERGED_SNORM_RELATIVE
        return 0

    # -- solve ------------------------------------------------------------------------------------
    def _set_macro(self, G: np.ndarray) -> None:
        G = np.asarray(G, dtype=float)
        d = self.dim
        if G.shape != (d, d):
            raise ValueError(f"macro {self._gname} must be a {d}x{d} array, got shape {G.shape}")
        if not np.all(np.isfinite(G)):
            raise ValueError(f"macro {self._gname} has non-finite entries: {G.tolist()}")
        if self.kind == "strain":
            self._G.value[...] = 0.5 * (G + G.T)
        else:
            if np.linalg.det(G) <= 0.0:
                raise ValueError(
                    f"macro deformation gradient must have det F > 0, got {np.linalg.det(G):.3g}"
                )
            self._G.value[...] = G - np.eye(d)
        # finite strain: the scale of F itself (identity included), the level of round-off in P
        scale_G = self._G.value if self.kind == "strain" else G
        self._xscale = float(np.linalg.norm(scale_G)) * self._scale

    @property
    def _gname(self) -> str:
        return "strain" if self.kind == "strain" else "deformation gradient"

    def _sum(self, values: np.ndarray) -> np.ndarray:
        if self.comm.size > 1:
            values = self.comm.allreduce(values, op=MPI.SUM)
        return values / self.volume

    def solve(
        self,
        G: np.ndarray,
        state: np.ndarray | None = None,
        guess: np.ndarray | None = None,
        *,
        tangent: bool = True,
    ) -> tuple[RVEResponse, np.ndarray, np.ndarray]:
        """Solve the RVE for the macro strain / deformation gradient ``G``.

        ``state`` is the packed committed state (``None``: zero) and ``guess`` the owned part of
        a previous fluctuation to start Newton from (``None``: zero).  Returns the response,
        the packed updated state (commit it if the macro step converges) and the owned part of
        the converged fluctuation.  Raises :class:`MicroSolveError` (collectively) when Newton
        fails, ``ValueError`` for a non-finite ``G`` or one with ``det F <= 0``.
        """
        self._set_macro(G)
        self._unpack(state)
        x = self._x
        if guess is None:
            x.set(0.0)
        else:
            x.getArray()[:] = guess
        x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        t0 = time.perf_counter()
        self.snes.solve(None, x)
        reason = self.snes.getConvergedReason()
        its = self.snes.getIterationNumber()
        if reason <= 0 and self.petsc_options.get("snes_linesearch_type") == "basic":
            # full Newton steps can cycle on large plastic increments (points that yield at
            # the start guess but not at the solution): retry once with backtracking
            log.debug("RVE Newton failed (reason %d); retrying with a line search", reason)
            if guess is None:
                x.set(0.0)
            else:
                x.getArray()[:] = guess
            x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
            self._set_linesearch("bt")
            try:
                self.snes.solve(None, x)
            finally:
                self._set_linesearch("basic")
            reason = self.snes.getConvergedReason()
            its += self.snes.getIterationNumber()
        if reason <= 0:
            raise MicroSolveError(
                f"RVE Newton ({self.prefix}) did not converge for macro {self._gname} "
                f"{np.round(np.asarray(G), 8).tolist()}: SNES reason {reason} after {its} "
                f"iterations, residual {self.snes.getFunctionNorm():.3e}"
            )
        self._update_u(x)
        t1 = time.perf_counter()

        d = self.dim
        flux = np.zeros((d, d))
        mean_g = np.zeros((d, d))
        energy = 0.0
        taylor = np.zeros((d, d, d, d))
        C_points: dict[int, np.ndarray] = {}
        for tag, cells in self._cells.items():
            w = self._weights[tag]
            q = self.rule.evaluate(self._q_expr[tag], cells)
            g = self.rule.evaluate(self._g_expr, cells)
            flux += np.einsum("cp,cpij->ij", w, q)
            mean_g += np.einsum("cp,cpij->ij", w, g)
            energy += float(np.einsum("cp,cpij,cpij->", w, q, g))
        t2 = time.perf_counter()
        for tag, cells in self._cells.items() if tangent else ():
            C_points[tag] = self.rule.evaluate(self._C_expr[tag], cells)
            taylor += np.einsum("cp,cpijkl->ijkl", self._weights[tag], C_points[tag])
        packed = np.concatenate([flux.ravel(), mean_g.ravel(), [energy], taylor.ravel()])
        packed = self._sum(packed)
        n2 = d * d
        flux = packed[:n2].reshape(d, d)
        mean_g = packed[n2 : 2 * n2].reshape(d, d)
        energy = packed[2 * n2]
        taylor = packed[2 * n2 + 1 :].reshape(d, d, d, d)
        work = float(np.sum(flux * mean_g))
        hill = abs(energy - work) / max(abs(work), 1e-300) if work != 0.0 else abs(energy)

        D = None
        if tangent:
            D = (
                taylor.copy()
                if self.tangent_kind == "taylor"
                else self._consistent(taylor, C_points)
            )
        t3 = time.perf_counter()
        new_state, mean_state = self._updated_state()
        t4 = time.perf_counter()
        response = RVEResponse(
            flux=flux,
            tangent=D,
            hill_mandel=hill,
            iterations=its,
            mean_state=mean_state,
            seconds={
                "newton": t1 - t0,
                "averages": (t2 - t1) + (t4 - t3),
                "tangent": t3 - t2,
            },
        )
        return response, new_state, x.getArray().copy()

    def _consistent(self, taylor: np.ndarray, C_points: dict[int, np.ndarray]) -> np.ndarray:
        """Columns :math:`\\langle\\mathbb C:(T + g(\\delta\\tilde u))\\rangle` from the
        factorization of the converged Jacobian."""
        d = self.dim
        D = np.zeros((d, d, d, d))
        ksp = self.snes.getKSP()
        b = self._rhs
        corr = np.zeros((len(self._directions), d, d))
        for n, (T, _) in enumerate(self._directions):
            self._T.value[...] = T
            with b.localForm() as b_local:
                b_local.set(0.0)
            dolfinx_mpc.assemble_vector(self._L_T, self.mpc, b)
            b.ghostUpdate(addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
            dolfinx.fem.petsc.set_bc(b, self.bcs)
            ksp.solve(b, self.w.x.petsc_vec)
            if ksp.getConvergedReason() < 0:
                raise MicroSolveError(
                    f"RVE tangent solve ({self.prefix}) failed: KSP reason "
                    f"{ksp.getConvergedReason()}"
                )
            self.w.x.scatter_forward()
            self.mpc.backsubstitution(self.w)
            for tag, cells in self._cells.items():
                gw = self.rule.evaluate(self._gw_expr, cells)
                corr[n] += np.einsum("cp,cpijkl,cpkl->ij", self._weights[tag], C_points[tag], gw)
        corr = self._sum(corr.ravel()).reshape(corr.shape)
        for n, (T, slots) in enumerate(self._directions):
            col = np.einsum("ijkl,kl->ij", taylor, T) + corr[n]
            for k, m in slots:
                D[:, :, k, m] = col
        return D

    def _updated_state(self) -> tuple[np.ndarray, dict[str, float]]:
        """Packed updated internal variables and the volume averages of the scalar ones."""
        if not self.state:
            return np.zeros(0), {}
        parts = []
        means: dict[str, float] = {}
        for name, f in self.state.items():
            values = f.x.array.copy()
            bs = f.function_space.dofmap.index_map_bs
            view = values.reshape(-1, bs)
            dofmap = f.function_space.dofmap.list
            total = 0.0
            for tag, cells in self._cells.items():
                exprs = self._update_expr.get(tag)
                if exprs is None or name not in exprs or len(cells) == 0:
                    continue
                new = self.rule.evaluate(exprs[name], cells)
                view[dofmap[cells].ravel()] = new.reshape(-1, bs)
                if bs == 1:
                    total += float(np.einsum("cp,cp->", self._weights[tag], new))
            parts.append(values)
            if bs == 1:
                means[name] = total
        if means:
            avg = self._sum(np.array(list(means.values())))
            means = dict(zip(means, avg.tolist(), strict=True))
        return np.concatenate(parts), means

    def load_state(self, state: np.ndarray | None) -> None:
        """Load a packed state into the state functions (e.g. to write a committed point)."""
        self._unpack(state)

    def destroy(self) -> None:
        for obj in (self.snes, self._A, self._b, self._x, self._rhs):
            obj.destroy()
