"""Inner relaxation of Cauchy–Born laws with a basis, in the finite-element solvers.

References, independent of the library's relaxation:

* a diatomic chain (cell length :math:`L = l_1 + l_2`, alternating springs :math:`k_1` of rest
  length :math:`l_1` and :math:`k_2` of :math:`l_2`): the affine (unrelaxed) Cauchy–Born modulus
  is :math:`(k_1 l_1^2 + k_2 l_2^2)/L` (the arithmetic mean :math:`(k_1 + k_2)/2` for
  :math:`l_1 = l_2 = 1`), the relaxed one that of the springs in series,
  :math:`L\\,k_1 k_2/(k_1 + k_2)` (:math:`2k_1k_2/(k_1+k_2)`); at finite strain with Morse springs
  every spring of a bar carries the same force :math:`f`, each spring's length is
  :math:`\\phi_i'^{-1}(f)` (inverted here by bracketing), and :math:`f` makes the lengths add up
  to the imposed one;
* a honeycomb LJ lattice (no atom is a centre of inversion, so the sub-lattices shift under a
  general :math:`F`): a periodic crystal of it under the macroscopic :math:`F`, every atom but one
  free, minimized by the package's atomistic statics (:mod:`multiscale.atomistic.statics`): its
  energy per atom is :math:`W^{rel}(F)\\,\\Omega_0` and its stress
  :math:`\\frac1{V}\\sum_b \\frac{\\phi_b'}{r_b} r_b\\otimes L_b` (the envelope theorem on the
  crystal, :math:`L_b` the period vector of the bond) is :math:`P^{rel}`; central differences of
  that stress give the condensed tangent.

The finite-element paths (the macro solid/DNS, the RVE, FE²) are checked against the NumPy
relaxation (:meth:`CauchyBorn.relax_shifts`, :meth:`CauchyBorn.relaxed_tangent`), which the
two references above check in turn.  Distributed on ``COMM_WORLD``: the macro bar, the RVE and
FE² give the same answers on 1 and 2 ranks.
"""

from __future__ import annotations

import math

import dolfinx
import numpy as np
import pytest
import ufl
from mpi4py import MPI
from scipy import optimize

from multiscale.atomistic import (
    AtomisticProblem,
    AtomSet,
    CauchyBorn,
    Harmonic,
    Lattice,
    LennardJones,
    Morse,
    PairModel,
)
from multiscale.cell.rve import RVEProblem
from multiscale.coupling.solid import DisplacementBC
from multiscale.fe2.dns import DNSProblem
from multiscale.fe2.solver import FE2Problem
from multiscale.mesh import circular_inclusion
from multiscale.mesh.cell import CellMesh
from multiscale.mesh.macro import rectangle, tag_box_sides
from multiscale.mesh.tiled import TiledMesh

SQ3 = math.sqrt(3.0)
HONEYCOMB = Lattice.of("triangular", basis=np.array([[0.0, 0.0], [0.5, 0.5 / SQ3]]))
LJ = LennardJones(1.0, 1.0)
FS = [
    np.array([[1.02, 0.03], [-0.01, 0.99]]),
    np.array([[0.98, -0.04], [0.02, 1.03]]),
    np.array([[1.0, 0.05], [0.0, 1.0]]),
]


def _chain(l1: float, l2: float, pots) -> CauchyBorn:
    """The diatomic chain: atoms at 0 and l1 in a cell of length l1 + l2, its two nearest
    neighbour bonds (shells l1 < l2) with the potentials ``pots``."""
    cell = Lattice(np.array([[l1 + l2]]), 1.0, np.array([[0.0], [l1]]))
    return CauchyBorn(tuple(pots), cell.bonds(shells=2))


def _honeycomb() -> CauchyBorn:
    return CauchyBorn.relaxed(HONEYCOMB, LJ, shells=3)


