"""Multiscale bases on tetrahedral coarse meshes over nested fine tetrahedral meshes.

References: the fully resolved fine solution (coarse mesh = fine mesh), a manufactured smooth
solution in closed form (energy errors computed by quadrature against it), and the same
computation on one rank.
"""

from __future__ import annotations

import dolfinx
import numpy as np
import pytest
import ufl
from mpi4py import MPI

from multiscale.bases import (
    FineProblem,
    GMsFEMParameters,
    HighContrastField,
    LODParameters,
    MsFEMParameters,
    NestedMeshes,
    gmsfem_basis,
    gmsfem_space,
    lod_space,
    msfem_space,
    unit_cube_pair,
)
from multiscale.bases.fine import greedy_colouring
from multiscale.coupling.pool import MicroPool

pytestmark = pytest.mark.mpi


def report(*lines: str) -> None:
    if MPI.COMM_WORLD.rank == 0:
        print("\n" + "\n".join(lines))


def smooth_coefficient(mesh: dolfinx.mesh.Mesh):
    """:math:`a = 1 + \\frac12\\sin(2\\pi x)\\cos(\\pi y)(1 + z)` (between 0 and 2)."""
    x = ufl.SpatialCoordinate(mesh)
    return 1 + 0.5 * ufl.sin(2 * np.pi * x[0]) * ufl.cos(np.pi * x[1]) * (1 + x[2]) / 2


def exact(mesh: dolfinx.mesh.Mesh):
    """:math:`u = 64\\,x(1-x)\\,y(1-y)\\,z(1-z)` (zero on the boundary)."""
    x = ufl.SpatialCoordinate(mesh)
    return 64 * x[0] * (1 - x[0]) * x[1] * (1 - x[1]) * x[2] * (1 - x[2])


def manufactured_source(mesh: dolfinx.mesh.Mesh):
    """:math:`f = -\\nabla\\cdot(a\\nabla u)` of :func:`exact`."""
    return -ufl.div(smooth_coefficient(mesh) * ufl.grad(exact(mesh)))


def energy_error(fine: FineProblem, u_fine: np.ndarray) -> float:
    """:math:`\\|u - w\\|_a / \\|u\\|_a` of the fine P1 function ``u_fine`` (global dof vector)
    against :func:`exact`, by quadrature of degree 6."""
    nm = fine.meshes
    w = dolfinx.fem.Function(nm.space)
    r0, r1 = nm.owned_range
    w.x.array[: r1 - r0] = u_fine[r0:r1]
    w.x.scatter_forward()
    mesh = nm.fine
    a, u = smooth_coefficient(mesh), exact(mesh)
    dx = ufl.dx(metadata={"quadrature_degree": 6})

    def integral(e) -> float:
        form = dolfinx.fem.form(a * ufl.inner(ufl.grad(e), ufl.grad(e)) * dx)
        return fine.comm.allreduce(dolfinx.fem.assemble_scalar(form), op=MPI.SUM)

    return float(np.sqrt(integral(u - w) / integral(u)))


def test_cube_pair_nests_and_colours(comm):
    """Every fine tetrahedron lies in one coarse one (the barycentric test of NestedMeshes) and
    the m^3 * 6 / 6 = m^3 fine cells per coarse tetrahedron; the element colouring has no two
    tetrahedra of a colour sharing a vertex."""
    n, m = 2, 3
    nm = NestedMeshes(*unit_cube_pair(comm, n, m))
    counts = np.bincount(nm.cell_elem[: nm.fine.topology.index_map(3).size_local], minlength=48)
    counts = comm.allreduce(counts, op=MPI.SUM)
    colour = greedy_colouring(nm.adjacency)
    clash = [
        k
        for k in range(nm.n_elements)
        for j in nm.adjacency.indices[nm.adjacency.indptr[k] : nm.adjacency.indptr[k + 1]]
        if j != k and colour[j] == colour[k]
    ]
    report(f"unit_cube_pair(2, 3): {nm.n_elements} tetrahedra, {colour.max() + 1} colours")
    assert nm.n_elements == 6 * n**3 and np.all(counts == m**3)
    assert not clash
    assert nm.n_coarse == (n - 1) ** 3 and nm.n_fine == (n * m + 1) ** 3


