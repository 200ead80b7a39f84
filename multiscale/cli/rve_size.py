"""``multiscale rve-size CONFIG``: SVE ensembles of a random medium and the size of its RVE.

The configuration (YAML, or TOML for a ``.toml`` file) names the microstructure, the phase laws,
the window sizes and the number of realizations, and the RVE criteria::

    microstructure: {kind: disks, volume_fraction: 0.3, resolution: 8, gap: 0.05}
    laws: {physics: conductivity, matrix: {k: 1.0}, inclusion: {k: 10.0}}
    sizes: [2, 4, 8, 16]          # window edge, in inclusion diameters (or correlation lengths)
    realizations: 10              # per size (or a list, one per size)
    seed: 1
    rve: {eps_rel: 0.01, n: 1, gap_tol: 0.05, bc: periodic}
    output: {json: results/rve_size.json, plot: results/rve_size.png}

Run it with ``mpirun -n N multiscale rve-size CONFIG``: the realizations are spread over the
ranks.  Rank 0 writes the JSON summary atomically (statistics per size and BC, every realization,
the CV exponents, the integral-range fit, the statistical and BC-gap RVE sizes) and the plot.
"""

from __future__ import annotations

import argparse
import json
import logging
import tomllib
from pathlib import Path
from typing import Any

import yaml

__all__ = ["add_parser", "load_config", "run"]

log = logging.getLogger(__name__)

_TOP_KEYS = {
    "microstructure",
    "laws",
    "sizes",
    "realizations",
    "seed",
    "bcs",
    "confidence",
    "rve",
    "output",
}
_RVE_KEYS = {"eps_rel", "n", "gap_tol", "bc", "free_exponent"}


def load_config(path: str | Path) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """Read a YAML/TOML configuration: ``(EnsembleConfig, rve criteria, outputs)``.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Unreadable file, unknown keys, or invalid values (the message names the key).
    """
    from multiscale.ensemble import EnsembleConfig, Microstructure, PhaseLaw

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no configuration file {str(path)!r}")
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot parse the configuration: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the configuration must be a mapping of keys to values")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    for key in ("microstructure", "laws", "sizes"):
        if key not in data:
            raise ValueError(f"{path}: the key {key!r} is required")
    try:
        micro = Microstructure(**data["microstructure"])
        laws = PhaseLaw(**data["laws"])
        config = EnsembleConfig(
            micro,
            laws,
            tuple(data["sizes"]),
            data.get("realizations", 10),
            seed=data.get("seed", 0),
            bcs=tuple(data.get("bcs", ("subc", "periodic", "kubc"))),
            confidence=data.get("confidence", 0.95),
        )
    except TypeError as err:
        raise ValueError(f"{path}: {err}") from None
    rve = dict(data.get("rve") or {})
    if set(rve) - _RVE_KEYS:
        raise ValueError(f"{path}: unknown keys {sorted(set(rve) - _RVE_KEYS)} under 'rve'")
    criteria = {"eps_rel": 0.01, "n": 1, "gap_tol": 0.05, "bc": "periodic", "free_exponent": True}
    criteria.update(rve)
    output = {k: str(v) for k, v in dict(data.get("output") or {}).items()}
    if set(output) - {"json", "plot"}:
        raise ValueError(f"{path}: 'output' takes the keys json and plot, got {sorted(output)}")
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


def _write_json(path: Path, summary: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(path)  # never a half-written result file


def run(args: argparse.Namespace, comm) -> int:
    from multiscale.bounds import hashin_shtrikman_conductivity
    from multiscale.ensemble import plot_bc_convergence, run_ensemble, rve_size_report

    config, criteria, output = load_config(args.config)
    result = run_ensemble(comm, config)
    summary = result.to_dict()
    summary["config_file"] = str(args.config)
    report = None
    if len(config.sizes) >= 2:
        try:
            report = rve_size_report(result, **criteria)
        except ValueError as err:  # too few or too small windows to fit: say so, keep the data
            log.warning("no RVE size: %s", err)
            summary["rve_error"] = str(err)
    summary["rve"] = None if report is None else report.to_dict()
    bounds = None
    if config.laws.physics == "conductivity":
        p = float(result.volume_fraction_series()[-1])
        ks = config.laws.phase_values(config.microstructure.dim)
        bounds = hashin_shtrikman_conductivity([1 - p, p], ks, config.microstructure.dim)
        summary["hashin_shtrikman"] = list(bounds)
    log.info("SVE statistics (%s):\n%s", config.laws.property_name, result.table())
    if report is not None:
        log.info("CV exponents: %s", {b: round(f.slope, 3) for b, f in report.cv_fit.items()})
        log.info(
            "statistical RVE (eps_rel=%g, n=%d, %s): V=%.4g, L=%.4g; integral range %.4g, "
            "exponent %.3f",
            report.eps_rel,
            report.n,
            report.bc,
            report.rve_volume,
            report.rve_size,
            report.integral_range.integral_range,
            report.integral_range.exponent,
        )
        if report.gap is not None:
            log.info("KUBC-SUBC gap below %g at L=%.4g", report.gap.tol, report.gap.size)
    if comm.rank == 0:
        json_path = args.json or (Path(output["json"]) if "json" in output else None)
        plot_path = args.plot or (Path(output["plot"]) if "plot" in output else None)
        if plot_path is not None:
            plot_path.parent.mkdir(parents=True, exist_ok=True)
            plot_bc_convergence(result, str(plot_path), bounds=bounds)
            log.info("wrote %s", plot_path)
        if json_path is not None:
            _write_json(json_path, summary)
            log.info("wrote %s", json_path)
    comm.Barrier()
    return 0
