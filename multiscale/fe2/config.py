"""The ``multiscale fe2 CONFIG`` file (YAML or TOML) and the run it describes.

.. code-block:: yaml

    macro:
      mesh: {type: plate_with_hole, width: 1.0, height: 1.0, radius: 0.3, h: 0.1}
      # or {type: rectangle, lengths: [1, 1], n: [4, 4]}, {type: box, ...}, {file: plate.msh}
      degree: 1
      bcs:                       # values at load factor 1
        - {boundary: left, component: 0, value: 0.0}
        - {boundary: bottom, component: 1, value: 0.0}
        - {boundary: top, component: 1, value: 0.02}
      tractions: []              # [{boundary: right, value: [0.1, 0.0]}]
    micro:
      mesh: meshes/fibre2d_vf0.5.msh   # or {type: circular_inclusion, vf: 0.5, h: 0.05}
      materials:
        matrix: {law: j2, E: 3.5, nu: 0.35, sigma_y: 0.06, H: 0.35}
        inclusion: {law: elastic, E: 72.0, nu: 0.22}
      tangent: consistent        # or taylor
      group_size: 1              # ranks per RVE
      petsc_options: {}          # RVE SNES/KSP options
    loading: {steps: 10, max_cuts: 6}   # or {factors: [0.5, 1.0, 0.5, 0.0]}
    solver: {petsc_options: {}}  # macro SNES/KSP options
    output: {directory: results/fe2, summary: summary.json, probes: [[0.35, 0.0]], fields: true}

Laws: ``elastic`` (``E``, ``nu`` or ``lambda``, ``mu``), ``j2`` (``E``, ``nu``, ``sigma_y``,
``H``), ``neo_hookean`` (``E``, ``nu`` or ``lambda``, ``mu``).  Relative paths are relative to
the directory of the config file, then to the current directory.  Unknown keys are errors.
"""

from __future__ import annotations

import logging
import os
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from multiscale.mesh import generators
from multiscale.mesh.macro import MacroMesh, box, plate_with_hole, read_macro_mesh, rectangle
from multiscale.physics import IsotropicElasticity, J2Plasticity, NeoHookean

from .output import FE2Output, write_summary
from .solver import DisplacementBC, FE2Problem, FE2Result, Traction

__all__ = ["FE2Config", "build_law", "run_fe2"]

log = logging.getLogger(__name__)

_SECTIONS = {
    "macro": {"mesh", "degree", "bcs", "tractions", "quadrature_degree"},
    "micro": {"mesh", "materials", "tangent", "group_size", "petsc_options", "degree"},
    "loading": {"steps", "factors", "max_cuts"},
    "solver": {"petsc_options"},
    "output": {"directory", "summary", "probes", "fields"},
}


