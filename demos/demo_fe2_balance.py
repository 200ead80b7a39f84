# ---
# jupytext:
#   formats: py:percent
#   text_representation:
#     extension: .py
#     format_name: percent
# ---

# %% [markdown]
# # FE²: dynamic load balancing of the RVEs on a plate with a hole
#
# The plate with a hole of `demo_fe2_plate` (a quarter plate in plane strain, an elastoplastic
# fibre composite at every macro Gauss point), pulled less far: the matrix yields only in a
# zone around the stress concentration at the hole, the rest of the plate stays elastic.  An
# elastic RVE converges in one micro Newton iteration per macro iterate, a plastic one needs
# several, so the micro work is concentrated where the plasticity is.  The macro mesh is
# partitioned to balance the *cells*, not the work, and the rank that owns the plastic zone
# keeps the others waiting at every macro iterate.
#
# The problem is solved twice on the same communicator and the same macro mesh (the same
# partition): with the static assignment (every rank solves the RVEs of its own points) and
# with dynamic balancing (`FE2Problem(balance=THRESHOLD)`).  At the end of every load step the
# pool sums the micro cost $c_i$ of every point $i$ (its micro Newton iterations over the
# step's macro iterates) and computes, for the current assignment $a$ of points to ranks,
#
# $$
# C_r = \sum_{i:\,a(i)=r} c_i, \qquad
# \text{imbalance} = \frac{\max_r C_r}{\frac1P \sum_r C_r}.
# $$
#
# Above the threshold it reassigns the points by cost (the same assignment on every rank,
# independent of the mesh partition) and, from the next step on, the input rows of the migrated
# points (macro strain and history) travel to the rank that solves them and the results back to
# the owner.  Since an RVE is the same computation on any rank, the answer must not change: the
# demo checks that the reaction curves agree to $10^{-8}$ (relative), and on two ranks or more
# that the micro-iteration imbalance of the balanced run is below the static one at every
# plastic step after the first reassignment.  The iterations are the measure checked because
# they are deterministic; the micro seconds, noisy on a shared machine, are reported beside
# them.  On one rank balancing has nothing to do (imbalance 1), and the demo says so.
#
# Outputs (under `$MULTISCALE_RESULTS`, default `results/`, in `fe2_balance/`): `summary.json`
# (both runs' summaries and the per-step, per-rank micro work), `imbalance.png` (imbalance per
# load step with and without balancing) and `assignment.png` (the macro Gauss points coloured
# by the rank that solves them at the last step, static and balanced, with the plastic zone).
#
# Run it: `scripts/env-run mpirun -n 2 python3 demos/demo_fe2_balance.py` (or `-n 3`).

# %%
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from multiscale.fe2 import DisplacementBC, FE2Problem, FE2Result, StepRecord
from multiscale.mesh import circular_inclusion
from multiscale.mesh.macro import MacroMesh, plate_with_hole
from multiscale.output import on_rank0, write_json
from multiscale.physics import IsotropicElasticity, J2Plasticity

comm = MPI.COMM_WORLD
shrink = bool(os.environ.get("CI"))
results = Path(os.environ.get("MULTISCALE_RESULTS", "results")) / "fe2_balance"
mesh_file = Path(__file__).resolve().parents[1] / "meshes" / "fibre2d_vf0.5.msh"
if not logging.getLogger().handlers:  # run as a script: rank 0 logs the reassignments
    logging.basicConfig(
        level=logging.INFO if comm.rank == 0 else logging.WARNING, format="%(message)s"
    )
    logging.getLogger("multiscale.fe2.solver").setLevel(logging.WARNING)

# %% [markdown]
# The phases of `demo_fe2_plate` (GPa): an epoxy-like matrix yielding at 50 MPa with linear
# hardening, and glass fibres.  The top is pulled to a mean strain of 0.48 %: a first step to
# half of it (where the first RVEs at the hole yield), then steps of a tenth.  The plastic zone
# grows from the hole with the load; the far field starts to yield at the last steps.  The
# macro mesh is much finer at the hole than away from it, and it is partitioned into rings of
# equal cell counts around the hole (`plate_with_hole(rank_of=...)`): every rank gets as many
# cells, as a graph partitioner would arrange, and rank 0 the hole's surroundings, where the
# plasticity is.  (A graph partitioner's cut varies from run to run: on 2 ranks it left the
# static run between 1.02 and 1.09 out of balance at the last step, sometimes under the
# threshold; the rings make the demo the same on every machine.)  Under CI the RVE is coarse.

