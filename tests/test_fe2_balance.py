"""FE² dynamic load balancing: the same answer, an even micro load.

A stepped bar (thin on the left, thick on the right) is pulled at its right end: the thin part
yields, the thick part stays elastic, so the micro Newton iterations of the RVEs concentrate on
the rank that owns the thin part (the macro mesh is a strip of square cells, partitioned along
its length).  Run twice: with the static assignment (every rank solves the RVEs of its own
points) and with balancing at the threshold ``THRESHOLD``.  Checked:

* the static run is imbalanced: the micro work of its plastic steps (micro Newton iterations
  per rank, the measure the balancing uses; not the seconds, which a loaded machine makes
  noisy, while the iterations are deterministic) has max/mean above ``STATIC_MIN``.  A plastic
  RVE costs about 3.5 times an elastic one per load step here (micro Newton iterations
  [6, 4, 3, 2] against [1, 1, 1, 1] over the macro iterations of a step), so with one plastic
  rank of :math:`P` the imbalance is at most :math:`Pr/(r + P - 1)`: about 1.55 on 2 ranks
  (observed 1.44, the rank also owns the transition cell) and 1.9 on 3 (observed 1.69);
* balancing brings every step after the first reassignment below ``BALANCED_MAX`` (observed
  1.02-1.07);
* the reactions of every step and the committed micro state of every point (gathered by the
  point's coordinates) equal those of the static run to ``RTOL``: an RVE is the same
  computation on whichever rank it is solved.

Serially there is nothing to balance: the balanced path (portable rows) must still give the
static answer.
"""

from __future__ import annotations

import logging

import dolfinx
import numpy as np
import pytest
from mpi4py import MPI

from multiscale.coupling.pool import MicroPool, balanced_assignment
from multiscale.fe2 import DisplacementBC, FE2Problem
from multiscale.fe2.checkpoint import fe2_config_hash
from multiscale.fe2.config import FE2Config
from multiscale.mesh import circular_inclusion
from multiscale.mesh.macro import MacroMesh, tag_box_sides
from multiscale.physics import IsotropicElasticity, J2Plasticity

log = logging.getLogger(__name__)

RTOL = 1e-10
STATIC_MIN = {2: 1.4}  # max/mean of the micro work per rank of the plastic steps, static
STATIC_MIN_MORE = 1.5  # the same on 3 ranks or more
BALANCED_MAX = 1.15  # the same once balanced
THRESHOLD = 1.1  # below BALANCED_MAX: the balancing is asked for what is asserted
THIN = 0.2  # thickness of the thin part (the thick part has 1)
MATERIALS = {
    "matrix": J2Plasticity.from_young(1.0, 0.3, sigma_y=0.01, H=0.01),
    "inclusion": IsotropicElasticity.from_young(0.01, 0.25),  # nearly a void: strong yielding
}
# tight micro tolerances: the plastic RVEs iterate to them (the elastic ones converge in one
# iteration whatever they are), which is the genuine cost contrast the balancing evens out
RVE_OPTIONS = {"petsc_options": {"snes_rtol": 1e-12, "snes_stol": 1e-11}}
FACTORS = [0.4, 0.6, 0.8, 1.0]
STRETCH = 0.09


def stepped_bar(comm: MPI.Comm, parts: int) -> MacroMesh:
    """A strip of ``4 parts`` unit squares (crossed triangles), thin on its first part."""
    nx = 4 * parts
    length = float(nx)
    mesh = dolfinx.mesh.create_rectangle(
        comm,
        [np.zeros(2), np.array([length, 1.0])],
        [nx, 1],
        dolfinx.mesh.CellType.triangle,
        diagonal=dolfinx.mesh.DiagonalType.crossed,
    )
    x = mesh.geometry.x
    a = length / parts  # the thin part ends one cell before the end of the first part
    x[:, 1] *= THIN + (1.0 - THIN) * np.clip(x[:, 0] - (a - 1.0), 0.0, 1.0)
    return tag_box_sides(mesh, np.zeros(2), np.array([length, 1.0]))


def cell(comm: MPI.Comm):
    return circular_inclusion(comm, 0.3, h=0.1)


