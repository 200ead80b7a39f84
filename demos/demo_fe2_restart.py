# ---
# jupytext:
#   formats: py:percent
#   text_representation:
#     extension: .py
#     format_name: percent
# ---

# %% [markdown]
# # FE²: a run killed with SIGKILL and restarted on another number of ranks
#
# FE² runs last hours to days, and a job that is killed (a node failure, the end of an
# allocation) should lose at most the steps since its last checkpoint.  Here a small
# elastoplastic FE² problem is loaded and unloaded in six steps, so that the committed micro
# history (the plastic strains of every RVE at every macro Gauss point) decides the answer: the
# unloading branch is elastic only if the RVEs remember how far they yielded.
#
# 1. The run is started as a **serial** child process, `python3 -m multiscale.cli fe2 CONFIG`,
#    with `output: {checkpoint: {every: 1}}`: a checkpoint after every converged load step,
#    written atomically (every rank writes its part into `.tmp-<k>`, rank 0 writes a manifest
#    and renames the directory to `step-<k>`).  As soon as its first complete checkpoint
#    appears the demo kills it with SIGKILL.  (If the child is faster than the demo's polling,
#    the package's test hook `MULTISCALE_CHECKPOINT_KILL` makes it kill itself while it writes
#    its third checkpoint: the run is always killed after its first or second checkpoint.)
# 2. The run is **restarted** from the newest complete checkpoint in the demo's own
#    communicator, with the function the command line uses for `multiscale fe2 CONFIG
#    --restart DIR` (`multiscale.fe2.config.run_fe2(comm, config, restart=DIR)`).  Under
#    `mpirun -n 2` this is a restart from 1 rank on 2: the macro displacement and the micro
#    rows are keyed by the original cell index and quadrature point, not by the partition.
# 3. The same problem runs **uninterrupted** in the same communicator.
#
# Verification: the load–displacement curves, the step records and the committed micro state
# of every macro Gauss point (the internal variables of every micro quadrature point, the
# fluctuation, the mean equivalent plastic strain $\langle p\rangle$ of each RVE), read by key
# from the final checkpoints of both runs, agree to the solver tolerance ($10^{-10}$ relative;
# a restart follows the same Newton path, so the difference is round-off).
#
# Outputs (under `$MULTISCALE_RESULTS`, default `results/`, in `fe2_restart/`): `config.yaml`,
# `killed/` (the killed run's checkpoints, then the restarted run's summary and checkpoints),
# `uninterrupted/`, `summary.json` (both curves, the kill point, the differences) and
# `restart.png` (the two load–displacement curves with the kill point).
#
# Run it: `scripts/env-run python3 demos/demo_fe2_restart.py` (or under `mpirun -n 2`).

# %%
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from mpi4py import MPI

from multiscale.coupling.checkpoint import KILL_ENV, find_checkpoint
from multiscale.fe2.config import FE2Config, run_fe2
from multiscale.output import on_rank0, write_json

comm = MPI.COMM_WORLD
shrink = bool(os.environ.get("CI"))
results = (Path(os.environ.get("MULTISCALE_RESULTS", "results")) / "fe2_restart").resolve()
if not logging.getLogger().handlers:
    logging.basicConfig(
        level=logging.INFO if comm.rank == 0 else logging.WARNING, format="%(message)s"
    )
    logging.getLogger("multiscale.fe2.solver").setLevel(logging.WARNING)
    for name in ("multiscale.progress", "multiscale.output", "multiscale.coupling.checkpoint"):
        logging.getLogger(name).setLevel(logging.WARNING)

# %% [markdown]
# ## The problem
#
# A unit square of a fibre composite in plane strain (a J2 matrix with linear hardening, elastic
# fibres of volume fraction 0.4), fixed at the bottom and pulled up at the top by 2 % of its
# height (load factor 1), then unloaded to a quarter of that.  The macro mesh has 2 × 2
# squares of two triangles (16 macro Gauss points at full size; 2 × 1 under CI); every point
# carries its own RVE and plastic history.

# %%
U_TOP = 0.02
FACTORS = [0.25, 0.5, 0.75, 1.0, 0.5, 0.25]
RTOL = 1e-10
n_macro = [2, 1] if shrink else [2, 2]
h_rve = 0.2 if shrink else 0.1
spec = {
    "macro": {
        "mesh": {"type": "rectangle", "lengths": [1.0, 1.0], "n": n_macro},
        "bcs": [
            {"boundary": "bottom", "value": [0.0, 0.0]},
            {"boundary": "top", "component": 1, "value": U_TOP},
        ],
    },
    "micro": {
        "mesh": {"type": "circular_inclusion", "vf": 0.4, "h": h_rve},
        "materials": {
            "matrix": {"law": "j2", "E": 1.0, "nu": 0.3, "sigma_y": 0.01, "H": 0.1},
            "inclusion": {"law": "elastic", "E": 10.0, "nu": 0.3},
        },
    },
    "loading": {"factors": FACTORS},
    "output": {"fields": False, "checkpoint": {"every": 1, "keep": 2}},
}
config_file = results / "config.yaml"
killed_dir, reference_dir = results / "killed", results / "uninterrupted"