# %%
materials = {
    "matrix": J2Plasticity.from_young(E=3.5, nu=0.35, sigma_y=0.05, H=0.35),
    "inclusion": IsotropicElasticity.from_young(E=72.0, nu=0.22),
}
RADIUS = 0.3
U_TOP = 0.0036  # 0.36 % mean strain at load factor 1
THRESHOLD = 1.05  # reassign when a step's imbalance exceeds it (the package default is 1.2)
RTOL = 1e-8  # the reaction curves agree to the solver tolerance
# tight micro tolerances: a plastic RVE iterates to them, an elastic one converges in one
# iteration whatever they are (the cost contrast the balancing evens out)
RVE_OPTIONS = {"petsc_options": {"snes_rtol": 1e-12, "snes_stol": 1e-11}}


def rings(centroids: np.ndarray) -> np.ndarray:
    """Equal cell counts per rank, by distance from the hole's centre (rank 0 innermost)."""
    order = np.argsort(np.hypot(centroids[:, 0], centroids[:, 1]), kind="stable")
    owners = np.empty(len(order), dtype=np.int32)
    owners[order] = np.arange(len(order)) * comm.size // max(len(order), 1)
    return owners


if shrink:
    macro = plate_with_hole(comm, radius=RADIUS, h=0.3, h_hole=0.04, rank_of=rings)
    cell: Any = lambda c: circular_inclusion(c, 0.5, h=0.15)  # noqa: E731
    N_STEPS = 6
else:
    macro = plate_with_hole(comm, radius=RADIUS, h=0.2, h_hole=0.03, rank_of=rings)
    cell = mesh_file
    N_STEPS = 6
factors = [0.5, *np.linspace(0.6, 1.0, N_STEPS - 1)]
bcs = [
    DisplacementBC("left", 0.0, component=0),
    DisplacementBC("bottom", 0.0, component=1),
    DisplacementBC("top", U_TOP, component=1),
]


# %% [markdown]
# ## Two runs, one partition
#
# After every converged step the demo reads the pool's public statistics (cumulative micro
# Newton iterations and seconds per rank: their increments are the step's work) and which rank
# solves each point (`MicroPool.solving_ranks`; an assignment made at the end of a step applies
# from the next step on).


# %%
class StepLog:
    """Per converged step: micro iterations and seconds per rank, points solved away from
    their owner, and (local) the rank that solved each of this rank's points in the step."""

    def __init__(self, problem: FE2Problem) -> None:
        self.problem = problem
        self.work: list[np.ndarray] = []
        self.seconds: list[np.ndarray] = []
        self.migrated: list[int] = []
        self.plastic: list[int] = []
        self.solvers: list[np.ndarray] = []
        self._totals = (np.zeros(comm.size), np.zeros(comm.size))
        self._next = np.full(problem.rule.n_local, comm.rank)  # the static assignment

    def __call__(self, step: StepRecord) -> None:
        pool = self.problem.pool
        stats = pool.statistics()  # collective: on_step runs on every rank
        work, seconds = np.array(stats.work), np.array(stats.seconds)
        self.work.append(work - self._totals[0])
        self.seconds.append(seconds - self._totals[1])
        self._totals = (work, seconds)
        self.solvers.append(self._next)  # the assignment this step was solved with
        self._next = pool.solving_ranks()  # the one the next step will use
        self.migrated.append(comm.allreduce(int(np.sum(self.solvers[-1] != comm.rank))))
        yielded = self.problem.rule.values(self.problem.mean_p) > 0.0
        self.plastic.append(comm.allreduce(int(np.sum(yielded))))


def run(balance: float | None, macro: MacroMesh) -> tuple[FE2Problem, FE2Result, StepLog]:
    problem = FE2Problem(macro, cell, materials, bcs=bcs, balance=balance, rve_options=RVE_OPTIONS)
    steps = StepLog(problem)
    problem.on_step = steps
    result = problem.solve(factors)
    assert result.status == "ok", result.error
    return problem, result, steps


static, r_static, log_static = run(None, macro)
balanced, r_balanced, log_balanced = run(THRESHOLD, macro)

# %% [markdown]
# ## The micro work per rank, step by step
#
# For each step: the micro Newton iterations per rank and their max/mean (`micro_imbalance` of
# the step record), the same of the micro seconds (`micro_seconds_imbalance`), and the points
# the balanced run solved away from their owner in that step.


# %%
def gathered(problem: FE2Problem, solvers: np.ndarray) -> tuple[np.ndarray, ...]:
    """Coordinates, mean equivalent plastic strain and solving rank of every macro Gauss
    point, on rank 0 (``None`` elsewhere)."""
    rule = problem.rule
    x = rule.coordinates().reshape(-1, problem.dim)
    p = rule.values(problem.mean_p).ravel()
    parts = comm.gather((x, p, solvers), root=0)
    if comm.rank != 0:
        return None, None, None
    return tuple(np.concatenate([part[k] for part in parts]) for k in range(3))