# -- the chain: closed forms --------------------------------------------------------------------
def test_diatomic_chain_moduli_closed_form():
    """The two springs are told apart by their shells (lengths), so l1 != l2 here; the closed
    forms reduce to (k1 + k2)/2 and 2 k1 k2/(k1 + k2) for l1 = l2 = 1."""
    k1, k2, l1, l2 = 1.0, 3.0, 0.8, 1.2
    law = _chain(l1, l2, (Harmonic(k1, l1), Harmonic(k2, l2)))
    L = l1 + l2
    assert law.needs_relaxation
    assert law.inner_shapes(1) == {"shifts": (1,), "shifts_dF": (1, 1), "shifts_F": (1, 1)}
    one = np.eye(1)
    assert law.tangent(one)[0, 0, 0, 0] == pytest.approx((k1 * l1**2 + k2 * l2**2) / L, rel=1e-14)
    series = L * k1 * k2 / (k1 + k2)
    assert law.relaxed_tangent(one)[0, 0, 0, 0] == pytest.approx(series, rel=1e-12)
    # the vectorized relaxation of the FE path: the spring lengths of the series chain
    lam = np.array([0.97, 1.0, 1.05, 1.1])
    out = law.relax(lam[:, None, None], {"shifts": np.zeros((4, 1))})
    f = k1 * k2 / (k1 + k2) * (lam - 1.0) * L
    np.testing.assert_allclose(lam * l1 + out["shifts"][:, 0], l1 + f / k1, rtol=0, atol=1e-14)
    # and its sensitivity: d(r1)/d(lambda) = l1 + d(delta)/d(lambda) = L k2 / (k1 + k2)
    np.testing.assert_allclose(l1 + out["shifts_dF"][:, 0, 0], L * k2 / (k1 + k2), rtol=1e-13)


def test_relax_leaves_the_saddle_of_symmetry():
    """A chain with NN LJ bonds and an NNN spring written with a 2-atom basis (period 2 a0):
    its atoms are inversion centres, so zero shifts are in equilibrium for every stretch, but
    beyond the NN inflection (lambda_c = (13/7)^(1/6)) a saddle.  The vectorized relaxation,
    started at zero, stays there below lambda_c and finds the dimerized chain above it: NN
    bonds lambda a0 +- q with phi'(lambda a0 + q) = phi'(lambda a0 - q), q > 0 (bracketed
    here with the LJ derivative written out)."""
    a0 = 2 ** (1 / 6)
    cell = Lattice(np.array([[2.0]]), a0, np.array([[0.0], [1.0]]))
    law = CauchyBorn((LJ, Harmonic(1.0, 2 * a0)), cell.bonds(shells=2))
    assert not law.needs_relaxation

    def lj_d1(r):
        return 4 * (-12 / r**13 + 6 / r**7)

    lam = np.array([1.05, 1.15, 1.2])
    out = law.relax(lam[:, None, None], {"shifts": np.zeros((3, 1))})
    q = np.abs(out["shifts"][:, 0])
    assert q[0] < 1e-12
    for k in (1, 2):
        t = lam[k] * a0
        ref = optimize.brentq(lambda x, t=t: lj_d1(t + x) - lj_d1(t - x), 1e-6, 0.5 * t)
        assert q[k] == pytest.approx(ref, rel=1e-12)


def test_fixed_shifts_refused_without_inner_variables():
    """A basis whose atoms are not inversion centres has no fixed-shift UFL law (one line);
    a Bravais lattice and an inversion-symmetric basis keep today's path."""
    mesh = dolfinx.mesh.create_unit_square(MPI.COMM_SELF, 1, 1)
    F = dolfinx.fem.Constant(mesh, np.eye(2))
    with pytest.raises(ValueError, match="centres of inversion") as err:
        _honeycomb().flux(F)
    assert "\n" not in str(err.value)
    tri = CauchyBorn.relaxed(Lattice.of("triangular"), LJ, shells=2)
    assert tri.inner_shapes(2) == {} and not tri.needs_relaxation
    centred = Lattice(np.array([[2.0, 0.0], [0.0, 1.0]]), 1.0, np.array([[0, 0], [1.0, 0.5]]))
    law = CauchyBorn(LJ, centred.bonds(shells=2).scaled(1.1))
    assert not law.needs_relaxation and law.inner_shapes(2)["shifts"] == (2,)
    law.flux(F)  # the fixed shifts are in equilibrium for every F


