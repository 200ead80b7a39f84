"""The micro side of FE²: one RVE per macro quadrature point, with its history.

:class:`MicroModel` owns one compiled :class:`~multiscale.cell.rve.RVEProblem` per rank group
(built on :attr:`MicroPool.micro_comm <multiscale.coupling.pool.MicroPool.micro_comm>`) and,
for every macro quadrature point the group owns, the committed and the trial internal variables
of all micro quadrature points, the last fluctuation and its sensitivity to the macro strain
(the Newton start of the next solve at the point, by the first-order predictor of
:meth:`RVEProblem.predict <multiscale.cell.rve.RVEProblem.predict>`).
:meth:`MicroModel.evaluate` maps the macro strains (deformation gradients) of this rank's points
to homogenized stresses and tangents through the pool; :meth:`commit` makes the trial state the
committed one when the macro step converged, :meth:`rollback` drops it when the step is cut.

With dynamic load balancing (``MicroPool(balance=...)``) a point's RVE may be solved on another
rank: its input row then carries the macro strain, the committed state, the last fluctuation,
its sensitivity and the strain of the last solve, and its output row the responses, the new
state, fluctuation and sensitivity, which the owner stores as its trial history
(:meth:`MicroModel.evaluate`).  The solve is the same computation as on the owner.

Linear phases: the RVE is solved once with the consistent tangent (the effective stiffness
:math:`\\mathbb C^{hom}`, whatever tangent the macro Newton uses) and every point gets
:math:`\\Sigma = \\mathbb C^{hom}:E`, vectorized, with no further micro solve.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dolfinx
import numpy as np
from mpi4py import MPI

from multiscale.cell.rve import RVEProblem
from multiscale.coupling.pool import MicroFailure, MicroPool
from multiscale.mesh.cell import CellMesh
from multiscale.mesh.io import read_cell_mesh
from multiscale.nonlinear import PETScOwner
from multiscale.physics.base import Material

__all__ = ["CellSource", "MicroEvaluation", "MicroModel"]

log = logging.getLogger(__name__)

CellSource = CellMesh | str | os.PathLike | Callable[[MPI.Comm], CellMesh]


@dataclass(slots=True)
class MicroEvaluation:
    """Responses of this rank's points: ``flux`` (n, d, d), ``tangent`` (n, d, d, d, d),
    ``hill_mandel``, ``iterations``, ``mean_p`` (mean equivalent plastic strain or 0) per point,
    the group's failures, and the micro time split (``newton``, ``tangent``,
    ``averages``)."""

    flux: np.ndarray
    tangent: np.ndarray
    hill_mandel: np.ndarray
    iterations: np.ndarray
    mean_p: np.ndarray
    failures: list[MicroFailure] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def as_cell_mesh(cell: CellSource, comm: MPI.Comm) -> CellMesh:
    """The RVE mesh on ``comm`` from a :class:`CellMesh`, a ``.msh`` path or a callable."""
    if isinstance(cell, CellMesh):
        if cell.comm.size != comm.size:
            raise ValueError("the RVE mesh must live on the pool's micro communicator")
        return cell
    if callable(cell):
        return cell(comm)
    return read_cell_mesh(Path(cell), comm)


class MicroModel(PETScOwner):
    """RVEs of the macro quadrature points of this rank (or rank group).

    Parameters
    ----------
    pool:
        The distribution of micro solves (its ``micro_comm`` carries the RVE).
    cell:
        The RVE: a :class:`CellMesh` already on ``pool.micro_comm``, a ``.msh`` path, or a
        callable ``comm -> CellMesh``.
    materials:
        Phase name or tag -> micro law (kind ``"strain"`` or ``"deformation"``).
    n_points:
        Number of macro quadrature points this rank owns.
    predictor:
        Start each micro Newton from the first-order predictor (keeps one sensitivity vector per
        macro direction and point: 3, 6 or 9 fluctuation-sized arrays per point); ``False``
        starts from the last fluctuation.
    rve_options:
        Keyword arguments of :class:`RVEProblem` (``tangent``, ``degree``, ``petsc_options``,
        ...); the options prefix is ``multiscale_fe2_rve_`` unless given.
    """

    #: the cell problem of a point and its default options prefix (a subclass changes them)
    _rve_class: type[RVEProblem] = RVEProblem
    _rve_prefix = "multiscale_fe2_rve_"

    def __init__(
        self,
        pool: MicroPool,
        cell: CellSource,
        materials: Mapping[str | int, Material],
        n_points: int,
        *,
        predictor: bool = True,
        **rve_options: Any,
    ) -> None:
        self.pool = pool
        rve_options.setdefault("petsc_options_prefix", self._rve_prefix)
        self.rve = self._own(
            self._rve_class(as_cell_mesh(cell, pool.micro_comm), materials, **rve_options)
        )
        self.kind, self.dim, self.linear = self.rve.kind, self.rve.dim, self.rve.linear
        #: the macro parameters of the phase laws (a temperature change, say; see
        #: :class:`~multiscale.cell.rve.RVEProblem`), given per point to :meth:`evaluate`
        self.parameters: tuple[str, ...] = getattr(self.rve, "parameters", ())
        self._parameter_fluxes: np.ndarray | None = None
        self.n_local = int(n_points)
        mc = pool.micro_comm
        counts = mc.allgather(self.n_local) if mc.size > 1 else [self.n_local]
        self.n_group = int(sum(counts))
        self.predictor = bool(predictor) and self.rve.tangent_kind == "consistent"
        self._linear_tangent: np.ndarray | None = None
        self._init_history()
        self.rve_solves = 0

    def _init_history(self) -> None:
        """Committed and trial histories of the group's points (none for linear phases)."""
        n = 0 if self.linear else self.n_group
        ns, nu, d = self.rve.state_size, self.rve.fluctuation_size, self.dim
        ndir = self.rve.n_directions if self.predictor else 0
        self.committed = {
            "state": np.zeros((n, ns)),
            "fluctuation": np.zeros((n, nu)),
            "sensitivity": np.zeros((n, ndir, nu)),
            "G": np.zeros((n, d, d)) if self.kind == "strain" else np.tile(np.eye(d), (n, 1, 1)),
        }
        self.trial = {k: v.copy() for k, v in self.committed.items()}

    @property
    def state_committed(self) -> np.ndarray:
        """Committed internal variables, one packed row per point of the group."""
        return self.committed["state"]

    # -- linear phases ----------------------------------------------------------------------------
    def effective_tangent(self) -> np.ndarray:
        """:math:`\\mathbb C^{hom}` of linear phases, from one RVE solve with the consistent
        tangent (cached)."""
        if self._linear_tangent is None:
            response, _, _ = self.rve.solve(np.zeros((self.dim, self.dim)), tangent="consistent")
            self._linear_tangent = response.tangent
            self.rve_solves += 1
            log.info("linear micro phases: RVE solved once, tangent cached")
        return self._linear_tangent

    def parameter_fluxes(self) -> np.ndarray:
        """:math:`\\bar q_p`, the mean flux of a unit macro parameter :math:`p` at zero macro
        strain, one (d, d) row per name of :attr:`parameters` (linear phases; one RVE solve
        each, cached): the flux of linear phases is :math:`\\mathbb C^{hom}:E + \\sum_p \\bar
        q_p\\,\\theta_p`."""
        if self._parameter_fluxes is None:
            zero, rows = np.zeros((self.dim, self.dim)), []
            for name in self.parameters:
                response, _, _ = self.rve.solve(zero, tangent=None, parameters={name: 1.0})
                rows.append(response.flux)
                self.rve_solves += 1
            self._parameter_fluxes = np.reshape(rows, (len(rows), self.dim, self.dim))
        return self._parameter_fluxes

    # -- evaluation -------------------------------------------------------------------------------
    def evaluate(self, G: np.ndarray, parameters: np.ndarray | None = None) -> MicroEvaluation:
        """Responses for this rank's points; ``G`` has shape (n_local, d, d), ``parameters``
        (n_local, len(:attr:`parameters`)) the values of the laws' macro parameters at the
        points (``None``: zero).  Laws with parameters are linear (multi-field laws).

        Not collective on the macro communicator (only on the micro one): the caller agrees on
        the failures.
        """
        d = self.dim
        n = len(G)
        if self.linear:
            D = self.effective_tangent()
            flux = np.einsum("ijkl,nkl->nij", D, G)
            if parameters is not None and self.parameters:
                flux += np.einsum("np,pij->nij", parameters, self.parameter_fluxes())
            return MicroEvaluation(
                flux=flux,
                tangent=np.broadcast_to(D, (n, d, d, d, d)),
                hill_mandel=np.zeros(n),
                iterations=np.zeros(n, dtype=int),
                mean_p=np.zeros(n),
            )
        if parameters is not None:
            raise ValueError("macro parameters are taken by linear (multi-field) phase laws only")
        seconds = {"newton": 0.0, "tangent": 0.0, "averages": 0.0}
        if self.pool.balancing:
            return self._evaluate_portable(G, seconds)
        out, failures = self._solve_rows(G.reshape(n, d * d), seconds, d * d + d**4 + 3)
        return self._evaluation(out, failures, seconds)

    def _point_input(self, x: np.ndarray) -> np.ndarray:
        """The RVE's input from a row of the pool: the macro gradient (d, d)."""
        return x.reshape(self.dim, self.dim)

    def _solve_rows(
        self, rows: np.ndarray, seconds: dict[str, float], width: int
    ) -> tuple[np.ndarray, list]:
        """Solve this rank's points (one row of input each) in the pool from their committed
        states and last fluctuations, keep the trial states, and return the result rows
        (:meth:`_response_row`; NaN rows of ``width`` where nothing was solved) and the
        failures."""
        trial = self.trial

        def solve(key: int, x: np.ndarray) -> np.ndarray:
            xk = self._point_input(x)
            sens = trial["sensitivity"][key] if self.predictor else None
            state, last = self.committed["state"][key], trial["fluctuation"][key]
            response, state, fluct = self._solve_point(
                xk, state, last, sens, trial["G"][key], seconds
            )
            trial["state"][key] = state
            trial["fluctuation"][key] = fluct
            trial["G"][key] = xk
            if self.predictor:
                trial["sensitivity"][key] = response.sensitivity
            return self._response_row(response)

        out, failures = self.pool.run(solve, rows, work=self._work)
        self.rve_solves += int(np.sum(~np.isnan(out[:, 0]))) if out.size else 0
        if out.shape[1] == 0:  # no point solved in the group (all empty, or first one failed)
            out = np.full((len(rows), width), np.nan)
        return out, failures

    def _solve_point(
        self,
        Gk: np.ndarray,
        state: np.ndarray,
        last: np.ndarray,
        sens: np.ndarray | None,
        G_last: np.ndarray,
        seconds: dict[str, float],
    ) -> tuple[Any, np.ndarray, np.ndarray]:
        """One RVE solve at ``Gk`` from the committed ``state``, started from the first-order
        predictor of the last fluctuation (``sens``: its sensitivity, ``None``: no
        predictor); adds its times to ``seconds``."""
        guess = self.rve.predict(last, sens, Gk - G_last)
        response, new_state, fluct = self.rve.solve(Gk, state, guess, fallback=last)
        for name in seconds:
            seconds[name] += response.seconds[name]
        return response, new_state, fluct

    @staticmethod
    def _response_row(response: Any) -> np.ndarray:
        """Flux, tangent, Hill–Mandel residual, Newton iterations and mean ``p`` in a row."""
        return np.concatenate(
            [
                response.flux.ravel(),
                response.tangent.ravel(),
                [response.hill_mandel, response.iterations, response.mean_state.get("p", 0.0)],
            ]
        )

    def _work(self, rows: np.ndarray) -> np.ndarray:
        """The micro Newton iterations of result rows (the pool's cost of a point)."""
        return rows[:, self.dim**2 + self.dim**4 + 1]

    def _evaluation(
        self, out: np.ndarray, failures: list, seconds: dict[str, float]
    ) -> MicroEvaluation:
        """The :class:`MicroEvaluation` of result rows that start with :meth:`_response_row`."""
        d, n = self.dim, len(out)
        n2, n4 = d * d, d**4
        return MicroEvaluation(
            flux=out[:, :n2].reshape(n, d, d),
            tangent=out[:, n2 : n2 + n4].reshape(n, d, d, d, d),
            hill_mandel=out[:, n2 + n4],
            iterations=np.nan_to_num(out[:, n2 + n4 + 1]).astype(int),
            mean_p=out[:, n2 + n4 + 2],
            failures=failures,
            seconds=seconds,
        )

    # -- portable evaluation (dynamic load balancing) ----------------------------------------------
    def _widths(self) -> dict[str, int]:
        d = self.dim
        nu = self.rve.fluctuation_size
        ndir = self.rve.n_directions if self.predictor else 0
        return {
            "G": d * d,
            "state": self.rve.state_size,
            "fluctuation": nu,
            "sensitivity": ndir * nu,
        }

    def _evaluate_portable(self, G: np.ndarray, seconds: dict[str, float]) -> MicroEvaluation:
        """:meth:`evaluate` through :meth:`MicroPool.run_portable`: each point's history goes
        with its input row to the rank that solves it and comes back with the results."""
        d, n = self.dim, len(G)
        w = self._widths()
        trial, committed = self.trial, self.committed
        width = 2 * w["G"] + w["state"] + w["fluctuation"] + w["sensitivity"]
        try:
            inputs = np.hstack(
                [
                    G.reshape(n, w["G"]),
                    committed["state"].reshape(n, w["state"]),
                    trial["fluctuation"].reshape(n, w["fluctuation"]),
                    trial["sensitivity"].reshape(n, w["sensitivity"]),
                    trial["G"].reshape(n, w["G"]),
                ]
            )
        except ValueError:  # cannot happen for consistent arrays; if it does, the rows are
            # NaN, so that every point fails (non-finite strain) where it is solved and the
            # exchange the other ranks are in still matches
            log.debug("packing the micro inputs failed", exc_info=True)
            inputs = np.full((n, width), np.nan)
        bounds = np.cumsum([0, w["G"], w["state"], w["fluctuation"], w["sensitivity"], w["G"]])
        n2, n4 = d * d, d**4
        n_out = n2 + n4 + 3 + w["state"] + w["fluctuation"] + w["sensitivity"]

        def solve(x: np.ndarray) -> np.ndarray:
            Gk, state, last, sens, G_last = (
                x[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)
            )
            Gk, G_last = Gk.reshape(d, d), G_last.reshape(d, d)
            sens_k = sens.reshape(-1, w["fluctuation"]) if self.predictor else None
            response, new_state, fluct = self._solve_point(Gk, state, last, sens_k, G_last, seconds)
            parts = [self._response_row(response), new_state, fluct]
            if self.predictor:
                parts.append(np.asarray(response.sensitivity).ravel())
            return np.concatenate(parts)

        out, failures = self.pool.run_portable(solve, inputs, n_out, work=self._work)
        ok = ~np.isnan(out[:, 0])
        self.rve_solves += int(np.sum(ok))
        history = out[:, n2 + n4 + 3 :]
        cut = np.cumsum([0, w["state"], w["fluctuation"], w["sensitivity"]])
        trial["state"][ok] = history[ok, cut[0] : cut[1]]
        trial["fluctuation"][ok] = history[ok, cut[1] : cut[2]]
        if self.predictor:
            trial["sensitivity"][ok] = history[ok, cut[2] : cut[3]].reshape(
                -1, *trial["sensitivity"].shape[1:]
            )
        trial["G"][ok] = G[ok]
        return self._evaluation(out, failures, seconds)

    def commit(self) -> None:
        """The trial state of every point becomes its committed state."""
        for key, value in self.trial.items():
            np.copyto(self.committed[key], value)

    def rollback(self) -> None:
        """Drop the trial state (after a failed step): back to the committed one."""
        for key, value in self.committed.items():
            np.copyto(self.trial[key], value)

    # -- output -----------------------------------------------------------------------------------
    def fields(self, key: int) -> tuple[dolfinx.fem.Function, dict[str, np.ndarray]]:
        """The committed fluctuation and cell averages of the scalar internal variables of the
        group's point ``key`` (see :meth:`RVEProblem.fields`); collective on the micro
        communicator."""
        if self.linear:
            raise ValueError("linear micro phases keep no per-point RVE fields")
        return self.rve.fields(self.committed["state"][key], self.committed["fluctuation"][key])
