"""Atomistic statics against independent references.

* consistency: the forces are minus the complex-step gradient of the energy, and the PETSc
  Hessian the central differences of the forces;
* a periodic perfect crystal under an affine :math:`\\bar F`: zero forces at the affine state,
  the energy per atom :math:`W(F)\\,\\Omega_0` of the Cauchy–Born law, and Newton from a perturbed
  state returns to it; a finite block whose outer layers follow :math:`x = FX` stays affine;
* a chain of springs under an end displacement: the linear displacement, and with one soft bond
  the piecewise-linear one of springs in series;
* the vacancy of the LJ triangular lattice: unrelaxed, minus the cohesive energy (nearest
  neighbours: :math:`3\\epsilon`, six broken bonds of :math:`-\\epsilon`); with two shells the
  relaxed value below it, at a minimum;
* continuum against atoms for an inhomogeneous deformation: a rigid inclusion translated inside
  a block whose outer layer is held, the Cauchy–Born LJ continuum (the package's macro solid,
  P2) against the relaxed atoms, the difference falling like the lattice spacing.

The atomistic solves run on ``COMM_SELF`` (the same on every rank), the continuum on
``COMM_WORLD``.
"""

from __future__ import annotations

import dolfinx
import gmsh
import numpy as np
import pytest
from mpi4py import MPI

from multiscale.atomistic import (
    AtomisticProblem,
    AtomSet,
    CauchyBorn,
    Harmonic,
    Lattice,
    LennardJones,
    Morse,
    PairModel,
    Shifted,
)
from multiscale.compat import model_to_mesh
from multiscale.coupling.probe import PointProbe
from multiscale.coupling.solid import DisplacementBC
from multiscale.fe2.dns import DNSProblem
from multiscale.mesh.cell import CellMesh
from multiscale.mesh.io import gmsh_session
from multiscale.mesh.macro import tag_box_sides
from multiscale.mesh.tiled import TiledMesh

LJ = LennardJones(1.0, 1.0)
F2 = np.array([[1.03, 0.02], [-0.01, 0.98]])


def _relaxed(name: str, pot, shells: int) -> tuple[CauchyBorn, Lattice, float]:
    """The Cauchy–Born law, the lattice at its relaxed constant and a cut-off between the
    last shell and the next."""
    law = CauchyBorn.relaxed(Lattice.of(name), pot, shells=shells)
    unit = Lattice.of(name)
    a0 = law.bonds.radii[0] / unit.bonds(shells=1).radii[0]
    lat = unit.with_constant(a0)
    radii = lat.bonds(shells=shells + 1).radii
    return law, lat, 0.5 * (radii[-2] + radii[-1])


# -- consistency of the implementation -------------------------------------------------------------
def _cluster(periodic: bool) -> tuple[PairModel, np.ndarray, np.ndarray | None]:
    _, lat, _ = _relaxed("triangular", LJ, 3)
    a = lat.a
    pots = (LJ, Morse(1.0, 3.0, a * np.sqrt(3)), Shifted(LJ, 2.2 * a))
    if periodic:
        atoms = AtomSet.periodic(lat, (5 * a, 3 * np.sqrt(3) * a))
        F = F2
    else:
        atoms = AtomSet.block(lat, (0.0, 0.0), (3.5 * a, 3.0 * a))
        F = None
    model = PairModel(atoms, pots, 2.05 * a)
    rng = np.random.default_rng(1)
    x = atoms.positions @ (np.eye(2) if F is None else F).T
    x = x + 0.05 * a * rng.standard_normal(x.shape)
    return model, x, F


@pytest.mark.parametrize("periodic", [False, True])
def test_forces_are_minus_the_complex_step_gradient(periodic):
    model, x, F = _cluster(periodic)
    assert len(model.radii) == 3
    f = model.forces(x, F)
    h = 1e-30
    grad = np.zeros(x.size)
    for k in range(x.size):
        z = x.astype(complex).reshape(-1)
        z[k] += 1j * h
        grad[k] = model.energy(z.reshape(x.shape), F).imag / h
    assert np.abs(f.ravel() + grad).max() < 1e-12 * np.abs(grad).max()


