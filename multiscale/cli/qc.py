"""``multiscale qc CONFIG``: a quasicontinuum solution of a chain or a triangular-lattice block
with a defect, its ghost forces and, on request, its error against the full atomistic solution.

The configuration (see ``examples/qc_chain.yaml``)::

    lattice: {type: chain}                 # chain or triangular (relaxed lattice constant)
    potential:                             # one pair potential, or a list: one per shell
      - {type: lennard_jones, epsilon: 1.0, sigma: 1.0}
      - {type: harmonic, k: 10.0, r0: 2.2449}
    shells: 2
    region: {size: [128]}                  # block size in lattice spacings (1 or 2 numbers)
    defect: {type: soft_bond, potential: {type: lennard_jones, epsilon: 0.5, sigma: 1.0}}
                                           # none, soft_bond (the bond at the centre),
                                           # vacancy (sites within radius spacings, default 1)
    mesh: {atomistic_radius: 4, coarse_size: 8}    # or growth: 1.0 (graded); max_size,
                                           # blend_width (method blended), layer (spacings)
    method: qcf                            # qce, qce_corrected, qcf, blended
    load: {F: [[1.02]], steps: 1}          # the outer layer follows x = F X about the centre
    reference: true                        # also solve the full atomistic problem
    output: results/qc.json

The summary holds ``atoms``, ``repatoms``, ``energy`` (the QC energy; ``null`` for QCF),
``max_ghost_force`` (the QCE ghost forces at the affine state of the full load, and the distance
of the largest from the centre), ``max_force`` at the solution, and with ``reference``
``error_max`` (largest displacement difference over all atoms, in lattice spacings),
``error_near_defect`` (within ``atomistic_radius`` of the centre) and ``energy_error``
(:math:`E(T x_{QC}) - E(x_{atoms})` of the full atomistic energy, :math:`\\ge 0`).  Every rank
solves the same problem on ``COMM_SELF``; rank 0 writes.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from multiscale.cli.common import add_config_arguments
from multiscale.config import (
    Boolean,
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

from .lattice import PotentialSpec, build_potential

__all__ = ["SCHEMA", "add_parser", "load_config", "run"]

log = logging.getLogger(__name__)

_METHODS = ("qce", "qce_corrected", "qcf", "blended")


@dataclass(frozen=True)
class PotentialsSpec(Spec):
    """One ``potential`` mapping, or a list of them (one per shell)."""

    what = "a potential mapping or a list of them"

    def check(self, value: Any, where: str) -> list[dict[str, Any]]:
        if isinstance(value, dict):
            return [PotentialSpec().check(value, where)]
        return ListOf(PotentialSpec(), min_length=1).check(value, where)


def _defect_rule(data: dict[str, Any]) -> str | None:
    if (data["type"] == "soft_bond") != ("potential" in data):
        return "potential: give it for, and only for, type 'soft_bond'"
    if "radius" in data and data["type"] != "vacancy":
        return "radius: only for type 'vacancy'"
    return None


def _mesh_rule(data: dict[str, Any]) -> str | None:
    if "coarse_size" in data and "growth" in data:
        return "give at most one of 'coarse_size' and 'growth'"
    return None


#: The schema of the ``multiscale qc`` file (see the module docstring).
SCHEMA = Section(
    {
        "lattice": Field(
            Section({"type": Field(Text(("chain", "triangular")), required=True)}),
            required=True,
        ),
        "potential": Field(PotentialsSpec(), required=True),
        "shells": Field(Integer(min=1, max=3), default=1),
        "region": Field(
            Section({"size": Field(ListOf(Number(min=8), min_length=1), required=True)}),
            required=True,
        ),
        "defect": Field(
            Section(
                {
                    "type": Field(Text(("none", "soft_bond", "vacancy")), required=True),
                    "potential": Field(PotentialSpec()),
                    "radius": Field(Number(positive=True)),
                },
                extra=_defect_rule,
            ),
            default=lambda: {"type": "none"},
        ),
        "mesh": Field(
            Section(
                {
                    "atomistic_radius": Field(Number(min=0), required=True),
                    "coarse_size": Field(Integer(min=1, max=4096)),
                    "growth": Field(Number(positive=True)),
                    "max_size": Field(Integer(min=1, max=4096), default=64),
                    "blend_width": Field(Number(min=0), default=0.0),
                    "layer": Field(Number(positive=True)),
                },
                extra=_mesh_rule,
            ),
            required=True,
        ),
        "method": Field(Text(_METHODS), required=True),
        "load": Field(
            Section(
                {
                    "F": Field(ListOf(ListOf(Number())), required=True),
                    "steps": Field(Integer(min=1, max=1000), default=1),
                }
            ),
            required=True,
        ),
        "reference": Field(Boolean(), default=False),
        "output": Field(Text()),
    }
)


def load_config(path: str | Path) -> dict[str, Any]:
    """The checked configuration of ``path`` (YAML or TOML), defaults filled in."""
    return load(path, SCHEMA)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "qc",
        help="quasicontinuum: a defect in a chain or a triangular lattice, ghost forces, errors",
        description="Quasicontinuum solution (QCE, ghost-force-corrected QCE, QCF or blended) "
        "of a block with a defect under a displaced outer layer; optionally against the full "
        "atomistic solution (YAML or TOML configuration); JSON summary.",
    )
    return add_config_arguments(p)


class _Setup:
    """The atoms, lattice, law, pair model and mesh of a checked configuration."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        from multiscale import atomistic as at

        kind, shells = cfg["lattice"]["type"], cfg["shells"]
        pots = tuple(build_potential(p) for p in cfg["potential"])
        self.pots = pots[0] if len(pots) == 1 else pots
        self.law = at.CauchyBorn.relaxed(at.Lattice.of(kind), self.pots, shells=shells)
        unit = at.Lattice.of(kind)
        a = self.a = float(self.law.bonds.radii[0] / unit.bonds(shells=1).radii[0])
        self.lattice = unit.with_constant(a)
        radii = self.lattice.bonds(shells=shells + 1).radii
        self.rc = float(0.5 * (radii[-2] + radii[-1]))
        self.dim = self.lattice.dim
        size = cfg["region"]["size"]
        if len(size) != self.dim:
            raise ValueError(f"region.size: expected {self.dim} number(s) for a {kind} lattice")
        hi = np.asarray(size, float) * a * np.array([1.0, np.sqrt(3) / 2][: self.dim])
        block = at.AtomSet.block(self.lattice, np.zeros(self.dim), hi)
        centre = block.positions[block.nearest(0.5 * hi)]
        self._defect(cfg["defect"], block, centre)
        F = np.asarray(cfg["load"]["F"], dtype=float)
        if F.shape != (self.dim, self.dim):
            raise ValueError(f"load.F: expected a {self.dim} x {self.dim} matrix")
        self.F = F
        layer = cfg["mesh"].get("layer")
        self.layer = self.rc if layer is None else layer * a

    def _defect(self, spec: dict[str, Any], block: Any, centre: np.ndarray) -> None:
        a = self.a
        self.bonds: list[tuple[int, int]] = []
        self.soft = None
        self.atoms = block
        self.centre = centre
        if spec["type"] == "vacancy":
            r = spec.get("radius", 1.0) * a * (1 + 1e-6)
            self.atoms = block.without(
                np.flatnonzero(np.linalg.norm(block.positions - centre, axis=1) < r)
            )
        elif spec["type"] == "soft_bond":
            i = block.nearest(centre)
            j = block.nearest(centre + np.eye(self.dim)[0] * a)
            self.bonds = [(i, j)]
            self.soft = build_potential(spec["potential"])
            self.centre = 0.5 * (block.positions[i] + block.positions[j])

    def modify(self, model: Any, ids: np.ndarray) -> Any:
        from multiscale.atomistic import soften_bonds

        return soften_bonds(model, ids, self.bonds, self.soft) if self.bonds else model

    def boundary(self, X: np.ndarray) -> np.ndarray:
        P = self.atoms.positions
        lo, hi = P.min(axis=0), P.max(axis=0)
        return np.minimum(X - lo, hi - X).min(axis=1) <= self.layer * (1 + 1e-9)


