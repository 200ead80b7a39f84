"""The micro side of FE²: one RVE per macro quadrature point, with its history.

:class:`MicroModel` owns one compiled :class:`~multiscale.cell.rve.RVEProblem` per rank group
(built on :attr:`MicroPool.micro_comm <multiscale.coupling.pool.MicroPool.micro_comm>`) and,
for every macro quadrature point the group owns, the committed and the trial internal variables
of all micro quadrature points plus the last fluctuation (the Newton start of the next solve).
:meth:`MicroModel.evaluate` maps the macro strains (deformation gradients) of this rank's points
to homogenized stresses and tangents through the pool; :meth:`commit` makes the trial state the
committed one when the macro step converged, :meth:`rollback` drops it when the step is cut.

Linear phases: the RVE is solved once (the consistent tangent at zero strain is the effective
stiffness :math:`\\mathbb C^{hom}`) and every point gets :math:`\\Sigma = \\mathbb C^{hom}:E`,
vectorized, with no further micro solve.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from multiscale.cell.rve import RVEProblem
from multiscale.coupling.pool import MicroPool
from multiscale.mesh.cell import CellMesh
from multiscale.mesh.io import read_cell_mesh
from multiscale.physics.base import Material

__all__ = ["MicroEvaluation", "MicroModel"]

log = logging.getLogger(__name__)

CellSource = CellMesh | str | os.PathLike | Callable[[MPI.Comm], CellMesh]


@dataclass(slots=True)
class MicroEvaluation:
    """Responses of this rank's points: ``flux`` (n, d, d), ``tangent`` (n, d, d, d, d),
    ``hill_mandel``, ``iterations``, ``mean_p`` (mean equivalent plastic strain or 0) per point,
    the group's failure messages, and the micro time split (``newton``, ``tangent``)."""

    flux: np.ndarray
    tangent: np.ndarray
    hill_mandel: np.ndarray
    iterations: np.ndarray
    mean_p: np.ndarray
    failures: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class MicroModel:
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
    rve_options:
        Keyword arguments of :class:`RVEProblem` (``tangent``, ``degree``, ``petsc_options``,
        ...); the options prefix is ``multiscale_fe2_rve_`` unless given.
    """

    def __init__(
        self,
        pool: MicroPool,
        cell: CellSource,
        materials: Mapping[str | int, Material],
        n_points: int,
        **rve_options: Any,
    ) -> None:
        self.pool = pool
        comm = pool.micro_comm
        if isinstance(cell, CellMesh):
            if cell.comm.size != comm.size:
                raise ValueError("the RVE mesh must live on the pool's micro communicator")
            cell_mesh = cell
        elif callable(cell):
            cell_mesh = cell(comm)
        else:
            cell_mesh = read_cell_mesh(Path(cell), comm)
        rve_options.setdefault("options_prefix", "multiscale_fe2_rve_")
        self.rve = RVEProblem(cell_mesh, materials, **rve_options)
        self.kind = self.rve.kind
        self.dim = self.rve.dim
        self.linear = self.rve.linear
        self.n_local = int(n_points)
        mc = comm
        counts = mc.allgather(self.n_local) if mc.size > 1 else [self.n_local]
        self.n_group = int(sum(counts))
        self._linear_tangent: np.ndarray | None = None
        if self.linear:
            self.state_committed = self.state_trial = np.zeros((0, 0))
            self.fluct_committed = self.fluct_trial = np.zeros((0, 0))
        else:
            ns, nu = self.rve.state_size, self.rve.u.x.petsc_vec.getLocalSize()
            self.state_committed = np.zeros((self.n_group, ns))
            self.state_trial = np.zeros((self.n_group, ns))
            self.fluct_committed = np.zeros((self.n_group, nu))
            self.fluct_trial = np.zeros((self.n_group, nu))
        self.rve_solves = 0

    # -- linear phases ----------------------------------------------------------------------------
    def effective_tangent(self) -> np.ndarray:
        """:math:`\\mathbb C^{hom}` of linear phases, from one RVE solve (cached)."""
        if self._linear_tangent is None:
            response, _, _ = self.rve.solve(np.zeros((self.dim, self.dim)))
            self._linear_tangent = response.tangent
            self.rve_solves += 1
            log.info("linear micro phases: RVE solved once, tangent cached")
        return self._linear_tangent

    # -- evaluation -------------------------------------------------------------------------------
    def evaluate(self, G: np.ndarray) -> MicroEvaluation:
        """Responses for this rank's points; ``G`` has shape (n_local, d, d).

        Not collective on the macro communicator (only on the micro one): the caller reduces the
        failure flag.
        """
        d = self.dim
        n = len(G)
        if self.linear:
            D = self.effective_tangent()
            flux = np.einsum("ijkl,nkl->nij", D, G)
            return MicroEvaluation(
                flux=flux,
                tangent=np.broadcast_to(D, (n, d, d, d, d)),
                hill_mandel=np.zeros(n),
                iterations=np.zeros(n, dtype=int),
                mean_p=np.zeros(n),
            )
        seconds = {"newton": 0.0, "tangent": 0.0, "averages": 0.0}

        def solve(key: int, x: np.ndarray) -> np.ndarray:
            response, state, fluct = self.rve.solve(
                x.reshape(d, d), self.state_committed[key], self.fluct_trial[key]
            )
            self.state_trial[key] = state
            self.fluct_trial[key] = fluct
            for key_ in seconds:
                seconds[key_] += response.seconds[key_]
            return np.concatenate(
                [
                    response.flux.ravel(),
                    response.tangent.ravel(),
                    [response.hill_mandel, response.iterations, response.mean_state.get("p", 0.0)],
                ]
            )

        out, failures = self.pool.run(solve, G.reshape(n, d * d))
        self.rve_solves += int(np.sum(~np.isnan(out[:, 0]))) if out.size else 0
        if out.shape[1] == 0:  # no point solved in the group (all empty, or first one failed)
            out = np.full((n, d * d + d**4 + 3), np.nan)
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

    def commit(self) -> None:
        """The trial state of every point becomes its committed state."""
        np.copyto(self.state_committed, self.state_trial)
        np.copyto(self.fluct_committed, self.fluct_trial)

    def rollback(self) -> None:
        """Drop the trial state (after a failed step): back to the committed one."""
        np.copyto(self.state_trial, self.state_committed)
        np.copyto(self.fluct_trial, self.fluct_committed)

    def destroy(self) -> None:
        self.rve.destroy()
