"""FE²: a macro finite-element problem whose stress at every quadrature point comes from an RVE.

The macro problem (small strain, 2D plane strain or 3D; or finite strain) seeks :math:`u` with

.. math::
    \\int_\\Omega \\bar q(\\bar g(u)) : \\nabla v\\,dx
    = \\lambda \\int_{\\Gamma_N} \\bar t\\cdot v\\,ds
    \\quad \\forall v, \\qquad u = \\lambda\\,\\bar u \\text{ on } \\Gamma_D,

where :math:`\\bar g = \\varepsilon(u)` (or :math:`F = I + \\nabla u`) and :math:`\\bar q` (Cauchy
or first Piola stress) is, at each quadrature point, the homogenized response of an RVE solved
for that :math:`\\bar g` with the point's own history.  The macro Newton iteration (the
package's :class:`~multiscale.nonlinear.NewtonSolver`, options under ``multiscale_fe2_<n>_``)
uses the macro tangent :math:`\\partial\\bar q/\\partial\\bar g` from the RVEs: *consistent*
(quadratic convergence) or *Taylor* :math:`\\langle\\mathbb C\\rangle` (linear convergence, the
same answer).  Stress and tangent live in quadrature spaces of the macro rule; the macro forms are
compiled once.

Each Newton iterate: (1) evaluate :math:`\\bar g` at the owned points (one compiled expression),
(2) solve the RVEs of the owned points through the :class:`MicroPool` (no communication between
ranks for groups of one), (3) agree on failures over the ranks, in the one collective of the
Newton solver, (4) write stress and tangent into the quadrature functions and assemble.  A micro
failure of any kind on any rank (Newton, :math:`\\det F \\le 0`, a non-finite strain) fails the
iterate on every rank, and the :class:`~multiscale.nonlinear.LoadStepper` cuts the step.

Dynamic load balancing (``balance``, a threshold such as 1.2; groups of one rank): the micro
cost of every point (its micro Newton iterations) is summed over each load step, and when
the step's imbalance :math:`\\max_r C_r / \\operatorname{mean}_r C_r` of the per-rank costs
exceeds the threshold, the points are reassigned to ranks by cost, independently of the macro
partition (:class:`~multiscale.coupling.pool.MicroPool`); a migrated point's inputs and history
travel to the rank that solves it and the results back to its owner, so the answer and the
checkpoints do not change.  Each step records its imbalance (``micro_imbalance``, of the
micro iterations, and ``micro_seconds_imbalance``).

No micro work is repeated: the first iterate of a load step is the committed displacement, whose
stresses and tangents are those of the last iterate of the previous step, so they are reused
instead of solving every RVE again; and each RVE starts from the first-order predictor of its
last fluctuation (:meth:`~multiscale.cell.rve.RVEProblem.predict`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.coupling.concurrent import ConcurrentCoupling
from multiscale.coupling.multifield import macro_parameters
from multiscale.coupling.pool import MicroFailure, MicroPool, MicroSolveError
from multiscale.coupling.quadrature import QuadratureRule
from multiscale.coupling.solid import (
    DisplacementBC,
    SolidProblem,
    SolidResult,
    Traction,
    default_macro_options,
)
from multiscale.mesh.macro import MacroMesh
from multiscale.nonlinear import CollectiveError, StepRecord
from multiscale.physics.base import Material

from .micro import CellSource, MicroEvaluation, MicroModel
from .surrogate import SurrogateMicroModel, SurrogateOptions

__all__ = ["DisplacementBC", "FE2Problem", "FE2Result", "Traction", "default_macro_options"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FE2Result(SolidResult):
    """:class:`~multiscale.coupling.solid.SolidResult` with the micro statistics: RVE solves
    and seconds per rank, load imbalance (:class:`~multiscale.coupling.pool.PoolStatistics`)."""

    micro: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**SolidResult.to_dict(self), "micro": self.micro}


class FE2Problem(ConcurrentCoupling, SolidProblem):
    """A macro boundary-value problem with an RVE at every quadrature point.

    Parameters
    ----------
    macro:
        The macro mesh with named boundaries.
    cell:
        The RVE (see :class:`~multiscale.fe2.micro.MicroModel`): a ``.msh`` path, or a callable
        building a :class:`~multiscale.mesh.cell.CellMesh` on a given communicator.
    materials:
        Phase name or tag -> micro law; kind ``"strain"`` gives a small-strain macro problem,
        ``"deformation"`` a finite-strain one.
    bcs, tractions:
        Boundary conditions at load factor 1.
    degree, quadrature_degree:
        Macro Lagrange degree and quadrature degree (default ``max(1, 2 (degree - 1))``: one
        point per triangle for P1, three for P2).
    tangent:
        ``"consistent"`` or ``"taylor"`` (macro Newton tangent, passed to the RVEs).
    group_size:
        Ranks per RVE (see :class:`MicroPool`); 1 solves each RVE on ``MPI.COMM_SELF``.
    balance:
        Dynamic load balancing of the RVEs over the ranks (see the module): the imbalance of a
        load step above which the points are reassigned, e.g. 1.2; ``None`` (the default) keeps
        every point on its owner.  Only with ``group_size`` 1 (larger groups keep the static
        assignment).
    predictor:
        Start the micro Newton iterations from the first-order predictor (see
        :class:`~multiscale.fe2.micro.MicroModel`).
    petsc_options_prefix, petsc_options:
        Prefix (default ``multiscale_fe2_<n>_``) and overrides of
        :func:`default_macro_options`.
    rve_options:
        Keyword arguments of :class:`~multiscale.cell.rve.RVEProblem` (``degree``,
        ``petsc_options``, ...).
    max_cuts:
        How often a load step may be halved before the solve gives up.
    surrogate:
        Hierarchical FE² (:mod:`~multiscale.fe2.surrogate`): a :class:`SurrogateOptions` (or its
        fields as a mapping) replaces the RVE at every point by a surrogate fitted to an
        offline database, with online error control; history-free finite-strain phases,
        ``group_size`` 1, no balancing.  ``None`` (the default): an RVE solve at every point.
    parameters:
        Macro fields of the phase laws' parameters at load factor 1, scaled with the load
        factor like the boundary values: for thermoelastic phases
        (:class:`~multiscale.physics.coupled.ThermoElastic`) the temperature change,
        ``{"theta": 40.0}`` or ``{"theta": f}`` with ``f(x)`` of the coordinates ``x``
        (shape ``(d, n)``) returning ``n`` values.  A parameter not given is zero.

    Collective on ``macro.mesh.comm``.  Frees its PETSc objects in :meth:`destroy` (also on
    leaving a ``with`` block).
    """

    role = "fe2"
    newton_name = "macro Newton"
    result_type = FE2Result

    def __init__(
        self,
        macro: MacroMesh,
        cell: CellSource,
        materials: Mapping[str | int, Material],
        *,
        bcs: Sequence[DisplacementBC],
        tractions: Sequence[Traction] = (),
        degree: int = 1,
        quadrature_degree: int | None = None,
        tangent: str = "consistent",
        group_size: int = 1,
        balance: float | None = None,
        predictor: bool = True,
        petsc_options_prefix: str | None = None,
        petsc_options: Mapping[str, Any] | None = None,
        rve_options: Mapping[str, Any] | None = None,
        max_cuts: int = 6,
        surrogate: SurrogateOptions | Mapping[str, Any] | None = None,
        parameters: Mapping[str, float | Callable[[np.ndarray], np.ndarray]] | None = None,
    ) -> None:
        self._parameter_specs = dict(parameters or {})
        self._micro_args = (cell, materials, tangent, int(group_size), predictor, rve_options)
        if surrogate is not None and not isinstance(surrogate, SurrogateOptions):
            surrogate = SurrogateOptions.from_mapping(surrogate)
        self._surrogate = surrogate
        self._balance = None if balance is None else float(balance)
        qdeg = quadrature_degree if quadrature_degree is not None else max(1, 2 * (degree - 1))
        self._qdeg = int(qdeg)
        self.tangent = tangent
        self.micro_seconds = dict.fromkeys(("newton", "tangent", "averages", "total"), 0.0)
        super().__init__(
            macro,
            bcs=bcs,
            tractions=tractions,
            degree=degree,
            petsc_options_prefix=petsc_options_prefix,
            petsc_options=dict(petsc_options or {}),
            defaults=default_macro_options(),
            max_cuts=max_cuts,
        )
        self._info(degree, tangent)

    # -- construction, in steps -------------------------------------------------------------------
    def _init_constitutive(self) -> tuple[ufl.Form, ufl.Form]:
        cell, materials, tangent, group_size, predictor, rve_options = self._micro_args
        d = self.dim
        self.pool = self._own(MicroPool(self.comm, group_size, balance=self._balance))
        self.rule = QuadratureRule(self.macro.mesh, self._qdeg)
        rve_kwargs = {**dict(rve_options or {}), "tangent": tangent}
        if self._surrogate is not None:
            micro: MicroModel = SurrogateMicroModel(
                self.pool,
                cell,
                materials,
                self.rule.n_local,
                self._surrogate,
                predictor=predictor,
                **rve_kwargs,
            )
        else:
            micro = MicroModel(
                self.pool, cell, materials, self.rule.n_local, predictor=predictor, **rve_kwargs
            )
        self.micro = self._own(micro)
        self._init_parameters()
        self.kind = self.micro.kind
        if self.micro.dim != d:
            raise ValueError(f"a {self.micro.dim}D RVE cannot serve a {d}D macro problem")
        self.flux = self.rule.function((d, d), "stress")
        self.tangent_q = self.rule.function((d, d, d, d), "tangent")
        self.mean_p = self.rule.function((), "equivalent_plastic_strain")
        u = self.u
        g = ufl.sym(ufl.grad(u)) if self.kind == "strain" else ufl.Identity(d) + ufl.grad(u)
        self._g_expr = self.rule.expression(g)
        self.rule.coordinates()  # collective once: failure messages name the point later
        self._init_coupling()
        i, j, k, m = ufl.indices(4)
        dx = self.rule.dx
        internal = ufl.inner(self.flux, ufl.grad(self.v)) * dx
        Dgrad = ufl.as_tensor(self.tangent_q[i, j, k, m] * ufl.grad(self.du)[k, m], (i, j))
        return internal, ufl.inner(Dgrad, ufl.grad(self.v)) * dx

    def _init_parameters(self) -> None:
        """The parameter values at the owned Gauss points at load factor 1 (``None`` when the
        laws take none), and whether they load the RVEs."""
        values = macro_parameters(self.rule, self.micro.parameters, self._parameter_specs)
        self._parameters = values if self.micro.parameters else None
        # the parameters load the RVEs at every load factor
        self.micro_loaded = bool(self.comm.allreduce(bool(np.any(values)), op=MPI.LOR))

    def _info(self, degree: int, tangent: str) -> None:
        self.result.info = {
            "dim": self.dim,
            "kinematics": "small strain" if self.kind == "strain" else "finite strain",
            "macro_degree": degree,
            "quadrature_degree": self._qdeg,
            "macro_gauss_points": self.comm.allreduce(self.rule.n_local, op=MPI.SUM),
            "macro_dofs": self.V.dofmap.index_map.size_global * self.dim,
            "rve_dofs": self.micro.rve.ndofs,
            "tangent": tangent,
            "ranks": self.comm.size,
            "group_size": self.pool.group_size,
            "balance": self.pool.balance,
            "linear_micro": self.micro.linear,
            "predictor": self.micro.predictor,
            "surrogate": self._surrogate is not None,
            "parameters": list(self.micro.parameters),
        }
        log.info(
            "FE²: %d macro dofs, %d Gauss points, RVE with %d dofs, %s tangent, %d rank(s)",
            self.result.info["macro_dofs"],
            self.result.info["macro_gauss_points"],
            self.micro.rve.ndofs,
            tangent,
            self.comm.size,
        )

    # -- micro evaluation -------------------------------------------------------------------------
    def on_iterate(self, x: PETSc.Vec) -> None:
        """Solve the RVEs at the iterate (or reuse the committed responses at the first iterate
        of a step) and fill stress and tangent; raises on a failure of any of this rank's
        points (the Newton solver makes it every rank's failure) only after the collectives
        every rank reaches (the RVE group's, the quadrature functions' ghost update): a
        non-finite or inverted strain fails its point inside the RVE solve, and failed points
        are written as NaN."""
        if self._reuse_committed():
            return
        d = self.dim
        G = self.rule.evaluate(self._g_expr).reshape(-1, d, d)
        t0 = time.perf_counter()
        if self._parameters is None:
            ev = self.micro.evaluate(G)
        else:
            ev = self.micro.evaluate(G, self.factor * self._parameters)
        self.micro_seconds["total"] += time.perf_counter() - t0
        for key in ("newton", "tangent", "averages"):
            self.micro_seconds[key] += ev.seconds.get(key, 0.0)
        self._assign_responses(ev)
        if ev.failures:
            more = f" (and {len(ev.failures) - 1} more)" if len(ev.failures) > 1 else ""
            raise MicroSolveError(self._locate(ev.failures[0]) + more)

    def _assign_responses(self, ev: MicroEvaluation) -> None:
        self.rule.assign(self.flux, ev.flux)
        self.rule.assign(self.tangent_q, np.ascontiguousarray(ev.tangent))
        self.rule.assign(self.mean_p, ev.mean_p)
        self._last = ev

    def _locate(self, failure: MicroFailure) -> str:
        """The failure with the macro coordinates of its point (this rank's points)."""
        if self.pool.group_size != 1 or not 0 <= failure.key < self.rule.n_local:
            return str(failure)
        x = self.rule.coordinates().reshape(-1, self.dim)[failure.key]
        return f"RVE at the Gauss point {np.round(x, 6).tolist()}: {failure.message}"

    # -- the Steppable protocol -------------------------------------------------------------------
    def _keep(self, ev: MicroEvaluation | None) -> MicroEvaluation | None:
        return _copy(ev)

    def commit(self) -> None:
        """Commit the step (macro and micro), then close it in the pool: its micro imbalance,
        and with balancing a new assignment of the points if it was above the threshold
        (collective)."""
        super().commit()
        self._step_balance = self.pool.end_step()

    def record(self, step: StepRecord) -> None:
        super().record(step)
        balance = getattr(self, "_step_balance", {})
        step.quantities |= self._micro_quantities(self._last, self.micro.rve_solves) | {
            "micro_imbalance": float(balance.get("imbalance", 1.0)),
            "micro_seconds_imbalance": float(balance.get("seconds_imbalance", 1.0)),
        }
        log.debug(
            "step %d: factor %.4g, %d Newton its (residual %.2e), %d RVE solves, reaction %.5g, "
            "max <p> %.3g, HM %.1e, %.2f s",
            len(self.stepper.steps) + 1,
            step.factor,
            step.iterations,
            step.residuals[-1] if step.residuals else 0.0,
            step.quantities["rve_solves"],
            step.reactions[self.result.load_boundary][self.result.load_component],
            step.quantities["max_mean_p"],
            step.quantities["max_hill_mandel"],
            step.seconds,
        )

    def solve(self, factors: Sequence[float]) -> FE2Result:
        """Follow the load factors (see :meth:`SolidProblem.solve`); the micro statistics and
        timings are gathered into :attr:`result` also when a step fails."""
        try:
            super().solve(factors)
        except CollectiveError:
            self._statistics()
            raise
        self._statistics()
        return self.result

    # -- restart ----------------------------------------------------------------------------------
    def restore_micro(
        self,
        committed: Mapping[str, np.ndarray],
        responses: MicroEvaluation | None,
        counters: Mapping[str, int],
    ) -> None:
        """Continue from a checkpoint (local): the committed micro history of this rank's
        points (rows in the order of :attr:`rule`, cells x points; none for linear phases), the
        committed responses the first iterate of the next step reuses, and the run's
        ``counters`` so far (``solves_total``, ``macro_iterations``), which the statistics of
        this run add to.  Needs ``group_size`` 1."""
        if self.pool.group_size != 1:
            raise ValueError("restoring FE² micro states needs micro.group_size 1")
        for key, value in committed.items():
            np.copyto(self.micro.committed[key], value)
        self.micro.rollback()  # the trial state starts from the committed one
        if responses is not None:
            self._assign_responses(responses)
            self._cache = _copy(responses)
        self._counters = {k: int(v) for k, v in counters.items()}

    def counters(self) -> dict[str, int]:
        """RVE solves and macro Newton iterations of the whole run so far, over all ranks
        (collective): what a checkpoint carries to the restarted run."""
        base = getattr(self, "_counters", {})
        solves = self.micro.rve_solves if self.pool.micro_comm.rank == 0 else 0
        return {
            "solves_total": base.get("solves_total", 0) + self.comm.allreduce(solves, op=MPI.SUM),
            "macro_iterations": base.get("macro_iterations", 0) + self.newton.counts["jacobians"],
        }

    def _statistics(self) -> None:
        """Micro counts, times and imbalance, and the time split (collective)."""
        stats = self.pool.statistics()
        self.pool.log_statistics("FE² RVE solves in the pool", stats)
        self.result.micro = stats.to_dict()
        # every RVE solve, the one of linear phases (outside the pool) included
        solves = self.micro.rve_solves if self.pool.micro_comm.rank == 0 else 0
        self.result.micro["solves_total"] = self.comm.allreduce(solves, op=MPI.SUM)
        base = getattr(self, "_counters", {})  # the run before a restart
        self.result.micro["solves_total"] += base.get("solves_total", 0)
        log.info(
            "FE² RVE solves in all: %d (one-time solves of linear phases and earlier runs "
            "included)",
            self.result.micro["solves_total"],
        )
        if isinstance(self.micro, SurrogateMicroModel):
            self.result.micro["surrogate"] = self.micro.statistics()
        t = dict(self.newton.timings)
        local = {
            "micro": self.micro_seconds["total"],
            "micro_newton": self.micro_seconds["newton"],
            "micro_tangent": self.micro_seconds["tangent"],
            "micro_averages": self.micro_seconds["averages"],
            "failure_agreement": t["agree"],
            "macro_assembly": t["residual"] + t["jacobian"],
            "macro_solve": t["solve"] - t["evaluate"] - t["agree"] - t["residual"] - t["jacobian"],
        }
        timings = {k: self.comm.allreduce(v, op=MPI.MAX) for k, v in local.items()}
        timings["solve"] = self.result.timings.get("solve", 0.0)
        self.result.timings = timings
        self.result.info["macro_iterations"] = self.newton.counts["jacobians"] + base.get(
            "macro_iterations", 0
        )


def _copy(ev: MicroEvaluation | None) -> MicroEvaluation | None:
    if ev is None:
        return None
    return MicroEvaluation(
        flux=ev.flux.copy(),
        tangent=np.array(ev.tangent),
        hill_mandel=ev.hill_mandel.copy(),
        iterations=ev.iterations.copy(),
        mean_p=ev.mean_p.copy(),
    )
