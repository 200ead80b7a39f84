"""``multiscale lattice CONFIG``: the Cauchy–Born law of a pair potential on a lattice, its
relaxed lattice constant and the stability criteria along a loading path, as JSON.

The configuration (see ``examples/lattice_lj_triangular.yaml``)::

    lattice: {type: triangular}            # chain, square, triangular, simple_cubic, fcc, bcc;
                                           # constant: a (default: relaxed)
    potential: {type: lennard_jones, epsilon: 1.0, sigma: 1.0}   # morse: D, alpha, r0;
                                           # harmonic: k, r0; optional cutoff (shifted)
    shells: 2                              # or cutoff: 2.1 (in lattice constants)
    path: {type: isotropic, range: [1.0, 1.2], points: 41}    # uniaxial, biaxial, isotropic,
                                           # shear, general (with G: [[...], ...])
    stability: {k_points: 24, directions: 90}
    output: results/lattice.json

The summary holds ``lattice_constant``, ``atomic_volume``, ``critical_stretch`` (the first
critical :math:`\\lambda`, ``null`` when the path is stable throughout), ``first_instability``
(criterion, lambda, wave_vector, direction) and ``criteria`` (each criterion's critical values).
Every rank computes (NumPy, a fraction of a second); rank 0 writes.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
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
    Section,
    Spec,
    Text,
    load,
)
from multiscale.output import write_json

__all__ = ["SCHEMA", "add_parser", "build_law", "load_config", "run"]

log = logging.getLogger(__name__)

_LATTICES = ("chain", "square", "triangular", "simple_cubic", "fcc", "bcc")
_PATHS = ("uniaxial", "biaxial", "isotropic", "shear", "general")

#: Parameters of each potential type (all required) besides ``type`` and ``cutoff``.
_POTENTIALS = {
    "lennard_jones": ("epsilon", "sigma"),
    "morse": ("D", "alpha", "r0"),
    "harmonic": ("k", "r0"),
}


@dataclass(frozen=True)
class PotentialSpec(Spec):
    """A ``potential`` section: ``type``, its parameters (positive numbers), optional
    ``cutoff``."""

    what = "a mapping with 'type' and its parameters"

    def check(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.wrong_type(value, where)
        kind = Text(tuple(_POTENTIALS)).check(value.get("type"), f"{where}.type")
        fields = {name: Field(Number(positive=True), required=True) for name in _POTENTIALS[kind]}
        fields["type"] = Field(Text(tuple(_POTENTIALS)))
        fields["cutoff"] = Field(Number(positive=True))
        return Section(fields).check(value, where)


def _one_neighbour_rule(data: dict[str, Any]) -> str | None:
    if ("shells" in data) == ("cutoff" in data):
        return "give exactly one of 'shells' and 'cutoff'"
    return None


def _path_rule(data: dict[str, Any]) -> str | None:
    lo, hi = data["range"]
    if not lo < hi:
        return f"range: expected increasing values, got {[lo, hi]}"
    if (data["type"] == "general") != ("G" in data):
        return "G: give it for, and only for, type 'general'"
    return None


#: The schema of the ``multiscale lattice`` file (see the module docstring).
SCHEMA = Section(
    {
        "lattice": Field(
            Section(
                {
                    "type": Field(Text(_LATTICES), required=True),
                    "constant": Field(Number(positive=True)),
                }
            ),
            required=True,
        ),
        "potential": Field(PotentialSpec(), required=True),
        "shells": Field(Integer(min=1, max=50)),
        "cutoff": Field(Number(positive=True)),
        "path": Field(
            Section(
                {
                    "type": Field(Text(_PATHS), required=True),
                    "range": Field(ListOf(Number(), length=2), required=True),
                    "points": Field(Integer(min=2, max=10000), default=41),
                    "G": Field(ListOf(ListOf(Number()), min_length=1)),
                },
                extra=_path_rule,
            ),
            required=True,
        ),
        "stability": Field(
            Section(
                {
                    "k_points": Field(Integer(min=2, max=400), default=24),
                    "directions": Field(Integer(min=4, max=100000), default=90),
                }
            ),
            default=dict,
        ),
        "output": Field(Text()),
    },
    extra=_one_neighbour_rule,
)


def load_config(path: str | Path) -> dict[str, Any]:
    """The checked configuration of ``path`` (YAML or TOML), defaults filled in."""
    return load(path, SCHEMA)


def build_potential(spec: dict[str, Any]) -> Any:
    """The pair potential of a ``potential`` section."""
    from multiscale import atomistic

    classes = {
        "lennard_jones": atomistic.LennardJones,
        "morse": atomistic.Morse,
        "harmonic": atomistic.Harmonic,
    }
    params = {k: spec[k] for k in _POTENTIALS[spec["type"]]}
    pot = classes[spec["type"]](**params)
    return atomistic.Shifted(pot, spec["cutoff"]) if "cutoff" in spec else pot


def build_law(cfg: dict[str, Any]) -> Any:
    """The :class:`~multiscale.atomistic.CauchyBorn` law of a checked configuration: at the
    given lattice constant, else at the relaxed one."""
    from multiscale import atomistic

    lattice = atomistic.Lattice.of(cfg["lattice"]["type"])
    pot = build_potential(cfg["potential"])
    shells, rc = cfg.get("shells"), cfg.get("cutoff")
    if "constant" in cfg["lattice"]:
        unit = lattice.bonds(shells=shells, cutoff=rc)
        return atomistic.CauchyBorn(pot, unit.scaled(cfg["lattice"]["constant"]))
    return atomistic.CauchyBorn.relaxed(lattice, pot, shells=shells, reduced_cutoff=rc)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "lattice",
        help="Cauchy-Born law of a pair potential on a lattice: stability along a path",
        description="Relaxed lattice constant, and where strong ellipticity, convexity along "
        "the path and phonon stability are lost (YAML or TOML configuration); JSON summary.",
    )
    return add_config_arguments(p)


def summarize(cfg: dict[str, Any], law: Any, result: Any) -> dict[str, Any]:
    """The JSON summary of an analysed path."""
    first = result.first
    lattice_constant = float(law.bonds.radii[0] / _unit_nearest(cfg["lattice"]["type"]))
    return {
        "lattice": cfg["lattice"]["type"],
        "potential": cfg["potential"],
        "shells": int(law.bonds.shell.max()) + 1,
        "bonds": len(law.bonds.vectors),
        "lattice_constant": lattice_constant,
        "nearest_neighbour_distance": float(law.bonds.radii[0]),
        "atomic_volume": law.bonds.atomic_volume,
        "path": dict(cfg["path"]),
        "critical_stretch": None if first is None else first.lam,
        "first_instability": None if first is None else first.to_dict(),
        "criteria": {
            name: (None if c is None else c.to_dict()) for name, c in result.critical.items()
        },
    }


def _unit_nearest(kind: str) -> float:
    from multiscale.atomistic import Lattice

    return float(Lattice.of(kind).bonds(shells=1).radii[0])


def run(args: argparse.Namespace, comm: MPI.Comm) -> int:
    from multiscale import atomistic

    t0 = time.perf_counter()
    cfg = load_config(args.config)
    try:
        law = build_law(cfg)
        path_cfg = cfg["path"]
        path = atomistic.LoadingPath(path_cfg["type"], law.dim, path_cfg.get("G"))
    except ValueError as err:
        raise ConfigError(f"{args.config}: {err}") from None
    stab = cfg["stability"]
    result = atomistic.analyse_path(
        law,
        path,
        tuple(path_cfg["range"]),
        points=path_cfg["points"],
        nk=stab["k_points"],
        ndir=stab["directions"],
    )
    summary = summarize(cfg, law, result)
    summary["wall_time_s"] = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    first = result.first
    log.info(
        "lattice constant %.10g; first instability: %s",
        summary["lattice_constant"],
        "none in the range" if first is None else f"{first.criterion} at lambda = {first.lam:.8f}",
    )
    out = args.json or (Path(cfg["output"]) if cfg.get("output") else None)
    if out is not None:
        write_json(out, summary, comm)
    return 0