# -- the chain as a macro bar --------------------------------------------------------------------
def _bar(comm: MPI.Comm, length: float, split: float, n: int) -> TiledMesh:
    """The interval [0, length] in ``n`` cells, phase 1 left of ``split``, phase 2 right."""
    mesh = dolfinx.mesh.create_interval(comm, n, [0.0, length])
    tdim = mesh.topology.dim
    ncells = mesh.topology.index_map(tdim).size_local + mesh.topology.index_map(tdim).num_ghosts
    cells = np.arange(ncells, dtype=np.int32)
    mid = dolfinx.mesh.compute_midpoints(mesh, tdim, cells)[:, 0]
    tags = dolfinx.mesh.meshtags(mesh, tdim, cells, np.where(mid < split, 1, 2).astype(np.int32))
    box = np.array([[0.0], [length]])
    return TiledMesh(CellMesh(mesh, tags, {"a": 1, "b": 2}, box), tag_box_sides(mesh, *box), 1)


def _bar_reaction(comm, laws, stretch: float, length: float = 2.0, n: int = 8) -> float:
    tiled = _bar(comm, length, 0.5 * length, n)
    bcs = [DisplacementBC("left", 0.0, 0), DisplacementBC("right", (stretch - 1.0) * length, 0)]
    options = {"snes_rtol": 1e-13, "snes_atol": 1e-14}
    dns = DNSProblem(tiled, laws, bcs=bcs, petsc_options=options)
    try:
        result = dns.solve([0.5, 1.0])
        reactions = result.steps[-1].reactions
    finally:
        dns.destroy()
    assert reactions["left"][0] == pytest.approx(-reactions["right"][0], rel=1e-11)
    return reactions["right"][0]


@pytest.mark.mpi
def test_macro_bar_of_the_harmonic_chain_has_the_series_stiffness(comm):
    """Small and finite stretch alike (harmonic springs in 1D are linear in the stretch): the
    reaction of the relaxed bar is the series stiffness times the strain, not the mean."""
    k1, k2, l1, l2 = 1.0, 4.0, 0.8, 1.2
    law = _chain(l1, l2, (Harmonic(k1, l1), Harmonic(k2, l2)))
    L = l1 + l2
    for stretch in (1.001, 1.08):
        reaction = _bar_reaction(comm, {"a": law, "b": law}, stretch)
        series = L * k1 * k2 / (k1 + k2) * (stretch - 1.0)
        assert reaction == pytest.approx(series, rel=1e-10)
        mean = (k1 * l1**2 + k2 * l2**2) / L * (stretch - 1.0)
        assert abs(reaction - mean) > 0.3 * abs(mean)


def _morse_d1(r, D, alpha, r0):
    """:math:`\\phi'` of Morse, written out here."""
    e = np.exp(-alpha * (r - r0))
    return 2.0 * D * alpha * (e - e * e)


def _spring_length(f: float, D: float, alpha: float, r0: float) -> float:
    """The length at which a Morse spring carries the force ``f`` (stable branch: below the
    inflection :math:`r_0 + \\ln 2/\\alpha`)."""
    top = r0 + math.log(2.0) / alpha
    return optimize.brentq(lambda r: _morse_d1(r, D, alpha, r0) - f, 0.5 * r0, top, xtol=1e-15)


