"""Progress of long runs on rank 0: a bar on a terminal, plain lines in a log.

:class:`Progress` counts done units of work (load factors reached, realizations solved) against
a total and reports, on rank 0 of its communicator only, what is done, the elapsed time and an
estimate of the time left (elapsed time per unit times the units left).  Where stderr is an
interactive terminal it redraws one line (``\\r``); elsewhere (a log file, CI, ``mpirun`` output
collected by a scheduler) it logs one INFO line per unit through :mod:`logging`, so ``-q``
silences it like any other progress message.  Nothing is collective.
"""

from __future__ import annotations

import logging
import sys
import time

from mpi4py import MPI

__all__ = ["Progress", "format_seconds"]

log = logging.getLogger(__name__)


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s`` or ``2 h 07 min``."""
    s = max(0, round(float(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


class Progress:
    """Reports ``done / total`` units of ``label`` on rank 0 of ``comm``.

    ``bar``: redraw one terminal line (default: when stderr is a terminal and INFO messages are
    shown).  Call :meth:`advance` after each unit with an optional short detail, and
    :meth:`close` at the end (ends the terminal line).
    """

    def __init__(
        self, total: int, label: str, comm: MPI.Comm = MPI.COMM_WORLD, *, bar: bool | None = None
    ) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.done = 0
        self.t0 = time.perf_counter()
        self.active = comm.rank == 0 and log.isEnabledFor(logging.INFO)
        self.bar = self.active and (sys.stderr.isatty() if bar is None else bool(bar))
        self._open = False

    def eta(self) -> float | None:
        """Seconds left at the mean pace so far (``None`` before the first unit)."""
        if self.done == 0:
            return None
        elapsed = time.perf_counter() - self.t0
        return elapsed / self.done * max(self.total - self.done, 0)

    def advance(self, detail: str = "", units: int = 1) -> None:
        self.done = min(self.done + int(units), self.total)
        if not self.active:
            return
        elapsed = time.perf_counter() - self.t0
        eta = self.eta()
        left = f", about {format_seconds(eta)} left" if eta and self.done < self.total else ""
        text = f"[{self.done}/{self.total}] {self.label}{': ' + detail if detail else ''} "
        text += f"({format_seconds(elapsed)}{left})"
        if self.bar:
            width = 20
            filled = round(width * self.done / self.total)
            sys.stderr.write(f"\r\x1b[2K[{'#' * filled}{'.' * (width - filled)}] {text}")
            sys.stderr.flush()
            self._open = True
        else:
            log.info("%s", text)

    def close(self) -> None:
        if self._open:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._open = False
