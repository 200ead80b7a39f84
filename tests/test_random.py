"""Random microstructures: RSA disks/spheres, level-cut Gaussian fields, descriptors.

References used (all independent of the code under test):

* non-overlap: brute force over all :math:`3^d` periodic translates of every pair;
* the covariance of the Gaussian field: :math:`\\exp(-r^2/2\\ell^2)`; the two-point probability
  of its level cut: the bivariate normal orthant probability (``scipy.stats.multivariate_normal``);
* :math:`S_2` of a single disk: the area of the lens of two disks at distance :math:`r`.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal, norm

from multiscale.mesh import (
    InclusionLayout,
    check_periodic,
    gaussian_random_field,
    random_inclusion_cell,
    random_sequential_addition,
    rasterize,
    realized_volume_fraction,
    thresholded_gaussian_field,
    two_point_correlation,
    voxel_cell,
)


def _brute_force_gap(layout: InclusionLayout) -> float:
    """Smallest surface distance over all pairs and all 3^d translates (self-copies too)."""
    best = math.inf
    n, d = layout.count, layout.dim
    for i, j in itertools.combinations_with_replacement(range(n), 2):
        for s in itertools.product((-1, 0, 1), repeat=d):
            if i == j and not any(s):
                continue
            x = layout.centers[j] + np.array(s) * layout.size
            gap = np.linalg.norm(layout.centers[i] - x) - layout.radii[i] - layout.radii[j]
            best = min(best, gap)
    return best


@pytest.mark.parametrize(
    ("size", "vf", "delta"),
    [((6.0, 6.0), 0.35, 0.0), ((5.0, 7.0), 0.3, 0.4), ((3.0, 3.0, 3.0), 0.2, 0.2)],
)
def test_rsa_disjoint_with_gap_exact_fraction(size, vf, delta):
    gap = 0.08
    layout = random_sequential_addition(size, vf, 0.5, gap=gap, polydispersity=delta, seed=11)
    # geometric fraction: exact by construction (radii scaled), checked by summing volumes here
    d = len(size)
    vol = np.sum(np.pi * layout.radii**2 if d == 2 else 4 / 3 * np.pi * layout.radii**3)
    assert vol / np.prod(size) == pytest.approx(vf, rel=1e-12)
    assert _brute_force_gap(layout) >= gap * (1 - 1e-12)
    assert np.all((layout.centers >= 0) & (layout.centers < layout.size))
    spread = layout.radii.max() / layout.radii.min()
    assert spread <= (1 + delta) / (1 - delta) + 1e-12
    if delta:
        assert spread > 1.2  # actually polydisperse
    # face/edge/corner clearance: |dist to the flat - r| >= face_gap = gap/2
    dface = np.minimum(layout.centers, layout.size - layout.centers)
    for k in range(1, d + 1):
        for axes in itertools.combinations(range(d), k):
            dist = np.linalg.norm(dface[:, list(axes)], axis=1)
            assert np.all(np.abs(dist - layout.radii) >= gap / 2 - 1e-12)


def test_rsa_seed_reproducible():
    a = random_sequential_addition((5.0, 5.0), 0.3, 0.5, seed=3)
    b = random_sequential_addition((5.0, 5.0), 0.3, 0.5, seed=3)
    c = random_sequential_addition((5.0, 5.0), 0.3, 0.5, seed=4)
    ss = np.random.SeedSequence(42, spawn_key=(1, 2))
    d1 = random_sequential_addition((5.0, 5.0), 0.3, 0.5, seed=ss)
    d2 = random_sequential_addition(
        (5.0, 5.0), 0.3, 0.5, seed=np.random.SeedSequence(42, spawn_key=(1, 2))
    )
    assert np.array_equal(a.centers, b.centers) and np.array_equal(a.radii, b.radii)
    assert not np.allclose(a.centers, c.centers)
    assert np.array_equal(d1.centers, d2.centers)


def test_rsa_unreachable_fraction_names_achieved():
    with pytest.raises(ValueError, match=r"achieved volume fraction 0\.\d+ of the requested 0\.6"):
        random_sequential_addition((6.0, 6.0), 0.6, 0.5, gap=0.05, max_attempts=2000, seed=1)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (((-1.0, 2.0), 0.3, 0.5), {}, "positive edge lengths"),
        (((4.0, 4.0), 1.2, 0.5), {}, "volume_fraction"),
        (((4.0, 4.0), 0.3, -0.5), {}, "radius"),
        (((4.0, 4.0), 0.3, 0.5), {"gap": -0.1}, "gap"),
        (((4.0, 4.0), 0.3, 0.5), {"polydispersity": 1.0}, "polydispersity"),
        (((0.9, 0.9), 0.7, 0.5), {"gap": 0.2}, "own periodic copy"),
    ],
)
def test_rsa_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_sequential_addition(*args, **kwargs)


@pytest.mark.mpi
def test_random_disk_cell_periodic_and_fraction(comm):
    layout = random_sequential_addition((4.0, 4.0), 0.3, 0.5, seed=5, polydispersity=0.2)
    h = 0.1
    raw = random_inclusion_cell(comm, layout, h=h)
    check_periodic(raw)  # raises NonPeriodicMeshError otherwise
    phi_raw = realized_volume_fraction(raw)
    # inscribed polygons: deficit ~ phi (h/r)^2 / 6 per disk (chords of length ~h); positive
    r_min = layout.radii.min()
    assert 0 < 0.3 - phi_raw < 0.3 * (h / r_min) ** 2 / 6 * 2
    cell = random_inclusion_cell(comm, layout, h=h, match_fraction=True)
    check_periodic(cell)
    assert realized_volume_fraction(cell) == pytest.approx(0.3, abs=1e-3)


@pytest.mark.mpi
def test_random_sphere_cell_periodic(comm):
    layout = random_sequential_addition((2.2, 2.2, 2.2), 0.15, 0.5, seed=2)
    cell = random_inclusion_cell(comm, layout, h=0.3, match_fraction=True)
    check_periodic(cell)
    assert realized_volume_fraction(cell) == pytest.approx(0.15, abs=5e-3)


def test_gaussian_field_covariance():
    """Empirical covariance along the axes vs exp(-r^2 / 2 l^2); 16 fields of 256^2, l = 4 px.

    The sample variance of one field scatters by 0.04 (measured over 60 seeds), so the mean over
    16 fields by 0.01: tolerance 0.04 absolute (4 standard deviations).
    """
    ell, n = 4.0, 256
    lags = np.arange(0, 13)
    cov = np.zeros(lags.size)
    var = 0.0
    nfields = 16
    for seed in range(nfields):
        x = gaussian_random_field(n, (n, n), ell, seed=seed)
        var += x.var() / nfields
        for k, lag in enumerate(lags):
            cov[k] += (
                0.5 * (np.mean(x * np.roll(x, lag, 0)) + np.mean(x * np.roll(x, lag, 1))) / nfields
            )
    assert var == pytest.approx(1.0, abs=0.04)
    np.testing.assert_allclose(cov, np.exp(-(lags**2) / (2 * ell**2)), atol=0.04)


def test_level_cut_two_point_correlation():
    """S2 of the level cut vs the bivariate normal orthant probability P(X0 > t, Xr > t)."""
    ell, n, phi = 4.0, 256, 0.3
    t = norm.ppf(1 - phi)
    acc = None
    for seed in range(6):
        img = thresholded_gaussian_field(n, (n, n), ell, phi, seed=100 + seed)
        assert abs(img.volume_fraction - phi) <= 1.0 / n**2  # exact_fraction: within one pixel
        s2 = two_point_correlation(img, r_max=12.0)
        acc = s2.s2 / 6 if acc is None else acc + s2.s2 / 6
    r = s2.r
    rho = np.exp(-(r**2) / (2 * ell**2))
    ref = np.array(
        [
            phi if rk == 0 else multivariate_normal([0, 0], [[1, p], [p, 1]]).cdf([-t, -t])
            for rk, p in zip(r, rho, strict=True)
        ]
    )
    assert acc[0] == pytest.approx(phi, abs=1.0 / n**2)  # S2(0) = realized fraction
    np.testing.assert_allclose(acc, ref, atol=0.012)
    assert acc[-1] == pytest.approx(phi**2, abs=0.012)


def test_two_point_correlation_single_disk():
    """One disk of radius R in the unit square: S2(r) = lens area(r) for r < 1 - 2R."""
    R, n = 0.2, 400
    layout = InclusionLayout(np.array([[0.37, 0.61]]), np.array([R]), np.ones(2), 0.0, 0.0)
    img = rasterize(layout, n)
    assert img.mean() == pytest.approx(math.pi * R**2, rel=5e-3)
    s2 = two_point_correlation(img, (1.0, 1.0), r_max=0.5)
    r = s2.r
    lens = np.where(
        r < 2 * R,
        2 * R**2 * np.arccos(np.minimum(r / (2 * R), 1))
        - 0.5 * r * np.sqrt(np.maximum(4 * R**2 - r**2, 0)),
        0.0,
    )
    np.testing.assert_allclose(
        s2.s2[r < 1 - 2 * R], lens[r < 1 - 2 * R], atol=0.01 * math.pi * R**2
    )


@pytest.mark.mpi
@pytest.mark.parametrize("dim", [2, 3])
def test_voxel_cell_periodic_fraction_exact(comm, dim):
    n = 24 if dim == 2 else 8
    img = thresholded_gaussian_field(n, (3.0,) * dim, 0.5, 0.35, seed=9)
    cell = voxel_cell(comm, img)
    check_periodic(cell)
    assert realized_volume_fraction(cell) == pytest.approx(img.volume_fraction, abs=1e-12)
    assert abs(img.volume_fraction - 0.35) <= 0.5 / n**dim
    sub = voxel_cell(comm, img, subdivisions=2, simplex=True)
    check_periodic(sub)
    assert realized_volume_fraction(sub) == pytest.approx(img.volume_fraction, abs=1e-12)
