"""Result files: one atomic JSON writer for every command and demo.

A result file is written by rank 0 to a temporary file in the same folder and renamed over the
target, so a reader never sees a half-written file, and a run that fails part-way leaves either
the previous file or a complete new one (with ``status: failed``), never a truncated one.
NumPy arrays and scalars are written as lists and numbers.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["atomic_write", "jsonable", "on_rank0", "write_json", "write_json_file"]

log = logging.getLogger(__name__)


def jsonable(obj: Any) -> Any:
    """``json.dumps``'s ``default``: arrays to lists, NumPy scalars to numbers, paths to
    strings."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def write_json(path: str | os.PathLike, data: dict[str, Any], comm: MPI.Comm) -> Path:
    """Write ``data`` as JSON to ``path`` from rank 0 of ``comm``, atomically (collective: the
    other ranks wait for it, and an error writing it is raised on every rank)."""
    path = Path(path)
    error = None
    if comm.rank == 0:
        try:
            write_json_file(path, data)
        except (OSError, TypeError, ValueError) as err:
            error = f"could not write {path}: {err}"
    error = comm.bcast(error, root=0)
    if error is not None:
        raise OSError(error)
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(f)`` on a temporary binary file in the folder of ``path`` (made if missing)
    and rename it over ``path``: a reader sees the old file or the complete new one, never a
    part.  From this process alone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_file(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Write ``data`` as JSON to ``path`` from this process alone, atomically
    (:func:`atomic_write`): for a process outside MPI, such as a benchmark's launcher, or rank 0
    inside :func:`write_json`."""
    text = json.dumps(data, indent=2, default=jsonable).encode()
    path = atomic_write(path, lambda f: f.write(text))
    log.info("wrote %s", path)
    return path


def on_rank0(comm: MPI.Comm, write: Any) -> None:
    """Call ``write()`` (a figure, a table) on rank 0 only; an error there is raised on every
    rank (collective)."""
    error = None
    if comm.rank == 0:
        try:
            write()
        except Exception as err:
            error = f"{type(err).__name__}: {err}"
    error = comm.bcast(error, root=0)
    if error is not None:
        raise OSError(f"writing on rank 0 failed: {error}")