def write_config() -> None:
    for directory in (killed_dir, reference_dir):  # a rerun starts afresh
        shutil.rmtree(directory, ignore_errors=True)
    results.mkdir(parents=True, exist_ok=True)
    config_file.write_text(yaml.safe_dump(spec, sort_keys=False))


on_rank0(comm, write_config)
comm.barrier()


def config_for(directory: Path) -> FE2Config:
    config = FE2Config.from_file(config_file)
    config.output["directory"] = str(directory)
    return config


# %% [markdown]
# ## 1. Kill a serial run with SIGKILL after a checkpoint
#
# Rank 0 starts the child with the MPI runtime's variables (`OMPI_*`, `PMIX_*`, `PMI_*`,
# `PRTE_*`) removed, so that it is a singleton MPI job of its own and does not try to join the
# demo's; the other ranks wait (without spinning) for the outcome, which rank 0 broadcasts.


# %%
def child_environment() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PMI_", "PRTE_"))
    }
    env[KILL_ENV] = "3:parts"  # the backstop: SIGKILL while writing checkpoint 3
    return env


def kill_after_first_checkpoint() -> dict:
    """Run the child, SIGKILL it once a complete checkpoint exists; its fate and timing."""
    command = [sys.executable, "-m", "multiscale.cli", "-q", "fe2", str(config_file)]
    command += ["--output", str(killed_dir)]
    t0 = time.perf_counter()
    child = subprocess.Popen(
        command,
        env=child_environment(),
        cwd=results,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    latest = killed_dir / "checkpoint" / "latest"
    deadline = time.monotonic() + 300.0
    while child.poll() is None and not latest.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    killed_by_demo = child.poll() is None
    if killed_by_demo:
        child.send_signal(signal.SIGKILL)
    stderr = child.communicate(timeout=60)[1]
    return {
        "returncode": child.returncode,
        "killed_by": "demo" if killed_by_demo else "checkpoint hook",
        "seconds": time.perf_counter() - t0,
        "stderr": stderr[-2000:],
    }


def launch_and_kill() -> dict:
    try:
        return kill_after_first_checkpoint()
    except Exception as err:  # reported on every rank below (no rank left waiting)
        return {"returncode": None, "error": repr(err)}


outcome = launch_and_kill() if comm.rank == 0 else None
waiting = comm.Ibarrier()
while not waiting.Test():
    time.sleep(0.02)
outcome = comm.bcast(outcome, root=0)
assert outcome["returncode"] == -signal.SIGKILL, f"the child was not killed: {outcome}"
checkpoint = find_checkpoint(killed_dir / "checkpoint", comm)
kill_step = checkpoint.step
assert kill_step in (1, 2), kill_step
if comm.rank == 0:
    left = sorted(p.name for p in (killed_dir / "checkpoint").iterdir())
    print(
        f"child killed with SIGKILL by the {outcome['killed_by']} after "
        f"{outcome['seconds']:.1f} s; left in checkpoint/: {left}; newest complete: "
        f"step {kill_step} (load factor {checkpoint.manifest['factor']:g}, written on "
        f"{checkpoint.manifest['ranks']} rank)"
    )

# %% [markdown]
# ## 2. Restart on this communicator, 3. the uninterrupted run

# %%
t0 = time.perf_counter()
restarted = run_fe2(comm, config_for(killed_dir), restart=killed_dir)
t_restart = time.perf_counter() - t0
t0 = time.perf_counter()
reference = run_fe2(comm, config_for(reference_dir))
t_reference = time.perf_counter() - t0
summary = json.loads((killed_dir / "summary.json").read_text())
assert summary["restart"]["step"] == kill_step and summary["restart"]["ranks"] == 1
if comm.rank == 0:
    print(
        f"restart on {comm.size} rank(s) from step {kill_step}: {t_restart:.1f} s; "
        f"uninterrupted run: {t_reference:.1f} s"
    )

# %% [markdown]
# ## The committed micro state
#
# The final checkpoint of each run (written after the last step) holds, per macro Gauss point
# and keyed by (original cell, point), the committed internal variables of the RVE
# (`committed_state`: the plastic strain and equivalent plastic strain of every micro
# quadrature point), its fluctuation and sensitivities, and the committed responses (stress,
# tangent, $\langle p\rangle$).  Rank 0 reads both and compares them row by row.


# %%
def micro_rows(directory: Path) -> dict[str, np.ndarray]:
    """The committed micro rows of the newest checkpoint in ``directory``, sorted by key."""
    found = find_checkpoint(directory / "checkpoint", MPI.COMM_SELF)
    parts = [np.load(f) for f in sorted(found.path.glob("micro-*.npz"))]
    order = np.argsort(np.concatenate([p["__keys__"] for p in parts]))
    names = [n for n in parts[0].files if n.startswith(("committed_", "response_"))]
    return {n: np.concatenate([p[n] for p in parts])[order] for n in names}


def micro_differences() -> dict[str, float]:
    a, b = micro_rows(reference_dir), micro_rows(killed_dir)
    assert sorted(a) == sorted(b) and "committed_state" in a, (sorted(a), sorted(b))
    out = {}
    for name, value in a.items():
        if name.endswith("hill_mandel"):  # round-off in both runs
            continue
        scale = max(float(np.max(np.abs(value))), 1e-300)
        out[name] = float(np.max(np.abs(b[name] - value))) / scale
    mean_p = a["response_mean_p"]
    out["points"] = len(mean_p)
    out["yielded_points"] = int(np.sum(mean_p > 0.0))
    out["max_mean_p"] = float(mean_p.max())
    return out


micro = comm.bcast(micro_differences() if comm.rank == 0 else None, root=0)
curve_restart, curve_reference = restarted.curve(), reference.curve()
reaction_difference = float(  # relative to the largest reaction (the curve crosses zero)
    np.max(np.abs(curve_restart[:, 1] - curve_reference[:, 1]))
    / np.max(np.abs(curve_reference[:, 1]))
)
if comm.rank == 0:
    print(f"\n{'step':>4} {'factor':>6} {'u_top':>7} {'reaction':>12} {'restarted':>12} {'its':>4}")
    for i, (s, r) in enumerate(zip(reference.steps, restarted.steps, strict=True)):
        mark = "  <- killed after this step" if i + 1 == kill_step else ""
        print(
            f"{i + 1:4d} {s.factor:6.3f} {s.factor * U_TOP:7.4f} {curve_reference[i, 1]:12.6e}"
            f" {curve_restart[i, 1]:12.6e} {r.iterations:4d}{mark}"
        )
    print(
        f"\n{micro['points']} macro Gauss points, {micro['yielded_points']} yielded "
        f"(max <p> {micro['max_mean_p']:.2e}); largest relative differences, restarted "
        f"against uninterrupted: reactions {reaction_difference:.1e}"
    )
    for name, value in micro.items():
        if name.startswith(("committed_", "response_")):
            print(f"  {name:24s} {value:.1e}")

# %% [markdown]
# ## Figure
#
# `restart.png`: the reaction on the top against the top displacement, uninterrupted (line) and
# restarted (markers: filled for the steps restored from the checkpoint, open for the steps
# solved after the restart), the kill point ringed.


# %%
def plot() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    u = curve_reference[:, 0] * U_TOP
    u_r = curve_restart[:, 0] * U_TOP
    k = kill_step
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.plot(np.r_[0.0, u], np.r_[0.0, curve_reference[:, 1]], "-", color="0.4", lw=2,
            label=f"uninterrupted, {comm.size} rank(s)")  # fmt: skip
    ax.plot(u_r[:k], curve_restart[:k, 1], "o", color="C3",
            label="killed run (1 rank, serial child), restored")  # fmt: skip
    ax.plot(u_r[k:], curve_restart[k:, 1], "o", mfc="none", color="C0", ms=8,
            label=f"after the restart on {comm.size} rank(s)")  # fmt: skip
    ax.plot(u_r[k - 1], curve_restart[k - 1, 1], "kx", ms=14, mew=2,
            label=f"SIGKILL after checkpoint {k}")  # fmt: skip
    ax.set(
        xlabel="top displacement",
        ylabel="reaction on the top (y)",
        title="FE² (J2 RVEs): loading, unloading, kill and restart",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(results / "restart.png", dpi=120)
    plt.close(fig)
    print(f"wrote {results / 'restart.png'}")


on_rank0(comm, plot)
write_json(
    results / "summary.json",
    {
        "ranks": comm.size,
        "kill": {k: v for k, v in outcome.items() if k != "stderr"} | {"step": kill_step},
        "curve_uninterrupted": curve_reference.tolist(),
        "curve_restarted": curve_restart.tolist(),
        "max_reaction_difference": reaction_difference,
        "micro_differences": micro,
        "seconds": {"restart": t_restart, "uninterrupted": t_reference},
    },
    comm,
)

# %% [markdown]
# ## Verification
#
# The restarted run reached the same load factors with the same macro Newton iterations and
# RVE solves; its reactions and the committed micro state of every point equal the
# uninterrupted run's to `RTOL`; the loading yielded RVEs, so the history was really needed
# (the unloading branch lies far below the loading one and reaches compression).

# %%
assert len(restarted.steps) == len(reference.steps) == len(FACTORS)
for s, r in zip(reference.steps, restarted.steps, strict=True):
    assert s.factor == r.factor and s.iterations == r.iterations, (s, r)
    assert s.quantities["rve_solves"] == r.quantities["rve_solves"], (s, r)
assert reaction_difference <= RTOL, reaction_difference
for name, value in micro.items():
    if name.startswith(("committed_", "response_")):
        assert value <= RTOL, (name, value)
assert micro["yielded_points"] > 0, "the loading should yield RVEs"
assert restarted.micro["solves_total"] == reference.micro["solves_total"]
worst = max([reaction_difference] + [v for k, v in micro.items() if k.startswith("committed_")])
if comm.rank == 0:
    print(f"restarted = uninterrupted to {worst:.1e} (tolerance {RTOL:g})")
