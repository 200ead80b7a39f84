"""Lattices, pair potentials, the Cauchy–Born law and lattice stability against closed forms and
an independent direct atomistic summation (NumPy only: every rank runs the same checks).

References used here, derived in the docstrings of the tests:

* LJ 12-6 on a lattice whose bonds all scale by the same factor (1D stretch of a chain, isotropic
  stretch of a triangular lattice) with the lattice constant relaxed for the same shells: the
  energy is :math:`A\\lambda^{-12} - B\\lambda^{-6}` with :math:`B = 2A` (relaxation), so
  :math:`d^2W/d\\lambda^2 = 0` at :math:`\\lambda_c = (13/7)^{1/6}` for any shells;
* the peak bond force :math:`\\phi'((26/7)^{1/6}\\sigma) = 2.39643\\,\\epsilon/\\sigma`;
* triangular lattice: :math:`\\lambda = \\mu = \\frac{1}{16\\Omega_0}\\sum_b(\\phi'' -
  \\phi'/r)r^2` (Cauchy relations; NN: :math:`\\sqrt3 k/4`), strong ellipticity lost under
  isotropic stretch where :math:`3\\phi'' + \\phi'/r = 0`: :math:`\\lambda = (19/10)^{1/6}`;
* a chain with NN LJ and an NNN spring: the zone-boundary phonon :math:`k = \\pi/a` goes soft at
  the NN inflection, before the Cauchy–Born convexity is lost.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

from multiscale.atomistic import (
    CauchyBorn,
    Harmonic,
    Lattice,
    LennardJones,
    LoadingPath,
    Morse,
    Shifted,
    analyse_path,
    dispersion,
    ellipticity,
    phonon,
    relaxed_lattice_constant,
)

LAMBDA_C = (13.0 / 7.0) ** (1.0 / 6.0)  # 1.1086834...
LAMBDA_LH = (19.0 / 10.0) ** (1.0 / 6.0)  # 1.1129071...
R_INFLECTION = (26.0 / 7.0) ** (1.0 / 6.0)
LJ = LennardJones(epsilon=1.0, sigma=1.0)


def lj_phi(r, eps=1.0, sigma=1.0):
    """LJ 12-6 written out here (independent of the library)."""
    return 4 * eps * ((sigma / r) ** 12 - (sigma / r) ** 6)


def lj_d1(r, eps=1.0, sigma=1.0):
    return 4 * eps * (-12 * sigma**12 / r**13 + 6 * sigma**6 / r**7)


def lj_d2(r, eps=1.0, sigma=1.0):
    return 4 * eps * (156 * sigma**12 / r**14 - 42 * sigma**6 / r**8)


# -- lattices --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "counts", "radii", "omega"),
    [
        ("chain", [2, 2, 2], [1, 2, 3], 1.0),
        ("square", [4, 4, 4], [1, math.sqrt(2), 2], 1.0),
        ("triangular", [6, 6, 6], [1, math.sqrt(3), 2], math.sqrt(3) / 2),
        ("simple_cubic", [6, 12, 8], [1, math.sqrt(2), math.sqrt(3)], 1.0),
        ("fcc", [12, 6, 24], [1 / math.sqrt(2), 1, math.sqrt(1.5)], 0.25),
        ("bcc", [8, 6, 12], [math.sqrt(3) / 2, 1, math.sqrt(2)], 0.5),
    ],
)
def test_neighbour_shells(name, counts, radii, omega):
    """Coordination numbers and shell radii of the textbook lattices (cubic constant a = 2)."""
    a = 2.0
    lat = Lattice.of(name, a)
    b = lat.bonds(shells=3)
    assert np.bincount(b.shell).tolist() == counts
    np.testing.assert_allclose(b.radii, a * np.array(radii), rtol=1e-14)
    assert lat.atomic_volume == pytest.approx(omega * a**lat.dim, rel=1e-14)
    np.testing.assert_allclose(np.sort(b.lengths), np.sort(a * np.repeat(radii, counts)), 1e-14)
    # every bond comes with its reverse; half() keeps one of each pair
    assert len(b.half()) * 2 == len(b.vectors)
    same = lat.bonds(cutoff=float(b.radii[-1]))
    assert len(same.vectors) == len(b.vectors)


def test_lattice_with_basis_is_the_same_crystal():
    """The square lattice written as a centred rectangular cell with a 2-atom basis (the cell
    (sqrt2, 0), (0, sqrt2) rotated 45 deg): same shells, same atomic volume."""
    s = math.sqrt(2.0)
    rotated = Lattice(np.array([[s, 0.0], [0.0, s]]), 1.0, np.array([[0, 0], [s / 2, s / 2]]))
    b, ref = rotated.bonds(shells=3), Lattice.of("square").bonds(shells=3)
    assert rotated.atomic_volume == pytest.approx(1.0, rel=1e-14)
    np.testing.assert_allclose(b.radii, ref.radii, rtol=1e-13)
    assert np.bincount(b.shell).tolist() == [8, 8, 8]  # two atoms per cell, 4 bonds each


def test_bad_lattices():
    with pytest.raises(ValueError, match="lattice type"):
        Lattice.of("hexagonal")
    with pytest.raises(ValueError, match="lattice constant a"):
        Lattice.of("square", -1.0)
    with pytest.raises(ValueError, match="shells"):
        Lattice.of("square").bonds(shells=0)
    with pytest.raises(ValueError, match="cutoff"):
        Lattice.of("square").bonds(cutoff=0.5)


# -- potentials ------------------------------------------------------------------------------------
POTENTIALS = [
    LennardJones(1.3, 0.9),
    Morse(2.0, 1.5, 1.1),
    Harmonic(3.0, 1.2),
    Shifted(LennardJones(1.0, 1.0), 2.5),
]


@pytest.mark.parametrize("pot", POTENTIALS, ids=lambda p: type(p).__name__)
def test_potential_derivatives_by_complex_step(pot):
    """phi' and phi'' against complex-step derivatives of phi and phi' (exact to rounding)."""
    r = np.linspace(0.85, 2.4, 40)
    h = 1e-30
    d1 = np.imag(pot.phi(r + 1j * h)) / h
    d2 = np.imag(pot.dphi(r + 1j * h)) / h
    np.testing.assert_allclose(pot.dphi(r), d1, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(pot.d2phi(r), d2, rtol=1e-13, atol=1e-13)
    rq = np.array([pot.r_eq])
    assert abs(pot.dphi(rq)[0]) < 1e-12 or isinstance(pot, Shifted)


def test_potential_closed_forms():
    np.testing.assert_allclose(LJ.phi(np.array([2 ** (1 / 6)])), [-1.0], rtol=1e-15)
    r = np.linspace(0.9, 3, 7)
    np.testing.assert_allclose(LennardJones(2.0, 1.5).phi(r), lj_phi(r, 2.0, 1.5), rtol=1e-14)
    np.testing.assert_allclose(Morse(2.0, 1.5, 1.1).phi(np.array([1.1])), [-2.0], rtol=1e-15)
    cut = Shifted(LJ, 2.5)
    np.testing.assert_allclose(cut.phi(np.array([2.5, 3.0])), [0.0, 0.0], atol=1e-16)
    np.testing.assert_allclose(cut.dphi(np.array([2.5 - 1e-12])), [0.0], atol=1e-11)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: LennardJones(1.0, -1.0), "sigma"),
        (lambda: LennardJones(0.0, 1.0), "epsilon"),
        (lambda: Morse(1.0, float("nan"), 1.0), "alpha"),
        (lambda: Harmonic(-2.0, 1.0), "k"),
        (lambda: Shifted(LJ, 0.0), "cutoff"),
    ],
)
def test_potential_validation_names_the_parameter(make, name):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        make()


# -- relaxed lattice constant ----------------------------------------------------------------------
def _lj_relaxed(S12: float, S6: float) -> float:
    """a0 minimizing sum_s n_s phi(rho_s a) for LJ: a0^6 = 2 S12 / S6 (sigma = 1), with
    S_k = sum_s n_s rho_s^-k."""
    return (2 * S12 / S6) ** (1 / 6)


def _sums(counts, rho):
    counts, rho = np.asarray(counts, float), np.asarray(rho, float)
    return (counts * rho**-12).sum(), (counts * rho**-6).sum()


@pytest.mark.parametrize(
    ("name", "shells", "counts", "rho"),
    [
        ("chain", 1, [2], [1]),
        ("chain", 2, [2, 2], [1, 2]),
        ("chain", 3, [2, 2, 2], [1, 2, 3]),
        ("triangular", 1, [6], [1]),
        ("triangular", 3, [6, 6, 6], [1, math.sqrt(3), 2]),
        ("fcc", 2, [12, 6], [1 / math.sqrt(2), 1]),
    ],
)
def test_relaxed_lattice_constant(name, shells, counts, rho):
    """Against the closed form of LJ, and the reference is stress free."""
    a0 = relaxed_lattice_constant(Lattice.of(name), LJ, shells=shells)
    assert a0 == pytest.approx(_lj_relaxed(*_sums(counts, rho)), rel=1e-13)
    law = CauchyBorn.relaxed(Lattice.of(name), LJ, shells=shells)
    d = law.dim
    scale = np.abs(law.tangent(np.eye(d))).max()
    assert np.abs(law.stress(np.eye(d))).max() < 1e-12 * scale


# -- direct atomistic summation (independent code path) --------------------------------------------
def direct_sum_energy(vectors, a, cutoff, F, pot, n_cells):
    """Energy per unit reference volume of the interior atoms of a finite crystal: atom
    positions X = n @ (a * vectors), |n_i| <= n_cells, deformed x = F X; for every atom whose
    cut-off sphere lies inside the crystal, half of its pair energies with all atoms within the
    reference cut-off."""
    d = len(vectors)
    rng = np.arange(-n_cells, n_cells + 1)
    n = np.stack([g.ravel() for g in np.meshgrid(*[rng] * d, indexing="ij")], axis=1)
    X = n @ (a * np.asarray(vectors))
    x = X @ np.asarray(F).T
    widths = 1.0 / np.linalg.norm(np.linalg.inv(a * np.asarray(vectors)), axis=0)
    margin = n_cells * widths.min() - cutoff * 1.01  # inradius of the crystal minus cut-off
    inner = np.flatnonzero(np.linalg.norm(X, axis=1) < margin)
    dX = X[None, :, :] - X[inner, None, :]
    near = (np.linalg.norm(dX, axis=2) < cutoff * (1 + 1e-9)) & (np.linalg.norm(dX, axis=2) > 0)
    dx = x[None, :, :] - x[inner, None, :]
    r = np.sqrt(np.sum(dx * dx, axis=2))  # complex-safe (no abs)
    e = 0.5 * np.where(near, pot.phi(np.where(near, r, 1.0)), 0.0).sum()
    omega = abs(np.linalg.det(a * np.asarray(vectors)))
    return e / (len(inner) * omega)


def direct_sum_force_stress(vectors, a, cutoff, F, pot, n_cells):
    """The first Piola stress of the same crystal as the virial of its pair forces (the exact
    derivative of :func:`direct_sum_energy`): sum over interior pairs of
    phi'(r)/r (x_j - x_i) (X_j - X_i)^T / 2, per interior atom and volume."""
    d = len(vectors)
    rng = np.arange(-n_cells, n_cells + 1)
    n = np.stack([g.ravel() for g in np.meshgrid(*[rng] * d, indexing="ij")], axis=1)
    X = n @ (a * np.asarray(vectors))
    x = X @ np.asarray(F).T
    widths = 1.0 / np.linalg.norm(np.linalg.inv(a * np.asarray(vectors)), axis=0)
    margin = n_cells * widths.min() - cutoff * 1.01  # inradius of the crystal minus cut-off
    inner = np.flatnonzero(np.linalg.norm(X, axis=1) < margin)
    dX = X[None, :, :] - X[inner, None, :]
    dist = np.linalg.norm(dX, axis=2)
    near = (dist < cutoff * (1 + 1e-9)) & (dist > 0)
    dx = x[None, :, :] - x[inner, None, :]
    r = np.sqrt(np.sum(dx * dx, axis=2))
    t = np.where(near, pot.dphi(np.where(near, r, 1.0)) / np.where(near, r, 1.0), 0.0)
    P = 0.5 * np.einsum("ab,abi,abJ->iJ", t, dx, dX)
    omega = abs(np.linalg.det(a * np.asarray(vectors)))
    return P / (len(inner) * omega)


