"""Benchmark of the 3D cell problem: cube with a spherical inclusion.

Volume fraction 0.2, E = 1 (matrix) and 10 (inclusion), nu = 0.3, periodic boundary conditions,
at about 10k, 50k and 200k displacement dofs.  For each size: wall time split into mesh read,
assembly, factorization (or AMG set-up) and the six solves, peak memory (max RSS over ranks, and
summed), and C11, C12, C44 of the effective stiffness (Voigt; C44 is the 23 shear).

    python3 benchmarks/cell.py [--sizes 10000 50000 200000] [--json OUT] [--petsc KEY=VALUE ...]
        [--tensor-rtol 1e-8] [--reference REF.json]
    mpirun -n 2 python3 benchmarks/cell.py --json OUT
    python3 benchmarks/cell.py --ranks 1 2 [--sizes 200000] --json OUT   # strong scaling

With ``--ranks`` the script launches itself once per rank count with ``mpirun -n k --bind-to
none --oversubscribe`` (ranks not bound to cores, as on a shared machine or in the test suite)
and reports the parallel efficiency :math:`T_1/(k T_k)` of each size, with the BLAS/OpenMP
thread counts the package sets under MPI (one per rank unless the environment sets them:
:mod:`multiscale.threads`).

Meshes are generated once (gmsh, periodic) into ``--mesh-dir`` and read back, so the "read"
column is the cost of reading and distributing a .msh file.

``--tensor-rtol`` is the relative accuracy asked of the tensor (``CellProblem(tensor_rtol=...)``,
which sets the CG tolerance, see :func:`multiscale.cell.default_petsc_options`; default 1e-8).
Each row also holds the whole tensor and the CPU seconds of the cell problem (user + system,
summed over ranks: on a loaded machine a fairer measure than wall time).  With ``--reference``,
a JSON written by an earlier run (say with ``--petsc ksp_rtol=1e-12``), each row gets
``tensor_error``, :math:`\\max|C - C_{ref}|/\\max|C_{ref}|` against the reference row of the same
mesh.
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
KEY = "cell_3d_sphere"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_size(
    comm: MPI.Comm, target: int, mesh_dir: Path, petsc: dict, tensor_rtol: float = 1.0e-8
) -> dict:
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
    t0, cpu0 = time.perf_counter(), _cpu_s()
    problem = CellProblem(cell, laws, tensor_rtol=tensor_rtol, petsc_options=petsc)
    t_setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    result = problem.solve("periodic")
    cpu = comm.allreduce(_cpu_s() - cpu0, op=MPI.SUM)
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
        "cell_problem_s": t_setup + sum(t.values()),
        "cell_problem_cpu_s": cpu,
        "peak_rss_mb_max_rank": rss,
        "peak_rss_mb_all_ranks": rss_sum,
        "C11": C[0, 0],
        "C12": C[0, 1],
        "C44": C[3, 3],
        "tensor": C.tolist(),
        "tensor_rtol": tensor_rtol,
        "hill_mandel": result.hill_mandel_residual,
        "solver": result.solver["options"].get("pc_type"),
        "ksp_rtol": result.solver["options"].get("ksp_rtol"),
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
        "cell_problem_cpu_s",
        "peak_rss_mb_all_ranks",
        "C11",
        "C12",
        "C44",
    ]
    print(" ".join(f"{c:>14s}" for c in cols))
    for r in rows:
        error = f" error {r['tensor_error']:.2e}" if "tensor_error" in r else ""
        print(" ".join(f"{r[c]:14.4g}" for c in cols), r["solver"], r["iterations"], error)


def tensor_errors(rows: list[dict], reference: Path) -> None:
    """Add to each row ``tensor_error`` against the reference row of the same mesh (same number
    of dofs), :math:`\\max|C - C_{ref}|/\\max|C_{ref}|`."""
    ref = {r["ndofs"]: np.array(r["tensor"]) for r in json.loads(reference.read_text())[KEY]}
    for row in rows:
        C_ref = ref.get(row["ndofs"])
        if C_ref is not None:
            error = np.abs(np.array(row["tensor"]) - C_ref).max() / np.abs(C_ref).max()
            row["tensor_error"] = float(error)


def worker(args: argparse.Namespace, petsc: dict) -> None:
    comm = MPI.COMM_WORLD
    if comm.rank == 0:
        args.mesh_dir.mkdir(parents=True, exist_ok=True)
    rows = [run_size(comm, n, args.mesh_dir, petsc, args.tensor_rtol) for n in args.sizes]
    np.testing.assert_array_less([r["hill_mandel"] for r in rows], 1e-8)
    if args.reference:
        tensor_errors(rows, args.reference)
    if comm.rank == 0:
        print_rows(rows)
        threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
        out = {KEY: rows, "threads": threads}
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
            cmd += ["--tensor-rtol", str(args.tensor_rtol)]
            cmd += ["--petsc", *args.petsc] if args.petsc else []
            env = {k_: v for k_, v in os.environ.items() if not k_.startswith("OMPI_COMM")}
            print(f"$ {' '.join(cmd)}", flush=True)
            subprocess.run(cmd, check=True, env=env)
            runs[k] = json.loads(out.read_text())[KEY]
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
        data = {KEY: rows, "strong_scaling": summary}
        write_json_file(args.json, data)
        print(f"wrote {args.json}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--mesh-dir", type=Path, default=Path("results/bench_meshes"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--petsc", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--tensor-rtol", type=float, default=1.0e-8)
    parser.add_argument("--reference", type=Path, help="JSON of a reference run")
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
