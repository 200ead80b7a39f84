"""Output of an FE² run: macro fields for ParaView, RVE snapshots, and the JSON summary.

* ``macro.xdmf``: the displacement (P1), the homogenized stress and the mean equivalent plastic
  strain of the RVEs (cell averages over the macro quadrature points, DG0), one time step per
  converged load step (time = the step's number; its load factor is in the summary);
* ``rve_<i>.xdmf``: for each probe point, the RVE at the macro quadrature point nearest to it:
  the fluctuation and the equivalent plastic strain (cell values), written by the rank that
  owns the point;
* the summary JSON (:func:`write_summary`): load–displacement curve, Newton residual histories,
  per-rank RVE counts and times, written by rank 0 to a temporary file and renamed, so a reader
  never sees a half-written file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dolfinx
import dolfinx.io
import numpy as np
from mpi4py import MPI

from .solver import FE2Problem, StepRecord

__all__ = ["FE2Output", "write_summary"]

log = logging.getLogger(__name__)


def write_summary(path: str | os.PathLike, data: dict[str, Any], comm: MPI.Comm) -> Path | None:
    """Write ``data`` as JSON to ``path`` from rank 0 of ``comm``, atomically (collective)."""
    path = Path(path)
    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=_jsonable))
        os.replace(tmp, path)
        log.info("wrote %s", path)
    comm.barrier()
    return path if comm.rank == 0 else None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _cell_average(problem: FE2Problem, f: dolfinx.fem.Function) -> np.ndarray:
    values = problem.rule.values(f)
    return values.mean(axis=1)


class FE2Output:
    """Writes the macro fields and the probe RVEs after every converged step.

    Attach with ``problem.output = FE2Output(problem, directory, probes=[...])``; call
    :meth:`close` at the end (collective).  Probes need ``group_size == 1``.
    """

    def __init__(
        self,
        problem: FE2Problem,
        directory: str | os.PathLike,
        *,
        probes: Sequence[Sequence[float]] = (),
        fields: bool = True,
    ) -> None:
        self.problem = problem
        self.directory = Path(directory)
        comm = problem.comm
        if comm.rank == 0:
            self.directory.mkdir(parents=True, exist_ok=True)
        comm.barrier()
        mesh = problem.macro.mesh
        d = problem.dim
        self._file = None
        if fields:
            self._file = dolfinx.io.XDMFFile(comm, str(self.directory / "macro.xdmf"), "w")
            self._file.write_mesh(mesh)
            self._u1 = dolfinx.fem.Function(
                dolfinx.fem.functionspace(mesh, ("Lagrange", 1, (d,))), name="displacement"
            )
            self._stress = dolfinx.fem.Function(
                dolfinx.fem.functionspace(mesh, ("DG", 0, (d, d))),
                name="stress" if problem.kind == "strain" else "first_piola_stress",
            )
            self._p = dolfinx.fem.Function(
                dolfinx.fem.functionspace(mesh, ("DG", 0)), name="equivalent_plastic_strain"
            )
        self._probes = self._locate(probes)
        self._probe_files: dict[int, dolfinx.io.XDMFFile] = {}
        self._probe_fields: tuple[dolfinx.fem.Function, dolfinx.fem.Function | None] | None = None
        if self._probes and problem.pool.group_size != 1:
            raise ValueError("RVE probes need group_size 1 (one RVE per rank)")

    def _locate(self, probes: Sequence[Sequence[float]]) -> list[tuple[int, int, np.ndarray]]:
        """(owner rank, local point index, point) of the quadrature point nearest each probe."""
        problem = self.problem
        comm = problem.comm
        x = problem.rule.coordinates().reshape(-1, problem.dim)
        out = []
        for probe in probes:
            p = np.asarray(probe, dtype=float).ravel()
            if p.size != problem.dim:
                raise ValueError(f"probe {list(probe)} needs {problem.dim} coordinates")
            dist = np.linalg.norm(x - p, axis=1) if len(x) else np.array([np.inf])
            k = int(np.argmin(dist))
            _, owner = comm.allreduce((float(dist[k]), comm.rank), op=MPI.MINLOC)
            point = comm.bcast(x[k] if comm.rank == owner else None, root=owner)
            out.append((owner, k if comm.rank == owner else -1, point))
        return out

    def __call__(self, problem: FE2Problem, record: StepRecord) -> None:
        # time = number of the converged step (load factors may repeat when unloading); the
        # step's factor is in the summary
        t = float(len(problem.result.steps))
        if self._file is not None:
            self._u1.interpolate(problem.u)
            d = problem.dim
            cells = problem.rule.cells
            stress = _cell_average(problem, problem.flux).reshape(len(cells), d * d)
            dofs = self._stress.function_space.dofmap.list[cells][:, 0]
            self._stress.x.array.reshape(-1, d * d)[dofs] = stress
            self._stress.x.scatter_forward()
            dofs0 = self._p.function_space.dofmap.list[cells][:, 0]
            self._p.x.array[dofs0] = _cell_average(problem, problem.mean_p)
            self._p.x.scatter_forward()
            for f in (self._u1, self._stress, self._p):
                self._file.write_function(f, t)
        for i, (owner, key, point) in enumerate(self._probes):
            if problem.comm.rank == owner:
                self._write_probe(i, key, point, t)

    def _write_probe(self, i: int, key: int, point: np.ndarray, t: float) -> None:
        micro = self.problem.micro
        rve = micro.rve
        if micro.linear:
            return
        if i not in self._probe_files:
            f = dolfinx.io.XDMFFile(MPI.COMM_SELF, str(self.directory / f"rve_{i}.xdmf"), "w")
            f.write_mesh(rve.cell.mesh)
            self._probe_files[i] = f
            log.debug("probe %d at %s -> RVE of point %d", i, point.tolist(), key)
        rve.load_state(micro.state_committed[key])
        rve.u.x.petsc_vec.getArray()[:] = micro.fluct_committed[key]
        rve.u.x.scatter_forward()
        rve.mpc.backsubstitution(rve.u)
        fl, p = self._probe_functions()
        fl.interpolate(rve.u)
        self._probe_files[i].write_function(fl, t)
        if p is not None:
            values = rve.rule.values(rve.state["p"]).mean(axis=1)
            dofs = p.function_space.dofmap.list[rve.rule.cells][:, 0]
            p.x.array[dofs] = values
            self._probe_files[i].write_function(p, t)

    def _probe_functions(self) -> tuple[dolfinx.fem.Function, dolfinx.fem.Function | None]:
        """The RVE output functions (P1 fluctuation, DG0 ``p``), made once per output."""
        if self._probe_fields is None:
            rve = self.problem.micro.rve
            mesh = rve.cell.mesh
            fl = dolfinx.fem.Function(
                dolfinx.fem.functionspace(mesh, ("Lagrange", 1, (rve.dim,))), name="fluctuation"
            )
            p = None
            if "p" in rve.state:
                p = dolfinx.fem.Function(
                    dolfinx.fem.functionspace(mesh, ("DG", 0)), name="equivalent_plastic_strain"
                )
            self._probe_fields = (fl, p)
        return self._probe_fields

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        for f in self._probe_files.values():
            f.close()
        self._probe_files.clear()

    def probe_points(self) -> list[list[float]]:
        """The macro quadrature points the probes snapped to."""
        return [p.tolist() for _, _, p in self._probes]