CASES = [
    ("triangular", 2, np.array([[1.04, 0.03], [-0.02, 0.97]]), LJ, 4),
    ("square", 2, np.array([[0.98, 0.05], [0.01, 1.03]]), Morse(1.0, 2.0, 1.0), 4),
    (
        "fcc",
        1,
        np.array([[1.02, 0.01, -0.02], [0.0, 0.99, 0.03], [0.01, 0.0, 1.01]]),
        LJ,
        3,
    ),
]


@pytest.mark.parametrize(("name", "shells", "F", "pot", "n_cells"), CASES, ids=lambda c: str(c)[:8])
def test_cauchy_born_equals_direct_summation(name, shells, F, pot, n_cells):
    """W, P and A of the law against a finite crystal summed atom by atom: W directly, P by the
    complex-step derivative of its energy, A by the complex-step derivative of its pair-force
    stress (both exact to rounding), relative 1e-10."""
    law = CauchyBorn.relaxed(Lattice.of(name), pot, shells=shells)
    lat = Lattice.of(name)
    a = law.bonds.radii[0] / lat.bonds(shells=1).radii[0]
    rc = float(law.bonds.radii[-1])
    d = law.dim
    args = (lat.vectors, a, rc)
    W_direct = direct_sum_energy(*args, F, pot, n_cells)
    assert law.energy_density(F) == pytest.approx(W_direct, rel=1e-12)
    h = 1e-30
    P_direct = np.zeros((d, d))
    A_direct = np.zeros((d, d, d, d))
    for k in range(d):
        for m in range(d):
            E = np.zeros((d, d))
            E[k, m] = h
            P_direct[k, m] = np.imag(direct_sum_energy(*args, F + 1j * E, pot, n_cells)) / h
            A_direct[:, :, k, m] = (
                np.imag(direct_sum_force_stress(*args, F + 1j * E, pot, n_cells)) / h
            )
    P, A = law.stress(F), law.tangent(F)
    assert np.abs(P - P_direct).max() < 1e-10 * np.abs(P_direct).max()
    assert np.abs(A - A_direct).max() < 1e-10 * np.abs(A_direct).max()
    # the force virial is the derivative of the direct energy (the two direct paths agree)
    P_forces = direct_sum_force_stress(*args, F, pot, n_cells)
    assert np.abs(P_forces - P_direct).max() < 1e-10 * np.abs(P_direct).max()


