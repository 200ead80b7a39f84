"""Checkpoint and restart of an FE² run, on any number of ranks.

A checkpoint (written by :class:`FE2Checkpointer` every ``every`` converged load steps, into a
:class:`~multiscale.coupling.checkpoint.CheckpointStore`) holds everything the next step depends
on, so that a restarted run follows the same Newton path as an uninterrupted one:

* ``u-<rank>.npz``: the committed macro displacement, per cell keyed by its original index
  (:func:`~multiscale.coupling.checkpoint.write_field`);
* ``micro-<rank>.npz``: per macro quadrature point, keyed by ``original cell index * n_points +
  q`` (:func:`~multiscale.coupling.checkpoint.quadrature_keys`), the committed micro history of
  :attr:`MicroModel.committed <multiscale.fe2.micro.MicroModel.committed>` (``state``,
  ``fluctuation``, ``sensitivity``, ``G``), the committed responses the first iterate of the
  next step reuses (``flux``, ``tangent``, ``hill_mandel``, ``iterations``, ``mean_p``) and the
  point's coordinates, which the reader compares with its own (a checkpoint of another mesh is
  an error, never a silent mismatch);
* ``state.json``: the load stepper (factor, targets, current step size, cuts and regrowth
  streak, step records, failed attempts), the run's counters (RVE solves, macro iterations),
  the output's load-path time and the cached tangent of linear phases;
* the manifest: step, factor, rank count, file sizes and :func:`fe2_config_hash` of the
  ``macro``, ``micro`` and ``loading`` sections, which a restart must match.

Restart (:func:`restore_fe2`) needs the same macro mesh from the same config: the quadrature
keys rest on :attr:`dolfinx.mesh.Topology.original_cell_index`, which is the cell's index in the
input (the generated rectangle or box, the gmsh model of the plate or of a file) whatever the
partition.  It needs ``micro.group_size`` 1 (one RVE per rank: the per-point history is then
one row on one rank; with groups, the RVE itself is distributed and its rows are partition
dependent).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from multiscale.coupling.checkpoint import (
    Checkpoint,
    CheckpointStore,
    config_hash,
    find_checkpoint,
    quadrature_keys,
    read_field,
    read_keyed,
    write_field,
    write_keyed,
)
from multiscale.nonlinear import StepRecord, agree
from multiscale.output import write_json_file

from .micro import MicroEvaluation
from .output import FE2Output
from .solver import FE2Problem

__all__ = ["FE2Checkpointer", "fe2_config_hash", "open_restart", "restore_fe2"]

log = logging.getLogger(__name__)

STATE = "state.json"
_RESPONSES = ("flux", "tangent", "hill_mandel", "iterations", "mean_p")


def fe2_config_hash(config: Any) -> str:
    """The hash of the sections a restart must share with its checkpoint: ``macro``,
    ``micro`` and ``loading`` (the solver options, ``micro.balance`` and the output may
    change: load balancing does not change the answer)."""
    sections = {k: getattr(config, k) for k in ("macro", "micro", "loading")}
    sections["micro"] = {k: v for k, v in sections["micro"].items() if k != "balance"}
    return config_hash(sections)


def _require_single_rank_groups(problem: FE2Problem) -> None:
    if problem.pool.group_size != 1:
        raise ValueError("FE² checkpoints need micro.group_size 1 (one RVE per rank)")


def _point_rows(problem: FE2Problem) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """This rank's point keys and the rows to save (history, responses, coordinates)."""
    rule = problem.rule
    keys = quadrature_keys(problem.macro.mesh, rule.cells, rule.n_points)
    rows: dict[str, np.ndarray] = {"x": rule.coordinates().reshape(-1, problem.dim)}
    for name, value in problem.micro.committed.items():
        if len(value) == rule.n_local and not problem.micro.linear:
            rows[f"committed_{name}"] = value
    cache = problem._cache
    if cache is not None:
        for name in _RESPONSES:
            rows[f"response_{name}"] = np.asarray(getattr(cache, name))
    return keys, rows


class FE2Checkpointer:
    """Writes a checkpoint of ``problem`` (and of its ``output``) after every ``every``-th
    converged step, into ``directory``; call it from ``on_step`` after the output.  ``fresh``:
    a new run (old checkpoints in ``directory`` are removed); else a restarted one.
    Collective."""

    def __init__(
        self,
        problem: FE2Problem,
        output: FE2Output | None,
        directory: str | os.PathLike,
        *,
        every: int,
        config_hash: str,
        keep: int = 2,
        fresh: bool = True,
    ) -> None:
        _require_single_rank_groups(problem)
        if int(every) < 1:
            raise ValueError(f"checkpoint.every must be at least 1, got {every}")
        self.problem, self.output = problem, output
        self.every = int(every)
        self.hash = config_hash
        self.store = CheckpointStore(directory, problem.comm, keep=keep, fresh=fresh)

    def __call__(self, step: StepRecord) -> None:
        if len(self.problem.result.steps) % self.every == 0:
            self.write()

    def write(self) -> Path:
        """Write the checkpoint of the current committed state (collective)."""
        problem = self.problem
        k = len(problem.result.steps)
        state = self._state()  # collective (counters)

        def parts(tmp: Path) -> None:
            write_field(tmp / f"u-{problem.comm.rank}.npz", problem.u)
            keys, rows = _point_rows(problem)
            write_keyed(tmp / f"micro-{problem.comm.rank}.npz", keys, rows)
            if problem.comm.rank == 0:
                write_json_file(tmp / STATE, state)

        info = {"factor": problem.stepper.factor, "config_hash": self.hash}
        return self.store.write(k, parts, info)

    def _state(self) -> dict[str, Any]:
        problem = self.problem
        tangent = problem.micro._linear_tangent
        return {
            "stepper": problem.stepper.export_state(),
            "counters": problem.counters(),
            "output": self.output.state() if self.output is not None else None,
            "linear_tangent": None if tangent is None else np.asarray(tangent).tolist(),
            "status": problem.result.status,
        }


