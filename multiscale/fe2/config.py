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
      parameters: {}             # macro parameters of the micro laws at load factor 1, uniform:
                                 # {theta: -100} cools thermoelastic phases by 100 K
    micro:
      mesh: ../meshes/fibre2d_vf0.5.msh   # or {type: circular_inclusion, vf: 0.5, h: 0.05}
      materials:
        matrix: {law: j2, E: 3.5, nu: 0.35, sigma_y: 0.06, H: 0.35}
        inclusion: {law: elastic, E: 72.0, nu: 0.22}
      tangent: consistent        # or taylor
      group_size: 1              # ranks per RVE
      balance: {threshold: 1.2}  # optional: move RVEs between ranks when a load step's micro
                                 # work is imbalanced beyond threshold (max/mean; group_size 1)
      petsc_options: {}          # RVE Newton/KSP options
      surrogate:                 # optional: hierarchical FE² (hyperelastic phases only), see
        lower: [-0.14, -0.02, -0.14, -0.01, -0.01, -0.01]   # multiscale.fe2.surrogate; the
        upper: [0.02, 0.38, 0.02, 0.01, 0.01, 0.01]         # design box of E11 E22 E33 E23 E13 E12
        samples: 128             # Sobol points of the offline design
        degree: 6                # of the polynomial potential W(E)
        tol: 2.0e-3              # error estimate above which a point is solved by its RVE
        database: block.npz      # read if it exists, else built; rewritten at every enrichment
        # or, instead of lower/upper, a tube around the strain path the macro problem will go:
        # path: [[0, 0, 0, 0, 0, 0], [-0.1, 0.3, -0.1, 0, 0, 0]]
        # radius: [0.02, 0.02, 0.02, 0.01, 0.01, 0.01]
    loading: {steps: 10, max_cuts: 6}   # or {factors: [0.5, 1.0, 0.5, 0.0]}
    solver: {petsc_options: {}}  # macro Newton/KSP options
    output: {directory: results/fe2, summary: summary.json, probes: [[0.35, 0.0]], fields: true,
             checkpoint: {every: 2, keep: 2}}   # checkpoint: optional, under <directory>/checkpoint