# -- moduli ----------------------------------------------------------------------------------------
def _isotropic(lam, mu, d=2):
    eye = np.eye(d)
    return lam * np.einsum("ij,kl->ijkl", eye, eye) + mu * (
        np.einsum("ik,jl->ijkl", eye, eye) + np.einsum("il,jk->ijkl", eye, eye)
    )


def test_triangular_nn_moduli_cauchy_relations():
    """NN triangular LJ at the relaxed constant 2^(1/6) sigma: lambda = mu = sqrt(3) k / 4 with
    k = phi''(2^(1/6)) = 72 eps / (2^(1/3) sigma^2)."""
    eps, sigma = 0.7, 1.3
    law = CauchyBorn.relaxed(Lattice.of("triangular"), LennardJones(eps, sigma), shells=1)
    k = 72.0 * eps / (2 ** (1 / 3) * sigma**2)
    mu = math.sqrt(3) * k / 4
    A = law.tangent(np.eye(2))
    np.testing.assert_allclose(A, _isotropic(mu, mu), rtol=0, atol=1e-12 * mu)


@pytest.mark.parametrize("shells", [2, 3])
def test_triangular_multishell_moduli(shells):
    """With more shells the bonds are pre-stressed (phi' != 0 each, zero in total):
    lambda = mu = 1/(16 Omega_0) sum_b (phi'' - phi'/r) r^2, shells of 6 bonds at
    1, sqrt3, 2 lattice constants."""
    counts, rho = [6, 6, 6][:shells], [1, math.sqrt(3), 2][:shells]
    a0 = _lj_relaxed(*_sums(counts, rho))
    r = a0 * np.array(rho)
    omega = math.sqrt(3) / 2 * a0**2
    mu = (np.array(counts) * (lj_d2(r) - lj_d1(r) / r) * r**2).sum() / (16 * omega)
    law = CauchyBorn.relaxed(Lattice.of("triangular"), LJ, shells=shells)
    np.testing.assert_allclose(law.tangent(np.eye(2)), _isotropic(mu, mu), atol=1e-12 * mu)