def run(comm: MPI.Comm, balance: float | None) -> tuple[FE2Problem, dict]:
    macro = stepped_bar(comm, max(comm.size, 2))
    bcs = [DisplacementBC("left", (0.0, 0.0)), DisplacementBC("right", STRETCH, component=0)]
    problem = FE2Problem(macro, cell, MATERIALS, bcs=bcs, balance=balance, rve_options=RVE_OPTIONS)
    result = problem.solve(FACTORS)
    assert result.status == "ok", result.error
    return problem, result


def gathered_state(problem: FE2Problem) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates and committed micro state (state, fluctuation) of all points, by
    coordinates, on every rank."""
    x = problem.rule.coordinates().reshape(-1, problem.dim)
    committed = problem.micro.committed
    rows = np.hstack(
        [committed["state"], committed["fluctuation"], committed["G"].reshape(len(x), -1)]
    )
    xs = np.concatenate(problem.comm.allgather(x))
    values = np.concatenate(problem.comm.allgather(rows))
    order = np.lexsort((xs[:, 1], xs[:, 0]))
    return xs[order], values[order]


@pytest.mark.mpi
def test_balancing_evens_the_micro_work_and_keeps_the_answer(comm):
    static, r_static = run(comm, None)
    balanced, r_balanced = run(comm, THRESHOLD)
    try:
        static_imb = [s.quantities["micro_imbalance"] for s in r_static.steps]
        balanced_imb = [s.quantities["micro_imbalance"] for s in r_balanced.steps]
        stats = balanced.pool.statistics()
        (log.info if comm.rank == 0 else log.debug)(
            "micro work imbalance per step: static %s, balanced %s; seconds: static %.2f, "
            "balanced %.2f (whole run); %d reassignment(s), %d point(s) migrated",
            np.round(static_imb, 3).tolist(),
            np.round(balanced_imb, 3).tolist(),
            r_static.micro["imbalance"],
            r_balanced.micro["imbalance"],
            stats.rebalances,
            stats.migrated,
        )
        # the same answer: reactions and committed micro states
        for s, b in zip(r_static.steps, r_balanced.steps, strict=True):
            assert s.factor == b.factor and s.iterations == b.iterations
            rs, rb = s.reactions["right"], b.reactions["right"]
            assert np.linalg.norm(np.subtract(rb, rs)) <= RTOL * np.linalg.norm(rs)
        xs, vs = gathered_state(static)
        xb, vb = gathered_state(balanced)
        np.testing.assert_allclose(xb, xs, rtol=0, atol=1e-12)
        scale = np.max(np.abs(vs), axis=0, keepdims=True) + 1e-300
        assert np.max(np.abs(vb - vs) / scale) <= RTOL
        if comm.size == 1:
            assert stats.rebalances == 0 and stats.migrated == 0
            assert max(balanced_imb) == 1.0
            return
        # the static run is imbalanced once the thin part yields, the balanced one is not
        plastic = [i for i, s in enumerate(r_static.steps) if s.quantities["max_mean_p"] > 0]
        assert len(plastic) >= 2
        assert max(static_imb[i] for i in plastic) > STATIC_MIN.get(comm.size, STATIC_MIN_MORE)
        assert stats.rebalances >= 1 and stats.migrated > 0
        first = next(i for i, s in enumerate(stats.steps) if "balanced_imbalance" in s)
        after = balanced_imb[first + 1 :]
        assert after and max(after) < BALANCED_MAX, balanced_imb
    finally:
        static.destroy()
        balanced.destroy()


@pytest.mark.mpi
def test_pool_ships_points_and_failures_between_ranks(comm):
    """The exchange alone: points of rank 0 cost 10, the others 1; after one step the pool
    moves some of rank 0's points (each solve reports the rank it ran on, which
    ``solving_ranks`` named before the solve); their results come back to the owner in its
    order, and an error on the rank that solves a migrated point is the owner's failure, keyed
    by the owner's index (no rank waits: the exchange sizes come from the assignment)."""
    n = 6
    pool = MicroPool(comm, balance=1.2)
    first = comm.rank * n
    x = np.arange(first, first + n, dtype=float)[:, None]

    def solve(row: np.ndarray) -> np.ndarray:
        gid = int(row[0])
        if gid == failing:
            raise ValueError(f"point {gid} fails")
        return np.array([2.0 * gid, comm.rank, 10.0 if gid < n else 1.0])

    failing = -1
    out, failures = pool.run_portable(solve, x, 3, work=lambda r: r[:, 2])
    assert not failures and np.array_equal(out[:, 0], 2 * x[:, 0])
    assert np.array_equal(out[:, 1], pool.solving_ranks())  # static: every point at home
    record = pool.end_step()
    if comm.size == 1:
        assert pool.statistics().rebalances == 0
        assert np.array_equal(pool.solving_ranks(), np.zeros(n))
        return
    assert record["cost_imbalance"] > 1.2 and record["balanced_imbalance"] < 1.2
    migrated = pool.statistics().migrated
    assert migrated > 0
    planned = pool.solving_ranks()  # where the next solve will run each point
    out, failures = pool.run_portable(solve, x, 3, work=lambda r: r[:, 2])
    assert not failures and np.array_equal(out[:, 0], 2 * x[:, 0])
    assert np.array_equal(out[:, 1], planned)  # the rank each point reports it ran on
    away = comm.allreduce(int(np.sum(out[:, 1] != comm.rank)), op=MPI.SUM)
    assert away == migrated
    # fail a point of rank 0 that another rank solves
    moved = comm.bcast(int(np.flatnonzero(out[:, 1] != 0)[0]) if comm.rank == 0 else None)
    failing = moved
    out, failures = pool.run_portable(solve, x, 3, work=lambda r: r[:, 2])
    if comm.rank == 0:
        assert [f.key for f in failures] == [moved] and "fails" in failures[0].message
        assert np.isnan(out[moved, 0])  # (the solving rank skips its points after it)
    else:
        assert not failures
    pool.destroy()


