"""``multiscale fe2 CONFIG``: an FE² run described by a YAML or TOML file.

See :mod:`multiscale.fe2.config` for the format.  Rank 0 logs one line per converged load step
(the progress display) and the summary; the summary JSON is written atomically by rank 0, also
when the run fails.
"""

from __future__ import annotations

import argparse
import logging

from mpi4py import MPI

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "fe2",
        help="FE²: macro problem with a nonlinear RVE at every Gauss point",
        description=(
            "Solve an FE² problem described by CONFIG (YAML or TOML): macro mesh and boundary "
            "conditions, RVE mesh and phase laws (elastic, j2, neo_hookean), an optional "
            "surrogate of hyperelastic RVEs (micro.surrogate), loading, solver options and "
            "output.  Writes XDMF fields and a JSON summary."
        ),
    )
    p.add_argument("config", help="the run description (.yaml, .yml or .toml)")
    p.add_argument("--output", metavar="DIR", help="override output.directory")
    p.add_argument("--steps", type=int, metavar="N", help="override loading: N equal steps to 1")
    p.add_argument(
        "--restart",
        metavar="DIR",
        help=(
            "continue from the newest complete checkpoint in DIR (a checkpoint directory, or an "
            "output directory holding one), on any number of ranks; the config must be the one "
            "the checkpoint was written with (output.checkpoint: {every: N} writes them)"
        ),
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="ignore micro.surrogate: solve an RVE at every Gauss point (full FE²)",
    )
    return p


def run(args: argparse.Namespace, comm: MPI.Comm) -> int:
    from multiscale.fe2.config import FE2Config, run_fe2

    config = FE2Config.from_file(args.config)
    if args.output:
        config.output["directory"] = args.output
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be positive, got {args.steps}")
        config.loading.pop("factors", None)
        config.loading["steps"] = args.steps
    if getattr(args, "full", False):
        config.micro.pop("surrogate", None)
    result = run_fe2(comm, config, restart=args.restart)
    curve = result.curve()
    log.info(
        "FE² done: %d steps, %d macro Newton iterations, %d RVE solves, final reaction %.6g on "
        "%s, load imbalance %.2f",
        len(result.steps),
        result.info.get("macro_iterations", 0),
        result.micro.get("solves_total", 0),
        curve[-1, 1] if len(curve) else float("nan"),
        result.load_boundary,
        result.micro.get("imbalance", 1.0),
    )
    return 0
