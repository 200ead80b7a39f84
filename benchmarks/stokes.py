"""Benchmark of the 3D Stokes cell problem: permeability of the pore space around a sphere.

Unit cube, solid sphere of volume fraction 0.2 (phase ``inclusion``), fluid ``matrix``,
Taylor–Hood P2/P1, periodic, three load cases.  For each mesh size, MINRES with the block
preconditioner (:func:`multiscale.cell.stokes.block_preconditioner_options`: an AMG V-cycle on
the viscous block, BoomerAMG for ``block``, GAMG for ``block-gamg``, Chebyshev-Jacobi on the
pressure mass matrix) and MUMPS LU (``lu``): the wall times of
the mesh, the spaces and constraint, the assembly, the factorization / preconditioner set-up and
the three solves, the process CPU time, the MINRES iterations, the peak memory
(``resource.getrusage`` max RSS, max over ranks), :math:`K_{11}` and the load average of the
machine (one-minute, at the end of the run).  Each (size, solver) pair runs in a fresh process
so that the peak memory is its own.

LU is skipped where it would not fit: its peak memory and set-up time are extrapolated from the
two largest LU runs so far (power laws in the number of dofs) and LU runs only while they stay
below ``--lu-max-gb`` and ``--lu-max-s``.

    python3 benchmarks/stokes.py [--h 0.2 0.12 0.08 0.05 0.023] [--solvers block lu] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

from mpi4py import MPI

from multiscale.cell.stokes import StokesCellProblem, block_preconditioner_options
from multiscale.mesh import spherical_inclusion
from multiscale.physics.fluid import NewtonianFluid

SOLVERS = ("block", "lu", "block-gamg")
LU = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}


def run_one(h: float, solver: str) -> dict:
    """One (mesh size, solver) run on ``COMM_WORLD``."""
    comm = MPI.COMM_WORLD
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    cell = spherical_inclusion(comm, 0.2, h=h)
    t_mesh = time.perf_counter() - t0
    if solver.startswith("block"):
        options = block_preconditioner_options("gamg" if solver == "block-gamg" else None)
    else:
        options = dict(LU)
    t0 = time.perf_counter()
    with StokesCellProblem(cell, "matrix", NewtonianFluid(1.0), petsc_options=options) as prob:
        t_setup = time.perf_counter() - t0
        result = prob.solve()
    rss = comm.allreduce(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, op=MPI.MAX)
    cpu = comm.allreduce(time.process_time() - cpu0, op=MPI.MAX)
    t = result.timings
    return {
        "h": h,
        "solver": solver,
        "ranks": comm.size,
        "ndofs": result.ndofs,
        "mesh_s": comm.allreduce(t_mesh, op=MPI.MAX),
        "spaces_forms_s": comm.allreduce(t_setup, op=MPI.MAX),
        "assembly_s": t.get("assembly", 0.0),
        "factorization_s": t.get("factorization", 0.0),
        "solve_s": t.get("solve", 0.0),
        "cpu_s": cpu,
        "iterations": result.solver["iterations"],
        "peak_rss_mb": rss,
        "K11": float(result.tensor[0, 0]),
        "energy_residual": result.hill_mandel_residual,
        "load_average": os.getloadavg()[0],
    }


def power_law(rows: list[dict], key: str, ndofs: int) -> float:
    """``key`` at ``ndofs`` extrapolated through the last two rows as :math:`a\\,n^b`."""
    (n0, y0), (n1, y1) = [(r["ndofs"], r[key]) for r in rows[-2:]]
    b = math.log(y1 / y0) / math.log(n1 / n0)
    return y1 * (ndofs / n1) ** b


def run_child(h: float, solver: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")  # threaded BLAS / hypre on a shared machine
    cmd = [sys.executable, __file__, "--one", str(h), solver]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(next(x for x in out.splitlines() if x.startswith("ROW "))[4:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--h", type=float, nargs="+", default=[0.2, 0.12, 0.08])
    parser.add_argument("--solvers", nargs="+", choices=SOLVERS, default=["block", "lu"])
    parser.add_argument("--json", help="write the rows here (rewritten after every run)")
    parser.add_argument("--lu-max-gb", type=float, default=12.0, help="predicted LU memory cap")
    parser.add_argument("--lu-max-s", type=float, default=1200.0, help="predicted LU set-up cap")
    parser.add_argument("--one", nargs=2, metavar=("H", "SOLVER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        row = run_one(float(args.one[0]), args.one[1])
        if MPI.COMM_WORLD.rank == 0:
            print("ROW " + json.dumps(row), flush=True)
        return
    rows: list[dict] = []
    for h in args.h:
        for solver in args.solvers:
            lu_rows = [r for r in rows if r["solver"] == "lu" and "skipped" not in r]
            if solver == "lu" and len(lu_rows) >= 2:
                ndofs = rows[-1]["ndofs"]  # the block run of this size
                mem = power_law(lu_rows, "peak_rss_mb", ndofs) / 1024.0
                secs = power_law(lu_rows, "factorization_s", ndofs)
                if mem > args.lu_max_gb or secs > args.lu_max_s:
                    row = {"h": h, "solver": "lu", "ndofs": ndofs, "skipped": True,
                           "predicted_peak_gb": mem, "predicted_factorization_s": secs}  # fmt: skip
                    rows.append(row)
                    print(f"h={h:<6g} lu    dofs={ndofs:>8d} skipped: predicted {mem:.1f} GB, "
                          f"factorization {secs:.0f} s", flush=True)  # fmt: skip
                    continue
            row = run_child(h, solver)
            rows.append(row)
            print(
                f"h={h:<6g} {solver:5s} dofs={row['ndofs']:>8d} mesh={row['mesh_s']:6.1f}s "
                f"spaces={row['spaces_forms_s']:6.1f}s asm={row['assembly_s']:6.1f}s "
                f"setup={row['factorization_s']:6.1f}s solve={row['solve_s']:7.1f}s "
                f"cpu={row['cpu_s']:7.1f}s its={row['iterations']} "
                f"rss={row['peak_rss_mb']:7.0f}MB K11={row['K11']:.8g} "
                f"load={row['load_average']:.1f}",
                flush=True,
            )
            if args.json:
                with open(args.json, "w") as f:
                    json.dump({"benchmark": "stokes", "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
