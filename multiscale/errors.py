"""Exception types shared by the package, importable without PETSc or dolfinx (the CLI's error
path uses them on ranks that may not have initialized PETSc)."""

from __future__ import annotations

__all__ = ["CollectiveError"]


class CollectiveError(RuntimeError):
    """An error raised on every rank of a communicator together, with the same message."""
