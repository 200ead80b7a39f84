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
right-hand sides are solved with the factorization of the converged Jacobian: Newton
(:class:`~multiscale.nonlinear.NewtonSolver`) stops only once the residual is small *and* the last
correction is below ``snes_stol`` (default :math:`10^{-8}`) relative to the solution, so the
Jacobian it factorized last is the one at the solution to that accuracy (and exactly so for linear
phases), while the solution itself, one quadratically convergent step further, is accurate to
round-off.  For small strain :math:`\\mathbb C` is taken minor-symmetric,
:math:`\\tfrac12(\\mathbb C_{ijkl} + \\mathbb C_{ijlk})`, which changes nothing it does to a
symmetric strain.  The Taylor (Voigt) tangent :math:`\\langle\\mathbb C\\rangle` is available
(``tangent="taylor"``): it ignores the fluctuation, so it slows the macro Newton iteration down
but never changes the converged answer.

The solutions :math:`\\delta\\tilde u_{kl}` are also the sensitivities
:math:`\\partial\\tilde u/\\partial\\bar G_{kl}`: :meth:`RVEProblem.predict` uses them for the
first-order predictor :math:`\\tilde u(\\bar G + \\Delta) \\approx \\tilde u(\\bar G) +
\\sum_{kl} c_{kl}(\\Delta)\\,\\delta\\tilde u_{kl}`, the Newton start of the next solve at the
same point (FE² saves about one micro Newton iteration per solve with it).

Multi-field laws of the displacement alone with macro parameters (thermoelastic phases, whose
stress :math:`\\sigma = \\mathbb C:\\varepsilon - \\beta\\theta` carries the macro temperature
change :math:`\\theta`) are small-strain laws whose parameters :meth:`RVEProblem.solve` takes
with the strain: the RVE is then loaded by the macro strain and by the parameters, and
:math:`\\bar\\sigma = \\mathbb C^{hom}:E + \\bar\\sigma_\\theta\\,\\theta` with the mean stress
:math:`\\bar\\sigma_\\theta` of a unit parameter at zero strain.

Averages are weighted sums over the micro quadrature points (one compiled
:class:`dolfinx.fem.Expression` per phase and quantity, no per-point Python).  Internal variables
live in quadrature spaces; :meth:`RVEProblem.solve` never changes the committed state it is given
and returns the updated one, so the caller commits it when the macro step converges and drops it
when the step is cut.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.coupling.inner import InnerVariables
from multiscale.coupling.pool import MicroSolveError
from multiscale.coupling.quadrature import QuadratureRule
from multiscale.mesh.cell import CellMesh
from multiscale.mesh.periodicity import check_fills_box, check_periodic
from multiscale.nonlinear import NewtonOutcome, NewtonSolver, PETScOwner, newton_options
from multiscale.physics.base import Material, has_state, is_linear, is_symmetric, kind_of
from multiscale.physics.coupled import Field, MultiFieldLaw, fields_of

from .constraints import ConstrainedAssembly, build_constraint

__all__ = [
    "ParametrizedStress",
    "RVEProblem",
    "RVEResponse",
    "default_rve_options",
    "direction_coefficients",
    "macro_directions",
]

log = logging.getLogger(__name__)

TANGENTS = ("consistent", "taylor")


def default_rve_options(dim: int, ndofs: int, symmetric: bool = False) -> dict[str, Any]:
    """Newton with full steps (a failed solve is retried once with a backtracking line search,
    see :meth:`RVEProblem.solve`), converged when the residual is below :math:`10^{-9}` of the
    reference and the last correction below :math:`10^{-8}` of the solution, with a sparse
    direct solver (MUMPS; Cholesky for symmetric phase laws): the factorization of the converged
    Jacobian is what makes the tangent cheap.  For 3D RVEs above 60k dofs, CG (GMRES for
    unsymmetric laws) with smoothed-aggregation AMG instead (the tangent then costs iterative
    solves)."""
    opts = newton_options(symmetric, snes_max_it=30, snes_atol=0.0, snes_stol=1.0e-8)
    if dim == 3 and ndofs > 60_000:
        opts.update(
            {
                "ksp_type": "cg" if symmetric else "gmres",
                "ksp_rtol": 1.0e-12,
                "ksp_atol": 1.0e-50,
                "pc_type": "gamg",
                "pc_gamg_threshold": 0.02,
            }
        )
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