@pytest.mark.parametrize("periodic", [False, True])
def test_petsc_hessian_is_the_derivative_of_the_forces(periodic):
    model, x, F = _cluster(periodic)
    with AtomisticProblem(model, fixed=[0], macro_F=F) as problem:
        problem.set_load(1.0)
        problem.x[:] = x
        A = problem.newton.A
        problem.newton.assembly.jacobian(A)
        indptr, indices, data = A.getValuesCSR()
        n = A.getSize()[0]
        H = np.zeros((n, n))
        H[np.repeat(np.arange(n), np.diff(indptr)), indices] = data
        free = problem.free_dofs
    h = 1e-6
    D = np.zeros((len(free), len(free)))
    for col, k in enumerate(free):
        xp, xm = x.copy().reshape(-1), x.copy().reshape(-1)
        xp[k] += h
        xm[k] -= h
        df = model.forces(xp.reshape(x.shape), F) - model.forces(xm.reshape(x.shape), F)
        D[:, col] = -df.ravel()[free] / (2 * h)
    assert np.abs(H - D).max() < 1e-8 * np.abs(D).max()
    assert np.abs(H - H.T).max() == 0.0


# -- homogeneous deformations: the Cauchy–Born law -------------------------------------------------
@pytest.mark.parametrize(
    ("name", "pot", "shells", "cells"),
    [
        ("triangular", LJ, 2, (6, 4)),
        ("square", Morse(1.0, 3.0, 1.0), 2, (6, 6)),
        ("fcc", LJ, 1, (3, 3, 3)),
    ],
)
def test_periodic_crystal_is_cauchy_born(name, pot, shells, cells):
    """At :math:`x = \\bar F X` every force vanishes (Bravais lattice: each atom a centre of
    inversion) and :math:`E/n = W(\\bar F)\\,\\Omega_0`; Newton from a perturbed state,
    one atom pinned, returns to the affine state up to a translation."""
    law, lat, rc = _relaxed(name, pot, shells)
    d = lat.dim
    rect = {"triangular": (1.0, np.sqrt(3)), "square": (1.0, 1.0), "fcc": (1.0, 1.0, 1.0)}
    atoms = AtomSet.periodic(lat, lat.a * np.array(rect[name]) * np.array(cells))
    model = PairModel(atoms, pot, rc)
    F = F2 if d == 2 else np.eye(3) + 0.03 * np.arange(9).reshape(3, 3) / 8 - 0.01
    X = atoms.positions
    assert np.abs(model.forces(X @ F.T, F)).max() < 1e-12
    W = float(law.energy_density(F)) * lat.atomic_volume
    assert model.energy(X @ F.T, F) / atoms.n == pytest.approx(W, rel=1e-12)
    rng = np.random.default_rng(2)
    with AtomisticProblem(model, fixed=[0], macro_F=F) as problem:
        problem.x[1:] += 0.02 * lat.a * rng.standard_normal((atoms.n - 1, d))
        problem.commit()
        result = problem.solve([0.5, 1.0])
        x = problem.x
        assert result.steps[-1].quantities["max_force"] < 1e-10
        assert np.abs((x - x[0]) - (X - X[0]) @ F.T).max() < 1e-10 * lat.a
        assert result.steps[-1].quantities["energy"] / atoms.n == pytest.approx(W, rel=1e-12)


def test_finite_block_under_affine_boundary_stays_affine():
    """Outer layers (wider than the cut-off) at :math:`x = FX`: the relaxed interior is the
    affine map too: the atomistic side of 'the continuum equals the atoms for a homogeneous
    deformation'."""
    _, lat, rc = _relaxed("triangular", LJ, 2)
    L = 12 * lat.a
    atoms = AtomSet.block(lat, (0.0, 0.0), (L, L))
    X = atoms.positions
    outer = np.any((X < 1.01 * rc) | (X > L - 1.01 * rc), axis=1)
    with AtomisticProblem(
        PairModel(atoms, LJ, rc), fixed=np.flatnonzero(outer), displacement=X @ (F2 - np.eye(2)).T
    ) as problem:
        result = problem.solve([0.5, 1.0])
        assert np.abs(problem.x - X @ F2.T).max() < 1e-10 * lat.a
        assert result.steps[-1].quantities["max_force"] < 1e-10
        inner = ~outer
        assert inner.sum() > 60


