"""SVE ensembles and RVE size: energy ordering, bounds, rank independence, statistics, fits.

References: the Huet/Hazanov energy ordering of the apparent tensors; the Hashin–Shtrikman bounds
(closed form, :mod:`multiscale.bounds`); ``scipy.stats`` for the sample statistics; closed-form
solutions of the integral-range and RVE-size formulas on synthetic data.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from mpi4py import MPI
from scipy import stats

from multiscale.bounds import hashin_shtrikman_conductivity
from multiscale.ensemble import (
    EnsembleConfig,
    Microstructure,
    PhaseLaw,
    bc_gap_size,
    cv_exponent,
    describe,
    fit_integral_range,
    point_variance,
    run_ensemble,
    rve_size_report,
    solve_realization,
    statistical_rve_size,
)

CONTRAST = PhaseLaw("conductivity", {"k": 1.0}, {"k": 10.0})


def _disks(sizes=(2.0, 4.0), n=4, seed=3, resolution=5.0):
    micro = Microstructure("disks", 0.3, resolution=resolution, fraction_tol=2e-3)
    return EnsembleConfig(micro, CONTRAST, sizes, n, seed=seed)


@pytest.fixture(scope="module")
def disk_ensemble():
    return run_ensemble(MPI.COMM_WORLD, _disks())


@pytest.mark.mpi
def test_energy_order_every_realization(disk_ensemble):
    """C_SUBC <= C_PBC <= C_KUBC for every realization: min eigenvalue of the difference >= 0
    (relative to the larger tensor; tolerance 1e-10 for round-off)."""
    for reals in disk_ensemble.realizations:
        for r in reals:
            assert set(r.order) == {"subc<=periodic", "periodic<=kubc"}
            assert min(r.order.values()) >= -1e-10, r.order
            assert r.hill_mandel < 1e-10
            assert r.properties["subc"] <= r.properties["periodic"] <= r.properties["kubc"]
    assert disk_ensemble.worst_order() >= -1e-10


@pytest.mark.mpi
def test_fraction_and_hashin_shtrikman(disk_ensemble):
    """Realized fractions within fraction_tol; mean PBC conductivity inside the HS bounds of the
    realized fraction; the BC means approach each other as L grows."""
    for reals in disk_ensemble.realizations:
        for r in reals:
            assert abs(r.volume_fraction - 0.3) <= 2e-3
    for m, p in enumerate(disk_ensemble.volume_fraction_series()):
        lo, hi = hashin_shtrikman_conductivity([1 - p, p], [1.0, 10.0], 2)
        assert lo <= disk_ensemble.statistics[m]["periodic"].mean <= hi
    gap = disk_ensemble.series("kubc") - disk_ensemble.series("subc")
    assert np.all(np.diff(gap) < 0)
    json.dumps(disk_ensemble.to_dict())  # JSON-serializable


@pytest.mark.mpi
def test_same_statistics_on_any_rank_count(comm, disk_ensemble):
    """The ensemble on COMM_WORLD (distributed) equals the one each rank computes alone."""
    alone = run_ensemble(MPI.COMM_SELF, _disks())
    for ra, rb in zip(disk_ensemble.realizations, alone.realizations, strict=True):
        for a, b in zip(ra, rb, strict=True):
            assert a.seed == b.seed
            for bc in a.tensors:
                np.testing.assert_allclose(a.tensors[bc], b.tensors[bc], rtol=1e-10, atol=0)
    for sa, sb in zip(disk_ensemble.statistics, alone.statistics, strict=True):
        for bc in sa:
            assert sa[bc].mean == pytest.approx(sb[bc].mean, rel=1e-10)
            assert sa[bc].std == pytest.approx(sb[bc].std, rel=1e-8)


def test_seed_reproduces_microstructure_and_tensor():
    config = _disks(sizes=(2.5,), n=2, seed=17)
    a = solve_realization(config, 0, 1, MPI.COMM_SELF)
    b = solve_realization(config, 0, 1, MPI.COMM_SELF)
    c = solve_realization(config, 0, 0, MPI.COMM_SELF)
    assert a.seed == b.seed != c.seed
    assert a.volume_fraction == b.volume_fraction
    for bc in a.tensors:
        np.testing.assert_allclose(a.tensors[bc], b.tensors[bc], rtol=1e-12, atol=0)
    assert not np.allclose(a.tensors["periodic"], c.tensors["periodic"], rtol=1e-6)


def test_realization_error_estimate_bounds_the_change_under_refinement():
    """2D conductivity: each realization's periodic tensor carries the guaranteed primal/dual
    gap.  The same window meshed twice as finely has an upper bound closer to the exact tensor,
    0 <= A_coarse - A_fine <= A_coarse - A, so the gap must bound their difference."""
    coarse = solve_realization(_disks(sizes=(2.5,), n=2, seed=17), 0, 0, MPI.COMM_SELF)
    fine = solve_realization(
        _disks(sizes=(2.5,), n=2, seed=17, resolution=10.0), 0, 0, MPI.COMM_SELF
    )
    A_c, A_f = coarse.tensors["periodic"], fine.tensors["periodic"]
    change = np.linalg.norm(A_c - A_f, 2) / np.linalg.norm(A_c, 2)
    assert np.linalg.eigvalsh(A_c - A_f).min() > 0  # the finer upper bound is lower
    assert 0 < change <= coarse.error_estimate, (change, coarse.error_estimate)
    assert fine.error_estimate < coarse.error_estimate
    config = _disks(sizes=(2.5,), n=2, seed=17)
    off = EnsembleConfig(config.microstructure, CONTRAST, (2.5,), 2, seed=17, error_estimate="off")
    assert solve_realization(off, 0, 0, MPI.COMM_SELF).error_estimate is None


@pytest.mark.slow
def test_cv_exponent_gaussian_field(comm):
    r"""CV of the PBC conductivity of level-cut Gaussian fields (2 px per correlation length)
    falls as L^{-d/2} = L^{-1}: with 40 realizations the fitted exponent scatters by about 0.12
    (sampling error of a standard deviation is 1/sqrt(2(n-1))); tolerance 0.3.  Serial only
    (72 s): the distribution of realizations over ranks is
    :func:`test_same_statistics_on_any_rank_count`'s subject."""
    micro = Microstructure("gaussian", 0.3, dim=2, resolution=2.0)
    config = EnsembleConfig(micro, CONTRAST, (8.0, 16.0, 32.0), 40, seed=5, bcs=("periodic",))
    result = run_ensemble(comm, config)
    fit = cv_exponent(result.sizes, result.series("periodic", "cv"))
    assert fit.slope == pytest.approx(-1.0, abs=0.3)
    for m, p in enumerate(result.volume_fraction_series()):
        assert abs(p - 0.3) <= 0.5 / (config.sizes[m] * 2) ** 2


