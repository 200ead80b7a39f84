"""Logging set-up for command-line use: only one rank prints.

Library modules log through ``logging.getLogger(__name__)`` and never configure handlers; the CLI
(or a user script) calls :func:`setup_logging` to decide what is shown.  Under MPI the default is
that only rank 0 of the given communicator prints, each record prefixed with nothing but the
level; ``all_ranks=True`` lets every rank print, prefixed with its rank.
"""

from __future__ import annotations

import logging
import sys

from mpi4py import MPI

__all__ = ["RankFilter", "setup_logging"]


class RankFilter(logging.Filter):
    """Pass records on the ranks that may print; tag each record with ``rank``."""

    def __init__(self, rank: int, allowed: bool) -> None:
        super().__init__()
        self.rank = rank
        self.allowed = allowed

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank = self.rank
        return self.allowed


def setup_logging(
    comm: MPI.Comm, level: int | str = logging.INFO, all_ranks: bool = False
) -> logging.Handler:
    """Install one stderr handler on the ``multiscale`` logger.

    Parameters
    ----------
    comm:
        Communicator whose rank 0 prints.
    level:
        Logging level for the ``multiscale`` logger.
    all_ranks:
        If true every rank prints, each line prefixed with ``[rank]``.

    Returns the installed handler (calling again replaces it).
    """
    logger = logging.getLogger("multiscale")
    for handler in list(logger.handlers):
        if getattr(handler, "_multiscale_cli", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._multiscale_cli = True  # type: ignore[attr-defined]
    fmt = "[%(rank)d] %(levelname)s %(name)s: %(message)s" if all_ranks else "%(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(RankFilter(comm.rank, all_ranks or comm.rank == 0))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler
