"""Checkpoints of load-stepped problems: atomic directories, keyed point data, any rank count.

**Layout.**  A checkpoint store is a directory ``DIR`` holding complete checkpoints
``DIR/step-<k>`` (``k`` converged load steps), each with a ``manifest.json`` listing its files and
their sizes, and ``DIR/latest`` naming the newest one.  A checkpoint is written into
``DIR/.tmp-<k>`` by all ranks (each its part), then rank 0 writes the manifest and renames the
directory to ``DIR/step-<k>`` (one ``rename`` on the same file system: atomic), updates ``latest``
(atomically, :func:`~multiscale.output.write_json_file`) and keeps the newest ``keep``
checkpoints.  A process killed at any moment therefore leaves either no ``step-<k>`` or a
complete one: a ``.tmp-*`` directory is never read, and is removed by the next writer.  (This
holds for the death of processes, SIGKILL included; surviving a crash of the machine also needs
the file system to keep the order of the writes, which local journaling file systems and
parallel file systems with close-to-open consistency do.)

**Reading.**  :func:`find_checkpoint` takes the newest checkpoint whose manifest is present,
parses, names its own step and whose files all exist with the recorded sizes; a checkpoint that
fails these checks is skipped with a warning.  The directory must be visible to every rank (a
shared file system, as for any MPI output).

**Rank-count independence.**  Per-point data are rows keyed by a global integer key that does not
depend on the partition (for a macro quadrature point: ``original cell index * n_points + q``,
see :func:`quadrature_keys`).  Every rank writes its rows to ``<name>-<rank>.npz``
(:func:`write_keyed`); on reading (:func:`read_keyed`) the files are shared out round robin over
the ranks of the new run, and each row is sent (one ``alltoall``) to the rank that owns its key
now.  Memory per rank: its own rows plus the files it reads (about the total over the number
of ranks); nothing is gathered on one rank.  Fields (the macro displacement) use the same
scheme per cell (:func:`write_field`: the values and coordinates of the cell's dofs, keyed by the
original cell index; matched by coordinates on reading, since the local dof order may differ
between partitions).  adios4dolfinx's ``write_function_on_input_mesh``/``read_function`` would
do this too, but failed (``MPI_ERR_TRUNCATE`` in its neighbourhood exchange) reading a 4-cell
mesh on 3 ranks, so the package's own scheme is used.

**Testing.**  ``MULTISCALE_CHECKPOINT_KILL="<k>:<stage>[:<rank>]"`` makes the writer of
checkpoint ``k`` kill its own process (all ranks, or only ``rank``) with SIGKILL at ``stage``:
``parts`` (its files written, the other ranks' maybe not, no manifest), ``manifest`` (all parts
and the manifest written, not renamed) or ``renamed`` (renamed, ``latest`` not updated).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dolfinx
import numpy as np
from mpi4py import MPI

from multiscale.nonlinear import agree
from multiscale.output import write_json_file

__all__ = [
    "Checkpoint",
    "CheckpointStore",
    "config_hash",
    "find_checkpoint",
    "quadrature_keys",
    "read_field",
    "read_keyed",
    "write_field",
    "write_keyed",
]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LATEST = "latest"
FORMAT = 1
KILL_ENV = "MULTISCALE_CHECKPOINT_KILL"
_STEP = re.compile(r"^step-(\d+)$")


def config_hash(sections: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``sections`` (sorted keys): what must be the same for a
    restart to continue the same problem."""
    text = json.dumps(sections, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _raise_agreed(comm: MPI.Comm, error: BaseException | str | None, kind: type = OSError) -> None:
    """Raise ``kind`` on every rank if any rank failed (collective)."""
    message = agree(comm, error)
    if message is not None:
        raise kind(message)


def _kill_hook(step: int, stage: str, comm: MPI.Comm) -> None:
    """SIGKILL this process at ``stage`` of writing checkpoint ``step`` if the test hook says so."""
    spec = os.environ.get(KILL_ENV, "")
    if not spec:
        return
    parts = spec.split(":")
    if int(parts[0]) != step or parts[1] != stage:
        return
    if len(parts) > 2 and int(parts[2]) != comm.rank:
        return
    log.warning(
        "%s: killing rank %d at stage %s of checkpoint %d", KILL_ENV, comm.rank, stage, step
    )
    os.kill(os.getpid(), signal.SIGKILL)


# -- the directory --------------------------------------------------------------------------------
@dataclass(slots=True, frozen=True)
class Checkpoint:
    """A complete checkpoint: its directory and manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.manifest["step"])


def _file_sizes(root: Path) -> dict[str, int]:
    """Relative path -> size of every file under ``root`` but the manifest."""
    sizes = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            sizes[str(path.relative_to(root))] = path.stat().st_size
    return sizes


def _check(path: Path) -> Checkpoint:
    """The checkpoint at ``path``; ``ValueError`` naming what is wrong with it."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"unreadable manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError("not a checkpoint manifest of this version")
    match = _STEP.match(path.name)
    if match is None or manifest.get("step") != int(match.group(1)):
        raise ValueError(f"the manifest is of step {manifest.get('step')}, not of {path.name}")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ValueError("the manifest lists no files")
    for name, size in files.items():
        f = path / name
        if not f.is_file() or f.stat().st_size != size:
            raise ValueError(f"{name} is missing or has the wrong size")
    return Checkpoint(path, manifest)


def _complete(directory: Path) -> list[tuple[int, Path]]:
    """``(k, DIR/step-k)`` of the directories named like checkpoints, newest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _STEP.match(p.name))]
    return sorted(found, reverse=True)


def _newest_valid(directory: Path) -> Checkpoint:
    """The newest checkpoint in ``directory`` that passes :func:`_check` (warns of others)."""
    for _, path in _complete(directory):
        try:
            return _check(path)
        except ValueError as err:
            log.warning("ignoring checkpoint %s: %s", path, err)
    raise ValueError(f"no complete checkpoint in {directory}")


def find_checkpoint(directory: str | os.PathLike, comm: MPI.Comm) -> Checkpoint:
    """The newest complete checkpoint in ``directory`` (or in ``directory/checkpoint``, an
    output directory), found by rank 0 and the same on every rank; ``ValueError`` on every rank
    when there is none.  Collective."""
    directory = Path(directory)
    result: Checkpoint | str | None = None
    if comm.rank == 0:
        if not _complete(directory) and (directory / "checkpoint").is_dir():
            directory = directory / "checkpoint"
        try:
            result = _newest_valid(directory)
        except ValueError as err:
            result = str(err)
    result = comm.bcast(result, root=0)
    if isinstance(result, str):
        raise ValueError(result)
    assert result is not None
    return result


class CheckpointStore:
    """Writes atomic checkpoints into ``directory`` (see the module), keeping the newest
    ``keep``.  ``fresh`` removes the checkpoints of an earlier run found there (a new run
    from the start); otherwise they stay (a restarted run).  Collective on ``comm``."""

    def __init__(
        self, directory: str | os.PathLike, comm: MPI.Comm, *, keep: int = 2, fresh: bool = True
    ) -> None:
        if int(keep) < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.directory = Path(directory)
        self.comm = comm
        self.keep = int(keep)
        error = None
        if comm.rank == 0:
            try:
                self._prepare(fresh)
            except OSError as err:
                error = f"cannot use the checkpoint directory {self.directory}: {err}"
        _raise_agreed(comm, error)

    def _prepare(self, fresh: bool) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for path in self.directory.iterdir():
            stale = path.name.startswith((".tmp-", ".old-"))
            if stale or (fresh and _STEP.match(path.name)):
                shutil.rmtree(path, ignore_errors=True)
        if fresh:
            (self.directory / LATEST).unlink(missing_ok=True)

    def write(
        self, step: int, write_parts: Callable[[Path], None], info: Mapping[str, Any]
    ) -> Path:
        """Write checkpoint ``step``: ``write_parts(tmp)`` on every rank (it may be collective,
        and must reach its collectives on every rank before anything that may fail), then the
        manifest with ``info``, the rename and ``latest``.  Returns ``DIR/step-<step>``; an
        error on any rank is an ``OSError`` on all, and leaves no ``step-<step>``."""
        comm = self.comm
        tmp = self.directory / f".tmp-{step}"
        error = None
        if comm.rank == 0:
            try:
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
            except OSError as err:
                error = err
        _raise_agreed(comm, error)
        error = None
        try:
            write_parts(tmp)
        except Exception as err:
            error = err
        _kill_hook(step, "parts", comm)
        _raise_agreed(comm, error)
        error = None
        if comm.rank == 0:
            try:
                self._commit(step, tmp, info)
            except OSError as err:
                error = err
        _raise_agreed(comm, error)
        return self.directory / f"step-{step}"

    def _commit(self, step: int, tmp: Path, info: Mapping[str, Any]) -> None:
        """Rank 0: manifest, rename, ``latest``, pruning."""
        manifest = {"format": FORMAT, "step": int(step), "ranks": self.comm.size, **info}
        manifest["files"] = _file_sizes(tmp)
        write_json_file(tmp / MANIFEST, manifest)
        _kill_hook(step, "manifest", self.comm)
        final = self.directory / f"step-{step}"
        if final.exists():  # from an earlier, longer history: replaced
            old = self.directory / f".old-{step}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _kill_hook(step, "renamed", self.comm)
        write_json_file(self.directory / LATEST, {"step": int(step), "path": final.name})
        self._prune(step)
        log.info("checkpoint %s written", final)

    def _prune(self, step: int) -> None:
        """Keep the newest ``keep`` checkpoints up to ``step``; drop any beyond it (of an
        earlier history)."""
        kept = 0
        for k, path in _complete(self.directory):
            if k > step or kept >= self.keep:
                shutil.rmtree(path, ignore_errors=True)
            else:
                kept += 1


# -- keyed rows -----------------------------------------------------------------------------------
def quadrature_keys(mesh: dolfinx.mesh.Mesh, cells: np.ndarray, n_points: int) -> np.ndarray:
    """Global keys ``original cell index * n_points + q`` of the points of ``cells`` (in the
    order cells x points): the same for a point whatever the partition, when the mesh is built
    from the same input."""
    original = np.asarray(mesh.topology.original_cell_index, dtype=np.int64)[cells]
    return (original[:, None] * n_points + np.arange(n_points)[None, :]).ravel()


def write_keyed(path: Path, keys: np.ndarray, arrays: Mapping[str, np.ndarray]) -> None:
    """This rank's rows: ``keys`` and ``arrays`` (first axis one row per key) to ``path``
    (``.npz``; local)."""
    with open(path, "wb") as f:
        np.savez(f, __keys__=np.asarray(keys, dtype=np.int64), **dict(arrays))


def _read_files(paths: Sequence[Path], comm: MPI.Comm) -> list[dict[str, np.ndarray]]:
    """The files of this rank's share (round robin)."""
    out = []
    for path in list(paths)[comm.rank :: comm.size]:
        with np.load(path) as data:
            out.append({name: data[name] for name in data.files})
    return out


def _route(
    parts: list[dict[str, np.ndarray]], all_keys: np.ndarray, owners: np.ndarray, size: int
) -> list[list[dict[str, np.ndarray]]]:
    """Per destination rank, the rows of ``parts`` whose key it owns."""
    order = np.argsort(all_keys)
    sorted_keys, sorted_owners = all_keys[order], owners[order]
    out: list[list[dict[str, np.ndarray]]] = [[] for _ in range(size)]
    for part in parts:
        keys = part["__keys__"]
        pos = np.clip(np.searchsorted(sorted_keys, keys), 0, max(len(sorted_keys) - 1, 0))
        known = sorted_keys[pos] == keys if len(sorted_keys) else np.zeros(len(keys), bool)
        dest = np.where(known, sorted_owners[pos] if len(sorted_keys) else -1, -1)
        for r in range(size):
            rows = dest == r
            if rows.any():
                out[r].append({name: a[rows] for name, a in part.items()})
    return out


def _place(received: list[dict[str, np.ndarray]], keys: np.ndarray) -> dict[str, np.ndarray]:
    """The received rows in the order of ``keys``; ``ValueError`` if one is missing."""
    if not received:
        if len(keys):
            raise ValueError(f"the checkpoint has no data for {len(keys)} point(s) of this rank")
        return {}
    merged = {name: np.concatenate([r[name] for r in received]) for name in received[0]}
    got = merged.pop("__keys__")
    order = np.argsort(got)
    pos = np.searchsorted(got[order], keys)
    pos = np.clip(pos, 0, max(len(got) - 1, 0))
    if len(keys) and (len(got) == 0 or not np.array_equal(got[order][pos], keys)):
        raise ValueError("the checkpoint lacks points of this mesh (another mesh?)")
    take = order[pos]
    return {name: a[take] for name, a in merged.items()}


def read_keyed(paths: Sequence[Path], keys: np.ndarray, comm: MPI.Comm) -> dict[str, np.ndarray]:
    """The rows of this rank's ``keys`` from the files of :func:`write_keyed` (written by any
    number of ranks), in the order of ``keys``.  Collective; a ``ValueError`` on every rank
    when a file cannot be read or a key is missing."""
    keys = np.asarray(keys, dtype=np.int64)
    error = None
    parts: list[dict[str, np.ndarray]] = []
    try:
        parts = _read_files(paths, comm)
    except (OSError, ValueError) as err:
        error = f"cannot read the checkpoint's point data: {err}"
    _raise_agreed(comm, error, ValueError)
    gathered = comm.allgather(keys)
    all_keys = np.concatenate(gathered) if gathered else np.zeros(0, np.int64)
    owners = np.repeat(np.arange(comm.size), [len(k) for k in gathered])
    received = comm.alltoall(_route(parts, all_keys, owners, comm.size))
    out: dict[str, np.ndarray] = {}
    try:
        out = _place([r for chunk in received for r in chunk], keys)
    except ValueError as err:
        error = str(err)
    _raise_agreed(comm, error, ValueError)
    return out


# -- fields ---------------------------------------------------------------------------------------
def _cell_dofs(u: dolfinx.fem.Function) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Owned cells, their original indices and their dofs (cells x dofs of the cell)."""
    V = u.function_space
    mesh = V.mesh
    tdim = mesh.topology.dim
    cells = np.arange(mesh.topology.index_map(tdim).size_local, dtype=np.int32)
    original = np.asarray(mesh.topology.original_cell_index, dtype=np.int64)[cells]
    return cells, original, V.dofmap.list[cells]


def write_field(path: Path, u: dolfinx.fem.Function) -> None:
    """This rank's part of the Lagrange function ``u``: per owned cell (keyed by its original
    index), the values and coordinates of the cell's dofs (local)."""
    _, original, dofs = _cell_dofs(u)
    bs = u.function_space.dofmap.index_map_bs
    x = u.function_space.tabulate_dof_coordinates()
    values = u.x.array.reshape(-1, bs)[dofs]
    write_keyed(path, original, {"values": values, "x": x[dofs]})


def read_field(paths: Sequence[Path], u: dolfinx.fem.Function, comm: MPI.Comm) -> None:
    """Set ``u`` from the parts :func:`write_field` wrote on any number of ranks: each owned
    cell takes its saved dof values, matched to its dofs by their coordinates (the local dof
    order may differ between partitions), then the ghosts are updated.  Collective; a
    ``ValueError`` on every rank if a dof cannot be matched or stays unset."""
    _, original, dofs = _cell_dofs(u)
    rows = read_keyed(paths, original, comm)
    error = None
    try:
        _assign_cells(u, dofs, rows)
    except ValueError as err:
        error = err
    _raise_agreed(comm, error, ValueError)
    u.x.scatter_forward()


def _assign_cells(u: dolfinx.fem.Function, dofs: np.ndarray, rows: Mapping[str, np.ndarray]):
    """Write the saved cell values into ``u`` (local)."""
    V = u.function_space
    bs = V.dofmap.index_map_bs
    if len(dofs) == 0:
        return
    x = V.tabulate_dof_coordinates()[dofs]  # (cells, nd, 3)
    dist = np.linalg.norm(rows["x"][:, :, None, :] - x[:, None, :, :], axis=-1)
    match = np.argmin(dist, axis=1)  # for each local dof, the saved one at its place
    scale = max(float(np.max(np.abs(x))), 1.0)
    if float(np.max(np.min(dist, axis=1))) > 1e-10 * scale:
        raise ValueError("the checkpoint's field does not match this mesh")
    values = np.take_along_axis(rows["values"], match[:, :, None], axis=1)
    array = u.x.array.reshape(-1, bs)
    array[dofs.ravel()] = values.reshape(-1, bs)
    n_owned = V.dofmap.index_map.size_local
    if not np.all(np.isin(np.arange(n_owned), dofs)):
        raise ValueError("an owned dof lies in no owned cell: the field cannot be restored")