@pytest.mark.mpi
def test_macro_bar_of_two_morse_chains_at_finite_strain(comm):
    """Phase a: a diatomic Morse chain, phase b: another one; the bar is stretched by 6 %.
    Every spring of both carries the reaction f; their lengths add up to the imposed one."""
    springs_a = [(1.0, 3.0, 0.9), (2.0, 2.0, 1.1)]  # (D, alpha, r0)
    springs_b = [(0.7, 2.5, 0.7), (1.5, 3.5, 1.0)]
    laws = {
        "a": _chain(0.9, 1.1, [Morse(*s) for s in springs_a]),
        "b": _chain(0.7, 1.0, [Morse(*s) for s in springs_b]),
    }
    length, stretch = 2.0, 1.06

    def excess(f: float) -> float:
        # each half of the bar (length 1) holds 1/L_cell cells of the chain
        total = 0.0
        for springs in (springs_a, springs_b):
            L_cell = sum(s[2] for s in springs)
            total += sum(_spring_length(f, *s) for s in springs) / L_cell
        return total - stretch * length

    f_max = min(_morse_d1(s[2] + math.log(2.0) / s[1], *s) for s in springs_a + springs_b)
    f_ref = optimize.brentq(excess, 0.0, 0.999 * f_max, xtol=1e-15)
    reaction = _bar_reaction(comm, laws, stretch, length, n=10)
    assert reaction == pytest.approx(f_ref, rel=1e-10)
    # the fixed-shift (affine) laws would give a different reaction: the relaxation matters
    P_affine = [laws[k].stress(np.array([[lam]]))[0, 0] for k, lam in (("a", 1.06), ("b", 1.06))]
    assert min(abs(p - f_ref) for p in P_affine) > 1e-2 * f_ref


# -- the honeycomb lattice ------------------------------------------------------------------------
@pytest.mark.mpi
def test_honeycomb_rve_is_the_relaxed_law(comm):
    """A periodic cell of the honeycomb LJ law: its mean stress and consistent tangent are the
    relaxed P and A of the NumPy path (trust-region relax_shifts, condensed tangent), relative
    1e-10; the fixed shifts would be far off."""
    law = _honeycomb()
    cell = circular_inclusion(comm, 0.3, h=0.3)
    rve = RVEProblem(cell, {"matrix": law, "inclusion": law})
    try:
        for F in FS:
            response, _, _ = rve.solve(F)
            p = law.relax_shifts(F)
            P, A = law.stress(F, p), law.relaxed_tangent(F, p)
            assert np.abs(response.flux - P).max() < 1e-10 * np.abs(P).max()
            assert np.abs(response.tangent - A).max() < 1e-10 * np.abs(A).max()
            assert np.abs(law.tangent(F) - A).max() > 1e-2 * np.abs(A).max()
    finally:
        rve.destroy()


@pytest.mark.mpi
def test_honeycomb_ufl_energy_and_stress_at_points(comm):
    """The UFL energy and stress with relaxed inner variables at the points of a mesh under a
    non-uniform F: :math:`W^{rel}` and :math:`P^{rel}` of the NumPy path at every point."""
    from multiscale.coupling.inner import InnerVariables
    from multiscale.coupling.quadrature import QuadratureRule

    law = _honeycomb()
    mesh = dolfinx.mesh.create_unit_square(comm, 3, 3)
    tdim = mesh.topology.dim
    n = mesh.topology.index_map(tdim).size_local + mesh.topology.index_map(tdim).num_ghosts
    tags = dolfinx.mesh.meshtags(mesh, tdim, np.arange(n, dtype=np.int32), np.ones(n, np.int32))
    x = ufl.SpatialCoordinate(mesh)
    F = ufl.as_matrix([[1.0 + 0.03 * x[0], 0.04 * x[1]], [-0.02 * x[0] * x[1], 0.98 + 0.02 * x[1]]])
    rule = QuadratureRule(mesh, 2)
    inner = InnerVariables(rule, {1: law}, tags, F)
    W = rule.expression(law.energy(F, inner.of(1)))
    P = rule.expression(law.flux(F, inner.of(1)))
    inner.relax()
    Fs = rule.evaluate(F).reshape(-1, 2, 2)
    Ws, Ps = rule.evaluate(W).ravel(), rule.evaluate(P).reshape(-1, 2, 2)
    for k in range(0, len(Fs), 5):
        p = law.relax_shifts(Fs[k])
        assert Ws[k] == pytest.approx(float(law.energy_density(Fs[k], p)), rel=1e-12)
        ref = law.stress(Fs[k], p)
        assert np.abs(Ps[k] - ref).max() < 1e-10 * np.abs(ref).max()


