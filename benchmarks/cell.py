"""Benchmark of the 3D cell problem: cube with a spherical inclusion.

Volume fraction 0.2, E = 1 (matrix) and 10 (inclusion), nu = 0.3, periodic boundary conditions,
at about 10k, 50k and 200k displacement dofs.  For each size: wall time split into mesh read,
assembly, factorization (or AMG set-up) and the six solves, peak memory (max RSS over ranks, and
summed), and C11, C12, C44 of the effective stiffness (Voigt; C44 is the 23 shear).

    python3 benchmarks/cell.py [--sizes 10000 50000 200000] [--json OUT] [--petsc KEY=VALUE ...]
    mpirun -n 2 python3 benchmarks/cell.py --json OUT

Meshes are generated once (gmsh, periodic) into ``--mesh-dir`` and read back, so the "read"
column is the cost of reading and distributing a .msh file.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.cell import CellProblem
from multiscale.mesh import read_cell_mesh, spherical_inclusion
from multiscale.physics import IsotropicElasticity

#: characteristic lengths giving about 10k, 50k and 200k displacement dofs (calibrated here)
H_FOR_DOFS = {10_000: 0.075, 50_000: 0.04, 200_000: 0.023}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_size(comm: MPI.Comm, target: int, mesh_dir: Path, petsc: dict) -> dict:
    h = H_FOR_DOFS.get(target) or 0.075 * (10_000 / target) ** (1 / 3)
    path = mesh_dir / f"sphere_vf0.2_h{h:.4f}.msh"
    if not path.exists():
        spherical_inclusion(comm, 0.2, h=h, path=path)
    comm.barrier()
    t0 = time.perf_counter()
    cell = read_cell_mesh(path, comm)
    t_read = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    laws = {
        "matrix": IsotropicElasticity.from_young(1.0, 0.3),
        "inclusion": IsotropicElasticity.from_young(10.0, 0.3),
    }
    t0 = time.perf_counter()
    problem = CellProblem(cell, laws, petsc_options=petsc)
    t_setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    result = problem.solve("periodic")
    t = result.timings
    C = result.tensor
    rss = comm.allreduce(_peak_rss_mb(), op=MPI.MAX)
    rss_sum = comm.allreduce(_peak_rss_mb(), op=MPI.SUM)
    return {
        "target_dofs": target,
        "ndofs": result.ndofs,
        "h": h,
        "ranks": comm.size,
        "mesh_read_s": t_read,
        "forms_s": t_setup + t.get("compile", 0.0),
        "constraint_s": t.get("constraint", 0.0),
        "assembly_s": t.get("assembly", 0.0),
        "factorization_s": t.get("factorization", 0.0),
        "solves_s": t.get("solve", 0.0),
        "postprocess_s": t.get("postprocess", 0.0),
        "total_s": t_read + t_setup + sum(t.values()),
        "peak_rss_mb_max_rank": rss,
        "peak_rss_mb_all_ranks": rss_sum,
        "C11": C[0, 0],
        "C12": C[0, 1],
        "C44": C[3, 3],
        "hill_mandel": result.hill_mandel_residual,
        "solver": result.solver["options"].get("pc_type"),
        "iterations": result.solver["iterations"],
        "volume_fraction": result.volume_fractions["inclusion"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--mesh-dir", type=Path, default=Path("results/bench_meshes"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--petsc", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    petsc = dict(item.split("=", 1) for item in args.petsc)
    if comm.rank == 0:
        args.mesh_dir.mkdir(parents=True, exist_ok=True)
    rows = [run_size(comm, n, args.mesh_dir, petsc) for n in args.sizes]
    if comm.rank == 0:
        cols = [
            "ndofs",
            "mesh_read_s",
            "assembly_s",
            "factorization_s",
            "solves_s",
            "total_s",
            "peak_rss_mb_all_ranks",
            "C11",
            "C12",
            "C44",
        ]
        print(" ".join(f"{c:>14s}" for c in cols))
        for r in rows:
            print(" ".join(f"{r[c]:14.4g}" for c in cols), r["solver"], r["iterations"])
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"cell_3d_sphere": rows}, indent=1, default=float))
    np.testing.assert_array_less([r["hill_mandel"] for r in rows], 1e-8)


if __name__ == "__main__":
    main()