def test_describe_matches_scipy():
    x = np.array([1.7, 1.9, 1.65, 1.72, 1.81, 1.77])
    s = describe(x, 0.9)
    lo, hi = stats.t.interval(0.9, x.size - 1, loc=x.mean(), scale=stats.sem(x))
    assert s.mean == pytest.approx(np.mean(x), rel=1e-14)
    assert s.std == pytest.approx(np.std(x, ddof=1), rel=1e-14)
    assert s.cv == pytest.approx(np.std(x, ddof=1) / np.mean(x), rel=1e-14)
    assert (s.ci_low, s.ci_high) == pytest.approx((lo, hi), rel=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        describe([1.0])


def test_integral_range_and_rve_size_closed_form():
    """Synthetic D^2(V) = D^2 (A/V)^alpha: the fit recovers A and alpha; the RVE volume solves
    2 D(V)/(Z sqrt n) = eps (Kanit et al. 2003, eq. 24), and for alpha = 1 equals
    4 D^2 A / (eps^2 Z^2 n)."""
    d2 = point_variance(0.3, 1.0, 10.0)
    assert d2 == pytest.approx(0.21 * 81, rel=1e-14)
    V = np.array([4.0, 16.0, 64.0, 256.0])
    for alpha in (1.0, 0.8):
        fit = fit_integral_range(V, d2 * (0.05 / V) ** alpha, d2)
        assert fit.integral_range == pytest.approx(0.05, rel=1e-10)
        assert fit.exponent == pytest.approx(alpha, rel=1e-10)
        vol, size = statistical_rve_size(fit, 1.7, 0.01, 5, 2)
        assert 2 * math.sqrt(fit.variance(vol)) / (1.7 * math.sqrt(5)) == pytest.approx(0.01)
        assert size == pytest.approx(math.sqrt(vol), rel=1e-14)
    fixed = fit_integral_range(V, d2 * 0.05 / V, d2, free_exponent=False)
    vol, _ = statistical_rve_size(fixed, 1.7, 0.01, 5, 2)
    assert vol == pytest.approx(4 * d2 * 0.05 / (0.01**2 * 1.7**2 * 5), rel=1e-10)
    with pytest.raises(ValueError, match="does not decrease"):
        fit_integral_range(V, V, d2)


def test_bc_gap_size_closed_form():
    L = np.array([2.0, 4.0, 8.0])
    g = bc_gap_size(L, 0.6 * L**-0.9, 0.01)
    assert g.fit.slope == pytest.approx(-0.9, rel=1e-12)
    assert g.size == pytest.approx((0.6 / 0.01) ** (1 / 0.9), rel=1e-10)
    assert g.first_measured is None
    assert bc_gap_size(L, 0.6 * L**-0.9, 0.2).first_measured == 4.0


def _independent_report(result, eps_rel: float, n: int, free: bool) -> dict[str, float]:
    """The integral range, exponent and RVE size recomputed here from the raw realization
    values with numpy: sample variances, p(1-p)(z1-z2)^2, a log-log least-squares line."""
    props = [np.array([r.properties["periodic"] for r in reals]) for reals in result.realizations]
    L = np.array(result.config.sizes)
    V, var = L**2, np.array([np.var(z, ddof=1) for z in props])
    p = np.mean([r.volume_fraction for r in result.realizations[-1]])
    d2 = p * (1 - p) * (10.0 - 1.0) ** 2  # conductivities 1 and 10 (CONTRAST)
    if free:
        slope, intercept = np.polyfit(np.log(V), np.log(var), 1)
        alpha = -slope
        A3 = (np.exp(intercept) / d2) ** (1 / alpha) if alpha > 0 else np.nan
    else:
        alpha, A3 = 1.0, float(np.exp(np.mean(np.log(V * var / d2))))
    target = (eps_rel * abs(np.mean(props[-1])) * math.sqrt(n) / 2) ** 2
    volume = A3 * (d2 / target) ** (1 / alpha) if alpha > 0 else np.nan
    cv = np.array([np.std(z, ddof=1) / np.mean(z) for z in props])
    return {
        "A3": A3,
        "alpha": alpha,
        "volume": volume,
        "cv_slope": np.polyfit(np.log(L), np.log(cv), 1)[0],
    }


@pytest.mark.mpi
@pytest.mark.parametrize("free", [True, False])
def test_report_equals_an_independent_computation(disk_ensemble, free):
    ref = _independent_report(disk_ensemble, 0.05, 3, free)
    if ref["alpha"] <= 0:  # four realizations of two small windows: the variance may not fall
        with pytest.raises(ValueError, match="does not decrease with the volume"):
            rve_size_report(disk_ensemble, eps_rel=0.05, n=3, gap_tol=0.05, free_exponent=free)
        return
    rep = rve_size_report(disk_ensemble, eps_rel=0.05, n=3, gap_tol=0.05, free_exponent=free)
    assert rep.integral_range.integral_range == pytest.approx(ref["A3"], rel=1e-10)
    assert rep.integral_range.exponent == pytest.approx(ref["alpha"], rel=1e-10)
    assert rep.rve_volume == pytest.approx(ref["volume"], rel=1e-10)
    assert rep.rve_size == pytest.approx(math.sqrt(ref["volume"]), rel=1e-10)
    assert rep.cv_fit["periodic"].slope == pytest.approx(ref["cv_slope"], rel=1e-10)
    d = rep.to_dict()
    assert d["bc_gap"]["gap_exponent"] < 0  # the BC gap closes with L: 0.34 -> 0.19 in the README
    json.dumps(d)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Microstructure("squares", 0.3), "unknown microstructure"),
        (lambda: Microstructure("disks", 1.3), "volume_fraction"),
        (lambda: PhaseLaw("conductivity", {"k": 1.0}, {"E": 1.0, "nu": 0.3}), "keys"),
        (lambda: _disks(sizes=(4.0, 2.0)), "increasing"),
        (lambda: _disks(sizes=(-1.0, 2.0)), "positive"),
        (lambda: _disks(n=1), "realizations"),
    ],
)
def test_config_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_unreachable_fraction_in_ensemble():
    micro = Microstructure("disks", 0.3, resolution=2.0, fraction_tol=1e-6, match_fraction=False)
    config = EnsembleConfig(micro, CONTRAST, (2.0,), 2, seed=1)
    with pytest.raises(ValueError, match=r"realized volume fraction 0\.\d+ .* misses the target"):
        solve_realization(config, 0, 0, MPI.COMM_SELF)