# -- chains of springs -----------------------------------------------------------------------------
@pytest.mark.parametrize("soft", [None, 1.0 / 3.0])
def test_spring_chain_end_displacement(soft):
    """Atoms 0 and N held, the end moved by :math:`\\delta`: tension :math:`T = \\delta /
    \\sum_b k_b^{-1}` in every spring, :math:`u_i = T\\sum_{b < i} k_b^{-1}`."""
    N, k, delta, m = 10, 2.0, 0.3, 4
    atoms = AtomSet.block(Lattice.of("chain"), (0.0,), (float(N),))
    model = PairModel(atoms, Harmonic(k, 1.0), 1.5)
    assert model.n_bonds == N
    kb = np.full(N, k)
    if soft is not None:
        bond = np.flatnonzero(np.minimum(model.i, model.j) == m)
        model = model.with_potential(bond, Harmonic(soft, 1.0))
        kb[m] = soft
    u = np.zeros((N + 1, 1))
    u[N] = delta
    with AtomisticProblem(model, fixed=[0, N], displacement=u) as problem:
        problem.solve([0.5, 1.0])
        T = delta / np.sum(1.0 / kb)
        exact = T * np.concatenate([[0.0], np.cumsum(1.0 / kb)])
        assert np.abs(problem.displacement[:, 0] - exact).max() < 1e-10
        assert problem.forces()[N, 0] == pytest.approx(-T, rel=1e-10)


# -- the vacancy -----------------------------------------------------------------------------------
def _vacancy(shells: int, cells: int) -> tuple[float, float, float, float, float]:
    """For the LJ triangular lattice with ``shells`` shells in a periodic box of ``cells x
    cells`` rectangular cells: the cohesive energy per atom :math:`W(I)\\,\\Omega_0` (Cauchy–Born
    bond sum), the unrelaxed and the relaxed vacancy formation energy
    :math:`E_{n-1} - \\frac{n-1}{n}E_n` (one far atom pinned), the largest free force and the
    smallest eigenvalue of the free Hessian at the relaxed state."""
    law, lat, rc = _relaxed("triangular", LJ, shells)
    perfect = AtomSet.periodic(lat, lat.a * np.array([cells, cells * np.sqrt(3)]))
    E0 = PairModel(perfect, LJ, rc).energy(perfect.positions)
    atoms = perfect.without([perfect.nearest(0.5 * perfect.box)])
    model = PairModel(atoms, LJ, rc)
    n = perfect.n
    unrelaxed = model.energy(atoms.positions) - (n - 1) / n * E0
    with AtomisticProblem(model, fixed=[0]) as problem:
        step = problem.solve([1.0]).steps[-1]
        relaxed = step.quantities["energy"] - (n - 1) / n * E0
        free = problem.free_dofs
        lowest = np.linalg.eigvalsh(model.hessian(problem.x)[free][:, free].toarray())[0]
    cohesive = float(law.energy_density(np.eye(2))) * lat.atomic_volume
    return cohesive, unrelaxed, relaxed, step.quantities["max_force"], lowest