def _solve_qc(cfg: dict[str, Any], s: _Setup) -> tuple[Any, dict[str, Any]]:
    from multiscale import atomistic as at

    m = cfg["mesh"]
    blend = m["blend_width"] * s.a if cfg["method"] == "blended" else 0.0
    spec = at.MeshSpec(
        tuple(s.centre),
        m["atomistic_radius"] * s.a,
        padding=s.rc,
        layer=s.layer,
        coarse_size=m.get("coarse_size"),
        growth=m.get("growth", 1.0),
        max_size=m["max_size"],
        blend_width=blend,
    )
    mesh = at.CoarseMesh.graded(s.atoms, s.lattice, spec)
    model = at.QCModel(mesh, s.pots, s.rc, s.law, modify=s.modify)
    steps = cfg["load"]["steps"]
    factors = np.linspace(0.0, 1.0, steps + 1)[1:]
    with at.QCProblem(
        model, cfg["method"], macro_F=s.F, centre=tuple(s.centre), fixed=s.boundary(mesh.X)
    ) as p:
        ghost = np.linalg.norm(p.ghost_forces(1.0), axis=1)
        ghost[p.fixed] = 0.0
        p.solve(factors)
        k = int(np.argmax(ghost))
        out = {
            "atoms": s.atoms.n,
            "repatoms": mesh.n,
            "elements": len(mesh.elements),
            "nonlocal_repatoms": len(model.nonlocal_ids),
            "energy": None if cfg["method"] == "qcf" else p.energy(),
            "max_ghost_force": float(ghost[k]),
            "max_ghost_force_distance": float(np.linalg.norm(mesh.X[k] - s.centre) / s.a),
            "max_force": p.max_free_force(),
            "newton_iterations": [st.iterations for st in p.stepper.steps],
        }
        return (mesh, p.xr.copy(), factors), out


