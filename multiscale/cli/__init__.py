"""The ``multiscale`` command line.

Each subcommand lives in a module of this package that defines ``add_parser(subparsers)`` and
``run(args, comm) -> int``; :data:`COMMANDS` lists them in the order ``--help`` shows them.  The
CLI owns logging: only rank 0 of ``COMM_WORLD`` prints unless ``--all-ranks`` is given.

Errors.  Any exception a subcommand raises ends the command with **one line** naming the problem
and exit status 2 (``-vv`` adds the traceback).  Under MPI the ranks first agree, in a
non-blocking barrier on a communicator of their own: when every rank failed (bad input, a failed
load step: the package raises these on every rank together) rank 0 prints the line and all ranks
return 2; when a rank fails alone and the others do not join within
``MULTISCALE_ERROR_TIMEOUT`` seconds (default 10), it prints its message with its rank and aborts
the whole job with ``MPI_Abort``, so no rank is ever left waiting for a peer that is gone.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from collections.abc import Sequence

from multiscale import __version__

__all__ = ["COMMANDS", "build_parser", "main"]

#: Modules (relative to this package) holding ``add_parser`` and ``run``, in ``--help`` order.
COMMANDS: tuple[str, ...] = (
    ".mesh",
    ".homogenize",
    ".fe2",
    ".hmm",
    ".rve_size",
    ".bloch",
    ".second_order",
    ".bases",
    ".equation_free",
    ".lattice",
    ".qc",
    ".demo",
)

log = logging.getLogger("multiscale.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multiscale",
        description="Multiscale simulation on FEniCSx: homogenization, RVEs, FE², HMM.",
    )
    parser.add_argument("--version", action="version", version=f"multiscale {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more output (-vv: debug, tracebacks)"
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


def _one_line(err: BaseException) -> str:
    """The error as one line: its message for the errors the package raises on bad input or a
    failed solve, the exception type too for anything else (a bug, a library error)."""
    from multiscale.errors import CollectiveError

    expected = (ValueError, OSError, CollectiveError)
    text = str(err).strip() or type(err).__name__
    if not isinstance(err, expected):
        text = f"{type(err).__name__}: {text}"
    return " ".join(text.split())


def _fail(err: BaseException, comm, errors) -> int:
    """Report ``err`` and return 2 if every rank failed; abort the job if this rank is alone."""
    message = f"error: {_one_line(err)}"
    log.debug("traceback of the error:", exc_info=err)
    if comm.size == 1:
        log.error("%s", message)
        return 2
    request = errors.Ibarrier()
    deadline = time.monotonic() + float(os.environ.get("MULTISCALE_ERROR_TIMEOUT", "10"))
    while not request.Test():
        if time.monotonic() > deadline:
            sys.stderr.write(
                f"[rank {comm.rank}] {message} (the other ranks did not fail with it: aborting)\n"
            )
            sys.stderr.flush()
            comm.Abort(2)
        time.sleep(0.005)
    messages = errors.allgather(message)
    if comm.rank == 0:
        others = sorted({m for m in messages if m != messages[0]})
        log.error("%s", messages[0] + (f" (other ranks: {'; '.join(others)})" if others else ""))
    errors.Free()
    return 2


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
    errors = comm.Dup()  # only the error agreement uses it: it matches nothing else
    try:
        status = int(args._run(args, comm) or 0)
    except Exception as err:
        return _fail(err, comm, errors)
    errors.Free()
    return status


if __name__ == "__main__":
    sys.exit(main())
