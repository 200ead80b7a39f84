r"""Micro problems on the sampling domains :math:`K_\delta(x_q) = x_q + \delta Y` of FE-HMM.

Lifting.  At a macro quadrature point :math:`x_q` with macro gradient :math:`G` the micro
problem seeks :math:`u^\delta = G\cdot(z - x_q) + \tilde u` on :math:`K_\delta` with

.. math::
    \int_{K_\delta} q\big(x, z/\varepsilon, G + \nabla\tilde u\big)\cdot\nabla v\,dz = 0
    \quad\forall v,

where :math:`\tilde u` is :math:`K_\delta`-periodic (``periodic`` coupling) or zero on
:math:`\partial K_\delta` (``dirichlet``: affine Dirichlet data :math:`G\cdot(z - x_q)` for the
full field), and :math:`x = x_q` (``freeze_x``, the collocated coefficient) or :math:`x = z`.

All sampling domains share one mesh of the unit cell :math:`Y = [0,1]^d`: with
:math:`z = x_q + \delta(\xi - \tfrac12)` and :math:`\tilde u = \delta w(\xi)` the gradients are
:math:`\nabla_z\tilde u = \nabla_\xi w`, so the problem on :math:`Y` is

.. math::
    \int_Y q\big(x, (x_q + \delta(\xi - \tfrac12))/\varepsilon, G + \nabla_\xi w\big)\cdot
    \nabla_\xi v\,d\xi = 0,

and :math:`x_q`, :math:`\delta`, :math:`\varepsilon` and :math:`G` are :class:`dolfinx.fem.Constant`
objects of **one** set of compiled forms, updated per point.

Restriction.  The macro flux is the micro flux averaged over :math:`K_\delta`, or over an inner
box of relative size ``inner`` (oversampling):
:math:`Q(x_q, G) = |Y_{in}|^{-1}\int_{Y_{in}} q\,d\xi`.

Tangent.  :math:`\partial Q/\partial G` is obtained from the linearized micro problems: with
:math:`D = \partial q/\partial g` at the converged state, :math:`\chi_j` solves
:math:`\int_Y D(e_j + \nabla\chi_j)\cdot\nabla v = 0` and column :math:`j` of the tangent is
:math:`\langle D(e_j + \nabla\chi_j)\rangle_{Y_{in}}`.  The Jacobian is factorized once and the
:math:`d` right-hand sides reuse the factorization.  For a linear coefficient the tangent *is* the
effective tensor :math:`A^{HMM}(x_q)` and no Newton iteration is needed; for a nonlinear one the
micro Newton iteration (with step cuts) runs first.
"""

from __future__ import annotations

import itertools
import logging
import math
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

from multiscale.cell.constraints import build_constraint
from multiscale.coupling import MicroSolveError, QuadratureRule
from multiscale.petsc_options import prefixed_options

__all__ = ["COUPLINGS", "MicroProblem", "MicroSettings", "unit_mesh"]

log = logging.getLogger(__name__)

_instances = itertools.count()

#: Coupling conditions of the sampling-domain problem.
COUPLINGS = ("periodic", "dirichlet")


def unit_mesh(comm: MPI.Comm, dim: int, n: int) -> dolfinx.mesh.Mesh:
    """The structured mesh of :math:`[0,1]^d` with ``n`` cells per side (simplices)."""
    n = int(n)
    if n < 1:
        raise ValueError(f"number of cells per side must be >= 1, got {n}")
    if dim == 1:
        return dolfinx.mesh.create_unit_interval(comm, n)
    if dim == 2:
        return dolfinx.mesh.create_unit_square(comm, n, n)
    if dim == 3:
        return dolfinx.mesh.create_unit_cube(comm, n, n, n)
    raise ValueError(f"dimension must be 1, 2 or 3, got {dim!r}")


