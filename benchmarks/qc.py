"""Quasicontinuum against the full atomistic solution of a large 2D block.

    python3 benchmarks/qc.py --json results/bench_qc.json [--atoms 1000000]

A block of the triangular lattice (nearest-neighbour Lennard-Jones 12-6 at its relaxed
constant, about 1.1 x 1 in shape) without the 7 sites of a hexagonal vacancy cluster at its
centre is stretched by 2 % along x: its outer layer (2 spacings) follows x = F X.  The
reference is the full atomistic minimum (:class:`~multiscale.atomistic.AtomisticProblem`,
Newton with MUMPS LDL^T); the QC solution (force-based QC by default, atomistic radius
``--radius`` spacings, graded mesh with element size about the distance over ``--growth``,
capped at 64 spacings; the boundary layer fully resolved) is solved the same way.  The error
near the defect is the largest displacement difference over the atoms within 6 spacings of the
centre, relative to the largest displacement the defect causes there, |x - F X| of the
reference.  Both Newton solves stop at a force residual (2-norm over all free coordinates) of
``--atol`` (1e-8 epsilon/sigma; the statics default 1e-10 lies below the round-off floor of the
factorization for a few 1e5 atoms).  Times are wall times of set-up plus solve (the atom
block itself, shared, not counted).  Serial: both solve on COMM_SELF (under mpirun every rank
repeats the work).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.atomistic import (
    AtomisticProblem,
    AtomSet,
    CauchyBorn,
    CoarseMesh,
    Lattice,
    LennardJones,
    MeshSpec,
    PairModel,
    QCModel,
    QCProblem,
)
from multiscale.output import write_json


def block(n_atoms: int) -> tuple[AtomSet, Lattice, CauchyBorn, np.ndarray]:
    """The stretched block of about ``n_atoms`` atoms with its vacancy cluster; its centre."""
    law = CauchyBorn.relaxed(Lattice.of("triangular"), LennardJones(), shells=1)
    a = float(law.bonds.radii[0])
    lat = Lattice.of("triangular").with_constant(a)
    rows = max(12, round(np.sqrt(n_atoms / 1.1)))
    cols = max(12, round(n_atoms / rows))
    full = AtomSet.block(lat, (0.0, 0.0), ((cols - 0.5) * a, (rows - 1) * a * np.sqrt(3) / 2))
    c = full.positions[full.nearest(full.positions.mean(axis=0))]
    hole = np.flatnonzero(np.linalg.norm(full.positions - c, axis=1) < 1.01 * a)
    return full.without(hole), lat, law, c


def layer(X: np.ndarray, lo: np.ndarray, hi: np.ndarray, width: float) -> np.ndarray:
    return np.minimum(X - lo, hi - X).min(axis=1) <= width * (1 + 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, required=True)
    default = 20000 if os.environ.get("CI") else 200000
    parser.add_argument("--atoms", type=int, default=default, help="size of the block")
    parser.add_argument("--radius", type=float, default=10.0, help="atomistic radius (spacings)")
    parser.add_argument("--growth", type=float, default=1.0, help="mesh grading")
    parser.add_argument("--atol", type=float, default=1e-8, help="Newton force tolerance")
    parser.add_argument("--method", default="qcf", choices=("qce", "qce_corrected", "qcf"))
    args = parser.parse_args()
    comm = MPI.COMM_WORLD

    atoms, lat, law, c = block(args.atoms)
    a, X = lat.a, atoms.positions
    lo, hi = X.min(axis=0), X.max(axis=0)
    F = np.array([[1.02, 0.0], [0.0, 1.0]])
    rc = 1.5 * a

    t0 = time.perf_counter()
    model = PairModel(atoms, LennardJones(), rc)
    U = (X - c) @ (F - np.eye(2)).T
    opts = {"snes_atol": args.atol}
    fixed = layer(X, lo, hi, 2 * a)
    with AtomisticProblem(model, fixed=fixed, displacement=U, petsc_options=opts) as p:
        p.solve([1.0])
        xa = p.x.copy()
        newton_atoms = p.stepper.steps[-1].iterations
    t_atoms = time.perf_counter() - t0
    del model

    t0 = time.perf_counter()
    spec = MeshSpec(tuple(c), args.radius * a, padding=rc, layer=2 * a, growth=args.growth)
    mesh = CoarseMesh.graded(atoms, lat, spec)
    qcm = QCModel(mesh, LennardJones(), rc, law)
    with QCProblem(
        qcm,
        args.method,
        macro_F=F,
        centre=tuple(c),
        fixed=layer(mesh.X, lo, hi, 2 * a),
        petsc_options=opts,
    ) as q:
        q.solve([1.0])
        xr = q.xr.copy()
        newton_qc = q.stepper.steps[-1].iterations
    t_qc = time.perf_counter() - t0

    near = np.flatnonzero(np.linalg.norm(X - c, axis=1) < 6 * a)
    x_near = mesh.interpolation(near) @ xr
    defect = np.linalg.norm(xa[near] - (X[near] + U[near]), axis=1).max()
    err = float(np.linalg.norm(x_near - xa[near], axis=1).max() / defect)
    summary = {
        "atoms": atoms.n,
        "repatoms": mesh.n,
        "elements": len(mesh.elements),
        "method": args.method,
        "atomistic_radius": args.radius,
        "growth": args.growth,
        "newton_atol": args.atol,
        "atomistic_time_s": t_atoms,
        "qc_time_s": t_qc,
        "qc_speedup": t_atoms / t_qc,
        "atomistic_atoms_per_s": atoms.n / t_atoms,
        "error_near_defect": err,
        "error_near_defect_abs": err * defect / a,
        "defect_displacement": defect / a,
        "newton_iterations": {"atomistic": newton_atoms, "qc": newton_qc},
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "ranks": comm.size,
    }
    write_json(args.json, summary, comm)
    if comm.rank == 0:
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