def open_restart(directory: str | os.PathLike, comm: MPI.Comm, config: Any) -> Checkpoint:
    """The newest complete checkpoint in ``directory``, checked against ``config`` (its
    :func:`fe2_config_hash`): ``ValueError`` on every rank when there is none or it is of
    another problem.  Collective; cheap (done before the problem is built)."""
    checkpoint = find_checkpoint(directory, comm)
    if checkpoint.manifest.get("config_hash") != fe2_config_hash(config):
        raise ValueError(
            f"the checkpoint {checkpoint.path} is of another configuration (its macro, micro or "
            "loading section differs)"
        )
    return checkpoint


def _read_state(checkpoint: Checkpoint, comm: MPI.Comm) -> dict[str, Any]:
    state: dict[str, Any] | str | None = None
    if comm.rank == 0:
        try:
            state = json.loads((checkpoint.path / STATE).read_text())
        except (OSError, ValueError) as err:
            state = f"cannot read {checkpoint.path / STATE}: {err}"
    state = comm.bcast(state, root=0)
    if isinstance(state, str):
        raise ValueError(state)
    assert state is not None
    return state


def _files(checkpoint: Checkpoint, name: str) -> list[Path]:
    """``<name>-<rank>.npz`` of every rank that wrote the checkpoint."""
    files = [checkpoint.path / f"{name}-{r}.npz" for r in range(int(checkpoint.manifest["ranks"]))]
    if not all(f.is_file() for f in files):
        raise ValueError(f"the checkpoint {checkpoint.path} lacks some of its {name}-*.npz files")
    return files


def _check_points(problem: FE2Problem, x_saved: np.ndarray) -> str | None:
    """An error message if the saved point coordinates are not this rank's."""
    x = problem.rule.coordinates().reshape(-1, problem.dim)
    if x.shape != x_saved.shape:
        return "the checkpoint's macro quadrature points do not match this mesh"
    scale = max(float(np.max(np.abs(x))) if x.size else 1.0, 1.0)
    if x.size and float(np.max(np.abs(x - x_saved))) > 1e-10 * scale:
        return (
            "the checkpoint's macro quadrature points do not match this mesh (was it built from "
            "the same configuration?)"
        )
    return None


def _check_micro_shapes(problem: FE2Problem, rows: dict[str, np.ndarray]) -> str | None:
    """An error message if the saved micro arrays do not have this RVE's sizes (another cell,
    law or version of a law wrote them)."""
    for name, value in problem.micro.committed.items():
        saved = rows.get(f"committed_{name}")
        if saved is not None and saved.shape[1:] != value.shape[1:]:
            return (
                f"the checkpoint's micro {name} has {int(np.prod(saved.shape[1:]))} values per "
                f"point, this RVE {int(np.prod(value.shape[1:]))}: it was written for another "
                "cell or material law"
            )
    return None


def restore_fe2(
    problem: FE2Problem, checkpoint: Checkpoint, output: FE2Output | None = None
) -> dict[str, Any]:
    """Bring ``problem`` (built from the checkpoint's configuration, on any number of ranks)
    and ``output`` to the state of ``checkpoint``; the next ``problem.solve(factors)`` with the
    same factors continues the run.  Returns the checkpoint's state (``state.json``).
    Collective; a ``ValueError`` on every rank when the checkpoint does not fit."""
    comm = problem.comm
    _require_single_rank_groups(problem)
    state = _read_state(checkpoint, comm)
    fields, files = _files(checkpoint, "u"), _files(checkpoint, "micro")
    read_field(fields, problem.u, comm)
    keys, _ = _point_rows(problem)
    rows = read_keyed(files, keys, comm)
    message = _check_points(problem, rows.get("x", np.zeros((0, problem.dim))))
    message = message or _check_micro_shapes(problem, rows)
    message = agree(comm, message)
    if message is not None:
        raise ValueError(message)
    problem.restore(state["stepper"])
    committed = {k[len("committed_") :]: v for k, v in rows.items() if k.startswith("committed_")}
    responses = None
    if state["stepper"]["steps"]:  # a committed step: its responses are cached on every rank
        responses = MicroEvaluation(
            **{
                name: rows.get(f"response_{name}", _empty_response(problem, name))
                for name in _RESPONSES
            }
        )
    problem.restore_micro(committed, responses, state["counters"])
    if state.get("linear_tangent") is not None:
        problem.micro._linear_tangent = np.asarray(state["linear_tangent"])
    if output is not None and state.get("output"):
        output.restore(state["output"])
    log.info(
        "restarted from %s: step %d, load factor %.6g (written on %d rank(s))",
        checkpoint.path,
        checkpoint.step,
        problem.stepper.factor,
        checkpoint.manifest["ranks"],
    )
    return state


def _empty_response(problem: FE2Problem, name: str) -> np.ndarray:
    """A response array for a rank without points."""
    d = problem.dim
    shapes = {"flux": (0, d, d), "tangent": (0, d, d, d, d)}
    return np.zeros(shapes.get(name, (0,)), dtype=int if name == "iterations" else float)