def direction_coefficients(kind: str, dG: np.ndarray) -> np.ndarray:
    """Coefficients :math:`c` with :math:`\\mathrm{sym}\\,\\Delta = \\sum_n c_n T_n` (small
    strain: :math:`\\Delta_{kk}` and the engineering shears :math:`2\\Delta_{kl}`) or
    :math:`\\Delta = \\sum_n c_n T_n` (finite strain), in the order of
    :func:`macro_directions`."""
    dG = np.asarray(dG, dtype=float)
    d = dG.shape[0]
    if kind == "strain":
        S = 0.5 * (dG + dG.T)
        return np.array([S[k, m] * (1.0 if k == m else 2.0) for k in range(d) for m in range(k, d)])
    return dG.ravel().copy()


@dataclass(slots=True, frozen=True)
class ParametrizedStress:
    r"""A multi-field law of the displacement alone (one field ``u`` with gradient
    ``"sym_grad"``, :class:`~multiscale.physics.coupled.MultiFieldLaw`) seen as a small-strain
    stress law of the RVE: :math:`\sigma(\varepsilon) = q_u(\{u: \varepsilon\}, \theta)`,
    its macro parameters :math:`\theta` (a temperature change, say) held in ``params``, the
    constants the RVE sets for each solve.  Linear, as every multi-field law."""

    law: Any
    params: Mapping[str, Any]
    kind: ClassVar[str] = "strain"
    linear: ClassVar[bool] = True

    @property
    def symmetric(self) -> bool:
        return bool(getattr(self.law, "symmetric", True))

    def flux(self, eps: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
        return self.law.fluxes({"u": eps}, dict(self.params))["u"]


@dataclass(slots=True)
class RVEResponse:
    """What one RVE solve returns (reduced over the RVE's communicator).

    ``flux``: :math:`\\langle\\sigma\\rangle` or :math:`\\langle P\\rangle` (d x d);
    ``tangent``: :math:`\\partial\\bar q/\\partial\\bar G` as a (d, d, d, d) array, consistent or
    Taylor (``None`` when not asked for); ``hill_mandel``:
    :math:`|\\langle q:g\\rangle - \\bar q:\\bar g| / |\\bar q:\\bar g|`; ``iterations``: micro
    Newton iterations; ``mean_state``: volume averages of the scalar internal variables (for
    example the equivalent plastic strain ``p``); ``sensitivity``: the owned parts of
    :math:`\\partial\\tilde u/\\partial\\bar G` along :func:`macro_directions` (consistent
    tangent only, else ``None``); ``seconds``: wall time of the Newton solve, the tangent and
    the averages.
    """

    flux: np.ndarray
    tangent: np.ndarray | None
    hill_mandel: float
    iterations: int
    mean_state: dict[str, float] = field(default_factory=dict)
    sensitivity: np.ndarray | None = None
    seconds: dict[str, float] = field(default_factory=dict)


class RVEProblem(PETScOwner):
    """A periodic RVE with (possibly nonlinear, history-dependent) phase laws.

    Parameters
    ----------
    cell:
        Periodic cell mesh with its phases (checked for periodicity).
    materials:
        Phase name or tag -> law, all of kind ``"strain"`` or all of kind ``"deformation"``;
        or all multi-field laws of the displacement alone
        (:class:`~multiscale.physics.coupled.ThermoElastic`, say), whose macro parameters
        (:attr:`parameters`) :meth:`solve` takes next to the macro strain.
    degree:
        Lagrange degree of the fluctuation.
    quadrature_degree:
        Degree of the micro quadrature rule (internal variables live at its points); default
        ``max(1, 2 (degree - 1))``, exact for the stress of P1 elements.
    tangent:
        ``"consistent"`` (default) or ``"taylor"``: the tangent :meth:`solve` returns.
    petsc_options_prefix, petsc_options:
        Prefix (default ``multiscale_rve_<n>_``) and overrides of :func:`default_rve_options`.
        The step test :math:`\\|\\delta\\tilde u\\| \\le \\tau_s\\,(\\|\\tilde u\\| + s)`
        (``snes_stol`` :math:`= \\tau_s`) uses :math:`s = \\max(\\|\\bar G\\|\\,\\ell\\sqrt n,\\
        \\|\\delta\\tilde u_1\\|)`, :math:`\\ell` the cell size, :math:`n` the number of dofs,
        :math:`\\delta\\tilde u_1` the first step and :math:`\\bar G` the macro strain or, for
        finite strain, :math:`\\bar F` itself (so a zero fluctuation is recognised instead of
        iterating on round-off); the residual test (``snes_rtol``) is relative to the larger of
        the initial residual and :math:`\\|A\\|_\\infty\\,s`, the nodal forces of the affine
        macro displacement, so neither a warm start close to the solution nor a homogeneous
        cell (whose load vanishes) is held to round-off.
    check:
        Check that the mesh fills its box and is periodic.

    Collective on ``cell.mesh.comm`` (``MPI.COMM_SELF`` for one RVE per rank in FE²).  Frees its
    PETSc objects in :meth:`destroy` (also on leaving a ``with`` block).
    """

    def __init__(
        self,
        cell: CellMesh,
        materials: Mapping[str | int, Material],
        *,
        degree: int = 1,
        quadrature_degree: int | None = None,
        tangent: str = "consistent",
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
        check: bool = True,
    ) -> None:
        if tangent not in TANGENTS:
            raise ValueError(f"unknown tangent {tangent!r}; expected one of {TANGENTS}")
        self.tangent_kind = tangent
        self._init_materials(cell, materials, check)
        qdeg = quadrature_degree if quadrature_degree is not None else max(1, 2 * (degree - 1))
        self._init_spaces(int(degree), qdeg)
        self._init_state()
        self._init_forms()
        self._init_solver(petsc_options_prefix, petsc_options)

    # -- construction, in steps -------------------------------------------------------------------
    def _init_materials(
        self, cell: CellMesh, materials: Mapping[str | int, Material], check: bool
    ) -> None:
        materials = self._parametrized(cell, dict(materials))
        self.kind = kind_of(materials)
        if self.kind not in ("strain", "deformation"):
            raise ValueError(
                f"RVEProblem solves mechanics (laws of kind 'strain' or 'deformation'), got "
                f"{self.kind!r} laws; use CellProblem for conductivity"
            )
        self.cell = cell
        self.comm: MPI.Comm = cell.mesh.comm
        self.dim = cell.mesh.geometry.dim
        self.materials: dict[int, Material] = cell.by_tag(materials)
        if check:
            check_fills_box(cell)
            check_periodic(cell)
        self.linear = all(is_linear(law) for law in self.materials.values())
        self.symmetric = all(is_symmetric(law) for law in self.materials.values())
        self.volume = cell.volume

    def _parametrized(self, cell: CellMesh, materials: dict) -> dict:
        """Multi-field laws of the displacement alone as :class:`ParametrizedStress` laws, with
        one constant per macro parameter (:attr:`parameters`, :meth:`solve`); other laws as
        given."""
        self.parameters: tuple[str, ...] = ()
        self._params: dict[str, dolfinx.fem.Constant] = {}
        multi = [k for k, m in materials.items() if isinstance(m, MultiFieldLaw)]
        if not multi:
            return materials
        if len(multi) < len(materials):
            others = [k for k in materials if k not in multi]
            raise ValueError(
                f"phase(s) {multi} have multi-field laws and {others} do not: give every phase "
                "a law of the same kind (thermoelastic with alpha 0 for a phase that does not "
                "expand)"
            )
        fields, parameters = fields_of(materials)
        if tuple(fields) != (Field("u", "vector", "sym_grad"),):
            names = [f.name for f in fields]
            raise ValueError(
                f"RVEProblem solves mechanics: a multi-field law must have the one field u "
                f"(sym_grad), got fields {names}; CellProblem homogenizes coupled laws"
            )
        self.parameters = tuple(parameters)
        self._params = {name: dolfinx.fem.Constant(cell.mesh, 0.0) for name in parameters}
        return {k: ParametrizedStress(m, self._params) for k, m in materials.items()}

    def _set_parameters(self, values: Mapping[str, float] | None) -> None:
        """The macro parameters of the next solve (absent ones are zero)."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(self._params))
        if unknown:
            raise ValueError(
                f"unknown macro parameter(s) {unknown}; the phase laws take {list(self._params)}"
            )
        for name, constant in self._params.items():
            value = float(values.get(name, 0.0))
            if not np.isfinite(value):
                raise ValueError(f"macro parameter {name!r} must be finite, got {value}")
            constant.value = value

    def _init_spaces(self, degree: int, qdeg: int) -> None:
        mesh, d = self.cell.mesh, self.dim
        self.rule = QuadratureRule(mesh, qdeg)
        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", degree, (d,)))
        self.ndofs = self.V.dofmap.index_map.size_global * self.V.dofmap.index_map_bs
        self.mpc, self.bcs = build_constraint(self.V, self.cell.box, "periodic")
        W = self.mpc.function_space
        self.u = dolfinx.fem.Function(W, name="fluctuation")
        self.w = dolfinx.fem.Function(W)
        self._G = dolfinx.fem.Constant(mesh, np.zeros((d, d)))
        self._T = dolfinx.fem.Constant(mesh, np.zeros((d, d)))
        self._scale = float(np.linalg.norm(self.cell.lengths)) * np.sqrt(self.ndofs)
        self._xscale = 0.0
        self._directions = macro_directions(self.kind, d)
        # phase cells (owned) and their quadrature weights
        nowned = mesh.topology.index_map(d).size_local
        self._cells: dict[int, np.ndarray] = {}
        self._weights: dict[int, np.ndarray] = {}
        for tag in self.materials:
            cells = self.cell.cell_tags.find(tag)
            cells = np.sort(cells[cells < nowned]).astype(np.int32)
            self._cells[tag] = cells
            self._weights[tag] = self.rule.jacobian_weights(cells)

    def _init_state(self) -> None:
        """Internal variables: one quadrature function per name, shared by the phases."""
        shapes: dict[str, tuple[int, ...]] = {}
        for law in self.materials.values():
            if has_state(law):
                for name, shape in law.state_shapes(self.dim).items():
                    if shapes.setdefault(name, tuple(shape)) != tuple(shape):
                        raise ValueError(f"internal variable {name!r} declared with two shapes")
        self.state = {name: self.rule.function(shape, name) for name, shape in shapes.items()}
        self.state_shapes = shapes

    def _init_forms(self) -> None:
        """Residual, Jacobian, tangent right-hand side and point expressions, compiled once."""
        d = self.dim
        v = ufl.TestFunction(self.V)
        du = ufl.TrialFunction(self.V)
        if self.kind == "strain":
            g = self._macro_strain() + ufl.sym(ufl.grad(self.u))
            g_w = ufl.sym(ufl.grad(self.w))
        else:
            g = ufl.Identity(d) + self._G + ufl.grad(self.u)
            g_w = ufl.grad(self.w)
        gvar = ufl.variable(g)
        dx = ufl.Measure(
            "dx",
            domain=self.cell.mesh,
            subdomain_data=self.cell.cell_tags,
            metadata={"quadrature_degree": self.rule.degree, "quadrature_rule": "default"},
        )
        i, j, k, m = ufl.indices(4)
        residual = 0
        rhs_T = 0
        self._q_expr, self._C_expr, self._update_expr = {}, {}, {}
        # inner variables (relaxed Cauchy-Born shifts): equilibrated at every Newton iterate
        self.inner = InnerVariables(self.rule, self.materials, self.cell.cell_tags, g)
        for tag, law in self.materials.items():
            extra = {"inner": self.inner.of(tag)} if self.inner.of(tag) is not None else {}
            q = law.flux(gvar, self.state, **extra) if has_state(law) else law.flux(gvar, **extra)
            C = ufl.diff(q, gvar)
            if self.kind == "strain":  # d/dE of a function of sym(E): minor-symmetric
                C = ufl.as_tensor(0.5 * (C[i, j, k, m] + C[i, j, m, k]), (i, j, k, m))
            residual += ufl.inner(q, ufl.grad(v)) * dx(tag)
            T = self._direction_strain() if self.kind == "strain" else self._T
            CT = ufl.as_tensor(C[i, j, k, m] * T[k, m], (i, j))
            rhs_T += -ufl.inner(CT, ufl.grad(v)) * dx(tag)
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

    # -- hooks of the macro field (a second-order RVE adds the strain of the macro gradient) ----
    def _macro_strain(self) -> ufl.core.expr.Expr:
        """The macro part of the micro strain (small strain): the uniform :math:`E`.  A
        subclass may add a field (:class:`~multiscale.cell.second_order.SecondOrderRVE`: the
        strain :math:`\\operatorname{sym}(G y)` of the macro second gradient)."""
        return self._G

    def _direction_strain(self) -> ufl.core.expr.Expr:
        """The micro strain of the current unit macro direction (small strain), set by
        :meth:`_set_direction`: the uniform :math:`T_n`."""
        return self._T

    def _set_direction(self, n: int) -> None:
        """Load the unit macro direction ``n`` into the constants of :meth:`_direction_strain`
        (the tangent's right-hand side :math:`b_n`)."""
        self._T.value[...] = self._directions[n][0]

    def _init_solver(self, prefix: str | None, petsc_options: Mapping[str, Any] | None) -> None:
        self.assembly = ConstrainedAssembly(self._F, self._J, self.u, self.mpc, self.bcs)
        self.newton = self._own(
            NewtonSolver(
                self.assembly,
                petsc_options_prefix=prefix,
                petsc_options=petsc_options,
                defaults=default_rve_options(self.dim, self.ndofs, self.symmetric),
                min_iterations=1,
                symmetric=self.symmetric,
                role="rve",
                name="RVE Newton",
                on_iterate=self._on_iterate if self.inner.active else None,
                step_scale=self._step_scale,
                residual_reference=self._residual_reference,
            )
        )
        self.prefix = self.newton.prefix
        self.petsc_options = self.newton.petsc_options
        self._rhs = self._own(self.newton.b.duplicate())
        self._rhs_block: PETSc.Mat | None = None
        self._sol_block: PETSc.Mat | None = None
        self._G_given = np.zeros((self.dim, self.dim))

    # -- state packing ----------------------------------------------------------------------------
    @property
    def state_size(self) -> int:
        """Length of the packed state array of one point (this rank's part)."""
        return sum(f.x.array.size for f in self.state.values())

    @property
    def n_directions(self) -> int:
        """Number of unit macro directions (rows of a sensitivity): 3/6 at small strain, 4/9
        at finite strain in 2D/3D."""
        return len(self._directions)

    @property
    def fluctuation_size(self) -> int:
        """Length of the owned part of a fluctuation (or sensitivity) vector."""
        return self.newton.x.getLocalSize()

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

    def _on_iterate(self, x: PETSc.Vec) -> None:
        """The inner variables of the phase laws at the iterate (see
        :class:`~multiscale.coupling.inner.InnerVariables`)."""
        self.inner.relax()

    def _step_scale(self) -> float:
        # the macro displacement across the cell; or, where the solution is zero (a zero macro
        # load from a non-zero guess), the first correction, so round-off is not chased
        return max(self._xscale, self.newton.first_step)

    def _residual_reference(self, f0: float) -> float:
        # the nodal forces of the affine macro displacement, ||A|| |G| l sqrt(n): an upper
        # bound of the load of the cell problem that is not round-off where the load vanishes
        # (a homogeneous cell) and costs no assembly
        norm = self.newton.A.norm(PETSc.NormType.INFINITY)
        return max(f0, norm * self._step_scale())

    @property
    def _gname(self) -> str:
        return "strain" if self.kind == "strain" else "deformation gradient"

    def _sum(self, values: np.ndarray) -> np.ndarray:
        if self.comm.size > 1:
            values = self.comm.allreduce(values, op=MPI.SUM)
        return values / self.volume

    def predict(
        self, fluctuation: np.ndarray, sensitivity: np.ndarray | None, dG: np.ndarray
    ) -> np.ndarray:
        """First-order predictor of the fluctuation at :math:`\\bar G + \\Delta` from the one at
        :math:`\\bar G` and its sensitivity there (owned parts; ``sensitivity`` ``None``: no
        correction)."""
        if sensitivity is None or not len(sensitivity):
            return fluctuation
        return fluctuation + direction_coefficients(self.kind, dG) @ sensitivity

    def _newton(self, guess: np.ndarray | None, fallback: np.ndarray | None) -> tuple[int, float]:
        """Newton from ``guess`` (owned part; ``None``: zero); if that fails, once more from
        ``fallback`` (default: ``guess``) with a backtracking line search.  Returns the
        iterations and the seconds; raises :class:`MicroSolveError`."""
        t0 = time.perf_counter()
        outcome = self._newton_from(guess)
        its = outcome.iterations
        if not outcome.converged and self.petsc_options.get("snes_linesearch_type") == "basic":
            # full Newton steps can cycle on large plastic increments (points that yield at the
            # start guess but not at the solution), and a predicted start can invert elements:
            # backtrack from the safer start instead
            log.debug("RVE Newton failed (%s); retrying with a line search", outcome.cause)
            self.newton.set_options({"snes_linesearch_type": "bt"})
            try:
                outcome = self._newton_from(guess if fallback is None else fallback)
            finally:
                self.newton.set_options({})
            its += outcome.iterations
        if not outcome.converged:
            raise MicroSolveError(
                f"{outcome.cause}; macro {self._gname} {np.round(self._G_given, 8).tolist()}, "
                f"{its} iterations with the line-search retry"
            )
        return its, time.perf_counter() - t0

    def solve(
        self,
        G: np.ndarray,
        state: np.ndarray | None = None,
        guess: np.ndarray | None = None,
        *,
        fallback: np.ndarray | None = None,
        tangent: str | None = "default",
        parameters: Mapping[str, float] | None = None,
    ) -> tuple[RVEResponse, np.ndarray, np.ndarray]:
        """Solve the RVE for the macro strain / deformation gradient ``G``.

        ``state`` is the packed committed state (``None``: zero) and ``guess`` the owned part of
        a fluctuation to start Newton from (``None``: zero); should Newton fail from there, it
        is retried with a line search from ``fallback`` (default ``guess``).  ``tangent``:
        ``"consistent"``, ``"taylor"``, ``None`` (no tangent) or ``"default"`` (the
        problem's).  ``parameters``: the values of the laws' macro parameters
        (:attr:`parameters`, e.g. ``{"theta": 10.0}``; absent ones are zero).  Returns the
        response, the packed updated state (commit it if the macro step converges) and the
        owned part of the converged fluctuation.  Raises :class:`MicroSolveError`
        (collectively) when Newton fails, ``ValueError`` for a non-finite ``G`` or one with
        ``det F <= 0``.
        """
        kind = self.tangent_kind if tangent == "default" else tangent
        if kind is not None and kind not in TANGENTS:
            raise ValueError(f"unknown tangent {kind!r}; expected one of {TANGENTS} or None")
        self._set_macro(G)
        self._set_parameters(parameters)
        self._G_given = np.asarray(G, dtype=float)
        self._unpack(state)
        its, t_newton = self._newton(guess, fallback)
        t1 = time.perf_counter()
        flux, hill, taylor, C_points = self._averages(with_tangent=kind is not None)
        t2 = time.perf_counter()
        D = sens = None
        if kind == "taylor":
            D = taylor
        elif kind == "consistent":
            D, sens = self._consistent(taylor, C_points)
        t3 = time.perf_counter()
        new_state, mean_state = self._updated_state()
        t4 = time.perf_counter()
        response = RVEResponse(
            flux=flux,
            tangent=D,
            hill_mandel=hill,
            iterations=its,
            mean_state=mean_state,
            sensitivity=sens,
            seconds={"newton": t_newton, "averages": (t2 - t1) + (t4 - t3), "tangent": t3 - t2},
        )
        return response, new_state, self.newton.x.getArray().copy()

    def _newton_from(self, guess: np.ndarray | None) -> NewtonOutcome:
        x = self.newton.x
        if guess is None:
            x.set(0.0)
        else:
            x.getArray()[:] = guess
        x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        return self.newton.solve()

    def _averages(
        self, with_tangent: bool
    ) -> tuple[np.ndarray, float, np.ndarray, dict[int, np.ndarray]]:
        """:math:`\\bar q`, the Hill–Mandel residual, :math:`\\langle\\mathbb C\\rangle` and the
        point values of :math:`\\mathbb C` per phase (the last two only ``with_tangent``)."""
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
            if with_tangent:
                C_points[tag] = self.rule.evaluate(self._C_expr[tag], cells)
                taylor += np.einsum("cp,cpijkl->ijkl", w, C_points[tag])
        packed = self._sum(np.concatenate([flux.ravel(), mean_g.ravel(), [energy], taylor.ravel()]))
        n2 = d * d
        flux = packed[:n2].reshape(d, d)
        mean_g = packed[n2 : 2 * n2].reshape(d, d)
        energy = packed[2 * n2]
        taylor = packed[2 * n2 + 1 :].reshape(d, d, d, d)
        work = float(np.sum(flux * mean_g))
        hill = abs(energy - work) / max(abs(work), 1e-300) if work != 0.0 else abs(energy)
        return flux, hill, taylor, C_points

    def _consistent(
        self, taylor: np.ndarray, C_points: dict[int, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The consistent tangent from the factorization of the converged Jacobian, and the
        sensitivities :math:`\\delta\\tilde u` (owned parts, one row per direction).

        The right-hand sides :math:`b_n = -\\int_Y (\\mathbb C:T_n):\\nabla v` of all
        directions are solved at once (one multiple-right-hand-side solve).  For a symmetric
        tangent (:math:`\\mathbb C_{ijkl} = \\mathbb C_{klij}`) the correction needs no further
        integration: :math:`T_n : (\\mathbb D - \\langle\\mathbb C\\rangle) : T_m =
        \\langle T_n:\\mathbb C:g(\\delta\\tilde u_m)\\rangle = -b_n\\cdot\\delta\\tilde u_m/|Y|`;
        otherwise :math:`\\langle\\mathbb C:g(\\delta\\tilde u_m)\\rangle` is integrated at the
        quadrature points."""
        B, W = self._tangent_solves()
        ndir = len(self._directions)
        if self.symmetric:
            corr_nm = -self._sum((B @ W.T).ravel()).reshape(ndir, ndir)
            basis = np.array([T / np.sum(T * T) for T, _ in self._directions])
            corr = np.einsum("nm,nij->mij", corr_nm, basis)
        else:
            corr = self._correction_at_points(W, C_points)
        d = self.dim
        D = np.zeros((d, d, d, d))
        for m, (T, slots) in enumerate(self._directions):
            col = np.einsum("ijkl,kl->ij", taylor, T) + corr[m]
            for k, m_ in slots:
                D[:, :, k, m_] = col
        return D, W

    def _tangent_solves(self) -> tuple[np.ndarray, np.ndarray]:
        """Owned parts of the right-hand sides :math:`b_n` and the solutions
        :math:`\\delta\\tilde u_n`, one row per direction."""
        if self._rhs_block is None:
            n, N = self.fluctuation_size, self.newton.x.getSize()
            ndir = len(self._directions)
            self._rhs_block = self._own(
                PETSc.Mat().createDense(((n, N), (None, ndir)), comm=self.comm)
            )
            self._sol_block = self._own(
                PETSc.Mat().createDense(((n, N), (None, ndir)), comm=self.comm)
            )
            self._rhs_block.setUp()
            self._sol_block.setUp()
        Bm, Wm = self._rhs_block, self._sol_block
        B = Bm.getDenseArray()
        for n in range(len(self._directions)):
            self._set_direction(n)
            self.assembly.assemble_vector(self._L_T, self._rhs)
            B[:, n] = self._rhs.getArray()
        Bm.assemble()
        ksp = self.newton.snes.getKSP()
        ksp.matSolve(Bm, Wm)
        if ksp.getConvergedReason() < 0:
            raise MicroSolveError(
                f"RVE tangent solve ({self.prefix}) failed: KSP reason {ksp.getConvergedReason()}"
            )
        return B.T.copy(), Wm.getDenseArray().T.copy()

    def _correction_at_points(self, W: np.ndarray, C_points: dict[int, np.ndarray]) -> np.ndarray:
        """:math:`\\langle\\mathbb C:g(\\delta\\tilde u_m)\\rangle` by quadrature (unsymmetric
        tangents)."""
        d = self.dim
        corr = np.zeros((len(self._directions), d, d))
        for m in range(len(self._directions)):
            self.w.x.petsc_vec.getArray()[:] = W[m]
            self.w.x.scatter_forward()
            self.mpc.backsubstitution(self.w)
            for tag, cells in self._cells.items():
                gw = self.rule.evaluate(self._gw_expr, cells)
                corr[m] += np.einsum("cp,cpijkl,cpkl->ij", self._weights[tag], C_points[tag], gw)
        return self._sum(corr.ravel()).reshape(corr.shape)

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
        """Load a packed state into the work functions :attr:`state` (to read a stored point's
        internal variables; the solver's committed histories live with its caller)."""
        self._unpack(state)

    # -- fields for output ------------------------------------------------------------------------
    def fields(
        self, state: np.ndarray | None, fluctuation: np.ndarray
    ) -> tuple[dolfinx.fem.Function, dict[str, np.ndarray]]:
        """The fluctuation (a function on the constrained space, slaves filled) and the cell
        averages of the scalar internal variables (owned cells, per name) of a stored point.

        Changes only the RVE's work functions, never a committed history: output reads a
        point's fields through this method."""
        self._unpack(state)
        x = self.u.x.petsc_vec
        x.getArray()[:] = fluctuation
        self.assembly.set_iterate(x)
        cell_values = {}
        for name, f in self.state.items():
            if f.function_space.dofmap.index_map_bs == 1:
                cell_values[name] = self.rule.values(f).mean(axis=1)
        return self.u, cell_values
