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

__all__ = ["factor_options", "mumps_error", "pc_failure", "prefixed_options"]

#: Option prefixes a factorization reads when it is computed (in ``PCSetUp``, after
#: ``setFromOptions``): a solver that factorizes later (SNES) must keep them in the database.
FACTOR_PREFIXES = ("mat_mumps_", "mat_superlu_", "mat_strumpack_", "mat_pastix_")


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


def factor_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``options`` that a sparse direct solver reads when it factorizes."""
    return {k: v for k, v in options.items() if k.startswith(FACTOR_PREFIXES)}


def mumps_error(ksp: PETSc.KSP) -> tuple[int, int] | None:
    """MUMPS's ``(INFOG(1), INFOG(2))`` if the KSP's preconditioner is a MUMPS factorization
    that failed (the same on every rank: MUMPS's global information), else ``None``."""
    pc = ksp.getPC()
    if not pc.getFailedReason():
        return None
    with contextlib.suppress(PETSc.Error, AttributeError):
        F = pc.getFactorMatrix()
        if F.getType() == "mumps":
            return int(F.getMumpsInfog(1)), int(F.getMumpsInfog(2))
    return None


def pc_failure(ksp: PETSc.KSP) -> str:
    """Why the preconditioner failed, with MUMPS's INFOG(1), INFOG(2) where it factorized (its
    error codes: -9 workspace, -10 singular matrix, ...); empty if the PC did not fail."""
    reason = ksp.getPC().getFailedReason()
    if not reason:
        return ""
    text = f"; PC failed, reason {reason}"
    if (info := mumps_error(ksp)) is not None:
        text += f", MUMPS INFOG(1) = {info[0]}, INFOG(2) = {info[1]}"
    return text
