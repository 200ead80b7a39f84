"""Benchmark of hierarchical FE²: the surrogate beside full FE² on the 3D finite-strain block.

The block of ``demos/demo_fe2_block3d.py``: a unit cube of a Neo-Hookean matrix (E = 1,
nu = 0.45) with stiff Neo-Hookean spherical particles (E = 20, nu = 0.3, volume fraction 0.2),
sliding supports on x = 0, y = 0, z = 0, the top stretched by 30 % in ``--steps`` equal load
steps; P1 tetrahedra on a ``--macro-n``\\ :sup:`3` box (one Gauss point per tetrahedron), RVE
mesh size ``--h``.  Solved twice, serially:

* **full FE²**: an RVE solve at every Gauss point and macro Newton iterate;
* **surrogate** (:mod:`multiscale.fe2.surrogate`): an offline database of ``--samples`` Sobol
  points in the box of Green–Lagrange strains the load range gives (uniaxial stretch up to
  :math:`\\lambda = 1.3`: :math:`0 \\le E_{yy} \\le 1.1\\,(\\lambda^2-1)/2`, lateral
  :math:`1.2\\,(\\lambda^{-1}-1)/2 \\le E_{xx}, E_{zz} \\le 0.02`, shears within
  :math:`\\pm 0.01`), a polynomial potential of degree ``--degree`` fitted to the RVE stresses
  and tangents, and the online error control at tolerance ``--tol``.

Reported (``--json OUT``): the reaction of both runs at every load step and their relative
difference (target: within 1 %), the fraction of point evaluations the surrogate answered (RVE
solves avoided), the RVE solves of each run, and the wall times: the online speed-up (full FE²
solve over the surrogate's macro solve, target 20x) and the speed-up with the offline phase
included, with the number of runs of this size after which the offline phase has paid off.

    python3 benchmarks/fe2_surrogate.py [--macro-n 2] [--h 0.4] [--steps 4] [--json OUT]

Serial (the FE² scaling is ``benchmarks/fe2.py``'s subject); on a shared machine other jobs take
cores too: compare figures of one invocation only.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from mpi4py import MPI

from multiscale.fe2 import DisplacementBC, FE2Problem
from multiscale.fe2.surrogate import SurrogateOptions
from multiscale.mesh import spherical_inclusion
from multiscale.mesh.macro import box
from multiscale.output import write_json_file
from multiscale.physics import NeoHookean

STRETCH = 0.3


def design_box(stretch: float, shear: float = 0.01) -> tuple[list[float], list[float]]:
    """The Green–Lagrange box of the load range (tensor components E11 E22 E33 E23 E13 E12)."""
    lam = 1.0 + stretch
    e_axial, e_lateral = 0.5 * (lam**2 - 1.0), 0.5 * (1.0 / lam - 1.0)
    lower = [1.2 * e_lateral, -0.02, 1.2 * e_lateral, -shear, -shear, -shear]
    upper = [0.02, 1.1 * e_axial, 0.02, shear, shear, shear]
    return lower, upper


def solve(args: argparse.Namespace, surrogate: SurrogateOptions | None) -> dict:
    comm = MPI.COMM_WORLD
    materials = {
        "matrix": NeoHookean.from_young(E=1.0, nu=0.45),
        "inclusion": NeoHookean.from_young(E=20.0, nu=0.3),
    }
    factors = list(np.linspace(0.0, 1.0, args.steps + 1)[1:])
    t0 = time.perf_counter()
    problem = FE2Problem(
        box(comm, (1.0, 1.0, 1.0), (args.macro_n,) * 3),
        lambda c: spherical_inclusion(c, 0.2, h=args.h),
        materials,
        bcs=[
            DisplacementBC("left", 0.0, component=0),
            DisplacementBC("bottom", 0.0, component=1),
            DisplacementBC("back", 0.0, component=2),
            DisplacementBC("top", STRETCH, component=1),
        ],
        surrogate=surrogate,
    )
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = problem.solve(factors)
    seconds = time.perf_counter() - t0
    problem.destroy()
    return {
        "setup_s": setup,
        "solve_s": seconds,
        "curve": result.curve().tolist(),
        "newton_iterations": [s.iterations for s in result.steps],
        "rve_solves": int(result.micro["solves_total"]),
        "surrogate": result.micro.get("surrogate"),
        "gauss_points": result.info["macro_gauss_points"],
        "rve_dofs": result.info["rve_dofs"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--macro-n", type=int, default=2)
    p.add_argument("--h", type=float, default=0.4)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--degree", type=int, default=6)
    p.add_argument("--tol", type=float, default=2e-3)
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args()
    if MPI.COMM_WORLD.size != 1:
        raise SystemExit("run serially")
    lower, upper = design_box(STRETCH)
    options = SurrogateOptions(
        lower=tuple(lower),
        upper=tuple(upper),
        samples=args.samples,
        degree=args.degree,
        tol=args.tol,
    )
    sur = solve(args, options)
    full = solve(args, None)
    r_full = np.array(full["curve"])[:, 1]
    r_sur = np.array(sur["curve"])[:, 1]
    rel = np.abs(r_sur - r_full) / np.abs(r_full)
    offline = sur["setup_s"] - full["setup_s"]  # the database and the first fit
    stats = sur["surrogate"]
    out = {
        "case": {
            "macro_n": args.macro_n,
            "gauss_points": full["gauss_points"],
            "rve_h": args.h,
            "rve_dofs": full["rve_dofs"],
            "stretch": STRETCH,
            "steps": args.steps,
            "design_box": {"lower": lower, "upper": upper},
            "samples": args.samples + 1,
            "degree": args.degree,
            "tol": args.tol,
        },
        "reaction_full": r_full.tolist(),
        "reaction_surrogate": r_sur.tolist(),
        "reaction_rel_diff": rel.tolist(),
        "max_rel_diff": float(rel.max()),
        "within_1_percent": bool(rel.max() < 0.01),
        "newton_iterations_full": full["newton_iterations"],
        "newton_iterations_surrogate": sur["newton_iterations"],
        "rve_solves_full": full["rve_solves"],
        "rve_solves_surrogate_online": stats["rve_solves_online"],
        "rve_solves_offline": stats["offline_solves"],
        "avoided_fraction": stats["avoided_fraction"],
        "surrogate": stats,
        "seconds": {
            "full_solve": full["solve_s"],
            "surrogate_solve": sur["solve_s"],
            "offline": offline,
            "full_setup": full["setup_s"],
        },
        "speedup_online": full["solve_s"] / sur["solve_s"],
        "speedup_with_offline": full["solve_s"] / (sur["solve_s"] + offline),
        "runs_to_amortize_offline": offline / max(full["solve_s"] - sur["solve_s"], 1e-12),
    }
    print(json.dumps({k: v for k, v in out.items() if k != "surrogate"}, indent=1))
    if args.json:
        write_json_file(args.json, out)


if __name__ == "__main__":
    main()
