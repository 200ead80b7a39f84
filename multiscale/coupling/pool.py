"""Distribution of micro solves over MPI ranks: the one mechanism FE², HMM and ensembles share.

The macro mesh is distributed; every rank owns the quadrature points of the cells it owns.  The
ranks of ``comm`` are split into *groups* of ``group_size`` consecutive ranks, each with its own
sub-communicator :attr:`MicroPool.micro_comm` (``MPI.COMM_SELF`` for groups of one, the default).
A group solves the points of all its ranks one after the other, each micro problem distributed
over the group's ranks, and hands every result back to the rank that owns the point:

.. code-block:: text

    rank r owns points p_r,0 .. p_r,n_r  --Allgatherv in group-->  group solves p_0,0 .. p_k,n_k
                                        <--slice back to owner--

With groups of one this is a plain loop on every rank with no communication at all.  Micro
problems are therefore built once per group on ``micro_comm`` and reused for every point (their
per-point history lives on the ranks of the group that owns the point).

Independent tasks (realizations of an ensemble, say) go through :meth:`MicroPool.map_tasks`:
task ``t`` runs on group ``t mod n_groups`` and the results come back on every rank in task
order, so the outcome does not depend on the number of ranks.

The pool records per-rank counts and solve times; :meth:`MicroPool.statistics` reduces them over
``comm`` (load imbalance = max/mean of the per-group solve time).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mpi4py import MPI

__all__ = ["MicroFailure", "MicroPool", "MicroSolveError", "PoolStatistics"]

log = logging.getLogger(__name__)


class MicroSolveError(RuntimeError):
    """A micro problem could not be solved (e.g. its Newton diverged).

    Raised collectively on the micro communicator by the micro solver; the pool turns it into a
    failure flag that every rank of ``comm`` sees, so the coupler can cut the load step.
    """


@dataclass(slots=True, frozen=True)
class MicroFailure:
    """A micro problem that failed: the point's number ``key`` in its group, the ``group`` and
    the error ``message``."""

    key: int
    group: int
    message: str

    def __str__(self) -> str:
        return f"point {self.key} of group {self.group}: {self.message}"


@dataclass(slots=True)
class PoolStatistics:
    """Counts and times of the micro solves, reduced over ``comm`` (identical on every rank).

    ``solves[r]`` and ``seconds[r]`` are the number of micro problems rank ``r`` took part in
    and the wall time it spent in them, ``points[r]`` the number of macro points it owns (at
    the last :meth:`MicroPool.run`); ``imbalance`` is max/mean of ``seconds`` over ranks (1.0 is
    perfect balance).
    """

    solves: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    points: list[int] = field(default_factory=list)
    group_size: int = 1

    @property
    def imbalance(self) -> float:
        t = np.asarray(self.seconds, dtype=float)
        return float(t.max() / t.mean()) if len(t) and t.mean() > 0 else 1.0

    @property
    def total_solves(self) -> int:
        """Micro problems solved (a problem solved by a group of k ranks counts once)."""
        return int(sum(self.solves)) // max(self.group_size, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "points_per_rank": list(self.points),
            "solves_per_rank": list(self.solves),
            "seconds_per_rank": list(self.seconds),
            "solves_total": self.total_solves,
            "group_size": self.group_size,
            "imbalance": self.imbalance,
        }


class MicroPool:
    """Groups of ranks that solve micro problems for the points owned by their members.

    Parameters
    ----------
    comm:
        The macro communicator (collective for everything here).
    group_size:
        Ranks per micro problem; must divide ``comm.size``.  ``1`` (the default) solves every
        micro problem on ``MPI.COMM_SELF`` of the rank that owns the point.

    The sub-communicator is freed by :meth:`destroy` (collective on ``comm``).
    """

    def __init__(self, comm: MPI.Comm, group_size: int = 1) -> None:
        group_size = int(group_size)
        if group_size < 1 or comm.size % group_size:
            raise ValueError(
                f"group_size must be a positive divisor of the number of ranks ({comm.size}), "
                f"got {group_size}"
            )
        self.comm = comm
        self.group_size = group_size
        self.group = comm.rank // group_size
        self.n_groups = comm.size // group_size
        if group_size == 1:
            self.micro_comm: MPI.Comm = MPI.COMM_SELF
            self._owned_comm = False
        else:
            self.micro_comm = comm.Split(color=self.group, key=comm.rank)
            self._owned_comm = True
        self._solves = 0
        self._seconds = 0.0
        self._points = 0

    # -- points of a distributed macro mesh ----------------------------------------------------
    def run(
        self,
        solve: Callable[[int, np.ndarray], np.ndarray],
        inputs: np.ndarray,
        *,
        stop_on_failure: bool = True,
    ) -> tuple[np.ndarray, list[MicroFailure]]:
        """Solve one micro problem per row of ``inputs`` (this rank's points).

        ``solve(key, x)`` is called collectively on :attr:`micro_comm` for every point of the
        group, where ``key`` numbers the points of the group (0, 1, ... over the group's ranks in
        rank order, the same at every call with the same point counts) and ``x`` is the point's
        input row; it returns a 1-D array of fixed length.  Returns this rank's outputs
        ``(n_local, n_out)`` and the failures of the group; rows of failed (and, with
        ``stop_on_failure``, skipped) points are NaN.  Any exception ``solve`` raises fails its
        point (for groups of several ranks it must be raised on all of them, as the micro
        solvers' errors are).  Not collective on ``comm``: callers agree on the failures
        themselves (:func:`multiscale.nonlinear.agree`).
        """
        x_local = np.ascontiguousarray(np.atleast_2d(inputs), dtype=float)
        if inputs.size == 0:
            x_local = np.zeros((0, inputs.shape[1] if inputs.ndim == 2 else 0))
        n_local, m = x_local.shape
        mc = self.micro_comm
        if mc.size == 1:
            counts = [n_local]
            x_group = x_local
        else:
            counts = mc.allgather(n_local)
            x_group = np.empty((sum(counts), m))
            mc.Allgatherv(x_local, [x_group, [c * m for c in counts]])
        offset = int(sum(counts[: mc.rank]))
        out_rows: list[np.ndarray | None] = [None] * len(x_group)
        failures: list[MicroFailure] = []
        t0 = time.perf_counter()
        for key, x in enumerate(x_group):
            if failures and stop_on_failure:
                break
            try:
                out_rows[key] = np.asarray(solve(key, x), dtype=float).ravel()
            except MicroSolveError as err:
                failures.append(MicroFailure(key, self.group, str(err)))
            except Exception as err:  # any other error (det F <= 0, a bug) fails the point too
                failures.append(MicroFailure(key, self.group, f"{type(err).__name__}: {err}"))
            self._solves += 1
        self._seconds += time.perf_counter() - t0
        self._points = n_local
        width = next((len(r) for r in out_rows if r is not None), 0)
        if mc.size > 1:
            width = mc.allreduce(width, op=MPI.MAX)
        out = np.full((n_local, width), np.nan)
        for i in range(n_local):
            row = out_rows[offset + i]
            if row is not None:
                out[i] = row
        return out, failures

    # -- independent tasks ----------------------------------------------------------------------
    def own_tasks(self, ntasks: int) -> range:
        """The tasks :meth:`map_tasks` runs on this rank's group."""
        return range(self.group, int(ntasks), self.n_groups)

    def map_tasks(
        self,
        fn: Callable[[int, MPI.Comm], Any],
        ntasks: int,
        *,
        on_done: Callable[[int, Any], None] | None = None,
    ) -> list[Any]:
        """Run ``fn(t, micro_comm)`` for ``t = 0 .. ntasks-1``, task ``t`` on group
        ``t mod n_groups``; return all results in task order on every rank (collective).

        ``fn`` must depend on ``t`` only (seed its random numbers from ``t``), so the results do
        not depend on the number of ranks.  Results must be picklable.  An exception in any task
        is re-raised on every rank, naming the task.  ``on_done(t, result)`` is called on the
        group's ranks after each of its tasks (progress reports).
        """
        mine: list[tuple[int, Any]] = []
        error: str | None = None
        t0 = time.perf_counter()
        for t in self.own_tasks(ntasks):
            try:
                result = fn(t, self.micro_comm)
            except Exception as err:
                error = f"task {t} failed on group {self.group}: {type(err).__name__}: {err}"
                break
            if on_done is not None:
                on_done(t, result)
            self._solves += 1
            if self.micro_comm.rank == 0:
                mine.append((t, result))
        self._seconds += time.perf_counter() - t0
        errors = [e for e in self.comm.allgather(error) if e]
        if errors:
            raise RuntimeError("; ".join(errors))
        gathered = self.comm.allgather(mine)
        results: list[Any] = [None] * int(ntasks)
        for part in gathered:
            for t, r in part:
                results[t] = r
        return results

    # -- statistics -------------------------------------------------------------------------------
    def statistics(self) -> PoolStatistics:
        """Counts and times since construction or :meth:`reset`, gathered over ``comm``."""
        data = self.comm.allgather((self._solves, self._seconds, self._points))
        return PoolStatistics(
            solves=[d[0] for d in data],
            seconds=[d[1] for d in data],
            points=[d[2] for d in data],
            group_size=self.group_size,
        )

    def reset(self) -> None:
        self._solves, self._seconds, self._points = 0, 0.0, 0

    def destroy(self) -> None:
        """Free the sub-communicator (collective on ``comm`` when ``group_size > 1``)."""
        if self._owned_comm and self.micro_comm != MPI.COMM_NULL:
            self.micro_comm.Free()
            self.micro_comm = MPI.COMM_NULL
            self._owned_comm = False

    def log_statistics(
        self, label: str = "micro solves", stats: PoolStatistics | None = None
    ) -> None:
        s = stats or self.statistics()
        log.info(
            "%s: %d in all, per rank %s, %.2f s max per rank, imbalance %.2f",
            label,
            s.total_solves,
            s.solves,
            max(s.seconds) if s.seconds else 0.0,
            s.imbalance,
        )
