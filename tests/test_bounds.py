"""Tests of multiscale.tensors and multiscale.bounds against independent facts.

The references are written here independently of the implementation: two-phase textbook forms
of the bounds, the Lamé solutions of the coated cylinder/sphere, a partial-inversion laminate
algorithm, a periodic 1D finite-element model of a laminate, and sequential laminates (which
attain the Hashin-Shtrikman bounds exactly).  Pure numpy: every rank runs the same checks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from multiscale import bounds as B
from multiscale import tensors as T

RNG_SEED = 20240601

# Voigt pairs written out again here (not taken from the module under test).
PAIRS = {2: [(0, 0), (1, 1), (0, 1)], 3: [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]}


# ------------------------------------------------------------------------------------------
# independent helpers
# ------------------------------------------------------------------------------------------
def random_spd(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray:
    a = rng.standard_normal((n, n))
    return scale * (a @ a.T + n * np.eye(n))


def iso_voigt(dim: int, lam: float, mu: float) -> np.ndarray:
    n = 3 if dim == 2 else 6
    C = np.zeros((n, n))
    C[:dim, :dim] = lam
    for i in range(dim):
        C[i, i] = lam + 2 * mu
    for i in range(dim, n):
        C[i, i] = mu
    return C


def lame_from_bulk(kappa: float, mu: float, dim: int) -> float:
    return kappa - mu if dim == 2 else kappa - 2 * mu / 3


def rotation_2d(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def random_rotation_3d(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def sym_grad_voigt(g: np.ndarray, n: np.ndarray, dim: int) -> np.ndarray:
    """Engineering Voigt vector of sym(g ⊗ n)."""
    e = 0.5 * (np.outer(g, n) + np.outer(n, g))
    return np.array([e[i, j] * (1 if i == j else 2) for i, j in PAIRS[dim]])


def laminate_fe_1d(fractions, Cs, n, dim, elems_per_layer=3):
    """Effective stiffness of a laminate by periodic 1D P1 finite elements (energy minimisation).

    u(x) = eps_bar x + w(x.n), w periodic and piecewise linear; nodes at the interfaces, so the
    discrete solution is exact.  Written independently of multiscale.bounds.
    """
    nv = 3 if dim == 2 else 6
    n = np.asarray(n, float) / np.linalg.norm(n)
    # G maps w' (dim) to the Voigt strain increment: columns = sym_grad_voigt(e_j, n)
    G = np.column_stack([sym_grad_voigt(np.eye(dim)[j], n, dim) for j in range(dim)])
    elems = [(f / elems_per_layer, C) for f, C in zip(fractions, Cs, strict=True) if f > 0]
    elems = [e for e in elems for _ in range(elems_per_layer)]
    ne = len(elems)
    ndof = ne * dim  # periodic: ne nodes
    K = np.zeros((ndof, ndof))
    F = np.zeros((ndof, nv))
    D = []
    for e, (h, C) in enumerate(elems):
        De = np.zeros((dim, ndof))
        a, b = e, (e + 1) % ne
        De[:, a * dim : (a + 1) * dim] -= np.eye(dim) / h
        De[:, b * dim : (b + 1) * dim] += np.eye(dim) / h
        D.append(De)
        K += h * De.T @ G.T @ C @ G @ De
        F -= h * De.T @ G.T @ C
    free = np.arange(dim, ndof)  # node 0 fixed (rigid translation)
    U = np.zeros((ndof, nv))
    U[free] = np.linalg.solve(K[np.ix_(free, free)], F[free])
    Ceff = np.zeros((nv, nv))
    for (h, C), De in zip(elems, D, strict=True):
        Ceff += h * C @ (np.eye(nv) + G @ De @ U)
    return Ceff


def laminate_partial_inversion(fractions, Cs, axis, dim):
    """Laminate with normal e_axis by partial inversion (continuous: traction, in-plane strain)."""
    nrm = [a for a, (i, j) in enumerate(PAIRS[dim]) if axis in (i, j)]
    tan = [a for a in range(len(PAIRS[dim])) if a not in nrm]
    nn, nt = np.ix_(nrm, nrm), np.ix_(nrm, tan)
    tn, tt = np.ix_(tan, nrm), np.ix_(tan, tan)
    Mbar = 0
    for f, C in zip(fractions, Cs, strict=True):
        inv = np.linalg.inv(C[nn])
        M = np.block([[inv, -inv @ C[nt]], [C[tn] @ inv, C[tt] - C[tn] @ inv @ C[nt]]])
        Mbar = Mbar + f * M
    k = len(nrm)
    a, b, c, d = Mbar[:k, :k], Mbar[:k, k:], Mbar[k:, :k], Mbar[k:, k:]
    ainv = np.linalg.inv(a)
    out = np.zeros_like(Cs[0])
    out[nn], out[nt] = ainv, -ainv @ b
    out[tn], out[tt] = c @ ainv, d - c @ ainv @ b
    return out


def coated_cylinder_bulk_lame(f, ki, km, mm):
    """2D bulk modulus of a coated cylinder from its Lamé solution (radii a=sqrt(f), b=1)."""
    a2 = f
    # unknowns A, B, C: u = A r (core), u = B r + C / r (coating), u(1) = 1
    M = np.array([[1.0, -1.0, -1.0 / a2], [2 * ki, -2 * km, 2 * mm / a2], [0.0, 1.0, 1.0]])
    _, Bc, C = np.linalg.solve(M, [0.0, 0.0, 1.0])
    srr = 2 * km * Bc - 2 * mm * C
    return srr / 2.0  # mean in-plane stress / trace of strain (= 2)


def coated_sphere_bulk_lame(f, ki, km, mm):
    """3D bulk modulus of a coated sphere from its Lamé solution (a = f^(1/3), b = 1)."""
    a3 = f
    M = np.array([[1.0, -1.0, -1.0 / a3], [3 * ki, -3 * km, 4 * mm / a3], [0.0, 1.0, 1.0]])
    _, Bc, C = np.linalg.solve(M, [0.0, 0.0, 1.0])
    srr = 3 * km * Bc - 4 * mm * C
    return srr / 3.0


def sequential_laminate(f_core, C_core, C_matrix, normals, lam):
    """Rank-r sequential laminate: the core is laminated with matrix r times, equal weights."""
    r = len(normals)
    f1 = 1.0 - f_core
    Cstar, prod = C_core, 1.0
    for n in normals:
        t = 1.0 - (f1 / r) / prod
        Cstar = lam([t, 1.0 - t], [Cstar, C_matrix], n)
        prod *= t
    assert math.isclose(prod, f_core, rel_tol=1e-12)
    return Cstar


PHI = (1 + math.sqrt(5)) / 2
ICOSA_AXES = [(0, 1, PHI), (0, 1, -PHI), (1, PHI, 0), (1, -PHI, 0), (PHI, 0, 1), (-PHI, 0, 1)]
HEX_AXES = [(math.cos(t), math.sin(t)) for t in (0.0, math.pi / 3, 2 * math.pi / 3)]


# ------------------------------------------------------------------------------------------
# tensors: notation
# ------------------------------------------------------------------------------------------
def test_voigt_index_orders():
    assert T.voigt_index(2) == [(0, 0), (1, 1), (0, 1)]
    assert T.voigt_index(3) == PAIRS[3]
    assert T.voigt_size(2) == 3 and T.voigt_size(3) == 6


@pytest.mark.parametrize("dim", [2, 3])
def test_voigt_round_trips_and_energy(dim):
    rng = np.random.default_rng(RNG_SEED + dim)
    a = rng.standard_normal((4, dim, dim))
    eps = a + np.swapaxes(a, -1, -2)
    v = T.strain_to_voigt(eps)
    assert v.shape == (4, 3 if dim == 2 else 6)
    np.testing.assert_allclose(T.voigt_to_strain(v), eps, rtol=0, atol=1e-14)
    np.testing.assert_allclose(T.voigt_to_stress(T.stress_to_voigt(eps)), eps, atol=1e-14)
    # engineering shears: gamma_12 = 2 eps_12; stresses unscaled
    assert v[0, -1] == pytest.approx(2 * eps[0, 0, 1])
    assert T.stress_to_voigt(eps)[0, -1] == pytest.approx(eps[0, 0, 1])
    # sigma : eps = {sigma} . {eps} and {sigma} = C {eps} agrees with the tensor contraction
    C = random_spd(rng, v.shape[1])
    C4 = T.stiffness_to_tensor(C)
    for e in eps:
        sig = np.einsum("ijkl,kl->ij", C4, e)
        np.testing.assert_allclose(T.stress_to_voigt(sig), C @ T.strain_to_voigt(e), rtol=1e-12)
        assert np.sum(sig * e) == pytest.approx(T.stress_to_voigt(sig) @ T.strain_to_voigt(e))
    np.testing.assert_allclose(T.tensor_to_stiffness(C4), C, rtol=1e-14)
    # Mandel round trip; Mandel eigenvalues are rotation invariant
    np.testing.assert_allclose(T.mandel_to_stiffness(T.stiffness_to_mandel(C)), C, rtol=1e-14)
    R = rotation_2d(0.7) if dim == 2 else random_rotation_3d(rng)
    Crot = T.rotate_stiffness(C, R)
    np.testing.assert_allclose(
        np.linalg.eigvalsh(T.stiffness_to_mandel(Crot)),
        np.linalg.eigvalsh(T.stiffness_to_mandel(C)),
        rtol=1e-12,
    )
    np.testing.assert_allclose(T.rotate_stiffness(Crot, R.T), C, rtol=1e-12, atol=1e-12)


def test_rotate_stiffness_quarter_turn_swaps_axes():
    C = np.diag([10.0, 2.0, 1.0])
    C[0, 1] = C[1, 0] = 0.5
    Cr = T.rotate_stiffness(C, rotation_2d(math.pi / 2))
    assert Cr[0, 0] == pytest.approx(2.0) and Cr[1, 1] == pytest.approx(10.0)
    iso = iso_voigt(3, 1.3, 0.7)
    np.testing.assert_allclose(
        T.rotate_stiffness(iso, random_rotation_3d(np.random.default_rng(1))), iso, atol=1e-12
    )


# ------------------------------------------------------------------------------------------
# tensors: isotropic elasticity
# ------------------------------------------------------------------------------------------
def test_lame_young_known_values_and_round_trip():
    lam, mu = T.lame_from_young(1.0, 0.25)
    assert lam == pytest.approx(0.4) and mu == pytest.approx(0.4)
    E, nu = T.young_from_lame(lam, mu)
    assert E == pytest.approx(1.0) and nu == pytest.approx(0.25)
    E, nu = T.young_from_lame(-0.2, 1.0)  # auxetic-ish but stable
    assert T.lame_from_young(E, nu) == pytest.approx((-0.2, 1.0))


@pytest.mark.parametrize("dim", [2, 3])
def test_isotropic_stiffness_young_vs_lame(dim):
    E, nu = 210.0, 0.3
    lam = E * nu / ((1 + nu) * (1 - 2 * nu))
    mu = E / (2 * (1 + nu))
    C1 = T.isotropic_stiffness(dim, E=E, nu=nu)
    C2 = T.isotropic_stiffness(dim, lmbda=lam, mu=mu)
    np.testing.assert_allclose(C1, C2, rtol=1e-13)
    np.testing.assert_allclose(C1, iso_voigt(dim, lam, mu), rtol=1e-13)
    kappa, m = T.bulk_shear_from_stiffness(C1, dim)
    assert m == pytest.approx(mu)
    assert kappa == pytest.approx(lam + mu if dim == 2 else lam + 2 * mu / 3)


def test_plane_stress():
    E, nu = 3.0, 0.2
    C = T.isotropic_stiffness(2, E=E, nu=nu, plane="stress")
    expected = E / (1 - nu**2) * np.array([[1, nu, 0], [nu, 1, 0], [0, 0, (1 - nu) / 2]])
    np.testing.assert_allclose(C, expected, rtol=1e-13)
    kappa, mu = T.bulk_shear_from_stiffness(C, 2)
    assert kappa == pytest.approx(E / (2 * (1 - nu)))
    assert mu == pytest.approx(E / (2 * (1 + nu)))


def _iso_tensor(kappa, mu, d):
    eye = np.eye(d)
    J = np.einsum("ij,kl->ijkl", eye, eye) / d
    Is = 0.5 * (np.einsum("ik,jl->ijkl", eye, eye) + np.einsum("il,jk->ijkl", eye, eye))
    return J, Is - J, d * kappa * J + 2 * mu * (Is - J)


@pytest.mark.parametrize("dim", [2, 3])
def test_bulk_shear_is_orthogonal_isotropic_projection(dim):
    rng = np.random.default_rng(RNG_SEED + 10 + dim)
    C = random_spd(rng, 3 if dim == 2 else 6)
    kappa, mu = T.bulk_shear_from_stiffness(C, dim)
    J, K, Ciso = _iso_tensor(kappa, mu, dim)
    residual = T.stiffness_to_tensor(C) - Ciso
    assert abs(np.sum(residual * J)) < 1e-10 * np.abs(C).max()
    assert abs(np.sum(residual * K)) < 1e-10 * np.abs(C).max()


def test_bulk_shear_equals_orientation_average_2d():
    # rotated components are trigonometric polynomials of degree <= 4: 8 equally spaced angles
    # average them exactly.
    C = random_spd(np.random.default_rng(RNG_SEED), 3)
    avg = sum(T.rotate_stiffness(C, rotation_2d(2 * math.pi * k / 8)) for k in range(8)) / 8
    kappa, mu = T.bulk_shear_from_stiffness(C, 2)
    np.testing.assert_allclose(avg, iso_voigt(2, kappa - mu, mu), rtol=1e-12, atol=1e-12)


def test_matrix_checks():
    C = T.isotropic_stiffness(3, E=1.0, nu=0.3)
    assert T.is_spd(C) and T.symmetry_defect(C) == 0.0
    assert not T.is_spd(-C) and not T.is_spd(np.zeros((3, 3)))
    N = C.copy()
    N[0, 1] += 0.1
    assert T.symmetry_defect(N) > 0 and not T.is_spd(N)
    assert T.energy_order(C, 2 * C) > 0 > T.energy_order(2 * C, C)
    assert T.energy_order(C, C) == pytest.approx(0.0, abs=1e-14)
    assert T.energy_order(1.0, 3.0) == pytest.approx(2.0)
    # sign is the same in Voigt and Mandel form
    A, Bm = random_spd(np.random.default_rng(3), 6), random_spd(np.random.default_rng(4), 6)
    s_v = np.sign(T.energy_order(A, Bm))
    s_m = np.sign(T.energy_order(T.stiffness_to_mandel(A), T.stiffness_to_mandel(Bm)))
    assert s_v == s_m


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: T.isotropic_stiffness(3, E=-1.0, nu=0.3), "positive"),
        (lambda: T.isotropic_stiffness(3, E=1.0, nu=0.5), "nu"),
        (lambda: T.isotropic_stiffness(3, E=1.0, nu=-1.0), "nu"),
        (lambda: T.isotropic_stiffness(3, E=float("nan"), nu=0.3), "finite"),
        (lambda: T.isotropic_stiffness(3, E=1.0, nu=0.3, mu=1.0), "exactly one"),
        (lambda: T.isotropic_stiffness(3, E=1.0), "both"),
        (lambda: T.isotropic_stiffness(3, lmbda=1.0, mu=0.0), "positive"),
        (lambda: T.isotropic_stiffness(3, lmbda=-1.0, mu=1.0), "bulk"),
        (lambda: T.isotropic_stiffness(4, E=1.0, nu=0.3), "dim"),
        (lambda: T.isotropic_stiffness(3, E=1.0, nu=0.3, plane="stress"), "dim=2"),
        (lambda: T.isotropic_stiffness(2, E=1.0, nu=0.3, plane="bogus"), "plane"),
        (lambda: T.strain_to_voigt(np.array([[1.0, 2.0], [0.0, 1.0]])), "symmetric"),
        (lambda: T.strain_to_voigt(np.ones((4, 4))), "shape"),
        (lambda: T.stress_to_voigt(np.full((2, 2), np.nan)), "NaN"),
        (lambda: T.voigt_to_strain(np.ones(4)), "length"),
        (lambda: T.bulk_shear_from_stiffness(np.eye(6), 2), "dim"),
        (lambda: T.rotate_stiffness(np.eye(3), 2 * np.eye(2)), "orthogonal"),
        (lambda: T.energy_order(np.eye(2), np.eye(3)), "shape"),
    ],
)
def test_tensors_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------------------------------
# Voigt / Reuss
# ------------------------------------------------------------------------------------------
def test_voigt_reuss_scalars_and_matrices():
    f = [0.2, 0.3, 0.5]
    assert B.voigt_bound(f, [1.0, 2.0, 4.0]) == pytest.approx(0.2 + 0.6 + 2.0)
    assert B.reuss_bound(f, [1.0, 2.0, 4.0]) == pytest.approx(1 / (0.2 + 0.15 + 0.125))
    assert B.reuss_bound(f, [0.0, 2.0, 4.0]) == 0.0  # a void phase
    assert B.reuss_bound([0.0, 1.0], [0.0, 2.0]) == pytest.approx(2.0)  # absent void
    diag = [np.diag([1.0, 2.0]), np.diag([3.0, 5.0]), np.diag([2.0, 1.0])]
    np.testing.assert_allclose(np.diag(B.voigt_bound(f, diag)), [2.1, 2.4])
    np.testing.assert_allclose(
        np.diag(B.reuss_bound(f, diag)),
        [1 / (0.2 / 1 + 0.3 / 3 + 0.5 / 2), 1 / (0.2 / 2 + 0.3 / 5 + 0.5 / 1)],
    )
    rng = np.random.default_rng(RNG_SEED)
    Cs = [random_spd(rng, 6) for _ in range(3)]
    assert T.energy_order(B.reuss_bound(f, Cs), B.voigt_bound(f, Cs)) > 0


# ------------------------------------------------------------------------------------------
# Hashin-Shtrikman
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [2, 3])
def test_hs_conductivity_two_phase_textbook_form(dim):
    k1, k2, f2 = 1.0, 7.0, 0.35
    f1 = 1 - f2
    low = k1 + f2 / (1 / (k2 - k1) + f1 / (dim * k1))
    up = k2 + f1 / (1 / (k1 - k2) + f2 / (dim * k2))
    assert B.hashin_shtrikman_conductivity([f1, f2], [k1, k2], dim) == pytest.approx((low, up))
    # phase order does not matter
    assert B.hashin_shtrikman_conductivity([f2, f1], [k2, k1], dim) == pytest.approx((low, up))


def test_hs_conductivity_1d_is_harmonic():
    lo, up = B.hashin_shtrikman_conductivity([0.5, 0.5], [1.0, 3.0], 1)
    assert lo == pytest.approx(1.5) and up == pytest.approx(1.5)


@pytest.mark.parametrize("dim", [2, 3])
def test_hs_ordering_multiphase(dim):
    rng = np.random.default_rng(RNG_SEED + dim)
    for _ in range(20):
        n = int(rng.integers(2, 5))
        f = rng.dirichlet(np.ones(n))
        k = rng.uniform(0.1, 50.0, n)
        lo, up = B.hashin_shtrikman_conductivity(f, k, dim)
        assert B.reuss_bound(f, k) <= lo + 1e-12 <= up + 2e-12 <= B.voigt_bound(f, k) + 3e-12
        kappa, mu = rng.uniform(0.1, 50.0, n), rng.uniform(0.1, 50.0, n)
        hs = B.hashin_shtrikman_elastic(f, kappa, mu, dim)
        for name, vals in (("bulk", kappa), ("shear", mu)):
            lo, up = hs[f"{name}_lower"], hs[f"{name}_upper"]
            assert B.reuss_bound(f, vals) <= lo + 1e-12
            assert lo <= up + 1e-12
            assert up <= B.voigt_bound(f, vals) + 1e-12


@pytest.mark.parametrize("dim", [2, 3])
def test_hs_collapse(dim):
    lo, up = B.hashin_shtrikman_conductivity([0.3, 0.7], [2.5, 2.5], dim)
    assert lo == pytest.approx(2.5) and up == pytest.approx(2.5)
    for f, expected in (([1.0, 0.0, 0.0], 0), ([0.0, 1.0, 0.0], 1), ([0.0, 0.0, 1.0], 2)):
        k, kappa, mu = [1.0, 4.0, 9.0], [2.0, 10.0, 3.0], [0.5, 4.0, 1.0]
        assert B.hashin_shtrikman_conductivity(f, k, dim) == pytest.approx((k[expected],) * 2)
        hs = B.hashin_shtrikman_elastic(f, kappa, mu, dim)
        assert hs["bulk_lower"] == pytest.approx(kappa[expected])
        assert hs["bulk_upper"] == pytest.approx(kappa[expected])
        assert hs["shear_lower"] == pytest.approx(mu[expected])
        assert hs["shear_upper"] == pytest.approx(mu[expected])
    hs = B.hashin_shtrikman_elastic([0.4, 0.6], [3.0, 3.0], [1.2, 1.2], dim)
    assert list(hs.values()) == pytest.approx([3.0, 3.0, 1.2, 1.2])


def test_hs_elastic_3d_two_phase_textbook_form():
    # Hashin & Shtrikman (1963), two well-ordered phases (1 softer)
    k1, m1, k2, m2, f2 = 5.0, 2.0, 40.0, 25.0, 0.3
    f1 = 1 - f2
    kl = k1 + f2 / (1 / (k2 - k1) + 3 * f1 / (3 * k1 + 4 * m1))
    ku = k2 + f1 / (1 / (k1 - k2) + 3 * f2 / (3 * k2 + 4 * m2))
    ml = m1 + f2 / (1 / (m2 - m1) + 6 * f1 * (k1 + 2 * m1) / (5 * m1 * (3 * k1 + 4 * m1)))
    mu_ = m2 + f1 / (1 / (m1 - m2) + 6 * f2 * (k2 + 2 * m2) / (5 * m2 * (3 * k2 + 4 * m2)))
    hs = B.hashin_shtrikman_elastic([f1, f2], [k1, k2], [m1, m2], 3)
    assert [hs["bulk_lower"], hs["bulk_upper"], hs["shear_lower"], hs["shear_upper"]] == (
        pytest.approx([kl, ku, ml, mu_], rel=1e-13)
    )


def test_hs_elastic_2d_two_phase_hashin_1965_form():
    # Hashin (1965) transverse bounds of a fibre composite; k = plane-strain bulk = lambda + mu
    k1, m1, k2, m2, f2 = 4.0, 1.5, 30.0, 20.0, 0.45
    f1 = 1 - f2
    kl = k1 + f2 / (1 / (k2 - k1) + f1 / (k1 + m1))
    ku = k2 + f1 / (1 / (k1 - k2) + f2 / (k2 + m2))
    ml = m1 + f2 / (1 / (m2 - m1) + f1 * (k1 + 2 * m1) / (2 * m1 * (k1 + m1)))
    mu_ = m2 + f1 / (1 / (m1 - m2) + f2 * (k2 + 2 * m2) / (2 * m2 * (k2 + m2)))
    hs = B.hashin_shtrikman_elastic([f1, f2], [k1, k2], [m1, m2], 2)
    assert [hs["bulk_lower"], hs["bulk_upper"], hs["shear_lower"], hs["shear_upper"]] == (
        pytest.approx([kl, ku, ml, mu_], rel=1e-13)
    )


@pytest.mark.parametrize("f", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_hs_bulk_equals_composite_assemblages(f):
    ki, mi, km, mm = 20.0, 9.0, 3.0, 1.0  # stiff inclusion, soft matrix: the lower bounds
    for dim, lame, closed in (
        (2, coated_cylinder_bulk_lame, B.composite_cylinder_bulk_2d),
        (3, coated_sphere_bulk_lame, B.composite_sphere_bulk_3d),
    ):
        value = closed(f, ki, km, mm)
        if 0 < f < 1:
            assert value == pytest.approx(lame(f, ki, km, mm), rel=1e-12)
        hs = B.hashin_shtrikman_elastic([f, 1 - f], [ki, km], [mi, mm], dim)
        assert hs["bulk_lower"] == pytest.approx(value, rel=1e-12)
        # soft inclusion in a stiff matrix: the upper bound
        value = closed(f, km, ki, mi)
        if 0 < f < 1:
            assert value == pytest.approx(lame(f, km, ki, mi), rel=1e-12)
        hs = B.hashin_shtrikman_elastic([f, 1 - f], [km, ki], [mm, mi], dim)
        assert hs["bulk_upper"] == pytest.approx(value, rel=1e-12)


def test_hs_2d_brackets_dykhne_checkerboard():
    lo, up = B.hashin_shtrikman_conductivity([0.5, 0.5], [1.0, 10.0], 2)
    assert B.dykhne_checkerboard(1.0, 10.0) == pytest.approx(math.sqrt(10.0))
    assert lo < math.sqrt(10.0) < up
    # Keller duality of the 2D HS bounds themselves: k_HS^-(k1,k2) k_HS^+(1/k1,1/k2) = 1
    lo_d, up_d = B.hashin_shtrikman_conductivity([0.5, 0.5], [1.0, 0.1], 2)
    assert lo * up_d == pytest.approx(1.0) and up * lo_d == pytest.approx(1.0)


def test_hs_voids():
    lo, up = B.hashin_shtrikman_conductivity([0.3, 0.7], [0.0, 2.0], 3)
    assert lo == 0.0 and up == pytest.approx(2.0 * 2 * 0.7 / (2 + 0.3))  # Maxwell, porous
    hs = B.hashin_shtrikman_elastic([0.3, 0.7], [0.0, 5.0], [0.0, 2.0], 3)
    assert hs["bulk_lower"] == 0.0 and hs["shear_lower"] == 0.0
    # porous material, upper bulk: composite-sphere assemblage with empty cores
    assert hs["bulk_upper"] == pytest.approx(B.composite_sphere_bulk_3d(0.3, 0.0, 5.0, 2.0))


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("stiff_matrix", [True, False])
@pytest.mark.parametrize("f_core", [0.2, 0.6])
def test_hs_elastic_attained_by_sequential_laminates(dim, stiff_matrix, f_core):
    """Rank-3 (2D, hexagonal normals) / rank-6 (3D, icosahedral axes) laminates, equal weights.

    The normals average quartic polynomials of n exactly, so the laminate is isotropic and its
    moduli equal the HS formulas with the laminating (matrix) phase as reference medium
    (Francfort & Murat 1986): this checks the 2D and 3D shear formulas independently.
    """
    soft, stiff = (4.0, 1.5), (30.0, 20.0)  # (kappa, mu), well ordered
    mat, core = (stiff, soft) if stiff_matrix else (soft, stiff)
    Cm = iso_voigt(dim, lame_from_bulk(*mat, dim), mat[1])
    Cc = iso_voigt(dim, lame_from_bulk(*core, dim), core[1])
    normals = HEX_AXES if dim == 2 else ICOSA_AXES

    def lam(f, Cs, n):
        return B.laminate_stiffness(f, Cs, np.asarray(n, float), dim)

    Cstar = sequential_laminate(f_core, Cc, Cm, normals, lam)
    kappa, mu = T.bulk_shear_from_stiffness(Cstar, dim)
    np.testing.assert_allclose(
        Cstar, iso_voigt(dim, lame_from_bulk(kappa, mu, dim), mu), atol=1e-10
    )
    hs = B.hashin_shtrikman_elastic([f_core, 1 - f_core], [core[0], mat[0]], [core[1], mat[1]], dim)
    which = "upper" if stiff_matrix else "lower"
    assert kappa == pytest.approx(hs[f"bulk_{which}"], rel=1e-11)
    assert mu == pytest.approx(hs[f"shear_{which}"], rel=1e-11)


@pytest.mark.parametrize("dim", [2, 3])
def test_hs_walpole_bounds_contain_isotropic_laminates_not_well_ordered(dim):
    a, b = (30.0, 1.0), (3.0, 10.0)  # a: stiffer in bulk, softer in shear
    normals = HEX_AXES if dim == 2 else ICOSA_AXES
    for f_core in (0.25, 0.5, 0.75):
        for core, mat in ((a, b), (b, a)):
            Cm = iso_voigt(dim, lame_from_bulk(*mat, dim), mat[1])
            Cc = iso_voigt(dim, lame_from_bulk(*core, dim), core[1])
            Cstar = sequential_laminate(
                f_core, Cc, Cm, normals, lambda f, Cs, n: B.laminate_stiffness(f, Cs, n, dim)
            )
            kappa, mu = T.bulk_shear_from_stiffness(Cstar, dim)
            hs = B.hashin_shtrikman_elastic(
                [f_core, 1 - f_core], [core[0], mat[0]], [core[1], mat[1]], dim
            )
            assert hs["bulk_lower"] - 1e-10 <= kappa <= hs["bulk_upper"] + 1e-10
            assert hs["shear_lower"] - 1e-10 <= mu <= hs["shear_upper"] + 1e-10


@pytest.mark.parametrize("dim", [2, 3])
def test_hs_conductivity_attained_by_sequential_laminates(dim):
    k_soft, k_stiff, f_core = 1.0, 12.0, 0.4
    normals = list(np.eye(dim))  # axes average n n^T exactly
    for core, mat, which in ((k_soft, k_stiff, 1), (k_stiff, k_soft, 0)):
        Kstar = sequential_laminate(
            f_core, core * np.eye(dim), mat * np.eye(dim), normals, B.laminate_tensor
        )
        np.testing.assert_allclose(Kstar, Kstar[0, 0] * np.eye(dim), rtol=1e-12)
        bounds = B.hashin_shtrikman_conductivity([f_core, 1 - f_core], [core, mat], dim)
        assert Kstar[0, 0] == pytest.approx(bounds[which], rel=1e-12)


# ------------------------------------------------------------------------------------------
# laminates
# ------------------------------------------------------------------------------------------
def test_laminate_conductivity_and_tensor_isotropic():
    f, k = [0.25, 0.75], [2.0, 8.0]
    kn, kp = B.laminate_conductivity(f, k)
    assert kn == pytest.approx(1 / (0.25 / 2 + 0.75 / 8)) and kp == pytest.approx(6.5)
    K = B.laminate_tensor(f, [ki * np.eye(3) for ki in k], 2)
    np.testing.assert_allclose(K, np.diag([kp, kp, kn]), rtol=1e-13)
    n = np.array([1.0, 2.0, -0.5])
    n /= np.linalg.norm(n)
    K = B.laminate_tensor(f, [ki * np.eye(3) for ki in k], n * 3.0)
    np.testing.assert_allclose(K, kp * (np.eye(3) - np.outer(n, n)) + kn * np.outer(n, n))


def test_laminate_tensor_anisotropic_vs_direct_solution():
    rng = np.random.default_rng(RNG_SEED + 7)
    f = rng.dirichlet(np.ones(3))
    Ks = [random_spd(rng, 3) for _ in range(3)]
    n = rng.standard_normal(3)
    n /= np.linalg.norm(n)
    Kstar = B.laminate_tensor(f, Ks, n)
    # direct: unknowns a_i (3) and t; flux continuity n.K_i (e + a_i n) = t, sum f_i a_i = 0
    for e in np.eye(3):
        M = np.zeros((4, 4))
        rhs = np.zeros(4)
        for i, K in enumerate(Ks):
            M[i, i] = n @ K @ n
            M[i, 3] = -1.0
            rhs[i] = -(n @ K @ e)
            M[3, i] = f[i]
        sol = np.linalg.solve(M, rhs)
        q = sum(fi * K @ (e + sol[i] * n) for i, (fi, K) in enumerate(zip(f, Ks, strict=True)))
        np.testing.assert_allclose(Kstar @ e, q, rtol=1e-12)
    assert B.laminate_tensor([1.0], [Ks[0]], n) == pytest.approx(Ks[0])
    np.testing.assert_allclose(B.laminate_tensor([0.4, 0.6], [Ks[1], Ks[1]], n), Ks[1], rtol=1e-12)


@pytest.mark.parametrize("dim", [2, 3])
def test_laminate_stiffness_homogeneous(dim):
    C = random_spd(np.random.default_rng(RNG_SEED), 3 if dim == 2 else 6)
    for axis in range(dim):
        np.testing.assert_allclose(
            B.laminate_stiffness([0.3, 0.7], [C, C], axis, dim), C, rtol=1e-12
        )


@pytest.mark.parametrize("dim", [2, 3])
def test_laminate_stiffness_isotropic_backus(dim):
    f = np.array([0.2, 0.5, 0.3])
    lam = np.array([1.0, 12.0, 0.5])
    mu = np.array([0.8, 9.0, 3.0])
    Cs = [iso_voigt(dim, lam_i, mu_i) for lam_i, mu_i in zip(lam, mu, strict=True)]
    axis = dim - 1
    Cstar = B.laminate_stiffness(f, Cs, axis, dim)
    M = lam + 2 * mu
    cnn = 1 / np.sum(f / M)
    r = np.sum(f * lam / M)
    a = PAIRS[dim].index((axis, axis))
    tangential = [i for i in range(dim) if i != axis]
    assert Cstar[a, a] == pytest.approx(cnn)
    for t in tangential:
        b = PAIRS[dim].index((t, t))
        assert Cstar[a, b] == pytest.approx(r * cnn)
        assert Cstar[b, b] == pytest.approx(np.sum(f * (M - lam**2 / M)) + r**2 * cnn)
        pair = (min(t, axis), max(t, axis))
        assert Cstar[PAIRS[dim].index(pair), PAIRS[dim].index(pair)] == pytest.approx(
            1 / np.sum(f / mu)
        )
    if dim == 3:
        b, c = (PAIRS[3].index((t, t)) for t in tangential)
        assert Cstar[b, c] == pytest.approx(np.sum(f * (lam - lam**2 / M)) + r**2 * cnn)
        s = PAIRS[3].index((0, 1))
        assert Cstar[s, s] == pytest.approx(np.sum(f * mu))


@pytest.mark.parametrize("dim", [2, 3])
def test_laminate_stiffness_vs_partition_and_1d_fe(dim):
    rng = np.random.default_rng(RNG_SEED + 20 + dim)
    nv = 3 if dim == 2 else 6
    f = rng.dirichlet(np.ones(3))
    Cs = [random_spd(rng, nv, scale) for scale in (1.0, 10.0, 0.3)]
    for axis in range(dim):
        Cstar = B.laminate_stiffness(f, Cs, axis, dim)
        np.testing.assert_allclose(Cstar, laminate_partial_inversion(f, Cs, axis, dim), rtol=1e-10)
        np.testing.assert_allclose(Cstar, laminate_fe_1d(f, Cs, np.eye(dim)[axis], dim), rtol=1e-9)
    n = rng.standard_normal(dim)
    np.testing.assert_allclose(
        B.laminate_stiffness(f, Cs, n, dim), laminate_fe_1d(f, Cs, n, dim), rtol=1e-9
    )
    # energy sense: Reuss <= laminate <= Voigt
    Cstar = B.laminate_stiffness(f, Cs, n, dim)
    assert T.energy_order(B.reuss_bound(f, Cs), Cstar) > -1e-10
    assert T.energy_order(Cstar, B.voigt_bound(f, Cs)) > -1e-10


def test_laminate_stiffness_arbitrary_normal_vs_rotation():
    rng = np.random.default_rng(RNG_SEED + 30)
    f = [0.35, 0.65]
    Cs = [random_spd(rng, 6) for _ in range(2)]
    R = random_rotation_3d(rng)
    # laminate with normal e3 in the rotated frame, rotated back
    Cs_local = [T.rotate_stiffness(C, R.T) for C in Cs]
    expected = T.rotate_stiffness(B.laminate_stiffness(f, Cs_local, 2, 3), R)
    np.testing.assert_allclose(B.laminate_stiffness(f, Cs, R[:, 2], 3), expected, rtol=1e-10)


def test_laminate_antiplane_block_is_conductivity_laminate():
    """Monoclinic phases (x3 mirror): the (gamma_23, gamma_13) block decouples and laminates
    with an in-plane normal like a 2D conductivity (antiplane shear analogue)."""
    rng = np.random.default_rng(RNG_SEED + 40)
    inplane, anti = [0, 1, 2, 5], [3, 4]
    Cs, blocks = [], []
    for _ in range(3):
        C = np.zeros((6, 6))
        C[np.ix_(inplane, inplane)] = random_spd(rng, 4)
        C[np.ix_(anti, anti)] = random_spd(rng, 2)
        Cs.append(C)
        blocks.append(C[np.ix_([4, 3], [4, 3])])  # order (13, 23) ~ gradient (d/dx1, d/dx2)
    f = rng.dirichlet(np.ones(3))
    n2 = np.array([0.6, 0.8])
    Cstar = B.laminate_stiffness(f, Cs, np.append(n2, 0.0), 3)
    np.testing.assert_allclose(Cstar[np.ix_(inplane, anti)], 0.0, atol=1e-12)
    np.testing.assert_allclose(
        Cstar[np.ix_([4, 3], [4, 3])], B.laminate_tensor(f, blocks, n2), rtol=1e-12
    )


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: B.voigt_bound([0.5, 0.6], [1.0, 2.0]), "sum to 1"),
        (lambda: B.voigt_bound([1.2, -0.2], [1.0, 2.0]), "non-negative"),
        (lambda: B.voigt_bound([0.5, 0.5], [1.0, -2.0]), "negative"),
        (lambda: B.reuss_bound([0.5, 0.5], [1.0, float("nan")]), "NaN"),
        (lambda: B.reuss_bound([float("nan"), 0.5], [1.0, 1.0]), "NaN"),
        (lambda: B.voigt_bound([0.5, 0.5], [1.0, 2.0, 3.0]), "phases"),
        (lambda: B.reuss_bound([0.5, 0.5], [np.eye(2), -np.eye(2)]), "positive definite"),
        (lambda: B.hashin_shtrikman_conductivity([0.5, 0.5], [1.0, 2.0], 4), "dim"),
        (lambda: B.hashin_shtrikman_conductivity([0.5, 0.5], [1.0, -2.0], 2), "negative"),
        (lambda: B.hashin_shtrikman_elastic([0.5, 0.5], [1.0, 2.0], [1.0, -1.0], 3), "negative"),
        (lambda: B.hashin_shtrikman_elastic([0.5, 0.5], [1.0, 2.0], [1.0], 3), "values"),
        (lambda: B.hashin_shtrikman_elastic([0.5, 0.5], [1.0, 2.0], [1.0, 1.0], 1), "dim"),
        (lambda: B.hashin_shtrikman_elastic([], [], [], 3), "non-empty"),
        (lambda: B.laminate_conductivity([0.3, 0.3], [1.0, 2.0]), "sum to 1"),
        (lambda: B.laminate_tensor([0.5, 0.5], [np.eye(2)] * 2, [0.0, 0.0]), "non-zero"),
        (lambda: B.laminate_tensor([0.5, 0.5], [np.eye(2)] * 2, 2), "axis"),
        (lambda: B.laminate_stiffness([0.5, 0.5], [np.eye(3)] * 2, 0, 3), "6x6"),
        (lambda: B.laminate_stiffness([0.5, 0.5], [np.eye(3)] * 2, [1.0, 0.0, 0.0], 2), "vector"),
        (lambda: B.dykhne_checkerboard(-1.0, 2.0), "positive"),
        (lambda: B.composite_sphere_bulk_3d(1.5, 1.0, 1.0, 1.0), r"\[0, 1\]"),
        (lambda: B.composite_cylinder_bulk_2d(0.5, 1.0, 1.0, 0.0), "positive"),
        (lambda: B.composite_cylinder_bulk_2d(0.5, float("nan"), 1.0, 1.0), "finite"),
    ],
)
def test_bounds_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