@dataclass(slots=True)
class MicroSettings:
    r"""Sampling domains and their discretization.

    Attributes
    ----------
    delta, eps:
        Size :math:`\delta` of :math:`K_\delta` and the period/correlation scale
        :math:`\varepsilon`.
    n:
        Cells per side of the micro mesh of :math:`K_\delta` (so :math:`h/\varepsilon =
        \delta/(n\varepsilon)`).
    coupling:
        ``"periodic"`` or ``"dirichlet"``.
    freeze_x:
        Evaluate the slow variable at :math:`x_q` (collocated coefficient) instead of :math:`z`.
    inner:
        Relative side of the box over which the flux is averaged (1: all of :math:`K_\delta`).
    snap:
        Move the lower corner of :math:`K_\delta` to the nearest point of the period lattice
        :math:`\varepsilon\mathbb Z^d` (a shift of at most :math:`\varepsilon/2` per axis), so
        that a structured micro mesh with :math:`n\varepsilon/\delta` cells per period resolves
        the interfaces of a piecewise-constant periodic coefficient exactly.
    degree, quadrature_degree:
        Lagrange degree of the micro unknown and degree of the micro quadrature.
    newton_rtol, newton_atol, newton_max_it:
        Micro Newton tolerances (nonlinear coefficients only).
    petsc_options:
        Overrides of the micro linear solver options (default: LU).
    """

    delta: float
    eps: float
    n: int = 16
    coupling: str = "periodic"
    freeze_x: bool = True
    inner: float = 1.0
    snap: bool = False
    degree: int = 1
    quadrature_degree: int = 4
    newton_rtol: float = 1e-10
    newton_atol: float = 1e-13
    newton_max_it: int = 25
    petsc_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("delta", "eps"):
            v = float(getattr(self, key))
            if not math.isfinite(v) or v <= 0.0:
                raise ValueError(f"{key} must be a finite positive number, got {v!r}")
            setattr(self, key, v)
        if self.coupling not in COUPLINGS:
            raise ValueError(f"unknown coupling {self.coupling!r}; expected one of {COUPLINGS}")
        if self.coupling == "periodic" and self.delta < self.eps * (1.0 - 1e-12):
            raise ValueError(
                f"periodic coupling needs delta >= eps (a sampling domain of at least one period), "
                f"got delta = {self.delta:g} < eps = {self.eps:g}"
            )
        self.n = int(self.n)
        if self.n < 2:
            raise ValueError(f"the micro mesh needs n >= 2 cells per side, got {self.n}")
        self.inner = float(self.inner)
        if not 0.0 < self.inner <= 1.0:
            raise ValueError(f"inner must lie in (0, 1], got {self.inner!r}")
        if self.inner < 1.0 and abs(self.inner * self.n - round(self.inner * self.n)) > 1e-9:
            raise ValueError(
                f"inner * n must be an integer so the averaging box is a union of micro cells "
                f"(inner = {self.inner}, n = {self.n})"
            )
        if int(self.degree) < 1 or int(self.quadrature_degree) < 0:
            raise ValueError("need degree >= 1 and quadrature_degree >= 0")
        if self.newton_max_it < 1 or self.newton_rtol <= 0 or self.newton_atol < 0:
            raise ValueError("invalid micro Newton tolerances")
        self.petsc_options = dict(self.petsc_options or {})

    @property
    def periods(self) -> float:
        r""":math:`\delta/\varepsilon`, periods per side of the sampling domain."""
        return self.delta / self.eps

    def to_dict(self) -> dict[str, Any]:
        return {
            "delta": self.delta,
            "eps": self.eps,
            "n": self.n,
            "coupling": self.coupling,
            "freeze_x": self.freeze_x,
            "inner": self.inner,
            "snap": self.snap,
            "h_over_eps": self.delta / (self.n * self.eps),
        }


def _zero_vector(b: PETSc.Vec) -> None:
    with b.localForm() as b_local:
        b_local.set(0.0)


