r"""Homogenized references for HMM: :math:`A^{hom}` from the project's cell solver.

For a piecewise-constant periodic coefficient with two phases the homogenized tensor is computed
by :class:`~multiscale.cell.CellProblem` with periodic conditions on the structured unit cell
``unit_mesh(comm, d, n)`` (:func:`~multiscale.mesh.unit_mesh`) whose cells are tagged by the
phase at their midpoints -- the same mesh the sampling-domain problems use when
:math:`\delta = \varepsilon` and the domains are snapped to the period lattice, so FE-HMM must
reproduce it to solver tolerance.
"""

from __future__ import annotations

from collections.abc import Callable

import dolfinx
import numpy as np
from mpi4py import MPI

from multiscale.cell import CellProblem
from multiscale.mesh import CellMesh, unit_mesh
from multiscale.physics import Conductivity

__all__ = ["checkerboard_phase", "laminate_phase", "two_phase_cell_tensor"]


def laminate_phase(normal: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """Phase-1 indicator of :func:`~multiscale.hmm.coefficients.laminate` (numpy)."""
    return lambda y: np.sin(2.0 * np.pi * y[:, normal]) > 0.0


def checkerboard_phase() -> Callable[[np.ndarray], np.ndarray]:
    """Phase-1 indicator of :func:`~multiscale.hmm.coefficients.checkerboard` (numpy)."""
    return lambda y: np.sin(2.0 * np.pi * y[:, 0]) * np.sin(2.0 * np.pi * y[:, 1]) > 0.0


def two_phase_cell_tensor(
    comm: MPI.Comm,
    dim: int,
    n: int,
    phase1: Callable[[np.ndarray], np.ndarray],
    k1: float,
    k2: float,
) -> np.ndarray:
    """:math:`A^{hom}` of :math:`k_1` on ``phase1(y)`` and :math:`k_2` elsewhere in
    :math:`Y = [0,1]^d`, from the periodic cell problems on ``unit_mesh(comm, dim, n)``
    (collective on ``comm``)."""
    mesh = unit_mesh(comm, dim, n)
    tdim = mesh.topology.dim
    imap = mesh.topology.index_map(tdim)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    mid = dolfinx.mesh.compute_midpoints(mesh, tdim, cells)[:, :dim]
    values = np.where(phase1(mid), 1, 2).astype(np.int32)
    tags = dolfinx.mesh.meshtags(mesh, tdim, cells, values)
    box = np.array([np.zeros(dim), np.ones(dim)])
    cell = CellMesh(mesh, tags, {"phase1": 1, "phase2": 2}, box)
    result = CellProblem(cell, {"phase1": Conductivity(k1), "phase2": Conductivity(k2)}).solve(
        "periodic"
    )
    return np.asarray(result.tensor)