def imbalances(result: FE2Result, key: str) -> np.ndarray:
    return np.array([s.quantities[key] for s in result.steps])


x_points, p_points, rank_static = gathered(static, log_static.solvers[-1])
_, _, rank_balanced = gathered(balanced, log_balanced.solvers[-1])
imb = {
    "static": imbalances(r_static, "micro_imbalance"),
    "balanced": imbalances(r_balanced, "micro_imbalance"),
    "static_seconds": imbalances(r_static, "micro_seconds_imbalance"),
    "balanced_seconds": imbalances(r_balanced, "micro_seconds_imbalance"),
}
plastic = np.array([s.quantities["max_mean_p"] > 0.0 for s in r_static.steps])
pool_steps = balanced.pool.statistics().steps  # collective
reassigned = [i for i, s in enumerate(pool_steps) if "balanced_imbalance" in s]
curve_static, curve_balanced = r_static.curve(), r_balanced.curve()
if comm.rank == 0:
    n_points = r_static.info["macro_gauss_points"]
    print(
        f"\n{n_points} macro Gauss points, RVE with {r_static.info['rve_dofs']} dofs, "
        f"{comm.size} rank(s), balancing threshold {THRESHOLD}"
    )
    print(
        f"{'step':>4} {'factor':>6} {'plastic':>7} | {'static its/rank':>18} {'imb':>5}"
        f" {'s imb':>5} | {'balanced its/rank':>18} {'imb':>5} {'s imb':>5} {'moved':>5}"
    )
    for i, s in enumerate(r_static.steps):
        print(
            f"{i:4d} {s.factor:6.3f} {log_static.plastic[i]:7d} |"
            f" {log_static.work[i].astype(int).tolist()!s:>18} {imb['static'][i]:5.2f}"
            f" {imb['static_seconds'][i]:5.2f} |"
            f" {log_balanced.work[i].astype(int).tolist()!s:>18} {imb['balanced'][i]:5.2f}"
            f" {imb['balanced_seconds'][i]:5.2f} {log_balanced.migrated[i]:5d}"
        )
    for label, r in (("static", r_static), ("balanced", r_balanced)):
        m = r.micro
        print(
            f"{label:>8}: micro its per rank {np.round(m['work_per_rank']).astype(int).tolist()}"
            f" (imbalance {m['work_imbalance']:.3f}), seconds per rank "
            f"{np.round(m['seconds_per_rank'], 1).tolist()} (imbalance {m['imbalance']:.3f}),"
            f" {m['rebalances']} reassignment(s), solve {r.timings['solve']:.1f} s"
        )
    for i in reassigned:
        print(
            f"reassignment after step {i}: imbalance {pool_steps[i]['cost_imbalance']:.3f},"
            f" {pool_steps[i]['balanced_imbalance']:.3f} predicted with the new assignment"
        )
    if comm.size == 1:
        print("one rank: balancing has nothing to do (imbalance 1 at every step)")

# %% [markdown]
# ## Figures
#
# `imbalance.png`: the imbalance of every load step, of the micro iterations (what the
# balancing evens out) and of the micro seconds.  `assignment.png`: which rank solves each
# macro Gauss point at the last step, static and balanced, and the plastic zone (points whose
# RVE has yielded, ringed).