class MicroProblem:
    """The sampling-domain problem of one coefficient, built once and solved at every point.

    Parameters
    ----------
    comm:
        Communicator of the micro mesh (:attr:`MicroPool.micro_comm`).
    coefficient:
        A linear coefficient or a nonlinear flux law (see :mod:`multiscale.hmm.coefficients`).
    settings:
        :class:`MicroSettings`.
    options_prefix:
        PETSc options prefix (default ``multiscale_hmm_micro_<n>_``, identical on all ranks).

    Collective on ``comm``.  :meth:`destroy` frees the PETSc objects.
    """

    def __init__(
        self,
        comm: MPI.Comm,
        coefficient: Any,
        settings: MicroSettings,
        *,
        options_prefix: str | None = None,
    ) -> None:
        self.comm = comm
        self.coefficient = coefficient
        self.settings = s = settings
        self.linear = bool(coefficient.linear)
        d = self.dim = int(coefficient.dim)
        if s.coupling == "periodic" and not math.isclose(
            s.periods, round(s.periods), rel_tol=0, abs_tol=1e-9
        ):
            log.info("periodic coupling with delta/eps = %.4g not an integer", s.periods)
        self.mesh = mesh = unit_mesh(comm, d, s.n)
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", int(s.degree)))
        box = np.array([np.zeros(d), np.ones(d)])
        self.mpc, self.bcs = build_constraint(
            self.V, box, "periodic" if s.coupling == "periodic" else "kubc"
        )
        W = self.mpc.function_space
        # The conditions of build_constraint live on V; dolfinx_mpc assembles on the constrained
        # space W and silently skips conditions of another space, so restate them on W (same
        # local dof numbering).
        self.bcs = [dolfinx.fem.dirichletbc(0.0, bc.dof_indices()[0], W) for bc in self.bcs]
        self.w = dolfinx.fem.Function(W)  # fluctuation (micro Newton state)
        self.dw = dolfinx.fem.Function(W)  # Newton increment
        self.chi = dolfinx.fem.Function(W)  # tangent corrector of one direction

        self.xq = dolfinx.fem.Constant(mesh, np.zeros(d))
        self.corner = dolfinx.fem.Constant(mesh, np.zeros(d))
        self.delta = dolfinx.fem.Constant(mesh, s.delta)
        self.eps = dolfinx.fem.Constant(mesh, s.eps)
        self.G = dolfinx.fem.Constant(mesh, np.zeros(d))
        self.T = dolfinx.fem.Constant(mesh, np.zeros(d))

        xi = ufl.SpatialCoordinate(mesh)
        z = self.corner + self.delta * xi
        y = z / self.eps
        x_slow = self.xq if s.freeze_x else z

        # Cells of the averaging box (tag 1) and the rest (tag 0).
        tdim = mesh.topology.dim
        ncells = mesh.topology.index_map(tdim).size_local + mesh.topology.index_map(tdim).num_ghosts
        cells = np.arange(ncells, dtype=np.int32)
        mid = dolfinx.mesh.compute_midpoints(mesh, tdim, cells)[:, :d]
        inside = np.all(np.abs(mid - 0.5) < 0.5 * s.inner, axis=1).astype(np.int32)
        tags = dolfinx.mesh.meshtags(mesh, tdim, cells, inside)
        md = {"quadrature_degree": int(s.quadrature_degree)}
        dx = ufl.Measure("dx", domain=mesh, metadata=md)
        dx_in = ufl.Measure("dx", domain=mesh, metadata=md, subdomain_data=tags)(1)

        g = ufl.variable(self.G + ufl.grad(self.w))
        q = coefficient.flux(x_slow, y, g)
        if ufl.shape(q) != (d,):
            raise ValueError(f"the flux must be a vector of length {d}, got shape {ufl.shape(q)}")
        D = ufl.diff(q, g)
        v = ufl.TestFunction(W)
        du = ufl.TrialFunction(W)
        self._F = dolfinx.fem.form(ufl.inner(q, ufl.grad(v)) * dx)
        self._J = dolfinx.fem.form(ufl.inner(ufl.dot(D, ufl.grad(du)), ufl.grad(v)) * dx)
        self._L_T = dolfinx.fem.form(-ufl.inner(ufl.dot(D, self.T), ufl.grad(v)) * dx)
        corrected = ufl.dot(D, self.T + ufl.grad(self.chi))
        self._tangent_avg = [dolfinx.fem.form(corrected[i] * dx_in) for i in range(d)]
        self._flux_avg = [dolfinx.fem.form(q[i] * dx_in) for i in range(d)]
        one = dolfinx.fem.Constant(mesh, 1.0)
        self.inner_volume = comm.allreduce(
            dolfinx.fem.assemble_scalar(dolfinx.fem.form(one * dx_in)), op=MPI.SUM
        )
        # Check of the coefficient: D at the quadrature points, one compiled expression.
        self._check_rule = QuadratureRule(mesh, max(int(s.quadrature_degree), 1))
        self._D_expr = self._check_rule.expression(D)

        self.prefix = options_prefix or f"multiscale_hmm_micro_{next(_instances)}_"
        options: dict[str, Any] = {"ksp_type": "preonly", "pc_type": "lu"}
        if comm.size > 1:
            options["pc_factor_mat_solver_type"] = "mumps"
        options.update(s.petsc_options)
        self.petsc_options = options
        self.A = dolfinx_mpc.assemble_matrix(self._J, self.mpc, bcs=self.bcs)
        self.b = dolfinx_mpc.assemble_vector(self._L_T, self.mpc)
        self.ksp = PETSc.KSP().create(comm)
        self.ksp.setOptionsPrefix(self.prefix)
        self.ksp.setOperators(self.A)
        with prefixed_options(self.prefix, options):
            self.ksp.setFromOptions()
        self._history: dict[int, np.ndarray] = {}
        self.newton_iterations: list[int] = []
        self.ndofs = self.V.dofmap.index_map.size_global

    # -- pieces -----------------------------------------------------------------------------------
    def _assemble_vector(self, form: dolfinx.fem.Form) -> PETSc.Vec:
        _zero_vector(self.b)
        dolfinx_mpc.assemble_vector(form, self.mpc, self.b)
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
        dolfinx.fem.petsc.set_bc(self.b, self.bcs)
        return self.b

    def _assemble_jacobian(self) -> None:
        dolfinx_mpc.assemble_matrix(self._J, self.mpc, bcs=self.bcs, A=self.A)
        self.ksp.setOperators(self.A)

    def _solve_into(self, u: dolfinx.fem.Function, what: str) -> None:
        self.ksp.solve(self.b, u.x.petsc_vec)
        reason = self.ksp.getConvergedReason()
        if reason < 0:
            raise MicroSolveError(f"micro linear solve ({what}) failed: KSP reason {reason}")
        u.x.scatter_forward()
        self.mpc.backsubstitution(u)

    def _check_coefficient(self) -> None:
        """Raise on a NaN or a non-positive-definite linearized coefficient."""
        D = self._check_rule.evaluate(self._D_expr).reshape(-1, self.dim, self.dim)
        bad = 0
        if D.size:
            if not np.all(np.isfinite(D)):
                bad = 2
            else:
                sym = 0.5 * (D + np.transpose(D, (0, 2, 1)))
                if np.linalg.eigvalsh(sym)[:, 0].min() <= 0.0:
                    bad = 1
        bad = self.comm.allreduce(bad, op=MPI.MAX)
        if bad:
            what = "NaN or infinite" if bad == 2 else "not positive definite"
            raise MicroSolveError(
                f"the coefficient is {what} on the sampling domain at x_q = {self.xq.value}"
            )

    def _residual_norm(self) -> float:
        return self._assemble_vector(self._F).norm()

    def _newton(self, key: int | None) -> None:
        """Micro Newton iteration for the fluctuation ``w`` at the current constants."""
        s = self.settings
        if key is not None and key in self._history:
            self.w.x.array[:] = self._history[key]
        else:
            self.w.x.array[:] = 0.0
        r = self._residual_norm()
        r0 = r
        it = 0
        while r > max(s.newton_rtol * r0, s.newton_atol):
            if it >= s.newton_max_it or not math.isfinite(r):
                raise MicroSolveError(
                    f"micro Newton did not converge at x_q = {self.xq.value}, G = {self.G.value}: "
                    f"residual {r:.3e} (initial {r0:.3e}) after {it} iterations"
                )
            self._check_coefficient()
            self._assemble_jacobian()
            self.b.scale(-1.0)
            self._solve_into(self.dw, "Newton step")
            w0 = self.w.x.array.copy()
            step = 1.0
            for _ in range(12):  # step cuts until the residual decreases
                self.w.x.array[:] = w0 + step * self.dw.x.array
                r_new = self._residual_norm()
                if math.isfinite(r_new) and r_new < r:
                    break
                step *= 0.5
            else:
                raise MicroSolveError(
                    f"micro Newton stalled at x_q = {self.xq.value}: no step length reduces the "
                    f"residual {r:.3e}"
                )
            r = r_new
            it += 1
        self.newton_iterations.append(it)
        if key is not None:
            self._history[key] = self.w.x.array.copy()

    # -- the micro solve --------------------------------------------------------------------------
    def solve(
        self, xq: np.ndarray, G: np.ndarray | None = None, key: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        r"""Averaged flux :math:`Q(x_q, G)` and tangent :math:`\partial Q/\partial G` (``d x d``).

        For a linear coefficient the tangent is :math:`A^{HMM}(x_q)` and :math:`Q = A^{HMM} G`.
        ``key`` names the point for warm starts of the micro Newton iteration.  Collective on the
        micro communicator; raises :class:`MicroSolveError` on failure.
        """
        d = self.dim
        s = self.settings
        xq = np.asarray(xq, dtype=float)[:d]
        corner = xq - 0.5 * s.delta
        if s.snap:
            corner = s.eps * np.round(corner / s.eps)
        self.xq.value[...] = xq
        self.corner.value[...] = corner
        G = np.zeros(d) if G is None else np.asarray(G, dtype=float)[:d]
        if self.linear:
            self.G.value[...] = 0.0
            self.w.x.array[:] = 0.0
            self._check_coefficient()
        else:
            self.G.value[...] = G
            self._newton(key)
        self._assemble_jacobian()
        tangent = np.zeros((d, d))
        for j in range(d):
            self.T.value[...] = np.eye(d)[j]
            self._assemble_vector(self._L_T)
            self._solve_into(self.chi, f"corrector {j}")
            tangent[:, j] = [dolfinx.fem.assemble_scalar(f) for f in self._tangent_avg]
        tangent = self.comm.allreduce(tangent, op=MPI.SUM) / self.inner_volume
        if self.linear:
            Q = tangent @ G
        else:
            Q = np.array([dolfinx.fem.assemble_scalar(f) for f in self._flux_avg])
            Q = self.comm.allreduce(Q, op=MPI.SUM) / self.inner_volume
        if not (np.all(np.isfinite(tangent)) and np.all(np.isfinite(Q))):
            raise MicroSolveError(f"non-finite micro result at x_q = {self.xq.value}")
        return Q, tangent

    def effective_tensor(self, xq: np.ndarray) -> np.ndarray:
        """:math:`A^{HMM}(x_q)` of a linear coefficient (the tangent at :math:`G = 0`)."""
        return self.solve(xq)[1]

    def set_scales(self, delta: float | None = None, eps: float | None = None) -> None:
        """Change :math:`\\delta` and/or :math:`\\varepsilon` without recompiling."""
        if delta is not None:
            self.delta.value = float(delta)
            self.settings.delta = float(delta)
        if eps is not None:
            self.eps.value = float(eps)
            self.settings.eps = float(eps)
        self.settings.__post_init__()
        self._history.clear()

    def solver_info(self) -> Mapping[str, Any]:
        return {"prefix": self.prefix, "options": dict(self.petsc_options), "ndofs": self.ndofs}

    def destroy(self) -> None:
        for obj in (self.ksp, self.A, self.b):
            obj.destroy()
