"""Benchmark of hierarchical FE²: the surrogate beside full FE² on the 3D finite-strain block.

The block of ``demos/demo_fe2_block3d.py``: a unit cube of a Neo-Hookean matrix (E = 1,
nu = 0.45) with stiff Neo-Hookean spherical particles (E = 20, nu = 0.3, volume fraction 0.2),
sliding supports on x = 0, y = 0, z = 0, the top stretched by 30 % in ``--steps`` equal load
steps; P1 tetrahedra on a ``--macro-n``\\ :sup:`3` box (one Gauss point per tetrahedron), RVE
mesh size ``--h``.  Solved twice, serially:

* **full FE²**: an RVE solve at every Gauss point and macro Newton iterate;
* **surrogate** (:mod:`multiscale.fe2.surrogate`): an offline database of ``--samples`` Sobol
  points where the macro problem will go, a polynomial potential of degree ``--degree`` fitted
  to the RVE stresses and tangents, and the online error control at tolerance ``--tol``.  The
  design (``--design``): ``tube`` (default), a tube of half-width ``--radius`` in the normal
  and 0.01 in the shear Green–Lagrange components around the uniaxial path of the load range,
  :math:`E_{yy} = (\\lambda^2-1)/2`, :math:`E_{xx} = E_{zz} = (\\lambda^{-2\\nu}-1)/2` for
  :math:`1 \\le \\lambda \\le 1 + 1.1 \\cdot 0.3`, :math:`\\nu = 0.4` (between the particles'
  0.3 and the matrix's 0.45; the radius 0.02 covers lateral contractions of
  :math:`0.3 \\le \\nu \\le 0.5`); or ``box``, the box of Green–Lagrange strains of the load
  range (:math:`0 \\le E_{yy} \\le 1.1\\,(\\lambda^2-1)/2`, lateral
  :math:`1.2\\,(\\lambda^{-1}-1)/2 \\le E_{xx}, E_{zz} \\le 0.02`, shears within
  :math:`\\pm 0.01`), of which the path fills a small part (128 samples were needed there for
  the same accuracy).  The block's strain is nearly homogeneous, so all Gauss points follow
  the path: the tube is where the samples are useful.

Reported (``--json OUT``): the reaction of both runs at every load step and their relative
difference (``max_reaction_error``, target: within 1 %), the fraction of point evaluations the
surrogate answered (``rve_solves_avoided_fraction``), the RVE solves of each run
(``rve_solves_full``), and the wall times: the online speed-up (``speedup_online``: full FE²
solve over the surrogate's macro solve) and the speed-up with the offline phase included
(``speedup_with_offline``, target 20x; ``offline_s``), with the number of runs of this size
after which the offline phase has paid off, and the machine's load average before and after.

    python3 benchmarks/fe2_surrogate.py [--macro-n 2] [--h 0.4] [--steps 4] [--json OUT]

Serial (the FE² scaling is ``benchmarks/fe2.py``'s subject); on a shared machine other jobs take
cores too: compare figures of one invocation only.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from mpi4py import MPI

from multiscale.fe2 import DisplacementBC, FE2Problem
from multiscale.fe2.surrogate import SurrogateOptions, uniaxial_path
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
    p.add_argument("--design", choices=("tube", "box"), default="tube")
    p.add_argument("--radius", type=float, default=0.02)
    p.add_argument("--nu", type=float, default=0.4)
    p.add_argument("--samples", type=int, default=48)
    p.add_argument("--degree", type=int, default=6)
    p.add_argument("--tol", type=float, default=2e-3)
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args()
    if MPI.COMM_WORLD.size != 1:
        raise SystemExit("run serially")
    lower, upper = design_box(STRETCH)
    load = [os.getloadavg()[0]]
    if args.design == "tube":
        path = uniaxial_path(STRETCH, args.nu)
        region = {"path": path.tolist(), "radius": [args.radius] * 3 + [0.01] * 3}
        options = SurrogateOptions(
            path=tuple(map(tuple, path)),
            radius=(args.radius,) * 3 + (0.01,) * 3,
            samples=args.samples,
            degree=args.degree,
            tol=args.tol,
        )
    else:
        region = {"lower": lower, "upper": upper}
        options = SurrogateOptions(
            lower=tuple(lower),
            upper=tuple(upper),
            samples=args.samples,
            degree=args.degree,
            tol=args.tol,
        )
    sur = solve(args, options)
    full = solve(args, None)
    load.append(os.getloadavg()[0])
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
            "design": args.design,
            "design_region": region,
            "samples": args.samples + 1,
            "degree": args.degree,
            "tol": args.tol,
        },
        "reaction_full": r_full.tolist(),
        "reaction_surrogate": r_sur.tolist(),
        "reaction_rel_diff": rel.tolist(),
        "max_reaction_error": float(rel.max()),
        "within_1_percent": bool(rel.max() < 0.01),
        "newton_iterations_full": full["newton_iterations"],
        "newton_iterations_surrogate": sur["newton_iterations"],
        "rve_solves_full": full["rve_solves"],
        "rve_solves_surrogate_online": stats["rve_solves_online"],
        "rve_solves_offline": stats["offline_solves"],
        "rve_solves_avoided_fraction": stats["avoided_fraction"],
        "surrogate": stats,
        "seconds": {
            "full_solve": full["solve_s"],
            "surrogate_solve": sur["solve_s"],
            "offline": offline,
            "full_setup": full["setup_s"],
        },
        "offline_s": offline,
        "machine_load_average_1min": {"before": load[0], "after": load[1], "cores": os.cpu_count()},
        "speedup_online": full["solve_s"] / sur["solve_s"],
        "speedup_with_offline": full["solve_s"] / (sur["solve_s"] + offline),
        "runs_to_amortize_offline": offline / max(full["solve_s"] - sur["solve_s"], 1e-12),
    }
    print(json.dumps({k: v for k, v in out.items() if k != "surrogate"}, indent=1))
    if args.json:
        write_json_file(args.json, out)


if __name__ == "__main__":
    main()