Laws: ``elastic`` (``E``, ``nu`` or ``lambda``, ``mu``), ``j2`` (``E``, ``nu``, ``sigma_y``,
``H``), ``neo_hookean`` (``E``, ``nu`` or ``lambda``, ``mu``), ``thermoelastic`` (``E``, ``nu``
or ``lambda``, ``mu``, and ``alpha``: every phase then, loaded by the temperature change
``theta`` of ``macro.parameters``).  Paths of *input* files (meshes)
are relative to the directory of the config file; the *output* directory is relative to the
current directory, like any command-line path (default ``results/<config name>``).  The
surrogate's ``database`` is relative to the config's directory too (it is reused as an input);
without it the database is written to ``<output directory>/surrogate.npz``.  Unknown,
missing and null keys, wrong types and unphysical values are errors naming the key
(:mod:`multiscale.config`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from multiscale.config import (
    Boolean,
    ConfigError,
    Field,
    Integer,
    ListOf,
    Number,
    OneOf,
    Section,
    Spec,
    Table,
    Text,
    load,
    validate,
)
from multiscale.mesh import generators
from multiscale.mesh.macro import MacroMesh, box, plate_with_hole, read_macro_mesh, rectangle
from multiscale.nonlinear import CollectiveError
from multiscale.output import write_json
from multiscale.physics import IsotropicElasticity, J2Plasticity, NeoHookean
from multiscale.physics.base import lame_from_young
from multiscale.physics.coupled import ThermoElastic
from multiscale.progress import Progress

from .checkpoint import FE2Checkpointer, fe2_config_hash, open_restart, restore_fe2
from .output import FE2Output
from .solver import DisplacementBC, FE2Problem, FE2Result, Traction
from .surrogate import SurrogateOptions

__all__ = ["SCHEMA", "FE2Config", "build_law", "run_fe2", "step_summary"]

log = logging.getLogger(__name__)

_LAWS = {
    "elastic": ({"E", "nu"}, {"lambda", "mu"}),
    "neo_hookean": ({"E", "nu"}, {"lambda", "mu"}),
    "j2": ({"E", "nu", "sigma_y"}, {"E", "nu", "sigma_y", "H"}),
    "thermoelastic": ({"E", "nu", "alpha"}, {"lambda", "mu", "alpha"}),
}


@dataclass(frozen=True)
class LawSpec(Spec):
    """A phase law entry: ``law`` and its parameters, all numbers."""

    what = "a mapping with 'law' and its parameters"

    def check(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.wrong_type(value, where)
        law = Text(tuple(_LAWS)).check(value.get("law", "elastic"), f"{where}.law")
        params = {k: v for k, v in value.items() if k != "law"}
        for key, v in params.items():
            if v is None:
                raise self.fail(f"{where}.{key}", "null is not allowed")
            Number().check(v, f"{where}.{key}")
        keys = set(params)
        allowed = _LAWS[law]
        if keys not in allowed and not (law == "j2" and allowed[0] <= keys <= allowed[1]):
            options = " or ".join(str(sorted(a)) for a in allowed)
            missing = sorted(min(allowed, key=lambda a: len(a - keys)) - keys)
            unknown = sorted(keys - set().union(*allowed))
            detail = f"unknown parameter(s) {unknown}" if unknown else f"missing {missing}"
            raise self.fail(where, f"law {law!r} takes {options}: {detail}")
        try:
            build_law(where, {"law": law, **params})
        except ValueError as err:
            raise self.fail(where, str(err).removeprefix(f"material {where!r} ")) from None
        return {"law": law, **{k: float(v) for k, v in params.items()}}


_POSITIVE = Number(positive=True)
_MACRO_MESH = OneOf(
    Text(),
    Section(
        {
            "file": Field(Text()),
            "dim": Field(Integer(min=2, max=3)),
            "type": Field(Text(("rectangle", "box", "plate_with_hole"))),
            "lengths": Field(ListOf(_POSITIVE, min_length=2)),
            "n": Field(ListOf(Integer(min=1), min_length=2)),
            "origin": Field(ListOf(Number(), min_length=2)),
            "diagonal": Field(Text(("crossed", "left", "right"))),
            "width": Field(_POSITIVE),
            "height": Field(_POSITIVE),
            "radius": Field(_POSITIVE),
            "h": Field(_POSITIVE),
            "h_hole": Field(_POSITIVE),
        },
        extra=lambda s: None if ("file" in s) != ("type" in s) else "give either file or type",
    ),
)
_MICRO_MESH = OneOf(
    Text(),
    Section(
        {
            "file": Field(Text()),
            "type": Field(Text(("circular_inclusion", "spherical_inclusion"))),
            "vf": Field(Number(positive=True, below=1.0)),
            "h": Field(_POSITIVE),
        },
        extra=lambda s: (
            None
            if ("file" in s) != ("type" in s) and ("type" not in s or "vf" in s)
            else "give either file, or type with vf"
        ),
    ),
)
_SURROGATE = Section(
    {
        "database": Field(Text()),
        "lower": Field(ListOf(Number(), min_length=3)),
        "upper": Field(ListOf(Number(), min_length=3)),
        "samples": Field(Integer(min=2), default=128),
        "seed": Field(Integer(min=0), default=0),
        "degree": Field(Integer(min=2, max=8), default=6),
        "tol": Field(Number(positive=True), default=2e-3),
        "margin": Field(Number(min=0.0), default=0.0),
        "symmetry": Field(Text(("none", "cubic")), default="none"),
        "tangent_weight": Field(Number(min=0.0), default=1.0),
        "enrich": Field(Boolean(), default=True),
        "path": Field(ListOf(ListOf(Number(), min_length=3), min_length=2)),
        "radius": Field(OneOf(Number(min=0.0), ListOf(Number(min=0.0), min_length=1))),
    },
    extra=lambda s: (
        "give both lower and upper (or neither, with an existing database)"
        if ("lower" in s) != ("upper" in s)
        else "give either lower/upper or path, not both"
        if "lower" in s and "path" in s
        else None
    ),
)
_BC = Section(
    {
        "boundary": Field(Text(), required=True),
        "component": Field(Integer(min=0, max=2)),
        "value": Field(OneOf(Number(), ListOf(Number(), min_length=1)), default=0.0),
    }
)

#: The schema of the ``multiscale fe2`` file.
SCHEMA = Section(
    {
        "macro": Field(
            Section(
                {
                    "mesh": Field(_MACRO_MESH, required=True),
                    "degree": Field(Integer(min=1, max=3), default=1),
                    "quadrature_degree": Field(Integer(min=1)),
                    "bcs": Field(ListOf(_BC, min_length=1), required=True),
                    "tractions": Field(
                        ListOf(
                            Section(
                                {
                                    "boundary": Field(Text(), required=True),
                                    "value": Field(ListOf(Number(), min_length=2), required=True),
                                }
                            )
                        ),
                        default=list,
                    ),
                    "parameters": Field(Table(Number()), default=dict),
                }
            ),
            required=True,
        ),
        "micro": Field(
            Section(
                {
                    "mesh": Field(_MICRO_MESH, required=True),
                    "materials": Field(Table(LawSpec(), min_length=1), required=True),
                    "tangent": Field(Text(("consistent", "taylor")), default="consistent"),
                    "group_size": Field(Integer(min=1), default=1),
                    "balance": Field(Section({"threshold": Field(Number(min=1.0), default=1.2)})),
                    "degree": Field(Integer(min=1, max=3), default=1),
                    "predictor": Field(Boolean(), default=True),
                    "petsc_options": Field(Table(OneOf(Text(), Number(), Boolean())), default=dict),
                    "surrogate": Field(_SURROGATE),
                }
            ),
            required=True,
        ),
        "loading": Field(
            Section(
                {
                    "steps": Field(Integer(min=1)),
                    "factors": Field(ListOf(Number(), min_length=1)),
                    "max_cuts": Field(Integer(min=0), default=6),
                },
                extra=lambda s: (
                    "give either steps or factors, not both"
                    if "steps" in s and "factors" in s
                    else None
                ),
            ),
            default=dict,
        ),
        "solver": Field(
            Section(
                {"petsc_options": Field(Table(OneOf(Text(), Number(), Boolean())), default=dict)}
            ),
            default=dict,
        ),
        "output": Field(
            Section(
                {
                    "directory": Field(Text()),
                    "summary": Field(Text(), default="summary.json"),
                    "probes": Field(ListOf(ListOf(Number(), min_length=2)), default=list),
                    "fields": Field(Boolean(), default=True),
                    "checkpoint": Field(
                        Section(
                            {
                                "every": Field(Integer(min=1), required=True),
                                "keep": Field(Integer(min=1), default=2),
                            }
                        )
                    ),
                }
            ),
            default=dict,
        ),
    }
)


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
        elif law == "thermoelastic":
            alpha = spec.pop("alpha")
            args = elastic_args(spec)
            lmbda, mu = lame_from_young(**args) if "E" in args else (args["lmbda"], args["mu"])
            obj = ThermoElastic(lmbda, mu, alpha)
        else:
            raise ValueError(
                f"material {name!r}: unknown law {law!r}; expected elastic, j2, neo_hookean or "
                "thermoelastic"
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
    name: str = "fe2"

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], base: Path | None = None, name: str = "fe2"
    ) -> FE2Config:
        checked = validate(data, SCHEMA)
        return cls(**checked, base=base or Path.cwd(), name=name)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> FE2Config:
        path = Path(path)
        checked = load(path, SCHEMA)
        return cls(**checked, base=path.resolve().parent, name=path.stem)

    # -- pieces ----------------------------------------------------------------------------------
    def input_path(self, value: str) -> Path:
        """An input file named in the config: relative to the config's directory."""
        p = Path(value)
        return p if p.is_absolute() else self.base / p

    def output_directory(self) -> Path:
        """The output directory: relative to the current directory."""
        return Path(self.output.get("directory") or Path("results") / self.name)

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
            return read_macro_mesh(self.input_path(spec["file"]), comm, gdim=spec.get("dim", 2))
        kind = spec.pop("type")
        makers = {"rectangle": rectangle, "box": box, "plate_with_hole": plate_with_hole}
        try:
            return makers[kind](comm, **spec)
        except TypeError as err:  # a key of another mesh type
            raise ConfigError(f"macro.mesh: {err}".replace("()", "")) from None

    def micro_cell(self):
        spec = self.micro["mesh"]
        if isinstance(spec, str):
            return self.input_path(spec)
        spec = dict(spec)
        if "file" in spec:
            return self.input_path(spec["file"])
        makers = {
            "circular_inclusion": generators.circular_inclusion,
            "spherical_inclusion": generators.spherical_inclusion,
        }
        make = makers[spec.pop("type")]
        vf = spec.pop("vf")
        return lambda comm: make(comm, vf, **spec)

    def balance_threshold(self) -> float | None:
        """``micro.balance.threshold`` (``None`` without ``micro.balance``: static assignment)."""
        spec = self.micro.get("balance")
        return None if spec is None else float(spec["threshold"])

    def surrogate(self) -> SurrogateOptions | None:
        """``micro.surrogate`` as :class:`SurrogateOptions` (``None`` without it)."""
        spec = self.micro.get("surrogate")
        if spec is None:
            return None
        spec = dict(spec)
        database = spec.pop("database", None)
        path = (
            self.input_path(database)
            if database is not None
            else self.output_directory() / "surrogate.npz"
        )
        if spec["symmetry"] == "none":
            spec["symmetry"] = None
        return SurrogateOptions.from_mapping({**spec, "database": str(path)})

    def materials(self) -> dict[str, Any]:
        return {name: build_law(name, spec) for name, spec in self.micro["materials"].items()}

    def boundary_conditions(self) -> tuple[list[DisplacementBC], list[Traction]]:
        bcs = []
        for i, spec in enumerate(self.macro["bcs"]):
            try:
                bcs.append(DisplacementBC(spec["boundary"], spec["value"], spec.get("component")))
            except ValueError as err:
                raise ConfigError(f"macro.bcs[{i}]: {err}") from None
        tractions = [Traction(t["boundary"], tuple(t["value"])) for t in self.macro["tractions"]]
        return bcs, tractions


def step_summary(step, result: FE2Result) -> str:
    """One line about a converged FE² step: factor, Newton iterations, RVE solves, reaction."""
    reaction = step.reactions[result.load_boundary][result.load_component]
    q = step.quantities
    cuts = f", {step.cuts} cut(s)" if step.cuts else ""
    return (
        f"{step.factor:.4g}, {step.iterations} Newton its{cuts}, "
        f"{int(q.get('rve_solves', 0))} RVE solves, reaction {reaction:.5g}, "
        f"max <p> {q.get('max_mean_p', 0.0):.3g}"
    )


def run_fe2(
    comm: MPI.Comm, config: FE2Config, restart: str | os.PathLike | None = None
) -> FE2Result:
    """Build and solve the FE² problem of ``config``; write the fields, probes and summary.

    The summary JSON is written (atomically, by rank 0) also when the run fails, with the
    error recorded, before the error is re-raised.  With ``output.checkpoint.every`` a
    checkpoint is written every that many steps under ``<output directory>/checkpoint``
    (:mod:`multiscale.fe2.checkpoint`); ``restart`` (a checkpoint or output directory)
    continues from its newest complete checkpoint, on any number of ranks, and the summary
    then records it under ``restart`` (field files get the suffix ``_restart<k>``).  Collective.
    """
    t0 = time.perf_counter()
    checkpoint = open_restart(restart, comm, config) if restart is not None else None
    macro = config.macro_mesh(comm)
    bcs, tractions = config.boundary_conditions()
    rve_options: dict[str, Any] = {"degree": config.micro["degree"]}
    if config.micro["petsc_options"]:
        rve_options["petsc_options"] = dict(config.micro["petsc_options"])
    problem = FE2Problem(
        macro,
        config.micro_cell(),
        config.materials(),
        bcs=bcs,
        tractions=tractions,
        degree=config.macro["degree"],
        quadrature_degree=config.macro.get("quadrature_degree"),
        tangent=config.micro["tangent"],
        group_size=config.micro["group_size"],
        balance=config.balance_threshold(),
        predictor=config.micro["predictor"],
        petsc_options=config.solver["petsc_options"],
        rve_options=rve_options,
        max_cuts=config.loading["max_cuts"],
        surrogate=config.surrogate(),
        parameters=config.macro["parameters"],
    )
    with problem:
        directory = config.output_directory()
        suffix = f"_restart{checkpoint.step}" if checkpoint is not None else ""
        output = FE2Output(
            problem,
            directory,
            probes=config.output["probes"],
            fields=config.output["fields"],
            suffix=suffix,
        )
        factors = config.factors()
        progress = Progress(len(factors), "load factor", comm)
        if checkpoint is not None:
            stepper = restore_fe2(problem, checkpoint, output)["stepper"]
            i, targets = stepper["index"], stepper["targets"]
            progress.done = i + int(i < len(targets) and np.isclose(stepper["factor"], targets[i]))
        checkpointer = _checkpointer(problem, output, config, directory, fresh=restart is None)

        def on_step(step) -> None:
            output(step)
            if progress.done < len(factors) and np.isclose(step.factor, factors[progress.done]):
                progress.advance(step_summary(step, problem.result))
            if checkpointer is not None:
                checkpointer(step)

        problem.on_step = on_step
        summary_path = directory / config.output["summary"]
        try:
            problem.solve(factors)
        except CollectiveError:
            pass  # recorded in problem.result; the summary is written, then the error raised
        finally:
            output.close()
            progress.close()
        result = problem.result
        data = result.to_dict()
        data["probes"] = output.probe_points()
        data["files"] = [str(p) for p in output.files()]
        data["wall_time_s"] = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        data["config"] = {k: getattr(config, k) for k in ("macro", "micro", "loading", "solver")}
        if checkpoint is not None:
            data["restart"] = {
                "checkpoint": str(checkpoint.path),
                "step": checkpoint.step,
                "factor": checkpoint.manifest.get("factor"),
                "ranks": checkpoint.manifest.get("ranks"),
            }
        write_json(summary_path, data, comm)
        log.info(
            "results in %s (ParaView: %s)", directory, ", ".join(p.name for p in output.files())
        )
        if result.status != "ok":
            raise CollectiveError(result.error or "FE² run failed")
    return result


def _checkpointer(
    problem: FE2Problem, output: FE2Output, config: FE2Config, directory: Path, *, fresh: bool
) -> FE2Checkpointer | None:
    """The checkpoint writer of ``output.checkpoint`` (none without it)."""
    spec = config.output.get("checkpoint")
    if not spec:
        return None
    return FE2Checkpointer(
        problem,
        output,
        directory / "checkpoint",
        every=spec["every"],
        keep=spec["keep"],
        config_hash=fe2_config_hash(config),
        fresh=fresh,
    )