# -- critical loads --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "shells", "kind"),
    [
        ("chain", 1, "uniaxial"),
        ("chain", 2, "uniaxial"),
        ("chain", 3, "uniaxial"),
        ("triangular", 1, "isotropic"),
        ("triangular", 2, "isotropic"),
    ],
)
def test_lj_loss_of_convexity(name, shells, kind):
    """lambda_c = (13/7)^(1/6) for any shells (see the module docstring); in the triangular
    lattice strong ellipticity and the phonons are lost later, at (19/10)^(1/6); in 1D all
    three criteria coincide (the long-wave phonon is the continuum one)."""
    law = CauchyBorn.relaxed(Lattice.of(name), LJ, shells=shells)
    res = analyse_path(law, LoadingPath(kind, law.dim), (1.0, 1.2), points=11)
    assert abs(res.critical["convexity"].lam - LAMBDA_C) < 1e-6
    assert abs(res.first.lam - LAMBDA_C) < 1e-6
    if name == "triangular":  # in 1D the three coincide (to rounding)
        assert res.first.criterion == "convexity"
    later = LAMBDA_C if name == "chain" else LAMBDA_LH
    assert abs(res.critical["ellipticity"].lam - later) < 1e-6
    assert abs(res.critical["phonon"].lam - later) < 1e-6


