"""Output of an FE² run: macro fields for ParaView and RVE snapshots at chosen points.

* ``macro.xdmf``: the displacement (P1), the homogenized stress and the mean equivalent plastic
  strain of the RVEs (cell averages over the macro quadrature points, DG0), one time step per
  converged load step;
* ``rve_<i>.xdmf``: for each probe point, the RVE at the macro quadrature point nearest to it:
  the fluctuation and the equivalent plastic strain (cell values), written by the rank that
  owns the point.

The time of a step is the *load path length* :math:`\\sum |\\Delta\\lambda|`: the load factor
itself while the load grows, and still increasing when it is reversed (ParaView needs increasing
times); the factors are in the summary.  The output only reads the problem: the public fields
(``u``, ``flux``, ``mean_p``) and each probe point's RVE fields through
:meth:`MicroModel.fields <multiscale.fe2.micro.MicroModel.fields>`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import dolfinx
import dolfinx.io
import numpy as np
from mpi4py import MPI

from multiscale.nonlinear import StepRecord

from .solver import FE2Problem

__all__ = ["FE2Output"]

log = logging.getLogger(__name__)


class FE2Output:
    """Writes the macro fields and the probe RVEs after every converged step.

    Attach with ``problem.on_step = FE2Output(problem, directory, probes=[...])``; call
    :meth:`close` at the end (collective).  Probes need ``group_size == 1``.  ``suffix`` is
    appended to the file names (a restarted run writes its steps beside the earlier files).
    """

    def __init__(
        self,
        problem: FE2Problem,
        directory: str | os.PathLike,
        *,
        probes: Sequence[Sequence[float]] = (),
        fields: bool = True,
        suffix: str = "",
    ) -> None:
        self.problem = problem
        self.directory = Path(directory)
        self.suffix = suffix
        comm = problem.comm
        if comm.rank == 0:
            self.directory.mkdir(parents=True, exist_ok=True)
        comm.barrier()
        self._time = 0.0
        self._factor = 0.0
        self._file = None
        self._fields = bool(fields)
        if fields:
            self._init_fields()
        if probes and problem.pool.group_size != 1:
            raise ValueError("RVE probes need group_size 1 (one RVE per rank)")
        self._probes = self._locate(probes)
        self._probe_files: dict[int, dolfinx.io.XDMFFile] = {}
        self._probe_fields: tuple[dolfinx.fem.Function, dolfinx.fem.Function | None] | None = None

    def _init_fields(self) -> None:
        problem = self.problem
        mesh, d = problem.macro.mesh, problem.dim
        self._file = dolfinx.io.XDMFFile(problem.comm, str(self.macro_path), "w")
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

    @property
    def macro_path(self) -> Path:
        return self.directory / f"macro{self.suffix}.xdmf"

    def files(self) -> list[Path]:
        """The XDMF files this output writes (rank 0's view: all of them)."""
        out = [self.macro_path] if self._fields else []
        return out + [self._probe_path(i) for i in range(len(self._probes))]

    def _probe_path(self, i: int) -> Path:
        return self.directory / f"rve_{i}{self.suffix}.xdmf"

    def state(self) -> dict[str, float]:
        """What a restarted output continues from: the load path length and the last factor."""
        return {"time": self._time, "factor": self._factor}

    def restore(self, state: dict[str, float]) -> None:
        """Continue the times of :meth:`state` (after a restart)."""
        self._time, self._factor = float(state["time"]), float(state["factor"])

    def _locate(self, probes: Sequence[Sequence[float]]) -> list[tuple[int, int, np.ndarray]]:
        """(owner rank, local point index, point) of the quadrature point nearest each probe."""
        problem = self.problem
        comm = problem.comm
        x = problem.rule.coordinates().reshape(-1, problem.dim)
        out = []
        for probe in probes:
            p = np.asarray(probe, dtype=float).ravel()
            if p.size != problem.dim or not np.all(np.isfinite(p)):
                raise ValueError(f"probe {list(probe)} needs {problem.dim} finite coordinates")
            dist = np.linalg.norm(x - p, axis=1) if len(x) else np.array([np.inf])
            k = int(np.argmin(dist))
            _, owner = comm.allreduce((float(dist[k]), comm.rank), op=MPI.MINLOC)
            point = comm.bcast(x[k] if comm.rank == owner else None, root=owner)
            out.append((owner, k if comm.rank == owner else -1, point))
        return out

    def __call__(self, step: StepRecord) -> None:
        self._time += abs(step.factor - self._factor)
        self._factor = step.factor
        t = self._time
        problem = self.problem
        if self._file is not None:
            self._u1.interpolate(problem.u)
            d = problem.dim
            rule = problem.rule
            cells = rule.cells
            stress = rule.values(problem.flux).mean(axis=1).reshape(len(cells), d * d)
            dofs = self._stress.function_space.dofmap.list[cells][:, 0]
            self._stress.x.array.reshape(-1, d * d)[dofs] = stress
            self._stress.x.scatter_forward()
            dofs0 = self._p.function_space.dofmap.list[cells][:, 0]
            self._p.x.array[dofs0] = rule.values(problem.mean_p).mean(axis=1)
            self._p.x.scatter_forward()
            for f in (self._u1, self._stress, self._p):
                self._file.write_function(f, t)
        for i, (owner, key, point) in enumerate(self._probes):
            if problem.comm.rank == owner:
                self._write_probe(i, key, point, t)

    def _write_probe(self, i: int, key: int, point: np.ndarray, t: float) -> None:
        micro = self.problem.micro
        if micro.linear:
            return
        rve_mesh = micro.rve.cell.mesh
        if i not in self._probe_files:
            f = dolfinx.io.XDMFFile(MPI.COMM_SELF, str(self._probe_path(i)), "w")
            f.write_mesh(rve_mesh)
            self._probe_files[i] = f
            log.debug("probe %d at %s -> RVE of point %d", i, point.tolist(), key)
        fluctuation, cell_values = micro.fields(key)
        fl, p = self._probe_functions()
        fl.interpolate(fluctuation)
        self._probe_files[i].write_function(fl, t)
        if p is not None and "p" in cell_values:
            dofs = p.function_space.dofmap.list[micro.rve.rule.cells][:, 0]
            p.x.array[dofs] = cell_values["p"]
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
