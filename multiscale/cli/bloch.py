"""``multiscale bloch CONFIG``: Bloch-wave dispersion of a periodic cell along a k-path, its band
gaps and long-wave speeds, as JSON.

The configuration (see ``examples/bloch_layered.yaml``)::

    cell:                                  # a 1D layered cell ...
      layers:
        - {thickness: 0.5, E: 1.0, rho: 1.0}
        - {thickness: 0.5, E: 10.0, rho: 1.0}
      h: 0.03125                           # mesh size (1D only; default 1/32)
    # ... or a 2D/3D cell mesh (path relative to the current folder) and its phases:
    #   mesh: meshes/inclusion2d_vf0.3.msh
    #   phases:
    #     matrix: {E: 1.0, nu: 0.3, rho: 1.0}      # elastic: E, nu or lmbda, mu
    #     inclusion: {mu: 10.0, rho: 3.0}          # scalar waves: one modulus E or mu
    path: {points: [G, X], per_segment: 16}        # names (G, X, Y, M, ...) or vectors
    bands: 4
    degree: 2
    long_wave_direction: [1.0]             # default: the first segment of the path
    output: results/bloch.json

The summary holds ``k`` (one vector per point), ``distance``, ``labels``, ``frequencies`` (one
list of angular frequencies per k-point, ascending), ``gaps`` (``[[low, high], ...]``) with
``gap_bands``, ``long_wave_speed`` (the slowest acoustic branch), ``long_wave_speeds`` and, for
comparison, ``homogenized_speeds``.  The k-points are spread over the ranks; rank 0 writes.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mpi4py import MPI

from multiscale.cli.common import add_config_arguments
from multiscale.config import (
    ConfigError,
    Field,
    Integer,
    ListOf,
    Number,
    OneOf,
    Section,
    Table,
    Text,
    load,
)
from multiscale.output import write_json

__all__ = ["SCHEMA", "add_parser", "build_phases", "load_config", "run"]

log = logging.getLogger(__name__)

_ELASTIC = ({"E", "nu"}, {"lmbda", "mu"})
_SCALAR = ({"E"}, {"mu"})


def _phase_rule(data: dict[str, Any]) -> str | None:
    moduli = set(data) - {"rho"}
    if moduli in _ELASTIC or moduli in _SCALAR:
        return None
    return (
        f"got {sorted(moduli)}; give E and nu, or lmbda and mu (elastic waves), or one modulus "
        "E or mu (scalar waves)"
    )


def _cell_rule(data: dict[str, Any]) -> str | None:
    if ("layers" in data) == ("mesh" in data):
        return "give exactly one of 'layers' (1D) and 'mesh' (with 'phases')"
    if ("mesh" in data) != ("phases" in data):
        return "'phases' goes with, and only with, 'mesh'"
    if "h" in data and "mesh" in data:
        return "'h' is the size of the 1D layered mesh; a cell mesh file has its own"
    if "phases" in data:
        kinds = {_is_elastic(p) for p in data["phases"].values()}
        if len(kinds) > 1:
            return "phases: all phases must be scalar (one modulus) or all elastic"
    return None


def _is_elastic(phase: dict[str, Any]) -> bool:
    return set(phase) - {"rho"} in _ELASTIC


_PHASE = Section(
    {
        "E": Field(Number(positive=True)),
        "nu": Field(Number(min=-0.999999, below=0.5)),
        "lmbda": Field(Number()),
        "mu": Field(Number(positive=True)),
        "rho": Field(Number(positive=True), required=True),
    },
    extra=_phase_rule,
)

_LAYER = Section(
    {
        "thickness": Field(Number(positive=True), required=True),
        "E": Field(Number(positive=True), required=True),
        "rho": Field(Number(positive=True), required=True),
    }
)

#: The schema of the ``multiscale bloch`` file (see the module docstring).
SCHEMA = Section(
    {
        "cell": Field(
            Section(
                {
                    "layers": Field(ListOf(_LAYER, min_length=1)),
                    "h": Field(Number(positive=True)),
                    "mesh": Field(Text()),
                    "phases": Field(Table(_PHASE, min_length=1)),
                },
                extra=_cell_rule,
            ),
            required=True,
        ),
        "path": Field(
            Section(
                {
                    "points": Field(
                        ListOf(OneOf(Text(), ListOf(Number(), min_length=1)), min_length=2),
                        required=True,
                    ),
                    "per_segment": Field(Integer(min=1, max=1000), default=10),
                }
            ),
            required=True,
        ),
        "bands": Field(Integer(min=1, max=200), default=6),
        "degree": Field(Integer(min=1, max=5), default=2),
        "long_wave_direction": Field(ListOf(Number(), min_length=1)),
        "output": Field(Text()),
    }
)


def load_config(path: str | Path) -> dict[str, Any]:
    """The checked configuration of ``path`` (YAML or TOML), defaults filled in."""
    return load(path, SCHEMA)


def build_phases(cell_cfg: dict[str, Any]) -> dict[str, Any]:
    """Phase name -> :class:`~multiscale.cell.bloch.WavePhase` of a checked ``cell`` section."""
    from multiscale.cell.bloch import WavePhase
    from multiscale.physics import IsotropicElasticity

    if "layers" in cell_cfg:
        return {
            f"layer{j}": WavePhase.scalar(layer["E"], layer["rho"])
            for j, layer in enumerate(cell_cfg["layers"])
        }
    out = {}
    for name, p in cell_cfg["phases"].items():
        if "nu" in p:
            out[name] = WavePhase.elastic(p["E"], p["nu"], p["rho"])
        elif "lmbda" in p:
            out[name] = WavePhase(IsotropicElasticity(p["lmbda"], p["mu"]), p["rho"])
        else:
            out[name] = WavePhase.scalar(p.get("E", p.get("mu")), p["rho"])
    return out


def _cell_builder(cell_cfg: dict[str, Any]) -> Callable[[MPI.Comm], Any]:
    from multiscale.cell.bloch import layered_cell
    from multiscale.mesh import read_cell_mesh

    if "layers" in cell_cfg:
        thicknesses = [layer["thickness"] for layer in cell_cfg["layers"]]
        h = cell_cfg.get("h", 1.0 / 32.0)
        return lambda comm: layered_cell(comm, thicknesses, h)
    mesh = Path(cell_cfg["mesh"])
    return lambda comm: read_cell_mesh(mesh, comm)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "bloch",
        help="Bloch-wave dispersion of a periodic cell: bands, gaps, long-wave speeds",
        description="Floquet-Bloch frequencies of a 1D layered cell or a cell mesh along a "
        "k-path (YAML or TOML configuration), band gaps and long-wave speeds against the "
        "homogenized ones; JSON summary.",
    )
    return add_config_arguments(p)


def run(args: argparse.Namespace, comm: MPI.Comm) -> int:
    from multiscale.cell.bloch import dispersion, homogenized_speeds, kpath

    t0 = time.perf_counter()
    cfg = load_config(args.config)
    cell_cfg = cfg["cell"]
    try:
        phases = build_phases(cell_cfg)
    except ValueError as err:
        raise ConfigError(f"{args.config}: cell: {err}") from None
    make_cell = _cell_builder(cell_cfg)
    cell = make_cell(comm)  # also checks the mesh file before any solve
    try:
        path = kpath(cfg["path"]["points"], cell.lengths, cfg["path"]["per_segment"])
        direction = cfg.get("long_wave_direction")
        if direction is not None and len(direction) != cell.dim:
            raise ValueError(f"long_wave_direction: expected {cell.dim} components")
    except ValueError as err:
        raise ConfigError(f"{args.config}: path.points: {err}") from None
    result = dispersion(
        make_cell,
        phases,
        path,
        comm=comm,
        direction=direction,
        nbands=cfg["bands"],
        degree=cfg["degree"],
    )
    summary = result.to_dict()
    summary["homogenized_speeds"] = homogenized_speeds(
        cell, phases, result.direction, degree=cfg["degree"]
    )
    summary.update(bands=cfg["bands"], degree=cfg["degree"], cell=cell_cfg)
    summary["wall_time_s"] = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    log.info(
        "%d k-points, %d bands: gaps %s; long-wave speeds %s (homogenized %s)",
        len(path.k),
        cfg["bands"],
        summary["gaps"] or "none",
        [f"{c:.6f}" for c in result.long_wave_speeds],
        [f"{c:.6f}" for c in summary["homogenized_speeds"]],
    )
    out = args.json or (Path(cfg["output"]) if cfg.get("output") else None)
    if out is not None:
        write_json(out, summary, comm)
    return 0