# %%
def plot() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(len(factors))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, imb["static"], "o-", color="C3", label="static, micro iterations")
    ax.plot(steps, imb["balanced"], "s-", color="C0", label="balanced, micro iterations")
    ax.plot(steps, imb["static_seconds"], "o:", color="C3", alpha=0.6, label="static, seconds")
    ax.plot(steps, imb["balanced_seconds"], "s:", color="C0", alpha=0.6, label="balanced, seconds")
    ax.axhline(THRESHOLD, color="k", lw=0.8, ls="--", label=f"threshold {THRESHOLD}")
    for i in np.flatnonzero(plastic):
        ax.axvspan(i - 0.5, i + 0.5, color="0.9", zorder=0)
    ax.set(
        xlabel="load step (grey: plastic)",
        ylabel="max / mean over ranks",
        title=f"micro load imbalance, {comm.size} rank(s)",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(results / "imbalance.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharey=True)
    colours = [f"C{k}" for k in range(max(comm.size, 2))]  # one distinct colour per rank
    cmap = matplotlib.colors.ListedColormap(colours)
    yielded = p_points > 0.0
    theta = np.linspace(0.0, 0.5 * np.pi, 50)
    for ax, ranks, title in (
        (axes[0], rank_static, "static: the owner solves"),
        (axes[1], rank_balanced, f"balanced: {log_balanced.migrated[-1]} points migrated"),
    ):
        sc = ax.scatter(
            x_points[:, 0],
            x_points[:, 1],
            c=ranks,
            s=10,
            cmap=cmap,
            vmin=-0.5,
            vmax=max(comm.size, 2) - 0.5,
        )
        ax.scatter(
            x_points[yielded, 0],
            x_points[yielded, 1],
            s=30,
            facecolors="none",
            edgecolors="k",
            linewidths=0.6,
            label="plastic RVE",
        )
        ax.plot(RADIUS * np.cos(theta), RADIUS * np.sin(theta), "k-", lw=1)
        ax.set(title=title, xlabel="x", aspect="equal", xlim=(0, 1), ylim=(0, 1))
    axes[0].set_ylabel("y")
    axes[1].legend(loc="upper right", fontsize=8)
    fig.suptitle(f"who solves each macro Gauss point at the last step, {comm.size} rank(s)")
    fig.colorbar(sc, ax=axes, ticks=range(comm.size), label="solving rank")
    fig.savefig(results / "assignment.png", dpi=120)
    plt.close(fig)
    print(f"wrote {results / 'imbalance.png'} and {results / 'assignment.png'}")


if comm.rank == 0:
    results.mkdir(parents=True, exist_ok=True)
on_rank0(comm, plot)
per_step = [
    {
        "factor": s.factor,
        "plastic_points": log_static.plastic[i],
        "static": {
            "micro_iterations_per_rank": log_static.work[i].tolist(),
            "micro_seconds_per_rank": log_static.seconds[i].tolist(),
            "micro_imbalance": imb["static"][i],
            "micro_seconds_imbalance": imb["static_seconds"][i],
        },
        "balanced": {
            "micro_iterations_per_rank": log_balanced.work[i].tolist(),
            "micro_seconds_per_rank": log_balanced.seconds[i].tolist(),
            "micro_imbalance": imb["balanced"][i],
            "micro_seconds_imbalance": imb["balanced_seconds"][i],
            "migrated_points": log_balanced.migrated[i],
        },
    }
    for i, s in enumerate(r_static.steps)
]
write_json(
    results / "summary.json",
    {
        "threshold": THRESHOLD,
        "steps": per_step,
        "static": r_static.to_dict(),
        "balanced": r_balanced.to_dict(),
    },
    comm,
)

# %% [markdown]
# ## Verification
#
# The same answer: the same load factors and macro Newton iterations, and the reactions of
# every step within `RTOL` of each other.  An even load: on two ranks or more, the balanced
# run reassigns the points after a plastic step, and its micro-iteration imbalance is below
# the static run's at every plastic step after that.  The imbalance of this plate is modest
# (static about 1.1 to 1.2 at the last steps on 2 and 3 ranks): a plastic RVE costs only two
# to three elastic ones per load step, and the plastic zone is a fraction of one rank's points.
# Since the assignment is made from the costs of the step before, it lags a growing plastic
# zone by one step; when most of the plate yields within a step (a larger load), the costs of
# one step no longer predict the next, and a balanced step can be worse than the static one
# (at 0.48 % with the full-size RVE: 1.10 against 1.01 at one step, 1.004 against 1.03 over
# the run).

# %%
for s, b in zip(r_static.steps, r_balanced.steps, strict=True):
    assert s.factor == b.factor and s.iterations == b.iterations, (s, b)
difference = np.abs(curve_balanced[:, 1] - curve_static[:, 1])
assert np.all(difference <= RTOL * np.abs(curve_static[:, 1])), difference
assert all(s.quantities["max_hill_mandel"] < 1e-10 for s in r_balanced.steps)
assert plastic.sum() >= 2, "the plate should yield during the loading"
if comm.size == 1:
    assert np.all(imb["balanced"] == 1.0) and not reassigned
    assert r_balanced.micro["migrated_points"] == 0
else:
    assert reassigned and plastic[reassigned[0]], reassigned
    after = [i for i in range(reassigned[0] + 1, len(factors)) if plastic[i]]
    assert after, "no plastic step after the first reassignment"
    assert np.all(imb["balanced"][after] < imb["static"][after]), (imb, after)
    assert max(log_balanced.migrated[i] for i in after) > 0
if comm.rank == 0:
    print(
        f"same answer: reactions agree to {np.max(difference / np.abs(curve_static[:, 1])):.1e}"
        f" (relative, tolerance {RTOL:g})"
    )
static.destroy()
balanced.destroy()