@pytest.mark.parametrize(
    "method",
    [
        lambda f: msfem_space(f),
        lambda f: msfem_space(f, MsFEMParameters(1)),
        lambda f: lod_space(f, LODParameters(1)),
        lambda f: gmsfem_space(f, gmsfem_basis(f, GMsFEMParameters(n_eigen=3)), 2),
    ],
    ids=["msfem", "msfem-oversampling", "lod", "gmsfem"],
)
def test_coarse_equal_to_fine_3d(comm, method):
    fine = FineProblem(NestedMeshes(*unit_cube_pair(comm, 4, 1)), smooth_coefficient)
    u = fine.solve()
    space = method(fine)
    sol = space.solve()
    err = np.abs(sol.u_fine - u).max() / np.abs(u).max()
    report(f"3D coarse = fine: max difference {err:.2e}")
    assert err < 1e-9
    assert space.errors(sol, u)["energy"] < 1e-9


def test_energy_rate_smooth_3d(comm):
    """Smooth coefficient, manufactured solution: MsFEM and LOD (k = 1) energy errors against
    the closed form fall as O(H) (h = H/2): fitted rates near 1 and error/H within a band of
    30 %.  At H >= 1/4 (one to 27 coarse unknowns) P1 itself is still pre-asymptotic on this
    solution: the fine column (h = 1/4, 1/6, 1/8) shows a rate of 0.93."""
    rows = []
    for n in (2, 3, 4):
        fine = FineProblem(
            NestedMeshes(*unit_cube_pair(comm, n, 2)), smooth_coefficient, manufactured_source
        )
        ms, lod = msfem_space(fine), lod_space(fine, LODParameters(1))
        rows.append(
            (
                1 / n,
                energy_error(fine, ms.solve().u_fine),
                energy_error(fine, lod.solve().u_fine),
                energy_error(fine, fine.solve()),
            )
        )
        ms.destroy()
        lod.destroy()
        fine.destroy()
    rows = np.array(rows)
    logs = np.log(rows)
    rates = [np.polyfit(logs[:, 0], logs[:, j], 1)[0] for j in (1, 2, 3)]
    report(
        "3D smooth, manufactured u: H | MsFEM | LOD (k=1) | fine (h = H/2) energy errors",
        *(f"1/{round(1 / h)} | {a:.4f} | {b:.4f} | {c:.4f}" for h, a, b, c in rows),
        f"fitted rates: MsFEM {rates[0]:.2f}, LOD {rates[1]:.2f}, fine {rates[2]:.2f}",
    )
    for j in (1, 2):
        assert 0.7 < rates[j - 1] < 1.3
        assert (rows[:, j] / rows[:, 0]).max() < 1.3 * (rows[:, j] / rows[:, 0]).min()
    assert np.all(np.diff(rows[:, 1]) < 0) and np.all(np.diff(rows[:, 2]) < 0)
    assert np.all(rows[:, 2] <= rows[:, 1])


def test_rank_count_independent_3d(comm):
    """The coarse solutions on ``comm`` equal those on one rank (MsFEM, oversampling, LOD, and
    GMsFEM on a high-contrast slab).  GMsFEM keeps one function per vertex: the vertex stars of
    the Kuhn mesh are symmetric under permutations of the axes, so the next background
    eigenvalues are multiple, and a basis cut inside such an eigenspace is not unique."""
    slab = HighContrastField(((1 / 6, 5 / 6, 1 / 3, 1 / 2, 1 / 6, 2 / 3),), 1e3)
    methods = {
        "msfem": lambda f: msfem_space(f),
        "oversampling": lambda f: msfem_space(f, MsFEMParameters(1)),
        "lod": lambda f: lod_space(f, LODParameters(1)),
        "gmsfem": lambda f: gmsfem_space(f, gmsfem_basis(f, GMsFEMParameters(2)), 1),
    }
    diffs, solves = {}, {}
    groups = ((smooth_coefficient, ("msfem", "oversampling", "lod")), (slab, ("gmsfem",)))
    for coef, names in groups:
        pool = MicroPool(comm)
        par = FineProblem(NestedMeshes(*unit_cube_pair(comm, 3, 2)), coef, pool=pool)
        ser = FineProblem(NestedMeshes(*unit_cube_pair(MPI.COMM_SELF, 3, 2)), coef)
        for name in names:
            a, b = methods[name](par).solve().u_H, methods[name](ser).solve().u_H
            diffs[name] = float(np.abs(a - b).max() / np.abs(b).max())
        solves[names] = pool.statistics().solves
    report(f"3D, {comm.size} ranks vs 1: {diffs}; local problems per rank {solves}")
    assert max(diffs.values()) < 1e-9
    assert all(min(s) > 0 for s in solves.values())