def _check_keys(where: str, data: dict, allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; allowed: {sorted(allowed)}")


def build_law(name: str, spec: dict[str, Any]):
    """A micro law from its config entry, e.g. ``{law: j2, E: 3.5, nu: 0.35, sigma_y: 0.06}``."""
    spec = dict(spec)
    law = str(spec.pop("law", "elastic")).lower().replace("-", "_")

    def elastic_args(s: dict) -> dict:
        if "E" in s or "nu" in s:
            return {"E": s.pop("E"), "nu": s.pop("nu")}
        return {"lmbda": s.pop("lambda"), "mu": s.pop("mu")}

    try:
        if law == "elastic":
            args = elastic_args(spec)
            obj = (
                IsotropicElasticity.from_young(**args)
                if "E" in args
                else IsotropicElasticity(**args)
            )
        elif law == "neo_hookean":
            args = elastic_args(spec)
            obj = NeoHookean.from_young(**args) if "E" in args else NeoHookean(**args)
        elif law == "j2":
            obj = J2Plasticity.from_young(
                spec.pop("E"), spec.pop("nu"), spec.pop("sigma_y"), spec.pop("H", 0.0)
            )
        else:
            raise ValueError(
                f"material {name!r}: unknown law {law!r}; expected elastic, j2 or neo_hookean"
            )
    except KeyError as err:
        raise ValueError(f"material {name!r} ({law}) is missing the parameter {err}") from None
    if spec:
        raise ValueError(f"material {name!r} ({law}): unknown parameter(s) {sorted(spec)}")
    return obj


@dataclass(slots=True)
class FE2Config:
    """A validated FE² run description (see the module docstring for the format)."""

    macro: dict[str, Any]
    micro: dict[str, Any]
    loading: dict[str, Any] = field(default_factory=dict)
    solver: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    base: Path = field(default_factory=Path.cwd)

    def __post_init__(self) -> None:
        for name in _SECTIONS:
            data = getattr(self, name)
            if not isinstance(data, dict):
                raise ValueError(f"section {name!r} must be a mapping, got {type(data).__name__}")
            _check_keys(name, data, _SECTIONS[name])
        if "mesh" not in self.macro:
            raise ValueError("macro.mesh is required")
        if not self.macro.get("bcs"):
            raise ValueError("macro.bcs is required: at least one displacement condition")
        if "mesh" not in self.micro or "materials" not in self.micro:
            raise ValueError("micro.mesh and micro.materials are required")
        steps = self.loading.get("steps")
        if "factors" in self.loading and steps is not None:
            raise ValueError("loading: give either steps or factors, not both")
        if steps is not None and (int(steps) != steps or steps < 1):
            raise ValueError(f"loading.steps must be a positive integer, got {steps!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Path | None = None) -> FE2Config:
        _check_keys("the config", data, set(_SECTIONS))
        return cls(**{k: dict(data.get(k, {})) for k in _SECTIONS}, base=base or Path.cwd())

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> FE2Config:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {str(path)!r} does not exist")
        text = path.read_text()
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise ValueError(f"config {str(path)!r}: expected a .yaml, .yml or .toml file")
        if not isinstance(data, dict):
            raise ValueError(f"config {str(path)!r} must be a mapping of sections")
        return cls.from_dict(data, base=path.resolve().parent)

    # -- pieces ----------------------------------------------------------------------------------
    def path(self, value: str) -> Path:
        """``value`` relative to the config's directory, unless only the current directory has
        it."""
        p = Path(value)
        if p.is_absolute():
            return p
        q = self.base / p
        return q if q.exists() or not p.exists() else p

    def factors(self) -> list[float]:
        if "factors" in self.loading:
            return [float(f) for f in self.loading["factors"]]
        n = int(self.loading.get("steps", 10))
        return list(np.linspace(0.0, 1.0, n + 1)[1:])

    def macro_mesh(self, comm: MPI.Comm) -> MacroMesh:
        spec = self.macro["mesh"]
        if isinstance(spec, str):
            spec = {"file": spec}
        spec = dict(spec)
        if "file" in spec:
            return read_macro_mesh(self.path(spec["file"]), comm, gdim=int(spec.get("dim", 2)))
        kind = spec.pop("type", None)
        makers = {"rectangle": rectangle, "box": box, "plate_with_hole": plate_with_hole}
        if kind not in makers:
            raise ValueError(f"macro.mesh.type must be one of {sorted(makers)}, got {kind!r}")
        return makers[kind](comm, **spec)

    def micro_cell(self):
        spec = self.micro["mesh"]
        if isinstance(spec, str):
            return self.path(spec)
        spec = dict(spec)
        if "file" in spec:
            return self.path(spec["file"])
        kind = spec.pop("type", None)
        makers = {
            "circular_inclusion": generators.circular_inclusion,
            "spherical_inclusion": generators.spherical_inclusion,
        }
        if kind not in makers:
            raise ValueError(f"micro.mesh.type must be one of {sorted(makers)}, got {kind!r}")
        vf = spec.pop("vf")
        return lambda comm: makers[kind](comm, vf, **spec)

    def materials(self) -> dict[str, Any]:
        mats = self.micro["materials"]
        if not isinstance(mats, dict) or not mats:
            raise ValueError("micro.materials must map phase names to laws")
        return {name: build_law(name, spec) for name, spec in mats.items()}

    def boundary_conditions(self) -> tuple[list[DisplacementBC], list[Traction]]:
        bcs = []
        for i, spec in enumerate(self.macro["bcs"]):
            spec = dict(spec)
            _check_keys(f"macro.bcs[{i}]", spec, {"boundary", "component", "value"})
            bcs.append(
                DisplacementBC(spec["boundary"], spec.get("value", 0.0), spec.get("component"))
            )
        tractions = []
        for i, spec in enumerate(self.macro.get("tractions", [])):
            _check_keys(f"macro.tractions[{i}]", spec, {"boundary", "value"})
            tractions.append(Traction(spec["boundary"], tuple(spec["value"])))
        return bcs, tractions


def run_fe2(config: FE2Config, comm: MPI.Comm) -> FE2Result:
    """Build and solve the FE² problem of ``config``; write the fields, probes and summary.

    The summary JSON is written (atomically, by rank 0) also when the run fails, with the
    error recorded, before the error is re-raised.  Collective.
    """
    t0 = time.perf_counter()
    macro = config.macro_mesh(comm)
    bcs, tractions = config.boundary_conditions()
    rve_options: dict[str, Any] = {"degree": int(config.micro.get("degree", 1))}
    if config.micro.get("petsc_options"):
        rve_options["petsc_options"] = dict(config.micro["petsc_options"])
    problem = FE2Problem(
        macro,
        config.micro_cell(),
        config.materials(),
        bcs=bcs,
        tractions=tractions,
        degree=int(config.macro.get("degree", 1)),
        quadrature_degree=config.macro.get("quadrature_degree"),
        tangent=str(config.micro.get("tangent", "consistent")),
        group_size=int(config.micro.get("group_size", 1)),
        petsc_options=config.solver.get("petsc_options"),
        rve_options=rve_options,
        max_cuts=int(config.loading.get("max_cuts", 6)),
    )
    out_cfg = config.output
    directory = config.path(out_cfg.get("directory", "results/fe2"))
    output = FE2Output(
        problem,
        directory,
        probes=out_cfg.get("probes", []),
        fields=bool(out_cfg.get("fields", True)),
    )
    factors = config.factors()
    progress = {"done": 0}

    def on_step(p: FE2Problem, record) -> None:
        output(p, record)
        if any(np.isclose(record.factor, f) for f in factors):
            progress["done"] += 1
            log.info(
                "[%d/%d] load factor %.4g reached (reaction %.5g)",
                progress["done"],
                len(factors),
                record.factor,
                record.reaction,
            )

    problem.output = on_step
    summary_path = directory / out_cfg.get("summary", "summary.json")
    error = None
    try:
        result = problem.solve(factors)
    except RuntimeError as err:
        error = str(err)
        result = problem.result
        raise
    finally:
        output.close()
        data = result.to_dict() if error is None else problem.result.to_dict()
        data["status"] = "ok" if error is None else "failed"
        if error is not None:
            data["error"] = error
        data["probes"] = output.probe_points()
        data["wall_time_s"] = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        data["config"] = {k: getattr(config, k) for k in _SECTIONS}
        write_summary(summary_path, data, comm)
        problem.destroy()
    return result