def test_vacancy_formation_energy():
    """Unrelaxed, the vacancy costs the bonds of one atom less the energy it leaves with:
    :math:`E_v = -\\frac12\\sum_b\\phi_b`, minus the cohesive energy (NN: :math:`3\\epsilon`,
    six bonds of :math:`-\\epsilon` at :math:`a_0 = 2^{1/6}\\sigma`).  With nearest neighbours
    only every bond stays at the pair minimum, so nothing relaxes; with two shells the relaxed
    value (observed 3.21825 eps in 16 x 16 cells, 3.21826 in 8 x 8, unrelaxed 3.22192) lies
    below, at a minimum of the energy."""
    cohesive, unrelaxed, relaxed, fmax, lowest = _vacancy(1, 8)
    assert cohesive == pytest.approx(-3.0, rel=1e-14)
    assert unrelaxed == pytest.approx(3.0, rel=1e-12)
    assert relaxed == pytest.approx(3.0, rel=1e-12)
    small, large = _vacancy(2, 8), _vacancy(2, 12)
    for cohesive, unrelaxed, relaxed, fmax, lowest in (small, large):
        assert unrelaxed == pytest.approx(-cohesive, rel=1e-12)
        assert relaxed < unrelaxed - 1e-3
        assert fmax < 1e-10
        assert lowest > 0.0
    assert abs(small[2] - large[2]) < 2e-5


# -- the continuum against the atoms for an inhomogeneous deformation ------------------------------
B, RHO, CENTRE, DELTA = 0.1, 0.15, 0.5, 0.005


def _block_with_hole(comm: MPI.Comm, h: float) -> TiledMesh:
    """The square :math:`[B, 1 - B]^2` less the disk of radius RHO at its centre, the hole named
    ``hole``, as the DNS wants it (one phase)."""
    if comm.rank == 0:
        with gmsh_session():
            occ = gmsh.model.occ
            rect = occ.addRectangle(B, B, 0.0, 1 - 2 * B, 1 - 2 * B)
            disk = occ.addDisk(CENTRE, CENTRE, 0.0, RHO, RHO)
            occ.cut([(2, rect)], [(2, disk)])
            occ.synchronize()
            gmsh.model.addPhysicalGroup(2, [s for _, s in gmsh.model.getEntities(2)], 1, "solid")
            gmsh.option.setNumber("Mesh.MeshSizeMax", h)
            gmsh.option.setNumber("Mesh.MeshSizeMin", h / 2)
            gmsh.model.mesh.generate(2)
            mesh = model_to_mesh(gmsh.model, comm, 0, 2)[0]
    else:
        mesh = model_to_mesh(gmsh.model, comm, 0, 2)[0]

    def on_hole(x: np.ndarray) -> np.ndarray:
        return np.abs(np.hypot(x[0] - CENTRE, x[1] - CENTRE) - RHO) < 1e-3 * h

    box = np.array([[B, B], [1 - B, 1 - B]])
    macro = tag_box_sides(mesh, box[0], box[1], {"hole": on_hole})
    n = mesh.topology.index_map(2).size_local + mesh.topology.index_map(2).num_ghosts
    tags = dolfinx.mesh.meshtags(mesh, 2, np.arange(n, dtype=np.int32), np.ones(n, np.int32))
    return TiledMesh(cell=CellMesh(mesh, tags, {"solid": 1}, box), macro=macro, n=1)


def _continuum(comm: MPI.Comm, law: CauchyBorn) -> DNSProblem:
    """The Cauchy–Born continuum in units of the body size (the law is scale free): outer sides
    held, the hole moved rigidly by DELTA along x."""
    bcs = [DisplacementBC(s, 0.0) for s in ("left", "right", "bottom", "top")]
    bcs.append(DisplacementBC("hole", (DELTA, 0.0)))
    dns = DNSProblem(
        _block_with_hole(comm, 0.02),
        {"solid": law},
        bcs=bcs,
        degree=2,
        petsc_options={"snes_rtol": 1e-11},
    )
    dns.solve([1.0])
    return dns


def _inclusion_block(lat: Lattice, N: int, delta: float) -> tuple[AtomSet, np.ndarray, np.ndarray]:
    """The block of side :math:`L = N a_0`, its fixed atoms (the inclusion and the outer layer)
    and their displacements (the inclusion moved by ``delta`` L along x)."""
    L = N * lat.a
    atoms = AtomSet.block(lat, (0.0, 0.0), (L, L))
    X = atoms.positions / L
    rigid = np.hypot(X[:, 0] - CENTRE, X[:, 1] - CENTRE) <= RHO
    fixed = rigid | np.any((X <= B) | (X >= 1 - B), axis=1)
    u = np.zeros_like(X)
    u[rigid, 0] = delta * L
    return atoms, fixed, u


