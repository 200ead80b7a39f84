"""``multiscale homogenize``: effective tensor of a cell mesh under one boundary condition."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from multiscale.output import write_json

__all__ = ["add_parser", "parse_material", "run"]

log = logging.getLogger(__name__)


def parse_material(spec: str, physics: str) -> tuple[str | int, object]:
    """Parse ``TAG:key=value[,key=value]`` into ``(tag, material)``.

    ``TAG`` is a physical-group name or number.  Keys: ``k`` (conductivity); ``E`` and ``nu``, or
    ``lambda`` and ``mu`` (elasticity).
    """
    from multiscale.physics import Conductivity, IsotropicElasticity

    tag, sep, rest = spec.partition(":")
    if not sep or not tag or not rest:
        raise ValueError(f"material {spec!r} is not of the form TAG:key=value[,key=value]")
    values: dict[str, float] = {}
    for item in rest.split(","):
        key, eq, val = item.partition("=")
        if not eq:
            raise ValueError(f"material {spec!r}: {item!r} is not key=value")
        try:
            values[key.strip()] = float(val)
        except ValueError:
            raise ValueError(f"material {spec!r}: {val!r} is not a number") from None
    key_tag: str | int = int(tag) if tag.lstrip("-").isdigit() else tag
    keys = set(values)
    if physics == "conductivity":
        if keys != {"k"}:
            raise ValueError(f"conductivity material {spec!r} needs exactly the key k")
        return key_tag, Conductivity(values["k"])
    if keys == {"E", "nu"}:
        return key_tag, IsotropicElasticity.from_young(values["E"], values["nu"])
    if keys == {"lambda", "mu"}:
        return key_tag, IsotropicElasticity(values["lambda"], values["mu"])
    raise ValueError(f"elastic material {spec!r} needs the keys E,nu or lambda,mu")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "homogenize",
        help="effective conductivity or stiffness of a cell mesh",
        description="Solve the cell problems of a periodic cell mesh (gmsh .msh with phase "
        "physical groups) and print the effective (PBC) or apparent (KUBC, SUBC) tensor.",
    )
    p.add_argument("mesh", type=Path, help="gmsh .msh file of a box cell")
    p.add_argument("--physics", choices=("conductivity", "elasticity"), required=True)
    p.add_argument("--bc", choices=("periodic", "kubc", "subc"), default="periodic")
    p.add_argument(
        "--material",
        action="append",
        required=True,
        metavar="TAG:key=value[,key=value]",
        help="law of one phase, e.g. matrix:k=1 or inclusion:E=10,nu=0.3 (repeat per phase)",
    )
    p.add_argument("--degree", type=int, default=1, help="Lagrange degree (default 1)")
    p.add_argument("--json", type=Path, help="write the result as JSON to this file")
    return p


def run(args: argparse.Namespace, comm) -> int:
    from multiscale.cell import CellProblem
    from multiscale.mesh import check_periodic, read_cell_mesh

    t0 = time.perf_counter()
    materials = dict(parse_material(s, args.physics) for s in args.material)
    cell = read_cell_mesh(args.mesh, comm)
    check_periodic(cell)
    result = CellProblem(cell, materials, degree=args.degree).solve(args.bc)
    summary = result.to_dict()
    summary["mesh"] = str(args.mesh)
    summary["wall_time_s"] = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    with np.printoptions(precision=6, suppress=True):
        log.info("%s %s tensor (%s):\n%s", args.bc, args.physics, result.notation, result.tensor)
    log.info("volume fractions: %s", result.volume_fractions)
    log.info("Hill-Mandel residual: %.3e", result.hill_mandel_residual)
    if args.json is not None:
        write_json(args.json, summary, comm)
    return 0
