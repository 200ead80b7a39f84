"""The Cauchy–Born law inside the finite-element solvers.

* the UFL stress (UFL differentiation of W) against the closed-form NumPy P, through a dolfinx
  Expression on a one-cell mesh, 1e-12;
* a homogeneous RVE of the law: its mean stress and consistent tangent are the closed forms;
* the macro solid (the DNS problem on a unit square of one phase) under the displacement
  conditions of an affine map: the reactions are the first Piola stress of the atomistic crystal,
  computed by direct summation over its atom pairs (tests/test_atomistic.py), to solver
  tolerance.

Distributed on ``COMM_WORLD``: the same checks hold on 2 ranks.
"""

from __future__ import annotations

import dolfinx
import numpy as np
import pytest
from mpi4py import MPI
from test_atomistic import direct_sum_force_stress

from multiscale.atomistic import CauchyBorn, Lattice, LennardJones, Morse
from multiscale.cell.rve import RVEProblem
from multiscale.coupling.solid import DisplacementBC
from multiscale.fe2.dns import DNSProblem
from multiscale.mesh import circular_inclusion
from multiscale.mesh.cell import CellMesh
from multiscale.mesh.macro import tag_box_sides
from multiscale.mesh.tiled import TiledMesh

LJ = LennardJones(1.0, 1.0)
FS = [
    np.array([[1.03, 0.02], [-0.01, 0.98]]),
    np.array([[0.97, -0.04], [0.05, 1.06]]),
    np.array([[1.10, 0.0], [0.0, 1.0]]),
]


def _ufl_at(mesh: dolfinx.mesh.Mesh, expr) -> np.ndarray:
    cells = np.arange(mesh.topology.index_map(mesh.topology.dim).size_local, dtype=np.int32)
    e = dolfinx.fem.Expression(expr, np.zeros((1, mesh.topology.dim)))
    return e.eval(mesh, cells[:1]).reshape(expr.ufl_shape)


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("name", "pot", "shells"),
    [("triangular", LJ, 2), ("square", Morse(1.0, 3.0, 1.0), 2), ("fcc", LJ, 1)],
)
def test_ufl_flux_equals_closed_form(comm, name, pot, shells):
    law = CauchyBorn.relaxed(Lattice.of(name), pot, shells=shells)
    d = law.dim
    mesh = (
        dolfinx.mesh.create_unit_square(MPI.COMM_SELF, 1, 1)
        if d == 2
        else dolfinx.mesh.create_unit_cube(MPI.COMM_SELF, 1, 1, 1)
    )
    Fs = FS if d == 2 else [np.eye(3) + 0.03 * np.arange(9).reshape(3, 3) / 8 - 0.01]
    for F in Fs:
        c = dolfinx.fem.Constant(mesh, F)
        P = _ufl_at(mesh, law.flux(c))
        ref = law.stress(F)
        assert np.abs(P - ref).max() < 1e-12 * np.abs(ref).max()
        W = _ufl_at(mesh, law.energy(c))
        assert float(W) == pytest.approx(float(law.energy_density(F)), rel=1e-13)


@pytest.mark.mpi
def test_homogeneous_rve_is_the_law(comm):
    """A periodic cell filled with one Cauchy–Born law: the fluctuation vanishes, so the mean
    stress and the consistent tangent are P(F) and A(F) of the closed form."""
    law = CauchyBorn.relaxed(Lattice.of("triangular"), LJ, shells=1)
    cell = circular_inclusion(comm, 0.3, h=0.25)
    rve = RVEProblem(cell, {"matrix": law, "inclusion": law})
    try:
        F = FS[0]
        response, _, _ = rve.solve(F)
        P, A = law.stress(F), law.tangent(F)
        assert np.abs(response.flux - P).max() < 1e-9 * np.abs(P).max()
        assert np.abs(response.tangent - A).max() < 1e-8 * np.abs(A).max()
    finally:
        rve.destroy()


def _unit_square_solid(comm: MPI.Comm, n: int) -> TiledMesh:
    mesh = dolfinx.mesh.create_unit_square(comm, n, n)
    ncells = mesh.topology.index_map(2).size_local + mesh.topology.index_map(2).num_ghosts
    cells = np.arange(ncells, dtype=np.int32)
    tags = dolfinx.mesh.meshtags(mesh, 2, cells, np.ones(ncells, dtype=np.int32))
    box = np.array([[0.0, 0.0], [1.0, 1.0]])
    cell = CellMesh(mesh, tags, {"solid": 1}, box)
    return TiledMesh(cell=cell, macro=tag_box_sides(mesh, box[0], box[1]), n=1)


@pytest.mark.mpi
def test_macro_solid_equals_atomistic_for_affine_deformation(comm):
    """Roller conditions u_x = (F11 - 1) x on left/right, u_y = (F22 - 1) y on bottom/top: by
    the mirror symmetries of the triangular lattice the solution is the affine map, and the
    reactions per unit length are P11 and P22 of the crystal (direct summation)."""
    law = CauchyBorn.relaxed(Lattice.of("triangular"), LJ, shells=2)
    F = np.diag([1.02, 0.985])
    tiled = _unit_square_solid(comm, 4)
    bcs = [
        DisplacementBC("left", 0.0, 0),
        DisplacementBC("right", F[0, 0] - 1.0, 0),
        DisplacementBC("bottom", 0.0, 1),
        DisplacementBC("top", F[1, 1] - 1.0, 1),
    ]
    dns = DNSProblem(tiled, {"solid": law}, bcs=bcs, petsc_options={"snes_rtol": 1e-12})
    try:
        result = dns.solve([0.5, 1.0])
        reactions = result.steps[-1].reactions
    finally:
        dns.destroy()
    a = law.bonds.radii[0]
    lat = Lattice.of("triangular")
    P_atoms = direct_sum_force_stress(lat.vectors, a, float(law.bonds.radii[-1]), F, LJ, 5)
    scale = np.abs(P_atoms).max()
    assert abs(reactions["right"][0] - P_atoms[0, 0]) < 1e-8 * scale
    assert abs(reactions["top"][1] - P_atoms[1, 1]) < 1e-8 * scale
    assert abs(reactions["left"][0] + P_atoms[0, 0]) < 1e-8 * scale
