r"""Second-order FE² with nonlinear cells: the macro strain-gradient continuum of
:mod:`multiscale.fe2.second_order` whose stress and double stress come, at every quadrature point,
from a :class:`~multiscale.cell.second_order.SecondOrderRVE` with its own history.

The macro problem (2D, small strain) is the C0 mixed form of
:func:`~multiscale.fe2.second_order.macro_strip`: find the displacement :math:`u` (P2), the
independent gradient :math:`F` (P1) and the multiplier :math:`\Lambda` (P1) of
:math:`F = \nabla u` with

.. math::
    R = \int_\Omega \{\Sigma\}\cdot\{\varepsilon(\delta u)\} + \tilde q\cdot g(\delta F)
    + \Lambda : (\nabla\delta u - \delta F) + \delta\Lambda : (\nabla u - F)\,dx = 0

for all :math:`(\delta u, \delta F, \delta\Lambda)`, where :math:`(\{\Sigma\}, q)` is the
response of the point's cell to the generalized strain :math:`e = (\{\varepsilon(u)\}, g(F))`,
:math:`g_{i\,jk} = \operatorname{sym}_{jk}\partial_k F_{ij}` (Kouznetsova, Geers & Brekelmans
2002), and the double stress of the macro continuum is the *excess*

.. math::
    \tilde q = q - J(C_t)\,g, \qquad
    \frac{\partial(\{\Sigma\}, \tilde q)}{\partial(\{E\}, g)} \approx
    \begin{pmatrix} C_t & B_t \\ B_t' & D_t - J(C_t) \end{pmatrix},

:math:`C_t, B_t, B_t', D_t` the blocks of the cell's consistent tangent and :math:`J(C)`
(:func:`~multiscale.cell.second_order.inertia_correction`) the double stress that a continuum of
stiffness :math:`C` integrates through the variation of :math:`\varepsilon(u)` over the cell:
the leading term, in the cell size, of the double stress the macro continuum already counts with
the cell's current stiffness.  (Accumulating :math:`J(C_t)\,dg` along the load path instead
was measured worse against the resolved J2 beam.)  For linear phases :math:`\tilde q =
B^T\{E\} + \tilde D g` exactly: the linear excess formulation whose laminated beam matches the
closed form. For nonlinear phases the variation of :math:`J(C_t)` with the state is left out of the
Jacobian (it multiplies :math:`g`, an order smaller in the cell size than the terms kept), so Newton
converges superlinearly where the cell's stiffness changes. ``higher_order="full"`` uses :math:`q`
and :math:`D_t` themselves (the formulation as first published, in which a homogeneous cell stiffens
the continuum by its own moment of inertia); ``order=1`` drops :math:`B_t` and the double stress
(the cells see the macro strain alone): first-order FE² on the same macro mesh.

Solving with the excess is ill posed where :math:`\tilde D` has negative directions, and it
always has some: the periodic fluctuation absorbs the "pure square" gradients :math:`G_{i\,jj}`
(:math:`D` vanishes on them while :math:`J(C_t)` does not), so the energy of short waves turns
negative and the macro solution follows the mesh (:func:`~multiscale.fe2.second_order.macro_strip`
says the same of linear cells).  ``higher_order="perturbative"`` (the default) reads the
second-order terms as the perturbation they are: the macro Newton iteration is first-order FE²,
and at each converged load step a second set of cells, with histories of their own, is driven
by the full generalized strain :math:`e^n = (\{\varepsilon(u_0)\}, g(F_0))` of that first-order
solution; their excess responses :math:`\tilde s^n = (\{\Sigma\}, \tilde q)` give the
second-order work

.. math::
    W_2(\lambda_n) = W_2(\lambda_{n-1}) + \int_\Omega \tfrac12(\tilde s^n + \tilde s^{n-1})
    \cdot(e^n - e^{n-1})\,dx,

the first-order variation of the stationary incremental work in the model's second-order terms
(for linear cells :math:`W_2 = \tfrac12\int e\cdot\tilde K e\,dx`, the perturbative energy of
:func:`~multiscale.fe2.second_order.macro_strip`, exact for the trapezoidal rule).  A failing
second-order cell cuts the step like a failing first-order one.  The first-order work
:math:`W_1` is accumulated alike; both are recorded at every step (``quantities["work"]`` and
``["work_second_order"]``).

The histories of the cells (committed after each converged load step, dropped for a cut one),
the reuse of the committed responses at the first iterate of a step and the failure handling
(a failed cell fails the iterate on every rank; the step is cut) are those of first-order FE²:
:class:`~multiscale.coupling.concurrent.ConcurrentCoupling`,
:class:`~multiscale.coupling.solid.SolidProblem` (whose Newton solver and load stepper this
problem uses) and :class:`~multiscale.fe2.second_order.SecondOrderMicroModel` in the
:class:`~multiscale.coupling.pool.MicroPool`.  The loads are Dirichlet conditions on the mixed
space at load factor 1 (``dirichlet``, scaled by
:class:`~multiscale.coupling.solid.ScaledConditions`); the response is read from
:meth:`~multiscale.coupling.solid.SolidProblem.load_conjugate` (the moment times the end
rotation for a beam bent by its ends), recorded at every step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import basix.ufl
import dolfinx
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.cell.second_order import gradient_components, inertia_correction
from multiscale.coupling.concurrent import ConcurrentCoupling
from multiscale.coupling.pool import MicroPool, MicroSolveError
from multiscale.coupling.quadrature import QuadratureRule
from multiscale.coupling.solid import SolidProblem
from multiscale.fe2.dns import DNSProblem
from multiscale.fe2.micro import CellSource
from multiscale.fe2.second_order import (
    SecondOrderEvaluation,
    SecondOrderMicroModel,
    layered_strip,
    strip_conditions,
)
from multiscale.fe2.solver import default_macro_options
from multiscale.mesh.macro import MacroMesh, tag_box_sides
from multiscale.mesh.tiled import TiledMesh
from multiscale.nonlinear import NewtonOutcome, StepRecord, agree
from multiscale.physics.base import Material

__all__ = [
    "BENDING_MODELS",
    "MACRO_HIGHER_ORDER",
    "LaminateBending",
    "MacroResponses",
    "SecondOrderFE2Problem",
    "laminate_bending",
]

log = logging.getLogger(__name__)

#: The second-order terms of the macro continuum: read as a perturbation of first-order FE², the
#: excess over what the first-order part integrates, or the cell's double stress itself.
MACRO_HIGHER_ORDER = ("perturbative", "excess", "full")


@dataclass(slots=True)
class MacroResponses:
    """What the macro forms integrate at this rank's points: the generalized stress
    :math:`(\\{\\Sigma\\}, \\tilde q)` (n, 9) and its tangent (n, 9, 9), with the cells'
    evaluation they came from."""

    stress: np.ndarray
    tangent: np.ndarray
    evaluation: SecondOrderEvaluation

    def copy(self) -> MacroResponses:
        ev = self.evaluation
        return MacroResponses(
            self.stress.copy(),
            self.tangent.copy(),
            SecondOrderEvaluation(
                stress=ev.stress.copy(),
                double_stress=ev.double_stress.copy(),
                tangent=np.array(ev.tangent),
                hill_mandel=ev.hill_mandel.copy(),
                iterations=ev.iterations.copy(),
                mean_p=ev.mean_p.copy(),
            ),
        )


def _voigt(e: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
    return ufl.as_vector([e[0, 0], e[1, 1], 2 * e[0, 1]])


def _second_gradient(F: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
    """:math:`g_{i\\,jk} = \\operatorname{sym}_{jk}\\partial_k F_{ij}` in the order of
    :func:`~multiscale.cell.second_order.gradient_components`."""
    return ufl.as_vector(
        [0.5 * (F[i, j].dx(k) + F[i, k].dx(j)) for i, j, k in gradient_components(2)]
    )


def _generalized(u: Any, F: Any) -> ufl.core.expr.Expr:
    """:math:`e = (\\{\\varepsilon(u)\\}, g(F))`, 9 components."""
    e, g = _voigt(ufl.sym(ufl.grad(u))), _second_gradient(F)
    return ufl.as_vector([e[a] for a in range(3)] + [g[a] for a in range(6)])


class SecondOrderFE2Problem(ConcurrentCoupling, SolidProblem):
    """The macro strain-gradient continuum with a second-order cell at every quadrature point
    (see the module).

    Parameters
    ----------
    macro:
        The 2D macro mesh with named boundaries.
    cell, materials:
        The cell (as for :class:`~multiscale.fe2.micro.MicroModel`) and its small-strain phase
        laws, history-dependent ones included.
    dirichlet:
        Called with the mixed space :math:`W = (u, F, \\Lambda)`: the Dirichlet conditions at
        load factor 1 (on ``W.sub(0)`` for the displacement, ``W.sub(1)`` for the gradient).
    order:
        2 (second order) or 1 (first-order FE² in the same mixed form).
    higher_order:
        ``"perturbative"`` (default), ``"excess"`` or ``"full"`` (see the module and
        :data:`MACRO_HIGHER_ORDER`).
    quadrature_degree:
        Of the macro rule (default 2: three points per triangle, exact for the P2 strain
        energy of a linear cell).
    tangent, group_size, predictor, rve_options:
        As for :class:`~multiscale.fe2.solver.FE2Problem` (``rve_options`` go to the
        :class:`~multiscale.cell.second_order.SecondOrderRVE`).
    petsc_options_prefix, petsc_options, max_cuts:
        Of the macro Newton solver and its load stepper.

    Collective on ``macro.mesh.comm``; frees its PETSc objects in :meth:`destroy`.
    """

    role = "fe2_second_order"
    newton_name = "second-order macro Newton"

    def __init__(
        self,
        macro: MacroMesh,
        cell: CellSource,
        materials: Mapping[str | int, Material],
        *,
        dirichlet: Callable[[dolfinx.fem.FunctionSpace], Sequence[Any]],
        order: int = 2,
        higher_order: str = "perturbative",
        quadrature_degree: int = 2,
        tangent: str = "consistent",
        group_size: int = 1,
        predictor: bool = True,
        rve_options: Mapping[str, Any] | None = None,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
        max_cuts: int = 6,
    ) -> None:
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {order!r}")
        if higher_order not in MACRO_HIGHER_ORDER:
            raise ValueError(
                f"higher_order must be one of {MACRO_HIGHER_ORDER}, got {higher_order!r}"
            )
        if macro.dim != 2:
            raise ValueError(f"second-order FE² is written for 2D macro meshes, got {macro.dim}D")
        self.order, self.higher_order = int(order), higher_order
        self._qdeg = int(quadrature_degree)
        self._micro_args = (cell, materials, tangent, int(group_size), predictor, rve_options)
        super().__init__(
            macro,
            bcs=[],
            dirichlet=dirichlet,
            degree=2,
            petsc_options_prefix=petsc_options_prefix,
            petsc_options=dict(petsc_options or {}),
            defaults=default_macro_options(),
            max_cuts=max_cuts,
        )
        self.result.info = {
            "order": self.order,
            "higher_order": self.higher_order,
            "macro_dofs": self.V.dofmap.index_map.size_global,
            "macro_gauss_points": self.comm.allreduce(self.rule.n_local, op=MPI.SUM),
            "rve_dofs": self.micro.rve.ndofs,
            "linear_micro": self.micro.linear,
            "ranks": self.comm.size,
        }

    # -- construction, in steps -------------------------------------------------------------------
    def _init_space(self) -> None:
        """The mixed space :math:`(u, F, \\Lambda)`: P2 vectors, P1 and P1 tensors."""
        mesh = self.macro.mesh
        cell = mesh.basix_cell()
        Pu = basix.ufl.element("Lagrange", cell, 2, shape=(2,))
        PF = basix.ufl.element("Lagrange", cell, 1, shape=(2, 2))
        self.V = dolfinx.fem.functionspace(mesh, basix.ufl.mixed_element([Pu, PF, PF]))
        self.u = dolfinx.fem.Function(self.V, name="strain_gradient_state")
        self.v = ufl.TestFunction(self.V)
        self.du = ufl.TrialFunction(self.V)

    def _init_micro(self) -> None:
        cell, materials, tangent, group_size, predictor, rve_options = self._micro_args
        self.pool = self._own(MicroPool(self.comm, group_size))
        self.rule = QuadratureRule(self.macro.mesh, self._qdeg)

        def cells() -> SecondOrderMicroModel:
            """A cell per point of this rank, with histories of their own."""
            options = {"predictor": predictor, "tangent": tangent, **dict(rve_options or {})}
            return self._own(
                SecondOrderMicroModel(self.pool, cell, materials, self.rule.n_local, **options)
            )

        self.micro = cells()
        if self.micro.n_general != 9:
            raise ValueError("second-order FE² needs a 2D cell")
        self._inertia = self.micro.rve.inertia
        #: the cells driven by the first-order solution (``"perturbative"`` only)
        self.corrector: SecondOrderMicroModel | None = None
        if self.order == 2 and self.higher_order == "perturbative":
            self.corrector = cells()
        n = self.rule.n_local
        self._volumes = self.rule.jacobian_weights().reshape(-1)  # what each point stands for
        #: committed (e, first-order s, second-order s) at the points, and the works so far
        self._path = {key: np.zeros((n, 9)) for key in ("e", "s1", "s2")}
        self._trial: dict[str, np.ndarray] = {}
        self._work = {"work": 0.0, "work_second_order": 0.0}
        self._init_coupling()

    def _init_constitutive(self) -> tuple[ufl.Form, ufl.Form]:
        """The internal forces and their Jacobian with the cells' responses as quadrature
        functions, and the multiplier terms of :math:`F = \\nabla u`."""
        self._init_micro()
        rule = self.rule
        self.stress = rule.function((9,), "generalized_stress")
        self.tangent_q = rule.function((9, 9), "generalized_tangent")
        u, F, Lam = ufl.split(self.u)
        v, G, M = ufl.split(self.v)
        du, dF, dLam = ufl.split(self.du)
        self._e_expr = rule.expression(_generalized(u, F))
        rule.coordinates()  # collective once: failure messages name the point later
        ev, dx = _generalized(v, G), ufl.dx(domain=self.macro.mesh)
        constraint = ufl.inner(Lam, ufl.grad(v) - G) + ufl.inner(M, ufl.grad(u) - F)
        internal = ufl.dot(self.stress, ev) * rule.dx + constraint * dx
        jacobian = (
            ufl.dot(ev, self.tangent_q * _generalized(du, dF)) * rule.dx
            + (ufl.inner(dLam, ufl.grad(v) - G) + ufl.inner(M, ufl.grad(du) - dF)) * dx
        )
        return internal, jacobian

    # -- micro evaluation -------------------------------------------------------------------------
    def on_iterate(self, x: PETSc.Vec) -> None:
        """Solve the cells at the iterate's generalized strains (or reuse the committed
        responses at the first iterate of a step) and fill the macro fields; raises on a failed
        point of this rank after the collectives every rank reaches."""
        if self._reuse_committed():
            return
        e = self.rule.evaluate(self._e_expr).reshape(-1, 9)
        if self._first_order_path:
            e[:, 3:] = 0.0  # first-order cells see the macro strain alone
        ev = self.micro.evaluate(e)
        self._assign_responses(self.macro_responses(e, ev))
        if ev.failures:
            more = f" (and {len(ev.failures) - 1} more)" if len(ev.failures) > 1 else ""
            x = self.rule.coordinates().reshape(-1, 2)
            first = ev.failures[0]
            where = (
                f"cell at the Gauss point {np.round(x[first.key], 6).tolist()}: "
                if self.pool.group_size == 1 and 0 <= first.key < len(x)
                else ""
            )
            raise MicroSolveError(f"{where}{first.message}{more}")

    @property
    def _first_order_path(self) -> bool:
        """The macro Newton iteration is first-order FE² (``order=1``, or perturbative)."""
        return self.order == 1 or self.higher_order == "perturbative"

    def macro_responses(
        self, e: np.ndarray, ev: SecondOrderEvaluation, *, second_order: bool | None = None
    ) -> MacroResponses:
        """The generalized stress and tangent the macro forms integrate (see the module),
        from the cells' responses ``ev`` at the generalized strains ``e`` (n, 9): first order
        (``second_order=False``, the default on a first-order path), the excess, or the cells'
        own (``higher_order="full"``)."""
        if second_order is None:
            second_order = not self._first_order_path
        stress = np.concatenate([ev.stress, ev.double_stress], axis=1)
        K = np.array(ev.tangent, dtype=float)  # a copy: linear phases share one tangent
        if not second_order:
            stress[:, 3:] = 0.0
            K[:, :3, 3:] = K[:, 3:, :] = 0.0
        elif self.higher_order != "full":
            Jc = inertia_correction(K[:, :3, :3], self._inertia)  # (n, 6, 6)
            stress[:, 3:] -= np.einsum("nab,nb->na", Jc, e[:, 3:])
            K[:, 3:, 3:] -= Jc
        return MacroResponses(stress, K, ev)

    def _assign_responses(self, responses: MacroResponses) -> None:
        self.rule.assign(self.stress, responses.stress)
        self.rule.assign(self.tangent_q, np.ascontiguousarray(responses.tangent))
        self._last = responses

    def _keep(self, responses: MacroResponses | None) -> MacroResponses | None:
        return None if responses is None else responses.copy()

    # -- the Steppable protocol -------------------------------------------------------------------
    def attempt(self) -> NewtonOutcome:
        """Newton at the current load; once it has converged, the second-order cells of the
        perturbative reading at the solution (collective: a failed cell on any rank fails the
        attempt on every rank, and the step is cut)."""
        outcome = super().attempt()
        if not outcome.converged:
            return outcome
        e = self.rule.evaluate(self._e_expr).reshape(-1, 9)
        self._trial = {"e": e, "s1": self._last.stress.copy(), "s2": self._last.stress.copy()}
        if self.corrector is None:
            return outcome
        error = None
        try:
            ev = self.corrector.evaluate(e)
            if ev.failures:
                error = f"second-order cell: {ev.failures[0].message}"
            self._trial["s2"] = self.macro_responses(e, ev, second_order=True).stress
        except Exception as err:
            error = f"second-order cell: {type(err).__name__}: {err}"
        message = agree(self.comm, error)
        if message is None:
            return outcome
        return NewtonOutcome(False, outcome.reason, outcome.iterations, outcome.residuals, message)

    def commit(self) -> None:
        """Commit the step (macro, the cells of the path and the second-order cells) and add
        its increments of work (trapezoidal in the load)."""
        super().commit()
        if self.corrector is not None:
            self.corrector.commit()
        de = self._trial["e"] - self._path["e"]
        for key, name in (("s1", "work"), ("s2", "work_second_order")):
            mean = 0.5 * (self._trial[key] + self._path[key])
            self._work[name] += float(self._volumes @ np.einsum("na,na->n", mean, de))
        self._path = self._trial
        self.pool.end_step()

    def rollback(self) -> None:
        super().rollback()
        if self.corrector is not None:
            self.corrector.rollback()

    def record(self, step: StepRecord) -> None:
        super().record(step)
        ev = self._last.evaluation if self._last is not None else None
        solves = self.micro.rve_solves + (self.corrector.rve_solves if self.corrector else 0)
        works = self.comm.allreduce(np.array(list(self._work.values())), op=MPI.SUM)
        step.quantities |= dict(zip(self._work, map(float, works), strict=True))
        step.quantities |= self._micro_quantities(ev, solves)
        log.debug(
            "second-order FE² step: factor %.4g, %d Newton its, %d cell solves, P %.6g",
            step.factor,
            step.iterations,
            step.quantities["rve_solves"],
            step.quantities["load_conjugate"],
        )


# -- a study: the laminated strip bent by its ends ------------------------------------------------
#: The models :func:`laminate_bending` compares.
BENDING_MODELS = ("dns", "first_order", "second_order")


@dataclass(frozen=True, slots=True)
class LaminateBending:
    r"""The work of the end moment of a laminated strip bent by its ends, after each load step.

    ``rotations`` holds the end rotation :math:`\kappa L` after each step, ``works`` the work
    :math:`W` of each model computed (``"dns"``: the trapezoidal sum of the resolved strip's load
    conjugate; ``"first_order"``, ``"second_order"``: the works of the FE² cells),
    ``max_mean_p`` the largest mean equivalent plastic strain of the first-order cells (zero for
    linear phases) and ``seconds`` the wall time of each model (max over ranks)."""

    periods: int
    factors: np.ndarray
    rotations: np.ndarray
    works: dict[str, np.ndarray]
    max_mean_p: np.ndarray | None
    seconds: dict[str, float]

    def errors(self) -> dict[str, np.ndarray]:
        """:math:`W/W_{DNS} - 1` of each FE² model after each step (needs ``"dns"``)."""
        ref = self.works["dns"]
        return {m: w / ref - 1.0 for m, w in self.works.items() if m != "dns"}


def _trapezoid(values: Sequence[float], factors: np.ndarray) -> np.ndarray:
    r""":math:`\sum_n \tfrac12 (P_n + P_{n-1})(\lambda_n - \lambda_{n-1})` after each step."""
    P = np.concatenate([[0.0], values])
    return np.cumsum(0.5 * (P[1:] + P[:-1]) * np.diff(np.concatenate([[0.0], factors])))


def laminate_bending(
    comm: MPI.Comm,
    laws: Mapping[str, Material],
    periods: int,
    factors: Sequence[float],
    *,
    stacking: str = "edges",
    outer_strain: float = 0.02,
    models: Sequence[str] = BENDING_MODELS,
) -> LaminateBending:
    r"""The laminated strip :math:`[0, 2H]\times[-H/2, H/2]` of ``periods`` :math:`= N` unit
    periods (layers along :math:`x`, ``stacking`` of
    :data:`~multiscale.fe2.second_order.STACKINGS`, phase laws ``laws`` of ``"stiff"`` and
    ``"soft"``), bent by its ends (:func:`~multiscale.fe2.second_order.strip_conditions`:
    :math:`u_x = \kappa x y` on :math:`x = 0, L`, the faces free) to the outer-fibre strain
    ``outer_strain`` at load factor 1 (:math:`\kappa = 2\,` ``outer_strain`` :math:`/H`),
    over the load ``factors``.  ``"dns"``: every layer meshed (P2, 16 elements per period along
    :math:`x`); ``"first_order"`` and ``"second_order"``: one perturbative
    :class:`SecondOrderFE2Problem` on :math:`4N\times 2N` crossed P2 triangles with a
    one-period cell at every quadrature point, whose first- and second-order works are both
    recorded.  Collective on ``comm``."""
    unknown = sorted(set(models) - set(BENDING_MODELS))
    if unknown or not models:
        raise ValueError(f"models must be among {BENDING_MODELS}, got {list(models)}")
    factors = np.asarray(factors, dtype=float)
    n = int(periods)
    H, L = float(n), 2.0 * n
    kappa = 2.0 * float(outer_strain) / H
    box = np.array([[0.0, -H / 2], [L, H / 2]])
    works: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    mean_p = None
    if "dns" in models:
        t0 = time.perf_counter()
        strip = layered_strip(comm, stacking, n, period=1.0, length=L, nx=16 * n)
        with DNSProblem(
            TiledMesh(strip, tag_box_sides(strip.mesh, box[0], box[1]), n),
            laws,
            bcs=[],
            dirichlet=lambda V: strip_conditions(V, box, "bending", kappa),
            degree=2,
        ) as dns:
            steps = dns.solve(factors).steps
        works["dns"] = _trapezoid([s.quantities["load_conjugate"] for s in steps], factors)
        seconds["dns"] = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    if {"first_order", "second_order"} & set(models):
        t0 = time.perf_counter()
        mesh = dolfinx.mesh.create_rectangle(
            comm, list(box), [4 * n, 2 * n], dolfinx.mesh.CellType.triangle
        )
        with SecondOrderFE2Problem(
            tag_box_sides(mesh, box[0], box[1]),
            lambda c: layered_strip(c, stacking, 1, period=1.0, length=1.0, nx=2),
            laws,
            dirichlet=lambda W: strip_conditions(W.sub(0), box, "bending", kappa),
        ) as problem:
            steps = problem.solve(factors).steps
        for model, key in (("first_order", "work"), ("second_order", "work_second_order")):
            if model in models:
                works[model] = np.array([s.quantities[key] for s in steps])
        mean_p = np.array([s.quantities["max_mean_p"] for s in steps])
        seconds["fe2"] = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    return LaminateBending(n, factors, kappa * L * factors, works, mean_p, seconds)
