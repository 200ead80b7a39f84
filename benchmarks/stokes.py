"""Benchmark of the 3D Stokes cell problem: permeability of the pore space around a sphere.

Unit cube, solid sphere of volume fraction 0.2 (phase ``inclusion``), fluid ``matrix``,
Taylor–Hood P2/P1, periodic.  For each mesh size and each solver -- MUMPS LU and MINRES with the
block preconditioner (GAMG on the viscous block, Jacobi on the pressure mass matrix, see
:func:`multiscale.cell.stokes.block_preconditioner_options`) -- the wall time split into
assembly, factorization / preconditioner set-up and the three solves, the MINRES iterations, the
peak memory (``resource.getrusage`` max RSS, max over ranks) and :math:`K_{11}`.  Each (size,
solver) pair runs in a fresh process so that the peak memory is its own.

    python3 benchmarks/stokes.py [--h 0.2 0.12 0.08] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from mpi4py import MPI

from multiscale.cell.stokes import StokesCellProblem, block_preconditioner_options
from multiscale.mesh import spherical_inclusion
from multiscale.physics.fluid import NewtonianFluid

SOLVERS = ("lu", "block")


def run_one(h: float, solver: str) -> dict:
    """One (mesh size, solver) run on ``COMM_WORLD``."""
    comm = MPI.COMM_WORLD
    t0 = time.perf_counter()
    cell = spherical_inclusion(comm, 0.2, h=h)
    t_mesh = time.perf_counter() - t0
    options = (
        block_preconditioner_options()
        if solver == "block"
        else {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}
    )
    t0 = time.perf_counter()
    with StokesCellProblem(cell, "matrix", NewtonianFluid(1.0), petsc_options=options) as prob:
        t_setup = time.perf_counter() - t0
        result = prob.solve()
    rss = comm.allreduce(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, op=MPI.MAX)
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
        "iterations": result.solver["iterations"],
        "peak_rss_mb": rss,
        "K11": float(result.tensor[0, 0]),
        "energy_residual": result.hill_mandel_residual,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--h", type=float, nargs="+", default=[0.2, 0.12, 0.08])
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--one", nargs=2, metavar=("H", "SOLVER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        row = run_one(float(args.one[0]), args.one[1])
        if MPI.COMM_WORLD.rank == 0:
            print("ROW " + json.dumps(row), flush=True)
        return
    rows = []
    for h in args.h:
        for solver in SOLVERS:
            cmd = [sys.executable, __file__, "--one", str(h), solver]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            row = json.loads(next(x for x in out.splitlines() if x.startswith("ROW "))[4:])
            rows.append(row)
            print(
                f"h={h:<6g} {solver:5s} dofs={row['ndofs']:>7d} "
                f"asm={row['assembly_s']:6.2f}s setup={row['factorization_s']:6.2f}s "
                f"solve={row['solve_s']:6.2f}s its={row['iterations']} "
                f"rss={row['peak_rss_mb']:7.0f}MB K11={row['K11']:.8g}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "stokes", "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