@pytest.mark.mpi
def test_fe2_of_the_honeycomb_law_is_the_relaxed_stress(comm):
    """FE² (an RVE of the honeycomb law at each macro point) under roller conditions of
    F = diag(1.02, 0.985): the honeycomb's mirrors (the one across x swaps the sub-lattices) keep
    the relaxed P of a diagonal F diagonal, so the solution is affine and the reactions per
    unit length are P11 and P22 of the relaxed NumPy law; the fixed shifts give a stress of the
    other sign in P22."""
    law = _honeycomb()
    F = np.diag([1.02, 0.985])
    bcs = [
        DisplacementBC("right", F[0, 0] - 1.0, 0),
        DisplacementBC("left", 0.0, 0),
        DisplacementBC("bottom", 0.0, 1),
        DisplacementBC("top", F[1, 1] - 1.0, 1),
    ]
    problem = FE2Problem(
        rectangle(comm, (1.0, 1.0), (1, 1)),
        lambda c: circular_inclusion(c, 0.3, h=0.3),
        {"matrix": law, "inclusion": law},
        bcs=bcs,
        petsc_options={"snes_rtol": 1e-12},
    )
    try:
        reactions = problem.solve([0.5, 1.0]).steps[-1].reactions
    finally:
        problem.destroy()
    P = law.stress(F, law.relax_shifts(F))
    assert reactions["right"][0] == pytest.approx(P[0, 0], rel=1e-11)
    assert reactions["top"][1] == pytest.approx(P[1, 1], rel=1e-11)
    assert law.stress(F)[1, 1] < 0.0 < P[1, 1]


def _crystal_stress(model: PairModel, x: np.ndarray, F: np.ndarray) -> np.ndarray:
    g = model.bond_forces(x, F)
    return np.einsum("bi,bJ->iJ", g, model.image) / np.prod(model.atoms.box)


def test_honeycomb_periodic_crystal_is_the_relaxed_law():
    """Atomistic statics of a periodic honeycomb crystal (24 atoms, one held) under F: energy
    per atom :math:`W^{rel}\\Omega_0` and stress :math:`P^{rel}` to 1e-10, the stress's central
    differences the condensed tangent to 1e-6; the fixed shifts give a higher energy."""
    law = _honeycomb()
    a = law.bonds.radii[1]  # the second shell of the honeycomb is the triangular constant
    atoms = AtomSet.periodic(HONEYCOMB.with_constant(a), (3 * a, 2 * SQ3 * a))
    model = PairModel(atoms, LJ, float(law.bonds.radii[2]))
    omega = law.bonds.atomic_volume

    def relaxed(F: np.ndarray) -> tuple[float, np.ndarray]:
        problem = AtomisticProblem(
            model, fixed=[0], macro_F=F, petsc_options={"snes_rtol": 1e-14, "snes_atol": 1e-12}
        )
        try:
            problem.solve([0.5, 1.0])
            assert problem.max_free_force() < 1e-10
            return problem.energy() / atoms.n, _crystal_stress(model, problem.x, problem.F)
        finally:
            problem.destroy()

    for F in FS[:2]:
        e, P_atoms = relaxed(F)
        p = law.relax_shifts(F)
        W_rel = float(law.energy_density(F, p))
        assert e == pytest.approx(W_rel * omega, rel=1e-10)
        assert float(law.energy_density(F)) * omega > e + 1e-4 * abs(e)
        P = law.stress(F, p)
        assert np.abs(P_atoms - P).max() < 1e-10 * np.abs(P).max()
    F, h = FS[0], 1e-5
    A = law.relaxed_tangent(F)
    A_fd = np.zeros((2, 2, 2, 2))
    for k in range(2):
        for m in range(2):
            dF = np.zeros((2, 2))
            dF[k, m] = h
            A_fd[:, :, k, m] = (relaxed(F + dF)[1] - relaxed(F - dF)[1]) / (2 * h)
    assert np.abs(A_fd - A).max() < 1e-6 * np.abs(A).max()