def _reference(s: _Setup, qc: tuple[Any, np.ndarray, np.ndarray], cfg: dict[str, Any]) -> dict:
    from multiscale import atomistic as at

    mesh, xr, factors = qc
    X = s.atoms.positions
    full = s.modify(at.PairModel(s.atoms, s.pots, s.rc), np.arange(s.atoms.n))
    U = (X - s.centre) @ (s.F - np.eye(s.dim)).T
    with at.AtomisticProblem(full, fixed=s.boundary(X), displacement=U) as p:
        p.solve(factors)
        xa, Ea = p.x.copy(), p.energy()
    x = np.asarray(mesh.interpolation() @ xr)
    err = np.linalg.norm(x - xa, axis=1) / s.a
    near = np.linalg.norm(X - s.centre, axis=1) <= max(cfg["mesh"]["atomistic_radius"], 1) * s.a
    return {
        "atomistic_energy": Ea,
        "error_max": float(err.max()),
        "error_max_distance": float(np.linalg.norm(X[np.argmax(err)] - s.centre) / s.a),
        "error_near_defect": float(err[near].max()),
        "energy_error": float(full.energy(x)) - Ea,
    }


def run(args: argparse.Namespace, comm: MPI.Comm) -> int:
    t0 = time.perf_counter()
    cfg = load_config(args.config)
    try:
        setup = _Setup(cfg)
    except ValueError as err:
        raise ConfigError(f"{args.config}: {err}") from None
    qc, summary = _solve_qc(cfg, setup)
    summary = {
        "lattice": cfg["lattice"]["type"],
        "method": cfg["method"],
        "lattice_constant": setup.a,
        "defect": cfg["defect"]["type"],
        **summary,
    }
    if cfg["reference"]:
        summary.update(_reference(setup, qc, cfg))
    summary["ranks_solve_redundantly"] = comm.size
    summary["wall_time_s"] = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    log.info(
        "QC (%s): %d repatoms for %d atoms, max ghost force %.3e%s",
        cfg["method"],
        summary["repatoms"],
        summary["atoms"],
        summary["max_ghost_force"],
        f", error near the defect {summary['error_near_defect']:.3e} a" if cfg["reference"] else "",
    )
    out = args.json or (Path(cfg["output"]) if cfg.get("output") else None)
    if out is not None:
        write_json(out, summary, comm)
    return 0
