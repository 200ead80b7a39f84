r"""Periodic unit-cell meshes: generators, reading, periodicity checks (serial and MPI).

Volume fractions are checked by assembling :math:`\int 1\,dx(t)` per phase tag and summing over
ranks, independently of :meth:`CellMesh.volume_fractions`.  Straight-sided cells (laminates,
checkerboards) are exact to rounding; curved inclusions are meshed by inscribed polygons whose
relative area deficit for a disk of radius :math:`r` and chords :math:`h` is
:math:`\approx (h/r)^2/6 = O(h^2)`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import dolfinx
import gmsh
import numpy as np
import pytest
import ufl
from mpi4py import MPI

from multiscale.mesh import (
    CellMesh,
    NonPeriodicMeshError,
    NotABoxError,
    check_periodic,
    checkerboard,
    circular_inclusion,
    cylindrical_fibre,
    inclusions_2d,
    inclusions_3d,
    laminate,
    read_cell_mesh,
    spherical_inclusion,
)

MESHES = Path(__file__).resolve().parents[1] / "meshes"

pytestmark = pytest.mark.mpi


# ------------------------------------------------------------------------------------- helpers


@pytest.fixture
def shared_tmp(tmp_path_factory: pytest.TempPathFactory, comm: MPI.Comm) -> Path:
    """A temporary directory made on rank 0 only, its path broadcast to every rank.

    Files are written and read there by rank 0 (gmsh runs on rank 0 only).  The other ranks never
    create a pytest temporary directory, so they do not race rank 0 cleaning up old ones.
    """
    path = str(tmp_path_factory.mktemp("mesh")) if comm.rank == 0 else None
    return Path(comm.bcast(path, root=0))


def assembled_fractions(cell: CellMesh) -> dict[str, float]:
    """Phase volume / box volume by assembling ``1 * dx(tag)``, reduced over ranks."""
    dx = ufl.Measure("dx", domain=cell.mesh, subdomain_data=cell.cell_tags)
    one = dolfinx.fem.Constant(cell.mesh, dolfinx.default_scalar_type(1.0))
    out = {}
    for name, tag in cell.phases.items():
        local = dolfinx.fem.assemble_scalar(dolfinx.fem.form(one * dx(tag)))
        out[name] = cell.mesh.comm.allreduce(float(np.real(local)), op=MPI.SUM) / cell.volume
    return out


def write_gmsh_on_root(comm: MPI.Comm, path: Path, make, save_all: bool = False) -> None:
    """Build a gmsh model with ``make()`` on rank 0 and write it to ``path``."""
    if comm.rank == 0:
        gmsh.initialize(readConfigFiles=False)
        try:
            gmsh.option.setNumber("General.Terminal", 0)
            gmsh.option.setNumber("Mesh.SaveAll", 1 if save_all else 0)
            gmsh.model.add("test")
            make()
            gmsh.write(str(path))
        finally:
            gmsh.finalize()
    comm.barrier()


def unit_square_cell(comm: MPI.Comm, n: int = 8) -> CellMesh:
    """``create_unit_square`` wrapped as a one-phase cell."""
    mesh = dolfinx.mesh.create_unit_square(comm, n, n)
    tdim = mesh.topology.dim
    imap = mesh.topology.index_map(tdim)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    tags = dolfinx.mesh.meshtags(mesh, tdim, cells, np.ones_like(cells))
    return CellMesh(mesh, tags, {"solid": 1}, np.array([[0.0, 0.0], [1.0, 1.0]]))


# ---------------------------------------------------------------------------------- generators

GENERATORS = {
    "disk": (lambda c: circular_inclusion(c, 0.3, h=0.1), {"matrix": 1, "inclusion": 2}),
    "two-disks": (
        lambda c: inclusions_2d(c, [[0.25, 0.25], [0.7, 0.7]], [0.15, 0.2], size=(1.0, 1.2), h=0.1),
        {"matrix": 1, "inclusion": 2},
    ),
    "laminate2d": (lambda c: laminate(c, 2, (0.3, 0.7), h=0.1), {"phase0": 1, "phase1": 2}),
    "laminate3d": (
        lambda c: laminate(c, 3, (0.2, 0.5, 0.3), phases=(0, 1, 0), h=0.25),
        {"phase0": 1, "phase1": 2},
    ),
    "checkerboard": (lambda c: checkerboard(c, 4, h=0.1), {"phase0": 1, "phase1": 2}),
    "sphere": (lambda c: spherical_inclusion(c, 0.2, h=0.2), {"matrix": 1, "inclusion": 2}),
    "fibre-z": (lambda c: cylindrical_fibre(c, 0.3, h=0.2), {"matrix": 1, "inclusion": 2}),
    "fibre-x": (lambda c: cylindrical_fibre(c, 0.3, h=0.2, axis=0), {"matrix": 1, "inclusion": 2}),
}


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_generator_is_periodic(comm, kind):
    make, phases = GENERATORS[kind]
    cell = make(comm)
    assert cell.phases == phases
    check_periodic(cell)
    assert cell.mesh.comm.size == comm.size
    # first-order simplices
    num_nodes = cell.mesh.geometry.index_map().size_global
    assert num_nodes == cell.mesh.topology.index_map(0).size_global
    assert cell.mesh.topology.cell_name() in ("triangle", "tetrahedron")
    # both routes to the phase volumes agree and the phases tile the box
    fa, fb = assembled_fractions(cell), cell.volume_fractions()
    assert fa == pytest.approx(fb, rel=1e-12, abs=1e-14)
    assert sum(fa.values()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("dim", "fractions", "phases", "expected"),
    [
        (2, (0.3, 0.7), None, {"phase0": 0.3, "phase1": 0.7}),
        (2, (0.25, 0.35, 0.4), (0, 1, 0), {"phase0": 0.65, "phase1": 0.35}),
        (3, (0.4, 0.6), (1, 0), {"phase0": 0.6, "phase1": 0.4}),
    ],
)
def test_laminate_fractions_exact(comm, dim, fractions, phases, expected):
    cell = laminate(comm, dim, fractions, phases=phases, h=0.1 if dim == 2 else 0.3)
    got = assembled_fractions(cell)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert abs(got[name] - value) < 1e-12


@pytest.mark.parametrize("n", [2, 4])
def test_checkerboard_fractions_exact(comm, n):
    cell = checkerboard(comm, n, h=0.1, size=(2.0, 1.0))
    check_periodic(cell)
    got = assembled_fractions(cell)
    assert abs(got["phase0"] - 0.5) < 1e-12
    assert abs(got["phase1"] - 0.5) < 1e-12


def test_disk_fraction_converges(comm):
    """Inscribed polygon: 0 < deficit ~ (h/r)^2/6, quartered when h is halved."""
    phi = 0.3
    r = math.sqrt(phi / math.pi)
    errors = []
    for h in (0.1, 0.05):
        got = assembled_fractions(circular_inclusion(comm, phi, h=h))["inclusion"]
        err = (phi - got) / phi
        assert 0 < err < 1.25 * (h / r) ** 2 / 6
        errors.append(err)
    assert errors[1] < 1e-2
    assert errors[1] < errors[0] / 3


def test_sphere_fraction_converges(comm):
    """Inscribed polyhedron: deficit O((h/r)^2) (about (h/r)^2/3 with gmsh's surface mesh)."""
    phi = 0.2
    r = (3 * phi / (4 * math.pi)) ** (1 / 3)
    errors = []
    for h in (0.15, 0.075):
        got = assembled_fractions(spherical_inclusion(comm, phi, h=h))["inclusion"]
        err = (phi - got) / phi
        assert 0 < err < 0.5 * (h / r) ** 2
        errors.append(err)
    assert errors[1] < errors[0] / 2.5


def test_fibre_fraction(comm):
    phi = 0.3
    r = math.sqrt(phi / math.pi)
    h = 0.15
    got = assembled_fractions(cylindrical_fibre(comm, phi, h=h, axis=1))["inclusion"]
    assert 0 < (phi - got) / phi < (h / r) ** 2 / 3


# ------------------------------------------------------------------------- periodic wrap-around


def test_wrapped_disks_stay_periodic(comm):
    """A disk across an edge and one across a corner are wrapped; area is kept."""
    centers, radii = [[0.0, 0.5], [0.95, 0.04]], [0.2, 0.15]
    h = 0.04
    cell = inclusions_2d(comm, centers, radii, h=h)
    check_periodic(cell)
    exact = math.pi * sum(r**2 for r in radii)
    got = assembled_fractions(cell)["inclusion"]
    assert 0 < (exact - got) / exact < 1.25 * (h / min(radii)) ** 2 / 6
    # a centre outside the cell is wrapped into it: same cell as the centre one period away
    other = inclusions_2d(comm, [[1.0, 0.5], [-0.05, 1.04]], radii, h=h)
    assert assembled_fractions(other)["inclusion"] == pytest.approx(got, rel=1e-3)


def test_wrapped_sphere_at_corner_stays_periodic(comm):
    cell = inclusions_3d(comm, [[0.0, 0.0, 0.0]], 0.3, h=0.2)
    check_periodic(cell)
    exact = 4 / 3 * math.pi * 0.3**3
    got = assembled_fractions(cell)["inclusion"]
    assert 0 < (exact - got) / exact < 0.5 * (0.2 / 0.3) ** 2


@pytest.mark.parametrize(
    ("centers", "radii", "match"),
    [
        ([[0.3, 0.5], [0.6, 0.5]], 0.2, "inclusions 0 and 1 overlap"),
        ([[0.1, 0.5], [0.85, 0.5]], 0.13, "inclusions 0 and 1 overlap"),  # across the boundary
        ([[0.5, 0.5]], 0.6, "own periodic copy"),
        ([[0.2, 0.5]], 0.2, "tangent"),
        ([[0.2, 0.5]], -0.1, "radii must be positive"),
        ([[0.2, 0.5, 0.1]], 0.1, "centers must have shape"),
    ],
)
def test_inclusion_input_errors(comm, centers, radii, match):
    with pytest.raises(ValueError, match=match):
        inclusions_2d(comm, centers, radii, h=0.1)


def test_generator_input_errors(comm):
    with pytest.raises(ValueError, match="must sum to 1"):
        laminate(comm, 2, (0.3, 0.3), h=0.1)
    with pytest.raises(ValueError, match="one phase index"):
        laminate(comm, 2, (0.5, 0.5), phases=(0,), h=0.1)
    with pytest.raises(ValueError, match="dim must be 2 or 3"):
        laminate(comm, 1, (1.0,), h=0.1)
    with pytest.raises(ValueError, match="even integer"):
        checkerboard(comm, 3, h=0.1)
    with pytest.raises(ValueError, match="volume fraction"):
        spherical_inclusion(comm, 0.6, h=0.2)
    with pytest.raises(ValueError, match="volume fraction"):
        circular_inclusion(comm, 0.0, h=0.1)
    with pytest.raises(ValueError, match="axis"):
        cylindrical_fibre(comm, 0.3, h=0.2, axis=3)
    with pytest.raises(ValueError, match="mesh size h"):
        circular_inclusion(comm, 0.3, h=-1.0)


def test_written_mesh_reads_back(comm, shared_tmp):
    path = shared_tmp / "sub" / "disk.msh"
    cell = inclusions_2d(comm, [[0.0, 0.3]], 0.25, h=0.1, path=path)
    if comm.rank == 0:
        head = path.read_text().splitlines()[:2]
        assert head == ["$MeshFormat", "4.1 0 8"]
    again = read_cell_mesh(path, comm)
    check_periodic(again)
    assert again.phases == cell.phases
    np.testing.assert_allclose(again.box, cell.box, atol=1e-12)
    num = [c.mesh.topology.index_map(2).size_global for c in (cell, again)]
    assert num[0] == num[1]
    fa, fb = assembled_fractions(cell), assembled_fractions(again)
    assert fa == pytest.approx(fb, rel=1e-12)


def _add_orphan_node(path: Path) -> None:
    """Append to the mesh file a node inside the matrix that no cell uses (as gmsh 4.13 left in
    a periodic sphere cell), classified on the matrix's surface so that gmsh saves it."""
    gmsh.initialize(readConfigFiles=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.merge(str(path))
        tags, _, _ = gmsh.model.mesh.getNodes()
        matrix = gmsh.model.getEntitiesForPhysicalGroup(2, 1)[0]
        gmsh.model.mesh.addNodes(2, int(matrix), [int(tags.max()) + 1], [0.05, 0.05, 0.0])
        gmsh.write(str(path))
        gmsh.model.remove()
        gmsh.merge(str(path))  # the file really holds the node, and no cell uses it
        tags, _, _ = gmsh.model.mesh.getNodes()
        _, _, cell_nodes = gmsh.model.mesh.getElements(2)
        used = np.unique(np.concatenate(cell_nodes))
        assert np.setdiff1d(tags, used).size == 1
    finally:
        gmsh.finalize()


def test_unused_node_is_dropped(comm, shared_tmp, caplog):
    clean, orphan = shared_tmp / "clean.msh", shared_tmp / "orphan.msh"
    cell = circular_inclusion(comm, 0.3, h=0.1, path=clean)
    if comm.rank == 0:
        orphan.write_bytes(clean.read_bytes())
        _add_orphan_node(orphan)
    comm.barrier()
    with caplog.at_level(logging.WARNING, logger="multiscale"):
        again = read_cell_mesh(orphan, comm)
    if comm.rank == 0:
        assert "orphan.msh: dropped 1 node(s) that no cell uses" in caplog.text
    check_periodic(again)
    assert again.phases == cell.phases
    num = [c.mesh.topology.index_map(2).size_global for c in (cell, again)]
    vertices = [c.mesh.topology.index_map(0).size_global for c in (cell, again)]
    assert num[0] == num[1] and vertices[0] == vertices[1]
    assert assembled_fractions(again) == pytest.approx(assembled_fractions(cell), rel=1e-12)


def test_caller_gmsh_state_is_kept(comm):
    """A caller's gmsh session, current model and options survive a generator call."""
    if comm.rank == 0:
        gmsh.initialize(readConfigFiles=False)
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("callers_model")
        gmsh.option.setNumber("Mesh.MeshSizeMax", 7.0)
    try:
        laminate(comm, 2, (0.5, 0.5), h=0.25)
        if comm.rank == 0:
            assert gmsh.isInitialized()
            assert gmsh.model.getCurrent() == "callers_model"
            assert gmsh.option.getNumber("Mesh.MeshSizeMax") == 7.0
    finally:
        if comm.rank == 0:
            gmsh.finalize()


# -------------------------------------------------------------------------------- shipped meshes

SHIPPED = {
    "inclusion2d_vf0.3.msh": (2, {"inclusion": 0.3}, 0.01),
    "fibre2d_vf0.5.msh": (2, {"inclusion": 0.5}, 0.01),
    "sphere3d_vf0.2.msh": (3, {"inclusion": 0.2}, 0.08),  # h = 0.15: (h/r)^2/3 ~ 0.057
    "checkerboard2d.msh": (2, {"phase0": 0.5, "phase1": 0.5}, 1e-12),
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_meshes(comm, name):
    dim, expected, rtol = SHIPPED[name]
    path = MESHES / name
    assert path.stat().st_size < 1_000_000
    cell = read_cell_mesh(path, comm)
    assert cell.dim == dim
    np.testing.assert_allclose(cell.box, [[0.0] * dim, [1.0] * dim], atol=1e-12)
    check_periodic(cell)
    got = assembled_fractions(cell)
    for phase, value in expected.items():
        assert abs(got[phase] - value) <= rtol * value, (phase, got[phase], value)


# ----------------------------------------------------------------------------- failing checks


def test_perturbed_boundary_node_is_not_periodic(comm):
    """Sliding one node along the face x = 1 keeps the box but breaks periodicity."""
    cell = unit_square_cell(comm)
    check_periodic(cell)
    x = cell.mesh.geometry.x
    moved = np.isclose(x[:, 0], 1.0) & np.isclose(x[:, 1], 0.5)
    x[moved, 1] += 0.03
    assert comm.allreduce(int(moved.any()), op=MPI.SUM) >= 1
    with pytest.raises(NonPeriodicMeshError, match=r"direction 0 \(x\).*\(1, 0\.53\)"):
        check_periodic(cell)


def test_gmsh_square_without_periodic_constraint(comm, shared_tmp):
    """An unstructured gmsh square with a node shifted on one edge only is caught too."""
    path = shared_tmp / "nonperiodic.msh"

    def make():
        gmsh.model.occ.addRectangle(0, 0, 0, 1, 1)
        gmsh.model.occ.synchronize()
        gmsh.model.addPhysicalGroup(2, [1], tag=1, name="matrix")
        gmsh.option.setNumber("Mesh.MeshSizeMax", 0.2)
        gmsh.model.mesh.generate(2)
        # nudge one interior node of the edge y = 1 along the edge
        top = [t for _, t in gmsh.model.getEntitiesInBoundingBox(-0.1, 0.9, -0.1, 1.1, 1.1, 0.1, 1)]
        nodes, coords, param = gmsh.model.mesh.getNodes(1, top[0])
        xyz = coords.reshape(-1, 3)
        xyz[0, 0] += 0.02
        gmsh.model.mesh.setNode(int(nodes[0]), xyz[0].tolist(), [param[0] + 0.02])

    write_gmsh_on_root(comm, path, make)
    cell = read_cell_mesh(path, comm)
    with pytest.raises(NonPeriodicMeshError, match=r"direction 1 \(y\)"):
        check_periodic(cell)


def test_non_box_is_rejected(comm):
    cell = unit_square_cell(comm)
    x = cell.mesh.geometry.x
    x[:, 1] *= 1.0 - 0.2 * x[:, 0]  # trapezoid, bounding box still the unit square
    with pytest.raises(NotABoxError, match="does not fill its bounding box"):
        check_periodic(cell)
    cell = unit_square_cell(comm)
    cell.box = np.array([[0.0, 0.0], [2.0, 1.0]])
    with pytest.raises(NotABoxError, match="differs from the bounding box"):
        check_periodic(cell)


# ---------------------------------------------------------------------------------- reading


def test_read_missing_file(comm, shared_tmp):
    with pytest.raises(FileNotFoundError, match="no gmsh mesh file"):
        read_cell_mesh(shared_tmp / "nope.msh", comm)


def test_read_without_physical_groups(comm, shared_tmp):
    path = shared_tmp / "nogroups.msh"

    def make():
        gmsh.model.occ.addRectangle(0, 0, 0, 1, 1)
        gmsh.model.occ.synchronize()
        gmsh.option.setNumber("Mesh.MeshSizeMax", 0.5)
        gmsh.model.mesh.generate(2)

    write_gmsh_on_root(comm, path, make)
    with pytest.raises(ValueError, match=r"missing phase tag.*no physical group of dimension 2"):
        read_cell_mesh(path, comm)


def test_read_uncovered_cells(comm, shared_tmp):
    path = shared_tmp / "uncovered.msh"

    def make():
        a = gmsh.model.occ.addRectangle(0, 0, 0, 1, 1)
        b = gmsh.model.occ.addDisk(0.5, 0.5, 0, 0.2, 0.2)
        _, fmap = gmsh.model.occ.fragment([(2, a)], [(2, b)])
        gmsh.model.occ.synchronize()
        matrix = sorted(set(fmap[0]) - set(fmap[1]))
        gmsh.model.addPhysicalGroup(2, [t for _, t in matrix], tag=1, name="matrix")
        gmsh.option.setNumber("Mesh.MeshSizeMax", 0.5)
        gmsh.model.mesh.generate(2)

    write_gmsh_on_root(comm, path, make, save_all=True)
    with pytest.raises(ValueError, match="belong to no physical group"):
        read_cell_mesh(path, comm)
    # saved without SaveAll, the untagged disk is simply absent: a hole, not a box
    write_gmsh_on_root(comm, path, make, save_all=False)
    with pytest.raises(NotABoxError, match="does not fill"):
        read_cell_mesh(path, comm)


def test_unnamed_groups_and_tag_lookup(comm, shared_tmp):
    path = shared_tmp / "unnamed.msh"

    def make():
        gmsh.model.occ.addRectangle(0, 0, 0, 2, 1)
        gmsh.model.occ.synchronize()
        gmsh.model.addPhysicalGroup(2, [1], tag=5)
        gmsh.option.setNumber("Mesh.MeshSizeMax", 0.5)
        gmsh.model.mesh.generate(2)

    write_gmsh_on_root(comm, path, make)
    cell = read_cell_mesh(path, comm)
    assert cell.phases == {"tag5": 5}
    assert cell.volume == pytest.approx(2.0)
    assert cell.tag("tag5") == 5 and cell.tag(5) == 5
    with pytest.raises(KeyError, match="'tag5'=5"):
        cell.tag("matrix")
    with pytest.raises(ValueError, match="no phase with tag 2"):
        cell.tag(2)


# -------------------------------------------------------------------------------------- CLI


def test_cli_mesh(comm, shared_tmp, caplog):
    from multiscale.cli import main

    logger = logging.getLogger("multiscale")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    path = shared_tmp / "cb.msh"
    try:
        assert main(["mesh", "checkerboard", "--n", "2", "--h", "0.25", "--out", str(path)]) == 0
        assert main(["mesh", "sphere", "--vf", "0.9"]) == 2
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
    cell = read_cell_mesh(path, comm)
    check_periodic(cell)
    assert cell.phases == {"phase0": 1, "phase1": 2}