def test_cut_off_breaks_the_shell_independence():
    """The closed form relies on phi being a sum of two power laws: with the shifted cut-off
    lambda_c moves (by about 1e-2 here)."""
    law = CauchyBorn.relaxed(Lattice.of("chain"), Shifted(LJ, 2.5), shells=2)
    res = analyse_path(law, LoadingPath("uniaxial", 1), (1.0, 1.2), points=11)
    assert abs(res.critical["convexity"].lam - LAMBDA_C) > 1e-3


@pytest.mark.parametrize(("eps", "sigma"), [(1.0, 1.0), (3.0, 2.0)])
def test_peak_bond_force(eps, sigma):
    """NN chain: the stress at lambda_c is the peak bond force 2.39643 eps/sigma (P = phi'(r)
    since Omega_0 = a), at r = (26/7)^(1/6) sigma."""
    law = CauchyBorn.relaxed(Lattice.of("chain"), LennardJones(eps, sigma), shells=1)
    lam = analyse_path(law, LoadingPath("uniaxial", 1), (1.0, 1.2), points=11).first.lam
    a0 = law.bonds.radii[0]
    assert lam * a0 == pytest.approx(R_INFLECTION * sigma, rel=1e-9)
    P = law.stress(np.array([[lam]]))[0, 0]
    assert P == pytest.approx(2.39643 * eps / sigma, abs=5e-6 * eps / sigma)
    assert P == pytest.approx(lj_d1(R_INFLECTION * sigma, eps, sigma), rel=1e-9)


# -- the failure Cauchy–Born cannot see ------------------------------------------------------------
def _zone_boundary_chain(k2: float = 1.0) -> CauchyBorn:
    """NN LJ and an NNN spring of rest length 2 * 2^(1/6) sigma: relaxed constant 2^(1/6)."""
    a0 = 2 ** (1 / 6)
    return CauchyBorn.relaxed(Lattice.of("chain"), (LJ, Harmonic(k2, 2 * a0)), shells=2)


