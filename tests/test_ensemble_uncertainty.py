"""Bootstrap intervals of the RVE-size study: coverage, undetermined exponents, the CLI, MPI.

References: synthetic samples whose CV and CV exponent the test sets (coverage over 200 seeded
experiments); a plain loop over the documented index draws with numpy's std and polyfit (the
percentile interval); the realizations written in the JSON with numpy (the CVs, the CV exponent,
the integral range and the RVE size from their defining formulas) and ``scipy.stats.t`` (the
precision record); the same ensemble solved alone on every rank (rank independence).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI
from scipy import stats

from multiscale.cli import main
from multiscale.cli.rve_size import load_config
from multiscale.ensemble import (
    BootstrapOptions,
    EnsembleConfig,
    Microstructure,
    PhaseLaw,
    cv_uncertainty,
    run_ensemble,
    study_uncertainty,
)

L = np.array([2.0, 4.0, 8.0, 16.0])
CV_TRUE = 0.2 / L  # CV = 0.2 L^-1: exponent -1


def _draw(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    """Samples of mean 1 and CV ``CV_TRUE`` per size (last-but-one axis), shape (..., M, n)."""
    cv = CV_TRUE[:, None]
    if kind == "normal":
        return 1.0 + cv * rng.standard_normal(shape)
    s = np.sqrt(np.log1p(cv**2))  # lognormal of mean 1 and CV cv
    return np.exp(-0.5 * s**2 + s * rng.standard_normal(shape))


@pytest.mark.parametrize("kind", ["normal", "lognormal"])
def test_coverage_of_cv_and_exponent(kind):
    """95% BCa intervals over 200 seeded experiments (30 realizations at 4 sizes) contain the true
    exponent -1 and the true CVs at about the nominal rate.

    Bounds: a binomial count of 200 at p = 0.95 has sd 1.5% (800 CV intervals: 0.8%); the upper
    bounds are nominal + 2.6 sd (0.99) and + 3.9 sd (0.98); the lower bounds allow 3 sd plus the
    known O(1/n) under-coverage of bootstrap intervals of a scale parameter at n = 30 (a few %;
    measured here 0.915-0.96 for the exponent and 0.89-0.94 for the CVs)."""
    E, n = 200, 30
    data = _draw(np.random.default_rng(20261130), kind, (E, L.size, n))
    hit_exp, hit_cv = 0, 0
    for e in range(E):
        u = cv_uncertainty(L, list(data[e]), options=BootstrapOptions(seed=e))
        lo, hi = u.exponent_interval
        hit_exp += lo <= -1.0 <= hi
        hit_cv += sum(a <= c <= b for (a, b), c in zip(u.cv_interval, CV_TRUE, strict=True))
        assert not u.warnings or all("do not determine" in w for w in u.warnings)
    assert 0.85 <= hit_exp / E <= 0.99, hit_exp / E
    assert 0.88 <= hit_cv / (E * L.size) <= 0.98, hit_cv / (E * L.size)


def test_percentile_interval_equals_a_loop_over_the_draws():
    """method="percentile": the documented draw (default_rng(seed).integers per size, in order),
    CV by numpy std/mean and the exponent by np.polyfit of every resample in a Python loop, the
    interval by np.quantile."""
    rng = np.random.default_rng(7)
    samples = [1.0 + c * rng.standard_normal(12) for c in CV_TRUE]
    B, seed = 300, 11
    u = cv_uncertainty(
        L,
        samples,
        confidence=0.9,
        options=BootstrapOptions(resamples=B, seed=seed, method="percentile"),
    )
    gen = np.random.default_rng(seed)
    idx = [gen.integers(0, 12, size=(B, 12)) for _ in L]
    cv = np.array(
        [
            [np.std(z[i[b]], ddof=1) / np.mean(z[i[b]]) for z, i in zip(samples, idx, strict=True)]
            for b in range(B)
        ]
    )
    slope = np.array([np.polyfit(np.log(L), np.log(row), 1)[0] for row in cv])
    ref_cv = np.quantile(cv, [0.05, 0.95], axis=0).T
    np.testing.assert_allclose(np.array(u.cv_interval), ref_cv, rtol=1e-12)
    np.testing.assert_allclose(u.exponent_interval, np.quantile(slope, [0.05, 0.95]), rtol=1e-12)
    ref_point = np.polyfit(np.log(L), np.log([np.std(z, ddof=1) / np.mean(z) for z in samples]), 1)
    assert u.exponent == pytest.approx(ref_point[0], rel=1e-12)


def test_three_realizations_cannot_determine_the_exponent():
    """3 realizations per size: the exponent interval is wider than 1, a warning says the data do
    not determine it, and no size gets a CV interval."""
    data = _draw(np.random.default_rng(3), "normal", (L.size, 3))
    u = cv_uncertainty(L, list(data), label="periodic")
    lo, hi = u.exponent_interval
    assert hi - lo > 1.0
    assert u.cv_interval == [None] * L.size
    text = "\n".join(u.warnings)
    assert "do not determine the CV exponent of periodic" in text
    assert text.count("too few for a CV interval") == L.size
    assert "zero CV" in text  # 1 in 9 resamples of 3 values repeats one value


STUDY = """
sizes = [2.0, 3.0]
realizations = 5
seed = 2
bcs = ["periodic"]
[microstructure]
kind = "disks"
volume_fraction = 0.25
resolution = 4
fraction_tol = 0.005
[laws]
physics = "conductivity"
matrix = {k = 1.0}
inclusion = {k = 5.0}
[rve]
eps_rel = 0.05
gap_tol = 0.1
free_exponent = false
[uncertainty]
resamples = 1000
seed = 3
[discretization]
factor = 2
[precision]
target = 0.001
of = "mean"
batch = 1
max_realizations = 6
"""


def _inside(value, pair) -> bool:
    lo, hi = pair
    return (lo is None or lo <= value) and (hi is None or value <= hi)


def _reference_from_realizations(data: dict, study: dict, bc: str) -> dict[str, object]:
    """The point estimates recomputed from the realizations in the JSON with plain numpy, from
    the definitions (Kanit et al. 2003; ``multiscale/ensemble/rve_size.py``): per size the CV
    s/|mean| (s with n-1), the CV exponent as the slope of np.polyfit of log CV against log L;
    the point variance D^2 = p(1-p)(Z_1-Z_2)^2 with p the mean realized fraction of the largest
    windows; D^2(V) = D^2 (A_3/V)^alpha fitted on log D^2(V) against log V (slope -alpha free,
    or alpha = 1 and log A_3 the mean of log(V D^2(V)/D^2)); V_RVE = A_3 (D^2/t)^(1/alpha) with
    t = (eps_rel |mean| sqrt(n)/2)^2 at the largest size, L_RVE = V_RVE^(1/d)."""
    cfg = data["config"]
    dim = cfg["microstructure"]["dim"]
    sizes = np.array([s["size"] for s in data["sizes"]], dtype=float)
    z = [np.array([r["properties"][bc] for r in s["realizations"]]) for s in data["sizes"]]
    cv = np.array([np.std(x, ddof=1) / abs(np.mean(x)) for x in z])
    exponent = np.polyfit(np.log(sizes), np.log(cv), 1)[0]
    p = np.mean([r["volume_fraction"] for r in data["sizes"][-1]["realizations"]])
    z1, z2 = cfg["laws"]["matrix"]["k"], cfg["laws"]["inclusion"]["k"]
    point_var = p * (1 - p) * (z1 - z2) ** 2
    volume = sizes**dim
    var = np.array([np.var(x, ddof=1) for x in z])
    rve = study.get("rve", {})
    if rve.get("free_exponent", True):
        slope, logc = np.polyfit(np.log(volume), np.log(var), 1)
        alpha = -slope
        A = np.exp((logc - np.log(point_var)) / alpha)
    else:
        alpha = 1.0
        A = np.exp(np.mean(np.log(volume * var / point_var)))
    t = (rve.get("eps_rel", 0.01) * abs(np.mean(z[-1])) * np.sqrt(rve.get("n", 1)) / 2) ** 2
    V = A * (point_var / t) ** (1 / alpha)
    return {"cv": cv, "exponent": exponent, "A": A, "alpha": alpha, "V": V, "L": V ** (1 / dim)}


@pytest.mark.mpi
def test_cli_writes_intervals(tmp_path):
    """A tiny real study: the JSON holds the intervals, the point estimates lie inside them and
    equal (uncertainty block and report alike) a numpy recomputation from the realizations, and
    the precision record agrees with Student-t half-widths recomputed from the realizations."""
    cfg = Path(MPI.COMM_WORLD.bcast(str(tmp_path / "study.toml"), root=0))
    out = cfg.with_name("summary.json")
    if MPI.COMM_WORLD.rank == 0:
        cfg.write_text(STUDY)
    MPI.COMM_WORLD.Barrier()
    assert main(["rve-size", str(cfg), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    u = data["uncertainty"]
    M = len(data["sizes"])
    assert len(u["cv_interval"]["periodic"]) == M
    for pair in [*u["cv_interval"]["periodic"], u["exponent_interval"]["periodic"]]:
        assert len(pair) == 2
    for key in ("integral_range_interval", "rve_size_interval"):
        assert len(u[key]) == 2
    assert isinstance(data["warnings"], list) and all(isinstance(w, str) for w in data["warnings"])
    used = data["realizations_used"]
    assert used == [len(s["realizations"]) for s in data["sizes"]]
    for v, pair in zip(u["cv"]["periodic"], u["cv_interval"]["periodic"], strict=True):
        assert _inside(v, pair)
    assert _inside(u["exponent"]["periodic"], u["exponent_interval"]["periodic"])
    assert _inside(u["integral_range"], u["integral_range_interval"])
    assert _inside(u["rve_size"], u["rve_size_interval"])
    # the point estimates (uncertainty block and report) against numpy from the realizations
    ref = _reference_from_realizations(data, tomllib.loads(STUDY), "periodic")
    rep = data["rve"]
    np.testing.assert_allclose(u["cv"]["periodic"], ref["cv"], rtol=1e-10)
    cv_stats = [s["statistics"]["periodic"]["cv"] for s in data["sizes"]]
    np.testing.assert_allclose(cv_stats, ref["cv"], rtol=1e-10)
    for got in (u["exponent"]["periodic"], rep["cv_exponent"]["periodic"]):
        assert got == pytest.approx(ref["exponent"], rel=1e-10)
    for got in (u["integral_range"], rep["integral_range"]["integral_range"]):
        assert got == pytest.approx(ref["A"], rel=1e-10)
    assert u["integral_exponent"] == pytest.approx(ref["alpha"], rel=1e-10)
    assert rep["rve_volume"] == pytest.approx(ref["V"], rel=1e-10)
    for got in (u["rve_size"], rep["rve_size"]):
        assert got == pytest.approx(ref["L"], rel=1e-10)
    # precision: relative Student-t half-width of the mean per size, from the realizations
    p = data["precision"]
    half = []
    for s in data["sizes"]:
        z = np.array([r["properties"]["periodic"] for r in s["realizations"]])
        t = stats.t.ppf(0.975, z.size - 1)
        half.append(t * np.std(z, ddof=1) / np.sqrt(z.size) / np.mean(z))
    np.testing.assert_allclose(p["achieved"], half, rtol=1e-10)
    assert p["met"] == all(h <= 0.001 for h in half)
    for h, n in zip(half, used, strict=True):
        assert h <= 0.001 or n == 6  # a size that misses the target got the maximum
    assert p["met"] or any("precision target" in w for w in data["warnings"])
    disc = u["discretization"]
    assert disc["error"]["periodic"] == pytest.approx(abs(np.subtract(*disc["values"]["periodic"])))


@pytest.mark.mpi
def test_intervals_do_not_depend_on_the_rank_count():
    """The ensemble spread over the ranks and the same ensemble solved alone on every rank give
    the same intervals; all ranks hold the same numbers; an ensemble extended from 4 to 5
    realizations equals a fresh one of 5."""
    micro = Microstructure("disks", 0.3, resolution=4.0, fraction_tol=5e-3)
    laws = PhaseLaw("conductivity", {"k": 1.0}, {"k": 10.0})
    config = EnsembleConfig(micro, laws, (2.0, 3.0), 5, seed=4, bcs=("periodic",))
    small = EnsembleConfig(micro, laws, (2.0, 3.0), 4, seed=4, bcs=("periodic",))
    comm = MPI.COMM_WORLD
    spread = run_ensemble(comm, config, previous=run_ensemble(comm, small))
    alone = run_ensemble(MPI.COMM_SELF, config) if comm.size > 1 else run_ensemble(comm, config)
    opts = BootstrapOptions(resamples=500, seed=1)
    a = study_uncertainty(spread, eps_rel=0.05, options=opts).to_dict()
    b = study_uncertainty(alone, eps_rel=0.05, options=opts).to_dict()
    assert json.dumps(a) == json.dumps(comm.bcast(a, root=0))
    for key in ("cv_interval", "exponent_interval"):
        np.testing.assert_allclose(
            np.array(a[key]["periodic"], dtype=float),
            np.array(b[key]["periodic"], dtype=float),
            rtol=1e-9,
        )
    for key in ("integral_range_interval", "rve_size_interval"):
        np.testing.assert_allclose(
            np.array(a[key], dtype=float), np.array(b[key], dtype=float), rtol=1e-9
        )


BASE = """
microstructure: {kind: disks}
laws: {physics: conductivity, matrix: {k: 1}, inclusion: {k: 2}}
sizes: [2, 3]
realizations: 4
"""


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("precision: {target: -1}\n", r"precision\.target: must be positive, got -1"),
        ("precision: {of: median, target: 0.1}\n", r"precision\.of: "),
        ("precision: {target: 0.1, max_realizations: 3}\n", r"max_realizations: 3 is below"),
        ("uncertainty: {resamples: 10}\n", r"uncertainty\.resamples: must be at least 100"),
        ("uncertainty: {method: jackknife}\n", r"uncertainty\.method: "),
        ("discretization: {size_index: 2}\n", r"discretization\.size_index: 2 is not below"),
        ("discretization: {factor: 1}\n", r"discretization\.factor: must be at least 1\.1"),
        ("rve: {bc: kubc}\nbcs: [periodic]\n", r"rve\.bc: 'kubc' is not among the bcs"),
    ],
)
def test_bad_uncertainty_config(tmp_path, extra, match):
    path = tmp_path / "bad.yaml"
    path.write_text(BASE + extra)
    with pytest.raises(ValueError, match=match) as err:
        load_config(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("block", ["precision: {target: 0.1}", "discretization: {factor: 2}"])
def test_single_size_rejects_precision_and_discretization(tmp_path, block):
    """One window size runs no RVE-size study: a precision or discretization block is an error
    (on one line), not silently dropped."""
    path = tmp_path / "bad.yaml"
    path.write_text(BASE.replace("sizes: [2, 3]", "sizes: [2]") + block + "\n")
    key = block.split(":")[0]
    match = rf"bad\.yaml: {key}: needs an RVE-size study of at least two window sizes, got 1"
    with pytest.raises(ValueError, match=match) as err:
        load_config(path)
    assert "\n" not in str(err.value)
    path.write_text(BASE.replace("sizes: [2, 3]", "sizes: [2]"))
    assert load_config(path)[0].sizes == (2.0,)  # without the block: a plain ensemble
