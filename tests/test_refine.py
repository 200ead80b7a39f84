"""Periodic adaptive refinement, Dörfler marking and graded generators against exact references.

References: the phase areas of the 2x2 checkerboard (1/2 each, exact), the homogeneous cell
(:math:`A = k I` exactly for any periodic mesh), Dykhne's checkerboard :math:`\\sqrt{k_1 k_2}\\,I`
(the conforming periodic tensor is an upper bound that decreases under refinement), and a
brute-force NumPy Dörfler selection.
"""

from __future__ import annotations

import itertools
import logging

import dolfinx
import numpy as np
import pytest
from mpi4py import MPI

from multiscale.cell import CellProblem
from multiscale.compat import geometry_dofmap, refine_mesh
from multiscale.mesh import CellMesh, check_periodic, checkerboard, inclusions_2d, laminate
from multiscale.mesh.periodicity import NonPeriodicMeshError
from multiscale.mesh.refine import dorfler_mark, refine_periodic
from multiscale.physics import Conductivity

log = logging.getLogger(__name__)

pytestmark = pytest.mark.mpi

EXACT_TOL = 1e-12
K1, K2 = 1.0, 10.0
DYKHNE = np.sqrt(K1 * K2)


# ------------------------------------------------------------------------------------- helpers


def _midpoints(cell: CellMesh) -> np.ndarray:
    """Midpoints of the owned cells (geometry-based markings do not depend on the partition)."""
    tdim = cell.mesh.topology.dim
    n = cell.mesh.topology.index_map(tdim).size_local
    return dolfinx.mesh.compute_midpoints(cell.mesh, tdim, np.arange(n, dtype=np.int32))[:, :2]


def _owned_cells_at(cell: CellMesh, point: np.ndarray) -> np.ndarray:
    """Owned cells with a vertex at ``point``."""
    tdim = cell.mesh.topology.dim
    n = cell.mesh.topology.index_map(tdim).size_local
    vertices = dolfinx.mesh.locate_entities(
        cell.mesh, 0, lambda x: np.linalg.norm(x[:2].T - point, axis=1) < 1e-10
    )
    cell.mesh.topology.create_connectivity(0, tdim)
    at = dolfinx.mesh.compute_incident_entities(cell.mesh.topology, vertices, 0, tdim)
    return at[at < n]


def _pseudo_random(cell: CellMesh, fraction: float) -> np.ndarray:
    """Owned cells chosen by a hash of their midpoint (the same cells on any rank count)."""
    m = _midpoints(cell)
    u = np.mod(np.sin(12.9898 * m[:, 0] + 78.233 * m[:, 1]) * 43758.5453, 1.0)
    return np.flatnonzero(u < fraction).astype(np.int32)


def _near_junctions(cell: CellMesh, radius: float) -> np.ndarray:
    """Owned cells whose midpoint lies within ``radius`` of a junction of the 2x2 board (the
    grid points of spacing 1/2, periodic images included)."""
    m = _midpoints(cell)
    d = np.abs(m - np.rint(2.0 * m) / 2.0)
    return np.flatnonzero(np.linalg.norm(d, axis=1) < radius).astype(np.int32)


def _diameters(cell: CellMesh, cells: np.ndarray) -> np.ndarray:
    """Longest edge of each of ``cells`` (triangles)."""
    x = cell.mesh.geometry.x[np.asarray(geometry_dofmap(cell.mesh))[cells]]
    edges = x - np.roll(x, 1, axis=1)
    return np.linalg.norm(edges, axis=2).max(axis=1, initial=0.0)


def _num_cells(cell: CellMesh) -> int:
    return int(cell.mesh.topology.index_map(cell.mesh.topology.dim).size_global)


def _tensor(cell: CellMesh, k0: float, k1: float) -> np.ndarray:
    laws = {"phase0": Conductivity(k0), "phase1": Conductivity(k1)}
    return CellProblem(cell, laws).solve("periodic").tensor


@pytest.fixture(scope="module")
def board() -> CellMesh:
    return checkerboard(MPI.COMM_WORLD, 2, h=0.1)


# ------------------------------------------------------------------------------- refine_periodic


