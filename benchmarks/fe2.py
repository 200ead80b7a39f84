"""Benchmark of FE² with elastoplastic RVEs: where the time of a macro Newton iteration goes.

Plane-strain unit square made of a fibre composite (RVE ``meshes/fibre2d_vf0.5.msh``: J2 matrix
E = 1, nu = 0.3, sigma_y = 0.01, H = 0.1; elastic fibres E = 10), bottom clamped, top pulled up
by 0.02 in two load steps (the matrix yields), P1 macro elements on a crossed mesh (one Gauss
point per triangle), consistent tangent.  Reported:

* time per macro Newton iteration split into micro Newton, micro tangent solves, macro assembly,
  the rest of the macro solve (linear solves, strain evaluation) and communication;
* RVE solves per second per rank and the tangent fraction (tangent time / micro Newton time);
* strong scaling on the fixed macro mesh for ``--ranks`` (default 1 2): parallel efficiency
  :math:`T_1 / (k\\,T_k)` of the FE² solve;
* a check that only the micro solves grow with the number of macro Gauss points: two macro mesh
  sizes (``--sizes``) on one rank, micro time per Gauss point per evaluation vs non-micro time.

    python3 benchmarks/fe2.py [--ranks 1 2] [--macro-n 6] [--sizes 3 6] [--json OUT]

The script launches every run itself with ``mpirun -n k --oversubscribe`` (so do not start it
under mpirun); each run writes its figures as JSON, collected here.  On a shared machine other
jobs take cores too: compare figures of one invocation only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from multiscale.output import write_json_file

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CELL = REPO / "meshes" / "fibre2d_vf0.5.msh"
FACTORS = (0.5, 1.0)


def worker(args: argparse.Namespace) -> None:
    """One FE² solve on ``MPI.COMM_WORLD``; rank 0 writes the figures to ``args.out``."""
    from mpi4py import MPI

    from multiscale.fe2 import DisplacementBC, FE2Problem
    from multiscale.mesh.macro import rectangle
    from multiscale.physics import IsotropicElasticity, J2Plasticity

    comm = MPI.COMM_WORLD
    materials = {
        "matrix": J2Plasticity.from_young(1.0, 0.3, sigma_y=0.01, H=0.1),
        "inclusion": IsotropicElasticity.from_young(10.0, 0.3),
    }
    bcs = [DisplacementBC("top", args.load, 1), DisplacementBC("bottom", (0.0, 0.0))]
    macro = rectangle(comm, (1.0, 1.0), (args.macro_n, args.macro_n), diagonal="crossed")
    comm.barrier()
    t0 = time.perf_counter()
    problem = FE2Problem(macro, args.cell, materials, bcs=bcs, degree=1)
    setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    comm.barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    result = problem.solve(FACTORS)
    wall = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    cpu = comm.allreduce(time.process_time() - c0, op=MPI.MAX)
    counts = dict(problem.newton.counts)
    problem.destroy()
    if comm.rank != 0:
        return
    t = dict(result.timings)
    its = int(result.info["macro_iterations"])
    micro = result.micro
    points = result.info["macro_gauss_points"]
    # micro evaluations: residual evaluations that solved the RVEs (the first iterate of every
    # load step reuses the committed responses)
    evaluations = micro["solves_total"] / points
    per_rank = [
        n / s if s > 0 else 0.0
        for n, s in zip(micro["solves_per_rank"], micro["seconds_per_rank"], strict=True)
    ]
    out = {
        "ranks": comm.size,
        "macro_n": args.macro_n,
        "macro_gauss_points": points,
        "rve_dofs": result.info["rve_dofs"],
        "setup_s": setup,
        "solve_s": wall,
        "solve_cpu_s": cpu,
        "macro_iterations": its,
        "residual_evaluations": counts["residuals"],
        "micro_evaluations": evaluations,
        "newton_iterations_per_step": [s.iterations for s in result.steps],
        "rve_solves": micro["solves_total"],
        "imbalance": micro["imbalance"],
        "timings_s": t,
        "per_iteration_s": {
            "micro_newton": t["micro_newton"] / its,
            "micro_tangent": t["micro_tangent"] / its,
            # RVE averages, state packing, predictor, pool bookkeeping
            "micro_other": (t["micro"] - t["micro_newton"] - t["micro_tangent"]) / its,
            "macro_assembly": t["macro_assembly"] / its,
            "macro_other": t["macro_solve"] / its,
            "communication": t["failure_agreement"] / its,
            "total": t["solve"] / its,
        },
        "tangent_fraction": t["micro_tangent"] / t["micro_newton"],
        "rve_solves_per_s_per_rank": sum(per_rank) / len(per_rank),
        "micro_s_per_point_per_evaluation": t["micro"] * comm.size / (points * evaluations),
        "non_micro_s_per_iteration": (t["solve"] - t["micro"]) / its,
        "max_mean_p": result.steps[-1].quantities["max_mean_p"],
        "reaction": float(result.curve()[-1, 1]),
    }
    write_json_file(args.out, out)


def launch(ranks: int, macro_n: int, args: argparse.Namespace, tmp: Path) -> dict:
    out = tmp / f"fe2_np{ranks}_n{macro_n}.json"
    cmd = [
        "mpirun",
        "-n",
        str(ranks),
        "--oversubscribe",
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--macro-n",
        str(macro_n),
        "--cell",
        str(args.cell),
        "--load",
        str(args.load),
        "--out",
        str(out),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.is_file():
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise RuntimeError(f"benchmark run failed ({proc.returncode}): {' '.join(cmd)}")
    data = json.loads(out.read_text())
    data["process_s"] = time.perf_counter() - t0
    print(
        f"  np={ranks} macro {macro_n}x{macro_n} ({data['macro_gauss_points']} Gauss points): "
        f"solve {data['solve_s']:.2f} s, {data['macro_iterations']} macro its, "
        f"{data['rve_solves']} RVE solves",
        flush=True,
    )
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--macro-n", type=int, default=6, help="crossed macro mesh n x n")
    parser.add_argument(
        "--sizes", type=int, nargs=2, default=[3, 6], help="two macro n for the growth check"
    )
    parser.add_argument("--cell", type=Path, default=DEFAULT_CELL)
    parser.add_argument("--load", type=float, default=0.02)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if "OMPI_COMM_WORLD_SIZE" in os.environ or "PMI_SIZE" in os.environ:
        parser.error("run the benchmark without mpirun: it launches its own MPI runs")
    if min(args.ranks) < 1 or min(args.sizes) < 1 or args.macro_n < 1:
        parser.error("rank counts and mesh sizes must be positive")
    ranks = sorted(set(args.ranks))
    with tempfile.TemporaryDirectory(prefix="fe2_bench_") as tmpdir:
        tmp = Path(tmpdir)
        print(f"strong scaling on the {args.macro_n}x{args.macro_n} crossed macro mesh:")
        scaling = {k: launch(k, args.macro_n, args, tmp) for k in ranks}
        print("growth with the number of macro Gauss points (1 rank):")
        growth = []
        for n in args.sizes:
            if n == args.macro_n and 1 in scaling:
                growth.append(scaling[1])
            else:
                growth.append(launch(1, n, args, tmp))

    base = scaling[ranks[0]]
    t1 = base["solve_s"] * ranks[0]  # serial-equivalent time when ranks start above 1
    efficiency = {str(k): t1 / (k * scaling[k]["solve_s"]) for k in ranks}
    # the same with CPU time (max over ranks): blind to cores taken by other jobs; MPI waits
    # busy-poll, so load imbalance still counts
    c1 = base["solve_cpu_s"] * ranks[0]
    efficiency_cpu = {str(k): c1 / (k * scaling[k]["solve_cpu_s"]) for k in ranks}
    small, large = growth
    ratio_points = large["macro_gauss_points"] / small["macro_gauss_points"]
    summary = {
        "problem": {
            "cell": str(args.cell),
            "macro": f"unit square, {args.macro_n}x{args.macro_n} crossed, P1, plane strain",
            "load_factors": list(FACTORS),
            "top_displacement": args.load,
            "rve_dofs": base["rve_dofs"],
            "max_mean_equivalent_plastic_strain": base["max_mean_p"],
        },
        "macro_gauss_points": base["macro_gauss_points"],
        "macro_iterations": base["macro_iterations"],
        "rve_solves": base["rve_solves"],
        "tangent_fraction": base["tangent_fraction"],
        "rve_solves_per_s_per_rank": base["rve_solves_per_s_per_rank"],
        "rve_solves_per_s_per_rank_by_ranks": {
            str(k): scaling[k]["rve_solves_per_s_per_rank"] for k in ranks
        },
        "parallel_efficiency": efficiency,
        "parallel_efficiency_cpu_time": efficiency_cpu,
        "solve_s": {str(k): scaling[k]["solve_s"] for k in ranks},
        "per_iteration_s": {str(k): scaling[k]["per_iteration_s"] for k in ranks},
        "imbalance": {str(k): scaling[k]["imbalance"] for k in ranks},
        "growth_with_gauss_points": {
            "macro_gauss_points": [g["macro_gauss_points"] for g in growth],
            "micro_s_per_point_per_evaluation": [
                g["micro_s_per_point_per_evaluation"] for g in growth
            ],
            "non_micro_s_per_iteration": [g["non_micro_s_per_iteration"] for g in growth],
            "micro_s_per_iteration": [
                g["per_iteration_s"]["micro_newton"] + g["per_iteration_s"]["micro_tangent"]
                for g in growth
            ],
            "points_ratio": ratio_points,
        },
        "runs": {"scaling": scaling, "growth": growth},
        "note": "parallel_efficiency is from wall time, T1 / (k Tk); on a shared 2-core machine "
        "other jobs take CPU, lowering it; parallel_efficiency_cpu_time uses each run's CPU time "
        "(max over ranks) instead",
    }

    print(f"\nmacro Gauss points {base['macro_gauss_points']}, RVE dofs {base['rve_dofs']}")
    head = ("ranks", "solve s", "eff", "RVE/s/rank", "micro N", "tangent", "micro oth",
            "assembly", "macro oth", "comm")  # fmt: skip
    print("time per macro Newton iteration [s]:")
    print(" ".join(f"{h:>10s}" for h in head))
    for k in ranks:
        s, p = scaling[k], scaling[k]["per_iteration_s"]
        print(
            f"{k:10d} {s['solve_s']:10.2f} {efficiency[str(k)]:10.2f} "
            f"{s['rve_solves_per_s_per_rank']:10.1f} {p['micro_newton']:10.3g} "
            f"{p['micro_tangent']:10.3g} {p['micro_other']:10.3g} {p['macro_assembly']:10.3g} "
            f"{p['macro_other']:10.3g} "
            f"{p['communication']:10.3g}"
        )
    print(f"tangent fraction (tangent / micro Newton): {base['tangent_fraction']:.3f}")
    print(
        "parallel efficiency, wall time: "
        + ", ".join(f"{k}: {v:.2f}" for k, v in efficiency.items())
        + "; CPU time: "
        + ", ".join(f"{k}: {v:.2f}" for k, v in efficiency_cpu.items())
    )
    g = summary["growth_with_gauss_points"]
    print(
        "Gauss points {} -> {}: micro s per point per evaluation {:.4g} -> {:.4g}, "
        "non-micro s per iteration {:.4g} -> {:.4g}".format(
            *g["macro_gauss_points"],
            *g["micro_s_per_point_per_evaluation"],
            *g["non_micro_s_per_iteration"],
        )
    )
    if args.json:
        write_json_file(args.json, summary)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