def test_failed_load_step_is_cut():
    """The inclusion moved by 0.03 L in one step: Newton fails (atoms run into each other or
    the iteration limit), the load stepper halves the step, and the end state is the one
    reached in eight equal steps (forces converged to the absolute tolerance)."""
    _, lat, rc = _relaxed("triangular", LJ, 1)
    atoms, fixed, u = _inclusion_block(lat, 20, 0.03)
    model = PairModel(atoms, LJ, rc)
    states = []
    for factors in ([1.0], np.linspace(0.0, 1.0, 9)[1:]):
        with AtomisticProblem(
            model, fixed=np.flatnonzero(fixed), displacement=u, petsc_options={"snes_rtol": 0.0}
        ) as problem:
            result = problem.solve(factors)
            assert result.steps[-1].factor == 1.0
            assert result.steps[-1].quantities["max_force"] < 1e-10
            states.append((problem.x.copy(), len(result.failed_attempts)))
    assert states[0][1] > 0
    assert max(s.cuts for s in result.steps) == 0
    assert np.abs(states[0][0] - states[1][0]).max() < 1e-9 * lat.a


def _atoms_minus_continuum(lat: Lattice, rc: float, N: int, dns: DNSProblem) -> float:
    """The largest difference of the displacements of the free atoms of the block of side
    :math:`L = N a_0` from :math:`L\\,u_c(X/L)`, relative to the inclusion's move DELTA L."""
    atoms, fixed, u = _inclusion_block(lat, N, DELTA)
    L = N * lat.a
    X = atoms.positions / L
    dist = np.hypot(X[:, 0] - CENTRE, X[:, 1] - CENTRE) - RHO
    assert B * L > rc
    with AtomisticProblem(
        PairModel(atoms, LJ, rc), fixed=np.flatnonzero(fixed), displacement=u
    ) as problem:
        result = problem.solve([1.0])
        assert result.steps[-1].quantities["max_force"] < 1e-9
        ua = problem.displacement
    # atoms closer to the hole than the polygonal mesh's chords may fall outside the mesh
    compared = ~fixed & (dist > 2e-3)
    uc = L * PointProbe(dns.u.function_space.mesh, X[compared]).eval(dns.u)
    return float(np.linalg.norm(ua[compared] - uc, axis=1).max() / (DELTA * L))


@pytest.mark.mpi
def test_continuum_approaches_atoms_for_inhomogeneous_deformation(comm):
    """Rigid inclusion of radius 0.15 L translated by 0.005 L in a block whose outer layer of
    width 0.1 L is held: NN LJ triangular lattice, L = 20, 40, 80 spacings (490 to 7500 atoms).
    Observed max relative difference 0.243, 0.119, 0.053 (rate about 1.1: the boundaries sit
    within a spacing); asserted: at least a factor 1.6 per halving."""
    law, lat, rc = _relaxed("triangular", LJ, 1)
    dns = _continuum(comm, law)
    try:
        errors = [_atoms_minus_continuum(lat, rc, N, dns) for N in (20, 40, 80)]
    finally:
        dns.destroy()
    assert errors[0] < 0.3
    assert errors[1] < errors[0] / 1.6
    assert errors[2] < errors[1] / 1.6


# -- input -----------------------------------------------------------------------------------------
def test_bad_input():
    lat = Lattice.of("triangular")
    with pytest.raises(ValueError, match="not a period"):
        AtomSet.periodic(lat, (4.0, 4.0))
    atoms = AtomSet.periodic(lat, (4.0, 2 * np.sqrt(3)))
    with pytest.raises(ValueError, match="half the smallest period"):
        PairModel(atoms, LJ, 2.0)
    with pytest.raises(ValueError, match="one per shell"):
        PairModel(atoms, (LJ, LJ, LJ), 1.2)
    model = PairModel(atoms, LJ, 1.2)
    with pytest.raises(ValueError, match="every atom is fixed"):
        AtomisticProblem(model, fixed=np.arange(atoms.n))
