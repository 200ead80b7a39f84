"""Atoms per second of the atomistic statics distributed by atom ownership.

    mpirun -n 2 python3 benchmarks/atomistic.py --json results/bench_atomistic.json \\
        [--atoms 1000000] [--solver mumps|gamg] [--check]

The block of :mod:`benchmarks.qc` (the triangular lattice, nearest-neighbour Lennard-Jones
12-6 at its relaxed constant, about 1.1 x 1 in shape, without the 7 sites of a hexagonal
vacancy cluster at its centre), each rank generating only its own slab
(:meth:`~multiscale.atomistic.distributed.LocalAtoms.block`; no rank holds the whole set), is
stretched by 2 % along x: its outer layer (2 spacings) follows
x = F X.  :class:`~multiscale.atomistic.DistributedAtomisticProblem` minimizes the energy on
the ranks of ``COMM_WORLD`` (Newton, one load step, force tolerance ``--atol`` as in
:mod:`benchmarks.qc`), with MUMPS LDL^T or CG + GAMG (``--solver``).  Reported: the wall times
of the set-up (partition, neighbour lists, vectors and matrix) and of the solve, atoms per
second of each and of both, Newton iterations and the time in their parts (the largest over
the ranks: ``solve`` is all of SNES, linear solves included), the ghost atoms per rank, the
most atoms each rank held (``atoms_held_per_rank``: its slab, its owned atoms, their halo),
and with ``--check`` the largest difference from the serial
:class:`~multiscale.atomistic.AtomisticProblem` on rank 0 (in lattice spacings; the positions
gathered there for it).  ``oversubscribed`` says whether the ranks plus the load average at the
start (other jobs) exceed the cores; the figures of such a run measure overhead, not speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.atomistic import (
    AtomisticProblem,
    DistributedAtomisticProblem,
    DistributedPairModel,
    LennardJones,
    PairModel,
)
from multiscale.output import write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qc import block, geometry, layer, local_block

SOLVERS = {
    "mumps": {},
    "gamg": {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-10},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, required=True)
    default = 20000 if os.environ.get("CI") else 200000
    parser.add_argument("--atoms", type=int, default=default, help="size of the block")
    parser.add_argument("--atol", type=float, default=1e-8, help="Newton force tolerance")
    parser.add_argument("--solver", default="mumps", choices=sorted(SOLVERS))
    parser.add_argument("--check", action="store_true", help="compare with the serial solver")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD

    local, lat, c = local_block(args.atoms, comm)  # this rank's slab only
    _, _, lo, hi, _ = geometry(args.atoms)
    a = lat.a
    F = np.array([[1.02, 0.0], [0.0, 1.0]])
    rc = 1.5 * a

    def fixed(X: np.ndarray) -> np.ndarray:
        return layer(X, lo, hi, 2 * a)

    def displacement(X: np.ndarray) -> np.ndarray:
        return (X - c) @ (F - np.eye(2)).T

    opts = {"snes_atol": args.atol, **SOLVERS[args.solver]}

    busy = os.getloadavg()[0]  # other jobs on the machine before this one starts working
    comm.Barrier()
    t0 = time.perf_counter()
    model = DistributedPairModel(local, LennardJones(), rc, comm=comm)
    with DistributedAtomisticProblem(
        model, fixed=fixed, displacement=displacement, petsc_options=opts
    ) as problem:
        comm.Barrier()
        t1 = time.perf_counter()
        result = problem.solve([1.0])
        comm.Barrier()
        t2 = time.perf_counter()
        x = problem.positions() if args.check else None  # on rank 0, when asked
        X = model.gather(model.reference[: model.n_owned]) if args.check else None
        timings = {k: comm.allreduce(v, op=MPI.MAX) for k, v in problem.newton.timings.items()}
        ghosts = comm.allgather(len(model.ids) - model.n_owned)
        owned = comm.allgather(model.n_owned)
        held = comm.allgather(model.held)
    setup, solve = t1 - t0, t2 - t1
    step = result.steps[-1]
    summary = {
        "atoms": model.n,
        "bonds": model.n_bonds,
        "ranks": comm.size,
        "cpu_count": os.cpu_count(),
        "oversubscribed": comm.size + comm.allreduce(busy, op=MPI.MAX) > (os.cpu_count() or 1),
        "load_average_at_start": comm.allreduce(busy, op=MPI.MAX),
        "solver": args.solver,
        "newton_atol": args.atol,
        "setup_time_s": setup,
        "solve_time_s": solve,
        "atoms_per_s": model.n / (setup + solve),
        "solve_atoms_per_s": model.n / solve,
        "setup_atoms_per_s": model.n / setup,
        "newton_iterations": step.iterations,
        "newton_timings_s": timings,
        "max_force": step.quantities["max_force"],
        "energy": step.quantities["energy"],
        "owned_atoms": owned,
        "ghost_atoms": ghosts,
        "atoms_held_per_rank": held,
        "peak_rss_gib": comm.allreduce(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, op=MPI.MAX
        ),
    }
    if args.check and comm.rank == 0:  # the whole set on rank 0 only, for the check
        atoms = block(args.atoms)[0]
        t0 = time.perf_counter()
        serial = PairModel(atoms, LennardJones(), rc)
        Y = atoms.positions
        with AtomisticProblem(
            serial,
            fixed=fixed(Y),
            displacement=displacement(Y),
            petsc_options={"snes_atol": args.atol},
        ) as p:
            p.solve([1.0])
            summary["serial_time_s"] = time.perf_counter() - t0
            # the same sites in another numbering: matched by their reference positions
            mine, ref = np.lexsort(X.T[::-1]), np.lexsort(Y.T[::-1])
            assert np.abs(X[mine] - Y[ref]).max() < 1e-9 * a
            summary["max_difference_from_serial"] = float(np.abs(x[mine] - p.x[ref]).max() / a)
    write_json(args.json, summary, comm)
    if comm.rank == 0:
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
