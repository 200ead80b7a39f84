"""Benchmark of the 3D cell problem: cube with a spherical inclusion.

Volume fraction 0.2, E = 1 (matrix) and 10 (inclusion), nu = 0.3, periodic boundary conditions,
at about 10k, 50k and 200k displacement dofs.  For each size: wall time split into mesh read,
assembly, factorization (or AMG set-up) and the six solves, peak memory (max RSS over ranks, and
summed), and C11, C12, C44 of the effective stiffness (Voigt; C44 is the 23 shear).

    python3 benchmarks/cell.py [--sizes 10000 50000 200000] [--json OUT] [--petsc KEY=VALUE ...]
    mpirun -n 2 python3 benchmarks/cell.py --json OUT
    python3 benchmarks/cell.py --ranks 1 2 [--sizes 200000] --json OUT   # strong scaling

With ``--ranks`` the script launches itself once per rank count with ``mpirun -n k --bind-to
none --oversubscribe`` (ranks not bound to cores, as on a shared machine or in the test suite)
and reports the parallel efficiency :math:`T_1/(k T_k)` of each size, with the BLAS/OpenMP
thread counts the package sets under MPI (one per rank unless the environment sets them:
:mod:`multiscale.threads`).

Meshes are generated once (gmsh, periodic) into ``--mesh-dir`` and read back, so the "read"
column is the cost of reading and distributing a .msh file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.cell import CellProblem
from multiscale.mesh import read_cell_mesh, spherical_inclusion
from multiscale.output import write_json_file
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


def print_rows(rows: list[dict]) -> None:
    cols = [
        "ndofs",
        "ranks",
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


def worker(args: argparse.Namespace, petsc: dict) -> None:
    comm = MPI.COMM_WORLD
    if comm.rank == 0:
        args.mesh_dir.mkdir(parents=True, exist_ok=True)
    rows = [run_size(comm, n, args.mesh_dir, petsc) for n in args.sizes]
    np.testing.assert_array_less([r["hill_mandel"] for r in rows], 1e-8)
    if comm.rank == 0:
        print_rows(rows)
        threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
        out = {"cell_3d_sphere": rows, "threads": threads}
        if args.json:
            write_json_file(args.json, out)


def scaling(args: argparse.Namespace) -> None:
    """Launch one run per rank count (unbound ranks) and report the efficiencies."""
    runs: dict[int, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="cell_bench_") as tmp:
        for k in sorted(set(args.ranks)):
            out = Path(tmp) / f"np{k}.json"
            cmd = ["mpirun", "-n", str(k), "--bind-to", "none", "--oversubscribe", sys.executable]
            cmd += [str(Path(__file__).resolve()), "--json", str(out), "--mesh-dir"]
            cmd += [str(args.mesh_dir), "--sizes", *map(str, args.sizes)]
            cmd += ["--petsc", *args.petsc] if args.petsc else []
            env = {k_: v for k_, v in os.environ.items() if not k_.startswith("OMPI_COMM")}
            print(f"$ {' '.join(cmd)}", flush=True)
            subprocess.run(cmd, check=True, env=env)
            runs[k] = json.loads(out.read_text())["cell_3d_sphere"]
    base = min(runs)
    rows = [r for k in sorted(runs) for r in runs[k]]
    print("\nstrong scaling (ranks not bound to cores):")
    print(f"{'dofs':>10s} {'ranks':>6s} {'total s':>9s} {'solve s':>9s} {'efficiency':>10s}")
    summary = []
    for i, n in enumerate(args.sizes):
        t_base = runs[base][i]["total_s"] * base
        for k in sorted(runs):
            r = runs[k][i]
            eff = t_base / (k * r["total_s"])
            summary.append({"target_dofs": n, "ndofs": r["ndofs"], "ranks": k, "efficiency": eff})
            print(f"{r['ndofs']:10d} {k:6d} {r['total_s']:9.2f} {r['solves_s']:9.2f} {eff:10.2f}")
    if args.json:
        data = {"cell_3d_sphere": rows, "strong_scaling": summary}
        write_json_file(args.json, data)
        print(f"wrote {args.json}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--mesh-dir", type=Path, default=Path("results/bench_meshes"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--petsc", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--ranks", type=int, nargs="+", help="launch a strong-scaling study")
    args = parser.parse_args()
    if args.ranks:
        if "OMPI_COMM_WORLD_SIZE" in os.environ or "PMI_SIZE" in os.environ:
            parser.error("run --ranks without mpirun: it launches its own MPI runs")
        scaling(args)
        return
    worker(args, dict(item.split("=", 1) for item in args.petsc))


if __name__ == "__main__":
    main()
