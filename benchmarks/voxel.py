"""Benchmark of the matrix-free voxel cell solver (issue #17): a 128^3 elastic cell.

Random non-overlapping spherical inclusions (fixed seed, periodic, volume fraction about 0.2)
in a matrix, E = 1 (matrix) and ``--contrast`` (inclusions), nu = 0.3, on an n^3 voxel grid:
3 n^3 displacement dofs, Q1 elements, CG with the FFT reference-medium preconditioner
(:class:`multiscale.cell.voxel.VoxelCellProblem`).  Reports the wall time split (element
matrices, preconditioner, per-load CG iterations and seconds), the process CPU time, the peak
memory (``ru_maxrss``), the load average and the effective stiffness, whose isotropic
projection must lie within the Hashin-Shtrikman bounds and whose asymmetry must be below
100 rtol (the CG tolerance; 1e-8 by default, which leaves the tensor within about 1e-10 of a
converged solve).  ``--geometry sphere`` is the cell of ``benchmarks/cell.py`` (one centred
sphere) for a comparison with the conforming tetrahedral meshes there.

    OMP_NUM_THREADS=2 python3 benchmarks/voxel.py --n 128 --contrast 10 --json OUT
    OMP_NUM_THREADS=2 python3 benchmarks/voxel.py --n 128 --geometry sphere --json OUT
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.bounds import hashin_shtrikman_elastic
from multiscale.cell.voxel import VoxelCellProblem
from multiscale.output import write_json_file
from multiscale.physics import IsotropicElasticity
from multiscale.tensors import bulk_shear_from_stiffness


def sphere_labels(n: int, fraction: float = 0.2, count: int = 20, seed: int = 17) -> np.ndarray:
    """``count`` equal spheres of total volume ``fraction`` of the unit cube, centres drawn at
    random and rejected while closer than 2.1 radii (periodic distance); label 1 inside."""
    radius = (3.0 * fraction / (4.0 * np.pi * count)) ** (1.0 / 3.0)
    rng = np.random.default_rng(seed)
    centres: list[np.ndarray] = []
    while len(centres) < count:
        x = rng.random(3)
        d = [np.abs(x - c) for c in centres]
        if all(np.linalg.norm(np.minimum(v, 1.0 - v)) > 2.1 * radius for v in d):
            centres.append(x)
    axis = (np.arange(n) + 0.5) / n
    labels = np.zeros((n, n, n), dtype=np.int8)
    for c in centres:
        gap = [np.abs(axis - ci) for ci in c]
        d2 = [np.minimum(g, 1.0 - g) ** 2 for g in gap]
        inside = d2[0][:, None, None] + d2[1][None, :, None] + d2[2][None, None, :] < radius**2
        labels[inside] = 1
    return labels


def centred_sphere(n: int, fraction: float = 0.2) -> np.ndarray:
    """One sphere of volume ``fraction`` at the centre of the cube (the cell of
    ``benchmarks/cell.py``), label 1 inside."""
    c = (np.arange(n) + 0.5) / n - 0.5
    r2 = c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2
    return (r2 < (3.0 * fraction / (4.0 * np.pi)) ** (2.0 / 3.0)).astype(np.int8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128, help="voxels per edge")
    parser.add_argument("--contrast", type=float, default=10.0)
    parser.add_argument("--rtol", type=float, default=1e-8)
    parser.add_argument(
        "--geometry",
        choices=("spheres", "sphere"),
        default="spheres",
        help="20 random spheres, or the single centred sphere of benchmarks/cell.py",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    t0 = time.perf_counter()
    labels = sphere_labels(args.n) if args.geometry == "spheres" else centred_sphere(args.n)
    t_labels = time.perf_counter() - t0
    laws = {
        0: IsotropicElasticity.from_young(1.0, 0.3),
        1: IsotropicElasticity.from_young(args.contrast, 0.3),
    }
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    result = VoxelCellProblem(labels, laws, comm=comm, rtol=args.rtol).solve()
    wall = time.perf_counter() - t0
    cpu = comm.allreduce(time.process_time() - cpu0, op=MPI.SUM)
    rss = comm.allreduce(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, op=MPI.MAX)
    C = result.tensor
    s = result.solver
    fraction = result.volume_fractions.get("1", 0.0)
    kappa, mu = bulk_shear_from_stiffness(C, 3)
    hs = hashin_shtrikman_elastic(
        [1.0 - fraction, fraction],
        [laws[p].lmbda + 2.0 * laws[p].mu / 3.0 for p in (0, 1)],
        [laws[p].mu for p in (0, 1)],
        3,
    )
    inside = hs["bulk_lower"] <= kappa <= hs["bulk_upper"]
    inside &= hs["shear_lower"] <= mu <= hs["shear_upper"]
    row = {
        "n": args.n,
        "geometry": args.geometry,
        "ndofs": result.ndofs,
        "contrast": args.contrast,
        "rtol": args.rtol,
        "ranks": comm.size,
        "volume_fraction": fraction,
        "labels_s": t_labels,
        "element_matrices_s": result.timings["element_matrices"],
        "preconditioner_s": result.timings["preconditioner"],
        "solve_s": result.timings["solve"],
        "iterations": s["iterations"],
        "solve_s_per_load": s["solve_s_per_load"],
        "total_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": rss,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
        "fft_workers": s["fft_workers"],
        "reference": s["reference"],
        "asymmetry": s["asymmetry"],
        "hill_mandel": result.hill_mandel_residual,
        "C11": C[0, 0],
        "C12": C[0, 1],
        "C44": C[3, 3],
        "tensor": C,
        "isotropic_bulk_shear": [kappa, mu],
        "hashin_shtrikman": hs,
    }
    if comm.rank == 0:
        print(
            f"n={args.n} ({result.ndofs} dofs), fraction {row['volume_fraction']:.4f}: "
            f"total {wall:.1f} s (cpu {cpu:.1f} s), element matrices "
            f"{row['element_matrices_s']:.2f} s, preconditioner {row['preconditioner_s']:.2f} s, "
            f"CG {row['solve_s']:.1f} s, iterations {s['iterations']}, peak RSS {rss:.0f} MB"
        )
        print(
            f"C11 {C[0, 0]:.6f} C12 {C[0, 1]:.6f} C44 {C[3, 3]:.6f}, asymmetry "
            f"{s['asymmetry']:.1e}, Hill-Mandel {result.hill_mandel_residual:.1e}"
        )
        print(
            f"isotropic projection: bulk {kappa:.5f} in [{hs['bulk_lower']:.5f}, "
            f"{hs['bulk_upper']:.5f}], shear {mu:.5f} in [{hs['shear_lower']:.5f}, "
            f"{hs['shear_upper']:.5f}] (Hashin-Shtrikman)"
        )
        if args.json:
            write_json_file(args.json, {"voxel_cell": row})
    if not inside or s["asymmetry"] > 100 * args.rtol:
        raise SystemExit("the effective tensor fails its checks (HS bounds, symmetry)")


if __name__ == "__main__":
    main()
