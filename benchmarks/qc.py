"""Quasicontinuum against the full atomistic solution of a large 2D block.

    python3 benchmarks/qc.py --json results/bench_qc.json [--atoms 1000000]

A block of the triangular lattice (nearest-neighbour Lennard-Jones 12-6 at its relaxed
constant, about 1.1 x 1 in shape) without the 7 sites of a hexagonal vacancy cluster at its
centre is stretched by 2 % along x: its outer layer (2 spacings) follows x = F X.  The
reference is the full atomistic minimum
(:class:`~multiscale.atomistic.DistributedAtomisticProblem` on the ranks of ``COMM_WORLD``,
each rank generating its own slab of the block, Newton with MUMPS LDL^T).  The QC solution
(force-based QC by default, atomistic radius ``--radius`` spacings, graded mesh with element
size about the distance over ``--growth``, capped at 64 spacings; the boundary layer fully
resolved) is solved over the same ranks (``QCModel(..., comm=COMM_WORLD)``: the bonds and
elements shared, MUMPS in parallel; the coarse mesh is built on every rank from the whole
block).  The error near the defect is the largest displacement difference over the atoms
within 6 spacings of the centre (each rank its own; QC interpolated at the same sites),
relative to the largest displacement the defect causes there, |x - F X| of the reference.
Both Newton solves stop at a force residual (2-norm over all free coordinates) of ``--atol``
(1e-8 epsilon/sigma; the statics default 1e-10 lies below the round-off floor of the
factorization for a few 1e5 atoms).  Times are wall times of set-up plus solve (the atom
blocks themselves not counted).  ``ranks`` and ``oversubscribed`` (the ranks plus the load
average at the start exceed the cores: the times then measure overhead, not speed-up) say
how it ran; ``atomistic_atoms_held_per_rank`` the most atoms each rank held.

    mpirun -n 2 python3 benchmarks/qc.py --json results/bench_qc.json --atoms 20000
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
    AtomSet,
    CauchyBorn,
    CoarseMesh,
    DistributedAtomisticProblem,
    DistributedPairModel,
    Lattice,
    LennardJones,
    MeshSpec,
    QCModel,
    QCProblem,
)
from multiscale.atomistic.distributed import LocalAtoms
from multiscale.atomistic.lattice import block_slab
from multiscale.output import write_json


def geometry(n_atoms: int) -> tuple[Lattice, CauchyBorn, np.ndarray, np.ndarray, np.ndarray]:
    """The lattice and Cauchy-Born law of the block of about ``n_atoms`` atoms, its corners
    and the centre of its vacancy cluster (the site nearest to the middle of the box)."""
    law = CauchyBorn.relaxed(Lattice.of("triangular"), LennardJones(), shells=1)
    a = float(law.bonds.radii[0])
    lat = Lattice.of("triangular").with_constant(a)
    rows = max(12, round(np.sqrt(n_atoms / 1.1)))
    cols = max(12, round(n_atoms / rows))
    lo = np.zeros(2)
    hi = np.array([(cols - 0.5) * a, (rows - 1) * a * np.sqrt(3) / 2])
    mid = 0.5 * (lo + hi)
    near = block_slab(lat, mid - 2 * a, mid + 2 * a, 0, 1)
    c = near[np.argmin(np.linalg.norm(near - mid, axis=1))]
    return lat, law, lo, hi, c


def in_hole(X: np.ndarray, c: np.ndarray, a: float) -> np.ndarray:
    """The 7 sites of the vacancy cluster."""
    return np.linalg.norm(X - c, axis=1) < 1.01 * a


def block(n_atoms: int) -> tuple[AtomSet, Lattice, CauchyBorn, np.ndarray]:
    """The whole stretched block of about ``n_atoms`` atoms with its vacancy cluster (on every
    rank: the QC mesh is built from it); its centre."""
    lat, law, lo, hi, c = geometry(n_atoms)
    full = AtomSet.block(lat, lo, hi)
    return full.without(np.flatnonzero(in_hole(full.positions, c, lat.a))), lat, law, c


def local_block(n_atoms: int, comm: MPI.Comm) -> tuple[LocalAtoms, Lattice, np.ndarray]:
    """This rank's slab of the same block (:meth:`LocalAtoms.block`): no rank generates the
    whole set; its centre."""
    lat, _, lo, hi, c = geometry(n_atoms)
    return LocalAtoms.block(lat, lo, hi, comm, exclude=lambda X: in_hole(X, c, lat.a)), lat, c


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

    busy = os.getloadavg()[0]  # other jobs on the machine before this one starts working
    F = np.array([[1.02, 0.0], [0.0, 1.0]])
    opts = {"snes_atol": args.atol}

    # the full atomistic reference, distributed: each rank generates and keeps its own slab
    local, lat, c = local_block(args.atoms, comm)
    a = lat.a
    rc = 1.5 * a
    _, _, lo, hi, _ = geometry(args.atoms)
    comm.Barrier()
    t0 = time.perf_counter()
    model = DistributedPairModel(local, LennardJones(), rc, comm=comm)
    with DistributedAtomisticProblem(
        model,
        fixed=lambda X: layer(X, lo, hi, 2 * a),
        displacement=lambda X: (X - c) @ (F - np.eye(2)).T,
        petsc_options=opts,
    ) as p:
        p.solve([1.0])
        newton_atoms = p.stepper.steps[-1].iterations
        X_own = model.reference[: model.n_owned]
        near = np.linalg.norm(X_own - c, axis=1) < 6 * a
        Xa, xa = X_own[near], p.x[: model.n_owned][near]  # the atoms near the defect only
    comm.Barrier()
    t_atoms = time.perf_counter() - t0
    n_atoms, held = model.n, comm.allgather(model.held)
    del model, local

    # QC over the ranks (the mesh from the whole block, on every rank)
    atoms, lat, law, c = block(args.atoms)
    comm.Barrier()
    t0 = time.perf_counter()
    spec = MeshSpec(tuple(c), args.radius * a, padding=rc, layer=2 * a, growth=args.growth)
    mesh = CoarseMesh.graded(atoms, lat, spec)
    qcm = QCModel(mesh, LennardJones(), rc, law, comm=comm)
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
    comm.Barrier()
    t_qc = time.perf_counter() - t0

    # the error near the defect, over the atoms each rank owns there (QC at the same sites)
    x_near = mesh.locate(Xa) @ xr if len(Xa) else np.zeros((0, 2))
    U_near = (Xa - c) @ (F - np.eye(2)).T
    defect = comm.allreduce(
        float(np.linalg.norm(xa - (Xa + U_near), axis=1).max(initial=0.0)), op=MPI.MAX
    )
    diff = comm.allreduce(float(np.linalg.norm(x_near - xa, axis=1).max(initial=0.0)), op=MPI.MAX)
    err = diff / defect
    busy = comm.allreduce(busy, op=MPI.MAX)
    summary = {
        "atoms": n_atoms,
        "repatoms": mesh.n,
        "elements": len(mesh.elements),
        "method": args.method,
        "atomistic_radius": args.radius,
        "growth": args.growth,
        "newton_atol": args.atol,
        "atomistic_time_s": t_atoms,
        "qc_time_s": t_qc,
        "qc_speedup": t_atoms / t_qc,
        "atomistic_atoms_per_s": n_atoms / t_atoms,
        "error_near_defect": err,
        "error_near_defect_abs": diff / a,
        "defect_displacement": defect / a,
        "newton_iterations": {"atomistic": newton_atoms, "qc": newton_qc},
        "atomistic_atoms_held_per_rank": held,
        "peak_rss_gib": comm.allreduce(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, op=MPI.MAX
        ),
        "ranks": comm.size,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": busy,
        "oversubscribed": comm.size + busy > (os.cpu_count() or 1),
    }
    write_json(args.json, summary, comm)
    if comm.rank == 0:
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
