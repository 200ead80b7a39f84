"""FE²: a macro finite-element problem whose stress at every quadrature point comes from an RVE.

The macro problem (small strain, 2D plane strain or 3D; or finite strain) seeks :math:`u` with

.. math::
    \\int_\\Omega \\bar q(\\bar g(u)) : \\nabla v\\,dx
    = \\lambda \\int_{\\Gamma_N} \\bar t\\cdot v\\,ds
    \\quad\\forall v, \\qquad u = \\lambda\\,\\bar u \\text{ on } \\Gamma_D,

where :math:`\\bar g = \\varepsilon(u)` (or :math:`F = I + \\nabla u`) and :math:`\\bar q` (Cauchy
or first Piola stress) is, at each quadrature point, the homogenized response of an RVE solved
for that :math:`\\bar g` with the point's own history.  Macro Newton (PETSc SNES, options under
``multiscale_fe2_``) uses the macro tangent :math:`\\partial\\bar q/\\partial\\bar g` from the
RVEs: *consistent* (quadratic convergence) or *Taylor* :math:`\\langle\\mathbb C\\rangle`.  Stress
and tangent live in quadrature spaces of the macro rule; the macro forms are compiled once.

Each SNES residual evaluation: (1) evaluate :math:`\\bar g` at the owned points (one compiled
expression), (2) solve the RVEs of the owned points through the :class:`MicroPool` (no
communication between ranks for groups of one), (3) reduce a failure flag over ranks, (4) write
stress and tangent into the quadrature functions and assemble.  A micro failure on any rank
makes the residual NaN on all ranks, so SNES stops everywhere at once.

Load stepping: the load factor :math:`\\lambda` follows the given list of factors; a step whose
macro or micro Newton fails is cut in half (the trial history is dropped) up to ``max_cuts``
times, then the solve stops with an error naming the cause.  History is committed only after a
converged step.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dolfinx
import dolfinx.fem.petsc
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from multiscale.coupling.pool import MicroPool
from multiscale.coupling.quadrature import QuadratureRule
from multiscale.mesh.macro import MacroMesh
from multiscale.petsc_options import prefixed_options
from multiscale.physics.base import Material

from .boundary import (
    DisplacementBC,
    LoadedBoundaries,
    Traction,
    assemble_newton_jacobian,
    assemble_newton_residual,
)
from .micro import CellSource, MicroModel

__all__ = ["DisplacementBC", "FE2Problem", "FE2Result", "StepRecord", "Traction"]

log = logging.getLogger(__name__)

_instances = itertools.count()


@dataclass(slots=True)
class StepRecord:
    """One converged load step (identical on all ranks)."""

    factor: float
    displacement: float
    reaction: float
    reactions: list[list[float]]
    newton_iterations: int
    residuals: list[float]
    cuts: int
    rve_solves: int
    max_hill_mandel: float
    max_mean_p: float
    seconds: float


@dataclass(slots=True)
class FE2Result:
    """The load–displacement curve, Newton histories and micro statistics of a run."""

    steps: list[StepRecord] = field(default_factory=list)
    failed_attempts: list[dict[str, Any]] = field(default_factory=list)
    micro: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def curve(self) -> np.ndarray:
        """Columns: load factor, prescribed displacement and reaction of the loading boundary."""
        return np.array([[s.factor, s.displacement, s.reaction] for s in self.steps])

    def to_dict(self) -> dict[str, Any]:
        return {
            "info": self.info,
            "load_displacement": [
                {
                    "factor": s.factor,
                    "displacement": s.displacement,
                    "reaction": s.reaction,
                    "reactions_per_boundary": s.reactions,
                }
                for s in self.steps
            ],
            "newton": [
                {
                    "factor": s.factor,
                    "iterations": s.newton_iterations,
                    "residuals": s.residuals,
                    "cuts": s.cuts,
                    "rve_solves": s.rve_solves,
                    "max_hill_mandel": s.max_hill_mandel,
                    "max_mean_equivalent_plastic_strain": s.max_mean_p,
                    "seconds": s.seconds,
                }
                for s in self.steps
            ],
            "failed_attempts": self.failed_attempts,
            "micro": self.micro,
            "timings": self.timings,
        }


def default_macro_options() -> dict[str, Any]:
    """Newton with full steps; MUMPS LU for the macro linear systems."""
    return {
        "snes_type": "newtonls",
        "snes_linesearch_type": "basic",
        "snes_rtol": 1.0e-9,
        "snes_atol": 1.0e-11,
        "snes_stol": 0.0,
        "snes_max_it": 20,
        "ksp_type": "preonly",
        "pc_type": "lu",
        "pc_factor_mat_solver_type": "mumps",
    }


class FE2Problem:
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
    petsc_options:
        Overrides of :func:`default_macro_options` (prefix ``multiscale_fe2_<n>_``).
    rve_options:
        Keyword arguments of :class:`~multiscale.cell.rve.RVEProblem` (``degree``,
        ``petsc_options``, ``step_tolerance``, ...).
    max_cuts:
        How often a load step may be halved before the solve gives up.

    Collective on ``macro.mesh.comm``.  Call :meth:`destroy` when done.
    """

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
        petsc_options: Mapping[str, Any] | None = None,
        rve_options: Mapping[str, Any] | None = None,
        max_cuts: int = 6,
    ) -> None:
        self.macro = macro
        mesh = macro.mesh
        self.comm: MPI.Comm = mesh.comm
        self.dim = d = mesh.geometry.dim
        self.max_cuts = int(max_cuts)
        if not bcs:
            raise ValueError("FE² needs at least one displacement boundary condition")
        self.bc_specs = list(bcs)
        #: the displacement condition whose reaction makes the load–displacement curve: the
        #: first one with a non-zero value
        self.load_bc = next(
            (i for i, b in enumerate(self.bc_specs) if np.any(np.asarray(b.value) != 0.0)), 0
        )
        self.traction_specs = list(tractions)
        self.pool = MicroPool(self.comm, group_size)
        qdeg = quadrature_degree if quadrature_degree is not None else max(1, 2 * (degree - 1))
        self.rule = QuadratureRule(mesh, qdeg)
        rve_kwargs = dict(rve_options or {})
        rve_kwargs["tangent"] = tangent
        self.tangent = tangent
        self.micro = MicroModel(self.pool, cell, materials, self.rule.n_local, **rve_kwargs)
        self.kind = self.micro.kind
        if self.micro.dim != d:
            raise ValueError(f"a {self.micro.dim}D RVE cannot serve a {d}D macro problem")

        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", degree, (d,)))
        self.u = dolfinx.fem.Function(self.V, name="displacement")
        self.flux = self.rule.function((d, d), "stress")
        self.tangent_q = self.rule.function((d, d, d, d), "tangent")
        self.mean_p = self.rule.function((), "equivalent_plastic_strain")
        v = ufl.TestFunction(self.V)
        du = ufl.TrialFunction(self.V)
        if self.kind == "strain":
            g = ufl.sym(ufl.grad(self.u))
        else:
            g = ufl.Identity(d) + ufl.grad(self.u)
        self._g_expr = self.rule.expression(g)
        self._load = dolfinx.fem.Constant(mesh, 0.0)
        i, j, k, m = ufl.indices(4)
        dx = self.rule.dx
        residual = ufl.inner(self.flux, ufl.grad(v)) * dx
        ds = ufl.Measure("ds", domain=mesh, subdomain_data=macro.facet_tags)
        for t in self.traction_specs:
            tv = np.asarray(t.value)
            if tv.size != d:
                raise ValueError(f"traction on {t.boundary!r} needs {d} components")
            tag = macro.boundaries.get(t.boundary)
            if tag is None:
                raise ValueError(
                    f"unknown boundary {t.boundary!r}; have {sorted(macro.boundaries)}"
                )
            residual -= self._load * ufl.dot(ufl.as_vector(tv.tolist()), v) * ds(tag)
        self._F_internal = dolfinx.fem.form(ufl.inner(self.flux, ufl.grad(v)) * dx)
        self._F = dolfinx.fem.form(residual)
        Dgrad = ufl.as_tensor(self.tangent_q[i, j, k, m] * ufl.grad(du)[k, m], (i, j))
        self._J = dolfinx.fem.form(ufl.inner(Dgrad, ufl.grad(v)) * dx)

        # Dirichlet conditions whose values follow the load factor
        self.loads = LoadedBoundaries(self.V, macro, self.bc_specs)
        self.bcs = self.loads.bcs

        # PETSc objects
        self.prefix = f"multiscale_fe2_{next(_instances)}_"
        options = default_macro_options()
        options.update(dict(petsc_options or {}))
        self.petsc_options = options
        self._A = dolfinx.fem.petsc.create_matrix(self._J)
        self._b = dolfinx.fem.petsc.assemble_vector(self._F)
        self._x = self.u.x.petsc_vec.duplicate()
        self._r = self._b.duplicate()
        self.snes = PETSc.SNES().create(self.comm)
        self.snes.setOptionsPrefix(self.prefix)
        self.snes.setFunction(self._residual, self._b)
        self.snes.setJacobian(self._jacobian, self._A)
        with prefixed_options(self.prefix, options):
            self.snes.setFromOptions()
            self.snes.getKSP().setFromOptions()
        self._residuals: list[float] = []
        self.snes.setMonitor(lambda snes, it, fnorm: self._residuals.append(float(fnorm)))

        self._failure: list[str] = []
        self._last_eval = None
        self.timings = {
            "micro_newton": 0.0,
            "micro_tangent": 0.0,
            "micro_averages": 0.0,
            "micro_total": 0.0,
            "macro_assembly": 0.0,
            "macro_solve": 0.0,
            "communication": 0.0,
        }
        self.macro_iterations = 0
        self.result = FE2Result()
        self.factor = 0.0
        self.output: Callable[[FE2Problem, StepRecord], None] | None = None
        self.result.info = {
            "dim": d,
            "kinematics": "small strain" if self.kind == "strain" else "finite strain",
            "macro_degree": degree,
            "quadrature_degree": qdeg,
            "macro_gauss_points": self.comm.allreduce(self.rule.n_local, op=MPI.SUM),
            "macro_dofs": self.V.dofmap.index_map.size_global * d,
            "rve_dofs": self.micro.rve.ndofs,
            "tangent": tangent,
            "ranks": self.comm.size,
            "group_size": group_size,
            "linear_micro": self.micro.linear,
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
    def _evaluate_micro(self) -> bool:
        """Solve the RVEs at the current ``u``; fill stress and tangent.  Collective; returns
        whether every RVE converged on every rank."""
        d = self.dim
        G = self.rule.evaluate(self._g_expr).reshape(-1, d, d)
        t0 = time.perf_counter()
        bad_input = not np.all(np.isfinite(G))
        if bad_input:
            ev = None
            failures = [f"rank {self.comm.rank}: non-finite macro strain at a Gauss point"]
        else:
            ev = self.micro.evaluate(G)
            failures = list(ev.failures)
        t1 = time.perf_counter()
        all_failures = self.comm.allreduce(failures, op=MPI.SUM)
        t2 = time.perf_counter()
        self.timings["micro_total"] += t1 - t0
        self.timings["communication"] += t2 - t1
        if ev is not None:
            self.timings["micro_newton"] += ev.seconds.get("newton", 0.0)
            self.timings["micro_tangent"] += ev.seconds.get("tangent", 0.0)
            self.timings["micro_averages"] += ev.seconds.get("averages", 0.0)
        if all_failures:
            self._failure = all_failures
            return False
        assert ev is not None
        self.rule.assign(self.flux, ev.flux)
        self.rule.assign(self.tangent_q, np.ascontiguousarray(ev.tangent))
        self.rule.assign(self.mean_p, ev.mean_p)
        self._last_eval = ev
        return True

    # -- SNES callbacks ---------------------------------------------------------------------------
    def _residual(self, snes: PETSc.SNES, x: PETSc.Vec, b: PETSc.Vec) -> None:
        x.copy(self.u.x.petsc_vec)
        self.u.x.scatter_forward()
        if not self._evaluate_micro():
            b.set(np.nan)
            return
        t0 = time.perf_counter()
        assemble_newton_residual(b, self._F, self._J, self.bcs, self.u, x)
        self.timings["macro_assembly"] += time.perf_counter() - t0

    def _jacobian(self, snes: PETSc.SNES, x: PETSc.Vec, A: PETSc.Mat, P: PETSc.Mat) -> None:
        t0 = time.perf_counter()
        assemble_newton_jacobian(A, self._J, self.bcs)
        self.timings["macro_assembly"] += time.perf_counter() - t0
        self.macro_iterations += 1

    # -- load stepping ----------------------------------------------------------------------------
    def set_load(self, factor: float) -> None:
        """Boundary values and tractions at load factor ``factor``."""
        self.factor = float(factor)
        self._load.value = self.factor
        self.loads.set_factor(self.factor)

    def reactions(self) -> list[np.ndarray]:
        """Reaction force (d components) on each displacement boundary at the current state:
        the sum of the internal-force residual over that boundary's constrained dofs."""
        r = self._r
        with r.localForm() as r_local:
            r_local.set(0.0)
        dolfinx.fem.petsc.assemble_vector(r, self._F_internal)
        r.ghostUpdate(addv=PETSc.InsertMode.ADD_VALUES, mode=PETSc.ScatterMode.REVERSE)
        sums = self.loads.reactions(r)
        out = []
        for spec, row in zip(self.bc_specs, sums, strict=True):
            if spec.component is not None:  # only the constrained component is a reaction
                row = np.where(np.arange(self.dim) == spec.component, row, 0.0)
            out.append(row)
        return out

    def _attempt(self, factor: float) -> bool:
        """One macro Newton solve at ``factor`` from the committed state; True if converged."""
        self.set_load(factor)
        self.u.x.petsc_vec.copy(self._x)
        self._failure = []
        self._residuals = []
        t0 = time.perf_counter()
        self.snes.solve(None, self._x)
        self.timings["macro_solve"] += time.perf_counter() - t0
        reason = self.snes.getConvergedReason()
        return reason > 0 and not self._failure

    def solve(self, factors: Sequence[float]) -> FE2Result:
        """Follow the load factors ``factors`` (e.g. ``np.linspace(0, 1, 11)[1:]``), cutting a
        failing step in half up to ``max_cuts`` times.  Collective.  Returns the result (the
        same object as :attr:`result`, extended by each call)."""
        factors = [float(f) for f in factors]
        if not factors or not np.all(np.isfinite(factors)):
            raise ValueError(f"load factors must be a non-empty list of finite numbers: {factors}")
        u_committed = self.u.x.petsc_vec.copy()
        try:
            for target in factors:
                self._follow(target, u_committed)
        finally:
            u_committed.destroy()
        stats = self.pool.statistics()
        self.pool.log_statistics("FE² RVE solves", stats)
        self.result.micro = stats.to_dict()
        self.result.micro["rve_solves_total"] = self.comm.allreduce(
            self.micro.rve_solves if self.pool.micro_comm.rank == 0 else 0, op=MPI.SUM
        )
        self.result.timings = {
            k: self.comm.allreduce(v, op=MPI.MAX) for k, v in self.timings.items()
        }
        self.result.timings["macro_iterations"] = self.macro_iterations
        return self.result

    def _follow(self, target: float, u_committed: PETSc.Vec) -> None:
        """Reach load factor ``target`` from the current one, in sub-steps where needed."""
        start = self.factor
        step = target - start
        tol = 1e-12 * max(1.0, abs(target))
        cuts = 0
        successes = 0
        while abs(target - start) > tol:
            remaining = target - start
            step_now = step if abs(step) < abs(remaining) else remaining
            trial = start + step_now
            t0 = time.perf_counter()
            solves0 = self.micro.rve_solves
            if self._attempt(trial):
                self._x.copy(self.u.x.petsc_vec)
                self.u.x.scatter_forward()
                self.micro.commit()
                self.u.x.petsc_vec.copy(u_committed)
                record = self._record(trial, cuts, time.perf_counter() - t0, solves0)
                if self.output is not None:
                    self.output(self, record)
                start = trial
                successes += 1
                if cuts and successes % 2 == 0:
                    step *= 2.0  # grow back after two converged sub-steps
                continue
            reason = self.snes.getConvergedReason()
            if self._failure:
                more = len(self._failure) - 1
                cause = self._failure[0] + (f" (and {more} more)" if more else "")
            else:
                cause = f"macro Newton did not converge (SNES reason {reason})"
            self.result.failed_attempts.append(
                {"from": start, "to": trial, "cause": cause, "residuals": list(self._residuals)}
            )
            self.micro.rollback()
            u_committed.copy(self.u.x.petsc_vec)
            self.u.x.scatter_forward()
            self.factor = start
            cuts += 1
            successes = 0
            if cuts > self.max_cuts:
                raise RuntimeError(
                    f"FE² load step from factor {start:g} towards {target:g} failed after "
                    f"{self.max_cuts} cuts (last step {step_now:g}): {cause}"
                )
            step = 0.5 * step_now
            log.warning(
                "step to factor %.4g failed (%s); retrying with step %.4g", trial, cause, step
            )

    def _record(self, factor: float, cuts: int, seconds: float, solves0: int) -> StepRecord:
        reactions = self.reactions()
        spec = self.bc_specs[self.load_bc]
        value = np.atleast_1d(spec.value)
        comp = spec.component if spec.component is not None else int(np.argmax(np.abs(value)))
        disp = factor * float(value[0] if spec.component is not None else value[comp])
        ev = self._last_eval
        hm = float(np.max(ev.hill_mandel)) if ev is not None and len(ev.hill_mandel) else 0.0
        mp = float(np.max(ev.mean_p)) if ev is not None and len(ev.mean_p) else 0.0
        hm = self.comm.allreduce(hm, op=MPI.MAX)
        mp = self.comm.allreduce(mp, op=MPI.MAX)
        solves = self.comm.allreduce(
            (self.micro.rve_solves - solves0) if self.pool.micro_comm.rank == 0 else 0, op=MPI.SUM
        )
        record = StepRecord(
            factor=factor,
            displacement=disp,
            reaction=float(reactions[self.load_bc][comp]),
            reactions=[r.tolist() for r in reactions],
            newton_iterations=int(self.snes.getIterationNumber()),
            residuals=list(self._residuals),
            cuts=cuts,
            rve_solves=int(solves),
            max_hill_mandel=hm,
            max_mean_p=mp,
            seconds=float(self.comm.allreduce(seconds, op=MPI.MAX)),
        )
        self.result.steps.append(record)
        log.info(
            "step %d: factor %.4g, %d Newton its (residual %.2e), %d RVE solves, reaction %.5g, "
            "max <p> %.3g, HM %.1e, %.2f s",
            len(self.result.steps),
            factor,
            record.newton_iterations,
            record.residuals[-1] if record.residuals else 0.0,
            record.rve_solves,
            record.reaction,
            mp,
            hm,
            record.seconds,
        )
        return record

    def destroy(self) -> None:
        """Free the PETSc objects, the RVE and the pool's communicator (collective)."""
        for obj in (self.snes, self._A, self._b, self._x, self._r):
            obj.destroy()
        self.micro.destroy()
        self.pool.destroy()