@pytest.mark.parametrize("marking", ["corner_junction", "pseudo_random"])
def test_refined_cell_is_periodic_with_exact_phases_and_homogeneous_tensor(board, marking):
    marked = (
        _owned_cells_at(board, np.zeros(2))
        if marking == "corner_junction"
        else _pseudo_random(board, 0.2)
    )
    assert board.comm.allreduce(marked.size) > 0
    fine = refine_periodic(board, marked)
    check_periodic(fine)  # also inside refine_periodic: must not raise
    areas = fine.phase_volumes()
    log.info("%s: %d -> %d cells, areas %s", marking, _num_cells(board), _num_cells(fine), areas)
    assert _num_cells(fine) > _num_cells(board)
    assert fine.phases == board.phases
    np.testing.assert_allclose(fine.box, board.box, rtol=0, atol=0)
    for name in ("phase0", "phase1"):
        assert abs(areas[name] - 0.5) < EXACT_TOL
    A = _tensor(fine, 3.0, 3.0)
    assert np.max(np.abs(A - 3.0 * np.eye(2))) < EXACT_TOL


def test_plaza_without_periodic_closure_breaks_periodicity(board):
    """The reference check discriminates: Plaza alone, from the cells at the corner (0, 0),
    splits boundary edges whose images it leaves whole."""
    mesh = board.mesh
    mesh.topology.create_connectivity(2, 1)
    cells = _owned_cells_at(board, np.zeros(2))
    edges = np.unique(mesh.topology.connectivity(2, 1).array.reshape(-1, 3)[cells])
    naive, _ = refine_mesh(mesh, edges.astype(np.int32))
    tags = dolfinx.mesh.meshtags(naive, 2, np.zeros(0, np.int32), np.zeros(0, np.int32))
    with pytest.raises(NonPeriodicMeshError):
        check_periodic(CellMesh(naive, tags, dict(board.phases), board.box))


def test_junction_refinement_decreases_checkerboard_error(board):
    """Contrast 10: the conforming tensor is >= sqrt(10) I and approaches it."""
    cell, errors, counts = board, [], []
    for level in range(4):
        if level:
            cell = refine_periodic(cell, _near_junctions(cell, 0.3 / 2**level))
        A = _tensor(cell, K1, K2)
        assert np.min(np.linalg.eigvalsh(A)) >= DYKHNE - 1e-10
        errors.append(float(np.max(np.abs(A - DYKHNE * np.eye(2)))))
        counts.append(_num_cells(cell))
    log.info("junction refinement: cells %s, errors %s", counts, errors)
    assert all(b < a for a, b in itertools.pairwise(errors))
    assert errors[-1] < 0.5 * errors[0]


def test_rank_count_independence(board):
    """The same cell refined on COMM_WORLD and on COMM_SELF: same cell count, same tensor."""
    mine = refine_periodic(board, _near_junctions(board, 0.15))
    serial = checkerboard(MPI.COMM_SELF, 2, h=0.1)
    ref = refine_periodic(serial, _near_junctions(serial, 0.15))
    assert _num_cells(mine) == _num_cells(ref)
    A, A_ref = _tensor(mine, K1, K2), _tensor(ref, K1, K2)
    log.info("ranks %d: %d cells, A = %s", board.comm.size, _num_cells(mine), A.tolist())
    assert np.max(np.abs(A - A_ref)) < 1e-10 * DYKHNE


def test_tetrahedra_are_refused_in_one_line(comm):
    """3D periodic refinement is not offered (Plaza's tie-breaks on global vertex numbers split
    a face and its periodic image differently): one line, never a non-conforming mesh."""
    cell = laminate(comm, 3, [0.5, 0.5], h=0.5)
    with pytest.raises(ValueError, match="refines triangle meshes, got tetrahedrons"):
        refine_periodic(cell, np.zeros(1, dtype=np.int32))


def test_refine_periodic_rejects_bad_marking(board):
    n = board.mesh.topology.index_map(2).size_local
    with pytest.raises(ValueError, match="owned local indices"):
        refine_periodic(board, np.array([n], dtype=np.int32))
    with pytest.raises(ValueError, match="integer"):
        refine_periodic(board, np.array([0.5]))


# ---------------------------------------------------------------------------------- dorfler_mark


def _brute_force(values: np.ndarray, theta: float) -> int:
    """Size of the smallest set with sum >= theta * total, by trying every prefix of the
    decreasing order (the minimal set is always a prefix of it)."""
    v = np.sort(values)[::-1]
    total = v.sum()
    for m in range(v.size + 1):
        if v[:m].sum() >= theta * total:
            return m
    raise AssertionError("unreachable")


@pytest.mark.parametrize("theta", [0.1, 0.5, 0.75, 1.0])
def test_dorfler_mark_matches_brute_force(comm, theta):
    rng = np.random.default_rng(7)
    values = rng.random(103) ** 4
    chunks = np.array_split(values, comm.size)
    offset = sum(c.size for c in chunks[: comm.rank])
    mine = dorfler_mark(chunks[comm.rank], theta, comm)
    picked = np.concatenate(comm.allgather(values[offset + mine]))
    m = _brute_force(values, theta)
    assert picked.size == m
    assert picked.sum() >= theta * values.sum()
    assert np.sort(picked)[::-1][:-1].sum() < theta * values.sum()  # minimal


