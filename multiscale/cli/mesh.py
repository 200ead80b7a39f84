"""``multiscale mesh``: build a periodic unit-cell mesh with gmsh and report its phases.

Examples::

    multiscale mesh inclusion2d --vf 0.3 --h 0.04 --out meshes/inclusion2d_vf0.3.msh
    multiscale mesh laminate --dim 3 --fractions 0.25 0.75 --h 0.1 --out lam.msh
    multiscale mesh checkerboard --n 2 --h 0.05 --out meshes/checkerboard2d.msh
    multiscale mesh sphere --vf 0.2 --h 0.15 --out meshes/sphere3d_vf0.2.msh
    multiscale mesh fibre --vf 0.4 --axis 2 --h 0.1 --out fibre.msh
"""

from __future__ import annotations

import argparse
import logging
import math

from mpi4py import MPI

__all__ = ["KINDS", "add_parser", "run"]

_log = logging.getLogger(__name__)

#: Cell kinds and what they build.
KINDS: dict[str, str] = {
    "inclusion2d": "unit square with a circular inclusion (centred unless --center)",
    "laminate": "layers normal to x (--dim 2|3, --fractions, --phases)",
    "checkerboard": "2D n x n checkerboard (--n even)",
    "sphere": "unit cube with a centred spherical inclusion",
    "fibre": "unit cube with a centred cylindrical fibre along --axis",
}

_DEFAULT_H = {2: 0.05, 3: 0.15}


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "mesh",
        help="build a periodic unit-cell mesh (gmsh) and report its phase volume fractions",
        description="Build a periodic unit-cell mesh with gmsh, optionally write it as MSH 4.1, "
        "and log the number of cells and the realized phase volume fractions.  Kinds: "
        + "; ".join(f"{k}: {v}" for k, v in KINDS.items()),
    )
    p.add_argument("kind", choices=sorted(KINDS), help="which cell to build")
    p.add_argument("--out", metavar="FILE.msh", help="write the mesh here (rank 0)")
    p.add_argument(
        "--vf", type=float, default=0.3, help="inclusion/fibre volume fraction (default 0.3)"
    )
    p.add_argument(
        "--h",
        type=float,
        default=None,
        help="characteristic element size (default 0.05 in 2D, 0.15 in 3D)",
    )
    p.add_argument("--n", type=int, default=2, help="checkerboard squares per side (even)")
    p.add_argument(
        "--offset",
        type=float,
        nargs=2,
        default=(0.0, 0.0),
        metavar=("OX", "OY"),
        help="checkerboard: shift of the pattern in squares, in [0, 1) (0.5 0.5 puts every "
        "four-phase junction inside the cell)",
    )
    p.add_argument("--dim", type=int, choices=(2, 3), default=2, help="laminate dimension")
    p.add_argument(
        "--fractions",
        type=float,
        nargs="+",
        default=[0.5, 0.5],
        metavar="F",
        help="laminate layer thickness fractions, summing to 1 (default 0.5 0.5)",
    )
    p.add_argument(
        "--phases",
        type=int,
        nargs="+",
        default=None,
        metavar="P",
        help="laminate material index of each layer (default alternating 0 1 0 ...)",
    )
    p.add_argument("--axis", type=int, choices=(0, 1, 2), default=2, help="fibre direction")
    p.add_argument(
        "--center",
        type=float,
        nargs=2,
        default=None,
        metavar=("X", "Y"),
        help="inclusion2d: disk centre (wrapped periodically if the disk crosses the boundary)",
    )
    p.add_argument("--gmsh-verbose", action="store_true", help="let gmsh print")
    return p


def run(args: argparse.Namespace, comm: MPI.Comm) -> int:
    from multiscale.mesh import generators

    dim = (
        3 if args.kind in ("sphere", "fibre") or (args.kind == "laminate" and args.dim == 3) else 2
    )
    h = _DEFAULT_H[dim] if args.h is None else args.h
    common = {"h": h, "path": args.out, "verbose": args.gmsh_verbose}
    target: dict[str, float]
    if args.kind == "inclusion2d":
        if args.center is None:
            cell = generators.circular_inclusion(comm, args.vf, **common)
        else:
            if not 0 < args.vf < math.pi / 4:
                raise ValueError(f"--vf must lie in (0, {math.pi / 4:.6g}), got {args.vf}")
            radius = math.sqrt(args.vf / math.pi)
            cell = generators.inclusions_2d(comm, [args.center], radius, **common)
        target = {"matrix": 1 - args.vf, "inclusion": args.vf}
    elif args.kind == "laminate":
        cell = generators.laminate(comm, args.dim, args.fractions, phases=args.phases, **common)
        layers = args.phases or [k % 2 for k in range(len(args.fractions))]
        target = {}
        for p, f in zip(layers, args.fractions, strict=False):
            target[f"phase{p}"] = target.get(f"phase{p}", 0.0) + f
    elif args.kind == "checkerboard":
        cell = generators.checkerboard(comm, args.n, offset=args.offset, **common)
        target = {"phase0": 0.5, "phase1": 0.5}
    elif args.kind == "sphere":
        cell = generators.spherical_inclusion(comm, args.vf, **common)
        target = {"matrix": 1 - args.vf, "inclusion": args.vf}
    else:
        cell = generators.cylindrical_fibre(comm, args.vf, axis=args.axis, **common)
        target = {"matrix": 1 - args.vf, "inclusion": args.vf}

    fractions = cell.volume_fractions()
    tdim = cell.mesh.topology.dim
    num_cells = cell.mesh.topology.index_map(tdim).size_global
    num_vertices = cell.mesh.topology.index_map(0).size_global
    _log.info(
        "%s cell, h=%g: %d cells, %d vertices%s",
        args.kind,
        h,
        num_cells,
        num_vertices,
        f", written to {args.out}" if args.out else "",
    )
    for name, tag in cell.phases.items():
        _log.info(
            "  phase %-10s (tag %d): volume fraction %.6f (geometric %.6f)",
            name,
            tag,
            fractions[name],
            target.get(name, float("nan")),
        )
    return 0
