"""Multiscale bases at about 10^6 fine dofs: offline and online time of a multiscale method
against the fine CG + AMG solve, and the parallel efficiency of the offline phase.

    python3 benchmarks/bases.py --json results/bench_bases.json
    mpirun -n 2 python3 benchmarks/bases.py --json results/bench_bases_np2.json
    python3 benchmarks/bases.py --fine-cells 256 --coarse-cells 16 --json results/quick.json

The problem: :math:`-\\nabla\\cdot(a\\nabla u) = 1` on the unit square, :math:`u = 0` on the
boundary, :math:`a` the oscillatory coefficient of Hou & Wu with period
:math:`\\varepsilon` = ``1/inv_eps``, P1 on a uniform fine mesh of ``fine_cells`` x
``fine_cells`` squares (two triangles each; the default 1024 gives 1,050,625 dofs, 8 per
period), nested in the coarse mesh of ``coarse_cells`` (default 32, :math:`H = 4\\varepsilon`).

Phases (wall seconds, the maximum over the ranks):

* ``mesh_s``: the coarse and the distributed fine mesh (shared with the fine solve, counted in
  neither);
* ``offline_s`` = ``nested_s`` (the coarse-to-fine maps and the replicated fine dof table) +
  ``elements_s`` (every element's :math:`A^K, M^K, b^K`) + ``basis_s`` (the local problems,
  :math:`P`, :math:`P^TAP` and the coarse solver set-up);
* ``online_s``: the coarse solve and :math:`Pu_H`;
* ``fine_system_s``: assembling the fine :math:`A, b`; ``fine_solve_s``: the fine solve
  (CG + BoomerAMG set-up and iterations, ``rtol`` 1e-10), and ``online_over_fine_time`` =
  ``online_s / fine_solve_s``.

**Parallel efficiency of the offline phase.**  Under ``mpirun -n p`` (p > 1) the script first
times the offline phase of the same problem on rank 0 alone (its own ``COMM_SELF`` meshes; the
other ranks wait without spinning, so rank 0 has a core to itself), frees it, then runs
everything on all ranks: ``offline_parallel_efficiency`` = :math:`T_1/(p\\,T_p)`, also per
part (``offline_parts_efficiency``).  ``--serial-offline-seconds T1`` skips the serial run and
uses ``T1`` instead (e.g. ``offline_s`` of an earlier 1-rank run of the same arguments on an
idle machine).  Peak resident memory per rank is reported too: the coarse mesh, the fine dof
table and the element data are replicated on every rank (:mod:`multiscale.bases.nested`).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from mpi4py import MPI

from multiscale.bases import (
    FineProblem,
    LODParameters,
    MsFEMParameters,
    NestedMeshes,
    lod_space,
    msfem_space,
    unit_square_pair,
)
from multiscale.cli.bases import build_coefficient, max_seconds
from multiscale.output import write_json_file

FINE_OPTIONS = {"ksp_type": "cg", "pc_type": "hypre", "ksp_rtol": 1e-10}


def build_space(fine: FineProblem, method: str, layers: int):
    if method == "msfem":
        return msfem_space(fine, MsFEMParameters(layers))
    return lod_space(fine, LODParameters(layers))


def offline(comm: MPI.Comm, args: argparse.Namespace) -> tuple[dict[str, float], Any, Any]:
    """Meshes, then the timed offline phase on ``comm``; returns the times, the fine problem
    and the coarse space."""
    t0 = time.perf_counter()
    coarse, fine_mesh = unit_square_pair(
        comm, args.coarse_cells, args.fine_cells // args.coarse_cells
    )
    times = {"mesh_s": max_seconds(comm, t0)}
    t0 = time.perf_counter()
    meshes = NestedMeshes(coarse, fine_mesh)
    times["nested_s"] = max_seconds(comm, t0)
    a = build_coefficient(
        {"type": "oscillatory", "eps": 1.0 / args.inv_eps}, 2, args.coarse_cells, args.fine_cells
    )
    fine = FineProblem(meshes, a, 1.0, petsc_options=FINE_OPTIONS)
    times["fine_system_s"] = float(comm.allreduce(fine.timings["system"], op=MPI.MAX))
    times["elements_s"] = float(comm.allreduce(fine.timings["elements"], op=MPI.MAX))
    comm.Barrier()
    t0 = time.perf_counter()
    space = build_space(fine, args.method, args.layers)
    space.ksp.setUp()
    times["basis_s"] = max_seconds(comm, t0)
    times["offline_s"] = times["nested_s"] + times["elements_s"] + times["basis_s"]
    return times, fine, space


def wait_for_rank0(comm: MPI.Comm) -> None:
    """A barrier that sleeps instead of spinning (the other ranks wait while rank 0 works)."""
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(0.05)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--fine-cells", type=int, default=1024, help="fine squares per side")
    p.add_argument("--coarse-cells", type=int, default=32, help="coarse squares per side")
    p.add_argument("--inv-eps", type=float, default=128.0, help="1/eps of the coefficient")
    p.add_argument("--method", choices=("msfem", "lod"), default="msfem")
    p.add_argument(
        "--layers", type=int, default=0, help="oversampling layers (msfem) or patch layers (lod)"
    )
    p.add_argument(
        "--serial-offline-seconds",
        type=float,
        help="T1 of the offline phase from an earlier 1-rank run (skips the serial run)",
    )
    args = p.parse_args()
    if args.fine_cells % args.coarse_cells:
        p.error("--fine-cells must be a multiple of --coarse-cells")
    comm = MPI.COMM_WORLD
    out: dict[str, Any] = {
        "ranks": comm.size,
        "host": {
            "node": platform.node(),
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg()[0],
        },
        "problem": {
            "fine_cells": args.fine_cells,
            "coarse_cells": args.coarse_cells,
            "eps": 1.0 / args.inv_eps,
            "fine_dofs": (args.fine_cells + 1) ** 2,
            "method": args.method,
            "layers": args.layers,
        },
        "fine_solver": FINE_OPTIONS,
    }
    serial: dict[str, float] | None = None
    if args.serial_offline_seconds is not None:
        serial = {"offline_s": args.serial_offline_seconds}
        out["serial_offline_source"] = "--serial-offline-seconds"
    elif comm.size > 1:
        if comm.rank == 0:
            try:
                serial, fine, space = offline(MPI.COMM_SELF, args)
                space.destroy()
                fine.destroy()
                del fine, space
                gc.collect()
            except BaseException:  # the other ranks wait in wait_for_rank0: end them all
                traceback.print_exc()
                sys.stderr.flush()
                comm.Abort(1)
            print(f"rank 0 alone: {serial}", flush=True)
        wait_for_rank0(comm)
        serial = comm.bcast(serial, root=0)
        out["serial_offline_source"] = "rank 0 alone, in this run"
    times, fine, space = offline(comm, args)
    comm.Barrier()
    t0 = time.perf_counter()
    sol = space.solve()
    times["online_s"] = max_seconds(comm, t0)
    comm.Barrier()
    t0 = time.perf_counter()
    u = fine.solve()
    times["fine_solve_s"] = max_seconds(comm, t0)
    errors = space.errors(sol, u)
    out.update(times)
    out["coarse_dofs"] = int(space.A_H.getSize()[0])
    out["coarse_iterations"] = int(sol.iterations)
    out["errors_vs_fine"] = errors
    out["online_over_fine_time"] = times["online_s"] / times["fine_solve_s"]
    out["offline_over_fine_time"] = times["offline_s"] / times["fine_solve_s"]
    out["host"]["load_average_at_end"] = os.getloadavg()[0]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB -> GB
    out["peak_rss_gb_per_rank"] = comm.allgather(rss)
    if serial is not None and comm.size > 1:
        out["serial_offline"] = serial
        out["offline_parallel_efficiency"] = serial["offline_s"] / (comm.size * times["offline_s"])
        if len(serial) > 1:
            out["offline_parts_efficiency"] = {
                k: serial[k] / (comm.size * times[k]) for k in ("nested_s", "elements_s", "basis_s")
            }
    space.destroy()
    fine.destroy()
    if comm.rank == 0:
        write_json_file(args.json, out)
        print(json.dumps(out, indent=2), flush=True)


if __name__ == "__main__":
    main()