def test_balanced_assignment_is_even_deterministic_and_keeps_points_home():
    rng = np.random.default_rng(7)
    owners = np.repeat(np.arange(3), [40, 40, 40])
    costs = np.where(owners == 0, 5.0, 1.0) + rng.uniform(0.0, 0.2, len(owners))
    dest = balanced_assignment(costs, owners, 3)
    loads = np.bincount(dest, weights=costs, minlength=3)
    assert loads.max() <= loads.mean() + costs.max()  # within one point of the mean
    assert np.array_equal(dest, balanced_assignment(costs.copy(), owners.copy(), 3))
    assert np.all(dest[owners != 0] == owners[owners != 0])  # only the loaded rank sheds
    even = np.ones(len(owners))
    assert np.array_equal(balanced_assignment(even, owners, 3), owners)


def test_balance_threshold_is_checked():
    with pytest.raises(ValueError, match="at least 1"):
        MicroPool(MPI.COMM_SELF, balance=0.5)


def test_config_balance_key_and_restart_hash():
    base = {
        "macro": {
            "mesh": {"type": "rectangle", "lengths": [1, 1], "n": [1, 1]},
            "bcs": [{"boundary": "left", "value": 0.0}],
        },
        "micro": {
            "mesh": {"type": "circular_inclusion", "vf": 0.3},
            "materials": {"matrix": {"law": "elastic", "E": 1.0, "nu": 0.3}},
        },
    }
    static = FE2Config.from_dict(base)
    assert static.balance_threshold() is None
    default = FE2Config.from_dict({**base, "micro": {**base["micro"], "balance": {}}})
    assert default.balance_threshold() == 1.2
    custom = FE2Config.from_dict(
        {**base, "micro": {**base["micro"], "balance": {"threshold": 1.5}}}
    )
    assert custom.balance_threshold() == 1.5
    # balancing does not change the answer: a run may restart with or without it
    assert fe2_config_hash(static) == fe2_config_hash(custom) == fe2_config_hash(default)
    with pytest.raises(ValueError, match="at least 1"):
        FE2Config.from_dict({**base, "micro": {**base["micro"], "balance": {"threshold": 0.9}}})
