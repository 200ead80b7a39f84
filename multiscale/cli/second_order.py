"""``multiscale second-order CONFIG``: the size effect of second-order (strain-gradient)
homogenization against first order, a resolved simulation (DNS) and, for the laminated beam,
the closed form, as JSON.

The configuration is one of two cases (see ``examples/second_order_laminate.yaml`` and
``examples/second_order_strip.yaml``)::

    laminate:                              # a layered beam in pure bending ...
      stacking: edges                      # stiff phase at the period edges, or centre
      moduli: {stiff: 10.0, soft: 1.0}     # Young's moduli (Poisson's ratio 0)
      periods: [1, 2, 4, 8]                # N, periods through the thickness
      per_layer: 2                         # element rows per quarter period (cell and DNS)
      length: 2.0                          # beam length in periods
    # ... or a particle-reinforced strip between constrained ends:
    # strip:
    #   cell: {volume_fraction: 0.35, h: 0.15}   # a centred disk per unit cell, element size
    #   phases:
    #     matrix: {E: 1.0, nu: 0.3}
    #     inclusion: {E: 20.0, nu: 0.3}
    #   loading: bending                   # or shear (simple shear, every boundary clamped)
    #   periods: [2, 4, 8]                 # cells through the thickness
    #   margin: 3                          # cells between each end and the window (default
    #                                      # 3 in bending, N + 1 in shear: see below)
    #   window: 2                          # cells read (a Hann window)
    # ... or the laminated strip with J2 layers, bent by its ends into yielding:
    # plastic_laminate:
    #   stacking: edges
    #   phases:                            # J2 plasticity with linear hardening
    #     stiff: {E: 10.0, nu: 0.3, sigma_y: 0.05, H: 1.0}
    #     soft: {E: 1.0, nu: 0.3, sigma_y: 0.004, H: 0.1}
    #   periods: [2, 4]
    #   steps: 4                           # equal load steps
    #   outer_strain: 0.02                 # at the last step
    models: [closed_form, first_order, second_order, dns]
    output: results/second_order.json

The summary holds ``case``, ``periods``, ``ratios`` (per model, one value per N: for the laminate
:math:`EI/EI_{hom}`, :math:`EI_{hom} = \\langle E\\rangle H^3/12`; for the strip the stiffness
over the first-order one), ``errors`` (per model, :math:`|r/r_{ref} - 1|` against ``dns`` and,
for the laminate, ``closed_form``), ``rates`` (the least-squares slope of
:math:`\\log` error against :math:`\\log N`, where every error is positive), the cell tangent
(``C``, ``B``, ``D``, the excess ``D_excess``, the Hill–Mandel defects) and ``wall_time_s``.
For ``plastic_laminate`` the summary holds instead ``rotations`` (the end rotation
:math:`\\kappa L` after each step, per N), ``works`` (per model and N, the work of the end moment
after each step: :func:`~multiscale.fe2.strain_gradient.laminate_bending`), ``max_mean_p`` (the
largest mean equivalent plastic strain of the cells) and ``errors`` (:math:`|W/W_{DNS} - 1|`
after each step, per model and N).  In simple shear the clamped ends
perturb the strip over a length of about its height (the DNS's boundary layers at the clamped
faces make its shear strain non-uniform through the thickness, which the clamped ends undo), so
the default margin there is :math:`N + 1` cells.  Second order on the strip is the perturbative
reading of :func:`~multiscale.fe2.second_order.
macro_strip` (the excess tangent of the particle cell is negative definite).  Every solve is
distributed over the ranks of the run; rank 0 writes.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from multiscale.cli.common import add_config_arguments
from multiscale.config import Field, Integer, ListOf, Number, Section, Text, load
from multiscale.output import write_json

__all__ = ["CASES", "MODELS", "SCHEMA", "add_parser", "load_config", "run"]

log = logging.getLogger(__name__)

#: The models a run may compare.
MODELS = ("closed_form", "first_order", "second_order", "dns")


#: The cases of a configuration file.
CASES = ("laminate", "strip", "plastic_laminate")


def _case_rule(data: dict[str, Any]) -> str | None:
    if sum(case in data for case in CASES) != 1:
        return "give exactly one of 'laminate', 'strip' and 'plastic_laminate'"
    models = data["models"]
    if len(set(models)) != len(models):
        return f"models: each model once, got {models}"
    if "laminate" not in data and "closed_form" in models:
        case = "the particle strip" if "strip" in data else "the yielding laminate"
        return f"models: {case} has no closed form; drop 'closed_form'"
    return None


_PERIODS = ListOf(Integer(min=1, max=64), min_length=1)

_LAMINATE = Section(
    {
        "stacking": Field(Text(choices=("edges", "centre")), required=True),
        "moduli": Field(
            Section(
                {
                    "stiff": Field(Number(positive=True), required=True),
                    "soft": Field(Number(positive=True), required=True),
                }
            ),
            required=True,
        ),
        "periods": Field(_PERIODS, default=[1, 2, 4, 8]),
        "per_layer": Field(Integer(min=1, max=64), default=2),
        "length": Field(Number(positive=True), default=2.0),
    }
)

_PHASE = Section(
    {
        "E": Field(Number(positive=True), required=True),
        "nu": Field(Number(min=-0.999999, below=0.5), required=True),
    }
)

_STRIP = Section(
    {
        "cell": Field(
            Section(
                {
                    "volume_fraction": Field(Number(positive=True, below=0.7), required=True),
                    "h": Field(Number(positive=True, max=0.5), default=0.15),
                }
            ),
            required=True,
        ),
        "phases": Field(
            Section(
                {
                    "matrix": Field(_PHASE, required=True),
                    "inclusion": Field(_PHASE, required=True),
                }
            ),
            required=True,
        ),
        "loading": Field(Text(choices=("bending", "shear")), default="bending"),
        "periods": Field(_PERIODS, default=[2, 4, 8]),
        "margin": Field(Integer(min=1, max=128)),
        "window": Field(Integer(min=2, max=64), default=2),
    }
)

_PLASTIC_PHASE = Section(
    {
        "E": Field(Number(positive=True), required=True),
        "nu": Field(Number(min=-0.999999, below=0.5), required=True),
        "sigma_y": Field(Number(positive=True), required=True),
        "H": Field(Number(min=0.0), default=0.0),
    }
)

_PLASTIC_LAMINATE = Section(
    {
        "stacking": Field(Text(choices=("edges", "centre")), default="edges"),
        "phases": Field(
            Section(
                {
                    "stiff": Field(_PLASTIC_PHASE, required=True),
                    "soft": Field(_PLASTIC_PHASE, required=True),
                }
            ),
            required=True,
        ),
        "periods": Field(ListOf(Integer(min=1, max=16), min_length=1), default=[2]),
        "steps": Field(Integer(min=1, max=64), default=4),
        "outer_strain": Field(Number(positive=True, max=0.2), default=0.02),
    }
)

#: The schema of the ``multiscale second-order`` file (see the module docstring).
SCHEMA = Section(
    {
        "laminate": Field(_LAMINATE),
        "strip": Field(_STRIP),
        "plastic_laminate": Field(_PLASTIC_LAMINATE),
        "models": Field(ListOf(Text(choices=MODELS), min_length=1), default=list(MODELS[1:])),
        "output": Field(Text()),
    },
    extra=_case_rule,
)


def load_config(path: str | Path) -> dict[str, Any]:
    """The checked configuration of ``path`` (YAML or TOML), defaults filled in."""
    return load(path, SCHEMA)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "second-order",
        help="size effect of second-order homogenization: laminated beam or particle strip",
        description="Bending stiffness of a laminated beam or stiffness of a particle-reinforced "
        "strip (bending or simple shear between constrained ends) for N cells through the "
        "thickness: first-order and second-order (strain-gradient) homogenization against a "
        "resolved simulation and the closed form (YAML or TOML configuration); JSON summary.",
    )
    return add_config_arguments(p)


def _laminate(comm: MPI.Comm, cfg: dict[str, Any], models: list[str]) -> dict[str, Any]:
    from multiscale.cell.second_order import SecondOrderCellProblem
    from multiscale.fe2.second_order import (
        bending_stiffness,
        closed_form_ratio,
        dns_bending_stiffness,
        layered_strip,
    )
    from multiscale.physics import IsotropicElasticity

    moduli = cfg["moduli"]
    laws = {name: IsotropicElasticity.from_young(E, 0.0) for name, E in moduli.items()}
    cell = layered_strip(comm, cfg["stacking"], 1, nx=4, per_layer=cfg["per_layer"])
    tangent = SecondOrderCellProblem(cell, laws).solve()
    mean = 0.5 * (moduli["stiff"] + moduli["soft"])  # equal fractions in either stacking
    length = cfg["length"]
    ratios: dict[str, list[float]] = {m: [] for m in models}
    for n in cfg["periods"]:
        EI_hom = mean * n**3 / 12.0
        beam = {"height": float(n), "length": length, "nx": 6, "ny": 2 * n}
        for model in models:
            if model == "closed_form":
                value = closed_form_ratio(cfg["stacking"], moduli, n)
            elif model == "dns":
                EI = dns_bending_stiffness(
                    comm, cfg["stacking"], n, moduli, length=length, per_layer=cfg["per_layer"]
                )
                value = EI / EI_hom
            else:
                order = 1 if model == "first_order" else 2
                value = bending_stiffness(comm, tangent, order=order, **beam).EI / EI_hom
            ratios[model].append(float(value))
        log.info(
            "N = %d: %s", n, ", ".join(f"{m} {ratios[m][-1]:.6f}" for m in models if ratios[m])
        )
    return {"ratios": ratios, "tangent": tangent, "quantity": "EI/EI_hom"}


def _strip(comm: MPI.Comm, cfg: dict[str, Any], models: list[str]) -> dict[str, Any]:
    from multiscale.cell.second_order import SecondOrderCellProblem
    from multiscale.fe2.second_order import dns_strip, inclusion_strip, macro_strip
    from multiscale.mesh import circular_inclusion
    from multiscale.physics import IsotropicElasticity

    laws = {
        name: IsotropicElasticity.from_young(p["E"], p["nu"]) for name, p in cfg["phases"].items()
    }
    phi, h = cfg["cell"]["volume_fraction"], cfg["cell"]["h"]
    tangent = SecondOrderCellProblem(circular_inclusion(comm, phi, h=h), laws).solve()
    width, loading = cfg["window"], cfg["loading"]
    ratios: dict[str, list[float]] = {m: [] for m in models}
    for n in cfg["periods"]:
        margin = cfg.get("margin", 3 if loading == "bending" else n + 1)
        length = 2 * margin + width
        window = (float(margin), float(width))
        macro = {
            "loading": loading,
            "height": float(n),
            "length": float(length),
            "window": window,
            "nx": 2 * length,
            "ny": 2 * n,
        }
        reference = macro_strip(comm, tangent, order=1, **macro).stiffness
        for model in models:
            if model == "first_order":
                value = reference
            elif model == "second_order":
                value = macro_strip(comm, tangent, higher_order="perturbative", **macro).stiffness
            else:
                strip = inclusion_strip(comm, n, length, phi, h_cell=h)
                value = dns_strip(comm, strip, laws, loading=loading, window=window).stiffness
            ratios[model].append(float(value / reference))
        log.info("N = %d: %s", n, ", ".join(f"{m} {ratios[m][-1]:.6f}" for m in models))
    quantity = "EI/EI_first_order" if loading == "bending" else "G/G_first_order"
    return {"ratios": ratios, "tangent": tangent, "quantity": quantity}


def _errors(
    ratios: dict[str, list[float]], periods: list[int]
) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict[str, float | None]]]:
    """|model/reference - 1| against the DNS and the closed form, and the slopes of
    log error against log N (None where an error vanishes or only one N is given)."""
    errors: dict[str, dict[str, list[float]]] = {}
    rates: dict[str, dict[str, float | None]] = {}
    logn = np.log(np.asarray(periods, dtype=float))
    for ref in ("dns", "closed_form"):
        if ref not in ratios:
            continue
        errors[ref], rates[ref] = {}, {}
        for model, values in ratios.items():
            if model == ref:
                continue
            err = np.abs(np.asarray(values) / np.asarray(ratios[ref]) - 1.0)
            errors[ref][model] = err.tolist()
            ok = len(periods) > 1 and np.all(err > 1e-12)
            rates[ref][model] = float(-np.polyfit(logn, np.log(err), 1)[0]) if ok else None
    return errors, rates


def _plastic_laminate(comm: MPI.Comm, cfg: dict[str, Any], models: list[str]) -> dict[str, Any]:
    """The works of the yielding laminate per model and N, and their errors against the DNS."""
    from multiscale.fe2.strain_gradient import laminate_bending
    from multiscale.physics import J2Plasticity

    laws = {
        name: J2Plasticity.from_young(p["E"], p["nu"], sigma_y=p["sigma_y"], H=p["H"])
        for name, p in cfg["phases"].items()
    }
    factors = np.arange(1, cfg["steps"] + 1) / cfg["steps"]
    out: dict[str, Any] = {"rotations": [], "works": {m: [] for m in models}, "max_mean_p": []}
    errors: dict[str, list[list[float]]] = {}
    for n in cfg["periods"]:
        run = laminate_bending(
            comm,
            laws,
            n,
            factors,
            stacking=cfg["stacking"],
            outer_strain=cfg["outer_strain"],
            models=models,
        )
        out["rotations"].append(run.rotations.tolist())
        out["max_mean_p"].append(run.max_mean_p.tolist() if run.max_mean_p is not None else None)
        for m in models:
            out["works"][m].append(run.works[m].tolist())
        if "dns" in models:
            for m, e in run.errors().items():
                if m in models:
                    errors.setdefault(m, []).append(np.abs(e).tolist())
        log.info("N = %d: works %s", n, {m: run.works[m][-1] for m in models})
    return out | {"errors": {"dns": errors} if errors else {}, "quantity": "W"}


def _linear_summary(out: dict[str, Any], periods: list[int]) -> dict[str, Any]:
    """The errors, rates and cell tangent of a linear case."""
    tangent = out.pop("tangent")
    errors, rates = _errors(out["ratios"], periods)
    return out | {
        "errors": errors,
        "rates": rates,
        "tangent": {
            "C": tangent.C.tolist(),
            "B": tangent.B.tolist(),
            "D": tangent.D.tolist(),
            "D_excess": tangent.excess.tolist(),
            "hill_mandel": tangent.hill_mandel.tolist(),
        },
    }


def run(args: argparse.Namespace, comm: MPI.Comm) -> int:
    t0 = time.perf_counter()
    cfg = load_config(args.config)
    models = cfg["models"]
    case = next(c for c in CASES if c in cfg)
    section = cfg[case]
    if case == "plastic_laminate":
        out = _plastic_laminate(comm, section, models)
    else:
        out = _linear_summary(
            (_laminate if case == "laminate" else _strip)(comm, section, models),
            section["periods"],
        )
    errors = out["errors"]
    summary = {
        "case": case,
        "loading": section.get("loading", "bending"),
        "periods": section["periods"],
        **out,
        "config": cfg,
        "wall_time_s": comm.allreduce(time.perf_counter() - t0, op=MPI.MAX),
    }
    for ref, per_model in errors.items():
        log.info(
            "errors against %s: %s",
            ref,
            "; ".join(
                f"{m} {', '.join(f'{e:.2e}' for e in np.ravel(v))}" for m, v in per_model.items()
            ),
        )
    path = args.json or (Path(cfg["output"]) if cfg.get("output") else None)
    if path is not None:
        write_json(path, summary, comm)
    return 0