def test_dorfler_mark_known_values(comm):
    values = np.array([1.0, 4.0, 2.0, 3.0, 0.0])  # total 10: theta 0.5 needs {4, 3}
    chunks = np.array_split(values, comm.size)
    offset = sum(c.size for c in chunks[: comm.rank])
    mine = dorfler_mark(chunks[comm.rank], 0.5, comm)
    picked = np.sort(np.concatenate(comm.allgather(offset + mine)))
    assert picked.tolist() == [1, 3]
    assert dorfler_mark(np.zeros(2), 0.5, comm).size == 0


@pytest.mark.parametrize("theta", [0.0, 1.5, float("nan")])
def test_dorfler_mark_rejects_bad_theta(comm, theta):
    with pytest.raises(ValueError, match="theta"):
        dorfler_mark(np.ones(3), theta, comm)


def test_dorfler_mark_rejects_negative_indicators(comm):
    with pytest.raises(ValueError, match="indicators"):
        dorfler_mark(-np.ones(3), 0.5, comm)


# ----------------------------------------------------------------------------- graded generators


def test_graded_checkerboard_beats_uniform_mesh(comm):
    h_min = 0.005
    graded = checkerboard(comm, 2, h=0.1, grading=(h_min, 0.25))
    check_periodic(graded)
    at_junction = _owned_cells_at(graded, np.array([0.5, 0.5]))
    local = _diameters(graded, at_junction).min() if at_junction.size else np.inf
    smallest = comm.allreduce(float(local), op=MPI.MIN)
    assert smallest <= 1.5 * h_min
    uniform = checkerboard(comm, 2, h=0.045)
    assert _num_cells(uniform) >= _num_cells(graded)
    err_graded = np.max(np.abs(_tensor(graded, K1, K2) - DYKHNE * np.eye(2)))
    err_uniform = np.max(np.abs(_tensor(uniform, K1, K2) - DYKHNE * np.eye(2)))
    log.info(
        "graded: %d cells, min diameter %.4g, error %.4g; uniform: %d cells, error %.4g",
        _num_cells(graded),
        smallest,
        err_graded,
        _num_cells(uniform),
        err_uniform,
    )
    assert err_graded < 0.5 * err_uniform


@pytest.mark.parametrize("centre", [(0.5, 0.5), (0.0, 0.5)], ids=["centred", "wrapped"])
def test_graded_inclusion_is_periodic_and_fine_at_interface(comm, centre):
    """A disk of area 1/2 (centred, or cut by the boundary and wrapped): periodic, cells of
    size ~h_min on the circle and ~h far from it, and the inscribed polygon's area deficit
    :math:`\approx \\phi (h_{min}/r)^2/6` (factor 2 allowed) instead of :math:`(h/r)^2/6`."""
    h_min, r = 0.01, np.sqrt(0.5 / np.pi)
    cell = inclusions_2d(comm, [centre], r, h=0.1, grading=(h_min, 0.1))
    check_periodic(cell)
    n = cell.mesh.topology.index_map(2).size_local
    offset = _midpoints(cell) - np.asarray(centre)
    dist = np.abs(np.linalg.norm(offset - np.rint(offset), axis=1) - r)
    sizes = _diameters(cell, np.arange(n))
    near = comm.allreduce(float(sizes[dist < 0.5 * h_min].max(initial=0.0)), op=MPI.MAX)
    far = comm.allreduce(float(sizes[dist > 0.2].max(initial=0.0)), op=MPI.MAX)
    deficit = 0.5 - cell.volume_fractions()["inclusion"]
    log.info(
        "graded disk %s: interface cells <= %.4g, far up to %.4g, area deficit %.3g",
        centre,
        near,
        far,
        deficit,
    )
    assert near <= 2.0 * h_min  # longest edge of a triangle of size ~h_min on the interface
    assert far > 0.5 * 0.1
    assert 0.0 < deficit < 2.0 * 0.5 * (h_min / r) ** 2 / 6


@pytest.mark.parametrize("grading", [(0.0, 0.2), (0.2, 0.2), (0.01, -1.0), (0.01,)])
def test_bad_grading_is_an_error(comm, grading):
    with pytest.raises(ValueError, match="grading"):
        checkerboard(comm, 2, h=0.1, grading=grading)