def test_zone_boundary_phonon_fails_first():
    """D(k) = 2 phi''(a)(1 - cos ka) + 2 k2 (1 - cos 2ka): at k = pi/a it is 4 phi''(a), soft at
    the NN inflection lambda = (13/7)^(1/6); the Cauchy–Born W'' = (phi''(a) + 4 k2)/a * a^2 /
    Omega_0 vanishes later, where phi''(lambda a0) = -4 k2."""
    k2 = 1.0
    law = _zone_boundary_chain(k2)
    a0 = 2 ** (1 / 6)
    assert law.bonds.radii[0] == pytest.approx(a0, rel=1e-14)
    res = analyse_path(law, LoadingPath("uniaxial", 1), (1.0, 1.4), points=21, nk=16)
    first = res.first
    assert first.criterion == "phonon"
    assert abs(first.lam - LAMBDA_C) < 1e-6
    assert abs(abs(first.fractional_wave_vector[0]) - 0.5) < 1e-9  # zone boundary
    assert abs(abs(first.wave_vector[0]) - math.pi / a0) < 1e-8
    lam_min = 6.5 ** (1 / 6) / a0  # phi'' is least at r = 6.5^(1/6) sigma
    lam_cb = optimize.brentq(lambda t: lj_d2(t * a0) + 4 * k2, LAMBDA_C, lam_min, xtol=1e-15)
    assert abs(res.critical["convexity"].lam - lam_cb) < 1e-6
    assert abs(res.critical["ellipticity"].lam - lam_cb) < 1e-6
    # the dispersion at the zone boundary: omega^2 = 4 phi''(lambda a0)
    lam = 1.05
    w2 = dispersion(law, np.array([[lam]]), np.array([[math.pi / a0]]))
    assert w2[0, 0] == pytest.approx(4 * lj_d2(lam * a0), rel=1e-12)


def test_inner_relaxation_finds_the_period_doubling():
    """The same chain with a 2-atom basis (period 2a): below lambda_c the shifts stay zero and
    W is the Cauchy–Born one; beyond it the relaxed chain dimerizes (NN bonds lam a0 +- p),
    with the energy of the dimer found independently by minimizing
    phi(lam a0 + p) + phi(lam a0 - p) over p."""
    a0 = 2 ** (1 / 6)
    pots = (LJ, Harmonic(1.0, 2 * a0))
    cell = Lattice(np.array([[2.0]]), a0, np.array([[0.0], [1.0]]))
    law2 = CauchyBorn(pots, cell.bonds(shells=2))
    law1 = _zone_boundary_chain()
    for lam in (1.05, 1.15):
        F = np.array([[lam]])
        p = law2.relax_shifts(F)
        W2 = law2.energy_density(F, p)
        assert law2.energy_density(F) == pytest.approx(law1.energy_density(F), rel=1e-14)
        dimer = optimize.minimize_scalar(
            lambda q, t=lam: lj_phi(t * a0 + q) + lj_phi(t * a0 - q),
            bounds=(0.0, 0.5 * lam * a0),
            method="bounded",
            options={"xatol": 1e-12},
        )
        W_ref = (dimer.fun + 0.5 * (2 * 1.0 * (2 * lam * a0 - 2 * a0) ** 2)) / (2 * a0)
        if lam < LAMBDA_C:
            assert abs(p[1, 0] - p[0, 0]) < 1e-8
            np.testing.assert_allclose(law2.relaxed_tangent(F), law1.tangent(F), rtol=1e-10)
        else:
            assert abs(abs(p[1, 0]) - dimer.x) < 1e-5
            assert W2 < law1.energy_density(F) - 1e-4
        assert W2 == pytest.approx(W_ref, rel=1e-10)


def test_ellipticity_and_phonon_at_reference_are_positive():
    """At F = I the acoustic tensor of the NN triangular lattice is (mu and lambda + 2 mu)/...:
    its least eigenvalue over n is mu = sqrt(3) k / 4 (isotropic), the phonon value positive."""
    law = CauchyBorn.relaxed(Lattice.of("triangular"), LJ, shells=1)
    mu = math.sqrt(3) * 72.0 / 2 ** (1 / 3) / 4
    value, n, m = ellipticity(law, np.eye(2))
    assert value == pytest.approx(mu, rel=1e-12)
    assert abs(n @ m) < 1e-6  # the transverse wave is the slowest
    assert phonon(law, np.eye(2))[0] > 0.0


def test_path_validation():
    with pytest.raises(ValueError, match="path type"):
        LoadingPath("twist", 2)
    with pytest.raises(ValueError, match="shear"):
        LoadingPath("shear", 1)
    with pytest.raises(ValueError, match="G"):
        LoadingPath("general", 2)
    law = CauchyBorn.relaxed(Lattice.of("chain"), LJ, shells=1)
    with pytest.raises(ValueError, match="range"):
        analyse_path(law, LoadingPath("uniaxial", 1), (1.2, 1.0))
    with pytest.raises(ValueError, match="potential"):
        CauchyBorn((LJ, LJ, LJ), law.bonds)
