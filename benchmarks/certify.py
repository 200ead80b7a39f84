"""Benchmark of the certified checkerboard: adaptive versus uniform refinement, contrasts 10-1000.

The 2x2 checkerboard with :math:`k_1 = 1`, :math:`k_2 \\in \\{10, 100, 1000\\}` has the exact
effective conductivity :math:`\\sqrt{k_2}\\,I` (Keller–Dykhne).  For each contrast the script runs

* uniform gmsh meshes h = 1/8 ... 1/64 and :func:`~multiscale.cell.certify.certify` on each;
* :func:`~multiscale.cell.adapt.adapt` (P1, theta = 0.5, tol = 1 %) from the h = 1/4 mesh of
  the pattern shifted by ``--offset`` squares (default 1/2: every four-phase junction inside the
  cell, so the refinement toward them leaves the periodic faces coarse) until the tolerance,
  ``--max-ndofs`` or the accuracy limit of the periodic constraint (a
  :class:`~multiscale.cell.certify.CertificationError`, reported as the stop reason);
* the same adaptive run with the singular-function enrichment of the junctions
  (``enrich=True``, :mod:`multiscale.cell.enrich`) in P``--enrich-degree`` (default 2);

and records per mesh the dofs, the eigenvalues of both bounds, whether they bracket
:math:`\\sqrt{k_2}`, the relative gap, the wall time, and the observed rates of the gap against
dofs over the last two meshes of each sequence.

    python3 benchmarks/certify.py [--contrasts 10 100 1000] [--max-ndofs 100000] [--offset 0.5]
        [--enrich-degree 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.cell.adapt import adapt
from multiscale.cell.certify import certify
from multiscale.mesh.generators import checkerboard
from multiscale.output import write_json_file
from multiscale.physics import Conductivity

UNIFORM_H = (0.125, 0.0625, 0.03125, 0.015625)


def _row(ndofs: int, lower: np.ndarray, upper: np.ndarray, gap: float, exact: float) -> dict:
    lo, up = np.linalg.eigvalsh(lower), np.linalg.eigvalsh(upper)
    return {
        "ndofs": ndofs,
        "lower_eigenvalues": lo.tolist(),
        "upper_eigenvalues": up.tolist(),
        "brackets": bool(lo.max() <= exact <= up.min()),
        "error_estimate": gap,
    }


def _rate(rows: list[dict]) -> float | None:
    if len(rows) < 2:
        return None
    a, b = rows[-2], rows[-1]
    return math.log(b["error_estimate"] / a["error_estimate"]) / math.log(b["ndofs"] / a["ndofs"])


def _adapt_rows(comm, laws, exact, offset, max_ndofs, **kwargs) -> dict:
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = adapt(
            checkerboard(comm, 2, h=0.25, offset=(offset, offset)),
            laws,
            0.01,
            max_refinements=200,
            max_ndofs=max_ndofs,
            on_limit="warn",
            **kwargs,
        )
    rows = [_row(s.ndofs, s.lower, s.upper, s.error_estimate, exact) for s in result.steps]
    return {
        "steps": rows,
        "rate": _rate(rows),
        "converged": result.converged,
        "wall_s": time.perf_counter() - t0,
        "stop": [str(w.message) for w in caught],
        "enrichment": result.final.to_dict()["enrichment"],
    }


def run_contrast(
    comm: MPI.Comm, k2: float, max_ndofs: int, offset: float, enrich_degree: int = 2
) -> dict:
    laws = {"phase0": Conductivity(1.0), "phase1": Conductivity(k2)}
    exact = math.sqrt(k2)
    uniform = []
    for h in UNIFORM_H:
        t0 = time.perf_counter()
        r = certify(checkerboard(comm, 2, h=h), laws)
        row = _row(r.ndofs, r.lower, r.upper.tensor, r.error_estimate, exact)
        row["wall_s"] = time.perf_counter() - t0
        uniform.append(row)
    plain = _adapt_rows(comm, laws, exact, offset, max_ndofs)
    return {
        "k2": k2,
        "exact": exact,
        "offset": offset,
        "uniform": uniform,
        "uniform_rate": _rate(uniform),
        "adaptive": plain["steps"],
        "adaptive_rate": plain["rate"],
        "adaptive_converged": plain["converged"],
        "adaptive_wall_s": plain["wall_s"],
        "adaptive_stop": plain["stop"],
        "enriched": _adapt_rows(
            comm, laws, exact, offset, max_ndofs, degree=enrich_degree, enrich=True
        ),
        "enriched_degree": enrich_degree,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contrasts", type=float, nargs="+", default=[10.0, 100.0, 1000.0])
    parser.add_argument("--max-ndofs", type=int, default=100_000)
    parser.add_argument(
        "--offset",
        type=float,
        default=0.5,
        help="shift of the pattern in squares (0.5: every junction inside the cell)",
    )
    parser.add_argument("--enrich-degree", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    out = {
        "certify_checkerboard": [
            run_contrast(comm, k, args.max_ndofs, args.offset, args.enrich_degree)
            for k in args.contrasts
        ]
    }
    if comm.rank == 0:
        for case in out["certify_checkerboard"]:
            u, a = case["uniform"][-1], case["adaptive"][-1]
            print(
                f"k2={case['k2']:g}: uniform {u['ndofs']} dofs gap {u['error_estimate']:.4f} "
                f"(rate {case['uniform_rate']:.3f}); adaptive {a['ndofs']} dofs gap "
                f"{a['error_estimate']:.4f} (rate {case['adaptive_rate']:.3f}, "
                f"{case['adaptive_wall_s']:.1f} s) converged={case['adaptive_converged']}"
            )
            e = case["enriched"]
            print(
                f"  enriched P{case['enriched_degree']}: {e['steps'][-1]['ndofs']} dofs gap "
                f"{e['steps'][-1]['error_estimate']:.4f} after {len(e['steps']) - 1} "
                f"refinements ({e['wall_s']:.1f} s) converged={e['converged']}"
            )
        if args.json:
            write_json_file(args.json, out)


if __name__ == "__main__":
    main()
