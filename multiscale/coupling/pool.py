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

The pool records per-rank counts, solve times and micro work (for FE² the micro Newton
iterations); :meth:`MicroPool.statistics` reduces them over ``comm`` (load imbalance = max/mean
of the per-group solve time).

**Dynamic load balancing** (``balance`` = a threshold, groups of one rank only).  Where the cost
of the micro problems is uneven over the macro domain (plasticity in one part of it), the
static assignment "every rank solves the points it owns" leaves ranks idle.  With balancing the
micro problems go through :meth:`MicroPool.run_portable`, whose ``solve(x)`` depends on its
input row alone (the owner packs the point's whole history into it and unpacks the results), so
that any rank can solve any point.  The pool measures the cost :math:`c_i` of every point (the
work the solve reports, else its seconds), summed over the macro iterations of a load step, and
at the end of each step (:meth:`MicroPool.end_step`, collective) compares the per-rank cost
under the current assignment :math:`a`,

.. math::
    C_r = \\sum_{i:\\,a(i)=r} c_i, \\qquad
    \\text{imbalance} = \\frac{\\max_r C_r}{\\tfrac1P\\sum_r C_r},

with the threshold.  Above it, a new assignment is computed from the allgathered costs
(identical on every rank, deterministic, independent of the macro partition,
:func:`balanced_assignment`) and used from the next step on: each rank sends the input rows of
its points that another rank solves in one ``Alltoallv`` and gets their results back in
another; the histories stay with the points' owners (checkpoints are unchanged).  A micro
problem is the same computation wherever it runs, so the answer does not change.  Groups of
several ranks keep the static assignment.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mpi4py import MPI

__all__ = [
    "MicroFailure",
    "MicroPool",
    "MicroSolveError",
    "PoolStatistics",
    "balanced_assignment",
]

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
    and the wall time it spent in them, ``work[r]`` the work they reported (FE²: micro Newton
    iterations; 0 where the caller reports none), ``points[r]`` the number of macro points it
    owns (at the last :meth:`MicroPool.run`); ``imbalance`` is max/mean of ``seconds`` over
    ranks (1.0 is perfect balance), ``work_imbalance`` the same of ``work``.  With dynamic
    balancing: ``rebalances`` (new assignments so far), ``migrated`` (points the current
    assignment solves away from their owner) and ``steps`` (per load step: the imbalance of
    the work, or of the seconds without work, and of the seconds, see
    :meth:`MicroPool.end_step`).
    """

    solves: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    points: list[int] = field(default_factory=list)
    group_size: int = 1
    work: list[float] = field(default_factory=list)
    balance: float | None = None
    rebalances: int = 0
    migrated: int = 0
    steps: list[dict[str, float]] = field(default_factory=list)

    @property
    def imbalance(self) -> float:
        return _imbalance(self.seconds)

    @property
    def work_imbalance(self) -> float:
        return _imbalance(self.work)

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
            "work_per_rank": list(self.work),
            "work_imbalance": self.work_imbalance,
            "balance": self.balance,
            "rebalances": self.rebalances,
            "migrated_points": self.migrated,
            "step_imbalance": [dict(s) for s in self.steps],
        }


def _imbalance(values: Any) -> float:
    """max/mean of ``values`` (1.0 when empty or all zero)."""
    t = np.asarray(values, dtype=float)
    return float(t.max() / t.mean()) if len(t) and t.mean() > 0 else 1.0


def _attempt(call: Callable[[], Any]) -> tuple[np.ndarray | None, str | None]:
    """One micro solve: its output row, or the message that fails its point (a
    :class:`MicroSolveError`'s own; any other error, a det F <= 0 or a bug, with its type)."""
    try:
        return np.asarray(call(), dtype=float).ravel(), None
    except MicroSolveError as err:
        return None, str(err)
    except Exception as err:
        return None, f"{type(err).__name__}: {err}"


def _sized(row: Any, n_out: int) -> np.ndarray:
    row = np.asarray(row, dtype=float).ravel()
    if row.size != n_out:
        raise ValueError(f"the micro solve returned {row.size} values, not {n_out}")
    return row


def _work_of(work: Callable[[np.ndarray], np.ndarray], rows: np.ndarray) -> np.ndarray | None:
    """``work(rows)``, or ``None`` if it fails: statistics never fail the solves."""
    try:
        return np.asarray(work(rows), dtype=float)
    except Exception as err:
        log.debug("work of the micro solves failed: %s", err)
        return None


def balanced_assignment(costs: np.ndarray, owners: np.ndarray, nranks: int) -> np.ndarray:
    """A rank for every point, balancing the summed ``costs`` over ``nranks`` ranks.

    Every rank first keeps its own points, the most expensive first, as long as its load stays
    within the mean :math:`\\bar C = \\frac1P\\sum_i c_i`; the others are dealt out
    longest-processing-time first (most expensive point to the least loaded rank, ties to the
    lower rank, then the lower point), which leaves every load within one point's cost of
    :math:`\\bar C` when the points are many.  Deterministic: the same arrays give the same
    answer on every rank.
    """
    costs = np.maximum(np.nan_to_num(np.asarray(costs, dtype=float)), 0.0)
    owners = np.asarray(owners, dtype=np.int64)
    n = len(costs)
    dest = owners.copy()
    if n == 0 or nranks <= 1:
        return dest
    target = float(costs.sum()) / nranks * (1.0 + 1e-12)
    order = np.lexsort((np.arange(n), -costs, owners))  # by owner, then dearest, then index
    c = costs[order]
    run = np.cumsum(c)
    starts = np.searchsorted(owners[order], np.arange(nranks))
    before = np.concatenate([[0.0], run])[starts]  # the cumulated cost before each owner
    keep = run - before[owners[order]] <= target
    loads = np.bincount(owners[order][keep], weights=c[keep], minlength=nranks).astype(float)
    rest = order[~keep]
    rest = rest[np.lexsort((rest, -costs[rest]))]
    heap = [(float(loads[r]), r) for r in range(nranks)]
    heapq.heapify(heap)
    for i in rest:
        load, r = heapq.heappop(heap)
        dest[i] = r
        heapq.heappush(heap, (load + float(costs[i]), r))
    return dest


class MicroPool:
    """Groups of ranks that solve micro problems for the points owned by their members.

    Parameters
    ----------
    comm:
        The macro communicator (collective for everything here).
    group_size:
        Ranks per micro problem; must divide ``comm.size``.  ``1`` (the default) solves every
        micro problem on ``MPI.COMM_SELF`` of the rank that owns the point.
    balance:
        Dynamic load balancing of :meth:`run_portable` (see the module): the imbalance of a
        load step above which the points are reassigned (e.g. 1.2); ``None`` keeps the static
        assignment.  Only for ``group_size`` 1 (larger groups keep the static assignment, with
        a note in the log).

    The sub-communicator is freed by :meth:`destroy` (collective on ``comm``).
    """

    def __init__(
        self, comm: MPI.Comm, group_size: int = 1, *, balance: float | None = None
    ) -> None:
        group_size = int(group_size)
        if group_size < 1 or comm.size % group_size:
            raise ValueError(
                f"group_size must be a positive divisor of the number of ranks ({comm.size}), "
                f"got {group_size}"
            )
        if balance is not None and not float(balance) >= 1.0:
            raise ValueError(f"the balance threshold must be at least 1, got {balance}")
        if balance is not None and group_size > 1:
            if comm.rank == 0:
                log.info("load balancing needs group_size 1: the static assignment is kept")
            balance = None
        #: the imbalance threshold of dynamic balancing (``None``: static assignment)
        self.balance: float | None = None if balance is None else float(balance)
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
        self._work = 0.0
        self._points = 0
        # dynamic balancing: this step's seconds and work of this rank, the cost of each owned
        # point summed over the step, the assignment (global point -> rank; None: static)
        self._step_seconds = 0.0
        self._step_work = 0.0
        self._point_cost = np.zeros(0)
        self._assignment: np.ndarray | None = None
        self._counts: list[int] = []
        self._rebalances = 0
        self._steps: list[dict[str, float]] = []

    @property
    def balancing(self) -> bool:
        """Whether micro problems go through the portable path of dynamic balancing."""
        return self.balance is not None

    # -- points of a distributed macro mesh ----------------------------------------------------
    def run(
        self,
        solve: Callable[[int, np.ndarray], np.ndarray],
        inputs: np.ndarray,
        *,
        stop_on_failure: bool = True,
        work: Callable[[np.ndarray], np.ndarray] | None = None,
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
        themselves (:func:`multiscale.nonlinear.agree`).  ``work(rows)``: the work of the solves
        from their output rows (statistics only).
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
            out_rows[key], message = _attempt(lambda key=key, x=x: solve(key, x))
            if message is not None:
                failures.append(MicroFailure(key, self.group, message))
            self._solves += 1
        self._add_seconds(time.perf_counter() - t0)
        self._points = n_local
        if work is not None and mc.rank == 0:
            done = [r for r in out_rows if r is not None]
            w = _work_of(work, np.array(done)) if done else None
            self._add_work(0.0 if w is None else float(np.nansum(w)))
        width = next((len(r) for r in out_rows if r is not None), 0)
        if mc.size > 1:
            width = mc.allreduce(width, op=MPI.MAX)
        out = np.full((n_local, width), np.nan)
        for i in range(n_local):
            row = out_rows[offset + i]
            if row is not None:
                out[i] = row
        return out, failures

    def run_portable(
        self,
        solve: Callable[[np.ndarray], np.ndarray],
        inputs: np.ndarray,
        n_out: int,
        *,
        stop_on_failure: bool = True,
        work: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> tuple[np.ndarray, list[MicroFailure]]:
        """Solve one micro problem per row of ``inputs`` (this rank's points), each on the rank
        the current assignment gives it (see the module; groups of one rank).

        ``solve(x)`` must depend on the input row ``x`` alone and return a row of ``n_out``
        values: the point's whole state travels in ``x`` and back in the result.  ``work(rows)``
        gives the work of solves from their output rows (e.g. micro Newton iterations; NaN
        rows count 0); the balancing cost of a point is its work when ``work`` is given, else
        its seconds.  Returns this rank's outputs ``(n_local, n_out)`` (NaN for failed and
        skipped points) and the failures of this rank's points, keyed by their local index
        wherever they were solved.  Collective on ``comm`` when the assignment moves points
        (every rank must call it, also with no points); the message sizes follow from the
        assignment every rank holds, so an error on one rank only fails its points, never
        leaves the others waiting.
        """
        if self.group_size != 1:
            raise ValueError("run_portable needs group_size 1")
        x_local = np.ascontiguousarray(inputs, dtype=float)
        n_local, m = x_local.shape
        if len(self._point_cost) != n_local:
            self._point_cost = np.zeros(n_local)
        self._points = n_local
        if self._assignment is None or self.comm.size == 1:  # static: no communication
            out, cost, failed = self._solve_rows(solve, x_local, n_out, stop_on_failure, work)
            self._point_cost += cost
            return out, [MicroFailure(k, self.group, msg) for k, msg in failed]
        planned = self._counts[self.comm.rank]
        error = None
        if n_local != planned:  # a caller's bug: fail this rank's points, keep the sizes planned
            error = f"the balanced assignment has {planned} points on this rank, got {n_local}"
            x_local = np.full((planned, m), np.nan)
        order, rows, source, local_index = self._send_inputs(x_local, m)
        out, cost, failed = self._solve_rows(solve, rows, n_out, stop_on_failure, work)
        failures = [(int(source[k]), int(local_index[k]), msg) for k, msg in failed]
        result, mine, cost = self._return_outputs(out, cost, failures, order, n_out)
        if error is not None:
            return np.full((n_local, n_out), np.nan), [MicroFailure(0, self.group, error)]
        self._point_cost += cost
        return result, [MicroFailure(k, self.group, msg) for _, k, msg in mine]

    def _plan(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This rank's points' destinations, and the counts of points sent to and received from
        every rank under the current assignment."""
        assert self._assignment is not None
        rank, size = self.comm.rank, self.comm.size
        offsets = np.concatenate([[0], np.cumsum(self._counts)]).astype(np.int64)
        dest = self._assignment[offsets[rank] : offsets[rank + 1]]
        send = np.bincount(dest, minlength=size).astype(np.int64)
        owners = np.repeat(np.arange(size), self._counts)
        recv = np.bincount(owners[self._assignment == rank], minlength=size).astype(np.int64)
        return dest, send, recv

    def _send_inputs(
        self, x_local: np.ndarray, m: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Ship every point's input row to the rank that solves it (one ``Alltoallv``); returns
        the send order and what this rank solves: rows, owner ranks and the owners' local
        indices (known from the assignment: by owner, then by local index)."""
        assert self._assignment is not None
        dest, send, recv = self._plan()
        order = np.argsort(dest, kind="stable")
        rows = np.empty((int(recv.sum()), m))
        self.comm.Alltoallv(
            [np.ascontiguousarray(x_local[order]), (send * m, _displacements(send * m))],
            [rows, (recv * m, _displacements(recv * m))],
        )
        offsets = np.concatenate([[0], np.cumsum(self._counts)]).astype(np.int64)
        solved_here = np.flatnonzero(self._assignment == self.comm.rank)
        source = np.searchsorted(offsets, solved_here, side="right") - 1
        return order, rows, source, solved_here - offsets[source]

    def _solve_rows(
        self,
        solve: Callable[[np.ndarray], np.ndarray],
        rows: np.ndarray,
        n_out: int,
        stop_on_failure: bool,
        work: Callable[[np.ndarray], np.ndarray] | None,
    ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
        """Solve ``rows`` here: the outputs (NaN where failed or skipped), each solve's cost and
        the failures ``(row, message)``."""
        out = np.full((len(rows), n_out), np.nan)
        seconds = np.zeros(len(rows))
        failed: list[tuple[int, str]] = []
        t0 = time.perf_counter()
        for k, x in enumerate(rows):
            if failed and stop_on_failure:
                break
            t = time.perf_counter()
            row, message = _attempt(lambda x=x: _sized(solve(x), n_out))
            if message is None:
                out[k] = row
            else:
                failed.append((k, message))
            seconds[k] = time.perf_counter() - t
            self._solves += 1
        self._add_seconds(time.perf_counter() - t0)
        cost = seconds
        w = _work_of(work, out) if work is not None and len(rows) else None
        if w is not None:  # else (no work, or a bug in work()) the cost is the seconds
            cost = np.nan_to_num(np.asarray(w, dtype=float).ravel())
            self._add_work(float(cost.sum()))
        return out, cost, failed

    def _add_seconds(self, seconds: float) -> None:
        self._seconds += seconds
        self._step_seconds += seconds

    def _add_work(self, work: float) -> None:
        self._work += work
        self._step_work += work

    def _return_outputs(
        self,
        out: np.ndarray,
        cost: np.ndarray,
        failures: list[tuple[int, int, str]],
        order: np.ndarray,
        n_out: int,
    ) -> tuple[np.ndarray, list[tuple[int, int, str]], np.ndarray]:
        """Ship the results (and costs) back to the points' owners (one ``Alltoallv``) and the
        failures (one ``alltoall`` of short lists); returns them in the owner's point order."""
        _, send, recv = self._plan()  # the reverse direction: received points go back
        width = n_out + 1
        back = np.ascontiguousarray(
            np.column_stack([out, cost]) if len(out) else np.zeros((0, width))
        )
        mine = np.empty((int(send.sum()), width))
        self.comm.Alltoallv(
            [back, (recv * width, _displacements(recv * width))],
            [mine, (send * width, _displacements(send * width))],
        )
        result = np.empty_like(mine)
        result[order] = mine
        outgoing: list[list[tuple[int, int, str]]] = [[] for _ in range(self.comm.size)]
        for owner, k, message in failures:
            outgoing[owner].append((owner, k, message))
        incoming = self.comm.alltoall(outgoing)
        mine_failures = sorted((f for part in incoming for f in part), key=lambda f: f[1])
        return result[:, :n_out], mine_failures, result[:, n_out]

    # -- load steps and balancing -----------------------------------------------------------------
    def end_step(self) -> dict[str, float]:
        """Close a load step (collective on ``comm``): record its imbalance (of the work when
        the solves report work, else of the seconds; and of the seconds) and, with balancing,
        reassign the points when the step's imbalance exceeds :attr:`balance`.

        The decision rests on the per-point costs summed over the step, allgathered, so every
        rank computes the same assignment.  Rank 0 logs the imbalance before and the predicted
        one after.  Returns the step's record."""
        comm = self.comm
        data = comm.allgather((self._step_work, self._step_seconds))
        work = [d[0] for d in data]
        seconds = [d[1] for d in data]
        record = {
            "imbalance": _imbalance(work) if sum(work) > 0 else _imbalance(seconds),
            "seconds_imbalance": _imbalance(seconds),
        }
        self._step_work, self._step_seconds = 0.0, 0.0
        if self.balance is not None and comm.size > 1:
            record.update(self._rebalance())
        self._steps.append(record)
        return record

    def _rebalance(self) -> dict[str, float]:
        """Reassign the points if the summed point costs of the step are imbalanced beyond
        :attr:`balance` under the current assignment (collective)."""
        comm = self.comm
        counts = comm.allgather(len(self._point_cost))
        costs = np.empty(int(sum(counts)))
        comm.Allgatherv(np.ascontiguousarray(self._point_cost, dtype=float), [costs, counts])
        self._point_cost[:] = 0.0
        owners = np.repeat(np.arange(comm.size), counts)
        if counts != self._counts:  # the points changed: start from the static assignment
            self._assignment, self._counts = None, list(counts)
        current = self._assignment if self._assignment is not None else owners
        before = _imbalance(np.bincount(current, weights=costs, minlength=comm.size))
        info = {"cost_imbalance": before}
        if before <= self.balance or not costs.sum() > 0:
            return info
        dest = balanced_assignment(costs, owners, comm.size)
        after = _imbalance(np.bincount(dest, weights=costs, minlength=comm.size))
        if after >= before:
            return info
        self._assignment = None if np.array_equal(dest, owners) else dest
        self._rebalances += 1
        migrated = int(np.sum(dest != owners))
        info["balanced_imbalance"] = after
        if comm.rank == 0:
            log.info(
                "micro load balancing: imbalance %.2f > %.2f, %d of %d points reassigned "
                "(%d solved away from their owner): predicted imbalance %.2f",
                before,
                self.balance,
                int(np.sum(dest != current)),
                len(costs),
                migrated,
                after,
            )
        return info

    def solving_ranks(self) -> np.ndarray:
        """The rank that solves each of this rank's points under the current assignment, in
        the order of the rows of the last :meth:`run_portable` (or :meth:`run`): this rank
        everywhere under the static assignment.  An assignment made by :meth:`end_step`
        applies from the next solve on.  Local (every rank holds the assignment)."""
        if self._assignment is None:
            return np.full(self._points, self.comm.rank, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(self._counts)]).astype(np.int64)
        rank = self.comm.rank
        return self._assignment[offsets[rank] : offsets[rank + 1]].copy()

    @property
    def migrated(self) -> int:
        """Points the current assignment solves away from their owner."""
        if self._assignment is None:
            return 0
        owners = np.repeat(np.arange(self.comm.size), self._counts)
        return int(np.sum(self._assignment != owners))

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
        data = self.comm.allgather((self._solves, self._seconds, self._points, self._work))
        return PoolStatistics(
            solves=[d[0] for d in data],
            seconds=[d[1] for d in data],
            points=[d[2] for d in data],
            group_size=self.group_size,
            work=[d[3] for d in data],
            balance=self.balance,
            rebalances=self._rebalances,
            migrated=self.migrated,
            steps=[dict(s) for s in self._steps],
        )

    def reset(self) -> None:
        """Zero the counts and times (the assignment is kept)."""
        self._solves, self._seconds, self._points, self._work = 0, 0.0, 0, 0.0
        self._step_seconds, self._step_work = 0.0, 0.0
        self._steps = []

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
        balance = ""
        if s.balance is not None:
            balance = f", balanced at {s.balance:g} ({s.rebalances} reassignment(s))"
        work = f", work imbalance {s.work_imbalance:.2f}" if sum(s.work) > 0 else ""
        log.info(
            "%s: %d in all, per rank %s, %.2f s max per rank, imbalance %.2f%s%s",
            label,
            s.total_solves,
            s.solves,
            max(s.seconds) if s.seconds else 0.0,
            s.imbalance,
            work,
            balance,
        )


def _displacements(counts: np.ndarray) -> np.ndarray:
    """Offsets of consecutive blocks of ``counts``."""
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
