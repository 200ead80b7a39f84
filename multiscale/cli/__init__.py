"""The ``multiscale`` command line.

Each subcommand lives in a module of this package that defines ``add_parser(subparsers)`` and
``run(args, comm) -> int``; :data:`COMMANDS` lists them in the order ``--help`` shows them.  The
CLI owns logging: only rank 0 of ``COMM_WORLD`` prints unless ``--all-ranks`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from multiscale import __version__

__all__ = ["COMMANDS", "build_parser", "main"]

#: Modules (relative to this package) holding ``add_parser`` and ``run``, in ``--help`` order.
COMMANDS: tuple[str, ...] = (".mesh", ".homogenize", ".fe2", ".hmm", ".rve_size", ".demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multiscale",
        description="Multiscale simulation on FEniCSx: homogenization, RVEs, FE², HMM.",
    )
    parser.add_argument("--version", action="version", version=f"multiscale {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more output (-vv for debug)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument(
        "--all-ranks", action="store_true", help="let every MPI rank print, not only rank 0"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for modname in COMMANDS:
        module = importlib.import_module(modname, __name__)
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from mpi4py import MPI

    from multiscale.log import setup_logging

    comm = MPI.COMM_WORLD
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose > 1 else logging.INFO)
    setup_logging(comm, level=level, all_ranks=args.all_ranks)
    log = logging.getLogger("multiscale.cli")
    try:
        return int(args._run(args, comm) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        # Input errors are reported plainly; every rank raised the same error or aborts below.
        log.error("error: %s", err)
        if comm.size > 1:
            sys.stderr.flush()
        return 2


if __name__ == "__main__":
    sys.exit(main())
