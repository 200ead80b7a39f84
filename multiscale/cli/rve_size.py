"""``multiscale rve-size CONFIG``: SVE ensembles of a random medium and the size of its RVE.

The configuration (YAML, or TOML for a ``.toml`` file) names the microstructure, the phase laws,
the window sizes and the number of realizations, and the RVE criteria::

    microstructure: {kind: disks, volume_fraction: 0.3, resolution: 8, gap: 0.05}
    laws: {physics: conductivity, matrix: {k: 1.0}, inclusion: {k: 10.0}}   # or elasticity
                                  # {E, nu}, thermoelastic {E, nu, alpha}: physics.registry
    sizes: [2, 4, 8, 16]          # window edge, in inclusion diameters (or correlation lengths)
    realizations: 10              # per size (or a list, one per size)
    seed: 1
    error_estimate: auto          # per periodic solve: auto (2D conductivity, a bound), on, off
    rve: {eps_rel: 0.01, n: 1, gap_tol: 0.05, bc: periodic}
    uncertainty: {resamples: 2000, seed: 0, method: bca, min_realizations: 5}
    discretization: {size_index: 0, factor: 2}    # optional: one realization, 2x finer
    precision: {target: 0.01, of: mean, batch: 4, max_realizations: 64}   # optional
    output: {json: results/rve_size.json, plot: results/rve_size.png}

Run it with ``mpirun -n N multiscale rve-size CONFIG``: the realizations are spread over the
ranks.  Rank 0 writes the JSON summary atomically (statistics per size and BC, every realization,
the CV exponents, the integral-range fit, the statistical and BC-gap RVE sizes), the bootstrap
intervals of the CVs, the CV exponents, the integral range and the RVE size (``uncertainty``),
the ``warnings``, the ``realizations_used`` and the ``precision`` record, and the plot.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

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
)
from multiscale.ensemble.study import MIN_REFINEMENT, PRECISION_OF, check_study
from multiscale.ensemble.sve import BCS_ORDER, MICROSTRUCTURES
from multiscale.ensemble.uncertainty import METHODS
from multiscale.output import on_rank0, write_json

__all__ = ["SCHEMA", "add_parser", "load_config", "run"]

log = logging.getLogger(__name__)

_PHASE = Table(Number(), min_length=1)


class _EnsemblePhysics(Spec):
    """The name of a registered physics with a scalar property (the registry is read when a
    file is checked, so a physics registered later is accepted too)."""

    what = "a physics name"

    def check(self, value: Any, where: str) -> str:
        from multiscale.physics import registry

        names = tuple(n for n in registry.names() if registry.get(n).has_property)
        return Text(names).check(value, where)


#: The schema of the ``multiscale rve-size`` file (see the module docstring).
SCHEMA = Section(
    {
        "microstructure": Field(
            Section(
                {
                    "kind": Field(Text(MICROSTRUCTURES), default="disks"),
                    "volume_fraction": Field(Number(positive=True, below=1.0), default=0.3),
                    "dim": Field(Integer(min=2, max=3)),
                    "resolution": Field(Number(positive=True), default=8.0),
                    "gap": Field(Number(min=0.0, below=1.0), default=0.05),
                    "polydispersity": Field(Number(min=0.0, below=1.0), default=0.0),
                    "fraction_tol": Field(Number(positive=True), default=0.01),
                    "match_fraction": Field(Boolean(), default=True),
                }
            ),
            required=True,
        ),
        "laws": Field(
            Section(
                {
                    "physics": Field(_EnsemblePhysics(), required=True),
                    "matrix": Field(_PHASE, required=True),
                    "inclusion": Field(_PHASE, required=True),
                }
            ),
            required=True,
        ),
        "sizes": Field(ListOf(Number(positive=True), min_length=1), required=True),
        "realizations": Field(OneOf(Integer(min=2), ListOf(Integer(min=2))), default=10),
        "seed": Field(Integer(min=0), default=0),
        "bcs": Field(ListOf(Text(BCS_ORDER), min_length=1), default=list(BCS_ORDER)),
        "confidence": Field(Number(positive=True, below=1.0), default=0.95),
        "error_estimate": Field(Text(("auto", "on", "off")), default="auto"),
        "rve": Field(
            Section(
                {
                    "eps_rel": Field(Number(positive=True), default=0.01),
                    "n": Field(Integer(min=1), default=1),
                    "gap_tol": Field(Number(positive=True), default=0.05),
                    "bc": Field(Text(BCS_ORDER), default="periodic"),
                    "free_exponent": Field(Boolean(), default=True),
                }
            ),
            default=dict,
        ),
        "uncertainty": Field(
            Section(
                {
                    "resamples": Field(Integer(min=100), default=2000),
                    "seed": Field(Integer(min=0), default=0),
                    "method": Field(Text(METHODS), default="bca"),
                    "min_realizations": Field(Integer(min=2), default=5),
                    "max_exponent_width": Field(Number(positive=True), default=1.0),
                }
            ),
            default=dict,
        ),
        "discretization": Field(
            Section(
                {
                    "size_index": Field(Integer(min=0), default=0),
                    "factor": Field(Number(min=MIN_REFINEMENT), default=2.0),
                }
            )
        ),
        "precision": Field(
            Section(
                {
                    "target": Field(Number(positive=True), required=True),
                    "of": Field(Text(PRECISION_OF), default="mean"),
                    "batch": Field(Integer(min=1), default=4),
                    "max_realizations": Field(Integer(min=2), default=64),
                }
            )
        ),
        "output": Field(
            Section({"json": Field(Text()), "plot": Field(Text())}),
            default=dict,
        ),
    }
)


def load_config(path: str | Path) -> tuple[Any, dict[str, Any], dict[str, Path]]:
    """Read a YAML/TOML configuration: ``(EnsembleConfig, rve criteria, outputs)``.

    The criteria also hold ``"uncertainty"`` (a :class:`BootstrapOptions`), ``"precision"``
    (a :class:`PrecisionTarget` or ``None``) and ``"discretization"`` (a dict or ``None``).
    Raises ``FileNotFoundError`` or :class:`~multiscale.config.ConfigError` (a ``ValueError``)
    naming the file and the key, on one line.
    """
    from multiscale.ensemble import (
        BootstrapOptions,
        EnsembleConfig,
        Microstructure,
        PhaseLaw,
        PrecisionTarget,
    )

    path = Path(path)
    data = load(path, SCHEMA)
    try:
        config = EnsembleConfig(
            Microstructure(**data["microstructure"]),
            PhaseLaw(**data["laws"]),
            tuple(data["sizes"]),
            data["realizations"],
            seed=data["seed"],
            bcs=tuple(data["bcs"]),
            confidence=data["confidence"],
            error_estimate=data["error_estimate"],
        )
        criteria = dict(data["rve"])
        if criteria["bc"] not in config.bcs:
            raise ValueError(f"rve.bc: {criteria['bc']!r} is not among the bcs {list(config.bcs)}")
        criteria["uncertainty"] = BootstrapOptions(**data["uncertainty"])
        precision = data.get("precision")
        criteria["precision"] = None if precision is None else PrecisionTarget(**precision)
        criteria["discretization"] = data.get("discretization")
        check_study(config, criteria["precision"], criteria["discretization"])
    except ValueError as err:
        raise ConfigError(f"{path}: {err}") from None
    output = {k: Path(v) for k, v in data["output"].items()}
    return config, criteria, output


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "rve-size",
        help="SVE ensembles of a random microstructure and the size of its RVE",
        description="Draw random microstructures (RSA disks/spheres or level-cut Gaussian "
        "fields) in windows of growing size, solve KUBC, SUBC and PBC cell problems for each, "
        "and report the statistics, the scatter exponent, the integral range and the RVE sizes "
        "(Kanit et al. 2003).  Run under mpirun to spread the realizations over ranks.",
    )
    p.add_argument("config", type=Path, help="YAML (or .toml) configuration file")
    p.add_argument("--json", type=Path, help="write the summary here (overrides output.json)")
    p.add_argument("--plot", type=Path, help="save the convergence plot (overrides output.plot)")
    return p


def run(args: argparse.Namespace, comm) -> int:
    from multiscale.ensemble import plot_bc_convergence, run_ensemble, run_rve_study

    config, criteria, output = load_config(args.config)
    options = criteria.pop("uncertainty")
    precision = criteria.pop("precision")
    disc = criteria.pop("discretization")
    dim = config.microstructure.dim
    report = study = None
    if len(config.sizes) >= 2:
        study = run_rve_study(
            comm, config, criteria, options=options, precision=precision, discretization=disc
        )
        result, report = study.result, study.report
        config = result.config
    else:
        result = run_ensemble(comm, config)
    summary = result.to_dict()
    summary["config_file"] = str(args.config)
    if study is not None and study.report_error is not None:
        log.warning("no RVE size: %s", study.report_error)
        summary["rve_error"] = study.report_error
    summary["rve"] = None if report is None else report.to_dict()
    if study is not None:
        summary.update(study.to_dict())
    bounds = None
    hashin_shtrikman = config.laws.spec.hashin_shtrikman
    if hashin_shtrikman is not None:
        p = float(result.volume_fraction_series()[-1])
        zs = config.laws.phase_values(config.microstructure.dim)
        bounds = hashin_shtrikman((1 - p, p), zs, config.microstructure.dim)
        summary["hashin_shtrikman"] = list(bounds)
    n_real = sorted(set(config.realizations))
    log.info(
        "SVE statistics of %s (mean, std and CV per window size L; %s realization(s) per size):"
        "\n%s",
        config.laws.property_name,
        "/".join(str(n) for n in n_real),
        result.table(),
    )
    if report is not None:
        slopes = ", ".join(f"{b} {f.slope:.3g}" for b, f in report.cv_fit.items())
        log.info("CV ~ L^s, fitted s: %s (random media: s -> -d/2 = %g)", slopes, -dim / 2)
        fit = report.integral_range
        fixed = "" if criteria["free_exponent"] else " (fixed)"
        log.info(
            "integral range (%s): A3 = %.4g, exponent %.3g%s",
            report.bc,
            fit.integral_range,
            fit.exponent,
            fixed,
        )
        log.info(
            "statistical RVE for a relative error %g of the mean with %d realization(s): "
            "L = %.4g (V = %.4g)",
            report.eps_rel,
            report.n,
            report.rve_size,
            report.rve_volume,
        )
        if report.gap is not None:
            log.info(
                "KUBC-SUBC gap of the means below %g at L = %.4g", report.gap.tol, report.gap.size
            )
    if study is not None:
        _log_uncertainty(study)
    json_path = args.json or output.get("json")
    plot_path = args.plot or output.get("plot")
    if plot_path is not None:
        on_rank0(comm, lambda: plot_bc_convergence(result, str(plot_path), bounds=bounds))
        log.info("wrote %s", plot_path)
    if json_path is not None:
        write_json(json_path, summary, comm)
    return 0


def _log_uncertainty(study: Any) -> None:
    """Log the intervals, the precision record and every warning (one rank prints: the
    :class:`~multiscale.log.RankFilter` of :func:`~multiscale.log.setup_logging`)."""
    u = study.uncertainty
    pct = round(100 * u.confidence)

    def show(pair: list[float | None]) -> str:
        return "[" + ", ".join("-" if v is None else f"{v:.3g}" for v in pair) + "]"

    for bc, cv in u.cv.items():
        log.info(
            "%s: CV exponent %.3g, %d%% %s interval %s; CV per size %s",
            bc,
            cv.exponent,
            pct,
            u.options.method,
            show(cv.exponent_interval),
            ", ".join(
                f"{v:.3g} {'(too few)' if i is None else show(i)}"
                for v, i in zip(cv.cv, cv.cv_interval, strict=True)
            ),
        )
    log.info(
        "%s: integral range %.4g %s, RVE size %.4g %s (%d%% intervals, %d resamples)",
        u.bc,
        u.integral_range[0],
        show(u.integral_range[1]),
        u.rve_size[0],
        show(u.rve_size[1]),
        pct,
        u.options.resamples,
    )
    if study.precision is not None:
        p = study.precision
        log.info(
            "precision target %g on the %s %s after %d round(s); realizations used %s",
            p["target"],
            p["of"],
            "met" if p["met"] else "NOT met",
            p["rounds"],
            p["realizations_used"],
        )
    for w in study.warnings:
        log.warning("%s", w)
