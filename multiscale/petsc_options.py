"""PETSc options under a solver's prefix, in the global options database only while needed.

Every solver of the package is configured by a ``petsc_options`` dict under its own prefix
(identical on all ranks).  The entries are written into PETSc's global database just for the
``setFromOptions`` calls and removed afterwards, so solvers created later (or by the user) never
pick up stale options.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from petsc4py import PETSc

__all__ = ["prefixed_options"]


@contextlib.contextmanager
def prefixed_options(prefix: str, options: Mapping[str, Any]) -> Iterator[None]:
    """Within the block, ``options`` are set as ``<prefix><key>`` in the global database."""
    db = PETSc.Options()
    for key, value in options.items():
        db[f"{prefix}{key}"] = value
    try:
        yield
    finally:
        for key in options:
            del db[f"{prefix}{key}"]
